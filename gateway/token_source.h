// Where the gateway gets the tokens it attaches to outgoing calls.
//
// TokenSource is the interface the data path uses: cached() is the synchronous fast path
// (a token valid now, or nullopt), token() the non-blocking one (answers inline when it
// can, else later from the source's thread), get() the blocking one for control-plane
// callers. A token is asked for by scope set; order and duplicates do not matter.
//
// CachedTokenSource wraps a fetch function (in edged, the node token its backend client
// holds): one cached token per scope set, renewed in the background ahead of its
// expiry (at 80% of its lifetime or 30 s before it expires, whichever comes first, and
// never before half of it), so requests rarely wait. One fetch per scope set at a time
// (single-flight); every caller waiting for it gets its answer. A failed fetch is retried
// with exponential back-off (jittered, 1 s up to 60 s by default) while the last good
// token is served as long as it is valid; a caller that has no valid token during the
// back-off gets the last error at once, not another fetch.
//
// LocalAccountSigner is the TokenSource of a node without a token service: it signs
// at+jwt tokens itself with an account signing key (ES256, a PEM file every node of the
// account shares, like a cluster key) carrying the claims edge-backend's token service
// puts in its tokens, and gives the KeySet that verifies them.
//
// Thread-safety: every method may be called from any thread at once. `done` callbacks run
// either inline or on the source's own thread; they must not block (hand the result to
// the caller's loop). Destroying a CachedTokenSource stops its thread and answers the
// callers still waiting with kCancelled.
//
// Errors: kInvalidArgument for a bad scope name or options (the message names it); a
// fetch's own Status, prefixed with what was being fetched ("token for scopes [a b]: ...");
// kUnavailable "... retrying in N s" during back-off; kDeadlineExceeded when get() waited
// too long; kCancelled at shutdown. LocalAccountSigner::open: kInvalidArgument for a key
// file that is not a P-256 PEM, kPermissionDenied for one readable by group or others,
// file-system errors naming the path.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/clock.h"
#include "common/jwt.h"
#include "common/status.h"

namespace edge::gateway {

using Scopes = std::vector<std::string>;

class TokenSource {
 public:
  using Done = std::function<void(Result<std::string>)>;
  virtual ~TokenSource() = default;

  // A token for `scopes` that is valid now, without waiting or fetching on this thread
  // (a renewal may be started in the background). nullopt: none is; use token() or get().
  virtual std::optional<std::string> cached(const Scopes& scopes) = 0;
  // Calls `done` exactly once, inline when a token is at hand or the answer is an
  // immediate error, else on the source's thread. Returns true when `done` already ran.
  virtual bool token(const Scopes& scopes, Done done) = 0;
  // Blocks until a token or an error.
  virtual Result<std::string> get(const Scopes& scopes) = 0;
};
using TokenSourcePtr = std::shared_ptr<TokenSource>;

// What the token endpoint answered.
struct IssuedToken {
  std::string access_token;
  std::chrono::seconds expires_in{0};
};

class CachedTokenSource : public TokenSource {
 public:
  // Called on the source's thread only, one call at a time. `scopes` are sorted and
  // unique.
  using Fetch = std::function<Result<IssuedToken>(const Scopes& scopes)>;
  struct Options {
    std::string name = "token";  // what the errors and logs call it ("edge-node token")
    std::chrono::seconds renew_before{30};
    double renew_fraction = 0.8;
    std::chrono::milliseconds min_backoff{1000};
    std::chrono::milliseconds max_backoff{60000};
    std::chrono::seconds get_timeout{15};  // get() waits at most this
  };

  // `clock` must outlive the source.
  CachedTokenSource(Fetch fetch, Clock& clock, Options options);
  CachedTokenSource(Fetch fetch, Clock& clock)
      : CachedTokenSource(std::move(fetch), clock, Options{}) {}
  ~CachedTokenSource() override;
  CachedTokenSource(const CachedTokenSource&) = delete;
  CachedTokenSource& operator=(const CachedTokenSource&) = delete;

  std::optional<std::string> cached(const Scopes& scopes) override;
  bool token(const Scopes& scopes, Done done) override;
  Result<std::string> get(const Scopes& scopes) override;

  // Drops the cached token for `scopes` (the upstream answered invalid_token: revoked, or
  // signed by a key it no longer trusts); the next call fetches.
  void invalidate(const Scopes& scopes);
  // Blocks until no fetch is queued or running (tests, orderly shutdown).
  void waitIdle();

  struct Stats {
    uint64_t fetches = 0;
    uint64_t failures = 0;
  };
  Stats stats() const;

  struct Impl;

 private:
  std::shared_ptr<Impl> impl_;
};

class LocalAccountSigner : public TokenSource {
 public:
  struct Options {
    std::string key_file;  // PEM (PKCS#8 or SEC1) of a P-256 key, mode 0600
    bool create = true;    // make a new key (0600, atomically) when the file is absent
    std::string account;   // acct; the issuer is "edge-account:<account>"
    std::string node_id;   // sub "node:<id>" and node
    std::chrono::seconds ttl{600};
  };

  static Result<std::unique_ptr<LocalAccountSigner>> open(Options options, Clock& clock);
  ~LocalAccountSigner() override;

  static std::string issuerFor(const std::string& account) { return "edge-account:" + account; }
  const std::string& issuer() const { return issuer_; }
  // The public half: for a JwksCache::fixed() of every node of the account.
  jwt::KeySet keySet() const;
  nlohmann::json jwks() const;  // {"keys":[...]}

  // A fresh token (no cache), aud "edge-node".
  Result<std::string> issue(const Scopes& scopes);

  // TokenSource: tokens are cached per scope set and re-signed inline when 80% of their
  // lifetime has passed (signing takes tens of microseconds and no I/O), so cached()
  // returns nullopt only when signing fails and token() always answers inline.
  std::optional<std::string> cached(const Scopes& scopes) override;
  bool token(const Scopes& scopes, Done done) override;
  Result<std::string> get(const Scopes& scopes) override;

  struct Impl;

 private:
  LocalAccountSigner(std::unique_ptr<Impl> impl, std::string issuer);
  std::unique_ptr<Impl> impl_;
  std::string issuer_;
};

// Sorted, duplicate-free scopes, each checked (1-128 printable ASCII characters, no
// space, '"' or '\\': RFC 6749 3.3 scope-token). kInvalidArgument naming the bad one.
Result<Scopes> normalizeScopes(const Scopes& scopes);

}  // namespace edge::gateway
