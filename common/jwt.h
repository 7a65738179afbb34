// JSON Web Tokens signed with ES256 (RFC 7515/7519/7518), verified the way RFC 8725 asks:
// one allowed algorithm, the key named by `kid` and nothing else, `typ`, `iss`, `aud` and
// the time claims checked, sizes bounded.
//
// The backend's token service signs with SigningKey; every verifier (the backend's own
// APIs, the node-side sidecar) holds a KeySet built from the JWKS document the backend
// publishes and calls verify(). Keys are parsed once into OpenSSL objects and shared, so
// signing or verifying never parses PEM or JWK text.
//
// Thread-safety: SigningKey and KeySet are immutable values whose copies share the
// parsed key; every const method and the free functions may be called from any thread.
//
// Errors: base64UrlDecode(), SigningKey::fromPem() and KeySet::fromJwks() return
// kInvalidArgument naming what is malformed and where. verify() returns
// kPermissionDenied for every token it refuses, saying what failed ("token expired 42 s
// ago", "audience edge-node not in [edge-backend]", "unknown key id ...", "alg none is not
// allowed"); kInvalidArgument only for VerifyOptions that would check nothing (no issuer
// or no audience).
#pragma once

#include <chrono>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/clock.h"
#include "common/status.h"

namespace edge::jwt {

inline constexpr std::string_view kAlgorithm = "ES256";
inline constexpr std::string_view kAccessTokenType = "at+jwt";  // RFC 9068
inline constexpr size_t kMaxTokenBytes = 8 * 1024;

// Base64url without padding (RFC 7515 section 2). Decoding refuses padding, characters
// outside the alphabet and impossible lengths.
std::string base64UrlEncode(std::string_view bytes);
Result<std::string> base64UrlDecode(std::string_view text);
// Standard base64 with padding (RFC 4648 section 4), for HTTP Basic credentials.
Result<std::string> base64Decode(std::string_view text);

// A P-256 private key that signs ES256 tokens.
class SigningKey {
 public:
  static Result<SigningKey> generate();
  // A PKCS#8 (or SEC1 "EC PRIVATE KEY") PEM holding a P-256 key; other curves and key
  // types are refused by name.
  static Result<SigningKey> fromPem(std::string_view pem);

  // PKCS#8 PEM of the private key.
  std::string toPem() const;
  // The RFC 7638 JWK thumbprint of the public key (base64url SHA-256), used as `kid`.
  const std::string& kid() const { return kid_; }
  // {"kty":"EC","crv":"P-256","x":...,"y":...,"kid":...,"alg":"ES256","use":"sig"}
  nlohmann::json publicJwk() const;

  // A compact JWS: header = `header_fields` (e.g. {"typ":"at+jwt"}) with "alg" and "kid"
  // set by the key (any given values are replaced), payload = `claims`. kInternal only
  // when OpenSSL fails.
  Result<std::string> sign(const nlohmann::json& header_fields, const nlohmann::json& claims) const;

  struct Impl;

 private:
  explicit SigningKey(std::shared_ptr<const Impl> impl);
  std::shared_ptr<const Impl> impl_;
  std::string kid_;
};

// The public keys a verifier trusts, by kid.
class KeySet {
 public:
  KeySet();
  // From a JWKS document ({"keys":[...]}). Keys of another kty, curve, alg or use are
  // skipped (a JWKS may carry keys for other purposes); an EC P-256 signing key that is
  // malformed (no kid, bad x/y, a point not on the curve, a duplicate kid) is an error
  // naming the key's index and the field.
  static Result<KeySet> fromJwks(const nlohmann::json& jwks);
  static Result<KeySet> fromJwksText(std::string_view text);

  // Adds the public half of `key` (the issuer verifying its own tokens).
  void add(const SigningKey& key);

  bool contains(std::string_view kid) const;
  std::vector<std::string> kids() const;
  size_t size() const { return keys_.size(); }

  // The parsed key (opaque outside jwt.cc), nullptr when unknown.
  struct PublicKey;
  std::shared_ptr<const PublicKey> find(std::string_view kid) const;

 private:
  std::map<std::string, std::shared_ptr<const PublicKey>, std::less<>> keys_;
};

struct VerifyOptions {
  std::string issuer;    // `iss` must equal it exactly; required
  std::string audience;  // `aud` (a string or an array) must contain it; required
  // The header's `typ` must equal it (or "application/" + it), case-insensitively; ""
  // skips the check (for tokens of a kind that carries no typ).
  std::string typ = std::string(kAccessTokenType);
  std::chrono::seconds leeway{30};  // clock skew allowed on exp, nbf and iat
  std::optional<WallTime> now;      // unset: the system clock
};

// Verifies `token` and returns its claims (a JSON object). The checks, in order: size,
// form (three base64url parts), header (alg ES256 only, no `crit`, typ, kid known),
// signature over the exact received header.payload bytes, then the claims (iss, aud,
// exp required and not past, nbf and iat not in the future).
Result<nlohmann::json> verify(std::string_view token, const KeySet& keys,
                              const VerifyOptions& options);

// The `scope` claim and OAuth's scope and audience parameters are lists separated by
// spaces (RFC 6749 section 3.3, RFC 9068 section 2.2.3). splitScopes() skips empty items
// (runs of spaces); joinScopes() puts one space between items.
std::vector<std::string> splitScopes(std::string_view scopes);
std::string joinScopes(const std::vector<std::string>& scopes);
// Whether the `scope` claim of `claims` (a string as above, or an array of strings) holds
// `scope`; false when there is none.
bool hasScope(const nlohmann::json& claims, std::string_view scope);

}  // namespace edge::jwt
