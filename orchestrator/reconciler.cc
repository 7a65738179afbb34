#include "orchestrator/reconciler.h"

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>

#include "common/log.h"

namespace edge::orchestrator {
namespace {

using runtime::ContainerState;

bool defaultPortFree(int port) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_ANY);
  bool ok = ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
  ::close(fd);
  return ok;
}

std::string portKey(const PortSpec& p) {
  return p.name.empty() ? std::to_string(p.container_port) : p.name;
}

std::string formatPorts(const std::map<std::string, int>& ports) {
  std::string out;
  for (const auto& [k, v] : ports) {
    if (!out.empty()) out += ',';
    out += k + "=" + std::to_string(v);
  }
  return out;
}

std::map<std::string, int> parsePorts(const std::string& text) {
  std::map<std::string, int> out;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t comma = text.find(',', pos);
    std::string item =
        text.substr(pos, comma == std::string::npos ? std::string::npos : comma - pos);
    size_t eq = item.find('=');
    if (eq != std::string::npos) {
      int port = std::atoi(item.c_str() + eq + 1);
      if (port > 0 && port < 65536) out[item.substr(0, eq)] = port;
    }
    if (comma == std::string::npos) break;
    pos = comma + 1;
  }
  return out;
}

bool hasStaticPort(const ServiceManifest& m) {
  return std::any_of(m.ports.begin(), m.ports.end(),
                     [](const PortSpec& p) { return p.container_port != 0; });
}

std::string secondsText(Duration d) {
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(d).count();
  if (ms < 1000) return std::to_string(ms) + "ms";
  return std::to_string((ms + 999) / 1000) + "s";
}

}  // namespace

struct Reconciler::Observed {
  runtime::ContainerInfo info;
  std::string service;
  int replica = -1;
  int64_t generation = 0;
  std::map<std::string, int> ports;
};

// What the container itself says about an instance; the reconciler adds readiness,
// health and messages.
InstanceStatus Reconciler::baseStatus(const Observed& o) {
  InstanceStatus st;
  st.id = o.info.id;
  st.name = o.info.name;
  st.service = o.service;
  st.replica = o.replica;
  st.generation = o.generation;
  st.image = o.info.image;
  st.state = o.info.state;
  st.ports = o.ports;
  st.started = o.info.started;
  st.finished = o.info.finished;
  st.exit_code = o.info.exit_code;
  return st;
}

struct Reconciler::Memory {
  WallTime started_wall{};  // the start the fields below refer to
  SteadyTime started_steady{};
  int restarts = 0;       // since edged started
  int backoff_count = 0;  // restarts without a long enough run in between
  std::optional<SteadyTime> retry_at;
  bool crashloop_reported = false;
  bool force_restart = false;  // unhealthy, or a restart was asked: restart whatever the policy
  bool restart_done = false;   // the requested restart (restart_requested) happened
  std::optional<ContainerState> last_state;
  std::string message;
};

Reconciler::Reconciler(runtime::ContainerRuntime& runtime, Clock& clock, HealthMonitor& health,
                       EventLog& events, ReconcilerOptions options)
    : runtime_(runtime),
      clock_(clock),
      health_(health),
      events_(events),
      options_(std::move(options)) {
  if (!options_.port_free) options_.port_free = defaultPortFree;
  if (!options_.run_async) {
    options_.run_async = [](std::function<void()> fn) { std::thread(std::move(fn)).detach(); };
  }
}

Reconciler::~Reconciler() {
  stop();
  // Detached stop/remove workers reference this object: let them finish.
  while (async_in_flight_.load() > 0) ::usleep(10'000);
}

void Reconciler::setDesired(std::vector<DesiredService> services) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    desired_ = std::move(services);
    have_desired_ = true;
    woken_ = true;
  }
  cv_.notify_all();
}

void Reconciler::activate(const std::string& service) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!active_.insert(service).second) return;
    woken_ = true;
  }
  cv_.notify_all();
}

void Reconciler::deactivate(const std::string& service) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (active_.erase(service) == 0) return;
    woken_ = true;
  }
  cv_.notify_all();
}

bool Reconciler::isActive(const std::string& service) const {
  std::lock_guard<std::mutex> lock(mu_);
  return active_.count(service) != 0;
}

void Reconciler::wake() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    woken_ = true;
  }
  cv_.notify_all();
}

void Reconciler::start() {
  std::lock_guard<std::mutex> lock(mu_);
  if (thread_.joinable()) return;
  stopping_ = false;
  auto sub = runtime_.subscribe([this](const runtime::Event& e) {
    if (e.type == runtime::Event::Type::kExit || e.type == runtime::Event::Type::kOom ||
        e.type == runtime::Event::Type::kDestroy)
      wake();
  });
  if (sub.isOk()) {
    subscription_ = std::move(*sub);
  } else {
    LOG_WARN("runtime events unavailable; reconciling on the tick only")
        .kv("error", sub.status().toString());
  }
  thread_ = std::thread([this] {
    for (;;) {
      {
        std::unique_lock<std::mutex> lock(mu_);
        if (stopping_) return;
      }
      Status s = reconcileOnce();
      if (!s.isOk()) LOG_WARN("reconcile pass failed").kv("error", s.toString());
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait_for(lock, options_.tick, [&] { return stopping_ || woken_; });
      if (stopping_) return;
      woken_ = false;
    }
  });
}

bool Reconciler::waitForRemovals(Duration limit) {
  SteadyTime deadline = std::chrono::steady_clock::now() + limit;
  while (async_in_flight_.load() > 0) {
    if (std::chrono::steady_clock::now() >= deadline) return false;
    ::usleep(20'000);
  }
  return true;
}

void Reconciler::stop() {
  std::thread t;
  runtime::SubscriptionPtr sub;
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
    t = std::move(thread_);
    sub = std::move(subscription_);
  }
  cv_.notify_all();
  sub.reset();
  if (t.joinable()) t.join();
}

std::vector<ServiceStatus> Reconciler::services() const {
  std::lock_guard<std::mutex> lock(mu_);
  return service_status_;
}

std::optional<ServiceStatus> Reconciler::service(const std::string& name) const {
  std::lock_guard<std::mutex> lock(mu_);
  for (const auto& s : service_status_)
    if (s.name == name) return s;
  return std::nullopt;
}

std::vector<InstanceStatus> Reconciler::instances() const {
  std::lock_guard<std::mutex> lock(mu_);
  return instance_status_;
}

SteadyTime Reconciler::toSteady(WallTime t) const {
  auto age = clock_.wallNow() - t;
  return clock_.now() - std::chrono::duration_cast<Duration>(age);
}

Duration Reconciler::backoffFor(int n) const {
  Duration d = options_.backoff_initial;
  for (int i = 0; i < n && d < options_.backoff_max; ++i) d *= 2;
  return std::min(d, options_.backoff_max);
}

int Reconciler::allocatePort(std::set<int>& used) {
  int span = options_.port_range_last - options_.port_range_first + 1;
  for (int i = 0; i < span; ++i) {
    int port = options_.port_range_first + (port_cursor_ + i) % span;
    if (used.count(port) != 0) continue;
    if (!options_.port_free(port)) continue;
    port_cursor_ = (port_cursor_ + i + 1) % span;
    used.insert(port);
    return port;
  }
  return 0;
}

Status Reconciler::reconcileOnce() {
  std::lock_guard<std::mutex> pass_lock(pass_mu_);
  std::vector<DesiredService> desired;
  std::set<std::string> busy;
  bool first;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!have_desired_) return Status::ok();
    desired = desired_;
    busy = busy_;
    first = first_pass_;
    for (auto& d : desired)
      d.dormant = d.manifest.lifecycle.mode == Lifecycle::Mode::kOnDemand &&
                  active_.count(d.manifest.name) == 0;
  }

  runtime::ListOptions lo;
  lo.all = true;
  lo.labels[runtime::kManagedLabel] = "true";
  if (!options_.node_id.empty()) lo.labels[kNodeLabel] = options_.node_id;
  auto listed = runtime_.listContainers(lo);
  if (!listed.isOk()) return listed.status();

  std::map<std::string, std::vector<Observed>> by_service;
  std::set<int> used_ports;
  std::set<std::string> seen_ids;
  for (auto& info : *listed) {
    seen_ids.insert(info.id);
    Observed o;
    o.info = std::move(info);
    auto get = [&](const char* key) -> std::string {
      auto it = o.info.labels.find(key);
      return it == o.info.labels.end() ? std::string() : it->second;
    };
    o.service = get(kServiceLabel);
    std::string replica = get(kReplicaLabel);
    std::string gen = get(kGenerationLabel);
    o.replica = replica.empty() ? -1 : std::atoi(replica.c_str());
    o.generation = gen.empty() ? 0 : std::atoll(gen.c_str());
    o.ports = parsePorts(get(kPortsLabel));
    for (const auto& [_, p] : o.ports) used_ports.insert(p);
    if (first && o.info.state == ContainerState::kRunning && !o.service.empty())
      events_.append("instance.adopted", o.service, o.info.name,
                     "still running from before edged started");
    by_service[o.service].push_back(std::move(o));
  }

  std::vector<InstanceStatus> inst_status;
  std::vector<ServiceStatus> svc_status;
  std::set<std::string> desired_names;
  for (const auto& d : desired) {
    desired_names.insert(d.manifest.name);
    ServiceStatus ss;
    auto& mine = by_service[d.manifest.name];
    std::vector<Observed> active;
    std::set<int> busy_replicas;  // a replica whose instance is being stopped waits for it
    for (auto& o : mine) {
      if (busy.count(o.info.id) == 0)
        active.push_back(o);
      else
        busy_replicas.insert(o.replica);
    }
    reconcileService(d, active, busy_replicas, used_ports, inst_status, ss);
    // Instances being stopped still show, so nobody wonders where they went.
    for (auto& o : mine) {
      if (busy.count(o.info.id) == 0) continue;
      InstanceStatus st = baseStatus(o);
      st.message = "stopping";
      inst_status.push_back(std::move(st));
    }
    svc_status.push_back(std::move(ss));
  }

  // Managed containers of services nobody wants any more (deleted, or labels we cannot
  // read) go away.
  // They stay listed until they are gone, so `edgectl get instances` never shows a
  // deletion as done while containers still stop.
  for (auto& [service, list] : by_service) {
    if (desired_names.count(service) != 0) continue;
    for (auto& o : list) {
      if (busy.count(o.info.id) == 0)
        removeAsync(o, service.empty() ? "managed container without a service label"
                                       : "service " + service + " is no longer desired");
      InstanceStatus st = baseStatus(o);
      st.message = "removing";
      inst_status.push_back(std::move(st));
    }
  }

  std::set<std::string> running;
  for (const auto& st : inst_status)
    if (st.state == ContainerState::kRunning) running.insert(st.id);
  health_.retainOnly(running);
  for (auto it = memory_.begin(); it != memory_.end();)
    it = seen_ids.count(it->first) == 0 ? memory_.erase(it) : std::next(it);

  std::sort(svc_status.begin(), svc_status.end(),
            [](const auto& a, const auto& b) { return a.name < b.name; });
  std::sort(inst_status.begin(), inst_status.end(), [](const auto& a, const auto& b) {
    return std::tie(a.service, a.replica, a.generation, a.name) <
           std::tie(b.service, b.replica, b.generation, b.name);
  });
  {
    std::lock_guard<std::mutex> lock(mu_);
    service_status_ = std::move(svc_status);
    instance_status_ = std::move(inst_status);
    first_pass_ = false;
  }
  passes_.fetch_add(1);
  return Status::ok();
}

void Reconciler::reconcileService(const DesiredService& d, std::vector<Observed>& mine,
                                  const std::set<int>& busy_replicas, std::set<int>& used_ports,
                                  std::vector<InstanceStatus>& out_inst, ServiceStatus& ss) {
  const ServiceManifest& m = d.manifest;
  const int n = d.dormant ? 0 : m.replicas;
  const bool recreate = hasStaticPort(m);
  ss.name = m.name;
  ss.generation = d.generation;
  ss.desired = n;

  std::map<int, std::vector<Observed*>> by_replica;
  for (auto& o : mine) {
    if (o.replica < 0 || o.replica >= n) {
      removeAsync(o, o.replica < 0 ? "instance without a replica label" : "scaled down");
      continue;
    }
    by_replica[o.replica].push_back(&o);
  }

  // Readiness of each replica's current instance decides how far a rollout may go.
  struct Slot {
    Observed* cur = nullptr;
    std::vector<Observed*> olds;
    bool ready = false;
  };
  std::vector<Slot> slots(static_cast<size_t>(n));
  for (int r = 0; r < n; ++r) {
    Slot& s = slots[r];
    for (Observed* o : by_replica[r]) {
      if (o->generation != d.generation) {
        s.olds.push_back(o);
      } else if (s.cur == nullptr || o->info.created > s.cur->info.created) {
        if (s.cur != nullptr) removeAsync(*s.cur, "duplicate instance");
        s.cur = o;
      } else {
        removeAsync(*o, "duplicate instance");
      }
    }
  }

  std::string first_problem;  // something is wrong
  std::string pending_note;   // something is not there yet
  bool any_crashloop = false;
  bool any_restart_in_progress = false;
  for (int r = 0; r < n; ++r) {
    Slot& s = slots[r];
    if (s.cur != nullptr) {
      InstanceStatus st;
      s.ready = manageInstance(d, *s.cur, st);
      if (st.crashloop) any_crashloop = true;
      bool problem = st.state != ContainerState::kRunning || st.health == Health::kUnhealthy;
      if (!s.ready && problem && first_problem.empty() && !st.message.empty())
        first_problem = st.name + ": " + st.message;
      if (!s.ready && pending_note.empty() && !st.message.empty())
        pending_note = st.name + ": " + st.message;
      if (st.state == ContainerState::kRunning) ss.running++;
      if (s.ready) ss.ready++;
      ss.updated++;
      out_inst.push_back(std::move(st));
    }
    bool counted = s.ready;
    for (Observed* o : s.olds) {
      InstanceStatus st;
      // An old instance still serves until its replacement is ready: it counts as ready.
      st.ready = manageInstance(d, *o, st);
      if (st.ready && !counted) {
        ss.ready++;
        counted = true;
      }
      if (st.state == ContainerState::kRunning) ss.running++;
      st.message = "old generation " + std::to_string(o->generation) +
                   (st.message.empty() ? "" : "; " + st.message);
      out_inst.push_back(std::move(st));
    }
  }

  // Rollout: at most one replica is between generations at a time (max surge 1).
  int in_flight = 0;
  for (const Slot& s : slots)
    if (!s.olds.empty() && s.cur != nullptr && !s.ready) in_flight++;
  for (int r = 0; r < n; ++r) {
    Slot& s = slots[r];
    if (s.cur != nullptr) {
      if (s.ready && !s.olds.empty()) {
        for (Observed* o : s.olds)
          removeAsync(*o, "replaced by generation " + std::to_string(d.generation));
        if (std::all_of(slots.begin(), slots.end(),
                        [&](const Slot& x) { return &x == &s || x.olds.empty(); }))
          events_.append("rollout.finished", m.name, "",
                         "generation " + std::to_string(d.generation) + " serves every replica");
      }
      continue;
    }
    // Its instance is being stopped (a restart, or the old generation of a static-port
    // service): a new one now would collide on the name or the port.
    if (busy_replicas.count(r) != 0) continue;
    if (!s.olds.empty()) {
      if (in_flight > 0) continue;
      if (recreate) {
        // The old instance holds the static port: stop it first, create next pass.
        for (Observed* o : s.olds)
          removeAsync(*o, "replaced by generation " + std::to_string(d.generation));
        in_flight++;
        continue;
      }
      events_.append(
          "rollout.started", m.name, "",
          "replica " + std::to_string(r) + " to generation " + std::to_string(d.generation));
      in_flight++;
    }
    // A replica that cannot be created (image missing, name taken, no port) is retried
    // with the same back-off as a crash, and reported once per distinct reason.
    std::string key = m.name + "/" + std::to_string(r);
    auto failed = create_failures_.find(key);
    if (failed != create_failures_.end() && clock_.now() < failed->second.retry_at) {
      if (first_problem.empty()) first_problem = failed->second.message;
      continue;
    }
    Status st = createInstance(d, r, used_ports);
    if (st.isOk()) {
      create_failures_.erase(key);
      continue;
    }
    CreateFailure& f = create_failures_[key];
    if (f.message != st.message()) {
      events_.append("instance.failed", m.name, "",
                     "replica " + std::to_string(r) + ": " + st.message());
      f.message = st.message();
    }
    f.retry_at = clock_.now() + backoffFor(f.count++);
    if (first_problem.empty()) first_problem = st.message();
  }

  // `edgectl restart`: one ready replica at a time, in place.
  if (d.restart_requested) {
    for (int r = 0; r < n; ++r) {
      Slot& s = slots[r];
      if (s.cur == nullptr) continue;
      auto& mem = memory_[s.cur->info.id];
      if (!mem) continue;
      bool needs = s.cur->info.state == ContainerState::kRunning &&
                   s.cur->info.started < *d.restart_requested && !mem->restart_done;
      if (!needs) continue;
      any_restart_in_progress = true;
      bool others_ready = std::all_of(slots.begin(), slots.end(), [&](const Slot& x) {
        return &x == &s || x.cur == nullptr || x.ready;
      });
      if (!others_ready) break;
      mem->restart_done = true;
      mem->force_restart = true;
      stopForRestartAsync(*s.cur, "restart requested");
      break;
    }
  }

  bool olds_left =
      std::any_of(slots.begin(), slots.end(), [](const Slot& s) { return !s.olds.empty(); });
  bool all_completed = n > 0 && std::all_of(slots.begin(), slots.end(), [&](const Slot& s) {
                         return s.cur != nullptr && s.cur->info.state == ContainerState::kExited &&
                                s.cur->info.exit_code == 0 &&
                                m.restart_policy != RestartPolicy::kAlways;
                       });
  if (n == 0 && d.dormant) {
    ss.state = "idle";  // on-demand, waiting for its first call
    ss.message = "on-demand: started by the gateway on the next call";
  } else if (n == 0) {
    ss.state = "stopped";
  } else if (all_completed) {
    ss.state = "completed";
  } else if (any_crashloop) {
    ss.state = "crashloop";
  } else if (ss.ready == n && !olds_left && !any_restart_in_progress) {
    ss.state = "running";
  } else if (olds_left || any_restart_in_progress) {
    ss.state = "progressing";
  } else if (!first_problem.empty()) {
    ss.state = "degraded";
  } else {
    ss.state = "progressing";
  }
  if (ss.state != "running" && ss.state != "stopped")
    ss.message = !first_problem.empty() ? first_problem : pending_note;
  if (olds_left && any_crashloop)
    ss.message =
        "rollout held: the new generation is crash-looping; the previous one "
        "keeps serving (" +
        first_problem + ")";
}

bool Reconciler::manageInstance(const DesiredService& d, Observed& o, InstanceStatus& st) {
  const ServiceManifest& m = d.manifest;
  auto& slot = memory_[o.info.id];
  if (!slot) slot = std::make_unique<Memory>();
  Memory& mem = *slot;
  SteadyTime now = clock_.now();

  st = baseStatus(o);

  bool current = o.generation == d.generation;
  auto prev = mem.last_state;
  mem.last_state = o.info.state;

  switch (o.info.state) {
    case ContainerState::kRunning: {
      if (mem.started_wall != o.info.started) {
        mem.started_wall = o.info.started;
        // Converted once: now() and wallNow() are read at different instants, and a
        // start time that moved by nanoseconds would look like a restart to the monitor.
        mem.started_steady = toSteady(o.info.started);
        if (prev && *prev != ContainerState::kRunning)
          events_.append("instance.started", o.service, o.info.name, "");
      }
      mem.retry_at.reset();
      mem.message.clear();
      SteadyTime started = mem.started_steady;
      if (now - started >= options_.backoff_reset_after) {
        mem.backoff_count = 0;
        mem.crashloop_reported = false;
      }
      bool ready;
      if (m.health_check && current) {
        ProbeTarget target{.pid = o.info.pid, .port = 0};
        const HealthCheck& hc = *m.health_check;
        std::string key = !hc.port_name.empty() ? hc.port_name : std::to_string(hc.port);
        auto it = o.ports.find(key);
        target.port = it != o.ports.end() ? it->second : hc.port;
        health_.track(o.info.id, hc, target, started);
        HealthState hs = health_.state(o.info.id);
        st.health = hs.health;
        ready = hs.health == Health::kHealthy;
        if (hs.health == Health::kUnhealthy) {
          st.message = "unhealthy: " + hs.detail;
          if (m.restart_policy != RestartPolicy::kNever && !mem.force_restart) {
            events_.append("instance.unhealthy", o.service, o.info.name, hs.detail);
            mem.force_restart = true;
            stopForRestartAsync(o, "unhealthy: " + hs.detail);
          }
        } else if (!ready) {
          st.message = hs.detail.empty() ? "waiting for the first health check"
                                         : "not healthy yet: " + hs.detail;
        }
      } else {
        ready = now - started >= options_.min_ready;
        if (!ready) st.message = "starting";
      }
      st.state = ContainerState::kRunning;
      st.ready = ready;
      st.restarts = mem.restarts;
      return ready;
    }
    case ContainerState::kCreated:
    case ContainerState::kExited: {
      bool exited = o.info.state == ContainerState::kExited;
      st.state = o.info.state;
      st.restarts = mem.restarts;
      if (exited && prev && *prev == ContainerState::kRunning)
        events_.append("instance.exited", o.service, o.info.name,
                       "exit code " + std::to_string(o.info.exit_code) +
                           (o.info.oom_killed ? " (out of memory)" : ""));
      if (!current && exited) {
        st.message = "exited";
        return false;  // old generations are replaced, not restarted
      }
      bool restart = !exited;
      if (exited) {
        bool failed = o.info.exit_code != 0 || o.info.oom_killed;
        switch (m.restart_policy) {
          case RestartPolicy::kAlways:
            restart = true;
            break;
          case RestartPolicy::kOnFailure:
            restart = failed || mem.force_restart;
            break;
          case RestartPolicy::kNever:
            restart = false;
            break;
        }
      }
      if (!restart) {
        st.message = "exited with code " + std::to_string(o.info.exit_code) +
                     (o.info.oom_killed ? " (out of memory)" : "") + "; restart policy " +
                     std::string(restartPolicyName(m.restart_policy));
        return false;
      }
      // A requested restart (unhealthy, `edgectl restart`) goes at once; a crash waits
      // its back-off, counted from when it exited.
      if (!mem.retry_at) {
        Duration delay =
            mem.force_restart || !exited ? Duration::zero() : backoffFor(mem.backoff_count);
        SteadyTime base = exited ? toSteady(o.info.finished) : now;
        mem.retry_at = base + delay;
      }
      if (now < *mem.retry_at) {
        auto wait = *mem.retry_at - now;
        st.next_restart = clock_.wallNow() + std::chrono::duration_cast<Duration>(wait);
        st.crashloop = mem.backoff_count >= options_.crashloop_after;
        st.message = (exited ? "exited with code " + std::to_string(o.info.exit_code) +
                                   (o.info.oom_killed ? " (out of memory)" : "")
                             : mem.message) +
                     "; restarting in " + secondsText(wait);
        if (st.crashloop && !mem.crashloop_reported) {
          mem.crashloop_reported = true;
          events_.append("instance.crashloop", o.service, o.info.name,
                         std::to_string(mem.backoff_count) + " quick restarts; backing off " +
                             secondsText(wait));
        }
        return false;
      }
      bool forced = mem.force_restart;
      mem.force_restart = false;
      mem.retry_at.reset();
      if (exited) {
        mem.restarts++;
        restarts_total_.fetch_add(1);
        if (!forced) mem.backoff_count++;
        events_.append("instance.restarting", o.service, o.info.name,
                       forced ? "restart requested"
                              : "exit code " + std::to_string(o.info.exit_code) + ", restart " +
                                    std::to_string(mem.restarts));
      }
      Status s = runtime_.startContainer(o.info.id);
      if (!s.isOk()) {
        mem.message = "start failed: " + s.message();
        mem.backoff_count++;
        mem.retry_at = now + backoffFor(mem.backoff_count);
        st.message = mem.message;
        LOG_WARN("instance start failed").kv("instance", o.info.name).kv("error", s.message());
        return false;
      }
      if (!exited) events_.append("instance.started", o.service, o.info.name, "");
      mem.last_state = ContainerState::kRunning;
      st.state = ContainerState::kRunning;
      st.restarts = mem.restarts;
      st.message = "starting";
      return false;
    }
  }
  return false;
}

Status Reconciler::createInstance(const DesiredService& d, int replica, std::set<int>& used_ports) {
  const ServiceManifest& m = d.manifest;
  // The manifest's part (image, command, env, labels, limits); the reconciler adds the
  // generation, the node, the ports and its naming.
  runtime::ContainerSpec spec = toContainerSpec(m, replica);
  spec.name = m.name + "-" + std::to_string(replica) + "-" + std::to_string(d.generation);
  if (!options_.node_id.empty()) spec.labels[kNodeLabel] = options_.node_id;
  spec.labels[kGenerationLabel] = std::to_string(d.generation);
  spec.network = runtime::NetworkMode::kHost;

  std::map<std::string, int> ports;
  for (const auto& p : m.ports) {
    std::string key = portKey(p);
    int port = p.container_port != 0 ? p.container_port : allocatePort(used_ports);
    if (port == 0)
      return Status::resourceExhausted("no free port left in " +
                                       std::to_string(options_.port_range_first) + "-" +
                                       std::to_string(options_.port_range_last));
    ports[key] = port;
  }
  if (!m.ports.empty())
    spec.env.push_back(std::string(kPortEnv) + "=" + std::to_string(ports[portKey(m.ports[0])]));
  for (const auto& p : m.ports)
    if (!p.name.empty())
      spec.env.push_back(portEnvName(p.name) + "=" + std::to_string(ports[p.name]));
  spec.env.push_back("EDGE_SERVICE=" + m.name);
  spec.env.push_back("EDGE_INSTANCE=" + spec.name);
  spec.env.push_back("EDGE_REPLICA=" + std::to_string(replica));
  spec.env.push_back("EDGE_GENERATION=" + std::to_string(d.generation));
  if (!ports.empty()) spec.labels[kPortsLabel] = formatPorts(ports);

  auto id = runtime_.createContainer(spec);
  if (!id.isOk() && id.status().code() == StatusCode::kAlreadyExists) {
    // A container of that name exists but is not ours to reuse (its labels differ):
    // take it away and try again next pass.
    auto info = runtime_.inspectContainer(spec.name);
    if (info.isOk()) {
      Observed o;
      o.info = *info;
      o.service = m.name;
      removeAsync(o, "name needed for a new instance");
    }
    return Status::failedPrecondition("container name " + spec.name + " is taken");
  }
  if (!id.isOk()) {
    std::string msg = id.status().message();
    if (id.status().code() == StatusCode::kNotFound)
      msg = "image " + m.image + " is not on this node; load it with `edgectl images load FILE` (" +
            msg + ")";
    return Status(id.status().code(), msg);
  }
  events_.append("instance.created", m.name, spec.name,
                 ports.empty() ? "" : "ports " + formatPorts(ports));
  Status s = runtime_.startContainer(*id);
  if (!s.isOk()) {
    // The created instance stays; the next pass retries its start with back-off.
    events_.append("instance.failed", m.name, spec.name, "start failed: " + s.message());
    return Status::ok();
  }
  events_.append("instance.started", m.name, spec.name, "");
  return Status::ok();
}

void Reconciler::removeAsync(const Observed& o, const std::string& reason) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!busy_.insert(o.info.id).second) return;
  }
  std::string id = o.info.id, name = o.info.name, service = o.service;
  async_in_flight_.fetch_add(1);
  options_.run_async([this, id, name, service, reason] {
    Status s = runtime_.stopContainer(id, std::nullopt);
    Status r = runtime_.removeContainer(id, /*force=*/true);
    if (!r.isOk() && r.code() != StatusCode::kNotFound)
      LOG_WARN("instance removal failed").kv("instance", name).kv("error", r.toString());
    else
      events_.append("instance.removed", service, name, reason);
    {
      std::lock_guard<std::mutex> lock(mu_);
      busy_.erase(id);
      woken_ = true;
    }
    cv_.notify_all();
    async_in_flight_.fetch_sub(1);
  });
}

void Reconciler::stopForRestartAsync(const Observed& o, const std::string& reason) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!busy_.insert(o.info.id).second) return;
  }
  std::string id = o.info.id, name = o.info.name;
  LOG_INFO("restarting instance").kv("instance", name).kv("reason", reason);
  async_in_flight_.fetch_add(1);
  options_.run_async([this, id, name] {
    Status s = runtime_.stopContainer(id, std::nullopt);
    if (!s.isOk()) LOG_WARN("instance stop failed").kv("instance", name).kv("error", s.toString());
    {
      std::lock_guard<std::mutex> lock(mu_);
      busy_.erase(id);
      woken_ = true;
    }
    cv_.notify_all();
    async_in_flight_.fetch_sub(1);
  });
}

}  // namespace edge::orchestrator
