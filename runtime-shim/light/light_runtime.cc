// LightRuntime: containers run by edge-shim processes, state on disk under options.root.
//
// Locking: mu_ guards containers_ and every Entry's fields; it is never held across a
// blocking call (shim start, log reads, waits use cv_). sinks_mu_ (recursive) guards the
// event subscribers and is held while a sink runs, so unsubscribing waits for it.
#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <sys/vfs.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <functional>
#include <mutex>
#include <set>
#include <thread>

#include "common/crypto.h"
#include "common/fs.h"
#include "common/log.h"
#include "runtime-shim/light/cgroups.h"
#include "runtime-shim/light/container_files.h"
#include "runtime-shim/light/cri_log.h"
#include "runtime-shim/light/light_runtime_internal.h"
#include "runtime-shim/light/seccomp_profile.h"
#include "runtime-shim/light/spec.h"

extern char** environ;

namespace edge::runtime::light {
namespace {

constexpr char kVersion[] = "0.1.0";
constexpr long kOverlayfsMagic = 0x794c7630;
constexpr long kTmpfsMagic = 0x01021994;
// Pre-created container dirs kept ready in containers/.pool (see takePoolEntry).
constexpr size_t kPoolSize = 4;
constexpr char kPoolTmpPrefix[] = ".tmp-";
constexpr auto kDefaultStopTimeout = std::chrono::seconds(10);
// After SIGKILL a container is gone within milliseconds; this only bounds a wedged kernel.
constexpr auto kKillGrace = std::chrono::seconds(30);
constexpr auto kHandlerRecheck = std::chrono::milliseconds(10);
constexpr auto kShimReplyTimeout = std::chrono::seconds(60);

int pidfdOpen(int pid) {
  return static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
}
int pidfdSignal(int pidfd, int sig) {
  return static_cast<int>(::syscall(SYS_pidfd_send_signal, pidfd, sig, nullptr, 0));
}

bool isHexId(const std::string& s) {
  if (s.size() != 64) return false;
  for (char c : s) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

struct Entry {
  LaunchConfig config;  // config.info holds the identity and effective config
  ContainerState state = ContainerState::kCreated;
  int pid = 0;
  int exit_code = 0;
  bool oom_killed = false;
  std::string error;
  WallTime started{};
  WallTime finished{};
  bool starting = false;
  bool removed = false;
  fs::UniqueFd exit_fd;  // readable when the shim is gone (sync pipe or shim pidfd)
  fs::UniqueFd pidfd;    // the container's first process, for signals
  std::string dir;       // containers/<id> on the data dir
  std::string run_dir;   // <run_root>/<id>: state.json, exit.json, the /etc layer

  ContainerInfo info() const {
    ContainerInfo i = config.info;
    i.state = state;
    i.pid = state == ContainerState::kRunning ? pid : 0;
    i.exit_code = exit_code;
    i.oom_killed = oom_killed;
    i.error = error;
    i.started = started;
    i.finished = finished;
    return i;
  }
};
using EntryPtr = std::shared_ptr<Entry>;

class LightRuntime;

class SubscriptionImpl : public Subscription {
 public:
  SubscriptionImpl(LightRuntime* rt, uint64_t id) : rt_(rt), id_(id) {}
  ~SubscriptionImpl() override;

 private:
  LightRuntime* rt_;
  uint64_t id_;
};

class LightRuntime : public ContainerRuntime {
 public:
  LightRuntime(LightRuntimeOptions options, LightRuntimeDeps deps, CgroupLayout layout)
      : options_(std::move(options)),
        deps_(std::move(deps)),
        clock_(options_.clock ? options_.clock : SystemClock::instance()),
        cgroups_(layout, makeRealCgroupFs()),
        containers_dir_(options_.root + "/containers"),
        pool_dir_(containers_dir_ + "/.pool"),
        trash_dir_(options_.root + "/trash") {}

  ~LightRuntime() override {
    stop_.store(true);
    wake();
    if (watcher_.joinable()) watcher_.join();
    {
      std::lock_guard lk(trash_mu_);
      trash_stop_ = true;
    }
    trash_cv_.notify_all();
    if (reaper_.joinable()) reaper_.join();
  }

  Status init() {
    RETURN_IF_ERROR(fs::makeDirs(containers_dir_, 0711));
    RETURN_IF_ERROR(openRunRoot());
    struct statfs sfs {};
    copy_rootfs_ = deps_.force_copy_rootfs ||
                   (::statfs(containers_dir_.c_str(), &sfs) == 0 && sfs.f_type == kOverlayfsMagic);
    if (options_.shim_path.empty()) {
      char exe[4096];
      ssize_t n = ::readlink("/proc/self/exe", exe, sizeof exe - 1);
      if (n > 0) {
        std::string self(exe, static_cast<size_t>(n));
        options_.shim_path = self.substr(0, self.rfind('/')) + "/edge-shim";
      }
    }
    auto bpf = compileDefaultSeccompBpf();
    if (!bpf.isOk()) return bpf.status().withContext("compile seccomp profile");
    seccomp_path_ = options_.root + "/seccomp.bpf";
    auto existing = fs::readFile(seccomp_path_, 1 << 20);
    if (!existing.isOk() || *existing != *bpf) RETURN_IF_ERROR(replaceFile(seccomp_path_, *bpf));

    epoll_.reset(::epoll_create1(EPOLL_CLOEXEC));
    wake_.reset(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
    if (!epoll_.valid() || !wake_.valid()) return Status::fromErrno(errno, "epoll/eventfd");
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.fd = wake_.get();
    ::epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, wake_.get(), &ev);
    RETURN_IF_ERROR(fs::makeDirs(trash_dir_, 0700));
    RETURN_IF_ERROR(fs::makeDirs(pool_dir_, 0700));
    recover();
    scanPool();
    watcher_ = std::thread([this] { watchLoop(); });
    reaper_ = std::thread([this] { reapLoop(); });
    return Status::ok();
  }

  std::string kind() const override { return "light"; }

  Result<RuntimeInfo> info() override {
    RuntimeInfo ri;
    ri.kind = "light";
    ri.version = kVersion;
    ri.api_version = "1";
    ri.os = "linux";
    struct utsname u {};
    if (::uname(&u) == 0) ri.kernel = u.release;
    ri.cgroup_version = cgroups_.layout().version == CgroupVersion::kV2 ? "2" : "1";
    ri.isolation = "namespaces+cgroups+seccomp";
    {
      std::lock_guard lk(mu_);
      for (const auto& [id, e] : containers_) {
        ++ri.containers;
        if (e->state == ContainerState::kRunning) ++ri.containers_running;
      }
    }
    auto imgs = deps_.images->list();
    if (imgs.isOk()) ri.images = static_cast<int>(imgs->size());
    return ri;
  }

  Result<std::vector<ImageInfo>> loadImage(const std::string& path) override {
    return deps_.images->load(path);
  }
  Result<std::vector<ImageInfo>> listImages() override { return deps_.images->list(); }
  Result<ImageInfo> inspectImage(const std::string& ref) override {
    return deps_.images->inspect(ref);
  }
  Status removeImage(const std::string& ref, bool force) override {
    return deps_.images->remove(ref, force, [this](const std::string& image_id) {
      std::lock_guard lk(mu_);
      for (const auto& [id, e] : containers_) {
        if (e->config.info.image_id == image_id) return true;
      }
      return false;
    });
  }

  Result<std::string> createContainer(const ContainerSpec& spec) override {
    RETURN_IF_ERROR(validateSpec(spec));
    ASSIGN_OR_RETURN(ImageInfo image, deps_.images->inspect(spec.image));
    ASSIGN_OR_RETURN(std::vector<std::string> layers, deps_.images->layerPaths(image.id));
    LaunchConfig c;
    c.info.id = crypto::randomHex(32);
    c.info.name = spec.name;
    c.info.image = spec.image;
    c.info.image_id = image.id;
    c.info.created = clock_->wallNow();
    mergeSpec(spec, image, &c.info);
    RETURN_IF_ERROR(containerArgv(c.info).status());
    c.hostname = spec.hostname;
    c.stop_signal = !spec.stop_signal.empty() ? spec.stop_signal : image.stop_signal;
    if (!c.stop_signal.empty() && !parseSignal(c.stop_signal).isOk()) {
      return Status::invalidArgument("image " + spec.image + ": StopSignal '" + c.stop_signal +
                                     "' is not a signal");
    }
    c.stop_timeout_s = spec.stop_timeout ? spec.stop_timeout->count() : -1;
    c.layers = std::move(layers);
    c.rootfs_copy = copy_rootfs_;
    c.cgroups = cgroups_.layout();
    c.seccomp_path = seccomp_path_;

    {
      std::lock_guard lk(mu_);
      if (!spec.name.empty()) {
        if (reserved_names_.count(spec.name) || findByNameLocked(spec.name)) {
          return Status::alreadyExists("container name '" + spec.name + "' is already in use");
        }
        reserved_names_.insert(spec.name);
      }
    }
    auto entry = std::make_shared<Entry>();
    entry->dir = containers_dir_ + "/" + c.info.id;
    entry->run_dir = runDir(c.info.id);
    Status s = writeBundle(entry->dir, c);
    if (s.isOk() && ::mkdir(entry->run_dir.c_str(), 0711) != 0) {
      s = Status::fromErrno(errno, "mkdir " + entry->run_dir);
    }
    std::lock_guard lk(mu_);
    reserved_names_.erase(spec.name);
    if (!s.isOk()) {
      (void)fs::removeAll(entry->dir);
      (void)fs::removeAll(entry->run_dir);
      return s;
    }
    entry->config = std::move(c);
    std::string id = entry->config.info.id;
    containers_[id] = std::move(entry);
    queueEventLocked(Event::Type::kCreate, id, 0);
    return id;
  }

  Status startContainer(const std::string& ref) override {
    EntryPtr e;
    {
      std::lock_guard lk(mu_);
      ASSIGN_OR_RETURN(e, findLocked(ref));
      if (e->starting) return Status::failedPrecondition("container " + ref + " is starting");
      if (e->state == ContainerState::kRunning) {
        return Status::failedPrecondition("container " + ref + " is already running");
      }
      e->starting = true;
      // A restart: the previous run's exit record must not be mistaken for this one's.
      if (e->state == ContainerState::kExited) ::unlink((e->run_dir + "/exit.json").c_str());
    }
    // Gone after a host restart (run_root is a tmpfs).
    if (::mkdir(e->run_dir.c_str(), 0711) != 0 && errno != EEXIST) {
      Status s = Status::fromErrno(errno, "mkdir " + e->run_dir);
      std::lock_guard lk(mu_);
      e->starting = false;
      cv_.notify_all();
      return s;
    }
    int pid = 0;
    fs::UniqueFd exit_fd;
    const std::string& id = e->config.info.id;
    // The cgroups are created while the shim starts up and clones the container (the two
    // take about as long); the shim moves the container in once told they are ready.
    Status s = spawnShim(
        e->dir, e->run_dir, cgroups_.dirs(id),
        [&] { return cgroups_.create(id, e->config.info.resources); }, &pid, &exit_fd);
    if (!s.isOk()) (void)cgroups_.destroy(id);
    fs::UniqueFd pidfd;
    if (s.isOk()) pidfd.reset(pidfdOpen(pid));  // ESRCH: already gone, the exit fd says so

    std::lock_guard lk(mu_);
    e->starting = false;
    if (!s.isOk()) {
      e->error = s.message();
      e->exit_code = s.message().find("permission denied") != std::string::npos ? 126 : 127;
      StateRecord st;
      st.state =
          e->state == ContainerState::kExited ? ContainerState::kExited : ContainerState::kCreated;
      st.error = e->error;
      st.exit_code = e->exit_code;
      (void)replaceFile(e->run_dir + "/state.json", encodeState(st));
      cv_.notify_all();
      return s;
    }
    e->state = ContainerState::kRunning;
    e->pid = pid;
    e->error.clear();
    e->exit_code = 0;
    e->oom_killed = false;
    e->started = clock_->wallNow();
    e->finished = WallTime{};
    e->pidfd = std::move(pidfd);
    e->exit_fd = std::move(exit_fd);
    watchLocked(e);
    queueEventLocked(Event::Type::kStart, e->config.info.id, 0);
    return Status::ok();
  }

  Status stopContainer(const std::string& ref,
                       std::optional<std::chrono::seconds> timeout) override {
    EntryPtr e;
    int sig = SIGTERM;
    std::chrono::seconds t = kDefaultStopTimeout;
    {
      std::lock_guard lk(mu_);
      ASSIGN_OR_RETURN(e, findLocked(ref));
      if (!e->config.stop_signal.empty()) {
        auto parsed = parseSignal(e->config.stop_signal);
        if (parsed.isOk()) sig = *parsed;
      }
      if (timeout) {
        t = *timeout;
      } else if (e->config.stop_timeout_s >= 0) {
        t = std::chrono::seconds(e->config.stop_timeout_s);
      }
    }
    if (t.count() > 0) {
      SteadyTime deadline = clock_->now() + t;
      bool delivered = catchesSignal(e, sig);
      if (!signalIfRunning(e, sig)) return Status::ok();
      // The kernel drops a signal that pid 1 of a pid namespace does not handle. A stop
      // issued while the command is still installing its handler (a shell's trap right
      // after start) would be lost: until the handler shows up, look again every few
      // milliseconds and send the signal once it is caught. Never sent twice to a handler.
      while (!delivered && clock_->now() < deadline) {
        if (waitNotRunning(e, std::min(deadline, clock_->now() + kHandlerRecheck))) {
          return Status::ok();
        }
        if (catchesSignal(e, sig)) {
          delivered = true;
          if (!signalIfRunning(e, sig)) return Status::ok();
        }
      }
      if (waitNotRunning(e, deadline)) return Status::ok();
    }
    if (!signalIfRunning(e, SIGKILL)) return Status::ok();
    if (!waitNotRunning(e, clock_->now() + kKillGrace)) {
      return Status::deadlineExceeded("container " + ref + " did not exit after SIGKILL");
    }
    return Status::ok();
  }

  Status killContainer(const std::string& ref, int sig) override {
    EntryPtr e;
    {
      std::lock_guard lk(mu_);
      ASSIGN_OR_RETURN(e, findLocked(ref));
      if (e->state != ContainerState::kRunning) {
        return Status::failedPrecondition("container " + ref + " is not running");
      }
    }
    if (sig <= 0 || sig >= NSIG) {
      return Status::invalidArgument("signal " + std::to_string(sig) + " is out of range");
    }
    signalIfRunning(e, sig);
    return Status::ok();
  }

  Status removeContainer(const std::string& ref, bool force) override {
    EntryPtr e;
    {
      std::lock_guard lk(mu_);
      ASSIGN_OR_RETURN(e, findLocked(ref));
      if (e->starting) return Status::failedPrecondition("container " + ref + " is starting");
      if (e->state == ContainerState::kRunning && !force) {
        return Status::failedPrecondition("container " + ref +
                                          " is running; stop it first or remove with force");
      }
    }
    if (force && signalIfRunning(e, SIGKILL) && !waitNotRunning(e, clock_->now() + kKillGrace)) {
      return Status::deadlineExceeded("container " + ref + " did not exit after SIGKILL");
    }
    std::string id;
    {
      std::lock_guard lk(mu_);
      if (e->removed) return Status::notFound("no such container: " + ref);
      if (e->state == ContainerState::kRunning) {
        return Status::failedPrecondition("container " + ref + " was started again");
      }
      e->removed = true;
      id = e->config.info.id;
      containers_.erase(id);
      unwatchLocked(e);
    }
    (void)cgroups_.destroy(id);
    Status s = discard(e->dir, id);
    (void)fs::removeAll(e->run_dir);  // a tmpfs: microseconds
    std::lock_guard lk(mu_);
    queueEventLocked(Event::Type::kDestroy, id, 0);
    return s;
  }

  Result<std::vector<ContainerInfo>> listContainers(const ListOptions& o) override {
    std::vector<ContainerInfo> out;
    std::lock_guard lk(mu_);
    for (const auto& [id, e] : containers_) {
      if (!o.all && e->state != ContainerState::kRunning) continue;
      bool match = true;
      for (const auto& [k, v] : o.labels) {
        auto it = e->config.info.labels.find(k);
        if (it == e->config.info.labels.end() || it->second != v) match = false;
      }
      if (match) out.push_back(e->info());
    }
    std::sort(out.begin(), out.end(),
              [](const ContainerInfo& a, const ContainerInfo& b) { return a.created > b.created; });
    return out;
  }

  Result<ContainerInfo> inspectContainer(const std::string& ref) override {
    std::lock_guard lk(mu_);
    ASSIGN_OR_RETURN(EntryPtr e, findLocked(ref));
    return e->info();
  }

  Result<ExitStatus> waitContainer(const std::string& ref,
                                   std::optional<Duration> timeout) override {
    EntryPtr e;
    {
      std::lock_guard lk(mu_);
      ASSIGN_OR_RETURN(e, findLocked(ref));
    }
    SteadyTime deadline = timeout ? clock_->now() + *timeout : SteadyTime::max();
    if (!waitNotRunning(e, deadline)) {
      return Status::deadlineExceeded("container " + ref + " still running after the timeout");
    }
    std::lock_guard lk(mu_);
    return ExitStatus{e->exit_code, e->oom_killed, e->finished};
  }

  Status readLogs(const std::string& ref, const LogOptions& options, const LogSink& sink) override {
    EntryPtr e;
    int max_files = 0;
    {
      std::lock_guard lk(mu_);
      ASSIGN_OR_RETURN(e, findLocked(ref));
      max_files = e->config.log.max_files;
    }
    CriReadControl control;
    control.finished = [this, e] {
      std::lock_guard lk(mu_);
      return e->removed || (!e->starting && e->state != ContainerState::kRunning);
    };
    return readCriLogs(e->dir + "/container.log", max_files, options, sink, control);
  }

  Result<Stats> stats(const std::string& ref) override {
    std::string id;
    {
      std::lock_guard lk(mu_);
      ASSIGN_OR_RETURN(EntryPtr e, findLocked(ref));
      if (e->state != ContainerState::kRunning) {
        Stats st;
        st.memory_limit_bytes = e->config.info.resources.memory_bytes;
        st.read_at = clock_->wallNow();
        return st;
      }
      id = e->config.info.id;
    }
    ASSIGN_OR_RETURN(Stats st, cgroups_.stats(id));
    st.read_at = clock_->wallNow();
    return st;
  }

  Result<SubscriptionPtr> subscribe(EventSink sink) override {
    std::lock_guard lk(sinks_mu_);
    uint64_t id = ++next_sink_;
    sinks_[id] = std::move(sink);
    return SubscriptionPtr(std::make_unique<SubscriptionImpl>(this, id));
  }

  void unsubscribe(uint64_t id) {
    std::lock_guard lk(sinks_mu_);  // waits for a sink call in progress on another thread
    sinks_.erase(id);
  }

 private:
  std::string runDir(const std::string& id) const { return options_.run_root + "/" + id; }

  // run_root holds what a host restart must forget: it should be a tmpfs (creating a
  // file there costs microseconds, on a journaled disk hundreds of them). When it is
  // not one, mount a small one on it, as /run is on a normal host.
  Status openRunRoot() {
    const std::string& rr = options_.run_root;
    if (rr.empty() || rr[0] != '/') {
      return Status::invalidArgument("light runtime run root '" + rr +
                                     "' must be an absolute path");
    }
    RETURN_IF_ERROR(fs::makeDirs(rr, 0711));
    struct statfs sfs {};
    if (::statfs(rr.c_str(), &sfs) == 0 && sfs.f_type == kTmpfsMagic) return Status::ok();
    if (::mount("tmpfs", rr.c_str(), "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC,
                "size=16m,mode=0711") == 0) {
      LOG_INFO("mounted a tmpfs for the light runtime's volatile state").kv("path", rr);
    } else {
      LOG_WARN("run root is not a tmpfs and one cannot be mounted; starts will be slower")
          .kv("path", rr)
          .kv("error", std::strerror(errno));
    }
    return Status::ok();
  }

  // Writes the container's bundle at `dir`: from a pre-created pool entry when one is
  // ready (one rename, and config.json written into the file that already exists), or
  // by creating each directory and file.
  Status writeBundle(const std::string& dir, const LaunchConfig& c) {
    std::string config = encodeLaunchConfig(c);
    bool pooled = takePoolEntry(dir);
    if (!pooled) {
      if (::mkdir(dir.c_str(), 0711) != 0) return Status::fromErrno(errno, "mkdir " + dir);
      for (const char* sub : {"/upper", "/work", "/merged"}) {
        std::string p = dir + sub;
        if (::mkdir(p.c_str(), 0755) != 0) return Status::fromErrno(errno, "mkdir " + p);
      }
    }
    if (c.rootfs_copy) {
      if (!deps_.materialize) return Status::failedPrecondition("no rootfs materializer");
      Status s = deps_.materialize(c.layers, dir + "/rootfs");
      if (!s.isOk()) return s.withContext("materialize rootfs");
    }
    if (!pooled) return replaceFile(dir + "/config.json", config);
    // The file is brand new and empty: no earlier content can be torn. A crash in the
    // middle leaves a garbled config.json, which recovery reports and skips.
    std::string path = dir + "/config.json";
    fs::UniqueFd fd(::open(path.c_str(), O_WRONLY | O_TRUNC | O_CLOEXEC));
    if (!fd.valid()) return Status::fromErrno(errno, "open " + path);
    return fs::writeAll(fd.get(), config);
  }

  // --- the pool of pre-created container dirs ---
  //
  // Creating an inode on the data dir's filesystem can cost hundreds of microseconds
  // (journaled ext4 on a slow disk); a container dir needs six. The reaper thread keeps
  // kPoolSize complete dirs under containers/.pool (built under a ".tmp-" name, then
  // renamed, so a listed entry is always complete) and create takes one with a rename.

  // Moves a ready pool entry to `dir`; false when there is none.
  bool takePoolEntry(const std::string& dir) {
    for (;;) {
      std::string name;
      {
        std::lock_guard lk(trash_mu_);
        if (pool_.empty()) {
          pool_pending_ = true;
          trash_cv_.notify_all();
          return false;
        }
        name = std::move(pool_.back());
        pool_.pop_back();
        pool_pending_ = true;
      }
      trash_cv_.notify_all();
      std::string from = pool_dir_ + "/" + name;
      if (::rename(from.c_str(), dir.c_str()) == 0) return true;
      // ENOENT: another runtime object on the same root took it.
    }
  }

  // Lists the pool (entries of an earlier process are reused) and moves half-built
  // entries of a crashed one to the trash.
  void scanPool() {
    DIR* d = ::opendir(pool_dir_.c_str());
    if (!d) return;
    std::vector<std::string> ready, partial;
    while (dirent* de = ::readdir(d)) {
      std::string n = de->d_name;
      if (n == "." || n == "..") continue;
      (n.starts_with(kPoolTmpPrefix) ? partial : ready).push_back(n);
    }
    ::closedir(d);
    for (const std::string& n : partial) {
      std::string from = pool_dir_ + "/" + n;
      std::string to = trash_dir_ + "/pool" + n;
      if (::rename(from.c_str(), to.c_str()) != 0) (void)fs::removeAll(from);
    }
    std::lock_guard lk(trash_mu_);
    pool_ = std::move(ready);
    pool_pending_ = true;
  }

  // Builds one pool entry; false when that fails (the pool then stays short; create
  // falls back to building its dir itself).
  bool addPoolEntry() {
    std::string name = crypto::randomHex(16);
    std::string tmp = pool_dir_ + "/" + kPoolTmpPrefix + name;
    auto build = [&]() -> Status {
      if (::mkdir(tmp.c_str(), 0711) != 0) return Status::fromErrno(errno, "mkdir " + tmp);
      for (const char* sub : {"/upper", "/work", "/merged"}) {
        std::string p = tmp + sub;
        if (::mkdir(p.c_str(), 0755) != 0) return Status::fromErrno(errno, "mkdir " + p);
      }
      // Modes as the runtime and the shim would create them.
      for (auto [file, mode] : {std::pair{"/config.json", 0644}, {"/container.log", 0640}}) {
        std::string p = tmp + file;
        fs::UniqueFd fd(::open(p.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode));
        if (!fd.valid()) return Status::fromErrno(errno, "create " + p);
      }
      std::string ready = pool_dir_ + "/" + name;
      if (::rename(tmp.c_str(), ready.c_str()) != 0) {
        return Status::fromErrno(errno, "rename " + tmp);
      }
      return Status::ok();
    };
    Status s = build();
    if (!s.isOk()) {
      (void)fs::removeAll(tmp);
      LOG_DEBUG("cannot add a container dir to the pool").kv("error", s.message());
      return false;
    }
    std::lock_guard lk(trash_mu_);
    pool_.push_back(name);
    return true;
  }

  void refillPool() {
    for (;;) {
      {
        std::lock_guard lk(trash_mu_);
        if (trash_stop_ || pool_.size() >= kPoolSize) return;
      }
      if (!addPoolEntry()) return;
    }
  }

  // Spawns edge-shim for the container in `dir`, runs `make_cgroups` meanwhile and lets
  // the shim attach the container to them when that succeeded (one byte on the shim's fd
  // 4; EOF makes it give up). On success `pid` is the container's first process and
  // `exit_fd` becomes readable when the shim is gone.
  Status spawnShim(const std::string& dir, const std::string& run_dir,
                   const std::vector<std::string>& cgroup_dirs,
                   const std::function<Status()>& make_cgroups, int* pid, fs::UniqueFd* exit_fd) {
    int p[2], g[2];
    if (::pipe2(p, O_CLOEXEC) != 0) return Status::fromErrno(errno, "pipe");
    fs::UniqueFd rd(p[0]), wr(p[1]);
    if (::pipe2(g, O_CLOEXEC) != 0) return Status::fromErrno(errno, "pipe");
    fs::UniqueFd ready_rd(g[0]), ready_wr(g[1]);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
    posix_spawn_file_actions_adddup2(&fa, wr.get(), 3);
    posix_spawn_file_actions_adddup2(&fa, ready_rd.get(), 4);
    posix_spawnattr_t attr;
    posix_spawnattr_init(&attr);
    sigset_t none, all;
    sigemptyset(&none);
    sigfillset(&all);
    sigdelset(&all, SIGKILL);
    sigdelset(&all, SIGSTOP);
    posix_spawnattr_setsigmask(&attr, &none);
    posix_spawnattr_setsigdefault(&attr, &all);
    posix_spawnattr_setflags(&attr,
                             POSIX_SPAWN_SETSID | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
    std::string shim = options_.shim_path;
    std::string arg0 = "edge-shim";
    std::string arg1 = dir;
    std::string arg2 = run_dir;
    std::vector<std::string> args = cgroup_dirs;
    std::vector<char*> argv = {arg0.data(), arg1.data(), arg2.data()};
    for (std::string& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    // The shim runs with an empty environment, except a trace file for start timing.
    std::string trace;
    if (const char* t = std::getenv("EDGE_LIGHT_TRACE"))
      trace = std::string("EDGE_LIGHT_TRACE=") + t;
    char* envp[] = {trace.empty() ? nullptr : trace.data(), nullptr};
    pid_t child = 0;
    int rc = ::posix_spawn(&child, shim.c_str(), &fa, &attr, argv.data(), envp);
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&attr);
    if (rc != 0) return Status::fromErrno(rc, "spawn " + shim);
    wr.reset();
    ready_rd.reset();
    Status cgroups = make_cgroups();
    if (cgroups.isOk()) {
      const char one = 1;
      if (::write(ready_wr.get(), &one, 1) != 1) cgroups = Status::fromErrno(errno, "tell shim");
    }
    ready_wr.reset();  // without the byte: the shim kills the container and reports
    std::string line;
    char buf[4096];
    SteadyTime deadline = std::chrono::steady_clock::now() + kShimReplyTimeout;
    while (line.find('\n') == std::string::npos) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          deadline - std::chrono::steady_clock::now());
      pollfd pfd{rd.get(), POLLIN, 0};
      int pr = left.count() > 0 ? ::poll(&pfd, 1, static_cast<int>(left.count())) : 0;
      if (pr < 0 && errno == EINTR) continue;
      if (pr == 0) {
        // A wedged setup (a hanging mount, say): end the shim's session. The child, still
        // before exec, dies with its parent (PR_SET_PDEATHSIG).
        ::kill(-child, SIGKILL);
        int st = 0;
        ::waitpid(child, &st, 0);
        return Status::deadlineExceeded("edge-shim did not report within " +
                                        std::to_string(kShimReplyTimeout.count()) + " s");
      }
      ssize_t n = ::read(rd.get(), buf, sizeof buf);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) break;
      line.append(buf, static_cast<size_t>(n));
    }
    // The spawned process forks the shim and exits at once; reap it only now, off the
    // path to the reply.
    int st = 0;
    while (::waitpid(child, &st, 0) < 0 && errno == EINTR) {
    }
    if (!cgroups.isOk()) return cgroups;
    if (line.empty()) {
      return Status::internal("edge-shim exited without reporting (status " + std::to_string(st) +
                              "); is " + shim + " the right binary?");
    }
    line = line.substr(0, line.find('\n'));
    if (line.starts_with("ok ")) {
      *pid = std::atoi(line.c_str() + 3);
      *exit_fd = std::move(rd);
      return Status::ok();
    }
    std::string msg = line.starts_with("err ") ? line.substr(4) : line;
    return Status::failedPrecondition(msg);
  }

  // Sends `sig` to the container's first process; false when it is not running.
  bool signalIfRunning(const EntryPtr& e, int sig) {
    std::lock_guard lk(mu_);
    if (e->state != ContainerState::kRunning || !e->pidfd.valid()) return false;
    if (pidfdSignal(e->pidfd.get(), sig) != 0 && errno == ESRCH) return false;
    return true;
  }

  // Whether the container's first process has a handler for `sig` (SigCgt in its status).
  bool catchesSignal(const EntryPtr& e, int sig) {
    int pid = 0;
    {
      std::lock_guard lk(mu_);
      if (e->state != ContainerState::kRunning) return true;
      pid = e->pid;
    }
    auto status = fs::readFile("/proc/" + std::to_string(pid) + "/status", 1 << 16);
    if (!status.isOk()) return true;
    size_t at = status->find("SigCgt:\t");
    if (at == std::string::npos) return true;
    uint64_t mask = std::strtoull(status->c_str() + at + 8, nullptr, 16);
    return (mask >> (sig - 1)) & 1;
  }

  bool waitNotRunning(const EntryPtr& e, SteadyTime deadline) {
    std::unique_lock lk(mu_);
    auto done = [&] {
      return e->removed || (!e->starting && e->state != ContainerState::kRunning);
    };
    if (deadline == SteadyTime::max()) {
      cv_.wait(lk, done);
      return true;
    }
    // cv_ waits on the steady clock; the runtime clock only sets the budget.
    auto budget = deadline - clock_->now();
    return cv_.wait_for(lk, budget, done);
  }

  Result<EntryPtr> findLocked(const std::string& ref) {
    if (ref.empty()) return Status::notFound("no such container: (empty reference)");
    auto it = containers_.find(ref);
    if (it != containers_.end()) return it->second;
    if (EntryPtr byName = findByNameLocked(ref.starts_with("/") ? ref.substr(1) : ref)) {
      return byName;
    }
    EntryPtr found;
    for (const auto& [id, e] : containers_) {
      if (id.starts_with(ref)) {
        if (found) {
          return Status::invalidArgument("container reference '" + ref +
                                         "' matches several containers; give more of the id");
        }
        found = e;
      }
    }
    if (!found) return Status::notFound("no such container: " + ref);
    return found;
  }

  EntryPtr findByNameLocked(const std::string& name) {
    for (const auto& [id, e] : containers_) {
      if (!name.empty() && e->config.info.name == name) return e;
    }
    return nullptr;
  }

  // --- exit watching and events ---

  void watchLocked(const EntryPtr& e) {
    if (!e->exit_fd.valid()) return;
    epoll_event ev{};
    ev.events = EPOLLIN | EPOLLHUP;
    ev.data.fd = e->exit_fd.get();
    watched_[e->exit_fd.get()] = e;
    ::epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, e->exit_fd.get(), &ev);
  }

  void unwatchLocked(const EntryPtr& e) {
    if (!e->exit_fd.valid()) return;
    ::epoll_ctl(epoll_.get(), EPOLL_CTL_DEL, e->exit_fd.get(), nullptr);
    watched_.erase(e->exit_fd.get());
    e->exit_fd.reset();
  }

  // The shim of `e` is gone: take the exit status it recorded.
  void finishLocked(EntryPtr e) {  // by value: unwatching erases the map slot
    unwatchLocked(e);
    e->pidfd.reset();
    if (e->state != ContainerState::kRunning) return;
    e->state = ContainerState::kExited;
    auto text = fs::readFile(e->run_dir + "/exit.json");
    auto ex = text.isOk() ? decodeExit(*text) : Result<ExitRecord>(text.status());
    if (ex.isOk()) {
      e->exit_code = ex->exit_code;
      e->oom_killed = ex->oom_killed;
      e->finished = ex->finished;
    } else {
      e->exit_code = 255;
      e->finished = clock_->wallNow();
      e->error = "edge-shim died without recording an exit status";
    }
    if (e->oom_killed) queueEventLocked(Event::Type::kOom, e->config.info.id, 0);
    queueEventLocked(Event::Type::kExit, e->config.info.id, e->exit_code);
    cv_.notify_all();
  }

  void queueEventLocked(Event::Type type, const std::string& id, int exit_code) {
    Event ev;
    ev.type = type;
    ev.container_id = id;
    ev.exit_code = exit_code;
    ev.time = clock_->wallNow();
    events_.push_back(std::move(ev));
    wake();
  }

  void wake() {
    uint64_t one = 1;
    if (wake_.valid()) (void)!::write(wake_.get(), &one, sizeof one);
  }

  void watchLoop() {
    while (!stop_.load()) {
      epoll_event evs[16];
      int n = ::epoll_wait(epoll_.get(), evs, 16, -1);
      if (n < 0 && errno != EINTR) break;
      std::deque<Event> pending;
      {
        std::lock_guard lk(mu_);
        for (int i = 0; i < n; ++i) {
          int fd = evs[i].data.fd;
          if (fd == wake_.get()) {
            uint64_t v;
            (void)!::read(fd, &v, sizeof v);
            continue;
          }
          auto it = watched_.find(fd);
          if (it != watched_.end()) finishLocked(it->second);
        }
        pending.swap(events_);
      }
      if (pending.empty()) continue;
      std::lock_guard lk(sinks_mu_);
      for (const Event& ev : pending) {
        std::vector<uint64_t> ids;
        for (const auto& [id, s] : sinks_) ids.push_back(id);
        for (uint64_t id : ids) {
          auto it = sinks_.find(id);
          if (it == sinks_.end()) continue;
          EventSink sink = it->second;
          sink(ev);
        }
      }
    }
  }

  // --- removal ---

  // Moves a container dir out of sight with one rename and deletes it in the background:
  // unlinking a dozen files costs tens of milliseconds on a busy journaled disk, which
  // a caller of remove must not wait for. The trash is emptied again at the next open.
  Status discard(const std::string& dir, const std::string& id) {
    std::string target = trash_dir_ + "/" + id;
    if (::rename(dir.c_str(), target.c_str()) != 0) {
      if (errno == ENOENT) return Status::ok();
      return fs::removeAll(dir);
    }
    {
      std::lock_guard lk(trash_mu_);
      trash_pending_ = true;
    }
    trash_cv_.notify_all();
    return Status::ok();
  }

  // The background thread: refills the pool of container dirs and empties the trash.
  void reapLoop() {
    // Not at a lower CPU priority: a starved thread holding an ext4 journal handle stalls
    // every other inode operation on the disk, the overlay mount of a start among them.
    std::unique_lock lk(trash_mu_);
    for (;;) {
      trash_cv_.wait(lk, [&] { return trash_pending_ || pool_pending_ || trash_stop_; });
      if (trash_stop_) return;
      bool refill = pool_pending_, empty = trash_pending_;
      pool_pending_ = trash_pending_ = false;
      lk.unlock();
      // The pool first: the next create waits for it, nobody waits for the trash.
      if (refill) refillPool();
      if (empty) emptyTrash();
      lk.lock();
    }
  }

  void emptyTrash() {
    DIR* d = ::opendir(trash_dir_.c_str());
    if (!d) return;
    std::vector<std::string> names;
    while (dirent* de = ::readdir(d)) {
      if (std::strcmp(de->d_name, ".") != 0 && std::strcmp(de->d_name, "..") != 0) {
        names.push_back(de->d_name);
      }
    }
    ::closedir(d);
    for (const std::string& n : names) {
      std::string path = trash_dir_ + "/" + n;
      Status s = fs::removeAll(path);
      // Another runtime object on the same root may be emptying the trash too.
      if (!s.isOk() && fs::exists(path)) {
        LOG_WARN("cannot delete removed container").kv("error", s.message());
      }
    }
  }

  // --- recovery ---

  // Run dirs whose container dir is gone (removed while this runtime was not running, or
  // a crash between the two removals). Young ones are left alone: another process on
  // the same data dir may be creating that container right now.
  void removeOrphanRunDirs(const std::vector<std::string>& ids) {
    std::set<std::string> known(ids.begin(), ids.end());
    DIR* d = ::opendir(options_.run_root.c_str());
    if (!d) return;
    std::vector<std::string> orphans;
    while (dirent* de = ::readdir(d)) {
      std::string name = de->d_name;
      if (isHexId(name) && !known.count(name)) orphans.push_back(name);
    }
    ::closedir(d);
    time_t now = ::time(nullptr);
    for (const std::string& id : orphans) {
      struct stat st {};
      std::string path = runDir(id);
      if (::stat(path.c_str(), &st) != 0 || now - st.st_mtime < 60) continue;
      if (fs::removeAll(path).isOk()) LOG_INFO("removed an orphaned run dir").kv("id", id);
    }
  }

  void recover() {
    {
      std::lock_guard lk(trash_mu_);
      trash_pending_ = true;  // leftovers of a previous process
    }
    DIR* d = ::opendir(containers_dir_.c_str());
    if (!d) return;
    std::vector<std::string> ids;
    while (dirent* de = ::readdir(d)) {
      std::string name = de->d_name;
      if (isHexId(name)) ids.push_back(name);
    }
    ::closedir(d);
    std::lock_guard lk(mu_);
    for (const std::string& id : ids) {
      std::string dir = containers_dir_ + "/" + id;
      std::string run_dir = runDir(id);
      auto text = fs::readFile(dir + "/config.json");
      auto cfg = text.isOk() ? decodeLaunchConfig(*text) : Result<LaunchConfig>(text.status());
      if (!cfg.isOk() || cfg->info.id != id) {
        LOG_WARN("skipping unreadable container")
            .kv("id", id)
            .kv("error", cfg.isOk() ? std::string("id mismatch") : cfg.status().message());
        continue;
      }
      // The run dir is made at create; without it run_root was emptied by a reboot.
      bool host_restarted = !fs::isDirectory(run_dir);
      std::optional<StateRecord> state;
      if (auto st = fs::readFile(run_dir + "/state.json"); st.isOk()) {
        auto dec = decodeState(*st);
        if (dec.isOk()) state = *dec;
      }
      std::optional<ExitRecord> exit;
      if (auto ex = fs::readFile(run_dir + "/exit.json"); ex.isOk()) {
        auto dec = decodeExit(*ex);
        if (dec.isOk()) exit = *dec;
      }
      bool alive = state && processMatches(state->shim_pid, state->shim_start);
      fs::UniqueFd shim_fd, pidfd;
      if (alive) {
        shim_fd.reset(pidfdOpen(state->shim_pid));
        // Re-check after opening: the pidfd now pins the process we verified.
        alive = shim_fd.valid() && processMatches(state->shim_pid, state->shim_start);
        if (alive && processMatches(state->pid, state->pid_start)) {
          pidfd.reset(pidfdOpen(state->pid));
        }
      }
      Recovered r = recoverContainer(state, exit, alive, host_restarted);
      if (host_restarted) {
        // Recorded, so that the next open does not take the container for a new one.
        StateRecord st;
        st.state = r.state;
        st.error = r.error;
        st.exit_code = r.exit_code;
        if (::mkdir(run_dir.c_str(), 0711) != 0 ||
            !replaceFile(run_dir + "/state.json", encodeState(st)).isOk()) {
          LOG_WARN("cannot record the state of a container after a host restart")
              .kv("id", id)
              .kv("error", std::strerror(errno));
        }
      }
      auto e = std::make_shared<Entry>();
      e->dir = dir;
      e->run_dir = run_dir;
      e->config = std::move(cfg).value();
      e->state = r.state;
      e->exit_code = r.exit_code;
      e->oom_killed = r.oom_killed;
      e->finished = r.finished;
      e->error = r.error;
      if (state) {
        e->pid = state->pid;
        e->started = state->started;
      }
      if (r.adopt) {
        e->exit_fd = std::move(shim_fd);
        e->pidfd = std::move(pidfd);
        watchLocked(e);
      }
      containers_[id] = std::move(e);
    }
    removeOrphanRunDirs(ids);
  }

  friend class SubscriptionImpl;

  LightRuntimeOptions options_;
  LightRuntimeDeps deps_;
  ClockPtr clock_;
  CgroupManager cgroups_;
  std::string containers_dir_;
  std::string pool_dir_;
  std::string trash_dir_;
  std::string seccomp_path_;
  bool copy_rootfs_ = false;

  std::mutex trash_mu_;
  std::condition_variable trash_cv_;
  bool trash_pending_ = false;
  bool trash_stop_ = false;
  std::vector<std::string> pool_;  // ready entries of pool_dir_ (guarded by trash_mu_)
  bool pool_pending_ = false;
  std::thread reaper_;

  std::mutex mu_;
  std::condition_variable cv_;
  std::map<std::string, EntryPtr> containers_;
  std::set<std::string> reserved_names_;
  std::map<int, EntryPtr> watched_;
  std::deque<Event> events_;

  std::recursive_mutex sinks_mu_;
  std::map<uint64_t, EventSink> sinks_;
  uint64_t next_sink_ = 0;

  fs::UniqueFd epoll_;
  fs::UniqueFd wake_;
  std::atomic<bool> stop_{false};
  std::thread watcher_;
};

SubscriptionImpl::~SubscriptionImpl() {
  rt_->unsubscribe(id_);
}

}  // namespace

Status checkHostSupport(uid_t euid, bool check_namespaces, const std::string& mountinfo_path) {
  if (euid != 0) {
    return Status::failedPrecondition(
        "the light runtime needs root (effective uid 0) to create namespaces, mounts and "
        "cgroups; running as uid " +
        std::to_string(euid));
  }
  if (check_namespaces) {
    std::string missing;
    for (const char* ns : {"pid", "mnt", "uts", "ipc", "net"}) {
      if (::access((std::string("/proc/self/ns/") + ns).c_str(), F_OK) != 0) {
        missing += missing.empty() ? ns : std::string(", ") + ns;
      }
    }
    if (!missing.empty()) {
      return Status::failedPrecondition("the kernel lacks namespaces the light runtime needs: " +
                                        missing);
    }
  }
  auto mi = fs::readFile(mountinfo_path);
  if (!mi.isOk()) return Status::failedPrecondition("cannot read " + mountinfo_path);
  return parseCgroupLayout(*mi).status();
}

Result<ContainerRuntimePtr> openLightRuntimeWith(const LightRuntimeOptions& options,
                                                 LightRuntimeDeps deps) {
  if (options.root.empty() || options.root[0] != '/') {
    return Status::invalidArgument("light runtime root '" + options.root +
                                   "' must be an absolute path");
  }
  uid_t euid = deps.euid ? deps.euid() : ::geteuid();
  if (euid != 0 || deps.check_host) {
    RETURN_IF_ERROR(checkHostSupport(euid, deps.check_host, deps.mountinfo_path));
  }
  auto mi = fs::readFile(deps.mountinfo_path);
  if (!mi.isOk()) return mi.status();
  ASSIGN_OR_RETURN(CgroupLayout layout, parseCgroupLayout(*mi));
  if (!deps.images) return Status::invalidArgument("light runtime: no image store given");
  auto rt = std::make_unique<LightRuntime>(options, std::move(deps), std::move(layout));
  RETURN_IF_ERROR(rt->init());
  return ContainerRuntimePtr(std::move(rt));
}

}  // namespace edge::runtime::light
