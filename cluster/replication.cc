// The replication loop: one thread, epoll over every connection and an eventfd that
// wakes it for tasks posted by the public methods. What goes over the wire is in
// replication_wire.h.
#include "cluster/replication.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include "cluster/replication_wire.h"
#include "common/log.h"
#include "common/net.h"
#include "identity/secure.h"

namespace edge::cluster {
namespace {

using namespace replication_wire;  // NOLINT: the wire is this file's vocabulary
using nlohmann::json;
using Steady = std::chrono::steady_clock;
using identity::SecureSession;
constexpr size_t kMaxUnauthenticated = 256;  // inbound handshakes in progress, all peers
constexpr size_t kMaxUnauthenticatedPerAddress = 16;
constexpr size_t kLowWater = 256 << 10;  // seal the next state part below this much output
constexpr auto kTick = std::chrono::milliseconds(50);
constexpr auto kMemberCheckEvery = std::chrono::seconds(1);

// ----------------------------------------------------------------- shared pieces

// Tasks for the loop, posted from any thread; outlives the Replicator when a Reply is
// kept by its owner.
struct Mailbox {
  std::mutex mu;
  std::deque<std::function<void()>> tasks;
  bool closed = false;
  int wake_fd = -1;
  ~Mailbox() {
    if (wake_fd >= 0) ::close(wake_fd);
  }
  bool post(std::function<void()> task) {
    {
      std::lock_guard<std::mutex> lock(mu);
      if (closed) return false;
      tasks.push_back(std::move(task));
    }
    uint64_t one = 1;
    (void)!::write(wake_fd, &one, sizeof(one));
    return true;
  }
};

// A request() caller waiting for its answer.
struct Waiter {
  std::mutex mu;
  std::condition_variable cv;
  bool done = false;
  Result<json> result = Status::deadlineExceeded("no answer from the supernode in time");
  void set(Result<json> r) {
    std::lock_guard<std::mutex> lock(mu);
    if (done) return;
    result = std::move(r);
    done = true;
    cv.notify_all();
  }
};

struct PendingRequest {
  std::shared_ptr<Waiter> waiter;
  Steady::time_point deadline;
};

struct Conn {
  uint64_t id = 0;
  int fd = -1;
  bool outbound = false;
  bool connecting = false;
  bool registered_out = false;  // EPOLLOUT in the epoll set
  uint32_t peer_addr = 0;
  std::unique_ptr<SecureSession> sec;
  std::string peer;       // once established
  bool accepted = false;  // established and checked (member / supernode id)
  std::string out;
  size_t out_off = 0;
  Steady::time_point deadline{};  // handshake (and hello) must be done by then
  Steady::time_point last_recv{}, last_send{}, last_progress{};
  // Sending a state, part by part (either direction).
  EncodedPtr sending;
  size_t next_part = 0;
  // Supernode side.
  bool hello_seen = false;
  bool awaiting_peer = false;  // asked for the member's copy
  Steady::time_point asked_at{};
  std::string acked_digest, sent_digest;
  size_t in_flight = 0;  // requests handed to on_request, not yet answered
  // Receiving a state.
  uint64_t rx_transfer = 0;
  uint32_t rx_count = 0, rx_next = 0;
  std::string rx;

  size_t pending() const { return out.size() - out_off; }
};

enum class Role { kNone, kMember, kSupernode };

class ReplicatorImpl final : public Replicator {
 public:
  ReplicatorImpl(const identity::NodeIdentity& self, Options options)
      : self_(self), options_(std::move(options)), mailbox_(std::make_shared<Mailbox>()) {}

  ~ReplicatorImpl() override {
    stop();
    finish();  // when stop() ran from a callback
    if (ep_ >= 0) ::close(ep_);
  }

  Status init() {
    mailbox_->wake_fd = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (mailbox_->wake_fd < 0) return Status::fromErrno(errno, "replication: eventfd");
    ep_ = ::epoll_create1(EPOLL_CLOEXEC);
    if (ep_ < 0) return Status::fromErrno(errno, "replication: epoll_create1");
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u64 = 0;
    if (::epoll_ctl(ep_, EPOLL_CTL_ADD, mailbox_->wake_fd, &ev) != 0)
      return Status::fromErrno(errno, "replication: epoll_ctl");
    local_ = localOf(ClusterState{});
    running_ = true;
    thread_ = std::thread([this] { loop(); });
    return Status::ok();
  }

  void becomeSupernode() override {
    mailbox_->post([this] {
      if (role_ == Role::kSupernode) return;
      dropAll("this node became the supernode");
      role_ = Role::kSupernode;
      super_id_.clear();
      super_endpoint_.clear();
      LOG_INFO("replication: serving members as the supernode");
    });
  }

  void followSupernode(const std::string& node_id, const std::string& endpoint) override {
    mailbox_->post([this, node_id, endpoint] {
      if (role_ == Role::kMember && super_id_ == node_id && super_endpoint_ == endpoint) return;
      dropAll("the supernode changed");
      role_ = Role::kMember;
      super_id_ = node_id;
      super_endpoint_ = endpoint;
      backoff_ = options_.backoff_initial;
      next_dial_ = Steady::now();
      LOG_INFO("replication: following the supernode")
          .kv("supernode", node_id)
          .kv("endpoint", endpoint);
    });
  }

  void standBy() override {
    mailbox_->post([this] {
      dropAll("no supernode");
      role_ = Role::kNone;
      super_id_.clear();
      super_endpoint_.clear();
    });
  }

  void publish(const ClusterState& state) override {
    uint64_t transfer = next_transfer_.fetch_add(1) + 1;
    auto enc = encodeState(state, transfer);
    if (!enc.isOk()) {
      ++counters_.states_too_large;
      LOG_ERROR("replication: state not published").kv("error", enc.status().message());
      return;
    }
    auto copy = std::make_shared<ClusterState>(state);
    std::set<Hlc> stamps = stampsOf(state);
    Hlc max = state.maxHlc();
    mailbox_->post([this, e = std::move(*enc), copy, stamps = std::move(stamps), max]() mutable {
      std::string digest = e->digest;
      local_ = Local{copy, std::move(digest), e, std::move(stamps), max};
      have_published_ = true;
      if (role_ == Role::kSupernode) {
        // flush() may close a connection: not while iterating over them.
        std::vector<uint64_t> ids;
        for (auto& [id, c] : conns_) {
          maybeSendState(c);
          ids.push_back(id);
        }
        for (uint64_t id : ids) flush(id);
      } else if (role_ == Role::kMember) {
        if (Conn* c = memberConn()) {
          sendHello(*c);
          flush(c->id);
        }
      }
    });
  }

  Result<json> request(const std::string& kind, json body,
                       std::chrono::milliseconds timeout) override {
    if (std::this_thread::get_id() == loop_thread_id_.load())
      return Status::failedPrecondition(
          "request() from a replication callback would wait on "
          "its own loop");
    if (!isKind(kind))
      return Status::invalidArgument("request kind \"" + kind.substr(0, 80) +
                                     "\": expected 1..64 of a-z 0-9 . _ -");
    auto waiter = std::make_shared<Waiter>();
    auto deadline = Steady::now() + timeout;
    {
      std::lock_guard<std::mutex> lock(waiters_mu_);
      waiters_.insert(waiter);
    }
    struct Forget {
      ReplicatorImpl* self;
      std::shared_ptr<Waiter> w;
      ~Forget() {
        std::lock_guard<std::mutex> lock(self->waiters_mu_);
        self->waiters_.erase(w);
      }
    } forget{this, waiter};
    bool posted = mailbox_->post([this, waiter, kind, body = std::move(body), deadline]() mutable {
      startRequest(waiter, kind, std::move(body), deadline);
    });
    if (!posted) return Status::failedPrecondition("the replicator is stopped");
    std::unique_lock<std::mutex> lock(waiter->mu);
    waiter->cv.wait_until(lock, deadline, [&] { return waiter->done; });
    if (!waiter->done) return Status::deadlineExceeded("no answer from the supernode in time");
    return waiter->result;
  }

  void serve(int fd, std::string already_read) override {
    sockaddr_in from{};
    socklen_t len = sizeof(from);
    if (::getpeername(fd, reinterpret_cast<sockaddr*>(&from), &len) != 0) from = {};
    // Owned by the task: closed with it when the task is dropped (stop) before it ran.
    auto owned = std::shared_ptr<int>(new int(fd), [](int* p) {
      if (*p >= 0) ::close(*p);
      delete p;
    });
    mailbox_->post(
        [this, owned, bytes = std::move(already_read), addr = from.sin_addr.s_addr]() mutable {
          int taken = *owned;
          *owned = -1;
          adopt(taken, std::move(bytes), addr);
        });
  }

  void stop() override {
    {
      std::lock_guard<std::mutex> lock(mailbox_->mu);
      mailbox_->closed = true;
      uint64_t one = 1;
      if (mailbox_->wake_fd >= 0) (void)!::write(mailbox_->wake_fd, &one, sizeof(one));
    }
    running_ = false;
    // From a callback: the loop ends once it returns; the destructor finishes.
    if (std::this_thread::get_id() == thread_.get_id()) return;
    finish();
  }

  // Joins the loop and releases what it owned; idempotent.
  void finish() {
    std::lock_guard<std::mutex> stopping(stop_mu_);
    if (thread_.joinable()) thread_.join();
    // The loop is gone: what it owned is ours now (requests_ waiters are in waiters_).
    while (!conns_.empty()) closeConn(conns_.begin()->first, "stopped", nullptr);
    requests_.clear();
    {
      std::lock_guard<std::mutex> lock(mailbox_->mu);
      mailbox_->tasks.clear();
    }
    // Callers still waiting, whether their request left or not.
    std::lock_guard<std::mutex> lock(waiters_mu_);
    for (const auto& w : waiters_) w->set(Status::cancelled("the replicator stopped"));
  }

  Counters counters() const override {
    Counters c;
    c.connections_accepted = counters_.connections_accepted;
    c.refused_handshake = counters_.refused_handshake;
    c.refused_not_member = counters_.refused_not_member;
    c.refused_wrong_peer = counters_.refused_wrong_peer;
    c.malformed = counters_.malformed;
    c.dropped_slow = counters_.dropped_slow;
    c.dropped_idle = counters_.dropped_idle;
    c.states_sent = counters_.states_sent;
    c.states_received = counters_.states_received;
    c.states_too_large = counters_.states_too_large;
    c.bytes_sent = counters_.bytes_sent;
    c.requests_sent = counters_.requests_sent;
    c.requests_served = counters_.requests_served;
    c.dials = counters_.dials;
    return c;
  }

  size_t connections() const override { return accepted_count_; }

 private:
  struct AtomicCounters {
    std::atomic<uint64_t> connections_accepted{0}, refused_handshake{0}, refused_not_member{0},
        refused_wrong_peer{0}, malformed{0}, dropped_slow{0}, dropped_idle{0}, states_sent{0},
        states_received{0}, states_too_large{0}, bytes_sent{0}, requests_sent{0},
        requests_served{0}, dials{0};
  };
  // This node's copy, encoded once.
  struct Local {
    std::shared_ptr<const ClusterState> state;
    std::string digest;
    EncodedPtr enc;  // made when first needed (localEncoded)
    std::set<Hlc> stamps;
    Hlc max;
  };
  enum class Why { kNone, kHandshake, kMalformed, kSlow, kIdle, kNotMember };

  bool isMember(const std::string& node_id) {
    try {
      return options_.is_member && options_.is_member(node_id);
    } catch (...) {
      return false;
    }
  }

  // A copy received (or the empty one): encoded for sending only when needed, since most
  // members never send theirs.
  static Local localOf(ClusterState s) {
    std::string digest;
    try {
      digest = s.digest();
    } catch (const std::exception&) {
      digest.clear();  // text that cannot be encoded: never equal to a peer's digest
    }
    std::set<Hlc> stamps = stampsOf(s);
    Hlc max = s.maxHlc();
    return Local{std::make_shared<ClusterState>(std::move(s)), std::move(digest), nullptr,
                 std::move(stamps), std::move(max)};
  }

  // This node's copy encoded for sending; nullptr when it cannot be (too large).
  const EncodedPtr& localEncoded() {
    if (!local_.enc && local_.state) {
      auto enc = encodeState(*local_.state, next_transfer_.fetch_add(1) + 1);
      if (enc.isOk()) {
        local_.enc = *enc;
      } else {
        ++counters_.states_too_large;
        LOG_ERROR("replication: state not sent").kv("error", enc.status().message());
        local_.state = nullptr;  // not again
      }
    }
    return local_.enc;
  }

  // ------------------------------------------------------------- the loop

  void loop() {
    loop_thread_id_ = std::this_thread::get_id();
    epoll_event events[128];
    while (running_) {
      int n = ::epoll_wait(ep_, events, 128, static_cast<int>(kTick.count()));
      if (n < 0 && errno != EINTR) {
        LOG_ERROR("replication: epoll_wait failed").kv("error", std::strerror(errno));
        break;
      }
      for (int i = 0; i < n && running_; ++i) {
        uint64_t id = events[i].data.u64;
        if (id == 0) {
          uint64_t v;
          (void)!::read(mailbox_->wake_fd, &v, sizeof(v));
          continue;
        }
        uint32_t ev = events[i].events;
        if (ev & EPOLLOUT) writeConn(id);
        if (ev & (EPOLLIN | EPOLLHUP | EPOLLERR)) readConn(id);
      }
      runTasks();
      timers();
    }
    loop_thread_id_ = std::thread::id();
  }

  void runTasks() {
    for (int round = 0; round < 4; ++round) {
      std::deque<std::function<void()>> tasks;
      {
        std::lock_guard<std::mutex> lock(mailbox_->mu);
        tasks.swap(mailbox_->tasks);
      }
      if (tasks.empty()) return;
      for (auto& t : tasks) {
        if (!running_) return;
        t();
      }
    }
  }

  void timers() {
    auto now = Steady::now();
    std::vector<std::pair<uint64_t, Why>> doomed;
    std::vector<uint64_t> pinged;
    // A node that left the member list stops receiving the state within a second.
    bool recheck = role_ == Role::kSupernode && now >= next_member_check_;
    if (recheck) next_member_check_ = now + kMemberCheckEvery;
    for (auto& [id, c] : conns_) {
      if (recheck && c.accepted && !c.outbound && !isMember(c.peer)) {
        doomed.push_back({id, Why::kNotMember});
        continue;
      }
      // Asked for its copy, a member starts sending at once; one that does not is broken.
      if (c.awaiting_peer && c.rx_count == 0 && now - c.asked_at >= options_.handshake_timeout) {
        doomed.push_back({id, Why::kMalformed});
        continue;
      }
      if (!c.accepted || (c.outbound == false && !c.hello_seen)) {
        if (now >= c.deadline) doomed.push_back({id, Why::kHandshake});
        continue;
      }
      if (c.pending() > 0 && now - c.last_progress >= options_.stall_timeout) {
        doomed.push_back({id, Why::kSlow});
      } else if (now - c.last_recv >= options_.idle_timeout) {
        doomed.push_back({id, Why::kIdle});
      } else if (now - c.last_send >= options_.keepalive_interval && c.pending() == 0) {
        sendControl(c, kPing, json::object());
        pinged.push_back(id);
      }
    }
    for (uint64_t id : pinged) flush(id);
    for (auto& [id, why] : doomed) {
      if (why == Why::kHandshake) ++counters_.refused_handshake;
      if (why == Why::kSlow) ++counters_.dropped_slow;
      if (why == Why::kIdle) ++counters_.dropped_idle;
      if (why == Why::kNotMember) ++counters_.refused_not_member;
      if (why == Why::kMalformed) ++counters_.malformed;
      closeConn(id,
                why == Why::kHandshake   ? "handshake not done in time"
                : why == Why::kSlow      ? "the peer does not read"
                : why == Why::kNotMember ? "no longer a member"
                : why == Why::kMalformed ? "asked for its copy, sent nothing"
                                         : "nothing heard from the peer",
                nullptr);
    }
    for (auto it = requests_.begin(); it != requests_.end();) {
      if (now >= it->second.deadline) {
        it->second.waiter->set(Status::deadlineExceeded("no answer from the supernode in time"));
        it = requests_.erase(it);
      } else {
        ++it;
      }
    }
    if (role_ == Role::kMember && member_conn_ == 0 && now >= next_dial_) dial();
  }

  // ------------------------------------------------------------- connections

  Conn* find(uint64_t id) {
    auto it = conns_.find(id);
    return it == conns_.end() ? nullptr : &it->second;
  }
  Conn* memberConn() { return member_conn_ ? find(member_conn_) : nullptr; }

  void watch(Conn& c, bool want_out) {
    if (c.registered_out == want_out) return;
    epoll_event ev{};
    ev.events = EPOLLIN | (want_out ? EPOLLOUT : 0u);
    ev.data.u64 = c.id;
    ::epoll_ctl(ep_, EPOLL_CTL_MOD, c.fd, &ev);
    c.registered_out = want_out;
  }

  bool addConn(Conn c) {
    epoll_event ev{};
    ev.events = EPOLLIN | (c.connecting ? EPOLLOUT : 0u);
    ev.data.u64 = c.id;
    c.registered_out = c.connecting;
    if (::epoll_ctl(ep_, EPOLL_CTL_ADD, c.fd, &ev) != 0) {
      ::close(c.fd);
      return false;
    }
    uint64_t id = c.id;
    conns_.emplace(id, std::move(c));
    return true;
  }

  void dial() {
    ++counters_.dials;
    // A failure before the connection exists waits like a lost connection.
    auto retry_later = [this] {
      next_dial_ = Steady::now() + backoff_;
      backoff_ = std::min(backoff_ * 2, options_.backoff_max);
    };
    std::string host;
    int port = 0;
    sockaddr_in to{};
    to.sin_family = AF_INET;
    if (!net::splitHostPort(super_endpoint_, &host, &port) || port <= 0 ||
        ::inet_pton(AF_INET, host.c_str(), &to.sin_addr) != 1) {
      LOG_WARN("replication: the supernode's endpoint is not IPv4:port")
          .kv("endpoint", super_endpoint_);
      retry_later();
      return;
    }
    to.sin_port = htons(static_cast<uint16_t>(port));
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) return retry_later();
    int one = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (::connect(fd, reinterpret_cast<sockaddr*>(&to), sizeof(to)) != 0 && errno != EINPROGRESS) {
      ::close(fd);
      return retry_later();
    }
    Conn c;
    c.id = next_id_++;
    c.fd = fd;
    c.outbound = true;
    c.connecting = true;
    c.sec = std::make_unique<SecureSession>(SecureSession::Role::kInitiator, self_,
                                            options_.cluster_key);
    c.out.push_back(static_cast<char>(kPortByte));
    c.sec->appendOutput(&c.out);
    auto now = Steady::now();
    c.deadline = now + options_.handshake_timeout;
    c.last_recv = c.last_send = c.last_progress = now;
    uint64_t id = c.id;
    if (addConn(std::move(c))) {
      member_conn_ = id;
    } else {
      retry_later();
    }
  }

  void adopt(int fd, std::string bytes, uint32_t addr) {
    size_t unauthenticated = 0, same = 0;
    for (const auto& [id, c] : conns_) {
      if (c.outbound || c.accepted) continue;
      ++unauthenticated;
      if (c.peer_addr == addr) ++same;
    }
    if (role_ != Role::kSupernode || bytes.empty() ||
        static_cast<unsigned char>(bytes[0]) != kPortByte ||
        unauthenticated >= kMaxUnauthenticated || same >= kMaxUnauthenticatedPerAddress) {
      ::close(fd);
      return;
    }
    int flags = ::fcntl(fd, F_GETFL);
    if (flags >= 0) ::fcntl(fd, F_SETFL, flags | O_NONBLOCK);
    int one = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    Conn c;
    c.id = next_id_++;
    c.fd = fd;
    c.peer_addr = addr;
    c.sec = std::make_unique<SecureSession>(SecureSession::Role::kResponder, self_,
                                            options_.cluster_key);
    auto now = Steady::now();
    c.deadline = now + options_.handshake_timeout;
    c.last_recv = c.last_send = c.last_progress = now;
    uint64_t id = c.id;
    if (!addConn(std::move(c))) return;
    consume(id, std::string_view(bytes).substr(1));
  }

  // Closes `id`; `why` for the log. Requests waiting on the supernode's connection fail.
  void closeConn(uint64_t id, std::string_view why, const Status* cause) {
    auto it = conns_.find(id);
    if (it == conns_.end()) return;
    Conn& c = it->second;
    ::epoll_ctl(ep_, EPOLL_CTL_DEL, c.fd, nullptr);
    ::close(c.fd);
    if (c.accepted) --accepted_count_;
    if (!c.peer.empty() && !c.outbound) {
      auto m = members_.find(c.peer);
      if (m != members_.end() && m->second == id) members_.erase(m);
    }
    LOG_DEBUG("replication: connection closed")
        .kv("peer", c.peer.empty() ? std::string("?") : c.peer)
        .kv("why", std::string(why))
        .kv("error", cause ? cause->message() : std::string());
    if (id == member_conn_) {
      member_conn_ = 0;
      next_dial_ = Steady::now() + backoff_;
      backoff_ = std::min(backoff_ * 2, options_.backoff_max);
      for (auto& [rid, p] : requests_)
        p.waiter->set(Status::unavailable("the connection to the supernode was lost"));
      requests_.clear();
    }
    conns_.erase(it);
  }

  void dropAll(std::string_view why) {
    while (!conns_.empty()) closeConn(conns_.begin()->first, why, nullptr);
    for (auto& [rid, p] : requests_)
      p.waiter->set(Status::unavailable("the connection to the supernode was lost"));
    requests_.clear();
  }

  void fail(uint64_t id, Why why, const Status& s) {
    if (why == Why::kMalformed) ++counters_.malformed;
    if (why == Why::kHandshake) ++counters_.refused_handshake;
    closeConn(id, why == Why::kMalformed ? "malformed" : "refused", &s);
  }

  // ------------------------------------------------------------- I/O

  void writeConn(uint64_t id) {
    Conn* c = find(id);
    if (!c) return;
    if (c->connecting) {
      int err = 0;
      socklen_t len = sizeof(err);
      ::getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len);
      if (err != 0) {
        Status s = Status::unavailable(std::strerror(err));
        closeConn(id, "connect failed", &s);
        return;
      }
      c->connecting = false;
    }
    flush(id);
  }

  // Seals the next state parts while output is low, writes what the socket takes.
  void flush(uint64_t id) {
    Conn* c = find(id);
    if (!c || c->connecting) return;
    for (int round = 0; round < 64; ++round) {
      while (c->sending && c->pending() < kLowWater) {
        if (c->next_part < c->sending->parts.size()) {
          if (!c->sec->send(c->sending->parts[c->next_part]).isOk()) {
            Status s = Status::internal("cannot seal a state part");
            closeConn(id, "seal", &s);
            return;
          }
          c->sec->appendOutput(&c->out);
          ++c->next_part;
        }
        if (c->next_part >= c->sending->parts.size()) {
          c->sending = nullptr;
          ++counters_.states_sent;
          maybeSendState(*c);
        }
      }
      if (c->pending() == 0) break;
      ssize_t n =
          ::send(c->fd, c->out.data() + c->out_off, c->pending(), MSG_NOSIGNAL | MSG_DONTWAIT);
      if (n < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) break;
        Status s = Status::unavailable(std::strerror(errno));
        closeConn(id, "send failed", &s);
        return;
      }
      counters_.bytes_sent += static_cast<uint64_t>(n);
      c->out_off += static_cast<size_t>(n);
      auto now = Steady::now();
      c->last_progress = c->last_send = now;
      if (c->out_off == c->out.size()) {
        c->out.clear();
        c->out_off = 0;
      } else if (c->out_off > (1u << 20)) {
        c->out.erase(0, c->out_off);
        c->out_off = 0;
      }
    }
    // Below kLowWater, one sealed state part, then replies and pings up to the limit.
    if (c->pending() > kLowWater + kStatePartBytes + 1024 + options_.max_pending_output) {
      ++counters_.dropped_slow;
      closeConn(id, "too much output pending", nullptr);
      return;
    }
    watch(*c, c->pending() > 0 || (c->sending != nullptr));
  }

  void readConn(uint64_t id) {
    char buf[65536];
    for (int round = 0; round < 32; ++round) {
      Conn* c = find(id);
      if (!c) return;
      if (c->connecting) {
        writeConn(id);
        return;
      }
      ssize_t n = ::recv(c->fd, buf, sizeof(buf), MSG_DONTWAIT);
      if (n == 0) {
        if (!c->accepted) ++counters_.refused_handshake;
        closeConn(id, "closed by the peer", nullptr);
        return;
      }
      if (n < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) return;
        if (!c->accepted) ++counters_.refused_handshake;
        Status s = Status::unavailable(std::strerror(errno));
        closeConn(id, "recv failed", &s);
        return;
      }
      c->last_recv = Steady::now();
      if (!consume(id, std::string_view(buf, static_cast<size_t>(n)))) return;
      if (static_cast<size_t>(n) < sizeof(buf)) return;
    }
  }

  // Feeds bytes from `id`; false when the connection is gone.
  bool consume(uint64_t id, std::string_view data) {
    Conn* c = find(id);
    if (!c) return false;
    bool was_established = c->sec->established();
    std::vector<std::string> messages;
    Status s = c->sec->feed(data, &messages);
    c->sec->appendOutput(&c->out);
    if (!s.isOk()) {
      fail(id, c->accepted ? Why::kMalformed : Why::kHandshake, s);
      return false;
    }
    if (!was_established && c->sec->established()) {
      if (!onEstablished(*c)) return false;
    }
    for (auto& m : messages) {
      if (!find(id)) return false;
      Status r;
      try {
        r = onMessage(*find(id), m);
      } catch (const std::exception& e) {
        r = Status::internal(std::string("while handling a message: ") + e.what());
      }
      if (!r.isOk()) {
        if (find(id)) fail(id, Why::kMalformed, r);
        return false;
      }
    }
    if (!find(id)) return false;
    flush(id);
    return find(id) != nullptr;
  }

  bool onEstablished(Conn& c) {
    c.peer = c.sec->peerId();
    uint64_t id = c.id;
    if (c.outbound) {
      if (c.peer != super_id_) {
        ++counters_.refused_wrong_peer;
        Status s = Status::permissionDenied("answered as node " + c.peer + ", not " + super_id_);
        closeConn(id, "not the supernode", &s);
        return false;
      }
      c.accepted = true;
      ++accepted_count_;
      ++counters_.connections_accepted;
      backoff_ = options_.backoff_initial;
      c.rx.clear();
      c.rx_count = 0;
      sendHello(c);
      LOG_DEBUG("replication: connected to the supernode").kv("supernode", c.peer);
      return true;
    }
    if (!isMember(c.peer)) {
      ++counters_.refused_not_member;
      Status s = Status::permissionDenied("node " + c.peer + " is not a member");
      closeConn(id, "not a member", &s);
      return false;
    }
    if (accepted_count_ >= options_.max_members) {
      Status s = Status::resourceExhausted("max_members reached");
      closeConn(id, "too many members", &s);
      return false;
    }
    // A member that reconnects replaces its former connection.
    auto old = members_.find(c.peer);
    if (old != members_.end() && old->second != id) closeConn(old->second, "replaced", nullptr);
    Conn* again = find(id);
    if (!again) return false;
    again->accepted = true;
    ++accepted_count_;
    ++counters_.connections_accepted;
    members_[again->peer] = id;
    return true;
  }

  void sendControl(Conn& c, MsgType t, const json& body) {
    if (!c.sec->established()) return;
    if (!c.sec->send(control(t, body)).isOk()) return;
    c.sec->appendOutput(&c.out);
  }

  void sendHello(Conn& c) {
    sendControl(c, kHello,
                {{"digest", local_.digest.empty() ? std::string(64, '0') : local_.digest},
                 {"max_hlc", local_.max.toString()}});
  }

  // Supernode: starts sending the published state to `c` when it lacks it.
  void maybeSendState(Conn& c) {
    if (c.outbound) return;  // member side sends only when asked
    if (role_ != Role::kSupernode || !have_published_) return;
    if (!c.accepted || !c.hello_seen || c.awaiting_peer) return;
    if (c.sending || local_.digest == c.acked_digest || local_.digest == c.sent_digest) return;
    if (!localEncoded()) return;
    c.sending = local_.enc;
    c.next_part = 0;
    c.sent_digest = local_.digest;
  }

  // ------------------------------------------------------------- messages

  Status onMessage(Conn& c, std::string_view m) {
    if (m.size() < 2) return Status::invalidArgument("message: shorter than its header");
    if (static_cast<unsigned char>(m[0]) != kVersion)
      return Status::invalidArgument("message: version " +
                                     std::to_string(static_cast<unsigned char>(m[0])) +
                                     ", expected " + std::to_string(kVersion));
    auto type = static_cast<unsigned char>(m[1]);
    if (type == kState) return onStatePart(c, m);
    if (type < kHello || type > kPing)
      return Status::invalidArgument("message: type " + std::to_string(type) + " is unknown");
    ASSIGN_OR_RETURN(json j, parseJson(m.substr(2), "message"));
    if (!j.is_object()) return Status::invalidArgument("message: expected a JSON object");
    bool super = !c.outbound;
    switch (type) {
      case kPing:
        return Status::ok();
      case kHello:
        if (!super) return Status::invalidArgument("hello: only a member sends it");
        return onHello(c, j);
      case kAck: {
        if (!super) return Status::invalidArgument("ack: only a member sends it");
        auto d = j.find("digest");
        if (d == j.end() || !isDigest(*d))
          return Status::invalidArgument("ack.digest: expected 64 hex characters");
        c.acked_digest = d->get<std::string>();
        maybeSendState(c);
        return Status::ok();
      }
      case kAsk:
        if (super) return Status::invalidArgument("ask: only the supernode sends it");
        if (!c.sending && localEncoded()) {
          c.sending = local_.enc;
          c.next_part = 0;
        }
        return Status::ok();
      case kRequest:
        if (!super) return Status::invalidArgument("request: only a member sends it");
        return onRequest(c, j);
      case kReply:
        if (super) return Status::invalidArgument("reply: only the supernode sends it");
        return onReply(j);
    }
    return Status::ok();
  }

  Status onHello(Conn& c, const json& j) {
    auto d = j.find("digest");
    auto h = j.find("max_hlc");
    if (d == j.end() || !isDigest(*d))
      return Status::invalidArgument("hello.digest: expected 64 hex characters");
    if (h == j.end() || !h->is_string())
      return Status::invalidArgument("hello.max_hlc: expected a clock stamp string");
    Result<Hlc> max = Hlc::parse(h->get_ref<const std::string&>());
    if (!max.isOk()) return Status::invalidArgument("hello.max_hlc: " + max.status().message());
    c.hello_seen = true;
    c.acked_digest = d->get<std::string>();
    // What was sent on this connection is not sent again because of a hello: a member
    // whose owner merges each state into its own copy (rather than taking it) would
    // otherwise be sent the state after every hello, forever. It gets the next publish.
    bool theirs_unknown = !max->isZero() && (!have_published_ || local_.stamps.count(*max) == 0) &&
                          local_.digest != c.acked_digest;
    if (theirs_unknown && !c.awaiting_peer) {
      c.awaiting_peer = true;
      c.asked_at = Steady::now();
      sendControl(c, kAsk, json::object());
      return Status::ok();
    }
    maybeSendState(c);
    return Status::ok();
  }

  Status onStatePart(Conn& c, std::string_view m) {
    if (m.size() < kStateHeader) return Status::invalidArgument("state: shorter than its header");
    if (!c.outbound && !c.awaiting_peer)
      return Status::invalidArgument("state: a member sends its copy only when asked");
    uint64_t transfer = getBig(m, 2, 8);
    auto index = static_cast<uint32_t>(getBig(m, 10, 4));
    auto count = static_cast<uint32_t>(getBig(m, 14, 4));
    std::string_view chunk = m.substr(kStateHeader);
    if (count == 0 || static_cast<uint64_t>(count) * kStatePartBytes > kMaxStateBytes)
      return Status::invalidArgument("state.count: " + std::to_string(count) + " parts, at most " +
                                     std::to_string(kMaxStateBytes / kStatePartBytes));
    if (chunk.size() > kStatePartBytes)
      return Status::invalidArgument("state: a part over " + std::to_string(kStatePartBytes) +
                                     " bytes");
    if (index == 0) {
      c.rx.clear();
      c.rx_transfer = transfer;
      c.rx_count = count;
      c.rx_next = 0;
    } else if (c.rx_count == 0 || transfer != c.rx_transfer || count != c.rx_count ||
               index != c.rx_next) {
      return Status::invalidArgument("state: part " + std::to_string(index) + " out of order");
    }
    c.rx.append(chunk);
    c.rx_next = index + 1;
    if (c.rx_next < c.rx_count) return Status::ok();
    std::string text = std::move(c.rx);
    c.rx.clear();
    c.rx_count = 0;
    ASSIGN_OR_RETURN(json j, parseJson(text, "state"));
    ASSIGN_OR_RETURN(ClusterState state, ClusterState::fromJson(j));
    ++counters_.states_received;
    uint64_t id = c.id;
    std::string peer = c.peer;
    if (c.outbound) {
      local_ = localOf(std::move(state));
      have_published_ = true;
      std::string digest = local_.digest;
      sendControl(c, kAck, {{"digest", digest}});
      if (digest != delivered_digest_) {
        delivered_digest_ = digest;
        if (options_.on_state) callback([&] { options_.on_state(*local_.state); });
      }
      return Status::ok();
    }
    c.awaiting_peer = false;
    if (options_.on_peer_state) callback([&] { options_.on_peer_state(peer, std::move(state)); });
    // The owner may have published since (a task, after this one): whatever it has now,
    // the member gets it unless it already holds it.
    mailbox_->post([this, id] {
      if (Conn* again = find(id)) {
        maybeSendState(*again);
        flush(id);
      }
    });
    return Status::ok();
  }

  Status onRequest(Conn& c, const json& j) {
    auto id = j.find("id");
    auto kind = j.find("kind");
    auto body = j.find("body");
    if (id == j.end() || !id->is_number_unsigned() || id->get<uint64_t>() == 0)
      return Status::invalidArgument("request.id: expected a positive integer");
    if (kind == j.end() || !kind->is_string() || !isKind(kind->get_ref<const std::string&>()))
      return Status::invalidArgument("request.kind: expected 1..64 of a-z 0-9 . _ -");
    if (body == j.end()) return Status::invalidArgument("request.body: missing");
    uint64_t rid = id->get<uint64_t>();
    if (c.in_flight >= options_.max_in_flight) {
      sendControl(c, kReply,
                  statusJson(rid, Status::resourceExhausted("more than " +
                                                            std::to_string(options_.max_in_flight) +
                                                            " requests waiting from this member")));
      return Status::ok();
    }
    ++c.in_flight;
    dispatchRequest(c.peer, c.id, rid, kind->get<std::string>(), *body, nullptr);
    return Status::ok();
  }

  // Hands a request to on_request; the answer goes back to connection `conn` (a member)
  // or to `local` (this node's own request()).
  void dispatchRequest(const std::string& from, uint64_t conn, uint64_t rid,
                       const std::string& kind, const json& body, std::shared_ptr<Waiter> local) {
    auto once = std::make_shared<std::atomic<bool>>(false);
    std::weak_ptr<Mailbox> box = mailbox_;
    Reply reply = [this, box, once, conn, rid, local](Result<json> r) {
      if (once->exchange(true)) return;
      if (local) {
        local->set(std::move(r));
        return;
      }
      auto mb = box.lock();
      if (!mb) return;
      mb->post([this, conn, rid, r = std::move(r)] {
        Conn* c = find(conn);
        if (!c) return;
        if (c->in_flight > 0) --c->in_flight;
        ++counters_.requests_served;
        sendControl(*c, kReply, statusJson(rid, r));
        flush(conn);
      });
    };
    if (!options_.on_request) {
      reply(Status::unimplemented("this supernode takes no requests"));
      return;
    }
    callback([&] { options_.on_request(from, kind, body, reply); });
  }

  Status onReply(const json& j) {
    auto id = j.find("id");
    auto ok = j.find("ok");
    if (id == j.end() || !id->is_number_unsigned())
      return Status::invalidArgument("reply.id: expected a positive integer");
    if (ok == j.end() || !ok->is_boolean())
      return Status::invalidArgument("reply.ok: expected true or false");
    Result<json> r = Status::internal("unset");
    if (ok->get<bool>()) {
      auto body = j.find("body");
      if (body == j.end()) return Status::invalidArgument("reply.body: missing");
      r = *body;
    } else {
      auto code = j.find("code");
      auto msg = j.find("message");
      if (code == j.end() || !code->is_number_integer() || code->get<int64_t>() <= 0 ||
          code->get<int64_t>() > static_cast<int64_t>(StatusCode::kInternal))
        return Status::invalidArgument("reply.code: expected a status code 1..12");
      if (msg == j.end() || !msg->is_string() ||
          msg->get_ref<const std::string&>().size() > kMaxMessageText)
        return Status::invalidArgument("reply.message: expected text of at most 4096 bytes");
      r = Status(static_cast<StatusCode>(code->get<int>()), msg->get<std::string>());
    }
    auto it = requests_.find(id->get<uint64_t>());
    if (it == requests_.end()) return Status::ok();  // timed out already: ignored
    it->second.waiter->set(std::move(r));
    requests_.erase(it);
    return Status::ok();
  }

  void startRequest(const std::shared_ptr<Waiter>& waiter, const std::string& kind, json body,
                    Steady::time_point deadline) {
    if (role_ == Role::kSupernode) {
      dispatchRequest(self_.id(), 0, 0, kind, body, waiter);
      return;
    }
    Conn* c = memberConn();
    if (!c || !c->accepted) {
      waiter->set(Status::unavailable("not connected to the supernode"));
      return;
    }
    if (requests_.size() >= options_.max_in_flight) {
      waiter->set(Status::resourceExhausted(std::to_string(options_.max_in_flight) +
                                            " requests already wait for the supernode"));
      return;
    }
    std::string m = control(kRequest, {{"id", next_request_}, {"kind", kind}, {"body", body}});
    if (m.size() > SecureSession::kMaxMessageBytes) {
      waiter->set(Status::invalidArgument("request body: larger than 1 MiB"));
      return;
    }
    if (!c->sec->send(m).isOk()) {
      waiter->set(Status::unavailable("the session to the supernode failed"));
      return;
    }
    c->sec->appendOutput(&c->out);
    requests_[next_request_++] = {waiter, deadline};
    ++counters_.requests_sent;
    flush(c->id);
  }

  template <typename F>
  void callback(F&& f) {
    try {
      f();
    } catch (const std::exception& e) {
      LOG_ERROR("replication: a callback threw").kv("error", e.what());
    } catch (...) {
      LOG_ERROR("replication: a callback threw");
    }
  }

  const identity::NodeIdentity self_;
  const Options options_;
  std::shared_ptr<Mailbox> mailbox_;
  int ep_ = -1;
  std::atomic<bool> running_{false};
  std::thread thread_;
  std::atomic<std::thread::id> loop_thread_id_{};
  std::atomic<uint64_t> next_transfer_{0};
  AtomicCounters counters_;
  std::mutex stop_mu_;
  std::mutex waiters_mu_;
  std::set<std::shared_ptr<Waiter>> waiters_;  // request() callers now waiting
  std::atomic<size_t> accepted_count_{0};

  // Loop thread only.
  Role role_ = Role::kNone;
  std::string super_id_, super_endpoint_;
  std::chrono::milliseconds backoff_{1000};
  Steady::time_point next_dial_{};
  Steady::time_point next_member_check_{};
  uint64_t member_conn_ = 0;
  uint64_t next_id_ = 1;
  uint64_t next_request_ = 1;
  std::map<uint64_t, Conn> conns_;
  std::map<std::string, uint64_t> members_;  // supernode: node id -> connection
  std::map<uint64_t, PendingRequest> requests_;
  Local local_;
  bool have_published_ = false;
  std::string delivered_digest_;
};

}  // namespace

Result<std::unique_ptr<Replicator>> Replicator::create(const identity::NodeIdentity& self,
                                                       Options options) {
  auto r = std::make_unique<ReplicatorImpl>(self, std::move(options));
  RETURN_IF_ERROR(r->init());
  return std::unique_ptr<Replicator>(std::move(r));
}

}  // namespace edge::cluster
