#include "gateway/node_tls.h"

#include <fcntl.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <mutex>

#include "common/fs.h"
#include "common/log.h"
#include "common/net.h"

namespace edge::gateway {

namespace {

using Clock = std::chrono::steady_clock;

// The first ERR reason on this thread's queue, or `fallback`. Drains the queue so a
// later call does not report a stale error.
std::string opensslReason(const char* fallback) {
  unsigned long first = ERR_get_error();
  ERR_clear_error();
  if (first == 0) return fallback;
  const char* reason = ERR_reason_error_string(first);
  if (reason) return reason;
  char buf[256];
  ERR_error_string_n(first, buf, sizeof buf);
  return buf;
}

// strerror as the rest of a sentence: "connection reset by peer".
std::string errnoText(int err) {
  std::string text = std::strerror(err);
  if (!text.empty() && text[0] >= 'A' && text[0] <= 'Z') text[0] = static_cast<char>(text[0] + 32);
  return text;
}

int setNonBlocking(int fd) {
  int flags = ::fcntl(fd, F_GETFL);
  if (flags < 0) return -1;
  if (flags & O_NONBLOCK) return 0;
  return ::fcntl(fd, F_SETFL, flags | O_NONBLOCK);
}

// The node id proven by a certificate, or "" with *why set: an Ed25519 key that signed
// the certificate itself. There is no CA: holding the key is the identity, and TLS 1.3's
// CertificateVerify proves the peer holds it.
std::string nodeIdOfCertificate(X509* cert, std::string* why) {
  if (!cert) {
    *why = "no peer certificate";
    return {};
  }
  EVP_PKEY* key = X509_get0_pubkey(cert);
  if (!key) {
    *why = "peer certificate has no readable public key";
    return {};
  }
  if (!EVP_PKEY_is_a(key, "ED25519")) {
    const char* type = EVP_PKEY_get0_type_name(key);
    *why = std::string("peer certificate key is ") + (type ? type : "unknown") +
           ", only Ed25519 node keys are accepted";
    return {};
  }
  if (X509_verify(cert, key) != 1) {
    ERR_clear_error();
    *why = "peer certificate is not self-signed by its own key";
    return {};
  }
  unsigned char raw[identity::kPublicKeyBytes];
  size_t len = sizeof raw;
  if (EVP_PKEY_get_raw_public_key(key, raw, &len) != 1 || len != sizeof raw) {
    ERR_clear_error();
    *why = "peer certificate key cannot be read";
    return {};
  }
  return identity::nodeIdFromPublicKey(
      std::string_view(reinterpret_cast<const char*>(raw), sizeof raw));
}

struct SslCtxDeleter {
  void operator()(SSL_CTX* c) const { SSL_CTX_free(c); }
};
using SslCtxPtr = std::unique_ptr<SSL_CTX, SslCtxDeleter>;

// ---------------------------------------------------------------------------------------
// The transport

class TlsTransport final : public Transport {
 public:
  using Allow = std::shared_ptr<const std::function<bool(const std::string&)>>;

  TlsTransport(int fd, std::string already_read, std::string expected, Allow allow)
      : fd_(fd),
        prefix_(std::move(already_read)),
        expected_(std::move(expected)),
        allow_(std::move(allow)) {}

  ~TlsTransport() override {
    if (ssl_) SSL_free(ssl_);  // frees the BIO too
    if (fd_ >= 0) ::close(fd_);
  }

  // Creates the SSL on `ctx` with our BIO; false (and ssl_ null) when OpenSSL cannot.
  bool init(SSL_CTX* ctx, bool server);

  int fd() const override { return fd_; }

  IoResult handshake() override {
    if (handshake_done_) return IoResult::ok(0);
    ERR_clear_error();
    errno_ = 0;
    int r = SSL_do_handshake(ssl_);
    if (r == 1) {
      handshake_done_ = true;
      return IoResult::ok(0);
    }
    return failure(r, "TLS handshake failed: ");
  }

  IoResult read(char* buf, size_t len) override {
    if (len == 0) return IoResult::failed("read() called with an empty buffer");
    ERR_clear_error();
    errno_ = 0;
    size_t n = 0;
    if (SSL_read_ex(ssl_, buf, len, &n) == 1) return IoResult::ok(n);
    IoResult r = failure(0, "TLS read failed: ");
    if (r.kind == IoResult::Kind::kWantRead) starved_ = true;
    return r;
  }

  IoResult write(const char* buf, size_t len) override {
    if (len == 0) return IoResult::ok(0);
    ERR_clear_error();
    errno_ = 0;
    size_t n = 0;
    if (SSL_write_ex(ssl_, buf, len, &n) == 1) return IoResult::ok(n);
    return failure(0, "TLS write failed: ");
  }

  IoResult shutdownWrite() override {
    if (handshake_done_ && !close_notify_sent_) {
      ERR_clear_error();
      errno_ = 0;
      int r = SSL_shutdown(ssl_);
      if (r < 0) {
        int err = SSL_get_error(ssl_, r);
        if (err == SSL_ERROR_WANT_WRITE) return IoResult::wantWrite();
        if (err == SSL_ERROR_WANT_READ) return IoResult::wantRead();
        // The peer is gone already; the socket shutdown below is all that is left.
        ERR_clear_error();
      }
      close_notify_sent_ = true;
    }
    if (::shutdown(fd_, SHUT_WR) != 0 && errno != ENOTCONN) {
      return IoResult::failed("shutdown: " + errnoText(errno));
    }
    return IoResult::ok(0);
  }

  bool hasBufferedInput() const override {
    // SSL_has_pending also counts a partial record read ahead; once read() has said it
    // needs the socket for the rest, that is not input a loop can drain.
    return SSL_pending(ssl_) > 0 || prefix_pos_ < prefix_.size() ||
           (!starved_ && SSL_has_pending(ssl_) == 1);
  }

  const std::string& peerNodeId() const override { return peer_id_; }

  // The certificate check, from the SSL_CTX's cert verify callback.
  bool checkPeer(X509* cert) {
    std::string why;
    std::string id = nodeIdOfCertificate(cert, &why);
    if (id.empty()) {
      verify_error_ = why;
      return false;
    }
    if (!expected_.empty() && id != expected_) {
      verify_error_ = "peer certificate belongs to node " + id + ", expected " + expected_;
      return false;
    }
    if (expected_.empty() && allow_ && *allow_ && !(*allow_)(id)) {
      verify_error_ = "node " + id + " is not allowed to connect";
      return false;
    }
    peer_id_ = std::move(id);
    return true;
  }

  // BIO callbacks: the socket, with `prefix_` served first.
  int bioRead(char* out, size_t len, size_t* got) {
    if (prefix_pos_ < prefix_.size()) {
      size_t n = std::min(len, prefix_.size() - prefix_pos_);
      std::memcpy(out, prefix_.data() + prefix_pos_, n);
      prefix_pos_ += n;
      if (prefix_pos_ == prefix_.size()) {
        std::string().swap(prefix_);  // the ClientHello start is not kept for the session
        prefix_pos_ = 0;
      }
      *got = n;
      starved_ = false;
      return 1;
    }
    ssize_t n;
    do {
      n = ::read(fd_, out, len);
    } while (n < 0 && errno == EINTR);
    if (n > 0) {
      *got = static_cast<size_t>(n);
      starved_ = false;
      return 1;
    }
    *got = 0;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return -1;  // retry flag set by caller
    if (n < 0) errno_ = errno;
    return n == 0 ? 0 : -2;
  }

  int bioWrite(const char* in, size_t len, size_t* put) {
    ssize_t n;
    do {
      n = ::send(fd_, in, len, MSG_NOSIGNAL);
    } while (n < 0 && errno == EINTR);
    if (n >= 0) {
      *put = static_cast<size_t>(n);
      return 1;
    }
    *put = 0;
    if (errno == EAGAIN || errno == EWOULDBLOCK) return -1;
    errno_ = errno;
    return -2;
  }

 private:
  IoResult failure(int ret, const char* what) {
    int err = SSL_get_error(ssl_, ret);
    switch (err) {
      case SSL_ERROR_WANT_READ:
        return IoResult::wantRead();
      case SSL_ERROR_WANT_WRITE:
        return IoResult::wantWrite();
      case SSL_ERROR_ZERO_RETURN:
        return IoResult::closed();
      default:
        break;
    }
    if (!verify_error_.empty()) {
      ERR_clear_error();
      return IoResult::failed(verify_error_);
    }
    if (errno_ != 0) {
      ERR_clear_error();
      return IoResult::failed(std::string(what) + errnoText(errno_));
    }
    unsigned long code = ERR_peek_error();
    if (ERR_GET_LIB(code) == ERR_LIB_SSL) {
      int reason = ERR_GET_REASON(code);
      if (reason == SSL_R_PEER_DID_NOT_RETURN_A_CERTIFICATE) {
        ERR_clear_error();
        return IoResult::failed("no peer certificate");
      }
      if (reason == SSL_R_HTTP_REQUEST || reason == SSL_R_HTTPS_PROXY_REQUEST ||
          reason == SSL_R_WRONG_VERSION_NUMBER || reason == SSL_R_UNSUPPORTED_PROTOCOL) {
        std::string why = opensslReason("?");
        return IoResult::failed(std::string(what) + "not TLS 1.3 from a node (" + why + ")");
      }
      if (reason == SSL_R_UNEXPECTED_EOF_WHILE_READING) {
        ERR_clear_error();
        return IoResult::failed(std::string(what) +
                                "connection closed without TLS close_notify (truncated)");
      }
    }
    if (err == SSL_ERROR_SYSCALL && code == 0) {
      // EOF without close_notify: before the handshake the peer hung up, after it the
      // stream may have been cut anywhere on the path.
      return IoResult::failed(std::string(what) +
                              (handshake_done_
                                   ? "connection closed without TLS close_notify (truncated)"
                                   : "connection closed by peer"));
    }
    std::string reason = opensslReason("unknown error");
    // A refusal by the peer arrives as an alert: say so, the reason is on the other side.
    if (reason.find("alert") != std::string::npos) {
      return IoResult::failed(std::string(what) + reason + " (refused by the peer)");
    }
    return IoResult::failed(std::string(what) + reason);
  }

  int fd_;
  SSL* ssl_ = nullptr;
  std::string prefix_;
  size_t prefix_pos_ = 0;
  std::string expected_;  // client: the node we dial; server: ""
  Allow allow_;
  std::string peer_id_;
  std::string verify_error_;
  int errno_ = 0;  // errno of the last failed socket call inside OpenSSL
  bool handshake_done_ = false;
  bool close_notify_sent_ = false;
  bool starved_ = false;  // the last read() wanted the socket; nothing arrived since
};

TlsTransport* transportOf(BIO* bio) {
  return static_cast<TlsTransport*>(BIO_get_data(bio));
}

int bioReadEx(BIO* bio, char* out, size_t len, size_t* got) {
  BIO_clear_retry_flags(bio);
  int r = transportOf(bio)->bioRead(out, len, got);
  if (r == -1) BIO_set_retry_read(bio);
  return r == 1 ? 1 : 0;
}

int bioWriteEx(BIO* bio, const char* in, size_t len, size_t* put) {
  BIO_clear_retry_flags(bio);
  int r = transportOf(bio)->bioWrite(in, len, put);
  if (r == -1) BIO_set_retry_write(bio);
  return r == 1 ? 1 : 0;
}

long bioCtrl(BIO*, int cmd, long, void*) {
  // Writes go straight to the socket, so there is nothing to flush; every other control
  // (KTLS, dgram, ...) is "not supported".
  return cmd == BIO_CTRL_FLUSH ? 1 : 0;
}

int bioCreate(BIO* bio) {
  BIO_set_init(bio, 1);
  return 1;
}

// A BIO over the transport's socket rather than OpenSSL's socket BIO: the demultiplexer's
// already-read bytes must come first, and errno is kept for the error line.
BIO_METHOD* transportBioMethod() {
  static BIO_METHOD* method = [] {
    BIO_METHOD* m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "edge-transport");
    if (m) {
      BIO_meth_set_read_ex(m, bioReadEx);
      BIO_meth_set_write_ex(m, bioWriteEx);
      BIO_meth_set_ctrl(m, bioCtrl);
      BIO_meth_set_create(m, bioCreate);
    }
    return m;
  }();
  return method;
}

bool TlsTransport::init(SSL_CTX* ctx, bool server) {
  BIO_METHOD* method = transportBioMethod();
  if (!method) return false;
  ssl_ = SSL_new(ctx);
  if (!ssl_) return false;
  BIO* bio = BIO_new(method);
  if (!bio) return false;
  BIO_set_data(bio, this);
  SSL_set_bio(ssl_, bio, bio);  // one reference, owned by ssl_
  SSL_set_app_data(ssl_, this);
  if (server) {
    SSL_set_accept_state(ssl_);
  } else {
    SSL_set_connect_state(ssl_);
  }
  return true;
}

int verifyPeer(X509_STORE_CTX* store, void*) {
  auto* ssl =
      static_cast<SSL*>(X509_STORE_CTX_get_ex_data(store, SSL_get_ex_data_X509_STORE_CTX_idx()));
  auto* transport = ssl ? static_cast<TlsTransport*>(SSL_get_app_data(ssl)) : nullptr;
  if (!transport || !transport->checkPeer(X509_STORE_CTX_get0_cert(store))) {
    X509_STORE_CTX_set_error(store, X509_V_ERR_APPLICATION_VERIFICATION);
    return 0;
  }
  X509_STORE_CTX_set_error(store, X509_V_OK);
  return 1;
}

}  // namespace

// ---------------------------------------------------------------------------------------
// NodeTls

namespace {

struct PkeyDeleter {
  void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); }
};
struct X509Deleter {
  void operator()(X509* x) const { X509_free(x); }
};

}  // namespace

struct NodeTls::Impl {
  std::string node_id;
  std::string public_key;  // raw Ed25519
  std::unique_ptr<EVP_PKEY, PkeyDeleter> key;
  std::string cert_file;
  std::chrono::hours validity{24};
  TlsTransport::Allow allow;

  // The certificate and the SSL_CTX, made by the first server(), client() or
  // certificateDer(), not by create(): on a fresh data dir a certificate costs about 7 M
  // instructions (a signature, random bytes and OpenSSL's key encoder, which enumerates
  // every encoder of every provider) and SSL_CTX_new about 5 M (cipher and group
  // tables, ticket keys from a DRBG seeded on first use); together a third of an edged
  // start, and a node may never dial or be dialled. One context serves both roles
  // (TLS_method(): the SSL's accept or connect state picks the side).
  Result<SSL_CTX*> context();
  // "" when the certificate could not be made (context() says why).
  const std::string& certificateDer();

 private:
  Status makeOnce();

  std::once_flag once_;
  std::unique_ptr<X509, X509Deleter> cert_;
  std::string cert_der_;
  SslCtxPtr ctx_;
  Status status_;
};

namespace {

Result<std::unique_ptr<X509, X509Deleter>> makeCertificate(EVP_PKEY* key,
                                                           const std::string& node_id,
                                                           std::chrono::hours validity) {
  std::unique_ptr<X509, X509Deleter> cert(X509_new());
  if (!cert) return Status::internal("X509_new failed");
  // A random positive 128-bit serial: two starts of one node never repeat a certificate.
  unsigned char serial_bytes[16];
  if (RAND_bytes(serial_bytes, sizeof serial_bytes) != 1) {
    return Status::internal("RAND_bytes failed");
  }
  serial_bytes[0] &= 0x7f;
  serial_bytes[0] |= 0x01;
  BIGNUM* serial = BN_bin2bn(serial_bytes, sizeof serial_bytes, nullptr);
  bool ok = serial && BN_to_ASN1_INTEGER(serial, X509_get_serialNumber(cert.get())) != nullptr;
  BN_free(serial);
  X509_NAME* name = X509_get_subject_name(cert.get());
  // An hour back: a peer whose clock is a little behind still sees a current certificate
  // in tools like openssl s_client, though our own check ignores dates.
  ok = ok && X509_set_version(cert.get(), X509_VERSION_3) == 1 &&
       X509_gmtime_adj(X509_getm_notBefore(cert.get()), -3600) != nullptr &&
       X509_gmtime_adj(X509_getm_notAfter(cert.get()),
                       static_cast<long>(validity.count()) * 3600) != nullptr &&
       X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                                  reinterpret_cast<const unsigned char*>(node_id.c_str()), -1, -1,
                                  0) == 1 &&
       X509_set_issuer_name(cert.get(), name) == 1 && X509_set_pubkey(cert.get(), key) == 1 &&
       X509_sign(cert.get(), key, nullptr) > 0;  // Ed25519 signs without a separate digest
  if (!ok) return Status::internal("making the node certificate failed: " + opensslReason("?"));
  return cert;
}

// Whether `cert` is the certificate create() would make now for `identity`, so it can be
// used again; when not, *why says what is wrong with it. The peers' check
// (nodeIdOfCertificate) must pass, and beyond it nothing may differ from makeCertificate's
// output but the serial and the dates.
bool reusable(X509* cert, const std::string& node_id, std::string_view public_key,
              std::chrono::hours validity, std::string* why) {
  std::string id = nodeIdOfCertificate(cert, why);
  if (id.empty()) return false;
  unsigned char raw[identity::kPublicKeyBytes];
  size_t len = sizeof raw;
  if (id != node_id || EVP_PKEY_get_raw_public_key(X509_get0_pubkey(cert), raw, &len) != 1 ||
      std::string_view(reinterpret_cast<const char*>(raw), len) != public_key) {
    ERR_clear_error();
    *why = "certificate of another node key (node " + id + ")";
    return false;
  }
  X509_NAME* subject = X509_get_subject_name(cert);
  char cn[64] = {};
  if (X509_get_version(cert) != X509_VERSION_3 || X509_NAME_entry_count(subject) != 1 ||
      X509_NAME_get_text_by_NID(subject, NID_commonName, cn, sizeof cn) !=
          static_cast<int>(id.size()) ||
      id != cn || X509_NAME_cmp(subject, X509_get_issuer_name(cert)) != 0 ||
      X509_get_ext_count(cert) != 0) {
    ERR_clear_error();
    *why = "certificate is not one edged makes (version, names or extensions differ)";
    return false;
  }
  // The window must hold now, with at least half of `validity` left and no more than all
  // of it (a longer one was made with other options).
  int days = 0;
  int secs = 0;
  if (X509_cmp_current_time(X509_get0_notBefore(cert)) >= 0 ||
      ASN1_TIME_diff(&days, &secs, nullptr, X509_get0_notAfter(cert)) != 1) {
    ERR_clear_error();
    *why = "certificate is not valid yet or has an unreadable date";
    return false;
  }
  long long left = static_cast<long long>(days) * 86400 + secs;
  long long full = static_cast<long long>(validity.count()) * 3600;
  if (left < full / 2 || left > full + 60) {
    *why = "certificate expires in " + std::to_string(left) + " s, outside " +
           std::to_string(full / 2) + ".." + std::to_string(full) + " s";
    return false;
  }
  return true;
}

// Best effort: without the file the next start makes a certificate again.
void saveCertificate(const std::string& path, X509* cert) {
  std::string pem;
  BIO* bio = BIO_new(BIO_s_mem());
  if (bio && PEM_write_bio_X509(bio, cert) == 1) {
    char* data = nullptr;
    long len = BIO_get_mem_data(bio, &data);
    if (len > 0) pem.assign(data, static_cast<size_t>(len));
  }
  BIO_free(bio);
  ERR_clear_error();
  Status st =
      pem.empty() ? Status::internal("PEM encoding failed") : fs::writeFileAtomic(path, pem, 0644);
  if (!st.isOk()) {
    LOG_WARN("cannot keep the node certificate; it is made again at the next start")
        .kv("path", path)
        .kv("error", st.message());
  }
}

// "<dir>/node.key" -> "<dir>/node.crt"; "" for "".
std::string certificateFileNextTo(const std::string& key_path) {
  if (key_path.empty()) return {};
  std::string_view base(key_path);
  if (base.size() > 4 && base.substr(base.size() - 4) == ".key") base.remove_suffix(4);
  return std::string(base) + ".crt";
}

// The certificate in `path` when reusable(), else null (a missing file says nothing, a
// bad one is logged: it is about to be replaced).
std::unique_ptr<X509, X509Deleter> loadCertificate(const std::string& path,
                                                   const std::string& node_id,
                                                   std::string_view public_key,
                                                   std::chrono::hours validity) {
  Result<std::string> pem = fs::readFile(path, 64 << 10);
  if (!pem.isOk()) {
    if (pem.status().code() != StatusCode::kNotFound) {
      LOG_WARN("node certificate unreadable, making a new one")
          .kv("path", path)
          .kv("error", pem.status().message());
    }
    return nullptr;
  }
  BIO* bio = BIO_new_mem_buf(pem->data(), static_cast<int>(pem->size()));
  std::unique_ptr<X509, X509Deleter> cert(bio ? PEM_read_bio_X509(bio, nullptr, nullptr, nullptr)
                                              : nullptr);
  BIO_free(bio);
  std::string why = "not a PEM certificate";
  if (!cert || !reusable(cert.get(), node_id, public_key, validity, &why)) {
    ERR_clear_error();
    LOG_INFO("node certificate replaced").kv("path", path).kv("reason", why);
    return nullptr;
  }
  return cert;
}

Result<SslCtxPtr> makeContext(X509* cert, EVP_PKEY* key) {
  SslCtxPtr ctx(SSL_CTX_new(TLS_method()));
  if (!ctx) return Status::internal("SSL_CTX_new failed: " + opensslReason("?"));
  SSL_CTX* c = ctx.get();
  bool ok = SSL_CTX_set_min_proto_version(c, TLS1_3_VERSION) == 1 &&
            SSL_CTX_set_max_proto_version(c, TLS1_3_VERSION) == 1 &&
            SSL_CTX_use_certificate(c, cert) == 1 && SSL_CTX_use_PrivateKey(c, key) == 1 &&
            SSL_CTX_check_private_key(c) == 1;
  if (!ok) return Status::internal("setting up TLS failed: " + opensslReason("?"));
  SSL_CTX_set_verify(c, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, nullptr);
  SSL_CTX_set_cert_verify_callback(c, verifyPeer, nullptr);
  // Partial writes: the data path writes what the socket takes and comes back on
  // EPOLLOUT with the rest (from a buffer that may have moved).
  SSL_CTX_set_mode(c, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
  SSL_CTX_set_session_cache_mode(c, SSL_SESS_CACHE_OFF);
  // Read-ahead: one read() for several records instead of two per record (header, then
  // body); about 10% less CPU for bulk data and half the reads for small requests.
  // hasBufferedInput() reports what it keeps.
  SSL_CTX_set_read_ahead(c, 1);
  // Server side, no resumption: clients keep no session cache, so tickets would be bytes
  // for nothing. (SSL_VERIFY_FAIL_IF_NO_PEER_CERT above is server-side only as well.)
  SSL_CTX_set_num_tickets(c, 0);
  return ctx;
}

}  // namespace

Status NodeTls::Impl::makeOnce() {
  std::unique_ptr<X509, X509Deleter> cert;
  if (!cert_file.empty()) cert = loadCertificate(cert_file, node_id, public_key, validity);
  if (!cert) {
    ASSIGN_OR_RETURN(cert, makeCertificate(key.get(), node_id, validity));
    if (!cert_file.empty()) saveCertificate(cert_file, cert.get());
  }
  unsigned char* der = nullptr;
  int len = i2d_X509(cert.get(), &der);
  if (len <= 0) return Status::internal("encoding the node certificate failed");
  cert_der_.assign(reinterpret_cast<const char*>(der), static_cast<size_t>(len));
  OPENSSL_free(der);
  cert_ = std::move(cert);
  ASSIGN_OR_RETURN(ctx_, makeContext(cert_.get(), key.get()));
  return Status::ok();
}

Result<SSL_CTX*> NodeTls::Impl::context() {
  std::call_once(once_, [this] { status_ = makeOnce(); });
  if (!ctx_) return status_;
  return ctx_.get();
}

const std::string& NodeTls::Impl::certificateDer() {
  (void)context();
  return cert_der_;
}

NodeTls::NodeTls(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
NodeTls::~NodeTls() = default;

Result<std::unique_ptr<NodeTls>> NodeTls::create(const identity::NodeIdentity& identity,
                                                 Options options) {
  if (options.validity.count() <= 0 || options.validity.count() > 24 * 365) {
    return Status::invalidArgument("NodeTls validity must be 1 hour to 1 year, got " +
                                   std::to_string(options.validity.count()) + " hours");
  }
  std::string raw = identity.privateKeyRaw();
  std::unique_ptr<EVP_PKEY, PkeyDeleter> key(EVP_PKEY_new_raw_private_key_ex(
      nullptr, "ED25519", nullptr, reinterpret_cast<const unsigned char*>(raw.data()), raw.size()));
  OPENSSL_cleanse(raw.data(), raw.size());
  if (!key) return Status::internal("loading the node key into OpenSSL failed");

  auto impl = std::make_unique<Impl>();
  impl->node_id = identity.id();
  impl->public_key = identity.publicKey();
  impl->key = std::move(key);
  impl->validity = options.validity;
  impl->cert_file = options.certificate_file.empty() ? certificateFileNextTo(identity.keyPath())
                                                     : options.certificate_file;
  if (options.allow_client) {
    impl->allow = std::make_shared<const std::function<bool(const std::string&)>>(
        std::move(options.allow_client));
  }
  return std::unique_ptr<NodeTls>(new NodeTls(std::move(impl)));
}

const std::string& NodeTls::nodeId() const {
  return impl_->node_id;
}

const std::string& NodeTls::certificateDer() const {
  return impl_->certificateDer();
}

Result<TransportPtr> NodeTls::server(int fd, std::string already_read) const {
  if (fd < 0) return Status::invalidArgument("NodeTls::server: invalid fd " + std::to_string(fd));
  auto t = std::make_unique<TlsTransport>(fd, std::move(already_read), "", impl_->allow);
  if (setNonBlocking(fd) != 0) {
    return Status::fromErrno(errno, "NodeTls::server: making the socket non-blocking");
  }
  Result<SSL_CTX*> ctx = impl_->context();
  if (!ctx.isOk()) return ctx.status().withContext("NodeTls::server");
  if (!t->init(*ctx, true)) {
    return Status::internal("NodeTls::server: SSL_new failed: " + opensslReason("?"));
  }
  return TransportPtr(std::move(t));
}

Result<TransportPtr> NodeTls::client(int fd, const std::string& expected_node_id) const {
  if (fd < 0) return Status::invalidArgument("NodeTls::client: invalid fd " + std::to_string(fd));
  if (!identity::isNodeId(expected_node_id)) {
    ::close(fd);
    return Status::invalidArgument("NodeTls::client: expected node id '" + expected_node_id +
                                   "' is not 16 lower-case hex characters");
  }
  auto t = std::make_unique<TlsTransport>(fd, "", expected_node_id, nullptr);
  if (setNonBlocking(fd) != 0) {
    return Status::fromErrno(errno, "NodeTls::client: making the socket non-blocking");
  }
  Result<SSL_CTX*> ctx = impl_->context();
  if (!ctx.isOk()) return ctx.status().withContext("NodeTls::client");
  if (!t->init(*ctx, false)) {
    return Status::internal("NodeTls::client: SSL_new failed: " + opensslReason("?"));
  }
  return TransportPtr(std::move(t));
}

Result<TransportPtr> NodeTls::connect(const std::string& endpoint, const std::string& node_id,
                                      std::chrono::milliseconds timeout) const {
  if (!identity::isNodeId(node_id)) {
    return Status::invalidArgument("TLS connect to " + endpoint + ": node id '" + node_id +
                                   "' is not 16 lower-case hex characters");
  }
  auto deadline = Clock::now() + timeout;
  ASSIGN_OR_RETURN(int fd, net::dialTcp(endpoint, timeout));
  ASSIGN_OR_RETURN(TransportPtr t, client(fd, node_id));
  auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
  RETURN_IF_ERROR(handshakeBlocking(*t, left).withContext("TLS connect to " + endpoint));
  return t;
}

// ---------------------------------------------------------------------------------------
// Blocking helpers

namespace {

// Waits for what `r` asks; false when the deadline passes first.
bool waitFor(const Transport& t, const IoResult& r, Clock::time_point deadline) {
  pollfd p{t.fd(), static_cast<short>(r.kind == IoResult::Kind::kWantWrite ? POLLOUT : POLLIN), 0};
  for (;;) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    if (left.count() <= 0) return false;
    int n = ::poll(&p, 1, static_cast<int>(std::min<int64_t>(left.count(), 1 << 30)));
    if (n > 0) return true;  // also POLLERR/POLLHUP: the next call reports them
    if (n < 0 && errno != EINTR) return true;
  }
}

}  // namespace

Status handshakeBlocking(Transport& t, std::chrono::milliseconds timeout) {
  auto deadline = Clock::now() + timeout;
  for (;;) {
    IoResult r = t.handshake();
    switch (r.kind) {
      case IoResult::Kind::kOk:
        return Status::ok();
      case IoResult::Kind::kError:
        return Status::unavailable(r.error);
      case IoResult::Kind::kClosed:
        return Status::unavailable("TLS handshake failed: connection closed by peer");
      default:
        if (!waitFor(t, r, deadline)) {
          return Status::deadlineExceeded("TLS handshake not complete after " +
                                          std::to_string(timeout.count()) + " ms");
        }
    }
  }
}

Status writeFully(Transport& t, std::string_view data, std::chrono::milliseconds timeout) {
  auto deadline = Clock::now() + timeout;
  while (!data.empty()) {
    IoResult r = t.write(data.data(), data.size());
    switch (r.kind) {
      case IoResult::Kind::kOk:
        data.remove_prefix(r.bytes);
        if (r.bytes == 0 || !data.empty()) {
          if (!waitFor(t, IoResult::wantWrite(), deadline)) {
            return Status::deadlineExceeded("write not complete after " +
                                            std::to_string(timeout.count()) + " ms");
          }
        }
        break;
      case IoResult::Kind::kError:
        return Status::unavailable(r.error);
      case IoResult::Kind::kClosed:
        return Status::unavailable("connection closed by peer while writing");
      default:
        if (!waitFor(t, r, deadline)) {
          return Status::deadlineExceeded("write not complete after " +
                                          std::to_string(timeout.count()) + " ms");
        }
    }
  }
  return Status::ok();
}

Result<std::string> readSome(Transport& t, size_t max, std::chrono::milliseconds timeout) {
  if (max == 0) return Status::invalidArgument("readSome: max must be at least 1");
  auto deadline = Clock::now() + timeout;
  std::string buf(max, '\0');
  for (;;) {
    IoResult r = t.read(buf.data(), buf.size());
    switch (r.kind) {
      case IoResult::Kind::kOk:
        buf.resize(r.bytes);
        return buf;
      case IoResult::Kind::kClosed:
        return std::string();
      case IoResult::Kind::kError:
        return Status::unavailable(r.error);
      default:
        if (!waitFor(t, r, deadline)) {
          return Status::deadlineExceeded("nothing to read after " +
                                          std::to_string(timeout.count()) + " ms");
        }
    }
  }
}

Result<std::string> readToEnd(Transport& t, size_t limit, std::chrono::milliseconds timeout) {
  auto deadline = Clock::now() + timeout;
  std::string all;
  for (;;) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    if (left.count() <= 0) {
      return Status::deadlineExceeded("stream not closed after " + std::to_string(timeout.count()) +
                                      " ms");
    }
    ASSIGN_OR_RETURN(std::string chunk, readSome(t, 64 << 10, left));
    if (chunk.empty()) return all;
    if (all.size() + chunk.size() > limit) {
      return Status::resourceExhausted("stream longer than " + std::to_string(limit) + " bytes");
    }
    all += chunk;
  }
}

}  // namespace edge::gateway
