// Service manifests: the user-facing description of a microservice (docs/manifest.md).
//
// A manifest file is YAML (JSON is accepted, being YAML) holding one or more `---`
// documents, each `apiVersion: edge/v1`, `kind: Service`, `metadata`, `spec`. Parsing
// validates everything and reports every problem at once, each with its field path, so
// a user fixes a file in one round trip; the node API returns the same list as JSON.
//
// Thread-safety: free functions on values; safe from any thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "runtime-shim/runtime.h"

namespace edge::orchestrator {

using Millis = std::chrono::milliseconds;

struct EnvVar {
  std::string name;
  std::string value;
  bool operator==(const EnvVar&) const = default;
};

// Instances share the host's network, so a port is either *static* (container_port
// set: every instance binds that host port, hence at most one instance per node: one
// replica for scope node, replicas on different nodes for scope cluster) or *dynamic*
// (container_port 0: the node picks a free host port per instance and passes it in
// the environment, see portEnvName; a dynamic port always has a name).
struct PortSpec {
  int container_port = 0;        // 1..65535; 0 = dynamic
  std::string protocol = "tcp";  // "tcp" | "udp"
  std::string name;              // DNS label; optional for static ports, required for dynamic
  bool isDynamic() const { return container_port == 0; }
  bool operator==(const PortSpec&) const = default;
};

// The variable that tells an instance the host port of the named port `port_name`
// (static or dynamic): "PORT_" + the name upper-cased with '-' as '_' ("metrics-v2" ->
// "PORT_METRICS_V2"). kPortEnv holds the host port of the service's first port.
std::string portEnvName(std::string_view port_name);
inline constexpr char kPortEnv[] = "PORT";

struct ResourceLimits {
  int64_t nano_cpus = 0;     // 0 = unlimited
  int64_t memory_bytes = 0;  // 0 = unlimited, else >= 6Mi
  int64_t pids = 0;          // 0 = unlimited
  bool operator==(const ResourceLimits&) const = default;
};

enum class RestartPolicy { kAlways, kOnFailure, kNever };
std::string_view restartPolicyName(RestartPolicy p);  // "always" | "on-failure" | "never"

struct HealthCheck {
  enum class Kind { kHttp, kTcp, kExec };
  Kind kind = Kind::kTcp;
  std::string http_path;  // kHttp only; starts with '/'
  // kHttp and kTcp: the container port probed. When the check names a port
  // (`port: http`), port_name is that name and `port` its number if it is static, or
  // 0 if it is dynamic (probe the instance's assigned host port).
  int port = 0;
  std::string port_name;
  std::vector<std::string> exec_command;  // kExec only; non-empty
  Millis interval{10'000};
  Millis timeout{2'000};
  Millis start_period{0};
  int retries = 3;  // consecutive failures before the replica counts as unhealthy
  bool operator==(const HealthCheck&) const = default;
};

struct Lifecycle {
  enum class Mode { kAlways, kOnDemand };
  Mode mode = Mode::kAlways;
  Millis idle_timeout{300'000};  // on-demand only: stop after this long without calls
  bool operator==(const Lifecycle&) const = default;
};

// How the gateway retries calls to a route (docs/manifest.md, spec.route.retry).
struct RetryPolicy {
  int attempts = 2;                // retries after the first try, 0..10
  Millis per_try_timeout{15'000};  // > 0: connect + until the response head
  Millis timeout{30'000};          // > 0: the whole call, every try included
  // What is retried: "connect-failure", "reset", "timeout", "502", "503", "504"; sorted,
  // no duplicates.
  std::vector<std::string> on{"502", "503", "504", "connect-failure", "reset"};
  bool non_idempotent = false;  // also retry POST/PATCH (only when the route says so)
  Millis backoff_base{25};      // full jitter: uniform in [0, min(max, base * 2^n)]
  Millis backoff_max{250};
  bool operator==(const RetryPolicy&) const = default;
};
// The values allowed in RetryPolicy::on.
const std::vector<std::string>& retryConditions();

struct Route {
  enum class Scope { kLocal, kGlobal };
  std::string base_path;  // default "/<name>"
  Scope scope = Scope::kLocal;
  RetryPolicy retry;
  std::vector<std::string> scopes;  // token scopes a caller must hold; empty = any caller
  bool operator==(const Route&) const = default;
};

// spec.placement (docs/manifest.md, docs/scheduling.md). scope node: the service runs on
// the node it is applied to, and a placement that names nodes, labels or constraints is
// refused (it could never be met there). scope cluster: the cluster's supernode places
// it (cluster/scheduler.h) on the members that meet every condition.
struct PlacementConstraint {
  enum class Op { kEq, kNe, kGe, kGt, kLe, kLt };
  // "arch" | "os" | "runtime" | "power" | "name" | "node" (id) | "role" | "cpu" |
  // "memory" | "label.<key>". cpu and memory are the node's allocatable share.
  std::string attribute;
  Op op = Op::kEq;
  std::string value;     // as written: "x86_64", "1Gi", "500m"
  int64_t quantity = 0;  // cpu (millicores) and memory (bytes): `value` parsed
  std::string text;      // the constraint as written, for messages
  bool operator==(const PlacementConstraint&) const = default;
};
std::string_view constraintOpName(PlacementConstraint::Op op);  // "==", "!=", ">=", ...

struct PlacementAffinity {
  std::string label;  // a node label key
  std::string value;
  int weight = 0;  // -100..100, not 0: preference (negative: aversion), never a condition
  bool operator==(const PlacementAffinity&) const = default;
};

struct Placement {
  enum class Scope { kNode, kCluster };
  enum class Mode { kReplicas, kEveryNode };
  enum class Strategy { kSpread, kBinpack };
  Scope scope = Scope::kNode;
  Mode mode = Mode::kReplicas;                // kEveryNode: one instance on each eligible node
  std::vector<std::string> nodes;             // names or ids; empty = any node
  std::map<std::string, std::string> labels;  // every label must match the node's
  std::vector<PlacementConstraint> constraints;
  Strategy strategy = Strategy::kSpread;
  std::vector<PlacementAffinity> affinity;
  bool operator==(const Placement&) const = default;
};

// spec.disconnect: what the cluster does with the share of a node it lost.
struct DisconnectPolicy {
  bool replace = true;   // place the lost node's instances elsewhere
  Millis lost_after{0};  // ... once it has been gone this long (0: at once)
  bool operator==(const DisconnectPolicy&) const = default;
};

// spec.update: rolling updates across the cluster's instances.
struct UpdatePolicy {
  int max_parallel = 1;              // 1..100 instances replaced at a time
  Millis min_healthy_time{5'000};    // a new instance healthy this long before the next
  Millis healthy_deadline{120'000};  // > min_healthy_time
  bool auto_revert = true;           // back to the previous spec when the deadline passes
  bool operator==(const UpdatePolicy&) const = default;
};

struct ServiceManifest {
  std::string name;  // DNS label: [a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?
  std::map<std::string, std::string> labels;
  // A reference ([registry[:port]/]path[:tag][@sha256:<hex>], e.g. "busybox:1") or a
  // path to a tarball.
  std::string image;
  bool image_is_tarball = false;  // image ends in ".tar": load it, then run it
  // Unset = the image's own; set (even empty) = override.
  std::optional<std::vector<std::string>> entrypoint;
  std::optional<std::vector<std::string>> command;
  std::vector<EnvVar> env;  // in the order written
  std::vector<PortSpec> ports;
  ResourceLimits resources;
  int replicas = 1;  // 0..1000
  RestartPolicy restart_policy = RestartPolicy::kAlways;
  std::optional<HealthCheck> health_check;
  Lifecycle lifecycle;
  Route route;
  Placement placement;
  DisconnectPolicy disconnect;
  UpdatePolicy update;
  bool operator==(const ServiceManifest&) const = default;
};

// One validation problem. `path` is the field ("spec.resources.memory", "spec.ports[1]");
// empty for problems with the file as a whole (syntax, size).
struct FieldError {
  int doc = 0;  // 1-based document index in the file; 0 = the whole file
  std::string path;
  std::string message;
  // "doc 1: spec.replicas: expected an integer, got \"three\"".
  std::string toString() const;
};

struct ManifestParse {
  std::vector<ServiceManifest> services;  // only meaningful when errors is empty
  std::vector<FieldError> errors;
};

// Files larger than this are refused before parsing.
inline constexpr size_t kMaxManifestBytes = 1 << 20;

// Where a manifest comes from. kApply: a user's manifest, held to every rule. kStored: a
// document this node stored earlier (the desired-state store reading its own writes
// back), held to the schema only: the rules that tie spec.placement together (its
// cluster-only fields need scope: cluster, every-node sets no replicas) are not applied,
// so a service stored by an older node, which took any nodes and labels, still reads;
// applying it again meets them. Keys added since (placement's scope, mode, constraints,
// strategy, affinity; spec.disconnect, spec.update) take their defaults when absent.
enum class ManifestOrigin { kApply, kStored };

// Parses and validates every document. Never throws, whatever the input.
ManifestParse parseManifestsDetailed(std::string_view text, std::string_view source_name,
                                     ManifestOrigin origin = ManifestOrigin::kApply);

// The same, as a Result: kInvalidArgument listing every error, one per line, each
// prefixed with `source_name`.
Result<std::vector<ServiceManifest>> parseManifests(std::string_view text,
                                                    std::string_view source_name,
                                                    ManifestOrigin origin = ManifestOrigin::kApply);

// The canonical document of `m` as compact JSON: apiVersion, kind, metadata, spec with
// every field written out (null for "not set": entrypoint/command = the image's,
// a dynamic port's containerPort, no health check, idleTimeout outside on-demand),
// object keys sorted, env as a list in its order, durations and quantities in forms
// the parser reads ("1500ms", "2m", "128Mi", "500m"). Equal manifests give equal
// text, and parseManifests(manifestToJson(m)) gives back `m` for any parsed `m`.
std::string manifestToJson(const ServiceManifest& m);

// The runtime spec for replica `replica` (0-based) of a service: name "<name>-<replica>",
// the service's labels plus Edgecloud's own (managed, service, replica).
runtime::ContainerSpec toContainerSpec(const ServiceManifest& m, int replica);

}  // namespace edge::orchestrator
