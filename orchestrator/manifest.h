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

struct PortSpec {
  int container_port = 0;        // 1..65535
  std::string protocol = "tcp";  // "tcp" | "udp"
  std::string name;              // optional
};

struct ResourceLimits {
  int64_t nano_cpus = 0;     // 0 = unlimited
  int64_t memory_bytes = 0;  // 0 = unlimited, else >= 6Mi
  int64_t pids = 0;          // 0 = unlimited
};

enum class RestartPolicy { kAlways, kOnFailure, kNever };
std::string_view restartPolicyName(RestartPolicy p);  // "always" | "on-failure" | "never"

struct HealthCheck {
  enum class Kind { kHttp, kTcp, kExec };
  Kind kind = Kind::kTcp;
  std::string http_path;                  // kHttp only; starts with '/'
  int port = 0;                           // kHttp and kTcp
  std::vector<std::string> exec_command;  // kExec only; non-empty
  Millis interval{10'000};
  Millis timeout{2'000};
  Millis start_period{0};
  int retries = 3;  // consecutive failures before the replica counts as unhealthy
};

struct Lifecycle {
  enum class Mode { kAlways, kOnDemand };
  Mode mode = Mode::kAlways;
  Millis idle_timeout{300'000};  // on-demand only: stop after this long without calls
};

struct RetryPolicy {
  int attempts = 0;                // retries after the first try, 0..10
  Millis per_try_timeout{30'000};  // > 0
};

struct Route {
  enum class Scope { kLocal, kGlobal };
  std::string base_path;  // default "/<name>"
  Scope scope = Scope::kLocal;
  RetryPolicy retry;
  std::vector<std::string> scopes;  // token scopes a caller must hold; empty = any caller
};

struct Placement {
  std::vector<std::string> nodes;             // empty = any node
  std::map<std::string, std::string> labels;  // every label must match the node's
};

struct ServiceManifest {
  std::string name;  // DNS label: [a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?
  std::map<std::string, std::string> labels;
  std::string image;              // a reference ("busybox:1") or a path to a tarball
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

// Parses and validates every document. Never throws, whatever the input.
ManifestParse parseManifestsDetailed(std::string_view text, std::string_view source_name);

// The same, as a Result: kInvalidArgument listing every error, one per line, each
// prefixed with `source_name`.
Result<std::vector<ServiceManifest>> parseManifests(std::string_view text,
                                                    std::string_view source_name);

// The runtime spec for replica `replica` (0-based) of a service: name "<name>-<replica>",
// the service's labels plus Edgecloud's own (managed, service, replica).
runtime::ContainerSpec toContainerSpec(const ServiceManifest& m, int replica);

}  // namespace edge::orchestrator
