// TokenService: the OAuth 2.0 authorization server of edge-backend and the Authenticator
// every backend API uses.
//
// Grants (POST /oauth2/token, RFC 6749):
//   client_credentials  nodes, services, applications, the admin; no refresh token
//                       (RFC 6749 4.4.3: the client can always ask again)
//   password            users of an account, through an application client of that
//                       account: the CLI login of a developer or an end user on a machine
//                       without a browser, where a redirect-based flow cannot run. Issues
//                       an access and a refresh token.
//   refresh_token       rotation: each use returns a new refresh token and spends the old
//                       one; presenting a spent one revokes the whole family (the
//                       session), since either the holder or a thief has a copy.
// Revocation: POST /oauth2/revoke (RFC 7009), for refresh tokens (the family) and access
// tokens (their jti is refused until the token would have expired).
//
// Access tokens: ES256 JWTs, header typ "at+jwt" and kid; claims iss, sub, aud
// (kBackendAudience and/or kNodeAudience, from the `audience`/`resource` parameter), exp,
// iat, jti, client_id, scope, acct (account) and, for nodes, node.
//
// Signing keys live in the Store under "tok/keys", their private halves encrypted with
// AES-256-GCM under the key-encryption key (KEK) so the Store never holds them in clear.
// Rotation: any replica's maintain() (CAS on "tok/keys") adds the next key one
// rotation_lead before it starts signing, so every verifier has it in the JWKS first; a
// key that has been superseded stays published until every token it signed has expired
// (access_ttl + leeway after its successor took over). Each replica caches the decrypted
// keys; signing picks the newest key whose activation time has come, so replicas switch
// at the same instant without talking to each other.
//
// Store keys: "tok/keys" (the key ring), "tok/refresh/<family>" (one record per refresh
// token family: the SHA-256 of its current token, client, subject, scope, expiry,
// revoked; deleted once expired, when presented or by an hourly sweep of maintain()),
// "tok/revoked/<jti>" (revoked access tokens, until their exp).
//
// Thread-safety: every method may be called from any thread at once. Time comes from the
// Clock, so tests drive expiry and rotation with a FakeClock.
//
// Errors: create() returns kInvalidArgument for bad options (a KEK that is not 32 bytes,
// no issuer, a lead not shorter than the period) and Store errors; a KEK that does not
// decrypt the stored keys is kFailedPrecondition naming "tok/keys". token() and revoke()
// answer RFC 6749 5.2 errors; authenticate() kPermissionDenied with the reason.
#pragma once

#include <chrono>
#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "backend/auth.h"
#include "backend/identity.h"
#include "backend/store.h"
#include "common/clock.h"
#include "common/jwt.h"
#include "common/status.h"

namespace edge::backend {

struct TokenOptions {
  std::string issuer;  // "https://backend.example:8443": `iss`, and the base of the endpoints
  std::string kek;     // 32 raw bytes (loadOrCreateKek)
  std::chrono::seconds access_ttl{300};
  std::chrono::seconds refresh_ttl{30 * 24 * 3600};
  std::chrono::seconds leeway{30};
  std::chrono::seconds rotation_period{24 * 3600};
  std::chrono::seconds rotation_lead{3600};
  std::chrono::seconds maintenance_interval{60};  // the background thread's period
  std::chrono::seconds jwks_max_age{300};         // Cache-Control of the JWKS
};

// Reads the 32-byte KEK at `path`, or creates one (mode 0600, written to a temp file and
// linked into place, so two replicas starting together end up with one key). A file of
// another size is kInvalidArgument naming the path; it is never overwritten.
Result<std::string> loadOrCreateKek(const std::string& path);

// A request to the token or revocation endpoint, as the HTTP layer decoded it.
struct OAuthRequest {
  std::multimap<std::string, std::string> params;  // form fields (may repeat)
  bool has_basic = false;                          // HTTP Basic client authentication was sent
  std::string basic_id, basic_secret;
  std::string remote_address;
};

// The reply to send: HTTP status, JSON body (a token response, {} or an RFC 6749 5.2
// error), and whether a 401 needs `WWW-Authenticate: Basic`.
struct OAuthReply {
  int status = 200;
  nlohmann::json body = nlohmann::json::object();
  bool basic_challenge = false;
};

// The client id a request names (Basic user or client_id field), before it is checked:
// what the per-client rate limit counts. "" when none.
std::string oauthClientId(const OAuthRequest& request);

class TokenService : public Authenticator {
 public:
  // Loads the key ring (creating the first key when there is none). Does not start the
  // maintenance thread.
  static Result<std::unique_ptr<TokenService>> create(Store& store, IdentityService& identity,
                                                      TokenOptions options, ClockPtr clock);
  ~TokenService() override;
  TokenService(const TokenService&) = delete;
  TokenService& operator=(const TokenService&) = delete;

  OAuthReply token(const OAuthRequest& request);
  OAuthReply revoke(const OAuthRequest& request);

  // The OpenID Provider metadata (RFC 8414 fields) and the JWKS of every published key.
  nlohmann::json discoveryDocument() const;
  nlohmann::json jwks() const;
  const TokenOptions& options() const { return options_; }

  Result<Caller> authenticate(std::string_view authorization,
                              std::string_view audience = kBackendAudience) override;

  // Rotates keys when due, drops retired ones, reloads the ring and the revoked-token list
  // from the Store. Called every maintenance_interval by the thread startMaintenance()
  // runs, or directly by tests.
  Status maintain();
  void startMaintenance();
  void stopMaintenance();

  // The kid that signs now, and every published kid (oldest activation first).
  std::string signingKid() const;
  std::vector<std::string> publishedKids() const;

 private:
  struct KeyEntry {
    std::string kid;
    int64_t active_from = 0;  // unix seconds: signs from then on
    std::string sealed;       // base64url(nonce || AES-256-GCM(PEM) || tag)
  };
  struct Ring {
    int64_t revision = 0;
    std::vector<KeyEntry> entries;  // by active_from
    std::vector<jwt::SigningKey> keys;
    jwt::KeySet verify_set;
    nlohmann::json jwks;
  };
  struct Grant;  // what a token is issued for

  TokenService(Store& store, IdentityService& identity, TokenOptions options, ClockPtr clock);

  int64_t nowSeconds() const;
  Status rotate(int64_t now);
  Result<std::shared_ptr<const Ring>> buildRing(int64_t revision, std::vector<KeyEntry> entries);
  Status reloadRing();
  Status reloadRevoked(int64_t now);
  Status sweepRefresh(int64_t now);
  std::shared_ptr<const Ring> ring() const;

  Result<std::string> seal(const jwt::SigningKey& key) const;
  Result<jwt::SigningKey> unseal(const KeyEntry& entry) const;

  OAuthReply issue(const Grant& grant, bool with_refresh, const std::string& family,
                   int64_t family_revision);
  OAuthReply clientCredentials(const OAuthRequest& request, const ClientInfo& client);
  OAuthReply password(const OAuthRequest& request, const ClientInfo& client);
  OAuthReply refresh(const OAuthRequest& request, const ClientInfo& client);
  // Marks the refresh family at `key` revoked (kept until it expires, so its holders
  // are told why), retrying lost races.
  Status revokeFamily(const std::string& key, const std::string& reason);
  Result<std::string> signAccessToken(const Grant& grant, int64_t now, std::string* jti);

  Store& store_;
  IdentityService& identity_;
  TokenOptions options_;
  ClockPtr clock_;

  mutable std::mutex mu_;
  std::shared_ptr<const Ring> ring_;                 // under mu_
  std::map<std::string, jwt::SigningKey> unsealed_;  // by kid; under mu_
  std::map<std::string, int64_t> revoked_;           // jti -> exp; under mu_
  SteadyTime last_forced_reload_{};                  // under mu_
  std::optional<SteadyTime> last_sweep_;             // under mu_

  std::mutex thread_mu_;
  std::condition_variable thread_cv_;
  bool thread_stop_ = false;
  std::thread thread_;
};

}  // namespace edge::backend
