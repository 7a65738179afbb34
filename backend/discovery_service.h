// Global discovery and the registry: what must be known beyond one link.
//
// Supernodes register their cluster (members with a profile summary, services,
// location) and re-send it only when its digest changes; between changes a heartbeat
// keeps the record alive. Every node with a backend also asks for its own reachability:
// the service calls the node back on its endpoint (a peer-channel handshake that proves
// the node id, not only an open port) and records whether it answered, so a caller knows
// whether to dial the node directly or through its SEP (docs/relay.md).
//
// Queries return nodes by scope: `account` (every node registered under the caller's
// account, across networks), `proximity` (within a radius or a box of a point, nearest
// first), each combinable with `network` (one cluster id). Records expire when their
// heartbeats stop; a query never returns an expired one.
//
// The registry lists backend services and the clusters they belong to, the backend's own
// instances (relay address, location: the signaling service picks the nearest), and the
// account's clusters ordered by distance.
//
// Store keys (all JSON values):
//   disc/clusters/<account>/<cluster key>   cluster record (cluster key: digest of the
//                                           cluster id and the address it registers from)
//   disc/nodes/<account>/<node id>          node record, written by its cluster's supernode
//   disc/reach/<account>/<node id>          reachability, written by the node's own check
//   registry/instances/<instance id>        backend instances (BackendServer writes them)
//   registry/services/<name>                backend services
//
// Thread-safety: every method may be called from any thread at once; all state is in
// the Store, so several replicas serve the same data.
#pragma once

#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>

#include "backend/auth.h"
#include "backend/geo.h"
#include "backend/store.h"
#include "common/clock.h"
#include "common/json.h"
#include "common/status.h"

namespace edge::http {
class ApiServer;
}

namespace edge::backend {

struct NodesQuery {
  std::string scope = "account";                     // "account" | "proximity" | "network"
  std::string account;                               // admin only; others get their own
  std::string network;                               // a cluster id; required for scope=network
  std::optional<GeoPoint> near;                      // proximity: centre
  double radius_km = 0;                              // proximity: radius around `near` (> 0), or
  std::optional<std::pair<GeoPoint, GeoPoint>> box;  // proximity: (south-west, north-east)
  size_t limit = 1000;
};

class DiscoveryService {
 public:
  struct Options {
    int64_t record_ttl_seconds = 90;         // without a heartbeat, records expire
    int64_t reachability_ttl_seconds = 600;  // a node re-checks well before this
    size_t max_members = 1000;
    // Calls `endpoint` ("host:port") back and proves it is `node_id`; OK when it is.
    std::function<Status(const std::string& endpoint, const std::string& node_id)> call_back;
  };

  DiscoveryService(Store& store, Authenticator& auth, Clock& clock, Options options);

  void registerRoutes(http::ApiServer& server);

  // The operations behind the routes, callable from tests. `remote_address` is the
  // address the request came from (behind NAT: the public one).
  Result<nlohmann::json> registerCluster(const Caller& caller, const nlohmann::json& body,
                                         const std::string& remote_address);
  Result<nlohmann::json> heartbeat(const Caller& caller, const std::string& cluster_key,
                                   const std::string& digest);
  Result<nlohmann::json> checkReachability(const Caller& caller, const nlohmann::json& body,
                                           const std::string& remote_address);
  Result<nlohmann::json> queryNodes(const Caller& caller, const NodesQuery& query);
  Result<nlohmann::json> getNode(const Caller& caller, const std::string& node_id);

  Result<nlohmann::json> putService(const Caller& caller, const std::string& name,
                                    const nlohmann::json& body);
  Result<nlohmann::json> listServices(const Caller& caller);
  Status deleteService(const Caller& caller, const std::string& name);
  Result<nlohmann::json> listInstances(std::optional<GeoPoint> near);
  Result<nlohmann::json> listClusters(const Caller& caller, std::optional<GeoPoint> near);

  // Deletes expired cluster and node records (any replica may run it; compares make a
  // race with a fresh heartbeat harmless). Returns how many it removed.
  Result<size_t> expire();

  // Counters for /metrics.
  nlohmann::json stats() const;

 private:
  using RecordPtr = std::shared_ptr<const nlohmann::json>;
  static constexpr size_t kMaxCachedRecords = 200'000;

  int64_t nowUnix() const;
  // The record as JSON, parsed once per (key, revision) and shared.
  RecordPtr cached(const KeyValue& kv) const;
  Result<std::string> accountFor(const Caller& caller, const std::string& requested) const;

  Store& store_;
  Authenticator& auth_;
  Clock& clock_;
  Options options_;
  mutable std::mutex cache_mu_;
  mutable std::unordered_map<std::string, std::pair<int64_t, RecordPtr>> cache_;
};

}  // namespace edge::backend
