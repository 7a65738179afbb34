// The cluster scheduler: a table per condition with the reason a user reads, the ranking
// rules one by one, and properties over a few hundred seeded random clusters checked
// against oracles written here from the rules in cluster/scheduler.h (capacity, spread,
// binpack, re-runs, input order, a node leaving, every-node).
#include "cluster/scheduler.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <limits>
#include <map>
#include <random>
#include <set>

namespace edge::cluster {
namespace {

using orchestrator::Placement;
using orchestrator::PlacementAffinity;
using orchestrator::PlacementConstraint;
using orchestrator::PortSpec;
using orchestrator::ServiceManifest;
using Op = PlacementConstraint::Op;
using ::testing::ElementsAre;
using ::testing::IsEmpty;

constexpr int64_t kMi = int64_t{1} << 20;
constexpr int64_t kGi = int64_t{1} << 30;

ServiceManifest service(const std::string& name, int replicas = 1) {
  ServiceManifest m;
  m.name = name;
  m.image = name + ":1";
  m.replicas = replicas;
  m.placement.scope = Placement::Scope::kCluster;
  return m;
}

NodeInfo node(const std::string& id, const std::string& name = "") {
  NodeInfo n;
  n.node_id = id;
  n.name = name.empty() ? "edge-" + id : name;
  n.arch = "x86_64";
  n.os = "linux";
  n.runtime = "docker";
  n.power = "mains";
  n.allocatable_cpu_millis = 4000;
  n.allocatable_memory_bytes = 8 * kGi;
  return n;
}

PlacementConstraint constraint(const std::string& attribute, Op op, const std::string& value,
                               int64_t quantity = 0) {
  PlacementConstraint c;
  c.attribute = attribute;
  c.op = op;
  c.value = value;
  c.quantity = quantity;
  c.text = attribute + " " + std::string(orchestrator::constraintOpName(op)) + " " + value;
  return c;
}

PortSpec staticPort(int port, const std::string& protocol = "tcp") {
  PortSpec p;
  p.container_port = port;
  p.protocol = protocol;
  return p;
}

std::vector<std::string> where(const Plan& plan, const std::string& svc) {
  std::vector<std::string> out;
  for (const auto& a : plan.assignments) {
    if (a.service == svc) out.push_back(std::to_string(a.slot) + "@" + a.node_id);
  }
  return out;
}

const Pending* pendingFor(const Plan& plan, const std::string& svc) {
  for (const auto& p : plan.pending) {
    if (p.service == svc) return &p;
  }
  return nullptr;
}

// ---- eligible(): one row per condition ----------------------------------------------

struct Row {
  std::string what;
  std::vector<PlacementConstraint> constraints;
  void (*setup)(NodeInfo&);
  bool ok;
  std::string why;
};

TEST(Eligible, EveryConstraintKindAndItsReason) {
  const std::vector<Row> rows = {
      {"arch ==, met", {constraint("arch", Op::kEq, "x86_64")}, [](NodeInfo&) {}, true, ""},
      {"arch ==, not met",
       {constraint("arch", Op::kEq, "x86_64")},
       [](NodeInfo& n) { n.arch = "arm64"; },
       false,
       "arch arm64 != x86_64"},
      {"arch !=, not met",
       {constraint("arch", Op::kNe, "arm64")},
       [](NodeInfo& n) { n.arch = "arm64"; },
       false,
       "arch arm64 == arm64"},
      {"os, not reported",
       {constraint("os", Op::kEq, "linux")},
       [](NodeInfo& n) { n.os = ""; },
       false,
       "os (unknown) != linux"},
      {"runtime",
       {constraint("runtime", Op::kEq, "light")},
       [](NodeInfo&) {},
       false,
       "runtime docker != light"},
      {"power",
       {constraint("power", Op::kEq, "mains")},
       [](NodeInfo& n) { n.power = "battery"; },
       false,
       "power battery != mains"},
      {"name !=, not met",
       {constraint("name", Op::kNe, "edge-7")},
       [](NodeInfo& n) { n.name = "edge-7"; },
       false,
       "name edge-7 == edge-7"},
      {"name !=, met", {constraint("name", Op::kNe, "edge-7")}, [](NodeInfo&) {}, true, ""},
      {"node id ==, not met",
       {constraint("node", Op::kEq, "n9")},
       [](NodeInfo&) {},
       false,
       "node n1 != n9"},
      {"node id ==, met", {constraint("node", Op::kEq, "n1")}, [](NodeInfo&) {}, true, ""},
      {"role ==, held",
       {constraint("role", Op::kEq, "cache")},
       [](NodeInfo& n) {
         n.roles = {"gateway", "cache"};
       },
       true,
       ""},
      {"role ==, not held",
       {constraint("role", Op::kEq, "cache")},
       [](NodeInfo& n) { n.roles = {"gateway"}; },
       false,
       "no role cache"},
      {"role !=, held",
       {constraint("role", Op::kNe, "cache")},
       [](NodeInfo& n) { n.roles = {"cache"}; },
       false,
       "has role cache"},
      {"role !=, not held", {constraint("role", Op::kNe, "cache")}, [](NodeInfo&) {}, true, ""},
      {"label ==, met",
       {constraint("label.zone", Op::kEq, "a")},
       [](NodeInfo& n) { n.labels["zone"] = "a"; },
       true,
       ""},
      {"label ==, missing",
       {constraint("label.zone", Op::kEq, "a")},
       [](NodeInfo&) {},
       false,
       "label zone is not set"},
      {"label ==, other value",
       {constraint("label.zone", Op::kEq, "a")},
       [](NodeInfo& n) { n.labels["zone"] = "b"; },
       false,
       "label zone b != a"},
      {"label !=, missing passes",
       {constraint("label.zone", Op::kNe, "a")},
       [](NodeInfo&) {},
       true,
       ""},
      {"label !=, same value",
       {constraint("label.zone", Op::kNe, "a")},
       [](NodeInfo& n) { n.labels["zone"] = "a"; },
       false,
       "label zone a == a"},
      {"memory >=, met",
       {constraint("memory", Op::kGe, "1Gi", kGi)},
       [](NodeInfo& n) { n.allocatable_memory_bytes = kGi; },
       true,
       ""},
      {"memory >=, not met",
       {constraint("memory", Op::kGe, "1Gi", kGi)},
       [](NodeInfo& n) { n.allocatable_memory_bytes = 512 * kMi; },
       false,
       "memory 512Mi < 1Gi"},
      {"memory <, not met",
       {constraint("memory", Op::kLt, "1Gi", kGi)},
       [](NodeInfo& n) { n.allocatable_memory_bytes = 2 * kGi; },
       false,
       "memory 2Gi >= 1Gi"},
      {"memory ==, met",
       {constraint("memory", Op::kEq, "2Gi", 2 * kGi)},
       [](NodeInfo& n) { n.allocatable_memory_bytes = 2 * kGi; },
       true,
       ""},
      {"memory unknown",
       {constraint("memory", Op::kLe, "1Gi", kGi)},
       [](NodeInfo& n) { n.allocatable_memory_bytes = 0; },
       false,
       "memory allocatable unknown (constraint memory <= 1Gi)"},
      {"cpu >, equal is not more",
       {constraint("cpu", Op::kGt, "2", 2000)},
       [](NodeInfo& n) { n.allocatable_cpu_millis = 2000; },
       false,
       "cpu 2 <= 2"},
      {"cpu >=, millis",
       {constraint("cpu", Op::kGe, "500m", 500)},
       [](NodeInfo& n) { n.allocatable_cpu_millis = 250; },
       false,
       "cpu 250m < 500m"},
      {"cpu !=, met", {constraint("cpu", Op::kNe, "1", 1000)}, [](NodeInfo&) {}, true, ""},
      {"cpu <=, met", {constraint("cpu", Op::kLe, "4", 4000)}, [](NodeInfo&) {}, true, ""},
      {"ordering on a string never matches",
       {constraint("arch", Op::kGe, "a")},
       [](NodeInfo&) {},
       false,
       "arch >= a: >= compares cpu and memory only, arch is a string"},
      {"ordering on a label never matches",
       {constraint("label.zone", Op::kLt, "z")},
       [](NodeInfo& n) { n.labels["zone"] = "a"; },
       false,
       "label.zone < z: < compares cpu and memory only, label.zone is a string"},
      {"ordering on a role never matches",
       {constraint("role", Op::kGt, "cache")},
       [](NodeInfo& n) { n.roles = {"cache"}; },
       false,
       "role > cache: > compares cpu and memory only, role is a string"},
      {"unknown attribute",
       {constraint("colour", Op::kEq, "red")},
       [](NodeInfo&) {},
       false,
       "unknown attribute colour (constraint colour == red)"},
      {"the first unmet constraint is the reason",
       {constraint("os", Op::kEq, "linux"), constraint("arch", Op::kEq, "arm64"),
        constraint("power", Op::kEq, "battery")},
       [](NodeInfo&) {},
       false,
       "arch x86_64 != arm64"},
      {"cordoned", {}, [](NodeInfo& n) { n.cordoned = true; }, false, "cordoned"},
      {"blacklisted", {}, [](NodeInfo& n) { n.blacklisted = true; }, false, "blacklisted"},
  };
  for (const auto& row : rows) {
    ServiceManifest s = service("web");
    s.placement.constraints = row.constraints;
    NodeInfo n = node("n1");
    row.setup(n);
    std::string why = "untouched";
    EXPECT_EQ(eligible(s, n, &why), row.ok) << row.what;
    if (row.ok) {
      EXPECT_EQ(why, "untouched") << row.what;
    } else {
      EXPECT_EQ(why, row.why) << row.what;
    }
    EXPECT_EQ(eligible(s, n), row.ok) << row.what << " (no why)";
  }
}

TEST(Eligible, PlacementNodesByNameOrId) {
  ServiceManifest s = service("web");
  s.placement.nodes = {"edge-1", "n3"};
  std::string why;
  EXPECT_TRUE(eligible(s, node("n1", "edge-1")));
  EXPECT_TRUE(eligible(s, node("n3", "edge-3")));
  EXPECT_FALSE(eligible(s, node("n2", "edge-2"), &why));
  EXPECT_EQ(why, "not in placement.nodes");
}

TEST(Eligible, PlacementLabelsMustAllMatch) {
  ServiceManifest s = service("web");
  s.placement.labels = {{"camera", "yes"}, {"zone", "a"}};
  NodeInfo n = node("n1");
  std::string why;
  n.labels = {{"camera", "yes"}, {"zone", "a"}, {"extra", "1"}};
  EXPECT_TRUE(eligible(s, n));
  n.labels = {{"camera", "yes"}};
  EXPECT_FALSE(eligible(s, n, &why));
  EXPECT_EQ(why, "label zone is not set");
  n.labels = {{"camera", "yes"}, {"zone", "b"}};
  EXPECT_FALSE(eligible(s, n, &why));
  EXPECT_EQ(why, "label zone b != a");
}

// ---- schedule(): reasons, ranking, keeping --------------------------------------------

TEST(Schedule, PendingListsEveryNodeWithItsReasonSortedByName) {
  ServiceManifest s = service("web", 2);
  s.placement.constraints = {constraint("arch", Op::kEq, "x86_64")};
  s.resources.memory_bytes = kGi;
  s.resources.nano_cpus = 500'000'000;
  // Ids in the opposite order of names: reasons follow names.
  NodeInfo a = node("n4", "edge-1");
  a.arch = "arm64";
  NodeInfo b = node("n3", "edge-2");
  b.allocatable_memory_bytes = 512 * kMi;
  NodeInfo c = node("n2", "edge-3");
  c.allocatable_cpu_millis = 250;
  NodeInfo d = node("n1", "edge-4");
  d.allocatable_memory_bytes = 0;
  NodeInfo e = node("n0", "edge-5");
  e.cordoned = true;
  Plan plan = schedule({s}, {a, b, c, d, e}, {});
  EXPECT_THAT(plan.assignments, IsEmpty());
  ASSERT_EQ(plan.pending.size(), 1u);
  EXPECT_EQ(plan.pending[0].service, "web");
  EXPECT_EQ(plan.pending[0].missing, 2);
  EXPECT_THAT(
      plan.pending[0].reasons,
      ElementsAre("edge-1: arch arm64 != x86_64", "edge-2: memory 512Mi free < 1Gi requested",
                  "edge-3: cpu 250m free < 500m requested",
                  "edge-4: memory allocatable unknown, 1Gi requested", "edge-5: cordoned"));
}

TEST(Schedule, PartlyPlacedServiceSaysWhatIsMissingAndWhy) {
  ServiceManifest s = service("db", 3);
  s.resources.memory_bytes = 3 * kGi;
  NodeInfo a = node("n1");
  a.allocatable_memory_bytes = 4 * kGi;
  NodeInfo b = node("n2");
  b.allocatable_memory_bytes = 5 * kGi;
  Plan plan = schedule({s}, {a, b}, {});
  EXPECT_THAT(where(plan, "db"), ElementsAre("0@n1", "1@n2"));
  ASSERT_NE(pendingFor(plan, "db"), nullptr);
  EXPECT_EQ(pendingFor(plan, "db")->missing, 1);
  EXPECT_THAT(pendingFor(plan, "db")->reasons,
              ElementsAre("edge-n1: memory 1Gi free < 3Gi requested",
                          "edge-n2: memory 2Gi free < 3Gi requested"));
}

TEST(Schedule, ZeroReservationFitsAnywhereEvenUnknown) {
  ServiceManifest s = service("tiny", 1);
  NodeInfo n = node("n1");
  n.allocatable_cpu_millis = 0;
  n.allocatable_memory_bytes = 0;
  Plan plan = schedule({s}, {n}, {});
  EXPECT_THAT(where(plan, "tiny"), ElementsAre("0@n1"));
  EXPECT_THAT(plan.pending, IsEmpty());
}

TEST(Schedule, StaticHostPortsNeverShareANode) {
  ServiceManifest a = service("a", 1);
  a.ports = {staticPort(80)};
  ServiceManifest b = service("b", 1);
  b.ports = {staticPort(80)};
  ServiceManifest c = service("c", 1);
  c.ports = {staticPort(80, "udp")};  // another port: udp 80 is not tcp 80
  Plan plan = schedule({a, b, c}, {node("n1")}, {});
  EXPECT_THAT(where(plan, "a"), ElementsAre("0@n1"));
  EXPECT_THAT(where(plan, "c"), ElementsAre("0@n1"));
  EXPECT_THAT(where(plan, "b"), IsEmpty());
  ASSERT_NE(pendingFor(plan, "b"), nullptr);
  EXPECT_THAT(pendingFor(plan, "b")->reasons, ElementsAre("edge-n1: host port 80/tcp taken by a"));

  // Replicas of one static-port service: one per node, whatever the strategy.
  ServiceManifest d = service("d", 3);
  d.ports = {staticPort(9000)};
  d.placement.strategy = Placement::Strategy::kBinpack;
  plan = schedule({d}, {node("n1"), node("n2")}, {});
  EXPECT_THAT(where(plan, "d"), ElementsAre("0@n1", "1@n2"));
  EXPECT_THAT(pendingFor(plan, "d")->reasons,
              ElementsAre("edge-n1: host port 9000/tcp taken by d",
                          "edge-n2: host port 9000/tcp taken by d"));
}

TEST(Schedule, OnlyClusterScopedServicesAreScheduled) {
  ServiceManifest local = service("local", 2);
  local.placement.scope = Placement::Scope::kNode;
  Plan plan = schedule({local, service("web", 1)}, {node("n1")}, {{"local", 0, "n1"}});
  EXPECT_THAT(where(plan, "local"), IsEmpty());
  EXPECT_THAT(where(plan, "web"), ElementsAre("0@n1"));
  EXPECT_THAT(plan.pending, IsEmpty());
}

TEST(Schedule, SpreadPutsReplicasOnDistinctNodesInIdOrderOnTies) {
  Plan plan = schedule({service("web", 3)}, {node("n5"), node("n2"), node("n4"), node("n1")}, {});
  EXPECT_THAT(where(plan, "web"), ElementsAre("0@n1", "1@n2", "2@n4"));
  // More replicas than nodes: evenly, then again from the least loaded.
  plan = schedule({service("web", 5)}, {node("n2"), node("n1")}, {});
  EXPECT_THAT(where(plan, "web"), ElementsAre("0@n1", "1@n2", "2@n1", "3@n2", "4@n1"));
}

TEST(Schedule, SpreadPrefersNodesWithFewerInstancesOverall) {
  ServiceManifest other = service("other", 1);
  other.placement.nodes = {"n1"};
  Plan plan = schedule({other, service("web", 1)}, {node("n1"), node("n2")}, {});
  EXPECT_THAT(where(plan, "web"), ElementsAre("0@n2"));
}

TEST(Schedule, AffinityWeightsRankNodes) {
  ServiceManifest s = service("web", 2);
  s.placement.affinity = {PlacementAffinity{"zone", "a", 50}, PlacementAffinity{"ssd", "yes", 20},
                          PlacementAffinity{"flaky", "yes", -100}};
  NodeInfo n1 = node("n1");
  n1.labels = {{"zone", "b"}};
  NodeInfo n2 = node("n2");
  n2.labels = {{"zone", "a"}, {"flaky", "yes"}};  // 50 - 100
  NodeInfo n3 = node("n3");
  n3.labels = {{"ssd", "yes"}};  // 20
  NodeInfo n4 = node("n4");
  n4.labels = {{"zone", "a"}};  // 50
  Plan plan = schedule({s}, {n1, n2, n3, n4}, {});
  EXPECT_THAT(where(plan, "web"), ElementsAre("0@n4", "1@n3"));
}

TEST(Schedule, ImageHeldFirstThenMainsThenMerit) {
  ServiceManifest s = service("web", 1);
  s.image = "registry.local/web@sha256:abcd";
  NodeInfo plain = node("n1");
  plain.merit = 100;
  NodeInfo has_digest = node("n9");
  has_digest.images = {"sha256:abcd"};
  has_digest.merit = 1;
  EXPECT_THAT(where(schedule({s}, {plain, has_digest}, {}), "web"), ElementsAre("0@n9"));

  s.image = "web:1";
  NodeInfo has_ref = node("n8");
  has_ref.images = {"web:1"};
  has_ref.power = "battery";  // the image outranks the battery
  EXPECT_THAT(where(schedule({s}, {plain, has_ref}, {}), "web"), ElementsAre("0@n8"));

  NodeInfo battery = node("n0");
  battery.power = "battery";
  battery.merit = 1000;
  NodeInfo low = node("n5");
  low.merit = 3;
  NodeInfo high = node("n6");
  high.merit = 7;
  EXPECT_THAT(where(schedule({s}, {battery, low, high}, {}), "web"), ElementsAre("0@n6"));
  EXPECT_THAT(where(schedule({s}, {battery, low}, {}), "web"), ElementsAre("0@n5"));
  EXPECT_THAT(where(schedule({s}, {battery}, {}), "web"), ElementsAre("0@n0"));
}

TEST(Schedule, BinpackFillsTheMostReservedNodeFirst) {
  ServiceManifest base = service("base", 1);
  base.resources.memory_bytes = 2 * kGi;
  base.placement.nodes = {"n3"};
  ServiceManifest s = service("batch", 4);
  s.placement.strategy = Placement::Strategy::kBinpack;
  s.resources.memory_bytes = 2 * kGi;
  NodeInfo n3 = node("n3");
  n3.allocatable_memory_bytes = 6 * kGi;
  Plan plan = schedule({base, s}, {node("n1"), node("n2"), n3}, {});
  // n3 already holds base's 2Gi: it takes two (full), then n1 (lowest id) the rest.
  EXPECT_THAT(where(plan, "batch"), ElementsAre("0@n3", "1@n3", "2@n1", "3@n1"));
}

TEST(Schedule, BinpackWithoutReservationsStacksOnOneNode) {
  ServiceManifest s = service("w", 3);
  s.placement.strategy = Placement::Strategy::kBinpack;
  Plan plan = schedule({s}, {node("n1"), node("n2")}, {});
  EXPECT_THAT(where(plan, "w"), ElementsAre("0@n1", "1@n1", "2@n1"));
}

TEST(Schedule, KeepsWhatStillFitsAndScalesByTheHighestSlots) {
  std::vector<NodeInfo> nodes = {node("n1"), node("n2"), node("n3")};
  std::vector<Assignment> current = {{"web", 0, "n3"}, {"web", 1, "n3"}, {"web", 2, "n1"}};
  // Still wanted: nothing moves, even though spread would not choose this from scratch.
  EXPECT_EQ(schedule({service("web", 3)}, nodes, current).assignments, current);
  // Scale down: the highest slot goes.
  EXPECT_THAT(where(schedule({service("web", 2)}, nodes, current), "web"),
              ElementsAre("0@n3", "1@n3"));
  // Scale up: the new slot goes to the emptiest node.
  EXPECT_THAT(where(schedule({service("web", 4)}, nodes, current), "web"),
              ElementsAre("0@n3", "1@n3", "2@n1", "3@n2"));
}

TEST(Schedule, OverCommittedNodeShedsItsHighestSlotsFirst) {
  NodeInfo n1 = node("n1");
  n1.allocatable_memory_bytes = 4 * kGi;
  NodeInfo n2 = node("n2");
  ServiceManifest s = service("web", 4);
  s.resources.memory_bytes = 2 * kGi;  // was 1Gi: four fitted on n1
  std::vector<Assignment> current = {
      {"web", 0, "n1"}, {"web", 1, "n1"}, {"web", 2, "n1"}, {"web", 3, "n1"}};
  EXPECT_THAT(where(schedule({s}, {n1, n2}, current), "web"),
              ElementsAre("0@n1", "1@n1", "2@n2", "3@n2"));
}

TEST(Schedule, OverCommittedNodeKeepsEveryServicesLowSlotsFirst) {
  NodeInfo n1 = node("n1");
  n1.allocatable_memory_bytes = 2 * kGi;
  ServiceManifest a = service("a", 2);
  a.resources.memory_bytes = kGi;
  ServiceManifest b = service("b", 2);
  b.resources.memory_bytes = kGi;
  Plan plan =
      schedule({a, b}, {n1}, {{"a", 0, "n1"}, {"a", 1, "n1"}, {"b", 0, "n1"}, {"b", 1, "n1"}});
  EXPECT_THAT(plan.assignments, ElementsAre(Assignment{"a", 0, "n1"}, Assignment{"b", 0, "n1"}));
}

TEST(Schedule, AReservationFitsExactlyOrNotAtAll) {
  ServiceManifest s = service("web", 2);
  s.resources.memory_bytes = kGi;
  s.resources.nano_cpus = 1'000'000'000;
  NodeInfo exact = node("n1");
  exact.allocatable_memory_bytes = kGi;
  exact.allocatable_cpu_millis = 1000;
  NodeInfo short_byte = node("n2");
  short_byte.allocatable_memory_bytes = kGi - 1;
  Plan plan = schedule({s}, {exact, short_byte}, {});
  EXPECT_THAT(where(plan, "web"), ElementsAre("0@n1"));
  ASSERT_NE(pendingFor(plan, "web"), nullptr);
  EXPECT_THAT(pendingFor(plan, "web")->reasons,
              ElementsAre("edge-n1: cpu 0 free < 1 requested",
                          "edge-n2: memory 1073741823 free < 1Gi requested"));
}

TEST(Schedule, CordonedNodeKeepsItsInstancesButTakesNoNewOne) {
  NodeInfo n1 = node("n1");
  n1.cordoned = true;
  Plan plan = schedule({service("web", 3)}, {n1, node("n2")}, {{"web", 0, "n1"}});
  EXPECT_THAT(where(plan, "web"), ElementsAre("0@n1", "1@n2", "2@n2"));
}

TEST(Schedule, IneligibleOrBlacklistedOrGoneNodesLoseTheirInstances) {
  NodeInfo n1 = node("n1");
  n1.blacklisted = true;
  NodeInfo n2 = node("n2");
  n2.arch = "arm64";
  ServiceManifest s = service("web", 3);
  s.placement.constraints = {constraint("arch", Op::kEq, "x86_64")};
  Plan plan =
      schedule({s}, {n1, n2, node("n3")}, {{"web", 0, "n1"}, {"web", 1, "n2"}, {"web", 2, "n7"}});
  EXPECT_THAT(where(plan, "web"), ElementsAre("0@n3", "1@n3", "2@n3"));
}

TEST(Schedule, OneSlotHeldTwiceStaysOnTheLowestId) {
  Plan plan = schedule({service("web", 2)}, {node("n1"), node("n2"), node("n3")},
                       {{"web", 0, "n3"}, {"web", 0, "n2"}, {"web", 1, "n3"}});
  EXPECT_THAT(where(plan, "web"), ElementsAre("0@n2", "1@n3"));
}

TEST(Schedule, ShortCapacityGivesEveryServiceItsFirstSlotsFirst) {
  ServiceManifest a = service("a", 3);
  a.resources.memory_bytes = kGi;
  ServiceManifest b = service("b", 3);
  b.resources.memory_bytes = kGi;
  NodeInfo n1 = node("n1");
  n1.allocatable_memory_bytes = 4 * kGi;
  Plan plan = schedule({b, a}, {n1}, {});
  EXPECT_THAT(where(plan, "a"), ElementsAre("0@n1", "1@n1"));
  EXPECT_THAT(where(plan, "b"), ElementsAre("0@n1", "1@n1"));
  ASSERT_EQ(plan.pending.size(), 2u);
  EXPECT_EQ(plan.pending[0].service, "a");
  EXPECT_EQ(plan.pending[1].service, "b");
}

TEST(Schedule, EveryNodeRunsOncePerEligibleNode) {
  ServiceManifest s = service("agent", 7);  // replicas is ignored
  s.placement.mode = Placement::Mode::kEveryNode;
  s.placement.labels = {{"camera", "yes"}};
  NodeInfo n1 = node("n1");
  n1.labels = {{"camera", "yes"}};
  NodeInfo n2 = node("n2");
  NodeInfo n3 = node("n3");
  n3.labels = {{"camera", "yes"}};
  NodeInfo n4 = node("n4");
  n4.labels = {{"camera", "yes"}};
  n4.cordoned = true;
  Plan plan = schedule({s}, {n1, n2, n3, n4}, {{"agent", 3, "n1"}});
  EXPECT_THAT(where(plan, "agent"), ElementsAre("0@n1", "0@n3"));
  EXPECT_THAT(plan.pending, IsEmpty());

  // A node that joins gets one; nothing else moves.
  NodeInfo n5 = node("n5");
  n5.labels = {{"camera", "yes"}};
  Plan after = schedule({s}, {n1, n2, n3, n4, n5}, plan.assignments);
  EXPECT_THAT(where(after, "agent"), ElementsAre("0@n1", "0@n3", "0@n5"));
}

TEST(Schedule, EveryNodeWithoutAnEligibleNodeIsPending) {
  ServiceManifest s = service("agent");
  s.placement.mode = Placement::Mode::kEveryNode;
  s.placement.constraints = {constraint("role", Op::kEq, "camera")};
  Plan plan = schedule({s}, {node("n1"), node("n2")}, {});
  ASSERT_EQ(plan.pending.size(), 1u);
  EXPECT_EQ(plan.pending[0].missing, 0);
  EXPECT_THAT(plan.pending[0].reasons,
              ElementsAre("edge-n1: no role camera", "edge-n2: no role camera"));

  // An eligible node without room: missing, with the shortfall.
  s.placement.constraints.clear();
  s.resources.memory_bytes = 16 * kGi;
  plan = schedule({s}, {node("n1")}, {});
  ASSERT_EQ(plan.pending.size(), 1u);
  EXPECT_EQ(plan.pending[0].missing, 1);
  EXPECT_THAT(plan.pending[0].reasons, ElementsAre("edge-n1: memory 8Gi free < 16Gi requested"));
}

TEST(Schedule, EveryNodeServicesArePlacedBeforeReplicas) {
  ServiceManifest agent = service("zz-agent");
  agent.placement.mode = Placement::Mode::kEveryNode;
  agent.resources.memory_bytes = kGi;
  ServiceManifest web = service("aa-web", 2);
  web.resources.memory_bytes = kGi;
  NodeInfo n1 = node("n1");
  n1.allocatable_memory_bytes = 2 * kGi;
  Plan plan = schedule({web, agent}, {n1}, {});
  EXPECT_THAT(where(plan, "zz-agent"), ElementsAre("0@n1"));
  EXPECT_THAT(where(plan, "aa-web"), ElementsAre("0@n1"));
}

TEST(Schedule, ExtremeFiguresNeitherOverflowNorFit) {
  ServiceManifest s = service("big", 2);
  s.resources.nano_cpus = std::numeric_limits<int64_t>::max() / 4;
  s.resources.memory_bytes = std::numeric_limits<int64_t>::max();
  s.placement.strategy = Placement::Strategy::kBinpack;
  s.placement.constraints = {
      constraint("cpu", Op::kGe, "huge", std::numeric_limits<int64_t>::max())};
  NodeInfo n = node("n1");
  n.allocatable_cpu_millis = std::numeric_limits<int64_t>::max();
  n.allocatable_memory_bytes = std::numeric_limits<int64_t>::max();
  Plan plan = schedule({s, service("small", 1)}, {n}, {{"big", -1, "n1"}, {"big", 1 << 30, "n1"}});
  EXPECT_THAT(where(plan, "big"), ElementsAre("0@n1"));
  ASSERT_NE(pendingFor(plan, "big"), nullptr);
  EXPECT_EQ(pendingFor(plan, "big")->missing, 1);
  EXPECT_THAT(where(plan, "small"), ElementsAre("0@n1"));
}

TEST(Schedule, DuplicateSpecsAndNodesResolveTheSameWhateverTheOrder) {
  ServiceManifest a = service("web", 1);
  ServiceManifest b = service("web", 2);
  NodeInfo n1 = node("n1");
  NodeInfo n1b = node("n1");
  n1b.arch = "arm64";
  Plan p1 = schedule({a, b}, {n1, n1b}, {});
  Plan p2 = schedule({b, a}, {n1b, n1}, {});
  EXPECT_EQ(p1.assignments, p2.assignments);
}

// ---- properties over random clusters -------------------------------------------------

struct Cluster {
  std::vector<ServiceManifest> services;
  std::vector<NodeInfo> nodes;
};

template <typename T>
const T& pick(std::mt19937& rng, const std::vector<T>& v) {
  return v[std::uniform_int_distribution<size_t>(0, v.size() - 1)(rng)];
}

bool chance(std::mt19937& rng, int percent) {
  return std::uniform_int_distribution<int>(0, 99)(rng) < percent;
}

Cluster randomCluster(uint32_t seed, int max_nodes = 16, int max_services = 8) {
  std::mt19937 rng(seed);
  Cluster c;
  int n_nodes = std::uniform_int_distribution<int>(1, max_nodes)(rng);
  for (int i = 0; i < n_nodes; ++i) {
    std::string id = (i < 10 ? "n0" : "n") + std::to_string(i);
    NodeInfo n = node(id, "edge-" + std::to_string((i * 7) % 100));
    n.arch = chance(rng, 70) ? "x86_64" : "arm64";
    n.power = chance(rng, 80) ? "mains" : "battery";
    if (chance(rng, 70)) n.labels["zone"] = pick(rng, std::vector<std::string>{"a", "b", "c"});
    if (chance(rng, 30)) n.labels["camera"] = "yes";
    if (chance(rng, 20)) n.roles.push_back("cache");
    n.allocatable_cpu_millis = pick(rng, std::vector<int64_t>{0, 1000, 2000, 4000, 8000});
    n.allocatable_memory_bytes = pick(rng, std::vector<int64_t>{0, kGi, 2 * kGi, 4 * kGi, 8 * kGi});
    n.merit = std::uniform_int_distribution<int>(0, 5)(rng);
    n.cordoned = chance(rng, 8);
    n.blacklisted = chance(rng, 4);
    if (chance(rng, 40)) n.images.insert("s1:1");
    if (chance(rng, 40)) n.images.insert("s3:1");
    c.nodes.push_back(n);
  }
  int n_services = std::uniform_int_distribution<int>(1, max_services)(rng);
  const std::vector<PlacementConstraint> constraints = {
      constraint("arch", Op::kEq, "x86_64"),  constraint("power", Op::kNe, "battery"),
      constraint("label.zone", Op::kEq, "a"), constraint("label.zone", Op::kNe, "c"),
      constraint("role", Op::kEq, "cache"),   constraint("memory", Op::kGe, "2Gi", 2 * kGi),
      constraint("cpu", Op::kGt, "1", 1000),  constraint("name", Op::kNe, "edge-7"),
  };
  for (int i = 0; i < n_services; ++i) {
    ServiceManifest s =
        service("s" + std::to_string(i), std::uniform_int_distribution<int>(0, 12)(rng));
    if (chance(rng, 15)) s.placement.mode = Placement::Mode::kEveryNode;
    if (chance(rng, 35)) s.placement.strategy = Placement::Strategy::kBinpack;
    s.resources.nano_cpus =
        pick(rng, std::vector<int64_t>{0, 0, 100'000'000, 500'000'000, 1'000'000'000});
    s.resources.memory_bytes = pick(rng, std::vector<int64_t>{0, 0, 128 * kMi, 512 * kMi, kGi});
    if (chance(rng, 20)) s.ports.push_back(staticPort(pick(rng, std::vector<int>{80, 443})));
    if (chance(rng, 50)) s.ports.push_back(PortSpec{0, "tcp", "http"});
    int n_constraints = std::uniform_int_distribution<int>(0, 2)(rng);
    for (int k = 0; k < n_constraints; ++k)
      s.placement.constraints.push_back(pick(rng, constraints));
    if (chance(rng, 10)) s.placement.labels["camera"] = "yes";
    if (chance(rng, 10)) s.placement.nodes = {"edge-0", "n01", "edge-14"};
    if (chance(rng, 30)) s.placement.affinity.push_back({"zone", "b", chance(rng, 50) ? 40 : -40});
    if (chance(rng, 10)) s.placement.scope = Placement::Scope::kNode;
    c.services.push_back(s);
  }
  return c;
}

// What the plan reserves on each node, computed here from the rules, not the scheduler.
struct Usage {
  int64_t cpu_nano = 0;
  int64_t memory = 0;
  std::multiset<std::pair<int, std::string>> ports;  // (port, protocol)
  int instances = 0;
};

std::map<std::string, Usage> usage(const Cluster& c, const std::vector<Assignment>& as) {
  std::map<std::string, const ServiceManifest*> by_name;
  for (const auto& s : c.services) by_name[s.name] = &s;
  std::map<std::string, Usage> out;
  for (const auto& a : as) {
    const ServiceManifest& s = *by_name.at(a.service);
    Usage& u = out[a.node_id];
    u.cpu_nano += s.resources.nano_cpus;
    u.memory += s.resources.memory_bytes;
    u.instances++;
    for (const auto& p : s.ports) {
      if (!p.isDynamic()) u.ports.insert({p.container_port, p.protocol});
    }
  }
  return out;
}

// Whether node n could take one more instance of s, given `u` (the oracle for feasible).
bool feasible(const ServiceManifest& s, const NodeInfo& n, const Usage& u) {
  if (!eligible(s, n)) return false;
  int64_t cpu = s.resources.nano_cpus, mem = s.resources.memory_bytes;
  if (cpu > 0 && n.allocatable_cpu_millis * 1'000'000 - u.cpu_nano < cpu) return false;
  if (mem > 0 && n.allocatable_memory_bytes - u.memory < mem) return false;
  for (const auto& p : s.ports) {
    if (!p.isDynamic() && u.ports.count({p.container_port, p.protocol})) return false;
  }
  return true;
}

void expectSamePlan(const Plan& a, const Plan& b, const std::string& what) {
  EXPECT_EQ(a.assignments, b.assignments) << what;
  ASSERT_EQ(a.pending.size(), b.pending.size()) << what;
  for (size_t i = 0; i < a.pending.size(); ++i) {
    EXPECT_EQ(a.pending[i].service, b.pending[i].service) << what;
    EXPECT_EQ(a.pending[i].missing, b.pending[i].missing) << what;
    EXPECT_EQ(a.pending[i].reasons, b.pending[i].reasons) << what;
  }
}

constexpr uint32_t kSeeds = 300;

TEST(ScheduleProperty, NeverOverCapacityAndEveryInstanceWhereItMayRun) {
  for (uint32_t seed = 1; seed <= kSeeds; ++seed) {
    Cluster c = randomCluster(seed);
    Plan plan = schedule(c.services, c.nodes, {});
    SCOPED_TRACE("seed " + std::to_string(seed));
    EXPECT_TRUE(std::is_sorted(plan.assignments.begin(), plan.assignments.end()));
    auto used = usage(c, plan.assignments);
    for (const auto& n : c.nodes) {
      const Usage& u = used[n.node_id];
      EXPECT_LE(u.cpu_nano, n.allocatable_cpu_millis * 1'000'000) << n.node_id;
      EXPECT_LE(u.memory, n.allocatable_memory_bytes) << n.node_id;
      std::set<std::pair<int, std::string>> distinct(u.ports.begin(), u.ports.end());
      EXPECT_EQ(distinct.size(), u.ports.size()) << n.node_id << ": a static port twice";
    }
    std::map<std::string, const NodeInfo*> nodes;
    for (const auto& n : c.nodes) nodes[n.node_id] = &n;
    for (const auto& s : c.services) {
      std::set<int> slots;
      std::set<std::string> on;
      int count = 0;
      for (const auto& a : plan.assignments) {
        if (a.service != s.name) continue;
        ++count;
        EXPECT_TRUE(eligible(s, *nodes.at(a.node_id))) << s.name << " on " << a.node_id;
        EXPECT_TRUE(slots.insert(a.slot).second || s.placement.mode == Placement::Mode::kEveryNode);
        EXPECT_TRUE(on.insert(a.node_id).second || s.placement.mode == Placement::Mode::kReplicas);
      }
      const Pending* p = pendingFor(plan, s.name);
      if (s.placement.scope != Placement::Scope::kCluster) {
        EXPECT_EQ(count, 0);
        EXPECT_EQ(p, nullptr);
      } else if (s.placement.mode == Placement::Mode::kReplicas) {
        for (int slot : slots) EXPECT_LT(slot, s.replicas);
        EXPECT_EQ(count + (p ? p->missing : 0), s.replicas) << s.name;
        if (p) {
          EXPECT_EQ(p->reasons.size(), c.nodes.size()) << s.name;
        }
      }
    }
  }
}

TEST(ScheduleProperty, SpreadNeverStacksWhileAnotherEligibleNodeHasRoom) {
  int distinct_checked = 0;
  for (uint32_t seed = 1; seed <= kSeeds; ++seed) {
    Cluster c = randomCluster(seed);
    Plan plan = schedule(c.services, c.nodes, {});
    SCOPED_TRACE("seed " + std::to_string(seed));
    auto used = usage(c, plan.assignments);
    for (const auto& s : c.services) {
      if (s.placement.scope != Placement::Scope::kCluster ||
          s.placement.mode != Placement::Mode::kReplicas ||
          s.placement.strategy != Placement::Strategy::kSpread) {
        continue;
      }
      std::map<std::string, int> count;
      for (const auto& a : plan.assignments) {
        if (a.service == s.name) count[a.node_id]++;
      }
      // Counts only grow while placing, room only shrinks: a node two instances behind
      // another that still has room now had room then, and spread would have taken it.
      for (const auto& x : c.nodes) {
        for (const auto& y : c.nodes) {
          if (count[x.node_id] >= count[y.node_id] + 2) {
            EXPECT_FALSE(feasible(s, y, used[y.node_id]))
                << s.name << ": " << count[x.node_id] << " on " << x.node_id << ", "
                << count[y.node_id] << " on " << y.node_id << " which has room";
          }
        }
      }
      // The plain statement: with enough feasible nodes, distinct nodes.
      if (s.resources.nano_cpus == 0 && s.resources.memory_bytes == 0 && s.ports.empty()) {
        int eligible_nodes = 0;
        for (const auto& n : c.nodes) eligible_nodes += eligible(s, n) ? 1 : 0;
        if (eligible_nodes >= s.replicas) {
          for (const auto& [id, k] : count) EXPECT_LE(k, 1) << s.name << " on " << id;
          ++distinct_checked;
        }
      }
    }
  }
  EXPECT_GT(distinct_checked, 20);  // the generator does produce the case
}

// Binpack, one replica at a time: raising replicas by one with the previous plan as
// current places exactly that slot, on a feasible node with the most reserved (cpu
// share + memory share, in ppm of what the node offers) — nothing else moves.
TEST(ScheduleProperty, BinpackFillsTheMostReservedFeasibleNodeFirst) {
  int steps = 0;
  for (uint32_t seed = 1; seed <= kSeeds; ++seed) {
    Cluster c = randomCluster(seed);
    ServiceManifest packed = service("packed", 0);
    packed.placement.strategy = Placement::Strategy::kBinpack;
    std::mt19937 rng(seed * 7919);
    packed.resources.nano_cpus = pick(rng, std::vector<int64_t>{0, 250'000'000, 1'000'000'000});
    packed.resources.memory_bytes = pick(rng, std::vector<int64_t>{0, 256 * kMi, kGi});
    c.services.push_back(packed);
    SCOPED_TRACE("seed " + std::to_string(seed));
    Plan prev = schedule(c.services, c.nodes, {});
    for (int k = 1; k <= 10; ++k) {
      c.services.back().replicas = k;
      Plan next = schedule(c.services, c.nodes, prev.assignments);
      std::vector<Assignment> added;
      std::set_difference(next.assignments.begin(), next.assignments.end(),
                          prev.assignments.begin(), prev.assignments.end(),
                          std::back_inserter(added));
      EXPECT_TRUE(std::includes(next.assignments.begin(), next.assignments.end(),
                                prev.assignments.begin(), prev.assignments.end()));
      auto used = usage(c, prev.assignments);
      auto ppm = [&](const NodeInfo& n) {
        const Usage& u = used[n.node_id];
        int64_t p = 0;
        if (n.allocatable_cpu_millis > 0) {
          p += static_cast<int64_t>(static_cast<__int128>(u.cpu_nano) * 1'000'000 /
                                    (n.allocatable_cpu_millis * 1'000'000));
        }
        if (n.allocatable_memory_bytes > 0) {
          p += static_cast<int64_t>(static_cast<__int128>(u.memory) * 1'000'000 /
                                    n.allocatable_memory_bytes);
        }
        return p;
      };
      int64_t best = -1;
      for (const auto& n : c.nodes) {
        if (feasible(packed, n, used[n.node_id])) best = std::max(best, ppm(n));
      }
      if (best < 0) {
        EXPECT_THAT(added, IsEmpty());
        break;
      }
      ASSERT_EQ(added.size(), 1u);
      EXPECT_EQ(added[0].service, "packed");
      EXPECT_EQ(added[0].slot, k - 1);
      for (const auto& n : c.nodes) {
        if (n.node_id == added[0].node_id) {
          EXPECT_TRUE(feasible(packed, n, used[n.node_id]));
          EXPECT_EQ(ppm(n), best) << "placed on " << n.node_id;
        }
      }
      ++steps;
      prev = next;
    }
  }
  EXPECT_GT(steps, 500);
}

TEST(ScheduleProperty, StableUnderReRuns) {
  for (uint32_t seed = 1; seed <= kSeeds; ++seed) {
    Cluster c = randomCluster(seed);
    Plan plan = schedule(c.services, c.nodes, {});
    Plan again = schedule(c.services, c.nodes, plan.assignments);
    expectSamePlan(plan, again, "seed " + std::to_string(seed));
  }
}

TEST(ScheduleProperty, IndependentOfInputOrder) {
  for (uint32_t seed = 1; seed <= kSeeds; ++seed) {
    Cluster c = randomCluster(seed);
    // A current state worth the name: a plan of a smaller cluster, with leftovers of
    // gone services and nodes, a slot held twice and slots out of range.
    Cluster smaller = c;
    if (smaller.nodes.size() > 1) smaller.nodes.pop_back();
    for (auto& s : smaller.services) s.replicas = std::max(0, s.replicas - 1);
    std::vector<Assignment> current = schedule(smaller.services, smaller.nodes, {}).assignments;
    current.push_back({"gone", 0, c.nodes[0].node_id});
    current.push_back({"s0", 0, "gone-node"});
    current.push_back({"s0", 99, c.nodes[0].node_id});
    current.push_back({"s1", 0, c.nodes.back().node_id});
    current.push_back({"s1", 0, c.nodes.back().node_id});
    Plan base = schedule(c.services, c.nodes, current);
    std::mt19937 rng(seed);
    for (int round = 0; round < 3; ++round) {
      Cluster shuffled = c;
      std::vector<Assignment> cur = current;
      std::shuffle(shuffled.services.begin(), shuffled.services.end(), rng);
      std::shuffle(shuffled.nodes.begin(), shuffled.nodes.end(), rng);
      std::shuffle(cur.begin(), cur.end(), rng);
      expectSamePlan(base, schedule(shuffled.services, shuffled.nodes, cur),
                     "seed " + std::to_string(seed) + " round " + std::to_string(round));
    }
  }
}

TEST(ScheduleProperty, ARemovedNodesSlotsMoveAndNothingElse) {
  int moved = 0;
  for (uint32_t seed = 1; seed <= kSeeds; ++seed) {
    Cluster c = randomCluster(seed);
    if (c.nodes.size() < 2) continue;
    Plan before = schedule(c.services, c.nodes, {});
    std::mt19937 rng(seed);
    size_t gone = std::uniform_int_distribution<size_t>(0, c.nodes.size() - 1)(rng);
    std::string gone_id = c.nodes[gone].node_id;
    std::vector<NodeInfo> rest = c.nodes;
    rest.erase(rest.begin() + gone);
    Plan after = schedule(c.services, rest, before.assignments);
    SCOPED_TRACE("seed " + std::to_string(seed) + " without " + gone_id);

    std::set<std::pair<std::string, int>> lost;  // replica slots that were on the gone node
    for (const auto& a : before.assignments) {
      if (a.node_id != gone_id) {
        EXPECT_TRUE(std::binary_search(after.assignments.begin(), after.assignments.end(), a))
            << a.service << "/" << a.slot << " on " << a.node_id << " moved";
      } else {
        lost.insert({a.service, a.slot});
      }
    }
    std::map<std::string, const ServiceManifest*> by_name;
    for (const auto& s : c.services) by_name[s.name] = &s;
    for (const auto& a : after.assignments) {
      EXPECT_NE(a.node_id, gone_id);
      if (!std::binary_search(before.assignments.begin(), before.assignments.end(), a)) {
        EXPECT_EQ(by_name.at(a.service)->placement.mode, Placement::Mode::kReplicas);
        EXPECT_TRUE(lost.count({a.service, a.slot})) << a.service << "/" << a.slot << " is new";
        ++moved;
      }
    }
  }
  EXPECT_GT(moved, 50);
}

TEST(ScheduleProperty, EveryNodeGivesOnePerFeasibleNode) {
  int checked = 0;
  for (uint32_t seed = 1; seed <= kSeeds; ++seed) {
    Cluster c = randomCluster(seed);
    Plan plan = schedule(c.services, c.nodes, {});
    SCOPED_TRACE("seed " + std::to_string(seed));
    auto used = usage(c, plan.assignments);
    for (const auto& s : c.services) {
      if (s.placement.scope != Placement::Scope::kCluster ||
          s.placement.mode != Placement::Mode::kEveryNode) {
        continue;
      }
      for (const auto& n : c.nodes) {
        int here = 0;
        for (const auto& a : plan.assignments) {
          if (a.service == s.name && a.node_id == n.node_id) {
            ++here;
            EXPECT_EQ(a.slot, 0);
          }
        }
        EXPECT_LE(here, 1);
        // A node without one could not take it.
        if (here == 0) {
          EXPECT_FALSE(feasible(s, n, used[n.node_id])) << s.name << " " << n.node_id;
        } else {
          EXPECT_TRUE(eligible(s, n)) << s.name << " " << n.node_id;
        }
        ++checked;
      }
    }
  }
  EXPECT_GT(checked, 100);
}

}  // namespace
}  // namespace edge::cluster
