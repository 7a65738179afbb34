#include "common/http.h"

#include <gtest/gtest.h>
#include <httplib.h>
#include <sys/socket.h>
#include <sys/un.h>

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

TEST(UrlEncodeTest, Escapes) {
  EXPECT_EQ(urlEncode("a b/c{\"x\"}"), "a%20b%2Fc%7B%22x%22%7D");
}

}  // namespace
}  // namespace edge::http
