// Reconciler: drives the container runtime toward the node's desired state.
//
// Each pass lists the managed containers (label io.edgecloud.managed=true), compares
// them with the desired services and acts: creates missing instances, removes orphans
// and surplus replicas, starts created ones, restarts exited ones by restart policy with
// exponential back-off (a crash loop is reported, not hammered), restarts instances
// their health check declares unhealthy, and rolls a new generation out one replica at
// a time: the new instance must be ready before the old one is stopped. Services with
// a static host port cannot run two instances at once, so their rollout stops the old
// instance first.
//
// Everything the reconciler knows comes from the runtime and from the desired state
// (container labels carry service, replica, generation and ports), so after edged is
// killed or the host reboots the next pass adopts whatever still runs and restarts the
// rest: no duplicates, nothing lost. Only back-off counters live in memory.
//
// Threading: start() runs passes on one thread, woken by wake(), runtime events,
// health changes, or a tick. reconcileOnce() runs a pass on the caller's thread (tests).
// Status accessors may be called from any thread.
#pragma once

#include <atomic>
#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "common/clock.h"
#include "common/status.h"
#include "orchestrator/events.h"
#include "orchestrator/health.h"
#include "orchestrator/manifest.h"
#include "runtime-shim/runtime.h"

namespace edge::orchestrator {

// Labels the reconciler puts on the containers it creates.
inline constexpr char kServiceLabel[] = "io.edgecloud.service";
inline constexpr char kReplicaLabel[] = "io.edgecloud.replica";
inline constexpr char kGenerationLabel[] = "io.edgecloud.generation";
inline constexpr char kPortsLabel[] = "io.edgecloud.ports";  // "http=20001,admin=8081"
// The node that owns the instance: several edged on one Docker Engine leave each
// other's containers alone.
inline constexpr char kNodeLabel[] = "io.edgecloud.node";

struct DesiredService {
  ServiceManifest manifest;
  int64_t generation = 0;
  // `edgectl restart`: instances started before this are restarted, one at a time.
  std::optional<WallTime> restart_requested;
  // On-demand services (lifecycle.mode on-demand) run no instance until activate(); the
  // reconciler sets this on its own copy for a pass.
  bool dormant = false;
};

struct InstanceStatus {
  std::string id;
  std::string name;
  std::string service;
  int replica = 0;
  int64_t generation = 0;
  std::string image;
  runtime::ContainerState state = runtime::ContainerState::kCreated;
  Health health = Health::kNone;
  bool ready = false;
  int restarts = 0;  // since edged started
  int exit_code = 0;
  std::map<std::string, int> ports;  // port name (or number as text) -> host port
  WallTime started{};
  WallTime finished{};
  std::string message;  // why it is not ready, when it is not
  std::optional<WallTime> next_restart;
  bool crashloop = false;
};

struct ServiceStatus {
  std::string name;
  int64_t generation = 0;
  // "running" | "progressing" | "degraded" | "crashloop" | "stopped" | "completed" |
  // "idle" (on-demand, not activated)
  std::string state;
  std::string message;
  int desired = 0;
  int ready = 0;
  int running = 0;
  int updated = 0;  // instances of the current generation
};

struct ReconcilerOptions {
  // This node's id: put on every instance as kNodeLabel, and only instances carrying it
  // are this reconciler's. Empty = every managed container (unit tests).
  std::string node_id;
  int port_range_first = 20000;  // dynamic ports come from here
  int port_range_last = 29999;
  Duration backoff_initial = std::chrono::seconds(1);
  Duration backoff_max = std::chrono::minutes(5);
  // An instance that stayed up this long starts its back-off over.
  Duration backoff_reset_after = std::chrono::minutes(10);
  // Without a health check, an instance counts as ready after running this long.
  Duration min_ready = std::chrono::seconds(1);
  // Back-off at or beyond this many quick restarts is reported as a crash loop.
  int crashloop_after = 3;
  Duration tick = std::chrono::seconds(2);
  // True when the host port can be bound now (default: try to bind it on TCP).
  std::function<bool(int port)> port_free;
  // Runs slow work (stop + remove) off the pass; default: a detached thread.
  std::function<void(std::function<void()>)> run_async;
};

class Reconciler {
 public:
  Reconciler(runtime::ContainerRuntime& runtime, Clock& clock, HealthMonitor& health,
             EventLog& events, ReconcilerOptions options = {});
  ~Reconciler();

  // Replaces the desired state and wakes the loop. Until the first call, passes do
  // nothing (an empty store and "not loaded yet" must not look alike).
  void setDesired(std::vector<DesiredService> services);

  // One pass. Errors are the runtime's (the next pass retries).
  Status reconcileOnce();

  void wake();
  // On-demand services: activate() makes the service run its replicas (until
  // deactivate()); both wake the loop. Names of services that are not on-demand are
  // remembered and ignored. Any thread.
  void activate(const std::string& service);
  void deactivate(const std::string& service);
  bool isActive(const std::string& service) const;
  void start();
  void stop();  // waits for the pass in progress
  // Waits (real time) until no stop/remove started by a pass is still running, or
  // `limit` passed. False on timeout. For a clean shutdown after stop().
  bool waitForRemovals(Duration limit);

  std::vector<ServiceStatus> services() const;
  std::optional<ServiceStatus> service(const std::string& name) const;
  std::vector<InstanceStatus> instances() const;  // managed ones, from the last pass
  int64_t passes() const { return passes_.load(); }
  int64_t restartsTotal() const { return restarts_total_.load(); }
  // True once a pass has completed since the last setDesired().
  bool settledSince(int64_t pass) const { return passes_.load() > pass; }

 private:
  struct Observed;
  struct Memory;
  void reconcileService(const DesiredService& d, std::vector<Observed>& mine,
                        const std::set<int>& busy_replicas, std::set<int>& used_ports,
                        std::vector<InstanceStatus>& out_inst, ServiceStatus& out_svc);
  bool manageInstance(const DesiredService& d, Observed& o, InstanceStatus& st);
  Status createInstance(const DesiredService& d, int replica, std::set<int>& used_ports);
  void removeAsync(const Observed& o, const std::string& reason);
  void stopForRestartAsync(const Observed& o, const std::string& reason);
  int allocatePort(std::set<int>& used);
  static InstanceStatus baseStatus(const Observed& o);
  SteadyTime toSteady(WallTime t) const;
  Duration backoffFor(int n) const;

  runtime::ContainerRuntime& runtime_;
  Clock& clock_;
  HealthMonitor& health_;
  EventLog& events_;
  ReconcilerOptions options_;

  mutable std::mutex mu_;  // guards everything below
  std::condition_variable cv_;
  bool have_desired_ = false;
  std::vector<DesiredService> desired_;
  std::set<std::string> active_;  // on-demand services activated
  std::set<std::string> busy_;    // ids being stopped/removed off-pass
  std::map<std::string, std::unique_ptr<Memory>> memory_;
  std::vector<ServiceStatus> service_status_;
  std::vector<InstanceStatus> instance_status_;
  bool first_pass_ = true;
  bool woken_ = false;
  bool stopping_ = false;
  std::thread thread_;
  runtime::SubscriptionPtr subscription_;

  struct CreateFailure {
    std::string message;
    int count = 0;
    SteadyTime retry_at{};
  };
  std::map<std::string, CreateFailure> create_failures_;  // "<service>/<replica>"; pass only

  std::mutex pass_mu_;  // one pass at a time
  std::atomic<int64_t> passes_{0};
  std::atomic<int64_t> restarts_total_{0};
  std::atomic<int> async_in_flight_{0};
  int port_cursor_ = 0;
};

}  // namespace edge::orchestrator
