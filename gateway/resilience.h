// Resilience policies of the gateway, as pure logic over a Clock: when to retry and how
// long to back off (RetryPolicy), how many retries the whole route may spend
// (RetryBudget), when an upstream is taken out of rotation (OutlierDetector) and how many
// tries may be in flight to one upstream (CircuitBreaker). The defaults and why they were
// chosen are in docs/gateway.md, "Resilience defaults".
//
// Thread-safety: RetryPolicy is an immutable value. RetryBudget, OutlierDetector and
// CircuitBreaker are shared by every worker thread: atomics and, for the rare state
// changes (a budget window rolling over, an ejection), a short critical section. None of
// them blocks, allocates on the hot path or throws.
//
// Errors: RetryPolicy::validate() and parseRetryOn() return InvalidArgument naming the
// field, the value and what is allowed. Everything else cannot fail.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <mutex>
#include <random>
#include <string>
#include <string_view>

#include "common/clock.h"
#include "common/status.h"
#include "gateway/gateway_metrics.h"

namespace edge::gateway {

using Millis = std::chrono::milliseconds;
// Randomness for jitter and load balancing; one per worker thread (threadRng()), or a
// seeded one in tests.
using Rng = std::mt19937_64;
// This thread's generator, seeded once per thread from std::random_device.
Rng& threadRng();

// How one try ended, as the router saw it.
enum class TryOutcome : uint8_t {
  kSuccess,         // a response to hand to the caller (any status but 502/503/504)
  kConnectFailure,  // the request never reached the upstream
  kReset,           // the connection broke before a complete response head arrived
  kTimeout,         // the per-try timeout fired
  kStatus502,
  kStatus503,
  kStatus504,
  kCancelled,  // the caller went away or the router gave up: neither success nor failure
};
// 502/503/504 -> their outcomes; anything else -> kSuccess (a 500 or 404 is the service's
// answer, not the proxy's failure).
TryOutcome outcomeForStatus(int http_status);
// Counts against the upstream in outlier detection (everything but kSuccess, kCancelled).
bool isFailure(TryOutcome outcome);
// The metrics kind of a failure; kSuccess and kCancelled have none (returns false).
bool errorKindOf(TryOutcome outcome, ErrorKind* kind);

// RFC 9110 section 9.2.2: GET HEAD OPTIONS TRACE PUT DELETE (case-sensitive, as methods are).
bool isIdempotentMethod(std::string_view method);

// What a retry may be triggered by (RetryPolicy::retry_on bits).
enum RetryOn : uint32_t {
  kRetryOnConnectFailure = 1u << 0,
  kRetryOnReset = 1u << 1,
  kRetryOnTimeout = 1u << 2,
  kRetryOn502 = 1u << 3,
  kRetryOn503 = 1u << 4,
  kRetryOn504 = 1u << 5,
  kRetryOnAll = (1u << 6) - 1,
};
// "connect-failure,reset,timeout,502,503,504" (any subset, any order, "" = none) -> bits.
Result<uint32_t> parseRetryOn(std::string_view list);
std::string formatRetryOn(uint32_t bits);

struct RetryPolicy {
  uint32_t retry_on = kRetryOnAll;
  int attempts = 2;                // retries after the first try, 0..10
  Millis per_try_timeout{15'000};  // > 0; capped by what is left of `timeout`
  Millis timeout{30'000};          // the whole request, tries and back-offs included; > 0
  Millis backoff_base{25};         // > 0
  Millis backoff_max{250};         // >= backoff_base
  // Retry POST/PATCH/... after the request may have reached the upstream (reset, timeout,
  // 502-504). A connect failure is retried for every method: nothing was sent.
  bool retry_non_idempotent = false;

  // InvalidArgument naming the first field out of range and the allowed range.
  Status validate() const;

  // Whether a try that ended with `outcome` may be followed by another, given `retries_done`
  // retries already made for this request. Does not look at the budget or the deadline
  // (the router asks RetryBudget and tryTimeout() for those).
  bool shouldRetry(TryOutcome outcome, std::string_view method, int retries_done) const;

  // Full jitter: uniform in [0, min(backoff_max, backoff_base * 2^retries_done)].
  Duration backoff(int retries_done, Rng& rng) const;

  // The timeout for a try starting at `now` of a request that started at `request_start`:
  // min(per_try_timeout, what is left of `timeout`). <= 0 means the deadline has passed.
  Duration tryTimeout(SteadyTime request_start, SteadyTime now) const;

  bool operator==(const RetryPolicy&) const = default;
};

// Linkerd's retry budget: over a sliding window, retries may add at most `ratio` of the
// requests, plus `min_retries_per_second` so a quiet route can still retry. Only first
// tries are deposited, so retries cannot finance more retries.
class RetryBudget {
 public:
  struct Options {
    double ratio = 0.2;
    uint32_t min_retries_per_second = 10;
    std::chrono::seconds window{10};  // 1..60
  };
  RetryBudget(ClockPtr clock, Options options);
  explicit RetryBudget(ClockPtr clock) : RetryBudget(std::move(clock), Options()) {}

  // A first try is about to be made.
  void recordRequest();
  // True (and counted) when a retry fits in the budget; false = do not retry.
  bool tryWithdraw();

 private:
  static constexpr int kMaxBuckets = 60;  // one per second of the window
  struct Bucket {
    int64_t second = -1;
    uint64_t requests = 0;
    uint64_t retries = 0;
  };
  Bucket& bucketLocked(int64_t second);

  ClockPtr clock_;
  Options options_;
  SteadyTime epoch_;
  std::mutex mu_;  // held for a few dozen instructions per request
  Bucket buckets_[kMaxBuckets];
};

// Consecutive-failure outlier detection for one upstream. After `consecutive_failures`
// failed tries in a row it is ejected for base_ejection * (times ejected), at most
// max_ejection; each base_ejection it then stays healthy takes one off the multiplier
// (Envoy's rule), so an upstream that flapped once is not punished for ever. A successful
// try resets the count. Whether an ejection is allowed (the route's cap) is the caller's
// decision: recordFailure() says the threshold is reached, eject() does it.
class OutlierDetector {
 public:
  struct Options {
    int consecutive_failures = 5;  // >= 1
    Millis base_ejection{30'000};
    Millis max_ejection{300'000};
    int max_ejection_percent = 50;  // of a route's upstreams; see LoadBalancer
  };
  explicit OutlierDetector(Options options) : options_(options) {}
  OutlierDetector() : OutlierDetector(Options()) {}

  void recordSuccess();
  // True when the failure count has reached the threshold and the upstream is not ejected
  // at `now`: the caller should eject() it if the route allows.
  bool recordFailure(SteadyTime now);
  // Ejects from `now`; returns the time it comes back.
  SteadyTime eject(SteadyTime now);
  bool isEjected(SteadyTime now) const;
  // When the current (or last) ejection ends; epoch if it never was ejected.
  SteadyTime ejectedUntil() const;
  int consecutiveFailures() const { return consecutive_.load(std::memory_order_relaxed); }
  // How many times it has been ejected (the unsmoothed total).
  uint64_t ejections() const { return ejections_.load(std::memory_order_relaxed); }
  const Options& options() const { return options_; }

 private:
  Options options_;
  std::atomic<int> consecutive_{0};
  std::atomic<int64_t> ejected_until_ns_{0};  // steady time since epoch; 0 = never
  std::atomic<uint64_t> ejections_{0};
  std::mutex mu_;       // eject() only
  int multiplier_ = 0;  // guarded by mu_
};

// Caps the tries in flight to one upstream.
class CircuitBreaker {
 public:
  struct Options {
    int max_concurrent = 1024;  // >= 1
  };
  explicit CircuitBreaker(Options options) : options_(options) {}
  CircuitBreaker() : CircuitBreaker(Options()) {}

  // True and counted when below the cap; every true must be matched by one release().
  bool tryAcquire();
  void release();
  int active() const { return active_.load(std::memory_order_relaxed); }
  int maxConcurrent() const { return options_.max_concurrent; }

 private:
  Options options_;
  std::atomic<int> active_{0};
};

}  // namespace edge::gateway
