// The proxy engine against real sockets on loopback: small upstreams written here (good,
// slow, garbage, resetting, huge-header, chunked, upgrade) and blocking clients.
#include "gateway/proxy.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <atomic>
#include <cstring>
#include <fstream>
#include <mutex>
#include <set>
#include <thread>

#include "gateway/static_router.h"

namespace edge::gateway {
namespace {

using namespace std::chrono_literals;

// ---- blocking socket helpers -----------------------------------------------------------

void setTimeouts(int fd, std::chrono::milliseconds t) {
  timeval tv{static_cast<time_t>(t.count() / 1000),
             static_cast<suseconds_t>(t.count() % 1000 * 1000)};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
}

int dialPort(uint16_t port) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(port);
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0) {
    close(fd);
    return -1;
  }
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  setTimeouts(fd, 10s);
  return fd;
}

bool sendAll(int fd, std::string_view data) {
  while (!data.empty()) {
    ssize_t n = send(fd, data.data(), data.size(), MSG_NOSIGNAL);
    if (n <= 0) return false;
    data.remove_prefix(static_cast<size_t>(n));
  }
  return true;
}

// Reads more bytes into *buf; false on EOF, error or timeout.
bool readMore(int fd, std::string* buf) {
  char tmp[65536];
  ssize_t n = recv(fd, tmp, sizeof tmp, 0);
  if (n <= 0) return false;
  buf->append(tmp, static_cast<size_t>(n));
  return true;
}

struct Message {
  bool ok = false;
  int status = 0;  // responses
  RequestHead request;
  ResponseHead response;
  std::string body;  // as on the wire (chunked stays chunked)
};

// Reads one message (request or response) from fd; *buf keeps bytes read past it.
Message readMessage(int fd, std::string* buf, bool response, std::string_view method = "GET") {
  Message m;
  HeadParser p(ParseLimits{1 << 20, 1000, 1 << 20});
  while (true) {
    HeadParser::State s =
        response ? p.parseResponse(*buf, &m.response) : p.parseRequest(*buf, &m.request);
    if (s == HeadParser::State::kError) return m;
    if (s == HeadParser::State::kDone) break;
    if (!readMore(fd, buf)) return m;
  }
  buf->erase(0, p.headBytes());
  Framing f;
  ParseError err;
  bool ok = response ? responseFraming(m.response, method, true, &f, &err)
                     : requestFraming(m.request, &f, &err);
  if (!ok) return m;
  m.status = m.response.status;
  if (f.kind == BodyKind::kLength) {
    while (buf->size() < f.length)
      if (!readMore(fd, buf)) return m;
    m.body = buf->substr(0, f.length);
    buf->erase(0, f.length);
  } else if (f.kind == BodyKind::kChunked) {
    ChunkedTracker t;
    size_t used = 0;
    while (true) {
      used += t.feed(buf->data() + used, buf->size() - used);
      if (t.done()) break;
      if (t.failed() || !readMore(fd, buf)) return m;
    }
    m.body = buf->substr(0, used);
    buf->erase(0, used);
  } else if (f.kind == BodyKind::kUntilClose) {
    while (readMore(fd, buf)) {
    }
    m.body = *buf;
    buf->clear();
  }
  m.ok = true;
  return m;
}

// A header's value, or "<missing>" (the test fails without crashing).
std::string hv(const std::string* value) {
  return value ? *value : "<missing>";
}

std::string response(int status, std::string_view body, std::string_view extra = "") {
  return "HTTP/1.1 " + std::to_string(status) +
         " X\r\nContent-Length: " + std::to_string(body.size()) + "\r\n" + std::string(extra) +
         "\r\n" + std::string(body);
}

// ---- test upstream: one thread per connection --------------------------------------------

class TestUpstream {
 public:
  using Handler = std::function<void(int fd)>;
  explicit TestUpstream(Handler h) : handler_(std::move(h)) {
    fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bind(fd_, reinterpret_cast<sockaddr*>(&sa), sizeof sa);
    listen(fd_, 128);
    socklen_t len = sizeof sa;
    getsockname(fd_, reinterpret_cast<sockaddr*>(&sa), &len);
    port_ = ntohs(sa.sin_port);
    accept_thread_ = std::thread([this] { acceptLoop(); });
  }
  ~TestUpstream() {
    stop_ = true;
    accept_thread_.join();
    close(fd_);
    std::lock_guard<std::mutex> lock(mu_);
    for (int fd : conns_) shutdown(fd, SHUT_RDWR);
    for (auto& t : threads_) t.join();
    for (int fd : conns_) close(fd);
  }
  std::string address() const { return "127.0.0.1:" + std::to_string(port_); }
  int connections() const { return accepted_.load(); }

 private:
  void acceptLoop() {
    while (!stop_) {
      pollfd p{fd_, POLLIN, 0};
      if (poll(&p, 1, 50) <= 0) continue;
      int c = accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (c < 0) continue;
      int one = 1;
      setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
      setTimeouts(c, 10s);
      ++accepted_;
      std::lock_guard<std::mutex> lock(mu_);
      conns_.push_back(c);
      threads_.emplace_back([this, c] { handler_(c); });
    }
  }
  Handler handler_;
  int fd_;
  uint16_t port_;
  std::atomic<bool> stop_{false};
  std::atomic<int> accepted_{0};
  std::thread accept_thread_;
  std::mutex mu_;
  std::vector<int> conns_;
  std::vector<std::thread> threads_;
};

// Answers every request with 200 and "path=<target>", recording what it received.
struct Recorder {
  std::mutex mu;
  std::vector<Message> requests;
  void add(const Message& m) {
    std::lock_guard<std::mutex> lock(mu);
    requests.push_back(m);
  }
  Message last() {
    std::lock_guard<std::mutex> lock(mu);
    return requests.empty() ? Message{} : requests.back();
  }
  size_t count() {
    std::lock_guard<std::mutex> lock(mu);
    return requests.size();
  }
};

TestUpstream::Handler goodHandler(Recorder* rec, std::string extra_headers = "") {
  return [rec, extra_headers](int fd) {
    std::string buf;
    while (true) {
      Message m = readMessage(fd, &buf, false);
      if (!m.ok) return;
      if (rec) rec->add(m);
      if (!sendAll(fd,
                   response(200, "path=" + m.request.target + " body=" + m.body, extra_headers)))
        return;
    }
  };
}

// ---- test router -------------------------------------------------------------------------

struct Record {
  std::mutex mu;
  std::vector<TryResult> tries;
  std::vector<FinishInfo> finished;
  std::vector<Caller> callers;
};

class TestExchange : public Exchange {
 public:
  TestExchange(std::vector<Target> targets, Record* rec, int max_retries, Duration per_try,
               std::vector<Header> set)
      : targets_(std::move(targets)),
        rec_(rec),
        max_retries_(max_retries),
        per_try_(per_try),
        set_(std::move(set)) {}
  std::optional<Target> nextTarget(int attempt) override {
    if (targets_.empty()) return std::nullopt;
    return targets_[static_cast<size_t>(attempt) % targets_.size()];
  }
  std::optional<Duration> tryDone(const TryResult& r, bool retry_possible) override {
    {
      std::lock_guard<std::mutex> lock(rec_->mu);
      rec_->tries.push_back(r);
    }
    bool failed = r.outcome != TryEnd::kResponse || r.status == 503;
    if (retry_possible && failed && retries_ < max_retries_) {
      ++retries_;
      return 1ms;
    }
    return std::nullopt;
  }
  int rejectStatus() const override { return 503; }
  std::string rejectReason() const override { return "no instance of the test service"; }
  Duration perTryTimeout() const override { return per_try_; }
  Duration deadline() const override { return 5s; }
  const std::vector<Header>& setHeaders() const override { return set_; }
  void finish(const FinishInfo& info) override {
    std::lock_guard<std::mutex> lock(rec_->mu);
    rec_->finished.push_back(info);
  }

 private:
  std::vector<Target> targets_;
  Record* rec_;
  int max_retries_;
  int retries_ = 0;
  Duration per_try_;
  std::vector<Header> set_;
};

class TestRouter : public Router {
 public:
  std::vector<Target> targets;
  int max_retries = 0;
  Duration per_try = 2s;
  std::vector<Header> set_headers;
  bool async = false;  // answer from another thread, later
  Record rec;

  void route(const RequestHead& head, const Caller& caller,
             std::function<void(Decision)> done) override {
    {
      std::lock_guard<std::mutex> lock(rec.mu);
      rec.callers.push_back(caller);
    }
    Decision d;
    if (head.path() == "/local") {
      d.status = 401;
      d.body = "{\"error\":\"token required\"}";
      d.headers.push_back({"WWW-Authenticate", "Bearer"});
    } else {
      d.exchange = std::make_unique<TestExchange>(targets, &rec, max_retries, per_try, set_headers);
    }
    if (!async) {
      done(std::move(d));
      return;
    }
    auto shared = std::make_shared<Decision>(std::move(d));
    std::thread([done, shared] {
      std::this_thread::sleep_for(20ms);  // an on-demand start or a token fetch
      done(std::move(*shared));
    }).detach();
  }
};

Target target(const std::string& address) {
  Target t;
  t.key = address;
  t.address = address;
  return t;
}

class ProxyTest : public testing::Test {
 protected:
  void start(ProxyOptions o = {}) {
    o.workers = o.workers == 0 ? 2 : o.workers;
    if (o.listen_tcp.empty()) o.listen_tcp = {"127.0.0.1:0"};
    auto s = ProxyServer::create(o, router_);
    ASSERT_TRUE(s.isOk()) << s.status().toString();
    server_ = std::move(s).value();
    ASSERT_TRUE(server_->start().isOk());
    port_ = server_->tcpPorts().at(0);
  }
  void TearDown() override {
    if (server_) server_->stop();
  }
  Message get(std::string_view request, std::string_view method = "GET") {
    int fd = dialPort(port_);
    EXPECT_GE(fd, 0);
    EXPECT_TRUE(sendAll(fd, request));
    std::string buf;
    Message m = readMessage(fd, &buf, true, method);
    close(fd);
    return m;
  }
  FinishInfo lastFinish() {
    // finish() runs on the worker after the response is written; wait for it briefly.
    for (int i = 0; i < 200; ++i) {
      {
        std::lock_guard<std::mutex> lock(router_.rec.mu);
        if (!router_.rec.finished.empty()) return router_.rec.finished.back();
      }
      std::this_thread::sleep_for(5ms);
    }
    return {};
  }

  TestRouter router_;
  ProxyServerPtr server_;
  uint16_t port_ = 0;
};

// ---- tests ----------------------------------------------------------------------------------

TEST_F(ProxyTest, KeepAliveBothSidesWithForwardingHeaders) {
  Recorder rec;
  TestUpstream up(goodHandler(&rec));
  router_.targets = {target(up.address())};
  router_.set_headers = {{"X-Edge-Token", "t1"}, {"X-Remove-Me", ""}};
  start();
  int fd = dialPort(port_);
  std::string buf;
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(sendAll(
        fd, "GET /a/" + std::to_string(i) +
                " HTTP/1.1\r\nHost: svc.example\r\nConnection: keep-alive, X-Hop\r\n"
                "X-Hop: 1\r\nKeep-Alive: 5\r\nTE: trailers\r\nX-Forwarded-For: 198.18.0.9\r\n"
                "X-Remove-Me: x\r\nX-Edge-Token: forged\r\nX-End: ok\r\n\r\n"));
    Message m = readMessage(fd, &buf, true);
    ASSERT_TRUE(m.ok);
    EXPECT_EQ(m.status, 200);
    EXPECT_EQ(m.body, "path=/a/" + std::to_string(i) + " body=");
  }
  close(fd);
  EXPECT_EQ(up.connections(), 1);  // one pooled upstream connection carried all three
  Message seen = rec.last();
  const RequestHead& h = seen.request;
  EXPECT_EQ(hv(h.find("host")), "svc.example");
  EXPECT_EQ(hv(h.find("x-forwarded-for")), "198.18.0.9, 127.0.0.1");
  EXPECT_EQ(hv(h.find("x-forwarded-proto")), "http");
  EXPECT_EQ(hv(h.find("via")), "1.1 edge-gateway");
  EXPECT_EQ(hv(h.find("x-edge-token")), "t1");
  EXPECT_EQ(hv(h.find("x-end")), "ok");
  for (const char* gone : {"connection", "x-hop", "keep-alive", "te", "x-remove-me"})
    EXPECT_EQ(h.find(gone), nullptr) << gone;
  FinishInfo f = lastFinish();
  EXPECT_EQ(f.status, 200);
  EXPECT_EQ(f.tries, 1);
  EXPECT_EQ(f.upstream, up.address());
  ProxyCounters c = server_->counters();
  EXPECT_EQ(c.requests, 3u);
  EXPECT_GE(c.upstream_reused, 2u);
  std::lock_guard<std::mutex> lock(router_.rec.mu);
  EXPECT_EQ(router_.rec.callers.at(0).kind, Caller::Kind::kLocal);
}

TEST_F(ProxyTest, PipelinedRequestsAreAnsweredInOrder) {
  TestUpstream up(goodHandler(nullptr));
  router_.targets = {target(up.address())};
  start();
  int fd = dialPort(port_);
  std::string batch;
  for (int i = 0; i < 20; ++i)
    batch += "GET /p" + std::to_string(i) + " HTTP/1.1\r\nHost: h\r\n\r\n";
  batch += "POST /p20 HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhello";
  batch += "GET /local HTTP/1.1\r\nHost: h\r\n\r\n";
  ASSERT_TRUE(sendAll(fd, batch));
  std::string buf;
  for (int i = 0; i <= 20; ++i) {
    Message m = readMessage(fd, &buf, true);
    ASSERT_TRUE(m.ok) << i;
    EXPECT_EQ(m.body, "path=/p" + std::to_string(i) + " body=" + (i == 20 ? "hello" : ""));
  }
  Message local = readMessage(fd, &buf, true);
  EXPECT_EQ(local.status, 401);
  EXPECT_EQ(hv(local.response.find("www-authenticate")), "Bearer");
  EXPECT_EQ(local.body, "{\"error\":\"token required\"}");
  close(fd);
}

TEST_F(ProxyTest, Http10ClientGetsItsAnswerAndTheConnectionCloses) {
  TestUpstream up(goodHandler(nullptr));
  router_.targets = {target(up.address())};
  start();
  int fd = dialPort(port_);
  ASSERT_TRUE(sendAll(fd, "GET /old HTTP/1.0\r\n\r\n"));
  std::string buf;
  Message m = readMessage(fd, &buf, true);
  ASSERT_TRUE(m.ok);
  EXPECT_EQ(m.body, "path=/old body=");
  EXPECT_FALSE(readMore(fd, &buf));  // closed
  close(fd);
}

TEST_F(ProxyTest, AsyncRoutingDecisionIsServed) {
  TestUpstream up(goodHandler(nullptr));
  router_.targets = {target(up.address())};
  router_.async = true;
  start();
  Message m = get("GET /slow-route HTTP/1.1\r\nHost: h\r\n\r\n");
  ASSERT_TRUE(m.ok);
  EXPECT_EQ(m.body, "path=/slow-route body=");
}

TEST_F(ProxyTest, ChunkedBodiesPassVerbatimBothWays) {
  const std::string chunked_req = "4;ext=1\r\nabcd\r\n3\r\nxyz\r\n0\r\nX-Trailer: t\r\n\r\n";
  const std::string chunked_resp = "5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n";
  Recorder rec;
  TestUpstream up([&](int fd) {
    std::string buf;
    while (true) {
      Message m = readMessage(fd, &buf, false);
      if (!m.ok) return;
      rec.add(m);
      if (!sendAll(fd, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + chunked_resp))
        return;
    }
  });
  router_.targets = {target(up.address())};
  start();
  int fd = dialPort(port_);
  std::string buf;
  for (int i = 0; i < 2; ++i) {
    ASSERT_TRUE(sendAll(
        fd, "POST /c HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n" + chunked_req));
    Message m = readMessage(fd, &buf, true);
    ASSERT_TRUE(m.ok);
    EXPECT_EQ(hv(m.response.find("transfer-encoding")), "chunked");
    EXPECT_EQ(m.body, chunked_resp);
    EXPECT_EQ(rec.last().body, chunked_req);
  }
  close(fd);
}

TEST_F(ProxyTest, ExpectContinueIsAnsweredByTheGateway) {
  Recorder rec;
  TestUpstream up(goodHandler(&rec));
  router_.targets = {target(up.address())};
  start();
  int fd = dialPort(port_);
  ASSERT_TRUE(sendAll(fd,
                      "PUT /e HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\n"
                      "Content-Length: 4\r\n\r\n"));
  std::string buf;
  while (buf.find("\r\n\r\n") == std::string::npos) ASSERT_TRUE(readMore(fd, &buf));
  EXPECT_EQ(buf.substr(0, 25), "HTTP/1.1 100 Continue\r\n\r\n");
  buf.erase(0, 25);
  ASSERT_TRUE(sendAll(fd, "data"));
  Message m = readMessage(fd, &buf, true);
  ASSERT_TRUE(m.ok);
  EXPECT_EQ(m.body, "path=/e body=data");
  EXPECT_EQ(rec.last().request.find("expect"), nullptr);
  close(fd);
}

TEST_F(ProxyTest, UpgradeBecomesATunnel) {
  TestUpstream up([](int fd) {
    std::string buf;
    Message m = readMessage(fd, &buf, false);
    if (!m.ok || m.request.find("upgrade") == nullptr) return;
    sendAll(fd,
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n"
            "server-hello");
    // Echo in upper case until the client closes.
    while (true) {
      std::string in;
      if (!buf.empty())
        in.swap(buf);
      else if (!readMore(fd, &in))
        break;
      for (char& c : in) c = static_cast<char>(toupper(c));
      if (!sendAll(fd, in)) break;
    }
    shutdown(fd, SHUT_WR);
  });
  router_.targets = {target(up.address())};
  start();
  int fd = dialPort(port_);
  ASSERT_TRUE(sendAll(
      fd, "GET /ws HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n"));
  std::string buf;
  Message m = readMessage(fd, &buf, true);
  ASSERT_TRUE(m.ok);
  EXPECT_EQ(m.status, 101);
  EXPECT_EQ(hv(m.response.find("upgrade")), "websocket");
  while (buf.size() < 12) ASSERT_TRUE(readMore(fd, &buf));
  EXPECT_EQ(buf, "server-hello");
  buf.clear();
  ASSERT_TRUE(sendAll(fd, "ping over the tunnel"));
  while (buf.size() < 20) ASSERT_TRUE(readMore(fd, &buf));
  EXPECT_EQ(buf, "PING OVER THE TUNNEL");
  shutdown(fd, SHUT_WR);
  buf.clear();
  EXPECT_FALSE(readMore(fd, &buf));  // the upstream's close reaches us
  close(fd);
  EXPECT_EQ(server_->counters().tunnels, 1u);
}

TEST_F(ProxyTest, UpstreamFailuresAreTheGatewaysOwnJsonErrors) {
  // Refused: a port nobody listens on.
  int probe = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bind(probe, reinterpret_cast<sockaddr*>(&sa), sizeof sa);
  socklen_t len = sizeof sa;
  getsockname(probe, reinterpret_cast<sockaddr*>(&sa), &len);
  std::string dead = "127.0.0.1:" + std::to_string(ntohs(sa.sin_port));
  close(probe);

  TestUpstream garbage([](int fd) {
    std::string buf;
    readMessage(fd, &buf, false);
    sendAll(fd, "SSH-2.0-OpenSSH_9.2\r\n\r\n");
  });
  TestUpstream huge([](int fd) {
    std::string buf;
    readMessage(fd, &buf, false);
    std::string head = "HTTP/1.1 200 OK\r\n";
    for (int i = 0; i < 100; ++i)
      head += "X-Big-" + std::to_string(i) + ": " + std::string(1000, 'b') + "\r\n";
    sendAll(fd, head);
  });
  TestUpstream reset([](int fd) {
    std::string buf;
    readMessage(fd, &buf, false);
    linger l{1, 0};
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof l);
    shutdown(fd, SHUT_RDWR);  // RST
  });
  TestUpstream slow([](int fd) {
    std::string buf;
    readMessage(fd, &buf, false);
    readMore(fd, &buf);  // never answers; returns when the gateway gives up
  });
  router_.per_try = 300ms;
  start();
  struct Case {
    std::string address;
    int status;
    std::string error_part;
  };
  for (const Case& c : {Case{dead, 502, "connect to " + dead + " failed"},
                        Case{garbage.address(), 502, "bad response from upstream"},
                        Case{huge.address(), 502, "head is larger than"},
                        Case{reset.address(), 502, "upstream closed the connection"},
                        Case{slow.address(), 504, "per-try timeout of 300 ms"}}) {
    router_.targets = {target(c.address)};
    Message m = get("GET /x HTTP/1.1\r\nHost: h\r\n\r\n");
    ASSERT_TRUE(m.ok) << c.address;
    EXPECT_EQ(m.status, c.status) << m.body;
    EXPECT_EQ(hv(m.response.find("content-type")), "application/json");
    EXPECT_NE(m.body.find("\"error\":\""), std::string::npos) << m.body;
    EXPECT_NE(m.body.find(c.error_part), std::string::npos) << m.body;
    EXPECT_NE(m.body.find("\"upstream\":\"" + c.address + "\""), std::string::npos) << m.body;
  }
  router_.targets = {};
  Message m = get("GET /x HTTP/1.1\r\nHost: h\r\n\r\n");
  EXPECT_EQ(m.status, 503);
  EXPECT_EQ(m.body, "{\"error\":\"no instance of the test service\"}\n");
  // The gateway still serves after all that.
  TestUpstream good(goodHandler(nullptr));
  router_.targets = {target(good.address())};
  EXPECT_EQ(get("GET /ok HTTP/1.1\r\nHost: h\r\n\r\n").status, 200);
}

TEST_F(ProxyTest, RetriesFollowTheExchangeAndSeeEveryTry) {
  TestUpstream unavailable([](int fd) {
    std::string buf;
    while (readMessage(fd, &buf, false).ok)
      if (!sendAll(fd, response(503, "{}"))) return;
  });
  TestUpstream good(goodHandler(nullptr));
  router_.targets = {target(unavailable.address()), target(good.address())};
  router_.max_retries = 1;
  start();
  Message m = get("GET /r HTTP/1.1\r\nHost: h\r\n\r\n");
  ASSERT_TRUE(m.ok);
  EXPECT_EQ(m.status, 200);
  FinishInfo f = lastFinish();
  EXPECT_EQ(f.tries, 2);
  EXPECT_EQ(f.upstream, good.address());
  std::lock_guard<std::mutex> lock(router_.rec.mu);
  ASSERT_EQ(router_.rec.tries.size(), 2u);
  EXPECT_EQ(router_.rec.tries[0].status, 503);
  EXPECT_EQ(router_.rec.tries[1].status, 200);
}

TEST_F(ProxyTest, DeadPooledConnectionIsReplacedForFree) {
  // Answers one request per connection and closes when the next one arrives: the
  // keep-alive race, as the gateway sees it when the upstream's idle timeout fires just
  // as a pooled connection is reused.
  TestUpstream up([](int fd) {
    std::string buf;
    Message m = readMessage(fd, &buf, false);
    if (m.ok) sendAll(fd, response(200, "once"));
    readMessage(fd, &buf, false);
    shutdown(fd, SHUT_RDWR);
  });
  router_.targets = {target(up.address())};
  ProxyOptions o;
  o.workers = 1;
  start(o);
  int fd = dialPort(port_);
  std::string buf;
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(sendAll(fd, "GET /k HTTP/1.1\r\nHost: h\r\n\r\n"));
    Message m = readMessage(fd, &buf, true);
    ASSERT_TRUE(m.ok) << i;
    EXPECT_EQ(m.status, 200);
  }
  close(fd);
  EXPECT_GE(server_->counters().upstream_stale, 1u);
  std::lock_guard<std::mutex> lock(router_.rec.mu);
  for (const TryResult& t : router_.rec.tries) EXPECT_EQ(t.outcome, TryEnd::kResponse);
  EXPECT_EQ(router_.rec.tries.size(), 3u);
}

TEST_F(ProxyTest, BadRequestsGetClearErrors) {
  TestUpstream up(goodHandler(nullptr));
  router_.targets = {target(up.address())};
  ProxyOptions o;
  o.limits.max_target = 200;
  o.limits.max_head_bytes = 4096;
  o.max_request_body = 1000;
  start(o);
  struct Case {
    std::string request;
    int status;
  };
  for (const Case& c :
       {Case{"GARBAGE\r\n\r\n", 400}, Case{"GET http://evil/ HTTP/1.1\r\nHost: h\r\n\r\n", 400},
        Case{"GET /" + std::string(300, 'a') + " HTTP/1.1\r\nHost: h\r\n\r\n", 414},
        Case{"GET / HTTP/1.1\r\nHost: h\r\nX: " + std::string(5000, 'a') + "\r\n\r\n", 431},
        Case{"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\n"
             "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
             400},
        Case{"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5000\r\n\r\n", 413}}) {
    Message m = get(c.request);
    ASSERT_TRUE(m.ok) << c.request.substr(0, 40);
    EXPECT_EQ(m.status, c.status) << m.body;
    EXPECT_EQ(hv(m.response.find("connection")), "close");
    EXPECT_NE(m.body.find("{\"error\":"), std::string::npos);
  }
  EXPECT_EQ(up.connections(), 0);  // none of them reached the upstream
}

TEST_F(ProxyTest, SlowlorisGets408AndOthersAreServedMeanwhile) {
  TestUpstream up(goodHandler(nullptr));
  router_.targets = {target(up.address())};
  ProxyOptions o;
  o.workers = 1;  // the slow client and the others share the one loop
  o.header_timeout = 400ms;
  start(o);
  int slow = dialPort(port_);
  ASSERT_TRUE(sendAll(slow, "GET / HTTP/1.1\r\nHost: h\r\nX-Slow: "));
  auto begin = std::chrono::steady_clock::now();
  for (int i = 0; i < 5; ++i) EXPECT_EQ(get("GET / HTTP/1.1\r\nHost: h\r\n\r\n").status, 200);
  EXPECT_LT(std::chrono::steady_clock::now() - begin, 400ms);
  std::string buf;
  Message m = readMessage(slow, &buf, true);
  ASSERT_TRUE(m.ok);
  EXPECT_EQ(m.status, 408);
  EXPECT_NE(m.body.find("request head not received within 400 ms"), std::string::npos);
  close(slow);
}

TEST_F(ProxyTest, LargeBodiesStreamWithoutGrowingMemory) {
  constexpr uint64_t kSize = 100ull << 20;
  // Sink: counts the upload, then answers with a 100 MiB download.
  TestUpstream up([](int fd) {
    std::string buf;
    HeadParser p;
    RequestHead h;
    while (p.parseRequest(buf, &h) == HeadParser::State::kNeedMore)
      if (!readMore(fd, &buf)) return;
    uint64_t got = buf.size() - p.headBytes();
    std::vector<char> tmp(1 << 16);
    while (got < kSize) {
      ssize_t n = recv(fd, tmp.data(), tmp.size(), 0);
      if (n <= 0) return;
      got += static_cast<uint64_t>(n);
    }
    sendAll(fd, "HTTP/1.1 200 OK\r\nContent-Length: " + std::to_string(kSize) + "\r\n\r\n");
    std::string chunk(1 << 16, 'd');
    for (uint64_t sent = 0; sent < kSize; sent += chunk.size())
      if (!sendAll(fd, chunk)) return;
  });
  router_.targets = {target(up.address())};
  start();
  auto rssKib = [] {
    std::ifstream f("/proc/self/status");
    std::string line;
    while (std::getline(f, line))
      if (line.rfind("VmRSS:", 0) == 0) return std::stol(line.substr(6));
    return 0L;
  };
  int fd = dialPort(port_);
  ASSERT_TRUE(sendAll(
      fd, "POST /up HTTP/1.1\r\nHost: h\r\nContent-Length: " + std::to_string(kSize) + "\r\n\r\n"));
  long before = rssKib();
  std::string chunk(1 << 16, 'u');
  for (uint64_t sent = 0; sent < kSize; sent += chunk.size()) ASSERT_TRUE(sendAll(fd, chunk));
  std::string buf;
  HeadParser p;
  ResponseHead h;
  while (p.parseResponse(buf, &h) == HeadParser::State::kNeedMore) ASSERT_TRUE(readMore(fd, &buf));
  EXPECT_EQ(h.status, 200);
  uint64_t got = buf.size() - p.headBytes();
  std::vector<char> tmp(1 << 16);
  while (got < kSize) {
    ssize_t n = recv(fd, tmp.data(), tmp.size(), 0);
    ASSERT_GT(n, 0);
    got += static_cast<uint64_t>(n);
  }
  long after = rssKib();
  close(fd);
  EXPECT_EQ(got, kSize);
  // The whole test process (gateway, upstream and client) grows by a few MiB at most.
  EXPECT_LT(after - before, 8 * 1024) << "RSS grew from " << before << " to " << after << " KiB";
}

TEST_F(ProxyTest, StaticRouterRoundRobinsAndRetriesConnectFailures) {
  TestUpstream a(goodHandler(nullptr, "X-Who: a\r\n"));
  TestUpstream b(goodHandler(nullptr, "X-Who: b\r\n"));
  auto r1 = StaticRouter::parseRoute("/api=" + a.address() + "," + b.address());
  ASSERT_TRUE(r1.isOk());
  EXPECT_FALSE(StaticRouter::parseRoute("api=1.2.3.4:5").isOk());
  EXPECT_FALSE(StaticRouter::parseRoute("/x=1.2.3.4").isOk());
  // A dead upstream first: idempotent requests go on to the next one.
  int probe = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bind(probe, reinterpret_cast<sockaddr*>(&sa), sizeof sa);
  socklen_t len = sizeof sa;
  getsockname(probe, reinterpret_cast<sockaddr*>(&sa), &len);
  std::string dead = "127.0.0.1:" + std::to_string(ntohs(sa.sin_port));
  close(probe);
  auto r2 = StaticRouter::parseRoute("/r=" + dead + "," + a.address());
  ASSERT_TRUE(r2.isOk());
  auto router = StaticRouter::create({*r1, *r2});
  ASSERT_TRUE(router.isOk());
  ProxyOptions o;
  o.workers = 1;
  o.listen_tcp = {"127.0.0.1:0"};
  auto server = ProxyServer::create(o, **router);
  ASSERT_TRUE(server.isOk());
  ASSERT_TRUE((*server)->start().isOk());
  port_ = (*server)->tcpPorts()[0];
  std::set<std::string> who;
  for (int i = 0; i < 4; ++i) {
    Message m = get("GET /api/v HTTP/1.1\r\nHost: h\r\n\r\n");
    ASSERT_EQ(m.status, 200);
    who.insert(hv(m.response.find("x-who")));
  }
  EXPECT_EQ(who.size(), 2u);
  EXPECT_EQ(get("GET /apix HTTP/1.1\r\nHost: h\r\n\r\n").status, 404);
  for (int i = 0; i < 4; ++i) EXPECT_EQ(get("GET /r/x HTTP/1.1\r\nHost: h\r\n\r\n").status, 200);
  // Not retried: a POST whose try may have reached the dead upstream.
  int failed = 0;
  for (int i = 0; i < 4; ++i)
    failed +=
        get("POST /r/x HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n", "POST").status == 502;
  EXPECT_EQ(failed, 2);
  (*server)->stop();
}

TEST_F(ProxyTest, UnixSocketAndAdoptedConnections) {
  TestUpstream up(goodHandler(nullptr));
  router_.targets = {target(up.address())};
  ProxyOptions o;
  std::string path = "/tmp/edge-proxy-test-" + std::to_string(getpid()) + ".sock";
  o.listen_unix = {path};
  start(o);
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un sa{};
  sa.sun_family = AF_UNIX;
  std::strncpy(sa.sun_path, path.c_str(), sizeof sa.sun_path - 1);
  ASSERT_EQ(connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa), 0);
  setTimeouts(fd, 5s);
  ASSERT_TRUE(sendAll(fd, "GET /u HTTP/1.1\r\nHost: h\r\n\r\n"));
  std::string buf;
  Message m = readMessage(fd, &buf, true);
  close(fd);
  EXPECT_EQ(m.body, "path=/u body=");
  {
    std::lock_guard<std::mutex> lock(router_.rec.mu);
    EXPECT_EQ(router_.rec.callers.back().address, "unix");
  }
  // A connection handed over with the bytes a demultiplexer already read.
  int pair[2];
  ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair), 0);
  setTimeouts(pair[0], 5s);
  server_->adopt(pair[1], "GET /adopted HTTP/1.1\r\n", false, "198.18.0.7:4000");
  ASSERT_TRUE(sendAll(pair[0], "Host: h\r\n\r\n"));
  buf.clear();
  m = readMessage(pair[0], &buf, true);
  close(pair[0]);
  EXPECT_EQ(m.body, "path=/adopted body=");
  std::lock_guard<std::mutex> lock(router_.rec.mu);
  EXPECT_EQ(router_.rec.callers.back().address, "198.18.0.7:4000");
}

// Stands in for gateway/node_tls: no encryption, but a handshake that can fail and a peer
// node id, which is what the engine's TLS plumbing depends on.
class FakeTlsTransport : public Transport {
 public:
  FakeTlsTransport(TransportPtr inner, std::string peer, bool fail)
      : inner_(std::move(inner)), peer_(std::move(peer)), fail_(fail) {}
  int fd() const override { return inner_->fd(); }
  IoResult handshake() override {
    if (fail_) return IoResult::failed("peer certificate is node 1f, expected " + peer_);
    return IoResult::ok(0);
  }
  IoResult read(char* buf, size_t len) override { return inner_->read(buf, len); }
  IoResult write(const char* buf, size_t len) override { return inner_->write(buf, len); }
  IoResult shutdownWrite() override { return inner_->shutdownWrite(); }
  bool hasBufferedInput() const override { return inner_->hasBufferedInput(); }
  const std::string& peerNodeId() const override { return peer_; }

 private:
  TransportPtr inner_;
  std::string peer_;
  bool fail_;
};

TEST_F(ProxyTest, TlsFactoriesIdentifyNodesAndRefuseWrongOnes) {
  Recorder rec;
  TestUpstream up(goodHandler(&rec));
  Target good = target(up.address());
  good.tls_node_id = "9a-good";
  Target bad = target(up.address());
  bad.tls_node_id = "9a-bad";
  ProxyOptions o;
  o.tls_server = [](int fd, std::string already_read) -> Result<TransportPtr> {
    return TransportPtr(std::make_unique<FakeTlsTransport>(
        makePlainTransport(fd, std::move(already_read)), "node-a", false));
  };
  o.tls_client = [](int fd, const std::string& node_id) -> Result<TransportPtr> {
    return TransportPtr(
        std::make_unique<FakeTlsTransport>(makePlainTransport(fd), node_id, node_id == "9a-bad"));
  };
  start(o);
  int pair[2];
  ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair), 0);
  setTimeouts(pair[0], 5s);
  router_.targets = {good};
  server_->adopt(pair[1], "", true, "198.18.0.9:5000");
  ASSERT_TRUE(sendAll(pair[0], "GET /n HTTP/1.1\r\nHost: h\r\nX-Forwarded-Proto: h2c\r\n\r\n"));
  std::string buf;
  Message m = readMessage(pair[0], &buf, true);
  EXPECT_EQ(m.status, 200);
  // A peer gateway forwards its caller's scheme.
  EXPECT_EQ(hv(rec.last().request.find("x-forwarded-proto")), "h2c");
  router_.targets = {bad};
  ASSERT_TRUE(sendAll(pair[0], "GET /n HTTP/1.1\r\nHost: h\r\n\r\n"));
  m = readMessage(pair[0], &buf, true);
  close(pair[0]);
  EXPECT_EQ(m.status, 502);
  EXPECT_NE(m.body.find("expected 9a-bad"), std::string::npos) << m.body;
  std::lock_guard<std::mutex> lock(router_.rec.mu);
  EXPECT_EQ(router_.rec.callers.at(0).kind, Caller::Kind::kNode);
  EXPECT_EQ(router_.rec.callers.at(0).node_id, "node-a");
  EXPECT_EQ(router_.rec.callers.at(0).address, "198.18.0.9:5000");
}

TEST_F(ProxyTest, StopLetsInFlightRequestsFinish) {
  TestUpstream up([](int fd) {
    std::string buf;
    if (!readMessage(fd, &buf, false).ok) return;
    std::this_thread::sleep_for(200ms);  // the response is in flight while stop() runs
    sendAll(fd, response(200, "late"));
  });
  router_.targets = {target(up.address())};
  start();
  int fd = dialPort(port_);
  ASSERT_TRUE(sendAll(fd, "GET /slow HTTP/1.1\r\nHost: h\r\n\r\n"));
  std::this_thread::sleep_for(50ms);  // the request reaches the upstream
  std::thread stopper([&] { server_->stop(); });
  std::string buf;
  Message m = readMessage(fd, &buf, true);
  close(fd);
  stopper.join();
  EXPECT_EQ(m.status, 200);
  EXPECT_EQ(m.body, "late");
  EXPECT_EQ(hv(m.response.find("connection")), "close");
  EXPECT_LT(dialPort(port_), 0);  // no longer listening
}

TEST(ProxyOptionsTest, BadOptionsAreRefused) {
  TestRouter router;
  ProxyOptions o;
  o.workers = 0;
  auto s = ProxyServer::create(o, router);
  ASSERT_FALSE(s.isOk());
  EXPECT_NE(s.status().message().find("workers"), std::string::npos);
  o.workers = 1;
  o.listen_tcp = {"localhost-ish:80"};
  s = ProxyServer::create(o, router);
  ASSERT_FALSE(s.isOk());
  EXPECT_NE(s.status().message().find("listen_tcp"), std::string::npos);
}

}  // namespace
}  // namespace edge::gateway
