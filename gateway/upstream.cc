#include "gateway/upstream.h"

namespace edge::gateway {

std::string_view tierName(Tier tier) {
  switch (tier) {
    case Tier::kLocal:
      return "local";
    case Tier::kPeer:
      return "peer";
    case Tier::kGlobal:
      return "global";
  }
  return "unknown";
}

Upstream::Upstream(std::string route, Tier tier, std::string address,
                   const OutlierDetector::Options& o, const CircuitBreaker::Options& b,
                   UpstreamStatsPtr stats)
    : route_(std::move(route)),
      tier_(tier),
      address_(std::move(address)),
      key_(route_ + "|" + std::string(tierName(tier_)) + "|" + address_),
      label_(std::string(tierName(tier_)) + ":" + address_),
      breaker_(b),
      outlier_(o),
      stats_(std::move(stats)) {}

RouteState::RouteState(ClockPtr clock, const RetryBudget::Options& budget, RouteStatsPtr stats)
    : budget_(std::move(clock), budget), stats_(std::move(stats)) {}

void RouteState::requestStarted() {
  stats_->requests.fetch_add(1, std::memory_order_relaxed);
  budget_.recordRequest();
}

bool RouteState::tryRetry() {
  if (budget_.tryWithdraw()) {
    stats_->retries.fetch_add(1, std::memory_order_relaxed);
    return true;
  }
  stats_->retries_refused_by_budget.fetch_add(1, std::memory_order_relaxed);
  return false;
}

void RouteState::requestFinished(const ErrorKind* error, Duration latency) {
  if (error != nullptr) stats_->addError(*error);
  stats_->latency.observe(latency);
}

UpstreamRegistry::UpstreamRegistry(ClockPtr clock, std::shared_ptr<GatewayMetrics> metrics,
                                   ResilienceConfig config)
    : clock_(std::move(clock)), metrics_(std::move(metrics)), config_(config) {
  if (!metrics_) metrics_ = std::make_shared<GatewayMetrics>(clock_);
}

UpstreamPtr UpstreamRegistry::upstream(const std::string& route, Tier tier,
                                       const std::string& address) {
  std::string key = route + "|" + std::string(tierName(tier)) + "|" + address;
  std::lock_guard<std::mutex> lock(mu_);
  auto& slot = upstreams_[key];
  if (auto live = slot.lock()) return live;
  auto stats = metrics_->upstreamStats(route, std::string(tierName(tier)) + ":" + address);
  auto fresh =
      std::make_shared<Upstream>(route, tier, address, config_.outlier, config_.breaker, stats);
  slot = fresh;
  // Forget the dead ones now and then so the map does not grow with churn.
  if (upstreams_.size() > 64 && upstreams_.size() % 64 == 0) {
    for (auto it = upstreams_.begin(); it != upstreams_.end();) {
      it = it->second.expired() ? upstreams_.erase(it) : std::next(it);
    }
  }
  return fresh;
}

RouteStatePtr UpstreamRegistry::route(const std::string& route) {
  std::lock_guard<std::mutex> lock(mu_);
  auto& slot = routes_[route];
  if (auto live = slot.lock()) return live;
  auto fresh = std::make_shared<RouteState>(clock_, config_.budget, metrics_->routeStats(route));
  slot = fresh;
  return fresh;
}

size_t UpstreamRegistry::upstreamCount() {
  std::lock_guard<std::mutex> lock(mu_);
  size_t n = 0;
  for (const auto& [key, weak] : upstreams_) n += weak.expired() ? 0 : 1;
  return n;
}

}  // namespace edge::gateway
