#include "identity/secure.h"

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/params.h>
#include <openssl/rand.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <limits>

namespace edge::identity {

namespace {

constexpr size_t kX25519Bytes = 32;
constexpr size_t kRandomBytes = 16;
constexpr size_t kHashBytes = 32;
constexpr size_t kMacBytes = 32;
constexpr size_t kKeyBytes = 32;
constexpr size_t kTagBytes = 16;
constexpr size_t kNonceBytes = 12;
constexpr size_t kLengthBytes = 4;

constexpr unsigned char kTypeHello1 = 1;
constexpr unsigned char kTypeHello2 = 2;
constexpr unsigned char kTypeFinish = 3;

constexpr size_t kHelloBytes = 2 + kX25519Bytes + kPublicKeyBytes + kRandomBytes;
constexpr size_t kHello2Bytes = kHelloBytes + kSignatureBytes + kMacBytes;
constexpr size_t kFinishBytes = 2 + kSignatureBytes + kMacBytes;

// Distinct per role, so neither side's signature or MAC can be reflected back as the
// other's. Both start with a letter, so they never collide with a signed profile (JSON).
constexpr std::string_view kLabelResponder = "edgecloud link v1 responder";
constexpr std::string_view kLabelInitiator = "edgecloud link v1 initiator";
constexpr std::string_view kKdfInfo = "edgecloud link v1";

const unsigned char* u8(std::string_view s) {
  return reinterpret_cast<const unsigned char*>(s.data());
}
unsigned char* u8(std::string& s) {
  return reinterpret_cast<unsigned char*>(s.data());
}

// Failures of these primitives on valid, fixed-size inputs mean OpenSSL could not
// allocate; nothing sensible can continue (same stance as common/crypto.cc).
[[noreturn]] void cryptoFailure() {
  std::abort();
}

std::string sha256(std::string_view a, std::string_view b) {
  std::string out(kHashBytes, '\0');
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  bool ok = ctx && EVP_DigestInit_ex(ctx, EVP_sha256(), nullptr) == 1 &&
            EVP_DigestUpdate(ctx, a.data(), a.size()) == 1 &&
            EVP_DigestUpdate(ctx, b.data(), b.size()) == 1 &&
            EVP_DigestFinal_ex(ctx, u8(out), nullptr) == 1;
  EVP_MD_CTX_free(ctx);
  if (!ok) cryptoFailure();
  return out;
}

std::string hmacSha256(std::string_view key, std::string_view label, std::string_view data) {
  std::string msg;
  msg.reserve(label.size() + data.size());
  msg.append(label).append(data);
  std::string out(kMacBytes, '\0');
  size_t len = 0;
  if (!EVP_Q_mac(nullptr, "HMAC", nullptr, "SHA256", nullptr, key.data(), key.size(), u8(msg),
                 msg.size(), u8(out), out.size(), &len) ||
      len != kMacBytes) {
    cryptoFailure();
  }
  return out;
}

bool equalConstantTime(std::string_view a, std::string_view b) {
  return a.size() == b.size() && CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

const EVP_CIPHER* aes256Gcm() {
  // Fetched once: an implicit fetch on every EVP_*Init_ex would cost a lookup per frame.
  static EVP_CIPHER* cipher = EVP_CIPHER_fetch(nullptr, "AES-256-GCM", nullptr);
  if (!cipher) cryptoFailure();
  return cipher;
}

void putBe32(char* p, uint32_t v) {
  p[0] = static_cast<char>(v >> 24);
  p[1] = static_cast<char>(v >> 16);
  p[2] = static_cast<char>(v >> 8);
  p[3] = static_cast<char>(v);
}

uint32_t getBe32(const char* p) {
  auto b = [p](int i) { return static_cast<uint32_t>(static_cast<unsigned char>(p[i])); };
  return b(0) << 24 | b(1) << 16 | b(2) << 8 | b(3);
}

void counterNonce(uint64_t counter, unsigned char nonce[kNonceBytes]) {
  std::memset(nonce, 0, 4);
  for (int i = 0; i < 8; ++i) nonce[4 + i] = static_cast<unsigned char>(counter >> (56 - 8 * i));
}

// One direction of AES-256-GCM. The key is scheduled once; each frame only sets its IV.
class FrameCipher {
 public:
  FrameCipher() = default;
  ~FrameCipher() { EVP_CIPHER_CTX_free(ctx_); }
  FrameCipher(const FrameCipher&) = delete;
  FrameCipher& operator=(const FrameCipher&) = delete;

  void init(std::string_view key, bool encrypt) {
    ctx_ = EVP_CIPHER_CTX_new();
    if (!ctx_ ||
        EVP_CipherInit_ex(ctx_, aes256Gcm(), nullptr, u8(key), nullptr, encrypt ? 1 : 0) != 1) {
      cryptoFailure();
    }
  }

  // out must hold in.size() + kTagBytes.
  void seal(uint64_t counter, std::string_view aad, std::string_view in, unsigned char* out) {
    unsigned char nonce[kNonceBytes];
    counterNonce(counter, nonce);
    int len = 0;
    bool ok = EVP_EncryptInit_ex(ctx_, nullptr, nullptr, nullptr, nonce) == 1 &&
              EVP_EncryptUpdate(ctx_, nullptr, &len, u8(aad), static_cast<int>(aad.size())) == 1 &&
              EVP_EncryptUpdate(ctx_, out, &len, u8(in), static_cast<int>(in.size())) == 1 &&
              EVP_EncryptFinal_ex(ctx_, out + len, &len) == 1 &&
              EVP_CIPHER_CTX_ctrl(ctx_, EVP_CTRL_AEAD_GET_TAG, kTagBytes, out + in.size()) == 1;
    if (!ok) cryptoFailure();
  }

  // `in` is ciphertext || tag; out must hold in.size() - kTagBytes. False when the frame
  // does not authenticate.
  bool open(uint64_t counter, std::string_view aad, std::string_view in, unsigned char* out) {
    unsigned char nonce[kNonceBytes];
    counterNonce(counter, nonce);
    size_t n = in.size() - kTagBytes;
    // The tag is passed by pointer to a non-const API that only reads it.
    auto* tag = const_cast<unsigned char*>(u8(in.substr(n)));
    int len = 0;
    return EVP_DecryptInit_ex(ctx_, nullptr, nullptr, nullptr, nonce) == 1 &&
           EVP_DecryptUpdate(ctx_, nullptr, &len, u8(aad), static_cast<int>(aad.size())) == 1 &&
           EVP_DecryptUpdate(ctx_, out, &len, u8(in), static_cast<int>(n)) == 1 &&
           EVP_CIPHER_CTX_ctrl(ctx_, EVP_CTRL_AEAD_SET_TAG, kTagBytes, tag) == 1 &&
           EVP_DecryptFinal_ex(ctx_, out + len, &len) == 1;
  }

 private:
  EVP_CIPHER_CTX* ctx_ = nullptr;
};

struct PkeyDeleter {
  void operator()(EVP_PKEY* p) const { EVP_PKEY_free(p); }
};
using PkeyPtr = std::unique_ptr<EVP_PKEY, PkeyDeleter>;

}  // namespace

struct SecureSession::Impl {
  enum class State { kAwaitHello, kAwaitFinish, kEstablished, kFailed };

  Impl(Role r, const NodeIdentity& s, std::string k) : role(r), self(s), psk(std::move(k)) {}
  ~Impl() {
    OPENSSL_cleanse(psk.data(), psk.size());
    OPENSSL_cleanse(confirm_key.data(), confirm_key.size());
  }

  Role role;
  NodeIdentity self;
  std::string psk;
  State state = State::kAwaitHello;
  Status failure;

  PkeyPtr ephemeral;
  std::string hello1;  // as sent or received; the transcript's first half
  std::string transcript_hash;
  std::string confirm_key;
  std::string pending_peer_key;  // from the peer's HELLO, trusted once it proved it
  std::string peer_key;
  std::string peer_id;

  FrameCipher sender;
  FrameCipher receiver;
  uint64_t sent = 0;
  uint64_t received = 0;

  std::string in;   // an incomplete frame carried over to the next feed()
  std::string out;  // bytes for the socket

  Status fail(Status s) {
    state = State::kFailed;
    failure = s;
    in.clear();
    ephemeral.reset();
    OPENSSL_cleanse(confirm_key.data(), confirm_key.size());
    return s;
  }

  void queueFrame(std::string_view payload) {
    char header[kLengthBytes];
    putBe32(header, static_cast<uint32_t>(payload.size()));
    out.append(header, kLengthBytes).append(payload);
  }

  std::string helloFields(unsigned char type) const {
    std::string h;
    h.reserve(kHelloBytes);
    h.push_back(static_cast<char>(kVersion));
    h.push_back(static_cast<char>(type));
    std::string pub(kX25519Bytes, '\0');
    size_t len = pub.size();
    if (EVP_PKEY_get_raw_public_key(ephemeral.get(), u8(pub), &len) != 1) cryptoFailure();
    h.append(pub).append(self.publicKey()).append(randomBytes(kRandomBytes));
    return h;
  }

  // Checks what every handshake message starts with, so that a peer of another version
  // learns that rather than a size complaint.
  static Status checkHeader(std::string_view msg, unsigned char type, size_t size,
                            const char* name) {
    if (msg.empty()) return Status::invalidArgument("empty handshake message");
    auto version = static_cast<unsigned char>(msg[0]);
    if (version != kVersion) {
      return Status::invalidArgument("peer speaks link protocol version " +
                                     std::to_string(version) + "; this node speaks " +
                                     std::to_string(kVersion));
    }
    if (msg.size() < 2 || static_cast<unsigned char>(msg[1]) != type) {
      return Status::invalidArgument(
          std::string("unexpected handshake message: expected ") + name + " (type " +
          std::to_string(type) + "), got type " +
          (msg.size() < 2 ? "none" : std::to_string(static_cast<unsigned char>(msg[1]))));
    }
    if (msg.size() != size) {
      return Status::invalidArgument(std::string(name) + " of " + std::to_string(msg.size()) +
                                     " bytes; " + std::to_string(size) + " expected");
    }
    return Status::ok();
  }

  // Derives the session keys from our ephemeral and the peer's, over the transcript.
  Status deriveKeys(std::string_view peer_ephemeral) {
    PkeyPtr peer(EVP_PKEY_new_raw_public_key_ex(nullptr, "X25519", nullptr, u8(peer_ephemeral),
                                                peer_ephemeral.size()));
    if (!peer) return Status::invalidArgument("peer's ephemeral key is not an X25519 key");
    std::string shared(kX25519Bytes, '\0');
    size_t shared_len = shared.size();
    EVP_PKEY_CTX* dctx = EVP_PKEY_CTX_new_from_pkey(nullptr, ephemeral.get(), nullptr);
    // OpenSSL refuses low-order points (an all-zero secret), which would let a peer fix
    // the keys; that is the expected failure here.
    bool ok = dctx && EVP_PKEY_derive_init(dctx) == 1 &&
              EVP_PKEY_derive_set_peer(dctx, peer.get()) == 1 &&
              EVP_PKEY_derive(dctx, u8(shared), &shared_len) == 1 && shared_len == kX25519Bytes;
    EVP_PKEY_CTX_free(dctx);
    if (!ok) {
      OPENSSL_cleanse(shared.data(), shared.size());
      return Status::invalidArgument("peer's ephemeral key is unusable (a low-order point)");
    }
    std::string salt = psk.empty() ? transcript_hash : sha256(psk, transcript_hash);

    std::string okm(3 * kKeyBytes, '\0');
    EVP_KDF* kdf = EVP_KDF_fetch(nullptr, "HKDF", nullptr);
    EVP_KDF_CTX* kctx = kdf ? EVP_KDF_CTX_new(kdf) : nullptr;
    EVP_KDF_free(kdf);
    char digest[] = "SHA256";
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, digest, 0),
        OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, shared.data(), shared.size()),
        OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SALT, salt.data(), salt.size()),
        OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, const_cast<char*>(kKdfInfo.data()),
                                          kKdfInfo.size()),
        OSSL_PARAM_construct_end()};
    ok = kctx && EVP_KDF_derive(kctx, u8(okm), okm.size(), params) == 1;
    EVP_KDF_CTX_free(kctx);
    OPENSSL_cleanse(shared.data(), shared.size());
    if (!ok) cryptoFailure();

    std::string_view keys(okm);
    std::string_view i2r = keys.substr(0, kKeyBytes);
    std::string_view r2i = keys.substr(kKeyBytes, kKeyBytes);
    sender.init(role == Role::kInitiator ? i2r : r2i, true);
    receiver.init(role == Role::kInitiator ? r2i : i2r, false);
    confirm_key.assign(keys.substr(2 * kKeyBytes, kKeyBytes));
    OPENSSL_cleanse(okm.data(), okm.size());
    ephemeral.reset();  // forward secrecy: the ephemeral is not needed any more
    return Status::ok();
  }

  // Verifies the peer's signature and key confirmation over the transcript.
  Status checkProof(std::string_view label, std::string_view sig, std::string_view mac) const {
    std::string signed_bytes;
    signed_bytes.reserve(label.size() + transcript_hash.size());
    signed_bytes.append(label).append(transcript_hash);
    if (!verifySignature(pending_peer_key, signed_bytes, sig)) {
      return Status::permissionDenied("peer's handshake signature does not verify for its key " +
                                      nodeIdFromPublicKey(pending_peer_key) +
                                      ": the handshake was forged or altered");
    }
    if (!equalConstantTime(hmacSha256(confirm_key, label, transcript_hash), mac)) {
      return Status::permissionDenied(std::string("cluster key mismatch with peer ") +
                                      nodeIdFromPublicKey(pending_peer_key) + ": " +
                                      (psk.empty()
                                           ? "the peer uses a cluster key and this node has none"
                                           : "the peer has none, or a different one") +
                                      " (or the handshake was altered)");
    }
    return Status::ok();
  }

  // Appends this side's signature and key confirmation to `msg`.
  void appendProof(std::string_view label, std::string* msg) const {
    std::string signed_bytes;
    signed_bytes.append(label).append(transcript_hash);
    msg->append(self.sign(signed_bytes)).append(hmacSha256(confirm_key, label, transcript_hash));
  }

  void establish() {
    peer_key = std::move(pending_peer_key);
    peer_id = nodeIdFromPublicKey(peer_key);
    OPENSSL_cleanse(confirm_key.data(), confirm_key.size());
    confirm_key.clear();
    state = State::kEstablished;
  }

  Status onHello1(std::string_view msg) {  // responder
    RETURN_IF_ERROR(checkHeader(msg, kTypeHello1, kHelloBytes, "HELLO"));
    hello1.assign(msg);
    std::string_view peer_ephemeral = msg.substr(2, kX25519Bytes);
    pending_peer_key.assign(msg.substr(2 + kX25519Bytes, kPublicKeyBytes));
    std::string reply = helloFields(kTypeHello2);
    transcript_hash = sha256(hello1, reply);
    RETURN_IF_ERROR(deriveKeys(peer_ephemeral));
    appendProof(kLabelResponder, &reply);
    queueFrame(reply);
    state = State::kAwaitFinish;
    return Status::ok();
  }

  Status onHello2(std::string_view msg) {  // initiator
    RETURN_IF_ERROR(checkHeader(msg, kTypeHello2, kHello2Bytes, "HELLO reply"));
    std::string_view fields = msg.substr(0, kHelloBytes);
    std::string_view peer_ephemeral = msg.substr(2, kX25519Bytes);
    pending_peer_key.assign(msg.substr(2 + kX25519Bytes, kPublicKeyBytes));
    transcript_hash = sha256(hello1, fields);
    RETURN_IF_ERROR(deriveKeys(peer_ephemeral));
    RETURN_IF_ERROR(checkProof(kLabelResponder, msg.substr(kHelloBytes, kSignatureBytes),
                               msg.substr(kHelloBytes + kSignatureBytes, kMacBytes)));
    std::string finish;
    finish.push_back(static_cast<char>(kVersion));
    finish.push_back(static_cast<char>(kTypeFinish));
    appendProof(kLabelInitiator, &finish);
    queueFrame(finish);
    establish();
    return Status::ok();
  }

  Status onFinish(std::string_view msg) {  // responder
    RETURN_IF_ERROR(checkHeader(msg, kTypeFinish, kFinishBytes, "FINISH"));
    RETURN_IF_ERROR(checkProof(kLabelInitiator, msg.substr(2, kSignatureBytes),
                               msg.substr(2 + kSignatureBytes, kMacBytes)));
    establish();
    return Status::ok();
  }

  Status onFrame(std::string_view header, std::string_view body,
                 std::vector<std::string>* messages) {
    if (body.size() < kTagBytes) {
      return Status::invalidArgument("frame of " + std::to_string(body.size()) +
                                     " bytes is shorter than its 16-byte tag");
    }
    if (received == std::numeric_limits<uint64_t>::max()) {
      return Status::resourceExhausted("receive nonce counter exhausted; reconnect");
    }
    std::string& plain = messages->emplace_back(body.size() - kTagBytes, '\0');
    if (!receiver.open(received, header, body, u8(plain))) {
      messages->pop_back();
      return Status::permissionDenied("frame " + std::to_string(received) +
                                      " does not authenticate (altered, replayed or reordered)");
    }
    ++received;
    return Status::ok();
  }

  Status onPayload(std::string_view header, std::string_view payload,
                   std::vector<std::string>* messages) {
    switch (state) {
      case State::kAwaitHello:
        return role == Role::kResponder ? onHello1(payload) : onHello2(payload);
      case State::kAwaitFinish:
        return onFinish(payload);
      case State::kEstablished:
        return onFrame(header, payload, messages);
      case State::kFailed:
        break;
    }
    return failure;
  }

  // Consumes every complete frame of `data`; returns how many bytes it used.
  Status consume(std::string_view data, std::vector<std::string>* messages, size_t* used) {
    size_t pos = 0;
    while (data.size() - pos >= kLengthBytes) {
      uint32_t len = getBe32(data.data() + pos);
      bool handshake = state != State::kEstablished;
      size_t limit = handshake ? kMaxHandshakeBytes : kMaxMessageBytes + kTagBytes;
      if (len > limit) {
        *used = pos;
        return Status::invalidArgument(std::string(handshake ? "handshake message" : "frame") +
                                       " of " + std::to_string(len) + " bytes exceeds the " +
                                       std::to_string(limit) + "-byte limit");
      }
      if (data.size() - pos - kLengthBytes < len) break;
      std::string_view header = data.substr(pos, kLengthBytes);
      std::string_view payload = data.substr(pos + kLengthBytes, len);
      pos += kLengthBytes + len;
      Status s = onPayload(header, payload, messages);
      if (!s.isOk()) {
        *used = pos;
        return s;
      }
    }
    *used = pos;
    return Status::ok();
  }
};

SecureSession::SecureSession(Role role, const NodeIdentity& self, std::string psk)
    : impl_(std::make_unique<Impl>(role, self, std::move(psk))) {
  impl_->ephemeral.reset(EVP_PKEY_Q_keygen(nullptr, nullptr, "X25519"));
  if (!impl_->ephemeral) cryptoFailure();
  if (role == Role::kInitiator) {
    impl_->hello1 = impl_->helloFields(kTypeHello1);
    impl_->queueFrame(impl_->hello1);
  }
}

SecureSession::~SecureSession() = default;
SecureSession::SecureSession(SecureSession&&) noexcept = default;
SecureSession& SecureSession::operator=(SecureSession&&) noexcept = default;

std::string SecureSession::takeOutput() {
  std::string out;
  out.swap(impl_->out);
  return out;
}

void SecureSession::appendOutput(std::string* out) {
  out->append(impl_->out);
  impl_->out.clear();
}

bool SecureSession::hasOutput() const {
  return !impl_->out.empty();
}

Status SecureSession::feed(std::string_view bytes, std::vector<std::string>* messages) {
  Impl& s = *impl_;
  if (s.state == Impl::State::kFailed) {
    return Status::failedPrecondition("session failed earlier: " + s.failure.message());
  }
  if (!messages) return Status::invalidArgument("feed: messages must not be null");
  // Frames that arrive whole are read straight from the caller's bytes; only a partial
  // frame is copied, to wait for the rest.
  bool buffered = !s.in.empty();
  if (buffered) s.in.append(bytes);
  std::string_view data = buffered ? std::string_view(s.in) : bytes;
  size_t used = 0;
  Status st = s.consume(data, messages, &used);
  if (!st.isOk()) return s.fail(st);
  if (buffered) {
    s.in.erase(0, used);
  } else {
    s.in.assign(data.substr(used));
  }
  return Status::ok();
}

bool SecureSession::established() const {
  return impl_->state == Impl::State::kEstablished;
}

SecureSession::Role SecureSession::role() const {
  return impl_->role;
}

const std::string& SecureSession::peerId() const {
  return impl_->peer_id;
}

const std::string& SecureSession::peerPublicKey() const {
  return impl_->peer_key;
}

Status SecureSession::send(std::string_view message) {
  Impl& s = *impl_;
  if (s.state == Impl::State::kFailed) {
    return Status::failedPrecondition("session failed earlier: " + s.failure.message());
  }
  if (s.state != Impl::State::kEstablished) {
    return Status::failedPrecondition("send before the secure handshake completed");
  }
  if (message.size() > kMaxMessageBytes) {
    return Status::invalidArgument("message of " + std::to_string(message.size()) +
                                   " bytes exceeds the " + std::to_string(kMaxMessageBytes) +
                                   "-byte limit");
  }
  if (s.sent == std::numeric_limits<uint64_t>::max()) {
    return s.fail(Status::resourceExhausted("send nonce counter exhausted; reconnect"));
  }
  size_t at = s.out.size();
  s.out.resize(at + kLengthBytes + message.size() + kTagBytes);
  char* header = s.out.data() + at;
  putBe32(header, static_cast<uint32_t>(message.size() + kTagBytes));
  s.sender.seal(s.sent, std::string_view(header, kLengthBytes), message,
                reinterpret_cast<unsigned char*>(header + kLengthBytes));
  ++s.sent;
  return Status::ok();
}

std::string sealGroup(std::string_view key, std::string_view aad, std::string_view plaintext) {
  // GCM takes int lengths; a datagram payload is never near that.
  constexpr size_t kIntMax = static_cast<size_t>(std::numeric_limits<int>::max());
  if (key.size() != kGroupKeyBytes || aad.size() > kIntMax || plaintext.size() > kIntMax / 2) {
    return {};
  }
  std::string out = randomBytes(kGroupNonceBytes);
  out.resize(kGroupNonceBytes + plaintext.size() + kGroupTagBytes);
  auto* dst = reinterpret_cast<unsigned char*>(out.data());
  EVP_CIPHER_CTX* ctx = EVP_CIPHER_CTX_new();
  int len = 0;
  bool ok = ctx && EVP_EncryptInit_ex(ctx, aes256Gcm(), nullptr, u8(key), dst) == 1 &&
            EVP_EncryptUpdate(ctx, nullptr, &len, u8(aad), static_cast<int>(aad.size())) == 1 &&
            EVP_EncryptUpdate(ctx, dst + kGroupNonceBytes, &len, u8(plaintext),
                              static_cast<int>(plaintext.size())) == 1 &&
            EVP_EncryptFinal_ex(ctx, dst + kGroupNonceBytes + len, &len) == 1 &&
            EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_GET_TAG, kGroupTagBytes,
                                dst + kGroupNonceBytes + plaintext.size()) == 1;
  EVP_CIPHER_CTX_free(ctx);
  if (!ok) cryptoFailure();
  return out;
}

Result<std::string> openGroup(std::string_view key, std::string_view aad, std::string_view sealed) {
  if (key.size() != kGroupKeyBytes) {
    return Status::invalidArgument("group key of " + std::to_string(key.size()) + " bytes; " +
                                   std::to_string(kGroupKeyBytes) + " expected");
  }
  if (sealed.size() < kGroupNonceBytes + kGroupTagBytes) {
    return Status::invalidArgument(
        "sealed message of " + std::to_string(sealed.size()) + " bytes; at least " +
        std::to_string(kGroupNonceBytes + kGroupTagBytes) + " (nonce and tag) expected");
  }
  if (sealed.size() > static_cast<size_t>(std::numeric_limits<int>::max()) ||
      aad.size() > static_cast<size_t>(std::numeric_limits<int>::max())) {
    return Status::invalidArgument("sealed message or its context over 2 GiB");
  }
  size_t n = sealed.size() - kGroupNonceBytes - kGroupTagBytes;
  std::string plain(n, '\0');
  // The tag is passed by pointer to a non-const API that only reads it.
  auto* tag = const_cast<unsigned char*>(u8(sealed.substr(kGroupNonceBytes + n)));
  EVP_CIPHER_CTX* ctx = EVP_CIPHER_CTX_new();
  int len = 0;
  bool ok = ctx && EVP_DecryptInit_ex(ctx, aes256Gcm(), nullptr, u8(key), u8(sealed)) == 1 &&
            EVP_DecryptUpdate(ctx, nullptr, &len, u8(aad), static_cast<int>(aad.size())) == 1 &&
            EVP_DecryptUpdate(ctx, u8(plain), &len, u8(sealed) + kGroupNonceBytes,
                              static_cast<int>(n)) == 1 &&
            EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_SET_TAG, kGroupTagBytes, tag) == 1 &&
            EVP_DecryptFinal_ex(ctx, u8(plain) + len, &len) == 1;
  EVP_CIPHER_CTX_free(ctx);
  if (!ok) {
    return Status::permissionDenied(
        "sealed message does not authenticate (wrong group key, wrong context, or altered)");
  }
  return plain;
}

std::string randomBytes(size_t n) {
  std::string out(n, '\0');
  if (n > 0 && RAND_bytes(u8(out), static_cast<int>(n)) != 1) cryptoFailure();
  return out;
}

std::string clusterKeyProof(std::string_view cluster_key, std::string_view data) {
  return hmacSha256(cluster_key, "edgecloud datagram proof v1", data);
}

bool checkClusterKeyProof(std::string_view cluster_key, std::string_view data,
                          std::string_view proof) {
  return equalConstantTime(clusterKeyProof(cluster_key, data), proof);
}

}  // namespace edge::identity
