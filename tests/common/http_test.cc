#include "common/http.h"

#include <gtest/gtest.h>
#include <httplib.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <thread>

namespace edge::http {
namespace {

TEST(EndpointTest, Parse) {
  EXPECT_EQ(Endpoint::parse("unix:///run/x.sock")->path, "/run/x.sock");
  EXPECT_EQ(Endpoint::parse("/run/x.sock")->kind, Endpoint::Kind::kUnix);
  Result<Endpoint> tcp = Endpoint::parse("tcp://127.0.0.1:8083");
  ASSERT_TRUE(tcp.isOk());
  EXPECT_EQ(tcp->host, "127.0.0.1");
  EXPECT_EQ(tcp->port, 8083);
  EXPECT_FALSE(Endpoint::parse("unix://relative").isOk());
  EXPECT_FALSE(Endpoint::parse("tcp://host").isOk());
  EXPECT_FALSE(Endpoint::parse("tcp://host:99999").isOk());
  EXPECT_FALSE(Endpoint::parse("ftp://x:1").isOk());
}

// A real server on a unix socket in the test's temp dir.
class UnixServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    path_ = ::testing::TempDir() + "/http_test_" + std::to_string(::getpid()) + ".sock";
    ::unlink(path_.c_str());
    server_.set_address_family(AF_UNIX);
    server_.Get("/hello", [](const httplib::Request&, httplib::Response& res) {
      res.set_header("Api-Version", "1.41");
      res.set_content("world", "text/plain");
    });
    server_.Post("/echo", [](const httplib::Request& req, httplib::Response& res) {
      res.set_content(req.body, "application/octet-stream");
    });
    server_.Get("/stream", [](const httplib::Request&, httplib::Response& res) {
      res.set_chunked_content_provider("text/plain", [](size_t off, httplib::DataSink& sink) {
        if (off >= 30) {
          sink.done();
          return true;
        }
        return sink.write("0123456789", 10);
      });
    });
    server_.Get("/missing", [](const httplib::Request&, httplib::Response& res) {
      res.status = 404;
      res.set_content(R"({"message":"no such container"})", "application/json");
    });
    server_.Get("/slow", [](const httplib::Request&, httplib::Response& res) {
      std::this_thread::sleep_for(std::chrono::milliseconds(400));
      res.set_content("late", "text/plain");
    });
    thread_ = std::thread([this] { server_.listen(path_.c_str(), 80); });
    while (!server_.is_running()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  void TearDown() override {
    server_.stop();
    thread_.join();
    ::unlink(path_.c_str());
  }
  std::string path_;
  httplib::Server server_;
  std::thread thread_;
};

TEST_F(UnixServerTest, GetWithHeaders) {
  Client c(*Endpoint::parse("unix://" + path_));
  Result<Response> r = c.send({.method = "GET", .path = "/hello"});
  ASSERT_TRUE(r.isOk()) << r.status().toString();
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->body, "world");
  EXPECT_EQ(r->header("api-version"), "1.41");
}

TEST_F(UnixServerTest, ChunkedUploadAndStreamedDownload) {
  Client c(*Endpoint::parse(path_));
  int calls = 0;
  Request req{.method = "POST", .path = "/echo"};
  req.body_source = [&](char* buf, size_t cap) -> Result<size_t> {
    if (calls++ == 3) return size_t{0};
    std::string part = "part" + std::to_string(calls);
    EXPECT_LE(part.size(), cap);
    std::copy(part.begin(), part.end(), buf);
    return part.size();
  };
  Result<Response> r = c.send(req);
  ASSERT_TRUE(r.isOk()) << r.status().toString();
  EXPECT_EQ(r->body, "part1part2part3");

  std::string got;
  Request s{.method = "GET", .path = "/stream"};
  s.body_sink = [&](const char* d, size_t n) {
    got.append(d, n);
    return true;
  };
  r = c.send(s);
  ASSERT_TRUE(r.isOk());
  EXPECT_TRUE(r->body.empty());
  EXPECT_EQ(got.size(), 30u);
}

TEST_F(UnixServerTest, SinkCanStopReading) {
  Client c(*Endpoint::parse(path_));
  Request s{.method = "GET", .path = "/stream"};
  s.body_sink = [](const char*, size_t) { return false; };
  EXPECT_EQ(c.send(s).status().code(), StatusCode::kCancelled);
}

TEST_F(UnixServerTest, ErrorBodyNeverReachesTheSink) {
  Client c(*Endpoint::parse(path_));
  Request s{.method = "GET", .path = "/missing"};
  bool sink_called = false;
  s.body_sink = [&](const char*, size_t) { return sink_called = true; };
  Result<Response> r = c.send(s);
  ASSERT_TRUE(r.isOk()) << r.status().toString();
  EXPECT_EQ(r->status, 404);
  EXPECT_FALSE(sink_called);
  EXPECT_EQ(r->body, R"({"message":"no such container"})");
}

TEST_F(UnixServerTest, ReadTimeoutIsDeadlineExceeded) {
  Client c(*Endpoint::parse(path_));
  Request s{.method = "GET", .path = "/slow"};
  s.read_timeout = std::chrono::milliseconds(100);
  EXPECT_EQ(c.send(s).status().code(), StatusCode::kDeadlineExceeded);
}

TEST(ClientErrorTest, MissingSocketIsUnavailableNotAHang) {
  Client c(*Endpoint::parse("unix:///nonexistent/dir/docker.sock"));
  Result<Response> r = c.send({.path = "/_ping"});
  ASSERT_FALSE(r.isOk());
  EXPECT_EQ(r.status().code(), StatusCode::kUnavailable);
  EXPECT_NE(r.status().message().find("does not exist"), std::string::npos);
}

TEST(ClientErrorTest, StaleSocketIsRefused) {
  std::string path = ::testing::TempDir() + "/stale_" + std::to_string(::getpid()) + ".sock";
  {
    // Bound then closed: the socket file stays, nobody listens (a daemon that died).
    int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::snprintf(addr.sun_path, sizeof addr.sun_path, "%s", path.c_str());
    ::unlink(path.c_str());
    ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
    ::close(fd);
  }
  Client c(*Endpoint::parse(path));
  Result<Response> r = c.send({.path = "/_ping"});
  ASSERT_FALSE(r.isOk());
  EXPECT_EQ(r.status().code(), StatusCode::kUnavailable);
  ::unlink(path.c_str());
}

// A server that refuses every body as too large the moment it has read the head, and
// closes without reading the body: what the node API does at its body limit. With
// `answer` false it closes without a word.
class RefusingServer {
 public:
  RefusingServer(bool tcp, bool answer) : answer_(answer) {
    if (tcp) {
      fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
      sockaddr_in a{};
      a.sin_family = AF_INET;
      a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
      EXPECT_EQ(::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
      socklen_t len = sizeof a;
      ::getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len);
      endpoint_ = "tcp://127.0.0.1:" + std::to_string(ntohs(a.sin_port));
    } else {
      path_ = ::testing::TempDir() + "/refusing_" + std::to_string(::getpid()) + ".sock";
      ::unlink(path_.c_str());
      fd_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
      sockaddr_un a{};
      a.sun_family = AF_UNIX;
      std::snprintf(a.sun_path, sizeof a.sun_path, "%s", path_.c_str());
      EXPECT_EQ(::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
      endpoint_ = "unix://" + path_;
    }
    EXPECT_EQ(::listen(fd_, 4), 0);
    thread_ = std::thread([this] { serveOne(); });
  }
  ~RefusingServer() {
    ::shutdown(fd_, SHUT_RDWR);
    thread_.join();
    ::close(fd_);
    if (!path_.empty()) ::unlink(path_.c_str());
  }
  const std::string& endpoint() const { return endpoint_; }

 private:
  void serveOne() {
    int c = ::accept(fd_, nullptr, nullptr);
    if (c < 0) return;
    std::string head;
    char buf[4096];
    while (head.find("\r\n\r\n") == std::string::npos) {
      ssize_t n = ::read(c, buf, sizeof buf);
      if (n <= 0) break;
      head.append(buf, static_cast<size_t>(n));
    }
    if (answer_) {
      std::string body = R"j({"message":"request body is larger than this endpoint accepts: )j"
                         R"j(the limit is 4194304 bytes (4 MiB)"})j";
      std::string reply =
          "HTTP/1.1 413 Payload Too Large\r\nContent-Type: application/json\r\n"
          "Connection: close\r\nContent-Length: " +
          std::to_string(body.size()) + "\r\n\r\n" + body;
      EXPECT_EQ(::send(c, reply.data(), reply.size(), MSG_NOSIGNAL),
                static_cast<ssize_t>(reply.size()));
    }
    ::close(c);  // unread body: a TCP peer gets a reset
  }

  bool answer_;
  int fd_ = -1;
  std::string path_;
  std::string endpoint_;
  std::thread thread_;
};

// SIGPIPE is left at its default here, as in a program that never thought of it: before
// the fix the write after the server's close killed the test binary.
class RefusedBodyTest : public ::testing::TestWithParam<bool /* tcp */> {
 protected:
  void SetUp() override { ASSERT_NE(::signal(SIGPIPE, SIG_DFL), SIG_ERR); }
};

TEST_P(RefusedBodyTest, AnswerSentBeforeTheBodyWasReadIsReturned) {
  RefusingServer server(GetParam(), true);
  Client c(*Endpoint::parse(server.endpoint()));
  Request req{.method = "POST", .path = "/api/v1/services", .body = std::string(16 << 20, 'x')};
  Result<Response> r = c.send(req);
  ASSERT_TRUE(r.isOk()) << r.status().toString();
  EXPECT_EQ(r->status, 413);
  EXPECT_EQ(r->header("content-type"), "application/json");
  EXPECT_NE(r->body.find("the limit is 4194304 bytes"), std::string::npos) << r->body;
}

TEST_P(RefusedBodyTest, ChunkedBodyToo) {
  RefusingServer server(GetParam(), true);
  Client c(*Endpoint::parse(server.endpoint()));
  Request req{.method = "POST", .path = "/api/v1/images/load"};
  size_t sent = 0;
  req.body_source = [&](char* buf, size_t cap) -> Result<size_t> {
    if (sent >= (64u << 20)) return size_t{0};
    std::fill(buf, buf + cap, 'y');
    sent += cap;
    return cap;
  };
  Result<Response> r = c.send(req);
  ASSERT_TRUE(r.isOk()) << r.status().toString();
  EXPECT_EQ(r->status, 413);
}

TEST_P(RefusedBodyTest, CloseWithoutAnswerIsUnavailable) {
  RefusingServer server(GetParam(), false);
  Client c(*Endpoint::parse(server.endpoint()));
  Request req{.method = "POST", .path = "/x", .body = std::string(16 << 20, 'x')};
  Result<Response> r = c.send(req);
  ASSERT_FALSE(r.isOk());
  EXPECT_EQ(r.status().code(), StatusCode::kUnavailable) << r.status().toString();
}

INSTANTIATE_TEST_SUITE_P(UnixAndTcp, RefusedBodyTest, ::testing::Bool(),
                         [](const auto& info) { return info.param ? "Tcp" : "Unix"; });

TEST(UrlEncodeTest, Escapes) {
  EXPECT_EQ(urlEncode("a b/c{\"x\"}"), "a%20b%2Fc%7B%22x%22%7D");
}

}  // namespace
}  // namespace edge::http
