#include "edged/api/docker_codec.h"

#include <algorithm>
#include <cctype>
#include <map>
#include <regex>
#include <set>

#include "runtime-shim/docker/docker_wire.h"

namespace edge::edged::api {
namespace {

using json::Json;
using runtime::ContainerInfo;
using runtime::ContainerState;
using runtime::ImageInfo;
namespace dk = runtime::docker;

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

}  // namespace

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
          {"Created", dk::formatDockerTime(img.created)},
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
                {"StartedAt", dk::formatDockerTime(c.started)},
                {"FinishedAt", dk::formatDockerTime(c.finished)}};
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
          {"Created", dk::formatDockerTime(c.created)},
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

}  // namespace edge::edged::api
