// edge-ctr: drives a ContainerRuntime directly, without the node agent — the runtime
// layer's own operator and debugging tool (what `ctr` is to containerd). It speaks to
// the host's Docker Engine or runs containers on the light runtime, chosen like edged
// chooses (--runtime auto|docker|light).
#include <unistd.h>

#include <CLI/CLI.hpp>

#include <atomic>
#include <csignal>
#include <cstdio>
#include <iostream>
#include <thread>

#include "common/clock.h"
#include "common/config.h"
#include "common/json.h"
#include "common/log.h"
#include "runtime-shim/factory.h"

namespace edge::runtime {
namespace {

using json::Json;

struct Globals {
  std::string runtime = "auto";
  std::string data_dir = "/var/lib/edged";
  std::string docker_host = "unix:///var/run/docker.sock";
  std::string output = "table";
  std::string log_level = "warn";
};

int fail(const Status& s) {
  std::fprintf(stderr, "edge-ctr: %s\n", s.toString().c_str());
  switch (s.code()) {
    case StatusCode::kInvalidArgument:
      return 2;
    case StatusCode::kNotFound:
      return 3;
    default:
      return 1;
  }
}

std::string shortId(const std::string& id) {
  std::string s = id;
  if (s.starts_with("sha256:")) s = s.substr(7);
  return s.substr(0, 12);
}

std::string ago(WallTime t) {
  if (t == WallTime{}) return "-";
  auto secs = std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now() - t)
                  .count();
  if (secs < 60) return std::to_string(secs) + "s ago";
  if (secs < 3600) return std::to_string(secs / 60) + "m ago";
  if (secs < 86400) return std::to_string(secs / 3600) + "h ago";
  return std::to_string(secs / 86400) + "d ago";
}

std::string humanBytes(int64_t b) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  double v = static_cast<double>(b);
  int u = 0;
  while (v >= 1024 && u < 4) {
    v /= 1024;
    ++u;
  }
  char buf[32];
  std::snprintf(buf, sizeof buf, u == 0 ? "%.0f%s" : "%.1f%s", v, units[u]);
  return buf;
}

std::string joinCommand(const std::vector<std::string>& a, const std::vector<std::string>& b) {
  std::string out;
  for (const auto* v : {&a, &b}) {
    for (const auto& s : *v) out += (out.empty() ? "" : " ") + s;
  }
  if (out.size() > 40) out = out.substr(0, 37) + "...";
  return "\"" + out + "\"";
}

Json imageJson(const ImageInfo& i) {
  return Json{{"Id", i.id},
              {"RepoTags", i.tags},
              {"Layers", i.layers},
              {"Size", i.size_bytes},
              {"Created", formatRfc3339Nano(i.created)},
              {"Os", i.os},
              {"Architecture", i.architecture},
              {"Entrypoint", i.entrypoint},
              {"Cmd", i.cmd},
              {"Env", i.env},
              {"WorkingDir", i.working_dir},
              {"User", i.user},
              {"StopSignal", i.stop_signal},
              {"Labels", i.labels}};
}

Json containerJson(const ContainerInfo& c) {
  Json mounts = Json::array();
  for (const auto& m : c.mounts) {
    mounts.push_back({{"Source", m.source}, {"Target", m.target}, {"ReadOnly", m.read_only}});
  }
  return Json{{"Id", c.id},
              {"Name", c.name},
              {"Image", c.image},
              {"ImageId", c.image_id},
              {"State", containerStateName(c.state)},
              {"Pid", c.pid},
              {"ExitCode", c.exit_code},
              {"OOMKilled", c.oom_killed},
              {"Error", c.error},
              {"Created", formatRfc3339Nano(c.created)},
              {"StartedAt", formatRfc3339Nano(c.started)},
              {"FinishedAt", formatRfc3339Nano(c.finished)},
              {"Entrypoint", c.entrypoint},
              {"Cmd", c.cmd},
              {"Env", c.env},
              {"WorkingDir", c.working_dir},
              {"User", c.user},
              {"Labels", c.labels},
              {"NetworkMode", c.network == NetworkMode::kHost ? "host" : "none"},
              {"Mounts", mounts},
              {"Resources",
               {{"Memory", c.resources.memory_bytes},
                {"NanoCpus", c.resources.nano_cpus},
                {"PidsLimit", c.resources.pids_limit}}}};
}

void printJson(const Json& j) {
  std::cout << json::dump(j, 2) << "\n";
}

// Parses "src:dst[:ro|rw]".
Result<BindMount> parseVolume(const std::string& v) {
  BindMount m;
  size_t a = v.find(':');
  if (a == std::string::npos) {
    return Status::invalidArgument("--volume '" + v + "': use /host/path:/container/path[:ro]");
  }
  m.source = v.substr(0, a);
  std::string rest = v.substr(a + 1);
  size_t b = rest.find(':');
  m.target = rest.substr(0, b);
  if (b != std::string::npos) {
    std::string mode = rest.substr(b + 1);
    if (mode == "ro") {
      m.read_only = true;
    } else if (mode != "rw") {
      return Status::invalidArgument("--volume '" + v + "': mode '" + mode + "' must be ro or rw");
    }
  }
  return m;
}

Result<std::map<std::string, std::string>> parseLabels(const std::vector<std::string>& in,
                                                       const char* flag) {
  std::map<std::string, std::string> out;
  for (const auto& l : in) {
    size_t eq = l.find('=');
    if (eq == std::string::npos || eq == 0) {
      return Status::invalidArgument(std::string(flag) + " '" + l + "': use key=value");
    }
    out[l.substr(0, eq)] = l.substr(eq + 1);
  }
  return out;
}

// Writes one log entry to our stdout or stderr, as the container wrote it.
bool emitLog(const LogEntry& e, bool timestamps) {
  FILE* out = e.stream == LogStream::kStderr ? stderr : stdout;
  if (timestamps) std::fprintf(out, "%s ", formatRfc3339Nano(e.time).c_str());
  std::fwrite(e.data.data(), 1, e.data.size(), out);
  std::fflush(out);
  return true;
}

struct RunFlags {
  std::string name;
  std::vector<std::string> env;
  std::string entrypoint;
  bool entrypoint_set = false;
  std::string workdir;
  std::string user;
  std::string hostname;
  std::vector<std::string> labels;
  std::string network = "host";
  std::vector<std::string> volumes;
  std::string memory;
  double cpus = 0;
  int64_t pids = 0;
  std::string stop_signal;
  int stop_timeout = -1;
  bool detach = false;
  bool rm = false;
  std::string image;
  std::vector<std::string> command;
};

Result<ContainerSpec> toSpec(const RunFlags& f) {
  ContainerSpec s;
  s.name = f.name;
  s.image = f.image;
  s.env = f.env;
  if (f.entrypoint_set) {
    s.entrypoint =
        f.entrypoint.empty() ? std::vector<std::string>{} : std::vector<std::string>{f.entrypoint};
  }
  if (!f.command.empty()) s.cmd = f.command;
  s.working_dir = f.workdir;
  s.user = f.user;
  s.hostname = f.hostname;
  ASSIGN_OR_RETURN(s.labels, parseLabels(f.labels, "--label"));
  if (f.network == "host") {
    s.network = NetworkMode::kHost;
  } else if (f.network == "none") {
    s.network = NetworkMode::kNone;
  } else {
    return Status::invalidArgument("--network '" + f.network + "': use host or none");
  }
  for (const auto& v : f.volumes) {
    ASSIGN_OR_RETURN(BindMount m, parseVolume(v));
    s.mounts.push_back(m);
  }
  if (!f.memory.empty()) {
    auto m = parseBytes(f.memory);
    if (!m.isOk()) return m.status().withContext("--memory");
    s.resources.memory_bytes = *m;
  }
  if (f.cpus < 0) return Status::invalidArgument("--cpus must not be negative");
  s.resources.nano_cpus = static_cast<int64_t>(f.cpus * 1e9);
  s.resources.pids_limit = f.pids;
  s.stop_signal = f.stop_signal;
  if (f.stop_timeout >= 0) s.stop_timeout = std::chrono::seconds(f.stop_timeout);
  return s;
}

std::atomic<int> g_interrupted{0};

int runCommand(ContainerRuntime& rt, const RunFlags& f) {
  auto spec = toSpec(f);
  if (!spec.isOk()) return fail(spec.status());
  auto id = rt.createContainer(*spec);
  if (!id.isOk()) return fail(id.status());
  Status s = rt.startContainer(*id);
  if (!s.isOk()) {
    if (f.rm) (void)rt.removeContainer(*id, true);
    return fail(s);
  }
  if (f.detach) {
    std::cout << *id << "\n";
    return 0;
  }
  // Attached: stream the logs until the container exits; Ctrl-C stops it.
  std::signal(SIGINT, [](int) { g_interrupted = 1; });
  std::signal(SIGTERM, [](int) { g_interrupted = 1; });
  std::string cid = *id;
  std::thread stopper([&rt, cid] {
    while (true) {
      auto st = rt.waitContainer(cid, std::chrono::milliseconds(200));
      if (st.isOk() || st.status().code() != StatusCode::kDeadlineExceeded) return;
      if (g_interrupted) {
        (void)rt.stopContainer(cid, std::nullopt);
        return;
      }
    }
  });
  LogOptions lo;
  lo.follow = true;
  Status ls = rt.readLogs(cid, lo, [](const LogEntry& e) { return emitLog(e, false); });
  stopper.join();
  if (!ls.isOk()) std::fprintf(stderr, "edge-ctr: logs: %s\n", ls.toString().c_str());
  auto exit = rt.waitContainer(cid, std::nullopt);
  if (f.rm) (void)rt.removeContainer(cid, true);
  if (!exit.isOk()) return fail(exit.status());
  if (exit->oom_killed) std::fprintf(stderr, "edge-ctr: container was killed: out of memory\n");
  return exit->exit_code;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{
      "edge-ctr: run and manage containers on this host's Docker Engine or on "
      "Edgecloud's light runtime, without the node agent"};
  app.require_subcommand(1);
  Globals g;
  app.add_option("--runtime", g.runtime, "auto | docker | light")
      ->check(CLI::IsMember({"auto", "docker", "light"}))
      ->envname("EDGE_RUNTIME")
      ->capture_default_str();
  app.add_option("--data-dir", g.data_dir,
                 "state directory (the light runtime keeps its "
                 "images and containers here)")
      ->envname("EDGE_DATA_DIR")
      ->capture_default_str();
  app.add_option("--docker-host", g.docker_host, "Docker Engine endpoint")
      ->envname("DOCKER_HOST")
      ->capture_default_str();
  app.add_option("-o,--output", g.output, "table | json")
      ->check(CLI::IsMember({"table", "json"}))
      ->capture_default_str();
  app.add_option("--log-level", g.log_level, "debug | info | warn | error")->capture_default_str();

  std::string arg_id, arg_file, arg_signal = "SIGKILL", arg_since;
  bool force = false, all = false, follow = false, timestamps = false;
  int timeout = -1;
  int64_t tail = -1;
  std::vector<std::string> filters;

  auto* info = app.add_subcommand("info", "show the runtime in use");
  auto* load = app.add_subcommand("load", "load images from a docker-save or OCI tarball");
  load->add_option("-i,--input", arg_file, "tarball")->required();
  auto* images = app.add_subcommand("images", "list images");
  auto* rmi = app.add_subcommand("rmi", "remove an image");
  rmi->add_option("image", arg_id)->required();
  rmi->add_flag("-f,--force", force, "remove even when a container uses it");
  auto* image_inspect = app.add_subcommand("image-inspect", "show an image as JSON");
  image_inspect->add_option("image", arg_id)->required();

  RunFlags rf;
  auto addRunFlags = [&](CLI::App* c) {
    c->add_option("--name", rf.name, "container name");
    c->add_option("-e,--env", rf.env, "KEY=value")->allow_extra_args(false);
    c->add_option("--entrypoint", rf.entrypoint, "override the image's entrypoint")
        ->each([&](const std::string&) { rf.entrypoint_set = true; });
    c->add_option("-w,--workdir", rf.workdir, "working directory");
    c->add_option("-u,--user", rf.user, "uid[:gid] or name[:group]");
    c->add_option("--hostname", rf.hostname);
    c->add_option("-l,--label", rf.labels, "key=value")->allow_extra_args(false);
    c->add_option("--network", rf.network, "host | none")->capture_default_str();
    c->add_option("-v,--volume", rf.volumes, "/host:/container[:ro]")->allow_extra_args(false);
    c->add_option("-m,--memory", rf.memory, "memory limit (64Mi, 1Gi, 64m)");
    c->add_option("--cpus", rf.cpus, "CPU limit (0.5 = half a core)");
    c->add_option("--pids-limit", rf.pids, "maximum number of processes");
    c->add_option("--stop-signal", rf.stop_signal);
    c->add_option("--stop-timeout", rf.stop_timeout, "seconds before SIGKILL on stop");
    c->add_option("image", rf.image)->required();
    // Everything after the image is the command, flags included (`sh -c '...'`).
    c->prefix_command();
    c->footer("Everything after IMAGE is the container's command and its arguments.");
  };
  auto* create = app.add_subcommand("create", "create a container");
  addRunFlags(create);
  auto* run = app.add_subcommand("run", "create and start a container; attached unless -d");
  run->add_flag("-d,--detach", rf.detach, "print the id and return");
  run->add_flag("--rm", rf.rm, "remove the container when it exits");
  addRunFlags(run);
  auto* start = app.add_subcommand("start", "start a created container");
  start->add_option("container", arg_id)->required();
  auto* stop = app.add_subcommand("stop", "stop a container (stop signal, then SIGKILL)");
  stop->add_option("container", arg_id)->required();
  stop->add_option("-t,--time", timeout, "seconds to wait before SIGKILL");
  auto* kill = app.add_subcommand("kill", "send a signal to a container");
  kill->add_option("container", arg_id)->required();
  kill->add_option("-s,--signal", arg_signal)->capture_default_str();
  auto* rm = app.add_subcommand("rm", "remove a container");
  rm->add_option("container", arg_id)->required();
  rm->add_flag("-f,--force", force, "kill it first when running");
  auto* ps = app.add_subcommand("ps", "list containers");
  ps->add_flag("-a,--all", all, "include stopped containers");
  ps->add_option("--filter", filters, "label=key=value")->allow_extra_args(false);
  auto* inspect = app.add_subcommand("inspect", "show a container as JSON");
  inspect->add_option("container", arg_id)->required();
  auto* logs = app.add_subcommand("logs", "print a container's logs (stdout and stderr apart)");
  logs->add_option("container", arg_id)->required();
  logs->add_flag("-f,--follow", follow);
  logs->add_flag("-t,--timestamps", timestamps);
  logs->add_option("--tail", tail, "only the last N lines");
  logs->add_option("--since", arg_since, "RFC 3339 time or Unix seconds");
  auto* wait = app.add_subcommand("wait", "wait for a container to exit; prints its exit code");
  wait->add_option("container", arg_id)->required();
  auto* stats = app.add_subcommand("stats", "CPU and memory of a container");
  stats->add_option("container", arg_id)->required();
  auto* events = app.add_subcommand("events", "stream container events until interrupted");

  CLI11_PARSE(app, argc, argv);
  if (*create) rf.command = create->remaining();
  if (*run) rf.command = run->remaining();

  log::Level level;
  if (!log::parseLevel(g.log_level, &level)) {
    return fail(Status::invalidArgument("--log-level '" + g.log_level +
                                        "': use debug, info, warn or error"));
  }
  log::setLevel(level);

  RuntimeOptions ro;
  ro.kind = g.runtime;
  ro.data_dir = g.data_dir;
  ro.docker_endpoint = g.docker_host;
  auto rt_or = createRuntime(ro);
  if (!rt_or.isOk()) return fail(rt_or.status());
  ContainerRuntime& rt = **rt_or;
  bool as_json = g.output == "json";

  if (*info) {
    auto i = rt.info();
    if (!i.isOk()) return fail(i.status());
    Json j{{"Runtime", i->kind},
           {"Version", i->version},
           {"ApiVersion", i->api_version},
           {"OS", i->os},
           {"Kernel", i->kernel},
           {"CgroupVersion", i->cgroup_version},
           {"Isolation", i->isolation},
           {"Containers", i->containers},
           {"ContainersRunning", i->containers_running},
           {"Images", i->images}};
    if (as_json) {
      printJson(j);
    } else {
      for (auto it = j.begin(); it != j.end(); ++it) {
        std::cout << it.key() << ": " << (it->is_string() ? it->get<std::string>() : it->dump())
                  << "\n";
      }
    }
    return 0;
  }
  if (*load) {
    auto r = rt.loadImage(arg_file);
    if (!r.isOk()) return fail(r.status());
    for (const auto& i : *r) {
      if (i.tags.empty()) std::cout << "Loaded image ID: " << i.id << "\n";
      for (const auto& t : i.tags) std::cout << "Loaded image: " << t << "\n";
    }
    return 0;
  }
  if (*images) {
    auto r = rt.listImages();
    if (!r.isOk()) return fail(r.status());
    if (as_json) {
      Json arr = Json::array();
      for (const auto& i : *r) arr.push_back(imageJson(i));
      printJson(arr);
      return 0;
    }
    std::printf("%-40s %-14s %-14s %s\n", "REFERENCE", "IMAGE ID", "CREATED", "SIZE");
    for (const auto& i : *r) {
      std::vector<std::string> tags = i.tags.empty() ? std::vector<std::string>{"<none>"} : i.tags;
      for (const auto& t : tags) {
        std::printf("%-40s %-14s %-14s %s\n", t.c_str(), shortId(i.id).c_str(),
                    ago(i.created).c_str(), humanBytes(i.size_bytes).c_str());
      }
    }
    return 0;
  }
  if (*rmi) {
    Status s = rt.removeImage(arg_id, force);
    if (!s.isOk()) return fail(s);
    std::cout << "Untagged or deleted: " << arg_id << "\n";
    return 0;
  }
  if (*image_inspect) {
    auto r = rt.inspectImage(arg_id);
    if (!r.isOk()) return fail(r.status());
    printJson(imageJson(*r));
    return 0;
  }
  if (*create) {
    auto spec = toSpec(rf);
    if (!spec.isOk()) return fail(spec.status());
    auto id = rt.createContainer(*spec);
    if (!id.isOk()) return fail(id.status());
    std::cout << *id << "\n";
    return 0;
  }
  if (*run) return runCommand(rt, rf);
  if (*start) {
    Status s = rt.startContainer(arg_id);
    if (!s.isOk()) return fail(s);
    std::cout << arg_id << "\n";
    return 0;
  }
  if (*stop) {
    std::optional<std::chrono::seconds> t;
    if (timeout >= 0) t = std::chrono::seconds(timeout);
    Status s = rt.stopContainer(arg_id, t);
    if (!s.isOk()) return fail(s);
    std::cout << arg_id << "\n";
    return 0;
  }
  if (*kill) {
    auto sig = parseSignal(arg_signal);
    if (!sig.isOk()) return fail(sig.status().withContext("--signal"));
    Status s = rt.killContainer(arg_id, *sig);
    if (!s.isOk()) return fail(s);
    std::cout << arg_id << "\n";
    return 0;
  }
  if (*rm) {
    Status s = rt.removeContainer(arg_id, force);
    if (!s.isOk()) return fail(s);
    std::cout << arg_id << "\n";
    return 0;
  }
  if (*ps) {
    ListOptions lo;
    lo.all = all;
    for (const auto& f : filters) {
      if (!f.starts_with("label=")) {
        return fail(Status::invalidArgument("--filter '" + f + "': only label=key=value is known"));
      }
      auto l = parseLabels({f.substr(6)}, "--filter label");
      if (!l.isOk()) return fail(l.status());
      lo.labels.insert(l->begin(), l->end());
    }
    auto r = rt.listContainers(lo);
    if (!r.isOk()) return fail(r.status());
    if (as_json) {
      Json arr = Json::array();
      for (const auto& c : *r) arr.push_back(containerJson(c));
      printJson(arr);
      return 0;
    }
    std::printf("%-14s %-28s %-44s %-10s %-16s %s\n", "CONTAINER ID", "IMAGE", "COMMAND", "STATE",
                "CREATED", "NAME");
    for (const auto& c : *r) {
      std::string state(containerStateName(c.state));
      if (c.state == ContainerState::kExited) state += " (" + std::to_string(c.exit_code) + ")";
      std::printf("%-14s %-28s %-44s %-10s %-16s %s\n", shortId(c.id).c_str(), c.image.c_str(),
                  joinCommand(c.entrypoint, c.cmd).c_str(), state.c_str(), ago(c.created).c_str(),
                  c.name.c_str());
    }
    return 0;
  }
  if (*inspect) {
    auto r = rt.inspectContainer(arg_id);
    if (!r.isOk()) return fail(r.status());
    printJson(containerJson(*r));
    return 0;
  }
  if (*logs) {
    LogOptions lo;
    lo.follow = follow;
    if (tail >= 0) lo.tail = static_cast<size_t>(tail);
    if (!arg_since.empty()) {
      WallTime t;
      if (!parseTimestamp(arg_since, &t)) {
        return fail(Status::invalidArgument("--since '" + arg_since +
                                            "': use RFC 3339 (2026-11-27T10:00:00Z) or Unix "
                                            "seconds"));
      }
      lo.since = t;
    }
    Status s = rt.readLogs(arg_id, lo, [&](const LogEntry& e) { return emitLog(e, timestamps); });
    return s.isOk() ? 0 : fail(s);
  }
  if (*wait) {
    auto r = rt.waitContainer(arg_id, std::nullopt);
    if (!r.isOk()) return fail(r.status());
    std::cout << r->exit_code << "\n";
    return 0;
  }
  if (*stats) {
    auto r = rt.stats(arg_id);
    if (!r.isOk()) return fail(r.status());
    Json j{{"CpuUsageNs", r->cpu_usage_ns},
           {"MemoryUsage", r->memory_usage_bytes},
           {"MemoryLimit", r->memory_limit_bytes},
           {"Pids", r->pids},
           {"ReadAt", formatRfc3339Nano(r->read_at)}};
    if (as_json) {
      printJson(j);
    } else {
      std::printf("CPU %.3fs  MEM %s / %s  PIDS %lld\n", static_cast<double>(r->cpu_usage_ns) / 1e9,
                  humanBytes(r->memory_usage_bytes).c_str(),
                  r->memory_limit_bytes ? humanBytes(r->memory_limit_bytes).c_str() : "unlimited",
                  static_cast<long long>(r->pids));
    }
    return 0;
  }
  if (*events) {
    std::signal(SIGINT, [](int) { g_interrupted = 1; });
    std::signal(SIGTERM, [](int) { g_interrupted = 1; });
    auto sub = rt.subscribe([&](const Event& e) {
      if (as_json) {
        std::cout << json::dump(Json{{"Type", eventTypeName(e.type)},
                                     {"Id", e.container_id},
                                     {"ExitCode", e.exit_code},
                                     {"Time", formatRfc3339Nano(e.time)}})
                  << std::endl;
      } else {
        std::cout << formatRfc3339Nano(e.time) << " container " << eventTypeName(e.type) << " "
                  << e.container_id
                  << (e.type == Event::Type::kExit ? " exitCode=" + std::to_string(e.exit_code)
                                                   : "")
                  << std::endl;
      }
    });
    if (!sub.isOk()) return fail(sub.status());
    while (!g_interrupted) ::pause();
    return 0;
  }
  return 0;
}

}  // namespace edge::runtime

int main(int argc, char** argv) {
  return edge::runtime::main(argc, argv);
}
