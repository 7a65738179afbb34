// NodeGateway: the gateway as edged runs it (docs/gateway.md). It owns the data path
// (gateway::ProxyServer on the gateway socket, and on the cluster port through the
// demultiplexer), the router, node-to-node TLS and the token sources, and it feeds the
// route table from what the node knows: the services this node runs (manifests and the
// reconciler's instances), the routes its cluster peers announce (discovery profiles),
// and the configured central gateway. It also runs on-demand services: started on the
// first call (the call waits until an instance answers its probe), stopped after their
// idle timeout without calls.
//
// Threads: one feeder thread (route table, on-demand probes and idle stops) plus the
// ProxyServer's workers. The cluster port (common/cluster_port.h) accepts and classifies
// the connections; TLS and HTTP ones come here through adopt().
// Thread-safety: setServices(), adopt(), routesJson() and renderMetrics() may be called
// from any thread; start()/stop() from the owner.
#pragma once

#include <atomic>
#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/clock.h"
#include "common/status.h"
#include "discovery/discovery.h"
#include "identity/identity.h"
#include "orchestrator/events.h"
#include "orchestrator/manifest.h"
#include "orchestrator/reconciler.h"

namespace edge::gateway {
class ProxyServer;
class ServiceRouter;
class NodeTls;
class GatewayMetrics;
class TokenSource;
class TokenVerifier;
}  // namespace edge::gateway

namespace edge::edged {

class BackendLink;

class NodeGateway {
 public:
  struct Options {
    std::string node_id;
    std::string account;
    std::string unix_socket;     // "" = none
    int workers = 0;             // 0 = one per CPU
    std::string global_gateway;  // "http://host:port" of the central gateway, "" = none
    std::string account_key_file;
    // Where this node's gateway is for its own containers (EDGE_GATEWAY).
    std::string advertise_local;
  };

  NodeGateway(Options options, const identity::NodeIdentity& identity, Clock& clock,
              orchestrator::Reconciler& reconciler, orchestrator::EventLog& events,
              BackendLink& backend);
  ~NodeGateway();

  // `discovery` may be null (discovery off); it must outlive this object.
  Status start(discovery::Discovery* discovery);
  void stop();

  // The services of this node's desired state (after every change).
  void setServices(const std::vector<orchestrator::ServiceManifest>& services);
  // A connection for the gateway from the cluster port: plain HTTP or TLS (`tls`: its
  // first byte was 0x16), with the bytes the port already read.
  void adopt(int fd, std::string already_read, bool tls);

  // The route table for GET /api/v1/routes.
  nlohmann::json routesJson() const;
  void renderMetrics(std::string& out) const;
  // Profile entries announcing this node's routes to its cluster, so that peers route to
  // them with the same base path, scopes and retry policy (docs/gateway.md, "Routes"):
  //   name[=/base/path][;scopes=a,b][;retry=<attempts>,<perTryMs>,<timeoutMs>,<on>[,ni]]
  // with `on` as "connect-failure+reset+503"; the defaults are left out. An entry longer
  // than a profile allows (253 bytes) drops its scopes and policy, then is only "name".
  static std::vector<std::string> announcedServices(
      const std::vector<orchestrator::ServiceManifest>& services);
  // What a peer's entry says. A malformed field is ignored (the defaults stand).
  struct Announced {
    std::string service;
    std::string base_path;
    std::vector<std::string> scopes;
    std::optional<orchestrator::RetryPolicy> retry;
  };
  static Announced parseAnnounced(const std::string& entry);

 private:
  struct OnDemand;
  void feederLoop();
  void rebuildRoutes();
  // With a backend: makes the incoming token check once the backend's issuer is known.
  void learnIssuer();
  void serviceOnDemand(SteadyTime now);
  void activate(const std::string& service,
                std::function<void(Result<std::vector<std::string>>)> done);
  void callStarted(const std::string& service);
  void callEnded(const std::string& service);

  Options options_;
  const identity::NodeIdentity& identity_;
  Clock& clock_;
  orchestrator::Reconciler& reconciler_;
  orchestrator::EventLog& events_;
  BackendLink& backend_;
  discovery::Discovery* discovery_ = nullptr;

  std::shared_ptr<gateway::GatewayMetrics> metrics_;
  std::unique_ptr<gateway::NodeTls> tls_;
  std::shared_ptr<gateway::TokenSource> tokens_;
  std::shared_ptr<gateway::TokenVerifier> verifier_;
  std::unique_ptr<gateway::ServiceRouter> router_;
  std::unique_ptr<gateway::ProxyServer> proxy_;

  mutable std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ = false;
  std::vector<orchestrator::ServiceManifest> services_;         // under mu_
  std::map<std::string, std::unique_ptr<OnDemand>> on_demand_;  // under mu_
  std::string routes_digest_;                                   // feeder thread only
  // Nodes seen as members of our clusters, and when: a peer's TLS is accepted for a while
  // after it left the member list, so an election in progress (members not yet listed
  // again) does not cut calls between nodes that stay.
  std::map<std::string, SteadyTime> known_members_;  // under mu_
  std::thread feeder_;
  std::thread issuer_thread_;
};

}  // namespace edge::edged
