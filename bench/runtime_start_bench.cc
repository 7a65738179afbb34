// Container start latency, side by side, in one run on one image:
//   light   Edgecloud's light runtime: create + start + wait + remove of /bin/true
//   runc    `runc run` of the same root filesystem as an OCI bundle (same namespaces)
//   docker  `docker run --rm` through dockerd (when one answers)
// Prints a table of medians and p90s, then `ratio <what> <value>` lines. A row that could
// not be measured (or had a failed repetition) shows "-" and why, its ratios are "-", and
// the run exits 1: every row is asked for.
//
//   edge-bench-runtime [--reps N] [--warmup N] [--images DIR] [--shim PATH]
//
// Needs root. The light runtime's state lives in a fresh temp dir, removed at the end.
#include <fcntl.h>
#include <spawn.h>
#include <sys/mount.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <string>
#include <vector>

#include "common/fs.h"
#include "common/json.h"
#include "runtime-shim/docker/docker_runtime.h"
#include "runtime-shim/factory.h"
#include "runtime-shim/image/image_store.h"

extern char** environ;

namespace edge::bench {
namespace {

using Clock = std::chrono::steady_clock;
using runtime::ContainerSpec;

struct Series {
  std::string name;
  std::vector<double> ms;
  std::string error;

  double percentile(double p) const {
    if (ms.empty()) return 0;
    std::vector<double> v = ms;
    std::sort(v.begin(), v.end());
    size_t i = static_cast<size_t>(p * static_cast<double>(v.size() - 1) + 0.5);
    return v[std::min(i, v.size() - 1)];
  }
};

// Runs argv to completion with stdout/stderr discarded; returns the exit status.
int spawnWait(const std::vector<std::string>& argv) {
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
  posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
  pid_t pid;
  int rc = posix_spawnp(&pid, args[0], &fa, nullptr, args.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  if (rc != 0) return -1;
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

void measure(Series& s, int warmup, int reps, const std::function<Status()>& once) {
  for (int i = 0; i < warmup + reps; ++i) {
    auto t0 = Clock::now();
    Status st = once();
    double ms = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
    if (!st.isOk()) {
      s.error = st.toString();
      s.ms.clear();
      return;
    }
    if (i >= warmup) s.ms.push_back(ms);
  }
}

Status lightOnce(runtime::ContainerRuntime& rt) {
  ContainerSpec spec;
  spec.image = "edgecloud/busybox:test";
  spec.cmd = std::vector<std::string>{"/bin/true"};
  ASSIGN_OR_RETURN(std::string id, rt.createContainer(spec));
  RETURN_IF_ERROR(rt.startContainer(id));
  ASSIGN_OR_RETURN(runtime::ExitStatus e, rt.waitContainer(id, std::nullopt));
  RETURN_IF_ERROR(rt.removeContainer(id, false));
  if (e.exit_code != 0) return Status::internal("/bin/true exited " + std::to_string(e.exit_code));
  return Status::ok();
}

// An OCI bundle for runc with the namespaces the light runtime uses by default
// (pid, mount, uts, ipc; host network) and the same command.
Status makeRuncBundle(const std::string& dir, const std::string& image_tar) {
  RETURN_IF_ERROR(fs::makeDirs(dir));
  ASSIGN_OR_RETURN(auto store, runtime::ImageStore::open(dir + "/store"));
  RETURN_IF_ERROR(store->load(image_tar).status());
  ASSIGN_OR_RETURN(auto layers, store->layerPaths("edgecloud/busybox:test"));
  RETURN_IF_ERROR(runtime::materializeRootfs(layers, dir + "/bundle/rootfs"));
  json::Json ns = json::Json::array();
  for (const char* t : {"pid", "mount", "uts", "ipc"}) ns.push_back({{"type", t}});
  json::Json caps = {"CAP_CHOWN",   "CAP_DAC_OVERRIDE", "CAP_FSETID",           "CAP_FOWNER",
                     "CAP_MKNOD",   "CAP_NET_RAW",      "CAP_SETGID",           "CAP_SETUID",
                     "CAP_SETFCAP", "CAP_SETPCAP",      "CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT",
                     "CAP_KILL",    "CAP_AUDIT_WRITE"};
  json::Json config = {
      {"ociVersion", "1.0.2"},
      {"process",
       {{"terminal", false},
        {"user", {{"uid", 0}, {"gid", 0}}},
        {"args", {"/bin/true"}},
        {"env", {"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}},
        {"cwd", "/"},
        {"capabilities",
         {{"bounding", caps}, {"effective", caps}, {"permitted", caps}, {"inheritable", caps}}},
        {"noNewPrivileges", true}}},
      {"root", {{"path", "rootfs"}, {"readonly", false}}},
      {"hostname", "bench"},
      {"mounts",
       {{{"destination", "/proc"}, {"type", "proc"}, {"source", "proc"}},
        {{"destination", "/dev"},
         {"type", "tmpfs"},
         {"source", "tmpfs"},
         {"options", {"nosuid", "strictatime", "mode=755", "size=65536k"}}}}},
      {"linux",
       {{"namespaces", ns},
        {"resources", {{"devices", {{{"allow", false}, {"access", "rwm"}}}}}},
        {"maskedPaths", {"/proc/kcore", "/proc/keys", "/proc/timer_list"}},
        {"readonlyPaths", {"/proc/sys", "/proc/sysrq-trigger"}}}}};
  return fs::writeFileAtomic(dir + "/bundle/config.json", json::dump(config, 2));
}

}  // namespace

int run(int argc, char** argv) {
  int reps = 30, warmup = 3;
  std::string build = std::getenv("EDGE_BUILD_DIR") ? std::getenv("EDGE_BUILD_DIR") : "build";
  std::string images = build + "/images";
  std::string shim = build + "/bin/edge-shim";
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string a = argv[i];
    if (a == "--reps")
      reps = std::max(1, std::atoi(argv[i + 1]));
    else if (a == "--warmup")
      warmup = std::max(0, std::atoi(argv[i + 1]));
    else if (a == "--images")
      images = argv[i + 1];
    else if (a == "--shim")
      shim = argv[i + 1];
  }
  if (::geteuid() != 0) {
    std::fprintf(stderr, "edge-bench-runtime: needs root (namespaces, cgroups, runc)\n");
    return 1;
  }
  std::string image_tar = images + "/busybox.tar";
  std::string work = "/tmp/edge-bench-" + std::to_string(::getpid());

  Series light{"light (create+start+wait+rm)"}, runc{"runc run"}, docker{"docker run --rm"};
  // The same on a data dir in RAM: how much of the light runtime's time is the data
  // disk's inode creation (the overlay mount's work dir, the writable layer).
  Series light_ram{"light, data dir on tmpfs"};
  std::string ram_work = "/dev/shm/edge-bench-" + std::to_string(::getpid());

  for (auto [series, dir] : {std::pair{&light, work}, std::pair{&light_ram, ram_work}}) {
    runtime::RuntimeOptions o;
    o.kind = "light";
    o.data_dir = dir + "/light";
    o.shim_path = shim;
    auto rt = runtime::createRuntime(o);
    if (!rt.isOk()) {
      series->error = rt.status().toString();
    } else if (auto l = (*rt)->loadImage(image_tar); !l.isOk()) {
      series->error = l.status().toString();
    } else {
      measure(*series, warmup, reps, [&] { return lightOnce(**rt); });
    }
    std::string run_root = runtime::lightRunRoot(o);
    rt = Status::cancelled("done");  // close the runtime before removing its state
    ::umount2(run_root.c_str(), MNT_DETACH);
    (void)fs::removeAll(run_root);
    (void)fs::removeAll(dir);
  }

  Status bundle = makeRuncBundle(work + "/runc", image_tar);
  if (!bundle.isOk()) {
    runc.error = bundle.toString();
  } else {
    int n = 0;
    measure(runc, warmup, reps, [&] {
      std::string id = "edge-bench-" + std::to_string(::getpid()) + "-" + std::to_string(n++);
      int rc = spawnWait({"runc", "run", "--bundle", work + "/runc/bundle", id});
      if (rc != 0) return Status::internal("runc run exited " + std::to_string(rc));
      return Status::ok();
    });
  }

  if (!runtime::dockerAnswers("unix:///var/run/docker.sock", std::chrono::milliseconds(1500))) {
    docker.error = "no dockerd answers on /var/run/docker.sock";
  } else if (spawnWait({"docker", "load", "-q", "-i", image_tar}) != 0) {
    docker.error = "docker load failed";
  } else {
    measure(docker, std::min(warmup, 1), std::max(5, reps / 3), [&] {
      int rc = spawnWait(
          {"docker", "run", "--rm", "--network", "host", "edgecloud/busybox:test", "/bin/true"});
      if (rc != 0) return Status::internal("docker run exited " + std::to_string(rc));
      return Status::ok();
    });
  }

  std::printf("%-32s %6s %10s %10s\n", "runtime start of /bin/true", "reps", "median ms", "p90 ms");
  int missing = 0;
  for (const Series* s : {&light, &light_ram, &runc, &docker}) {
    if (!s->error.empty() || s->ms.empty()) {
      std::printf("%-32s %6s %10s %10s   not a result: %s\n", s->name.c_str(), "-", "-", "-",
                  s->error.empty() ? "no repetition ran" : s->error.c_str());
      ++missing;
      continue;
    }
    std::printf("%-32s %6zu %10.2f %10.2f\n", s->name.c_str(), s->ms.size(), s->percentile(0.5),
                s->percentile(0.9));
  }
  auto ratio = [](const char* what, const Series& a, const Series& b) {
    if (a.ms.empty() || b.ms.empty() || !a.error.empty() || !b.error.empty()) {
      std::printf("ratio %s -\n", what);
      return;
    }
    std::printf("ratio %s %.3f\n", what, a.percentile(0.5) / b.percentile(0.5));
  };
  ratio("light/runc", light, runc);
  ratio("light-tmpfs/runc", light_ram, runc);
  ratio("light/docker", light, docker);
  ratio("runc/docker", runc, docker);
  (void)fs::removeAll(work);
  std::fflush(stdout);  // the table first, then the verdict on stderr
  if (missing > 0) std::fprintf(stderr, "edge-bench-runtime: %d row(s) are not results\n", missing);
  return missing > 0 ? 1 : 0;
}

}  // namespace edge::bench

int main(int argc, char** argv) {
  return edge::bench::run(argc, argv);
}
