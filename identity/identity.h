// The node's identity: an Ed25519 key pair kept in the data dir, and the node id derived
// from its public key (so an id cannot be claimed without the key behind it).
//
// Thread-safety: NodeIdentity is an immutable value; copies share the key and every const
// method may be called from any thread. The free functions are thread-safe.
//
// Errors: loadOrCreate() returns InvalidArgument for a file that is not an Ed25519 PEM
// private key (the file is left as it is), or the errno-derived Status of a failed
// read/write (NotFound for a missing directory, PermissionDenied...); every message names
// the path. fromHex() returns InvalidArgument saying which character is wrong.
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "common/status.h"

namespace edge::identity {

inline constexpr size_t kPublicKeyBytes = 32;
inline constexpr size_t kSignatureBytes = 64;

class NodeIdentity {
 public:
  // Loads the PEM (PKCS#8) private key at `path`, or, when no file is there, creates one:
  // written to a temp file with mode 0600, fsynced, then linked into place. The directory
  // must exist. An existing file is never overwritten, whatever it holds; when two
  // processes create the key at once, both end up with the one that landed first.
  static Result<NodeIdentity> loadOrCreate(const std::string& path);
  // A fresh key held in memory only (tests, benchmarks).
  static Result<NodeIdentity> generate();

  // nodeIdFromPublicKey(publicKey()).
  const std::string& id() const { return id_; }
  // The file the key was loaded from or created in by loadOrCreate(); "" for generate().
  // gateway/node_tls keeps the node's certificate next to it.
  const std::string& keyPath() const { return key_path_; }
  // The raw 32-byte public key.
  const std::string& publicKey() const { return public_key_; }
  // The raw 64-byte Ed25519 signature of `message`.
  std::string sign(std::string_view message) const;
  // The raw 32-byte Ed25519 private key (RFC 8032 seed), for libraries that need the key
  // itself (gateway/node_tls: the TLS certificate key, loaded with
  // EVP_PKEY_new_raw_private_key, much cheaper than decoding PKCS#8). The caller should
  // OPENSSL_cleanse it once loaded.
  std::string privateKeyRaw() const;

 private:
  struct Key;
  explicit NodeIdentity(std::shared_ptr<const Key> key);

  std::shared_ptr<const Key> key_;
  std::string public_key_;
  std::string id_;
  std::string key_path_;
};

// 16 lower-case hex chars: the first 8 bytes of SHA-256(raw public key).
std::string nodeIdFromPublicKey(std::string_view raw_public_key);
// Whether `text` has the form of a node id (16 lower-case hex chars).
bool isNodeId(std::string_view text);

// True only when `signature` is a valid Ed25519 signature of `message` by
// `raw_public_key`. Malformed keys or signatures (any size but 32/64) are simply false.
bool verifySignature(std::string_view raw_public_key, std::string_view message,
                     std::string_view signature);

// Lower-case hex of `bytes`.
std::string toHex(std::string_view bytes);
// Accepts upper- and lower-case digits; an odd length or a non-hex character is an error.
Result<std::string> fromHex(std::string_view hex);

}  // namespace edge::identity
