// DockerRuntime against a fake daemon on a unix socket: version negotiation, error
// mapping, and what happens when the daemon is absent, dies mid-reply or talks garbage.
#include <gtest/gtest.h>
#include <httplib.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <fstream>
#include <mutex>
#include <thread>

#include "runtime-shim/docker/docker_json.h"
#include "runtime-shim/docker/docker_runtime.h"

namespace edge::runtime {
namespace {

using std::chrono::milliseconds;
using Clock = std::chrono::steady_clock;

std::string uniqueSocket(const std::string& stem) {
  static std::atomic<int> n{0};
  return ::testing::TempDir() + "/" + stem + "_" + std::to_string(::getpid()) + "_" +
         std::to_string(n++) + ".sock";
}

std::string frame(int stream, std::string_view payload) {
  std::string f(8, '\0');
  f[0] = static_cast<char>(stream);
  f[7] = static_cast<char>(payload.size());  // tests keep payloads < 256 bytes
  return f + std::string(payload);
}

// An httplib server on a unix socket playing dockerd. Handlers run on its threads;
// every handler loop is bounded so stop() always returns.
class FakeDaemon {
 public:
  explicit FakeDaemon(std::string api_version = "1.41") : path_(uniqueSocket("fake_docker")) {
    ::unlink(path_.c_str());
    server_.set_address_family(AF_UNIX);
    server_.Get("/_ping", [this, api_version](const httplib::Request& req, httplib::Response& res) {
      record(req);
      if (!api_version.empty()) res.set_header("Api-Version", api_version);
      if (req.method != "HEAD") res.set_content("OK", "text/plain");
    });
    // Recorded before routing, so a request is on the list before its reply is sent.
    server_.set_pre_routing_handler([this](const httplib::Request& req, httplib::Response&) {
      if (req.path != "/_ping") record(req);
      return httplib::Server::HandlerResponse::Unhandled;
    });
  }
  ~FakeDaemon() { stop(); }

  void start() {
    thread_ = std::thread([this] { server_.listen(path_.c_str(), 80); });
    auto deadline = Clock::now() + std::chrono::seconds(5);
    while (!server_.is_running() && Clock::now() < deadline) {
      std::this_thread::sleep_for(milliseconds(1));
    }
    ASSERT_TRUE(server_.is_running());
  }
  void stop() {
    stopping_ = true;
    if (thread_.joinable()) {
      server_.stop();
      thread_.join();
    }
    ::unlink(path_.c_str());
  }

  std::string endpoint() const { return "unix://" + path_; }
  httplib::Server& server() { return server_; }
  bool stopping() const { return stopping_; }
  std::vector<std::string> requests() {
    std::lock_guard<std::mutex> lock(mu_);
    return requests_;
  }

  static void json(httplib::Response& res, int status, const std::string& body) {
    res.status = status;
    res.set_content(body, "application/json");
  }

 private:
  void record(const httplib::Request& req) {
    std::lock_guard<std::mutex> lock(mu_);
    requests_.push_back(req.method + " " + req.path);
  }

  std::string path_;
  httplib::Server server_;
  std::thread thread_;
  std::atomic<bool> stopping_{false};
  std::mutex mu_;
  std::vector<std::string> requests_;
};

ContainerRuntimePtr open(const FakeDaemon& d) {
  Result<ContainerRuntimePtr> rt = openDockerRuntime(d.endpoint(), SystemClock::instance());
  EXPECT_TRUE(rt.isOk()) << rt.status().toString();
  return rt.isOk() ? std::move(rt).value() : nullptr;
}

TEST(FakeDaemonTest, MissingSocketIsUnavailableFast) {
  std::string path = uniqueSocket("absent");
  auto t0 = Clock::now();
  Result<ContainerRuntimePtr> rt = openDockerRuntime("unix://" + path, SystemClock::instance());
  ASSERT_FALSE(rt.isOk());
  EXPECT_EQ(rt.status().code(), StatusCode::kUnavailable);
  EXPECT_NE(rt.status().message().find("does not exist"), std::string::npos)
      << rt.status().message();
  EXPECT_NE(rt.status().message().find("docker daemon at unix://" + path), std::string::npos);
  EXPECT_FALSE(dockerAnswers("unix://" + path, milliseconds(200)));
  EXPECT_LT(Clock::now() - t0, std::chrono::seconds(1));
  EXPECT_EQ(openDockerRuntime("ftp://x", nullptr).status().code(), StatusCode::kInvalidArgument);
}

TEST(FakeDaemonTest, NegotiatesDownToOurMaximum) {
  FakeDaemon d("1.45");
  d.server().Get(
      R"(/v[\d.]+/containers/(.*)/json)", [](const httplib::Request& req, httplib::Response& res) {
        FakeDaemon::json(
            res, 404, R"({"message":"No such container: )" + std::string(req.matches[1]) + "\"}");
      });
  d.start();
  EXPECT_TRUE(dockerAnswers(d.endpoint(), milliseconds(1000)));
  ContainerRuntimePtr rt = open(d);
  ASSERT_TRUE(rt);
  Result<ContainerInfo> c = rt->inspectContainer("ghost");
  ASSERT_FALSE(c.isOk());
  EXPECT_EQ(c.status().code(), StatusCode::kNotFound);
  EXPECT_EQ(c.status().message(), "inspect container ghost: No such container: ghost");
  std::vector<std::string> reqs = d.requests();
  EXPECT_NE(std::find(reqs.begin(), reqs.end(), "HEAD /_ping"), reqs.end());
  EXPECT_NE(std::find(reqs.begin(), reqs.end(), "GET /v1.43/containers/ghost/json"), reqs.end());
}

TEST(FakeDaemonTest, RefusesAncientDaemon) {
  FakeDaemon d("1.20");
  d.start();
  Result<ContainerRuntimePtr> rt = openDockerRuntime(d.endpoint(), nullptr);
  ASSERT_FALSE(rt.isOk());
  EXPECT_EQ(rt.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(rt.status().message().find("1.20"), std::string::npos);
  EXPECT_NE(rt.status().message().find("at least 1.24"), std::string::npos);
}

TEST(FakeDaemonTest, PingWithoutVersionHeaderFallsBackToVersionEndpoint) {
  FakeDaemon d("");
  d.server().Get("/version", [](const httplib::Request&, httplib::Response& res) {
    FakeDaemon::json(res, 200, R"({"ApiVersion":"1.30","Version":"17.06"})");
  });
  d.server().Post(R"(/v1.30/containers/(.*)/wait)",
                  [](const httplib::Request&, httplib::Response& res) {
                    FakeDaemon::json(res, 200, R"({"StatusCode":0})");
                  });
  d.start();
  ContainerRuntimePtr rt = open(d);
  ASSERT_TRUE(rt);
  std::vector<std::string> reqs = d.requests();
  EXPECT_NE(std::find(reqs.begin(), reqs.end(), "GET /_ping"), reqs.end());  // after HEAD
  EXPECT_NE(std::find(reqs.begin(), reqs.end(), "GET /version"), reqs.end());
  // 1.30 knows condition=not-running.
  Result<ExitStatus> w = rt->waitContainer("c1", std::nullopt);
  ASSERT_TRUE(w.isOk()) << w.status().toString();
  reqs = d.requests();
  EXPECT_NE(std::find(reqs.begin(), reqs.end(), "POST /v1.30/containers/c1/wait"), reqs.end());
}

TEST(FakeDaemonTest, ServerTalkingGarbage) {
  // Not HTTP at all: whatever connects gets junk and a closed connection.
  std::string path = uniqueSocket("garbage");
  int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::snprintf(addr.sun_path, sizeof addr.sun_path, "%s", path.c_str());
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  ASSERT_EQ(::listen(fd, 8), 0);
  std::thread junk([fd] {
    for (int i = 0; i < 3; ++i) {  // HEAD /_ping, then GET /_ping
      int c = ::accept(fd, nullptr, nullptr);
      if (c < 0) return;
      char buf[4096];
      (void)!::read(c, buf, sizeof buf);
      static const char kJunk[] = "\x01\x02 this is not HTTP\r\n\r\n";
      (void)!::write(c, kJunk, sizeof kJunk - 1);
      ::close(c);
    }
  });
  auto t0 = Clock::now();
  Result<ContainerRuntimePtr> rt = openDockerRuntime("unix://" + path, nullptr);
  EXPECT_FALSE(rt.isOk());
  EXPECT_EQ(rt.status().code(), StatusCode::kUnavailable) << rt.status().toString();
  EXPECT_LT(Clock::now() - t0, std::chrono::seconds(5));
  ::shutdown(fd, SHUT_RDWR);
  ::close(fd);
  junk.join();
  ::unlink(path.c_str());
}

TEST(FakeDaemonTest, HttpServerAnsweringGarbageBodies) {
  FakeDaemon d;
  d.server().Get(R"(/v1.41/.*)", [](const httplib::Request& req, httplib::Response& res) {
    if (req.path.find("/logs") != std::string::npos) {
      res.set_content("<html>502 Bad Gateway</html>", "text/html");
    } else if (req.path.ends_with("/json") && req.path.find("containers/c1") != std::string::npos) {
      FakeDaemon::json(res, 200, R"({"Id":"c1","Config":{"Tty":false}})");
    } else {
      res.set_content("<html>hello</html>", "text/html");
    }
  });
  d.start();
  ContainerRuntimePtr rt = open(d);
  ASSERT_TRUE(rt);
  Result<ContainerInfo> c = rt->inspectContainer("x");
  EXPECT_EQ(c.status().code(), StatusCode::kInternal);
  EXPECT_NE(c.status().message().find("inspect container x"), std::string::npos);
  EXPECT_EQ(rt->listImages().status().code(), StatusCode::kInternal);
  EXPECT_EQ(rt->info().status().code(), StatusCode::kInternal);
  int lines = 0;
  Status logs = rt->readLogs("c1", {}, [&](const LogEntry&) { return ++lines > 0; });
  EXPECT_EQ(logs.code(), StatusCode::kInternal) << logs.toString();
  EXPECT_NE(logs.message().find("bad frame header"), std::string::npos) << logs.message();
  EXPECT_EQ(lines, 0);
}

TEST(FakeDaemonTest, ErrorMapping) {
  FakeDaemon d;
  auto& s = d.server();
  s.Post("/v1.41/containers/create", [](const httplib::Request& req, httplib::Response& res) {
    if (req.get_param_value("name") == "taken") {
      FakeDaemon::json(
          res, 409,
          R"({"message":"Conflict. The container name \"/taken\" is already in use by container \"abc\"."})");
    } else {
      FakeDaemon::json(res, 500, R"({"message":"disk full"})");
    }
  });
  s.Post(R"(/v1.41/containers/(\w+)/start)",
         [](const httplib::Request&, httplib::Response& res) { res.status = 304; });
  s.Post(R"(/v1.41/containers/(\w+)/stop)",
         [](const httplib::Request&, httplib::Response& res) { res.status = 304; });
  s.Post(R"(/v1.41/containers/(\w+)/kill)", [](const httplib::Request&, httplib::Response& res) {
    FakeDaemon::json(res, 409, R"({"message":"Container abc is not running"})");
  });
  s.Delete(R"(/v1.41/containers/(\w+))", [](const httplib::Request& req, httplib::Response& res) {
    if (req.has_param("force")) {
      res.status = 204;
    } else {
      FakeDaemon::json(res, 409, R"({"message":"You cannot remove a running container abc."})");
    }
  });
  d.start();
  ContainerRuntimePtr rt = open(d);
  ASSERT_TRUE(rt);
  ContainerSpec spec{.name = "taken", .image = "img"};
  EXPECT_EQ(rt->createContainer(spec).status().code(), StatusCode::kAlreadyExists);
  spec.name = "free";
  Result<std::string> full = rt->createContainer(spec);
  EXPECT_EQ(full.status().code(), StatusCode::kInternal);
  EXPECT_NE(full.status().message().find("disk full"), std::string::npos);
  spec.name = "bad/name";
  EXPECT_EQ(rt->createContainer(spec).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(rt->startContainer("abc").code(), StatusCode::kFailedPrecondition);
  EXPECT_TRUE(rt->stopContainer("abc", std::chrono::seconds(1)).isOk());
  EXPECT_EQ(rt->killContainer("abc", 9).code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(rt->killContainer("abc", 0).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(rt->removeContainer("abc", false).code(), StatusCode::kFailedPrecondition);
  EXPECT_TRUE(rt->removeContainer("abc", true).isOk());
  EXPECT_EQ(rt->inspectContainer("").status().code(), StatusCode::kInvalidArgument);

  // The daemon goes away: transport errors name the operation and the container.
  d.stop();
  Status gone = rt->startContainer("abc");
  EXPECT_EQ(gone.code(), StatusCode::kUnavailable);
  EXPECT_NE(gone.message().find("start container abc"), std::string::npos) << gone.message();
}

// Chunked replies that stop halfway, as when dockerd is killed mid-response.
TEST(FakeDaemonTest, DaemonDyingMidResponseIsAnErrorNotAHang) {
  FakeDaemon d;
  auto& s = d.server();
  s.Get("/v1.41/containers/c1/json", [](const httplib::Request&, httplib::Response& res) {
    FakeDaemon::json(res, 200, R"({"Id":"c1","Config":{"Tty":false}})");
  });
  s.Get("/v1.41/containers/c1/logs", [](const httplib::Request&, httplib::Response& res) {
    res.set_chunked_content_provider(
        "application/octet-stream", [](size_t, httplib::DataSink& sink) {
          std::string body =
              frame(1, "2026-11-27T11:37:12Z first\n") + frame(1, "2026-11-27T11:37:13Z sec");
          sink.write(body.data(), body.size() - 3);  // half a frame, then the daemon is gone
          return false;
        });
  });
  s.Post("/v1.41/containers/c1/wait", [](const httplib::Request&, httplib::Response& res) {
    res.set_chunked_content_provider("application/json", [](size_t, httplib::DataSink& sink) {
      sink.write("{\"StatusCo", 10);
      return false;
    });
  });
  d.start();
  ContainerRuntimePtr rt = open(d);
  ASSERT_TRUE(rt);
  auto t0 = Clock::now();
  std::vector<std::string> lines;
  LogOptions follow;
  follow.follow = true;
  Status logs = rt->readLogs("c1", follow, [&](const LogEntry& e) {
    lines.push_back(e.data);
    return true;
  });
  EXPECT_FALSE(logs.isOk());
  EXPECT_EQ(logs.code(), StatusCode::kUnavailable) << logs.toString();
  EXPECT_NE(logs.message().find("read logs of container c1"), std::string::npos);
  EXPECT_EQ(lines, std::vector<std::string>{"first\n"});

  Result<ExitStatus> w = rt->waitContainer("c1", std::nullopt);  // unbounded read
  EXPECT_EQ(w.status().code(), StatusCode::kUnavailable) << w.status().toString();
  EXPECT_NE(w.status().message().find("wait for container c1"), std::string::npos);
  EXPECT_LT(Clock::now() - t0, std::chrono::seconds(5));
}

TEST(FakeDaemonTest, WaitTimeoutIsDeadlineExceeded) {
  FakeDaemon d;
  d.server().Post(
      "/v1.41/containers/c1/wait", [&d](const httplib::Request&, httplib::Response& res) {
        // Headers now, the body never (bounded so the server can stop).
        res.set_chunked_content_provider("application/json", [&d](size_t, httplib::DataSink& sink) {
          auto end = Clock::now() + std::chrono::seconds(3);
          while (!d.stopping() && Clock::now() < end && sink.is_writable()) {
            std::this_thread::sleep_for(milliseconds(10));
          }
          return false;
        });
      });
  d.start();
  ContainerRuntimePtr rt = open(d);
  ASSERT_TRUE(rt);
  auto t0 = Clock::now();
  Result<ExitStatus> w = rt->waitContainer("c1", milliseconds(300));
  auto took = Clock::now() - t0;
  EXPECT_EQ(w.status().code(), StatusCode::kDeadlineExceeded) << w.status().toString();
  EXPECT_GE(took, milliseconds(290));
  EXPECT_LT(took, milliseconds(2000));
}

TEST(FakeDaemonTest, LogErrorReplyIsNotLogData) {
  for (bool tty : {false, true}) {
    FakeDaemon d;
    d.server().Get(
        "/v1.41/containers/c1/json", [tty](const httplib::Request&, httplib::Response& res) {
          FakeDaemon::json(
              res, 200,
              std::string(R"({"Id":"c1","Config":{"Tty":)") + (tty ? "true" : "false") + "}}");
        });
    d.server().Get("/v1.41/containers/c1/logs",
                   [](const httplib::Request&, httplib::Response& res) {
                     FakeDaemon::json(res, 404, R"({"message":"No such container: c1"})");
                   });
    d.start();
    ContainerRuntimePtr rt = open(d);
    ASSERT_TRUE(rt);
    int lines = 0;
    Status s = rt->readLogs("c1", {}, [&](const LogEntry&) { return ++lines > 0; });
    EXPECT_EQ(s.code(), StatusCode::kNotFound) << "tty=" << tty << " " << s.toString();
    EXPECT_NE(s.message().find("No such container: c1"), std::string::npos);
    EXPECT_EQ(lines, 0);
  }
}

TEST(FakeDaemonTest, TtyLogsAndLocalTimeFilter) {
  FakeDaemon d;
  d.server().Get("/v1.41/containers/c1/json", [](const httplib::Request&, httplib::Response& res) {
    FakeDaemon::json(res, 200, R"({"Id":"c1full","Config":{"Tty":true}})");
  });
  d.server().Get("/v1.41/containers/c1full/logs",
                 [](const httplib::Request& req, httplib::Response& res) {
                   EXPECT_EQ(req.get_param_value("timestamps"), "1");
                   EXPECT_EQ(req.get_param_value("tail"), "all");
                   res.set_content(
                       "2026-11-27T11:00:00Z {\"message\": not an error\r\n"
                       "2026-11-27T11:00:01Z b\r\n2026-11-27T11:00:02Z c\r\n",
                       "application/vnd.docker.raw-stream");
                 });
  d.start();
  ContainerRuntimePtr rt = open(d);
  ASSERT_TRUE(rt);
  std::vector<std::string> got;
  auto collect = [&](const LogEntry& e) {
    got.push_back(e.data);
    return true;
  };
  ASSERT_TRUE(rt->readLogs("c1", {}, collect).isOk());
  EXPECT_EQ(got, (std::vector<std::string>{"{\"message\": not an error\r\n", "b\r\n", "c\r\n"}));
  // until is exclusive here even though the daemon's is inclusive.
  LogOptions o;
  WallTime t;
  ASSERT_TRUE(parseTimestamp("2026-11-27T11:00:01Z", &t));
  o.since = t;
  o.until = t + std::chrono::seconds(1);
  got.clear();
  ASSERT_TRUE(rt->readLogs("c1", o, collect).isOk());
  EXPECT_EQ(got, std::vector<std::string>{"b\r\n"});
}

TEST(FakeDaemonTest, LoadStreamsTheTarballChunked) {
  FakeDaemon d;
  std::string transfer_encoding;
  size_t received = 0;
  d.server().Post("/v1.41/images/load", [&](const httplib::Request& req, httplib::Response& res) {
    transfer_encoding = req.get_header_value("Transfer-Encoding");
    received = req.body.size();
    EXPECT_EQ(req.get_param_value("quiet"), "1");
    EXPECT_EQ(req.get_header_value("Content-Type"), "application/x-tar");
    FakeDaemon::json(res, 200, "{\"stream\":\"Loaded image: a:1\\n\"}\r\n");
  });
  d.server().Get("/v1.41/images/a:1/json", [](const httplib::Request&, httplib::Response& res) {
    FakeDaemon::json(res, 200,
                     R"({"Id":"sha256:aa","RepoTags":["a:1"],"RootFS":{"Layers":["sha256:l1"]}})");
  });
  d.start();
  std::string tar = ::testing::TempDir() + "/load_" + std::to_string(::getpid()) + ".tar";
  {
    std::ofstream out(tar, std::ios::binary);
    std::string block(1 << 20, 'x');
    for (int i = 0; i < 3; ++i) out << block;
    out << "tail";
  }
  ContainerRuntimePtr rt = open(d);
  ASSERT_TRUE(rt);
  Result<std::vector<ImageInfo>> loaded = rt->loadImage(tar);
  ASSERT_TRUE(loaded.isOk()) << loaded.status().toString();
  ASSERT_EQ(loaded->size(), 1u);
  EXPECT_EQ((*loaded)[0].id, "sha256:aa");
  EXPECT_EQ((*loaded)[0].tags, std::vector<std::string>{"a:1"});
  EXPECT_EQ(transfer_encoding, "chunked");
  EXPECT_EQ(received, (3u << 20) + 4);
  ::unlink(tar.c_str());
  EXPECT_EQ(rt->loadImage(tar).status().code(), StatusCode::kNotFound);
}

// A fake /events that honours since/until like dockerd: replays buffered events in
// [since, until], streams new ones, and ends the reply when `until` passes.
class EventsFake {
 public:
  explicit EventsFake(FakeDaemon& d) {
    d.server().Get("/v1.41/info", [](const httplib::Request&, httplib::Response& res) {
      FakeDaemon::json(
          res, 200,
          R"({"SystemTime":")" + formatRfc3339Nano(std::chrono::system_clock::now()) + "\"}");
    });
    d.server().Get(
        "/v1.41/events", [this, &d](const httplib::Request& req, httplib::Response& res) {
          WallTime since, until;
          EXPECT_TRUE(parseTimestamp(req.get_param_value("since"), &since));
          EXPECT_TRUE(parseTimestamp(req.get_param_value("until"), &until));
          EXPECT_EQ(req.get_param_value("filters"), R"({"type":["container"]})");
          windows_++;
          auto sent = std::make_shared<size_t>(0);
          res.set_chunked_content_provider(
              "application/json", [this, &d, since, until, sent](size_t, httplib::DataSink& sink) {
                std::vector<std::string> out;
                {
                  std::lock_guard<std::mutex> lock(mu_);
                  for (; *sent < events_.size(); ++*sent) {
                    auto [t, text] = events_[*sent];
                    if (t >= since && t <= until) out.push_back(text + "\n");
                  }
                }
                for (const std::string& o : out) sink.write(o.data(), o.size());
                if (d.stopping() || std::chrono::system_clock::now() > until) {
                  sink.done();
                  return true;
                }
                std::this_thread::sleep_for(milliseconds(5));
                return true;
              });
        });
  }
  void emit(const std::string& action, const std::string& id, int exit_code = 0) {
    WallTime now = std::chrono::system_clock::now();
    int64_t ns =
        std::chrono::duration_cast<std::chrono::nanoseconds>(now.time_since_epoch()).count();
    std::string text = R"({"Type":"container","Action":")" + action + R"(","Actor":{"ID":")" + id +
                       R"(","Attributes":{"exitCode":")" + std::to_string(exit_code) +
                       R"("}},"timeNano":)" + std::to_string(ns) + "}";
    std::lock_guard<std::mutex> lock(mu_);
    events_.emplace_back(now, text);
  }
  int windows() const { return windows_; }

 private:
  std::mutex mu_;
  std::vector<std::pair<WallTime, std::string>> events_;
  std::atomic<int> windows_{0};
};

TEST(FakeDaemonTest, EventsChainWindowsWithoutGapsOrDuplicates) {
  FakeDaemon d;
  EventsFake events(d);
  d.start();
  ContainerRuntimePtr rt = open(d);
  ASSERT_TRUE(rt);
  std::mutex mu;
  std::vector<Event> got;
  Result<SubscriptionPtr> sub = rt->subscribe([&](const Event& e) {
    std::lock_guard<std::mutex> lock(mu);
    got.push_back(e);
  });
  ASSERT_TRUE(sub.isOk()) << sub.status().toString();
  auto count = [&] {
    std::lock_guard<std::mutex> lock(mu);
    return got.size();
  };
  // Spread over several windows so replays overlap what was streamed live.
  const int kEvents = 8;
  for (int i = 0; i < kEvents; ++i) {
    events.emit(i % 2 ? "die" : "start", "c" + std::to_string(i), i);
    events.emit("exec_start", "c" + std::to_string(i));  // not ours: ignored
    std::this_thread::sleep_for(milliseconds(150));      // pacing the producer, not waiting
  }
  auto deadline = Clock::now() + std::chrono::seconds(5);
  while (count() < size_t{kEvents} && Clock::now() < deadline) {
    std::this_thread::sleep_for(milliseconds(10));
  }
  // Let two more windows replay the overlap; nothing may arrive twice.
  int seen_windows = events.windows();
  deadline = Clock::now() + std::chrono::seconds(5);
  while (events.windows() < seen_windows + 3 && Clock::now() < deadline) {
    std::this_thread::sleep_for(milliseconds(10));
  }
  {
    std::lock_guard<std::mutex> lock(mu);
    ASSERT_EQ(got.size(), size_t{kEvents});
    for (int i = 0; i < kEvents; ++i) {
      EXPECT_EQ(got[i].container_id, "c" + std::to_string(i));
      EXPECT_EQ(got[i].type, i % 2 ? Event::Type::kExit : Event::Type::kStart);
      if (i % 2) {
        EXPECT_EQ(got[i].exit_code, i);
      }
    }
  }
  EXPECT_LT(events.windows(), 40);  // windows, not a busy loop

  auto t0 = Clock::now();
  sub->reset();
  EXPECT_LT(Clock::now() - t0, milliseconds(1200));
}

TEST(FakeDaemonTest, EventSubscriptionSurvivesAnOutageAndStopsPromptly) {
  FakeDaemon d;
  d.server().Get("/v1.41/info", [](const httplib::Request&, httplib::Response& res) {
    FakeDaemon::json(res, 200, "{}");
  });
  std::atomic<int> calls{0};
  d.server().Get("/v1.41/events", [&](const httplib::Request&, httplib::Response& res) {
    ++calls;
    FakeDaemon::json(res, 500, R"({"message":"events backend restarting"})");
  });
  d.start();
  ContainerRuntimePtr rt = open(d);
  ASSERT_TRUE(rt);
  Result<SubscriptionPtr> sub = rt->subscribe([](const Event&) {});
  ASSERT_TRUE(sub.isOk());
  auto deadline = Clock::now() + std::chrono::seconds(3);
  while (calls < 1 && Clock::now() < deadline) std::this_thread::sleep_for(milliseconds(5));
  EXPECT_GE(calls, 1);
  auto t0 = Clock::now();
  sub->reset();  // while it sits in its retry pause
  EXPECT_LT(Clock::now() - t0, milliseconds(200));
  EXPECT_LE(calls, 2);  // retries are paced
  d.stop();
  EXPECT_EQ(rt->subscribe([](const Event&) {}).status().code(), StatusCode::kUnavailable);
}

}  // namespace
}  // namespace edge::runtime
