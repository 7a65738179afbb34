#include "common/net.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

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

}  // namespace edge::net
