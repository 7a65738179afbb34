// Merit, order, succession and roles: what every node must compute alike.
#include "discovery/election.h"

#include <gtest/gtest.h>

#include <algorithm>

namespace edge::discovery {
namespace {

TEST(Election, ScoreOrderAndSuccessor) {
  NodeProfile mains;
  mains.power = "mains";
  mains.persistent = true;
  NodeProfile battery = mains;
  battery.power = "battery";
  battery.persistent = false;
  EXPECT_GT(meritScore(mains, 0), meritScore(battery, 0));
  EXPECT_TRUE(clearlyBetter(meritScore(mains, 0), meritScore(battery, 0)));
  EXPECT_FALSE(clearlyBetter(meritScore(mains, 0) + 9, meritScore(mains, 0)));
  // Uptime counts in steps.
  mains.started_at = 1000;
  EXPECT_EQ(meritScore(mains, 1000 + 3599), meritScore(mains, 1000));
  EXPECT_EQ(meritScore(mains, 1000 + 3600), meritScore(mains, 1000) + 5);
  EXPECT_TRUE(ranksBefore(50, "b", 40, "a"));
  EXPECT_TRUE(ranksBefore(50, "a", 50, "b"));
  std::vector<Member> members(3);
  members[0].profile.node_id = "a";
  members[0].score = 40;
  members[1].profile.node_id = "b";
  members[1].score = 60;
  members[2].profile.node_id = "c";
  members[2].score = 60;
  EXPECT_EQ(successor(members, {}), "b");
  EXPECT_EQ(successor(members, {"b"}), "c");
  EXPECT_EQ(successor(members, {"b", "c", "a"}), "");
}

Member member(const std::string& id, int addresses, int64_t storage, bool public_address) {
  Member m;
  m.profile.node_id = id;
  for (int i = 0; i < addresses; ++i)
    m.profile.addresses.push_back(
        {"eth" + std::to_string(i), "198.18.0." + std::to_string(i + 1), 24});
  m.profile.endpoint = "198.18.0.1:8083";
  m.profile.storage_free_bytes = storage;
  if (public_address) m.profile.public_address = "198.19.0.1";
  return m;
}

bool has(const std::vector<std::string>& roles, const char* role) {
  return std::find(roles.begin(), roles.end(), role) != roles.end();
}

TEST(Election, RolesGoToTheBestConnectedAndTheLargestStorage) {
  std::vector<Member> members = {member("a", 1, 100, false), member("b", 2, 50, false),
                                 member("c", 1, 900, false)};
  auto roles = assignRoles(members, "a");
  EXPECT_TRUE(has(roles["a"], kRoleSupernode));
  EXPECT_TRUE(has(roles["b"], kRoleProxy)) << "more addresses";
  EXPECT_TRUE(has(roles["c"], kRoleCache)) << "most free storage";
  // A public address outweighs addresses.
  members.push_back(member("d", 1, 0, true));
  roles = assignRoles(members, "a");
  EXPECT_TRUE(has(roles["d"], kRoleProxy));
  EXPECT_FALSE(has(roles["b"], kRoleProxy));
  // Exactly one of each.
  int supernodes = 0, proxies = 0, caches = 0;
  for (const auto& [id, r] : roles) {
    supernodes += has(r, kRoleSupernode);
    proxies += has(r, kRoleProxy);
    caches += has(r, kRoleCache);
  }
  EXPECT_EQ(supernodes, 1);
  EXPECT_EQ(proxies, 1);
  EXPECT_EQ(caches, 1);
}

TEST(Election, TiesGoToTheLowerIdSoEveryNodeAgrees) {
  std::vector<Member> members = {member("b", 1, 10, false), member("a", 1, 10, false)};
  auto roles = assignRoles(members, "b");
  EXPECT_TRUE(has(roles["a"], kRoleProxy));
  EXPECT_TRUE(has(roles["a"], kRoleCache));
  std::reverse(members.begin(), members.end());
  EXPECT_EQ(assignRoles(members, "b"), roles) << "order of the list must not matter";
}

TEST(Election, ScoreIsBoundedAndRewardsResources) {
  NodeProfile p;
  EXPECT_EQ(meritScore(p, 0), 25 + 30);  // defaults: mains, persistent
  p.cpus = 64;
  p.memory_bytes = int64_t{1} << 40;
  p.storage_free_bytes = int64_t{1} << 50;
  p.public_address = "198.19.0.1";
  p.endpoint = "198.18.0.1:8083";
  p.started_at = 1;
  EXPECT_EQ(meritScore(p, 100 * 24 * 3600), 100);
  p.power = "battery";
  p.persistent = false;
  p.cpus = 0;
  p.memory_bytes = 0;
  p.storage_free_bytes = 0;
  p.public_address.clear();
  p.endpoint.clear();
  p.started_at = 0;
  EXPECT_EQ(meritScore(p, 0), 0);
}

}  // namespace
}  // namespace edge::discovery
