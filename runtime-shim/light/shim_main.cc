// edge-shim: the parent process of one light-runtime container.
//
//   edge-shim <container dir> <run dir> <cgroup dir>...   (fd 3: the runtime's sync pipe)
//
// Detaches from the runtime (new session, double fork), creates the container from
// <dir>/config.json in the given cgroups (created and limited by the runtime meanwhile: it
// writes one byte on fd 4 when they are ready, and closes fd 4 without it on failure), writes
// <run dir>/state.json, answers on fd 3 with "ok <pid>\n" or "err <message>\n", then holds
// the container's stdout/stderr (written to <dir>/container.log in the CRI format) and waits
// for it. On exit: <run dir>/exit.json, cgroups removed, then fd 3 closed (the runtime's
// exit notification). The run dir is on a tmpfs; it also holds the container's /etc layer.
#include <fcntl.h>
#include <linux/sched.h>
#include <sched.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <optional>
#include <vector>

#include "common/clock.h"
#include "common/fs.h"
#include "runtime-shim/light/cgroups.h"
#include "runtime-shim/light/container_files.h"
#include "runtime-shim/light/container_init.h"

namespace edge::runtime::light {
namespace {

constexpr int kSyncFd = 3;
constexpr int kCgroupsReadyFd = 4;  // one byte when the cgroups exist; EOF: give up

// Start-time tracing for development (EDGE_LIGHT_TRACE=<file>): phase timestamps.
struct Trace {
  std::string text;
  std::chrono::steady_clock::time_point t0 = std::chrono::steady_clock::now();
  void mark(const char* what) {
    if (!std::getenv("EDGE_LIGHT_TRACE")) return;
    auto us =
        std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - t0)
            .count();
    text += std::string(what) + "=" + std::to_string(us) + "us ";
  }
  int fd = -1;
  void flush() {
    const char* path = std::getenv("EDGE_LIGHT_TRACE");
    if (!path || text.empty()) return;
    if (fd < 0) fd = ::open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    if (fd >= 0) (void)fs::writeAll(fd, text + "\n");
  }
};
Trace g_trace;

void reply(const std::string& line) {
  (void)fs::writeAll(kSyncFd, line + "\n");
}

[[noreturn]] void failStart(const std::string& message) {
  std::string m = message;
  for (char& ch : m) {
    if (ch == '\n') ch = ' ';
  }
  reply("err " + m);
  _exit(1);
}

WallTime now() {
  return std::chrono::system_clock::now();
}

// The container's first process: reads the configuration itself, so that the shim can
// start moving it into its cgroups at once (see InitParams::go_fd).
[[noreturn]] void runChild(const std::string& dir, InitParams ip) {
  auto fail = [&](const std::string& m) {
    (void)fs::writeAll(ip.error_fd, m);
    _exit(127);
  };
  auto text = fs::readFile(dir + "/config.json");
  if (!text.isOk()) fail("read config: " + text.status().message());
  auto config = decodeLaunchConfig(*text);
  if (!config.isOk()) fail(config.status().message());
  const LaunchConfig& c = *config;
  ip.config = &c;
  if (!c.seccomp_path.empty()) {
    auto prog = fs::readFile(c.seccomp_path, 1 << 20);
    if (!prog.isOk()) fail("read seccomp program: " + prog.status().message());
    ip.seccomp_bpf = std::move(prog).value();
  }
  if (c.info.network == NetworkMode::kNone && ::unshare(CLONE_NEWNET) != 0) {
    fail(std::string("create network namespace: ") + std::strerror(errno));
  }
  if (ip.trace) ip.trace("config");
  runContainerInit(ip);
}

void removeCgroups(const std::vector<std::string>& dirs) {
  // A cgroup can stay busy for a moment while the kernel finishes tearing the namespace
  // down; a few immediate retries cover it, and the runtime removes leftovers on remove.
  for (int i = 0; i < 50; ++i) {
    bool busy = false;
    for (const std::string& d : dirs) {
      if (::rmdir(d.c_str()) != 0 && errno != ENOENT) busy = true;
    }
    if (!busy) return;
    ::sched_yield();
  }
}

int runShim(const std::string& dir, const std::string& run_dir,
            const std::vector<std::string>& cgroup_dirs) {
  InitParams ip;
  ip.container_dir = dir;
  ip.run_dir = run_dir;
  int out[2], err[2], errp[2], go[2];
  if (::pipe2(out, O_CLOEXEC) != 0 || ::pipe2(err, O_CLOEXEC) != 0 ||
      ::pipe2(errp, O_CLOEXEC) != 0 || ::pipe2(go, O_CLOEXEC) != 0) {
    failStart(std::string("pipe: ") + std::strerror(errno));
  }
  fs::UniqueFd devnull(::open("/dev/null", O_RDONLY | O_CLOEXEC));
  ip.stdin_fd = devnull.get();
  ip.stdout_fd = out[1];
  ip.stderr_fd = err[1];
  ip.error_fd = errp[1];
  ip.go_fd = go[0];
  if (const char* tp = std::getenv("EDGE_LIGHT_TRACE")) {
    g_trace.fd = ::open(tp, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    ip.trace = [](const char* step) {
      g_trace.mark(step);
      if (std::strcmp(step, "seccomp") == 0) {
        g_trace.text = "child: " + g_trace.text;
        g_trace.flush();
      }
    };
  }

  // The network namespace, when wanted, is created by the child (it knows the config).
  uint64_t flags = CLONE_NEWPID | CLONE_NEWNS | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_PIDFD;
  int pidfd = -1;
  clone_args args{};
  args.flags = flags;
  args.pidfd = reinterpret_cast<uint64_t>(&pidfd);
  args.exit_signal = SIGCHLD;
  long pid = ::syscall(SYS_clone3, &args, sizeof args);
  if (pid < 0) {
    removeCgroups(cgroup_dirs);
    failStart(std::string("clone: ") + std::strerror(errno));
  }
  if (pid == 0) {
    // The clone copied the shim's ends of the pipes as well; the child keeps only its own.
    // The go pipe's write end above all: while the child holds it, a shim that could not
    // attach it (and closes its end without the byte) leaves it waiting for an EOF that
    // never comes, and itself waits for the child's error pipe: no reply until the runtime
    // gives up (60 s).
    for (int fd : {go[1], errp[0], out[0], err[0], kSyncFd, kCgroupsReadyFd}) ::close(fd);
    runChild(dir, ip);
  }
  g_trace.mark("clone");

  ::close(out[1]);
  ::close(err[1]);
  ::close(errp[1]);
  ::close(go[0]);
  devnull.reset();
  std::string pid_text = std::to_string(pid);
  std::string attach_error;
  char ready = 0;
  while (::read(kCgroupsReadyFd, &ready, 1) < 0 && errno == EINTR) {
  }
  ::close(kCgroupsReadyFd);
  if (ready != 1) attach_error = "the runtime did not create the container's cgroups";
  for (const std::string& d : cgroup_dirs) {
    if (!attach_error.empty()) break;
    std::string procs = d + "/cgroup.procs";
    fs::UniqueFd fd(::open(procs.c_str(), O_WRONLY | O_CLOEXEC));
    if (!fd.valid() || ::write(fd.get(), pid_text.data(), pid_text.size()) < 0) {
      attach_error = "join cgroup " + d + ": " + std::strerror(errno);
      break;
    }
  }
  g_trace.mark("attached");
  if (attach_error.empty()) {
    const char one = 1;
    (void)!::write(go[1], &one, 1);
  }
  ::close(go[1]);
  // Prepared while the child finishes its setup.
  StateRecord state;
  state.state = ContainerState::kRunning;
  state.pid = static_cast<int>(pid);
  state.pid_start = procStartTime(state.pid);
  state.shim_pid = ::getpid();
  state.shim_start = procStartTime(state.shim_pid);
  std::string init_error;
  char buf[4096];
  for (;;) {
    ssize_t n = ::read(errp[0], buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    init_error.append(buf, static_cast<size_t>(n));
  }
  ::close(errp[0]);
  g_trace.mark("exec");
  if (init_error.empty()) init_error = attach_error;
  if (!init_error.empty()) {
    ::kill(static_cast<pid_t>(pid), SIGKILL);
    int st = 0;
    ::waitpid(static_cast<pid_t>(pid), &st, 0);
    removeCgroups(cgroup_dirs);
    failStart(init_error);
  }

  state.started = now();
  Status ws = replaceFile(run_dir + "/state.json", encodeState(state));
  if (!ws.isOk()) {
    ::kill(static_cast<pid_t>(pid), SIGKILL);
    int st = 0;
    ::waitpid(static_cast<pid_t>(pid), &st, 0);
    removeCgroups(cgroup_dirs);
    failStart(ws.message());
  }
  reply("ok " + std::to_string(pid));
  g_trace.mark("replied");

  // From here on the shim serves the running container.
  CriLogLimits limits;
  std::optional<CgroupManager> cgroups;
  std::string id;
  if (auto text = fs::readFile(dir + "/config.json"); text.isOk()) {
    if (auto config = decodeLaunchConfig(*text); config.isOk()) {
      limits = config->log;
      id = config->info.id;
      cgroups.emplace(config->cgroups, makeRealCgroupFs());
    }
  }
  CriLogWriter log(dir + "/container.log", limits, now);
  (void)log.open();
  int ep = ::epoll_create1(EPOLL_CLOEXEC);
  auto add = [&](int fd, uint64_t tag) {
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u64 = tag;
    ::epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
  };
  add(out[0], 1);
  add(err[0], 2);
  add(pidfd, 3);
  int open_pipes = 2;
  bool exited = false;
  int status = 0;
  auto deadline = std::chrono::steady_clock::time_point::max();
  while (open_pipes > 0 || !exited) {
    int timeout = -1;
    if (exited) {
      // Pid 1's exit killed the namespace; the pipes close right after. Bound the wait in
      // case a descriptor leaked somewhere unexpected.
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) break;
      timeout = static_cast<int>(left.count());
    }
    epoll_event evs[4];
    int n = ::epoll_wait(ep, evs, 4, timeout);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      if (exited) break;
      continue;
    }
    for (int i = 0; i < n; ++i) {
      uint64_t tag = evs[i].data.u64;
      if (tag == 3) {
        if (::waitpid(static_cast<pid_t>(pid), &status, WNOHANG) == pid) {
          exited = true;
          deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
          ::epoll_ctl(ep, EPOLL_CTL_DEL, pidfd, nullptr);
        }
        continue;
      }
      int fd = tag == 1 ? out[0] : err[0];
      LogStream stream = tag == 1 ? LogStream::kStdout : LogStream::kStderr;
      ssize_t r = ::read(fd, buf, sizeof buf);
      if (r > 0) {
        (void)log.write(stream, std::string_view(buf, static_cast<size_t>(r)));
      } else if (r == 0 || (errno != EINTR && errno != EAGAIN)) {
        ::epoll_ctl(ep, EPOLL_CTL_DEL, fd, nullptr);
        (void)log.flush(stream);
        --open_pipes;
      }
    }
  }
  (void)log.flush(LogStream::kStdout);
  (void)log.flush(LogStream::kStderr);

  g_trace.mark("exited");
  ExitRecord ex;
  if (WIFSIGNALED(status)) {
    ex.exit_code = 128 + WTERMSIG(status);
  } else {
    ex.exit_code = WEXITSTATUS(status);
  }
  ex.oom_killed = cgroups && cgroups->oomKilled(id);
  ex.finished = now();
  (void)replaceFile(run_dir + "/exit.json", encodeExit(ex));
  g_trace.mark("exit_written");
  // Before the runtime hears of the exit: a restart may follow at once (an unhealthy
  // instance is restarted without backoff) and uses the same cgroup paths. Removed after the
  // notification, they could vanish between the new start's mkdir (EEXIST) and its attach.
  removeCgroups(cgroup_dirs);
  g_trace.mark("cgroups_removed");
  ::close(kSyncFd);  // the runtime's "exited" notification
  g_trace.flush();
  return 0;
}

}  // namespace
}  // namespace edge::runtime::light

int main(int argc, char** argv) {
  edge::runtime::light::g_trace.mark("main");
  if (argc < 3) {
    const char usage[] =
        "usage: edge-shim <container dir> <run dir> [<cgroup dir>...] (started by the light "
        "runtime)\n";
    (void)!::write(2, usage, sizeof usage - 1);
    return 2;
  }
  ::signal(SIGPIPE, SIG_IGN);
  ::signal(SIGHUP, SIG_IGN);
  ::signal(SIGINT, SIG_IGN);
  ::signal(SIGTERM, SIG_IGN);
  ::fcntl(3, F_SETFD, FD_CLOEXEC);
  ::fcntl(4, F_SETFD, FD_CLOEXEC);
  if (::getsid(0) != ::getpid()) ::setsid();
  // Double fork: the runtime reaps this process at once and the shim is reparented away,
  // so it outlives the runtime and never becomes its zombie.
  pid_t child = ::fork();
  if (child < 0) {
    const char msg[] = "err fork shim failed\n";
    (void)!::write(3, msg, sizeof msg - 1);
    return 1;
  }
  if (child > 0) _exit(0);
  return edge::runtime::light::runShim(argv[1], argv[2],
                                       std::vector<std::string>(argv + 3, argv + argc));
}
