// The light runtime without root: the host checks, spec handling, naming, listing,
// events, and the rebuild of its view from a state dir holding live, dead and garbled
// containers (a fake image store; nothing is started).
#include <dirent.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <algorithm>

#include <fstream>
#include <mutex>
#include <thread>

#include "common/fs.h"
#include "runtime-shim/light/container_files.h"
#include "runtime-shim/light/light_runtime_internal.h"
#include "tests/runtime/light/fake_image_store.h"

namespace edge::runtime::light {
namespace {

using namespace std::chrono_literals;
using testing::FakeImageStore;
using testing::kFakeImageId;
using testing::kFakeImageRef;

class LightRuntimeUnitTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char t[] = "/tmp/edge-light-unit-XXXXXX";
    ASSERT_NE(::mkdtemp(t), nullptr);
    dir_ = t;
    run_ = "/dev/shm/" + dir_.substr(dir_.rfind('/') + 1) + "-run";  // a tmpfs: no mount
    // A memory "controller" in a plain dir: starts create their cgroup dirs there.
    ASSERT_TRUE(fs::makeDirs(dir_ + "/cg/memory").isOk());
    std::ofstream(dir_ + "/mountinfo")
        << "33 30 0:29 / " << dir_ << "/cg/memory rw,relatime - cgroup cgroup rw,memory\n";
  }
  void TearDown() override {
    rt_.reset();
    (void)fs::removeAll(dir_);
    (void)fs::removeAll(run_);
  }

  LightRuntimeDeps deps(uid_t euid = 0) {
    LightRuntimeDeps d;
    d.images = std::make_unique<FakeImageStore>(dir_ + "/layer");
    d.euid = [euid] { return euid; };
    d.check_host = false;
    d.mountinfo_path = dir_ + "/mountinfo";
    return d;
  }
  Result<ContainerRuntimePtr> open(uid_t euid = 0) {
    LightRuntimeOptions o;
    o.root = dir_ + "/state";
    o.run_root = run_;
    o.shim_path = "/nonexistent/edge-shim";
    return openLightRuntimeWith(o, deps(euid));
  }
  void openOk() {
    auto rt = open();
    ASSERT_TRUE(rt.isOk()) << rt.status().toString();
    rt_ = std::move(rt).value();
  }

  // Writes a container dir and run dir as the runtime and shim would have; without the
  // run dir as after a host restart.
  std::string plant(char fill, const std::string& name, std::optional<StateRecord> state,
                    std::optional<ExitRecord> exit, bool run_dir = true) {
    std::string id(64, fill);
    std::string d = dir_ + "/state/containers/" + id;
    std::string r = run_ + "/" + id;
    EXPECT_TRUE(fs::makeDirs(d).isOk());
    if (run_dir) {
      EXPECT_TRUE(fs::makeDirs(r).isOk());
    }
    LaunchConfig c;
    c.info.id = id;
    c.info.name = name;
    c.info.image = kFakeImageRef;
    c.info.image_id = kFakeImageId;
    c.info.cmd = {"sh"};
    EXPECT_TRUE(replaceFile(d + "/config.json", encodeLaunchConfig(c)).isOk());
    if (state && run_dir) {
      EXPECT_TRUE(replaceFile(r + "/state.json", encodeState(*state)).isOk());
    }
    if (exit && run_dir) {
      EXPECT_TRUE(replaceFile(r + "/exit.json", encodeExit(*exit)).isOk());
    }
    return id;
  }

  ContainerSpec spec() {
    ContainerSpec s;
    s.image = kFakeImageRef;
    return s;
  }

  // The ready entries of the pool of container dirs.
  std::vector<std::string> pool() {
    std::vector<std::string> out;
    if (DIR* d = ::opendir((dir_ + "/state/containers/.pool").c_str())) {
      while (dirent* de = ::readdir(d)) {
        std::string n = de->d_name;
        if (n != "." && n != ".." && !n.starts_with(".tmp-")) out.push_back(n);
      }
      ::closedir(d);
    }
    return out;
  }
  bool waitPool(size_t n) {
    auto deadline = std::chrono::steady_clock::now() + 10s;
    while (std::chrono::steady_clock::now() < deadline) {
      if (pool().size() == n) return true;
      std::this_thread::sleep_for(1ms);
    }
    return false;
  }

  std::string dir_;
  std::string run_;
  ContainerRuntimePtr rt_;
};

TEST_F(LightRuntimeUnitTest, RefusesWithoutRootSayingWhatIsMissing) {
  auto rt = open(/*euid=*/1000);
  ASSERT_FALSE(rt.isOk());
  EXPECT_EQ(rt.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(rt.status().message().find("root"), std::string::npos) << rt.status().message();
  EXPECT_FALSE(fs::exists(dir_ + "/state"));

  std::ofstream(dir_ + "/no-cgroups") << "22 1 254:0 / / rw - ext4 /dev/vda rw\n";
  Status s = checkHostSupport(0, false, dir_ + "/no-cgroups");
  EXPECT_EQ(s.code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(s.message().find("cgroup"), std::string::npos);
  EXPECT_TRUE(checkHostSupport(0, true, dir_ + "/mountinfo").isOk());
}

TEST_F(LightRuntimeUnitTest, CreateValidatesResolvesAndNames) {
  openOk();
  EXPECT_EQ(rt_->kind(), "light");
  auto bad = spec();
  bad.resources.memory_bytes = 1024;
  EXPECT_EQ(rt_->createContainer(bad).status().code(), StatusCode::kInvalidArgument);
  auto missing = spec();
  missing.image = "nope:1";
  EXPECT_EQ(rt_->createContainer(missing).status().code(), StatusCode::kNotFound);

  auto s = spec();
  s.name = "web";
  s.labels = {{"tier", "front"}};
  s.env = {"IMG=2", "NEW=1"};
  auto id = rt_->createContainer(s);
  ASSERT_TRUE(id.isOk()) << id.status().toString();
  EXPECT_EQ(id->size(), 64u);
  EXPECT_EQ(rt_->createContainer(s).status().code(), StatusCode::kAlreadyExists);

  auto info = rt_->inspectContainer("web");
  ASSERT_TRUE(info.isOk());
  EXPECT_EQ(info->id, *id);
  EXPECT_EQ(info->state, ContainerState::kCreated);
  EXPECT_EQ(info->image_id, kFakeImageId);
  EXPECT_EQ(info->cmd, std::vector<std::string>{"sh"});
  EXPECT_EQ(info->env, (std::vector<std::string>{
                           "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                           "IMG=2", "NEW=1"}));
  EXPECT_TRUE(rt_->inspectContainer(id->substr(0, 10)).isOk());
  EXPECT_EQ(rt_->inspectContainer("zz").status().code(), StatusCode::kNotFound);

  auto other = rt_->createContainer(spec());
  ASSERT_TRUE(other.isOk());
  ListOptions lo;
  lo.labels = {{"tier", "front"}};
  auto listed = rt_->listContainers(lo);
  ASSERT_TRUE(listed.isOk());
  ASSERT_EQ(listed->size(), 1u);
  EXPECT_EQ((*listed)[0].name, "web");
  EXPECT_EQ(rt_->listContainers({})->size(), 2u);
  lo = {};
  lo.all = false;
  EXPECT_TRUE(rt_->listContainers(lo)->empty());

  // Not running: stop is fine, kill and stats say so, wait returns at once.
  EXPECT_TRUE(rt_->stopContainer("web", 1s).isOk());
  EXPECT_EQ(rt_->killContainer("web", 9).code(), StatusCode::kFailedPrecondition);
  EXPECT_TRUE(rt_->waitContainer("web", 1s).isOk());

  // The image is in use until its containers are gone.
  EXPECT_EQ(rt_->removeImage(kFakeImageRef, false).code(), StatusCode::kFailedPrecondition);
  ASSERT_TRUE(rt_->removeContainer("web", false).isOk());
  ASSERT_TRUE(rt_->removeContainer(*other, false).isOk());
  EXPECT_EQ(rt_->inspectContainer("web").status().code(), StatusCode::kNotFound);
  EXPECT_TRUE(rt_->removeImage(kFakeImageRef, false).isOk());

  auto ri = rt_->info();
  ASSERT_TRUE(ri.isOk());
  EXPECT_EQ(ri->kind, "light");
  EXPECT_EQ(ri->cgroup_version, "1");
  EXPECT_EQ(ri->isolation, "namespaces+cgroups+seccomp");
  EXPECT_EQ(ri->containers, 0);
}

TEST_F(LightRuntimeUnitTest, StartFailureIsReportedAndRecorded) {
  openOk();
  auto id = rt_->createContainer(spec());
  ASSERT_TRUE(id.isOk());
  Status s = rt_->startContainer(*id);
  EXPECT_FALSE(s.isOk());
  EXPECT_NE(s.message().find("/nonexistent/edge-shim"), std::string::npos) << s.message();
  auto info = rt_->inspectContainer(*id);
  ASSERT_TRUE(info.isOk());
  EXPECT_EQ(info->state, ContainerState::kCreated);
  EXPECT_FALSE(info->error.empty());
  // The cgroup made for the start is gone again.
  EXPECT_FALSE(fs::exists(dir_ + "/cg/memory/edgecloud/" + *id));
}

TEST_F(LightRuntimeUnitTest, EventsForCreateAndDestroy) {
  openOk();
  std::mutex mu;
  std::vector<std::string> seen;
  auto sub = rt_->subscribe([&](const Event& e) {
    std::lock_guard lk(mu);
    seen.push_back(std::string(eventTypeName(e.type)));
  });
  ASSERT_TRUE(sub.isOk());
  auto id = rt_->createContainer(spec());
  ASSERT_TRUE(id.isOk());
  ASSERT_TRUE(rt_->removeContainer(*id, false).isOk());
  auto deadline = std::chrono::steady_clock::now() + 5s;
  while (std::chrono::steady_clock::now() < deadline) {
    {
      std::lock_guard lk(mu);
      if (seen.size() >= 2) break;
    }
    std::this_thread::yield();
  }
  sub->reset();
  // After unsubscribing nothing more arrives.
  ASSERT_TRUE(rt_->createContainer(spec()).isOk());
  rt_.reset();
  std::lock_guard lk(mu);
  EXPECT_EQ(seen, (std::vector<std::string>{"create", "destroy"}));
}

TEST_F(LightRuntimeUnitTest, RecoversLiveDeadAndGarbledContainers) {
  // A "live shim": this very process, with its real start time.
  StateRecord live;
  live.state = ContainerState::kRunning;
  live.shim_pid = ::getpid();
  live.shim_start = procStartTime(::getpid());
  live.started = WallTime(1'800'000'000s);
  std::string live_id = plant('a', "live", live, std::nullopt);

  StateRecord dead = live;
  dead.shim_pid = ::getpid();
  dead.shim_start = live.shim_start + 1;  // the pid was reused by someone else
  std::string exited_id = plant('b', "exited", dead, ExitRecord{3, true, WallTime(5s)});
  std::string lost_id = plant('c', "lost", dead, std::nullopt);
  std::string created_id = plant('d', "created", std::nullopt, std::nullopt);

  std::string garbled = dir_ + "/state/containers/" + std::string(64, 'e');
  ASSERT_TRUE(fs::makeDirs(garbled).isOk());
  std::ofstream(garbled + "/config.json") << "{ torn";
  ASSERT_TRUE(fs::makeDirs(dir_ + "/state/containers/not-a-container").isOk());
  std::string bad_state = plant('f', "badstate", std::nullopt, std::nullopt);
  std::ofstream(run_ + "/" + bad_state + "/state.json") << "garbage";
  // Run dirs gone (the run root is a tmpfs and the host restarted): nothing runs any more.
  std::string rebooted_id = plant('1', "rebooted", live, std::nullopt, /*run_dir=*/false);
  std::string rebooted_created = plant('2', "rebooted-created", std::nullopt, std::nullopt, false);
  // A pooled dir taken by a create that crashed before its config.json was complete.
  std::string torn = dir_ + "/state/containers/" + std::string(64, '3');
  ASSERT_TRUE(fs::makeDirs(torn).isOk());
  std::ofstream(torn + "/config.json") << "";

  openOk();
  auto all = rt_->listContainers({});
  ASSERT_TRUE(all.isOk());
  EXPECT_EQ(all->size(), 7u);

  auto i = rt_->inspectContainer("live");
  ASSERT_TRUE(i.isOk());
  EXPECT_EQ(i->state, ContainerState::kRunning);
  EXPECT_EQ(i->started, live.started);
  EXPECT_EQ(rt_->waitContainer("live", 20ms).status().code(), StatusCode::kDeadlineExceeded);

  i = rt_->inspectContainer("exited");
  ASSERT_TRUE(i.isOk());
  EXPECT_EQ(i->state, ContainerState::kExited);
  EXPECT_EQ(i->exit_code, 3);
  EXPECT_TRUE(i->oom_killed);

  i = rt_->inspectContainer("lost");
  ASSERT_TRUE(i.isOk());
  EXPECT_EQ(i->state, ContainerState::kExited);
  EXPECT_NE(i->error.find("died without recording"), std::string::npos);

  EXPECT_EQ(rt_->inspectContainer("created")->state, ContainerState::kCreated);
  EXPECT_EQ(rt_->inspectContainer("badstate")->state, ContainerState::kCreated);
  EXPECT_EQ(rt_->inspectContainer(std::string(64, 'e')).status().code(), StatusCode::kNotFound);
  EXPECT_EQ(rt_->inspectContainer(std::string(64, '3')).status().code(), StatusCode::kNotFound);
  for (const char* name : {"rebooted", "rebooted-created"}) {
    i = rt_->inspectContainer(name);
    ASSERT_TRUE(i.isOk());
    EXPECT_EQ(i->state, ContainerState::kExited) << name;
    EXPECT_EQ(i->exit_code, 255);
    EXPECT_NE(i->error.find("host restarted"), std::string::npos) << i->error;
  }
  // Recorded: the next open says the same.
  rt_.reset();
  openOk();
  i = rt_->inspectContainer("rebooted-created");
  ASSERT_TRUE(i.isOk());
  EXPECT_EQ(i->state, ContainerState::kExited);
  EXPECT_NE(i->error.find("host restarted"), std::string::npos) << i->error;
  EXPECT_EQ(rt_->inspectContainer("created")->state, ContainerState::kCreated);
  (void)rebooted_id;
  (void)rebooted_created;
  (void)exited_id;
  (void)lost_id;
  (void)created_id;
  (void)live_id;
}

}  // namespace
}  // namespace edge::runtime::light

namespace edge::runtime::light {
namespace {

TEST_F(LightRuntimeUnitTest, CreateTakesPreparedDirsFromThePool) {
  // Left by a crashed process: a half-built entry (dropped) and a ready one (reused).
  std::string pool_dir = dir_ + "/state/containers/.pool";
  ASSERT_TRUE(fs::makeDirs(pool_dir + "/.tmp-halfbuilt/upper").isOk());
  std::string kept = std::string(32, 'c');
  for (const char* sub : {"/upper", "/work", "/merged"}) {
    ASSERT_TRUE(fs::makeDirs(pool_dir + "/" + kept + sub).isOk());
  }
  std::ofstream(pool_dir + "/" + kept + "/config.json") << "";
  std::ofstream(pool_dir + "/" + kept + "/container.log") << "";

  openOk();
  ASSERT_TRUE(waitPool(4));
  EXPECT_FALSE(fs::exists(pool_dir + "/.tmp-halfbuilt"));
  std::vector<std::string> before = pool();
  EXPECT_NE(std::find(before.begin(), before.end(), kept), before.end());

  auto s = spec();
  s.name = "pooled";
  auto id = rt_->createContainer(s);
  ASSERT_TRUE(id.isOk()) << id.status().toString();
  std::string d = dir_ + "/state/containers/" + *id;
  for (const char* sub : {"/upper", "/work", "/merged"}) EXPECT_TRUE(fs::isDirectory(d + sub));
  auto text = fs::readFile(d + "/config.json");
  ASSERT_TRUE(text.isOk());
  auto cfg = decodeLaunchConfig(*text);
  ASSERT_TRUE(cfg.isOk()) << cfg.status().toString();
  EXPECT_EQ(cfg->info.id, *id);
  EXPECT_EQ(cfg->info.name, "pooled");
  EXPECT_TRUE(fs::isDirectory(run_ + "/" + *id));
  // One entry was used and the pool is refilled.
  ASSERT_TRUE(waitPool(4));
  std::vector<std::string> after = pool();
  size_t gone = 0;
  for (const std::string& n : before)
    gone += std::find(after.begin(), after.end(), n) == after.end();
  EXPECT_EQ(gone, 1u);

  // A reopened runtime sees it, and removing it removes its run dir too.
  rt_.reset();
  openOk();
  EXPECT_EQ(rt_->inspectContainer("pooled")->state, ContainerState::kCreated);
  ASSERT_TRUE(rt_->removeContainer("pooled", false).isOk());
  EXPECT_FALSE(fs::exists(d));
  EXPECT_FALSE(fs::exists(run_ + "/" + *id));
}

}  // namespace
}  // namespace edge::runtime::light
