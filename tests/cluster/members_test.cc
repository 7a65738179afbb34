#include "cluster/members.h"

#include <gtest/gtest.h>

namespace edge::cluster {
namespace {

discovery::Member member(const std::string& id, const std::string& name) {
  discovery::Member m;
  m.profile.node_id = id;
  m.profile.name = name;
  m.profile.arch = "aarch64";
  m.profile.os = "linux";
  m.profile.runtime = "docker";
  m.profile.power = "battery";
  m.profile.labels = {{"zone", "a"}};
  m.profile.allocatable_cpu_millis = 1500;
  m.profile.allocatable_memory_bytes = 1 << 30;
  m.roles = {"cache"};
  m.score = 42;
  return m;
}

TEST(MembersTest, ProfilesRolesMeritAndBlacklistBecomeNodeInfos) {
  discovery::ClusterView v;
  v.state = "supernode";
  v.members = {member("bb", "edge-2"), member("aa", "edge-1")};
  v.blacklist.push_back({"bb", "198.18.0.12", "refused", 0, 0});
  auto nodes = nodeInfos(v);
  ASSERT_EQ(nodes.size(), 2u);
  EXPECT_EQ(nodes[0].node_id, "aa");  // sorted by id
  EXPECT_EQ(nodes[0].name, "edge-1");
  EXPECT_EQ(nodes[0].arch, "aarch64");
  EXPECT_EQ(nodes[0].runtime, "docker");
  EXPECT_EQ(nodes[0].power, "battery");
  EXPECT_EQ(nodes[0].labels.at("zone"), "a");
  EXPECT_EQ(nodes[0].roles, std::vector<std::string>{"cache"});
  EXPECT_EQ(nodes[0].allocatable_cpu_millis, 1500);
  EXPECT_EQ(nodes[0].allocatable_memory_bytes, 1 << 30);
  EXPECT_EQ(nodes[0].merit, 42);
  EXPECT_FALSE(nodes[0].blacklisted);
  EXPECT_TRUE(nodes[1].blacklisted);
}

TEST(MembersTest, PrimaryClusterIsTheFirstJoinedOne) {
  discovery::ClusterSnapshot s;
  EXPECT_EQ(primaryCluster(s), nullptr);
  s.clusters.resize(3);
  s.clusters[0].state = "probing";
  s.clusters[1].state = "member";
  s.clusters[1].interface = "eth1";
  s.clusters[2].state = "supernode";
  ASSERT_NE(primaryCluster(s), nullptr);
  EXPECT_EQ(primaryCluster(s)->interface, "eth1");
}

}  // namespace
}  // namespace edge::cluster
