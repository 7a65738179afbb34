// Checking the bearer tokens of the gateway's callers.
//
// JwksCache holds the key set of one issuer: fetched through a function the owner
// injects (an HTTP GET of the backend's /.well-known/jwks.json, say), refreshed every
// `refresh_interval` and when a token names a kid the set does not have, but never more
// often than once per `cooldown`, so a flood of tokens with invented kids costs the
// issuer at most one fetch per cooldown. Fetches run on the cache's own thread, one at a
// time (single-flight), never on a caller's. A cache made from a fixed KeySet (a node
// with an account signing key of its own) never fetches.
//
// TokenVerifier checks an Authorization header against a Requirement (issuer, audience,
// account, scopes, the peer node the token must be bound to) and answers with a
// TokenCheck: 200 with the claims, or 401/403 with a one-line reason and the RFC 6750
// WWW-Authenticate value to send. Verifying an ES256 signature costs ~50-100 us, so tokens
// that verified are kept (bounded, until they expire) and a repeated token costs a hash
// lookup; the Requirement is checked against the kept claims on every request.
//
// Non-blocking: check() completes inline on the caller's thread when the token's kid is
// known (the common case) or refused at once. Only a token with an unknown kid, when the
// cooldown allows a refetch, defers `done` until that fetch ends; `done` then runs on
// the JwksCache's thread and must only hand the result over to its owner's loop.
// checkBlocking() is for control-plane callers that may wait.
//
// Thread-safety: every method of both classes may be called from any thread at once.
// Destroying a JwksCache stops its thread; deferred checks still waiting are answered
// with 503 "shutting down".
//
// Statuses in a TokenCheck: 200 ok; 401 no/malformed Authorization header, bad
// signature, expired, wrong iss/aud/typ, unknown kid (after the refetch, or when the
// cooldown forbids one); 403 valid token but wrong account, missing scope, or issued to
// another node; 503 the issuer's keys could not be fetched (nothing to check against);
// 500 a Requirement that checks nothing (no issuer or audience): a gateway bug.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/clock.h"
#include "common/jwt.h"
#include "common/status.h"

namespace edge::gateway {

class JwksCache {
 public:
  // Returns the JWKS document ({"keys":[...]}) as text; called on the cache's thread only.
  using Fetch = std::function<Result<std::string>()>;
  struct Options {
    std::chrono::seconds refresh_interval{300};
    std::chrono::seconds cooldown{30};  // least time between two fetch attempts
  };
  // What a refresh that a caller waited for ended with.
  using RefreshDone = std::function<void(const Status&)>;

  // Starts the thread and the first fetch at once (callers arriving before it ends wait
  // for it as for a kid refresh). `clock` must outlive the cache.
  static std::shared_ptr<JwksCache> create(Fetch fetch, Clock& clock, Options options);
  static std::shared_ptr<JwksCache> create(Fetch fetch, Clock& clock) {
    return create(std::move(fetch), clock, Options{});
  }
  // A fixed key set: no thread, no fetch; unknown kids are refused at once.
  static std::shared_ptr<JwksCache> fixed(jwt::KeySet keys);

  ~JwksCache();
  JwksCache(const JwksCache&) = delete;
  JwksCache& operator=(const JwksCache&) = delete;

  // The current key set (null until the first fetch succeeded). Never blocks; when the
  // periodic refresh is due it is started in the background and the old set is returned.
  std::shared_ptr<const jwt::KeySet> keys();

  // Asks for a refetch because a token named `kid`, which the current set lacks.
  // Returns false (and never calls `done`) when the set is fixed, when the cooldown since
  // the last attempt has not passed (the caller refuses the token), or when `kid` is in
  // the current set after all (a refresh just brought it: the caller checks again).
  // Returns true when `done` will be called, on the cache's thread, once the fetch in
  // flight (joined, or started now) ends, with its Status.
  bool refreshFor(std::string_view kid, RefreshDone done);

  // Fetches now (on the cache's thread; joins a fetch in flight) and waits for the
  // outcome: start-up, tests. Ignores the cooldown. OK at once for a fixed set.
  Status refreshNow();

  std::chrono::seconds cooldown() const;  // 0 for a fixed set
  // The last fetch's error (OK after a success), for status pages.
  Status lastError() const;
  // Fetch attempts so far (tests and metrics).
  uint64_t fetches() const;

  struct Impl;

 private:
  explicit JwksCache(std::shared_ptr<Impl> impl);
  std::shared_ptr<Impl> impl_;
};
using JwksCachePtr = std::shared_ptr<JwksCache>;

// What a route or the peer server demands of the caller's token.
struct Requirement {
  std::string issuer;                  // `iss` must equal it; required
  std::string audience = "edge-node";  // `aud` must contain it; required
  std::string account;                 // `acct` must equal it; "" = any account
  std::vector<std::string> scopes;     // all of them must be in `scope`
  std::string node;                    // `node` must equal it; "" = not bound to a node
  // With `node` set: a token that names no node at all (a user's or an application's,
  // passed on by a peer gateway) passes; one that names another node is still refused.
  bool node_optional = false;
};

// The claims of a token that verified, as the gateway uses them.
struct TokenClaims {
  std::string subject;  // sub: "node:<id>", "client:<id>", "user:<account>/<name>"
  std::string client_id;
  std::vector<std::string> scopes;  // `scope` split on spaces
  std::string account;              // acct ("" when the token has none)
  std::string node;                 // node ("" for tokens not issued to a node)
  std::string issuer;
  std::vector<std::string> audiences;
  std::string kid;
  int64_t expires_at = 0;  // exp, Unix seconds

  bool hasScope(std::string_view scope) const;
};

struct TokenCheck {
  int status = 200;                           // 200, 401, 403, 500 or 503 (see the file comment)
  std::string reason;                         // one line, for the response body and the access log
  std::string www_authenticate;               // for 401/403: the WWW-Authenticate value to send
  std::shared_ptr<const TokenClaims> claims;  // set when status is 200

  bool ok() const { return status == 200; }
};

class TokenVerifier {
 public:
  struct Options {
    std::string realm = "edge";
    std::chrono::seconds leeway{30};            // clock skew allowed on exp/nbf/iat
    size_t cache_entries = 4096;                // verified tokens kept; 0 = no cache
    std::chrono::seconds blocking_timeout{10};  // checkBlocking's wait for a refetch
  };
  using Done = std::function<void(TokenCheck)>;

  // `keys` and `clock` are shared with / must outlive the verifier.
  TokenVerifier(JwksCachePtr keys, Clock& clock, Options options);
  TokenVerifier(JwksCachePtr keys, Clock& clock)
      : TokenVerifier(std::move(keys), clock, Options{}) {}
  ~TokenVerifier();
  TokenVerifier(const TokenVerifier&) = delete;
  TokenVerifier& operator=(const TokenVerifier&) = delete;

  // `authorization` is the Authorization header's value ("" when absent). Calls `done`
  // exactly once: inline, or later on the JwksCache's thread (unknown kid being fetched).
  // Returns true when `done` has already run.
  bool check(std::string_view authorization, const Requirement& requirement, Done done);

  // The same, waiting for a deferred answer (at most blocking_timeout, then 503).
  TokenCheck checkBlocking(std::string_view authorization, const Requirement& requirement);

  // `token` is a bare token (no "Bearer "), for callers that carry it elsewhere (the
  // peer channel's open message).
  TokenCheck checkTokenBlocking(std::string_view token, const Requirement& requirement);

  struct Stats {
    uint64_t cache_hits = 0;
    uint64_t signature_checks = 0;  // full ES256 verifications
    size_t cached = 0;
  };
  Stats stats() const;

  struct Impl;

 private:
  std::shared_ptr<Impl> impl_;
};
using TokenVerifierPtr = std::shared_ptr<TokenVerifier>;

}  // namespace edge::gateway
