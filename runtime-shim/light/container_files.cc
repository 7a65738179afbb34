#include "runtime-shim/light/container_files.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>

#include "common/fs.h"
#include "common/json.h"

namespace edge::runtime::light {
namespace {

using json::Json;

std::string timeText(WallTime t) {
  return t == WallTime{} ? "" : formatRfc3339Nano(t);
}
WallTime parseTime(const std::string& s) {
  WallTime t{};
  if (!s.empty()) parseTimestamp(s, &t);
  return t;
}

// Wraps nlohmann's exceptions for typed reads of records we wrote ourselves.
template <typename F>
auto guarded(std::string_view what, F&& f) -> decltype(f()) {
  try {
    return f();
  } catch (const std::exception& e) {
    return Status::invalidArgument(std::string(what) + ": " + e.what());
  }
}

}  // namespace

std::string encodeLaunchConfig(const LaunchConfig& c) {
  const ContainerInfo& i = c.info;
  Json mounts = Json::array();
  for (const BindMount& m : i.mounts) {
    mounts.push_back({{"source", m.source}, {"target", m.target}, {"read_only", m.read_only}});
  }
  Json j = {
      {"id", i.id},
      {"name", i.name},
      {"image", i.image},
      {"image_id", i.image_id},
      {"created", timeText(i.created)},
      {"entrypoint", i.entrypoint},
      {"cmd", i.cmd},
      {"env", i.env},
      {"working_dir", i.working_dir},
      {"user", i.user},
      {"labels", i.labels},
      {"network", i.network == NetworkMode::kNone ? "none" : "host"},
      {"mounts", mounts},
      {"resources",
       {{"memory_bytes", i.resources.memory_bytes},
        {"nano_cpus", i.resources.nano_cpus},
        {"pids_limit", i.resources.pids_limit}}},
      {"hostname", c.hostname},
      {"stop_signal", c.stop_signal},
      {"stop_timeout_s", c.stop_timeout_s},
      {"rootfs_copy", c.rootfs_copy},
      {"layers", c.layers},
      {"cgroups",
       {{"version", static_cast<int>(c.cgroups.version)},
        {"v1", c.cgroups.v1_mounts},
        {"v2", c.cgroups.v2_root}}},
      {"log",
       {{"max_file_bytes", c.log.max_file_bytes},
        {"max_files", c.log.max_files},
        {"max_line", c.log.max_line}}},
      {"seccomp", c.seccomp_path},
  };
  return json::dump(j, 1);
}

Result<LaunchConfig> decodeLaunchConfig(std::string_view text) {
  ASSIGN_OR_RETURN(Json j, json::parse(text, "config.json"));
  return guarded("config.json", [&]() -> Result<LaunchConfig> {
    LaunchConfig c;
    ContainerInfo& i = c.info;
    i.id = j.at("id").get<std::string>();
    i.name = j.value("name", "");
    i.image = j.value("image", "");
    i.image_id = j.value("image_id", "");
    i.created = parseTime(j.value("created", ""));
    i.entrypoint = j.value("entrypoint", std::vector<std::string>{});
    i.cmd = j.value("cmd", std::vector<std::string>{});
    i.env = j.value("env", std::vector<std::string>{});
    i.working_dir = j.value("working_dir", "/");
    i.user = j.value("user", "");
    i.labels = j.value("labels", std::map<std::string, std::string>{});
    i.network = j.value("network", "host") == "none" ? NetworkMode::kNone : NetworkMode::kHost;
    for (const Json& m : j.value("mounts", Json::array())) {
      i.mounts.push_back({m.at("source").get<std::string>(), m.at("target").get<std::string>(),
                          m.value("read_only", false)});
    }
    const Json& r = j.at("resources");
    i.resources.memory_bytes = r.value("memory_bytes", int64_t{0});
    i.resources.nano_cpus = r.value("nano_cpus", int64_t{0});
    i.resources.pids_limit = r.value("pids_limit", int64_t{0});
    c.hostname = j.value("hostname", "");
    c.stop_signal = j.value("stop_signal", "");
    c.stop_timeout_s = j.value("stop_timeout_s", int64_t{-1});
    c.rootfs_copy = j.value("rootfs_copy", false);
    c.layers = j.value("layers", std::vector<std::string>{});
    const Json& cg = j.at("cgroups");
    c.cgroups.version = cg.value("version", 1) == 2 ? CgroupVersion::kV2 : CgroupVersion::kV1;
    c.cgroups.v1_mounts = cg.value("v1", std::map<std::string, std::string>{});
    c.cgroups.v2_root = cg.value("v2", "");
    const Json& l = j.at("log");
    c.log.max_file_bytes = l.value("max_file_bytes", c.log.max_file_bytes);
    c.log.max_files = l.value("max_files", c.log.max_files);
    c.log.max_line = l.value("max_line", c.log.max_line);
    c.seccomp_path = j.value("seccomp", "");
    return c;
  });
}

std::string encodeState(const StateRecord& s) {
  Json j = {{"state", containerStateName(s.state)},
            {"pid", s.pid},
            {"pid_start", s.pid_start},
            {"shim_pid", s.shim_pid},
            {"shim_start", s.shim_start},
            {"started", timeText(s.started)},
            {"error", s.error},
            {"exit_code", s.exit_code}};
  return json::dump(j);
}

Result<StateRecord> decodeState(std::string_view text) {
  ASSIGN_OR_RETURN(Json j, json::parse(text, "state.json"));
  return guarded("state.json", [&]() -> Result<StateRecord> {
    StateRecord s;
    std::string st = j.at("state").get<std::string>();
    if (st == "running") {
      s.state = ContainerState::kRunning;
    } else if (st == "exited") {
      s.state = ContainerState::kExited;
    } else if (st == "created") {
      s.state = ContainerState::kCreated;
    } else {
      return Status::invalidArgument("state.json: unknown state '" + st + "'");
    }
    s.pid = j.value("pid", 0);
    s.pid_start = j.value("pid_start", uint64_t{0});
    s.shim_pid = j.value("shim_pid", 0);
    s.shim_start = j.value("shim_start", uint64_t{0});
    s.started = parseTime(j.value("started", ""));
    s.error = j.value("error", "");
    s.exit_code = j.value("exit_code", 0);
    return s;
  });
}

std::string encodeExit(const ExitRecord& e) {
  Json j = {
      {"exit_code", e.exit_code}, {"oom_killed", e.oom_killed}, {"finished", timeText(e.finished)}};
  return json::dump(j);
}

Result<ExitRecord> decodeExit(std::string_view text) {
  ASSIGN_OR_RETURN(Json j, json::parse(text, "exit.json"));
  return guarded("exit.json", [&]() -> Result<ExitRecord> {
    ExitRecord e;
    e.exit_code = j.at("exit_code").get<int>();
    e.oom_killed = j.value("oom_killed", false);
    e.finished = parseTime(j.value("finished", ""));
    return e;
  });
}

Status replaceFile(const std::string& path, std::string_view data) {
  std::string tmp = path + ".tmp";
  fs::UniqueFd fd(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
  if (!fd.valid()) return Status::fromErrno(errno, "create " + tmp);
  RETURN_IF_ERROR(fs::writeAll(fd.get(), data));
  fd.reset();
  if (::rename(tmp.c_str(), path.c_str()) != 0) return Status::fromErrno(errno, "rename " + tmp);
  return Status::ok();
}

uint64_t procStartTime(int pid) {
  if (pid <= 0) return 0;
  char path[64];
  std::snprintf(path, sizeof path, "/proc/%d/stat", pid);
  fs::UniqueFd fd(::open(path, O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) return 0;
  char buf[1024];
  ssize_t n = ::read(fd.get(), buf, sizeof buf - 1);
  if (n <= 0) return 0;
  std::string_view s(buf, static_cast<size_t>(n));
  // The command name may hold spaces and parentheses: fields restart after the last ')'.
  size_t rp = s.rfind(')');
  if (rp == std::string_view::npos) return 0;
  s.remove_prefix(rp + 1);
  // Field 3 (state) is the first after ')'; starttime is field 22.
  int field = 2;
  size_t i = 0;
  while (i < s.size() && field < 22) {
    while (i < s.size() && s[i] == ' ') ++i;
    ++field;
    if (field == 22) break;
    while (i < s.size() && s[i] != ' ') ++i;
  }
  uint64_t v = 0;
  while (i < s.size() && s[i] >= '0' && s[i] <= '9')
    v = v * 10 + static_cast<uint64_t>(s[i++] - '0');
  return v;
}

bool processMatches(int pid, uint64_t start_time) {
  if (pid <= 0 || start_time == 0) return false;
  return procStartTime(pid) == start_time;
}

Recovered recoverContainer(const std::optional<StateRecord>& state,
                           const std::optional<ExitRecord>& exit, bool shim_alive,
                           bool host_restarted) {
  Recovered r;
  if (host_restarted) {
    // Whether it ran, ran to the end or never started is lost with the run root.
    r.state = ContainerState::kExited;
    r.exit_code = 255;
    r.error = "the host restarted: the container's runtime state is gone";
    return r;
  }
  if (!state) return r;  // never started: created
  r.error = state->error;
  r.exit_code = state->exit_code;
  if (state->state == ContainerState::kCreated) return r;
  if (exit) {
    r.state = ContainerState::kExited;
    r.exit_code = exit->exit_code;
    r.oom_killed = exit->oom_killed;
    r.finished = exit->finished;
    return r;
  }
  if (state->state == ContainerState::kRunning && shim_alive) {
    r.state = ContainerState::kRunning;
    r.adopt = true;
    return r;
  }
  r.state = ContainerState::kExited;
  if (state->state == ContainerState::kRunning) {
    r.exit_code = 255;
    r.error = "the container's shim (pid " + std::to_string(state->shim_pid) +
              ") died without recording an exit status";
  }
  return r;
}

}  // namespace edge::runtime::light
