#include "orchestrator/health.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <vector>

#include "common/fs.h"
#include "common/http.h"
#include "common/log.h"

namespace edge::orchestrator {
namespace {

using std::chrono::duration_cast;
using std::chrono::milliseconds;

bool probeTcp(int port, milliseconds timeout, std::string* detail) {
  fs::UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!fd.valid()) {
    *detail = std::string("socket: ") + std::strerror(errno);
    return false;
  }
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  int rc = ::connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  if (rc != 0 && errno != EINPROGRESS) {
    *detail = std::string("connect: ") + std::strerror(errno);
    return false;
  }
  if (rc != 0) {
    pollfd p{.fd = fd.get(), .events = POLLOUT};
    rc = ::poll(&p, 1, static_cast<int>(timeout.count()));
    if (rc == 0) {
      *detail = "connect timed out after " + std::to_string(timeout.count()) + "ms";
      return false;
    }
    int err = 0;
    socklen_t len = sizeof err;
    ::getsockopt(fd.get(), SOL_SOCKET, SO_ERROR, &err, &len);
    if (rc < 0 || err != 0) {
      *detail = std::string("connect: ") + std::strerror(err != 0 ? err : errno);
      return false;
    }
  }
  *detail = "connected to port " + std::to_string(port);
  return true;
}

bool probeHttp(const HealthCheck& check, int port, std::string* detail) {
  http::Endpoint ep{.kind = http::Endpoint::Kind::kTcp, .host = "127.0.0.1", .port = port};
  http::ClientOptions opts;
  opts.connect_timeout = check.timeout;
  opts.write_timeout = check.timeout;
  opts.host_header = "127.0.0.1:" + std::to_string(port);
  http::Client client(ep, opts);
  http::Request req;
  req.path = check.http_path.empty() ? "/" : check.http_path;
  req.read_timeout = check.timeout;
  req.headers.emplace("User-Agent", "edged-health/1");
  auto resp = client.send(req);
  if (!resp.isOk()) {
    *detail = resp.status().message();
    return false;
  }
  *detail = "HTTP " + std::to_string(resp->status);
  return resp->status >= 200 && resp->status < 400;
}

// Runs the command inside the container's namespaces. Everything the child needs is
// prepared before fork(): the process is multi-threaded, so the child only makes
// async-signal-safe calls.
bool probeExec(const HealthCheck& check, int pid, std::string* detail) {
  if (pid <= 0) {
    *detail = "instance has no process to enter";
    return false;
  }
  if (check.exec_command.empty()) {
    *detail = "empty exec command";
    return false;
  }
  const char* kinds[] = {"ipc", "uts", "net", "pid", "mnt"};
  std::vector<fs::UniqueFd> ns;
  for (const char* k : kinds) {
    std::string p = "/proc/" + std::to_string(pid) + "/ns/" + k;
    fs::UniqueFd fd(::open(p.c_str(), O_RDONLY | O_CLOEXEC));
    if (!fd.valid()) {
      *detail = "cannot open " + p + ": " + std::strerror(errno);
      return false;
    }
    ns.push_back(std::move(fd));
  }
  std::vector<std::string> candidates;
  const std::string& cmd = check.exec_command[0];
  if (cmd.find('/') != std::string::npos) {
    candidates.push_back(cmd);
  } else {
    for (const char* dir :
         {"/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"})
      candidates.push_back(std::string(dir) + "/" + cmd);
  }
  std::vector<char*> argv;
  for (const auto& a : check.exec_command) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  static char kPath[] = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
  char* envp[] = {kPath, nullptr};
  std::vector<int> ns_fds;
  for (auto& f : ns) ns_fds.push_back(f.get());

  pid_t child = ::fork();
  if (child < 0) {
    *detail = std::string("fork: ") + std::strerror(errno);
    return false;
  }
  if (child == 0) {
    ::setpgid(0, 0);
    int devnull = ::open("/dev/null", O_RDWR);
    if (devnull >= 0) {
      ::dup2(devnull, 0);
      ::dup2(devnull, 1);
      ::dup2(devnull, 2);
    }
    for (int fd : ns_fds)
      if (::setns(fd, 0) != 0) ::_exit(125);
    // Joining a pid namespace applies to children: fork once more to be inside it.
    pid_t inner = ::fork();
    if (inner < 0) ::_exit(125);
    if (inner == 0) {
      if (::chdir("/") != 0) ::_exit(125);
      for (const auto& c : candidates) ::execve(c.c_str(), argv.data(), envp);
      ::_exit(127);
    }
    int st = 0;
    while (::waitpid(inner, &st, 0) < 0 && errno == EINTR) {
    }
    ::_exit(WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st));
  }
  auto deadline = std::chrono::steady_clock::now() + check.timeout;
  int st = 0;
  for (;;) {
    pid_t r = ::waitpid(child, &st, WNOHANG);
    if (r == child) break;
    if (r < 0 && errno != EINTR) {
      *detail = std::string("waitpid: ") + std::strerror(errno);
      return false;
    }
    if (std::chrono::steady_clock::now() >= deadline) {
      ::kill(-child, SIGKILL);
      ::kill(child, SIGKILL);
      while (::waitpid(child, &st, 0) < 0 && errno == EINTR) {
      }
      *detail = "timed out after " + std::to_string(check.timeout.count()) + "ms";
      return false;
    }
    ::usleep(2000);
  }
  int code = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
  if (code == 125) {
    *detail = "could not enter the container's namespaces";
    return false;
  }
  if (code == 127) {
    *detail = "command not found in the container: " + cmd;
    return false;
  }
  *detail = "exit " + std::to_string(code);
  return code == 0;
}

}  // namespace

bool SystemProber::probe(const HealthCheck& check, const ProbeTarget& target, std::string* detail) {
  switch (check.kind) {
    case HealthCheck::Kind::kHttp:
      return probeHttp(check, target.port, detail);
    case HealthCheck::Kind::kTcp:
      return probeTcp(target.port, check.timeout, detail);
    case HealthCheck::Kind::kExec:
      return probeExec(check, target.pid, detail);
  }
  return false;
}

std::string_view healthName(Health h) {
  switch (h) {
    case Health::kNone:
      return "none";
    case Health::kStarting:
      return "starting";
    case Health::kHealthy:
      return "healthy";
    case Health::kUnhealthy:
      return "unhealthy";
  }
  return "none";
}

HealthMonitor::HealthMonitor(Clock& clock, Prober& prober) : clock_(clock), prober_(prober) {}

HealthMonitor::~HealthMonitor() {
  stop();
}

void HealthMonitor::track(const std::string& id, const HealthCheck& check,
                          const ProbeTarget& target, SteadyTime started) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = entries_.find(id);
  if (it != entries_.end() && it->second.started == started) {
    it->second.target = target;
    return;
  }
  Entry e;
  e.check = check;
  e.target = target;
  e.started = started;
  e.next_due = started + std::min<Duration>(check.interval, std::chrono::seconds(1));
  e.state.health = Health::kStarting;
  entries_[id] = std::move(e);
  changed_ = true;
  cv_.notify_all();
}

void HealthMonitor::retainOnly(const std::set<std::string>& ids) {
  std::lock_guard<std::mutex> lock(mu_);
  for (auto it = entries_.begin(); it != entries_.end();) {
    if (ids.count(it->first) == 0)
      it = entries_.erase(it);
    else
      ++it;
  }
}

HealthState HealthMonitor::state(const std::string& id) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = entries_.find(id);
  return it == entries_.end() ? HealthState{} : it->second.state;
}

void HealthMonitor::setOnChange(std::function<void(const std::string&, Health)> cb) {
  std::lock_guard<std::mutex> lock(mu_);
  on_change_ = std::move(cb);
}

SteadyTime HealthMonitor::runDue() {
  for (;;) {
    std::string id;
    Entry copy;
    {
      std::lock_guard<std::mutex> lock(mu_);
      SteadyTime now = clock_.now();
      auto due = entries_.end();
      for (auto it = entries_.begin(); it != entries_.end(); ++it)
        if (it->second.next_due <= now &&
            (due == entries_.end() || it->second.next_due < due->second.next_due))
          due = it;
      if (due == entries_.end()) {
        SteadyTime next = now + std::chrono::minutes(1);
        for (const auto& [_, e] : entries_) next = std::min(next, e.next_due);
        return next;
      }
      id = due->first;
      copy = due->second;
    }
    std::string detail;
    bool ok = prober_.probe(copy.check, copy.target, &detail);
    std::function<void(const std::string&, Health)> cb;
    Health changed_to = Health::kNone;
    {
      std::lock_guard<std::mutex> lock(mu_);
      auto it = entries_.find(id);
      if (it == entries_.end() || it->second.started != copy.started) continue;
      Entry& e = it->second;
      SteadyTime now = clock_.now();
      e.next_due = now + e.check.interval;
      e.state.detail = detail;
      Health before = e.state.health;
      if (ok) {
        e.state.consecutive_failures = 0;
        e.state.health = Health::kHealthy;
      } else if (now - e.started >= e.check.start_period) {
        if (++e.state.consecutive_failures >= e.check.retries) e.state.health = Health::kUnhealthy;
      }
      if (e.state.health != before &&
          (e.state.health == Health::kHealthy || e.state.health == Health::kUnhealthy)) {
        changed_to = e.state.health;
        cb = on_change_;
      }
    }
    if (cb) cb(id, changed_to);
  }
}

void HealthMonitor::start() {
  std::lock_guard<std::mutex> lock(mu_);
  if (thread_.joinable()) return;
  stopping_ = false;
  thread_ = std::thread([this] {
    for (;;) {
      SteadyTime next = runDue();
      std::unique_lock<std::mutex> lock(mu_);
      if (stopping_) return;
      if (changed_) {
        changed_ = false;
        continue;
      }
      auto wait = next - clock_.now();
      if (wait > Duration::zero()) cv_.wait_for(lock, wait, [&] { return stopping_ || changed_; });
      if (stopping_) return;
      changed_ = false;
    }
  });
}

void HealthMonitor::stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

}  // namespace edge::orchestrator
