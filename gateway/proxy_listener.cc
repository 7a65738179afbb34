// The engine's way in: listening sockets (TCP with SO_REUSEPORT, one per worker; unix
// sockets shared by all workers), accepting, connections adopted from another acceptor,
// and the socket address helpers. Internals in proxy_internal.h.
//
// Threading: listenTcp/listenUnix/numericAddress and the address helpers are pure or
// touch only their own fds (any thread); Listener and Worker::accepted/adopt run on the
// worker's loop thread.
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>

#include "common/log.h"
#include "common/net.h"
#include "gateway/proxy_internal.h"

namespace edge::gateway::proxy_internal {

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

}  // namespace edge::gateway::proxy_internal
