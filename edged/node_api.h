// NodeApi: what the node's REST API (api/rest_api.cc) asks of a node, and nothing more:
// the desired-state operations, read views of what is stored and what runs, the runtime
// for images and logs, the event log, and the cluster, gateway and backend answers it
// passes on. Node implements it; tests/edged/rest_api_test.cc serves the REST API
// over a fake of it, with no store, reconciler or network behind.
//
// Errors are the Status codes the REST API turns into HTTP statuses
// (common/http_status.h): kInvalidArgument for bad input, kNotFound for an unknown
// service or generation, kFailedPrecondition when the node cannot do it now (no backend,
// nothing to roll back to), kUnavailable when a dependency is down.
//
// Thread-safety: every method may be called from any thread (handlers run on the API
// server's connection threads).
#pragma once

#include <nlohmann/json.hpp>

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/clock.h"
#include "common/http.h"
#include "common/status.h"
#include "discovery/types.h"
#include "orchestrator/events.h"
#include "orchestrator/manifest.h"
#include "orchestrator/reconciler.h"
#include "orchestrator/store.h"
#include "runtime-shim/runtime.h"

namespace edge::edged {

struct ApplyResult {
  bool dry_run = false;
  std::vector<orchestrator::ApplyOutcome> outcomes;
  std::vector<std::string> warnings;
  std::vector<orchestrator::FieldError> errors;  // non-empty = nothing was applied
};

class NodeApi {
 public:
  virtual ~NodeApi() = default;

  // Who this node is.
  virtual const std::string& name() const = 0;
  virtual const std::string& id() const = 0;
  virtual WallTime startedAt() const = 0;
  virtual Clock& clock() = 0;
  virtual const std::string& dataDir() const = 0;
  virtual const std::string& apiSocket() const = 0;

  // Desired-state changes: each persists first, then wakes the reconciler.
  // Parses, validates, loads tarball images and persists, all or nothing; manifest
  // errors come back in ApplyResult::errors, not as a Status. Relative tarball paths
  // are resolved against `manifest_dir` (the client's directory).
  virtual Result<ApplyResult> apply(std::string_view text, const std::string& manifest_dir,
                                    bool dry_run) = 0;
  // The new generation of the desired state.
  virtual Result<int64_t> remove(const std::string& name, bool dry_run) = 0;
  // To generation `to`, or the one before the current one.
  virtual Result<orchestrator::ServiceRecord> rollback(const std::string& name,
                                                       std::optional<int64_t> to) = 0;
  // Restarts every instance of a service, one at a time. Returns how many.
  virtual Result<int> restart(const std::string& name) = 0;

  // The desired state as stored.
  virtual Result<std::vector<orchestrator::ServiceRecord>> services() = 0;
  virtual Result<orchestrator::ServiceRecord> service(const std::string& name) = 0;
  // Newest first.
  virtual Result<std::vector<orchestrator::ServiceRecord>> history(const std::string& name) = 0;
  virtual int64_t storeRevision() = 0;

  // What runs, as the reconciler last saw it.
  virtual std::optional<orchestrator::ServiceStatus> serviceStatus(const std::string& name) = 0;
  virtual std::vector<orchestrator::InstanceStatus> instances() = 0;
  // After a change the reconciler should see now (an image loaded).
  virtual void wakeReconciler() = 0;

  // Images, containers made by hand, logs.
  virtual runtime::ContainerRuntime& runtime() = 0;
  virtual orchestrator::EventLog& events() = 0;

  // The clusters of this node's links; enabled=false when discovery is off.
  virtual discovery::ClusterSnapshot clusterSnapshot() const = 0;
  // The gateway's route table (an empty array without a gateway).
  virtual nlohmann::json gatewayRoutes() = 0;
  // edge-backend, as the node sees it (backend_link.h).
  virtual bool backendConfigured() = 0;
  virtual nlohmann::json backendState() = 0;
  virtual Result<nlohmann::json> queryNodes(const std::string& query) = 0;
  virtual Result<nlohmann::json> peerRoute(const std::string& node_id) = 0;
  virtual Result<http::Response> callPeer(const std::string& node_id,
                                          const http::Request& request) = 0;

  // The Prometheus text of /metrics.
  virtual std::string metricsText() = 0;
  // Counts an API request for /metrics.
  virtual void countRequest(bool error) = 0;
};

}  // namespace edge::edged
