#include "orchestrator/api/docker_api.h"

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
#include <regex>
#include <set>
#include <thread>

#include "common/crypto.h"
#include "common/fs.h"
#include "common/http_status.h"
#include "common/log.h"
#include "common/platform.h"
#include "runtime-shim/docker/docker_json.h"

namespace edge::orchestrator::api {
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
// Typed access to a request body with Docker's field names in the errors
// ("HostConfig.Memory: expected an integer, got a string").

class Fields {
 public:
  Fields(const Json& obj, std::string prefix) : obj_(obj), prefix_(std::move(prefix)) {}

  std::string path(std::string_view key) const { return prefix_ + std::string(key); }

  const Json* get(std::string_view key) const {
    if (!obj_.is_object()) return nullptr;
    auto it = obj_.find(key);
    if (it == obj_.end() || it->is_null()) return nullptr;
    return &*it;
  }

  // Set = present with a value that is not empty, zero or false.
  bool isSet(std::string_view key) const {
    const Json* v = get(key);
    if (!v) return false;
    if (v->is_boolean()) return v->get<bool>();
    if (v->is_number()) return v->get<double>() != 0;
    // nlohmann's empty() is false for every string, even "".
    if (v->is_string()) return !v->get_ref<const std::string&>().empty();
    if (v->is_array() || v->is_object()) return !v->empty();
    return true;
  }

  Result<std::string> str(std::string_view key) const {
    const Json* v = get(key);
    if (!v) return std::string();
    if (!v->is_string()) return wrongType(key, "a string", *v);
    return v->get<std::string>();
  }

  Result<int64_t> integer(std::string_view key) const {
    const Json* v = get(key);
    if (!v) return int64_t{0};
    if (v->is_number_integer()) return v->get<int64_t>();
    if (v->is_number_unsigned()) {
      uint64_t u = v->get<uint64_t>();
      if (u > static_cast<uint64_t>(INT64_MAX)) return wrongType(key, "an integer in range", *v);
      return static_cast<int64_t>(u);
    }
    if (v->is_number_float()) {
      double d = v->get<double>();
      // Casting a double outside int64's range is undefined: check first (found by fuzzing).
      if (d >= -9.2e18 && d <= 9.2e18 && d == static_cast<double>(static_cast<int64_t>(d)))
        return static_cast<int64_t>(d);
    }
    return wrongType(key, "an integer", *v);
  }

  Result<bool> boolean(std::string_view key) const {
    const Json* v = get(key);
    if (!v) return false;
    if (!v->is_boolean()) return wrongType(key, "a boolean", *v);
    return v->get<bool>();
  }

  Result<std::vector<std::string>> strings(std::string_view key) const {
    std::vector<std::string> out;
    const Json* v = get(key);
    if (!v) return out;
    if (!v->is_array()) return wrongType(key, "an array of strings", *v);
    for (size_t i = 0; i < v->size(); ++i) {
      const Json& e = (*v)[i];
      if (!e.is_string()) {
        return Status::invalidArgument(path(key) + "[" + std::to_string(i) +
                                       "]: expected a string, got " + json::typeName(e));
      }
      out.push_back(e.get<std::string>());
    }
    return out;
  }

  // Cmd and Entrypoint: an array, a plain string (old clients) or null (= the image's).
  Result<std::optional<std::vector<std::string>>> command(std::string_view key) const {
    const Json* v = get(key);
    if (!v) return std::optional<std::vector<std::string>>();
    if (v->is_string()) return std::optional(std::vector<std::string>{v->get<std::string>()});
    ASSIGN_OR_RETURN(std::vector<std::string> list, strings(key));
    return std::optional(std::move(list));
  }

  Result<std::map<std::string, std::string>> stringMap(std::string_view key) const {
    std::map<std::string, std::string> out;
    const Json* v = get(key);
    if (!v) return out;
    if (!v->is_object()) return wrongType(key, "an object of strings", *v);
    for (auto it = v->begin(); it != v->end(); ++it) {
      if (!it->is_string()) {
        return Status::invalidArgument(path(key) + "." + it.key() + ": expected a string, got " +
                                       json::typeName(*it));
      }
      out[it.key()] = it->get<std::string>();
    }
    return out;
  }

 private:
  Status wrongType(std::string_view key, std::string_view want, const Json& got) const {
    return Status::invalidArgument(path(key) + ": expected " + std::string(want) + ", got " +
                                   json::typeName(got));
  }

  const Json& obj_;
  std::string prefix_;
};

Status unsupported(const std::string& field, const std::string& what) {
  return Status::invalidArgument(field + ": " + what);
}

Result<runtime::BindMount> parseBind(const std::string& bind, size_t index) {
  std::string where = "HostConfig.Binds[" + std::to_string(index) + "]";
  std::vector<std::string> parts;
  size_t start = 0;
  for (;;) {
    size_t colon = bind.find(':', start);
    parts.push_back(bind.substr(start, colon - start));
    if (colon == std::string::npos) break;
    start = colon + 1;
  }
  if (parts.size() < 2 || parts.size() > 3) {
    return Status::invalidArgument(where + ": '" + bind +
                                   "' is not /host/path:/container/path[:ro]");
  }
  runtime::BindMount m{.source = parts[0], .target = parts[1]};
  if (m.source.empty() || m.source.front() != '/') {
    return Status::invalidArgument(
        where + ": '" + m.source +
        "' is a named volume; Edgecloud has no volumes, bind an absolute host path instead");
  }
  if (m.target.empty() || m.target.front() != '/') {
    return Status::invalidArgument(where + ": container path '" + m.target + "' must be absolute");
  }
  if (parts.size() == 3) {
    static const std::set<std::string> kIgnored = {
        "rw", "z", "Z", "nocopy", "shared", "rshared", "slave", "rslave", "private", "rprivate"};
    std::string_view opts = parts[2];
    while (!opts.empty()) {
      size_t comma = opts.find(',');
      std::string opt(opts.substr(0, comma));
      if (opt == "ro") {
        m.read_only = true;
      } else if (!kIgnored.contains(opt)) {
        return Status::invalidArgument(where + ": option '" + opt +
                                       "' is not supported; use ro or rw");
      }
      if (comma == std::string_view::npos) break;
      opts.remove_prefix(comma + 1);
    }
  }
  return m;
}

// ---------------------------------------------------------------------------------------
// Output helpers.

int64_t unixSeconds(WallTime t) {
  return std::chrono::duration_cast<std::chrono::seconds>(t.time_since_epoch()).count();
}

// Docker prints the zero time for "never".
std::string dockerTime(WallTime t) {
  if (t == WallTime{}) return "0001-01-01T00:00:00Z";
  return formatRfc3339Nano(t);
}

// Docker's (go-units) HumanDuration: "Less than a second", "5 seconds", "About an hour"...
std::string humanDuration(std::chrono::nanoseconds d) {
  using namespace std::chrono;
  int64_t s = duration_cast<seconds>(d).count();
  auto n = [](int64_t v, const char* unit) { return std::to_string(v) + " " + unit; };
  if (s < 1) return "Less than a second";
  if (s == 1) return "1 second";
  if (s < 60) return n(s, "seconds");
  int64_t m = s / 60;
  if (m == 1) return "About a minute";
  if (m < 60) return n(m, "minutes");
  int64_t h = m / 60;
  if (h == 1) return "About an hour";
  if (h < 48) return n(h, "hours");
  if (h < 24 * 7 * 2) return n(h / 24, "days");
  if (h < 24 * 30 * 2) return n(h / 24 / 7, "weeks");
  if (h < 24 * 365 * 2) return n(h / 24 / 30, "months");
  return n(h / 24 / 365, "years");
}

std::string statusText(const ContainerInfo& c, WallTime now) {
  switch (c.state) {
    case ContainerState::kCreated:
      return "Created";
    case ContainerState::kRunning:
      return "Up " + humanDuration(now - c.started);
    case ContainerState::kExited:
      if (c.finished == WallTime{}) return "Exited (" + std::to_string(c.exit_code) + ")";
      return "Exited (" + std::to_string(c.exit_code) + ") " + humanDuration(now - c.finished) +
             " ago";
  }
  return "";
}

std::vector<std::string> commandLine(const ContainerInfo& c) {
  std::vector<std::string> argv = c.entrypoint;
  argv.insert(argv.end(), c.cmd.begin(), c.cmd.end());
  return argv;
}

std::string networkName(runtime::NetworkMode m) {
  return m == runtime::NetworkMode::kHost ? "host" : "none";
}

Json labelsJson(const std::map<std::string, std::string>& labels) {
  Json j = Json::object();
  for (const auto& [k, v] : labels) j[k] = v;
  return j;
}

Json mountsJson(const std::vector<runtime::BindMount>& mounts) {
  Json list = Json::array();
  for (const auto& m : mounts) {
    list.push_back({{"Type", "bind"},
                    {"Source", m.source},
                    {"Destination", m.target},
                    {"Mode", m.read_only ? "ro" : ""},
                    {"RW", !m.read_only},
                    {"Propagation", "rprivate"}});
  }
  return list;
}

Json networksJson(runtime::NetworkMode m) {
  Json net = {{"NetworkID", ""}, {"EndpointID", ""}, {"Gateway", ""},
              {"IPAddress", ""}, {"IPPrefixLen", 0}, {"MacAddress", ""}};
  Json nets = Json::object();
  nets[networkName(m)] = net;
  return nets;
}

std::vector<std::string> shownTags(const ImageInfo& img) {
  return img.tags;
}

Json imageSummaryJson(const ImageInfo& img) {
  return {{"Id", img.id},
          {"ParentId", ""},
          {"RepoTags", shownTags(img)},
          {"RepoDigests", Json::array()},
          {"Created", unixSeconds(img.created)},
          {"Size", img.size_bytes},
          {"VirtualSize", img.size_bytes},
          {"SharedSize", -1},
          {"Labels", labelsJson(img.labels)},
          {"Containers", -1}};
}

Json imageInspectJson(const ImageInfo& img) {
  Json config = {{"Env", img.env},
                 {"Cmd", img.cmd.empty() ? Json() : Json(img.cmd)},
                 {"Entrypoint", img.entrypoint.empty() ? Json() : Json(img.entrypoint)},
                 {"WorkingDir", img.working_dir},
                 {"User", img.user},
                 {"Labels", labelsJson(img.labels)}};
  if (!img.stop_signal.empty()) config["StopSignal"] = img.stop_signal;
  return {{"Id", img.id},
          {"RepoTags", shownTags(img)},
          {"RepoDigests", Json::array()},
          {"Parent", ""},
          {"Comment", ""},
          {"Created", dockerTime(img.created)},
          {"Container", ""},
          {"DockerVersion", ""},
          {"Author", ""},
          {"Config", config},
          {"Architecture", img.architecture},
          {"Os", img.os},
          {"Size", img.size_bytes},
          {"VirtualSize", img.size_bytes},
          {"GraphDriver", {{"Name", "edgecloud"}, {"Data", Json()}}},
          {"RootFS", {{"Type", "layers"}, {"Layers", img.layers}}},
          {"Metadata", {{"LastTagTime", "0001-01-01T00:00:00Z"}}}};
}

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

// ---------------------------------------------------------------------------------------

Result<CreateRequest> parseCreateRequest(std::string_view body, const std::string& name_param) {
  CreateRequest out;
  runtime::ContainerSpec& spec = out.spec;
  auto warn = [&](std::string w) { out.warnings.push_back(std::move(w)); };
  if (body.find_first_not_of(" \t\r\n") == std::string_view::npos) {
    return Status::invalidArgument("request body is empty; expected the container's JSON config");
  }
  Result<Json> parsed = json::parse(body, "container config");
  if (!parsed.isOk()) return parsed.status();
  const Json& j = *parsed;
  if (!j.is_object()) {
    return Status::invalidArgument("container config: expected a JSON object, got " +
                                   json::typeName(j));
  }
  Fields cfg(j, "");
  static const Json kEmpty = Json::object();
  const Json* hc_json = cfg.get("HostConfig");
  if (hc_json && !hc_json->is_object()) {
    return Status::invalidArgument("HostConfig: expected an object, got " +
                                   json::typeName(*hc_json));
  }
  Fields hc(hc_json ? *hc_json : kEmpty, "HostConfig.");

  std::string name = name_param;
  if (name.starts_with('/')) name.erase(0, 1);
  if (!name.empty()) {
    static const std::regex kName("[a-zA-Z0-9][a-zA-Z0-9_.-]*");
    if (!std::regex_match(name, kName)) {
      return Status::invalidArgument("Invalid container name (" + name +
                                     "), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed");
    }
  }
  spec.name = name;

  ASSIGN_OR_RETURN(spec.image, cfg.str("Image"));
  if (spec.image.empty()) return Status::invalidArgument("Image: required, got nothing");
  ASSIGN_OR_RETURN(spec.cmd, cfg.command("Cmd"));
  ASSIGN_OR_RETURN(spec.entrypoint, cfg.command("Entrypoint"));
  ASSIGN_OR_RETURN(spec.env, cfg.strings("Env"));
  for (size_t i = 0; i < spec.env.size(); ++i) {
    if (spec.env[i].empty() || spec.env[i].front() == '=') {
      return Status::invalidArgument("Env[" + std::to_string(i) + "]: '" + spec.env[i] +
                                     "' is not KEY=value");
    }
  }
  ASSIGN_OR_RETURN(spec.working_dir, cfg.str("WorkingDir"));
  if (!spec.working_dir.empty() && spec.working_dir.front() != '/') {
    return Status::invalidArgument("WorkingDir: '" + spec.working_dir + "' must be absolute");
  }
  ASSIGN_OR_RETURN(spec.user, cfg.str("User"));
  ASSIGN_OR_RETURN(spec.hostname, cfg.str("Hostname"));
  ASSIGN_OR_RETURN(spec.labels, cfg.stringMap("Labels"));
  ASSIGN_OR_RETURN(spec.stop_signal, cfg.str("StopSignal"));
  if (!spec.stop_signal.empty()) {
    Result<int> sig = runtime::parseSignal(spec.stop_signal);
    if (!sig.isOk()) return Status::invalidArgument("StopSignal: " + sig.status().message());
  }
  if (cfg.get("StopTimeout")) {
    ASSIGN_OR_RETURN(int64_t t, cfg.integer("StopTimeout"));
    if (t < 0) return Status::invalidArgument("StopTimeout: must be >= 0 seconds");
    spec.stop_timeout = std::chrono::seconds(t);
  }

  // Set features the runtime cannot honour. Dropping them silently would run something
  // other than what the user asked for.
  ASSIGN_OR_RETURN(bool tty, cfg.boolean("Tty"));
  if (tty) {
    return unsupported("Tty",
                       "terminals (docker run -t) are not supported by Edgecloud; run "
                       "without -t and read output with docker logs");
  }
  if (cfg.isSet("Volumes")) {
    return unsupported("Volumes",
                       "anonymous volumes are not supported by Edgecloud; bind a host directory "
                       "with -v /host/path:/container/path");
  }
  struct Refused {
    const char* field;
    const char* what;
  };
  static const Refused kRefused[] = {
      {"Privileged", "privileged containers are not supported by Edgecloud"},
      {"CapAdd", "adding capabilities is not supported by Edgecloud"},
      {"CapDrop",
       "dropping capabilities is not supported by Edgecloud (containers get Docker's "
       "default set)"},
      {"Devices", "devices are not supported by Edgecloud"},
      {"DeviceRequests", "device requests (--gpus) are not supported by Edgecloud"},
      {"DeviceCgroupRules", "device cgroup rules are not supported by Edgecloud"},
      {"SecurityOpt",
       "security options are not supported by Edgecloud (containers run with its "
       "default seccomp profile)"},
      {"ReadonlyRootfs", "read-only root filesystems are not supported by Edgecloud"},
      {"Tmpfs", "tmpfs mounts are not supported by Edgecloud"},
      {"VolumesFrom", "--volumes-from is not supported by Edgecloud"},
      {"VolumeDriver", "volume drivers are not supported by Edgecloud"},
      {"Links", "links are not supported by Edgecloud (containers share the host network)"},
      {"ExtraHosts",
       "--add-host is not supported by Edgecloud (containers use the host's "
       "/etc/hosts entries)"},
      {"Sysctls", "sysctls are not supported by Edgecloud"},
      {"GroupAdd", "additional groups are not supported by Edgecloud"},
      {"CgroupParent", "a cgroup parent is not supported by Edgecloud"},
      {"AutoRemove",
       "automatic removal (docker run --rm) is not supported by Edgecloud's Docker "
       "API; remove the container with docker rm when done"},
      {"PidMode", "sharing a PID namespace is not supported by Edgecloud"},
      {"UTSMode", "sharing a UTS namespace is not supported by Edgecloud"},
      {"UsernsMode", "user namespace modes are not supported by Edgecloud"},
  };
  for (const Refused& r : kRefused) {
    if (hc.isSet(r.field)) return unsupported(hc.path(r.field), r.what);
  }
  for (const char* field : {"IpcMode", "CgroupnsMode"}) {
    ASSIGN_OR_RETURN(std::string mode, hc.str(field));
    if (!mode.empty() && mode != "private" && mode != "shareable") {
      return unsupported(hc.path(field), "'" + mode +
                                             "' is not supported by Edgecloud; only "
                                             "a private namespace is");
    }
  }

  // Network.
  ASSIGN_OR_RETURN(std::string net, hc.str("NetworkMode"));
  if (net.empty() || net == "default" || net == "bridge") {
    spec.network = runtime::NetworkMode::kHost;
    warn("Edgecloud runs containers on the host network (network mode '" +
         (net.empty() ? std::string("default") : net) +
         "' became 'host'); use --network none for an isolated one");
  } else if (net == "host") {
    spec.network = runtime::NetworkMode::kHost;
  } else if (net == "none") {
    spec.network = runtime::NetworkMode::kNone;
  } else {
    return unsupported("HostConfig.NetworkMode",
                       "'" + net + "' is not supported by Edgecloud; use host or none");
  }
  if (hc.isSet("PortBindings") || hc.isSet("PublishAllPorts")) {
    if (spec.network == runtime::NetworkMode::kNone) {
      return unsupported("HostConfig.PortBindings",
                         "published ports cannot reach a container with network 'none'");
    }
    warn(
        "published ports are ignored: containers use the host network, so a port the "
        "container listens on is that port on the host");
  }

  // Resources.
  ASSIGN_OR_RETURN(int64_t memory, hc.integer("Memory"));
  if (memory < 0) return Status::invalidArgument("HostConfig.Memory: must be >= 0 bytes");
  if (memory > 0 && memory < 6 * 1024 * 1024) {
    return Status::invalidArgument("HostConfig.Memory: " + std::to_string(memory) +
                                   " bytes is below the minimum of 6 MiB");
  }
  spec.resources.memory_bytes = memory;
  ASSIGN_OR_RETURN(int64_t swap, hc.integer("MemorySwap"));
  if (swap != 0 && swap != memory) {
    warn("MemorySwap is ignored: containers never use swap beyond their memory limit");
  }
  ASSIGN_OR_RETURN(int64_t nano, hc.integer("NanoCpus"));
  ASSIGN_OR_RETURN(int64_t quota, hc.integer("CpuQuota"));
  ASSIGN_OR_RETURN(int64_t period, hc.integer("CpuPeriod"));
  if (nano < 0 || quota < -1 || period < 0) {
    return Status::invalidArgument("HostConfig.NanoCpus/CpuQuota/CpuPeriod: must be >= 0");
  }
  if (nano > 0 && (quota > 0 || period > 0)) {
    return Status::invalidArgument(
        "HostConfig.NanoCpus: conflicting options: NanoCpus and CpuQuota/CpuPeriod cannot both "
        "be set");
  }
  if (nano == 0 && quota > 0) {
    if (period == 0) period = 100000;
    // In 128 bits: quota * 1e9 overflows int64 for quotas beyond ~9.2e9 (found by fuzzing).
    __int128 n = static_cast<__int128>(quota) * 1'000'000'000 / period;
    if (n > INT64_MAX) return Status::invalidArgument("HostConfig.CpuQuota: too large");
    nano = static_cast<int64_t>(n);
  }
  spec.resources.nano_cpus = nano;
  ASSIGN_OR_RETURN(int64_t pids, hc.integer("PidsLimit"));
  spec.resources.pids_limit = pids > 0 ? pids : 0;  // 0 and -1 both mean unlimited
  if (hc.isSet("CpuShares")) warn("CpuShares is ignored: set a CPU limit with --cpus instead");
  if (hc.isSet("CpusetCpus") || hc.isSet("CpusetMems")) warn("CPU/memory pinning is ignored");
  if (hc.isSet("MemoryReservation")) warn("MemoryReservation is ignored");
  if (hc.isSet("Ulimits")) warn("Ulimits are ignored");
  if (hc.isSet("OomKillDisable")) warn("OomKillDisable is ignored");
  if (hc.isSet("ShmSize")) warn("ShmSize is ignored");
  if (hc.isSet("Dns") || hc.isSet("DnsSearch") || hc.isSet("DnsOptions")) {
    warn("DNS settings are ignored: containers use the host's resolver configuration");
  }
  if (hc.isSet("Init")) warn("Init is ignored: the container's command runs as its PID 1");
  if (hc.isSet("Runtime")) warn("Runtime is ignored: containers run on the node's runtime");
  if (cfg.isSet("OpenStdin") || cfg.isSet("AttachStdin")) {
    warn("stdin is not connected: containers read /dev/null");
  }
  if (const Json* hcheck = cfg.get("Healthcheck")) {
    Fields h(*hcheck, "Healthcheck.");
    Result<std::vector<std::string>> test = h.strings("Test");
    if (!test.isOk()) return test.status();
    if (!test->empty() && (*test)[0] != "NONE") {
      warn(
          "health checks are not run for containers created through the Docker API; "
          "deploy a manifest with a health check instead");
    }
  }
  if (const Json* lc = hc.get("LogConfig")) {
    Fields l(*lc, "HostConfig.LogConfig.");
    ASSIGN_OR_RETURN(std::string type, l.str("Type"));
    if (!type.empty() && type != "json-file" && type != "local") {
      warn("log driver '" + type + "' is ignored: the node keeps each container's log");
    }
  }
  if (const Json* rp = hc.get("RestartPolicy")) {
    Fields r(*rp, "HostConfig.RestartPolicy.");
    ASSIGN_OR_RETURN(std::string policy, r.str("Name"));
    if (!policy.empty() && policy != "no") {
      warn("restart policy '" + policy +
           "' is not applied to containers created through the Docker API; deploy a manifest "
           "with a restart policy to have the node restart it");
    }
  }

  // Mounts.
  ASSIGN_OR_RETURN(std::vector<std::string> binds, hc.strings("Binds"));
  for (size_t i = 0; i < binds.size(); ++i) {
    ASSIGN_OR_RETURN(runtime::BindMount m, parseBind(binds[i], i));
    spec.mounts.push_back(std::move(m));
  }
  if (const Json* mounts = hc.get("Mounts")) {
    if (!mounts->is_array()) {
      return Status::invalidArgument("HostConfig.Mounts: expected an array, got " +
                                     json::typeName(*mounts));
    }
    for (size_t i = 0; i < mounts->size(); ++i) {
      Fields m((*mounts)[i], "HostConfig.Mounts[" + std::to_string(i) + "].");
      ASSIGN_OR_RETURN(std::string type, m.str("Type"));
      if (type != "bind") {
        return unsupported(m.path("Type"), "'" + type +
                                               "' mounts are not supported by Edgecloud; only "
                                               "bind mounts of absolute host paths are");
      }
      runtime::BindMount b;
      ASSIGN_OR_RETURN(b.source, m.str("Source"));
      ASSIGN_OR_RETURN(b.target, m.str("Target"));
      ASSIGN_OR_RETURN(b.read_only, m.boolean("ReadOnly"));
      if (b.source.empty() || b.source.front() != '/' || b.target.empty() ||
          b.target.front() != '/') {
        return Status::invalidArgument(m.path("Source") + "/" + "Target" +
                                       ": both must be absolute paths");
      }
      spec.mounts.push_back(std::move(b));
    }
  }
  return out;
}

Json containerInspectJson(const ContainerInfo& c, WallTime now) {
  (void)now;
  std::vector<std::string> argv = commandLine(c);
  std::string path = argv.empty() ? "" : argv.front();
  std::vector<std::string> args = argv.empty()
                                      ? std::vector<std::string>()
                                      : std::vector<std::string>(argv.begin() + 1, argv.end());
  bool running = c.state == ContainerState::kRunning;
  Json state = {{"Status", std::string(runtime::containerStateName(c.state))},
                {"Running", running},
                {"Paused", false},
                {"Restarting", false},
                {"OOMKilled", c.oom_killed},
                {"Dead", false},
                {"Pid", running ? c.pid : 0},
                {"ExitCode", c.exit_code},
                {"Error", c.error},
                {"StartedAt", dockerTime(c.started)},
                {"FinishedAt", dockerTime(c.finished)}};
  std::string hostname = c.id.substr(0, 12);
  Json binds = Json::array();
  for (const auto& m : c.mounts) {
    binds.push_back(m.source + ":" + m.target + (m.read_only ? ":ro" : ""));
  }
  Json config = {{"Hostname", hostname},
                 {"Domainname", ""},
                 {"User", c.user},
                 {"AttachStdin", false},
                 {"AttachStdout", false},
                 {"AttachStderr", false},
                 {"Tty", false},
                 {"OpenStdin", false},
                 {"StdinOnce", false},
                 {"Env", c.env},
                 {"Cmd", c.cmd.empty() ? Json() : Json(c.cmd)},
                 {"Image", c.image},
                 {"Volumes", Json()},
                 {"WorkingDir", c.working_dir},
                 {"Entrypoint", c.entrypoint.empty() ? Json() : Json(c.entrypoint)},
                 {"OnBuild", Json()},
                 {"Labels", labelsJson(c.labels)}};
  Json host_config = {{"Binds", c.mounts.empty() ? Json() : binds},
                      {"NetworkMode", networkName(c.network)},
                      {"RestartPolicy", {{"Name", "no"}, {"MaximumRetryCount", 0}}},
                      {"AutoRemove", false},
                      {"Privileged", false},
                      {"ReadonlyRootfs", false},
                      {"Memory", c.resources.memory_bytes},
                      {"MemorySwap", c.resources.memory_bytes},
                      {"NanoCpus", c.resources.nano_cpus},
                      {"CpuQuota", 0},
                      {"CpuPeriod", 0},
                      {"PidsLimit", c.resources.pids_limit},
                      {"PortBindings", Json::object()},
                      {"LogConfig", {{"Type", "json-file"}, {"Config", Json::object()}}}};
  return {{"Id", c.id},
          {"Created", dockerTime(c.created)},
          {"Path", path},
          {"Args", args},
          {"State", state},
          {"Image", c.image_id},
          {"ResolvConfPath", ""},
          {"HostnamePath", ""},
          {"HostsPath", ""},
          {"LogPath", ""},
          {"Name", "/" + c.name},
          {"RestartCount", 0},
          {"Driver", "overlay"},
          {"Platform", "linux"},
          {"MountLabel", ""},
          {"ProcessLabel", ""},
          {"AppArmorProfile", ""},
          {"ExecIDs", Json()},
          {"HostConfig", host_config},
          {"GraphDriver", {{"Name", "overlay"}, {"Data", Json()}}},
          {"Mounts", mountsJson(c.mounts)},
          {"Config", config},
          {"NetworkSettings",
           {{"Bridge", ""},
            {"SandboxID", ""},
            {"HairpinMode", false},
            {"Ports", Json::object()},
            {"SandboxKey", ""},
            {"IPAddress", ""},
            {"Gateway", ""},
            {"MacAddress", ""},
            {"Networks", networksJson(c.network)}}}};
}

Json containerSummaryJson(const ContainerInfo& c, WallTime now) {
  std::vector<std::string> argv = commandLine(c);
  std::string command;
  for (const std::string& a : argv) {
    if (!command.empty()) command += ' ';
    command += a;
  }
  return {{"Id", c.id},
          {"Names", Json::array({"/" + c.name})},
          {"Image", c.image.empty() ? c.image_id : c.image},
          {"ImageID", c.image_id},
          {"Command", command},
          {"Created", unixSeconds(c.created)},
          {"Ports", Json::array()},
          {"Labels", labelsJson(c.labels)},
          {"State", std::string(runtime::containerStateName(c.state))},
          {"Status", statusText(c, now)},
          {"HostConfig", {{"NetworkMode", networkName(c.network)}}},
          {"NetworkSettings", {{"Networks", networksJson(c.network)}}},
          {"Mounts", mountsJson(c.mounts)}};
}

Result<ContainerFilters> parseContainerFilters(std::string_view text) {
  ContainerFilters f;
  if (text.find_first_not_of(" \t\r\n") == std::string_view::npos) return f;
  ASSIGN_OR_RETURN(Json j, json::parse(text, "filters"));
  if (!j.is_object()) {
    return Status::invalidArgument(
        "filters: expected a JSON object such as "
        "{\"label\":[\"k=v\"]}, got " +
        json::typeName(j));
  }
  for (auto it = j.begin(); it != j.end(); ++it) {
    std::vector<std::string> values;
    // {"name":["x"]}, or the older {"name":{"x":true}}.
    if (it->is_array()) {
      for (const Json& v : *it) {
        if (!v.is_string()) {
          return Status::invalidArgument("filters." + it.key() + ": values must be strings");
        }
        values.push_back(v.get<std::string>());
      }
    } else if (it->is_object()) {
      for (auto v = it->begin(); v != it->end(); ++v) {
        if (v->is_boolean() && v->get<bool>()) values.push_back(v.key());
      }
    } else {
      return Status::invalidArgument("filters." + it.key() + ": expected a list of strings");
    }
    const std::string& key = it.key();
    if (key == "label") {
      f.labels = values;
    } else if (key == "name") {
      for (const std::string& n : values) {
        try {
          std::regex check(n);
        } catch (const std::regex_error& e) {
          return Status::invalidArgument("filters.name: '" + n +
                                         "' is not a valid regular expression: " + e.what());
        }
      }
      f.names = values;
    } else if (key == "id") {
      f.ids = values;
    } else if (key == "status") {
      static const std::set<std::string> kStatuses = {
          "created", "restarting", "running", "removing", "paused", "exited", "dead"};
      for (const std::string& s : values) {
        if (!kStatuses.contains(s)) {
          return Status::invalidArgument(
              "filters.status: '" + s +
              "' is not one of created, restarting, running, removing, paused, exited, dead");
        }
      }
      f.statuses = values;
    } else if (key == "ancestor") {
      f.ancestors = values;
    } else {
      return Status::invalidArgument("invalid filter '" + key +
                                     "': Edgecloud supports label, name, id, status, ancestor");
    }
  }
  return f;
}

bool matchesFilters(const ContainerInfo& c, const ContainerFilters& f,
                    const std::vector<std::string>& image_tags) {
  auto any = [](const std::vector<std::string>& values, auto pred) {
    return values.empty() || std::any_of(values.begin(), values.end(), pred);
  };
  // Labels are all required (as in Docker); other kinds match any of their values.
  for (const std::string& l : f.labels) {
    size_t eq = l.find('=');
    auto it = c.labels.find(l.substr(0, eq));
    if (it == c.labels.end()) return false;
    if (eq != std::string::npos && it->second != l.substr(eq + 1)) return false;
  }
  bool ok = any(f.names,
                [&](const std::string& n) {
                  try {
                    std::regex re(n);
                    return std::regex_search(c.name, re) || std::regex_search("/" + c.name, re);
                  } catch (const std::regex_error&) {
                    return false;
                  }
                }) &&
            any(f.ids, [&](const std::string& id) { return c.id.starts_with(id); }) &&
            any(f.statuses,
                [&](const std::string& s) { return s == runtime::containerStateName(c.state); }) &&
            any(f.ancestors, [&](const std::string& a) {
              std::string ref = runtime::normalizeImageRef(a);
              if (c.image_id == a || (a.size() >= 12 && c.image_id.find(a) != std::string::npos)) {
                return true;
              }
              if (runtime::normalizeImageRef(c.image) == ref) return true;
              return std::find(image_tags.begin(), image_tags.end(), ref) != image_tags.end();
            });
  return ok;
}

}  // namespace edge::orchestrator::api

namespace edge::orchestrator {

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

}  // namespace edge::orchestrator
