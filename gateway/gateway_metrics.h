// Gateway metrics: counters and latency histograms per route and per upstream, rendered in
// the Prometheus text exposition format (edge_gateway_* names, route= and upstream= labels),
// and the access-log sampler that keeps a load test from flooding the log.
//
// Thread-safety: every counter is a relaxed atomic that any worker bumps without a lock;
// renderPrometheus() reads them while they move (each value is exact, the set is not one
// instant). GatewayMetrics' registration and rendering take one mutex: control plane only,
// never per request. AccessLogSampler is lock-free.
//
// Errors: nothing here fails.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>

#include "common/clock.h"

namespace edge::gateway {

// Why a try (or a whole request) did not end with an upstream's usable answer.
enum class ErrorKind : uint8_t {
  kConnectFailure,  // refused, unreachable, TLS handshake failed: the request never left
  kReset,           // the connection broke before a complete response head
  kTimeout,         // the per-try timeout or the request's deadline fired
  kStatus502,
  kStatus503,
  kStatus504,
  kOverflow,    // every candidate's circuit breaker was full: refused without trying
  kNoUpstream,  // no upstream left to try (none configured, all tried)
};
inline constexpr size_t kErrorKindCount = 8;
// "connect_failure", "reset", "timeout", "502", "503", "504", "overflow", "no_upstream".
std::string_view errorKindName(ErrorKind kind);

// Prometheus-style cumulative histogram with the buckets 1 ms .. 10 s (+Inf).
class LatencyHistogram {
 public:
  static constexpr std::array<double, 13> kBoundsSeconds = {
      0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};

  void observe(Duration d);
  uint64_t count() const { return count_.load(std::memory_order_relaxed); }
  // Observations <= kBoundsSeconds[i] (cumulative, as Prometheus wants them).
  uint64_t cumulative(size_t i) const;
  double sumSeconds() const;

 private:
  std::array<std::atomic<uint64_t>, kBoundsSeconds.size()> buckets_{};  // not cumulative
  std::atomic<uint64_t> count_{0};
  std::atomic<uint64_t> sum_ns_{0};
};

// One route (service). Requests are the caller's requests, not tries.
struct RouteStats {
  std::atomic<uint64_t> requests{0};
  std::atomic<uint64_t> retries{0};
  std::atomic<uint64_t> retries_refused_by_budget{0};
  std::array<std::atomic<uint64_t>, kErrorKindCount> errors{};  // by the request's final error
  LatencyHistogram latency;                                     // whole request

  void addError(ErrorKind k) { errors[static_cast<size_t>(k)].fetch_add(1, kRelaxed); }
  static constexpr std::memory_order kRelaxed = std::memory_order_relaxed;
};

// One upstream (an instance of a route's service). Requests here are tries.
struct UpstreamStats {
  std::atomic<uint64_t> requests{0};
  std::array<std::atomic<uint64_t>, kErrorKindCount> errors{};
  std::atomic<uint64_t> ejections_total{0};
  std::atomic<uint64_t> breaker_rejections{0};
  // Steady-clock nanoseconds until which it is ejected (0: never), written by the outlier
  // detector's owner, read for the edge_gateway_upstream_ejected gauge.
  std::atomic<int64_t> ejected_until_ns{0};
  std::atomic<int64_t> active{0};  // tries in flight (the circuit breaker's count)
  LatencyHistogram latency;        // per try, from pick to outcome

  void addError(ErrorKind k) { errors[static_cast<size_t>(k)].fetch_add(1, kRelaxed); }
  static constexpr std::memory_order kRelaxed = std::memory_order_relaxed;
};

using RouteStatsPtr = std::shared_ptr<RouteStats>;
using UpstreamStatsPtr = std::shared_ptr<UpstreamStats>;

// The registry of live stats. It holds weak references: a route's or upstream's series
// disappear from /metrics once no route table refers to them any more.
class GatewayMetrics {
 public:
  explicit GatewayMetrics(ClockPtr clock);

  // The stats of `route`, created on first use; the same object while anyone holds it.
  RouteStatsPtr routeStats(const std::string& route);
  // The stats of upstream `upstream` (a display label: "local:127.0.0.1:20001") of `route`.
  UpstreamStatsPtr upstreamStats(const std::string& route, const std::string& upstream);

  // Appends every family (HELP, TYPE, samples sorted by labels) to `out`. Label values
  // are escaped (backslash, double quote, newline) as the exposition format requires.
  void renderPrometheus(std::string& out);

 private:
  ClockPtr clock_;
  std::mutex mu_;
  std::map<std::string, std::weak_ptr<RouteStats>> routes_;
  std::map<std::pair<std::string, std::string>, std::weak_ptr<UpstreamStats>> upstreams_;
};

// Escapes a Prometheus label value: \ -> \\, " -> \", newline -> \n.
void appendEscapedLabelValue(std::string& out, std::string_view value);

// Decides which requests get an access-log line: every request while the rate in the
// current second is below full_rate_per_second, then 1 in `one_in`. Errors are sampled
// like the rest (a failure storm is a flood too).
class AccessLogSampler {
 public:
  struct Options {
    uint32_t full_rate_per_second = 100;
    uint32_t one_in = 100;  // 0 or 1: log everything
  };
  AccessLogSampler(ClockPtr clock, Options options);
  explicit AccessLogSampler(ClockPtr clock) : AccessLogSampler(std::move(clock), Options()) {}

  // Called once per finished request; true = write its line.
  bool shouldLog();
  // Requests not logged so far.
  uint64_t skipped() const { return skipped_.load(std::memory_order_relaxed); }

 private:
  ClockPtr clock_;
  Options options_;
  SteadyTime epoch_;
  std::atomic<int64_t> second_{0};  // epoch_ is construction: second 0 is current
  std::atomic<uint64_t> in_second_{0};
  std::atomic<uint64_t> over_{0};
  std::atomic<uint64_t> skipped_{0};
};

}  // namespace edge::gateway
