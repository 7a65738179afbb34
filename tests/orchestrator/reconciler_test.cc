// Reconciler logic against an in-memory runtime and a fake clock: creation, orphans,
// back-off and crash loops, restart policies, rollouts, health, adoption. The same paths
// run against the real runtimes in the edged integration tests.
#include "orchestrator/reconciler.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "common/log.h"
#include "fake_runtime.h"

namespace edge::orchestrator {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

ServiceManifest manifest(const std::string& yaml) {
  auto parsed = parseManifests(yaml, "test.yaml");
  EXPECT_TRUE(parsed.isOk()) << parsed.status().toString();
  return parsed.isOk() ? parsed->front() : ServiceManifest{};
}

ServiceManifest web(int replicas, const std::string& extra = "") {
  return manifest(
      "apiVersion: edge/v1\nkind: Service\nmetadata: {name: web}\nspec:\n"
      "  image: hello:1\n  replicas: " +
      std::to_string(replicas) + "\n  ports: [{name: http}]\n" + extra);
}

class ScriptedProber : public Prober {
 public:
  bool probe(const HealthCheck&, const ProbeTarget& t, std::string* detail) override {
    probes++;
    bool ok = healthy_ports.count(t.port) != 0;
    *detail = ok ? "HTTP 200" : "HTTP 503";
    return ok;
  }
  std::set<int> healthy_ports;
  int probes = 0;
};

class ReconcilerTest : public ::testing::Test {
 protected:
  ReconcilerTest() : runtime_(clock_), health_(clock_, prober_), events_(clock_) {
    log::setLevel(log::Level::kWarn);  // every event is also a log line; keep output readable
    runtime_.addImage("hello:1");
    runtime_.addImage("hello:2");
    ReconcilerOptions o;
    o.port_free = [](int) { return true; };
    o.run_async = [](std::function<void()> fn) { fn(); };
    rec_ = std::make_unique<Reconciler>(runtime_, clock_, health_, events_, o);
  }

  void apply(ServiceManifest m, int64_t gen) {
    std::string name = m.name;
    desired_[name] = DesiredService{.manifest = std::move(m), .generation = gen};
    push();
  }
  void push() {
    std::vector<DesiredService> v;
    for (auto& [_, d] : desired_) v.push_back(d);
    rec_->setDesired(v);
  }
  void pass(int n = 1) {
    for (int i = 0; i < n; ++i) ASSERT_TRUE(rec_->reconcileOnce().isOk());
  }
  void advance(Duration d) { clock_.advance(d); }
  std::vector<std::string> eventTypes() {
    std::vector<std::string> out;
    for (auto& e : events_.since(0)) out.push_back(e.type);
    return out;
  }
  bool hasEvent(const std::string& type) {
    auto t = eventTypes();
    return std::find(t.begin(), t.end(), type) != t.end();
  }
  ServiceStatus status(const std::string& name) {
    auto s = rec_->service(name);
    EXPECT_TRUE(s.has_value());
    return s.value_or(ServiceStatus{});
  }

  FakeClock clock_;
  testing::FakeRuntime runtime_;
  ScriptedProber prober_;
  HealthMonitor health_;
  EventLog events_;
  std::unique_ptr<Reconciler> rec_;
  std::map<std::string, DesiredService> desired_;
};

TEST_F(ReconcilerTest, DoesNothingBeforeTheDesiredStateIsKnown) {
  runtime::ContainerSpec spec;
  spec.name = "leftover";
  spec.image = "hello:1";
  spec.labels[runtime::kManagedLabel] = "true";
  spec.labels[kServiceLabel] = "old";
  ASSERT_TRUE(runtime_.createContainer(spec).isOk());
  pass();
  EXPECT_EQ(runtime_.all().size(), 1u);  // an unloaded store must not look empty
}

TEST_F(ReconcilerTest, CreatesEveryReplicaWithItsOwnPortAndLabels) {
  apply(web(2), 1);
  pass();
  EXPECT_THAT(runtime_.runningNames(), ElementsAre("web-0-1", "web-1-1"));
  auto all = runtime_.all();
  EXPECT_EQ(all[0].labels.at(kServiceLabel), "web");
  EXPECT_EQ(all[0].labels.at(kGenerationLabel), "1");
  EXPECT_EQ(all[1].labels.at(kReplicaLabel), "1");
  EXPECT_EQ(all[0].labels.at(kPortsLabel), "http=20000");
  EXPECT_EQ(all[1].labels.at(kPortsLabel), "http=20001");
  EXPECT_THAT(all[0].env, ::testing::Contains("PORT=20000"));
  EXPECT_THAT(all[0].env, ::testing::Contains("PORT_HTTP=20000"));
  EXPECT_THAT(all[1].env, ::testing::Contains("EDGE_INSTANCE=web-1-1"));
  EXPECT_EQ(status("web").state, "progressing");  // not ready until min_ready has passed
  advance(std::chrono::seconds(1));
  pass();
  EXPECT_EQ(status("web").state, "running");
  EXPECT_EQ(status("web").ready, 2);
  pass(3);
  EXPECT_EQ(runtime_.creates(), 2);  // steady state: nothing more happens
}

TEST_F(ReconcilerTest, RemovesInstancesOfServicesNoLongerDesiredButNotUnmanagedOnes) {
  apply(web(1), 1);
  runtime::ContainerSpec mine;
  mine.name = "by-hand";
  mine.image = "hello:1";
  ASSERT_TRUE(runtime_.createContainer(mine).isOk());
  pass();
  desired_.clear();
  push();
  pass();
  ASSERT_EQ(runtime_.all().size(), 1u);
  EXPECT_EQ(runtime_.all()[0].name, "by-hand");
  EXPECT_TRUE(hasEvent("instance.removed"));
}

TEST_F(ReconcilerTest, ScalingDownRemovesTheHighestReplicas) {
  apply(web(3), 1);
  pass();
  apply(web(1), 1);  // same generation: replicas alone changed here on purpose
  pass();
  EXPECT_THAT(runtime_.runningNames(), ElementsAre("web-0-1"));
}

TEST_F(ReconcilerTest, CrashesRestartWithExponentialBackoffAndReportACrashLoop) {
  apply(web(1), 1);
  pass();
  int starts = runtime_.starts();
  std::vector<int> waits_ms;
  for (int crash = 0; crash < 4; ++crash) {
    runtime_.exitContainer("web-0-1", 1);
    pass();
    EXPECT_EQ(runtime_.starts(), starts) << "restarted before its back-off, crash " << crash;
    int waited = 0;
    while (runtime_.starts() == starts && waited < 60'000) {
      advance(std::chrono::milliseconds(250));
      waited += 250;
      pass();
    }
    starts = runtime_.starts();
    waits_ms.push_back(waited);
  }
  EXPECT_THAT(waits_ms, ElementsAre(1000, 2000, 4000, 8000));
  runtime_.exitContainer("web-0-1", 1);
  pass();
  EXPECT_EQ(status("web").state, "crashloop");
  EXPECT_TRUE(hasEvent("instance.crashloop"));
  auto inst = rec_->instances();
  ASSERT_EQ(inst.size(), 1u);
  EXPECT_THAT(inst[0].message, HasSubstr("restarting in 16s"));
  EXPECT_TRUE(inst[0].next_restart.has_value());
}

TEST_F(ReconcilerTest, BackoffStartsOverAfterALongRun) {
  apply(web(1), 1);
  pass();
  for (int i = 0; i < 3; ++i) {
    runtime_.exitContainer("web-0-1", 1);
    advance(std::chrono::minutes(1));
    pass();
  }
  advance(std::chrono::minutes(11));
  pass();
  int starts = runtime_.starts();
  runtime_.exitContainer("web-0-1", 1);
  advance(std::chrono::seconds(1));
  pass();
  EXPECT_EQ(runtime_.starts(), starts + 1);
}

TEST_F(ReconcilerTest, OnFailureLeavesACleanExitAloneAndNeverLeavesEverything) {
  apply(manifest("apiVersion: edge/v1\nkind: Service\nmetadata: {name: job}\nspec:\n"
                 "  image: hello:1\n  restartPolicy: on-failure\n"),
        1);
  apply(manifest("apiVersion: edge/v1\nkind: Service\nmetadata: {name: once}\nspec:\n"
                 "  image: hello:1\n  restartPolicy: never\n"),
        1);
  pass();
  int starts = runtime_.starts();
  runtime_.exitContainer("job-0-1", 0);
  runtime_.exitContainer("once-0-1", 3);
  advance(std::chrono::minutes(5));
  pass(2);
  EXPECT_EQ(runtime_.starts(), starts);
  EXPECT_EQ(status("job").state, "completed");
  EXPECT_EQ(status("once").state, "degraded");
  EXPECT_THAT(status("once").message, HasSubstr("exited with code 3"));
}

TEST_F(ReconcilerTest, RollsOutOneReplicaAtATimeNewReadyBeforeOldStops) {
  apply(web(2), 1);
  pass();
  advance(std::chrono::seconds(2));
  pass();
  ServiceManifest v2 = web(2);
  v2.image = "hello:2";
  apply(v2, 2);
  pass();
  // Surge of one: replica 0's new instance runs beside both old ones.
  EXPECT_THAT(runtime_.runningNames(), ElementsAre("web-0-1", "web-0-2", "web-1-1"));
  EXPECT_EQ(status("web").state, "progressing");
  pass();
  EXPECT_THAT(runtime_.runningNames(), ElementsAre("web-0-1", "web-0-2", "web-1-1"));
  advance(std::chrono::seconds(1));  // web-0-2 becomes ready
  pass();
  EXPECT_THAT(runtime_.runningNames(), ElementsAre("web-0-2", "web-1-1", "web-1-2"));
  advance(std::chrono::seconds(1));
  pass(2);
  EXPECT_THAT(runtime_.runningNames(), ElementsAre("web-0-2", "web-1-2"));
  EXPECT_EQ(status("web").state, "running");
  EXPECT_TRUE(hasEvent("rollout.finished"));
}

TEST_F(ReconcilerTest, ABrokenNewGenerationIsHeldWhileTheOldOneKeepsServing) {
  apply(web(2), 1);
  pass();
  advance(std::chrono::seconds(2));
  pass();
  ServiceManifest v2 = web(2);
  v2.image = "hello:2";
  apply(v2, 2);
  for (int i = 0; i < 40; ++i) {
    pass();
    runtime_.exitContainer("web-0-2", 1);
    advance(std::chrono::seconds(1));
  }
  pass();
  auto running = runtime_.runningNames();
  EXPECT_THAT(running, ::testing::IsSupersetOf({"web-0-1", "web-1-1"}));
  EXPECT_THAT(running, ::testing::Not(::testing::Contains("web-1-2")));
  EXPECT_EQ(status("web").state, "crashloop");
  EXPECT_THAT(status("web").message, HasSubstr("previous one keeps serving"));
}

TEST_F(ReconcilerTest, StaticPortServicesStopTheOldInstanceFirst) {
  auto m = manifest(
      "apiVersion: edge/v1\nkind: Service\nmetadata: {name: api}\nspec:\n"
      "  image: hello:1\n  ports: [{containerPort: 8080}]\n");
  apply(m, 1);
  pass();
  EXPECT_EQ(runtime_.all()[0].labels.at(kPortsLabel), "8080=8080");
  m.image = "hello:2";
  apply(m, 2);
  pass();
  EXPECT_THAT(runtime_.runningNames(), IsEmpty());  // old gone first
  pass();
  EXPECT_THAT(runtime_.runningNames(), ElementsAre("api-0-2"));
}

TEST_F(ReconcilerTest, HealthGatesReadinessAndRestartsUnhealthyInstances) {
  apply(web(1,
            "  healthCheck: {http: {path: /h, port: http}, interval: 1s, timeout: 500ms, retries: "
            "2}\n"),
        1);
  pass(2);  // created, then tracked by the health monitor
  health_.runDue();
  EXPECT_EQ(status("web").ready, 0);
  advance(std::chrono::seconds(1));
  prober_.healthy_ports = {20000};
  health_.runDue();
  pass();
  EXPECT_EQ(status("web").ready, 1);
  EXPECT_EQ(rec_->instances()[0].health, Health::kHealthy)
      << rec_->instances()[0].message << " probes=" << prober_.probes;

  prober_.healthy_ports.clear();
  int starts = runtime_.starts();
  for (int i = 0; i < 2; ++i) {
    advance(std::chrono::seconds(1));
    health_.runDue();
  }
  pass();  // unhealthy: stopped for a restart
  pass();  // and started again, at once (not a crash back-off)
  EXPECT_EQ(runtime_.starts(), starts + 1);
  EXPECT_TRUE(hasEvent("instance.unhealthy"));
}

TEST_F(ReconcilerTest, AnInstanceBeingStoppedForARestartKeepsItsSlot) {
  // Stops take time in real runtimes: queue them instead of running them inline.
  std::vector<std::function<void()>> queued;
  ReconcilerOptions o;
  o.port_free = [](int) { return true; };
  o.run_async = [&](std::function<void()> fn) { queued.push_back(std::move(fn)); };
  Reconciler rec(runtime_, clock_, health_, events_, o);
  auto m = web(1, "  healthCheck: {tcp: {port: http}, interval: 1s, timeout: 500ms, retries: 1}\n");
  rec.setDesired({DesiredService{.manifest = m, .generation = 1}});
  ASSERT_TRUE(rec.reconcileOnce().isOk());
  ASSERT_TRUE(rec.reconcileOnce().isOk());
  advance(std::chrono::seconds(1));
  health_.runDue();  // nobody listens on the port: unhealthy at the first failure
  ASSERT_TRUE(rec.reconcileOnce().isOk());
  ASSERT_EQ(queued.size(), 1u);  // the stop for the restart
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(rec.reconcileOnce().isOk());
  EXPECT_EQ(runtime_.creates(), 1) << "a second instance was created while the first stopped";
  int starts = runtime_.starts();
  queued.front()();
  queued.clear();
  ASSERT_TRUE(rec.reconcileOnce().isOk());
  EXPECT_EQ(runtime_.starts(), starts + 1);
  EXPECT_EQ(runtime_.creates(), 1);
  EXPECT_THAT(runtime_.runningNames(), ElementsAre("web-0-1"));
}

TEST_F(ReconcilerTest, LeavesOtherNodesContainersAlone) {
  // Two nodes on one Docker Engine: each reconciles only what carries its node label.
  ReconcilerOptions o;
  o.port_free = [](int) { return true; };
  o.run_async = [](std::function<void()> fn) { fn(); };
  o.node_id = "node-a";
  Reconciler a(runtime_, clock_, health_, events_, o);
  o.node_id = "node-b";
  Reconciler b(runtime_, clock_, health_, events_, o);
  a.setDesired({DesiredService{.manifest = web(1), .generation = 1}});
  b.setDesired({});
  ASSERT_TRUE(a.reconcileOnce().isOk());
  ASSERT_TRUE(b.reconcileOnce().isOk());
  ASSERT_THAT(runtime_.runningNames(), ElementsAre("web-0-1"));
  EXPECT_EQ(runtime_.all()[0].labels.at(kNodeLabel), "node-a");
}

TEST_F(ReconcilerTest, ANewReconcilerAdoptsRunningInstancesInsteadOfStartingMore) {
  apply(web(2), 1);
  pass();
  runtime_.exitContainer("web-1-1", 137);  // died while edged was away
  int creates = runtime_.creates();
  ReconcilerOptions o;
  o.port_free = [](int) { return true; };
  o.run_async = [](std::function<void()> fn) { fn(); };
  EventLog events2(clock_);
  Reconciler again(runtime_, clock_, health_, events2, o);
  std::vector<DesiredService> v{desired_["web"]};
  again.setDesired(v);
  ASSERT_TRUE(again.reconcileOnce().isOk());
  advance(std::chrono::seconds(2));
  ASSERT_TRUE(again.reconcileOnce().isOk());
  EXPECT_EQ(runtime_.creates(), creates);
  EXPECT_THAT(runtime_.runningNames(), ElementsAre("web-0-1", "web-1-1"));
  auto types = events2.since(0);
  ASSERT_FALSE(types.empty());
  EXPECT_EQ(types[0].type, "instance.adopted");
}

TEST_F(ReconcilerTest, AMissingImageIsReportedAndRetried) {
  apply(manifest("apiVersion: edge/v1\nkind: Service\nmetadata: {name: x}\nspec:\n"
                 "  image: nothere:1\n"),
        1);
  pass();
  EXPECT_EQ(status("x").state, "degraded");
  EXPECT_THAT(status("x").message, HasSubstr("edgectl images load"));
  int failures = 0;
  for (int i = 0; i < 5; ++i) pass();  // retried with back-off, reported once
  for (const auto& e : events_.since(0)) failures += e.type == "instance.failed";
  EXPECT_EQ(failures, 1);
  runtime_.addImage("nothere:1");
  pass();
  EXPECT_THAT(runtime_.runningNames(), IsEmpty());  // still backing off
  advance(std::chrono::seconds(1));
  pass();
  EXPECT_THAT(runtime_.runningNames(), ElementsAre("x-0-1"));
}

TEST_F(ReconcilerTest, RestartRequestRestartsOneReplicaAtATime) {
  apply(web(2), 1);
  pass();
  advance(std::chrono::seconds(2));
  pass();
  int starts = runtime_.starts();
  desired_["web"].restart_requested = clock_.wallNow();
  push();
  advance(std::chrono::milliseconds(10));
  pass();  // replica 0 stopped
  pass();  // and started
  EXPECT_EQ(runtime_.starts(), starts + 1);
  pass();  // replica 1 waits for replica 0 to be ready again
  EXPECT_EQ(runtime_.starts(), starts + 1);
  advance(std::chrono::seconds(1));
  pass(3);
  EXPECT_EQ(runtime_.starts(), starts + 2);
  advance(std::chrono::seconds(2));
  pass(2);
  EXPECT_EQ(runtime_.starts(), starts + 2);  // done: no endless restarts
  EXPECT_EQ(status("web").state, "running");
}

TEST_F(ReconcilerTest, OnDemandServicesRunOnlyWhileActivated) {
  apply(web(2, "  lifecycle: {mode: on-demand, idleTimeout: 30s}\n"), 1);
  pass();
  EXPECT_THAT(runtime_.runningNames(), IsEmpty());
  EXPECT_EQ(status("web").state, "idle");
  EXPECT_EQ(status("web").desired, 0);

  rec_->activate("web");
  EXPECT_TRUE(rec_->isActive("web"));
  pass();
  EXPECT_THAT(runtime_.runningNames(), ElementsAre("web-0-1", "web-1-1"));
  EXPECT_EQ(status("web").desired, 2);

  rec_->deactivate("web");
  pass();
  EXPECT_THAT(runtime_.runningNames(), IsEmpty());
  EXPECT_EQ(status("web").state, "idle");
}

TEST_F(ReconcilerTest, ActivatingAnAlwaysOnServiceChangesNothing) {
  apply(web(1), 1);
  rec_->activate("web");
  pass();
  rec_->deactivate("web");
  pass();
  EXPECT_THAT(runtime_.runningNames(), ElementsAre("web-0-1"));
}

}  // namespace
}  // namespace edge::orchestrator
