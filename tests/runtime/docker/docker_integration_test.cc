// DockerRuntime against the real daemon (default unix:///var/run/docker.sock, or
// $EDGE_DOCKER_ENDPOINT, e.g. a Podman socket). Without a daemon the tests skip, unless
// EDGE_REQUIRE_DOCKER=1 makes that a failure (tests/test_env.h); a daemon that cannot
// load the test image is a failure.
//
// Every container is named edgetest-<pid>-<n> and labelled io.edgecloud.test=<pid>;
// TearDown force-removes whatever a test left behind.
#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <fstream>
#include <future>
#include <mutex>
#include <thread>

#include "runtime-shim/docker/docker_runtime.h"
#include "tests/test_env.h"

namespace edge::runtime {
namespace {

using namespace std::chrono_literals;
using Steady = std::chrono::steady_clock;

constexpr char kImage[] = "edgecloud/busybox:test";
constexpr char kTestLabel[] = "io.edgecloud.test";

std::string endpoint() {
  const char* e = std::getenv("EDGE_DOCKER_ENDPOINT");
  return e && *e ? e : "unix:///var/run/docker.sock";
}
std::string runId() {
  return std::to_string(::getpid());
}

// Polls `cond` every 20 ms until it holds or `limit` passes.
template <typename F>
bool eventually(F cond, std::chrono::milliseconds limit = 10s) {
  auto deadline = Steady::now() + limit;
  while (Steady::now() < deadline) {
    if (cond()) return true;
    std::this_thread::sleep_for(20ms);
  }
  return cond();
}

struct Shared {
  ContainerRuntimePtr rt;
  std::string problem;     // why the suite cannot run
  bool no_daemon = false;  // the problem is that no daemon answers
  std::string image = kImage;
};

Shared& shared() {
  static Shared s = [] {
    Shared s;
    Result<ContainerRuntimePtr> rt = openDockerRuntime(endpoint(), SystemClock::instance());
    if (!rt.isOk()) {
      s.problem = "no Docker-compatible daemon at " + endpoint() + ": " + rt.status().toString();
      s.no_daemon = true;
      return s;
    }
    const char* build = std::getenv("EDGE_BUILD_DIR");
    std::string tar = std::string(build ? build : "build") + "/images/busybox.tar";
    if (::access(tar.c_str(), R_OK) == 0) {
      Result<std::vector<ImageInfo>> loaded = (*rt)->loadImage(tar);
      if (!loaded.isOk()) {
        s.problem = "loading " + tar + " failed: " + loaded.status().toString();
        return s;
      }
    } else if (!(*rt)->inspectImage(kImage).isOk()) {
      s.problem = std::string("no test image: neither ") + tar + " nor " + kImage +
                  " in the daemon (build edge_test_images, or docker import one)";
      return s;
    }
    s.rt = std::move(rt).value();
    return s;
  }();
  return s;
}

class DockerIntegrationTest : public ::testing::Test {
 protected:
  void SetUp() override {
    Shared& s = shared();
    if (!s.rt) {
      if (s.no_daemon) EDGE_DOCKER_MISSING(s.problem);
      FAIL() << s.problem;
    }
    rt_ = s.rt.get();
  }

  void TearDown() override {
    if (!rt_) return;
    Result<std::vector<ContainerInfo>> left =
        rt_->listContainers({.labels = {{kTestLabel, runId()}}});
    if (!left.isOk()) return;
    for (const ContainerInfo& c : *left) (void)rt_->removeContainer(c.id, true);
  }

  ContainerSpec spec(std::vector<std::string> cmd) {
    static std::atomic<int> n{0};
    ContainerSpec s;
    s.name = "edgetest-" + runId() + "-" + std::to_string(n++);
    s.image = shared().image;
    s.cmd = std::move(cmd);
    s.labels = {{kTestLabel, runId()}};
    s.network = NetworkMode::kNone;
    return s;
  }

  std::string create(const ContainerSpec& s) {
    Result<std::string> id = rt_->createContainer(s);
    EXPECT_TRUE(id.isOk()) << id.status().toString();
    return id.valueOr("");
  }

  std::string run(std::vector<std::string> cmd) {
    std::string id = create(spec(std::move(cmd)));
    Status s = rt_->startContainer(id);
    EXPECT_TRUE(s.isOk()) << s.toString();
    return id;
  }

  ContainerRuntime* rt_ = nullptr;
};

TEST_F(DockerIntegrationTest, NegotiatesTheApiVersion) {
  Result<RuntimeInfo> info = rt_->info();
  ASSERT_TRUE(info.isOk()) << info.status().toString();
  EXPECT_EQ(info->kind, "docker");
  EXPECT_FALSE(info->version.empty());
  EXPECT_FALSE(info->api_version.empty());
  EXPECT_LE(info->api_version.size(), 4u);  // "1.41"
  EXPECT_EQ(info->os, "linux");
  EXPECT_FALSE(info->kernel.empty());
  EXPECT_GE(info->images, 1);
  EXPECT_TRUE(dockerAnswers(endpoint(), 2000ms));
}

TEST_F(DockerIntegrationTest, ImagesAreInspectableAndListed) {
  Result<ImageInfo> img = rt_->inspectImage(kImage);
  ASSERT_TRUE(img.isOk()) << img.status().toString();
  EXPECT_TRUE(img->id.starts_with("sha256:"));
  EXPECT_FALSE(img->layers.empty());
  EXPECT_GT(img->size_bytes, 0);
  EXPECT_EQ(img->os, "linux");
  // No check on `created`: reproducible images are stamped at the epoch.
  bool tagged = false;
  for (const std::string& t : img->tags)
    tagged |= t.find("edgecloud/busybox:test") != std::string::npos;
  EXPECT_TRUE(tagged);
  Result<std::vector<ImageInfo>> all = rt_->listImages();
  ASSERT_TRUE(all.isOk()) << all.status().toString();
  bool listed = false;
  for (const ImageInfo& i : *all) listed |= i.id == img->id;
  EXPECT_TRUE(listed);
  EXPECT_EQ(rt_->inspectImage("edgecloud/no-such-image:404").status().code(),
            StatusCode::kNotFound);
  EXPECT_EQ(rt_->removeImage("edgecloud/no-such-image:404", false).code(), StatusCode::kNotFound);
}

TEST_F(DockerIntegrationTest, LoadRejectsABrokenTarball) {
  std::string path = ::testing::TempDir() + "/broken_" + runId() + ".tar";
  std::ofstream(path) << "this is not a tar archive";
  Result<std::vector<ImageInfo>> r = rt_->loadImage(path);
  ::unlink(path.c_str());
  ASSERT_FALSE(r.isOk());
  EXPECT_NE(r.status().message().find(path), std::string::npos) << r.status().toString();
}

TEST_F(DockerIntegrationTest, LifecycleLogsAndEffectiveConfig) {
  ContainerSpec s = spec({"sh", "-c", "echo out; echo err >&2; echo $FOO; exit 3"});
  s.env = {"FOO=bar"};
  s.working_dir = "/tmp";
  s.mounts = {{"/tmp", "/data", true}};
  s.resources = {.memory_bytes = 64 << 20, .nano_cpus = 500'000'000, .pids_limit = 64};
  s.stop_signal = "SIGINT";
  s.stop_timeout = 3s;
  std::string id = create(s);
  ASSERT_EQ(id.size(), 64u);
  EXPECT_EQ(rt_->createContainer(s).status().code(), StatusCode::kAlreadyExists);

  Result<ContainerInfo> c = rt_->inspectContainer(s.name);
  ASSERT_TRUE(c.isOk()) << c.status().toString();
  EXPECT_EQ(c->id, id);
  EXPECT_EQ(c->name, s.name);
  EXPECT_EQ(c->image, s.image);
  EXPECT_EQ(c->state, ContainerState::kCreated);
  EXPECT_EQ(c->started, WallTime{});
  EXPECT_EQ(c->labels.count(kManagedLabel), 0u);  // only the orchestrator marks containers
  EXPECT_EQ(c->network, NetworkMode::kNone);
  ASSERT_EQ(c->mounts.size(), 1u);
  EXPECT_TRUE(c->mounts[0].read_only);
  EXPECT_EQ(c->resources.memory_bytes, 64 << 20);
  EXPECT_EQ(c->resources.nano_cpus, 500'000'000);
  EXPECT_EQ(c->resources.pids_limit, 64);
  EXPECT_EQ(c->working_dir, "/tmp");
  EXPECT_NE(std::find(c->env.begin(), c->env.end(), "FOO=bar"), c->env.end());
  EXPECT_GE(c->env.size(), 2u);  // merged with the image's PATH
  EXPECT_EQ(rt_->inspectContainer(id.substr(0, 12)).valueOr({}).id, id);

  ASSERT_TRUE(rt_->startContainer(id).isOk());
  Result<ExitStatus> w = rt_->waitContainer(id, 20s);
  ASSERT_TRUE(w.isOk()) << w.status().toString();
  EXPECT_EQ(w->exit_code, 3);
  EXPECT_NE(w->finished, WallTime{});

  c = rt_->inspectContainer(id);
  ASSERT_TRUE(c.isOk());
  EXPECT_EQ(c->state, ContainerState::kExited);
  EXPECT_EQ(c->exit_code, 3);
  EXPECT_EQ(c->pid, 0);
  EXPECT_NE(c->started, WallTime{});
  EXPECT_NE(c->finished, WallTime{});
  EXPECT_GE(c->finished, c->started);  // dockerd may stamp StartedAt late; see containerFromInspect

  std::vector<LogEntry> logs;
  ASSERT_TRUE(rt_->readLogs(id, {},
                            [&](const LogEntry& e) {
                              logs.push_back(e);
                              return true;
                            })
                  .isOk());
  std::string out, err;
  for (const LogEntry& e : logs) {
    (e.stream == LogStream::kStdout ? out : err) += e.data;
    EXPECT_NE(e.time, WallTime{});
    EXPECT_GE(e.time, c->started - 1s);
  }
  EXPECT_EQ(out, "out\nbar\n");
  EXPECT_EQ(err, "err\n");

  // stdout and stderr are copied separately, so their order in the log is not fixed;
  // compare with what the full read saw last.
  ASSERT_EQ(logs.size(), 3u);
  LogOptions tail;
  tail.tail = 1;
  std::vector<LogEntry> last;
  ASSERT_TRUE(rt_->readLogs(id, tail,
                            [&](const LogEntry& e) {
                              last.push_back(e);
                              return true;
                            })
                  .isOk());
  ASSERT_EQ(last.size(), 1u);
  EXPECT_EQ(last[0].data, logs.back().data);
  EXPECT_EQ(last[0].time, logs.back().time);
  LogOptions since;
  since.since = logs.back().time;
  std::vector<LogEntry> later;
  ASSERT_TRUE(rt_->readLogs(id, since,
                            [&](const LogEntry& e) {
                              later.push_back(e);
                              return true;
                            })
                  .isOk());
  ASSERT_FALSE(later.empty());
  for (const LogEntry& e : later) EXPECT_GE(e.time, logs.back().time);
  LogOptions until;
  until.until = logs.front().time;
  int before_first = 0;
  ASSERT_TRUE(rt_->readLogs(id, until, [&](const LogEntry&) { return ++before_first > 0; }).isOk());
  EXPECT_EQ(before_first, 0);  // until is exclusive

  EXPECT_TRUE(rt_->stopContainer(id, 1s).isOk());  // not running: fine
  EXPECT_EQ(rt_->killContainer(id, 9).code(), StatusCode::kFailedPrecondition);
  ASSERT_TRUE(rt_->removeContainer(id, false).isOk());
  EXPECT_EQ(rt_->inspectContainer(id).status().code(), StatusCode::kNotFound);
  EXPECT_EQ(rt_->removeContainer(id, false).code(), StatusCode::kNotFound);
  EXPECT_EQ(rt_->readLogs(id, {}, [](const LogEntry&) { return true; }).code(),
            StatusCode::kNotFound);
}

TEST_F(DockerIntegrationTest, RunningContainerStateRules) {
  std::string id = run({"sleep", "60"});
  Result<ContainerInfo> c = rt_->inspectContainer(id);
  ASSERT_TRUE(c.isOk());
  // Only a running container protects the image below; stop here if it did not start.
  ASSERT_EQ(c->state, ContainerState::kRunning);
  EXPECT_GT(c->pid, 0);
  EXPECT_EQ(rt_->startContainer(id).code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(rt_->removeContainer(id, false).code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(rt_->removeImage(kImage, false).code(), StatusCode::kFailedPrecondition);

  Result<Stats> st = rt_->stats(id);
  ASSERT_TRUE(st.isOk()) << st.status().toString();
  EXPECT_GE(st->pids, 1);
  EXPECT_GT(st->memory_usage_bytes, 0);
  EXPECT_GT(st->memory_limit_bytes, 0);  // the host's memory: no limit was set
  EXPECT_NE(st->read_at, WallTime{});

  ASSERT_TRUE(rt_->killContainer(id, 9).isOk());
  Result<ExitStatus> w = rt_->waitContainer(id, 20s);
  ASSERT_TRUE(w.isOk()) << w.status().toString();
  EXPECT_EQ(w->exit_code, 137);
}

TEST_F(DockerIntegrationTest, StatsReportTheMemoryLimit) {
  ContainerSpec s = spec({"sleep", "60"});
  s.resources.memory_bytes = 32 << 20;
  std::string id = create(s);
  ASSERT_TRUE(rt_->startContainer(id).isOk());
  Result<Stats> st = rt_->stats(id);
  ASSERT_TRUE(st.isOk()) << st.status().toString();
  EXPECT_EQ(st->memory_limit_bytes, 32 << 20);
  EXPECT_GT(st->cpu_usage_ns, 0);
  EXPECT_TRUE(rt_->removeContainer(id, true).isOk());
}

TEST_F(DockerIntegrationTest, WaitBlocksOnlyItsCaller) {
  std::string sleeper = run({"sleep", "60"});
  auto waited = std::async(std::launch::async, [&] { return rt_->waitContainer(sleeper, 60s); });
  ASSERT_EQ(waited.wait_for(300ms), std::future_status::timeout);  // really blocked

  // Other calls, from other threads, while the wait is parked in the daemon.
  std::vector<std::future<Steady::duration>> others;
  for (int i = 0; i < 4; ++i) {
    others.push_back(std::async(std::launch::async, [&, i] {
      auto t0 = Steady::now();
      EXPECT_TRUE(rt_->inspectContainer(sleeper).isOk());
      EXPECT_TRUE(rt_->listContainers({.labels = {{kTestLabel, runId()}}}).isOk());
      if (i == 0) {
        std::string other = run({"true"});
        EXPECT_TRUE(rt_->waitContainer(other, 20s).isOk());
      }
      return Steady::now() - t0;
    }));
  }
  for (auto& f : others) {
    ASSERT_EQ(f.wait_for(20s), std::future_status::ready);
    EXPECT_LT(f.get(), 10s);
  }
  EXPECT_EQ(waited.wait_for(0ms), std::future_status::timeout);

  // A short caller timeout ends only that wait.
  auto t0 = Steady::now();
  EXPECT_EQ(rt_->waitContainer(sleeper, 300ms).status().code(), StatusCode::kDeadlineExceeded);
  EXPECT_LT(Steady::now() - t0, 3s);
  EXPECT_EQ(rt_->waitContainer(sleeper, 0ms).status().code(), StatusCode::kDeadlineExceeded);

  ASSERT_TRUE(rt_->stopContainer(sleeper, 1s).isOk());
  ASSERT_EQ(waited.wait_for(20s), std::future_status::ready);
  Result<ExitStatus> w = waited.get();
  ASSERT_TRUE(w.isOk()) << w.status().toString();
  EXPECT_EQ(w->exit_code, 137);  // sleep ignores SIGTERM as pid 1: killed after 1 s
}

TEST_F(DockerIntegrationTest, EventsForTheWholeLifecycle) {
  std::mutex mu;
  std::vector<Event> events;
  Result<SubscriptionPtr> sub = rt_->subscribe([&](const Event& e) {
    std::lock_guard<std::mutex> lock(mu);
    events.push_back(e);
  });
  ASSERT_TRUE(sub.isOk()) << sub.status().toString();
  std::string id = run({"sh", "-c", "exit 5"});
  ASSERT_TRUE(rt_->waitContainer(id, 20s).isOk());
  ASSERT_TRUE(rt_->removeContainer(id, false).isOk());

  auto mine = [&] {
    std::lock_guard<std::mutex> lock(mu);
    std::vector<Event> out;
    for (const Event& e : events) {
      if (e.container_id == id) out.push_back(e);
    }
    return out;
  };
  ASSERT_TRUE(eventually([&] {
    auto m = mine();
    return !m.empty() && m.back().type == Event::Type::kDestroy;
  })) << "no destroy event";
  std::vector<Event> got = mine();
  std::vector<Event::Type> types;
  for (const Event& e : got) types.push_back(e.type);
  EXPECT_EQ(types, (std::vector<Event::Type>{Event::Type::kCreate, Event::Type::kStart,
                                             Event::Type::kExit, Event::Type::kDestroy}));
  for (const Event& e : got) {
    if (e.type == Event::Type::kExit) {
      EXPECT_EQ(e.exit_code, 5);
    }
    EXPECT_NE(e.time, WallTime{});
  }
  auto t0 = Steady::now();
  sub->reset();
  EXPECT_LT(Steady::now() - t0, 1500ms);
}

TEST_F(DockerIntegrationTest, FollowStreamsLinesAsTheyAreWritten) {
  std::string id = run({"sh", "-c", "echo one; sleep 1; echo two >&2; sleep 1; echo three"});
  struct Arrival {
    std::string data;
    LogStream stream;
    Steady::time_point at;
  };
  std::mutex mu;
  std::vector<Arrival> got;
  LogOptions follow;
  follow.follow = true;
  auto t0 = Steady::now();
  auto reader = std::async(std::launch::async, [&] {
    return rt_->readLogs(id, follow, [&](const LogEntry& e) {
      std::lock_guard<std::mutex> lock(mu);
      got.push_back({e.data, e.stream, Steady::now()});
      return true;
    });
  });
  if (reader.wait_for(20s) != std::future_status::ready) {
    (void)rt_->removeContainer(id, true);  // ends the follow so the test can finish
    reader.wait();
    FAIL() << "follow did not end when the container exited";
  }
  Status s = reader.get();
  ASSERT_TRUE(s.isOk()) << s.toString();
  ASSERT_EQ(got.size(), 3u);
  EXPECT_EQ(got[0].data, "one\n");
  EXPECT_EQ(got[1].data, "two\n");
  EXPECT_EQ(got[1].stream, LogStream::kStderr);
  EXPECT_EQ(got[2].data, "three\n");
  // Streamed, not delivered in one piece at the end.
  EXPECT_GE(got[2].at - got[0].at, 1500ms);
  EXPECT_GE(Steady::now() - t0, 1500ms);

  // A sink that stops early ends the follow at once.
  std::string forever = run({"sh", "-c", "while true; do echo tick; sleep 0.2; done"});
  int ticks = 0;
  auto stopper = std::async(std::launch::async, [&] {
    return rt_->readLogs(forever, follow, [&](const LogEntry&) { return ++ticks < 2; });
  });
  ASSERT_EQ(stopper.wait_for(20s), std::future_status::ready);
  EXPECT_TRUE(stopper.get().isOk());
  EXPECT_EQ(ticks, 2);
}

TEST_F(DockerIntegrationTest, ListFiltersByLabel) {
  ContainerSpec a = spec({"true"});
  a.labels["role"] = "a";
  ContainerSpec b = spec({"true"});
  b.labels["role"] = "b";
  std::string ida = create(a), idb = create(b);
  Result<std::vector<ContainerInfo>> both =
      rt_->listContainers({.labels = {{kTestLabel, runId()}}});
  ASSERT_TRUE(both.isOk()) << both.status().toString();
  EXPECT_EQ(both->size(), 2u);
  Result<std::vector<ContainerInfo>> onlyB =
      rt_->listContainers({.labels = {{kTestLabel, runId()}, {"role", "b"}}});
  ASSERT_TRUE(onlyB.isOk());
  ASSERT_EQ(onlyB->size(), 1u);
  EXPECT_EQ((*onlyB)[0].id, idb);
  Result<std::vector<ContainerInfo>> running =
      rt_->listContainers({.all = false, .labels = {{kTestLabel, runId()}}});
  ASSERT_TRUE(running.isOk());
  EXPECT_TRUE(running->empty());
}

}  // namespace
}  // namespace edge::runtime
