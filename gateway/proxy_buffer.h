// Buffer and IoFlags: the byte buffers and the remembered socket readiness of the proxy
// engine's connections (client sessions and upstream connections alike).
//
// Internal to the engine (proxy_*.cc, upstream_pool.cc); the public face is proxy.h.
// Header-only: every method is on the per-read/per-write path and stays inline.
// Threading: plain values, owned by one connection on its worker thread; no locking.
#pragma once

#include <sys/epoll.h>

#include <algorithm>
#include <cstddef>
#include <cstring>
#include <string_view>
#include <vector>

#include "gateway/transport.h"

namespace edge::gateway::proxy_internal {

constexpr size_t kReadChunk = 16 * 1024;

// Bytes with a consumed prefix; the storage is reused for the connection's life.
class Buffer {
 public:
  const char* data() const { return buf_.data() + start_; }
  size_t size() const { return end_ - start_; }
  bool empty() const { return end_ == start_; }
  std::string_view view() const { return {data(), size()}; }
  void consume(size_t n) {
    start_ += n;
    if (start_ == end_) start_ = end_ = 0;
  }
  char* prepare(size_t min) {
    if (buf_.size() - end_ < min) {
      if (start_ > 0) {
        std::memmove(buf_.data(), buf_.data() + start_, end_ - start_);
        end_ -= start_;
        start_ = 0;
      }
      if (buf_.size() - end_ < min) buf_.resize(std::max(buf_.size() * 2, end_ + min));
    }
    return buf_.data() + end_;
  }
  size_t room() const { return buf_.size() - end_; }
  void commit(size_t n) { end_ += n; }
  void append(const char* p, size_t n) {
    if (n == 0) return;
    std::memcpy(prepare(n), p, n);
    commit(n);
  }
  void append(std::string_view s) { append(s.data(), s.size()); }
  void clear() { start_ = end_ = 0; }
  // Gives memory back while a connection idles (keep-alive) after a big transfer.
  void trim() {
    if (empty() && buf_.size() > 2 * kReadChunk) std::vector<char>().swap(buf_);
  }

 private:
  std::vector<char> buf_;
  size_t start_ = 0, end_ = 0;
};

// Edge-triggered readiness as last seen, including TLS's cross-wants (a read that must
// wait for EPOLLOUT and the other way round).
struct IoFlags {
  bool readable = true, writable = true;
  bool read_wants_out = false, write_wants_in = false;
  // A short read from a plain socket drained it (edge-triggered: new bytes bring a new
  // event), which saves the read that would only say EAGAIN; not once the peer closed,
  // since its FIN brings no further event, nor for TLS, whose records stay in the socket.
  bool short_read_drains = false;

  void onEvents(uint32_t ev) {
    if (ev & (EPOLLRDHUP | EPOLLHUP | EPOLLERR)) short_read_drains = false;
    if (ev & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) {
      readable = true;
      if (write_wants_in) writable = true, write_wants_in = false;
    }
    if (ev & (EPOLLOUT | EPOLLHUP | EPOLLERR)) {
      writable = true;
      if (read_wants_out) readable = true, read_wants_out = false;
    }
  }
  void afterRead(size_t got, size_t asked) {
    if (short_read_drains && got < asked) readable = false;
  }
  void readBlocked(const IoResult& r) {
    readable = false;
    if (r.kind == IoResult::Kind::kWantWrite) read_wants_out = true;
  }
  void writeBlocked(const IoResult& r) {
    writable = false;
    if (r.kind == IoResult::Kind::kWantRead) write_wants_in = true;
  }
};

}  // namespace edge::gateway::proxy_internal
