#include "common/cluster_port.h"

#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <map>
#include <mutex>
#include <thread>
#include <vector>

#include "common/log.h"
#include "common/net.h"

namespace edge::net {

const char* portClassName(PortClass c) {
  switch (c) {
    case PortClass::kDiscovery:
      return "discovery";
    case PortClass::kClusterState:
      return "cluster-state";
    case PortClass::kClusterImages:
      return "cluster-images";
    case PortClass::kPeerChannel:
      return "peer-channel";
    case PortClass::kTls:
      return "tls";
    case PortClass::kHttp:
      return "http";
  }
  return "http";
}

PortClass classifyFirstBytes(std::string_view first) {
  unsigned char b = first.empty() ? 0 : static_cast<unsigned char>(first[0]);
  if (b == 0x00) return PortClass::kDiscovery;
  if (b == 0x01) return PortClass::kClusterState;
  if (b == 0x02) return PortClass::kClusterImages;
  if (b == 'E') return PortClass::kPeerChannel;
  if (b == 0x16) return PortClass::kTls;
  return PortClass::kHttp;
}

namespace {

using Steady = std::chrono::steady_clock;

void setBlocking(int fd, bool blocking) {
  int flags = ::fcntl(fd, F_GETFL);
  if (flags < 0) return;
  ::fcntl(fd, F_SETFL, blocking ? flags & ~O_NONBLOCK : flags | O_NONBLOCK);
}

class ClusterPortImpl final : public ClusterPort {
 public:
  ClusterPortImpl(int listen_fd, Options options)
      : options_(options),
        listen_fd_(listen_fd),
        wake_fd_(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) {}

  ~ClusterPortImpl() override {
    stop();
    for (auto& [fd, p] : pending_) ::close(fd);
    if (listen_fd_ >= 0) ::close(listen_fd_);
    if (wake_fd_ >= 0) ::close(wake_fd_);
  }

  void handle(PortClass c, Handler handler) override {
    handlers_[static_cast<size_t>(c)] = std::move(handler);
  }

  Status start() override {
    if (wake_fd_ < 0) return Status::fromErrno(errno, "cluster port: eventfd");
    if (running_.exchange(true)) return Status::ok();
    thread_ = std::thread([this] { loop(); });
    return Status::ok();
  }

  void stop() override {
    if (!running_.exchange(false)) return;
    wake();
    if (thread_.joinable()) thread_.join();
  }

  void adopt(int fd, bool allow_discovery) override {
    setBlocking(fd, false);
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (!running_ || pending_.size() >= options_.max_pending) {
        ::close(fd);
        return;
      }
      pending_[fd] = {Steady::now() + options_.first_bytes_timeout, allow_discovery, 0};
    }
    wake();
  }

  int boundPort() const override {
    if (listen_fd_ < 0) return 0;
    sockaddr_in a{};
    socklen_t len = sizeof(a);
    if (::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&a), &len) != 0) return 0;
    return ntohs(a.sin_port);
  }

 private:
  struct Pending {
    Steady::time_point deadline;
    bool allow_discovery = true;
    uint32_t address = 0;  // accepted: the remote IPv4 address (network order); else 0
  };
  struct Ready {
    int fd;
    PortClass cls;
    std::string bytes;
  };

  void wake() {
    uint64_t one = 1;
    if (wake_fd_ >= 0) (void)!::write(wake_fd_, &one, sizeof(one));
  }

  void loop() {
    while (running_) {
      std::vector<pollfd> fds;
      Steady::time_point next = Steady::now() + std::chrono::seconds(1);
      {
        std::lock_guard<std::mutex> lock(mu_);
        fds.push_back({wake_fd_, POLLIN, 0});
        fds.push_back({listen_fd_, POLLIN, 0});  // -1 is ignored by poll(2)
        for (const auto& [fd, p] : pending_) {
          fds.push_back({fd, POLLIN, 0});
          if (p.deadline < next) next = p.deadline;
        }
      }
      auto wait = std::chrono::duration_cast<std::chrono::milliseconds>(next - Steady::now());
      int timeout = static_cast<int>(std::max<int64_t>(0, wait.count()) + 1);
      if (::poll(fds.data(), fds.size(), timeout) < 0 && errno != EINTR) break;
      if (!running_) break;
      if (fds[0].revents & POLLIN) {
        uint64_t n;
        (void)!::read(wake_fd_, &n, sizeof(n));
      }
      if (fds[1].revents & POLLIN) acceptAll();
      std::vector<Ready> ready;
      {
        std::lock_guard<std::mutex> lock(mu_);
        for (size_t i = 2; i < fds.size(); ++i)
          if (fds[i].revents) readFirst(fds[i].fd, &ready);
        expire();
      }
      for (auto& r : ready) dispatch(std::move(r));
    }
    std::lock_guard<std::mutex> lock(mu_);
    for (auto& [fd, p] : pending_) ::close(fd);
    pending_.clear();
  }

  void acceptAll() {
    for (int i = 0; i < 64; ++i) {
      sockaddr_in from{};
      socklen_t len = sizeof(from);
      int fd = ::accept4(listen_fd_, reinterpret_cast<sockaddr*>(&from), &len,
                         SOCK_NONBLOCK | SOCK_CLOEXEC);
      if (fd < 0) return;
      uint32_t address = from.sin_family == AF_INET ? from.sin_addr.s_addr : 0;
      std::lock_guard<std::mutex> lock(mu_);
      size_t same = 0;
      if (address != 0)
        for (const auto& [_, p] : pending_) same += p.address == address ? 1 : 0;
      if (pending_.size() >= options_.max_pending || same >= options_.max_pending_per_address) {
        ::close(fd);
        continue;
      }
      pending_[fd] = {Steady::now() + options_.first_bytes_timeout, true, address};
    }
  }

  // mu_ held.
  void readFirst(int fd, std::vector<Ready>* ready) {
    auto it = pending_.find(fd);
    if (it == pending_.end()) return;
    std::string buf(options_.max_first_bytes, '\0');
    ssize_t n = ::recv(fd, buf.data(), buf.size(), 0);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) return;
    bool allow_discovery = it->second.allow_discovery;
    pending_.erase(it);
    if (n <= 0) {
      ::close(fd);
      return;
    }
    buf.resize(static_cast<size_t>(n));
    PortClass cls = classifyFirstBytes(buf);
    if (cls == PortClass::kDiscovery && !allow_discovery) {
      ::close(fd);
      return;
    }
    ready->push_back({fd, cls, std::move(buf)});
  }

  // mu_ held: connections that said nothing in time are closed.
  void expire() {
    auto now = Steady::now();
    for (auto it = pending_.begin(); it != pending_.end();) {
      if (it->second.deadline <= now) {
        ::close(it->first);
        it = pending_.erase(it);
      } else {
        ++it;
      }
    }
  }

  void dispatch(Ready r) {
    const Handler& h = handlers_[static_cast<size_t>(r.cls)];
    if (!h) {
      LOG_DEBUG("cluster port: no handler").kv("class", portClassName(r.cls));
      ::close(r.fd);
      return;
    }
    setBlocking(r.fd, true);
    h(r.fd, std::move(r.bytes));
  }

  Options options_;
  int listen_fd_ = -1;
  int wake_fd_ = -1;
  Handler handlers_[static_cast<size_t>(PortClass::kHttp) + 1];  // kHttp is the last class
  std::atomic<bool> running_{false};
  std::thread thread_;
  std::mutex mu_;
  std::map<int, Pending> pending_;  // under mu_
};

}  // namespace

Result<std::unique_ptr<ClusterPort>> ClusterPort::listen(const std::string& address,
                                                         Options options) {
  ASSIGN_OR_RETURN(int fd, listenTcp(address));
  setBlocking(fd, false);
  return std::unique_ptr<ClusterPort>(std::make_unique<ClusterPortImpl>(fd, options));
}

std::unique_ptr<ClusterPort> ClusterPort::unbound(Options options) {
  return std::make_unique<ClusterPortImpl>(-1, options);
}

}  // namespace edge::net
