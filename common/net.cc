#include "common/net.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <limits>

namespace edge::net {

bool splitHostPort(const std::string& text, std::string* host, int* port) {
  auto colon = text.rfind(':');
  if (colon == std::string::npos) return false;
  *host = text.substr(0, colon);
  char* end = nullptr;
  long p = std::strtol(text.c_str() + colon + 1, &end, 10);
  if (*end != '\0' || p < 0 || p > 65535) return false;
  *port = static_cast<int>(p);
  return true;
}

Result<int> dialTcp(const std::string& endpoint, std::chrono::milliseconds timeout) {
  std::string host;
  int port = 0;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  if (!splitHostPort(endpoint, &host, &port) || port == 0 ||
      inet_pton(AF_INET, host.c_str(), &addr.sin_addr) != 1)
    return Status::invalidArgument("\"" + endpoint + "\" is not an IPv4 address and port");
  addr.sin_port = htons(static_cast<uint16_t>(port));
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return Status::fromErrno(errno, "socket");
  int r = ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
  if (r != 0 && errno != EINPROGRESS) {
    int e = errno;
    ::close(fd);
    return Status::unavailable(endpoint + ": " + std::strerror(e));
  }
  if (r != 0) {
    pollfd p{fd, POLLOUT, 0};
    int n = ::poll(&p, 1, static_cast<int>(timeout.count()));
    int err = 0;
    socklen_t len = sizeof(err);
    if (n == 1) getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
    if (n != 1 || err != 0) {
      ::close(fd);
      return n == 0 ? Status::deadlineExceeded(endpoint + ": no answer within " +
                                               std::to_string(timeout.count()) + " ms")
                    : Status::unavailable(endpoint + ": " + std::strerror(err ? err : errno));
    }
  }
  int flags = 0;
  ::ioctl(fd, FIONBIO, &flags);
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  return fd;
}

Result<int> listenTcp(const std::string& address) {
  std::string host;
  int port = 0;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  if (!splitHostPort(address, &host, &port) ||
      inet_pton(AF_INET, host.c_str(), &addr.sin_addr) != 1)
    return Status::invalidArgument("\"" + address + "\" is not an IPv4 address and port");
  addr.sin_port = htons(static_cast<uint16_t>(port));
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return Status::fromErrno(errno, "socket");
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
      ::listen(fd, 1024) != 0) {
    int e = errno;
    ::close(fd);
    return Status::fromErrno(e, "listen on " + address);
  }
  return fd;
}

namespace {

using Steady = std::chrono::steady_clock;
using std::chrono::milliseconds;

// Waits until `fd` takes bytes again. OK when it does (or reports an error or hang-up,
// which the next send turns into its own error).
Status waitWritable(int fd, const WriteLimits& limits) {
  const auto start = Steady::now();
  for (;;) {
    auto now = Steady::now();
    int64_t left = std::numeric_limits<int64_t>::max();
    bool idle_limited = false;
    if (limits.idle != milliseconds::max()) {
      left = (limits.idle - std::chrono::duration_cast<milliseconds>(now - start)).count();
      idle_limited = true;
    }
    if (limits.deadline != Steady::time_point::max()) {
      int64_t to_deadline = std::chrono::duration_cast<milliseconds>(limits.deadline - now).count();
      if (to_deadline < left) {
        left = to_deadline;
        idle_limited = false;
      }
    }
    if (left <= 0) {
      return Status::deadlineExceeded(idle_limited ? "the peer did not read for " +
                                                         std::to_string(limits.idle.count()) + " ms"
                                                   : "the peer did not read in time");
    }
    pollfd p[2] = {{fd, POLLOUT, 0}, {limits.stop_fd, POLLIN, 0}};
    int n =
        ::poll(p, limits.stop_fd >= 0 ? 2 : 1, static_cast<int>(std::min<int64_t>(left, 1 << 30)));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return Status::fromErrno(errno, "poll");
    if (limits.stop_fd >= 0 && (p[1].revents & POLLIN)) return Status::cancelled("stopping");
    if (n > 0) return Status::ok();
  }
}

}  // namespace

Status writeAll(int fd, std::string_view data, const WriteLimits& limits) {
  while (!data.empty()) {
    ssize_t n = ::send(fd, data.data(), data.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n > 0) {
      data.remove_prefix(static_cast<size_t>(n));
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      RETURN_IF_ERROR(waitWritable(fd, limits));
      continue;
    }
    return Status::unavailable(std::string("write failed: ") + std::strerror(errno));
  }
  return Status::ok();
}

}  // namespace edge::net
