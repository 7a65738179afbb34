// edged's config file: the discovery settings and the errors an operator sees.
#include "edged/node_config.h"

#include <gtest/gtest.h>

namespace edge::edged {
namespace {

TEST(NodeConfig, DefaultsJoinEveryLinkOnThePortOfTheContract) {
  EdgedConfig c;
  ASSERT_TRUE(applyConfigText("", "config.yaml", &c).isOk());
  EXPECT_TRUE(c.node.discovery);
  EXPECT_TRUE(c.node.discovery_interfaces.empty());
  EXPECT_EQ(c.node.discovery_group, "239.255.83.83:8083");
  EXPECT_EQ(c.node.listen, "0.0.0.0:8083");
  EXPECT_EQ(c.node.power, "mains");
  EXPECT_TRUE(c.node.persistent);
}

TEST(NodeConfig, DiscoverySettingsAreRead) {
  EdgedConfig c;
  Status s = applyConfigText(
      "discovery: false\n"
      "discovery_interfaces: eth0, eth1\n"
      "discovery_group: 239.255.83.84:9000\n"
      "listen: 198.18.0.2:8083\n"
      "advertise: 198.18.0.2:8083\n"
      "power: battery\n"
      "persistent: no\n"
      "account_id: acme\n"
      "public_address: 198.18.200.1\n"
      "cluster_key_file: /etc/edged/cluster.key\n"
      "blacklist_seconds: 60\n"
      "beacon_interval_ms: 100\n"
      "supernode_timeout_ms: 500\n",
      "config.yaml", &c);
  ASSERT_TRUE(s.isOk()) << s.message();
  EXPECT_FALSE(c.node.discovery);
  EXPECT_EQ(c.node.discovery_interfaces, (std::vector<std::string>{"eth0", "eth1"}));
  EXPECT_EQ(c.node.discovery_group, "239.255.83.84:9000");
  EXPECT_EQ(c.node.listen, "198.18.0.2:8083");
  EXPECT_EQ(c.node.advertise, "198.18.0.2:8083");
  EXPECT_EQ(c.node.power, "battery");
  EXPECT_FALSE(c.node.persistent);
  EXPECT_EQ(c.node.account_id, "acme");
  EXPECT_EQ(c.node.public_address, "198.18.200.1");
  EXPECT_EQ(c.node.cluster_key_file, "/etc/edged/cluster.key");
  EXPECT_EQ(c.node.blacklist_seconds, 60);
  EXPECT_EQ(c.node.beacon_interval_ms, 100);
  EXPECT_EQ(c.node.supernode_timeout_ms, 500);
}

TEST(NodeConfig, BadDiscoveryValuesAreNamedWithWhatIsAllowed) {
  EdgedConfig c;
  Status s = applyConfigText(
      "discovery: maybe\npower: solar\npersistent: 2\nblacklist_seconds: -1\n"
      "beacon_interval_ms: 10\n",
      "config.yaml", &c);
  ASSERT_FALSE(s.isOk());
  const std::string& m = s.message();
  EXPECT_NE(m.find("discovery: \"maybe\" is not true or false"), std::string::npos) << m;
  EXPECT_NE(m.find("power: \"solar\" is not a power source; use mains or battery"),
            std::string::npos)
      << m;
  EXPECT_NE(m.find("persistent: \"2\""), std::string::npos) << m;
  EXPECT_NE(m.find("blacklist_seconds"), std::string::npos) << m;
  EXPECT_NE(m.find("beacon_interval_ms: \"10\" is not in 50..5000"), std::string::npos) << m;
}

TEST(NodeConfig, SupernodeTimeoutMustSpanTwoBeacons) {
  EdgedConfig c;
  Status s =
      applyConfigText("beacon_interval_ms: 400\nsupernode_timeout_ms: 600\n", "config.yaml", &c);
  ASSERT_FALSE(s.isOk());
  EXPECT_NE(s.message().find("at least two beacon intervals (800)"), std::string::npos)
      << s.message();
}

TEST(NodeConfig, NodeNamesPeersWouldRefuseAreRefusedHere) {
  EdgedConfig c;
  Status s = applyConfigText("node_name: \"a\\tb\"\n", "config.yaml", &c);
  ASSERT_FALSE(s.isOk());
  EXPECT_NE(s.message().find("node_name"), std::string::npos);
}

TEST(NodeConfig, UnknownKeyListsTheKnownOnes) {
  EdgedConfig c;
  Status s = applyConfigText("discovery_iface: eth0\n", "config.yaml", &c);
  ASSERT_FALSE(s.isOk());
  EXPECT_NE(s.message().find("discovery_interfaces"), std::string::npos) << s.message();
}

TEST(NodeConfig, SplitList) {
  EXPECT_EQ(splitList(" eth0,eth1  wlan0 ,"), (std::vector<std::string>{"eth0", "eth1", "wlan0"}));
  EXPECT_TRUE(splitList("").empty());
}

}  // namespace
}  // namespace edge::edged
