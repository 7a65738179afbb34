// The runtime conformance suite: the same user-visible behaviour, checked against every
// ContainerRuntime implementation on real infrastructure — Docker Engine through its
// socket, and the light runtime with real namespaces and cgroups.
//
// Needs: root, `${EDGE_BUILD_DIR}/images/busybox.tar` (made by the build), the edge-ctr
// and edge-shim binaries in `${EDGE_BUILD_DIR}/bin`, and for the docker case a dockerd on
// /var/run/docker.sock (EDGE_REQUIRE_DOCKER=1 turns its absence into a failure; see
// tests/test_env.h).
#include <sys/mount.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <atomic>
#include <csignal>
#include <cstdlib>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include "common/fs.h"
#include "runtime-shim/docker/docker_runtime.h"
#include "runtime-shim/factory.h"
#include "tests/test_env.h"

namespace edge::runtime {
namespace {

using namespace std::chrono_literals;

constexpr char kImage[] = "edgecloud/busybox:test";

std::string buildDir() {
  const char* d = std::getenv("EDGE_BUILD_DIR");
  return d ? d : "build";
}

std::string dataDir() {
  static std::string dir = "/tmp/edge-conformance-" + std::to_string(::getpid());
  return dir;
}

std::string runLabel() {
  return std::to_string(::getpid());
}

// One runtime per kind for the whole process, with the test image loaded once.
// Without rt, `problem` says why; not root skips, no Docker Engine is EDGE_DOCKER_MISSING,
// anything else (the build's image, opening the runtime) fails.
struct Env {
  enum class Problem { kNone, kNotRoot, kNoDocker, kBroken };
  ContainerRuntimePtr rt;
  std::string problem;
  Problem kind = Problem::kNone;
};

std::mutex g_envs_mu;
std::map<std::string, Env> g_envs;

RuntimeOptions optionsFor(const std::string& kind) {
  RuntimeOptions o;
  o.kind = kind;
  o.data_dir = dataDir();
  o.shim_path = buildDir() + "/bin/edge-shim";
  return o;
}

// Closes the runtimes, then removes the light runtime's data dir and its run root.
class CleanupEnvironment : public ::testing::Environment {
 public:
  void TearDown() override {
    {
      std::lock_guard<std::mutex> lock(g_envs_mu);
      g_envs.clear();
    }
    std::string run_root = lightRunRoot(optionsFor("light"));
    ::umount2(run_root.c_str(), MNT_DETACH);
    (void)fs::removeAll(run_root);
    (void)fs::removeAll(dataDir());
  }
};
const auto* const kCleanup = ::testing::AddGlobalTestEnvironment(new CleanupEnvironment);

Env& envFor(const std::string& kind) {
  std::lock_guard<std::mutex> lock(g_envs_mu);
  auto& envs = g_envs;
  auto it = envs.find(kind);
  if (it != envs.end()) return it->second;
  Env& e = envs[kind];
  if (::geteuid() != 0) {
    e.problem = "needs root";
    e.kind = Env::Problem::kNotRoot;
    return e;
  }
  std::string image = buildDir() + "/images/busybox.tar";
  if (!fs::exists(image)) {
    e.problem = image + " is missing (build the edge_test_images target)";
    e.kind = Env::Problem::kBroken;
    return e;
  }
  RuntimeOptions o = optionsFor(kind);
  if (kind == "docker" && !dockerAnswers(o.docker_endpoint, 2000ms)) {
    e.problem = "no Docker Engine answers on " + o.docker_endpoint;
    e.kind = Env::Problem::kNoDocker;
    return e;
  }
  auto rt = createRuntime(o);
  if (!rt.isOk()) {
    e.problem = "cannot open the " + kind + " runtime: " + rt.status().toString();
    e.kind = Env::Problem::kBroken;
    return e;
  }
  auto loaded = (*rt)->loadImage(image);
  if (!loaded.isOk()) {
    e.problem = "cannot load " + image + ": " + loaded.status().toString();
    e.kind = Env::Problem::kBroken;
    return e;
  }
  e.rt = std::move(*rt);
  return e;
}

class ConformanceTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    Env& e = envFor(GetParam());
    if (!e.rt) {
      if (e.kind == Env::Problem::kNotRoot) GTEST_SKIP() << e.problem;
      if (e.kind == Env::Problem::kNoDocker) EDGE_DOCKER_MISSING(e.problem);
      FAIL() << e.problem;
    }
    rt_ = e.rt.get();
  }

  void TearDown() override {
    if (!rt_) return;
    for (const auto& id : created_) (void)rt_->removeContainer(id, true);
  }

  ContainerSpec spec(std::vector<std::string> cmd) {
    ContainerSpec s;
    s.image = kImage;
    s.cmd = std::move(cmd);
    s.labels["edge-conformance"] = runLabel();
    return s;
  }

  std::string create(const ContainerSpec& s) {
    auto id = rt_->createContainer(s);
    EXPECT_TRUE(id.isOk()) << id.status().toString();
    if (!id.isOk()) return "";
    created_.push_back(*id);
    return *id;
  }

  // Creates, starts and waits; returns the exit status.
  ExitStatus runToExit(const ContainerSpec& s, std::string* id_out = nullptr) {
    std::string id = create(s);
    if (id_out) *id_out = id;
    Status st = rt_->startContainer(id);
    EXPECT_TRUE(st.isOk()) << st.toString();
    auto exit = rt_->waitContainer(id, std::chrono::duration_cast<Duration>(60s));
    EXPECT_TRUE(exit.isOk()) << exit.status().toString();
    return exit.isOk() ? *exit : ExitStatus{-1, false, {}};
  }

  std::string logs(const std::string& id, bool out, bool err) {
    LogOptions lo;
    lo.include_stdout = out;
    lo.include_stderr = err;
    std::string text;
    Status s = rt_->readLogs(id, lo, [&](const LogEntry& e) {
      text += e.data;
      return true;
    });
    EXPECT_TRUE(s.isOk()) << s.toString();
    return text;
  }

  ContainerRuntime* rt_ = nullptr;
  std::vector<std::string> created_;
};

TEST_P(ConformanceTest, ImageIsListedAndInspectable) {
  auto img = rt_->inspectImage(kImage);
  ASSERT_TRUE(img.isOk()) << img.status().toString();
  EXPECT_EQ(img->cmd, std::vector<std::string>{"sh"});
  EXPECT_EQ(img->layers.size(), 2u);
  EXPECT_TRUE(img->id.starts_with("sha256:")) << img->id;
  auto list = rt_->listImages();
  ASSERT_TRUE(list.isOk());
  bool found = false;
  for (const auto& i : *list) {
    for (const auto& t : i.tags) found = found || t == kImage;
  }
  EXPECT_TRUE(found);
  EXPECT_EQ(rt_->inspectImage("edgecloud/no-such-image:1").status().code(), StatusCode::kNotFound);
}

TEST_P(ConformanceTest, StdoutAndStderrAreKeptApart) {
  std::string id;
  ExitStatus e = runToExit(spec({"sh", "-c", "echo out1; echo err1 >&2; echo out2"}), &id);
  EXPECT_EQ(e.exit_code, 0);
  EXPECT_EQ(logs(id, true, false), "out1\nout2\n");
  EXPECT_EQ(logs(id, false, true), "err1\n");
  EXPECT_EQ(logs(id, true, true).size(), std::string("out1\nerr1\nout2\n").size());
}

TEST_P(ConformanceTest, ExitCodesAreReported) {
  EXPECT_EQ(runToExit(spec({"sh", "-c", "exit 42"})).exit_code, 42);
  EXPECT_EQ(runToExit(spec({"true"})).exit_code, 0);
}

TEST_P(ConformanceTest, MissingExecutableFailsStartWithAClearError) {
  std::string id = create(spec({"/no/such/binary"}));
  Status s = rt_->startContainer(id);
  ASSERT_FALSE(s.isOk());
  EXPECT_NE(s.message().find("/no/such/binary"), std::string::npos) << s.message();
}

TEST_P(ConformanceTest, EnvWorkdirUserHostname) {
  ContainerSpec s = spec({"sh", "-c", "echo $FOO; pwd; id -u; hostname"});
  s.env = {"FOO=bar baz"};
  s.working_dir = "/tmp";
  s.user = "65534";
  s.hostname = "edgebox";
  std::string id;
  EXPECT_EQ(runToExit(s, &id).exit_code, 0);
  EXPECT_EQ(logs(id, true, true), "bar baz\n/tmp\n65534\nedgebox\n");
  auto info = rt_->inspectContainer(id);
  ASSERT_TRUE(info.isOk());
  EXPECT_EQ(info->state, ContainerState::kExited);
  EXPECT_EQ(info->labels.at("edge-conformance"), runLabel());
}

TEST_P(ConformanceTest, StopSendsTheSignalThenKills) {
  // A shell that exits on TERM stops gracefully with its own code.
  ContainerSpec graceful =
      spec({"sh", "-c", "trap 'exit 3' TERM; while true; do sleep 0.05; done"});
  std::string id = create(graceful);
  ASSERT_TRUE(rt_->startContainer(id).isOk());
  auto start = std::chrono::steady_clock::now();
  ASSERT_TRUE(rt_->stopContainer(id, 10s).isOk());
  auto e = rt_->waitContainer(id, std::chrono::duration_cast<Duration>(10s));
  ASSERT_TRUE(e.isOk());
  EXPECT_EQ(e->exit_code, 3);
  EXPECT_LT(std::chrono::steady_clock::now() - start, 8s);

  // `sleep` as pid 1 ignores TERM: killed after the timeout.
  std::string id2 = create(spec({"sleep", "300"}));
  ASSERT_TRUE(rt_->startContainer(id2).isOk());
  ASSERT_TRUE(rt_->stopContainer(id2, 1s).isOk());
  e = rt_->waitContainer(id2, std::chrono::duration_cast<Duration>(10s));
  ASSERT_TRUE(e.isOk());
  EXPECT_EQ(e->exit_code, 137);
  // Stopping a stopped container is fine.
  EXPECT_TRUE(rt_->stopContainer(id2, 1s).isOk());
}

TEST_P(ConformanceTest, KillDeliversTheSignal) {
  std::string id = create(spec({"sleep", "300"}));
  ASSERT_TRUE(rt_->startContainer(id).isOk());
  ASSERT_TRUE(rt_->killContainer(id, SIGKILL).isOk());
  auto e = rt_->waitContainer(id, std::chrono::duration_cast<Duration>(10s));
  ASSERT_TRUE(e.isOk());
  EXPECT_EQ(e->exit_code, 137);
}

TEST_P(ConformanceTest, MemoryLimitKillsAMemoryHog) {
  ContainerSpec s = spec({"memhog", "256"});
  s.resources.memory_bytes = 32 << 20;
  std::string id;
  ExitStatus e = runToExit(s, &id);
  EXPECT_NE(e.exit_code, 0);
  EXPECT_TRUE(e.oom_killed) << "exit " << e.exit_code << ", output: " << logs(id, true, true);
  auto info = rt_->inspectContainer(id);
  ASSERT_TRUE(info.isOk());
  EXPECT_TRUE(info->oom_killed);
  EXPECT_EQ(info->resources.memory_bytes, 32 << 20);
}

TEST_P(ConformanceTest, PidsLimitStopsAForkBomb) {
  ContainerSpec s = spec({"forkbomb", "100"});
  s.resources.pids_limit = 20;
  std::string id;
  runToExit(s, &id);
  std::string out = logs(id, true, true);
  // forkbomb prints "forkbomb: forked=<n> eagain=<m> other_errors=<k>".
  size_t p = out.find("forked=");
  ASSERT_NE(p, std::string::npos) << out;
  int forked = std::atoi(out.c_str() + p + 7);
  EXPECT_LT(forked, 20) << out;
  size_t e = out.find("eagain=");
  ASSERT_NE(e, std::string::npos) << out;
  EXPECT_GT(std::atoi(out.c_str() + e + 7), 0) << out;
}

TEST_P(ConformanceTest, WhiteoutsAndOpaqueDirectoriesAreApplied) {
  std::string id;
  EXPECT_EQ(runToExit(spec({"sh", "-c", "ls -a /wh; echo --; ls -a /wh/dir"}), &id).exit_code, 0);
  EXPECT_EQ(logs(id, true, true), ".\n..\ndir\nkeep.txt\n--\n.\n..\nnew.txt\n");
}

TEST_P(ConformanceTest, NetworkNoneHasOnlyLoopback) {
  ContainerSpec s = spec({"sh", "-c", "ls /sys/class/net"});
  s.network = NetworkMode::kNone;
  std::string id;
  EXPECT_EQ(runToExit(s, &id).exit_code, 0);
  EXPECT_EQ(logs(id, true, true), "lo\n");
}

TEST_P(ConformanceTest, FollowStreamsUntilExit) {
  std::string id = create(spec({"sh", "-c", "for i in 1 2 3; do echo line$i; sleep 0.2; done"}));
  ASSERT_TRUE(rt_->startContainer(id).isOk());
  LogOptions lo;
  lo.follow = true;
  std::vector<std::string> lines;
  auto start = std::chrono::steady_clock::now();
  Status s = rt_->readLogs(id, lo, [&](const LogEntry& e) {
    lines.push_back(e.data);
    return true;
  });
  ASSERT_TRUE(s.isOk()) << s.toString();
  EXPECT_EQ(lines, (std::vector<std::string>{"line1\n", "line2\n", "line3\n"}));
  EXPECT_LT(std::chrono::steady_clock::now() - start, 20s);
}

TEST_P(ConformanceTest, TailAndSince) {
  std::string id;
  runToExit(spec({"sh", "-c", "for i in 1 2 3 4 5; do echo $i; done"}), &id);
  LogOptions lo;
  lo.tail = 2;
  std::string text;
  ASSERT_TRUE(rt_->readLogs(id, lo,
                            [&](const LogEntry& e) {
                              text += e.data;
                              return true;
                            })
                  .isOk());
  EXPECT_EQ(text, "4\n5\n");
  LogOptions future;
  future.since = std::chrono::system_clock::now() + std::chrono::hours(1);
  int n = 0;
  ASSERT_TRUE(rt_->readLogs(id, future, [&](const LogEntry&) { return ++n, true; }).isOk());
  EXPECT_EQ(n, 0);
}

TEST_P(ConformanceTest, ListFiltersByLabelAndRemoveForgets) {
  ContainerSpec s = spec({"sleep", "300"});
  std::string unique = "c" + std::to_string(::getpid()) + GetParam();
  s.labels["edge-case"] = unique;
  s.name = "edge-conf-" + unique;
  std::string id = create(s);
  ASSERT_TRUE(rt_->startContainer(id).isOk());
  ListOptions lo;
  lo.labels["edge-case"] = unique;
  auto list = rt_->listContainers(lo);
  ASSERT_TRUE(list.isOk());
  ASSERT_EQ(list->size(), 1u);
  EXPECT_EQ((*list)[0].id, id);
  EXPECT_EQ((*list)[0].state, ContainerState::kRunning);
  EXPECT_GT((*list)[0].pid, 0);
  EXPECT_EQ(rt_->inspectContainer(s.name)->id, id);
  EXPECT_EQ(rt_->inspectContainer(id.substr(0, 12))->id, id);
  // The same name twice is refused.
  EXPECT_EQ(rt_->createContainer(s).status().code(), StatusCode::kAlreadyExists);
  // Running: plain remove is refused, forced remove works.
  EXPECT_FALSE(rt_->removeContainer(id, false).isOk());
  ASSERT_TRUE(rt_->removeContainer(id, true).isOk());
  EXPECT_EQ(rt_->inspectContainer(id).status().code(), StatusCode::kNotFound);
  EXPECT_EQ(rt_->listContainers(lo)->size(), 0u);
}

TEST_P(ConformanceTest, StatsOfARunningContainer) {
  std::string id =
      create(spec({"sh", "-c", "x=0; while [ $x -lt 200000 ]; do x=$((x+1)); done; sleep 300"}));
  ASSERT_TRUE(rt_->startContainer(id).isOk());
  auto st = rt_->stats(id);
  ASSERT_TRUE(st.isOk()) << st.status().toString();
  EXPECT_GT(st->memory_usage_bytes, 0);
  EXPECT_GE(st->pids, 1);
  ASSERT_TRUE(rt_->killContainer(id, SIGKILL).isOk());
}

TEST_P(ConformanceTest, EventsReportStartAndExit) {
  std::mutex mu;
  std::vector<Event> seen;
  std::condition_variable cv;
  auto sub = rt_->subscribe([&](const Event& e) {
    std::lock_guard<std::mutex> lock(mu);
    seen.push_back(e);
    cv.notify_all();
  });
  ASSERT_TRUE(sub.isOk()) << sub.status().toString();
  std::string id;
  runToExit(spec({"sh", "-c", "exit 7"}), &id);
  std::unique_lock<std::mutex> lock(mu);
  bool got = cv.wait_for(lock, 10s, [&] {
    for (const auto& e : seen) {
      if (e.container_id == id && e.type == Event::Type::kExit) return true;
    }
    return false;
  });
  ASSERT_TRUE(got);
  bool started = false;
  for (const auto& e : seen) {
    if (e.container_id != id) continue;
    if (e.type == Event::Type::kStart) started = true;
    if (e.type == Event::Type::kExit) {
      EXPECT_EQ(e.exit_code, 7);
    }
  }
  EXPECT_TRUE(started);
}

TEST_P(ConformanceTest, ImageInUseIsNotRemoved) {
  std::string id = create(spec({"true"}));
  Status s = rt_->removeImage(kImage, false);
  EXPECT_FALSE(s.isOk());
  EXPECT_TRUE(rt_->inspectImage(kImage).isOk());
}

// The container outlives the process that started it: edge-ctr starts it and exits;
// this process, with its own runtime instance, finds it running and stops it.
TEST_P(ConformanceTest, ContainerSurvivesTheProcessThatStartedIt) {
  std::string name = "edge-survivor-" + std::to_string(::getpid()) + "-" + GetParam();
  std::string cmd = buildDir() + "/bin/edge-ctr --runtime " + GetParam() + " --data-dir " +
                    dataDir() + " run -d --name " + name +
                    " --label edge-conformance=" + runLabel() + " " + kImage +
                    " sleep 300 >/dev/null";
  ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
  auto fresh = createRuntime(optionsFor(GetParam()));
  ASSERT_TRUE(fresh.isOk()) << fresh.status().toString();
  auto info = (*fresh)->inspectContainer(name);
  ASSERT_TRUE(info.isOk()) << info.status().toString();
  created_.push_back(info->id);
  EXPECT_EQ(info->state, ContainerState::kRunning);
  EXPECT_EQ(::kill(info->pid, 0), 0);
  ASSERT_TRUE((*fresh)->stopContainer(name, 1s).isOk());
  auto e = (*fresh)->waitContainer(name, std::chrono::duration_cast<Duration>(10s));
  ASSERT_TRUE(e.isOk());
  EXPECT_EQ(e->exit_code, 137);
}

INSTANTIATE_TEST_SUITE_P(Runtimes, ConformanceTest, ::testing::Values("docker", "light"),
                         [](const auto& info) { return info.param; });

}  // namespace
}  // namespace edge::runtime
