// ClusterPort: the one owner of a node's cluster port (8083 by default). Discovery
// sessions, peer channels, node-to-node TLS and plain HTTP to the gateway all arrive on
// it; the port accepts each connection, reads its first bytes once (bounded in time and
// size, never blocking: one slow or silent client holds only its own slot), classifies it
// by its first byte and hands it, with the bytes already read, to the handler registered
// for that class. Connections that arrive already connected (relay legs) go through the
// same classifier with adopt().
//
//   first byte 0x00  discovery session (the top byte of a handshake frame's length)
//   first byte 0x01  cluster state replication (cluster/: then a SecureSession keyed
//                    with the cluster key, so only the trust domain gets through)
//   first byte 0x02  image transfer inside the cluster (cluster/: likewise)
//   first byte 'E'   peer channel ("ECP1")
//   first byte 0x16  TLS (a handshake record)
//   anything else    HTTP
//
// Handlers receive a blocking fd that is theirs to close, on the port's thread: they must
// not hold it up (start a thread or queue the connection). A class without a handler, a
// client that says nothing within first_bytes_timeout and one that hangs up are closed.
//
// Thread-safety: handle() before start(); adopt() from any thread; start()/stop() from
// the owner. Handlers are not called after stop() returns.
#pragma once

#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "common/status.h"

namespace edge::net {

// kHttp stays last: the port keeps one handler per class in an array sized by it.
enum class PortClass { kDiscovery, kClusterState, kClusterImages, kPeerChannel, kTls, kHttp };
const char* portClassName(PortClass c);
// The class of a connection whose first bytes are `first` (not empty).
PortClass classifyFirstBytes(std::string_view first);

class ClusterPort {
 public:
  struct Options {
    std::chrono::milliseconds first_bytes_timeout{10'000};
    size_t max_first_bytes = 4096;  // read once: what one recv(2) returns, up to this
    size_t max_pending = 1024;      // connections not yet classified; more are closed
    // Of those, accepted from one address: one host opening connections and saying
    // nothing cannot lock the others out. adopt()ed connections do not count.
    size_t max_pending_per_address = 64;
  };
  using Handler = std::function<void(int fd, std::string already_read)>;

  // Binds and listens on `address` ("host:port") now, so a taken port fails early;
  // connections wait in the backlog until start().
  static Result<std::unique_ptr<ClusterPort>> listen(const std::string& address, Options options);
  // Without a listener: only adopt()ed connections (tests, relay legs alone).
  static std::unique_ptr<ClusterPort> unbound(Options options);
  virtual ~ClusterPort() = default;

  virtual void handle(PortClass c, Handler handler) = 0;
  virtual Status start() = 0;
  virtual void stop() = 0;
  // A connection that did not come through the listener (a relay leg). `allow_discovery`
  // false: a discovery session on it is closed (discovery sessions come from the link).
  virtual void adopt(int fd, bool allow_discovery) = 0;
  // The port bound (useful when the address asked for port 0); 0 when unbound.
  virtual int boundPort() const = 0;
};

}  // namespace edge::net
