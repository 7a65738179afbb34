#include "backend/rate_limit.h"

#include <algorithm>
#include <cmath>

namespace edge::backend {

RateLimiter::RateLimiter(Options options, ClockPtr clock)
    : options_(options), clock_(std::move(clock)) {}

void RateLimiter::refill(Bucket& b, double rate, double burst, SteadyTime now) {
  double elapsed = std::chrono::duration<double>(now - b.updated).count();
  if (elapsed > 0) b.tokens = std::min(burst, b.tokens + elapsed * rate);
  b.updated = now;
}

std::chrono::seconds RateLimiter::wait(const Bucket& b, double rate) {
  double missing = 1.0 - b.tokens;
  double s = rate > 0 ? std::ceil(missing / rate) : 3600;
  // A tiny rate makes `s` too large for int64_t (converting it would be undefined
  // behaviour); nobody waits a day for a token anyway.
  if (!(s >= 1)) s = 1;  // also a NaN
  if (s > 86400) s = 86400;
  return std::chrono::seconds(static_cast<int64_t>(s));
}

RateLimiter::Bucket& RateLimiter::bucket(Table& t, std::string_view key, double burst,
                                         SteadyTime now) {
  std::string k(key);
  auto it = t.buckets.find(k);
  if (it != t.buckets.end()) {
    t.lru.splice(t.lru.begin(), t.lru, it->second.lru);
    return it->second;
  }
  if (t.buckets.size() >= options_.max_buckets && !t.lru.empty()) {
    t.buckets.erase(t.lru.back());
    t.lru.pop_back();
  }
  t.lru.push_front(k);
  return t.buckets.emplace(k, Bucket{burst, now, t.lru.begin()}).first->second;
}

RateLimiter::Decision RateLimiter::admit(std::string_view address, std::string_view client_id) {
  std::lock_guard<std::mutex> lock(mu_);
  SteadyTime now = clock_->now();
  Bucket& a = bucket(addresses_, address, options_.address_burst, now);
  refill(a, options_.address_rate, options_.address_burst, now);
  Bucket* c = nullptr;
  if (!client_id.empty()) {
    c = &bucket(clients_, client_id, options_.client_burst, now);
    refill(*c, options_.client_rate, options_.client_burst, now);
  }
  Decision d;
  if (a.tokens < 1) {
    d.allowed = false;
    d.retry_after = wait(a, options_.address_rate);
    d.message = "too many token requests from " + std::string(address);
  } else if (c && c->tokens < 1) {
    d.allowed = false;
    d.retry_after = wait(*c, options_.client_rate);
    d.message = "too many token requests for client " + std::string(client_id);
  }
  if (!d.allowed) {
    d.message += "; retry in " + std::to_string(d.retry_after.count()) + " s";
    return d;
  }
  a.tokens -= 1;
  if (c) c->tokens -= 1;
  return d;
}

size_t RateLimiter::bucketCount() const {
  std::lock_guard<std::mutex> lock(mu_);
  return clients_.buckets.size() + addresses_.buckets.size();
}

}  // namespace edge::backend
