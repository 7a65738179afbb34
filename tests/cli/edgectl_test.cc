// edgectl as a user runs it: the built binary as a subprocess, against the fake node
// API (fake_node.h). Asserts what lands on stdout/stderr and the exit code.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <yaml-cpp/yaml.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <thread>

#include "common/json.h"
#include "fake_node.h"
#include "tests/test_env.h"

extern char** environ;

namespace edge::cli {
namespace {

using testing::FakeNode;
using ::testing::HasSubstr;
using ::testing::Not;

std::string edgectlPath() {
  const char* dir = std::getenv("EDGE_BUILD_DIR");
  return std::string(dir ? dir : ".") + "/bin/edgectl";
}

struct Outcome {
  int code = -1;
  std::string out;
  std::string err;
  long max_rss_kb = 0;
};

// One edgectl process with its stdout/stderr on pipes, read as they come.
class Child {
 public:
  explicit Child(std::vector<std::string> args, std::string input = "") {
    int in[2], out[2], err[2];
    EXPECT_EQ(::pipe2(in, O_CLOEXEC), 0);
    EXPECT_EQ(::pipe2(out, O_CLOEXEC), 0);
    EXPECT_EQ(::pipe2(err, O_CLOEXEC), 0);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, in[0], 0);
    posix_spawn_file_actions_adddup2(&fa, out[1], 1);
    posix_spawn_file_actions_adddup2(&fa, err[1], 2);
    args.insert(args.begin(), edgectlPath());
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    EXPECT_EQ(::posix_spawn(&pid_, argv[0], &fa, nullptr, argv.data(), environ), 0) << argv[0];
    posix_spawn_file_actions_destroy(&fa);
    ::close(in[0]);
    ::close(out[1]);
    ::close(err[1]);
    out_fd_ = out[0];
    err_fd_ = err[0];
    writer_ = std::thread([fd = in[1], input] {
      size_t off = 0;
      while (off < input.size()) {
        ssize_t n = ::write(fd, input.data() + off, input.size() - off);
        if (n <= 0) break;
        off += static_cast<size_t>(n);
      }
      ::close(fd);
    });
  }
  ~Child() {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
    if (writer_.joinable()) writer_.join();
    if (out_fd_ >= 0) ::close(out_fd_);
    if (err_fd_ >= 0) ::close(err_fd_);
  }

  // Reads until stdout holds `text`; false after `limit` (the test then fails).
  bool waitForOutput(const std::string& text,
                     std::chrono::seconds limit = std::chrono::seconds(20)) {
    auto deadline = std::chrono::steady_clock::now() + limit;
    while (run_.out.find(text) == std::string::npos) {
      if (std::chrono::steady_clock::now() > deadline || !pump(100)) {
        return run_.out.find(text) != std::string::npos;
      }
    }
    return true;
  }

  Outcome finish(std::chrono::seconds limit = std::chrono::seconds(60)) {
    auto deadline = std::chrono::steady_clock::now() + limit;
    while ((out_fd_ >= 0 || err_fd_ >= 0) && std::chrono::steady_clock::now() < deadline) {
      pump(100);
    }
    if (out_fd_ >= 0 || err_fd_ >= 0) {
      ADD_FAILURE() << "edgectl did not finish in time; stdout so far: " << run_.out;
      ::kill(pid_, SIGKILL);
    }
    int status = 0;
    struct rusage ru {};
    ::wait4(pid_, &status, 0, &ru);
    pid_ = -1;
    run_.code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    run_.max_rss_kb = ru.ru_maxrss;
    writer_.join();
    return run_;
  }

 private:
  // One poll round; false once both pipes are closed.
  bool pump(int timeout_ms) {
    pollfd fds[2] = {{out_fd_, POLLIN, 0}, {err_fd_, POLLIN, 0}};
    if (out_fd_ < 0 && err_fd_ < 0) return false;
    if (::poll(fds, 2, timeout_ms) <= 0) return true;
    for (int i = 0; i < 2; ++i) {
      if (fds[i].fd < 0 || !(fds[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
      char buf[65536];
      ssize_t n = ::read(fds[i].fd, buf, sizeof buf);
      int& fd = i == 0 ? out_fd_ : err_fd_;
      if (n <= 0) {
        ::close(fd);
        fd = -1;
        continue;
      }
      (i == 0 ? run_.out : run_.err).append(buf, static_cast<size_t>(n));
    }
    return true;
  }

  pid_t pid_ = -1;
  int out_fd_ = -1;
  int err_fd_ = -1;
  std::thread writer_;
  Outcome run_;
};

class EdgectlTest : public ::testing::Test {
 protected:
  Outcome edgectl(std::vector<std::string> args, std::string input = "") {
    args.insert(args.begin(), {"--host", node_.host()});
    return Child(std::move(args), std::move(input)).finish();
  }
  std::string tempFile(const std::string& name, const std::string& content) {
    std::string path = dir_ + "/" + name;
    std::ofstream(path) << content;
    return path;
  }
  void SetUp() override {
    char tmpl[] = "/tmp/edgectl-files-XXXXXX";
    dir_ = ::mkdtemp(tmpl);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  FakeNode node_;
  std::string dir_;
};

TEST_F(EdgectlTest, StatusShowsTheNode) {
  Outcome r = edgectl({"status"});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("Node:         edge-1\n"));
  EXPECT_THAT(r.out, HasSubstr("Runtime:      light 0.1.0 (cgroup v1, namespaces+seccomp)\n"));
  EXPECT_THAT(r.out, HasSubstr("(up 3h)"));
  EXPECT_THAT(r.out, HasSubstr("Instances:    3 (2 running)\n"));
}

TEST_F(EdgectlTest, ApplySendsTheFileWithItsDirectoryAndReportsEachService) {
  std::string file = tempFile("m.yaml", "metadata:\n  name: web\n---\nmetadata:\n  name: cache\n");
  Outcome r = edgectl({"apply", "-f", file});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out,
            "service/web updated (generation 4)\n"
            "service/cache created (generation 1)\n");
  auto got = node_.received();
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].method, "POST");
  EXPECT_EQ(got[0].path, "/api/v1/services");
  EXPECT_EQ(got[0].headers["X-Edge-Manifest-Dir"], dir_);
  EXPECT_EQ(got[0].headers["Content-Type"], "application/yaml");
  EXPECT_EQ(got[0].body, "metadata:\n  name: web\n---\nmetadata:\n  name: cache\n");
}

TEST_F(EdgectlTest, ApplyFromStdinDryRun) {
  Outcome r = edgectl({"apply", "-f", "-", "--dry-run"}, R"({"metadata":{"name": "echo"}})");
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, "service/echo created (generation 1) (dry run)\n");
  auto got = node_.received();
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].path, "/api/v1/services?dryRun=1");
  EXPECT_EQ(got[0].headers["Content-Type"], "application/json");
  EXPECT_EQ(got[0].headers["X-Edge-Manifest-Dir"], std::filesystem::current_path().string());
}

TEST_F(EdgectlTest, ApplyValidationErrorsNameFileDocAndFieldAndExit4) {
  std::string file = tempFile("bad.yaml", "metadata:\n  name: web\nspec:\n  replicas: three\n");
  Outcome r = edgectl({"apply", "-f", file});
  EXPECT_EQ(r.code, 4);
  EXPECT_EQ(r.out, "");
  EXPECT_EQ(r.err, "edgectl: the manifest is not valid (2 errors)\n" + file +
                       ": doc 1: spec.replicas: expected an integer, got \"three\"\n" + file +
                       ": doc 2: metadata.name: missing\n");
}

TEST_F(EdgectlTest, ApplyOfSeveralFilesChangesNothingWhenOneIsBad) {
  std::string good = tempFile("good.yaml", "metadata:\n  name: cache\n");
  std::string bad = tempFile("bad.yaml", "metadata:\n  name: web\nspec:\n  replicas: three\n");
  Outcome r = edgectl({"apply", "-f", good, "-f", bad});
  EXPECT_EQ(r.code, 4);
  for (const auto& req : node_.received()) EXPECT_THAT(req.path, HasSubstr("dryRun=1"));

  r = edgectl({"apply", "-f", good, "-f", good, "-o", "json"});
  EXPECT_EQ(r.code, 0) << r.err;
  Result<json::Json> j = json::parse(r.out, "stdout");
  ASSERT_TRUE(j.isOk()) << r.out;
  EXPECT_EQ((*j)["services"].size(), 2u);
  EXPECT_EQ((*j)["dryRun"], false);
}

TEST_F(EdgectlTest, ApplyOfAMissingFileIsAUsageError) {
  Outcome r = edgectl({"apply", "-f", dir_ + "/nope.yaml"});
  EXPECT_EQ(r.code, 2);
  EXPECT_THAT(r.err, HasSubstr("edgectl: cannot read manifest " + dir_ + "/nope.yaml"));
  EXPECT_TRUE(node_.received().empty());
}

TEST_F(EdgectlTest, GetServicesAsTable) {
  Outcome r = edgectl({"get", "services"});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out,
            "NAME   GEN   STATE       READY   AGE   IMAGE\n"
            "api    1     crashloop   0/1     5d    example/api:2\n"
            "web    3     running     2/2     3m    edgecloud/hello:latest\n");
  r = edgectl({"get", "svc", "-q"});
  EXPECT_EQ(r.out, "api\nweb\n");
}

TEST_F(EdgectlTest, GetServicesAsJsonIsTheApiAnswer) {
  Outcome r = edgectl({"get", "svc", "-o", "json"});
  EXPECT_EQ(r.code, 0) << r.err;
  Result<json::Json> j = json::parse(r.out, "stdout");
  ASSERT_TRUE(j.isOk()) << r.out;
  ASSERT_EQ((*j)["services"].size(), 2u);
  EXPECT_EQ((*j)["services"][1]["name"], "web");
  EXPECT_EQ((*j)["services"][1]["replicas"]["ready"], 2);
  EXPECT_EQ((*j)["services"][1]["instances"][0]["ports"]["http"], 20001);
  EXPECT_THAT(r.out, HasSubstr("\n  \"services\": [\n    {\n"));  // pretty-printed
}

TEST_F(EdgectlTest, GetServiceAsYaml) {
  Outcome r = edgectl({"get", "services", "web", "-o", "yaml"});
  EXPECT_EQ(r.code, 0) << r.err;
  YAML::Node y = YAML::Load(r.out);
  EXPECT_EQ(y["name"].as<std::string>(), "web");
  EXPECT_EQ(y["generation"].as<int>(), 3);
  EXPECT_EQ(y["replicas"]["desired"].as<int>(), 2);
  EXPECT_EQ(y["manifest"]["spec"]["ports"][0]["containerPort"].as<int>(), 8080);
  EXPECT_EQ(y["instances"][1]["name"].as<std::string>(), "web-1-3");
  EXPECT_TRUE(y["instances"][0]["finished_at"].IsNull());
}

TEST_F(EdgectlTest, GetInstancesAndImages) {
  Outcome r = edgectl({"get", "inst"});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_THAT(r.out,
              HasSubstr("NAME      SERVICE   STATE        READY   HEALTH    RESTARTS   AGE"));
  EXPECT_THAT(r.out, HasSubstr("api-0-1   api       exited (0)   yes"));
  EXPECT_THAT(r.out, HasSubstr("2h    edgecloud/hello:latest   http:20001\n"));

  r = edgectl({"get", "instances", "web", "-q"});  // a service's instances
  EXPECT_EQ(r.out, "web-0-3\nweb-1-3\n");
  r = edgectl({"get", "instances", "web-1-3", "-o", "json"});
  EXPECT_EQ(json::parse(r.out, "stdout").value()["replica"], 1);

  r = edgectl({"get", "img"});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out,
            "IMAGE                    ID             SIZE     AGE   IN USE\n"
            "edgecloud/hello:latest   cccccccccccc   5.1MiB   3d    yes\n"
            "edgecloud/hello:1        cccccccccccc   5.1MiB   3d    yes\n");
  r = edgectl({"get", "images", "edgecloud/hello"});
  EXPECT_EQ(r.code, 0);
  r = edgectl({"get", "images", "nope:1"});
  EXPECT_EQ(r.code, 3);
  EXPECT_EQ(r.err, "edgectl: no image 'nope:1' on the node\n");
}

TEST_F(EdgectlTest, DescribeShowsManifestInstancesHistoryAndEvents) {
  Outcome r = edgectl({"describe", "web"});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("Replicas:         2 desired, 2 ready, 2 running, 2 updated\n"));
  EXPECT_THAT(r.out, HasSubstr("Ports:            http 8080/tcp\n"));
  EXPECT_THAT(r.out, HasSubstr("Instances:\n  NAME      STATE     READY"));
  EXPECT_THAT(r.out, HasSubstr("History:\n  GEN   APPLIED   IMAGE                    CURRENT\n"
                               "  3     3m ago    edgecloud/hello:latest   *\n"
                               "  2     2h ago    edgecloud/hello:old\n"));
  EXPECT_THAT(r.out, HasSubstr("instance.started   web-0-3    m42"));
  EXPECT_THAT(r.out, Not(HasSubstr("api-0-1")));
  auto got = node_.received();
  EXPECT_EQ(got.back().path, "/api/v1/events?service=web");

  r = edgectl({"describe", "web-1-3"});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("Replica:    1 (generation 3)\n"));

  r = edgectl({"describe", "ghost"});
  EXPECT_EQ(r.code, 3);
  EXPECT_EQ(r.err, "edgectl: no service or instance named 'ghost'\n");
}

TEST_F(EdgectlTest, LogsFollowStreamsUntilTheNodeEndsTheAnswer) {
  Child c({"--host", node_.host(), "logs", "-f", "--tail", "5", "web"});
  // The first line arrives while the node still holds the stream open.
  ASSERT_TRUE(c.waitForOutput("line 1\n"));
  node_.releaseFollow();
  Outcome r = c.finish();
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, "line 1\nline 2\n");
  EXPECT_EQ(node_.received().back().path,
            "/api/v1/services/web/logs?follow=1&stderr=1&stdout=1&tail=5");
}

TEST_F(EdgectlTest, LogsOfAnInstanceAndOfNothing) {
  Outcome r = edgectl({"logs", "web-0-3", "--timestamps"});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, "only web-0-3\n");
  r = edgectl({"logs", "ghost"});
  EXPECT_EQ(r.code, 3);
  EXPECT_EQ(r.err, "edgectl: no service or instance named 'ghost'\n");
}

TEST_F(EdgectlTest, ImagesLoadStreamsALargeFileWithoutHoldingIt) {
  constexpr int64_t kSize = 20 << 20;
  std::string path = dir_ + "/big.tar";
  {
    std::ofstream f(path, std::ios::binary);
    std::string block(1 << 20, 'x');
    for (int i = 0; i < 20; ++i) f << block;
  }
  Outcome r = edgectl({"images", "load", path});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, "Loaded image: example/app:1\n");
  EXPECT_EQ(r.err, "");  // stderr is a pipe here: no progress bar
  EXPECT_EQ(node_.uploadedBytes(), kSize);
  EXPECT_TRUE(node_.uploadWasChunked());
#if !EDGE_TEST_UNDER_ASAN
  // Reading the file whole would take its 20 MiB on top of the process' few MiB.
  EXPECT_LT(r.max_rss_kb, 16 * 1024) << "edgectl's peak RSS suggests it read the file whole";
#endif
}

TEST_F(EdgectlTest, ExitCodesForNodeErrors) {
  Outcome r = edgectl({"get", "services", "ghost"});
  EXPECT_EQ(r.code, 3);
  EXPECT_EQ(r.err, "edgectl: no such services 'ghost'\n");

  r = edgectl({"images", "rm", "edgecloud/hello:latest"});
  EXPECT_EQ(r.code, 6);
  EXPECT_EQ(r.err, "edgectl: image edgecloud/hello:latest is in use by web-0-3\n");
  r = edgectl({"images", "rm", "edgecloud/hello:latest", "--force"});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, "Deleted: sha256:" + std::string(64, 'c') + "\n");

  r = edgectl({"restart", "broken"});
  EXPECT_EQ(r.code, 1);
  EXPECT_EQ(r.err, "edgectl: store write failed: disk full\n");

  r = edgectl({"delete", "ghost"});
  EXPECT_EQ(r.code, 3);
  r = edgectl({"rollback", "web", "--to", "9"});
  EXPECT_EQ(r.code, 6);
}

TEST_F(EdgectlTest, MutationsConfirmInOneLine) {
  Outcome r = edgectl({"delete", "web", "--dry-run"});
  EXPECT_EQ(r.out, "service/web deleted (generation 3) (dry run)\n");
  EXPECT_EQ(node_.received().back().path, "/api/v1/services/web?dryRun=1");
  EXPECT_EQ(edgectl({"restart", "web"}).out, "service/web restarting (2 instances)\n");
  EXPECT_EQ(edgectl({"rollback", "web"}).out,
            "service/web rolled back to generation 2 (now generation 4)\n");
  EXPECT_EQ(edgectl({"rollback", "web", "--to", "1"}).out,
            "service/web rolled back to generation 1 (now generation 4)\n");
  EXPECT_EQ(edgectl({"-q", "restart", "web"}).out, "");
}

TEST_F(EdgectlTest, EventsAsTableAndAsNdjson) {
  Outcome r = edgectl({"events"});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_THAT(r.out,
              HasSubstr("TIME                   TYPE                    SERVICE   INSTANCE"));
  EXPECT_THAT(r.out, HasSubstr("instance.exited         api       api-0-1    m43\n"));
  r = edgectl({"events", "--service", "api", "-o", "json"});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(std::count(r.out.begin(), r.out.end(), '\n'), 1);
  EXPECT_EQ(json::parse(r.out, "stdout").value()["type"], "instance.exited");
  EXPECT_EQ(node_.received().back().path, "/api/v1/events?service=api");
}

TEST_F(EdgectlTest, EventsAboutAnotherNodeNameIt) {
  Outcome r = edgectl({"events"});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("cluster.member_joined   -         -          edge-2 joined "
                               "198.18.0.0/24 (node 3f2a9c01d4e5b6a7)\n"));
  r = edgectl({"events", "-o", "json"});
  EXPECT_THAT(r.out, HasSubstr(R"("node":"3f2a9c01d4e5b6a7")"));
}

TEST_F(EdgectlTest, NodesAsTableJsonAndIds) {
  Outcome r = edgectl({"nodes"});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out,
            "NODE ID            NAME     ENDPOINT           ROLES             SCORE   RUNTIME   "
            "UPTIME   CLUSTER\n"
            "00000000000000aa   edge-1   198.18.0.11:8083   -                 40      light     "
            "1m       198.18.0.0/24\n"
            "3f2a9c01d4e5b6a7   edge-2   198.18.0.12:8083   supernode,proxy   87      docker    "
            "2h       198.18.0.0/24\n");
  EXPECT_EQ(node_.received().back().path, "/api/v1/nodes?scope=network");
  r = edgectl({"nodes", "-o", "json"});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(json::parse(r.out, "stdout").value()["nodes"][1]["name"], "edge-2");
  r = edgectl({"-q", "nodes"});
  EXPECT_EQ(r.out, "00000000000000aa\n3f2a9c01d4e5b6a7\n");
}

TEST_F(EdgectlTest, NodesScopesAndTheirErrors) {
  Outcome r = edgectl({"nodes", "--account", "acme"});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(node_.received().back().path, "/api/v1/nodes?account=acme&scope=account");
  r = edgectl({"nodes", "--scope", "account"});
  EXPECT_EQ(r.code, 4);
  EXPECT_EQ(r.err,
            "edgectl: scope=account needs an account id: configure account_id or pass "
            "account=\n");
  r = edgectl({"nodes", "--interface", "wlan0"});
  EXPECT_EQ(r.code, 3);
  EXPECT_EQ(r.err, "edgectl: no cluster on interface \"wlan0\" (clusters on: eth0)\n");
  size_t requests = node_.received().size();
  r = edgectl({"nodes", "--scope", "network", "--account", "acme"});
  EXPECT_EQ(r.code, 2);
  EXPECT_EQ(r.err, "edgectl: --account applies to --scope account, not --scope network\n");
  r = edgectl({"nodes", "--scope", "planet"});
  EXPECT_EQ(r.code, 2);
  EXPECT_THAT(r.err, HasSubstr("--scope"));
  EXPECT_EQ(node_.received().size(), requests);  // usage errors never reach the node
}

TEST_F(EdgectlTest, ClusterShowsSupernodeMembersAndBlacklist) {
  Outcome r = edgectl({"cluster"});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("cluster 198.18.0.0/24 on eth0 — this node: member, supernode "
                               "3f2a9c01d4e5b6a7 (edge-2), version 12, 2 members\n"));
  EXPECT_THAT(r.out, HasSubstr("      3f2a9c01d4e5b6a7   edge-2   198.18.0.12:8083   "
                               "supernode,proxy   87      docker    2h\n"
                               "  *   00000000000000aa   edge-1"));
  EXPECT_THAT(r.out, HasSubstr("    00000000000000ff   198.18.0.15   endpoint 198.18.0.15:9 does "
                               "not answer   2096-10-02T07:06:40Z (in "));
  EXPECT_THAT(r.out, HasSubstr("0 forged, 2 blacklisted\n"));
  r = edgectl({"cluster", "-o", "json"});
  EXPECT_EQ(r.code, 0) << r.err;
  auto j = json::parse(r.out, "stdout");
  ASSERT_TRUE(j.isOk());
  EXPECT_EQ((*j)["clusters"][0]["blacklist"][0]["until"], 4000000000);
  r = edgectl({"cluster", "-o", "yaml"});
  EXPECT_THAT(r.out, HasSubstr("cluster_id: \"198.18.0.0/24\""));
  r = edgectl({"-q", "cluster"});
  EXPECT_EQ(r.out, "198.18.0.0/24\n");
}

TEST(EdgectlNoNodeTest, UnreachableNodeExits5WithAHint) {
  std::string sock = "/tmp/edgectl-test-nonexistent-" + std::to_string(::getpid()) + ".sock";
  Outcome r = Child({"--host", sock, "status"}).finish();
  EXPECT_EQ(r.code, 5);
  EXPECT_EQ(r.err, "edgectl: cannot reach edged at unix://" + sock +
                       ": the socket does not exist (is edged running? see systemctl status "
                       "edged)\n");
  // A socket file nobody listens on.
  Outcome v = Child({"--host", "http://127.0.0.1:1", "get", "svc"}).finish();
  EXPECT_EQ(v.code, 5);
  EXPECT_THAT(v.err, HasSubstr("cannot reach edged at http://127.0.0.1:1"));
}

TEST(EdgectlNoNodeTest, UsageErrorsExit2) {
  EXPECT_EQ(Child({"get"}).finish().code, 2);
  EXPECT_EQ(Child({"frobnicate"}).finish().code, 2);
  EXPECT_EQ(Child({"-o", "xml", "status"}).finish().code, 2);
  EXPECT_EQ(Child({"--timeout", "soon", "status"}).finish().code, 2);
  EXPECT_EQ(Child({"logs", "--tail", "-3", "web"}).finish().code, 2);
  Outcome r = Child({"get", "pods"}).finish();
  EXPECT_EQ(r.code, 2);
  EXPECT_EQ(r.err,
            "edgectl: get: unknown resource type 'pods'; use services (svc), instances (inst) "
            "or images (img)\n");
  Outcome h = Child({"--help"}).finish();
  EXPECT_EQ(h.code, 0);
  EXPECT_THAT(h.out, HasSubstr("5  cannot reach the node"));
  EXPECT_EQ(Child({"--version"}).finish().out, "edgectl 0.1.0\n");
}

TEST_F(EdgectlTest, BashCompletionOffersCommandsFlagsAndServiceNames) {
  Outcome gen = Child({"completion", "bash"}).finish();
  ASSERT_EQ(gen.code, 0);
  std::string script = tempFile("completion.bash", gen.out);
  // Completes the way bash would, with edgectl on PATH as the user has it.
  auto bash = [&](const std::string& line) {
    std::string bin_dir = std::filesystem::path(edgectlPath()).parent_path();
    std::ofstream(dir_ + "/c.sh") << "PATH=" << bin_dir << ":$PATH\nsource " << script
                                  << "\nCOMP_WORDS=(" << line
                                  << ")\nCOMP_CWORD=$((${#COMP_WORDS[@]} - 1))\n_edgectl\n"
                                     "printf '%s\\n' \"${COMPREPLY[@]}\"\n";
    std::string out_file = dir_ + "/out";
    std::string run = "bash " + dir_ + "/c.sh > " + out_file + " 2>&1";
    EXPECT_EQ(std::system(run.c_str()), 0);
    std::ifstream in(out_file);
    return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  };
  EXPECT_EQ(bash("edgectl des"), "describe\n");
  EXPECT_EQ(bash("edgectl images ''"), "ls\nload\nrm\n");
  EXPECT_THAT(bash("edgectl get svc -"), HasSubstr("--output\n"));
  EXPECT_EQ(bash("edgectl -o y"), "yaml\n");
  EXPECT_EQ(bash("edgectl get ''"), "services\nsvc\ninstances\ninst\nimages\nimg\n");
  EXPECT_EQ(bash("edgectl --host " + node_.host() + " logs -f ''"), "api\nweb\n");
  EXPECT_EQ(bash("edgectl --host " + node_.host() + " describe w"), "web\n");
  EXPECT_EQ(bash("edgectl no"), "nodes\n");
  EXPECT_EQ(bash("edgectl cl"), "cluster\n");
  EXPECT_EQ(bash("edgectl nodes --scope ''"), "network\naccount\n");
  EXPECT_THAT(bash("edgectl nodes --"), HasSubstr("--account\n"));
}

}  // namespace
}  // namespace edge::cli
