// The stock `docker` CLI against the Docker API subset, over each real runtime: the
// harness (edge-dockerapi-harness) serves a runtime on a socket in a temp dir and the
// CLI runs the commands a user would.
//
// Needs: root, the docker CLI, `${EDGE_BUILD_DIR}/images/{busybox,hello}.tar`, the
// harness, edge-shim and edge-mkimage in `${EDGE_BUILD_DIR}/bin`, and for the docker case
// a dockerd on /var/run/docker.sock (EDGE_REQUIRE_DOCKER=1 turns its absence into a
// failure). Everything it creates carries this process's pid in its name, because other
// tests may share the Docker daemon; it removes what it created.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <thread>

#include "common/fs.h"
#include "runtime-shim/docker/docker_runtime.h"
#include "runtime-shim/factory.h"
#include "tests/test_env.h"

extern char** environ;

namespace edge {
namespace {

using namespace std::chrono_literals;

std::string buildDir() {
  const char* d = std::getenv("EDGE_BUILD_DIR");
  return d ? d : "build";
}

std::string pidTag() {
  return std::to_string(::getpid());
}

std::string shellQuote(const std::string& s) {
  std::string out = "'";
  for (char c : s) {
    if (c == '\'') {
      out += "'\\''";
    } else {
      out += c;
    }
  }
  return out + "'";
}

struct Cmd {
  int code = -1;
  std::string out;  // stdout and stderr
};

// Runs a command line (already quoted) with a time limit, capturing its output.
Cmd sh(const std::string& line) {
  Cmd r;
  std::string full = "timeout 120 " + line + " 2>&1";
  FILE* p = ::popen(full.c_str(), "r");
  if (!p) return r;
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) r.out.append(buf, n);
  int st = ::pclose(p);
  r.code = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  return r;
}

bool dockerCliPresent() {
  return sh("docker --version").code == 0;
}

// The harness as a child process, serving one runtime on a socket in `dir`.
class Harness {
 public:
  Harness(const std::string& kind, const std::string& dir) : dir_(dir) {
    socket_ = dir + "/docker.sock";
    data_ = dir + "/data";
    log_ = dir + "/harness.log";
    int out[2];
    if (::pipe2(out, O_CLOEXEC) != 0) return;
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, out[1], 1);
    posix_spawn_file_actions_addopen(&fa, 2, log_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    std::string bin = buildDir() + "/bin/edge-dockerapi-harness";
    std::vector<std::string> args = {bin,          "--runtime", kind,          "--socket", socket_,
                                     "--data-dir", data_,       "--log-level", "debug"};
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    int rc = ::posix_spawn(&pid_, bin.c_str(), &fa, nullptr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&fa);
    ::close(out[1]);
    if (rc != 0) {
      pid_ = -1;
      ::close(out[0]);
      return;
    }
    // Ready once it prints its first line.
    std::string line;
    pollfd p{out[0], POLLIN, 0};
    while (line.find('\n') == std::string::npos && ::poll(&p, 1, 60000) > 0) {
      char c[256];
      ssize_t n = ::read(out[0], c, sizeof c);
      if (n <= 0) break;
      line.append(c, static_cast<size_t>(n));
    }
    ::close(out[0]);
    ready_ = line.starts_with("ready ");
  }
  ~Harness() { stop(); }
  void stop() {
    if (pid_ > 0) {
      ::kill(pid_, SIGTERM);
      int st = 0;
      ::waitpid(pid_, &st, 0);
      pid_ = -1;
    }
  }
  bool ready() const { return ready_; }
  std::string log() const {
    Result<std::string> t = fs::readFile(log_);
    return t.isOk() ? *t : std::string();
  }
  std::string docker(const std::string& args) const {
    return "env -u DOCKER_HOST -u DOCKER_CONTEXT DOCKER_CONFIG=" + shellQuote(dir_ + "/cli") +
           " docker -H unix://" + socket_ + " " + args;
  }
  const std::string& socketPath() const { return socket_; }
  const std::string& dataDir() const { return data_; }

 private:
  std::string dir_, socket_, data_, log_;
  pid_t pid_ = -1;
  bool ready_ = false;
};

// Sends raw bytes and returns what comes back before the server closes (or 10 s).
std::string rawExchange(const std::string& sock, const std::string& request) {
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  std::snprintf(a.sun_path, sizeof a.sun_path, "%s", sock.c_str());
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    ::close(fd);
    return "";
  }
  (void)!::send(fd, request.data(), request.size(), MSG_NOSIGNAL);
  std::string out;
  pollfd p{fd, POLLIN, 0};
  char buf[4096];
  while (::poll(&p, 1, 10000) > 0) {
    ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n <= 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  return out;
}

class DockerCliTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    EDGE_SKIP_UNLESS_ROOT("the light runtime");
    if (!dockerCliPresent()) EDGE_DOCKER_MISSING("no docker CLI");
    for (const char* f : {"/images/busybox.tar", "/images/hello.tar", "/bin/edge-mkimage",
                          "/bin/edge-dockerapi-harness"}) {
      ASSERT_TRUE(fs::exists(buildDir() + f)) << buildDir() + f << " is missing; build it";
    }
    if (GetParam() == "docker" && !runtime::dockerAnswers("unix:///var/run/docker.sock", 2000ms)) {
      EDGE_DOCKER_MISSING("no Docker Engine answers on /var/run/docker.sock");
    }
    char tmpl[] = "/tmp/edge-dockercli-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    harness_ = std::make_unique<Harness>(GetParam(), dir_);
    ASSERT_TRUE(harness_->ready()) << "the harness did not start:\n" << harness_->log();
  }

  void TearDown() override {
    if (harness_) {
      // Whatever a failed test left behind.
      for (const std::string& n : created_) sh(harness_->docker("rm -f " + n));
      for (const std::string& i : images_) sh(harness_->docker("rmi -f " + i));
      harness_->stop();
      if (HasFailure()) std::cerr << "--- harness log ---\n" << harness_->log() << "\n";
      runtime::RuntimeOptions o;
      o.data_dir = harness_->dataDir();
      std::string run_root = runtime::lightRunRoot(o);
      ::umount2(run_root.c_str(), MNT_DETACH);
      (void)fs::removeAll(run_root);
    }
    if (!dir_.empty()) (void)fs::removeAll(dir_);
  }

  Cmd docker(const std::string& args) { return sh(harness_->docker(args)); }

  std::string dir_;
  std::unique_ptr<Harness> harness_;
  std::vector<std::string> created_;
  std::vector<std::string> images_;
};

#define EXPECT_RUNS(cmd, contains)                                                                 \
  do {                                                                                             \
    Cmd r_ = (cmd);                                                                                \
    EXPECT_EQ(r_.code, 0) << r_.out;                                                               \
    EXPECT_NE(r_.out.find(contains), std::string::npos) << "expected '" << (contains) << "' in:\n" \
                                                        << r_.out;                                 \
  } while (0)

TEST_P(DockerCliTest, TheCliSequenceWorks) {
  std::string name = "dockerapi-x-" + pidTag();
  std::string own_image = "edgecloud/dockerapi-test-" + pidTag() + ":1";
  EXPECT_RUNS(docker("version"), "0.0.0-harness");
  EXPECT_RUNS(docker("info"), "harness");
  EXPECT_RUNS(docker("load -i " + buildDir() + "/images/hello.tar"),
              "Loaded image: edgecloud/hello:latest");
  EXPECT_RUNS(docker("load -i " + buildDir() + "/images/busybox.tar"),
              "Loaded image: edgecloud/busybox:test");
  // An image of our own, so removing it cannot disturb anyone sharing the daemon.
  std::string rootfs = dir_ + "/rootfs";
  ASSERT_TRUE(fs::makeDirs(rootfs + "/etc").isOk());
  ASSERT_TRUE(fs::writeFileAtomic(rootfs + "/etc/hello", "hi\n").isOk());
  Cmd mk = sh(buildDir() + "/bin/edge-mkimage -o " + dir_ + "/own.tar -t " + own_image +
              " --layer " + rootfs + " --cmd '[\"/bin/true\"]'");
  ASSERT_EQ(mk.code, 0) << mk.out;
  images_.push_back(own_image);
  EXPECT_RUNS(docker("load -i " + dir_ + "/own.tar"), "Loaded image: " + own_image);
  EXPECT_RUNS(docker("images"), "edgecloud/hello");

  created_.push_back(name);
  Cmd run = docker("run -d --name " + name +
                   " -e A=b --memory 64m edgecloud/busybox:test sh -c 'echo hi; sleep 30'");
  ASSERT_EQ(run.code, 0) << run.out;
  EXPECT_NE(run.out.find("host network"), std::string::npos) << run.out;  // the warning
  EXPECT_RUNS(docker("ps -a"), name);
  EXPECT_RUNS(docker("ps --filter name=" + name + " --format '{{.Names}} {{.Status}}'"),
              name + " Up");
  // The echo runs right after start; give it a moment to reach the log.
  Cmd logs;
  for (int i = 0; i < 100; ++i) {
    logs = docker("logs " + name);
    if (logs.out.find("hi") != std::string::npos) break;
    std::this_thread::sleep_for(100ms);
  }
  EXPECT_EQ(logs.code, 0) << logs.out;
  EXPECT_EQ(logs.out, "hi\n");
  Cmd ins = docker("inspect " + name);
  EXPECT_EQ(ins.code, 0) << ins.out;
  for (const std::string& want :
       {std::string("\"Name\": \"/") + name + "\"", std::string("\"Running\": true"),
        std::string("\"A=b\""), std::string("\"Memory\": 67108864"),
        std::string("\"Image\": \"edgecloud/busybox:test\"")}) {
    EXPECT_NE(ins.out.find(want), std::string::npos) << want << " not in:\n" << ins.out;
  }
  auto t0 = std::chrono::steady_clock::now();
  EXPECT_RUNS(docker("stop -t 1 " + name), name);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 15s);
  EXPECT_RUNS(docker("ps -a --format '{{.Names}} {{.Status}}'"), name + " Exited");
  EXPECT_RUNS(docker("rm " + name), name);
  created_.clear();
  Cmd gone = docker("inspect " + name);
  EXPECT_NE(gone.code, 0);
  EXPECT_NE(gone.out.find("No such"), std::string::npos) << gone.out;

  // docker wait reports the exit code of a container that exits by itself.
  std::string quick = "dockerapi-q-" + pidTag();
  created_.push_back(quick);
  ASSERT_EQ(docker("run -d --name " + quick + " edgecloud/busybox:test sh -c 'exit 3'").code, 0);
  EXPECT_RUNS(docker("wait " + quick), "3");
  EXPECT_RUNS(docker("rm " + quick), quick);
  created_.clear();

  EXPECT_RUNS(docker("image inspect edgecloud/hello:latest"), "\"RepoTags\"");
  EXPECT_RUNS(docker("rmi " + own_image), own_image);
  images_.clear();
  Cmd rmi_again = docker("rmi " + own_image);
  EXPECT_NE(rmi_again.code, 0);
  EXPECT_NE(rmi_again.out.find("No such image"), std::string::npos) << rmi_again.out;
}

TEST_P(DockerCliTest, RunOfAMissingImageSaysWhatToDo) {
  Cmd r = docker("run -d --name dockerapi-missing-" + pidTag() + " edgecloud/not-here:1 true");
  EXPECT_NE(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("Unable to find image 'edgecloud/not-here:1' locally"), std::string::npos)
      << r.out;
  EXPECT_NE(r.out.find("docker load"), std::string::npos) << r.out;
  EXPECT_EQ(docker("ps -a --format '{{.Names}}'").out.find("dockerapi-missing"), std::string::npos);
}

TEST_P(DockerCliTest, HostileBodiesGetErrorsWithoutACrash) {
  const std::string& sock = harness_->socketPath();
  std::string r =
      rawExchange(sock,
                  "POST /v1.41/containers/create HTTP/1.1\r\nHost: d\r\nConnection: close\r\n"
                  "Content-Type: application/json\r\nContent-Length: 9\r\n\r\n{\"Image\":");
  EXPECT_NE(r.find("HTTP/1.1 400"), std::string::npos) << r;
  EXPECT_NE(r.find("not valid JSON"), std::string::npos) << r;
  r = rawExchange(sock,
                  "POST /v1.41/containers/create HTTP/1.1\r\nHost: d\r\n"
                  "Content-Length: 99999999999\r\n\r\n{");
  EXPECT_NE(r.find("HTTP/1.1 413"), std::string::npos) << r;
  r = rawExchange(sock,
                  "POST /v1.41/images/load HTTP/1.1\r\nHost: d\r\nTransfer-Encoding: chunked\r\n"
                  "\r\n5\r\nhello\r\nnot-hex\r\n");
  EXPECT_NE(r.find("HTTP/1.1 400"), std::string::npos) << r;
  std::string body = R"({"Image":"edgecloud/busybox:test","Cmd":7})";
  r = rawExchange(sock,
                  "POST /v1.41/containers/create HTTP/1.1\r\nHost: d\r\n"
                  "Connection: close\r\nContent-Length: " +
                      std::to_string(body.size()) + "\r\n\r\n" + body);
  EXPECT_NE(r.find("HTTP/1.1 400"), std::string::npos) << r;
  EXPECT_NE(r.find("Cmd"), std::string::npos) << r;
  EXPECT_RUNS(docker("version"), "0.0.0-harness");
}

INSTANTIATE_TEST_SUITE_P(Runtimes, DockerCliTest, ::testing::Values("light", "docker"),
                         [](const auto& info) { return info.param; });

}  // namespace
}  // namespace edge
