// Authenticated, encrypted sessions between nodes (one per TCP connection), and sealed
// multicast with a group key. Pure byte-in/byte-out: no sockets, so a non-blocking event
// loop drives it and tests pump two sessions into each other in memory.
//
// The handshake (every message framed as a 4-byte big-endian length + payload, max 4 KiB):
//   1. I -> R  HELLO   {version, type=1, ephemeral X25519 pub, static Ed25519 pub, random16}
//   2. R -> I  HELLO   {version, type=2, ephemeral, static, random16} || sig_R || mac_R
//   3. I -> R  FINISH  {version, type=3} || sig_I || mac_I
// th = SHA-256(hello1 || hello2 without sig_R/mac_R). sig_X is the static key's signature
// over a per-role label || th, so each side proves its key holds for these ephemerals and
// both identities. Keys: HKDF-SHA256(ikm = X25519(ephemerals), salt = th, or
// SHA-256(psk || th) with a cluster key, info = "edgecloud link v1") -> 96 bytes: the
// initiator->responder key, the responder->initiator key, and a confirmation key; mac_X =
// HMAC-SHA256(confirmation key, label || th) proves both sides derived the same keys, so a
// cluster key held by one side only (or differing) fails the handshake with its own error
// rather than as an undecryptable first frame.
//
// Frames after it: 4-byte big-endian length || AES-256-GCM(message) || 16-byte tag, the
// length authenticated as AAD, nonce = 96-bit big-endian count of frames sent in that
// direction. Replayed, reordered, dropped or altered frames fail to authenticate.
//
// Errors (feed/send and openGroup): InvalidArgument for malformed input (sizes, version,
// message type, a frame over the limit); PermissionDenied when cryptography rejects it (a
// signature, MAC or GCM tag that does not verify, a cluster key mismatch), so a caller can
// count "malformed" and "forged" apart; FailedPrecondition for misuse (send before the
// handshake, use after a failure); ResourceExhausted when a nonce counter would wrap. Any
// error from feed() is final: the session is dead and the connection must be closed.
//
// Thread-safety: a SecureSession is not thread-safe (one per connection, one owner). The
// free functions are thread-safe.
//
// A cluster key is used as given: it should be random (32 bytes), not a passphrase, since
// a peer that completes a handshake can test guesses of it offline.
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "identity/identity.h"

namespace edge::identity {

class SecureSession {
 public:
  enum class Role { kInitiator, kResponder };

  static constexpr size_t kMaxMessageBytes = 1 << 20;
  static constexpr size_t kMaxHandshakeBytes = 4 << 10;
  static constexpr unsigned char kVersion = 1;

  // `psk` is the cluster key ("" = none); both sides must hold the same one. The
  // initiator's HELLO is ready in takeOutput() right after construction.
  SecureSession(Role role, const NodeIdentity& self, std::string psk);
  ~SecureSession();
  SecureSession(SecureSession&&) noexcept;
  SecureSession& operator=(SecureSession&&) noexcept;
  SecureSession(const SecureSession&) = delete;
  SecureSession& operator=(const SecureSession&) = delete;

  // Bytes to write to the socket now (handshake messages and sealed frames), in order.
  std::string takeOutput();
  // Same, appended to *out; keeps this session's buffer capacity (no allocation per frame
  // when the caller reuses its write buffer).
  void appendOutput(std::string* out);
  bool hasOutput() const;

  // Feeds bytes read from the socket, in any chunking. Once established, every complete
  // message is appended to *messages (not null). Returns an error on any protocol or
  // cryptographic failure; messages decrypted before the failing frame are still
  // appended. After an error every call fails.
  Status feed(std::string_view bytes, std::vector<std::string>* messages);

  // True once both sides are authenticated: for the initiator when it has verified the
  // responder and queued its FINISH; for the responder when it has verified the FINISH.
  bool established() const;
  Role role() const;
  // Valid once established (empty before): the peer's node id and raw 32-byte static key.
  const std::string& peerId() const;
  const std::string& peerPublicKey() const;

  // Seals `message` into the output. FailedPrecondition before established() or after a
  // failure; InvalidArgument over kMaxMessageBytes (nothing is queued then).
  Status send(std::string_view message);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

inline constexpr size_t kGroupKeyBytes = 32;
inline constexpr size_t kGroupNonceBytes = 12;
inline constexpr size_t kGroupTagBytes = 16;

// Seals a multicast payload with a 32-byte group key (distributed over secure sessions):
// 12-byte random nonce || AES-256-GCM ciphertext || 16-byte tag, `aad` authenticated but
// not included. A key of another size (or a payload over 1 GiB) is a caller bug: the
// result is then "" (which openGroup refuses).
std::string sealGroup(std::string_view key, std::string_view aad, std::string_view plaintext);
// InvalidArgument for a wrong key size or a message too short to be sealed;
// PermissionDenied when it does not authenticate (wrong key, wrong aad, altered).
Result<std::string> openGroup(std::string_view key, std::string_view aad, std::string_view sealed);

// Proof that the sender of a probe or beacon holds the cluster key (when one is
// configured): HMAC-SHA256 over a label and `data` (the sender's id, run nonce and
// sequence number, so a proof cannot be reused with another beacon). 32 bytes.
std::string clusterKeyProof(std::string_view cluster_key, std::string_view data);
// Constant-time comparison with the expected proof.
bool checkClusterKeyProof(std::string_view cluster_key, std::string_view data,
                          std::string_view proof);

// `n` bytes from the CSPRNG.
std::string randomBytes(size_t n);

}  // namespace edge::identity
