// Upstream connections and their keep-alive pools: a pooled connection is reused (most
// recently used first), a new one is connected without blocking to a numeric address,
// and anything that must block (Target::dial, host names) is dialled on DialPool's
// threads. Pools are per worker and per key (Target::key, plus the node id for TLS
// targets); at upstream_max_per_key, sessions wait for a slot in FIFO order.
// Internals in proxy_internal.h.
//
// Threading: everything here runs on the owning worker's loop thread, except the dial
// jobs, which post their result back to it.
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

#include "common/net.h"
#include "gateway/proxy_internal.h"

namespace edge::gateway::proxy_internal {

Upstream::Upstream(Worker& w, int fd, std::string key, bool poolable)
    : w_(w), fd_(fd), key_(std::move(key)), poolable_(poolable), idle_timer_(*w.loop_, [this] {
        // An idle pooled connection times out.
        w_.destroyUpstream(this);
      }) {}

Upstream::~Upstream() {
  w_.loop_->remove(fd_);
  if (!t_) close(fd_);
}

void Upstream::onEvents(uint32_t ev) {
  if (dead_) return;
  io_.onEvents(ev);
  if (owner_ != nullptr) {
    owner_->upstreamEvent();
    return;
  }
  // Idle in the pool: any byte or a close means it cannot carry another request.
  if (ev & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) w_.destroyUpstream(this);
}

void Worker::returnToPool(Upstream* u) {
  Pool& p = pool(u->key_);
  u->owner_ = nullptr;
  if (!u->poolable_ || draining_ ||
      static_cast<int>(p.idle.size()) >= server_.o_.upstream_idle_per_key) {
    destroyUpstream(u);
    return;
  }
  u->in_.trim();
  u->out_.trim();
  p.idle.push_back(u);
  u->idle_timer_.armAfter(server_.o_.upstream_idle_timeout);
  slotFreed(p);
}

void Worker::destroyUpstream(Upstream* u) {
  if (u->dead_) return;
  u->dead_ = true;
  u->idle_timer_.cancel();
  Pool& p = pool(u->key_);
  auto it = std::find(p.idle.begin(), p.idle.end(), u);
  if (it != p.idle.end()) p.idle.erase(it);
  --p.total;
  u->owner_ = nullptr;
  loop_->remove(u->fd_);
  loop_->defer([u] { delete u; });
  slotFreed(p);
}

void Worker::slotFreed(Pool& p) {
  while (!p.waiters.empty()) {
    uint64_t id = p.waiters.front();
    p.waiters.pop_front();
    auto it = sessions_.find(id);
    if (it == sessions_.end()) continue;
    it->second->slotAvailable();
    return;
  }
}

void Session::connectTarget() {
  if (target_.dial || [&] {
        sockaddr_storage ss;
        socklen_t len;
        return !numericAddress(target_.address, &ss, &len);
      }()) {
    // Blocking dial on a helper thread; the connection is not pooled.
    try_state_ = TryState::kDialing;
    Worker* w = &w_;
    uint64_t id = id_;
    uint64_t token = (static_cast<uint64_t>(tries_) << 32) | (request_seq_ & 0xFFFFFFFF);
    std::function<Result<int>()> dial = target_.dial;
    std::string address = target_.address;
    auto timeout = std::chrono::duration_cast<milliseconds>(ex_->perTryTimeout());
    w_.server_.dials_.run([w, id, token, dial, address, timeout] {
      Result<int> r = dial ? dial() : net::dialTcp(address, timeout);
      auto shared = std::make_shared<Result<int>>(std::move(r));
      w->loop_->post([w, id, token, shared] {
        auto it = w->sessions_.find(id);
        if (it == w->sessions_.end()) {
          if (shared->isOk()) close(shared->value());
          return;
        }
        it->second->dialed(token, std::move(*shared));
      });
    });
    return;
  }
  Pool& p = w_.pool(pool_key_);
  if (!force_fresh_ && !p.idle.empty()) {
    Upstream* u = p.idle.back();
    p.idle.pop_back();
    u->idle_timer_.cancel();
    bump(w_.c_.upstream_reused);
    attach(u, true);
    return;
  }
  if (p.total >= o_.upstream_max_per_key) {
    try_state_ = TryState::kWaitSlot;
    p.waiters.push_back(id_);
    return;
  }
  force_fresh_ = false;
  if (p.address != target_.address) {
    numericAddress(target_.address, &p.addr, &p.addr_len);
    p.address = target_.address;
  }
  int fd = socket(p.addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    tryFailed(TryEnd::kConnectFailed, std::string("socket: ") + std::strerror(errno));
    return;
  }
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  bump(w_.c_.upstream_connects);
  int rc = ::connect(fd, reinterpret_cast<sockaddr*>(&p.addr), p.addr_len);
  if (rc != 0 && errno != EINPROGRESS) {
    int err = errno;
    close(fd);
    tryFailed(TryEnd::kConnectFailed,
              "connect to " + target_.address + " failed: " + std::strerror(err));
    return;
  }
  auto* u = new Upstream(w_, fd, pool_key_, true);
  ++p.total;
  u->connecting_ = rc != 0;
  u->tls_node_id_ = target_.tls_node_id;
  if (target_.tls_node_id.empty()) {
    u->t_ = makePlainTransport(fd);
    u->io_.short_read_drains = true;
  }
  u->io_.readable = false;
  u->io_.writable = !u->connecting_;
  if (Status st = w_.loop_->add(fd, kEvents, u); !st.isOk()) {
    w_.destroyUpstream(u);
    tryFailed(TryEnd::kConnectFailed, st.message());
    return;
  }
  attach(u, false);
}

void Session::dialed(uint64_t token, Result<int> fd) {
  uint64_t expected = (static_cast<uint64_t>(tries_) << 32) | (request_seq_ & 0xFFFFFFFF);
  if (closed_ || try_state_ != TryState::kDialing || token != expected) {
    if (fd.isOk()) close(fd.value());
    return;
  }
  try_state_ = TryState::kNone;
  if (!fd.isOk()) {
    tryFailed(TryEnd::kConnectFailed, fd.status().message());
    drive();
    return;
  }
  int flags = fcntl(fd.value(), F_GETFL, 0);
  fcntl(fd.value(), F_SETFL, flags | O_NONBLOCK);
  bump(w_.c_.upstream_connects);
  auto* u = new Upstream(w_, fd.value(), pool_key_, false);
  ++w_.pool(pool_key_).total;
  u->tls_node_id_ = target_.tls_node_id;
  if (target_.tls_node_id.empty()) u->t_ = makePlainTransport(fd.value());
  if (Status st = w_.loop_->add(fd.value(), kEvents, u); !st.isOk()) {
    w_.destroyUpstream(u);
    tryFailed(TryEnd::kConnectFailed, st.message());
    drive();
    return;
  }
  attach(u, false);
  drive();
}

void Session::attach(Upstream* u, bool pooled) {
  up_ = u;
  u->owner_ = this;
  pooled_try_ = pooled;
  try_state_ = TryState::kActive;
  up_write_closed_ = false;
  u->out_.clear();
  u->out_.append(up_head_);
  u->out_.append(replay_);
}

}  // namespace edge::gateway::proxy_internal
