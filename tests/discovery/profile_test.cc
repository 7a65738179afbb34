// Reading the host for the node profile: the parsers over sample files, the interface
// filter, and the live readers on this host (which must give sane, never failing, facts).
#include "discovery/profile.h"

#include <net/if.h>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>

namespace edge::discovery {
namespace {

using ::testing::IsEmpty;
using ::testing::Not;

TEST(ProfileParsersTest, MemTotalInBytes) {
  EXPECT_EQ(parseMemTotal("MemTotal:       16303300 kB\nMemFree:         1234 kB\n"),
            int64_t{16303300} * 1024);
  EXPECT_EQ(parseMemTotal("MemFree: 5 kB\nMemTotal: 2048 kB"), 2048 * 1024);
  EXPECT_EQ(parseMemTotal(""), 0);
  EXPECT_EQ(parseMemTotal("MemTotal: lots\n"), 0);
  EXPECT_EQ(parseMemTotal("MemTotal: 12 MB\n"), 0);  // a unit the kernel never writes
  EXPECT_EQ(parseMemTotal("MemTotal: 99999999999999999999999999 kB\n"), 0);
  EXPECT_EQ(parseMemTotal("SwapTotal: 5 kB\n"), 0);
}

TEST(ProfileParsersTest, OsReleasePrettyName) {
  EXPECT_EQ(parseOsPrettyName("PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nNAME=\"Debian "
                              "GNU/Linux\"\nVERSION_ID=\"12\"\n"),
            "Debian GNU/Linux 12 (bookworm)");
  EXPECT_EQ(parseOsPrettyName("NAME=Alpine\nPRETTY_NAME='Alpine Linux v3.19'\n"),
            "Alpine Linux v3.19");
  EXPECT_EQ(parseOsPrettyName("PRETTY_NAME=Plain\n"), "Plain");
  EXPECT_EQ(parseOsPrettyName("PRETTY_NAME=\"say \\\"hi\\\" \\\\o/\"\n"), "say \"hi\" \\o/");
  EXPECT_EQ(parseOsPrettyName("NAME=\"Only Name\"\n"), "Only Name");
  EXPECT_EQ(parseOsPrettyName("# comment\n\nID=debian\n"), "");
  EXPECT_EQ(parseOsPrettyName(""), "");
}

TEST(ProfileParsersTest, BootId) {
  EXPECT_EQ(parseBootId("0c6f7a1e-2b3c-4d5e-8f90-112233445566\n"),
            "0c6f7a1e-2b3c-4d5e-8f90-112233445566");
  EXPECT_EQ(parseBootId("  \n"), "");
}

TEST(LinkInterfacesTest, KeepsUpMulticastNonLoopbackAndSortsByName) {
  unsigned link = IFF_UP | IFF_MULTICAST | IFF_BROADCAST | IFF_RUNNING;
  std::vector<RawInterface> raw = {
      {"lo", IFF_UP | IFF_LOOPBACK | IFF_RUNNING, "127.0.0.1", 8},
      {"eth1", link, "198.19.0.5", 16},
      {"eth0", link, "198.18.0.7", 24},
      {"eth2", IFF_MULTICAST | IFF_BROADCAST, "198.18.5.1", 24},  // down
      {"tun0", IFF_UP | IFF_POINTOPOINT, "198.18.9.1", 32},       // no multicast
      {"docker0", link, "198.18.100.1", 24},
      {"veth12ab", link, "198.18.101.1", 24},
      {"br-3f2a1b", link, "198.18.102.1", 24},
      {"virbr0", link, "198.18.103.1", 24},
      {"cni0", link, "198.18.104.1", 24},
      {"flannel.1", link, "198.18.105.1", 24},
      {"eth0", link, "198.18.0.3", 24},  // a second address on eth0
  };
  auto got = selectLinkInterfaces(raw, false);
  ASSERT_EQ(got.size(), 3u);
  EXPECT_EQ(got[0].interface, "eth0");
  EXPECT_EQ(got[0].address, "198.18.0.3");
  EXPECT_EQ(got[1].address, "198.18.0.7");
  EXPECT_EQ(got[1].prefix_len, 24);
  EXPECT_EQ(got[2].interface, "eth1");
  auto with_bridges = selectLinkInterfaces(raw, true);
  EXPECT_EQ(with_bridges.size(), 9u);
  EXPECT_EQ(with_bridges[0].interface, "br-3f2a1b");
}

TEST(LinkInterfacesTest, ContainerPlumbingNames) {
  for (const char* n :
       {"docker0", "docker_gwbridge", "veth0a1b2c", "br-0123abcd", "virbr0", "cni0", "flannel.1"})
    EXPECT_TRUE(isContainerPlumbing(n)) << n;
  for (const char* n : {"eth0", "enp3s0", "wlan0", "br0", "bond0", "ens192"})
    EXPECT_FALSE(isContainerPlumbing(n)) << n;
}

TEST(LinkInterfacesTest, OnThisHostOnlyNonLoopbackIpv4WithPrefix) {
  for (const auto& a : linkInterfaces(true)) {
    EXPECT_NE(a.interface, "lo");
    EXPECT_THAT(a.interface, Not(IsEmpty()));
    EXPECT_FALSE(a.address.starts_with("127.")) << a.interface;
    EXPECT_GE(a.prefix_len, 0);
    EXPECT_LE(a.prefix_len, 32);
    EXPECT_THAT(networkOf(a), Not(IsEmpty())) << a.address;
  }
  for (const auto& a : linkInterfaces(false)) EXPECT_FALSE(isContainerPlumbing(a.interface));
}

TEST(NetworkOfTest, MasksTheAddress) {
  EXPECT_EQ(networkOf({"eth0", "198.18.0.7", 24}), "198.18.0.0/24");
  EXPECT_EQ(networkOf({"eth0", "198.19.200.7", 15}), "198.18.0.0/15");
  EXPECT_EQ(networkOf({"eth0", "198.18.0.7", 32}), "198.18.0.7/32");
  EXPECT_EQ(networkOf({"eth0", "198.18.0.7", 0}), "0.0.0.0/0");
  EXPECT_EQ(networkOf({"eth0", "198.18.0.7", 33}), "");
  EXPECT_EQ(networkOf({"eth0", "198.18.0.7", -1}), "");
  EXPECT_EQ(networkOf({"eth0", "fe80::1", 64}), "");
  EXPECT_EQ(networkOf({"eth0", "", 24}), "");
}

TEST(ImmutableFactsTest, DifferOnlyOnFactsFixedUntilRebootOrRestart) {
  NodeProfile a;
  a.arch = "x86_64";
  a.cpus = 4;
  a.memory_bytes = 1 << 30;
  a.boot_id = "b1";
  a.started_at = 100;
  NodeProfile b = a;
  b.seq = 9;
  b.services = {"web"};
  b.storage_free_bytes = 12345;
  b.power = "battery";
  b.endpoint = "198.18.0.9:8083";
  EXPECT_FALSE(immutableFactsDiffer(a, b));
  auto changed = [&](auto mutate) {
    NodeProfile c = a;
    mutate(c);
    return immutableFactsDiffer(a, c);
  };
  EXPECT_TRUE(changed([](NodeProfile& p) { p.arch = "aarch64"; }));
  EXPECT_TRUE(changed([](NodeProfile& p) { p.cpus = 64; }));
  EXPECT_TRUE(changed([](NodeProfile& p) { p.memory_bytes *= 2; }));
  EXPECT_TRUE(changed([](NodeProfile& p) { p.boot_id = "b2"; }));
  EXPECT_TRUE(changed([](NodeProfile& p) { p.started_at = 101; }));
}

TEST(CollectProfileTest, ReadsThisHostAndCopiesTheInputs) {
  ProfileInputs in;
  in.node_name = "node-a";
  in.runtime_kind = "light";
  in.data_dir = std::filesystem::temp_directory_path().string();
  in.power = "battery";
  in.persistent = false;
  in.account_id = "acme";
  in.public_address = "198.18.200.1";
  in.endpoint = "198.18.0.2:8083";
  in.services = {"web", "api", "web"};
  WallTime started{std::chrono::seconds(1'800'000'000)};
  NodeProfile p = collectProfile(in, started);
  EXPECT_EQ(p.name, "node-a");
  EXPECT_EQ(p.started_at, 1'800'000'000);
  EXPECT_GT(p.cpus, 0);
  EXPECT_GT(p.memory_bytes, int64_t{16} << 20);
  EXPECT_GT(p.storage_free_bytes, 0);
  EXPECT_EQ(p.os, "linux");
  EXPECT_THAT(p.arch, Not(IsEmpty()));
  EXPECT_THAT(p.boot_id, Not(IsEmpty()));
  EXPECT_EQ(p.runtime, "light");
  EXPECT_EQ(p.power, "battery");
  EXPECT_FALSE(p.persistent);
  EXPECT_EQ(p.account_id, "acme");
  EXPECT_EQ(p.public_address, "198.18.200.1");
  EXPECT_EQ(p.endpoint, "198.18.0.2:8083");
  EXPECT_EQ(p.services, (std::vector<std::string>{"api", "web"}));
  EXPECT_TRUE(p.node_id.empty());
  EXPECT_TRUE(p.public_key.empty());
  EXPECT_TRUE(p.signature.empty());
  EXPECT_EQ(p.seq, 0);
  // Same inputs, same process: the same immutable facts.
  EXPECT_FALSE(immutableFactsDiffer(p, collectProfile(in, started)));
}

TEST(CollectProfileTest, UnreadableFactsAreZeroNotErrors) {
  ProfileInputs in;
  in.data_dir = "/nonexistent/edged-data";
  in.interfaces = {"no-such-if0"};
  NodeProfile p = collectProfile(in, WallTime{});
  EXPECT_EQ(p.storage_free_bytes, 0);
  EXPECT_TRUE(p.addresses.empty());
  EXPECT_THAT(p.name, Not(IsEmpty()));  // the host name when none is configured
  EXPECT_EQ(p.started_at, 0);
}

TEST(CollectProfileTest, NamedInterfacesAreTheOnlyOnes) {
  auto all = linkInterfaces(true);
  if (all.empty()) GTEST_SKIP() << "this host has no multicast-capable IPv4 interface";
  ProfileInputs in;
  in.interfaces = {all.front().interface};
  NodeProfile p = collectProfile(in, WallTime{});
  ASSERT_THAT(p.addresses, Not(IsEmpty()));
  for (const auto& a : p.addresses) EXPECT_EQ(a.interface, all.front().interface);
}

TEST(Profile, FreeStorageIsReannouncedOnlyWhenItMovedMuch) {
  constexpr int64_t kGiB = int64_t{1} << 30;
  EXPECT_FALSE(storageChangedMuch(10 * kGiB, 10 * kGiB + kGiB / 2));  // a log file grew
  EXPECT_TRUE(storageChangedMuch(10 * kGiB, 8 * kGiB));
  EXPECT_FALSE(storageChangedMuch(100 * kGiB, 96 * kGiB));  // under 5 %
  EXPECT_TRUE(storageChangedMuch(100 * kGiB, 94 * kGiB));
  EXPECT_TRUE(storageChangedMuch(0, 2 * kGiB));  // was unknown
  EXPECT_GT(freeStorageBytes("/"), 0);
  EXPECT_EQ(freeStorageBytes("/no/such/dir"), 0);
}

}  // namespace
}  // namespace edge::discovery
