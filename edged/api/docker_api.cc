#include "edged/api/docker_api.h"

#include <fcntl.h>
#include <sys/sysinfo.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <condition_variable>
#include <csignal>
#include <cstring>
#include <fstream>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include "common/crypto.h"
#include "common/fs.h"
#include "common/http_status.h"
#include "common/log.h"
#include "common/platform.h"
#include "runtime-shim/docker/docker_wire.h"

namespace edge::edged::api {
namespace {

using http::ApiServer;
using json::Json;
using runtime::ContainerInfo;
using runtime::ContainerRuntime;
using runtime::ContainerState;
using runtime::ImageInfo;
using std::chrono::milliseconds;
namespace dk = runtime::docker;

const std::string kApiVersion = dk::kMaxApiVersion.toString();     // advertised
const std::string kMinApiVersion = dk::kMinApiVersion.toString();  // oldest accepted

// ---------------------------------------------------------------------------------------
// Replies.

void sendJson(httplib::Response& res, int status, const Json& j) {
  res.status = status;
  res.set_content(json::dump(j), "application/json");
}

void sendError(httplib::Response& res, int status, const std::string& message) {
  sendJson(res, status, Json{{"message", message}});
}

void sendStatus(httplib::Response& res, const Status& s) {
  sendError(res, http::dockerApiHttpStatusFor(s.code()), s.message());
}

// Docker's boolean query values: "", "0", "no", "false", "none" are false.
bool boolParam(const httplib::Request& req, const char* name) {
  if (!req.has_param(name)) return false;
  std::string v = req.get_param_value(name);
  std::transform(v.begin(), v.end(), v.begin(), [](unsigned char c) { return std::tolower(c); });
  return !(v.empty() || v == "0" || v == "no" || v == "false" || v == "none");
}

Result<std::optional<int64_t>> intParam(const httplib::Request& req, const char* name) {
  if (!req.has_param(name) || req.get_param_value(name).empty()) return std::optional<int64_t>();
  std::string v = req.get_param_value(name);
  int64_t out = 0;
  auto [p, ec] = std::from_chars(v.data(), v.data() + v.size(), out);
  if (ec != std::errc() || p != v.data() + v.size()) {
    return Status::invalidArgument("query parameter " + std::string(name) + "='" + v +
                                   "' is not an integer");
  }
  return std::optional(out);
}

// `since`/`until` of logs: Unix seconds with an optional fraction, or RFC 3339; 0 = unset.
Result<std::optional<WallTime>> timeParam(const httplib::Request& req, const char* name) {
  if (!req.has_param(name)) return std::optional<WallTime>();
  std::string v = req.get_param_value(name);
  if (v.empty() || v == "0") return std::optional<WallTime>();
  WallTime t;
  if (!parseTimestamp(v, &t)) {
    return Status::invalidArgument("query parameter " + std::string(name) + "='" + v +
                                   "' is not a Unix timestamp or an RFC 3339 time");
  }
  return std::optional(t);
}

std::string logFrame(runtime::LogStream stream, std::string_view payload) {
  std::string f(8, '\0');
  f[0] = static_cast<char>(stream == runtime::LogStream::kStderr ? 2 : 1);
  uint32_t n = static_cast<uint32_t>(payload.size());
  f[4] = static_cast<char>(n >> 24);
  f[5] = static_cast<char>(n >> 16);
  f[6] = static_cast<char>(n >> 8);
  f[7] = static_cast<char>(n);
  f.append(payload);
  return f;
}

std::string readOsName() {
  std::ifstream in("/etc/os-release");
  std::string line;
  while (std::getline(in, line)) {
    if (line.starts_with("PRETTY_NAME=")) {
      std::string v = line.substr(12);
      if (v.size() >= 2 && v.front() == '"' && v.back() == '"') v = v.substr(1, v.size() - 2);
      return v;
    }
  }
  return "Linux";
}

// Wakes waiters when a container may have changed state: on our own mutations, and on
// runtime events when the runtime delivers them.
class ChangeNotifier {
 public:
  void notify() {
    {
      std::lock_guard lk(mu_);
      ++generation_;
    }
    cv_.notify_all();
  }
  uint64_t generation() {
    std::lock_guard lk(mu_);
    return generation_;
  }
  void waitChange(uint64_t seen, milliseconds d) {
    std::unique_lock lk(mu_);
    cv_.wait_for(lk, d, [&] { return generation_ != seen; });
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  uint64_t generation_ = 0;
};

// Waits re-check at least this often whether the client left or the server stops.
constexpr milliseconds kWaitSlice{1000};

struct State {
  State(ApiServer& s, ContainerRuntime& r, DockerApiOptions o)
      : server(s), rt(r), options(std::move(o)) {}

  ApiServer& server;
  ContainerRuntime& rt;
  DockerApiOptions options;
  ChangeNotifier changes;
  runtime::SubscriptionPtr events;  // last: unsubscribed before the notifier goes

  // Exit codes of containers removed through this API, so a `wait` that learns of the
  // removal before it saw the exit still reports the code. Bounded.
  void rememberExit(const std::string& id, int code) {
    std::lock_guard lk(exits_mu);
    if (removed_exits.size() >= 256) removed_exits.erase(removed_exits.begin());
    removed_exits[id] = code;
  }
  std::optional<int> removedExit(const std::string& id) {
    std::lock_guard lk(exits_mu);
    auto it = removed_exits.find(id);
    if (it == removed_exits.end()) return std::nullopt;
    return it->second;
  }
  std::mutex exits_mu;
  std::map<std::string, int> removed_exits;

  void changed() {
    changes.notify();
    if (options.on_change) options.on_change();
  }
  bool aborted() const { return server.stopping() || ApiServer::clientGone(); }
};
using StatePtr = std::shared_ptr<State>;

using Handler = ApiServer::Handler;

// Headers dockerd puts on every reply, the API version check, and the exception edge.
Handler dockerRoute(const StatePtr& st, Handler h) {
  return [st, h = std::move(h)](const httplib::Request& req, httplib::Response& res,
                                const http::PathParams& params) {
    res.set_header("Api-Version", kApiVersion);
    res.set_header("Docker-Experimental", "false");
    res.set_header("Ostype", "linux");
    res.set_header("Server", "Edgecloud/" + st->options.version + " (linux)");
    std::string v = ApiServer::pathApiVersion(req.path);
    if (!v.empty()) {
      Result<dk::ApiVersion> parsed = dk::parseApiVersion(v);
      if (!parsed.isOk()) {
        return sendError(res, 400, "API version '" + v + "' in the path is not <major>.<minor>");
      }
      if (*parsed < dk::kMinApiVersion) {
        return sendError(res, 400,
                         "client version " + v + " is too old. Minimum supported API version is " +
                             kMinApiVersion + ", please upgrade your client to a newer version");
      }
      if (*parsed > dk::kMaxApiVersion) {
        return sendError(
            res, 400,
            "client version " + v + " is too new. Maximum supported API version is " + kApiVersion);
      }
    }
    try {
      h(req, res, params);
    } catch (const std::exception& e) {
      LOG_ERROR("docker api handler failed").kv("path", req.path).kv("error", e.what());
      sendError(res, 500, std::string("internal error: ") + e.what());
    }
  };
}

// Docker routes answer with and without the /v1.NN prefix.
constexpr http::RouteOptions kVersioned{.version_prefix = true};

bool apiAtLeast(const httplib::Request& req, dk::ApiVersion want) {
  std::string v = ApiServer::pathApiVersion(req.path);
  if (v.empty()) return true;  // unversioned = the newest
  Result<dk::ApiVersion> parsed = dk::parseApiVersion(v);
  return parsed.isOk() && *parsed >= want;
}

// Finds a container or answers 404 the way dockerd words it.
std::optional<ContainerInfo> findContainer(State& st, const std::string& ref,
                                           httplib::Response& res) {
  Result<ContainerInfo> c = st.rt.inspectContainer(ref);
  if (c.isOk()) return std::move(c).value();
  if (c.status().code() == StatusCode::kNotFound) {
    sendError(res, 404, "No such container: " + ref);
  } else {
    sendStatus(res, c.status());
  }
  return std::nullopt;
}

std::optional<ImageInfo> findImage(State& st, const std::string& ref, httplib::Response& res) {
  Result<ImageInfo> img = st.rt.inspectImage(ref);
  if (img.isOk()) return std::move(img).value();
  if (img.status().code() == StatusCode::kNotFound) {
    sendError(res, 404, "No such image: " + ref);
  } else {
    sendStatus(res, img.status());
  }
  return std::nullopt;
}

// ---------------------------------------------------------------------------------------
// System.

void handlePing(const httplib::Request&, httplib::Response& res) {
  res.set_header("Cache-Control", "no-cache, no-store, must-revalidate");
  res.set_header("Pragma", "no-cache");
  res.set_content("OK", "text/plain; charset=utf-8");
}

Json versionJson(State& st) {
  utsname u{};
  ::uname(&u);
  std::string kernel = u.release;
  Json details = {{"ApiVersion", kApiVersion},
                  {"MinAPIVersion", kMinApiVersion},
                  {"Os", "linux"},
                  {"Arch", hostArchitecture()},
                  {"KernelVersion", kernel},
                  {"GitCommit", ""},
                  {"GoVersion", ""},
                  {"BuildTime", ""},
                  {"Experimental", "false"},
                  {"Runtime", st.rt.kind()}};
  Json component = Json::object();
  component["Name"] = "Edgecloud";
  component["Version"] = st.options.version;
  component["Details"] = details;
  Json components = Json::array();
  components.push_back(component);
  return {{"Platform", {{"Name", "Edgecloud"}}},
          {"Components", components},
          {"Version", st.options.version},
          {"ApiVersion", kApiVersion},
          {"MinAPIVersion", kMinApiVersion},
          {"GitCommit", ""},
          {"GoVersion", ""},
          {"Os", "linux"},
          {"Arch", hostArchitecture()},
          {"KernelVersion", kernel},
          {"BuildTime", ""}};
}

void handleInfo(State& st, httplib::Response& res) {
  Result<runtime::RuntimeInfo> ri = st.rt.info();
  if (!ri.isOk()) return sendStatus(res, ri.status());
  Result<std::vector<ContainerInfo>> list = st.rt.listContainers({.all = true});
  if (!list.isOk()) return sendStatus(res, list.status());
  int running = 0, stopped = 0;
  for (const auto& c : *list) {
    if (c.state == ContainerState::kRunning) {
      ++running;
    } else {
      ++stopped;
    }
  }
  utsname u{};
  ::uname(&u);
  struct sysinfo si {};
  ::sysinfo(&si);
  long ncpu = ::sysconf(_SC_NPROCESSORS_ONLN);
  std::string kernel = ri->kernel.empty() ? std::string(u.release) : ri->kernel;
  std::string kind = st.rt.kind();
  Json security = Json::array();
  for (std::string_view part : {"seccomp", "apparmor", "selinux"}) {
    if (ri->isolation.find(part) != std::string::npos) {
      security.push_back("name=" + std::string(part) +
                         (part == "seccomp" ? ",profile=builtin" : ""));
    }
  }
  if (ri->cgroup_version == "2") security.push_back("name=cgroupns");
  Json runtimes = Json::object();
  runtimes[kind] = {{"path", kind == "light" ? "edge-shim" : "dockerd"}};
  Json j = {
      {"ID", crypto::sha256Hex("edgecloud-node:" + st.options.node_name).substr(0, 36)},
      {"Name", st.options.node_name},
      {"Containers", list->size()},
      {"ContainersRunning", running},
      {"ContainersPaused", 0},
      {"ContainersStopped", stopped},
      {"Images", ri->images},
      {"Driver", kind == "light" ? "overlay" : "docker"},
      {"DriverStatus", Json::array({Json::array({"Edgecloud runtime", kind}),
                                    Json::array({"Isolation", ri->isolation})})},
      {"Plugins",
       {{"Volume", Json::array()},
        {"Network", Json::array({"host", "none"})},
        {"Authorization", Json()},
        {"Log", Json::array()}}},
      {"MemoryLimit", true},
      {"SwapLimit", true},
      {"CpuCfsPeriod", true},
      {"CpuCfsQuota", true},
      {"PidsLimit", true},
      {"IPv4Forwarding", true},
      {"Debug", false},
      {"NFd", 0},
      {"NGoroutines", 0},
      {"SystemTime", formatRfc3339Nano(std::chrono::system_clock::now())},
      {"LoggingDriver", "json-file"},
      {"CgroupDriver", "cgroupfs"},
      {"CgroupVersion", ri->cgroup_version.empty() ? "1" : ri->cgroup_version},
      {"NEventsListener", 0},
      {"KernelVersion", kernel},
      {"OperatingSystem", readOsName()},
      {"OSVersion", ""},
      {"OSType", "linux"},
      {"Architecture", std::string(u.machine)},
      {"IndexServerAddress", ""},
      {"RegistryConfig",
       {{"InsecureRegistryCIDRs", Json::array()},
        {"IndexConfigs", Json::object()},
        {"Mirrors", Json::array()}}},
      {"NCPU", ncpu > 0 ? ncpu : 1},
      {"MemTotal", static_cast<int64_t>(si.totalram) * si.mem_unit},
      {"GenericResources", Json()},
      {"DockerRootDir", st.options.data_dir.empty() ? "/var/lib/edged" : st.options.data_dir},
      {"HttpProxy", ""},
      {"HttpsProxy", ""},
      {"NoProxy", ""},
      {"Labels", Json::array({"io.edgecloud.runtime=" + kind})},
      {"ExperimentalBuild", false},
      {"ServerVersion", st.options.version},
      {"Runtimes", runtimes},
      {"DefaultRuntime", kind},
      {"Swarm",
       {{"NodeID", ""},
        {"NodeAddr", ""},
        {"LocalNodeState", "inactive"},
        {"ControlAvailable", false},
        {"Error", ""},
        {"RemoteManagers", Json()}}},
      {"LiveRestoreEnabled", true},
      {"Isolation", ""},
      {"InitBinary", ""},
      {"ContainerdCommit", {{"ID", ""}, {"Expected", ""}}},
      {"RuncCommit", {{"ID", ""}, {"Expected", ""}}},
      {"InitCommit", {{"ID", ""}, {"Expected", ""}}},
      {"SecurityOptions", security},
      {"Warnings", Json::array()},
  };
  sendJson(res, 200, j);
}

// ---------------------------------------------------------------------------------------
// Containers.

void handleList(State& st, const httplib::Request& req, httplib::Response& res) {
  ContainerFilters filters;
  if (req.has_param("filters")) {
    Result<ContainerFilters> f = parseContainerFilters(req.get_param_value("filters"));
    if (!f.isOk()) return sendStatus(res, f.status());
    filters = std::move(f).value();
  }
  Result<std::optional<int64_t>> limit = intParam(req, "limit");
  if (!limit.isOk()) return sendStatus(res, limit.status());
  bool all = boolParam(req, "all") || (limit->has_value() && **limit > 0);
  Result<std::vector<ContainerInfo>> list = st.rt.listContainers({.all = all});
  if (!list.isOk()) return sendStatus(res, list.status());
  std::sort(list->begin(), list->end(),
            [](const ContainerInfo& a, const ContainerInfo& b) { return a.created > b.created; });
  std::map<std::string, std::vector<std::string>> tags_by_image;
  auto tagsOf = [&](const ContainerInfo& c) -> const std::vector<std::string>& {
    auto it = tags_by_image.find(c.image_id);
    if (it != tags_by_image.end()) return it->second;
    std::vector<std::string> tags;
    if (!filters.ancestors.empty()) {
      Result<ImageInfo> img = st.rt.inspectImage(c.image_id.empty() ? c.image : c.image_id);
      if (img.isOk()) tags = img->tags;
    }
    return tags_by_image[c.image_id] = std::move(tags);
  };
  Json out = Json::array();
  WallTime now = std::chrono::system_clock::now();
  for (const ContainerInfo& c : *list) {
    if (!matchesFilters(c, filters, tagsOf(c))) continue;
    if (limit->has_value() && **limit > 0 && static_cast<int64_t>(out.size()) >= **limit) break;
    out.push_back(containerSummaryJson(c, now));
  }
  sendJson(res, 200, out);
}

void handleCreate(State& st, const httplib::Request& req, httplib::Response& res) {
  std::string name = req.get_param_value("name");
  Result<CreateRequest> parsed = parseCreateRequest(req.body, name);
  if (!parsed.isOk()) return sendStatus(res, parsed.status());
  const runtime::ContainerSpec& spec = parsed->spec;
  // dockerd answers a missing image with 404 "No such image", which makes the CLI say
  // "Unable to find image ... locally" and try a pull.
  Result<ImageInfo> img = st.rt.inspectImage(spec.image);
  if (!img.isOk()) {
    if (img.status().code() == StatusCode::kNotFound) {
      return sendError(res, 404, "No such image: " + runtime::normalizeImageRef(spec.image));
    }
    return sendStatus(res, img.status());
  }
  Result<std::string> id = st.rt.createContainer(spec);
  if (!id.isOk()) {
    if (id.status().code() == StatusCode::kAlreadyExists) {
      return sendError(res, 409,
                       "Conflict. The container name \"/" + spec.name +
                           "\" is already in use. Remove that container or choose another name (" +
                           id.status().message() + ")");
    }
    return sendStatus(res, id.status());
  }
  LOG_INFO("docker api: container created")
      .kv("id", *id)
      .kv("name", spec.name)
      .kv("image", spec.image);
  st.changed();
  sendJson(res, 201, Json{{"Id", *id}, {"Warnings", parsed->warnings}});
}

void handleStart(State& st, const std::string& ref, httplib::Response& res) {
  std::optional<ContainerInfo> c = findContainer(st, ref, res);
  if (!c) return;
  if (c->state == ContainerState::kRunning) {
    res.status = 304;
    return;
  }
  Status s = st.rt.startContainer(c->id);
  st.changed();  // a failed start records its error on the container too
  if (!s.isOk()) {
    if (s.code() == StatusCode::kFailedPrecondition) {
      Result<ContainerInfo> now = st.rt.inspectContainer(c->id);
      if (now.isOk() && now->state == ContainerState::kRunning) {
        res.status = 304;
        return;
      }
    }
    return sendStatus(res, s);
  }
  res.status = 204;
}

void handleStop(State& st, const std::string& ref, const httplib::Request& req,
                httplib::Response& res, bool restart) {
  Result<std::optional<int64_t>> t = intParam(req, "t");
  if (!t.isOk()) return sendStatus(res, t.status());
  std::optional<std::chrono::seconds> timeout;
  if (t->has_value()) {
    if (**t < -1) return sendError(res, 400, "query parameter t must be >= 0 (or -1: no timeout)");
    timeout = std::chrono::seconds(**t < 0 ? 3600 * 24 * 365 : **t);
  }
  std::optional<ContainerInfo> c = findContainer(st, ref, res);
  if (!c) return;
  if (!restart && c->state != ContainerState::kRunning) {
    res.status = 304;
    return;
  }
  if (c->state == ContainerState::kRunning) {
    Status s = st.rt.stopContainer(c->id, timeout);
    st.changed();
    if (!s.isOk()) return sendStatus(res, s);
  }
  if (restart) {
    Status s = st.rt.startContainer(c->id);
    st.changed();
    if (!s.isOk()) return sendStatus(res, s);
  }
  res.status = 204;
}

void handleKill(State& st, const std::string& ref, const httplib::Request& req,
                httplib::Response& res) {
  int sig = SIGKILL;
  if (req.has_param("signal") && !req.get_param_value("signal").empty()) {
    Result<int> parsed = runtime::parseSignal(req.get_param_value("signal"));
    if (!parsed.isOk()) return sendError(res, 400, "signal: " + parsed.status().message());
    sig = *parsed;
  }
  std::optional<ContainerInfo> c = findContainer(st, ref, res);
  if (!c) return;
  if (c->state != ContainerState::kRunning) {
    return sendError(res, 409,
                     "Cannot kill container: " + ref + ": container " + c->id + " is not running");
  }
  Status s = st.rt.killContainer(c->id, sig);
  st.changed();
  if (!s.isOk()) return sendStatus(res, s);
  res.status = 204;
}

void handleRemove(State& st, const std::string& ref, const httplib::Request& req,
                  httplib::Response& res) {
  std::optional<ContainerInfo> c = findContainer(st, ref, res);
  if (!c) return;
  bool force = boolParam(req, "force");
  if (c->state == ContainerState::kRunning && !force) {
    return sendError(res, 409,
                     "You cannot remove a running container " + c->id +
                         ". Stop the container before attempting removal or force remove");
  }
  // A forced removal kills it: 137, as dockerd reports.
  st.rememberExit(c->id, c->state == ContainerState::kRunning ? 128 + SIGKILL : c->exit_code);
  Status s = st.rt.removeContainer(c->id, force);
  st.changed();
  if (!s.isOk()) {
    if (s.code() == StatusCode::kNotFound) return sendError(res, 404, "No such container: " + ref);
    return sendStatus(res, s);
  }
  LOG_INFO("docker api: container removed").kv("id", c->id);
  res.status = 204;
}

// The exit a `wait` reports; nullopt when the wait was abandoned (client gone, stop).
struct WaitResult {
  int64_t code = 0;
  std::string error;
};

std::optional<WaitResult> waitCondition(State& st, const std::string& id,
                                        const std::string& condition,
                                        const ContainerInfo& initial) {
  int last_code = initial.exit_code;
  for (;;) {
    if (st.aborted()) return std::nullopt;
    uint64_t seen = st.changes.generation();
    Result<ContainerInfo> c = st.rt.inspectContainer(id);
    if (!c.isOk()) {
      // Removed: every condition is met (removed is what "removed" waits for).
      if (c.status().code() == StatusCode::kNotFound) {
        return WaitResult{st.removedExit(id).value_or(last_code), ""};
      }
      return WaitResult{-1, c.status().message()};
    }
    last_code = c->exit_code;
    if (condition == "not-running" && c->state != ContainerState::kRunning) {
      return WaitResult{c->exit_code, ""};
    }
    if (condition == "next-exit" && c->state != ContainerState::kRunning &&
        c->finished != initial.finished) {
      return WaitResult{c->exit_code, ""};  // it ran and exited since the wait began
    }
    if (c->state == ContainerState::kRunning) {
      Result<runtime::ExitStatus> r = st.rt.waitContainer(id, kWaitSlice);
      if (r.isOk()) {
        last_code = r->exit_code;
        if (condition != "removed") return WaitResult{r->exit_code, ""};
      } else if (r.status().code() != StatusCode::kDeadlineExceeded &&
                 r.status().code() != StatusCode::kNotFound) {
        return WaitResult{-1, r.status().message()};
      }
      continue;
    }
    // Created or exited: what comes next is a start (ours notifies; the runtime's
    // events, when it sends them, too) or a removal.
    st.changes.waitChange(seen, kWaitSlice);
  }
}

void handleWait(const StatePtr& st, const std::string& ref, const httplib::Request& req,
                httplib::Response& res) {
  std::string condition = req.has_param("condition") ? req.get_param_value("condition") : "";
  if (condition.empty()) condition = "not-running";
  if (condition != "not-running" && condition != "next-exit" && condition != "removed") {
    return sendError(
        res, 400,
        "condition '" + condition + "' is not understood; use not-running, next-exit or removed");
  }
  std::optional<ContainerInfo> c = findContainer(*st, ref, res);
  if (!c) return;
  // The headers go out now (the CLI sends `wait` before `start` and waits for them);
  // the body when the condition is met.
  res.status = 200;
  res.set_chunked_content_provider("application/json",
                                   [st, condition, initial = *c](size_t, httplib::DataSink& sink) {
                                     std::optional<WaitResult> r;
                                     try {
                                       r = waitCondition(*st, initial.id, condition, initial);
                                     } catch (const std::exception& e) {
                                       r = WaitResult{-1, e.what()};
                                     }
                                     if (!r) return false;  // abandoned: close without a body
                                     Json j = {{"StatusCode", r->code}, {"Error", Json()}};
                                     if (!r->error.empty()) j["Error"] = {{"Message", r->error}};
                                     std::string body = json::dump(j) + "\n";
                                     if (!sink.write(body.data(), body.size())) return false;
                                     sink.done();
                                     return true;
                                   });
}

struct LogRequest {
  runtime::LogOptions options;
  bool timestamps = false;
};

// Streams logs into `sink` as Docker frames. Follow is done in passes over the runtime's
// non-following reads, because a runtime follow cannot be interrupted while the
// container is silent, and a waiting handler must end when its client leaves.
void streamLogs(State& st, const std::string& id, const LogRequest& lr, httplib::DataSink& sink) {
  const runtime::LogOptions& opts = lr.options;
  std::optional<WallTime> cursor;  // time of the last entry sent
  size_t at_cursor = 0;            // entries sent with exactly that time
  size_t skip = 0;                 // of those, still to be skipped in this pass
  bool write_failed = false;
  runtime::LogSink deliver = [&](const runtime::LogEntry& e) {
    if (skip > 0 && cursor && e.time == *cursor) {
      --skip;
      return true;
    }
    std::string payload =
        lr.timestamps ? formatRfc3339Nano(e.time) + " " + e.data : std::string(e.data);
    std::string frame = logFrame(e.stream, payload);
    if (!sink.write(frame.data(), frame.size())) {
      write_failed = true;
      return false;
    }
    if (cursor && e.time == *cursor) {
      ++at_cursor;
    } else {
      cursor = e.time;
      at_cursor = 1;
    }
    return true;
  };
  WallTime started = std::chrono::system_clock::now();
  runtime::LogOptions first = opts;
  first.follow = false;
  Status s = st.rt.readLogs(id, first, deliver);
  if (!s.isOk() || write_failed || !opts.follow) {
    if (!s.isOk())
      LOG_WARN("docker api: reading logs failed").kv("id", id).kv("error", s.message());
    return;
  }
  if (!cursor && opts.tail) {
    cursor = started;  // a tail that sent nothing: only lines from now on
    at_cursor = 0;
  }
  milliseconds pause{100};
  for (;;) {
    if (opts.until && std::chrono::system_clock::now() >= *opts.until) return;
    Result<runtime::ExitStatus> r = st.rt.waitContainer(id, pause);
    bool finished = r.isOk() || r.status().code() == StatusCode::kNotFound;
    if (!r.isOk() && !finished && r.status().code() != StatusCode::kDeadlineExceeded) return;
    if (st.aborted()) return;
    runtime::LogOptions next = opts;
    next.follow = false;
    next.tail.reset();
    if (cursor) next.since = cursor;
    skip = at_cursor;
    std::optional<WallTime> before = cursor;
    size_t before_count = at_cursor;
    s = st.rt.readLogs(id, next, deliver);
    if (write_failed || !s.isOk() || finished) return;
    bool progressed = cursor != before || at_cursor != before_count;
    pause = progressed ? milliseconds(100) : std::min(pause * 2, kWaitSlice);
  }
}

void handleLogs(const StatePtr& st, const std::string& ref, const httplib::Request& req,
                httplib::Response& res) {
  LogRequest lr;
  lr.options.include_stdout = boolParam(req, "stdout");
  lr.options.include_stderr = boolParam(req, "stderr");
  if (!lr.options.include_stdout && !lr.options.include_stderr) {
    return sendError(res, 400, "Bad parameters: you must choose at least one stream");
  }
  lr.options.follow = boolParam(req, "follow");
  lr.timestamps = boolParam(req, "timestamps");
  std::string tail = req.get_param_value("tail");
  if (!tail.empty() && tail != "all") {
    size_t n = 0;
    auto [p, ec] = std::from_chars(tail.data(), tail.data() + tail.size(), n);
    // dockerd reads a tail it cannot parse as "all".
    if (ec == std::errc() && p == tail.data() + tail.size()) lr.options.tail = n;
  }
  Result<std::optional<WallTime>> since = timeParam(req, "since");
  if (!since.isOk()) return sendStatus(res, since.status());
  Result<std::optional<WallTime>> until = timeParam(req, "until");
  if (!until.isOk()) return sendStatus(res, until.status());
  lr.options.since = *since;
  lr.options.until = *until;
  std::optional<ContainerInfo> c = findContainer(*st, ref, res);
  if (!c) return;
  res.status = 200;
  std::string type = apiAtLeast(req, {1, 42}) ? "application/vnd.docker.multiplexed-stream"
                                              : "application/vnd.docker.raw-stream";
  res.set_chunked_content_provider(type, [st, id = c->id, lr](size_t, httplib::DataSink& sink) {
    try {
      streamLogs(*st, id, lr, sink);
    } catch (const std::exception& e) {
      LOG_WARN("docker api: log stream failed").kv("id", id).kv("error", e.what());
      return false;
    }
    sink.done();
    return true;
  });
}

// ---------------------------------------------------------------------------------------
// Images.

void handleImages(State& st, httplib::Response& res) {
  Result<std::vector<ImageInfo>> list = st.rt.listImages();
  if (!list.isOk()) return sendStatus(res, list.status());
  std::sort(list->begin(), list->end(),
            [](const ImageInfo& a, const ImageInfo& b) { return a.created > b.created; });
  Json out = Json::array();
  for (const ImageInfo& img : *list) out.push_back(imageSummaryJson(img));
  sendJson(res, 200, out);
}

// Removes the uploaded tarball however the handler ends.
struct TempFile {
  std::string path;
  fs::UniqueFd fd;
  ~TempFile() {
    if (!path.empty()) ::unlink(path.c_str());
  }
};

void handleLoad(State& st, const httplib::ContentReader& reader, httplib::Response& res) {
  const std::string& dir = st.options.temp_dir;
  if (dir.empty()) return sendError(res, 500, "image upload directory is not configured");
  Status s = fs::makeDirs(dir, 0700);
  if (!s.isOk()) return sendError(res, 500, "cannot prepare the upload directory: " + s.message());
  TempFile tmp;
  std::string templ = dir + "/load-XXXXXX.tar";
  std::vector<char> buf(templ.begin(), templ.end());
  buf.push_back('\0');
  tmp.fd.reset(::mkostemps(buf.data(), 4, O_CLOEXEC));
  if (!tmp.fd.valid()) {
    return sendError(res, 500, "cannot create a file in " + dir + ": " + std::strerror(errno));
  }
  tmp.path = buf.data();
  // Written straight to disk: an image can be larger than this process's memory.
  Status write_error;
  uint64_t total = 0;
  bool ok = reader([&](const char* data, size_t len) {
    write_error = fs::writeAll(tmp.fd.get(), std::string_view(data, len));
    total += len;
    return write_error.isOk();
  });
  if (!write_error.isOk()) {
    return sendError(res, 500, "storing the uploaded image failed: " + write_error.message());
  }
  if (!ok) {
    ApiServer::closeAfterReply(res);
    return sendError(res, 400,
                     "the image upload was cut short or its chunked encoding is malformed");
  }
  if (total == 0) {
    return sendError(res, 400,
                     "empty request body: POST /images/load expects an image tarball "
                     "(what docker save writes, or an OCI image layout)");
  }
  tmp.fd.reset();
  Result<std::vector<ImageInfo>> loaded = st.rt.loadImage(tmp.path);
  if (!loaded.isOk()) return sendStatus(res, loaded.status());
  std::string body;
  for (const ImageInfo& img : *loaded) {
    std::vector<std::string> lines;
    for (const std::string& t : img.tags) lines.push_back("Loaded image: " + t + "\n");
    if (lines.empty()) lines.push_back("Loaded image ID: " + img.id + "\n");
    for (const std::string& l : lines) body += json::dump(Json{{"stream", l}}) + "\n";
    LOG_INFO("docker api: image loaded").kv("id", img.id).kv("bytes", total);
  }
  st.changed();
  res.status = 200;
  res.set_content(body, "application/json");
}

void handleImageRemove(State& st, const std::string& ref, const httplib::Request& req,
                       httplib::Response& res) {
  std::optional<ImageInfo> img = findImage(st, ref, res);
  if (!img) return;
  Status s = st.rt.removeImage(ref, boolParam(req, "force"));
  if (!s.isOk()) {
    if (s.code() == StatusCode::kFailedPrecondition) {
      return sendError(res, 409, "conflict: unable to remove image " + ref + ": " + s.message());
    }
    if (s.code() == StatusCode::kNotFound) return sendError(res, 404, "No such image: " + ref);
    return sendStatus(res, s);
  }
  st.changed();
  Json out = Json::array();
  Result<ImageInfo> still = st.rt.inspectImage(img->id);
  if (still.isOk()) {
    // Only the reference went: the image has other tags.
    out.push_back({{"Untagged", runtime::normalizeImageRef(ref)}});
  } else {
    for (const std::string& t : img->tags) out.push_back({{"Untagged", t}});
    out.push_back({{"Deleted", img->id}});
  }
  sendJson(res, 200, out);
}

// ---------------------------------------------------------------------------------------

void registerUnsupported(ApiServer& server, const StatePtr& st) {
  static const char kSubset[] =
      "Edgecloud's Docker API subset serves: ping, version, info; containers: ps, create, "
      "start, stop, kill, restart, wait, logs, inspect, rm; images: ls, load, inspect, rm";
  Handler h = [](const httplib::Request& req, httplib::Response& res, const http::PathParams&) {
    std::string path = ApiServer::versionlessPath(req.path);
    std::string msg;
    if (path.ends_with("/attach") || path.ends_with("/attach/ws")) {
      msg =
          "attaching to a container (docker run without -d, docker attach, docker start -a) "
          "is not supported by Edgecloud: run it detached with docker run -d and read its "
          "output with docker logs -f";
    } else if (path == "/images/create") {
      std::string image = req.get_param_value("fromImage");
      std::string tag = req.get_param_value("tag");
      if (!tag.empty()) image += ":" + tag;
      msg = "No such image: " + runtime::normalizeImageRef(image) +
            " (Edgecloud nodes do not pull from registries: copy the image over with "
            "docker save, then docker load -i image.tar)";
    } else if (path.starts_with("/exec") || path.ends_with("/exec")) {
      msg = "docker exec is not supported by Edgecloud's Docker API subset";
    } else {
      msg = req.method + " " + path + " is not supported by Edgecloud. " + kSubset;
    }
    sendError(res, 404, msg);
  };
  // Every path under the Docker API's top-level sections that no route above took.
  auto section = [](std::string_view s) {
    static constexpr std::string_view kSections[] = {
        "containers", "images",  "networks", "volumes",      "exec",    "swarm",
        "services",   "nodes",   "secrets",  "configs",      "plugins", "system",
        "build",      "session", "events",   "distribution", "tasks",   "auth",
        "commit",     "grpc",    "info",     "version",      "_ping"};
    return std::find(std::begin(kSections), std::end(kSections), s) != std::end(kSections);
  };
  for (const char* method : {"GET", "POST", "PUT", "DELETE", "PATCH"}) {
    server.route(method, "/{section}{*rest}", dockerRoute(st, h), kVersioned)
        .where("section", section);
  }
}

}  // namespace
}  // namespace edge::edged::api

namespace edge::edged {

using http::ApiServer;
using namespace api;  // the helpers above

void registerDockerApi(ApiServer& server, runtime::ContainerRuntime& rt, DockerApiOptions options) {
  auto st = std::make_shared<State>(server, rt, std::move(options));
  // Runtime events make waits on created containers react to starts from elsewhere
  // (the reconciler, another client of a Docker daemon); without them waits re-check
  // once a second.
  std::weak_ptr<State> weak = st;
  Result<runtime::SubscriptionPtr> sub = rt.subscribe([weak](const runtime::Event&) {
    if (auto s = weak.lock()) s->changes.notify();
  });
  if (sub.isOk()) {
    st->events = std::move(sub).value();
  } else {
    LOG_WARN("docker api: no runtime events; waits poll instead")
        .kv("error", sub.status().message());
  }

  using Req = httplib::Request;
  using Res = httplib::Response;
  using Params = http::PathParams;
  auto get = [&](std::string_view pattern, Handler h) {
    server.route("GET", pattern, dockerRoute(st, std::move(h)), kVersioned);
  };
  auto post = [&](std::string_view pattern, Handler h) {
    server.route("POST", pattern, dockerRoute(st, std::move(h)), kVersioned);
  };
  auto del = [&](std::string_view pattern, Handler h) {
    server.route("DELETE", pattern, dockerRoute(st, std::move(h)), kVersioned);
  };
  auto id = [](const Params& p) { return std::string(p[0]); };

  get("/_ping", [](const Req& req, Res& res, const Params&) { handlePing(req, res); });
  get("/version",
      [st](const Req&, Res& res, const Params&) { sendJson(res, 200, versionJson(*st)); });
  get("/info", [st](const Req&, Res& res, const Params&) { handleInfo(*st, res); });

  get("/containers/json",
      [st](const Req& req, Res& res, const Params&) { handleList(*st, req, res); });
  post("/containers/create",
       [st](const Req& req, Res& res, const Params&) { handleCreate(*st, req, res); });
  get("/containers/{id}/json", [st, id](const Req&, Res& res, const Params& p) {
    std::optional<ContainerInfo> c = findContainer(*st, id(p), res);
    if (c) sendJson(res, 200, containerInspectJson(*c, std::chrono::system_clock::now()));
  });
  post("/containers/{id}/start",
       [st, id](const Req&, Res& res, const Params& p) { handleStart(*st, id(p), res); });
  post("/containers/{id}/stop", [st, id](const Req& req, Res& res, const Params& p) {
    handleStop(*st, id(p), req, res, false);
  });
  post("/containers/{id}/restart", [st, id](const Req& req, Res& res, const Params& p) {
    handleStop(*st, id(p), req, res, true);
  });
  post("/containers/{id}/kill",
       [st, id](const Req& req, Res& res, const Params& p) { handleKill(*st, id(p), req, res); });
  post("/containers/{id}/wait",
       [st, id](const Req& req, Res& res, const Params& p) { handleWait(st, id(p), req, res); });
  get("/containers/{id}/logs",
      [st, id](const Req& req, Res& res, const Params& p) { handleLogs(st, id(p), req, res); });
  del("/containers/{id}",
      [st, id](const Req& req, Res& res, const Params& p) { handleRemove(*st, id(p), req, res); });

  get("/images/json", [st](const Req&, Res& res, const Params&) { handleImages(*st, res); });
  server.allowStreamedBody([](const std::string& method, const std::string& path) {
    return method == "POST" && path == "/images/load";
  });
  server.routeStreamed(
      "POST", "/images/load",
      [st](const Req& req, Res& res, const Params& p, const httplib::ContentReader& reader) {
        dockerRoute(st, [&](const Req&, Res& r, const Params&) { handleLoad(*st, reader, r); })(
            req, res, p);
      },
      kVersioned);
  get("/images/{name...}/json", [st, id](const Req&, Res& res, const Params& p) {
    std::optional<ImageInfo> img = findImage(*st, id(p), res);
    if (img) sendJson(res, 200, imageInspectJson(*img));
  });
  del("/images/{name...}", [st, id](const Req& req, Res& res, const Params& p) {
    handleImageRemove(*st, id(p), req, res);
  });

  registerUnsupported(server, st);
}

}  // namespace edge::edged
