// The reverse-proxy engine's internals, shared by its source files; the public face is
// proxy.h (ProxyServer, Router, Exchange), and nothing outside gateway/proxy*.cc and
// gateway/upstream_pool.cc includes this header.
//
// The parts and where they live:
//  - proxy_buffer.h     Buffer and IoFlags (bytes and readiness of one connection)
//  - proxy_listener.cc  listening sockets, accept, adopted connections, socket addresses
//  - proxy_session.cc   Session: one client connection, its requests, tries and tunnel
//  - upstream_pool.cc   Upstream connections, the per-key keep-alive pools, connecting
//                       (blocking dials run on DialPool's threads, defined below)
//  - proxy.cc           Worker lifecycle, ProxyImpl (start/stop/adopt/counters), create()
//
// One Worker per thread owns an EventLoop, its listeners, its client Sessions and its
// upstream connections (Upstream) with their keep-alive pools.
//
// Every socket is registered once, edge-triggered, for EPOLLIN|EPOLLOUT|EPOLLRDHUP and
// never modified again (no epoll_ctl per request): readiness is remembered in IoFlags
// and each event runs Session::drive(), which makes all the progress it can in both
// directions and stops when nothing moves. Back-pressure: a side is read only while the
// bytes waiting for the other side stay under max_pending_bytes.
//
// Threading: a Worker and everything it owns (Listener, Session, Upstream, Pool) are
// touched only on that worker's loop thread; other threads reach them by posting to the
// loop (EventLoop::post). WorkerCounters are written by the worker and read by
// ProxyImpl::counters() from any thread (relaxed atomics). DialPool runs blocking dials
// on its own threads and posts the results back. ProxyImpl's start/stop/adopt/counters
// hold its mutex.
#pragma once

#include <sys/socket.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <vector>

#include "gateway/event_loop.h"
#include "gateway/proxy.h"
#include "gateway/proxy_buffer.h"

namespace edge::gateway::proxy_internal {

using std::chrono::milliseconds;
constexpr uint32_t kEvents = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET;
constexpr milliseconds kLinger{2000};

// Single-writer counters: the worker thread stores, counters() loads; no RMW needed.
inline void bump(std::atomic<uint64_t>& a, uint64_t n = 1) {
  a.store(a.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
}

// {"error":"...","upstream":"..."}: the body of the engine's own error replies.
std::string errorBody(std::string_view error, std::string_view upstream);

// Socket addresses (proxy_listener.cc).
bool isLoopback(const sockaddr_storage& ss);
// "ip:port", "[v6]:port" or "unix"; *ip_only (if given) gets the bare IP.
std::string addressText(const sockaddr_storage& ss, std::string* ip_only);
// Parses a numeric "a.b.c.d:port" or "[v6]:port"; false for host names.
bool numericAddress(const std::string& text, sockaddr_storage* ss, socklen_t* len);
// Non-blocking listening sockets (SO_REUSEPORT for TCP; a unix socket is mode 0666).
// kInvalidArgument for an address that is not numeric or a path that does not fit.
Result<int> listenTcp(const std::string& address, uint16_t port_override);
Result<int> listenUnix(const std::string& path);

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

}  // namespace edge::gateway::proxy_internal
