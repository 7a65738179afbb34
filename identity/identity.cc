#include "identity/identity.h"

#include <fcntl.h>
#include <openssl/bio.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <algorithm>

#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "common/fs.h"
#include "identity/secure.h"

namespace edge::identity {

struct NodeIdentity::Key {
  EVP_PKEY* pkey = nullptr;
  ~Key() { EVP_PKEY_free(pkey); }
};

namespace {

// A PEM key file is a few hundred bytes; anything much larger is not ours.
constexpr size_t kMaxKeyFileBytes = 64 << 10;

const unsigned char* bytes(std::string_view s) {
  return reinterpret_cast<const unsigned char*>(s.data());
}

// Refuses to prompt: without this callback OpenSSL asks for a passphrase on the terminal
// when it meets an encrypted PEM, which would hang a daemon.
int noPassphrase(char*, int, int, void*) {
  return -1;
}

// An Ed25519 private key as PKCS#8 v1 DER is this fixed prefix and the 32-byte seed
// (RFC 8410 section 7): SEQUENCE { INTEGER 0, SEQUENCE { OID 1.3.101.112 },
// OCTET STRING { OCTET STRING seed } }.
constexpr unsigned char kPkcs8Prefix[] = {0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06,
                                          0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20};
constexpr size_t kSeedBytes = 32;
constexpr size_t kPkcs8Bytes = sizeof kPkcs8Prefix + kSeedBytes;  // 48: 64 base64 chars
constexpr std::string_view kPemBegin = "-----BEGIN PRIVATE KEY-----\n";
constexpr std::string_view kPemEnd = "-----END PRIVATE KEY-----\n";

// The key file as OpenSSL writes an Ed25519 key, parsed by hand: OpenSSL's generic PEM
// and DER decoders try every provider's decoder and cost about 5 M instructions, a
// seventh of an edged start. Anything else (other line breaks, attributes, encrypted
// keys, other key types) returns null and goes the generic way, errors included.
EVP_PKEY* parseEd25519Pem(std::string_view pem) {
  constexpr size_t kBody = 4 * kPkcs8Bytes / 3;
  if (pem.size() != kPemBegin.size() + kBody + 1 + kPemEnd.size() ||
      pem.substr(0, kPemBegin.size()) != kPemBegin ||
      pem.substr(kPemBegin.size() + kBody) != "\n" + std::string(kPemEnd)) {
    return nullptr;
  }
  std::string_view body = pem.substr(kPemBegin.size(), kBody);
  unsigned char der[kPkcs8Bytes + 1];  // EVP_DecodeBlock writes whole 3-byte groups
  if (EVP_DecodeBlock(der, bytes(body), static_cast<int>(body.size())) !=
          static_cast<int>(kPkcs8Bytes) ||
      std::memcmp(der, kPkcs8Prefix, sizeof kPkcs8Prefix) != 0) {
    OPENSSL_cleanse(der, sizeof der);
    return nullptr;
  }
  EVP_PKEY* pkey = EVP_PKEY_new_raw_private_key_ex(nullptr, "ED25519", nullptr,
                                                   der + sizeof kPkcs8Prefix, kSeedBytes);
  OPENSSL_cleanse(der, sizeof der);
  return pkey;
}

std::string rawPublicKey(const EVP_PKEY* pkey) {
  std::string out(kPublicKeyBytes, '\0');
  size_t len = out.size();
  if (EVP_PKEY_get_raw_public_key(pkey, reinterpret_cast<unsigned char*>(out.data()), &len) != 1 ||
      len != kPublicKeyBytes) {
    return {};
  }
  return out;
}

// The PKCS#8 PEM ("BEGIN PRIVATE KEY") that PEM_write_bio_PrivateKey writes for an
// Ed25519 key, byte for byte, without OpenSSL's encoder lookup (4 M instructions). No
// cipher: the file's protection is its 0600 mode; a passphrase would need an operator at
// every start.
Result<std::string> toPem(EVP_PKEY* pkey) {
  unsigned char der[kPkcs8Bytes];
  std::memcpy(der, kPkcs8Prefix, sizeof kPkcs8Prefix);
  size_t len = kSeedBytes;
  if (EVP_PKEY_get_raw_private_key(pkey, der + sizeof kPkcs8Prefix, &len) != 1 ||
      len != kSeedBytes) {
    OPENSSL_cleanse(der, sizeof der);
    return Status::internal("encoding the node key as PEM failed");
  }
  unsigned char body[4 * kPkcs8Bytes / 3 + 1];  // + the NUL EVP_EncodeBlock adds
  int n = EVP_EncodeBlock(body, der, static_cast<int>(sizeof der));
  std::string pem;
  pem.reserve(kPemBegin.size() + sizeof body + kPemEnd.size());
  pem.append(kPemBegin);
  pem.append(reinterpret_cast<const char*>(body), static_cast<size_t>(n));
  pem.push_back('\n');
  pem.append(kPemEnd);
  OPENSSL_cleanse(der, sizeof der);
  OPENSSL_cleanse(body, sizeof body);
  return pem;
}

Status syncDirectoryOf(const std::string& path) {
  size_t slash = path.rfind('/');
  std::string dir = slash == std::string::npos ? "." : (slash == 0 ? "/" : path.substr(0, slash));
  fs::UniqueFd fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!fd.valid()) return Status::fromErrno(errno, "open " + dir);
  if (::fsync(fd.get()) != 0) return Status::fromErrno(errno, "fsync " + dir);
  return Status::ok();
}

}  // namespace

NodeIdentity::NodeIdentity(std::shared_ptr<const Key> key)
    : key_(std::move(key)),
      public_key_(rawPublicKey(key_->pkey)),
      id_(nodeIdFromPublicKey(public_key_)) {}

Result<NodeIdentity> NodeIdentity::generate() {
  auto key = std::make_shared<Key>();
  key->pkey = EVP_PKEY_Q_keygen(nullptr, nullptr, "ED25519");
  if (!key->pkey) return Status::internal("generating an Ed25519 key failed");
  return NodeIdentity(std::move(key));
}

Result<NodeIdentity> NodeIdentity::loadOrCreate(const std::string& path) {
  auto load = [&path](std::string pem) -> Result<NodeIdentity> {
    auto key = std::make_shared<Key>();
    key->pkey = parseEd25519Pem(pem);
    if (!key->pkey) {
      BIO* bio = BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size()));
      if (!bio) return Status::internal("BIO_new_mem_buf failed");
      key->pkey = PEM_read_bio_PrivateKey(bio, nullptr, noPassphrase, nullptr);
      BIO_free(bio);
    }
    OPENSSL_cleanse(pem.data(), pem.size());
    if (!key->pkey) {
      return Status::invalidArgument(
          "node key " + path +
          ": not an unencrypted PEM private key; move the file away to let edged create a "
          "new key (the node then gets a new id)");
    }
    if (!EVP_PKEY_is_a(key->pkey, "ED25519")) {
      const char* type = EVP_PKEY_get0_type_name(key->pkey);
      return Status::invalidArgument("node key " + path + ": a " + (type ? type : "non-Ed25519") +
                                     " key; only Ed25519 keys are allowed");
    }
    NodeIdentity loaded(std::move(key));
    loaded.key_path_ = path;
    return loaded;
  };

  Result<std::string> pem = fs::readFile(path, kMaxKeyFileBytes);
  if (pem.isOk()) return load(std::move(pem).value());
  // Only a missing file is created (a file appearing meanwhile is handled at the link).
  if (pem.status().code() != StatusCode::kNotFound) {
    return pem.status().withContext("node key " + path);
  }

  ASSIGN_OR_RETURN(NodeIdentity created, generate());
  ASSIGN_OR_RETURN(std::string new_pem, toPem(created.key_->pkey));
  // Written complete under a unique name, then published with link(), which unlike
  // rename() never replaces a file: when another edged (or a person) put a key there in
  // the meantime, that key wins and both processes end up with the same identity.
  std::string tmp = path + ".new." + toHex(randomBytes(8));
  Status written = fs::writeFileAtomic(tmp, new_pem, 0600);
  OPENSSL_cleanse(new_pem.data(), new_pem.size());
  RETURN_IF_ERROR(written.withContext("creating node key " + path));
  int rc = ::link(tmp.c_str(), path.c_str());
  int err = errno;
  if (rc != 0 && (err == EPERM || err == EOPNOTSUPP || err == ENOSYS)) {
    // A file system without hard links: a plain rename, accepting the (tiny) race.
    rc = ::rename(tmp.c_str(), path.c_str());
    err = errno;
  }
  ::unlink(tmp.c_str());
  if (rc != 0 && err == EEXIST) {
    Result<std::string> theirs = fs::readFile(path, kMaxKeyFileBytes);
    if (!theirs.isOk()) {
      // E.g. a dangling symlink: there is an entry, but no key behind it.
      return theirs.status().withContext("node key " + path + " exists but cannot be read");
    }
    return load(std::move(theirs).value());
  }
  if (rc != 0) return Status::fromErrno(err, "creating node key " + path);
  // Without it a crash right after the link can lose the entry, and the node would come
  // back with another id.
  RETURN_IF_ERROR(syncDirectoryOf(path).withContext("creating node key " + path));
  created.key_path_ = path;
  return created;
}

std::string NodeIdentity::sign(std::string_view message) const {
  std::string sig(kSignatureBytes, '\0');
  size_t len = sig.size();
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  bool ok =
      ctx &&
      EVP_DigestSignInit_ex(ctx, nullptr, nullptr, nullptr, nullptr, key_->pkey, nullptr) == 1 &&
      EVP_DigestSign(ctx, reinterpret_cast<unsigned char*>(sig.data()), &len, bytes(message),
                     message.size()) == 1;
  EVP_MD_CTX_free(ctx);
  // Ed25519 signing with a valid key fails only when OpenSSL cannot allocate; nothing
  // sensible can continue then (same stance as common/crypto.cc).
  if (!ok || len != kSignatureBytes) std::abort();
  return sig;
}

std::string NodeIdentity::privateKeyRaw() const {
  std::string out(kSeedBytes, '\0');
  size_t len = out.size();
  if (EVP_PKEY_get_raw_private_key(key_->pkey, reinterpret_cast<unsigned char*>(out.data()),
                                   &len) != 1 ||
      len != kSeedBytes) {
    std::abort();  // an Ed25519 key always has its 32-byte private key
  }
  return out;
}

bool isNodeId(std::string_view text) {
  return text.size() == 16 && std::all_of(text.begin(), text.end(), [](char c) {
           return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
         });
}

std::string nodeIdFromPublicKey(std::string_view raw_public_key) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (EVP_Digest(raw_public_key.data(), raw_public_key.size(), md, &len, EVP_sha256(), nullptr) !=
      1) {
    std::abort();  // SHA-256 of a buffer only fails on allocation failure
  }
  return toHex(std::string_view(reinterpret_cast<const char*>(md), 8));
}

bool verifySignature(std::string_view raw_public_key, std::string_view message,
                     std::string_view signature) {
  if (raw_public_key.size() != kPublicKeyBytes || signature.size() != kSignatureBytes) {
    return false;
  }
  EVP_PKEY* pkey = EVP_PKEY_new_raw_public_key_ex(nullptr, "ED25519", nullptr,
                                                  bytes(raw_public_key), raw_public_key.size());
  if (!pkey) return false;
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  bool ok =
      ctx && EVP_DigestVerifyInit_ex(ctx, nullptr, nullptr, nullptr, nullptr, pkey, nullptr) == 1 &&
      EVP_DigestVerify(ctx, bytes(signature), signature.size(), bytes(message), message.size()) ==
          1;
  EVP_MD_CTX_free(ctx);
  EVP_PKEY_free(pkey);
  return ok;
}

std::string toHex(std::string_view in) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out(in.size() * 2, '\0');
  for (size_t i = 0; i < in.size(); ++i) {
    auto b = static_cast<unsigned char>(in[i]);
    out[2 * i] = kDigits[b >> 4];
    out[2 * i + 1] = kDigits[b & 15];
  }
  return out;
}

namespace {
int hexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}
}  // namespace

Result<std::string> fromHex(std::string_view hex) {
  if (hex.size() % 2 != 0) {
    return Status::invalidArgument("hex string of odd length " + std::to_string(hex.size()) +
                                   "; two hex digits per byte expected");
  }
  std::string out(hex.size() / 2, '\0');
  for (size_t i = 0; i < hex.size(); ++i) {
    if (hexValue(hex[i]) < 0) {
      auto c = static_cast<unsigned char>(hex[i]);
      std::string shown = (c >= 0x20 && c < 0x7f) ? "'" + std::string(1, hex[i]) + "'"
                                                  : "byte 0x" + toHex(hex.substr(i, 1));
      return Status::invalidArgument("invalid hex digit " + shown + " at position " +
                                     std::to_string(i) + "; only 0-9, a-f and A-F are allowed");
    }
  }
  for (size_t i = 0; i < out.size(); ++i) {
    out[i] = static_cast<char>(hexValue(hex[2 * i]) << 4 | hexValue(hex[2 * i + 1]));
  }
  return out;
}

}  // namespace edge::identity
