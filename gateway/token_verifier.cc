#include "gateway/token_verifier.h"

#include <algorithm>
#include <atomic>
#include <cctype>
#include <condition_variable>
#include <mutex>
#include <optional>
#include <thread>
#include <unordered_map>

#include "common/log.h"

namespace edge::gateway {

using nlohmann::json;
using namespace std::chrono_literals;

namespace {

// The longest a cache thread sleeps in one wait; bounds how late a periodic refresh is
// when the clock's idea of "due" and the condition variable's disagree.
constexpr auto kMaxWait = 10min;
constexpr size_t kMaxReasonChars = 300;

int64_t seconds(Duration d) {
  return std::chrono::duration_cast<std::chrono::seconds>(d).count();
}

}  // namespace

// --- JwksCache ---

struct JwksCache::Impl {
  Fetch fetch;
  Clock* clock = nullptr;
  Options options;
  bool fixed = false;

  mutable std::mutex mu;
  std::condition_variable work_cv;  // wakes the thread: a request, or stopping
  std::condition_variable done_cv;  // wakes refreshNow(): a fetch ended
  std::shared_ptr<const jwt::KeySet> keys;
  Status last_error;
  bool requested = false;
  bool in_flight = false;
  bool stopping = false;
  bool attempted = false;
  SteadyTime last_attempt{};
  bool succeeded = false;
  SteadyTime last_success{};
  uint64_t fetches = 0;
  uint64_t generation = 0;  // fetches that ended
  std::vector<RefreshDone> waiters;
  std::thread thread;

  // Under mu. The time of the next periodic attempt: interval after a success, a
  // cooldown after a failure.
  SteadyTime nextDue() const {
    if (!attempted) return SteadyTime{};
    if (succeeded && last_error.isOk()) return last_success + options.refresh_interval;
    return last_attempt + options.cooldown;
  }

  // Under mu.
  void request() {
    if (requested || in_flight || stopping) return;
    requested = true;
    work_cv.notify_one();
  }

  void run() {
    std::unique_lock<std::mutex> lock(mu);
    while (!stopping) {
      if (!requested) {
        auto wait = std::clamp<Duration>(nextDue() - clock->now(), Duration(0), kMaxWait);
        if (work_cv.wait_for(lock, wait) == std::cv_status::timeout && !requested && !stopping &&
            clock->now() >= nextDue())
          requested = true;
        continue;
      }
      requested = false;
      in_flight = true;
      attempted = true;
      last_attempt = clock->now();
      ++fetches;
      lock.unlock();
      Result<jwt::KeySet> set = fetchOnce();
      lock.lock();
      in_flight = false;
      ++generation;
      if (set.isOk()) {
        keys = std::make_shared<const jwt::KeySet>(std::move(*set));
        if (!last_error.isOk()) LOG_INFO("tokens.keys_recovered").kv("keys", keys->size());
        last_error = Status::ok();
        succeeded = true;
        last_success = clock->now();
      } else {
        if (last_error != set.status())
          LOG_WARN("tokens.keys_fetch_failed").kv("error", set.status().message());
        last_error = set.status();
      }
      std::vector<RefreshDone> ready;
      ready.swap(waiters);
      Status outcome = last_error;
      lock.unlock();
      done_cv.notify_all();
      for (auto& w : ready) w(outcome);
      lock.lock();
    }
    std::vector<RefreshDone> ready;
    ready.swap(waiters);
    lock.unlock();
    for (auto& w : ready) w(Status::cancelled("the token verifier is shutting down"));
  }

  Result<jwt::KeySet> fetchOnce() {
    Result<std::string> text = Status::internal("no fetch");
    try {
      text = fetch();
    } catch (const std::exception& e) {
      text = Status::internal(std::string("fetch threw: ") + e.what());
    } catch (...) {
      text = Status::internal("fetch threw");
    }
    if (!text.isOk()) return text.status().withContext("fetching the issuer's JWKS");
    auto set = jwt::KeySet::fromJwksText(*text);
    if (!set.isOk()) return set.status().withContext("the issuer's JWKS");
    return set;
  }
};

JwksCache::JwksCache(std::shared_ptr<Impl> impl) : impl_(std::move(impl)) {}

std::shared_ptr<JwksCache> JwksCache::create(Fetch fetch, Clock& clock, Options options) {
  auto impl = std::make_shared<Impl>();
  impl->fetch = std::move(fetch);
  impl->clock = &clock;
  if (options.cooldown < 1s) options.cooldown = 1s;
  if (options.refresh_interval < options.cooldown) options.refresh_interval = options.cooldown;
  impl->options = options;
  impl->requested = true;  // the first fetch, at once
  impl->thread = std::thread([impl] { impl->run(); });
  return std::shared_ptr<JwksCache>(new JwksCache(std::move(impl)));
}

std::shared_ptr<JwksCache> JwksCache::fixed(jwt::KeySet keys) {
  auto impl = std::make_shared<Impl>();
  impl->fixed = true;
  impl->options.cooldown = std::chrono::seconds(0);
  impl->keys = std::make_shared<const jwt::KeySet>(std::move(keys));
  return std::shared_ptr<JwksCache>(new JwksCache(std::move(impl)));
}

JwksCache::~JwksCache() {
  if (impl_->fixed) return;
  {
    std::lock_guard<std::mutex> lock(impl_->mu);
    impl_->stopping = true;
  }
  impl_->work_cv.notify_all();
  impl_->done_cv.notify_all();
  // The last reference may be dropped by a callback running on the cache's own thread.
  if (impl_->thread.get_id() == std::this_thread::get_id())
    impl_->thread.detach();
  else if (impl_->thread.joinable())
    impl_->thread.join();
}

std::shared_ptr<const jwt::KeySet> JwksCache::keys() {
  std::lock_guard<std::mutex> lock(impl_->mu);
  if (!impl_->fixed && impl_->attempted && impl_->clock->now() >= impl_->nextDue())
    impl_->request();
  return impl_->keys;
}

bool JwksCache::refreshFor(std::string_view kid, RefreshDone done) {
  auto& m = *impl_;
  std::lock_guard<std::mutex> lock(m.mu);
  if (m.fixed || m.stopping) return false;
  if (m.keys && m.keys->contains(kid)) return false;
  if (!m.requested && !m.in_flight) {
    if (m.attempted && m.clock->now() - m.last_attempt < m.options.cooldown) return false;
    m.request();
  }
  m.waiters.push_back(std::move(done));
  return true;
}

Status JwksCache::refreshNow() {
  auto& m = *impl_;
  std::unique_lock<std::mutex> lock(m.mu);
  if (m.fixed) return Status::ok();
  // A fetch in flight may have started before the caller's reason to refresh: let it
  // end, then ask for one of our own (a request not yet started counts as ours).
  m.done_cv.wait(lock, [&] { return m.stopping || !m.in_flight; });
  uint64_t target = m.generation + 1;
  m.request();
  m.done_cv.wait(lock, [&] { return m.stopping || m.generation >= target; });
  if (m.generation < target) return Status::cancelled("the token verifier is shutting down");
  return m.last_error;
}

std::chrono::seconds JwksCache::cooldown() const {
  return impl_->options.cooldown;
}

Status JwksCache::lastError() const {
  std::lock_guard<std::mutex> lock(impl_->mu);
  return impl_->last_error;
}

uint64_t JwksCache::fetches() const {
  std::lock_guard<std::mutex> lock(impl_->mu);
  return impl_->fetches;
}

// --- claims ---

bool TokenClaims::hasScope(std::string_view scope) const {
  return std::find(scopes.begin(), scopes.end(), scope) != scopes.end();
}

namespace {

std::string stringClaim(const json& j, const char* name) {
  auto it = j.find(name);
  return it != j.end() && it->is_string() ? it->get<std::string>() : std::string();
}

// The kid of a token's header, "" when it has none or the header does not decode.
std::string headerKid(std::string_view token) {
  size_t dot = token.find('.');
  if (dot == std::string_view::npos) return "";
  auto bytes = jwt::base64UrlDecode(token.substr(0, dot));
  if (!bytes.isOk()) return "";
  json h = json::parse(*bytes, nullptr, false);
  if (!h.is_object()) return "";
  return stringClaim(h, "kid");
}

std::shared_ptr<const TokenClaims> toClaims(const json& j, std::string kid) {
  auto c = std::make_shared<TokenClaims>();
  c->subject = stringClaim(j, "sub");
  c->client_id = stringClaim(j, "client_id");
  c->scopes = jwt::splitScopes(stringClaim(j, "scope"));
  c->account = stringClaim(j, "acct");
  c->node = stringClaim(j, "node");
  c->issuer = stringClaim(j, "iss");
  auto aud = j.find("aud");
  if (aud != j.end() && aud->is_string()) c->audiences.push_back(aud->get<std::string>());
  if (aud != j.end() && aud->is_array())
    for (const auto& a : *aud)
      if (a.is_string()) c->audiences.push_back(a.get<std::string>());
  auto exp = j.find("exp");
  if (exp != j.end() && exp->is_number()) c->expires_at = static_cast<int64_t>(exp->get<double>());
  c->kid = std::move(kid);
  return c;
}

// RFC 6750 3: error_description is %x20-21 / %x23-5B / %x5D-7E; the reason may quote a
// caller's kid or issuer, so anything else is replaced, and it is kept to one short line.
std::string oneLine(std::string_view s) {
  std::string out;
  out.reserve(std::min(s.size(), kMaxReasonChars));
  for (char ch : s) {
    if (out.size() >= kMaxReasonChars) {
      out += "...";
      break;
    }
    auto c = static_cast<unsigned char>(ch);
    out += (c < 0x20 || c > 0x7e) ? '?' : ch;
  }
  return out;
}

std::string headerSafe(std::string_view s) {
  std::string out;
  for (char c : s) out += (c == '"' || c == '\\') ? '\'' : c;
  return out;
}

}  // namespace

// --- TokenVerifier ---

struct TokenVerifier::Impl {
  JwksCachePtr keys;
  Clock* clock = nullptr;
  Options options;

  struct Entry {
    std::shared_ptr<const TokenClaims> claims;
  };
  struct Hash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const { return std::hash<std::string_view>()(s); }
  };
  mutable std::mutex mu;
  std::unordered_map<std::string, Entry, Hash, std::equal_to<>> cache;
  std::atomic<uint64_t> hits{0};
  std::atomic<uint64_t> signature_checks{0};

  TokenCheck refuse(int status, std::string reason, std::string_view error = "invalid_token",
                    std::string_view scope = "") const {
    TokenCheck c;
    c.status = status;
    c.reason = oneLine(reason);
    if (status == 401 || status == 403) {
      c.www_authenticate = "Bearer realm=\"" + headerSafe(options.realm) + "\"";
      if (!error.empty()) {
        c.www_authenticate += ", error=\"" + std::string(error) + "\"";
        c.www_authenticate += ", error_description=\"" + headerSafe(c.reason) + "\"";
        if (!scope.empty()) c.www_authenticate += ", scope=\"" + headerSafe(scope) + "\"";
      }
    }
    return c;
  }

  int64_t nowSeconds() const { return seconds(clock->wallNow().time_since_epoch()); }

  // The checks the Requirement adds to a verified token; also the ones a cached token
  // must pass again (issuer and audience were checked when it was verified, but against
  // the Requirement of that request).
  TokenCheck apply(std::shared_ptr<const TokenClaims> claims, const Requirement& req) const {
    if (claims->issuer != req.issuer)
      return refuse(401, "token issuer " + claims->issuer + " is not " + req.issuer);
    if (std::find(claims->audiences.begin(), claims->audiences.end(), req.audience) ==
        claims->audiences.end())
      return refuse(
          401, "audience " + req.audience + " not in [" + jwt::joinScopes(claims->audiences) + "]");
    if (!req.account.empty() && claims->account != req.account)
      return refuse(
          403,
          claims->account.empty()
              ? "the token has no account (acct); this gateway serves account " + req.account
              : "the token is of account " + claims->account + "; this gateway serves account " +
                    req.account,
          "insufficient_scope");
    std::vector<std::string> missing;
    for (const auto& s : req.scopes)
      if (!claims->hasScope(s)) missing.push_back(s);
    if (!missing.empty())
      return refuse(403,
                    "the token lacks scope " + jwt::joinScopes(missing) + " (it has [" +
                        jwt::joinScopes(claims->scopes) + "])",
                    "insufficient_scope", jwt::joinScopes(req.scopes));
    if (!req.node.empty() && claims->node != req.node &&
        !(req.node_optional && claims->node.empty()))
      return refuse(
          403,
          claims->node.empty()
              ? "the token was not issued to a node, but the request comes from node " + req.node
              : "the token was issued to node " + claims->node +
                    ", but the request comes from node " + req.node,
          "insufficient_scope");
    TokenCheck ok;
    ok.claims = std::move(claims);
    return ok;
  }

  std::shared_ptr<const TokenClaims> lookup(std::string_view token,
                                            const jwt::KeySet* keyset) const {
    if (options.cache_entries == 0 || keyset == nullptr) return nullptr;
    std::lock_guard<std::mutex> lock(mu);
    auto it = cache.find(token);
    if (it == cache.end()) return nullptr;
    const auto& c = it->second.claims;
    // A key the issuer has withdrawn takes its tokens with it; an expired token goes the
    // way jwt::verify would send it (with its message).
    if (!keyset->contains(c->kid) || nowSeconds() >= c->expires_at + options.leeway.count())
      return nullptr;
    return c;
  }

  void remember(std::string_view token, std::shared_ptr<const TokenClaims> claims) {
    if (options.cache_entries == 0) return;
    std::lock_guard<std::mutex> lock(mu);
    if (cache.size() >= options.cache_entries) {
      int64_t now = nowSeconds();
      std::erase_if(cache, [&](const auto& e) {
        return now >= e.second.claims->expires_at + options.leeway.count();
      });
      // Still full of live tokens (more callers than entries): make room for a tenth, so
      // eviction does not run on every miss.
      size_t drop = cache.size() >= options.cache_entries ? options.cache_entries / 10 + 1 : 0;
      for (auto it = cache.begin(); drop > 0 && it != cache.end(); --drop) it = cache.erase(it);
    }
    cache.emplace(std::string(token), Entry{std::move(claims)});
  }

  enum class Step { kDone, kUnknownKid };

  // Verifies against `keyset` (null: none fetched yet). kUnknownKid: the caller decides
  // whether a refresh can help.
  Step verifyWith(std::string_view token, const jwt::KeySet* keyset, const Requirement& req,
                  TokenCheck* out, std::string* unknown_reason) {
    if (auto hit = lookup(token, keyset)) {
      hits.fetch_add(1, std::memory_order_relaxed);
      *out = apply(std::move(hit), req);
      return Step::kDone;
    }
    if (keyset == nullptr) {
      *unknown_reason = "the issuer's keys have not been fetched yet";
      return Step::kUnknownKid;
    }
    jwt::VerifyOptions vo;
    vo.issuer = req.issuer;
    vo.audience = req.audience;
    vo.leeway = options.leeway;
    vo.now = clock->wallNow();
    signature_checks.fetch_add(1, std::memory_order_relaxed);
    Result<json> claims = jwt::verify(token, *keyset, vo);
    if (!claims.isOk()) {
      const Status& s = claims.status();
      if (s.code() != StatusCode::kPermissionDenied) {
        *out = refuse(500, "cannot check the token: " + s.message(), "");
        return Step::kDone;
      }
      if (s.message().rfind("unknown key id", 0) == 0) {
        *unknown_reason = s.message();
        return Step::kUnknownKid;
      }
      *out = refuse(401, s.message());
      return Step::kDone;
    }
    std::shared_ptr<const TokenClaims> c;
    try {
      c = toClaims(*claims, headerKid(token));
    } catch (const std::exception& e) {  // defensive: toClaims reads only typed fields
      *out = refuse(401, std::string("token claims: ") + e.what());
      return Step::kDone;
    }
    remember(token, c);
    *out = apply(std::move(c), req);
    return Step::kDone;
  }
};

TokenVerifier::TokenVerifier(JwksCachePtr keys, Clock& clock, Options options)
    : impl_(std::make_shared<Impl>()) {
  impl_->keys = std::move(keys);
  impl_->clock = &clock;
  impl_->options = std::move(options);
}

TokenVerifier::~TokenVerifier() = default;

namespace {

// find_first_of(" \t") calls memchr once per character; on a 600-byte token that was
// most of a cached check's CPU time.
size_t blankAt(std::string_view s) {
  size_t space = s.find(' ');
  size_t tab = s.substr(0, space).find('\t');
  return tab != std::string_view::npos ? tab : space;
}

// Splits "Bearer <token>" (RFC 6750 2.1; the scheme is case-insensitive, RFC 7235).
// nullopt with `why` when the header is anything else.
std::optional<std::string_view> bearerToken(std::string_view header, std::string* why) {
  auto trim = [](std::string_view s) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
    return s;
  };
  header = trim(header);
  size_t sp = blankAt(header);
  std::string_view scheme = header.substr(0, sp);
  bool bearer = scheme.size() == 6;
  for (size_t i = 0; bearer && i < 6; ++i)
    bearer = std::tolower(static_cast<unsigned char>(scheme[i])) == "bearer"[i];
  if (!bearer) {
    *why = "the Authorization header uses scheme " + std::string(scheme.substr(0, 20)) +
           "; this gateway accepts Bearer tokens only";
    return std::nullopt;
  }
  std::string_view token = sp == std::string_view::npos ? "" : trim(header.substr(sp));
  if (token.empty()) {
    *why = "the Authorization header says Bearer but carries no token";
    return std::nullopt;
  }
  if (blankAt(token) != std::string_view::npos) {
    *why = "the Authorization header holds more than one word after Bearer";
    return std::nullopt;
  }
  return token;
}

}  // namespace

bool TokenVerifier::check(std::string_view authorization, const Requirement& requirement,
                          Done done) {
  Impl& m = *impl_;
  if (requirement.issuer.empty() || requirement.audience.empty()) {
    done(m.refuse(500,
                  "the route's token requirement names no issuer or audience (a gateway "
                  "configuration bug)",
                  ""));
    return true;
  }
  if (authorization.empty()) {
    done(m.refuse(401, "no Authorization header: this route needs a bearer token", ""));
    return true;
  }
  std::string why;
  auto token = bearerToken(authorization, &why);
  if (!token) {
    done(m.refuse(401, why, "invalid_request"));
    return true;
  }

  auto keyset = m.keys->keys();
  TokenCheck out;
  std::string unknown;
  if (m.verifyWith(*token, keyset.get(), requirement, &out, &unknown) == Impl::Step::kDone) {
    done(std::move(out));
    return true;
  }

  // An unknown kid: the issuer may have rotated its keys since we fetched them.
  struct Pending {
    std::weak_ptr<Impl> impl;
    std::string token;
    Requirement requirement;
    Done done;
  };
  auto pending =
      std::make_shared<Pending>(Pending{impl_, std::string(*token), requirement, std::move(done)});
  std::string kid = headerKid(*token);
  bool waiting = m.keys->refreshFor(kid, [pending](const Status& fetched) {
    auto impl = pending->impl.lock();
    if (!impl) {
      TokenCheck c;
      c.status = 503;
      c.reason = "the gateway is shutting down";
      pending->done(std::move(c));
      return;
    }
    auto now_keys = impl->keys->keys();
    TokenCheck result;
    std::string still_unknown;
    if (impl->verifyWith(pending->token, now_keys.get(), pending->requirement, &result,
                         &still_unknown) == Impl::Step::kDone) {
      pending->done(std::move(result));
    } else if (!now_keys) {
      pending->done(impl->refuse(
          503,
          "cannot check the token: the issuer's keys are not available (" + fetched.message() + ")",
          ""));
    } else {
      pending->done(impl->refuse(401, still_unknown + " even after refetching the issuer's keys"));
    }
  });
  if (waiting) return false;

  // No refetch now: a fixed set, the cooldown, or another refresh just brought the kid.
  auto again = m.keys->keys();
  if (again != keyset &&
      m.verifyWith(*token, again.get(), requirement, &out, &unknown) == Impl::Step::kDone) {
    pending->done(std::move(out));
    return true;
  }
  if (!again) {
    Status err = m.keys->lastError();
    pending->done(m.refuse(503,
                           "cannot check the token: the issuer's keys are not available" +
                               (err.isOk() ? std::string() : " (" + err.message() + ")"),
                           ""));
    return true;
  }
  auto cooldown = m.keys->cooldown().count();
  pending->done(m.refuse(401, cooldown == 0 ? unknown
                                            : unknown +
                                                  "; the issuer's keys are refetched at "
                                                  "most every " +
                                                  std::to_string(cooldown) + " s"));
  return true;
}

TokenCheck TokenVerifier::checkBlocking(std::string_view authorization,
                                        const Requirement& requirement) {
  struct Slot {
    std::mutex mu;
    std::condition_variable cv;
    std::optional<TokenCheck> result;
  };
  auto slot = std::make_shared<Slot>();
  check(authorization, requirement, [slot](TokenCheck c) {
    {
      std::lock_guard<std::mutex> lock(slot->mu);
      slot->result = std::move(c);
    }
    slot->cv.notify_all();
  });
  std::unique_lock<std::mutex> lock(slot->mu);
  if (!slot->cv.wait_for(lock, impl_->options.blocking_timeout,
                         [&] { return slot->result.has_value(); })) {
    TokenCheck c;
    c.status = 503;
    c.reason = "cannot check the token: the issuer's keys did not arrive within " +
               std::to_string(impl_->options.blocking_timeout.count()) + " s";
    return c;
  }
  return std::move(*slot->result);
}

TokenCheck TokenVerifier::checkTokenBlocking(std::string_view token,
                                             const Requirement& requirement) {
  if (token.empty()) return checkBlocking("", requirement);
  return checkBlocking("Bearer " + std::string(token), requirement);
}

TokenVerifier::Stats TokenVerifier::stats() const {
  Stats s;
  s.cache_hits = impl_->hits.load();
  s.signature_checks = impl_->signature_checks.load();
  std::lock_guard<std::mutex> lock(impl_->mu);
  s.cached = impl_->cache.size();
  return s;
}

}  // namespace edge::gateway
