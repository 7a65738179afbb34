// edged's footprint and apply latency, side by side with Docker, in one run:
//   footprint  edged on the light runtime: RSS (VmRSS), PSS (smaps_rollup) and CPU% over
//              an idle window, with 0 services and then with N (busybox sleep, one
//              replica each); its edge-shims apart. dockerd + containerd in the same
//              windows, with no bench container and then with N sleep containers, and
//              their containerd-shim-runc-v2 processes. Where edged's memory goes (smaps).
//   latency    POST of a hello manifest until the service answers HTTP, edged on the
//              light runtime vs edged on the docker runtime, interleaved, a fresh service
//              name (and port) each rep; the image is loaded by a warm-up apply first.
// Prints tables, then `ratio <what> <value>` lines. A requested row that could not be
// measured shows "-" (its ratios too) and makes the run exit 1; with --skip-docker the
// Docker rows are not requested.
//
//   edge-bench-edged [--reps N] [--services N] [--idle-seconds S] [--skip-docker]
//                    [--edged PATH] [--images DIR]
//
// Needs root. Everything it creates (a temp dir with the edged data and run dirs, the
// edged processes, containers, images dockerd did not hold before) is removed on exit,
// on failure and on SIGINT/SIGTERM. Docker is used when a daemon answers on
// /var/run/docker.sock (scripts/start-dockerd.sh starts one); the bench never starts it.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "common/fs.h"
#include "common/http.h"
#include "common/json.h"
#include "common/log.h"
#include "runtime-shim/docker/docker_runtime.h"
#include "runtime-shim/factory.h"

extern char** environ;

namespace edge::bench {
namespace {

using SteadyClock = std::chrono::steady_clock;
using std::chrono::milliseconds;
using std::chrono::seconds;

constexpr char kBenchLabel[] = "io.edgecloud.bench";
constexpr char kDockerEndpoint[] = "unix:///var/run/docker.sock";
constexpr long kTargetKb = 8 * 1024;  // the architecture's "idle RSS under 8 MB" (MiB)
constexpr auto kAnswerBudget = seconds(60);
constexpr auto kPollEvery = milliseconds(5);

volatile sig_atomic_t g_stop = 0;  // SIGINT/SIGTERM: every loop ends, cleanup runs
void onSignal(int) {
  g_stop = 1;
}

// Sleeps `d`; false when a signal asked the bench to stop.
bool nap(milliseconds d) {
  std::this_thread::sleep_for(d);
  return g_stop == 0;
}

Status interrupted() {
  return Status::cancelled("interrupted by a signal");
}

double msSince(SteadyClock::time_point t0) {
  return std::chrono::duration<double, std::milli>(SteadyClock::now() - t0).count();
}

// ---------------------------------------------------------------------------------------
// Options

struct Options {
  int reps = 5;
  int services = 10;
  int idle_seconds = 10;
  bool skip_docker = false;
  std::string edged;   // "" = next to this program
  std::string images;  // "" = <build dir>/images
};

constexpr char kUsage[] =
    "usage: edge-bench-edged [--reps N] [--services N] [--idle-seconds S] [--skip-docker]\n"
    "                        [--edged PATH] [--images DIR]\n"
    "  --reps N          apply->answer repetitions per runtime, 1..50 (default 5)\n"
    "  --services N      services (and docker containers) for the footprint, 1..100 "
    "(default 10)\n"
    "  --idle-seconds S  length of each idle window, 1..120 (default 10)\n"
    "  --skip-docker     measure edged on the light runtime only\n"
    "  --edged PATH      the edged binary (default: next to this program)\n"
    "  --images DIR      where busybox.tar and hello.tar are (default: <build>/images)\n";

Result<int> parseBounded(const std::string& flag, const std::string& text, int lo, int hi) {
  char* end = nullptr;
  errno = 0;
  long v = std::strtol(text.c_str(), &end, 10);
  if (text.empty() || *end != '\0' || errno != 0 || v < lo || v > hi)
    return Status::invalidArgument(flag + ": \"" + text + "\" is not an integer in " +
                                   std::to_string(lo) + ".." + std::to_string(hi));
  return static_cast<int>(v);
}

// Returns the options, or InvalidArgument naming the flag; `help` is set for --help.
Result<Options> parseFlags(int argc, char** argv, bool* help) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "-h" || a == "--help") {
      *help = true;
      return o;
    }
    if (a == "--skip-docker") {
      o.skip_docker = true;
      continue;
    }
    bool takes_value = a == "--reps" || a == "--services" || a == "--idle-seconds" ||
                       a == "--edged" || a == "--images";
    if (!takes_value)
      return Status::invalidArgument("unknown flag \"" + a +
                                     "\"; allowed: --reps, --services, --idle-seconds, "
                                     "--skip-docker, --edged, --images, --help");
    if (i + 1 >= argc) return Status::invalidArgument(a + ": missing value");
    std::string v = argv[++i];
    if (a == "--reps") {
      ASSIGN_OR_RETURN(o.reps, parseBounded(a, v, 1, 50));
    } else if (a == "--services") {
      ASSIGN_OR_RETURN(o.services, parseBounded(a, v, 1, 100));
    } else if (a == "--idle-seconds") {
      ASSIGN_OR_RETURN(o.idle_seconds, parseBounded(a, v, 1, 120));
    } else if (a == "--edged") {
      o.edged = v;
    } else {
      o.images = v;
    }
  }
  return o;
}

// ---------------------------------------------------------------------------------------
// Processes

// Starts argv with stdout and stderr appended to `log`, in its own process group so a
// Ctrl-C on the terminal reaches only the bench, which then stops it in order.
Result<pid_t> spawnProcess(const std::vector<std::string>& argv, const std::string& log) {
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&fa, 1, log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
  posix_spawn_file_actions_adddup2(&fa, 1, 2);
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP);
  posix_spawnattr_setpgroup(&attr, 0);
  pid_t pid = 0;
  int rc = posix_spawn(&pid, args[0], &fa, &attr, args.data(), environ);
  posix_spawnattr_destroy(&attr);
  posix_spawn_file_actions_destroy(&fa);
  if (rc != 0) return Status::fromErrno(rc, "start " + argv[0]);
  return pid;
}

// Waits up to `timeout` for `pid` (a child) to exit; its wait status, or nullopt.
std::optional<int> waitExit(pid_t pid, milliseconds timeout) {
  auto deadline = SteadyClock::now() + timeout;
  for (;;) {
    int status = 0;
    pid_t r = ::waitpid(pid, &status, WNOHANG);
    if (r == pid) return status;
    if (r < 0 && errno != EINTR) return 0;  // not our child any more: nothing to wait for
    if (SteadyClock::now() >= deadline) return std::nullopt;
    std::this_thread::sleep_for(milliseconds(10));
  }
}

// SIGTERM, then SIGKILL when it is still there after `grace`.
void stopProcess(pid_t pid, milliseconds grace) {
  if (pid <= 0) return;
  ::kill(pid, SIGTERM);
  if (waitExit(pid, grace)) return;
  ::kill(pid, SIGKILL);
  (void)waitExit(pid, seconds(5));
}

struct CommandResult {
  int exit_code = -1;  // 128+signal when killed
  std::string out;
  std::string err;
};

// Runs argv (looked up in $PATH) to completion, collecting stdout and stderr; killed
// after `timeout` so a hung docker CLI cannot hang the bench.
Result<CommandResult> runCommand(const std::vector<std::string>& argv,
                                 seconds timeout = seconds(60)) {
  int out_pipe[2], err_pipe[2];
  if (::pipe2(out_pipe, O_CLOEXEC) != 0) return Status::fromErrno(errno, "pipe");
  if (::pipe2(err_pipe, O_CLOEXEC) != 0) {
    ::close(out_pipe[0]);
    ::close(out_pipe[1]);
    return Status::fromErrno(errno, "pipe");
  }
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(&fa, out_pipe[1], 1);
  posix_spawn_file_actions_adddup2(&fa, err_pipe[1], 2);
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP);
  posix_spawnattr_setpgroup(&attr, 0);
  pid_t pid = 0;
  int rc = posix_spawnp(&pid, args[0], &fa, &attr, args.data(), environ);
  posix_spawnattr_destroy(&attr);
  posix_spawn_file_actions_destroy(&fa);
  ::close(out_pipe[1]);
  ::close(err_pipe[1]);
  CommandResult res;
  if (rc != 0) {
    ::close(out_pipe[0]);
    ::close(err_pipe[0]);
    return Status::fromErrno(rc, "run " + argv[0]);
  }
  auto deadline = SteadyClock::now() + timeout;
  pollfd fds[2] = {{out_pipe[0], POLLIN, 0}, {err_pipe[0], POLLIN, 0}};
  std::string* sinks[2] = {&res.out, &res.err};
  int open_fds = 2;
  bool timed_out = false;
  while (open_fds > 0) {
    auto left = std::chrono::duration_cast<milliseconds>(deadline - SteadyClock::now());
    if (left.count() <= 0) {
      timed_out = true;
      break;
    }
    int n = ::poll(fds, 2, static_cast<int>(std::min<long>(left.count(), 200)));
    if (n < 0 && errno != EINTR) break;
    for (int k = 0; k < 2; ++k) {
      if (fds[k].fd < 0 || (fds[k].revents & (POLLIN | POLLHUP | POLLERR)) == 0) continue;
      char buf[4096];
      ssize_t got = ::read(fds[k].fd, buf, sizeof buf);
      if (got > 0) {
        sinks[k]->append(buf, static_cast<size_t>(got));
      } else if (got == 0 || errno != EINTR) {
        ::close(fds[k].fd);
        fds[k].fd = -1;
        open_fds--;
      }
    }
  }
  for (auto& f : fds)
    if (f.fd >= 0) ::close(f.fd);
  if (timed_out) ::kill(pid, SIGKILL);
  auto status = waitExit(pid, seconds(5));
  if (!status) {
    ::kill(pid, SIGKILL);
    status = waitExit(pid, seconds(5)).value_or(SIGKILL);
  }
  if (timed_out)
    return Status::deadlineExceeded(argv[0] + " " + (argv.size() > 1 ? argv[1] : "") +
                                    " did not finish within " + std::to_string(timeout.count()) +
                                    " s");
  res.exit_code = WIFEXITED(*status) ? WEXITSTATUS(*status) : 128 + WTERMSIG(*status);
  return res;
}

// Runs a command that must succeed; the error quotes its stderr.
Result<std::string> mustRun(const std::vector<std::string>& argv) {
  ASSIGN_OR_RETURN(CommandResult r, runCommand(argv));
  if (r.exit_code != 0) {
    std::string cmd;
    for (const auto& a : argv) cmd += (cmd.empty() ? "" : " ") + a;
    std::string err = r.err;
    while (!err.empty() && (err.back() == '\n' || err.back() == ' ')) err.pop_back();
    return Status::internal(cmd + " exited " + std::to_string(r.exit_code) + ": " + err);
  }
  return r.out;
}

std::vector<std::string> splitWords(const std::string& s) {
  std::istringstream in(s);
  std::vector<std::string> out;
  for (std::string w; in >> w;) out.push_back(w);
  return out;
}

// ---------------------------------------------------------------------------------------
// /proc

std::string procFile(pid_t pid, const char* name) {
  return fs::readFile("/proc/" + std::to_string(pid) + "/" + name).valueOr("");
}

// The kB value of a "Key:   123 kB" line, or 0.
long kbField(const std::string& text, const std::string& key) {
  size_t at = 0;
  while ((at = text.find(key, at)) != std::string::npos) {
    if (at == 0 || text[at - 1] == '\n') return std::atol(text.c_str() + at + key.size());
    at += key.size();
  }
  return 0;
}

long pssKb(pid_t pid) {
  return kbField(procFile(pid, "smaps_rollup"), "Pss:");
}

// utime + stime in clock ticks, or -1 when the process is gone.
long cpuTicks(pid_t pid) {
  std::string stat = procFile(pid, "stat");
  size_t paren = stat.rfind(')');  // comm may hold spaces and parentheses
  if (paren == std::string::npos) return -1;
  std::vector<std::string> f = splitWords(stat.substr(paren + 1));
  // After "pid (comm)": state is field 3, utime 14 and stime 15 (proc(5)).
  if (f.size() < 13) return -1;
  return std::atol(f[11].c_str()) + std::atol(f[12].c_str());
}

std::string comm(pid_t pid) {
  std::string c = procFile(pid, "comm");
  while (!c.empty() && c.back() == '\n') c.pop_back();
  return c;
}

std::vector<std::string> cmdline(pid_t pid) {
  std::string raw = procFile(pid, "cmdline");
  std::vector<std::string> out;
  size_t start = 0;
  for (size_t i = 0; i < raw.size(); ++i) {
    if (raw[i] != '\0') continue;
    out.push_back(raw.substr(start, i - start));
    start = i + 1;
  }
  return out;
}

std::vector<pid_t> findPids(const std::function<bool(pid_t)>& match) {
  std::vector<pid_t> out;
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator("/proc", ec)) {
    std::string n = e.path().filename().string();
    if (n.empty() || n.find_first_not_of("0123456789") != std::string::npos) continue;
    pid_t pid = static_cast<pid_t>(std::atol(n.c_str()));
    if (match(pid)) out.push_back(pid);
  }
  return out;
}

std::vector<pid_t> dockerDaemonPids() {
  return findPids([](pid_t p) {
    std::string c = comm(p);
    return c == "dockerd" || c == "containerd";
  });
}

// The edge-shims of the containers under one light-runtime data dir.
std::vector<pid_t> edgeShimPids(const std::string& data_dir) {
  return findPids([&](pid_t p) {
    if (comm(p) != "edge-shim") return false;
    for (const auto& a : cmdline(p))
      if (a.rfind(data_dir + "/", 0) == 0) return true;
    return false;
  });
}

// The containerd-shim-runc-v2 processes of the given (full) container ids.
std::vector<pid_t> containerdShimPids(const std::set<std::string>& ids) {
  return findPids([&](pid_t p) {
    if (comm(p).rfind("containerd-shim", 0) != 0) return false;
    std::vector<std::string> args = cmdline(p);
    for (size_t i = 0; i + 1 < args.size(); ++i)
      if (args[i] == "-id" && ids.count(args[i + 1]) != 0) return true;
    return false;
  });
}

struct Usage {
  int procs = 0;
  long rss_kb = 0;
  long anon_kb = 0;  // RssAnon: heap and stacks; the rest of RSS is mapped files (code)
  long pss_kb = 0;
  double cpu_pct = 0;  // of one CPU, over the window
  bool measured = false;
};

// Watches each group of processes over an idle window of `secs`: CPU from the
// utime+stime delta, memory at the end of the window.
Result<std::map<std::string, Usage>> idleWindow(
    const std::map<std::string, std::vector<pid_t>>& groups, int secs) {
  std::map<pid_t, long> before;
  for (const auto& [_, pids] : groups)
    for (pid_t p : pids) before[p] = cpuTicks(p);
  auto t0 = SteadyClock::now();
  for (int i = 0; i < secs * 10; ++i)
    if (!nap(milliseconds(100))) return interrupted();
  double elapsed_s = msSince(t0) / 1000.0;
  double hz = static_cast<double>(::sysconf(_SC_CLK_TCK));
  std::map<std::string, Usage> out;
  for (const auto& [name, pids] : groups) {
    Usage u;
    u.measured = true;
    long ticks = 0;
    for (pid_t p : pids) {
      long now = cpuTicks(p);
      if (now < 0 || before[p] < 0) continue;  // gone during the window
      ticks += now - before[p];
      u.procs++;
      std::string status = procFile(p, "status");
      u.rss_kb += kbField(status, "VmRSS:");
      u.anon_kb += kbField(status, "RssAnon:");
      u.pss_kb += pssKb(p);
    }
    u.cpu_pct = 100.0 * static_cast<double>(ticks) / hz / elapsed_s;
    out[name] = u;
  }
  return out;
}

// One line of where a process's memory goes: mappings grouped by what they are.
struct MapGroup {
  std::string name;
  int mappings = 0;
  long rss_kb = 0;
  long pss_kb = 0;
  long private_kb = 0;  // Private_Clean + Private_Dirty: what this process alone holds
};

// Groups /proc/PID/smaps: the executable, each shared library, [heap] (brk: the main
// malloc arena), thread stacks (an anonymous mapping right above its guard page, as
// glibc lays them out), other anonymous memory (large malloc blocks, other arenas).
std::vector<MapGroup> smapsBreakdown(pid_t pid) {
  std::string exe;
  {
    std::error_code ec;
    exe = std::filesystem::read_symlink("/proc/" + std::to_string(pid) + "/exe", ec).string();
  }
  std::map<std::string, MapGroup> groups;
  std::istringstream in(procFile(pid, "smaps"));
  MapGroup* cur = nullptr;
  bool prev_anon_guard = false;
  unsigned long prev_end = 0;
  for (std::string line; std::getline(in, line);) {
    size_t dash = line.find('-');
    size_t space = line.find(' ');
    bool header = dash != std::string::npos && space != std::string::npos && dash < space &&
                  line.find_first_not_of("0123456789abcdef") == dash;
    if (header) {
      std::istringstream h(line);
      std::string range, perms, offset, dev, inode, path;
      h >> range >> perms >> offset >> dev >> inode;
      std::getline(h, path);
      path.erase(0, path.find_first_not_of(' '));
      unsigned long start = std::stoul(range.substr(0, dash), nullptr, 16);
      unsigned long end = std::stoul(range.substr(dash + 1), nullptr, 16);
      std::string name;
      if (!exe.empty() && path == exe) {
        name = "executable (" + std::filesystem::path(path).filename().string() + ")";
      } else if (path == "[heap]") {
        name = "[heap] (main malloc arena)";
      } else if (path == "[stack]") {
        name = "[stack] (main thread)";
      } else if (!path.empty() && path[0] == '[') {
        name = path;
      } else if (!path.empty()) {
        name = std::filesystem::path(path).filename().string();
      } else if (perms == "---p") {
        name = "guard pages / reserved";
      } else if (prev_anon_guard && prev_end == start) {
        name = "thread stacks";
      } else {
        name = "anonymous (mmap'd malloc blocks)";
      }
      prev_anon_guard = path.empty() && perms == "---p";
      prev_end = end;
      cur = &groups[name];
      cur->name = name;
      cur->mappings++;
      continue;
    }
    if (cur == nullptr) continue;
    if (line.rfind("Rss:", 0) == 0) cur->rss_kb += kbField(line, "Rss:");
    if (line.rfind("Pss:", 0) == 0) cur->pss_kb += kbField(line, "Pss:");
    if (line.rfind("Private_Clean:", 0) == 0) cur->private_kb += kbField(line, "Private_Clean:");
    if (line.rfind("Private_Dirty:", 0) == 0) cur->private_kb += kbField(line, "Private_Dirty:");
  }
  std::vector<MapGroup> out;
  for (auto& [_, g] : groups)
    if (g.rss_kb > 0) out.push_back(g);
  std::sort(out.begin(), out.end(),
            [](const MapGroup& a, const MapGroup& b) { return a.rss_kb > b.rss_kb; });
  return out;
}

// Unmounts whatever is mounted under `dir` (the light runtime's tmpfs), deepest first.
void unmountUnder(const std::string& dir) {
  std::vector<std::string> points;
  std::istringstream in(procFile(::getpid(), "mountinfo"));
  for (std::string line; std::getline(in, line);) {
    std::vector<std::string> f = splitWords(line);
    if (f.size() > 4 && f[4].rfind(dir + "/", 0) == 0) points.push_back(f[4]);
  }
  std::sort(points.begin(), points.end(),
            [](const std::string& a, const std::string& b) { return a.size() > b.size(); });
  for (const auto& p : points) ::umount2(p.c_str(), MNT_DETACH);
}

// A TCP port nobody listens on now, from the kernel's ephemeral range (outside edged's
// dynamic range 20000-29999, so it never collides with other services on this host).
Result<int> freePort() {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return Status::fromErrno(errno, "socket");
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_ANY);
  socklen_t len = sizeof a;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
    int err = errno;
    ::close(fd);
    return Status::fromErrno(err, "bind a free port");
  }
  ::close(fd);
  return static_cast<int>(ntohs(a.sin_port));
}

// ---------------------------------------------------------------------------------------
// edged

std::string benchId() {
  return std::to_string(::getpid());
}

// One edged on its own data dir, run dir and socket under `dir`. Stopping it (the
// destructor) also removes every container it leaves: edged keeps workloads running
// when it stops, by design, and the bench must leave nothing behind.
class Edged {
 public:
  static Result<std::unique_ptr<Edged>> start(const std::string& binary, const std::string& kind,
                                              const std::string& dir) {
    std::unique_ptr<Edged> e(new Edged(kind, dir));
    RETURN_IF_ERROR(fs::makeDirs(e->data_dir_));
    RETURN_IF_ERROR(fs::makeDirs(e->run_dir_));
    // Its own cluster port and gateway socket: the defaults (0.0.0.0:8083,
    // /run/edged/gateway.sock) may be another edged's on a shared machine.
    ASSIGN_OR_RETURN(int port, freePort());
    ASSIGN_OR_RETURN(
        e->pid_, spawnProcess({binary, "--data-dir", e->data_dir_, "--run-dir", e->run_dir_,
                               "--api-socket", e->socket_, "--runtime", kind, "--log-level", "warn",
                               // sends nothing on this host's links
                               "--no-discovery", "--gateway-socket", dir + "/gateway.sock",
                               "--listen", "127.0.0.1:" + std::to_string(port)},
                              e->log_));
    auto deadline = SteadyClock::now() + seconds(30);
    for (;;) {
      auto r = e->call("GET", "/api/v1/healthz", "");
      if (r.isOk() && r->status == 200) return e;
      if (auto st = waitExit(e->pid_, milliseconds(0))) {
        e->pid_ = 0;
        return Status::failedPrecondition("edged --runtime " + kind + " exited (" +
                                          std::to_string(WIFEXITED(*st) ? WEXITSTATUS(*st) : -1) +
                                          "): " + e->logTail());
      }
      if (SteadyClock::now() > deadline)
        return Status::deadlineExceeded(
            "edged --runtime " + kind +
            " did not answer /api/v1/healthz within 30 s: " + e->logTail());
      if (!nap(milliseconds(20))) return interrupted();
    }
  }

  ~Edged() { stop(); }

  pid_t pid() const { return pid_; }
  const std::string& dataDir() const { return data_dir_; }

  Result<http::Response> call(const std::string& method, const std::string& path,
                              const std::string& yaml) const {
    http::Request req;
    req.method = method;
    req.path = path;
    req.body = yaml;
    if (!yaml.empty()) req.content_type = "application/yaml";
    req.read_timeout = seconds(60);
    return client_.send(req);
  }

  Result<json::Json> callJson(const std::string& method, const std::string& path,
                              const std::string& yaml = "") const {
    ASSIGN_OR_RETURN(http::Response r, call(method, path, yaml));
    if (!r.isSuccess())
      return Status::internal(method + " " + path + " answered " + std::to_string(r.status) + ": " +
                              r.body);
    return json::parse(r.body, method + " " + path);
  }

  Status apply(const std::string& yaml) {
    return callJson("POST", "/api/v1/services", yaml).status();
  }

  // Instances still listed for services whose name starts with `prefix`.
  Result<int> instancesOf(const std::string& prefix) const {
    ASSIGN_OR_RETURN(json::Json j, callJson("GET", "/api/v1/instances"));
    int n = 0;
    if (j.contains("instances") && j["instances"].is_array())
      for (const auto& i : j["instances"])
        if (i.value("service", "").rfind(prefix, 0) == 0) n++;
    return n;
  }

  // Waits until every service named in `names` is "running"; the error lists the others.
  Status waitRunning(const std::vector<std::string>& names, seconds budget) const {
    auto deadline = SteadyClock::now() + budget;
    std::string pending;
    while (SteadyClock::now() < deadline) {
      ASSIGN_OR_RETURN(json::Json j, callJson("GET", "/api/v1/services"));
      std::map<std::string, std::string> state;
      if (j.contains("services") && j["services"].is_array())
        for (const auto& s : j["services"]) state[s.value("name", "")] = s.value("state", "");
      pending.clear();
      for (const auto& n : names)
        if (state[n] != "running") pending += " " + n + "=" + (state[n].empty() ? "?" : state[n]);
      if (pending.empty()) return Status::ok();
      if (!nap(milliseconds(100))) return interrupted();
    }
    return Status::deadlineExceeded("services not running after " + std::to_string(budget.count()) +
                                    " s:" + pending);
  }

  // Deletes the services, then waits until their instances are gone (bounded).
  Status removeServices(const std::vector<std::string>& names, const std::string& prefix) {
    for (const auto& n : names)
      RETURN_IF_ERROR(callJson("DELETE", "/api/v1/services/" + n).status());
    auto deadline = SteadyClock::now() + seconds(60);
    while (SteadyClock::now() < deadline) {
      ASSIGN_OR_RETURN(int left, instancesOf(prefix));
      if (left == 0) return Status::ok();
      if (!nap(milliseconds(20))) return interrupted();
    }
    return Status::deadlineExceeded("instances of " + prefix + "* still listed 60 s after delete");
  }

  std::string logTail() const {
    std::string log = fs::readFile(log_).valueOr("");
    if (log.size() > 600) log = "..." + log.substr(log.size() - 600);
    while (!log.empty() && log.back() == '\n') log.pop_back();
    return log.empty() ? "(it printed nothing)" : log;
  }

  void stop() {
    if (pid_ > 0) stopProcess(pid_, seconds(15));
    pid_ = 0;
    if (kind_ == "light") {
      removeLightLeftovers();
    } else {
      removeDockerLeftovers();
    }
    unmountUnder(dir_);
    (void)fs::removeAll(dir_);
  }

 private:
  Edged(std::string kind, const std::string& dir)
      : kind_(std::move(kind)),
        dir_(dir),
        data_dir_(dir + "/data"),
        run_dir_(dir + "/run"),
        socket_(dir + "/edged.sock"),
        log_(dir + ".log"),
        client_(http::Endpoint{.kind = http::Endpoint::Kind::kUnix, .path = dir + "/edged.sock"}) {}

  void removeLightLeftovers() {
    if (!fs::exists(data_dir_ + "/runtime/light")) return;
    runtime::RuntimeOptions o;
    o.kind = "light";
    o.data_dir = data_dir_;
    o.run_dir = run_dir_;
    auto rt = runtime::createRuntime(o);
    if (!rt.isOk()) {
      std::fprintf(stderr, "edge-bench-edged: cannot open %s to remove its containers: %s\n",
                   data_dir_.c_str(), rt.status().toString().c_str());
      return;
    }
    auto list = (*rt)->listContainers(runtime::ListOptions{});
    if (list.isOk())
      for (const auto& c : *list) (void)(*rt)->removeContainer(c.id, /*force=*/true);
  }

  // edged labels its containers with the manifest's labels, and the bench's manifests
  // carry io.edgecloud.bench=<pid>.
  void removeDockerLeftovers() {
    auto ids = runCommand(
        {"docker", "ps", "-aq", "--filter", std::string("label=") + kBenchLabel + "=" + benchId()});
    if (!ids.isOk()) return;
    std::vector<std::string> args = {"docker", "rm", "-f"};
    for (const auto& id : splitWords(ids->out)) args.push_back(id);
    if (args.size() > 3) (void)runCommand(args);
  }

  std::string kind_, dir_, data_dir_, run_dir_, socket_, log_;
  http::Client client_;
  pid_t pid_ = 0;
};

std::string serviceYaml(const std::string& name, const std::string& image,
                        const std::string& extra_spec) {
  return "apiVersion: edge/v1\nkind: Service\nmetadata:\n  name: " + name + "\n  labels: {" +
         kBenchLabel + ": \"" + benchId() + "\"}\nspec:\n  image: " + image + "\n" + extra_spec;
}

// ---------------------------------------------------------------------------------------
// Docker (the peer)

// The bench's dealings with dockerd: the images it loads (removed at the end when dockerd
// did not hold them before) and its sleep containers (labelled, removed at the end).
class DockerPeer {
 public:
  ~DockerPeer() {
    removeContainers();
    for (const auto& ref : loaded_) (void)runCommand({"docker", "rmi", ref});
  }

  // Remembers whether dockerd holds `ref` now, so the end removes it only if it did not.
  void noteImage(const std::string& ref) {
    auto r = runCommand({"docker", "image", "inspect", ref});
    if (r.isOk() && r->exit_code != 0) loaded_.insert(ref);
  }

  Status load(const std::string& tarball, const std::string& ref) {
    noteImage(ref);
    return mustRun({"docker", "load", "-q", "-i", tarball}).status();
  }

  // Starts `n` busybox sleep containers; returns their full ids.
  Result<std::set<std::string>> runSleepers(int n) {
    std::set<std::string> ids;
    for (int i = 0; i < n; ++i) {
      if (g_stop) return interrupted();
      ASSIGN_OR_RETURN(std::string out,
                       mustRun({"docker", "run", "-d", "--network", "host", "--label",
                                std::string(kBenchLabel) + "=" + benchId(), "--name",
                                "eb" + benchId() + "-sleep-" + std::to_string(i),
                                "edgecloud/busybox:test", "/bin/sleep", "100000"}));
      auto words = splitWords(out);
      if (words.empty()) return Status::internal("docker run printed no container id");
      ids.insert(words.back());
    }
    return ids;
  }

  void removeContainers() {
    auto ids = runCommand(
        {"docker", "ps", "-aq", "--filter", std::string("label=") + kBenchLabel + "=" + benchId()});
    if (!ids.isOk()) return;
    std::vector<std::string> args = {"docker", "rm", "-f"};
    for (const auto& id : splitWords(ids->out)) args.push_back(id);
    if (args.size() > 3) (void)runCommand(args);
  }

  // Containers in dockerd labelled io.edgecloud.managed=true that the bench did not make.
  // edged on the docker runtime removes every managed container it does not want, so
  // running it next to them would destroy another user's containers.
  Result<int> foreignManaged() {
    ASSIGN_OR_RETURN(std::string all,
                     mustRun({"docker", "ps", "-aq", "--filter",
                              std::string("label=") + runtime::kManagedLabel + "=true"}));
    ASSIGN_OR_RETURN(std::string mine,
                     mustRun({"docker", "ps", "-aq", "--filter",
                              std::string("label=") + kBenchLabel + "=" + benchId()}));
    std::vector<std::string> m = splitWords(mine);
    int n = 0;
    for (const auto& id : splitWords(all))
      if (std::find(m.begin(), m.end(), id) == m.end()) n++;
    return n;
  }

  Result<int> runningContainers() {
    ASSIGN_OR_RETURN(std::string out, mustRun({"docker", "ps", "-q"}));
    return static_cast<int>(splitWords(out).size());
  }

 private:
  std::set<std::string> loaded_;
};

// ---------------------------------------------------------------------------------------
// Apply -> answer

struct Series {
  std::string name;
  std::vector<double> ms;       // POST sent -> first HTTP 200 from the service
  std::vector<double> post_ms;  // POST sent -> POST answered
  std::string error;
};

double percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  size_t i = static_cast<size_t>(p * static_cast<double>(v.size() - 1) + 0.5);
  return v[std::min(i, v.size() - 1)];
}

// Applies a hello service on a fresh static port, polls the port every 5 ms until it
// answers 200 (bounded), then deletes the service and waits until its instance is gone.
Status applyToAnswer(Edged& e, const std::string& name, const std::string& image, Series* into) {
  ASSIGN_OR_RETURN(int port, freePort());
  std::string yaml = serviceYaml(
      name, image, "  ports:\n    - {name: http, containerPort: " + std::to_string(port) + "}\n");
  http::ClientOptions co;
  co.connect_timeout = milliseconds(200);
  http::Client probe(
      http::Endpoint{.kind = http::Endpoint::Kind::kTcp, .host = "127.0.0.1", .port = port}, co);
  http::Request get;
  get.path = "/";
  get.read_timeout = seconds(1);

  auto t0 = SteadyClock::now();
  Status applied = e.apply(yaml);
  double post_ms = msSince(t0);
  Status answered = applied;
  double answer_ms = 0;
  while (answered.isOk()) {
    auto r = probe.send(get);
    if (r.isOk() && r->status == 200) {
      answer_ms = msSince(t0);
      break;
    }
    if (SteadyClock::now() - t0 > kAnswerBudget) {
      answered = Status::deadlineExceeded(name + " did not answer HTTP on port " +
                                          std::to_string(port) + " within 60 s");
    } else if (!nap(kPollEvery)) {
      answered = interrupted();
    }
  }
  Status removed = e.removeServices({name}, name);
  RETURN_IF_ERROR(answered);
  RETURN_IF_ERROR(removed);
  if (into != nullptr) {
    into->ms.push_back(answer_ms);
    into->post_ms.push_back(post_ms);
  }
  return Status::ok();
}

// ---------------------------------------------------------------------------------------
// Report

double mb(long kb) {
  return static_cast<double>(kb) / 1024.0;
}

// Requested rows that are not results: the run exits 1.
int g_not_results = 0;

void printUsage(const char* label, const Usage* u, const std::string& why, bool requested = true) {
  if (u == nullptr || !u->measured) {
    std::printf("%-44s %5s %9s %9s %9s %7s   not a result: %s\n", label, "-", "-", "-", "-", "-",
                why.c_str());
    if (requested) ++g_not_results;
    return;
  }
  std::printf("%-44s %5d %9.2f %9.2f %9.2f %7.2f\n", label, u->procs, mb(u->rss_kb), mb(u->anon_kb),
              mb(u->pss_kb), u->cpu_pct);
}

Usage perProcess(const Usage& total) {
  Usage u = total;
  if (total.procs > 0) {
    u.rss_kb = total.rss_kb / total.procs;
    u.anon_kb = total.anon_kb / total.procs;
    u.pss_kb = total.pss_kb / total.procs;
    u.cpu_pct = total.cpu_pct / total.procs;
    u.procs = 1;
  }
  return u;
}

void ratio(const char* what, double a, double b) {
  if (a > 0 && b > 0)
    std::printf("ratio %s %.3f\n", what, a / b);
  else
    std::printf("ratio %s -\n", what);
}

// ---------------------------------------------------------------------------------------

struct Footprint {
  std::map<std::string, Usage> idle0, idle_n;
  std::vector<MapGroup> breakdown;
  std::string threads;
  int docker_running0 = -1, docker_running_n = -1;
  std::string error, docker_error;
};

constexpr char kEdged[] = "edged";
constexpr char kShims[] = "edge-shim";
constexpr char kDockerd[] = "dockerd+containerd";
constexpr char kCShims[] = "containerd-shim";

Status measureFootprint(const Options& opt, Edged& edged, const std::string& images,
                        DockerPeer* docker, Footprint* f) {
  // Let start-up work (first reconcile pass, store open) finish before the idle window.
  if (!nap(milliseconds(2000))) return interrupted();
  std::map<std::string, std::vector<pid_t>> groups = {{kEdged, {edged.pid()}}};
  if (docker != nullptr) {
    groups[kDockerd] = dockerDaemonPids();
    f->docker_running0 = docker->runningContainers().valueOr(-1);
  }
  ASSIGN_OR_RETURN(f->idle0, idleWindow(groups, opt.idle_seconds));

  std::string prefix = "eb" + benchId() + "-idle-";
  std::vector<std::string> names;
  for (int i = 0; i < opt.services; ++i) {
    names.push_back(prefix + std::to_string(i));
    RETURN_IF_ERROR(edged.apply(serviceYaml(names.back(), images + "/busybox.tar",
                                            "  command: [/bin/sleep, \"100000\"]\n")));
    if (g_stop) return interrupted();
  }
  std::set<std::string> sleeper_ids;
  if (docker != nullptr) {
    Status s = docker->load(images + "/busybox.tar", "edgecloud/busybox:test");
    auto ids = s.isOk() ? docker->runSleepers(opt.services) : Result<std::set<std::string>>(s);
    if (ids.isOk()) {
      sleeper_ids = *ids;
    } else {
      f->docker_error = ids.status().toString();
    }
  }
  RETURN_IF_ERROR(edged.waitRunning(names, seconds(90)));
  if (!nap(milliseconds(2000))) return interrupted();

  groups = {{kEdged, {edged.pid()}}, {kShims, edgeShimPids(edged.dataDir())}};
  if (docker != nullptr && f->docker_error.empty()) {
    groups[kDockerd] = dockerDaemonPids();
    groups[kCShims] = containerdShimPids(sleeper_ids);
    f->docker_running_n = docker->runningContainers().valueOr(-1);
  }
  ASSIGN_OR_RETURN(f->idle_n, idleWindow(groups, opt.idle_seconds));
  f->breakdown = smapsBreakdown(edged.pid());
  std::string status = procFile(edged.pid(), "status");
  size_t t = status.find("Threads:");
  if (t != std::string::npos) {
    auto words = splitWords(status.substr(t + 8, 16));
    if (!words.empty()) f->threads = words.front();
  }

  if (docker != nullptr) docker->removeContainers();
  return edged.removeServices(names, prefix);
}

void printFootprint(const Options& opt, const Footprint& f, bool docker_on,
                    const std::string& docker_why) {
  std::string n = std::to_string(opt.services);
  std::printf(
      "footprint, idle %2d s window                  procs    RSS MB   anon MB    PSS MB   CPU "
      "%%\n",
      opt.idle_seconds);
  auto get = [](const std::map<std::string, Usage>& m, const char* k) -> const Usage* {
    auto it = m.find(k);
    return it == m.end() ? nullptr : &it->second;
  };
  std::string why = f.error.empty() ? "not reached" : "see below";
  printUsage("edged (light runtime), 0 services", get(f.idle0, kEdged), why);
  printUsage(("edged (light runtime), " + n + " services").c_str(), get(f.idle_n, kEdged), why);
  const Usage* shims = get(f.idle_n, kShims);
  printUsage(("edge-shim x" + n + " (total)").c_str(), shims, why);
  Usage shim1 = shims ? perProcess(*shims) : Usage{};
  printUsage("edge-shim, per container", shims ? &shim1 : nullptr, why);
  std::string dwhy = !docker_on ? docker_why : (f.docker_error.empty() ? why : f.docker_error);
  bool want_docker = !opt.skip_docker;
  printUsage("dockerd+containerd, no bench container", docker_on ? get(f.idle0, kDockerd) : nullptr,
             dwhy, want_docker);
  printUsage(("dockerd+containerd, " + n + " sleep containers").c_str(),
             docker_on ? get(f.idle_n, kDockerd) : nullptr, dwhy, want_docker);
  const Usage* cshims = docker_on ? get(f.idle_n, kCShims) : nullptr;
  printUsage(("containerd-shim-runc-v2 x" + n + " (total)").c_str(), cshims, dwhy, want_docker);
  Usage cshim1 = cshims ? perProcess(*cshims) : Usage{};
  printUsage("containerd-shim-runc-v2, per container", cshims ? &cshim1 : nullptr, dwhy,
             want_docker);
  if (!f.error.empty()) std::printf("footprint stopped: %s\n", f.error.c_str());
  if (f.docker_running0 >= 0)
    std::printf("(dockerd ran %d containers in all in the first window, %d in the second)\n",
                f.docker_running0, f.docker_running_n);

  if (!f.breakdown.empty()) {
    std::printf(
        "\nwhere edged's RSS goes, %s services (/proc/PID/smaps)   maps    RSS KB    PSS KB"
        " private KB\n",
        n.c_str());
    MapGroup rest{.name = "smaller groups"};
    int small = 0;
    for (const auto& g : f.breakdown) {
      if (g.rss_kb < 64) {
        small++;
        rest.mappings += g.mappings;
        rest.rss_kb += g.rss_kb;
        rest.pss_kb += g.pss_kb;
        rest.private_kb += g.private_kb;
        continue;
      }
      std::printf("  %-54s %4d %9ld %9ld %9ld\n", g.name.c_str(), g.mappings, g.rss_kb, g.pss_kb,
                  g.private_kb);
    }
    if (small > 0)
      std::printf("  %-54s %4d %9ld %9ld %9ld\n",
                  ("(" + std::to_string(small) + " " + rest.name + ")").c_str(), rest.mappings,
                  rest.rss_kb, rest.pss_kb, rest.private_kb);
    std::printf("  threads: %s\n", f.threads.c_str());
  }
}

std::string selfDir() {
  std::error_code ec;
  auto p = std::filesystem::read_symlink("/proc/self/exe", ec);
  return ec ? std::string(".") : p.parent_path().string();
}

}  // namespace

int run(int argc, char** argv) {
  bool help = false;
  auto parsed = parseFlags(argc, argv, &help);
  if (help) {
    std::fputs(kUsage, stdout);
    return 0;
  }
  if (!parsed.isOk()) {
    std::fprintf(stderr, "edge-bench-edged: %s\n%s", parsed.status().message().c_str(), kUsage);
    return 2;
  }
  Options opt = *parsed;
  if (::geteuid() != 0) {
    std::fprintf(stderr,
                 "edge-bench-edged: needs root (edged's light runtime uses namespaces, cgroups "
                 "and mounts; dockerd's socket is root's)\n");
    return 1;
  }
  std::string bin_dir = selfDir();
  std::string edged_bin = opt.edged.empty() ? bin_dir + "/edged" : opt.edged;
  std::string images = opt.images.empty()
                           ? std::filesystem::path(bin_dir).parent_path().string() + "/images"
                           : opt.images;
  images = std::filesystem::absolute(images).lexically_normal().string();
  for (const std::string& f : {edged_bin, images + "/busybox.tar", images + "/hello.tar"}) {
    if (!fs::exists(f)) {
      std::fprintf(stderr,
                   "edge-bench-edged: %s not found (build the targets edged, edge-shim and "
                   "edge_test_images, or pass --edged / --images)\n",
                   f.c_str());
      return 1;
    }
  }

  // The in-process runtime (used only to remove leftovers) need not narrate.
  log::setLevel(log::Level::kWarn);

  struct sigaction sa {};
  sa.sa_handler = onSignal;
  ::sigaction(SIGINT, &sa, nullptr);
  ::sigaction(SIGTERM, &sa, nullptr);
  ::signal(SIGPIPE, SIG_IGN);

  std::string work = "/tmp/edge-bench-edged-" + benchId();
  if (Status s = fs::makeDirs(work, 0700); !s.isOk()) {
    std::fprintf(stderr, "edge-bench-edged: %s\n", s.toString().c_str());
    return 1;
  }

  bool docker_on = false;
  std::string docker_why;
  if (opt.skip_docker) {
    docker_why = "--skip-docker";
  } else if (!runtime::dockerAnswers(kDockerEndpoint, milliseconds(1500))) {
    docker_why = "no dockerd answers on /var/run/docker.sock (scripts/start-dockerd.sh)";
  } else {
    docker_on = true;
  }

  Footprint foot;
  Series light{"edged --runtime light"}, docker{"edged --runtime docker"};
  {
    // Declared before the edgeds so that it is destroyed after them: their containers go
    // first, then the images.
    std::unique_ptr<DockerPeer> peer = docker_on ? std::make_unique<DockerPeer>() : nullptr;
    std::unique_ptr<Edged> edged_light, edged_docker;

    auto started = Edged::start(edged_bin, "light", work + "/light");
    if (!started.isOk()) {
      foot.error = light.error = started.status().toString();
    } else {
      edged_light = std::move(*started);
      Status s = measureFootprint(opt, *edged_light, images, peer.get(), &foot);
      if (!s.isOk()) foot.error = s.toString();
    }

    if (docker_on && !g_stop) {
      auto foreign = peer->foreignManaged();
      if (!foreign.isOk()) {
        docker.error = foreign.status().toString();
      } else if (*foreign > 0) {
        docker.error = "dockerd holds " + std::to_string(*foreign) +
                       " containers labelled io.edgecloud.managed=true that are not this "
                       "bench's; edged --runtime docker would remove them, so it is not run";
      } else {
        peer->noteImage("edgecloud/hello:latest");
        auto d = Edged::start(edged_bin, "docker", work + "/docker");
        if (d.isOk()) {
          edged_docker = std::move(*d);
        } else {
          docker.error = d.status().toString();
        }
      }
    } else if (!docker_on) {
      docker.error = docker_why;
    }

    // Warm-up: the first apply loads hello.tar into the runtime; the measured ones use
    // the image reference, so they time the start path, not the image load.
    std::string tar = images + "/hello.tar";
    std::string prefix = "eb" + benchId() + "-";
    if (edged_light && light.error.empty())
      if (Status s = applyToAnswer(*edged_light, prefix + "light-warm", tar, nullptr); !s.isOk())
        light.error = s.toString();
    if (edged_docker && docker.error.empty())
      if (Status s = applyToAnswer(*edged_docker, prefix + "docker-warm", tar, nullptr); !s.isOk())
        docker.error = s.toString();
    for (int i = 0; i < opt.reps && !g_stop; ++i) {
      // Alternate which runtime goes first so drift on a shared host hits both alike.
      std::vector<std::pair<Edged*, Series*>> order = {{edged_light.get(), &light},
                                                       {edged_docker.get(), &docker}};
      if (i % 2 == 1) std::swap(order[0], order[1]);
      for (auto [e, series] : order) {
        if (e == nullptr || !series->error.empty()) continue;
        std::string kind = series == &light ? "light" : "docker";
        Status s = applyToAnswer(*e, prefix + kind + "-" + std::to_string(i),
                                 "edgecloud/hello:latest", series);
        if (!s.isOk()) series->error = s.toString();
      }
    }
    // Leaving this scope stops both edgeds, removes their containers and data, then the
    // docker containers and images the bench added.
  }
  unmountUnder(work);
  (void)fs::removeAll(work);

  if (g_stop) {
    std::fprintf(stderr, "edge-bench-edged: interrupted; everything it created is removed\n");
    return 130;
  }

  printFootprint(opt, foot, docker_on, docker_why);

  std::printf("\n%-36s %5s %10s %10s %16s\n", "apply -> service answers HTTP", "reps", "median ms",
              "p90 ms", "POST median ms");
  for (const Series* s : {&light, &docker}) {
    if (!s->error.empty() || s->ms.empty()) {
      std::printf("%-36s %5s %10s %10s %16s   not a result: %s\n", s->name.c_str(), "-", "-", "-",
                  "-", s->error.empty() ? "no repetition ran" : s->error.c_str());
      if (s == &light || !opt.skip_docker) ++g_not_results;
      continue;
    }
    std::printf("%-36s %5zu %10.1f %10.1f %16.1f\n", s->name.c_str(), s->ms.size(),
                percentile(s->ms, 0.5), percentile(s->ms, 0.9), percentile(s->post_ms, 0.5));
  }

  std::printf("\n");
  auto usage = [](const std::map<std::string, Usage>& m, const char* k) {
    auto it = m.find(k);
    return it == m.end() ? Usage{} : it->second;
  };
  std::string n = std::to_string(opt.services);
  Usage e_n = usage(foot.idle_n, kEdged), e_0 = usage(foot.idle0, kEdged);
  Usage d_n = usage(foot.idle_n, kDockerd), shims = usage(foot.idle_n, kShims),
        cshims = usage(foot.idle_n, kCShims);
  double edged_kb = static_cast<double>(e_n.rss_kb);
  ratio(("edged_rss_" + n + "svc/dockerd_containerd_rss").c_str(), edged_kb,
        static_cast<double>(d_n.rss_kb));
  ratio(("edged_pss_" + n + "svc/dockerd_containerd_pss").c_str(), static_cast<double>(e_n.pss_kb),
        static_cast<double>(d_n.pss_kb));
  ratio(("edged_rss_" + n + "svc/8MB_target").c_str(), edged_kb, static_cast<double>(kTargetKb));
  ratio(("edged_rss_0svc/8MB_target"), static_cast<double>(e_0.rss_kb),
        static_cast<double>(kTargetKb));
  bool shim_pair = shims.procs > 0 && cshims.procs > 0;
  ratio("edge_shim_rss_per_container/containerd_shim_rss_per_container",
        shim_pair ? static_cast<double>(shims.rss_kb) / shims.procs : 0,
        shim_pair ? static_cast<double>(cshims.rss_kb) / cshims.procs : 0);
  ratio("edge_shim_pss_per_container/containerd_shim_pss_per_container",
        shim_pair ? static_cast<double>(shims.pss_kb) / shims.procs : 0,
        shim_pair ? static_cast<double>(cshims.pss_kb) / cshims.procs : 0);
  ratio(("edged_plus_shims_pss_" + n + "/docker_stack_pss_" + n).c_str(),
        shim_pair ? static_cast<double>(e_n.pss_kb + shims.pss_kb) : 0,
        shim_pair ? static_cast<double>(d_n.pss_kb + cshims.pss_kb) : 0);
  bool both =
      light.error.empty() && docker.error.empty() && !light.ms.empty() && !docker.ms.empty();
  ratio("apply_to_answer light/docker", both ? percentile(light.ms, 0.5) : 0,
        both ? percentile(docker.ms, 0.5) : 0);
  if (!foot.error.empty()) ++g_not_results;
  std::fflush(stdout);  // the table first, then the verdict on stderr
  if (g_not_results > 0)
    std::fprintf(stderr, "edge-bench-edged: %d requested row(s) are not results\n", g_not_results);
  return g_not_results > 0 ? 1 : 0;
}

}  // namespace edge::bench

int main(int argc, char** argv) {
  return edge::bench::run(argc, argv);
}
