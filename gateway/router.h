// ServiceRouter: the gateway's control plane for each request. It implements the data
// path's Router (proxy.h): it matches the request against the route table, checks the
// caller's token, starts an on-demand service, attaches the node's token, and then drives
// the tries — which upstream (LoadBalancer), whether to retry (RetryPolicy, RetryBudget),
// what each try did to outlier detection and metrics — through the Exchange it hands the
// engine.
//
// Who may call what (docs/gateway.md, "Callers"):
// - local apps (unix socket, loopback): trusted like a sidecar's workload; a request
//   without Authorization gets the node's token attached; one with its own token (an end
//   user's, passed on) is checked like a network caller's;
// - network callers (plain HTTP from other hosts): must present a valid token of this
//   node's account when the node has an issuer to check against, and always when the
//   route names scopes;
// - peer gateways (TLS, node id proven by the certificate): served by local instances
//   only (a request never crosses more than one gateway hop), token checked when the node
//   has an issuer.
//
// Thread-safety: route() is called by every worker at once; setRoutes() and the
// accessors from any thread. The Exchanges it makes belong to one worker each.
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "common/clock.h"
#include "common/status.h"
#include "gateway/gateway_metrics.h"
#include "gateway/load_balancer.h"
#include "gateway/proxy.h"
#include "gateway/route_table.h"
#include "gateway/token_source.h"
#include "gateway/token_verifier.h"

namespace edge::gateway {

// What the router needs from the node that hosts it. Every hook may be unset.
struct RouterHooks {
  using Endpoints = Result<std::vector<std::string>>;
  // Starts on-demand `service` on this node; `done` (any thread, exactly once) gets the
  // ready instances' "127.0.0.1:port" addresses, or why it could not start.
  std::function<void(const std::string& service, std::function<void(Endpoints)> done)> activate;
  // A call to on-demand `service` began / ended (its idle timer).
  std::function<void(const std::string& service)> call_started;
  std::function<void(const std::string& service)> call_ended;
  // Blocking: a byte stream to peer `node_id` through the backend's relays (a connected
  // fd), for peers a direct connection cannot reach. Runs on a helper thread.
  std::function<Result<int>(const std::string& node_id)> dial_relay;
};

struct RouterOptions {
  std::string node_id;
  std::string account;  // tokens of callers must carry this `acct` ("" = any)
  // Asked per check when `account` is empty (the account a backend registered the node
  // in, known only once it has); "" = any.
  std::function<std::string()> account_of;
  // Incoming tokens: null = no issuer to check against (routes with scopes then refuse
  // network callers with 503, open routes take them as they come).
  TokenVerifierPtr verifier;
  std::string issuer;  // the `iss` the verifier accepts
  // Outgoing tokens: null = none attached.
  TokenSourcePtr tokens;
  // Scopes asked of `tokens`: the route's required scopes when true (a local account
  // signer can mint any), none (the source's default set) when false (edge-backend grants
  // a node client its own scopes only).
  bool tokens_carry_route_scopes = true;
  bool access_log = true;
};

class ServiceRouter : public Router {
 public:
  ServiceRouter(RouterOptions options, RouterHooks hooks, ClockPtr clock,
                std::shared_ptr<GatewayMetrics> metrics);
  ~ServiceRouter() override;

  // Replaces the route table. `hosted_on_demand`: the on-demand services this node runs
  // (started here on a call even while no instance is up). Returns build warnings.
  std::vector<std::string> setRoutes(const std::vector<RouteSpec>& specs,
                                     std::set<std::string> hosted_on_demand);
  RouteTableSnapshot routes() const { return table_.current(); }
  // Sets (or replaces) the incoming token check, for issuers learnt after start.
  void setVerifier(TokenVerifierPtr verifier, std::string issuer);
  bool hasVerifier() const { return verifier_.load() != nullptr; }
  GatewayMetrics& metrics() { return *metrics_; }
  UpstreamRegistry& registry() { return registry_; }

  void route(const RequestHead& head, const Caller& caller,
             std::function<void(Decision)> done) override;

 private:
  class ServiceExchange;
  friend class ServiceExchange;

  // The rest of route() once the token check is done.
  void forward(const RequestHead& head, const Caller& caller, RouteTableSnapshot table,
               const RouteEntry* entry, std::function<void(Decision)> done);
  void forwardWithToken(const RequestHead& head, const Caller& caller, RouteTableSnapshot table,
                        const RouteEntry* entry, std::vector<std::string> activated,
                        std::function<void(Decision)> done);
  bool hostsOnDemand(const std::string& service) const;

  struct VerifierState {
    TokenVerifierPtr verifier;
    std::string issuer;
  };
  RouterOptions options_;
  std::atomic<std::shared_ptr<const VerifierState>> verifier_;
  RouterHooks hooks_;
  ClockPtr clock_;
  std::shared_ptr<GatewayMetrics> metrics_;
  UpstreamRegistry registry_;
  LoadBalancer balancer_;
  RouteTableHolder table_;
  AccessLogSampler sampler_;
  mutable std::mutex mu_;
  std::set<std::string> hosted_on_demand_;  // guarded by mu_
};

// A local answer: {"error": message} with `status`, plus optional headers.
Decision errorDecision(int status, const std::string& message, std::vector<Header> headers = {});

}  // namespace edge::gateway
