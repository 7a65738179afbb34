#include "runtime-shim/light/cgroups.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>

#include "common/fs.h"

namespace edge::runtime::light {
namespace {

constexpr char kHybridMountinfo[] =
    "22 1 254:0 / / rw,relatime - ext4 /dev/vda rw\n"
    "30 22 0:26 / /sys/fs/cgroup rw - tmpfs tmpfs rw,mode=755\n"
    "31 30 0:27 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu\n"
    "32 30 0:28 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct\n"
    "33 30 0:29 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory\n"
    "34 30 0:30 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids\n"
    "35 30 0:31 / /sys/fs/cgroup/devices rw,relatime - cgroup cgroup rw,devices\n"
    "36 30 0:32 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw\n";

TEST(CgroupLayoutTest, HybridHostUsesV1Controllers) {
  auto l = parseCgroupLayout(kHybridMountinfo);
  ASSERT_TRUE(l.isOk()) << l.status().toString();
  EXPECT_EQ(l->version, CgroupVersion::kV1);
  EXPECT_EQ(l->v1_mounts.at("memory"), "/sys/fs/cgroup/memory");
  EXPECT_EQ(l->v1_mounts.at("cpuacct"), "/sys/fs/cgroup/cpuacct");
  EXPECT_EQ(l->v1_mounts.at("devices"), "/sys/fs/cgroup/devices");
}

TEST(CgroupLayoutTest, JointCpuCpuacctMountAndV2Only) {
  auto l = parseCgroupLayout(
      "31 30 0:27 / /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct\n"
      "33 30 0:28 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n");
  ASSERT_TRUE(l.isOk());
  EXPECT_EQ(l->v1_mounts.at("cpu"), "/sys/fs/cgroup/cpu,cpuacct");
  EXPECT_EQ(l->v1_mounts.at("cpuacct"), "/sys/fs/cgroup/cpu,cpuacct");

  auto v2 = parseCgroupLayout("25 22 0:23 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n");
  ASSERT_TRUE(v2.isOk());
  EXPECT_EQ(v2->version, CgroupVersion::kV2);
  EXPECT_EQ(v2->v2_root, "/sys/fs/cgroup");

  auto none = parseCgroupLayout("22 1 254:0 / / rw - ext4 /dev/vda rw\n");
  EXPECT_EQ(none.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(none.status().message().find("memory"), std::string::npos);
}

TEST(CgroupWritesTest, V1) {
  Resources r{.memory_bytes = 64 << 20, .nano_cpus = 1'500'000'000, .pids_limit = 20};
  auto w = computeCgroupWrites(CgroupVersion::kV1, r, /*v1_memsw=*/true);
  ASSERT_GE(w.size(), 6u);
  EXPECT_EQ(w[0], (CgroupWrite{"memory", "memory.limit_in_bytes", "67108864"}));
  EXPECT_EQ(w[1], (CgroupWrite{"memory", "memory.memsw.limit_in_bytes", "67108864"}));
  EXPECT_EQ(w[2], (CgroupWrite{"cpu", "cpu.cfs_period_us", "100000"}));
  EXPECT_EQ(w[3], (CgroupWrite{"cpu", "cpu.cfs_quota_us", "150000"}));
  EXPECT_EQ(w[4], (CgroupWrite{"pids", "pids.max", "20"}));
  EXPECT_EQ(w[5], (CgroupWrite{"devices", "devices.deny", "a"}));
  auto no_swap = computeCgroupWrites(CgroupVersion::kV1, r, false);
  EXPECT_EQ(no_swap[1].file, "cpu.cfs_period_us");
  // Unlimited: no limit writes, only the device allow-list.
  for (const auto& x : computeCgroupWrites(CgroupVersion::kV1, Resources{}, true)) {
    EXPECT_EQ(x.controller, "devices");
  }
}

TEST(CgroupWritesTest, V2) {
  Resources r{.memory_bytes = 64 << 20, .nano_cpus = 250'000'000, .pids_limit = 7};
  auto w = computeCgroupWrites(CgroupVersion::kV2, r, false);
  ASSERT_EQ(w.size(), 4u);
  EXPECT_EQ(w[0], (CgroupWrite{"", "memory.max", "67108864"}));
  EXPECT_EQ(w[1], (CgroupWrite{"", "memory.swap.max", "0"}));
  EXPECT_EQ(w[2], (CgroupWrite{"", "cpu.max", "25000 100000"}));
  EXPECT_EQ(w[3], (CgroupWrite{"", "pids.max", "7"}));
  EXPECT_TRUE(computeCgroupWrites(CgroupVersion::kV2, Resources{}, false).empty());
}

// A cgroup filesystem stand-in over a temp dir: writes create the files, so tests can
// read back what the manager wrote.
class TempCgroupFs : public CgroupFs {
 public:
  bool exists(const std::string& p) override { return fs::exists(p); }
  Status makeDir(const std::string& p) override {
    if (::mkdir(p.c_str(), 0755) != 0 && errno != EEXIST) return Status::fromErrno(errno, p);
    return Status::ok();
  }
  Status removeDir(const std::string& p) override {
    (void)fs::removeAll(p);
    return Status::ok();
  }
  Status writeFile(const std::string& p, std::string_view v) override {
    std::ofstream(p, std::ios::app) << v << "\n";
    return Status::ok();
  }
  Result<std::string> readFile(const std::string& p) override { return fs::readFile(p); }
};

class CgroupManagerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char t[] = "/tmp/edge-cg-test-XXXXXX";
    ASSERT_NE(::mkdtemp(t), nullptr);
    root_ = t;
  }
  void TearDown() override { (void)fs::removeAll(root_); }
  std::string read(const std::string& p) { return fs::readFile(root_ + p).valueOr("<missing>"); }
  void put(const std::string& p, const std::string& v) { std::ofstream(root_ + p) << v; }
  std::string root_;
};

TEST_F(CgroupManagerTest, V1CreateStatsOomDestroy) {
  CgroupLayout l;
  l.version = CgroupVersion::kV1;
  for (const char* c : {"memory", "cpu", "cpuacct", "pids", "devices"}) {
    ASSERT_TRUE(fs::makeDirs(root_ + "/" + c).isOk());
    l.v1_mounts[c] = root_ + "/" + c;
  }
  CgroupManager m(l, std::make_shared<TempCgroupFs>());
  Resources r{.memory_bytes = 32 << 20, .nano_cpus = 500'000'000, .pids_limit = 10};
  ASSERT_TRUE(m.create("abc", r).isOk());
  EXPECT_EQ(m.dirs("abc").size(), 5u);
  EXPECT_EQ(read("/memory/edgecloud/abc/memory.limit_in_bytes"), "33554432\n");
  EXPECT_EQ(read("/memory/edgecloud/abc/memory.memsw.limit_in_bytes"), "<missing>");
  EXPECT_EQ(read("/cpu/edgecloud/abc/cpu.cfs_quota_us"), "50000\n");
  EXPECT_EQ(read("/pids/edgecloud/abc/pids.max"), "10\n");
  EXPECT_NE(read("/devices/edgecloud/abc/devices.allow").find("c 1:3 rwm"), std::string::npos);

  put("/cpuacct/edgecloud/abc/cpuacct.usage", "123456\n");
  put("/memory/edgecloud/abc/memory.usage_in_bytes", "4096\n");
  put("/memory/edgecloud/abc/memory.limit_in_bytes", "33554432\n");
  put("/pids/edgecloud/abc/pids.current", "3\n");
  auto st = m.stats("abc");
  ASSERT_TRUE(st.isOk());
  EXPECT_EQ(st->cpu_usage_ns, 123456);
  EXPECT_EQ(st->memory_usage_bytes, 4096);
  EXPECT_EQ(st->memory_limit_bytes, 32 << 20);
  EXPECT_EQ(st->pids, 3);

  put("/memory/edgecloud/abc/memory.oom_control", "oom_kill_disable 0\nunder_oom 0\noom_kill 0\n");
  EXPECT_FALSE(m.oomKilled("abc"));
  put("/memory/edgecloud/abc/memory.oom_control", "oom_kill_disable 0\nunder_oom 0\noom_kill 2\n");
  EXPECT_TRUE(m.oomKilled("abc"));

  ASSERT_TRUE(m.destroy("abc").isOk());
  EXPECT_FALSE(fs::exists(root_ + "/memory/edgecloud/abc"));
  EXPECT_EQ(m.stats("abc").status().code(), StatusCode::kNotFound);
}

TEST_F(CgroupManagerTest, V1SwapLimitWhenAccountingIsOn) {
  CgroupLayout l;
  l.version = CgroupVersion::kV1;
  l.v1_mounts["memory"] = root_ + "/memory";
  ASSERT_TRUE(fs::makeDirs(root_ + "/memory/edgecloud/x").isOk());
  put("/memory/edgecloud/x/memory.memsw.limit_in_bytes", "");
  CgroupManager m(l, std::make_shared<TempCgroupFs>());
  ASSERT_TRUE(m.create("x", Resources{.memory_bytes = 8 << 20}).isOk());
  EXPECT_EQ(read("/memory/edgecloud/x/memory.memsw.limit_in_bytes"), "8388608\n");
  // A limit on an unmounted controller is refused, naming it.
  Status s = m.create("y", Resources{.pids_limit = 5});
  EXPECT_EQ(s.code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(s.message().find("pids"), std::string::npos);
}

TEST_F(CgroupManagerTest, V2CreateEnablesControllersAndReadsStats) {
  CgroupLayout l;
  l.version = CgroupVersion::kV2;
  l.v2_root = root_;
  CgroupManager m(l, std::make_shared<TempCgroupFs>());
  Resources r{.memory_bytes = 16 << 20, .nano_cpus = 2'000'000'000, .pids_limit = 4};
  ASSERT_TRUE(m.create("c1", r).isOk());
  EXPECT_EQ(read("/cgroup.subtree_control"), "+memory\n+cpu\n+pids\n");
  EXPECT_EQ(read("/edgecloud/cgroup.subtree_control"), "+memory\n+cpu\n+pids\n");
  EXPECT_EQ(read("/edgecloud/c1/memory.max"), "16777216\n");
  EXPECT_EQ(read("/edgecloud/c1/memory.swap.max"), "0\n");
  EXPECT_EQ(read("/edgecloud/c1/cpu.max"), "200000 100000\n");
  EXPECT_EQ(read("/edgecloud/c1/pids.max"), "4\n");
  put("/edgecloud/c1/cpu.stat", "usage_usec 42\nuser_usec 40\n");
  put("/edgecloud/c1/memory.current", "8192\n");
  put("/edgecloud/c1/memory.max", "max\n");
  put("/edgecloud/c1/pids.current", "2\n");
  auto st = m.stats("c1");
  ASSERT_TRUE(st.isOk());
  EXPECT_EQ(st->cpu_usage_ns, 42000);
  EXPECT_EQ(st->memory_usage_bytes, 8192);
  EXPECT_EQ(st->memory_limit_bytes, 0);
  EXPECT_EQ(st->pids, 2);
  put("/edgecloud/c1/memory.events", "low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\n");
  EXPECT_TRUE(m.oomKilled("c1"));
  ASSERT_TRUE(m.destroy("c1").isOk());
  EXPECT_FALSE(fs::exists(root_ + "/edgecloud/c1"));
}

}  // namespace
}  // namespace edge::runtime::light
