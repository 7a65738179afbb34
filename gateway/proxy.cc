// The reverse-proxy engine's server: ProxyServer::create(), ProxyImpl (workers, their
// threads and listening sockets, stop with a grace period, adopted connections, counters)
// and the Worker's own lifecycle (sessions in and out, draining, routing decisions
// delivered). The engine's design and its other parts are in proxy_internal.h.
//
// Threading: ProxyImpl's start/stop/adopt/counters may be called from any thread (its
// mutex); the Worker methods here run on the worker's loop thread.
#include "gateway/proxy.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/log.h"
#include "gateway/proxy_internal.h"

namespace edge::gateway {

std::string_view tryEndName(TryEnd o) {
  switch (o) {
    case TryEnd::kResponse:
      return "response";
    case TryEnd::kConnectFailed:
      return "connect_failed";
    case TryEnd::kReset:
      return "reset";
    case TryEnd::kTimeout:
      return "timeout";
    case TryEnd::kBadResponse:
      return "bad_response";
  }
  return "unknown";
}

namespace proxy_internal {

Worker::~Worker() {
  for (auto& [id, s] : sessions_) delete s;
  sessions_.clear();
  for (auto& [key, p] : pools_)
    for (Upstream* u : p.idle) delete u;
  pools_.clear();
  listeners_.clear();
  loop_->runDeferred();  // deletions queued by the last batch
}

Session* Worker::newSession(TransportPtr t, Caller caller, bool tls) {
  uint64_t id = next_id_++;
  int fd = t->fd();
  auto* s = new Session(*this, id, std::move(t), std::move(caller), tls);
  if (Status st = loop_->add(fd, kEvents, s); !st.isOk()) {
    LOG_WARN("gateway: cannot watch a connection").kv("error", st.message());
    delete s;
    return nullptr;
  }
  sessions_[id] = s;
  bump(c_.connections_accepted);
  bump(c_.connections_active);
  loop_->defer([this, id] {
    auto it = sessions_.find(id);
    if (it != sessions_.end()) it->second->drive();  // adopted bytes or TLS handshake
  });
  return s;
}

void Worker::sessionClosed(Session* s) {
  sessions_.erase(s->id());
  c_.connections_active.store(c_.connections_active.load(std::memory_order_relaxed) - 1,
                              std::memory_order_relaxed);
  loop_->defer([s] { delete s; });
  if (draining_ && sessions_.empty()) loop_->stop();
}

void Worker::beginDrain() {
  draining_ = true;
  for (auto& l : listeners_) loop_->remove(l->fd_);
  listeners_.clear();
  std::vector<Session*> idle;
  for (auto& [id, s] : sessions_) {
    if (s->idleForDrain())
      idle.push_back(s);
    else
      s->stopKeepAlive();
  }
  for (Session* s : idle) s->closeNow("");
  for (auto& [key, p] : pools_) {
    std::vector<Upstream*> ups = p.idle;
    for (Upstream* u : ups) destroyUpstream(u);
  }
  if (sessions_.empty()) loop_->stop();
}

void Worker::deliver(uint64_t token, Decision d) {
  auto it = sessions_.find(token >> 20);
  if (it == sessions_.end()) return;  // the connection went away while routing
  it->second->deliverDecision(token, std::move(d));
}

Status ProxyImpl::start() {
  std::lock_guard<std::mutex> lock(mu_);
  if (running_) return Status::failedPrecondition("the proxy is already running");
  std::vector<std::unique_ptr<Worker>> workers;
  for (int i = 0; i < o_.workers; ++i) {
    ASSIGN_OR_RETURN(auto loop, EventLoop::create());
    workers.push_back(std::make_unique<Worker>(*this, i, std::move(loop)));
  }
  std::vector<uint16_t> ports;
  for (const std::string& address : o_.listen_tcp) {
    uint16_t port = 0;
    for (auto& w : workers) {
      ASSIGN_OR_RETURN(int fd, listenTcp(address, port));
      if (port == 0) {
        sockaddr_storage ss{};
        socklen_t len = sizeof ss;
        getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len);
        port = ntohs(ss.ss_family == AF_INET ? reinterpret_cast<sockaddr_in*>(&ss)->sin_port
                                             : reinterpret_cast<sockaddr_in6*>(&ss)->sin6_port);
      }
      w->listeners_.push_back(std::make_unique<Listener>(*w, fd, false, true));
    }
    ports.push_back(port);
  }
  std::vector<int> unix_fds;
  for (const std::string& path : o_.listen_unix) {
    auto fd = listenUnix(path);
    if (!fd.isOk()) {
      for (int f : unix_fds) close(f);
      return fd.status();
    }
    unix_fds.push_back(*fd);
    for (auto& w : workers)
      w->listeners_.push_back(std::make_unique<Listener>(*w, *fd, true, false));
  }
  for (auto& w : workers) {
    for (auto& l : w->listeners_) {
      // One unix socket is shared by all loops: EPOLLEXCLUSIVE wakes one of them.
      l->events_ = l->unix_ ? (EPOLLIN | EPOLLEXCLUSIVE) : EPOLLIN;
      Status s = w->loop_->add(l->fd_, l->events_, l.get());
      if (!s.isOk()) {
        for (int f : unix_fds) close(f);
        return s;
      }
    }
  }
  workers_ = std::move(workers);
  ports_ = std::move(ports);
  unix_fds_ = std::move(unix_fds);
  for (auto& w : workers_) {
    Worker* wp = w.get();
    w->thread_ = std::thread([wp] { wp->loop_->run(); });
  }
  running_ = true;
  return Status::ok();
}

void ProxyImpl::stop() {
  std::lock_guard<std::mutex> lock(mu_);
  if (!running_) return;
  running_ = false;
  for (auto& w : workers_) {
    Worker* wp = w.get();
    milliseconds grace = o_.stop_grace;
    wp->loop_->post([wp, grace] {
      wp->beginDrain();
      // Past the grace, whatever is still in flight is cut.
      EventLoop::TimerId id = wp->loop_->createTimer([wp] { wp->loop_->stop(); });
      wp->loop_->armTimer(id, wp->loop_->now() + grace);
    });
  }
  for (auto& w : workers_) w->thread_.join();
  dials_.shutdown();
  workers_.clear();
  for (int fd : unix_fds_) close(fd);
  unix_fds_.clear();
  for (const std::string& path : o_.listen_unix) unlink(path.c_str());
}

void ProxyImpl::adopt(int fd, std::string already_read, bool tls, std::string remote) {
  std::lock_guard<std::mutex> lock(mu_);
  if (!running_ || workers_.empty()) {
    close(fd);
    return;
  }
  Worker* w = workers_[next_adopt_.fetch_add(1) % workers_.size()].get();
  auto data = std::make_shared<std::string>(std::move(already_read));
  auto rem = std::make_shared<std::string>(std::move(remote));
  w->loop_->post([w, fd, data, tls, rem] { w->adopt(fd, std::move(*data), tls, std::move(*rem)); });
}

ProxyCounters ProxyImpl::counters() const {
  ProxyCounters c;
  auto& mu = const_cast<std::mutex&>(mu_);
  std::lock_guard<std::mutex> lock(mu);
  for (const auto& w : workers_) {
    const WorkerCounters& x = w->c_;
    auto ld = [](const std::atomic<uint64_t>& a) { return a.load(std::memory_order_relaxed); };
    c.connections_accepted += ld(x.connections_accepted);
    c.connections_active += ld(x.connections_active);
    c.requests += ld(x.requests);
    c.local_replies += ld(x.local_replies);
    c.bad_requests += ld(x.bad_requests);
    c.bytes_in += ld(x.bytes_in);
    c.bytes_out += ld(x.bytes_out);
    c.upstream_connects += ld(x.upstream_connects);
    c.upstream_reused += ld(x.upstream_reused);
    c.upstream_stale += ld(x.upstream_stale);
    c.connect_failures += ld(x.connect_failures);
    c.resets += ld(x.resets);
    c.timeouts += ld(x.timeouts);
    c.bad_responses += ld(x.bad_responses);
    c.retries += ld(x.retries);
    c.tunnels += ld(x.tunnels);
  }
  return c;
}

}  // namespace proxy_internal

using proxy_internal::numericAddress;
using proxy_internal::ProxyImpl;

Result<std::unique_ptr<ProxyServer>> ProxyServer::create(ProxyOptions options, Router& router) {
  if (options.workers < 1 || options.workers > 256) {
    return Status::invalidArgument("workers is " + std::to_string(options.workers) +
                                   "; use 1..256");
  }
  if (options.listen_tcp.empty() && options.listen_unix.empty()) {
    // Allowed: a server fed only through adopt().
  }
  for (const std::string& a : options.listen_tcp) {
    sockaddr_storage ss;
    socklen_t len;
    if (!numericAddress(a, &ss, &len)) {
      return Status::invalidArgument("listen_tcp \"" + a +
                                     "\" is not a numeric host:port (e.g. 127.0.0.1:8090)");
    }
  }
  if (options.max_pending_bytes < 4096 || options.limits.max_head_bytes < 256 ||
      options.max_connections_per_worker < 1 || options.upstream_max_per_key < 1) {
    return Status::invalidArgument(
        "limits too small: max_pending_bytes >= 4096, max head >= 256, connection limits >= 1");
  }
  return std::unique_ptr<ProxyServer>(new ProxyImpl(std::move(options), router));
}

}  // namespace edge::gateway
