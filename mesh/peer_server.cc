#include "mesh/peer_server.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "common/http.h"
#include "common/json.h"
#include "common/jwt.h"
#include "common/log.h"
#include "common/net.h"
#include "mesh/peer_channel.h"
#include "mesh/peer_protocol.h"

namespace edge::mesh {

using std::chrono::milliseconds;
using SteadyClock = std::chrono::steady_clock;

const std::vector<PeerRoute>& defaultPeerRoutes() {
  static const std::vector<PeerRoute> kRoutes = {
      {"GET", "/api/v1/node", false},
      {"GET", "/api/v1/services", true},
      {"GET", "/api/v1/cluster", false},
      {"GET", "/api/v1/nodes", false},
  };
  return kRoutes;
}

namespace {

bool isCanonicalPath(std::string_view path) {
  if (path.empty() || path.front() != '/') return false;
  for (size_t i = 0; i < path.size(); ++i) {
    unsigned char c = static_cast<unsigned char>(path[i]);
    if (c <= ' ' || c >= 0x7f || c == '\\') return false;
    if (c == '%' && i + 2 < path.size()) {
      // Encoded '.', '/' and '\' could spell a segment the table does not list.
      std::string_view hex = path.substr(i + 1, 2);
      if (hex == "2e" || hex == "2E" || hex == "2f" || hex == "2F" || hex == "5c" || hex == "5C")
        return false;
    }
  }
  size_t start = 1;
  while (start <= path.size()) {
    size_t end = path.find('/', start);
    if (end == std::string_view::npos) end = path.size();
    std::string_view seg = path.substr(start, end - start);
    if (seg == "." || seg == "..") return false;
    if (seg.empty() && end != path.size()) return false;  // "//"
    start = end + 1;
  }
  return true;
}

}  // namespace

bool peerRouteAllowed(const std::vector<PeerRoute>& routes, std::string_view method,
                      std::string_view path) {
  path = path.substr(0, path.find('?'));
  if (!isCanonicalPath(path)) return false;
  for (const auto& r : routes) {
    if (r.method != "*" && r.method != method) continue;
    if (path == r.path) return true;
    if (r.subtree && path.size() > r.path.size() + 1 && path.starts_with(r.path) &&
        path[r.path.size()] == '/')
      return true;
  }
  return false;
}

std::string describePeerRoutes(const std::vector<PeerRoute>& routes) {
  std::string out;
  for (const auto& r : routes) {
    if (!out.empty()) out += ", ";
    out += (r.method == "*" ? "any method" : r.method) + " " + r.path;
    if (r.subtree) out += "[/...]";
  }
  return out.empty() ? "nothing" : out;
}

namespace {

// The header through which the node API learns which node called; a caller's own value
// is dropped so it cannot claim to be another node.
constexpr char kCallerHeader[] = "X-Edge-Caller-Node";

// One channel, from "open" to the end.
class ChannelSession {
 public:
  ChannelSession(PeerChannel& ch, const PeerServer::Options& options)
      : ch_(ch), options_(options) {}

  void run() {
    auto open = receiveJson("open message");
    if (!open.isOk()) return refuse(400, open.status().message());
    auto type = json::getString(*open, "type", "open message");
    if (!type.isOk() || *type != "open")
      return refuse(400, "the first message must be {\"type\":\"open\",...}");
    auto token = json::getString(*open, "token", "open message", "");
    auto kind = json::getString(*open, "kind", "open message", "http");
    if (!token.isOk()) return refuse(400, token.status().message());
    if (!kind.isOk()) return refuse(400, kind.status().message());
    if (*kind != "http" && *kind != "stream")
      return refuse(400, "open message: kind \"" + *kind + "\" is unknown; use http or stream");
    if (token->empty())
      return refuse(401,
                    "open message: no token (an access token of "
                    "audience edge-node with scope node:call)");
    if (!options_.verify) return refuse(503, "this node cannot verify tokens now");
    Result<nlohmann::json> claims = options_.verify(*token, ch_.peerId());
    if (!claims.isOk()) {
      StatusCode c = claims.status().code();
      bool denied = c == StatusCode::kPermissionDenied || c == StatusCode::kInvalidArgument;
      return refuse(denied ? 401 : 503, "token refused: " + claims.status().message());
    }
    if (!claims->is_object() || !jwt::hasScope(*claims, "node:call"))
      return refuse(403, "the token lacks the scope node:call");
    if (*kind == "http") {
      if (ch_.send(R"({"type":"opened"})").isOk()) serveHttp();
      return;
    }
    serveStream(*open);
  }

 private:
  // Sends and logs a failure; the sending errors do not matter, the channel ends.
  void refuse(int status, const std::string& message) {
    LOG_INFO("peer channel refused")
        .kv("peer", ch_.peerId())
        .kv("status", status)
        .kv("reason", message);
    (void)ch_.send(errorMessage(status, message));
  }

  Result<nlohmann::json> receiveJson(std::string_view what) {
    ASSIGN_OR_RETURN(std::string text, ch_.receive(options_.io_timeout));
    ASSIGN_OR_RETURN(nlohmann::json j, json::parse(text, what));
    if (!j.is_object())
      return Status::invalidArgument(std::string(what) + ": expected a JSON object, got " +
                                     json::typeName(j));
    return j;
  }

  // Reads and drops the rest of a request body, so a refusal reaches a caller that is
  // still sending it.
  Status drainBody() {
    size_t total = 0;
    for (;;) {
      ASSIGN_OR_RETURN(std::string m, ch_.receive(options_.io_timeout));
      if (m.empty()) return Status::ok();
      total += m.size();
      if (total > kPeerMaxRequestBytes)
        return Status::resourceExhausted("request body over the limit");
    }
  }

  void reply(int status, const http::Headers& headers, std::string_view body) {
    nlohmann::json head{{"status", status}, {"headers", headersToJson(headers)}};
    if (!ch_.send(json::dump(head)).isOk()) return;
    for (size_t off = 0; off < body.size(); off += kPeerBodyChunkBytes)
      if (!ch_.send(body.substr(off, kPeerBodyChunkBytes)).isOk()) return;
    (void)ch_.send("");
  }

  void replyError(int status, const std::string& message) {
    LOG_INFO("peer call refused")
        .kv("peer", ch_.peerId())
        .kv("status", status)
        .kv("reason", message);
    http::Headers h{{"Content-Type", "application/json"}};
    reply(status, h, errorBody(message));
  }

  void serveHttp() {
    auto head = receiveJson("request head");
    if (!head.isOk()) {
      if (head.status().code() == StatusCode::kInvalidArgument) {
        if (drainBody().isOk()) replyError(400, head.status().message());
      }
      return;
    }
    auto method = json::getString(*head, "method", "request head");
    auto path = json::getString(*head, "path", "request head");
    Status bad;
    if (!method.isOk())
      bad = method.status();
    else if (!path.isOk())
      bad = path.status();
    else if (method->empty() ||
             method->find_first_not_of("ABCDEFGHIJKLMNOPQRSTUVWXYZ") != std::string::npos)
      bad = Status::invalidArgument("request head: method \"" + *method +
                                    "\" is not an upper-case HTTP method");
    else if (path->empty() || path->front() != '/')
      bad = Status::invalidArgument("request head: path \"" + *path + "\" must start with /");
    auto headers = head->contains("headers") ? headersFromJson((*head)["headers"], "request head")
                                             : Result<http::Headers>(http::Headers{});
    if (bad.isOk() && !headers.isOk()) bad = headers.status();
    if (!bad.isOk()) {
      if (drainBody().isOk()) replyError(400, bad.message());
      return;
    }
    if (!peerRouteAllowed(options_.routes, *method, *path)) {
      if (drainBody().isOk())
        replyError(403, *method + " " + *path + " may not be called by peers; allowed: " +
                            describePeerRoutes(options_.routes));
      return;
    }
    forward(*method, *path, std::move(*headers));
  }

  void forward(const std::string& method, const std::string& path, http::Headers headers) {
    headers.erase(kCallerHeader);
    headers.emplace(kCallerHeader, ch_.peerId());
    http::Request req;
    req.method = method;
    req.path = path;
    req.headers = std::move(headers);
    req.read_timeout = options_.io_timeout;

    auto first = ch_.receive(options_.io_timeout);
    if (!first.isOk()) return;
    // Why the body source stopped: the channel broke (nothing to answer) or the body grew
    // over the limit (413).
    enum class SourceFailure { kNone, kChannel, kTooLarge } source_failure = SourceFailure::kNone;
    std::string chunk = std::move(*first);
    size_t offset = 0;
    size_t total = chunk.size();
    bool ended = chunk.empty();
    if (!ended) {
      req.body_source = [&](char* buf, size_t cap) -> Result<size_t> {
        while (offset == chunk.size()) {
          if (ended) return size_t{0};
          auto m = ch_.receive(options_.io_timeout);
          if (!m.isOk()) {
            source_failure = SourceFailure::kChannel;
            return m.status();
          }
          chunk = std::move(*m);
          offset = 0;
          ended = chunk.empty();
          total += chunk.size();
          if (total > kPeerMaxRequestBytes) {
            source_failure = SourceFailure::kTooLarge;
            return Status::resourceExhausted("request body over the limit");
          }
        }
        size_t n = std::min(cap, chunk.size() - offset);
        std::memcpy(buf, chunk.data() + offset, n);
        offset += n;
        return n;
      };
    }
    std::string body;
    bool too_large = false;
    req.body_sink = [&](const char* data, size_t len) {
      if (body.size() + len > kPeerMaxResponseBytes) {
        too_large = true;
        return false;
      }
      body.append(data, len);
      return true;
    };

    auto ep = http::Endpoint::parse(options_.local_api);
    if (!ep.isOk()) return replyError(500, "this node's API endpoint is misconfigured");
    http::ClientOptions copts;
    copts.connect_timeout = options_.io_timeout;
    copts.write_timeout = options_.io_timeout;
    auto res = http::Client(*ep, copts).send(req);
    if (source_failure == SourceFailure::kChannel) return;
    if (source_failure == SourceFailure::kTooLarge)
      return replyError(413, "the request body is over the limit of " +
                                 std::to_string(kPeerMaxRequestBytes >> 20) + " MiB");
    if (too_large)
      return replyError(502, "the node API's reply is over the limit of " +
                                 std::to_string(kPeerMaxResponseBytes >> 20) + " MiB");
    if (!res.isOk()) {
      int status = res.status().code() == StatusCode::kDeadlineExceeded ? 504 : 502;
      return replyError(status, "the node API did not answer: " + res.status().message());
    }
    // A non-2xx body is in res->body, a 2xx one in `body`.
    if (!res->isSuccess()) body = std::move(res->body);
    LOG_DEBUG("peer call")
        .kv("peer", ch_.peerId())
        .kv("method", method)
        .kv("path", path)
        .kv("status", res->status);
    reply(res->status, res->headers, body);
  }

  void serveStream(const nlohmann::json& open) {
    auto service = json::getString(open, "service", "open message");
    auto port = json::getInt(open, "port", "open message");
    if (!service.isOk()) return refuse(400, service.status().message());
    if (!port.isOk()) return refuse(400, port.status().message());
    if (service->empty()) return refuse(400, "open message: a stream needs .service");
    if (*port < 1 || *port > 65535)
      return refuse(400, "open message: .port " + std::to_string(*port) +
                             " is not a port number in 1..65535");
    if (!options_.resolve_stream) return refuse(403, "streams are not enabled on this node");
    Status allowed = options_.resolve_stream(*service, static_cast<int>(*port));
    if (!allowed.isOk()) {
      int status = allowed.code() == StatusCode::kPermissionDenied ? 403
                   : allowed.code() == StatusCode::kNotFound       ? 404
                                                                   : 503;
      return refuse(status, "stream to " + *service + " port " + std::to_string(*port) + ": " +
                                allowed.message());
    }
    auto tcp = net::dialTcp("127.0.0.1:" + std::to_string(*port), options_.io_timeout);
    if (!tcp.isOk()) return refuse(502, "stream to " + *service + ": " + tcp.status().message());
    int fd = *tcp;
    if (ch_.send(R"({"type":"opened"})").isOk()) pump(fd);
    ::close(fd);
  }

  // Copies channel -> service on a helper thread and service -> channel here, until both
  // directions have ended; a failure on either side ends both.
  void pump(int fd) {
    std::atomic<int64_t> last_activity{SteadyClock::now().time_since_epoch().count()};
    auto touch = [&] { last_activity = SteadyClock::now().time_since_epoch().count(); };
    auto idleFor = [&] {
      return std::chrono::duration_cast<milliseconds>(SteadyClock::now().time_since_epoch() -
                                                      SteadyClock::duration(last_activity.load()));
    };
    auto abort = [&] {
      ch_.shutdown();
      ::shutdown(fd, SHUT_RDWR);
    };
    std::thread up([&] {
      for (;;) {
        auto m = ch_.receive(options_.stream_idle_timeout);
        if (!m.isOk()) {
          if (m.status().code() == StatusCode::kDeadlineExceeded &&
              idleFor() < options_.stream_idle_timeout)
            continue;
          return abort();
        }
        touch();
        if (m->empty()) {
          ::shutdown(fd, SHUT_WR);
          return;
        }
        if (!net::writeAll(fd, *m, {.idle = options_.io_timeout}).isOk()) return abort();
      }
    });
    std::string buf(kPeerBodyChunkBytes, '\0');
    for (;;) {
      pollfd p{fd, POLLIN, 0};
      int r = ::poll(&p, 1, static_cast<int>(options_.stream_idle_timeout.count()));
      if (r < 0 && errno == EINTR) continue;
      if (r == 0 && idleFor() < options_.stream_idle_timeout) continue;
      if (r <= 0) {
        abort();
        break;
      }
      ssize_t n = ::recv(fd, buf.data(), buf.size(), 0);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) {
        abort();
        break;
      }
      touch();
      if (n == 0) {
        if (!ch_.send("").isOk()) abort();
        break;
      }
      if (!ch_.send(std::string_view(buf.data(), static_cast<size_t>(n))).isOk()) {
        abort();
        break;
      }
    }
    up.join();
  }

  PeerChannel& ch_;
  const PeerServer::Options& options_;
};

}  // namespace

struct PeerServer::Worker {
  std::thread thread;
  int wake_fd = -1;   // a dup of the connection, for stop() to shut it down; under mu_
  bool done = false;  // under mu_
};

PeerServer::PeerServer(identity::NodeIdentity identity, Options options)
    : identity_(std::move(identity)), options_(std::move(options)) {}

PeerServer::~PeerServer() {
  stop();
}

void PeerServer::reap() {
  std::vector<std::unique_ptr<Worker>> finished;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (auto it = workers_.begin(); it != workers_.end();) {
      if ((*it)->done) {
        finished.push_back(std::move(*it));
        it = workers_.erase(it);
      } else {
        ++it;
      }
    }
  }
  for (auto& w : finished) w->thread.join();
}

void PeerServer::serve(int fd, std::string already_read) {
  reap();
  int flags = ::fcntl(fd, F_GETFL);
  if (flags >= 0) ::fcntl(fd, F_SETFL, flags & ~O_NONBLOCK);
  std::lock_guard<std::mutex> lock(mu_);
  if (stopping_ || active_ >= options_.max_channels) {
    LOG_WARN("peer channel dropped")
        .kv("reason", stopping_ ? "stopping" : "too many channels")
        .kv("max_channels", options_.max_channels);
    ::close(fd);
    return;
  }
  auto w = std::make_unique<Worker>();
  Worker* worker = w.get();
  worker->wake_fd = ::fcntl(fd, F_DUPFD_CLOEXEC, 0);
  ++active_;
  workers_.push_back(std::move(w));
  worker->thread = std::thread([this, worker, fd, data = std::move(already_read)]() mutable {
    auto ch = PeerChannel::accept(fd, identity_, data, options_.io_timeout);
    if (!ch.isOk()) {
      LOG_DEBUG("peer channel handshake failed").kv("error", ch.status().message());
    } else {
      ChannelSession(*ch, options_).run();
      ch->close();
    }
    std::lock_guard<std::mutex> lock(mu_);
    if (worker->wake_fd >= 0) ::close(worker->wake_fd);
    worker->wake_fd = -1;
    worker->done = true;
    --active_;
    idle_cv_.notify_all();
  });
}

Status PeerServer::listen(const std::string& address) {
  if (listen_fd_ >= 0) return Status::failedPrecondition("peer server: already listening");
  size_t colon = address.rfind(':');
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  std::string host = colon == std::string::npos ? "" : address.substr(0, colon);
  std::string port = colon == std::string::npos ? "" : address.substr(colon + 1);
  bool ok = !port.empty() && port.size() <= 5 &&
            port.find_first_not_of("0123456789") == std::string::npos && std::stoi(port) <= 65535 &&
            (host.empty() || inet_pton(AF_INET, host.c_str(), &addr.sin_addr) == 1);
  if (!ok) {
    return Status::invalidArgument("peer listen address \"" + address +
                                   "\" is not an IPv4 host:port (e.g. 0.0.0.0:8084; port 0 "
                                   "picks a free one)");
  }
  addr.sin_port = htons(static_cast<uint16_t>(std::stoi(port)));
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return Status::fromErrno(errno, "peer server: socket");
  int one = 1;
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 || ::listen(fd, 128) != 0) {
    int e = errno;
    ::close(fd);
    return Status::fromErrno(e, "peer server: listen on " + address);
  }
  socklen_t len = sizeof addr;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  stop_fd_ = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (stop_fd_ < 0) {
    int e = errno;
    ::close(fd);
    return Status::fromErrno(e, "peer server: eventfd");
  }
  listen_fd_ = fd;
  listen_port_ = ntohs(addr.sin_port);
  acceptor_ = std::thread([this] { acceptLoop(); });
  return Status::ok();
}

void PeerServer::acceptLoop() {
  for (;;) {
    pollfd p[2] = {{listen_fd_, POLLIN, 0}, {stop_fd_, POLLIN, 0}};
    int n = ::poll(p, 2, -1);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 || (p[1].revents & POLLIN)) return;
    int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) {
      // EMFILE and the like: back off instead of spinning on a listener that stays ready.
      if (errno != EINTR && errno != ECONNABORTED) ::poll(&p[1], 1, 100);
      continue;
    }
    serve(fd, "");
  }
}

void PeerServer::stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
    for (auto& w : workers_)
      if (w->wake_fd >= 0) ::shutdown(w->wake_fd, SHUT_RDWR);
  }
  if (acceptor_.joinable()) {
    uint64_t one = 1;
    (void)!::write(stop_fd_, &one, sizeof one);
    acceptor_.join();
  }
  if (listen_fd_ >= 0) ::close(listen_fd_);
  if (stop_fd_ >= 0) ::close(stop_fd_);
  listen_fd_ = stop_fd_ = -1;
  std::list<std::unique_ptr<Worker>> all;
  {
    std::lock_guard<std::mutex> lock(mu_);
    all.swap(workers_);
  }
  for (auto& w : all) w->thread.join();
}

size_t PeerServer::activeChannels() const {
  std::lock_guard<std::mutex> lock(mu_);
  return active_;
}

bool PeerServer::waitIdle(milliseconds timeout) const {
  std::unique_lock<std::mutex> lock(mu_);
  return idle_cv_.wait_for(lock, timeout, [this] { return active_ == 0; });
}

}  // namespace edge::mesh
