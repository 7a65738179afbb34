// Peer channels end to end on real sockets: a PeerServer in front of a fake node API
// (http::ApiServer on a unix socket in a temp dir), callers over direct TCP connections
// on 127.0.0.1 and over socketpairs standing in for relayed (BEP) legs.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <random>
#include <thread>

#include "common/http_server.h"
#include "common/json.h"
#include "identity/identity.h"
#include "identity/secure.h"
#include "mesh/peer_channel.h"
#include "mesh/peer_client.h"
#include "mesh/peer_server.h"

namespace edge::mesh {
namespace {

using identity::NodeIdentity;
using std::chrono::milliseconds;
using std::chrono::seconds;

constexpr milliseconds kTimeout{5000};

std::string randomBody(size_t n) {
  std::mt19937_64 rng(42);
  std::string s(n, '\0');
  for (auto& c : s) c = static_cast<char>(rng());
  return s;
}

int connectTo(int port) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

// True when the peer closes `fd` within `timeout` (whatever it sent before).
bool closedByPeer(int fd, milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  char buf[4096];
  for (;;) {
    auto left =
        std::chrono::duration_cast<milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return false;
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(left.count())) <= 0) return false;
    ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n <= 0) return true;
  }
}

class PeerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/peer_test_XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;

    http::ApiServer::Options o;
    o.unix_socket = dir_ + "/api.sock";
    o.max_body_bytes = 32 << 20;
    api_ = std::make_unique<http::ApiServer>(o);
    api_->raw().Get("/api/v1/node", [](const httplib::Request& req, httplib::Response& res) {
      json::Json j{{"name", "fake-node"}, {"caller", req.get_header_value("X-Edge-Caller-Node")}};
      res.set_content(json::dump(j), "application/json");
    });
    api_->raw().Post("/test/echo", [](const httplib::Request& req, httplib::Response& res) {
      res.set_content(req.body, "application/octet-stream");
    });
    ASSERT_TRUE(api_->start().isOk());
  }

  void TearDown() override {
    if (server_) server_->stop();
    api_->stop();
    std::filesystem::remove_all(dir_);
  }

  PeerServer::Options options() {
    PeerServer::Options o;
    o.local_api = dir_ + "/api.sock";
    o.io_timeout = kTimeout;
    o.verify = [this](std::string_view token, std::string_view caller) -> Result<nlohmann::json> {
      if (caller != caller_.id()) return Status::permissionDenied("token issued to another node");
      if (token == "good") return nlohmann::json{{"sub", "node:x"}, {"scope", "status node:call"}};
      if (token == "noscope") return nlohmann::json{{"sub", "node:x"}, {"scope", "relay:sep"}};
      return Status::permissionDenied("the token expired at 2026-01-01T00:00:00Z");
    };
    o.routes.push_back({"POST", "/test/echo", false});
    return o;
  }

  void startServer(PeerServer::Options o) {
    server_ = std::make_unique<PeerServer>(target_, std::move(o));
    ASSERT_TRUE(server_->listen("127.0.0.1:0").isOk());
  }

  Result<http::Response> call(const http::Request& req, std::string_view token = "good") {
    int fd = connectTo(server_->listenPort());
    if (fd < 0) return Status::unavailable("connect");
    return callPeer(fd, caller_, target_.id(), token, req, kTimeout);
  }

  std::string dir_;
  NodeIdentity target_ = *NodeIdentity::generate();
  NodeIdentity caller_ = *NodeIdentity::generate();
  std::unique_ptr<http::ApiServer> api_;
  std::unique_ptr<PeerServer> server_;
};

TEST_F(PeerTest, DirectCallIsAnsweredByTheNodeApi) {
  startServer(options());
  auto r = call({.method = "GET", .path = "/api/v1/node"});
  ASSERT_TRUE(r.isOk()) << r.status().toString();
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->header("Content-Type"), "application/json");
  auto j = json::parse(r->body, "reply");
  ASSERT_TRUE(j.isOk()) << r->body;
  EXPECT_EQ((*j)["name"], "fake-node");
  // The node API learns which node called, from the channel, not from the caller's word.
  EXPECT_EQ((*j)["caller"], caller_.id());
}

TEST_F(PeerTest, CallerCannotForgeTheCallerHeader) {
  startServer(options());
  http::Request req{.method = "GET", .path = "/api/v1/node"};
  req.headers.emplace("X-Edge-Caller-Node", "0000000000000000");
  auto r = call(req);
  ASSERT_TRUE(r.isOk()) << r.status().toString();
  EXPECT_EQ((*json::parse(r->body, "reply"))["caller"], caller_.id());
}

TEST_F(PeerTest, RelayedCallOverASocketpairWithMagicPartlyRead) {
  server_ = std::make_unique<PeerServer>(target_, options());
  int sp[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp), 0);
  Result<http::Response> r = Status::internal("not run");
  std::thread caller([&] {
    r = callPeer(sp[1], caller_, target_.id(), "good", {.method = "GET", .path = "/api/v1/node"},
                 kTimeout);
  });
  // As discovery's demultiplexer does: it read the first bytes, then hands the fd over.
  char head[2];
  ASSERT_EQ(::recv(sp[0], head, 2, MSG_WAITALL), 2);
  server_->serve(sp[0], std::string(head, 2));
  caller.join();
  ASSERT_TRUE(r.isOk()) << r.status().toString();
  EXPECT_EQ(r->status, 200);
  EXPECT_TRUE(server_->waitIdle(kTimeout));
}

TEST_F(PeerTest, WrongTargetIdentityIsRefused) {
  startServer(options());
  auto other = *NodeIdentity::generate();
  int fd = connectTo(server_->listenPort());
  auto r = callPeer(fd, caller_, other.id(), "good", {.method = "GET", .path = "/api/v1/node"},
                    kTimeout);
  ASSERT_FALSE(r.isOk());
  EXPECT_EQ(r.status().code(), StatusCode::kPermissionDenied);
  EXPECT_NE(r.status().message().find("not the expected " + other.id()), std::string::npos)
      << r.status().message();
  EXPECT_NE(r.status().message().find(target_.id()), std::string::npos);
}

TEST_F(PeerTest, RefusedTokenGives401WithTheReason) {
  startServer(options());
  auto r = call({.method = "GET", .path = "/api/v1/node"}, "expired-token");
  ASSERT_TRUE(r.isOk()) << r.status().toString();
  EXPECT_EQ(r->status, 401);
  EXPECT_NE(r->body.find("the token expired at 2026-01-01T00:00:00Z"), std::string::npos)
      << r->body;
}

TEST_F(PeerTest, MissingTokenGives401) {
  startServer(options());
  auto r = call({.method = "GET", .path = "/api/v1/node"}, "");
  ASSERT_TRUE(r.isOk()) << r.status().toString();
  EXPECT_EQ(r->status, 401);
  EXPECT_NE(r->body.find("no token"), std::string::npos) << r->body;
}

TEST_F(PeerTest, TokenWithoutNodeCallScopeGives403) {
  startServer(options());
  auto r = call({.method = "GET", .path = "/api/v1/node"}, "noscope");
  ASSERT_TRUE(r.isOk()) << r.status().toString();
  EXPECT_EQ(r->status, 403);
  EXPECT_NE(r->body.find("node:call"), std::string::npos) << r->body;
}

TEST_F(PeerTest, PathsOutsideTheAllowListGive403NamingTheList) {
  startServer(options());
  for (auto [method, path] : std::vector<std::pair<std::string, std::string>>{
           {"GET", "/containers/json"},
           {"POST", "/api/v1/node"},
           {"DELETE", "/api/v1/services/hello"},
           {"GET", "/api/v1/services/../../containers/json"},
           {"GET", "/api/v1/services/%2e%2e/x"},
           {"GET", "/api/v1/nodesx"}}) {
    http::Request req{.method = method, .path = path};
    req.body = method == "POST" ? "{}" : "";
    auto r = call(req);
    ASSERT_TRUE(r.isOk()) << r.status().toString();
    EXPECT_EQ(r->status, 403) << method << " " << path;
    EXPECT_NE(r->body.find("GET /api/v1/node, GET /api/v1/services[/...]"), std::string::npos)
        << r->body;
  }
}

TEST_F(PeerTest, RouteTable) {
  const auto& routes = defaultPeerRoutes();
  EXPECT_TRUE(peerRouteAllowed(routes, "GET", "/api/v1/node"));
  EXPECT_TRUE(peerRouteAllowed(routes, "GET", "/api/v1/node?x=1"));
  EXPECT_TRUE(peerRouteAllowed(routes, "GET", "/api/v1/services"));
  EXPECT_TRUE(peerRouteAllowed(routes, "GET", "/api/v1/services/hello/instances"));
  EXPECT_TRUE(peerRouteAllowed(routes, "GET", "/api/v1/cluster"));
  EXPECT_TRUE(peerRouteAllowed(routes, "GET", "/api/v1/nodes"));
  EXPECT_FALSE(peerRouteAllowed(routes, "GET", "/api/v1/node/x"));
  EXPECT_FALSE(peerRouteAllowed(routes, "GET", "/api/v1/services/"));
  EXPECT_FALSE(peerRouteAllowed(routes, "GET", "/api/v1/services//x"));
  EXPECT_FALSE(peerRouteAllowed(routes, "GET", "/api/v1/services/./x"));
  EXPECT_FALSE(peerRouteAllowed(routes, "GET", "/api/v1/services/a\\b"));
  EXPECT_FALSE(peerRouteAllowed(routes, "GET", "/api/v1/services/a%2Fb"));
  EXPECT_FALSE(peerRouteAllowed(routes, "PUT", "/api/v1/services/hello"));
  EXPECT_FALSE(peerRouteAllowed(routes, "GET", "api/v1/node"));
}

TEST_F(PeerTest, FiveMiBBodiesCrossByteExactBothWays) {
  startServer(options());
  std::string body = randomBody(5 << 20);
  auto r = call({.method = "POST", .path = "/test/echo", .body = body});
  ASSERT_TRUE(r.isOk()) << r.status().toString();
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->body.size(), body.size());
  EXPECT_TRUE(r->body == body);

  // The same with a streamed request body and a reply sink.
  size_t sent = 0;
  std::string received;
  http::Request req{.method = "POST", .path = "/test/echo"};
  req.body_source = [&](char* buf, size_t cap) -> Result<size_t> {
    size_t n = std::min(cap, std::min<size_t>(100000, body.size() - sent));
    std::memcpy(buf, body.data() + sent, n);
    sent += n;
    return n;
  };
  req.body_sink = [&](const char* d, size_t n) {
    received.append(d, n);
    return true;
  };
  auto s = call(req);
  ASSERT_TRUE(s.isOk()) << s.status().toString();
  EXPECT_EQ(s->status, 200);
  EXPECT_TRUE(s->body.empty());
  EXPECT_TRUE(received == body);
}

TEST_F(PeerTest, OversizedRequestBodyIsRefusedBeforeSending) {
  startServer(options());
  std::string body((16 << 20) + 1, 'x');
  auto r = call({.method = "POST", .path = "/test/echo", .body = body});
  ASSERT_FALSE(r.isOk());
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(r.status().message().find("16 MiB"), std::string::npos);
}

TEST_F(PeerTest, NodeApiDownGives502) {
  auto o = options();
  o.local_api = dir_ + "/nothing.sock";
  startServer(o);
  auto r = call({.method = "GET", .path = "/api/v1/node"});
  ASSERT_TRUE(r.isOk()) << r.status().toString();
  EXPECT_EQ(r->status, 502);
  EXPECT_NE(r->body.find("did not answer"), std::string::npos) << r->body;
}

TEST_F(PeerTest, MalformedRequestHeadGives400) {
  startServer(options());
  int fd = connectTo(server_->listenPort());
  auto ch = PeerChannel::connect(fd, caller_, target_.id(), kTimeout);
  ASSERT_TRUE(ch.isOk()) << ch.status().toString();
  ASSERT_TRUE(ch->send(R"({"type":"open","token":"good","kind":"http"})").isOk());
  EXPECT_EQ(*ch->receive(kTimeout), R"({"type":"opened"})");
  ASSERT_TRUE(ch->send(R"({"method":"GET","path":"/api/v1/node","headers":{"X":7}})").isOk());
  ASSERT_TRUE(ch->send("").isOk());
  auto head = json::parse(*ch->receive(kTimeout), "head");
  ASSERT_TRUE(head.isOk());
  EXPECT_EQ((*head)["status"], 400);
  std::string body = *ch->receive(kTimeout);
  EXPECT_NE(body.find(".headers.X must be a string"), std::string::npos) << body;
  EXPECT_EQ(*ch->receive(kTimeout), "");
}

TEST_F(PeerTest, UnknownOpenMessageIsRefusedWith400) {
  startServer(options());
  int fd = connectTo(server_->listenPort());
  auto ch = PeerChannel::connect(fd, caller_, target_.id(), kTimeout);
  ASSERT_TRUE(ch.isOk());
  ASSERT_TRUE(ch->send(R"({"type":"open","token":"good","kind":"carrier-pigeon"})").isOk());
  auto answer = json::parse(*ch->receive(kTimeout), "answer");
  EXPECT_EQ((*answer)["type"], "error");
  EXPECT_EQ((*answer)["status"], 400);
  EXPECT_NE((*answer)["message"].get<std::string>().find("use http or stream"), std::string::npos);
}

// Hostile or broken connections: each ends its server thread, nothing crashes.
TEST_F(PeerTest, GarbageAfterMagicEndsTheChannel) {
  startServer(options());
  int fd = connectTo(server_->listenPort());
  std::string junk = "ECP1" + std::string(64, '\xff');
  ASSERT_EQ(::send(fd, junk.data(), junk.size(), MSG_NOSIGNAL), static_cast<ssize_t>(junk.size()));
  EXPECT_TRUE(closedByPeer(fd, kTimeout));
  EXPECT_TRUE(server_->waitIdle(kTimeout));
  ::close(fd);
}

TEST_F(PeerTest, ConnectionWithoutMagicEndsTheChannel) {
  startServer(options());
  int fd = connectTo(server_->listenPort());
  std::string req = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
  ASSERT_GT(::send(fd, req.data(), req.size(), MSG_NOSIGNAL), 0);
  EXPECT_TRUE(closedByPeer(fd, kTimeout));
  EXPECT_TRUE(server_->waitIdle(kTimeout));
  ::close(fd);
}

TEST_F(PeerTest, TruncatedHandshakeEndsTheChannel) {
  startServer(options());
  int fd = connectTo(server_->listenPort());
  identity::SecureSession s(identity::SecureSession::Role::kInitiator, caller_, "");
  std::string hello = s.takeOutput();
  std::string part = "ECP1" + hello.substr(0, hello.size() / 2);
  ASSERT_GT(::send(fd, part.data(), part.size(), MSG_NOSIGNAL), 0);
  ::shutdown(fd, SHUT_WR);
  EXPECT_TRUE(closedByPeer(fd, kTimeout));
  EXPECT_TRUE(server_->waitIdle(kTimeout));
  ::close(fd);
}

TEST_F(PeerTest, SlowClientIsDroppedAfterTheIoTimeout) {
  auto o = options();
  o.io_timeout = milliseconds(300);
  startServer(o);
  int fd = connectTo(server_->listenPort());
  ASSERT_EQ(::send(fd, "ECP1", 4, MSG_NOSIGNAL), 4);  // then nothing
  EXPECT_TRUE(closedByPeer(fd, kTimeout));
  EXPECT_TRUE(server_->waitIdle(kTimeout));
  EXPECT_EQ(server_->activeChannels(), 0u);
  ::close(fd);
}

TEST_F(PeerTest, ChannelsAreBoundedByMaxChannels) {
  auto o = options();
  o.max_channels = 2;
  o.io_timeout = seconds(60);  // the held channels stay until stop()
  server_ = std::make_unique<PeerServer>(target_, o);
  std::vector<int> peers;
  for (int i = 0; i < 3; ++i) {
    int sp[2];
    ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp), 0);
    server_->serve(sp[0], "EC");
    peers.push_back(sp[1]);
    if (i < 2) {
      EXPECT_EQ(server_->activeChannels(), static_cast<size_t>(i + 1));
    }
  }
  EXPECT_EQ(server_->activeChannels(), 2u);
  EXPECT_TRUE(closedByPeer(peers[2], kTimeout));  // the third one, at once
  auto start = std::chrono::steady_clock::now();
  server_->stop();
  EXPECT_LT(std::chrono::steady_clock::now() - start, seconds(10));
  EXPECT_EQ(server_->activeChannels(), 0u);
  EXPECT_TRUE(closedByPeer(peers[0], kTimeout));
  EXPECT_TRUE(closedByPeer(peers[1], kTimeout));
  for (int fd : peers) ::close(fd);
}

// A TCP service on 127.0.0.1 that echoes one connection until its peer half-closes.
class EchoService {
 public:
  EchoService() {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a);
    ::listen(fd_, 4);
    socklen_t len = sizeof a;
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len);
    port_ = ntohs(a.sin_port);
    thread_ = std::thread([this] {
      int c = ::accept(fd_, nullptr, nullptr);
      if (c < 0) return;
      char buf[65536];
      for (;;) {
        ssize_t n = ::recv(c, buf, sizeof buf, 0);
        if (n <= 0) break;
        if (::send(c, buf, static_cast<size_t>(n), MSG_NOSIGNAL) != n) break;
      }
      ::shutdown(c, SHUT_WR);
      ::close(c);
    });
  }
  ~EchoService() {
    ::shutdown(fd_, SHUT_RDWR);
    thread_.join();
    ::close(fd_);
  }
  int port() const { return port_; }

 private:
  int fd_ = -1;
  int port_ = 0;
  std::thread thread_;
};

TEST_F(PeerTest, StreamKindEchoes) {
  EchoService echo;
  auto o = options();
  o.resolve_stream = [&](std::string_view service, int port) {
    return service == "echo" && port == echo.port() ? Status::ok()
                                                    : Status::permissionDenied("no such port");
  };
  startServer(o);
  int fd = connectTo(server_->listenPort());
  auto ch = openStream(fd, caller_, target_.id(), "good", "echo", echo.port(), kTimeout);
  ASSERT_TRUE(ch.isOk()) << ch.status().toString();
  std::string data = randomBody(3 << 20);
  std::thread writer([&] {
    for (size_t off = 0; off < data.size(); off += 100000)
      ASSERT_TRUE(ch->send(std::string_view(data).substr(off, 100000)).isOk());
    ASSERT_TRUE(ch->send("").isOk());  // half-close
  });
  std::string got;
  for (;;) {
    auto m = ch->receive(kTimeout);
    ASSERT_TRUE(m.isOk()) << m.status().toString();
    if (m->empty()) break;
    got += *m;
  }
  writer.join();
  EXPECT_EQ(got.size(), data.size());
  EXPECT_TRUE(got == data);
  EXPECT_TRUE(server_->waitIdle(kTimeout));
}

TEST_F(PeerTest, StreamToAPortTheResolverRefusesIsDenied) {
  auto o = options();
  o.resolve_stream = [](std::string_view, int) {
    return Status::permissionDenied("service db exposes no port 22");
  };
  startServer(o);
  int fd = connectTo(server_->listenPort());
  auto ch = openStream(fd, caller_, target_.id(), "good", "db", 22, kTimeout);
  ASSERT_FALSE(ch.isOk());
  EXPECT_EQ(ch.status().code(), StatusCode::kPermissionDenied);
  EXPECT_NE(ch.status().message().find("service db exposes no port 22"), std::string::npos)
      << ch.status().message();
}

TEST_F(PeerTest, StreamsAreRefusedWithoutAResolver) {
  startServer(options());
  int fd = connectTo(server_->listenPort());
  auto ch = openStream(fd, caller_, target_.id(), "good", "db", 5432, kTimeout);
  ASSERT_FALSE(ch.isOk());
  EXPECT_EQ(ch.status().code(), StatusCode::kPermissionDenied);
  EXPECT_NE(ch.status().message().find("not enabled"), std::string::npos);
}

TEST_F(PeerTest, ListenRejectsABadAddress) {
  PeerServer s(target_, options());
  Status st = s.listen("localhost");
  EXPECT_EQ(st.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(st.message().find("host:port"), std::string::npos);
}

TEST(PeerChannelTest, OversizedMessageIsRefusedAndTheChannelStaysUsable) {
  auto a = *NodeIdentity::generate();
  auto b = *NodeIdentity::generate();
  int sp[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp), 0);
  Result<PeerChannel> server = Status::internal("not run");
  std::thread t([&] { server = PeerChannel::accept(sp[0], b, "", kTimeout); });
  auto client = PeerChannel::connect(sp[1], a, b.id(), kTimeout);
  t.join();
  ASSERT_TRUE(client.isOk()) << client.status().toString();
  ASSERT_TRUE(server.isOk()) << server.status().toString();
  EXPECT_EQ(server->peerId(), a.id());
  EXPECT_EQ(client->peerId(), b.id());
  EXPECT_EQ(client->send(std::string(kPeerMaxMessageBytes + 1, 'x')).code(),
            StatusCode::kInvalidArgument);
  ASSERT_TRUE(client->send("hello").isOk());
  ASSERT_TRUE(client->send("").isOk());
  EXPECT_EQ(*server->receive(kTimeout), "hello");
  EXPECT_EQ(*server->receive(kTimeout), "");
  auto none = server->receive(milliseconds(0));
  EXPECT_EQ(none.status().code(), StatusCode::kDeadlineExceeded);
  client->close();
  EXPECT_EQ(server->receive(kTimeout).status().code(), StatusCode::kUnavailable);
}

}  // namespace
}  // namespace edge::mesh
