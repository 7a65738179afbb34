// The gateway's tokens: what a caller sees when its token is refused (status, reason,
// WWW-Authenticate), key rotation and the refetch cooldown of the JWKS cache, the cached
// client_credentials source (renew-ahead, single-flight, back-off, serving the last good
// token) and the local account signer. Time is a FakeClock; nothing sleeps: a test that
// waits for a background fetch waits on a condition the fetch sets.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <time.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <mutex>
#include <thread>

#include "common/fs.h"
#include "common/jwt.h"
#include "gateway/token_source.h"
#include "gateway/token_verifier.h"

namespace edge::gateway {
namespace {

using nlohmann::json;
using namespace std::chrono_literals;

constexpr const char* kIssuer = "http://backend.test";

// A latch-like value a test waits for (the background thread sets it).
template <typename T>
class Waitable {
 public:
  void set(T v) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      value_ = std::move(v);
    }
    cv_.notify_all();
  }
  T wait() {
    std::unique_lock<std::mutex> lock(mu_);
    bool got = cv_.wait_for(lock, 10s, [&] { return value_.has_value(); });
    EXPECT_TRUE(got) << "the background answer never came";
    return got ? *value_ : T{};
  }
  bool has() {
    std::lock_guard<std::mutex> lock(mu_);
    return value_.has_value();
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::optional<T> value_;
};

jwt::SigningKey newKey() {
  auto k = jwt::SigningKey::generate();
  EXPECT_TRUE(k.isOk());
  return *k;
}

std::string jwksOf(std::initializer_list<const jwt::SigningKey*> keys) {
  json arr = json::array();
  for (auto* k : keys) arr.push_back(k->publicJwk());
  return json{{"keys", arr}}.dump();
}

class Tokens : public ::testing::Test {
 protected:
  int64_t now() const {
    return std::chrono::duration_cast<std::chrono::seconds>(clock_.wallNow().time_since_epoch())
        .count();
  }

  // The claims edge-backend's token service puts in a node's token.
  json nodeClaims(const std::string& node = "node-a", const std::string& acct = "acme",
                  const std::string& scope = "svc.read svc.write") {
    return {
        {"iss", kIssuer}, {"sub", "node:" + node}, {"aud", "edge-node"},       {"exp", now() + 600},
        {"iat", now()},   {"jti", "j1"},           {"client_id", "c-" + node}, {"scope", scope},
        {"acct", acct},   {"node", node}};
  }

  std::string sign(const jwt::SigningKey& key, const json& claims) {
    auto t = key.sign({{"typ", "at+jwt"}}, claims);
    EXPECT_TRUE(t.isOk()) << t.status().toString();
    return *t;
  }

  Requirement req(std::vector<std::string> scopes = {}, std::string node = "") {
    Requirement r;
    r.issuer = kIssuer;
    r.audience = "edge-node";
    r.account = "acme";
    r.scopes = std::move(scopes);
    r.node = std::move(node);
    return r;
  }

  TokenCheck checkInline(TokenVerifier& v, const std::string& auth, const Requirement& r) {
    TokenCheck out;
    bool inline_done = v.check(auth, r, [&](TokenCheck c) { out = std::move(c); });
    EXPECT_TRUE(inline_done) << "expected an answer on the caller's thread";
    return out;
  }

  FakeClock clock_;
  jwt::SigningKey key_a_ = newKey();
};

// --- refusals, each as the caller sees it ---

TEST_F(Tokens, AValidTokenPassesWithItsClaims) {
  jwt::KeySet ks;
  ks.add(key_a_);
  TokenVerifier v(JwksCache::fixed(ks), clock_);
  auto c = checkInline(v, "Bearer " + sign(key_a_, nodeClaims()), req({"svc.read"}, "node-a"));
  ASSERT_TRUE(c.ok()) << c.status << " " << c.reason;
  EXPECT_EQ(c.claims->subject, "node:node-a");
  EXPECT_EQ(c.claims->client_id, "c-node-a");
  EXPECT_EQ(c.claims->node, "node-a");
  EXPECT_EQ(c.claims->account, "acme");
  EXPECT_EQ(c.claims->scopes, (std::vector<std::string>{"svc.read", "svc.write"}));
  EXPECT_TRUE(c.www_authenticate.empty());
  // The scheme is case-insensitive (RFC 7235).
  EXPECT_TRUE(checkInline(v, "bearer  " + sign(key_a_, nodeClaims()), req()).ok());
}

TEST_F(Tokens, EveryRefusalHasItsStatusReasonAndChallenge) {
  jwt::KeySet ks;
  ks.add(key_a_);
  TokenVerifier v(JwksCache::fixed(ks), clock_);
  auto good = sign(key_a_, nodeClaims());

  struct Case {
    std::string name;
    std::string auth;
    Requirement r;
    int status;
    std::string reason_part;
    std::string challenge_part;
  };
  json wrong_iss = nodeClaims();
  wrong_iss["iss"] = "http://evil.test";
  json wrong_aud = nodeClaims();
  wrong_aud["aud"] = "edge-backend";
  json expired = nodeClaims();
  expired["exp"] = now() - 120;
  jwt::SigningKey other = newKey();
  // A token whose payload was changed after signing.
  std::string tampered = good;
  {
    size_t d1 = tampered.find('.'), d2 = tampered.find('.', d1 + 1);
    json claims = nodeClaims();
    claims["scope"] = "admin";
    tampered =
        tampered.substr(0, d1 + 1) + jwt::base64UrlEncode(claims.dump()) + tampered.substr(d2);
  }
  std::vector<Case> cases = {
      {"missing header", "", req(), 401, "no Authorization header", "Bearer realm=\"edge\""},
      {"other scheme", "Basic dXNlcjpwdw==", req(), 401, "scheme Basic",
       "error=\"invalid_request\""},
      {"bearer without token", "Bearer ", req(), 401, "carries no token",
       "error=\"invalid_request\""},
      {"not a JWT", "Bearer abc", req(), 401, "not a compact JWS", "error=\"invalid_token\""},
      {"bad signature", "Bearer " + tampered, req(), 401, "signature does not verify",
       "error=\"invalid_token\""},
      {"expired", "Bearer " + sign(key_a_, expired), req(), 401, "token expired 120 s ago",
       "error=\"invalid_token\""},
      {"wrong issuer", "Bearer " + sign(key_a_, wrong_iss), req(), 401,
       "issuer http://evil.test is not http://backend.test", "invalid_token"},
      {"wrong audience", "Bearer " + sign(key_a_, wrong_aud), req(), 401,
       "audience edge-node not in [edge-backend]", "invalid_token"},
      {"unknown key", "Bearer " + sign(other, nodeClaims()), req(), 401,
       "unknown key id " + other.kid(), "invalid_token"},
      {"another account", "Bearer " + sign(key_a_, nodeClaims("node-a", "globex")), req(), 403,
       "the token is of account globex; this gateway serves account acme",
       "error=\"insufficient_scope\""},
      {"missing scope", "Bearer " + good, req({"svc.read", "svc.admin"}), 403,
       "lacks scope svc.admin", "scope=\"svc.read svc.admin\""},
      {"another node", "Bearer " + good, req({}, "node-b"), 403,
       "issued to node node-a, but the request comes from node node-b",
       "error=\"insufficient_scope\""},
  };
  for (const auto& tc : cases) {
    SCOPED_TRACE(tc.name);
    auto c = checkInline(v, tc.auth, tc.r);
    EXPECT_EQ(c.status, tc.status) << c.reason;
    EXPECT_NE(c.reason.find(tc.reason_part), std::string::npos) << c.reason;
    EXPECT_NE(c.www_authenticate.find(tc.challenge_part), std::string::npos) << c.www_authenticate;
    EXPECT_EQ(c.www_authenticate.rfind("Bearer realm=\"edge\"", 0), 0u) << c.www_authenticate;
    EXPECT_EQ(c.reason.find('\n'), std::string::npos);
    EXPECT_FALSE(c.claims);
  }
  // A missing header carries no error code (RFC 6750 3.1).
  EXPECT_EQ(checkInline(v, "", req()).www_authenticate, "Bearer realm=\"edge\"");
}

TEST_F(Tokens, APeerMayPassOnTokensOfNoNodeButNotAnotherNodes) {
  jwt::KeySet ks;
  ks.add(key_a_);
  TokenVerifier v(JwksCache::fixed(ks), clock_);
  json user = nodeClaims();
  user.erase("node");
  user["sub"] = "user:acme/ann";
  Requirement from_peer = req({}, "node-b");
  from_peer.node_optional = true;
  EXPECT_TRUE(checkInline(v, "Bearer " + sign(key_a_, user), from_peer).ok());
  EXPECT_TRUE(checkInline(v, "Bearer " + sign(key_a_, nodeClaims("node-b")), from_peer).ok());
  auto c = checkInline(v, "Bearer " + sign(key_a_, nodeClaims("node-a")), from_peer);
  EXPECT_EQ(c.status, 403);
  EXPECT_NE(c.reason.find("issued to node node-a"), std::string::npos) << c.reason;
  // Strict binding (the peer channel): a token of no node is refused too.
  c = checkInline(v, "Bearer " + sign(key_a_, user), req({}, "node-b"));
  EXPECT_EQ(c.status, 403);
  EXPECT_NE(c.reason.find("not issued to a node"), std::string::npos) << c.reason;
}

TEST_F(Tokens, ReasonsCannotBreakTheChallengeHeader) {
  jwt::KeySet ks;
  ks.add(key_a_);
  TokenVerifier v(JwksCache::fixed(ks), clock_);
  json claims = nodeClaims();
  claims["iss"] = "x\"\r\nSet-Cookie: a=b\\";
  auto c = checkInline(v, "Bearer " + sign(key_a_, claims), req());
  EXPECT_EQ(c.status, 401);
  for (char ch : c.www_authenticate) {
    EXPECT_GE(static_cast<unsigned char>(ch), 0x20);
    EXPECT_NE(ch, '\\');
  }
  // Only the quotes the header itself puts.
  auto desc = c.www_authenticate.substr(c.www_authenticate.find("error_description=\"") + 19);
  EXPECT_EQ(desc.find('"'), desc.size() - 1) << c.www_authenticate;
}

TEST_F(Tokens, ARequirementThatChecksNothingIsAGatewayBug) {
  TokenVerifier v(JwksCache::fixed(jwt::KeySet()), clock_);
  Requirement r;
  r.issuer = "";
  auto c = checkInline(v, "Bearer x.y.z", r);
  EXPECT_EQ(c.status, 500);
  EXPECT_NE(c.reason.find("names no issuer"), std::string::npos);
}

TEST_F(Tokens, RepeatedTokensSkipTheSignatureButNotTheRequirementOrExpiry) {
  jwt::KeySet ks;
  ks.add(key_a_);
  TokenVerifier v(JwksCache::fixed(ks), clock_);
  json claims = nodeClaims();
  claims["exp"] = now() + 60;
  auto auth = "Bearer " + sign(key_a_, claims);
  EXPECT_TRUE(checkInline(v, auth, req()).ok());
  EXPECT_TRUE(checkInline(v, auth, req({"svc.read"})).ok());
  EXPECT_EQ(checkInline(v, auth, req({"svc.admin"})).status, 403);
  EXPECT_EQ(checkInline(v, auth, req({}, "node-b")).status, 403);
  auto other_iss = req();
  other_iss.issuer = "http://other.test";
  EXPECT_EQ(checkInline(v, auth, other_iss).status, 401);
  EXPECT_EQ(v.stats().signature_checks, 1u);
  EXPECT_EQ(v.stats().cache_hits, 4u);
  // Past exp + leeway the cached claims no longer count.
  clock_.advance(60s + 30s);
  auto c = checkInline(v, auth, req());
  EXPECT_EQ(c.status, 401);
  EXPECT_NE(c.reason.find("expired"), std::string::npos) << c.reason;
}

TEST_F(Tokens, TheVerifiedTokenCacheIsBounded) {
  jwt::KeySet ks;
  ks.add(key_a_);
  TokenVerifier::Options o;
  o.cache_entries = 16;
  TokenVerifier v(JwksCache::fixed(ks), clock_, o);
  for (int i = 0; i < 100; ++i) {
    json claims = nodeClaims();
    claims["jti"] = "j" + std::to_string(i);
    EXPECT_TRUE(checkInline(v, "Bearer " + sign(key_a_, claims), req()).ok());
    EXPECT_LE(v.stats().cached, 16u);
  }
}

// --- the JWKS cache ---

// A JWKS endpoint the test controls.
struct FakeIssuer {
  std::mutex mu;
  std::string jwks;
  Status error;
  int calls = 0;
  JwksCache::Fetch fetch() {
    return [this]() -> Result<std::string> {
      std::lock_guard<std::mutex> lock(mu);
      ++calls;
      if (!error.isOk()) return error;
      return jwks;
    };
  }
  void set(std::string j, Status e = Status::ok()) {
    std::lock_guard<std::mutex> lock(mu);
    jwks = std::move(j);
    error = std::move(e);
  }
};

TEST_F(Tokens, KidRotationRefetchesAndTheTokenPasses) {
  FakeIssuer issuer;
  issuer.set(jwksOf({&key_a_}));
  auto cache = JwksCache::create(issuer.fetch(), clock_);
  ASSERT_TRUE(cache->refreshNow().isOk());
  uint64_t fetched = cache->fetches();
  TokenVerifier v(cache, clock_);
  EXPECT_TRUE(checkInline(v, "Bearer " + sign(key_a_, nodeClaims()), req()).ok());

  // The issuer rotates to key B; a token signed by B arrives before our periodic refresh
  // (and after the cooldown since the last fetch).
  clock_.advance(31s);
  jwt::SigningKey key_b = newKey();
  issuer.set(jwksOf({&key_a_, &key_b}));
  Waitable<TokenCheck> answer;
  bool inline_done = v.check("Bearer " + sign(key_b, nodeClaims()), req(),
                             [&](TokenCheck c) { answer.set(std::move(c)); });
  EXPECT_FALSE(inline_done) << "an unknown kid waits for the refetch";
  auto c = answer.wait();
  EXPECT_TRUE(c.ok()) << c.status << " " << c.reason;
  EXPECT_EQ(cache->fetches(), fetched + 1);
}

TEST_F(Tokens, CooldownRefusesASecondRefetchAndInventedKidsDoNotHammerTheIssuer) {
  FakeIssuer issuer;
  issuer.set(jwksOf({&key_a_}));
  auto cache = JwksCache::create(issuer.fetch(), clock_);
  ASSERT_TRUE(cache->refreshNow().isOk());
  TokenVerifier v(cache, clock_);
  uint64_t base = cache->fetches();
  clock_.advance(31s);

  // The first unknown kid after the cooldown refetches; the kid is still unknown.
  jwt::SigningKey invented = newKey();
  Waitable<TokenCheck> first;
  EXPECT_FALSE(v.check("Bearer " + sign(invented, nodeClaims()), req(),
                       [&](TokenCheck c) { first.set(std::move(c)); }));
  auto c = first.wait();
  EXPECT_EQ(c.status, 401);
  EXPECT_NE(c.reason.find("even after refetching"), std::string::npos) << c.reason;
  EXPECT_EQ(cache->fetches(), base + 1);

  // Within the cooldown, a flood of invented kids from 8 threads is refused at once.
  std::vector<std::thread> threads;
  std::atomic<int> refused{0};
  for (int t = 0; t < 8; ++t)
    threads.emplace_back([&] {
      for (int i = 0; i < 20; ++i) {
        jwt::SigningKey k = newKey();
        TokenCheck got;
        bool done = v.check("Bearer " + sign(k, nodeClaims()), req(),
                            [&](TokenCheck r) { got = std::move(r); });
        if (done && got.status == 401 &&
            got.reason.find("refetched at most every 30 s") != std::string::npos)
          ++refused;
      }
    });
  for (auto& t : threads) t.join();
  EXPECT_EQ(refused.load(), 160);
  EXPECT_EQ(cache->fetches(), base + 1);

  // Once the cooldown has passed, one refetch again.
  clock_.advance(30s);
  Waitable<TokenCheck> later;
  EXPECT_FALSE(v.check("Bearer " + sign(invented, nodeClaims()), req(),
                       [&](TokenCheck r) { later.set(std::move(r)); }));
  EXPECT_EQ(later.wait().status, 401);
  EXPECT_EQ(cache->fetches(), base + 2);
}

TEST_F(Tokens, ConcurrentUnknownKidsShareOneFetch) {
  // The issuer's answer is held back until every caller has asked.
  std::mutex gate_mu;
  std::condition_variable gate_cv;
  bool open = false;
  jwt::SigningKey key_b = newKey();
  std::atomic<int> calls{0};
  auto cache = JwksCache::create(
      [&]() -> Result<std::string> {
        ++calls;
        std::unique_lock<std::mutex> lock(gate_mu);
        gate_cv.wait(lock, [&] { return open; });
        return jwksOf({&key_a_, &key_b});
      },
      clock_);
  TokenVerifier v(cache, clock_);
  // The first fetch (started by create()) is the one everyone joins.
  std::mutex mu;
  std::condition_variable cv;
  int answered = 0, ok = 0;
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t)
    threads.emplace_back([&, t] {
      auto token = sign(t % 2 ? key_b : key_a_, nodeClaims());
      bool done = v.check("Bearer " + token, req(), [&](TokenCheck c) {
        std::lock_guard<std::mutex> lock(mu);
        ++answered;
        ok += c.ok();
        cv.notify_all();
      });
      EXPECT_FALSE(done);
    });
  for (auto& t : threads) t.join();
  {
    std::lock_guard<std::mutex> lock(gate_mu);
    open = true;
  }
  gate_cv.notify_all();
  std::unique_lock<std::mutex> lock(mu);
  ASSERT_TRUE(cv.wait_for(lock, 10s, [&] { return answered == 8; }));
  EXPECT_EQ(ok, 8);
  EXPECT_EQ(calls.load(), 1);
}

TEST_F(Tokens, KeysThatCannotBeFetchedAre503NotAnInvalidToken) {
  FakeIssuer issuer;
  issuer.set("", Status::unavailable("backend 198.18.0.1:8080: connection refused"));
  auto cache = JwksCache::create(issuer.fetch(), clock_);
  EXPECT_EQ(cache->refreshNow().code(), StatusCode::kUnavailable);
  TokenVerifier v(cache, clock_);
  auto c = checkInline(v, "Bearer " + sign(key_a_, nodeClaims()), req());
  EXPECT_EQ(c.status, 503);
  EXPECT_NE(c.reason.find("connection refused"), std::string::npos) << c.reason;
  EXPECT_TRUE(c.www_authenticate.empty());

  // The issuer comes back; after the cooldown the next token refetches and passes.
  issuer.set(jwksOf({&key_a_}));
  clock_.advance(30s);
  EXPECT_TRUE(v.checkBlocking("Bearer " + sign(key_a_, nodeClaims()), req()).ok());
  EXPECT_TRUE(cache->lastError().isOk());
}

TEST_F(Tokens, AMalformedJwksKeepsTheOldKeys) {
  FakeIssuer issuer;
  issuer.set(jwksOf({&key_a_}));
  auto cache = JwksCache::create(issuer.fetch(), clock_);
  ASSERT_TRUE(cache->refreshNow().isOk());
  issuer.set("{\"keys\": 7}");
  Status s = cache->refreshNow();
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("the issuer's JWKS"), std::string::npos) << s.message();
  TokenVerifier v(cache, clock_);
  EXPECT_TRUE(checkInline(v, "Bearer " + sign(key_a_, nodeClaims()), req()).ok());
}

TEST_F(Tokens, PeriodicRefreshStartsInTheBackgroundWhenDue) {
  FakeIssuer issuer;
  issuer.set(jwksOf({&key_a_}));
  JwksCache::Options o;
  o.refresh_interval = 300s;
  auto cache = JwksCache::create(issuer.fetch(), clock_, o);
  ASSERT_TRUE(cache->refreshNow().isOk());
  uint64_t base = cache->fetches();
  clock_.advance(299s);
  EXPECT_TRUE(cache->keys());
  EXPECT_EQ(cache->fetches(), base);
  // The key rotated away: the periodic refresh drops it and its cached tokens with it.
  jwt::SigningKey key_b = newKey();
  issuer.set(jwksOf({&key_b}));
  TokenVerifier v(cache, clock_);
  auto token = "Bearer " + sign(key_a_, nodeClaims());
  EXPECT_TRUE(checkInline(v, token, req()).ok());
  clock_.advance(2s);
  EXPECT_TRUE(cache->keys()->contains(key_a_.kid()));  // the old set, while fetching
  ASSERT_TRUE(cache->refreshNow().isOk());             // waits for that fetch (and one more)
  EXPECT_GE(cache->fetches(), base + 1);
  EXPECT_FALSE(cache->keys()->contains(key_a_.kid()));
  auto c = v.checkBlocking(token, req());
  EXPECT_EQ(c.status, 401);
  EXPECT_NE(c.reason.find("unknown key id"), std::string::npos) << c.reason;
}

// --- the cached token source ---

struct FakeTokenEndpoint {
  std::mutex mu;
  std::condition_variable cv;
  int calls = 0;
  Status error;
  std::chrono::seconds ttl{100};
  bool hold = false;  // fetches wait until released
  std::vector<Scopes> asked;

  CachedTokenSource::Fetch fetch() {
    return [this](const Scopes& scopes) -> Result<IssuedToken> {
      std::unique_lock<std::mutex> lock(mu);
      ++calls;
      asked.push_back(scopes);
      cv.notify_all();
      cv.wait(lock, [&] { return !hold; });
      if (!error.isOk()) return error;
      return IssuedToken{"tok-" + std::to_string(calls), ttl};
    };
  }
  void release() {
    std::lock_guard<std::mutex> lock(mu);
    hold = false;
    cv.notify_all();
  }
  void failWith(Status s) {
    std::lock_guard<std::mutex> lock(mu);
    error = std::move(s);
  }
  int count() {
    std::lock_guard<std::mutex> lock(mu);
    return calls;
  }
};

TEST_F(Tokens, SourceFetchesOncePerScopeSetWhateverTheOrder) {
  FakeTokenEndpoint ep;
  CachedTokenSource src(ep.fetch(), clock_);
  EXPECT_EQ(src.cached({"b", "a"}), std::nullopt);  // starts the fetch in the background
  auto t = src.get({"a", "b", "a"});
  ASSERT_TRUE(t.isOk()) << t.status().toString();
  EXPECT_EQ(*t, "tok-1");
  EXPECT_EQ(src.cached({"b", "a"}), "tok-1");
  EXPECT_EQ(ep.count(), 1);
  EXPECT_EQ(ep.asked[0], (Scopes{"a", "b"}));
  // Another scope set is another token.
  EXPECT_EQ(*src.get({"c"}), "tok-2");
  // A bad scope is refused by name, without a fetch.
  auto bad = src.get({"a b"});
  EXPECT_EQ(bad.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(bad.status().message().find("scope 0"), std::string::npos);
  EXPECT_EQ(ep.count(), 2);
}

TEST_F(Tokens, SourceRenewsAheadOfExpiryWithoutMakingCallersWait) {
  FakeTokenEndpoint ep;
  ep.ttl = 100s;  // renew at min(80 s, 100 - 30 s) = 70 s
  CachedTokenSource src(ep.fetch(), clock_);
  ASSERT_EQ(*src.get({"s"}), "tok-1");
  clock_.advance(69s);
  EXPECT_EQ(src.cached({"s"}), "tok-1");
  src.waitIdle();
  EXPECT_EQ(ep.count(), 1);

  clock_.advance(2s);
  // 8 threads ask at once: all are served the current token inline; one renewal runs.
  std::vector<std::thread> threads;
  std::atomic<int> served{0};
  for (int t = 0; t < 8; ++t)
    threads.emplace_back([&] {
      for (int i = 0; i < 50; ++i) {
        auto got = src.cached({"s"});
        served += got.has_value();
        bool inline_done = src.token({"s"}, [&](Result<std::string> r) { EXPECT_TRUE(r.isOk()); });
        EXPECT_TRUE(inline_done);
      }
    });
  for (auto& t : threads) t.join();
  EXPECT_EQ(served.load(), 400);
  src.waitIdle();
  EXPECT_EQ(ep.count(), 2);
  EXPECT_EQ(src.cached({"s"}), "tok-2");
}

TEST_F(Tokens, SourceIsSingleFlightUnder8Threads) {
  FakeTokenEndpoint ep;
  ep.hold = true;
  CachedTokenSource src(ep.fetch(), clock_);
  std::mutex mu;
  std::condition_variable cv;
  std::vector<std::string> got;
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t)
    threads.emplace_back([&] {
      bool inline_done = src.token({"x", "y"}, [&](Result<std::string> r) {
        std::lock_guard<std::mutex> lock(mu);
        got.push_back(r.isOk() ? *r : r.status().toString());
        cv.notify_all();
      });
      EXPECT_FALSE(inline_done);
    });
  for (auto& t : threads) t.join();
  // A blocking caller joins the same fetch too.
  Waitable<std::string> blocking;
  std::thread b([&] { blocking.set(src.get({"y", "x"}).valueOr("error")); });
  ep.release();
  b.join();
  EXPECT_EQ(blocking.wait(), "tok-1");
  std::unique_lock<std::mutex> lock(mu);
  ASSERT_TRUE(cv.wait_for(lock, 10s, [&] { return got.size() == 8; }));
  for (const auto& g : got) EXPECT_EQ(g, "tok-1");
  EXPECT_EQ(ep.count(), 1);
}

TEST_F(Tokens, AFailedRenewalKeepsTheLastGoodTokenUntilItExpires) {
  FakeTokenEndpoint ep;
  ep.ttl = 100s;
  CachedTokenSource::Options o;
  o.name = "edge-node token";
  CachedTokenSource src(ep.fetch(), clock_, o);
  ASSERT_EQ(*src.get({"s"}), "tok-1");
  ep.failWith(
      Status::unavailable("backend 198.18.0.1:8080 POST /oauth2/token: connection refused"));

  clock_.advance(71s);
  EXPECT_EQ(src.cached({"s"}), "tok-1");  // renewal starts, fails in the background
  src.waitIdle();
  EXPECT_EQ(ep.count(), 2);
  EXPECT_EQ(src.stats().failures, 1u);
  // Backing off (at least half the 1 s minimum): no new fetch, the old token served.
  clock_.advance(400ms);
  EXPECT_EQ(src.cached({"s"}), "tok-1");
  EXPECT_EQ(*src.get({"s"}), "tok-1");
  src.waitIdle();
  EXPECT_EQ(ep.count(), 2);

  // Past its expiry the old token is gone; the caller gets the error that says why.
  clock_.advance(29s);
  auto r = src.get({"s"});
  ASSERT_FALSE(r.isOk());
  EXPECT_EQ(r.status().code(), StatusCode::kUnavailable);
  EXPECT_NE(r.status().message().find("edge-node token for scopes [s]"), std::string::npos)
      << r.status().message();
  EXPECT_NE(r.status().message().find("connection refused"), std::string::npos);
  EXPECT_NE(r.status().message().find("retrying in"), std::string::npos);
  int after = ep.count();
  // During the back-off a caller gets the error at once, without another fetch.
  TokenSource::Done done = [](Result<std::string> res) { EXPECT_FALSE(res.isOk()); };
  EXPECT_TRUE(src.token({"s"}, done));
  EXPECT_EQ(ep.count(), after);

  // The endpoint recovers: after the back-off the next call gets a fresh token.
  ep.failWith(Status::ok());
  clock_.advance(120s);
  auto fresh = src.get({"s"});
  ASSERT_TRUE(fresh.isOk()) << fresh.status().toString();
  EXPECT_NE(*fresh, "tok-1");
}

TEST_F(Tokens, SourceRefusesAnswersWithoutATokenOrLifetime) {
  FakeTokenEndpoint ep;
  ep.ttl = 0s;
  CachedTokenSource src(ep.fetch(), clock_);
  auto r = src.get({"s"});
  ASSERT_FALSE(r.isOk());
  EXPECT_NE(r.status().message().find("expires_in 0"), std::string::npos) << r.status().message();
}

TEST_F(Tokens, InvalidateFetchesAgain) {
  FakeTokenEndpoint ep;
  CachedTokenSource src(ep.fetch(), clock_);
  ASSERT_EQ(*src.get({"s"}), "tok-1");
  src.invalidate({"s"});
  EXPECT_EQ(*src.get({"s"}), "tok-2");
}

TEST_F(Tokens, ShutdownAnswersWaitingCallers) {
  FakeTokenEndpoint ep;
  ep.hold = true;
  Waitable<Status> answer;
  {
    CachedTokenSource src(ep.fetch(), clock_);
    EXPECT_FALSE(src.token({"s"}, [&](Result<std::string> r) { answer.set(r.status()); }));
    {
      std::unique_lock<std::mutex> lock(ep.mu);
      ep.cv.wait(lock, [&] { return ep.calls == 1; });
    }
    ep.release();  // the fetch in flight finishes; the destructor then stops the thread
  }
  EXPECT_TRUE(answer.has());
}

// --- the local account signer ---

class Signer : public Tokens {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/g3-tokens-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  Result<std::unique_ptr<LocalAccountSigner>> open(const std::string& file,
                                                   const std::string& node = "node-a",
                                                   bool create = true) {
    LocalAccountSigner::Options o;
    o.key_file = dir_ + "/" + file;
    o.account = "acme";
    o.node_id = node;
    o.create = create;
    return LocalAccountSigner::open(o, clock_);
  }

  Requirement localReq(std::vector<std::string> scopes = {}, std::string node = "") {
    Requirement r = req(std::move(scopes), std::move(node));
    r.issuer = LocalAccountSigner::issuerFor("acme");
    return r;
  }

  std::string dir_;
};

TEST_F(Signer, CreatesAPrivateKeyAndItsTokensVerifyOnAnotherNode) {
  auto a = open("account.pem", "node-a");
  ASSERT_TRUE(a.isOk()) << a.status().toString();
  struct stat st {};
  ASSERT_EQ(stat((dir_ + "/account.pem").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  EXPECT_EQ((*a)->issuer(), "edge-account:acme");

  // Node b was given the same key file; it verifies node a's tokens with its key set.
  auto b = open("account.pem", "node-b");
  ASSERT_TRUE(b.isOk());
  EXPECT_EQ((*b)->keySet().kids(), (*a)->keySet().kids());
  TokenVerifier v(JwksCache::fixed((*b)->keySet()), clock_);

  auto t = (*a)->get({"svc.read"});
  ASSERT_TRUE(t.isOk());
  auto c = checkInline(v, "Bearer " + *t, localReq({"svc.read"}, "node-a"));
  ASSERT_TRUE(c.ok()) << c.reason;
  EXPECT_EQ(c.claims->subject, "node:node-a");
  EXPECT_EQ(c.claims->node, "node-a");
  EXPECT_EQ(c.claims->account, "acme");
  EXPECT_EQ(c.claims->audiences, (std::vector<std::string>{"edge-node"}));
  EXPECT_EQ(c.claims->expires_at - now(), 600);
  // Bound to its node: presented as node b's, it is refused.
  EXPECT_EQ(checkInline(v, "Bearer " + *t, localReq({}, "node-b")).status, 403);
  // The JWKS form is the same key.
  auto ks = jwt::KeySet::fromJwks((*a)->jwks());
  ASSERT_TRUE(ks.isOk());
  EXPECT_TRUE(ks->contains((*a)->keySet().kids()[0]));
}

TEST_F(Signer, AnotherKeysTokensAreRefused) {
  auto a = open("account.pem");
  auto other = open("other.pem");
  ASSERT_TRUE(a.isOk() && other.isOk());
  TokenVerifier v(JwksCache::fixed((*a)->keySet()), clock_);
  auto c = checkInline(v, "Bearer " + *(*other)->get({}), localReq());
  EXPECT_EQ(c.status, 401);
  EXPECT_NE(c.reason.find("unknown key id"), std::string::npos) << c.reason;
}

TEST_F(Signer, TokensAreReusedThenResignedBeforeExpiry) {
  auto a = open("account.pem");
  ASSERT_TRUE(a.isOk());
  auto t1 = (*a)->cached({"s"});
  ASSERT_TRUE(t1);
  clock_.advance(470s);
  EXPECT_EQ((*a)->cached({"s"}), t1);
  clock_.advance(20s);  // past 80% of 600 s
  auto t2 = (*a)->cached({"s"});
  ASSERT_TRUE(t2);
  EXPECT_NE(*t2, *t1);
  std::string via_done;
  EXPECT_TRUE((*a)->token({"s"}, [&](Result<std::string> r) { via_done = r.valueOr(""); }));
  EXPECT_EQ(via_done, *t2);
}

TEST_F(Signer, BadKeyFilesAreRefusedWithTheReason) {
  std::string path = dir_ + "/open.pem";
  ASSERT_TRUE(open("open.pem").isOk());
  chmod(path.c_str(), 0644);
  auto r = open("open.pem");
  EXPECT_EQ(r.status().code(), StatusCode::kPermissionDenied);
  EXPECT_NE(r.status().message().find("mode 0644"), std::string::npos) << r.status().message();

  ASSERT_TRUE(fs::writeFileAtomic(dir_ + "/junk.pem", "not a key", 0600).isOk());
  r = open("junk.pem");
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(r.status().message().find("junk.pem"), std::string::npos) << r.status().message();

  r = open("absent.pem", "node-a", /*create=*/false);
  EXPECT_EQ(r.status().code(), StatusCode::kNotFound);

  LocalAccountSigner::Options o;
  o.key_file = dir_ + "/k.pem";
  o.account = "has space";
  o.node_id = "n";
  r = LocalAccountSigner::open(o, clock_);
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(r.status().message().find("account"), std::string::npos);
}

// ES256 verification on every request vs the verified-token cache, same token: the
// figure the brief asks for (printed; not a timed assertion). CPU time of this thread, so
// the other builds on a shared machine do not inflate it.
double threadCpuMicros() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) * 1e6 + static_cast<double>(ts.tv_nsec) / 1e3;
}

TEST_F(Tokens, MeasureVerifiedTokenCache) {
  jwt::KeySet ks;
  ks.add(key_a_);
  auto auth = "Bearer " + sign(key_a_, nodeClaims());
  auto run = [&](size_t entries, int n) {
    TokenVerifier::Options o;
    o.cache_entries = entries;
    TokenVerifier v(JwksCache::fixed(ks), clock_, o);
    auto r = req({"svc.read"}, "node-a");
    double start = threadCpuMicros();
    int ok = 0;
    for (int i = 0; i < n; ++i) v.check(auth, r, [&](TokenCheck c) { ok += c.ok(); });
    double us = threadCpuMicros() - start;
    EXPECT_EQ(ok, n);
    return us / n;
  };
  double uncached = run(0, 500);
  double cached = run(4096, 50000);
  std::cout << "token check (CPU per check): " << uncached
            << " us with an ES256 verification each time, " << cached
            << " us from the verified-token cache, ratio " << uncached / cached << "\n";
}

}  // namespace
}  // namespace edge::gateway
