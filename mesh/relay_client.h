// RelayClient: the node's side of the backend's relays (docs/relay.md). It keeps this
// node reachable from anywhere by holding a SEP (one outbound connection to a relay,
// re-established with jittered back-off), answers the signals that arrive on it by
// opening a BEP leg and handing it to the node's peer server, and dials other nodes'
// SEPs to get a BEP leg of its own.
//
// What travels over a BEP leg is a peer channel ("ECP1" + SecureSession), end to end
// between the two nodes; this class only delivers the connected socket.
//
// Threads: startSep() runs one SEP thread; each accepted signal runs on a thread of its
// own (at most Options::max_signals_in_flight at once; more are refused as busy), which
// also calls on_bep. dial() blocks its caller only.
//
// Thread-safety: dial(), state() and waitConnected() may be called from any thread;
// startSep() and stop() from the owner. The destructor stops.
//
// Errors of dial(): kInvalidArgument for a target that is not a node id or a kind other
// than http/stream; kNotFound when the target holds no SEP; kPermissionDenied when the
// backend refuses (token, scope, account) or the target refuses the call, with their
// message; kUnavailable / kDeadlineExceeded when the backend or a relay cannot be
// reached or does not answer in time, naming which; every message names the target.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>

#include <nlohmann/json.hpp>

#include "common/clock.h"
#include "common/status.h"

namespace edge::mesh {

// A call request that reached this node over its SEP.
struct Signal {
  std::string id;     // the signal's id, echoed in the answer
  std::string from;   // the caller's node id, as the backend vouches for it
  std::string kind;   // "http" | "stream"
  std::string token;  // the caller's access token for this node: verify it before accepting
};

class RelayClient {
 public:
  struct Location {
    double lat = 0;
    double lon = 0;
  };
  struct Options {
    std::string backend_url;  // "http://host:port" of edge-backend
    std::string node_id;      // this node
    // A bearer access token of this node for the backend (scopes relay:sep,
    // relay:connect, relay:bep). Called before every backend request.
    std::function<Result<std::string>()> access_token;
    // This node's access token for calling `target` (audience edge-node), sent inside
    // the signal so the target can check it before it spends a BEP. Needed by dial().
    std::function<Result<std::string>(const std::string& target)> node_token;
    // Where this node is, so the backend picks a relay nearby.
    std::optional<Location> location;
    std::chrono::milliseconds ping_interval{std::chrono::seconds(20)};
    // No byte from the relay (pongs included) for this long: the SEP is dead.
    std::chrono::milliseconds relay_silence{std::chrono::seconds(45)};
    std::chrono::milliseconds backoff_initial{std::chrono::seconds(1)};
    std::chrono::milliseconds backoff_max{std::chrono::seconds(60)};
    // Each backend request, each relay connect and each relay line. dial() waits 1.5x
    // this for the target's answer (the relay gives the target 10 s).
    std::chrono::milliseconds step_timeout{std::chrono::seconds(10)};
    size_t max_signals_in_flight = 16;
    int bep_ttl_seconds = 300;
  };

  // OK accepts the call; any error refuses it, and its message goes to the caller.
  using SignalHandler = std::function<Status(const Signal&)>;
  // Owns `fd` (a connected BEP leg, blocking) from the call on; `caller` is the node the
  // backend says is on the other end (the peer channel's handshake proves it).
  using BepHandler = std::function<void(int fd, const std::string& caller)>;

  explicit RelayClient(Options options);
  ~RelayClient();
  RelayClient(const RelayClient&) = delete;
  RelayClient& operator=(const RelayClient&) = delete;

  // Starts holding a SEP in the background and returns. kInvalidArgument for a bad
  // backend URL or missing callbacks; kFailedPrecondition when already started.
  Status startSep(SignalHandler on_signal, BepHandler on_bep);
  // Closes the SEP and waits for the signal threads (and so for on_bep calls) to end.
  void stop();

  // Whether the SEP is up within `timeout` (for start-up and tests).
  bool waitConnected(std::chrono::milliseconds timeout) const;

  // Reaches `target` through its SEP and a BEP; returns the connected, blocking BEP leg
  // (the caller writes "ECP1" and runs the peer channel). `kind`: "http" | "stream".
  Result<int> dial(const std::string& target, std::string_view kind = "http");

  // {"sep": {"connected", "address", "instance", "connected_since", "reconnects",
  // "last_error"}} for the node's /api/v1/cluster.
  nlohmann::json state() const;

 private:
  struct SepConn;

  void sepLoop();
  Status runSep();
  void onSignalLine(const std::shared_ptr<SepConn>& conn, const nlohmann::json& line);
  void answerSignal(std::shared_ptr<SepConn> conn, Signal signal);
  Result<nlohmann::json> post(const std::string& path, const nlohmann::json& body,
                              std::string_view what);
  Result<int> connectLeg(const std::string& address, const std::string& ticket,
                         std::string_view kind);

  Options options_;
  SignalHandler on_signal_;
  BepHandler on_bep_;
  std::thread sep_thread_;
  int stop_fd_ = -1;
  bool started_ = false;

  mutable std::mutex mu_;
  mutable std::condition_variable cv_;
  bool stopping_ = false;
  bool connected_ = false;
  std::string sep_address_, sep_instance_, last_error_;
  WallTime connected_since_{};
  uint64_t reconnects_ = 0;
  size_t in_flight_ = 0;  // signals being answered
  size_t threads_ = 0;    // signal threads alive (answering or in on_bep)
};

}  // namespace edge::mesh
