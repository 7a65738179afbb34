#include "gateway/transport.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>

namespace edge::gateway {
namespace {

class PlainTransport final : public Transport {
 public:
  PlainTransport(int fd, std::string already_read) : fd_(fd), pending_(std::move(already_read)) {
    int flags = fcntl(fd_, F_GETFL, 0);
    if (flags >= 0 && !(flags & O_NONBLOCK)) fcntl(fd_, F_SETFL, flags | O_NONBLOCK);
  }
  ~PlainTransport() override { close(fd_); }

  int fd() const override { return fd_; }
  IoResult handshake() override { return IoResult::ok(0); }

  IoResult read(char* buf, size_t len) override {
    if (pending_off_ < pending_.size()) {
      size_t n = std::min(len, pending_.size() - pending_off_);
      std::memcpy(buf, pending_.data() + pending_off_, n);
      pending_off_ += n;
      if (pending_off_ == pending_.size()) {
        pending_.clear();
        pending_.shrink_to_fit();
        pending_off_ = 0;
      }
      return IoResult::ok(n);
    }
    while (true) {
      ssize_t n = ::recv(fd_, buf, len, 0);
      if (n > 0) return IoResult::ok(static_cast<size_t>(n));
      if (n == 0) return IoResult::closed();
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) return IoResult::wantRead();
      return IoResult::failed(std::strerror(errno));
    }
  }

  IoResult write(const char* buf, size_t len) override {
    while (true) {
      ssize_t n = ::send(fd_, buf, len, MSG_NOSIGNAL);
      if (n >= 0) return IoResult::ok(static_cast<size_t>(n));
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) return IoResult::wantWrite();
      if (errno == EPIPE || errno == ECONNRESET)
        return IoResult::failed("connection reset by peer");
      return IoResult::failed(std::strerror(errno));
    }
  }

  IoResult shutdownWrite() override {
    if (::shutdown(fd_, SHUT_WR) != 0 && errno != ENOTCONN) {
      return IoResult::failed(std::strerror(errno));
    }
    return IoResult::ok(0);
  }

  bool hasBufferedInput() const override { return pending_off_ < pending_.size(); }
  const std::string& peerNodeId() const override { return empty_; }

 private:
  int fd_;
  std::string pending_;
  size_t pending_off_ = 0;
  std::string empty_;
};

}  // namespace

TransportPtr makePlainTransport(int fd, std::string already_read) {
  return std::make_unique<PlainTransport>(fd, std::move(already_read));
}

}  // namespace edge::gateway
