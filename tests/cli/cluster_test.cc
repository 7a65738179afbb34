// `edgectl nodes` and `edgectl cluster` rendering over hand-made API answers
// (docs/api.md), including answers with missing or wrongly typed fields.
#include "cli/cluster.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace edge::cli {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

const WallTime kNow{std::chrono::seconds(1'800'000'000)};

Json member(const std::string& id, const std::string& name, const std::string& endpoint, Json roles,
            int score, int64_t uptime) {
  return Json{{"node_id", id},
              {"name", name},
              {"endpoint", endpoint},
              {"roles", std::move(roles)},
              {"score", score},
              {"joined_at", 1'799'999'000},
              {"uptime_seconds", uptime},
              {"profile", {{"runtime", "light"}, {"cpus", 2}}}};
}

Json snapshot() {
  return Json{
      {"node_id", "00000000000000aa"},
      {"node_name", "node-a"},
      {"enabled", true},
      {"clusters",
       {{{"interface", "eth0"},
         {"cluster_id", "198.18.0.0/24"},
         {"state", "member"},
         {"supernode_id", "3f2a9c01d4e5b6a7"},
         {"version", 12},
         {"supernode_since", 1'799'999'500},
         {"members",
          {member("00000000000000aa", "node-a", "198.18.0.11:8083", Json::array(), 40, 90),
           member("3f2a9c01d4e5b6a7", "node-b", "198.18.0.12:8083", {"supernode", "proxy"}, 87,
                  7200),
           member("00000000000000cc", "node-c", "198.18.0.13:8083", {"cache"}, 55, 3 * 86400)}},
         {"blacklist",
          {{{"node_id", "00000000000000ff"},
            {"address", "198.18.0.15"},
            {"reason", "endpoint 198.18.0.15:9 does not answer"},
            {"since", 1'799'999'900},
            {"until", 1'800'000'540}}}},
         {"counters",
          {{"packets_sent", 120},
           {"packets_received", 340},
           {"dropped_malformed", 3},
           {"dropped_forged", 1},
           {"dropped_blacklisted", 0}}}}}}};
}

TEST(ClusterRenderTest, HeaderMembersBlacklistAndCounters) {
  std::string out = renderCluster(snapshot(), kNow);
  EXPECT_EQ(out,
            "cluster 198.18.0.0/24 on eth0 — this node: member, supernode 3f2a9c01d4e5b6a7 "
            "(node-b), version 12, 3 members\n"
            "      NODE ID            NAME     ENDPOINT           ROLES             SCORE   "
            "RUNTIME   UPTIME\n"
            "      3f2a9c01d4e5b6a7   node-b   198.18.0.12:8083   supernode,proxy   87      "
            "light     2h\n"
            "  *   00000000000000aa   node-a   198.18.0.11:8083   -                 40      "
            "light     1m\n"
            "      00000000000000cc   node-c   198.18.0.13:8083   cache             55      "
            "light     3d\n"
            "  Blacklist:\n"
            "    NODE ID            ADDRESS       REASON                                   UNTIL\n"
            "    00000000000000ff   198.18.0.15   endpoint 198.18.0.15:9 does not answer   "
            "2027-01-15T08:09:00Z (in 9m)\n"
            "  Packets: 120 sent, 340 received; dropped: 3 malformed, 1 forged, 0 blacklisted\n");
}

TEST(ClusterRenderTest, ThisNodeAsSupernodeAndNoBlacklist) {
  Json s = snapshot();
  Json& c = s["clusters"][0];
  c["state"] = "supernode";
  c["supernode_id"] = "00000000000000aa";
  c["blacklist"] = Json::array();
  c["members"] =
      Json::array({member("00000000000000aa", "node-a", "198.18.0.11:8083", Json::array(), 90, 5)});
  std::string out = renderCluster(s, kNow);
  EXPECT_THAT(out, HasSubstr("cluster 198.18.0.0/24 on eth0 — this node: supernode, version "
                             "12, 1 member\n"));
  // The supernode role shows even when the member's own roles lag behind.
  EXPECT_THAT(out, HasSubstr("  *   00000000000000aa   node-a   198.18.0.11:8083   supernode"));
  EXPECT_THAT(out, Not(HasSubstr("Blacklist")));
}

TEST(ClusterRenderTest, TwoClustersAreSeparatedAndProbingHasNoSupernode) {
  Json s = snapshot();
  s["clusters"].push_back(Json{{"interface", "eth1"},
                               {"cluster_id", "198.19.0.0/24"},
                               {"state", "probing"},
                               {"supernode_id", ""},
                               {"version", 0},
                               {"members", Json::array()}});
  std::string out = renderCluster(s, kNow);
  EXPECT_THAT(out, HasSubstr("0 blacklisted\n\ncluster 198.19.0.0/24 on eth1 — this node: "
                             "probing, no supernode yet, version 0, 0 members\n  (no members)\n"));
}

TEST(ClusterRenderTest, DiscoveryOffOrNoClusterYet) {
  EXPECT_EQ(renderCluster(Json{{"enabled", false}, {"clusters", Json::array()}}, kNow),
            "discovery is off on this node\n");
  EXPECT_EQ(renderCluster(Json{{"enabled", true}, {"clusters", Json::array()}}, kNow),
            "discovery is on, but this node is in no cluster yet\n");
}

TEST(ClusterRenderTest, OddShapesRenderAsDashesNotCrashes) {
  Json weird{
      {"enabled", true},
      {"node_id", 5},
      {"clusters",
       {{{"interface", 3},
         {"members",
          {{{"node_id", Json::array()}, {"roles", "x"}, {"uptime_seconds", "1"}}, 5, nullptr}},
         {"blacklist", {{{"until", "soon"}}}},
         {"counters", "none"}},
        "not an object"}}};
  std::string out;
  EXPECT_NO_THROW(out = renderCluster(weird, kNow));
  EXPECT_THAT(out, HasSubstr("cluster - on 3 — this node: -, no supernode yet"));
  for (const Json& j : {Json(), Json::array(), Json("x"), Json{{"enabled", "yes"}}})
    EXPECT_NO_THROW(renderCluster(j, kNow));
}

TEST(NodesRenderTest, OneRowPerNodeWithItsClusters) {
  Json a = member("3f2a9c01d4e5b6a7", "node-b", "198.18.0.12:8083", {"supernode"}, 87, 7200);
  a["clusters"] = {"198.18.0.0/24", "198.19.0.0/24"};
  Json b = member("00000000000000cc", "node-c", "198.18.0.13:8083", Json::array(), 55, 30);
  b["clusters"] = {"198.18.0.0/24"};
  Json answer{{"scope", "network"}, {"enabled", true}, {"nodes", {a, b}}};
  EXPECT_EQ(nodesTable(answer).render(),
            "NODE ID            NAME     ENDPOINT           ROLES       SCORE   RUNTIME   UPTIME   "
            "CLUSTER\n"
            "3f2a9c01d4e5b6a7   node-b   198.18.0.12:8083   supernode   87      light     2h       "
            "198.18.0.0/24,198.19.0.0/24\n"
            "00000000000000cc   node-c   198.18.0.13:8083   -           55      light     30s      "
            "198.18.0.0/24\n");
  EXPECT_EQ(nodesTable(Json{{"nodes", {Json{{"name", 1}}}}}).rows(), 1u);
  EXPECT_EQ(nodesTable(Json("x")).rows(), 0u);
}

}  // namespace
}  // namespace edge::cli
