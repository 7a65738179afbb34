#include "common/crypto.h"

#include <fcntl.h>
#include <sys/random.h>

#include <openssl/evp.h>

#include <cerrno>
#include <stdexcept>

#include "common/fs.h"

namespace edge::crypto {

struct Sha256::Impl {
  EVP_MD_CTX* ctx = nullptr;
};

Sha256::Sha256() : impl_(std::make_unique<Impl>()) {
  impl_->ctx = EVP_MD_CTX_new();
  if (!impl_->ctx || EVP_DigestInit_ex(impl_->ctx, EVP_sha256(), nullptr) != 1) {
    // Only reachable when OpenSSL cannot allocate; nothing sensible can continue.
    std::abort();
  }
}

Sha256::~Sha256() {
  EVP_MD_CTX_free(impl_->ctx);
}

void Sha256::update(const void* data, size_t len) {
  EVP_DigestUpdate(impl_->ctx, data, len);
}

namespace {
std::string toHex(const unsigned char* p, size_t n) {
  static const char kHex[] = "0123456789abcdef";
  std::string out(n * 2, '0');
  for (size_t i = 0; i < n; ++i) {
    out[2 * i] = kHex[p[i] >> 4];
    out[2 * i + 1] = kHex[p[i] & 15];
  }
  return out;
}
}  // namespace

std::string Sha256::finishHex() {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_DigestFinal_ex(impl_->ctx, md, &len);
  return toHex(md, len);
}

std::string sha256Hex(std::string_view data) {
  Sha256 h;
  h.update(data);
  return h.finishHex();
}

Result<std::string> sha256File(const std::string& path) {
  fs::UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) return Status::fromErrno(errno, "open " + path);
  Sha256 h;
  char buf[1 << 16];
  while (true) {
    ssize_t n = ::read(fd.get(), buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR) continue;
      return Status::fromErrno(errno, "read " + path);
    }
    if (n == 0) break;
    h.update(buf, static_cast<size_t>(n));
  }
  return h.finishHex();
}

std::string randomHex(size_t n_bytes) {
  std::string raw(n_bytes, '\0');
  size_t got = 0;
  while (got < n_bytes) {
    ssize_t n = ::getrandom(raw.data() + got, n_bytes - got, 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      std::abort();  // getrandom cannot fail on a running Linux once seeded
    }
    got += static_cast<size_t>(n);
  }
  return toHex(reinterpret_cast<const unsigned char*>(raw.data()), n_bytes);
}

}  // namespace edge::crypto
