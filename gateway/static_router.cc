#include "gateway/static_router.h"

#include <algorithm>

#include "common/net.h"

namespace edge::gateway {
namespace {

class StaticExchange final : public Exchange {
 public:
  StaticExchange(const StaticRoute& route, size_t start, bool idempotent,
                 const StaticRouterOptions& options)
      : route_(route), start_(start), idempotent_(idempotent), options_(options) {}

  std::optional<Target> nextTarget(int attempt) override {
    if (route_.upstreams.empty()) return std::nullopt;
    const std::string& a = route_.upstreams[(start_ + attempt) % route_.upstreams.size()];
    Target t;
    t.key = a;
    t.address = a;
    return t;
  }
  std::optional<Duration> tryDone(const TryResult& r, bool retry_possible) override {
    if (retry_possible && idempotent_ && !retried_ && r.outcome == TryEnd::kConnectFailed) {
      retried_ = true;
      return Duration::zero();
    }
    return std::nullopt;
  }
  int rejectStatus() const override { return 503; }
  std::string rejectReason() const override {
    return "route " + route_.prefix + " has no upstream";
  }
  Duration perTryTimeout() const override { return options_.per_try_timeout; }
  Duration deadline() const override { return options_.deadline; }
  const std::vector<Header>& setHeaders() const override { return kNone; }
  void finish(const FinishInfo&) override {}

 private:
  static inline const std::vector<Header> kNone{};
  const StaticRoute& route_;
  size_t start_;
  bool idempotent_;
  bool retried_ = false;
  const StaticRouterOptions& options_;
};

bool prefixMatches(std::string_view path, std::string_view prefix) {
  if (prefix == "/") return true;
  if (path.substr(0, prefix.size()) != prefix) return false;
  return path.size() == prefix.size() || prefix.back() == '/' || path[prefix.size()] == '/';
}

}  // namespace

Result<StaticRoute> StaticRouter::parseRoute(std::string_view text) {
  size_t eq = text.find('=');
  if (eq == std::string_view::npos) {
    return Status::invalidArgument("route \"" + std::string(text) +
                                   "\" has no '='; expected PREFIX=HOST:PORT[,HOST:PORT...]");
  }
  StaticRoute r;
  r.prefix = std::string(text.substr(0, eq));
  if (r.prefix.empty() || r.prefix[0] != '/') {
    return Status::invalidArgument("route prefix \"" + r.prefix + "\" must start with '/'");
  }
  std::string_view rest = text.substr(eq + 1);
  while (!rest.empty()) {
    size_t comma = rest.find(',');
    std::string a(rest.substr(0, comma));
    std::string host;
    int port = 0;
    if (!net::splitHostPort(a, &host, &port) || host.empty() || port == 0) {
      return Status::invalidArgument("route " + r.prefix + ": upstream \"" + a +
                                     "\" is not HOST:PORT with a port 1..65535");
    }
    r.upstreams.push_back(a);
    if (comma == std::string_view::npos) break;
    rest = rest.substr(comma + 1);
  }
  if (r.upstreams.empty()) {
    return Status::invalidArgument("route " + r.prefix + " has no upstream after '='");
  }
  return r;
}

Result<std::unique_ptr<StaticRouter>> StaticRouter::create(std::vector<StaticRoute> routes,
                                                           StaticRouterOptions options) {
  for (const StaticRoute& r : routes) {
    if (r.prefix.empty() || r.prefix[0] != '/') {
      return Status::invalidArgument("route prefix \"" + r.prefix + "\" must start with '/'");
    }
  }
  std::stable_sort(routes.begin(), routes.end(), [](const StaticRoute& a, const StaticRoute& b) {
    return a.prefix.size() > b.prefix.size();
  });
  return std::unique_ptr<StaticRouter>(new StaticRouter(std::move(routes), options));
}

void StaticRouter::route(const RequestHead& head, const Caller&,
                         std::function<void(Decision)> done) {
  static thread_local size_t round_robin = 0;
  std::string_view path = head.path();
  for (const StaticRoute& r : routes_) {
    if (!prefixMatches(path, r.prefix)) continue;
    Decision d;
    d.exchange =
        std::make_unique<StaticExchange>(r, round_robin++, isIdempotent(head.method), options_);
    done(std::move(d));
    return;
  }
  Decision d;
  d.status = 404;
  d.body = "{\"error\":\"no route for this path\"}\n";
  done(std::move(d));
}

}  // namespace edge::gateway
