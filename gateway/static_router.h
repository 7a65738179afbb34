// StaticRouter: a fixed route table for edge-gateway and the engine's tests.
//
// Each route maps a path prefix to upstream "host:port"s. A request goes to the route
// with the longest matching prefix ("/api" matches "/api" and "/api/x", not "/apix";
// "/" matches everything), round robin over its upstreams (per worker thread, so no
// shared counter on the hot path). Idempotent requests are retried once, on the next
// upstream, when a connect fails. No route: 404 with a JSON error.
//
// Thread-safety: immutable after create(); route() runs on any worker concurrently.
// Errors: parseRoute()/create() kInvalidArgument naming the bad route text.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "gateway/proxy.h"

namespace edge::gateway {

struct StaticRoute {
  std::string prefix;                  // "/", "/api"
  std::vector<std::string> upstreams;  // "127.0.0.1:8080"
};

struct StaticRouterOptions {
  Duration per_try_timeout = std::chrono::seconds(10);
  Duration deadline = std::chrono::seconds(30);
};

class StaticRouter final : public Router {
 public:
  // "/api=127.0.0.1:8080,127.0.0.1:8081".
  static Result<StaticRoute> parseRoute(std::string_view text);
  static Result<std::unique_ptr<StaticRouter>> create(std::vector<StaticRoute> routes,
                                                      StaticRouterOptions options = {});

  void route(const RequestHead& head, const Caller& caller,
             std::function<void(Decision)> done) override;

 private:
  StaticRouter(std::vector<StaticRoute> routes, StaticRouterOptions options)
      : routes_(std::move(routes)), options_(options) {}
  std::vector<StaticRoute> routes_;  // longest prefix first
  StaticRouterOptions options_;
};

}  // namespace edge::gateway
