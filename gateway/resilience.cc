#include "gateway/resilience.h"

#include <algorithm>
#include <thread>

namespace edge::gateway {
namespace {

constexpr std::memory_order kRelaxed = std::memory_order_relaxed;

int64_t sinceEpochNs(SteadyTime t) {
  return t.time_since_epoch().count();
}

struct RetryOnName {
  std::string_view name;
  uint32_t bit;
};
constexpr RetryOnName kRetryOnNames[] = {
    {"connect-failure", kRetryOnConnectFailure},
    {"reset", kRetryOnReset},
    {"timeout", kRetryOnTimeout},
    {"502", kRetryOn502},
    {"503", kRetryOn503},
    {"504", kRetryOn504},
};

uint32_t retryOnBit(TryOutcome outcome) {
  switch (outcome) {
    case TryOutcome::kConnectFailure:
      return kRetryOnConnectFailure;
    case TryOutcome::kReset:
      return kRetryOnReset;
    case TryOutcome::kTimeout:
      return kRetryOnTimeout;
    case TryOutcome::kStatus502:
      return kRetryOn502;
    case TryOutcome::kStatus503:
      return kRetryOn503;
    case TryOutcome::kStatus504:
      return kRetryOn504;
    case TryOutcome::kSuccess:
    case TryOutcome::kCancelled:
      return 0;
  }
  return 0;
}

}  // namespace

Rng& threadRng() {
  thread_local Rng rng([] {
    std::random_device rd;
    return (static_cast<uint64_t>(rd()) << 32) ^ rd() ^
           std::hash<std::thread::id>()(std::this_thread::get_id());
  }());
  return rng;
}

TryOutcome outcomeForStatus(int http_status) {
  switch (http_status) {
    case 502:
      return TryOutcome::kStatus502;
    case 503:
      return TryOutcome::kStatus503;
    case 504:
      return TryOutcome::kStatus504;
    default:
      return TryOutcome::kSuccess;
  }
}

bool isFailure(TryOutcome outcome) {
  return outcome != TryOutcome::kSuccess && outcome != TryOutcome::kCancelled;
}

bool errorKindOf(TryOutcome outcome, ErrorKind* kind) {
  switch (outcome) {
    case TryOutcome::kConnectFailure:
      *kind = ErrorKind::kConnectFailure;
      return true;
    case TryOutcome::kReset:
      *kind = ErrorKind::kReset;
      return true;
    case TryOutcome::kTimeout:
      *kind = ErrorKind::kTimeout;
      return true;
    case TryOutcome::kStatus502:
      *kind = ErrorKind::kStatus502;
      return true;
    case TryOutcome::kStatus503:
      *kind = ErrorKind::kStatus503;
      return true;
    case TryOutcome::kStatus504:
      *kind = ErrorKind::kStatus504;
      return true;
    case TryOutcome::kSuccess:
    case TryOutcome::kCancelled:
      return false;
  }
  return false;
}

bool isIdempotentMethod(std::string_view m) {
  return m == "GET" || m == "HEAD" || m == "OPTIONS" || m == "TRACE" || m == "PUT" || m == "DELETE";
}

Result<uint32_t> parseRetryOn(std::string_view list) {
  uint32_t bits = 0;
  size_t pos = 0;
  while (pos <= list.size() && !list.empty()) {
    size_t comma = list.find(',', pos);
    std::string_view item =
        list.substr(pos, comma == std::string_view::npos ? std::string_view::npos : comma - pos);
    while (!item.empty() && item.front() == ' ') item.remove_prefix(1);
    while (!item.empty() && item.back() == ' ') item.remove_suffix(1);
    bool known = false;
    for (const auto& n : kRetryOnNames) {
      if (item == n.name) {
        bits |= n.bit;
        known = true;
      }
    }
    if (!known) {
      return Status::invalidArgument(
          "retry_on: unknown condition \"" + std::string(item) +
          "\"; allowed: connect-failure, reset, timeout, 502, 503, 504 (comma-separated)");
    }
    if (comma == std::string_view::npos) break;
    pos = comma + 1;
  }
  return bits;
}

std::string formatRetryOn(uint32_t bits) {
  std::string out;
  for (const auto& n : kRetryOnNames) {
    if ((bits & n.bit) == 0) continue;
    if (!out.empty()) out += ',';
    out += n.name;
  }
  return out;
}

Status RetryPolicy::validate() const {
  if ((retry_on & ~static_cast<uint32_t>(kRetryOnAll)) != 0) {
    return Status::invalidArgument("retry_on: unknown condition bits " +
                                   std::to_string(retry_on & ~static_cast<uint32_t>(kRetryOnAll)));
  }
  if (attempts < 0 || attempts > 10) {
    return Status::invalidArgument("attempts: " + std::to_string(attempts) +
                                   " retries; allowed 0..10");
  }
  auto positive = [](const char* field, Millis v) -> Status {
    if (v.count() <= 0) {
      return Status::invalidArgument(std::string(field) + ": " + std::to_string(v.count()) +
                                     " ms; must be > 0");
    }
    return Status::ok();
  };
  RETURN_IF_ERROR(positive("per_try_timeout", per_try_timeout));
  RETURN_IF_ERROR(positive("timeout", timeout));
  RETURN_IF_ERROR(positive("backoff_base", backoff_base));
  if (backoff_max < backoff_base) {
    return Status::invalidArgument("backoff_max: " + std::to_string(backoff_max.count()) +
                                   " ms is below backoff_base (" +
                                   std::to_string(backoff_base.count()) + " ms)");
  }
  return Status::ok();
}

bool RetryPolicy::shouldRetry(TryOutcome outcome, std::string_view method, int retries_done) const {
  if (retries_done >= attempts) return false;
  uint32_t bit = retryOnBit(outcome);
  if ((retry_on & bit) == 0) return false;
  // A connect failure sent nothing, so even a POST is safe to send again.
  if (outcome == TryOutcome::kConnectFailure) return true;
  return retry_non_idempotent || isIdempotentMethod(method);
}

Duration RetryPolicy::backoff(int retries_done, Rng& rng) const {
  const int64_t base = std::chrono::duration_cast<Duration>(backoff_base).count();
  const int64_t max = std::chrono::duration_cast<Duration>(backoff_max).count();
  int64_t cap = base;
  for (int i = 0; i < retries_done && cap < max; ++i) cap *= 2;  // no overflow: stops at max
  cap = std::min(cap, max);
  if (cap <= 0) return Duration(0);
  std::uniform_int_distribution<int64_t> dist(0, cap);
  return Duration(dist(rng));
}

Duration RetryPolicy::tryTimeout(SteadyTime request_start, SteadyTime now) const {
  Duration left = (request_start + timeout) - now;
  return std::min<Duration>(left, per_try_timeout);
}

RetryBudget::RetryBudget(ClockPtr clock, Options options)
    : clock_(std::move(clock)), options_(options), epoch_(clock_->now()) {
  if (options_.window.count() < 1) options_.window = std::chrono::seconds(1);
  if (options_.window.count() > kMaxBuckets) options_.window = std::chrono::seconds(kMaxBuckets);
  if (!(options_.ratio >= 0)) options_.ratio = 0;  // also NaN
}

RetryBudget::Bucket& RetryBudget::bucketLocked(int64_t second) {
  Bucket& b = buckets_[second % options_.window.count()];
  if (b.second != second) b = Bucket{second, 0, 0};
  return b;
}

void RetryBudget::recordRequest() {
  const int64_t second =
      std::chrono::duration_cast<std::chrono::seconds>(clock_->now() - epoch_).count();
  std::lock_guard<std::mutex> lock(mu_);
  ++bucketLocked(second).requests;
}

bool RetryBudget::tryWithdraw() {
  const int64_t second =
      std::chrono::duration_cast<std::chrono::seconds>(clock_->now() - epoch_).count();
  const int64_t window = options_.window.count();
  std::lock_guard<std::mutex> lock(mu_);
  uint64_t requests = 0;
  uint64_t retries = 0;
  for (int64_t i = 0; i < window; ++i) {
    const Bucket& b = buckets_[i];
    if (b.second > second - window && b.second <= second) {
      requests += b.requests;
      retries += b.retries;
    }
  }
  const double allowed =
      options_.ratio * static_cast<double>(requests) +
      static_cast<double>(options_.min_retries_per_second) * static_cast<double>(window);
  if (static_cast<double>(retries) + 1 > allowed) return false;
  ++bucketLocked(second).retries;
  return true;
}

void OutlierDetector::recordSuccess() {
  if (consecutive_.load(kRelaxed) != 0) consecutive_.store(0, kRelaxed);
}

bool OutlierDetector::recordFailure(SteadyTime now) {
  int n = consecutive_.fetch_add(1, kRelaxed) + 1;
  return n >= options_.consecutive_failures && !isEjected(now);
}

SteadyTime OutlierDetector::eject(SteadyTime now) {
  std::lock_guard<std::mutex> lock(mu_);
  const int64_t now_ns = sinceEpochNs(now);
  int64_t until = ejected_until_ns_.load(kRelaxed);
  if (until > now_ns) return SteadyTime(Duration(until));  // a racing thread ejected it
  const int64_t base = std::chrono::duration_cast<Duration>(options_.base_ejection).count();
  const int64_t max = std::chrono::duration_cast<Duration>(options_.max_ejection).count();
  if (until > 0 && base > 0 && multiplier_ > 0) {
    // Healthy since `until`: one step off the multiplier per base_ejection.
    int64_t steps = (now_ns - until) / base;
    multiplier_ = steps >= multiplier_ ? 0 : multiplier_ - static_cast<int>(steps);
  }
  if (multiplier_ < 1000) ++multiplier_;
  int64_t length = base;
  for (int i = 1; i < multiplier_ && length < max; ++i) length += base;
  length = std::min(length, max);
  until = now_ns + length;
  ejected_until_ns_.store(until, kRelaxed);
  consecutive_.store(0, kRelaxed);
  ejections_.fetch_add(1, kRelaxed);
  return SteadyTime(Duration(until));
}

bool OutlierDetector::isEjected(SteadyTime now) const {
  return ejected_until_ns_.load(kRelaxed) > sinceEpochNs(now);
}

SteadyTime OutlierDetector::ejectedUntil() const {
  return SteadyTime(Duration(ejected_until_ns_.load(kRelaxed)));
}

bool CircuitBreaker::tryAcquire() {
  int before = active_.fetch_add(1, std::memory_order_acq_rel);
  if (before >= options_.max_concurrent) {
    active_.fetch_sub(1, std::memory_order_acq_rel);
    return false;
  }
  return true;
}

void CircuitBreaker::release() {
  active_.fetch_sub(1, std::memory_order_acq_rel);
}

}  // namespace edge::gateway
