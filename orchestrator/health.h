// Health checks of running instances: the probes (HTTP, TCP, exec inside the container)
// and the monitor that runs them on each check's schedule.
//
// HealthMonitor owns one thread (start()/stop()); unit tests call runDue() themselves
// with a FakeClock instead. A probe never blocks longer than its check's timeout, and
// probes of one node run one after another, so a hung service delays the others by at
// most that timeout.
//
// Thread-safety: every HealthMonitor method may be called from any thread. Prober
// implementations must be callable from the monitor thread.
#pragma once

#include <condition_variable>
#include <functional>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <thread>

#include "common/clock.h"
#include "orchestrator/manifest.h"

namespace edge::orchestrator {

struct ProbeTarget {
  int pid = 0;   // host pid of the container's first process (exec probes enter its namespaces)
  int port = 0;  // the resolved port for HTTP and TCP probes (host network)
};

class Prober {
 public:
  virtual ~Prober() = default;
  // True when the instance answers as the check requires; `detail` says what happened
  // ("HTTP 503", "connect: Connection refused", "exit 1", "timed out after 2000ms").
  virtual bool probe(const HealthCheck& check, const ProbeTarget& target, std::string* detail) = 0;
};

// The real probes. HTTP: GET http://127.0.0.1:<port><path>, healthy on 2xx/3xx. TCP:
// connect to 127.0.0.1:<port>. Exec: the command runs inside the container's mount, pid,
// net, uts and ipc namespaces (not its cgroup), healthy on exit 0, killed at the timeout.
class SystemProber : public Prober {
 public:
  bool probe(const HealthCheck& check, const ProbeTarget& target, std::string* detail) override;
};

enum class Health { kNone, kStarting, kHealthy, kUnhealthy };
std::string_view healthName(Health h);  // "none" | "starting" | "healthy" | "unhealthy"

struct HealthState {
  Health health = Health::kNone;
  int consecutive_failures = 0;
  std::string detail;  // the last probe's
};

class HealthMonitor {
 public:
  HealthMonitor(Clock& clock, Prober& prober);
  ~HealthMonitor();

  // Starts checking an instance that started at `started`; calling it again with the
  // same `started` changes nothing, a different one (a restart) starts over.
  // Semantics (as Docker's): the first probe runs min(interval, 1s) after the start;
  // during the start period failures do not count; `retries` consecutive failures
  // make the instance unhealthy; one success makes it healthy again.
  void track(const std::string& id, const HealthCheck& check, const ProbeTarget& target,
             SteadyTime started);
  // Forgets every instance not in `ids`.
  void retainOnly(const std::set<std::string>& ids);
  // kNone for an instance not tracked.
  HealthState state(const std::string& id) const;

  // Runs the probes that are due now. Returns when the next one is due (or a minute
  // ahead when none is tracked).
  SteadyTime runDue();

  // Called (on the monitor thread) when an instance becomes healthy or unhealthy.
  void setOnChange(std::function<void(const std::string& id, Health h)> cb);

  void start();
  void stop();

 private:
  struct Entry {
    HealthCheck check;
    ProbeTarget target;
    SteadyTime started{};
    SteadyTime next_due{};
    HealthState state;
  };

  Clock& clock_;
  Prober& prober_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::map<std::string, Entry> entries_;
  std::function<void(const std::string&, Health)> on_change_;
  bool stopping_ = false;
  bool changed_ = false;
  std::thread thread_;
};

}  // namespace edge::orchestrator
