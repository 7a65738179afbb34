#include "cluster/controller.h"

#include <algorithm>
#include <memory>

#include <gtest/gtest.h>

#include "common/crypto.h"

namespace edge::cluster {
namespace {

using orchestrator::ServiceManifest;
using Steady = std::chrono::steady_clock;
using namespace std::chrono_literals;

const std::string kN1 = "1111111111111111";
const std::string kN2 = "2222222222222222";
const std::string kN3 = "3333333333333333";
const std::string kN4 = "4444444444444444";

NodeInfo node(const std::string& id, std::map<std::string, std::string> labels = {}) {
  NodeInfo n;
  n.node_id = id;
  n.name = "edge-" + id.substr(0, 1);
  n.arch = "x86_64";
  n.os = "linux";
  n.runtime = "light";
  n.power = "mains";
  n.labels = std::move(labels);
  n.allocatable_cpu_millis = 4000;
  n.allocatable_memory_bytes = int64_t{8} << 30;
  return n;
}

ServiceManifest spec(const std::string& yaml_spec) {
  std::string text =
      "apiVersion: edge/v1\nkind: Service\nmetadata: {name: web}\nspec:\n" + yaml_spec;
  auto parsed = orchestrator::parseManifests(text, "test");
  EXPECT_TRUE(parsed.isOk()) << parsed.status().toString();
  return parsed.isOk() ? (*parsed)[0] : ServiceManifest{};
}

ServiceManifest web3(const std::string& extra = "") {
  return spec("  image: busybox\n  replicas: 3\n  placement: {scope: cluster, strategy: spread}\n" +
              extra);
}

class WallClock : public Clock {
 public:
  SteadyTime now() const override { return SteadyTime{}; }
  WallTime wallNow() const override { return wall; }
  void sleepFor(Duration) override {}
  WallTime wall = WallTime(std::chrono::seconds(1'800'000'000));
};

// 64 bytes, like an Ed25519 signature, that only `author` "makes" for `bytes`.
std::string fakeSignature(const std::string& author, const std::string& bytes) {
  std::string h = crypto::sha256Hex(author + "|" + bytes);
  return h.substr(0, 64);
}

// One node's controller with its hooks recorded.
struct Node {
  explicit Node(std::string id_in, WallClock& clock) : id(std::move(id_in)), hlc(clock, id) {
    ClusterController::Hooks h;
    h.persist = [this](const ClusterState& s) {
      persisted = s;
      ++persists;
      return Status::ok();
    };
    h.publish = [this](const ClusterState& s) { published.push_back(s); };
    h.run = [this](const std::vector<LocalShare>& s) {
      running = s;
      ++runs;
    };
    h.sign = [this](const std::string& bytes) { return fakeSignature(id, bytes); };
    h.verify = [this](const std::string& author, const std::string& bytes, const std::string& sig) {
      return trusted.count(author) && sig == fakeSignature(author, bytes);
    };
    h.event = [this](const std::string& type, const std::string& service,
                     const std::string& detail) {
      events.push_back(type + " " + service + " " + detail);
    };
    ctl = std::make_unique<ClusterController>(id, hlc, h);
  }

  int instances(const std::string& service) const {
    for (const LocalShare& s : running) {
      if (s.manifest.name == service) return static_cast<int>(s.slots.size());
    }
    return 0;
  }
  bool sawEvent(const std::string& prefix) const {
    return std::any_of(events.begin(), events.end(),
                       [&](const std::string& e) { return e.rfind(prefix, 0) == 0; });
  }

  std::string id;
  HlcClock hlc;
  std::unique_ptr<ClusterController> ctl;
  std::set<std::string> trusted = {kN1, kN2, kN3, kN4};
  ClusterState persisted;
  int persists = 0;
  std::vector<ClusterState> published;
  std::vector<LocalShare> running;
  int runs = 0;
  std::vector<std::string> events;
};

std::set<std::string> nodesOf(const ClusterState& s, const std::string& service) {
  std::set<std::string> out;
  for (const Assignment& a : s.assignments()) {
    if (a.service == service) out.insert(a.node_id);
  }
  return out;
}

int countOf(const ClusterState& s, const std::string& service) {
  return static_cast<int>(std::count_if(s.assignments().begin(), s.assignments().end(),
                                        [&](const Assignment& a) { return a.service == service; }));
}

class ControllerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    for (const auto& id : {kN1, kN2, kN3, kN4}) nodes_[id] = std::make_unique<Node>(id, clock_);
    sup().ctl->setSupernode(true);
    sup().ctl->setMembers({node(kN1), node(kN2), node(kN3), node(kN4)}, t0_);
  }
  Node& sup() { return *nodes_[kN1]; }
  Node& at(const std::string& id) { return *nodes_[id]; }
  // What the replication would do: every member takes the supernode's last copy.
  void replicate() {
    ASSERT_FALSE(sup().published.empty());
    for (const auto& [id, n] : nodes_) {
      if (id != kN1) n->ctl->receive(sup().published.back());
    }
  }
  // A node other than the supernode that holds an instance of web.
  std::string otherHolder() {
    for (const std::string& id : nodesOf(sup().ctl->state(), "web")) {
      if (id != kN1) return id;
    }
    ADD_FAILURE() << "only the supernode holds web";
    return kN1;
  }
  static std::vector<NodeInfo> allBut(const std::string& gone) {
    std::vector<NodeInfo> out;
    for (const auto& id : {kN1, kN2, kN3, kN4}) {
      if (id != gone) out.push_back(node(id));
    }
    return out;
  }
  int running(const std::string& service) {
    int total = 0;
    for (const auto& [id, n] : nodes_) total += n->instances(service);
    return total;
  }

  WallClock clock_;
  Steady::time_point t0_ = Steady::time_point(1000s);
  std::map<std::string, std::unique_ptr<Node>> nodes_;
};

TEST_F(ControllerTest, ApplySpreadsReplicasOverDistinctNodesAndEveryMemberRunsItsShare) {
  auto out = sup().ctl->apply({web3()}, kN1, false);
  ASSERT_TRUE(out.isOk()) << out.status().toString();
  ASSERT_EQ(out->size(), 1u);
  EXPECT_EQ((*out)[0].action, orchestrator::ApplyOutcome::Action::kCreated);
  const ClusterState& s = sup().ctl->state();
  EXPECT_EQ(countOf(s, "web"), 3);
  EXPECT_EQ(nodesOf(s, "web").size(), 3u);
  EXPECT_GT(sup().persists, 0);
  replicate();

  EXPECT_EQ(running("web"), 3);
  for (const auto& [id, n] : nodes_) {
    EXPECT_LE(n->instances("web"), 1) << id;
    EXPECT_EQ(n->persisted.digest(), s.digest()) << id;
  }
  // The same apply again changes nothing and publishes nothing new.
  size_t published = sup().published.size();
  auto again = sup().ctl->apply({web3()}, kN1, false);
  ASSERT_TRUE(again.isOk());
  EXPECT_EQ((*again)[0].action, orchestrator::ApplyOutcome::Action::kUnchanged);
  EXPECT_EQ(sup().published.size(), published);
}

TEST_F(ControllerTest, AMemberDoesNotApplyItForwards) {
  auto out = at(kN2).ctl->apply({web3()}, kN2, false);
  ASSERT_FALSE(out.isOk());
  EXPECT_EQ(out.status().code(), StatusCode::kFailedPrecondition);
}

TEST_F(ControllerTest, ASpecWhoseSignatureDoesNotHoldIsNeverRun) {
  ASSERT_TRUE(sup().ctl->apply({web3()}, kN1, false).isOk());
  at(kN2).trusted.erase(kN1);  // kN2 does not trust the author
  at(kN2).ctl->receive(sup().published.back());
  EXPECT_EQ(at(kN2).instances("web"), 0);
  EXPECT_TRUE(at(kN2).sawEvent("placement.refused web"));
  // A forged copy: the manifest changed after signing.
  ClusterState forged = sup().published.back();
  SpecEntry e = *forged.spec("web");
  e.manifest_json = orchestrator::manifestToJson(web3("  env: {EVIL: 1}\n"));
  e.hlc.logical += 1;
  forged.put(e);
  at(kN3).ctl->receive(forged);
  EXPECT_EQ(at(kN3).ctl->state().spec("web"), nullptr);
  EXPECT_TRUE(at(kN3).sawEvent("placement.refused web"));
}

TEST_F(ControllerTest, ANodeGoneIsReplacedAtOnceWhenTheProbeSaysSo) {
  ASSERT_TRUE(sup().ctl->apply({web3()}, kN1, false).isOk());
  std::set<std::string> before = nodesOf(sup().ctl->state(), "web");
  std::string victim = otherHolder();
  std::vector<NodeInfo> rest = allBut(victim);
  sup().ctl->setMembers(rest, t0_ + 1s);
  // Suspect: nothing moves before a probe or the window.
  EXPECT_EQ(nodesOf(sup().ctl->state(), "web"), before);
  EXPECT_EQ(sup().ctl->suspects(), std::vector<std::string>{victim});
  sup().ctl->reportProbe(victim, Probe::kGone, t0_ + 1200ms);
  std::set<std::string> after = nodesOf(sup().ctl->state(), "web");
  EXPECT_EQ(after.size(), 3u);
  EXPECT_FALSE(after.count(victim));
  EXPECT_TRUE(sup().sawEvent("placement.node_lost"));
}

TEST_F(ControllerTest, EdgedDownMovesNothingAndItsReturnChangesNothing) {
  ASSERT_TRUE(sup().ctl->apply({web3()}, kN1, false).isOk());
  std::set<std::string> before = nodesOf(sup().ctl->state(), "web");
  std::string victim = otherHolder();
  std::vector<NodeInfo> rest = allBut(victim);
  size_t published = sup().published.size();
  sup().ctl->setMembers(rest, t0_ + 1s);
  sup().ctl->reportProbe(victim, Probe::kEdgedDown, t0_ + 1100ms);
  sup().ctl->tick(t0_ + 30s);  // well past the suspect window, inside the restart grace
  EXPECT_EQ(nodesOf(sup().ctl->state(), "web"), before);
  sup().ctl->setMembers({node(kN1), node(kN2), node(kN3), node(kN4)}, t0_ + 31s);
  EXPECT_EQ(nodesOf(sup().ctl->state(), "web"), before);
  EXPECT_EQ(sup().published.size(), published);  // nothing re-placed, nothing restarted
  // Past the grace it is given up.
  sup().ctl->setMembers(rest, t0_ + 40s);
  sup().ctl->reportProbe(victim, Probe::kEdgedDown, t0_ + 40s);
  sup().ctl->tick(t0_ + 40s + ClusterController::kEdgedRestartGrace);
  EXPECT_FALSE(nodesOf(sup().ctl->state(), "web").count(victim));
}

TEST_F(ControllerTest, AnUnprobedSuspectIsGivenUpAfterTheWindow) {
  ASSERT_TRUE(sup().ctl->apply({web3()}, kN1, false).isOk());
  std::string victim = otherHolder();
  std::vector<NodeInfo> rest = allBut(victim);
  sup().ctl->setMembers(rest, t0_);
  sup().ctl->tick(t0_ + ClusterController::kSuspectWindow - 1ms);
  EXPECT_TRUE(nodesOf(sup().ctl->state(), "web").count(victim));
  sup().ctl->tick(t0_ + ClusterController::kSuspectWindow);
  EXPECT_FALSE(nodesOf(sup().ctl->state(), "web").count(victim));
  EXPECT_EQ(countOf(sup().ctl->state(), "web"), 3);
}

TEST_F(ControllerTest, LostAfterDelaysTheReplacementAndReplaceFalseNeverMovesIt) {
  ServiceManifest slow = web3("  disconnect: {replace: true, lostAfter: 30s}\n");
  ServiceManifest stay = spec(
      "  image: busybox\n  replicas: 3\n  placement: {scope: cluster}\n"
      "  disconnect: {replace: false}\n");
  stay.name = "stay";
  ASSERT_TRUE(sup().ctl->apply({slow, stay}, kN1, false).isOk());
  std::string victim = otherHolder();
  ASSERT_TRUE(nodesOf(sup().ctl->state(), "stay").count(victim));
  std::vector<NodeInfo> rest = allBut(victim);
  sup().ctl->setMembers(rest, t0_);
  sup().ctl->reportProbe(victim, Probe::kGone, t0_);
  sup().ctl->tick(t0_ + 29s);
  EXPECT_TRUE(nodesOf(sup().ctl->state(), "web").count(victim));
  sup().ctl->tick(t0_ + 30s);
  EXPECT_FALSE(nodesOf(sup().ctl->state(), "web").count(victim));
  EXPECT_EQ(countOf(sup().ctl->state(), "web"), 3);
  EXPECT_TRUE(nodesOf(sup().ctl->state(), "stay").count(victim));
}

TEST_F(ControllerTest, ASuccessorSupernodeMovesNothing) {
  ASSERT_TRUE(sup().ctl->apply({web3()}, kN1, false).isOk());
  replicate();
  std::string plan = sup().ctl->state().digest();
  Node& next = at(kN2);
  size_t runs = next.runs;
  next.ctl->setMembers({node(kN2), node(kN3), node(kN4), node(kN1)}, t0_ + 2s);
  next.ctl->setSupernode(true);
  EXPECT_EQ(next.ctl->state().digest(), plan);
  EXPECT_EQ(next.runs, runs);  // no restart of what it runs
}

TEST_F(ControllerTest, APartitionHealsToExactlyTheReplicasAndAConflictIsReported) {
  ASSERT_TRUE(sup().ctl->apply({web3()}, kN1, false).isOk());
  replicate();
  // Partition: {1,2} and {3,4}; kN3 becomes the other side's supernode.
  Node& other = at(kN3);
  other.ctl->setMembers({node(kN3), node(kN4)}, t0_ + 1s);
  other.ctl->setSupernode(true);
  sup().ctl->setMembers({node(kN1), node(kN2)}, t0_ + 1s);
  sup().ctl->reportProbe(kN3, Probe::kGone, t0_ + 1s);
  sup().ctl->reportProbe(kN4, Probe::kGone, t0_ + 1s);
  other.ctl->reportProbe(kN1, Probe::kGone, t0_ + 1s);
  other.ctl->reportProbe(kN2, Probe::kGone, t0_ + 1s);
  other.ctl->tick(t0_ + 10s);
  sup().ctl->tick(t0_ + 10s);
  // Each side keeps 3 replicas on what it has.
  EXPECT_EQ(countOf(sup().ctl->state(), "web"), 3);
  EXPECT_EQ(countOf(other.ctl->state(), "web"), 3);
  // Both change the spec apart.
  clock_.wall += 1s;
  ASSERT_TRUE(sup().ctl->apply({web3("  env: {SIDE: a}\n")}, kN1, false).isOk());
  clock_.wall += 1s;
  ASSERT_TRUE(other.ctl->apply({web3("  env: {SIDE: b}\n")}, kN3, false).isOk());
  // Heal: kN1 stays supernode and takes in the other side's copy.
  other.ctl->setSupernode(false);
  sup().ctl->setMembers({node(kN1), node(kN2), node(kN3), node(kN4)}, t0_ + 20s);
  sup().ctl->mergeFrom(other.ctl->state());
  const ClusterState& s = sup().ctl->state();
  EXPECT_EQ(countOf(s, "web"), 3);
  EXPECT_NE(s.spec("web")->manifest_json.find("\"SIDE\""), std::string::npos);
  EXPECT_NE(s.spec("web")->manifest_json.find("\"b\""), std::string::npos);  // the later
  EXPECT_TRUE(sup().sawEvent("placement.conflict web"));
  replicate();
  EXPECT_EQ(running("web"), 3);
}

TEST_F(ControllerTest, DrainMovesInstancesCordonKeepsThem) {
  ASSERT_TRUE(sup().ctl->apply({web3()}, kN1, false).isOk());
  std::string n = otherHolder();
  ASSERT_TRUE(sup().ctl->cordon(n, true, false).isOk());
  EXPECT_TRUE(nodesOf(sup().ctl->state(), "web").count(n));
  ASSERT_TRUE(sup().ctl->cordon(n, true, true).isOk());
  EXPECT_FALSE(nodesOf(sup().ctl->state(), "web").count(n));
  EXPECT_EQ(countOf(sup().ctl->state(), "web"), 3);
}

TEST_F(ControllerTest, RemoveStopsEveryInstanceAndAReplayCannotResurrectIt) {
  ASSERT_TRUE(sup().ctl->apply({web3()}, kN1, false).isOk());
  replicate();
  ClusterState old_copy = sup().published.back();
  ASSERT_TRUE(sup().ctl->remove("web", kN1).isOk());
  EXPECT_EQ(countOf(sup().ctl->state(), "web"), 0);
  replicate();
  EXPECT_EQ(running("web"), 0);
  // An old copy arriving late (a slow member) does not bring it back.
  at(kN2).ctl->receive(old_copy);
  EXPECT_EQ(at(kN2).instances("web"), 0);
  EXPECT_EQ(sup().ctl->remove("web", kN1).code(), StatusCode::kNotFound);
}

TEST_F(ControllerTest, ARebootWithoutNetworkRunsItsShareFromItsOwnCopy) {
  ASSERT_TRUE(sup().ctl->apply({web3()}, kN1, false).isOk());
  replicate();
  std::string holder = *nodesOf(sup().ctl->state(), "web").rbegin();
  ClusterState saved = at(holder).persisted;
  Node rebooted(holder, clock_);
  rebooted.ctl->restore(saved);
  EXPECT_EQ(rebooted.instances("web"), 1);
}

TEST_F(ControllerTest, APendingServiceSaysWhyAndStartsWhenANodeFits) {
  ServiceManifest cam = spec(
      "  image: busybox\n  placement: {scope: cluster, constraints: [\"label.camera == yes\"]}\n");
  cam.name = "cam";
  ASSERT_TRUE(sup().ctl->apply({cam}, kN1, false).isOk());
  ASSERT_EQ(sup().ctl->pending().size(), 1u);
  EXPECT_TRUE(sup().sawEvent("placement.pending cam"));
  EXPECT_EQ(countOf(sup().ctl->state(), "cam"), 0);
  sup().ctl->setMembers({node(kN1), node(kN2), node(kN3), node(kN4, {{"camera", "yes"}})},
                        t0_ + 1s);
  EXPECT_EQ(nodesOf(sup().ctl->state(), "cam"), std::set<std::string>{kN4});
  EXPECT_TRUE(sup().ctl->pending().empty());
}

}  // namespace
}  // namespace edge::cluster
