#include "gateway/gateway_metrics.h"

#include <cstdio>
#include <vector>

namespace edge::gateway {
namespace {

constexpr std::memory_order kRelaxed = std::memory_order_relaxed;

constexpr std::array<ErrorKind, kErrorKindCount> kAllErrorKinds = {
    ErrorKind::kConnectFailure, ErrorKind::kReset,     ErrorKind::kTimeout,
    ErrorKind::kStatus502,      ErrorKind::kStatus503, ErrorKind::kStatus504,
    ErrorKind::kOverflow,       ErrorKind::kNoUpstream};

void appendNumber(std::string& out, uint64_t v) {
  out += std::to_string(v);
}

void appendDouble(std::string& out, double v) {
  char buf[32];
  int n = std::snprintf(buf, sizeof buf, "%.9g", v);
  out.append(buf, n > 0 ? static_cast<size_t>(n) : 0);
}

void appendHeader(std::string& out, std::string_view name, std::string_view type,
                  std::string_view help) {
  out += "# HELP ";
  out += name;
  out += ' ';
  out += help;
  out += "\n# TYPE ";
  out += name;
  out += ' ';
  out += type;
  out += '\n';
}

// name{route="..",upstream="..",<extra>} — `upstream` may be null (route families).
void appendSampleStart(std::string& out, std::string_view name, const std::string& route,
                       const std::string* upstream, std::string_view extra_label = {},
                       std::string_view extra_value = {}) {
  out += name;
  out += "{route=\"";
  appendEscapedLabelValue(out, route);
  out += '"';
  if (upstream != nullptr) {
    out += ",upstream=\"";
    appendEscapedLabelValue(out, *upstream);
    out += '"';
  }
  if (!extra_label.empty()) {
    out += ',';
    out += extra_label;
    out += "=\"";
    appendEscapedLabelValue(out, extra_value);
    out += '"';
  }
  out += "} ";
}

void appendHistogram(std::string& out, std::string_view name, const std::string& route,
                     const std::string* upstream, const LatencyHistogram& h) {
  std::string bucket = std::string(name) + "_bucket";
  // Read the count first: buckets read later can only be larger, and +Inf must be the
  // largest, so +Inf is the maximum of the two.
  uint64_t count = h.count();
  uint64_t last = 0;
  for (size_t i = 0; i < LatencyHistogram::kBoundsSeconds.size(); ++i) {
    std::string le;
    appendDouble(le, LatencyHistogram::kBoundsSeconds[i]);
    appendSampleStart(out, bucket, route, upstream, "le", le);
    last = h.cumulative(i);
    appendNumber(out, last);
    out += '\n';
  }
  if (last > count) count = last;
  appendSampleStart(out, bucket, route, upstream, "le", "+Inf");
  appendNumber(out, count);
  out += '\n';
  appendSampleStart(out, std::string(name) + "_sum", route, upstream);
  appendDouble(out, h.sumSeconds());
  out += '\n';
  appendSampleStart(out, std::string(name) + "_count", route, upstream);
  appendNumber(out, count);
  out += '\n';
}

}  // namespace

std::string_view errorKindName(ErrorKind kind) {
  switch (kind) {
    case ErrorKind::kConnectFailure:
      return "connect_failure";
    case ErrorKind::kReset:
      return "reset";
    case ErrorKind::kTimeout:
      return "timeout";
    case ErrorKind::kStatus502:
      return "502";
    case ErrorKind::kStatus503:
      return "503";
    case ErrorKind::kStatus504:
      return "504";
    case ErrorKind::kOverflow:
      return "overflow";
    case ErrorKind::kNoUpstream:
      return "no_upstream";
  }
  return "unknown";
}

void LatencyHistogram::observe(Duration d) {
  int64_t ns = d.count() < 0 ? 0 : d.count();
  double seconds = static_cast<double>(ns) / 1e9;
  for (size_t i = 0; i < kBoundsSeconds.size(); ++i) {
    if (seconds <= kBoundsSeconds[i]) {
      buckets_[i].fetch_add(1, kRelaxed);
      break;
    }
  }
  sum_ns_.fetch_add(static_cast<uint64_t>(ns), kRelaxed);
  count_.fetch_add(1, kRelaxed);
}

uint64_t LatencyHistogram::cumulative(size_t i) const {
  uint64_t total = 0;
  for (size_t j = 0; j <= i && j < buckets_.size(); ++j) total += buckets_[j].load(kRelaxed);
  return total;
}

double LatencyHistogram::sumSeconds() const {
  return static_cast<double>(sum_ns_.load(kRelaxed)) / 1e9;
}

GatewayMetrics::GatewayMetrics(ClockPtr clock) : clock_(std::move(clock)) {}

RouteStatsPtr GatewayMetrics::routeStats(const std::string& route) {
  std::lock_guard<std::mutex> lock(mu_);
  auto& slot = routes_[route];
  if (auto live = slot.lock()) return live;
  auto fresh = std::make_shared<RouteStats>();
  slot = fresh;
  return fresh;
}

UpstreamStatsPtr GatewayMetrics::upstreamStats(const std::string& route,
                                               const std::string& upstream) {
  std::lock_guard<std::mutex> lock(mu_);
  auto& slot = upstreams_[{route, upstream}];
  if (auto live = slot.lock()) return live;
  auto fresh = std::make_shared<UpstreamStats>();
  slot = fresh;
  return fresh;
}

void GatewayMetrics::renderPrometheus(std::string& out) {
  // Collect under the lock, render without it: rendering thousands of series takes
  // milliseconds and table builds (which register stats) must not wait for a scrape.
  std::vector<std::pair<std::string, RouteStatsPtr>> routes;
  std::vector<std::pair<std::pair<std::string, std::string>, UpstreamStatsPtr>> ups;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (auto it = routes_.begin(); it != routes_.end();) {
      if (auto live = it->second.lock()) {
        routes.emplace_back(it->first, std::move(live));
        ++it;
      } else {
        it = routes_.erase(it);
      }
    }
    for (auto it = upstreams_.begin(); it != upstreams_.end();) {
      if (auto live = it->second.lock()) {
        ups.emplace_back(it->first, std::move(live));
        ++it;
      } else {
        it = upstreams_.erase(it);
      }
    }
  }

  const int64_t now_ns = clock_->now().time_since_epoch().count();

  auto routeCounter = [&](std::string_view name, std::string_view help, auto get) {
    appendHeader(out, name, "counter", help);
    for (size_t i = 0; i < routes.size(); ++i) {
      appendSampleStart(out, name, routes[i].first, nullptr);
      appendNumber(out, get(*routes[i].second));
      out += '\n';
    }
  };
  routeCounter("edge_gateway_route_requests_total", "Requests matched to the route.",
               [](const RouteStats& s) { return s.requests.load(kRelaxed); });
  routeCounter("edge_gateway_route_retries_total", "Retries made for the route's requests.",
               [](const RouteStats& s) { return s.retries.load(kRelaxed); });
  routeCounter("edge_gateway_route_retries_refused_total", "Retries the retry budget refused.",
               [](const RouteStats& s) { return s.retries_refused_by_budget.load(kRelaxed); });
  {
    std::string_view name = "edge_gateway_route_errors_total";
    appendHeader(out, name, "counter",
                 "Requests that ended without an upstream's answer, by kind.");
    for (size_t i = 0; i < routes.size(); ++i) {
      for (ErrorKind k : kAllErrorKinds) {
        appendSampleStart(out, name, routes[i].first, nullptr, "kind", errorKindName(k));
        appendNumber(out, routes[i].second->errors[static_cast<size_t>(k)].load(kRelaxed));
        out += '\n';
      }
    }
  }
  {
    std::string_view name = "edge_gateway_route_request_duration_seconds";
    appendHeader(out, name, "histogram", "Whole-request latency, retries included.");
    for (size_t i = 0; i < routes.size(); ++i) {
      appendHistogram(out, name, routes[i].first, nullptr, routes[i].second->latency);
    }
  }

  auto upCounter = [&](std::string_view name, std::string_view type, std::string_view help,
                       auto get) {
    appendHeader(out, name, type, help);
    for (size_t i = 0; i < ups.size(); ++i) {
      appendSampleStart(out, name, ups[i].first.first, &ups[i].first.second);
      appendNumber(out, get(*ups[i].second));
      out += '\n';
    }
  };
  upCounter("edge_gateway_upstream_requests_total", "counter", "Tries sent to the upstream.",
            [](const UpstreamStats& s) { return s.requests.load(kRelaxed); });
  upCounter("edge_gateway_upstream_active", "gauge", "Tries in flight to the upstream.",
            [](const UpstreamStats& s) {
              int64_t a = s.active.load(kRelaxed);
              return static_cast<uint64_t>(a < 0 ? 0 : a);
            });
  upCounter("edge_gateway_upstream_ejected", "gauge",
            "1 while outlier detection keeps the upstream out of rotation.",
            [now_ns](const UpstreamStats& s) {
              return static_cast<uint64_t>(s.ejected_until_ns.load(kRelaxed) > now_ns ? 1 : 0);
            });
  upCounter("edge_gateway_upstream_ejections_total", "counter",
            "Times outlier detection ejected the upstream.",
            [](const UpstreamStats& s) { return s.ejections_total.load(kRelaxed); });
  upCounter("edge_gateway_upstream_breaker_rejections_total", "counter",
            "Tries refused because the upstream's circuit breaker was full.",
            [](const UpstreamStats& s) { return s.breaker_rejections.load(kRelaxed); });
  {
    std::string_view name = "edge_gateway_upstream_errors_total";
    appendHeader(out, name, "counter", "Failed tries, by kind.");
    for (size_t i = 0; i < ups.size(); ++i) {
      for (ErrorKind k : kAllErrorKinds) {
        if (k == ErrorKind::kOverflow || k == ErrorKind::kNoUpstream) continue;
        appendSampleStart(out, name, ups[i].first.first, &ups[i].first.second, "kind",
                          errorKindName(k));
        appendNumber(out, ups[i].second->errors[static_cast<size_t>(k)].load(kRelaxed));
        out += '\n';
      }
    }
  }
  {
    std::string_view name = "edge_gateway_upstream_try_duration_seconds";
    appendHeader(out, name, "histogram", "Latency of one try, from pick to outcome.");
    for (size_t i = 0; i < ups.size(); ++i) {
      appendHistogram(out, name, ups[i].first.first, &ups[i].first.second, ups[i].second->latency);
    }
  }
}

void appendEscapedLabelValue(std::string& out, std::string_view value) {
  for (char c : value) {
    switch (c) {
      case '\\':
        out += "\\\\";
        break;
      case '"':
        out += "\\\"";
        break;
      case '\n':
        out += "\\n";
        break;
      default:
        out += c;
    }
  }
}

AccessLogSampler::AccessLogSampler(ClockPtr clock, Options options)
    : clock_(std::move(clock)), options_(options), epoch_(clock_->now()) {}

bool AccessLogSampler::shouldLog() {
  const int64_t second =
      std::chrono::duration_cast<std::chrono::seconds>(clock_->now() - epoch_).count();
  int64_t seen = second_.load(kRelaxed);
  if (seen != second) {
    // One thread wins the roll-over and resets the count; a few requests counted by
    // others in the instant between are lost, which only makes the next second log a
    // little more.
    if (second > seen && second_.compare_exchange_strong(seen, second, kRelaxed)) {
      in_second_.store(0, kRelaxed);
    }
  }
  uint64_t n = in_second_.fetch_add(1, kRelaxed);
  if (n < options_.full_rate_per_second) return true;
  if (options_.one_in <= 1) return true;
  if (over_.fetch_add(1, kRelaxed) % options_.one_in == 0) return true;
  skipped_.fetch_add(1, kRelaxed);
  return false;
}

}  // namespace edge::gateway
