// The reverse-proxy engine. One Worker per thread owns an EventLoop, its listeners, its
// client Sessions and its upstream connections (Upstream) with their keep-alive pools.
//
// Every socket is registered once, edge-triggered, for EPOLLIN|EPOLLOUT|EPOLLRDHUP and
// never modified again (no epoll_ctl per request): readiness is remembered in IoFlags
// and each event runs Session::drive(), which makes all the progress it can in both
// directions and stops when nothing moves. Back-pressure: a side is read only while the
// bytes waiting for the other side stay under max_pending_bytes.
#include "gateway/proxy.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <mutex>
#include <thread>
#include <unordered_map>

#include "common/log.h"
#include "common/net.h"
#include "gateway/event_loop.h"

namespace edge::gateway {

std::string_view tryEndName(TryEnd o) {
  switch (o) {
    case TryEnd::kResponse:
      return "response";
    case TryEnd::kConnectFailed:
      return "connect_failed";
    case TryEnd::kReset:
      return "reset";
    case TryEnd::kTimeout:
      return "timeout";
    case TryEnd::kBadResponse:
      return "bad_response";
  }
  return "unknown";
}

namespace {

using std::chrono::milliseconds;
constexpr uint32_t kEvents = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET;
constexpr size_t kReadChunk = 16 * 1024;
constexpr milliseconds kLinger{2000};

// Single-writer counters: the worker thread stores, counters() loads; no RMW needed.
void bump(std::atomic<uint64_t>& a, uint64_t n = 1) {
  a.store(a.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
}

// Bytes with a consumed prefix; the storage is reused for the connection's life.
class Buffer {
 public:
  const char* data() const { return buf_.data() + start_; }
  size_t size() const { return end_ - start_; }
  bool empty() const { return end_ == start_; }
  std::string_view view() const { return {data(), size()}; }
  void consume(size_t n) {
    start_ += n;
    if (start_ == end_) start_ = end_ = 0;
  }
  char* prepare(size_t min) {
    if (buf_.size() - end_ < min) {
      if (start_ > 0) {
        std::memmove(buf_.data(), buf_.data() + start_, end_ - start_);
        end_ -= start_;
        start_ = 0;
      }
      if (buf_.size() - end_ < min) buf_.resize(std::max(buf_.size() * 2, end_ + min));
    }
    return buf_.data() + end_;
  }
  size_t room() const { return buf_.size() - end_; }
  void commit(size_t n) { end_ += n; }
  void append(const char* p, size_t n) {
    if (n == 0) return;
    std::memcpy(prepare(n), p, n);
    commit(n);
  }
  void append(std::string_view s) { append(s.data(), s.size()); }
  void clear() { start_ = end_ = 0; }
  // Gives memory back while a connection idles (keep-alive) after a big transfer.
  void trim() {
    if (empty() && buf_.size() > 2 * kReadChunk) std::vector<char>().swap(buf_);
  }

 private:
  std::vector<char> buf_;
  size_t start_ = 0, end_ = 0;
};

// Edge-triggered readiness as last seen, including TLS's cross-wants (a read that must
// wait for EPOLLOUT and the other way round).
struct IoFlags {
  bool readable = true, writable = true;
  bool read_wants_out = false, write_wants_in = false;
  // A short read from a plain socket drained it (edge-triggered: new bytes bring a new
  // event), which saves the read that would only say EAGAIN; not once the peer closed,
  // since its FIN brings no further event, nor for TLS, whose records stay in the socket.
  bool short_read_drains = false;

  void onEvents(uint32_t ev) {
    if (ev & (EPOLLRDHUP | EPOLLHUP | EPOLLERR)) short_read_drains = false;
    if (ev & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) {
      readable = true;
      if (write_wants_in) writable = true, write_wants_in = false;
    }
    if (ev & (EPOLLOUT | EPOLLHUP | EPOLLERR)) {
      writable = true;
      if (read_wants_out) readable = true, read_wants_out = false;
    }
  }
  void afterRead(size_t got, size_t asked) {
    if (short_read_drains && got < asked) readable = false;
  }
  void readBlocked(const IoResult& r) {
    readable = false;
    if (r.kind == IoResult::Kind::kWantWrite) read_wants_out = true;
  }
  void writeBlocked(const IoResult& r) {
    writable = false;
    if (r.kind == IoResult::Kind::kWantRead) write_wants_in = true;
  }
};

std::string jsonEscape(std::string_view s) {
  std::string out;
  out.reserve(s.size() + 8);
  for (unsigned char c : s) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (c < 0x20 || c >= 0x7f) {
          // Non-ASCII is escaped byte-wise so the body is valid JSON whatever came in.
          static const char* kHex = "0123456789abcdef";
          out += "\\u00";
          out += kHex[c >> 4];
          out += kHex[c & 15];
        } else {
          out += static_cast<char>(c);
        }
    }
  }
  return out;
}

std::string errorBody(std::string_view error, std::string_view upstream) {
  std::string body = "{\"error\":\"" + jsonEscape(error) + "\"";
  if (!upstream.empty()) body += ",\"upstream\":\"" + jsonEscape(upstream) + "\"";
  body += "}\n";
  return body;
}

std::string millisText(Duration d) {
  return std::to_string(std::chrono::duration_cast<milliseconds>(d).count()) + " ms";
}

bool isLoopback(const sockaddr_storage& ss) {
  if (ss.ss_family == AF_INET) {
    auto* in = reinterpret_cast<const sockaddr_in*>(&ss);
    return (ntohl(in->sin_addr.s_addr) >> 24) == 127;
  }
  if (ss.ss_family == AF_INET6) {
    auto* in6 = reinterpret_cast<const sockaddr_in6*>(&ss);
    if (IN6_IS_ADDR_LOOPBACK(&in6->sin6_addr)) return true;
    if (IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr)) return in6->sin6_addr.s6_addr[12] == 127;
  }
  return false;
}

std::string addressText(const sockaddr_storage& ss, std::string* ip_only) {
  char ip[INET6_ADDRSTRLEN] = "";
  int port = 0;
  if (ss.ss_family == AF_INET) {
    auto* in = reinterpret_cast<const sockaddr_in*>(&ss);
    inet_ntop(AF_INET, &in->sin_addr, ip, sizeof ip);
    port = ntohs(in->sin_port);
  } else if (ss.ss_family == AF_INET6) {
    auto* in6 = reinterpret_cast<const sockaddr_in6*>(&ss);
    inet_ntop(AF_INET6, &in6->sin6_addr, ip, sizeof ip);
    port = ntohs(in6->sin6_port);
    if (ip_only) *ip_only = ip;
    return "[" + std::string(ip) + "]:" + std::to_string(port);
  } else {
    if (ip_only) *ip_only = "";
    return "unix";
  }
  if (ip_only) *ip_only = ip;
  return std::string(ip) + ":" + std::to_string(port);
}

// Parses a numeric "a.b.c.d:port" or "[v6]:port"; false for host names.
bool numericAddress(const std::string& text, sockaddr_storage* ss, socklen_t* len) {
  std::string host;
  int port = 0;
  if (!net::splitHostPort(text, &host, &port)) return false;
  if (host.size() > 2 && host.front() == '[' && host.back() == ']')
    host = host.substr(1, host.size() - 2);
  if (host == "localhost") host = "127.0.0.1";
  std::memset(ss, 0, sizeof *ss);
  auto* in = reinterpret_cast<sockaddr_in*>(ss);
  if (inet_pton(AF_INET, host.c_str(), &in->sin_addr) == 1) {
    in->sin_family = AF_INET;
    in->sin_port = htons(static_cast<uint16_t>(port));
    *len = sizeof(sockaddr_in);
    return true;
  }
  auto* in6 = reinterpret_cast<sockaddr_in6*>(ss);
  if (inet_pton(AF_INET6, host.c_str(), &in6->sin6_addr) == 1) {
    in6->sin6_family = AF_INET6;
    in6->sin6_port = htons(static_cast<uint16_t>(port));
    *len = sizeof(sockaddr_in6);
    return true;
  }
  return false;
}

struct WorkerCounters {
  std::atomic<uint64_t> connections_accepted{0}, connections_active{0}, requests{0},
      local_replies{0}, bad_requests{0}, bytes_in{0}, bytes_out{0}, upstream_connects{0},
      upstream_reused{0}, upstream_stale{0}, connect_failures{0}, resets{0}, timeouts{0},
      bad_responses{0}, retries{0}, tunnels{0};
};

class ProxyImpl;
class Worker;
class Session;

// Runs blocking dials (Target::dial, host names) off the loops.
class DialPool {
 public:
  explicit DialPool(int threads) : threads_wanted_(std::max(1, threads)) {}
  ~DialPool() { shutdown(); }
  void run(std::function<void()> job) {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopped_) return;
    if (threads_.empty()) {
      for (int i = 0; i < threads_wanted_; ++i) threads_.emplace_back([this] { loop(); });
    }
    jobs_.push_back(std::move(job));
    cv_.notify_one();
  }
  void shutdown() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stopped_ = true;
      jobs_.clear();
    }
    cv_.notify_all();
    for (auto& t : threads_) t.join();
    threads_.clear();
  }

 private:
  void loop() {
    while (true) {
      std::function<void()> job;
      {
        std::unique_lock<std::mutex> lock(mu_);
        cv_.wait(lock, [&] { return stopped_ || !jobs_.empty(); });
        if (stopped_) return;
        job = std::move(jobs_.front());
        jobs_.pop_front();
      }
      job();
    }
  }
  int threads_wanted_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> jobs_;
  std::vector<std::thread> threads_;
  bool stopped_ = false;
};

// One upstream connection. Owned by the worker; attached to at most one Session.
class Upstream final : public IoHandler {
 public:
  Upstream(Worker& w, int fd, std::string key, bool poolable);
  ~Upstream() override;
  void onEvents(uint32_t ev) override;

  Worker& w_;
  int fd_;
  TransportPtr t_;  // null while a TLS upstream is still connecting
  std::string key_;
  bool poolable_;
  bool connecting_ = false;
  bool handshake_done_ = false;
  std::string tls_node_id_;
  IoFlags io_;
  Buffer in_, out_;
  Session* owner_ = nullptr;
  bool dead_ = false;
  bool eof_ = false;
  std::string error_;  // why it failed, once dead
  Timer idle_timer_;
};

struct Pool {
  std::vector<Upstream*> idle;   // most recently used last
  int total = 0;                 // open connections for this key
  std::deque<uint64_t> waiters;  // session ids waiting for a connection slot
  sockaddr_storage addr{};
  socklen_t addr_len = 0;
  std::string address;  // the address `addr` was parsed from
};

class Listener final : public IoHandler {
 public:
  Listener(Worker& w, int fd, bool is_unix, bool owns)
      : w_(w), fd_(fd), unix_(is_unix), owns_(owns) {}
  ~Listener() override {
    if (owns_) close(fd_);
  }
  void onEvents(uint32_t ev) override;
  Worker& w_;
  int fd_;
  bool unix_;
  bool owns_;
  uint32_t events_ = EPOLLIN;
  std::unique_ptr<Timer> resume_;  // out of fds: accepting pauses (see onEvents)
};

class Worker {
 public:
  Worker(ProxyImpl& server, int index, std::unique_ptr<EventLoop> loop)
      : server_(server), index_(index), loop_(std::move(loop)) {}
  ~Worker();

  void accepted(int fd, const sockaddr_storage& peer, bool is_unix);
  void adopt(int fd, std::string already_read, bool tls, std::string remote);
  Session* newSession(TransportPtr t, Caller caller, bool tls);
  void sessionClosed(Session* s);
  Pool& pool(const std::string& key) { return pools_[key]; }
  void returnToPool(Upstream* u);
  void destroyUpstream(Upstream* u);
  void slotFreed(Pool& p);
  void beginDrain();
  void deliver(uint64_t token, Decision d);

  ProxyImpl& server_;
  int index_;
  std::unique_ptr<EventLoop> loop_;
  std::thread thread_;
  std::vector<std::unique_ptr<Listener>> listeners_;
  std::unordered_map<uint64_t, Session*> sessions_;
  std::unordered_map<std::string, Pool> pools_;
  uint64_t next_id_ = 1;
  bool draining_ = false;
  WorkerCounters c_;
};

class ProxyImpl final : public ProxyServer {
 public:
  ProxyImpl(ProxyOptions o, Router& r) : o_(std::move(o)), router_(r), dials_(o_.dial_threads) {}
  ~ProxyImpl() override { stop(); }
  Status start() override;
  void stop() override;
  void adopt(int fd, std::string already_read, bool tls, std::string remote) override;
  std::vector<uint16_t> tcpPorts() const override { return ports_; }
  ProxyCounters counters() const override;

  ProxyOptions o_;
  Router& router_;
  DialPool dials_;
  std::vector<std::unique_ptr<Worker>> workers_;
  std::vector<uint16_t> ports_;
  std::vector<int> unix_fds_;
  std::mutex mu_;  // start/stop/adopt
  bool running_ = false;
  std::atomic<uint32_t> next_adopt_{0};
};

// ---------------------------------------------------------------------------------------
// Session: one client connection and the request it is serving.

class Session final : public IoHandler {
 public:
  enum class Phase { kHead, kRouting, kExchange, kTunnel, kClosing };
  enum class TryState { kNone, kWaitSlot, kDialing, kConnecting, kActive, kBackoff };

  Session(Worker& w, uint64_t id, TransportPtr t, Caller caller, bool tls)
      : w_(w),
        o_(w.server_.o_),
        id_(id),
        t_(std::move(t)),
        caller_(std::move(caller)),
        tls_(tls),
        parser_(o_.limits),
        resp_parser_(ParseLimits{o_.max_response_head, 1000, o_.max_response_head}),
        timer_(*w.loop_, [this] { onClientTimer(); }),
        try_timer_(*w.loop_, [this] { onTryTimer(); }) {
    size_t colon = caller_.address.rfind(':');
    client_ip_ = caller_.address == "unix" ? "" : caller_.address.substr(0, colon);
    if (!client_ip_.empty() && client_ip_.front() == '[')
      client_ip_ = client_ip_.substr(1, client_ip_.size() - 2);
    timer_.armAfter(o_.header_timeout);
  }
  ~Session() override {
    if (t_) w_.loop_->remove(t_->fd());
    delete up_;  // only at shutdown: otherwise released before the session closes
  }

  void onEvents(uint32_t ev) override {
    if (closed_) return;
    io_.onEvents(ev);
    drive();
  }
  void upstreamEvent() { drive(); }
  void drive();
  void closeNow(std::string_view why);
  void deliverDecision(uint64_t token, Decision d);
  void slotAvailable() {
    if (try_state_ == TryState::kWaitSlot) {
      try_state_ = TryState::kNone;
      connectTarget();
      drive();
    }
  }
  void dialed(uint64_t token, Result<int> fd);
  bool idleForDrain() const { return phase_ == Phase::kHead && in_.empty(); }
  void stopKeepAlive() { keep_alive_ = false; }
  void setPlain() { io_.short_read_drains = !t_->hasBufferedInput(); }
  uint64_t id() const { return id_; }
  bool closed() const { return closed_; }

 private:
  bool readClient();
  bool flushClient();
  bool parseHead();
  void startRouting();
  void handleDecision(Decision d);
  void localReply(int status, std::string_view content_type, std::string_view body,
                  const std::vector<Header>& extra, std::string error);
  void errorReply(int status, std::string error, std::string upstream = {}) {
    std::string body = errorBody(error, upstream);
    localReply(status, "application/json", body, {}, std::move(error));
  }
  bool discardRequestBody();
  void finishRequest();
  void buildUpstreamHead();
  void startTry();
  void connectTarget();
  void attach(Upstream* u, bool pooled);
  bool pumpExchange();
  bool pumpRequestBody();
  bool flushUpstream();
  bool readUpstream();
  bool pumpResponse();
  bool onResponseHead();
  void responseDone();
  void tryFailed(TryEnd outcome, std::string error);
  void releaseUpstream(bool reuse);
  bool pumpTunnel();
  void forwardToClient(const char* p, size_t n);
  void onClientTimer();
  // Re-arms the idle timeout while a request or tunnel moves bytes.
  void touch() {
    if (phase_ == Phase::kExchange || phase_ == Phase::kTunnel) timer_.armAfter(o_.idle_timeout);
  }
  void onTryTimer();
  bool canReplay() const { return !replay_overflow_ && !upgrade_; }
  uint64_t routeToken() const { return (id_ << 20) | (request_seq_ & 0xFFFFF); }

  Worker& w_;
  const ProxyOptions& o_;
  uint64_t id_;
  TransportPtr t_;
  Caller caller_;
  std::string client_ip_;
  bool tls_;
  bool handshake_done_ = false;
  IoFlags io_;
  Buffer in_, out_;
  bool client_eof_ = false;
  bool closed_ = false;
  Phase phase_ = Phase::kHead;

  // The current request.
  uint64_t request_seq_ = 0;
  HeadParser parser_;
  RequestHead head_;
  Framing req_framing_;
  ChunkedTracker req_chunks_;
  uint64_t req_left_ = 0;
  uint64_t req_body_seen_ = 0;  // chunked: bytes so far, for max_request_body
  bool req_body_done_ = true;
  bool keep_alive_ = true;
  bool upgrade_ = false;
  bool expect_continue_ = false;
  bool has_connection_ = false;  // the request has a Connection header
  bool head_started_ = false;    // first byte of a head seen
  bool header_timer_ = false;    // header_timeout armed for this head
  bool routing_inline_ = false;
  bool decision_ready_ = false;
  Decision pending_decision_;
  LoopTime request_start_{};
  std::unique_ptr<Exchange> ex_;
  FinishInfo info_;

  // The current try.
  TryState try_state_ = TryState::kNone;
  int attempt_ = 0;
  int tries_ = 0;
  bool force_fresh_ = false;
  Target target_;
  std::string pool_key_;  // Target::key, plus the node id for TLS targets
  Upstream* up_ = nullptr;
  bool pooled_try_ = false;
  uint64_t try_bytes_ = 0;  // response bytes received on this try
  LoopTime try_start_{};
  LoopTime deadline_{};
  bool deadline_is_per_try_ = false;
  std::string up_head_;
  std::string replay_;
  bool replay_overflow_ = false;
  bool response_started_ = false;  // a byte of the final response went downstream
  bool resp_head_done_ = false;
  HeadParser resp_parser_;
  ResponseHead resp_;
  Framing resp_framing_;
  ChunkedTracker resp_chunks_;
  uint64_t resp_left_ = 0;
  bool up_reusable_ = false;
  bool up_write_closed_ = false;  // tunnel: FIN forwarded to the upstream
  bool client_write_closed_ = false;

  Timer timer_;      // header, routing and idle timeouts of the client side
  Timer try_timer_;  // per-try timeout, deadline, retry back-off
};

// ---------------------------------------------------------------------------------------

Upstream::Upstream(Worker& w, int fd, std::string key, bool poolable)
    : w_(w), fd_(fd), key_(std::move(key)), poolable_(poolable), idle_timer_(*w.loop_, [this] {
        // An idle pooled connection times out.
        w_.destroyUpstream(this);
      }) {}

Upstream::~Upstream() {
  w_.loop_->remove(fd_);
  if (!t_) close(fd_);
}

void Upstream::onEvents(uint32_t ev) {
  if (dead_) return;
  io_.onEvents(ev);
  if (owner_ != nullptr) {
    owner_->upstreamEvent();
    return;
  }
  // Idle in the pool: any byte or a close means it cannot carry another request.
  if (ev & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) w_.destroyUpstream(this);
}

void Listener::onEvents(uint32_t) {
  for (int i = 0; i < 64; ++i) {
    sockaddr_storage peer{};
    socklen_t len = sizeof peer;
    int fd = accept4(fd_, reinterpret_cast<sockaddr*>(&peer), &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      int err = errno;
      if (err == EINTR) continue;
      if (err == EMFILE || err == ENFILE || err == ENOBUFS || err == ENOMEM) {
        // The listener is level-triggered: it would wake the loop at once, forever.
        // Pause accepting for a while; the connections wait in the backlog.
        LOG_WARN("gateway: accept paused for 100 ms").kv("error", std::strerror(err));
        w_.loop_->remove(fd_);
        if (!resume_) {
          resume_ = std::make_unique<Timer>(*w_.loop_, [this] {
            if (!w_.draining_) (void)w_.loop_->add(fd_, events_, this);
          });
        }
        resume_->armAfter(milliseconds(100));
      } else if (err != EAGAIN && err != EWOULDBLOCK) {
        LOG_WARN("gateway: accept failed").kv("error", std::strerror(err));
      }
      return;
    }
    w_.accepted(fd, peer, unix_);
  }
}

Worker::~Worker() {
  for (auto& [id, s] : sessions_) delete s;
  sessions_.clear();
  for (auto& [key, p] : pools_)
    for (Upstream* u : p.idle) delete u;
  pools_.clear();
  listeners_.clear();
  loop_->runDeferred();  // deletions queued by the last batch
}

void Worker::accepted(int fd, const sockaddr_storage& peer, bool is_unix) {
  const ProxyOptions& o = server_.o_;
  if (draining_ || static_cast<int>(sessions_.size()) >= o.max_connections_per_worker) {
    close(fd);
    return;
  }
  if (!is_unix) {
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  }
  Caller caller;
  std::string ip;
  caller.address = is_unix ? "unix" : addressText(peer, &ip);
  caller.kind = (is_unix || isLoopback(peer)) ? Caller::Kind::kLocal : Caller::Kind::kNetwork;
  Session* s = newSession(makePlainTransport(fd), std::move(caller), false);
  if (s != nullptr) s->setPlain();
}

void Worker::adopt(int fd, std::string already_read, bool tls, std::string remote) {
  const ProxyOptions& o = server_.o_;
  if (draining_) {
    close(fd);
    return;
  }
  TransportPtr t;
  if (tls) {
    if (!o.tls_server) {
      LOG_WARN("gateway: TLS connection handed over but no TLS is configured").kv("remote", remote);
      close(fd);
      return;
    }
    auto r = o.tls_server(fd, std::move(already_read));
    if (!r.isOk()) {
      LOG_WARN("gateway: TLS server setup failed").kv("error", r.status().message());
      return;
    }
    t = std::move(r).value();
  } else {
    t = makePlainTransport(fd, std::move(already_read));
  }
  int one = 1;
  setsockopt(t->fd(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  Caller caller;
  caller.address = remote;
  sockaddr_storage peer{};
  socklen_t len = sizeof peer;
  bool loop_peer = getpeername(t->fd(), reinterpret_cast<sockaddr*>(&peer), &len) == 0 &&
                   (peer.ss_family == AF_UNIX || isLoopback(peer));
  caller.kind = loop_peer ? Caller::Kind::kLocal : Caller::Kind::kNetwork;
  if (caller.address.empty()) caller.address = addressText(peer, nullptr);
  newSession(std::move(t), std::move(caller), tls);
}

Session* Worker::newSession(TransportPtr t, Caller caller, bool tls) {
  uint64_t id = next_id_++;
  int fd = t->fd();
  auto* s = new Session(*this, id, std::move(t), std::move(caller), tls);
  if (Status st = loop_->add(fd, kEvents, s); !st.isOk()) {
    LOG_WARN("gateway: cannot watch a connection").kv("error", st.message());
    delete s;
    return nullptr;
  }
  sessions_[id] = s;
  bump(c_.connections_accepted);
  bump(c_.connections_active);
  loop_->defer([this, id] {
    auto it = sessions_.find(id);
    if (it != sessions_.end()) it->second->drive();  // adopted bytes or TLS handshake
  });
  return s;
}

void Worker::sessionClosed(Session* s) {
  sessions_.erase(s->id());
  c_.connections_active.store(c_.connections_active.load(std::memory_order_relaxed) - 1,
                              std::memory_order_relaxed);
  loop_->defer([s] { delete s; });
  if (draining_ && sessions_.empty()) loop_->stop();
}

void Worker::returnToPool(Upstream* u) {
  Pool& p = pool(u->key_);
  u->owner_ = nullptr;
  if (!u->poolable_ || draining_ ||
      static_cast<int>(p.idle.size()) >= server_.o_.upstream_idle_per_key) {
    destroyUpstream(u);
    return;
  }
  u->in_.trim();
  u->out_.trim();
  p.idle.push_back(u);
  u->idle_timer_.armAfter(server_.o_.upstream_idle_timeout);
  slotFreed(p);
}

void Worker::destroyUpstream(Upstream* u) {
  if (u->dead_) return;
  u->dead_ = true;
  u->idle_timer_.cancel();
  Pool& p = pool(u->key_);
  auto it = std::find(p.idle.begin(), p.idle.end(), u);
  if (it != p.idle.end()) p.idle.erase(it);
  --p.total;
  u->owner_ = nullptr;
  loop_->remove(u->fd_);
  loop_->defer([u] { delete u; });
  slotFreed(p);
}

void Worker::slotFreed(Pool& p) {
  while (!p.waiters.empty()) {
    uint64_t id = p.waiters.front();
    p.waiters.pop_front();
    auto it = sessions_.find(id);
    if (it == sessions_.end()) continue;
    it->second->slotAvailable();
    return;
  }
}

void Worker::beginDrain() {
  draining_ = true;
  for (auto& l : listeners_) loop_->remove(l->fd_);
  listeners_.clear();
  std::vector<Session*> idle;
  for (auto& [id, s] : sessions_) {
    if (s->idleForDrain())
      idle.push_back(s);
    else
      s->stopKeepAlive();
  }
  for (Session* s : idle) s->closeNow("");
  for (auto& [key, p] : pools_) {
    std::vector<Upstream*> ups = p.idle;
    for (Upstream* u : ups) destroyUpstream(u);
  }
  if (sessions_.empty()) loop_->stop();
}

void Worker::deliver(uint64_t token, Decision d) {
  auto it = sessions_.find(token >> 20);
  if (it == sessions_.end()) return;  // the connection went away while routing
  it->second->deliverDecision(token, std::move(d));
}

// ---------------------------------------------------------------------------------------

void Session::closeNow(std::string_view why) {
  if (closed_) return;
  closed_ = true;
  timer_.cancel();
  try_timer_.cancel();
  if (up_ != nullptr) {
    Upstream* u = up_;
    up_ = nullptr;
    w_.destroyUpstream(u);
  }
  if (try_state_ == TryState::kWaitSlot) {
    Pool& p = w_.pool(pool_key_);
    auto it = std::find(p.waiters.begin(), p.waiters.end(), id_);
    if (it != p.waiters.end()) p.waiters.erase(it);
  }
  if (ex_) {
    info_.error = why.empty() ? "connection closed" : std::string(why);
    info_.duration = w_.loop_->now() - request_start_;
    ex_->finish(info_);
    ex_.reset();
  }
  w_.loop_->remove(t_->fd());
  w_.sessionClosed(this);
}

void Session::drive() {
  if (closed_) return;
  if (!handshake_done_) {
    IoResult r = t_->handshake();
    if (r.kind == IoResult::Kind::kOk) {
      handshake_done_ = true;
      if (!t_->peerNodeId().empty()) {
        caller_.kind = Caller::Kind::kNode;
        caller_.node_id = t_->peerNodeId();
      }
    } else if (r.kind == IoResult::Kind::kWantRead || r.kind == IoResult::Kind::kWantWrite) {
      return;
    } else {
      LOG_DEBUG("gateway: client handshake failed")
          .kv("remote", caller_.address)
          .kv("error", r.error);
      closeNow("TLS handshake failed: " + r.error);
      return;
    }
  }
  for (int round = 0; round < 64; ++round) {
    bool progress = readClient();
    if (closed_) return;
    switch (phase_) {
      case Phase::kHead:
        progress |= parseHead();
        break;
      case Phase::kRouting:
        if (decision_ready_) {
          decision_ready_ = false;
          handleDecision(std::move(pending_decision_));
          progress = true;
        }
        break;
      case Phase::kExchange:
        progress |= pumpExchange();
        break;
      case Phase::kTunnel:
        progress |= pumpTunnel();
        break;
      case Phase::kClosing:
        break;
    }
    if (closed_) return;
    progress |= flushClient();
    if (closed_) return;
    if (phase_ == Phase::kClosing && out_.empty()) {
      // Lingering close: a close with unread input would reset the connection and could
      // destroy the reply in flight, so end our side and read until the client does.
      if (!client_write_closed_) {
        t_->shutdownWrite();
        client_write_closed_ = true;
        timer_.armAfter(kLinger);
      }
      if (client_eof_) {
        closeNow("");
        return;
      }
    }
    if (!progress) return;
  }
  // Still progressing (a long pipeline): let other connections run, then continue; no
  // socket event would come back for bytes that are already buffered.
  Worker* w = &w_;
  uint64_t id = id_;
  w_.loop_->defer([w, id] {
    auto it = w->sessions_.find(id);
    if (it != w->sessions_.end()) it->second->drive();
  });
}

bool Session::readClient() {
  if (client_eof_ || !io_.readable) return false;
  size_t limit;
  switch (phase_) {
    case Phase::kHead:
      limit = o_.limits.max_head_bytes + 1024;
      break;
    case Phase::kRouting:
      limit = 0;
      break;  // the body waits in the socket
    case Phase::kExchange:
      // Body bytes wait while the upstream is not there to take them.
      limit = req_body_done_ ? 0 : o_.max_pending_bytes;
      break;
    case Phase::kTunnel:
      limit = o_.max_pending_bytes;
      break;
    case Phase::kClosing:
      limit = kReadChunk * 4;
      break;
    default:
      limit = 0;
  }
  bool progress = false;
  while (in_.size() < limit && io_.readable) {
    char* p = in_.prepare(kReadChunk);
    size_t room = in_.room();
    IoResult r = t_->read(p, room);
    if (r.kind == IoResult::Kind::kOk) {
      in_.commit(r.bytes);
      io_.afterRead(r.bytes, room);
      bump(w_.c_.bytes_in, r.bytes);
      progress = true;
      continue;
    }
    if (r.kind == IoResult::Kind::kClosed) {
      client_eof_ = true;
      return true;
    }
    if (r.kind == IoResult::Kind::kError) {
      client_eof_ = true;
      closeNow("client connection failed: " + r.error);
      return true;
    }
    io_.readBlocked(r);
  }
  if (phase_ == Phase::kClosing) in_.clear();  // lingering close: discard
  if (progress) touch();
  return progress;
}

bool Session::flushClient() {
  bool progress = false;
  while (!out_.empty() && io_.writable) {
    IoResult r = t_->write(out_.data(), out_.size());
    if (r.kind == IoResult::Kind::kOk) {
      out_.consume(r.bytes);
      bump(w_.c_.bytes_out, r.bytes);
      progress = true;
      if (r.bytes == 0) io_.writable = false;
      continue;
    }
    if (r.kind == IoResult::Kind::kError || r.kind == IoResult::Kind::kClosed) {
      closeNow("client connection failed: " + r.error);
      return true;
    }
    io_.writeBlocked(r);
  }
  if (progress) touch();
  return progress;
}

void Session::forwardToClient(const char* p, size_t n) {
  if (n == 0) return;
  if (out_.empty() && io_.writable) {
    IoResult r = t_->write(p, n);
    if (r.kind == IoResult::Kind::kOk) {
      bump(w_.c_.bytes_out, r.bytes);
      p += r.bytes;
      n -= r.bytes;
      if (n > 0) io_.writable = false;
    } else if (r.kind == IoResult::Kind::kWantRead || r.kind == IoResult::Kind::kWantWrite) {
      io_.writeBlocked(r);
    } else {
      out_.append(p, n);  // the error surfaces in flushClient()
      return;
    }
  }
  out_.append(p, n);
}

bool Session::parseHead() {
  // A client may send CRLF after a body (RFC 9112 §2.2): ignore it before a head.
  while (!head_started_ && !in_.empty() && (in_.data()[0] == '\r' || in_.data()[0] == '\n'))
    in_.consume(1);
  if (in_.empty()) {
    if (client_eof_ || w_.draining_ || !keep_alive_) {
      closeNow("");
      return true;
    }
    in_.trim();
    out_.trim();
    if (!timer_.armed()) timer_.armAfter(o_.idle_timeout);
    return false;
  }
  if (!head_started_) {
    head_started_ = true;
    request_start_ = w_.loop_->now();
  }
  HeadParser::State s = parser_.parseRequest(in_.view(), &head_);
  if (s == HeadParser::State::kNeedMore) {
    if (client_eof_) {
      closeNow("client closed in the middle of a request head");
      return false;
    }
    // Armed only for heads that do not arrive whole: a shorter deadline than the idle
    // one would queue a timer entry per request.
    if (!header_timer_) {
      header_timer_ = true;
      timer_.armAt(request_start_ + o_.header_timeout);
    }
    return false;
  }
  header_timer_ = false;
  bump(w_.c_.requests);
  if (s == HeadParser::State::kError) {
    bump(w_.c_.bad_requests);
    keep_alive_ = false;
    req_body_done_ = true;
    in_.clear();
    head_.method.clear();
    head_.version_minor = 1;
    errorReply(parser_.error().status, parser_.error().message);
    return true;
  }
  in_.consume(parser_.headBytes());
  // One pass over the headers says which of the slower checks below apply at all.
  bool has_framing = false, has_upgrade = false, has_expect = false;
  has_connection_ = false;
  for (const Header& h : head_.headers) {
    switch (h.name.size()) {
      case 6:
        has_expect |= equalsIgnoreCase(h.name, "expect");
        break;
      case 7:
        has_upgrade |= equalsIgnoreCase(h.name, "upgrade");
        break;
      case 10:
        has_connection_ |= equalsIgnoreCase(h.name, "connection");
        break;
      case 14:
        has_framing |= equalsIgnoreCase(h.name, "content-length");
        break;
      case 17:
        has_framing |= equalsIgnoreCase(h.name, "transfer-encoding");
        break;
      default:
        break;
    }
  }
  ParseError err;
  if (!has_framing) {
    req_framing_ = Framing{};
  } else if (!requestFraming(head_, &req_framing_, &err)) {
    bump(w_.c_.bad_requests);
    keep_alive_ = false;
    req_body_done_ = true;
    errorReply(err.status, err.message);
    return true;
  }
  req_left_ = req_framing_.length;
  req_chunks_.reset();
  req_body_done_ = req_framing_.kind == BodyKind::kNone;
  req_body_seen_ = 0;
  keep_alive_ = (has_connection_ ? wantsKeepAlive(head_.version_minor, head_.headers)
                                 : head_.version_minor == 1) &&
                !w_.draining_;
  if (o_.max_request_body > 0 && req_framing_.kind == BodyKind::kLength &&
      req_framing_.length > o_.max_request_body) {
    bump(w_.c_.bad_requests);
    keep_alive_ = false;
    errorReply(413, "request body of " + std::to_string(req_framing_.length) +
                        " bytes is larger than the " + std::to_string(o_.max_request_body) +
                        " allowed");
    return true;
  }
  upgrade_ = has_upgrade && has_connection_ && wantsUpgrade(head_);
  const std::string* expect = has_expect ? head_.find("expect") : nullptr;
  expect_continue_ =
      expect != nullptr && equalsIgnoreCase(*expect, "100-continue") && head_.version_minor == 1;
  startRouting();
  return true;
}

void Session::startRouting() {
  phase_ = Phase::kRouting;
  ++request_seq_;
  decision_ready_ = false;
  routing_inline_ = true;
  Worker* w = &w_;
  uint64_t token = routeToken();
  w_.server_.router_.route(head_, caller_, [w, token](Decision d) {
    if (w->loop_->inLoopThread()) {
      w->deliver(token, std::move(d));
      return;
    }
    auto shared = std::make_shared<Decision>(std::move(d));
    w->loop_->post([w, token, shared] { w->deliver(token, std::move(*shared)); });
  });
  routing_inline_ = false;
  if (closed_) return;
  if (decision_ready_) {
    decision_ready_ = false;
    handleDecision(std::move(pending_decision_));
    return;
  }
  timer_.armAt(request_start_ + o_.header_timeout);  // the router answers later
}

void Session::deliverDecision(uint64_t token, Decision d) {
  if (closed_ || phase_ != Phase::kRouting || token != routeToken()) return;
  if (routing_inline_) {
    pending_decision_ = std::move(d);
    decision_ready_ = true;
    return;
  }
  handleDecision(std::move(d));
  drive();
}

void Session::handleDecision(Decision d) {
  if (!d.exchange) {
    if (d.status == 0) {
      errorReply(500, "the router answered neither a status nor an exchange");
      return;
    }
    std::vector<Header> extra = std::move(d.headers);
    localReply(d.status, d.content_type, d.body, extra, "");
    return;
  }
  ex_ = std::move(d.exchange);
  info_ = FinishInfo{};
  attempt_ = 0;
  tries_ = 0;
  force_fresh_ = false;
  replay_.clear();
  replay_overflow_ = false;
  response_started_ = false;
  deadline_ = w_.loop_->now() + ex_->deadline();
  phase_ = Phase::kExchange;
  timer_.cancel();
  if (expect_continue_ && !req_body_done_) out_.append("HTTP/1.1 100 Continue\r\n\r\n");
  buildUpstreamHead();
  startTry();
}

void Session::buildUpstreamHead() {
  std::string& h = up_head_;
  h.clear();
  h.append(head_.method);
  h += ' ';
  h.append(head_.target);
  h.append(head_.version_minor == 0 ? " HTTP/1.0\r\n" : " HTTP/1.1\r\n");
  const std::vector<Header>& set = ex_->setHeaders();
  const std::string* xff = nullptr;
  const std::string* xfp = nullptr;
  const bool has_connection = has_connection_;
  for (const Header& hd : head_.headers) {
    if (isHopByHop(hd.name)) continue;
    if (has_connection && namedByConnection(head_.headers, hd.name)) continue;
    if (equalsIgnoreCase(hd.name, "x-forwarded-for")) {
      xff = &hd.value;
      continue;
    }
    if (equalsIgnoreCase(hd.name, "x-forwarded-proto")) {
      xfp = &hd.value;
      continue;
    }
    if (expect_continue_ && equalsIgnoreCase(hd.name, "expect")) continue;
    bool replaced = false;
    for (const Header& s : set)
      if (equalsIgnoreCase(s.name, hd.name)) replaced = true;
    if (replaced) continue;
    h.append(hd.name);
    h.append(": ");
    h.append(hd.value);
    h.append("\r\n");
  }
  if (!client_ip_.empty() || xff != nullptr) {
    h.append("X-Forwarded-For: ");
    if (xff != nullptr) {
      h.append(*xff);
      if (!client_ip_.empty()) h.append(", ");
    }
    h.append(client_ip_);
    h.append("\r\n");
  }
  h.append("X-Forwarded-Proto: ");
  h.append(caller_.kind == Caller::Kind::kNode && xfp != nullptr ? *xfp
                                                                 : (tls_ ? "https" : "http"));
  h.append("\r\nVia: 1.1 edge-gateway\r\n");
  for (const Header& s : set) {
    if (s.value.empty()) continue;
    h.append(s.name);
    h.append(": ");
    h.append(s.value);
    h.append("\r\n");
  }
  if (upgrade_) {
    h.append("Upgrade: ");
    h.append(*head_.find("upgrade"));
    h.append("\r\nConnection: upgrade\r\n");
  }
  h.append("\r\n");
}

void Session::startTry() {
  if (closed_) return;
  LoopTime now = w_.loop_->refreshNow();
  if (now >= deadline_) {
    tryFailed(TryEnd::kTimeout,
              "request deadline of " + millisText(ex_->deadline()) + " passed before a response");
    return;
  }
  std::optional<Target> t = ex_->nextTarget(attempt_);
  if (!t) {
    int status = ex_->rejectStatus();
    errorReply(status == 0 ? 503 : status, ex_->rejectReason());
    return;
  }
  target_ = std::move(*t);
  info_.upstream = target_.key;
  // A connection verified for one node must never carry a request meant for another.
  if (target_.tls_node_id.empty()) {
    pool_key_ = target_.key;
  } else {
    pool_key_ = target_.key + "\ntls:" + target_.tls_node_id;
  }
  try_start_ = now;
  ++tries_;
  info_.tries = tries_;
  try_bytes_ = 0;
  resp_head_done_ = false;
  resp_parser_.reset();
  LoopTime per_try = now + ex_->perTryTimeout();
  deadline_is_per_try_ = per_try < deadline_;
  try_timer_.armAt(std::min(per_try, deadline_));
  connectTarget();
}

void Session::connectTarget() {
  if (target_.dial || [&] {
        sockaddr_storage ss;
        socklen_t len;
        return !numericAddress(target_.address, &ss, &len);
      }()) {
    // Blocking dial on a helper thread; the connection is not pooled.
    try_state_ = TryState::kDialing;
    Worker* w = &w_;
    uint64_t id = id_;
    uint64_t token = (static_cast<uint64_t>(tries_) << 32) | (request_seq_ & 0xFFFFFFFF);
    std::function<Result<int>()> dial = target_.dial;
    std::string address = target_.address;
    auto timeout = std::chrono::duration_cast<milliseconds>(ex_->perTryTimeout());
    w_.server_.dials_.run([w, id, token, dial, address, timeout] {
      Result<int> r = dial ? dial() : net::dialTcp(address, timeout);
      auto shared = std::make_shared<Result<int>>(std::move(r));
      w->loop_->post([w, id, token, shared] {
        auto it = w->sessions_.find(id);
        if (it == w->sessions_.end()) {
          if (shared->isOk()) close(shared->value());
          return;
        }
        it->second->dialed(token, std::move(*shared));
      });
    });
    return;
  }
  Pool& p = w_.pool(pool_key_);
  if (!force_fresh_ && !p.idle.empty()) {
    Upstream* u = p.idle.back();
    p.idle.pop_back();
    u->idle_timer_.cancel();
    bump(w_.c_.upstream_reused);
    attach(u, true);
    return;
  }
  if (p.total >= o_.upstream_max_per_key) {
    try_state_ = TryState::kWaitSlot;
    p.waiters.push_back(id_);
    return;
  }
  force_fresh_ = false;
  if (p.address != target_.address) {
    numericAddress(target_.address, &p.addr, &p.addr_len);
    p.address = target_.address;
  }
  int fd = socket(p.addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    tryFailed(TryEnd::kConnectFailed, std::string("socket: ") + std::strerror(errno));
    return;
  }
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  bump(w_.c_.upstream_connects);
  int rc = ::connect(fd, reinterpret_cast<sockaddr*>(&p.addr), p.addr_len);
  if (rc != 0 && errno != EINPROGRESS) {
    int err = errno;
    close(fd);
    tryFailed(TryEnd::kConnectFailed,
              "connect to " + target_.address + " failed: " + std::strerror(err));
    return;
  }
  auto* u = new Upstream(w_, fd, pool_key_, true);
  ++p.total;
  u->connecting_ = rc != 0;
  u->tls_node_id_ = target_.tls_node_id;
  if (target_.tls_node_id.empty()) {
    u->t_ = makePlainTransport(fd);
    u->io_.short_read_drains = true;
  }
  u->io_.readable = false;
  u->io_.writable = !u->connecting_;
  if (Status st = w_.loop_->add(fd, kEvents, u); !st.isOk()) {
    w_.destroyUpstream(u);
    tryFailed(TryEnd::kConnectFailed, st.message());
    return;
  }
  attach(u, false);
}

void Session::dialed(uint64_t token, Result<int> fd) {
  uint64_t expected = (static_cast<uint64_t>(tries_) << 32) | (request_seq_ & 0xFFFFFFFF);
  if (closed_ || try_state_ != TryState::kDialing || token != expected) {
    if (fd.isOk()) close(fd.value());
    return;
  }
  try_state_ = TryState::kNone;
  if (!fd.isOk()) {
    tryFailed(TryEnd::kConnectFailed, fd.status().message());
    drive();
    return;
  }
  int flags = fcntl(fd.value(), F_GETFL, 0);
  fcntl(fd.value(), F_SETFL, flags | O_NONBLOCK);
  bump(w_.c_.upstream_connects);
  auto* u = new Upstream(w_, fd.value(), pool_key_, false);
  ++w_.pool(pool_key_).total;
  u->tls_node_id_ = target_.tls_node_id;
  if (target_.tls_node_id.empty()) u->t_ = makePlainTransport(fd.value());
  if (Status st = w_.loop_->add(fd.value(), kEvents, u); !st.isOk()) {
    w_.destroyUpstream(u);
    tryFailed(TryEnd::kConnectFailed, st.message());
    drive();
    return;
  }
  attach(u, false);
  drive();
}

void Session::attach(Upstream* u, bool pooled) {
  up_ = u;
  u->owner_ = this;
  pooled_try_ = pooled;
  try_state_ = TryState::kActive;
  up_write_closed_ = false;
  u->out_.clear();
  u->out_.append(up_head_);
  u->out_.append(replay_);
}

bool Session::pumpExchange() {
  if (try_state_ != TryState::kActive || up_ == nullptr) {
    // Nothing to move to an upstream; a client that hangs up ends the request.
    if (client_eof_ && !req_body_done_) {
      closeNow("client closed before sending the whole request body");
      return true;
    }
    return false;
  }
  Upstream* u = up_;
  bool progress = false;
  if (u->connecting_) {
    if (!u->io_.writable) return false;
    int err = 0;
    socklen_t len = sizeof err;
    getsockopt(u->fd_, SOL_SOCKET, SO_ERROR, &err, &len);
    if (err != 0) {
      tryFailed(TryEnd::kConnectFailed,
                "connect to " + target_.address + " failed: " + std::strerror(err));
      return true;
    }
    u->connecting_ = false;
    u->io_.readable = true;
    progress = true;
  }
  if (!u->t_) {
    auto r = o_.tls_client ? o_.tls_client(u->fd_, u->tls_node_id_)
                           : Result<TransportPtr>(Status::failedPrecondition(
                                 "target wants TLS but the gateway has no TLS client"));
    if (!r.isOk()) {
      // The factory owns the fd only when it succeeds.
      tryFailed(TryEnd::kConnectFailed, r.status().message());
      return true;
    }
    u->t_ = std::move(r).value();
  }
  if (!u->handshake_done_) {
    IoResult r = u->t_->handshake();
    if (r.kind == IoResult::Kind::kOk) {
      u->handshake_done_ = true;
      progress = true;
    } else if (r.kind == IoResult::Kind::kWantRead || r.kind == IoResult::Kind::kWantWrite) {
      return progress;
    } else {
      tryFailed(TryEnd::kConnectFailed, "TLS to " + target_.key + ": " + r.error);
      return true;
    }
  }
  progress |= pumpRequestBody();
  if (up_ == nullptr || closed_) return true;
  progress |= flushUpstream();
  if (up_ == nullptr || closed_) return true;
  progress |= pumpResponse();
  return progress;
}

bool Session::pumpRequestBody() {
  bool progress = false;
  while (!req_body_done_ && !in_.empty() && up_->out_.size() < o_.max_pending_bytes) {
    size_t n;
    if (req_framing_.kind == BodyKind::kLength) {
      n = static_cast<size_t>(std::min<uint64_t>(req_left_, in_.size()));
      req_left_ -= n;
      if (req_left_ == 0) req_body_done_ = true;
    } else {
      n = req_chunks_.feed(in_.data(), in_.size());
      if (req_chunks_.failed()) {
        bump(w_.c_.bad_requests);
        keep_alive_ = false;
        std::string why = "malformed chunked request body: " + req_chunks_.error();
        releaseUpstream(false);
        try_timer_.cancel();
        if (response_started_) {
          closeNow(why);
        } else {
          req_body_done_ = true;
          errorReply(400, why);
        }
        return true;
      }
      if (req_chunks_.done()) req_body_done_ = true;
      req_body_seen_ += n;
      if (o_.max_request_body > 0 && req_body_seen_ > o_.max_request_body) {
        bump(w_.c_.bad_requests);
        keep_alive_ = false;
        std::string why = "chunked request body is larger than the " +
                          std::to_string(o_.max_request_body) + " bytes allowed";
        releaseUpstream(false);
        try_timer_.cancel();
        if (response_started_) {
          closeNow(why);
        } else {
          req_body_done_ = true;
          in_.clear();
          errorReply(413, why);
        }
        return true;
      }
    }
    up_->out_.append(in_.data(), n);
    if (!replay_overflow_) {
      if (replay_.size() + n <= o_.replay_buffer) {
        replay_.append(in_.data(), n);
      } else {
        replay_overflow_ = true;
        std::string().swap(replay_);
      }
    }
    info_.bytes_in += n;
    in_.consume(n);
    progress = true;
  }
  if (!req_body_done_ && client_eof_ && in_.empty()) {
    releaseUpstream(false);
    closeNow("client closed before sending the whole request body");
    return true;
  }
  return progress;
}

bool Session::flushUpstream() {
  Upstream* u = up_;
  bool progress = false;
  while (!u->out_.empty() && u->io_.writable) {
    IoResult r = u->t_->write(u->out_.data(), u->out_.size());
    if (r.kind == IoResult::Kind::kOk) {
      u->out_.consume(r.bytes);
      progress = true;
      if (r.bytes == 0) u->io_.writable = false;
      continue;
    }
    if (r.kind == IoResult::Kind::kError || r.kind == IoResult::Kind::kClosed) {
      // The upstream may have answered before closing (an early 413): read that first.
      u->eof_ = true;
      u->error_ = r.error.empty() ? "closed" : r.error;
      u->out_.clear();
      u->io_.readable = true;
      return true;
    }
    u->io_.writeBlocked(r);
  }
  if (progress && resp_head_done_) touch();
  return progress;
}

bool Session::readUpstream() {
  Upstream* u = up_;
  if (u->eof_ || !u->io_.readable) return false;
  // Back-pressure: stop reading while the client has not taken what we have.
  size_t limit = resp_head_done_ ? (out_.size() < o_.max_pending_bytes ? o_.max_pending_bytes : 0)
                                 : o_.max_response_head + 1024;
  bool progress = false;
  while (u->in_.size() < limit && u->io_.readable) {
    char* p = u->in_.prepare(kReadChunk);
    size_t room = u->in_.room();
    IoResult r = u->t_->read(p, room);
    if (r.kind == IoResult::Kind::kOk) {
      u->in_.commit(r.bytes);
      u->io_.afterRead(r.bytes, room);
      try_bytes_ += r.bytes;
      progress = true;
      if (resp_head_done_) break;  // forward before reading more
      continue;
    }
    if (r.kind == IoResult::Kind::kClosed || r.kind == IoResult::Kind::kError) {
      u->eof_ = true;
      if (r.kind == IoResult::Kind::kError) u->error_ = r.error;
      return true;
    }
    u->io_.readBlocked(r);
  }
  return progress;
}

bool Session::pumpResponse() {
  bool progress = false;
  for (int round = 0; round < 64; ++round) {
    bool moved = readUpstream();
    if (closed_ || up_ == nullptr) return true;
    Upstream* u = up_;
    if (!resp_head_done_) {
      if (u->in_.empty() && !u->eof_) return progress || moved;
      HeadParser::State s = u->in_.empty() ? HeadParser::State::kNeedMore
                                           : resp_parser_.parseResponse(u->in_.view(), &resp_);
      if (s == HeadParser::State::kNeedMore) {
        if (!u->eof_) return progress || moved;
        if (try_bytes_ == 0 && pooled_try_ && isIdempotent(head_.method) && canReplay()) {
          // The keep-alive race: the pooled connection was closed by the upstream just
          // as we reused it. Not the upstream's fault: a fresh connection, same attempt.
          bump(w_.c_.upstream_stale);
          releaseUpstream(false);
          force_fresh_ = true;
          try_state_ = TryState::kNone;
          connectTarget();
          return true;
        }
        std::string why = try_bytes_ == 0
                              ? "upstream closed the connection before a response" +
                                    (u->error_.empty() ? std::string() : " (" + u->error_ + ")")
                              : "upstream closed the connection in the middle of the response head";
        tryFailed(try_bytes_ == 0 ? TryEnd::kReset : TryEnd::kBadResponse, why);
        return true;
      }
      if (s == HeadParser::State::kError) {
        tryFailed(TryEnd::kBadResponse,
                  "bad response from upstream: " + resp_parser_.error().message);
        return true;
      }
      u->in_.consume(resp_parser_.headBytes());
      if (resp_.status >= 100 && resp_.status < 200 && resp_.status != 101) {
        // Interim responses: our own 100 was sent already (or not asked for); others
        // (102, 103) go to HTTP/1.1 clients.
        if (resp_.status != 100 && head_.version_minor == 1) {
          out_.append(serializeResponseHead(resp_));
        }
        resp_parser_.reset();
        progress = true;
        continue;
      }
      if (!onResponseHead()) return true;
      progress = true;
      continue;
    }
    // Body.
    size_t n = 0;
    bool done = false;
    switch (resp_framing_.kind) {
      case BodyKind::kNone:
        done = true;
        break;
      case BodyKind::kLength:
        n = static_cast<size_t>(std::min<uint64_t>(resp_left_, u->in_.size()));
        resp_left_ -= n;
        done = resp_left_ == 0;
        break;
      case BodyKind::kChunked:
        n = resp_chunks_.feed(u->in_.data(), u->in_.size());
        if (resp_chunks_.failed()) {
          bump(w_.c_.bad_responses);
          ex_->tryDone({TryEnd::kBadResponse, resp_.status, w_.loop_->now() - try_start_,
                        "malformed chunked response: " + resp_chunks_.error()},
                       false);
          closeNow("malformed chunked response from " + target_.key + ": " + resp_chunks_.error());
          return true;
        }
        done = resp_chunks_.done();
        break;
      case BodyKind::kUntilClose:
        n = u->in_.size();
        done = u->eof_ && n == u->in_.size();
        break;
      case BodyKind::kTunnel: {
        phase_ = Phase::kTunnel;
        bump(w_.c_.tunnels);
        timer_.armAfter(o_.idle_timeout);
        return true;
      }
    }
    if (n > 0) {
      forwardToClient(u->in_.data(), n);
      info_.bytes_out += n;
      u->in_.consume(n);
      moved = true;
    }
    if (done) {
      if (!u->in_.empty()) up_reusable_ = false;  // bytes after the response: not HTTP
      responseDone();
      return true;
    }
    if (u->eof_ && u->in_.empty()) {
      closeNow("upstream " + target_.key + " closed in the middle of the response body");
      return true;
    }
    if (!moved) return progress;
    progress = true;
  }
  return progress;
}

bool Session::onResponseHead() {
  Upstream* u = up_;
  resp_head_done_ = true;
  ParseError err;
  if (!responseFraming(resp_, head_.method, upgrade_, &resp_framing_, &err)) {
    tryFailed(TryEnd::kBadResponse, "bad response from upstream: " + err.message);
    return false;
  }
  TryResult r{TryEnd::kResponse, resp_.status, w_.loop_->now() - try_start_, ""};
  bool retry_possible = canReplay() && w_.loop_->now() < deadline_;
  try_timer_.cancel();
  std::optional<Duration> retry = ex_->tryDone(r, retry_possible);
  if (retry_possible && retry) {
    // The policy retries this status (502/503/504 ...): drop this response.
    bump(w_.c_.retries);
    releaseUpstream(false);
    ++attempt_;
    try_state_ = TryState::kBackoff;
    try_timer_.armAt(std::min(w_.loop_->now() + *retry, deadline_));
    return false;
  }
  resp_left_ = resp_framing_.length;
  resp_chunks_.reset();
  up_reusable_ = u->poolable_ && resp_framing_.kind != BodyKind::kUntilClose &&
                 resp_framing_.kind != BodyKind::kTunnel &&
                 wantsKeepAlive(resp_.version_minor, resp_.headers) && head_.version_minor == 1;
  if (resp_framing_.kind == BodyKind::kUntilClose) keep_alive_ = false;
  if (w_.draining_) keep_alive_ = false;

  // The head for the client, written straight into out_.
  out_.append(resp_.version_minor == 0 && head_.version_minor == 0 ? "HTTP/1.0 " : "HTTP/1.1 ");
  char code[4] = {static_cast<char>('0' + resp_.status / 100),
                  static_cast<char>('0' + resp_.status / 10 % 10),
                  static_cast<char>('0' + resp_.status % 10), ' '};
  out_.append(code, 4);
  if (resp_.reason.empty())
    out_.append(reasonPhrase(resp_.status));
  else
    out_.append(resp_.reason);
  out_.append("\r\n");
  bool has_connection = findHeader(resp_.headers, "connection") != nullptr;
  const bool tunnel = resp_framing_.kind == BodyKind::kTunnel;
  for (const Header& h : resp_.headers) {
    if (tunnel && equalsIgnoreCase(h.name, "upgrade")) {
      // The protocol switched to: the one hop-by-hop header a 101 must carry on.
    } else if (isHopByHop(h.name) || (has_connection && namedByConnection(resp_.headers, h.name))) {
      continue;
    }
    out_.append(h.name);
    out_.append(": ");
    out_.append(h.value);
    out_.append("\r\n");
  }
  if (resp_framing_.kind == BodyKind::kTunnel) {
    out_.append("Connection: upgrade\r\n");
  } else if (!keep_alive_) {
    out_.append("Connection: close\r\n");
  } else if (head_.version_minor == 0) {
    out_.append("Connection: keep-alive\r\n");
  }
  out_.append("\r\n");
  response_started_ = true;
  info_.status = resp_.status;
  timer_.armAfter(o_.idle_timeout);
  return true;
}

void Session::responseDone() {
  if (!req_body_done_) {
    // The upstream answered before reading the whole body (e.g. 413): neither
    // connection can carry another request.
    up_reusable_ = false;
    keep_alive_ = false;
  }
  releaseUpstream(up_reusable_ && up_->out_.empty());
  finishRequest();
}

void Session::finishRequest() {
  try_timer_.cancel();
  try_state_ = TryState::kNone;
  if (ex_) {
    info_.duration = w_.loop_->now() - request_start_;
    ex_->finish(info_);
    ex_.reset();
  }
  head_started_ = false;
  header_timer_ = false;
  parser_.reset();
  timer_.cancel();
  phase_ = keep_alive_ ? Phase::kHead : Phase::kClosing;
  if (phase_ == Phase::kClosing && in_.size() > 0) in_.clear();
}

void Session::releaseUpstream(bool reuse) {
  if (up_ == nullptr) return;
  Upstream* u = up_;
  up_ = nullptr;
  if (reuse && !u->eof_) {
    w_.returnToPool(u);
  } else {
    w_.destroyUpstream(u);
  }
}

void Session::tryFailed(TryEnd outcome, std::string error) {
  try_timer_.cancel();
  releaseUpstream(false);
  try_state_ = TryState::kNone;
  switch (outcome) {
    case TryEnd::kConnectFailed:
      bump(w_.c_.connect_failures);
      break;
    case TryEnd::kReset:
      bump(w_.c_.resets);
      break;
    case TryEnd::kTimeout:
      bump(w_.c_.timeouts);
      break;
    case TryEnd::kBadResponse:
      bump(w_.c_.bad_responses);
      break;
    case TryEnd::kResponse:
      break;
  }
  LoopTime now = w_.loop_->refreshNow();
  TryResult r{outcome, 0, now - try_start_, error};
  bool retry_possible = !response_started_ && canReplay() && now < deadline_;
  std::optional<Duration> retry = ex_->tryDone(r, retry_possible);
  if (retry_possible && retry && now + *retry < deadline_) {
    bump(w_.c_.retries);
    ++attempt_;
    try_state_ = TryState::kBackoff;
    try_timer_.armAt(now + *retry);
    return;
  }
  info_.error = error;
  if (response_started_) {
    closeNow(error);
    return;
  }
  if (!req_body_done_) keep_alive_ = false;
  int status = outcome == TryEnd::kTimeout ? 504 : 502;
  errorReply(status, error, target_.key);
}

bool Session::pumpTunnel() {
  bool progress = false;
  if (up_ == nullptr) {
    closeNow("");
    return true;
  }
  Upstream* u = up_;
  // client -> upstream
  if (!in_.empty() && u->out_.size() < o_.max_pending_bytes) {
    u->out_.append(in_.data(), in_.size());
    info_.bytes_in += in_.size();
    in_.consume(in_.size());
    progress = true;
  }
  progress |= flushUpstream();
  if (closed_ || up_ == nullptr) return true;
  if (client_eof_ && in_.empty() && u->out_.empty() && !up_write_closed_) {
    u->t_->shutdownWrite();
    up_write_closed_ = true;
    progress = true;
  }
  // upstream -> client
  while (!u->eof_ && u->io_.readable && out_.size() < o_.max_pending_bytes) {
    char* p = u->in_.prepare(kReadChunk);
    IoResult r = u->t_->read(p, u->in_.room());
    if (r.kind == IoResult::Kind::kOk) {
      u->in_.commit(r.bytes);
    } else if (r.kind == IoResult::Kind::kClosed || r.kind == IoResult::Kind::kError) {
      u->eof_ = true;
    } else {
      u->io_.readBlocked(r);
    }
    if (!u->in_.empty()) {
      forwardToClient(u->in_.data(), u->in_.size());
      info_.bytes_out += u->in_.size();
      u->in_.consume(u->in_.size());
    }
    progress = true;
  }
  if (!u->in_.empty() && out_.size() < o_.max_pending_bytes) {
    forwardToClient(u->in_.data(), u->in_.size());
    u->in_.consume(u->in_.size());
    progress = true;
  }
  if (u->eof_ && u->in_.empty() && out_.empty() && !client_write_closed_) {
    t_->shutdownWrite();
    client_write_closed_ = true;
    progress = true;
  }
  if (client_write_closed_ && up_write_closed_) {
    releaseUpstream(false);
    finishRequest();
    closeNow("");
    return true;
  }
  if (progress) touch();
  return progress;
}

bool Session::discardRequestBody() {
  if (req_body_done_) return true;
  if (req_framing_.kind == BodyKind::kLength) {
    if (in_.size() < req_left_) return false;
    in_.consume(static_cast<size_t>(req_left_));
    req_left_ = 0;
  } else {
    size_t n = req_chunks_.feed(in_.data(), in_.size());
    if (!req_chunks_.done()) return false;
    in_.consume(n);
  }
  req_body_done_ = true;
  return true;
}

void Session::localReply(int status, std::string_view content_type, std::string_view body,
                         const std::vector<Header>& extra, std::string error) {
  try_timer_.cancel();
  releaseUpstream(false);
  bump(w_.c_.local_replies);
  // A body we have not read keeps the connection from carrying another request.
  if (!discardRequestBody()) keep_alive_ = false;
  if (w_.draining_) keep_alive_ = false;
  out_.append(head_.version_minor == 0 ? "HTTP/1.0 " : "HTTP/1.1 ");
  out_.append(std::to_string(status));
  out_.append(" ");
  out_.append(reasonPhrase(status));
  out_.append("\r\n");
  bool has_type = false;
  for (const Header& h : extra) {
    if (equalsIgnoreCase(h.name, "content-length") || equalsIgnoreCase(h.name, "connection") ||
        equalsIgnoreCase(h.name, "transfer-encoding"))
      continue;
    if (equalsIgnoreCase(h.name, "content-type")) has_type = true;
    out_.append(h.name);
    out_.append(": ");
    out_.append(h.value);
    out_.append("\r\n");
  }
  if (!has_type && !body.empty()) {
    out_.append("Content-Type: ");
    out_.append(content_type);
    out_.append("\r\n");
  }
  out_.append("Content-Length: ");
  out_.append(std::to_string(body.size()));
  out_.append(keep_alive_
                  ? (head_.version_minor == 0 ? "\r\nConnection: keep-alive\r\n\r\n" : "\r\n\r\n")
                  : "\r\nConnection: close\r\n\r\n");
  if (head_.method != "HEAD") out_.append(body);
  info_.status = status;
  if (!error.empty()) info_.error = std::move(error);
  finishRequest();
}

void Session::onClientTimer() {
  if (closed_) return;
  switch (phase_) {
    case Phase::kHead:
      if (in_.empty() && !head_started_) {
        closeNow("");  // idle keep-alive connection
        return;
      }
      keep_alive_ = false;
      in_.clear();
      bump(w_.c_.bad_requests);
      errorReply(408, "request head not received within " + millisText(o_.header_timeout));
      break;
    case Phase::kRouting:
      keep_alive_ = false;
      ++request_seq_;  // a late decision is dropped
      errorReply(504, "no routing decision within " + millisText(o_.header_timeout));
      break;
    case Phase::kExchange:
      if (!resp_head_done_ && try_state_ != TryState::kActive) return;
      closeNow("no progress for " + millisText(o_.idle_timeout));
      return;
    case Phase::kTunnel:
    case Phase::kClosing:
      closeNow("idle for " + millisText(o_.idle_timeout));
      return;
  }
  drive();
}

void Session::onTryTimer() {
  if (closed_ || phase_ != Phase::kExchange) return;
  if (try_state_ == TryState::kBackoff) {
    try_state_ = TryState::kNone;
    startTry();
  } else if (!resp_head_done_) {
    if (try_state_ == TryState::kWaitSlot) {
      Pool& p = w_.pool(pool_key_);
      auto it = std::find(p.waiters.begin(), p.waiters.end(), id_);
      if (it != p.waiters.end()) p.waiters.erase(it);
    }
    try_state_ = TryState::kNone;
    tryFailed(TryEnd::kTimeout,
              deadline_is_per_try_
                  ? "no response head from " + target_.key + " within the per-try timeout of " +
                        millisText(ex_->perTryTimeout())
                  : "request deadline of " + millisText(ex_->deadline()) + " passed");
  }
  drive();
}

// ---------------------------------------------------------------------------------------

Result<int> listenTcp(const std::string& address, uint16_t port_override) {
  sockaddr_storage ss;
  socklen_t len;
  if (!numericAddress(address, &ss, &len)) {
    return Status::invalidArgument("listen address \"" + address +
                                   "\" is not a numeric host:port (e.g. 127.0.0.1:8090)");
  }
  if (port_override != 0) {
    if (ss.ss_family == AF_INET)
      reinterpret_cast<sockaddr_in*>(&ss)->sin_port = htons(port_override);
    else
      reinterpret_cast<sockaddr_in6*>(&ss)->sin6_port = htons(port_override);
  }
  int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return Status::fromErrno(errno, "socket for " + address);
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
  if (bind(fd, reinterpret_cast<sockaddr*>(&ss), len) != 0 || listen(fd, 4096) != 0) {
    int err = errno;
    close(fd);
    Status s = Status::fromErrno(err, "listen on " + address);
    return Status(err == EADDRINUSE ? StatusCode::kUnavailable : s.code(), s.message());
  }
  return fd;
}

Result<int> listenUnix(const std::string& path) {
  sockaddr_un sa{};
  if (path.empty() || path.size() >= sizeof sa.sun_path) {
    return Status::invalidArgument("unix socket path \"" + path + "\" is empty or longer than " +
                                   std::to_string(sizeof sa.sun_path - 1) + " bytes");
  }
  sa.sun_family = AF_UNIX;
  std::memcpy(sa.sun_path, path.c_str(), path.size());
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return Status::fromErrno(errno, "socket for " + path);
  unlink(path.c_str());  // a stale socket from a previous run
  if (bind(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0 || listen(fd, 4096) != 0) {
    int err = errno;
    close(fd);
    return Status::fromErrno(err, "listen on " + path);
  }
  chmod(path.c_str(), 0666);
  return fd;
}

Status ProxyImpl::start() {
  std::lock_guard<std::mutex> lock(mu_);
  if (running_) return Status::failedPrecondition("the proxy is already running");
  std::vector<std::unique_ptr<Worker>> workers;
  for (int i = 0; i < o_.workers; ++i) {
    ASSIGN_OR_RETURN(auto loop, EventLoop::create());
    workers.push_back(std::make_unique<Worker>(*this, i, std::move(loop)));
  }
  std::vector<uint16_t> ports;
  for (const std::string& address : o_.listen_tcp) {
    uint16_t port = 0;
    for (auto& w : workers) {
      ASSIGN_OR_RETURN(int fd, listenTcp(address, port));
      if (port == 0) {
        sockaddr_storage ss{};
        socklen_t len = sizeof ss;
        getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len);
        port = ntohs(ss.ss_family == AF_INET ? reinterpret_cast<sockaddr_in*>(&ss)->sin_port
                                             : reinterpret_cast<sockaddr_in6*>(&ss)->sin6_port);
      }
      w->listeners_.push_back(std::make_unique<Listener>(*w, fd, false, true));
    }
    ports.push_back(port);
  }
  std::vector<int> unix_fds;
  for (const std::string& path : o_.listen_unix) {
    auto fd = listenUnix(path);
    if (!fd.isOk()) {
      for (int f : unix_fds) close(f);
      return fd.status();
    }
    unix_fds.push_back(*fd);
    for (auto& w : workers)
      w->listeners_.push_back(std::make_unique<Listener>(*w, *fd, true, false));
  }
  for (auto& w : workers) {
    for (auto& l : w->listeners_) {
      // One unix socket is shared by all loops: EPOLLEXCLUSIVE wakes one of them.
      l->events_ = l->unix_ ? (EPOLLIN | EPOLLEXCLUSIVE) : EPOLLIN;
      Status s = w->loop_->add(l->fd_, l->events_, l.get());
      if (!s.isOk()) {
        for (int f : unix_fds) close(f);
        return s;
      }
    }
  }
  workers_ = std::move(workers);
  ports_ = std::move(ports);
  unix_fds_ = std::move(unix_fds);
  for (auto& w : workers_) {
    Worker* wp = w.get();
    w->thread_ = std::thread([wp] { wp->loop_->run(); });
  }
  running_ = true;
  return Status::ok();
}

void ProxyImpl::stop() {
  std::lock_guard<std::mutex> lock(mu_);
  if (!running_) return;
  running_ = false;
  for (auto& w : workers_) {
    Worker* wp = w.get();
    milliseconds grace = o_.stop_grace;
    wp->loop_->post([wp, grace] {
      wp->beginDrain();
      // Past the grace, whatever is still in flight is cut.
      EventLoop::TimerId id = wp->loop_->createTimer([wp] { wp->loop_->stop(); });
      wp->loop_->armTimer(id, wp->loop_->now() + grace);
    });
  }
  for (auto& w : workers_) w->thread_.join();
  dials_.shutdown();
  workers_.clear();
  for (int fd : unix_fds_) close(fd);
  unix_fds_.clear();
  for (const std::string& path : o_.listen_unix) unlink(path.c_str());
}

void ProxyImpl::adopt(int fd, std::string already_read, bool tls, std::string remote) {
  std::lock_guard<std::mutex> lock(mu_);
  if (!running_ || workers_.empty()) {
    close(fd);
    return;
  }
  Worker* w = workers_[next_adopt_.fetch_add(1) % workers_.size()].get();
  auto data = std::make_shared<std::string>(std::move(already_read));
  auto rem = std::make_shared<std::string>(std::move(remote));
  w->loop_->post([w, fd, data, tls, rem] { w->adopt(fd, std::move(*data), tls, std::move(*rem)); });
}

ProxyCounters ProxyImpl::counters() const {
  ProxyCounters c;
  auto& mu = const_cast<std::mutex&>(mu_);
  std::lock_guard<std::mutex> lock(mu);
  for (const auto& w : workers_) {
    const WorkerCounters& x = w->c_;
    auto ld = [](const std::atomic<uint64_t>& a) { return a.load(std::memory_order_relaxed); };
    c.connections_accepted += ld(x.connections_accepted);
    c.connections_active += ld(x.connections_active);
    c.requests += ld(x.requests);
    c.local_replies += ld(x.local_replies);
    c.bad_requests += ld(x.bad_requests);
    c.bytes_in += ld(x.bytes_in);
    c.bytes_out += ld(x.bytes_out);
    c.upstream_connects += ld(x.upstream_connects);
    c.upstream_reused += ld(x.upstream_reused);
    c.upstream_stale += ld(x.upstream_stale);
    c.connect_failures += ld(x.connect_failures);
    c.resets += ld(x.resets);
    c.timeouts += ld(x.timeouts);
    c.bad_responses += ld(x.bad_responses);
    c.retries += ld(x.retries);
    c.tunnels += ld(x.tunnels);
  }
  return c;
}

}  // namespace

Result<std::unique_ptr<ProxyServer>> ProxyServer::create(ProxyOptions options, Router& router) {
  if (options.workers < 1 || options.workers > 256) {
    return Status::invalidArgument("workers is " + std::to_string(options.workers) +
                                   "; use 1..256");
  }
  if (options.listen_tcp.empty() && options.listen_unix.empty()) {
    // Allowed: a server fed only through adopt().
  }
  for (const std::string& a : options.listen_tcp) {
    sockaddr_storage ss;
    socklen_t len;
    if (!numericAddress(a, &ss, &len)) {
      return Status::invalidArgument("listen_tcp \"" + a +
                                     "\" is not a numeric host:port (e.g. 127.0.0.1:8090)");
    }
  }
  if (options.max_pending_bytes < 4096 || options.limits.max_head_bytes < 256 ||
      options.max_connections_per_worker < 1 || options.upstream_max_per_key < 1) {
    return Status::invalidArgument(
        "limits too small: max_pending_bytes >= 4096, max head >= 256, connection limits >= 1");
  }
  return std::unique_ptr<ProxyServer>(new ProxyImpl(std::move(options), router));
}

}  // namespace edge::gateway
