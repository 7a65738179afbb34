#include "backend/relay_server.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <map>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

#include "backend/signaling.h"
#include "common/log.h"
#include "common/net.h"

namespace edge::backend {
namespace {

using nlohmann::json;
using std::chrono::milliseconds;
using Steady = std::chrono::steady_clock;

constexpr size_t kMaxHandshakeLine = 256;
constexpr size_t kMaxJsonLine = 16 << 10;
constexpr std::string_view kMagic = "EDGE-RELAY/1 ";

// A connection's socket. The last owner closes it, so a thread that still holds one
// (a signal writing to a SEP being replaced) never writes into a reused fd number.
class Socket {
 public:
  Socket(int fd, std::atomic<size_t>* open) : fd_(fd), open_(open) {}
  ~Socket() {
    ::close(fd_);
    open_->fetch_sub(1);
  }
  Socket(const Socket&) = delete;
  Socket& operator=(const Socket&) = delete;
  int fd() const { return fd_; }

 private:
  int fd_;
  std::atomic<size_t>* open_;
};
using SocketPtr = std::shared_ptr<Socket>;

Result<std::pair<std::string, std::string>> splitHostPort(std::string_view text,
                                                          std::string_view what) {
  std::string_view host, port;
  if (text.starts_with("[")) {
    size_t close = text.find(']');
    if (close == std::string_view::npos || close + 1 >= text.size() || text[close + 1] != ':')
      return Status::invalidArgument(std::string(what) + " \"" + std::string(text) +
                                     "\": expected [ipv6]:port");
    host = text.substr(1, close - 1);
    port = text.substr(close + 2);
  } else {
    size_t colon = text.rfind(':');
    if (colon == std::string_view::npos)
      return Status::invalidArgument(std::string(what) + " \"" + std::string(text) +
                                     "\": expected host:port");
    host = text.substr(0, colon);
    port = text.substr(colon + 1);
  }
  bool digits = !port.empty() && port.size() <= 5;
  for (char c : port) digits = digits && c >= '0' && c <= '9';
  if (host.empty() || !digits || std::stoi(std::string(port)) > 65535)
    return Status::invalidArgument(std::string(what) + " \"" + std::string(text) +
                                   "\": expected host:port with a port of 0-65535");
  return std::pair(std::string(host), std::string(port));
}

// Waits for `events` on `fd` (or for `stop_fd`). 1 = ready, 0 = deadline, -1 = stopping.
int waitFd(int fd, short events, int stop_fd, Steady::time_point deadline) {
  for (;;) {
    auto left = std::chrono::duration_cast<milliseconds>(deadline - Steady::now()).count();
    if (left <= 0) return 0;
    pollfd p[2] = {{fd, events, 0}, {stop_fd, POLLIN, 0}};
    int n = ::poll(p, 2, static_cast<int>(std::min<int64_t>(left, 1 << 30)));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 || (p[1].revents & POLLIN)) return -1;
    if (n > 0) return 1;
  }
}

Status writeAll(int fd, std::string_view data, int stop_fd, Steady::time_point deadline) {
  return net::writeAll(fd, data, {.deadline = deadline, .stop_fd = stop_fd});
}

// Reads the first line byte by byte: whatever follows it (a BEP leg may send its first
// bytes early) must stay in the socket for splice.
Result<std::string> readHandshake(int fd, int stop_fd, Steady::time_point deadline) {
  std::string line;
  for (;;) {
    char c;
    ssize_t n = ::recv(fd, &c, 1, 0);
    if (n == 1) {
      if (c == '\n') {
        if (!line.empty() && line.back() == '\r') line.pop_back();
        return line;
      }
      if (line.size() + 1 >= kMaxHandshakeLine)
        return Status::invalidArgument("first line longer than " +
                                       std::to_string(kMaxHandshakeLine) + " bytes");
      line += c;
      continue;
    }
    if (n == 0) return Status::unavailable("closed before the first line");
    if (errno == EINTR) continue;
    if (errno != EAGAIN && errno != EWOULDBLOCK) return Status::fromErrno(errno, "recv");
    int w = waitFd(fd, POLLIN, stop_fd, deadline);
    if (w == 0) return Status::deadlineExceeded("no first line in time");
    if (w < 0) return Status::cancelled("relay stopping");
  }
}

// Buffered line reader for the JSON lines of SEPs and signal callers.
class LineReader {
 public:
  // kOk with a line, kUnavailable on close, kResourceExhausted for an oversized line,
  // kDeadlineExceeded / kCancelled from the wait.
  Result<std::string> next(int fd, int stop_fd, Steady::time_point deadline) {
    for (;;) {
      if (auto line = take()) return *line;
      if (buf_.size() > kMaxJsonLine)
        return Status::resourceExhausted("line longer than " + std::to_string(kMaxJsonLine) +
                                         " bytes");
      Status s = fill(fd);
      if (s.code() == StatusCode::kUnavailable && s.message() == "again") {
        int w = waitFd(fd, POLLIN, stop_fd, deadline);
        if (w == 0) return Status::deadlineExceeded("no line in time");
        if (w < 0) return Status::cancelled("relay stopping");
        continue;
      }
      RETURN_IF_ERROR(s);
    }
  }
  // Reads what is there without blocking: ok, "again" when nothing, or closed/error.
  Status fill(int fd) {
    char tmp[4096];
    for (;;) {
      ssize_t n = ::recv(fd, tmp, sizeof tmp, 0);
      if (n > 0) {
        buf_.append(tmp, static_cast<size_t>(n));
        return Status::ok();
      }
      if (n == 0) return Status::unavailable("closed");
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) return Status::unavailable("again");
      return Status::fromErrno(errno, "recv");
    }
  }
  std::optional<std::string> take() {
    size_t nl = buf_.find('\n');
    if (nl == std::string::npos) return std::nullopt;
    std::string line = buf_.substr(0, nl);
    buf_.erase(0, nl + 1);
    if (!line.empty() && line.back() == '\r') line.pop_back();
    return line;
  }
  size_t buffered() const { return buf_.size(); }

 private:
  std::string buf_;
};

json parseLine(std::string_view line) {
  json j = json::parse(line, nullptr, /*allow_exceptions=*/false);
  return j.is_object() ? j : json();
}

std::string field(const json& j, const char* key, size_t max = 1024) {
  auto it = j.find(key);
  if (it == j.end() || !it->is_string()) return {};
  std::string s = it->get<std::string>();
  return s.size() > max ? s.substr(0, max) : s;
}

std::string errorLine(std::string_view message) {
  return json{{"type", "error"}, {"message", message}}.dump(-1, ' ', false,
                                                            json::error_handler_t::replace) +
         "\n";
}

}  // namespace

class RelayServer::Impl {
 public:
  Impl(Store& store, Options options) : options_(std::move(options)), store_(store) {
    if (!options_.clock) options_.clock = SystemClock::instance();
  }

  ~Impl() { stop(); }

  Status start();
  void stop();
  json stats() const;

  int port_ = 0;
  std::string advertised_;
  Options options_;

 private:
  struct PendingSignal {
    bool done = false;
    std::string answer;  // one line to hand back to the caller
  };
  struct Sep {
    SocketPtr sock;
    std::string node;
    std::string session;
    int wake_fd = -1;
    // Under Impl::mu_:
    std::deque<std::string> outbox;
    std::map<std::string, std::shared_ptr<PendingSignal>> pending;
    bool closed = false;
    ~Sep() {
      if (wake_fd >= 0) ::close(wake_fd);
    }
  };
  struct Leg {
    SocketPtr sock;
    std::string node;
    bool taken = false;  // under mu_
  };

  void acceptLoop();
  void serve(SocketPtr sock);
  void runSep(const SocketPtr& sock, const TicketRecord& t);
  void handleSepLine(Sep& sep, std::string_view line);
  void closeSep(const std::shared_ptr<Sep>& sep);
  void runSignal(const SocketPtr& sock, const TicketRecord& t);
  void runBep(const SocketPtr& sock, const TicketRecord& t);
  void splicePair(int a, int b, Steady::time_point ttl_deadline, const std::string& bep_id);
  static void wake(const Sep& sep) {
    uint64_t one = 1;
    (void)!::write(sep.wake_fd, &one, sizeof one);
  }
  Steady::time_point after(milliseconds d) const { return Steady::now() + d; }

  Store& store_;
  int listen_fd_ = -1;
  int stop_fd_ = -1;
  std::thread acceptor_;
  bool started_ = false;
  std::atomic<bool> stopping_{false};

  mutable std::mutex mu_;
  std::condition_variable cv_;
  size_t threads_ = 0;  // connection threads running
  std::map<std::string, std::shared_ptr<Sep>> seps_;
  std::map<std::string, std::vector<std::shared_ptr<Leg>>> waiting_legs_;
  std::map<std::string, int> active_pairs_;
  size_t bep_active_ = 0;

  std::atomic<size_t> open_{0};
  std::atomic<uint64_t> bytes_relayed_{0};
  std::atomic<uint64_t> tickets_refused_{0};
  std::atomic<uint64_t> connections_refused_{0};
  std::atomic<uint64_t> signals_forwarded_{0};
  std::atomic<uint64_t> signals_failed_{0};
};

Status RelayServer::Impl::start() {
  if (started_) return Status::failedPrecondition("relay server already started");
  ASSIGN_OR_RETURN(auto listen, splitHostPort(options_.listen, "relay listen address"));
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV | AI_NUMERICHOST;
  addrinfo* res = nullptr;
  int rc = ::getaddrinfo(listen.first.c_str(), listen.second.c_str(), &hints, &res);
  if (rc != 0 || !res)
    return Status::invalidArgument("relay listen address \"" + options_.listen +
                                   "\": " + ::gai_strerror(rc) + " (expected a numeric IP)");
  int fd = ::socket(res->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    ::freeaddrinfo(res);
    return Status::fromErrno(errno, "relay socket");
  }
  int one = 1;
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (::bind(fd, res->ai_addr, res->ai_addrlen) != 0 || ::listen(fd, 512) != 0) {
    int err = errno;
    ::freeaddrinfo(res);
    ::close(fd);
    return Status::fromErrno(err, "relay listen on " + options_.listen);
  }
  ::freeaddrinfo(res);
  sockaddr_storage bound{};
  socklen_t len = sizeof bound;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&bound), &len);
  port_ = ntohs(bound.ss_family == AF_INET6 ? reinterpret_cast<sockaddr_in6*>(&bound)->sin6_port
                                            : reinterpret_cast<sockaddr_in*>(&bound)->sin_port);

  std::string adv = options_.advertise.empty() ? options_.listen : options_.advertise;
  auto adv_parts = splitHostPort(adv, "relay advertise address");
  if (!adv_parts.isOk()) {
    ::close(fd);
    return adv_parts.status();
  }
  if (options_.advertise.empty() && (listen.first == "0.0.0.0" || listen.first == "::")) {
    ::close(fd);
    return Status::invalidArgument("relay listen address \"" + options_.listen +
                                   "\" is a wildcard: set the advertise address nodes reach "
                                   "this relay at");
  }
  std::string host = adv_parts->first.find(':') != std::string::npos ? "[" + adv_parts->first + "]"
                                                                     : adv_parts->first;
  advertised_ = host + ":" + (adv_parts->second == "0" ? std::to_string(port_) : adv_parts->second);

  stop_fd_ = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (stop_fd_ < 0) {
    ::close(fd);
    return Status::fromErrno(errno, "eventfd");
  }
  listen_fd_ = fd;
  started_ = true;
  acceptor_ = std::thread([this] { acceptLoop(); });
  LOG_INFO("relay listening")
      .kv("instance", options_.instance_id)
      .kv("listen", options_.listen)
      .kv("advertise", advertised_);
  return Status::ok();
}

void RelayServer::Impl::stop() {
  if (!started_ || stopping_.exchange(true)) return;
  uint64_t one = 1;
  (void)!::write(stop_fd_, &one, sizeof one);
  {
    std::lock_guard lock(mu_);  // so no waiter misses the change between check and wait
    cv_.notify_all();
  }
  if (acceptor_.joinable()) acceptor_.join();
  ::close(listen_fd_);
  std::unique_lock lock(mu_);
  cv_.wait(lock, [this] { return threads_ == 0; });
  seps_.clear();
  waiting_legs_.clear();
  lock.unlock();
  ::close(stop_fd_);
}

void RelayServer::Impl::acceptLoop() {
  for (;;) {
    pollfd p[2] = {{listen_fd_, POLLIN, 0}, {stop_fd_, POLLIN, 0}};
    if (::poll(p, 2, -1) < 0 && errno != EINTR) break;
    if (p[1].revents & POLLIN) break;
    if (!(p[0].revents & POLLIN)) continue;
    int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      // EMFILE and friends: back off a little rather than spin on a full table.
      if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED)
        std::this_thread::sleep_for(milliseconds(50));
      continue;
    }
    if (open_.load() >= options_.max_connections) {
      ++connections_refused_;
      (void)!::send(fd, "ERR relay busy\n", 15, MSG_NOSIGNAL | MSG_DONTWAIT);
      ::close(fd);
      continue;
    }
    int one = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    open_.fetch_add(1);
    auto sock = std::make_shared<Socket>(fd, &open_);
    {
      std::lock_guard lock(mu_);
      ++threads_;
    }
    std::thread([this, sock = std::move(sock)]() mutable {
      serve(std::move(sock));
      std::lock_guard lock(mu_);
      --threads_;
      cv_.notify_all();  // under the lock: stop() may destroy us as soon as it sees 0
    }).detach();
  }
}

void RelayServer::Impl::serve(SocketPtr sock) {
  int fd = sock->fd();
  auto refuse = [&](std::string_view reason) {
    ++tickets_refused_;
    (void)writeAll(fd, "ERR " + std::string(reason) + "\n", stop_fd_, after(milliseconds(1000)));
  };
  auto line = readHandshake(fd, stop_fd_, after(options_.handshake_timeout));
  if (!line.isOk()) {
    if (line.status().code() == StatusCode::kInvalidArgument) refuse(line.status().message());
    return;
  }
  if (!line->starts_with(kMagic)) {
    if (line->starts_with("EDGE-RELAY/"))
      refuse("unsupported protocol version; this relay speaks EDGE-RELAY/1");
    else
      refuse("expected \"EDGE-RELAY/1 <ticket>\" as the first line");
    return;
  }
  auto ticket = redeemTicket(store_, std::string_view(*line).substr(kMagic.size()),
                             options_.instance_id, options_.clock->wallNow());
  if (!ticket.isOk()) {
    if (ticket.status().code() == StatusCode::kUnavailable) {
      (void)writeAll(fd, "ERR relay store unavailable, retry\n", stop_fd_,
                     after(milliseconds(1000)));
      return;
    }
    LOG_DEBUG("relay ticket refused").kv("reason", ticket.status().message());
    refuse(ticket.status().message());
    return;
  }
  if (ticket->kind == "sep") return runSep(sock, *ticket);
  if (ticket->kind == "signal") return runSignal(sock, *ticket);
  if (ticket->kind == "bep") return runBep(sock, *ticket);
  refuse("ticket of unknown kind \"" + ticket->kind + "\"");
}

void RelayServer::Impl::runSep(const SocketPtr& sock, const TicketRecord& t) {
  auto sep = std::make_shared<Sep>();
  sep->sock = sock;
  sep->node = t.node;
  sep->session = t.session;
  sep->wake_fd = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (sep->wake_fd < 0) return;
  int fd = sock->fd();
  if (!writeAll(fd, "OK sep\n", stop_fd_, after(options_.handshake_timeout)).isOk()) return;

  std::shared_ptr<Sep> old;
  {
    std::lock_guard lock(mu_);
    auto& slot = seps_[t.node];
    old = std::move(slot);
    slot = sep;
  }
  if (old) {
    // The node reconnected (its old connection may be half-dead): the newest wins.
    ::shutdown(old->sock->fd(), SHUT_RDWR);
    wake(*old);
  }
  LOG_INFO("relay sep open").kv("node", t.node).kv("replaced", old != nullptr);

  LineReader reader;
  auto last_heard = Steady::now();
  std::string why = "closed by the node";
  for (;;) {
    std::deque<std::string> out;
    {
      std::lock_guard lock(mu_);
      out.swap(sep->outbox);
    }
    bool failed = false;
    for (const auto& l : out) {
      if (!writeAll(fd, l, stop_fd_, after(milliseconds(5000))).isOk()) {
        failed = true;
        break;
      }
    }
    if (failed) {
      why = "write failed";
      break;
    }
    auto deadline = last_heard + options_.sep_silence;
    auto left = std::chrono::duration_cast<milliseconds>(deadline - Steady::now()).count();
    if (left <= 0) {
      why = "silent for " + std::to_string(options_.sep_silence.count() / 1000) + " s";
      break;
    }
    pollfd p[3] = {{fd, POLLIN, 0}, {sep->wake_fd, POLLIN, 0}, {stop_fd_, POLLIN, 0}};
    int n = ::poll(p, 3, static_cast<int>(std::min<int64_t>(left, 1 << 30)));
    if (n < 0 && errno != EINTR) break;
    if (p[2].revents & POLLIN) {
      why = "relay stopping";
      break;
    }
    if (p[1].revents & POLLIN) {
      uint64_t v;
      (void)!::read(sep->wake_fd, &v, sizeof v);
    }
    if (p[0].revents & (POLLIN | POLLHUP | POLLERR)) {
      Status s = reader.fill(fd);
      if (!s.isOk() && s.message() != "again") {
        why = s.message();
        break;
      }
      last_heard = Steady::now();
      while (auto l = reader.take()) handleSepLine(*sep, *l);
      if (reader.buffered() > kMaxJsonLine) {
        why = "line longer than 16 KiB";
        break;
      }
    }
  }
  closeSep(sep);
  LOG_INFO("relay sep closed").kv("node", t.node).kv("reason", why);
}

void RelayServer::Impl::handleSepLine(Sep& sep, std::string_view line) {
  json j = parseLine(line);
  std::string type = field(j, "type", 32);
  if (type == "ping") {
    std::lock_guard lock(mu_);
    sep.outbox.push_back("{\"type\":\"pong\"}\n");
    return;
  }
  if (type != "accept" && type != "refuse") return;  // unknown lines: newer nodes, ignore
  std::string id = field(j, "id", 64);
  json answer;
  if (type == "accept") {
    std::string bep = field(j, "bep", 300), ticket = field(j, "ticket", 64);
    if (bep.empty() || !looksLikeTicket(ticket))
      answer = {{"type", "error"}, {"message", "the target answered with a malformed accept"}};
    else
      answer = {{"type", "accept"}, {"bep", bep}, {"ticket", ticket}};
  } else {
    answer = {{"type", "refuse"}, {"message", field(j, "message", 1024)}};
  }
  std::lock_guard lock(mu_);
  auto it = sep.pending.find(id);
  if (it == sep.pending.end()) return;  // late answer to a signal that timed out
  it->second->done = true;
  it->second->answer = answer.dump(-1, ' ', false, json::error_handler_t::replace) + "\n";
  sep.pending.erase(it);
  cv_.notify_all();
}

void RelayServer::Impl::closeSep(const std::shared_ptr<Sep>& sep) {
  bool replaced;
  {
    std::lock_guard lock(mu_);
    sep->closed = true;
    auto it = seps_.find(sep->node);
    replaced = it == seps_.end() || it->second != sep;
    if (!replaced) seps_.erase(it);
    for (auto& [id, p] : sep->pending) {
      p->done = true;
      p->answer = errorLine("the target's SEP closed before it answered");
    }
    sep->pending.clear();
    cv_.notify_all();
  }
  if (replaced || stopping_) return;
  // Forget the SEP record unless the node has already asked for a new SEP (the session
  // differs then): callers should hear "no SEP", not wait on a dead one.
  std::string key = std::string(kRelaySepPrefix) + sep->node;
  auto kv = store_.get(key);
  if (!kv.isOk()) return;
  json rec = parseLine(kv->value);
  if (field(rec, "session") == sep->session) (void)store_.remove(key, kv->revision);
}

void RelayServer::Impl::runSignal(const SocketPtr& sock, const TicketRecord& t) {
  int fd = sock->fd();
  auto reply = [&](const std::string& line) {
    (void)writeAll(fd, line, stop_fd_, after(milliseconds(5000)));
  };
  if (!writeAll(fd, "OK signal\n", stop_fd_, after(options_.handshake_timeout)).isOk()) return;
  LineReader reader;
  auto line = reader.next(fd, stop_fd_, after(options_.signal_timeout));
  if (!line.isOk()) {
    if (line.status().code() == StatusCode::kResourceExhausted)
      reply(errorLine("connect line longer than 16 KiB"));
    return;
  }
  json j = parseLine(*line);
  if (field(j, "type", 32) != "connect")
    return reply(errorLine(
        "expected {\"type\":\"connect\",\"kind\":\"http|stream\",\"token\":\"...\"} as one line"));
  std::string kind = field(j, "kind", 32);
  if (kind.empty()) kind = t.protocol;
  if (kind != t.protocol)
    return reply(errorLine("kind \"" + kind + "\" differs from the \"" + t.protocol +
                           "\" this signal was granted for"));
  std::string token = field(j, "token", kMaxJsonLine);
  if (token.empty()) return reply(errorLine("connect line: token is missing"));

  json signal = {
      {"type", "signal"}, {"id", t.signal}, {"from", t.node}, {"kind", kind}, {"token", token}};
  std::string out = signal.dump(-1, ' ', false, json::error_handler_t::replace) + "\n";
  auto pending = std::make_shared<PendingSignal>();
  std::shared_ptr<Sep> sep;
  std::string err;
  {
    std::lock_guard lock(mu_);
    auto it = seps_.find(t.peer);
    if (it == seps_.end())
      err = "node " + t.peer + " has no SEP connected to this relay";
    else if (it->second->pending.size() >= options_.max_pending_signals)
      err = "node " + t.peer + " has too many signals waiting; retry later";
    else if (it->second->pending.count(t.signal))
      err = "signal " + t.signal + " is already on its way";
    else {
      sep = it->second;
      sep->pending[t.signal] = pending;
      sep->outbox.push_back(out);
    }
  }
  if (!sep) {
    ++signals_failed_;
    return reply(errorLine(err));
  }
  wake(*sep);
  ++signals_forwarded_;
  std::string answer;
  {
    std::unique_lock lock(mu_);
    bool done = cv_.wait_until(lock, after(options_.signal_timeout),
                               [&] { return pending->done || stopping_; });
    if (done && pending->done) {
      answer = pending->answer;
    } else {
      sep->pending.erase(t.signal);
      answer =
          errorLine(stopping_ ? "relay stopping"
                              : "node " + t.peer + " did not answer within " +
                                    std::to_string(options_.signal_timeout.count() / 1000) + " s");
    }
  }
  if (answer.find("\"type\":\"accept\"") == std::string::npos) ++signals_failed_;
  reply(answer);
}

void RelayServer::Impl::runBep(const SocketPtr& sock, const TicketRecord& t) {
  int fd = sock->fd();
  {
    std::lock_guard lock(mu_);
    auto it = active_pairs_.find(t.bep_id);
    if (it != active_pairs_.end() && it->second >= t.max_connections) {
      ++tickets_refused_;
      (void)writeAll(fd,
                     "ERR bep " + t.bep_id + " already carries its " +
                         std::to_string(t.max_connections) + " connection(s)\n",
                     stop_fd_, after(milliseconds(1000)));
      return;
    }
  }
  if (!writeAll(fd, "OK bep\n", stop_fd_, after(options_.handshake_timeout)).isOk()) return;
  int64_t now_unix =
      std::chrono::duration_cast<std::chrono::seconds>(options_.clock->wallNow().time_since_epoch())
          .count();
  auto ttl_deadline =
      Steady::now() + std::chrono::seconds(std::max<int64_t>(0, t.expires_at - now_unix));

  SocketPtr partner;
  auto leg = std::make_shared<Leg>();
  {
    std::lock_guard lock(mu_);
    auto& waiting = waiting_legs_[t.bep_id];
    for (auto it = waiting.begin(); it != waiting.end(); ++it) {
      if ((*it)->node != t.peer) continue;
      (*it)->taken = true;
      partner = (*it)->sock;
      waiting.erase(it);
      break;
    }
    if (partner) {
      if (waiting.empty()) waiting_legs_.erase(t.bep_id);
      ++active_pairs_[t.bep_id];
      ++bep_active_;
      cv_.notify_all();
    } else {
      leg->sock = sock;
      leg->node = t.node;
      waiting.push_back(leg);
    }
  }
  if (!partner) {
    // First leg: wait for the other; the second leg's thread then owns the splice.
    std::unique_lock lock(mu_);
    cv_.wait_until(lock, after(options_.pair_timeout), [&] { return leg->taken || stopping_; });
    if (leg->taken) return;
    auto it = waiting_legs_.find(t.bep_id);
    if (it != waiting_legs_.end()) {
      std::erase(it->second, leg);
      if (it->second.empty()) waiting_legs_.erase(it);
    }
    lock.unlock();
    LOG_INFO("relay bep leg unpaired").kv("bep", t.bep_id).kv("node", t.node);
    return;
  }
  LOG_INFO("relay bep paired").kv("bep", t.bep_id).kv("protocol", t.protocol);
  splicePair(partner->fd(), fd, ttl_deadline, t.bep_id);
  {
    std::lock_guard lock(mu_);
    if (--active_pairs_[t.bep_id] <= 0) active_pairs_.erase(t.bep_id);
    --bep_active_;
  }
}

void RelayServer::Impl::splicePair(int a, int b, Steady::time_point ttl_deadline,
                                   const std::string& bep_id) {
  struct Dir {
    int from, to;
    int pipe[2] = {-1, -1};
    size_t in_pipe = 0;
    bool eof = false, done = false;
  } dirs[2] = {{a, b}, {b, a}};
  for (auto& d : dirs) {
    if (::pipe2(d.pipe, O_NONBLOCK | O_CLOEXEC) != 0) {
      LOG_WARN("relay bep: no pipe").kv("bep", bep_id).kv("errno", errno);
      for (auto& e : dirs)
        if (e.pipe[0] >= 0) ::close(e.pipe[0]), ::close(e.pipe[1]);
      return;
    }
    // Larger pipes mean fewer syscalls per byte; the default 64 KiB is the fallback
    // when pipe-max-size is lower.
    ::fcntl(d.pipe[1], F_SETPIPE_SZ, static_cast<int>(options_.pipe_bytes));
  }
  uint64_t moved = 0;
  auto last_activity = Steady::now();
  std::string why = "both sides closed";
  for (bool ended = false; !ended;) {
    bool progress = false;
    for (auto& d : dirs) {
      if (d.done) continue;
      if (!d.eof && d.in_pipe < options_.pipe_bytes) {
        ssize_t n = ::splice(d.from, nullptr, d.pipe[1], nullptr, options_.pipe_bytes,
                             SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
        if (n > 0) {
          d.in_pipe += static_cast<size_t>(n);
          progress = true;
        } else if (n == 0) {
          d.eof = true;
          progress = true;
        } else if (errno != EAGAIN && errno != EINTR) {
          why = std::string("read: ") + std::strerror(errno);
          ended = true;
          break;
        }
      }
      while (d.in_pipe > 0) {
        ssize_t n = ::splice(d.pipe[0], nullptr, d.to, nullptr, d.in_pipe,
                             SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
        if (n > 0) {
          d.in_pipe -= static_cast<size_t>(n);
          moved += static_cast<uint64_t>(n);
          bytes_relayed_.fetch_add(static_cast<uint64_t>(n), std::memory_order_relaxed);
          progress = true;
          continue;
        }
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && errno != EAGAIN) {
          why = std::string("write: ") + std::strerror(errno);
          ended = true;
        }
        break;
      }
      if (ended) break;
      if (d.eof && d.in_pipe == 0) {
        ::shutdown(d.to, SHUT_WR);  // the half-close, passed on
        d.done = true;
      }
    }
    if (ended || (dirs[0].done && dirs[1].done)) break;
    if (progress) {
      last_activity = Steady::now();
      continue;
    }
    auto now = Steady::now();
    auto idle_deadline = last_activity + options_.idle_timeout;
    if (now >= ttl_deadline) {
      why = "ttl reached";
      break;
    }
    if (now >= idle_deadline) {
      why = "idle";
      break;
    }
    auto until = std::min(ttl_deadline, idle_deadline);
    short ev[2] = {0, 0};  // for a and b
    for (int i = 0; i < 2; ++i) {
      const Dir& d = dirs[i];
      if (d.done) continue;
      if (d.in_pipe > 0)
        ev[i == 0 ? 1 : 0] |= POLLOUT;  // dir 0 writes b, dir 1 writes a
      else if (!d.eof)
        ev[i == 0 ? 0 : 1] |= POLLIN;
    }
    pollfd p[3] = {{ev[0] ? a : -1, ev[0], 0}, {ev[1] ? b : -1, ev[1], 0}, {stop_fd_, POLLIN, 0}};
    auto left = std::chrono::duration_cast<milliseconds>(until - now).count() + 1;
    int n = ::poll(p, 3, static_cast<int>(std::min<int64_t>(left, 1 << 30)));
    if (n < 0 && errno != EINTR) break;
    if (p[2].revents & POLLIN) {
      why = "relay stopping";
      break;
    }
    // POLLERR/POLLHUP wake us too; the next splice reports what happened.
  }
  for (auto& d : dirs) ::close(d.pipe[0]), ::close(d.pipe[1]);
  LOG_INFO("relay bep closed").kv("bep", bep_id).kv("bytes", moved).kv("reason", why);
}

json RelayServer::Impl::stats() const {
  std::lock_guard lock(mu_);
  size_t waiting = 0;
  for (const auto& [id, legs] : waiting_legs_) waiting += legs.size();
  return {{"instance", options_.instance_id},
          {"address", advertised_},
          {"connections", open_.load()},
          {"sep_active", seps_.size()},
          {"bep_active", bep_active_},
          {"bep_waiting", waiting},
          {"bytes_relayed", bytes_relayed_.load()},
          {"tickets_refused", tickets_refused_.load()},
          {"connections_refused", connections_refused_.load()},
          {"signals_forwarded", signals_forwarded_.load()},
          {"signals_failed", signals_failed_.load()}};
}

RelayServer::RelayServer(Store& store, Options options)
    : impl_(std::make_unique<Impl>(store, std::move(options))) {}
RelayServer::~RelayServer() = default;
Status RelayServer::start() {
  return impl_->start();
}
void RelayServer::stop() {
  impl_->stop();
}
int RelayServer::boundPort() const {
  return impl_->port_;
}
std::string RelayServer::advertisedAddress() const {
  return impl_->advertised_;
}
const std::string& RelayServer::instanceId() const {
  return impl_->options_.instance_id;
}
json RelayServer::stats() const {
  return impl_->stats();
}

}  // namespace edge::backend
