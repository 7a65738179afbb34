#include "cluster/cluster_state.h"

#include <algorithm>
#include <functional>
#include <random>

#include <gtest/gtest.h>

namespace edge::cluster {
namespace {

const std::string kA = "aaaaaaaaaaaaaaaa";
const std::string kB = "bbbbbbbbbbbbbbbb";
const std::string kC = "cccccccccccccccc";

// A clock whose wall time a test sets (FakeClock's only moves forward).
class SetClock : public Clock {
 public:
  SteadyTime now() const override { return SteadyTime{}; }
  WallTime wallNow() const override { return wall; }
  void sleepFor(Duration) override {}
  WallTime wall = WallTime(std::chrono::seconds(1'800'000'000));
};

Hlc stamp(int64_t ms, uint32_t logical = 0, const std::string& node = kA) {
  return Hlc{ms, logical, node};
}

SpecEntry entry(const std::string& name, Hlc hlc, const std::string& manifest = "{}") {
  SpecEntry e;
  e.name = name;
  e.hlc = std::move(hlc);
  e.manifest_json = manifest;
  e.author = e.hlc.node_id;
  e.signature = std::string(64, '\x01');
  return e;
}

// ---------------------------------------------------------------- Hlc

TEST(HlcTest, OrdersByWallThenCounterThenNode) {
  EXPECT_LT(stamp(1), stamp(2));
  EXPECT_LT(stamp(2, 0), stamp(2, 1));
  EXPECT_LT(stamp(2, 1, kA), stamp(2, 1, kB));
  EXPECT_LT(Hlc{}, stamp(1));
}

TEST(HlcTest, TextRoundTripAndErrors) {
  Hlc h = stamp(1765152000123, 4, "1f2e3d4c5b6a7980");
  EXPECT_EQ(h.toString(), "1765152000123.4@1f2e3d4c5b6a7980");
  auto back = Hlc::parse(h.toString());
  ASSERT_TRUE(back.isOk()) << back.status().toString();
  EXPECT_EQ(*back, h);
  auto zero = Hlc::parse("0");
  ASSERT_TRUE(zero.isOk());
  EXPECT_TRUE(zero->isZero());
  for (const char* bad : {"", "12", "12.3", "12@ab", "x.1@ab", "12.y@ab", "12.1@", "12.1@XY",
                          "-5.1@ab", "12.1@ab cd", "99999999999999999999.1@ab"}) {
    SCOPED_TRACE(bad);
    auto r = Hlc::parse(bad);
    ASSERT_FALSE(r.isOk());
    EXPECT_NE(r.status().message().find("expected <milliseconds>.<counter>@<node id>"),
              std::string::npos);
  }
}

TEST(HlcClockTest, MonotonicEvenWhenTheWallClockStandsStillOrGoesBack) {
  SetClock clock;
  HlcClock hlc(clock, kA);
  Hlc a = hlc.now();
  Hlc b = hlc.now();
  EXPECT_LT(a, b);
  clock.wall -= std::chrono::seconds(30);
  Hlc c = hlc.now();
  EXPECT_LT(b, c);
}

TEST(HlcClockTest, ObservedStampsOrderBeforeLaterOnesButNotFromFarAhead) {
  SetClock clock;
  HlcClock hlc(clock, kA);
  Hlc mine = hlc.now();
  Hlc theirs{mine.wall_ms + 5000, 7, kB};  // a peer whose clock is 5 s ahead
  ASSERT_TRUE(hlc.observe(theirs).isOk());
  Hlc next = hlc.now();
  EXPECT_LT(theirs, next);
  Hlc wild{mine.wall_ms + HlcClock::kMaxAheadMs + 1000, 0, kB};
  Status st = hlc.observe(wild);
  EXPECT_EQ(st.code(), StatusCode::kFailedPrecondition);
  EXPECT_LT(hlc.now(), wild);  // not dragged along
}

// ---------------------------------------------------------------- registers

TEST(ClusterStateTest, LaterVersionWinsAndRemembersWhatItReplaced) {
  ClusterState s;
  EXPECT_TRUE(s.put(entry("web", stamp(10), "v1")));
  EXPECT_FALSE(s.put(entry("web", stamp(5), "old")));
  EXPECT_FALSE(s.put(entry("web", stamp(10), "same stamp")));
  EXPECT_TRUE(s.put(entry("web", stamp(20), "v2")));
  ASSERT_NE(s.spec("web"), nullptr);
  EXPECT_EQ(s.spec("web")->manifest_json, "v2");
  EXPECT_EQ(s.spec("web")->replaced, std::vector<Hlc>{stamp(10)});
  for (int i = 0; i < 20; ++i) s.put(entry("web", stamp(30 + i)));
  EXPECT_EQ(s.spec("web")->replaced.size(), kHistoryDepth);
  EXPECT_EQ(s.spec("web")->replaced.front(), stamp(48));
}

TEST(ClusterStateTest, TombstoneIsAVersionLikeAnyOther) {
  ClusterState s;
  s.put(entry("web", stamp(10)));
  SpecEntry del = entry("web", stamp(20), "");
  del.deleted = true;
  EXPECT_TRUE(s.put(del));
  // An older write arriving late does not bring it back.
  EXPECT_FALSE(s.put(entry("web", stamp(15))));
  EXPECT_TRUE(s.spec("web")->deleted);
}

TEST(ClusterStateTest, CordonsAreRegistersToo) {
  ClusterState s;
  EXPECT_TRUE(s.putCordon({kB, stamp(10), true, false}));
  EXPECT_TRUE(s.cordoned(kB));
  EXPECT_FALSE(s.putCordon({kB, stamp(5), false, false}));
  EXPECT_TRUE(s.putCordon({kB, stamp(11), false, false}));
  EXPECT_FALSE(s.cordoned(kB));
  EXPECT_FALSE(s.cordoned(kC));
}

// ---------------------------------------------------------------- merge

TEST(ClusterStateTest, MergeOfAStraightLineOfChangesIsNoConflict) {
  ClusterState base;
  base.put(entry("web", stamp(10), "v1"));
  ClusterState ahead = base;
  ahead.put(entry("web", stamp(20, 0, kB), "v2"));
  ahead.put(entry("web", stamp(30, 0, kB), "v3"));
  ClusterState behind = base;
  EXPECT_TRUE(behind.merge(ahead).empty());
  EXPECT_EQ(behind.spec("web")->manifest_json, "v3");
  // And the other way round: the newer side keeps its version, no conflict either.
  EXPECT_TRUE(ahead.merge(base).empty());
  EXPECT_EQ(ahead.spec("web")->manifest_json, "v3");
}

TEST(ClusterStateTest, ChangesOnBothSidesOfAPartitionAreAConflictTheLaterWins) {
  ClusterState base;
  base.put(entry("web", stamp(10), "v1"));
  base.put(entry("db", stamp(10), "d1"));
  ClusterState left = base;
  ClusterState right = base;
  left.put(entry("web", stamp(20, 0, kA), "left"));
  right.put(entry("web", stamp(25, 0, kB), "right"));
  right.put(entry("db", stamp(26, 0, kB), "d2"));  // changed on one side only
  ClusterState l = left;
  auto conflicts = l.merge(right);
  ASSERT_EQ(conflicts.size(), 1u);
  EXPECT_EQ(conflicts[0].service, "web");
  EXPECT_EQ(conflicts[0].kept, stamp(25, 0, kB));
  EXPECT_EQ(conflicts[0].lost, stamp(20, 0, kA));
  EXPECT_EQ(l.spec("web")->manifest_json, "right");
  EXPECT_EQ(l.spec("db")->manifest_json, "d2");
  // Both sides end up with the same state, whichever merges which.
  ClusterState r = right;
  EXPECT_EQ(r.merge(left).size(), 1u);
  EXPECT_EQ(r.digest(), l.digest());
}

TEST(ClusterStateTest, MergeIsCommutativeAssociativeAndIdempotent) {
  std::mt19937 rng(42);
  std::vector<std::string> names = {"a", "b", "c", "d"};
  std::vector<std::string> nodes = {kA, kB, kC};
  for (int round = 0; round < 200; ++round) {
    std::vector<ClusterState> copies(3);
    for (auto& c : copies) {
      int n = static_cast<int>(rng() % 6);
      for (int i = 0; i < n; ++i) {
        // Equal stamps mean the same event: what a version holds follows from its stamp.
        Hlc h = stamp(1 + rng() % 50, rng() % 3, nodes[rng() % nodes.size()]);
        SpecEntry e = entry(names[rng() % names.size()], h, "m" + h.toString());
        e.deleted = h.wall_ms % 5 == 0;
        if (e.deleted) e.manifest_json.clear();
        c.put(e);
      }
      Hlc ch = stamp(1 + rng() % 50, rng() % 3, nodes[rng() % nodes.size()]);
      c.putCordon({nodes[rng() % nodes.size()], ch, ch.wall_ms % 2 == 0, false});
      std::vector<Assignment> as;
      for (int i = 0; i < 3; ++i) {
        as.push_back({names[rng() % names.size()], static_cast<int>(rng() % 3),
                      nodes[rng() % nodes.size()]});
      }
      c.setAssignments(as, stamp(1 + rng() % 50));
    }
    ClusterState ab = copies[0];
    ab.merge(copies[1]);
    ClusterState ba = copies[1];
    ba.merge(copies[0]);
    // Registers: same winners either way (histories may differ in what each side saw).
    for (const auto& [name, e] : ab.specs()) {
      ASSERT_NE(ba.spec(name), nullptr);
      EXPECT_EQ(ba.spec(name)->hlc, e.hlc);
      EXPECT_EQ(ba.spec(name)->manifest_json, e.manifest_json);
    }
    EXPECT_EQ(ab.cordons(), ba.cordons());
    EXPECT_EQ(ab.assignments(), ba.assignments());
    EXPECT_EQ(ab.digest(), ba.digest());
    ClusterState ab_c = ab;
    ab_c.merge(copies[2]);
    ClusterState bc = copies[1];
    bc.merge(copies[2]);
    ClusterState a_bc = copies[0];
    a_bc.merge(bc);
    for (const auto& [name, e] : ab_c.specs()) {
      ASSERT_NE(a_bc.spec(name), nullptr);
      EXPECT_EQ(a_bc.spec(name)->hlc, e.hlc);
    }
    EXPECT_EQ(ab_c.assignments(), a_bc.assignments());
    ClusterState again = ab_c;
    EXPECT_TRUE(again.merge(ab_c).empty());
    EXPECT_EQ(again.digest(), ab_c.digest());
  }
}

TEST(ClusterStateTest, ResolveSlotsKeepsOneNodePerSlotButEveryNodeOnEachNode) {
  std::vector<Assignment> merged = {
      {"web", 0, kB},   {"web", 0, kA},   {"web", 1, kC},   {"web", 1, kC},
      {"agent", 0, kA}, {"agent", 0, kB}, {"agent", 0, kC},
  };
  auto out = resolveSlots(merged, {"agent"});
  std::vector<Assignment> want = {
      {"agent", 0, kA}, {"agent", 0, kB}, {"agent", 0, kC}, {"web", 0, kA}, {"web", 1, kC},
  };
  EXPECT_EQ(out, want);
}

// ---------------------------------------------------------------- encoding

ClusterState sample() {
  ClusterState s;
  s.put(entry("web", stamp(10), R"({"apiVersion":"edge/v1"})"));
  s.put(entry("web", stamp(20, 1, kB), R"({"apiVersion":"edge/v1","x":1})"));
  SpecEntry del = entry("old", stamp(15), "");
  del.deleted = true;
  s.put(del);
  s.putCordon({kC, stamp(12), true, true});
  s.setAssignments({{"web", 1, kB}, {"web", 0, kA}}, stamp(21, 0, kB));
  return s;
}

TEST(ClusterStateTest, JsonRoundTrip) {
  ClusterState s = sample();
  auto back = ClusterState::fromJson(s.toJson());
  ASSERT_TRUE(back.isOk()) << back.status().toString();
  EXPECT_EQ(*back, s);
  EXPECT_EQ(back->digest(), s.digest());
  EXPECT_EQ(s.maxHlc(), stamp(21, 0, kB));
  EXPECT_EQ(s.assignmentsOf(kA), (std::vector<Assignment>{{"web", 0, kA}}));
}

TEST(ClusterStateTest, HostileCopiesAreRefusedWithThePath) {
  nlohmann::json good = sample().toJson();
  struct Case {
    const char* what;
    std::function<void(nlohmann::json&)> mutate;
    const char* error;
  };
  std::vector<Case> cases = {
      {"not an object", [](auto& j) { j = nlohmann::json::array(); },
       "clusterState: expected an object"},
      {"specs missing", [](auto& j) { j.erase("specs"); }, "clusterState.specs: missing"},
      {"bad name", [](auto& j) { j["specs"][0]["name"] = "Web!"; },
       "clusterState.specs[0].name: \"Web!\" is not a service name"},
      {"bad stamp", [](auto& j) { j["specs"][0]["hlc"] = "soon"; },
       "clusterState.specs[0].hlc: \"soon\" is not a clock stamp"},
      {"zero stamp", [](auto& j) { j["specs"][0]["hlc"] = "0"; },
       "clusterState.specs[0].hlc: a version needs a stamp"},
      {"replaced newer", [](auto& j) { j["specs"][1]["replaced"] = {"99.0@aa"}; },
       "clusterState.specs[1].replaced[0]: not older"},
      {"bad signature", [](auto& j) { j["specs"][0]["signature"] = "zz"; },
       "clusterState.specs[0].signature"},
      {"tombstone with manifest", [](auto& j) { j["specs"][0]["manifest"] = "{}"; },
       "clusterState.specs[0].manifest: a deleted service carries no manifest"},
      {"manifest missing", [](auto& j) { j["specs"][1].erase("manifest"); },
       "clusterState.specs[1].manifest: missing"},
      {"duplicate service", [](auto& j) { j["specs"][0] = j["specs"][1]; }, "appears twice"},
      {"bad cordon node", [](auto& j) { j["cordons"][0]["node_id"] = "NODE"; },
       "clusterState.cordons[0].node_id: expected a node id"},
      {"assignment shape",
       [](auto& j) {
         j["assignments"][0] = {"web", 0};
       },
       "clusterState.assignments[0]: expected [service, slot, node id]"},
      {"assignment slot", [](auto& j) { j["assignments"][0][1] = 5000; },
       "clusterState.assignments[0]: slot 5000 outside 0..999"},
      {"assignments unsorted", [](auto& j) { std::swap(j["assignments"][0], j["assignments"][1]); },
       "clusterState.assignments[1]: assignments must be sorted and unique"},
      {"too many specs",
       [](auto& j) {
         for (size_t i = 0; i <= kMaxServices; ++i) j["specs"].push_back(j["specs"][1]);
       },
       "clusterState.specs: more than 1000 entries"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.what);
    nlohmann::json j = good;
    c.mutate(j);
    auto r = ClusterState::fromJson(j);
    ASSERT_FALSE(r.isOk());
    EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
    EXPECT_NE(r.status().message().find(c.error), std::string::npos) << r.status().message();
  }
}

TEST(ClusterStateTest, SigningBytesCoverWhatMatters) {
  SpecEntry e = entry("web", stamp(10), "m1");
  std::string base = e.signingBytes();
  SpecEntry other = e;
  other.manifest_json = "m2";
  EXPECT_NE(other.signingBytes(), base);
  other = e;
  other.hlc = stamp(11);
  EXPECT_NE(other.signingBytes(), base);
  other = e;
  other.deleted = true;
  EXPECT_NE(other.signingBytes(), base);
  other = e;
  other.author = kB;
  EXPECT_NE(other.signingBytes(), base);
  other = e;
  other.signature = "x";  // the signature is not part of what is signed
  EXPECT_EQ(other.signingBytes(), base);
}

}  // namespace
}  // namespace edge::cluster
