#include "gateway/token_source.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <condition_variable>
#include <deque>
#include <map>
#include <mutex>
#include <random>
#include <thread>

#include "common/crypto.h"
#include "common/fs.h"
#include "common/log.h"

namespace edge::gateway {

using namespace std::chrono_literals;

namespace {

constexpr size_t kMaxScopeChars = 128;
constexpr auto kMaxWait = std::chrono::minutes(10);

// When to renew a token of lifetime `life`: at `fraction` of it or `before` its end,
// whichever is earlier, but not before half of it (a short-lived token would otherwise
// be renewed all the time).
Duration renewAfter(Duration life, double fraction, Duration before) {
  auto by_fraction = std::chrono::duration_cast<Duration>(life * fraction);
  Duration r = std::min(by_fraction, life - before);
  return std::max(r, life / 2);
}

}  // namespace

Result<Scopes> normalizeScopes(const Scopes& scopes) {
  Scopes out;
  out.reserve(scopes.size());
  for (size_t i = 0; i < scopes.size(); ++i) {
    const auto& s = scopes[i];
    if (s.empty() || s.size() > kMaxScopeChars)
      return Status::invalidArgument("scope " + std::to_string(i) + ": must be 1 to " +
                                     std::to_string(kMaxScopeChars) + " characters, got " +
                                     std::to_string(s.size()));
    for (char ch : s) {
      auto c = static_cast<unsigned char>(ch);
      // RFC 6749 3.3: scope-token = 1*( %x21 / %x23-5B / %x5D-7E )
      if (c < 0x21 || c > 0x7e || c == '"' || c == '\\')
        return Status::invalidArgument(
            "scope " + std::to_string(i) +
            ": only printable ASCII without space, '\"' or '\\' is allowed (RFC 6749 3.3)");
    }
    out.push_back(s);
  }
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

// --- CachedTokenSource ---

struct CachedTokenSource::Impl {
  Fetch fetch;
  Clock* clock = nullptr;
  Options options;

  struct Entry {
    std::string token;  // "" = none
    SteadyTime expires_at{};
    SteadyTime renew_at{};
    Status last_error;
    int failures = 0;
    SteadyTime retry_at{};  // no fetch before this (back-off after a failure)
    bool pending = false;   // queued or being fetched
    std::vector<Done> waiters;
  };

  std::mutex mu;
  std::condition_variable work_cv;
  std::condition_variable idle_cv;
  std::map<std::string, Entry, std::less<>> entries;  // by the scopes joined with ' '
  std::deque<std::string> queue;
  bool busy = false;
  bool stopping = false;
  uint64_t fetches = 0;
  uint64_t failures = 0;
  std::minstd_rand rng{std::random_device{}()};
  std::thread thread;

  std::string what(const std::string& key) const {
    return options.name + " for scopes [" + key + "]";
  }

  // Under mu.
  void enqueue(const std::string& key, Entry& e) {
    if (e.pending || stopping) return;
    e.pending = true;
    queue.push_back(key);
    work_cv.notify_one();
  }

  // Under mu. The token when it is valid now, starting a renewal when one is due and
  // allowed; "" when there is none (and a fetch starts if allowed).
  std::string serve(const std::string& key, Entry& e, SteadyTime now) {
    bool valid = !e.token.empty() && now < e.expires_at;
    if ((!valid || now >= e.renew_at) && now >= e.retry_at) enqueue(key, e);
    return valid ? e.token : std::string();
  }

  Status backoffError(const Entry& e, SteadyTime now) const {
    auto wait = std::chrono::ceil<std::chrono::seconds>(e.retry_at - now).count();
    return Status(e.last_error.code(),
                  e.last_error.message() + "; retrying in " + std::to_string(wait) + " s");
  }

  void run() {
    std::unique_lock<std::mutex> lock(mu);
    while (!stopping) {
      if (queue.empty()) {
        // Renew without traffic too, when the next renewal falls due.
        SteadyTime next = SteadyTime::max();
        for (auto& [key, e] : entries)
          if (!e.token.empty() && !e.pending)
            next = std::min(next, std::max(e.renew_at, e.retry_at));
        SteadyTime now = clock->now();
        Duration wait = next == SteadyTime::max() ? Duration(kMaxWait)
                                                  : std::clamp<Duration>(next - now, 0s, kMaxWait);
        if (work_cv.wait_for(lock, wait) == std::cv_status::timeout && queue.empty() && !stopping) {
          now = clock->now();
          for (auto& [key, e] : entries)
            if (!e.token.empty() && now >= e.renew_at && now >= e.retry_at) enqueue(key, e);
        }
        continue;
      }
      std::string key = std::move(queue.front());
      queue.pop_front();
      busy = true;
      ++fetches;
      SteadyTime started = clock->now();
      lock.unlock();
      Result<IssuedToken> got = fetchOnce(key);
      lock.lock();
      busy = false;
      Entry& e = entries[key];
      e.pending = false;
      SteadyTime now = clock->now();
      if (got.isOk()) {
        // The lifetime counts from before the request: the token was issued during it.
        Duration life = got->expires_in;
        e.token = std::move(got->access_token);
        e.expires_at = started + life;
        e.renew_at = started + renewAfter(life, options.renew_fraction, options.renew_before);
        if (e.failures > 0) LOG_INFO("tokens.fetch_recovered").kv("what", what(key));
        e.failures = 0;
        e.last_error = Status::ok();
        e.retry_at = SteadyTime{};
      } else {
        ++failures;
        ++e.failures;
        auto backoff = options.min_backoff * (1LL << std::min(e.failures - 1, 20));
        if (backoff > options.max_backoff) backoff = options.max_backoff;
        // Half fixed, half jitter: nodes that lost the backend together do not come back
        // in step.
        std::uniform_real_distribution<double> jitter(0.5, 1.0);
        auto delay = std::chrono::duration_cast<Duration>(backoff * jitter(rng));
        e.retry_at = now + delay;
        e.last_error = got.status().withContext(what(key));
        LOG_WARN("tokens.fetch_failed")
            .kv("what", what(key))
            .kv("error", got.status().message())
            .kv("failures", e.failures)
            .kv("retry_ms", std::chrono::duration_cast<std::chrono::milliseconds>(delay).count());
      }
      std::vector<Done> ready;
      ready.swap(e.waiters);
      Result<std::string> answer = Status::internal("unset");
      if (!e.token.empty() && now < e.expires_at)
        answer = e.token;
      else
        answer = backoffError(e, now);
      if (queue.empty()) idle_cv.notify_all();
      lock.unlock();
      for (auto& w : ready) w(answer);
      lock.lock();
    }
    std::vector<Done> ready;
    for (auto& [key, e] : entries)
      for (auto& w : e.waiters) ready.push_back(std::move(w));
    queue.clear();
    idle_cv.notify_all();
    lock.unlock();
    for (auto& w : ready)
      w(Status::cancelled(options.name + ": the token source is shutting down"));
  }

  Result<IssuedToken> fetchOnce(const std::string& key) {
    Result<IssuedToken> got = Status::internal("no fetch");
    try {
      got = fetch(jwt::splitScopes(key));
    } catch (const std::exception& e) {
      got = Status::internal(std::string("fetch threw: ") + e.what());
    } catch (...) {
      got = Status::internal("fetch threw");
    }
    if (!got.isOk()) return got;
    if (got->access_token.empty())
      return Status::invalidArgument("the token endpoint answered no access_token");
    if (got->expires_in <= 0s)
      return Status::invalidArgument("the token endpoint answered expires_in " +
                                     std::to_string(got->expires_in.count()) +
                                     "; a positive number of seconds is needed");
    return got;
  }
};

CachedTokenSource::CachedTokenSource(Fetch fetch, Clock& clock, Options options)
    : impl_(std::make_shared<Impl>()) {
  impl_->fetch = std::move(fetch);
  impl_->clock = &clock;
  if (options.min_backoff < 1ms) options.min_backoff = 1ms;
  if (options.max_backoff < options.min_backoff) options.max_backoff = options.min_backoff;
  options.renew_fraction = std::clamp(options.renew_fraction, 0.5, 1.0);
  impl_->options = std::move(options);
  auto impl = impl_;
  impl_->thread = std::thread([impl] { impl->run(); });
}

CachedTokenSource::~CachedTokenSource() {
  {
    std::lock_guard<std::mutex> lock(impl_->mu);
    impl_->stopping = true;
  }
  impl_->work_cv.notify_all();
  if (impl_->thread.get_id() == std::this_thread::get_id())
    impl_->thread.detach();
  else if (impl_->thread.joinable())
    impl_->thread.join();
}

std::optional<std::string> CachedTokenSource::cached(const Scopes& scopes) {
  auto norm = normalizeScopes(scopes);
  if (!norm.isOk()) return std::nullopt;
  std::string key = jwt::joinScopes(*norm);
  std::lock_guard<std::mutex> lock(impl_->mu);
  auto& e = impl_->entries[key];
  std::string t = impl_->serve(key, e, impl_->clock->now());
  if (t.empty()) return std::nullopt;
  return t;
}

bool CachedTokenSource::token(const Scopes& scopes, Done done) {
  auto norm = normalizeScopes(scopes);
  if (!norm.isOk()) {
    done(norm.status().withContext(impl_->options.name));
    return true;
  }
  std::string key = jwt::joinScopes(*norm);
  std::unique_lock<std::mutex> lock(impl_->mu);
  if (impl_->stopping) {
    lock.unlock();
    done(Status::cancelled(impl_->options.name + ": the token source is shutting down"));
    return true;
  }
  auto& e = impl_->entries[key];
  SteadyTime now = impl_->clock->now();
  std::string t = impl_->serve(key, e, now);
  if (!t.empty()) {
    lock.unlock();
    done(std::move(t));
    return true;
  }
  if (!e.pending) {  // serve() did not start a fetch: we are backing off
    Status err = impl_->backoffError(e, now);
    lock.unlock();
    done(std::move(err));
    return true;
  }
  e.waiters.push_back(std::move(done));
  return false;
}

Result<std::string> CachedTokenSource::get(const Scopes& scopes) {
  struct Slot {
    std::mutex mu;
    std::condition_variable cv;
    std::optional<Result<std::string>> result;
  };
  auto slot = std::make_shared<Slot>();
  token(scopes, [slot](Result<std::string> r) {
    {
      std::lock_guard<std::mutex> lock(slot->mu);
      slot->result = std::move(r);
    }
    slot->cv.notify_all();
  });
  std::unique_lock<std::mutex> lock(slot->mu);
  if (!slot->cv.wait_for(lock, impl_->options.get_timeout,
                         [&] { return slot->result.has_value(); }))
    return Status::deadlineExceeded(impl_->options.name + ": no token within " +
                                    std::to_string(impl_->options.get_timeout.count()) + " s");
  return std::move(*slot->result);
}

void CachedTokenSource::invalidate(const Scopes& scopes) {
  auto norm = normalizeScopes(scopes);
  if (!norm.isOk()) return;
  std::lock_guard<std::mutex> lock(impl_->mu);
  auto it = impl_->entries.find(jwt::joinScopes(*norm));
  if (it != impl_->entries.end()) it->second.token.clear();
}

void CachedTokenSource::waitIdle() {
  std::unique_lock<std::mutex> lock(impl_->mu);
  impl_->idle_cv.wait(lock,
                      [&] { return impl_->stopping || (impl_->queue.empty() && !impl_->busy); });
}

CachedTokenSource::Stats CachedTokenSource::stats() const {
  std::lock_guard<std::mutex> lock(impl_->mu);
  return Stats{impl_->fetches, impl_->failures};
}

// --- LocalAccountSigner ---

struct LocalAccountSigner::Impl {
  Impl(jwt::SigningKey k, Options o, Clock* c)
      : key(std::move(k)), options(std::move(o)), clock(c) {
    keys.add(key);
  }
  jwt::SigningKey key;
  jwt::KeySet keys;
  Options options;
  Clock* clock = nullptr;

  struct Entry {
    std::string token;
    SteadyTime renew_at{};
  };
  std::mutex mu;
  std::map<std::string, Entry, std::less<>> cache;
};

namespace {

bool validName(const std::string& s) {
  if (s.empty() || s.size() > 253) return false;
  for (char ch : s) {
    auto c = static_cast<unsigned char>(ch);
    if (c <= 0x20 || c > 0x7e || c == '"' || c == '\\') return false;
  }
  return true;
}

// Reads the key file, or creates it when absent: a new key is written to a temporary
// file and link()ed into place, which fails if another process created the file first;
// then that process's key is the account's and we read it.
Result<std::string> loadOrCreatePem(const std::string& path, bool create) {
  for (int attempt = 0; attempt < 2; ++attempt) {
    struct stat st {};
    if (::stat(path.c_str(), &st) == 0) {
      if (!S_ISREG(st.st_mode))
        return Status::invalidArgument("account key " + path + ": not a regular file");
      if ((st.st_mode & 077) != 0) {
        char mode[8];
        std::snprintf(mode, sizeof mode, "%04o", static_cast<unsigned>(st.st_mode & 07777));
        return Status::permissionDenied("account key " + path + " has mode " + mode +
                                        ": it signs tokens for the whole account, so it must "
                                        "not be readable by group or others (chmod 600 " +
                                        path + ")");
      }
      auto pem = fs::readFile(path, 64 * 1024);
      if (!pem.isOk()) return pem.status().withContext("account key " + path);
      return pem;
    }
    if (errno != ENOENT) return Status::fromErrno(errno, "account key " + path);
    if (!create)
      return Status::notFound("account key " + path +
                              " does not exist (copy the account's key from another node, or "
                              "let this node create one)");
    auto key = jwt::SigningKey::generate();
    if (!key.isOk()) return key.status().withContext("creating account key " + path);
    std::string pem = key->toPem();
    std::string tmp = path + ".tmp-" + crypto::randomHex(6);
    RETURN_IF_ERROR(fs::writeFileAtomic(tmp, pem, 0600).withContext("creating account key"));
    int rc = ::link(tmp.c_str(), path.c_str());
    int err = errno;
    ::unlink(tmp.c_str());
    if (rc == 0) {
      LOG_INFO("tokens.account_key_created").kv("path", path).kv("kid", key->kid());
      return pem;
    }
    if (err != EEXIST) return Status::fromErrno(err, "creating account key " + path);
    // Lost the race: read the winner's key.
  }
  return Status::internal("account key " + path + ": created and vanished");
}

}  // namespace

LocalAccountSigner::LocalAccountSigner(std::unique_ptr<Impl> impl, std::string issuer)
    : impl_(std::move(impl)), issuer_(std::move(issuer)) {}

LocalAccountSigner::~LocalAccountSigner() = default;

Result<std::unique_ptr<LocalAccountSigner>> LocalAccountSigner::open(Options options,
                                                                     Clock& clock) {
  if (options.key_file.empty())
    return Status::invalidArgument("local account signer: key_file is empty");
  if (!validName(options.account))
    return Status::invalidArgument(
        "local account signer: account must be 1-253 printable ASCII characters without "
        "space, '\"' or '\\', got \"" +
        options.account.substr(0, 64) + "\"");
  if (!validName(options.node_id))
    return Status::invalidArgument(
        "local account signer: node_id must be 1-253 printable "
        "ASCII characters without space, '\"' or '\\'");
  if (options.ttl < 10s || options.ttl > 24h)
    return Status::invalidArgument("local account signer: ttl must be 10 s to 24 h, got " +
                                   std::to_string(options.ttl.count()) + " s");
  ASSIGN_OR_RETURN(auto pem, loadOrCreatePem(options.key_file, options.create));
  auto key = jwt::SigningKey::fromPem(pem);
  if (!key.isOk()) return key.status().withContext("account key " + options.key_file);
  auto impl = std::make_unique<Impl>(*key, std::move(options), &clock);
  std::string issuer = issuerFor(impl->options.account);
  return std::unique_ptr<LocalAccountSigner>(new LocalAccountSigner(std::move(impl), issuer));
}

jwt::KeySet LocalAccountSigner::keySet() const {
  return impl_->keys;
}

nlohmann::json LocalAccountSigner::jwks() const {
  return {{"keys", nlohmann::json::array({impl_->key.publicJwk()})}};
}

Result<std::string> LocalAccountSigner::issue(const Scopes& scopes) {
  ASSIGN_OR_RETURN(auto norm, normalizeScopes(scopes));
  const auto& o = impl_->options;
  int64_t now =
      std::chrono::duration_cast<std::chrono::seconds>(impl_->clock->wallNow().time_since_epoch())
          .count();
  std::string subject = "node:" + o.node_id;
  nlohmann::json claims = {{"iss", issuer_},       {"sub", subject},
                           {"aud", "edge-node"},   {"exp", now + o.ttl.count()},
                           {"iat", now},           {"jti", crypto::randomHex(16)},
                           {"client_id", subject}, {"scope", jwt::joinScopes(norm)},
                           {"acct", o.account},    {"node", o.node_id}};
  return impl_->key.sign({{"typ", jwt::kAccessTokenType}}, claims);
}

std::optional<std::string> LocalAccountSigner::cached(const Scopes& scopes) {
  auto t = get(scopes);
  if (!t.isOk()) return std::nullopt;
  return std::move(*t);
}

bool LocalAccountSigner::token(const Scopes& scopes, Done done) {
  done(get(scopes));
  return true;
}

Result<std::string> LocalAccountSigner::get(const Scopes& scopes) {
  ASSIGN_OR_RETURN(auto norm, normalizeScopes(scopes));
  std::string key = jwt::joinScopes(norm);
  SteadyTime now = impl_->clock->now();
  {
    std::lock_guard<std::mutex> lock(impl_->mu);
    auto it = impl_->cache.find(key);
    if (it != impl_->cache.end() && now < it->second.renew_at) return it->second.token;
  }
  ASSIGN_OR_RETURN(auto token, issue(norm));
  std::lock_guard<std::mutex> lock(impl_->mu);
  auto life = std::chrono::duration_cast<Duration>(impl_->options.ttl);
  impl_->cache[key] = Impl::Entry{token, now + renewAfter(life, 0.8, 30s)};
  return token;
}

}  // namespace edge::gateway
