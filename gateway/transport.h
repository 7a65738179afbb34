// Transport: the byte stream under one gateway connection, plain TCP/unix or TLS.
//
// The gateway's data path (proxy.h) runs non-blocking sockets on epoll loops; a
// Transport hides whether the bytes are encrypted. Every call is non-blocking and
// reports what the caller must wait for: kWantRead (wait for EPOLLIN), kWantWrite (wait
// for EPOLLOUT). TLS can want to write while the caller reads (renegotiation, key
// updates) and the other way round, so callers wait for what the result says, not for
// what they were doing.
//
// Threading: one Transport belongs to one loop thread; no method is thread-safe.
// Errors: kError carries a one-line reason ("connection reset by peer", "peer
// certificate is node 1f.., expected 9a.."); kClosed is an orderly end of the stream.
#pragma once

#include <cstddef>
#include <memory>
#include <string>

namespace edge::gateway {

struct IoResult {
  enum class Kind { kOk, kWantRead, kWantWrite, kClosed, kError };
  Kind kind = Kind::kOk;
  size_t bytes = 0;   // kOk: bytes read or written (read: > 0)
  std::string error;  // kError only

  static IoResult ok(size_t n) { return {Kind::kOk, n, {}}; }
  static IoResult wantRead() { return {Kind::kWantRead, 0, {}}; }
  static IoResult wantWrite() { return {Kind::kWantWrite, 0, {}}; }
  static IoResult closed() { return {Kind::kClosed, 0, {}}; }
  static IoResult failed(std::string why) { return {Kind::kError, 0, std::move(why)}; }
};

class Transport {
 public:
  virtual ~Transport() = default;  // closes the socket

  virtual int fd() const = 0;
  // Continues the handshake; kOk once it is complete (plain transports: at once). Until
  // then read() and write() must not be called.
  virtual IoResult handshake() = 0;
  virtual IoResult read(char* buf, size_t len) = 0;
  // Writes a prefix of buf; kOk with bytes < len means "call again when writable".
  virtual IoResult write(const char* buf, size_t len) = 0;
  // Ends the sending side (TLS close_notify, then shutdown(SHUT_WR)).
  virtual IoResult shutdownWrite() = 0;
  // Bytes already decrypted or handed over that read() returns without a socket event.
  // A loop must drain them before waiting for EPOLLIN again.
  virtual bool hasBufferedInput() const = 0;
  // After the handshake: the node id the peer proved (TLS between nodes), else "".
  virtual const std::string& peerNodeId() const = 0;
};
using TransportPtr = std::unique_ptr<Transport>;

// A plain socket transport owning `fd` (made non-blocking). `already_read` are bytes a
// previous owner took off the socket (the port 8083 demultiplexer); read() returns them
// first.
TransportPtr makePlainTransport(int fd, std::string already_read = {});

}  // namespace edge::gateway
