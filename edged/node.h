// Node: one edged — the desired-state store, the runtime, the reconciler, health checks,
// the event log, the node API, discovery, the backend link and the gateway, wired together.
//
// Lifecycle: create() opens the store and the runtime (failing with the reason when
// either cannot work); start() binds the cluster port and starts the subsystems
// (subsystem.h) in the order addSubsystems() lists them — discovery, health checks, the
// reconciler with the desired state loaded, the node API, the backend link, the gateway,
// the cluster port's accepting; stop() stops them but leaves every workload running, so a
// restarted edged adopts them. Operations (apply, delete, ...) are the ones the REST
// API exposes; they persist first, then wake the reconciler.
//
// Thread-safety: every public method may be called from any thread after create().
#pragma once

#include <atomic>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "common/clock.h"
#include "common/cluster_port.h"
#include "common/status.h"
#include "discovery/discovery.h"
#include "discovery/types.h"
#include "edged/backend_link.h"
#include "edged/node_api.h"
#include "edged/node_gateway.h"
#include "edged/subsystem.h"
#include "identity/identity.h"
#include "orchestrator/events.h"
#include "orchestrator/health.h"
#include "orchestrator/image_loader.h"
#include "orchestrator/manifest.h"
#include "orchestrator/reconciler.h"
#include "orchestrator/store.h"
#include "runtime-shim/runtime.h"

namespace edge::http {
class ApiServer;
}

namespace edge::edged {

struct NodeConfig {
  std::string node_name;  // "" = the host name
  std::string data_dir = "/var/lib/edged";
  std::string run_dir = "/run/edged";
  std::string api_socket = "/run/edged/edged.sock";
  std::string api_socket_group = "edge";  // owns the socket (mode 0660); missing = root only
  std::string runtime = "auto";           // auto | docker | light
  std::string docker_endpoint = "unix:///var/run/docker.sock";
  int port_range_first = 20000;  // dynamic service ports
  int port_range_last = 29999;
  std::string listen = "0.0.0.0:8083";  // cluster-facing TCP (discovery sessions, gateway)

  // Discovery: the clusters of this host's links (docs/discovery.md).
  bool discovery = true;
  std::vector<std::string> discovery_interfaces;  // empty = every link interface
  std::string discovery_group = "239.255.83.83:8083";
  std::string advertise;        // "addr:port" peers use; "" = interface address + listen port
  std::string power = "mains";  // mains | battery: the host cannot always tell
  bool persistent = true;       // an always-on host
  std::string account_id;
  std::string public_address;
  std::string cluster_key_file;  // 32 random bytes shared by the cluster's nodes; "" = none
  int blacklist_seconds = 600;
  int beacon_interval_ms = 200;
  int supernode_timeout_ms = 700;

  // Central services (docs/backend.md): "" = none; the node and its link clusters work
  // without them.
  std::string backend;                  // "http://host:port" of edge-backend
  std::string backend_join_token_file;  // an account's join token, for the first start
  bool has_location = false;            // location: "lat,lon", for proximity queries
  double latitude = 0;
  double longitude = 0;

  // The gateway (docs/gateway.md): on the cluster port (`listen`) and this socket.
  std::string gateway_socket = "/run/edged/gateway.sock";  // "" = none
  int gateway_workers = 0;                                 // 0 = one per CPU
  std::string global_gateway;    // "http://host:port" of the central gateway; "" = none
  std::string account_key_file;  // ES256 key shared by the account's nodes; "" = none
};

class Node final : public NodeApi {
 public:
  static Result<std::unique_ptr<Node>> create(const NodeConfig& config);
  ~Node();

  Status start();
  void stop();

  // Parses, validates, loads tarball images and persists, all or nothing. Relative
  // tarball paths are resolved against `manifest_dir` (the client's directory).
  Result<ApplyResult> apply(std::string_view text, const std::string& manifest_dir,
                            bool dry_run) override;
  Result<int64_t> remove(const std::string& name, bool dry_run) override;
  Result<orchestrator::ServiceRecord> rollback(const std::string& name,
                                               std::optional<int64_t> to) override;
  // Restarts every instance of a service, one at a time. Returns how many.
  Result<int> restart(const std::string& name) override;

  const NodeConfig& config() const { return config_; }
  const std::string& name() const override { return name_; }
  // Derived from the node key (data_dir/node.key), made on first start.
  const std::string& id() const override { return id_; }
  WallTime startedAt() const override { return started_at_; }
  const std::string& dataDir() const override { return config_.data_dir; }
  const std::string& apiSocket() const override { return config_.api_socket; }
  orchestrator::StateStore& store() { return *store_; }
  runtime::ContainerRuntime& runtime() override { return *runtime_; }
  orchestrator::Reconciler& reconciler() { return *reconciler_; }
  orchestrator::EventLog& events() override { return events_; }
  Clock& clock() override { return *clock_; }

  // NodeApi's read views and pass-throughs (node_api.h).
  Result<std::vector<orchestrator::ServiceRecord>> services() override { return store_->list(); }
  Result<orchestrator::ServiceRecord> service(const std::string& name) override {
    return store_->get(name);
  }
  Result<std::vector<orchestrator::ServiceRecord>> history(const std::string& name) override {
    return store_->history(name);
  }
  int64_t storeRevision() override { return store_->revision(); }
  std::optional<orchestrator::ServiceStatus> serviceStatus(const std::string& name) override {
    return reconciler_->service(name);
  }
  std::vector<orchestrator::InstanceStatus> instances() override {
    return reconciler_->instances();
  }
  void wakeReconciler() override { reconciler_->wake(); }
  nlohmann::json gatewayRoutes() override;
  bool backendConfigured() override { return backend_->configured(); }
  nlohmann::json backendState() override { return backend_->state(); }
  Result<nlohmann::json> queryNodes(const std::string& query) override {
    return backend_->queryNodes(query);
  }
  Result<nlohmann::json> peerRoute(const std::string& node_id) override {
    return backend_->route(node_id);
  }
  Result<http::Response> callPeer(const std::string& node_id,
                                  const http::Request& request) override {
    return backend_->callPeer(node_id, request);
  }
  std::string metricsText() override;
  // Pushes the store's content to the reconciler (after any change to it).
  Status refreshDesired();
  // The clusters this node belongs to; enabled=false when discovery is off.
  discovery::ClusterSnapshot clusterSnapshot() const override;
  // The node's side of edge-backend (configured() is false without one).
  BackendLink& backend() { return *backend_; }
  // The gateway; null until start() and when it failed to start.
  NodeGateway* gateway() { return gateway_.get(); }
  // Counts API requests for /metrics.
  void countRequest(bool error) override;
  int64_t requests() const { return requests_.load(); }
  int64_t requestErrors() const { return request_errors_.load(); }

 private:
  explicit Node(const NodeConfig& config);
  void addSubsystems();
  Status startDiscovery();
  Status startReconciler();
  void stopReconciler();
  Status startApi();

  NodeConfig config_;
  std::string name_;
  std::string id_;
  ClockPtr clock_;
  WallTime started_at_{};
  orchestrator::EventLog events_;
  orchestrator::StateStorePtr store_;
  runtime::ContainerRuntimePtr runtime_;
  std::unique_ptr<orchestrator::ImageLoader> image_loader_;
  orchestrator::SystemProber prober_;
  std::unique_ptr<orchestrator::HealthMonitor> health_;
  std::unique_ptr<orchestrator::Reconciler> reconciler_;
  std::unique_ptr<http::ApiServer> api_;
  std::optional<identity::NodeIdentity> identity_;
  // The cluster port (`listen`): the one listener of discovery sessions, peer channels
  // and the gateway's TLS and HTTP; relay legs are classified by it too.
  std::unique_ptr<net::ClusterPort> port_;
  std::unique_ptr<discovery::Discovery> discovery_;
  std::unique_ptr<BackendLink> backend_;
  std::unique_ptr<NodeGateway> gateway_;
  // Discovery, health checks, the reconciler, the API, the backend link, the gateway and
  // the cluster port's accepting, in start order (addSubsystems()).
  Subsystems subsystems_;
  std::mutex apply_mu_;  // applies, deletes, rollbacks one at a time
  std::atomic<int64_t> requests_{0};
  std::atomic<int64_t> request_errors_{0};
};

}  // namespace edge::edged
