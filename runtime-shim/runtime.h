// ContainerRuntime: the one interface the orchestrator drives to run containers on a
// host, whatever is underneath.
//
// Two implementations: DockerRuntime (runtime-shim/docker/) talks to a Docker Engine or
// Podman's Docker-compatible socket; LightRuntime (runtime-shim/light/) runs containers
// itself with namespaces, cgroups and one `edge-shim` process per container. Obtain one
// through createRuntime() (runtime-shim/factory.h).
//
// Thread-safety: every method may be called from any thread concurrently. Long calls
// (waitContainer, readLogs with follow) block only their caller.
//
// Errors: kNotFound for an unknown container or image (by id, id prefix or name),
// kAlreadyExists for a name in use, kFailedPrecondition for an operation the state does
// not allow (start of a running container, removal of a running one without force),
// kInvalidArgument for a bad spec (message names the field), kUnavailable when the
// backing daemon cannot be reached.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/clock.h"
#include "common/status.h"

namespace edge::runtime {

// Label the orchestrator puts on the containers a manifest owns (with the node's
// io.edgecloud.node label). Runtimes never add it: a container made by hand (docker run
// through the node API, edge-ctr) is not managed and no reconciler touches it.
inline constexpr char kManagedLabel[] = "io.edgecloud.managed";

struct ImageInfo {
  std::string id;                   // "sha256:<hex of the image config>"
  std::vector<std::string> tags;    // normalised references, "busybox:latest"
  std::vector<std::string> layers;  // diff ids ("sha256:..."), lowest first
  int64_t size_bytes = 0;           // unpacked size
  WallTime created{};
  std::string os;            // "linux"
  std::string architecture;  // "amd64"
  // Run defaults from the image config.
  std::vector<std::string> entrypoint;
  std::vector<std::string> cmd;
  std::vector<std::string> env;  // "KEY=value"
  std::string working_dir;
  std::string user;
  std::string stop_signal;  // "" = SIGTERM
  std::map<std::string, std::string> labels;
};

enum class NetworkMode {
  kHost,  // share the host's network namespace (the default: edge services need ports)
  kNone,  // own network namespace with loopback only
};

struct BindMount {
  std::string source;  // absolute host path
  std::string target;  // absolute path in the container
  bool read_only = false;
};

struct Resources {
  int64_t memory_bytes = 0;  // hard limit; 0 = unlimited
  int64_t nano_cpus = 0;     // 1'000'000'000 = one CPU; 0 = unlimited
  int64_t pids_limit = 0;    // max processes; 0 = unlimited
};

struct ContainerSpec {
  std::string name;   // optional, unique among containers; [a-zA-Z0-9][a-zA-Z0-9_.-]*
  std::string image;  // reference ("busybox:1"), id or id prefix
  // Unset = take the image's. Set (even empty) = override, as Docker does.
  std::optional<std::vector<std::string>> entrypoint;
  std::optional<std::vector<std::string>> cmd;
  std::vector<std::string> env;  // "KEY=value"; merged over the image's env
  std::string working_dir;       // "" = image's, else "/"
  std::string user;              // "" = image's; "uid", "uid:gid", "name" or "name:group"
  std::string hostname;          // "" = first 12 chars of the id
  std::map<std::string, std::string> labels;
  NetworkMode network = NetworkMode::kHost;
  std::vector<BindMount> mounts;
  Resources resources;
  std::string stop_signal;  // "" = image's, else SIGTERM; "SIGINT", "INT" or "2"
  std::optional<std::chrono::seconds> stop_timeout;  // default 10 s
};

enum class ContainerState { kCreated, kRunning, kExited };
std::string_view containerStateName(ContainerState s);  // "created" | "running" | "exited"

struct ContainerInfo {
  std::string id;  // 64 hex chars
  std::string name;
  std::string image;     // as given in the spec
  std::string image_id;  // "sha256:..."
  ContainerState state = ContainerState::kCreated;
  int pid = 0;  // host pid of the container's first process while running
  int exit_code = 0;
  bool oom_killed = false;
  std::string error;  // why the last start failed, if it did
  WallTime created{};
  WallTime started{};
  WallTime finished{};
  // The effective configuration: the spec merged with the image's defaults.
  std::vector<std::string> entrypoint;
  std::vector<std::string> cmd;
  std::vector<std::string> env;
  std::string working_dir;
  std::string user;
  std::map<std::string, std::string> labels;
  NetworkMode network = NetworkMode::kHost;
  std::vector<BindMount> mounts;
  Resources resources;
};

struct ExitStatus {
  int exit_code = 0;  // 128+signal when killed by a signal
  bool oom_killed = false;
  WallTime finished{};
};

enum class LogStream { kStdout = 1, kStderr = 2 };

struct LogEntry {
  LogStream stream = LogStream::kStdout;
  WallTime time{};
  std::string data;  // one line including its '\n', or a partial line without one
};

struct LogOptions {
  bool include_stdout = true;
  bool include_stderr = true;
  bool follow = false;            // keep streaming until the container exits
  std::optional<size_t> tail;     // only the last N lines
  std::optional<WallTime> since;  // entries at or after
  std::optional<WallTime> until;  // entries before
};

// Called for each entry in order; return false to stop reading.
using LogSink = std::function<bool(const LogEntry&)>;

struct Stats {
  int64_t cpu_usage_ns = 0;  // cumulative CPU time
  int64_t memory_usage_bytes = 0;
  int64_t memory_limit_bytes = 0;  // 0 = unlimited
  int64_t pids = 0;
  WallTime read_at{};
};

struct Event {
  enum class Type { kCreate, kStart, kExit, kOom, kDestroy };
  Type type = Type::kExit;
  std::string container_id;
  int exit_code = 0;  // kExit only
  WallTime time{};
};
std::string_view eventTypeName(Event::Type t);

// Events are delivered on a runtime-owned thread; the sink must not block for long.
using EventSink = std::function<void(const Event&)>;

// Keeps a subscription alive; destroying it unsubscribes (and waits for a sink call
// in progress to return).
class Subscription {
 public:
  virtual ~Subscription() = default;
};
using SubscriptionPtr = std::unique_ptr<Subscription>;

struct ListOptions {
  bool all = true;                            // false = running only
  std::map<std::string, std::string> labels;  // every label must match
};

struct RuntimeInfo {
  std::string kind;     // "docker" | "light"
  std::string version;  // daemon version for docker, ours for light
  std::string api_version;
  std::string os;
  std::string kernel;
  std::string cgroup_version;  // "1" | "2"
  std::string isolation;       // light: "namespaces+cgroups+seccomp"; docker: from daemon
  int containers = 0;
  int containers_running = 0;
  int images = 0;
};

class ContainerRuntime {
 public:
  virtual ~ContainerRuntime() = default;

  virtual std::string kind() const = 0;  // "docker" | "light"
  virtual Result<RuntimeInfo> info() = 0;

  // --- images ---
  // Loads every image in a `docker save` tarball (classic or OCI layout) or an OCI
  // image-layout tarball; the file is streamed, never read whole into memory.
  virtual Result<std::vector<ImageInfo>> loadImage(const std::string& tarball_path) = 0;
  virtual Result<std::vector<ImageInfo>> listImages() = 0;
  virtual Result<ImageInfo> inspectImage(const std::string& ref) = 0;
  // Refuses (kFailedPrecondition) while a container uses the image, unless `force`.
  virtual Status removeImage(const std::string& ref, bool force) = 0;

  // --- containers ---
  // Returns the new container's id. The image must be present.
  virtual Result<std::string> createContainer(const ContainerSpec& spec) = 0;
  virtual Status startContainer(const std::string& id) = 0;
  // Sends the stop signal, waits up to `timeout` (default: the spec's, else 10 s),
  // then SIGKILL. Stopping a container that is not running is OK.
  virtual Status stopContainer(const std::string& id,
                               std::optional<std::chrono::seconds> timeout) = 0;
  virtual Status killContainer(const std::string& id, int signal) = 0;
  // Refuses a running container unless `force` (which kills it first).
  virtual Status removeContainer(const std::string& id, bool force) = 0;
  virtual Result<std::vector<ContainerInfo>> listContainers(const ListOptions& options) = 0;
  virtual Result<ContainerInfo> inspectContainer(const std::string& id_or_name) = 0;
  // Blocks until the container is not running (returns at once if it has exited).
  // kDeadlineExceeded when `timeout` passes first.
  virtual Result<ExitStatus> waitContainer(const std::string& id,
                                           std::optional<Duration> timeout) = 0;
  virtual Status readLogs(const std::string& id, const LogOptions& options,
                          const LogSink& sink) = 0;
  virtual Result<Stats> stats(const std::string& id) = 0;
  virtual Result<SubscriptionPtr> subscribe(EventSink sink) = 0;
};
using ContainerRuntimePtr = std::unique_ptr<ContainerRuntime>;

// Normalises an image reference the way Docker shows it: "busybox" -> "busybox:latest",
// "docker.io/library/busybox:1" -> "busybox:1". Digests ("@sha256:...") are kept.
std::string normalizeImageRef(const std::string& ref);

// Parses "SIGTERM", "TERM", "15" into a signal number; kInvalidArgument otherwise.
Result<int> parseSignal(const std::string& text);

}  // namespace edge::runtime
