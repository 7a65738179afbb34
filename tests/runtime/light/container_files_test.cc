#include "runtime-shim/light/container_files.h"

#include <unistd.h>

#include <gtest/gtest.h>

#include "common/fs.h"
#include "runtime-shim/light/container_init.h"

namespace edge::runtime::light {
namespace {

using namespace std::chrono_literals;

TEST(ContainerFilesTest, LaunchConfigRoundTrips) {
  LaunchConfig c;
  c.info.id = std::string(64, 'a');
  c.info.name = "web";
  c.info.image = "busybox";
  c.info.image_id = "sha256:abc";
  c.info.created = WallTime(1'800'000'000s) + 123ns;
  c.info.entrypoint = {"/bin/sh", "-c"};
  c.info.cmd = {"echo hi"};
  c.info.env = {"A=1"};
  c.info.working_dir = "/w";
  c.info.user = "app";
  c.info.labels = {{"k", "v"}};
  c.info.network = NetworkMode::kNone;
  c.info.mounts = {{"/src", "/dst", true}};
  c.info.resources = {64 << 20, 1'000'000'000, 10};
  c.hostname = "h";
  c.stop_signal = "SIGINT";
  c.stop_timeout_s = 3;
  c.rootfs_copy = true;
  c.layers = {"/l/1", "/l/2"};
  c.cgroups.version = CgroupVersion::kV1;
  c.cgroups.v1_mounts = {{"memory", "/sys/fs/cgroup/memory"}};
  c.log.max_file_bytes = 1000;
  c.seccomp_path = "/x/seccomp.bpf";

  auto d = decodeLaunchConfig(encodeLaunchConfig(c));
  ASSERT_TRUE(d.isOk()) << d.status().toString();
  EXPECT_EQ(d->info.id, c.info.id);
  EXPECT_EQ(d->info.created, c.info.created);
  EXPECT_EQ(d->info.entrypoint, c.info.entrypoint);
  EXPECT_EQ(d->info.network, NetworkMode::kNone);
  ASSERT_EQ(d->info.mounts.size(), 1u);
  EXPECT_TRUE(d->info.mounts[0].read_only);
  EXPECT_EQ(d->info.resources.pids_limit, 10);
  EXPECT_EQ(d->stop_signal, "SIGINT");
  EXPECT_EQ(d->stop_timeout_s, 3);
  EXPECT_TRUE(d->rootfs_copy);
  EXPECT_EQ(d->layers, c.layers);
  EXPECT_EQ(d->cgroups.v1_mounts, c.cgroups.v1_mounts);
  EXPECT_EQ(d->log.max_file_bytes, 1000);
  EXPECT_EQ(d->seccomp_path, c.seccomp_path);

  EXPECT_FALSE(decodeLaunchConfig("{not json").isOk());
  EXPECT_FALSE(decodeLaunchConfig("{\"name\":\"x\"}").isOk());  // no id
}

TEST(ContainerFilesTest, StateAndExitRoundTrip) {
  StateRecord s;
  s.state = ContainerState::kRunning;
  s.pid = 42;
  s.pid_start = 1234;
  s.shim_pid = 41;
  s.shim_start = 1200;
  s.started = WallTime(1'800'000'000s);
  s.error = "";
  auto ds = decodeState(encodeState(s));
  ASSERT_TRUE(ds.isOk());
  EXPECT_EQ(ds->state, ContainerState::kRunning);
  EXPECT_EQ(ds->pid, 42);
  EXPECT_EQ(ds->shim_start, 1200u);
  EXPECT_EQ(ds->started, s.started);
  EXPECT_FALSE(decodeState("{\"state\":\"paused\"}").isOk());

  ExitRecord e{137, true, WallTime(1'800'000'001s)};
  auto de = decodeExit(encodeExit(e));
  ASSERT_TRUE(de.isOk());
  EXPECT_EQ(de->exit_code, 137);
  EXPECT_TRUE(de->oom_killed);
  EXPECT_EQ(de->finished, e.finished);
  EXPECT_FALSE(decodeExit("{}").isOk());
}

TEST(ContainerFilesTest, ReplaceFileAndProcStartTime) {
  char t[] = "/tmp/edge-files-test-XXXXXX";
  ASSERT_NE(::mkdtemp(t), nullptr);
  std::string p = std::string(t) + "/f.json";
  ASSERT_TRUE(replaceFile(p, "one").isOk());
  ASSERT_TRUE(replaceFile(p, "two").isOk());
  EXPECT_EQ(*fs::readFile(p), "two");
  EXPECT_FALSE(fs::exists(p + ".tmp"));
  (void)fs::removeAll(t);

  uint64_t mine = procStartTime(::getpid());
  EXPECT_GT(mine, 0u);
  EXPECT_TRUE(processMatches(::getpid(), mine));
  EXPECT_FALSE(processMatches(::getpid(), mine + 1));
  EXPECT_EQ(procStartTime(0), 0u);
  EXPECT_FALSE(processMatches(999'999'999, 1));
}

TEST(RecoveryRuleTest, DecidesFromRecordsAndShimLiveness) {
  // Never started.
  Recovered r = recoverContainer(std::nullopt, std::nullopt, false);
  EXPECT_EQ(r.state, ContainerState::kCreated);

  StateRecord running;
  running.state = ContainerState::kRunning;
  running.shim_pid = 77;
  // Live shim: adopted.
  r = recoverContainer(running, std::nullopt, true);
  EXPECT_EQ(r.state, ContainerState::kRunning);
  EXPECT_TRUE(r.adopt);
  // Shim gone, exit recorded.
  r = recoverContainer(running, ExitRecord{3, true, WallTime(5s)}, false);
  EXPECT_EQ(r.state, ContainerState::kExited);
  EXPECT_EQ(r.exit_code, 3);
  EXPECT_TRUE(r.oom_killed);
  EXPECT_FALSE(r.adopt);
  // Shim gone without a record.
  r = recoverContainer(running, std::nullopt, false);
  EXPECT_EQ(r.state, ContainerState::kExited);
  EXPECT_NE(r.error.find("died without recording"), std::string::npos);
  // A failed start stays created with its error.
  StateRecord failed;
  failed.error = "exec /x: no such file or directory";
  failed.exit_code = 127;
  r = recoverContainer(failed, std::nullopt, false);
  EXPECT_EQ(r.state, ContainerState::kCreated);
  EXPECT_EQ(r.error, failed.error);
  EXPECT_EQ(r.exit_code, 127);
  // The run root was emptied by a host restart: whatever ran is gone.
  for (bool started : {false, true}) {
    r = recoverContainer(std::nullopt, started ? std::optional(ExitRecord{}) : std::nullopt, false,
                         /*host_restarted=*/true);
    EXPECT_EQ(r.state, ContainerState::kExited);
    EXPECT_EQ(r.exit_code, 255);
    EXPECT_FALSE(r.adopt);
    EXPECT_NE(r.error.find("host restarted"), std::string::npos);
  }
}

TEST(OverlayMountDataTest, TopmostFirstAndRelativeWhenLong) {
  auto d = overlayMountData({"/s/layers/a", "/s/layers/b"}, "/c/upper", "/c/work");
  EXPECT_EQ(d.chdir_to, "");
  EXPECT_EQ(d.data, "lowerdir=/s/layers/b:/s/layers/a,upperdir=/c/upper,workdir=/c/work");
  // A layer outside the common parent (the /etc layer on the run root) stays absolute.
  std::vector<std::string> with_etc;
  for (int i = 0; i < 100; ++i) with_etc.push_back("/store/layers/" + std::string(64, 'a'));
  with_etc.push_back("/run/x/etc");
  auto e = overlayMountData(with_etc, "/c/upper", "/c/work", 4000);
  EXPECT_EQ(e.chdir_to, "/store/layers");
  EXPECT_TRUE(e.data.starts_with("lowerdir=/run/x/etc:" + std::string(64, 'a') + ":"));
  std::vector<std::string> many;
  for (int i = 0; i < 100; ++i) many.push_back("/store/layers/" + std::string(64, 'a' + i % 6));
  auto l = overlayMountData(many, "/c/upper", "/c/work", 4000);
  EXPECT_EQ(l.chdir_to, "/store/layers");
  EXPECT_TRUE(l.data.starts_with("lowerdir=" + std::string(64, 'a' + 99 % 6) + ":"));
  EXPECT_LT(l.data.size(), 7000u);
}

}  // namespace
}  // namespace edge::runtime::light
