// Upstream: one instance of a route's service as the gateway sees it (a local instance, a
// peer node's instance or the central gateway), with the state that must outlive route
// table updates: its circuit breaker, outlier detector and stats. UpstreamRegistry hands out
// one Upstream per key, shared by every table snapshot that names it, and one RouteState
// (stats and retry budget) per route.
//
// Thread-safety: Upstream and RouteState are used by every worker at once (their members
// are thread-safe). UpstreamRegistry's methods take a mutex: control plane (table builds),
// never per request.
//
// Errors: none; the registry trusts the keys RouteTable::build() has validated.
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "common/clock.h"
#include "gateway/gateway_metrics.h"
#include "gateway/resilience.h"

namespace edge::gateway {

// Where an upstream is, in the order the load balancer prefers them.
enum class Tier : uint8_t { kLocal, kPeer, kGlobal };
std::string_view tierName(Tier tier);  // "local", "peer", "global"

class Upstream {
 public:
  Upstream(std::string route, Tier tier, std::string address, const OutlierDetector::Options& o,
           const CircuitBreaker::Options& b, UpstreamStatsPtr stats);

  // "<route>|<tier>|<address>": unique per instance of a route's service.
  const std::string& key() const { return key_; }
  const std::string& route() const { return route_; }
  Tier tier() const { return tier_; }
  // host:port for local and global; "<node id>@<host:port>" for peers.
  const std::string& address() const { return address_; }
  // "<tier>:<address>", the upstream= label.
  const std::string& label() const { return label_; }

  CircuitBreaker& breaker() { return breaker_; }
  const CircuitBreaker& breaker() const { return breaker_; }
  OutlierDetector& outlier() { return outlier_; }
  const OutlierDetector& outlier() const { return outlier_; }
  UpstreamStats& stats() { return *stats_; }

 private:
  std::string route_;
  Tier tier_;
  std::string address_;
  std::string key_;
  std::string label_;
  CircuitBreaker breaker_;
  OutlierDetector outlier_;
  UpstreamStatsPtr stats_;
};
using UpstreamPtr = std::shared_ptr<Upstream>;

// Per-route state that outlives table updates.
class RouteState {
 public:
  RouteState(ClockPtr clock, const RetryBudget::Options& budget, RouteStatsPtr stats);

  // A caller's request matched the route: counts it and deposits into the retry budget.
  void requestStarted();
  // The router wants to retry: true (counted as a retry) when the budget allows.
  bool tryRetry();
  // The request ended: `error` null for an answer from an upstream, else its final error.
  void requestFinished(const ErrorKind* error, Duration latency);

  RouteStats& stats() { return *stats_; }

 private:
  RetryBudget budget_;
  RouteStatsPtr stats_;
};
using RouteStatePtr = std::shared_ptr<RouteState>;

struct ResilienceConfig {
  OutlierDetector::Options outlier;
  CircuitBreaker::Options breaker;
  RetryBudget::Options budget;
};

class UpstreamRegistry {
 public:
  UpstreamRegistry(ClockPtr clock, std::shared_ptr<GatewayMetrics> metrics,
                   ResilienceConfig config = {});

  // The live Upstream for (route, tier, address), created when no snapshot holds one.
  UpstreamPtr upstream(const std::string& route, Tier tier, const std::string& address);
  RouteStatePtr route(const std::string& route);

  const ClockPtr& clock() const { return clock_; }
  GatewayMetrics& metrics() { return *metrics_; }
  // Live upstreams (held by some snapshot); for tests and `edgectl routes`.
  size_t upstreamCount();

 private:
  ClockPtr clock_;
  std::shared_ptr<GatewayMetrics> metrics_;
  ResilienceConfig config_;
  std::mutex mu_;
  std::map<std::string, std::weak_ptr<Upstream>> upstreams_;
  std::map<std::string, std::weak_ptr<RouteState>> routes_;
};

}  // namespace edge::gateway
