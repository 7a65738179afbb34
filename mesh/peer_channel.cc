#include "mesh/peer_channel.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <deque>
#include <mutex>
#include <vector>

#include "common/net.h"
#include "identity/secure.h"

namespace edge::mesh {

static_assert(kPeerMaxMessageBytes == identity::SecureSession::kMaxMessageBytes);

namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

int msUntil(Clock::time_point deadline) {
  auto left = std::chrono::duration_cast<milliseconds>(deadline - Clock::now()).count();
  if (left <= 0) return 0;
  return left > 1'000'000'000 ? 1'000'000'000 : static_cast<int>(left);
}

// Waits for `events` on fd until the deadline. OK when ready (or the fd reports an error
// or hang-up, which the following read/write turns into its own error).
Status waitFd(int fd, short events, Clock::time_point deadline, std::string_view what) {
  for (;;) {
    pollfd p{fd, events, 0};
    int n = ::poll(&p, 1, msUntil(deadline));
    if (n > 0) return Status::ok();
    if (n == 0) return Status::deadlineExceeded(std::string(what));
    if (errno != EINTR) return Status::fromErrno(errno, "peer channel: poll");
  }
}

// Writes all of `data`; `timeout` bounds each wait without progress.
Status writeAll(int fd, std::string_view data, milliseconds timeout) {
  return net::writeAll(fd, data, {.idle = timeout}).withContext("peer channel");
}

// Reads what is there (waiting until the deadline for the first byte) and appends it.
Status readSome(int fd, std::string* out, Clock::time_point deadline, std::string_view what) {
  char buf[64 * 1024];
  for (;;) {
    ssize_t n = ::recv(fd, buf, sizeof buf, MSG_DONTWAIT);
    if (n > 0) {
      out->append(buf, static_cast<size_t>(n));
      return Status::ok();
    }
    if (n == 0) return Status::unavailable("peer channel: closed by the peer");
    if (errno == EINTR) continue;
    if (errno != EAGAIN && errno != EWOULDBLOCK)
      return Status::unavailable(std::string("peer channel: read failed: ") + std::strerror(errno));
    RETURN_IF_ERROR(waitFd(fd, POLLIN, deadline, what));
  }
}

// Messages are small and answered one by one: Nagle's algorithm against the peer's
// delayed ACK would add ~40 ms to a request. Fails harmlessly on non-TCP sockets.
void setNoDelay(int fd) {
  int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

}  // namespace

struct PeerChannel::Impl {
  Impl(int f, identity::SecureSession s) : fd(f), session(std::move(s)) {}
  ~Impl() {
    if (fd >= 0) ::close(fd);
  }

  int fd;
  std::string peer_id;
  std::atomic<int64_t> io_timeout_ms{10'000};

  std::mutex write_mu;  // one sender at a time, so frames leave in nonce order
  std::mutex read_mu;   // one receiver at a time
  mutable std::mutex session_mu;
  identity::SecureSession session;  // under session_mu
  std::deque<std::string> pending;  // decrypted, not yet received; under session_mu
  Status dead;                      // the final error, once any; under session_mu

  // Feeds bytes to the session (under session_mu); a failure is final.
  Status feed(std::string_view bytes) {
    std::lock_guard<std::mutex> lock(session_mu);
    if (!dead.isOk()) return dead;
    std::vector<std::string> messages;
    Status s = session.feed(bytes, &messages);
    for (auto& m : messages) pending.push_back(std::move(m));
    if (!s.isOk()) dead = s.withContext("peer channel");
    return dead;
  }

  std::string takeOutput() {
    std::lock_guard<std::mutex> lock(session_mu);
    return session.takeOutput();
  }

  // Drives the handshake until established or the deadline passes.
  Status handshake(Clock::time_point deadline, milliseconds timeout) {
    std::string what =
        "peer channel: handshake not done within " + std::to_string(timeout.count()) + " ms";
    for (;;) {
      std::string out = takeOutput();
      if (!out.empty()) RETURN_IF_ERROR(writeAll(fd, out, timeout));
      {
        std::lock_guard<std::mutex> lock(session_mu);
        if (session.established()) {
          peer_id = session.peerId();
          return Status::ok();
        }
      }
      std::string in;
      RETURN_IF_ERROR(readSome(fd, &in, deadline, what));
      RETURN_IF_ERROR(feed(in));
    }
  }
};

PeerChannel::PeerChannel(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
PeerChannel::PeerChannel(PeerChannel&&) noexcept = default;
PeerChannel& PeerChannel::operator=(PeerChannel&&) noexcept = default;
PeerChannel::~PeerChannel() = default;

Result<PeerChannel> PeerChannel::connect(int fd, const identity::NodeIdentity& self,
                                         std::string_view expected_peer_id, milliseconds timeout) {
  auto deadline = Clock::now() + timeout;
  setNoDelay(fd);
  auto impl = std::make_unique<Impl>(
      fd, identity::SecureSession(identity::SecureSession::Role::kInitiator, self, ""));
  impl->io_timeout_ms = timeout.count();
  // The magic and the HELLO in one segment.
  std::string first(kPeerMagic);
  first += impl->takeOutput();
  RETURN_IF_ERROR(writeAll(fd, first, timeout));
  RETURN_IF_ERROR(impl->handshake(deadline, timeout));
  if (impl->peer_id != expected_peer_id) {
    return Status::permissionDenied("peer channel: the node that answered is " + impl->peer_id +
                                    ", not the expected " + std::string(expected_peer_id));
  }
  return PeerChannel(std::move(impl));
}

Result<PeerChannel> PeerChannel::accept(int fd, const identity::NodeIdentity& self,
                                        std::string_view already_read, milliseconds timeout) {
  auto deadline = Clock::now() + timeout;
  setNoDelay(fd);
  auto impl = std::make_unique<Impl>(
      fd, identity::SecureSession(identity::SecureSession::Role::kResponder, self, ""));
  impl->io_timeout_ms = timeout.count();
  std::string head(already_read);
  std::string what = "peer channel: no \"ECP1\" within " + std::to_string(timeout.count()) + " ms";
  for (;;) {
    size_t n = std::min(head.size(), kPeerMagic.size());
    if (head.compare(0, n, kPeerMagic.substr(0, n)) != 0) {
      return Status::invalidArgument(
          "peer channel: the connection does not start with \"ECP1\" (first bytes: \"" +
          identity::toHex(head.substr(0, 4)) + "\" in hex)");
    }
    if (n == kPeerMagic.size()) break;
    RETURN_IF_ERROR(readSome(fd, &head, deadline, what));
  }
  if (head.size() > kPeerMagic.size())
    RETURN_IF_ERROR(impl->feed(std::string_view(head).substr(kPeerMagic.size())));
  RETURN_IF_ERROR(impl->handshake(deadline, timeout));
  return PeerChannel(std::move(impl));
}

Status PeerChannel::send(std::string_view message) {
  if (!impl_ || impl_->fd < 0) return Status::failedPrecondition("peer channel: closed");
  if (message.size() > kPeerMaxMessageBytes) {
    return Status::invalidArgument("peer channel: a message of " + std::to_string(message.size()) +
                                   " bytes is over the limit of " +
                                   std::to_string(kPeerMaxMessageBytes));
  }
  std::lock_guard<std::mutex> write_lock(impl_->write_mu);
  std::string out;
  {
    std::lock_guard<std::mutex> lock(impl_->session_mu);
    if (!impl_->dead.isOk()) return Status::failedPrecondition(impl_->dead.message());
    Status s = impl_->session.send(message);
    if (!s.isOk()) {
      impl_->dead = s.withContext("peer channel");
      return impl_->dead;
    }
    impl_->session.appendOutput(&out);
  }
  Status s = writeAll(impl_->fd, out, milliseconds(impl_->io_timeout_ms.load()));
  if (!s.isOk()) {
    // Part of a frame may be out: the stream cannot carry another message.
    std::lock_guard<std::mutex> lock(impl_->session_mu);
    if (impl_->dead.isOk()) impl_->dead = s;
  }
  return s;
}

Result<std::string> PeerChannel::receive(milliseconds timeout) {
  if (!impl_ || impl_->fd < 0) return Status::failedPrecondition("peer channel: closed");
  std::lock_guard<std::mutex> read_lock(impl_->read_mu);
  auto deadline = Clock::now() + timeout;
  std::string what = "peer channel: no message within " + std::to_string(timeout.count()) + " ms";
  for (;;) {
    {
      std::lock_guard<std::mutex> lock(impl_->session_mu);
      if (!impl_->pending.empty()) {
        std::string m = std::move(impl_->pending.front());
        impl_->pending.pop_front();
        return m;
      }
      if (!impl_->dead.isOk()) return impl_->dead;
    }
    std::string in;
    RETURN_IF_ERROR(readSome(impl_->fd, &in, deadline, what));
    // A failed feed may still have delivered messages before the bad frame.
    Status s = impl_->feed(in);
    std::lock_guard<std::mutex> lock(impl_->session_mu);
    if (!s.isOk() && impl_->pending.empty()) return s;
  }
}

bool PeerChannel::hasPending() const {
  if (!impl_) return false;
  std::lock_guard<std::mutex> lock(impl_->session_mu);
  return !impl_->pending.empty();
}

const std::string& PeerChannel::peerId() const {
  static const std::string kNone;
  return impl_ ? impl_->peer_id : kNone;
}

int PeerChannel::fd() const {
  return impl_ ? impl_->fd : -1;
}

void PeerChannel::setIoTimeout(milliseconds timeout) {
  if (impl_) impl_->io_timeout_ms = timeout.count();
}

void PeerChannel::shutdown() {
  if (impl_ && impl_->fd >= 0) ::shutdown(impl_->fd, SHUT_RDWR);
}

void PeerChannel::close() {
  if (!impl_ || impl_->fd < 0) return;
  ::close(impl_->fd);
  impl_->fd = -1;
}

}  // namespace edge::mesh
