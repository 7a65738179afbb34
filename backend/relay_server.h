// RelayServer: one edge-backend replica's relay listener (docs/relay.md). It redeems the
// tickets Signaling mints (from the shared Store, so a ticket minted by any replica works
// on the instance it names), holds SEPs (one per node; a new one replaces the old),
// passes signals to them and their answers back, and pairs the two legs of each BEP and
// copies bytes between them with splice(2), passing half-closes on.
//
// It never sees plaintext: a BEP carries a peer channel (ECP1 + SecureSession) that is
// end-to-end encrypted between the two nodes.
//
// Bounds: Options::max_connections sockets at once (beyond: `ERR relay busy`), 256 bytes
// and handshake_timeout for the first line, 16 KiB per JSON line, max_pending_signals
// signals waiting on one SEP; SEPs silent for sep_silence, BEPs idle for idle_timeout or
// past their ttl are closed.
//
// Threads: one listener thread, one thread per connection (a BEP pair is served by the
// thread of its second leg). No lock is held across I/O; the Store is read without locks.
//
// Thread-safety: start() and stop() from one thread; stats(), boundPort() and
// advertisedAddress() from any thread.
//
// start() errors: kInvalidArgument for a malformed listen/advertise address, or a
// wildcard listen address without advertise; kFailedPrecondition when started twice;
// the errno-derived Status when the socket cannot be bound.
#pragma once

#include <chrono>
#include <memory>
#include <string>

#include <nlohmann/json.hpp>

#include "backend/store.h"
#include "common/clock.h"
#include "common/status.h"

namespace edge::backend {

class RelayServer {
 public:
  struct Options {
    std::string listen = "0.0.0.0:8085";  // "host:port"; port 0 picks one
    // "host:port" nodes reach this relay at. "" = the listen address (refused when it is
    // a wildcard); port 0 = the bound port.
    std::string advertise;
    std::string instance_id;  // the id Signaling puts in the tickets meant for this relay
    ClockPtr clock;           // ticket expiry and BEP ttl; null = SystemClock
    size_t max_connections = 1024;
    size_t max_pending_signals = 32;  // per SEP
    std::chrono::milliseconds handshake_timeout{5000};
    std::chrono::milliseconds sep_silence{60000};
    std::chrono::milliseconds signal_timeout{10000};  // target's answer to a signal
    std::chrono::milliseconds pair_timeout{10000};    // BEP's second leg
    std::chrono::milliseconds idle_timeout{60000};    // BEP without a byte either way
    size_t pipe_bytes = 1 << 20;                      // splice pipe per direction
  };

  RelayServer(Store& store, Options options);
  ~RelayServer();  // stop()s
  RelayServer(const RelayServer&) = delete;
  RelayServer& operator=(const RelayServer&) = delete;

  Status start();
  // Closes the listener and every connection, and returns once no connection thread
  // runs. Idempotent.
  void stop();

  int boundPort() const;
  // The "host:port" Signaling should hand out for this instance.
  std::string advertisedAddress() const;
  const std::string& instanceId() const;

  // For /metrics: {"instance", "address", "connections", "sep_active", "bep_active",
  // "bep_waiting", "bytes_relayed", "tickets_refused", "connections_refused",
  // "signals_forwarded", "signals_failed"}.
  nlohmann::json stats() const;

 private:
  class Impl;
  std::unique_ptr<Impl> impl_;
};

using RelayServerPtr = std::unique_ptr<RelayServer>;

}  // namespace edge::backend
