// PeerServer: the target's side of peer channels (docs/relay.md, "Peer channel"). Each
// channel arrives as a connected fd — handed over by discovery's 8083 demultiplexer, by
// the relay client for a BEP leg, or accepted on the server's own listener — and runs on
// a thread of its own:
//
//   accept (ECP1 + handshake: the caller's node id) -> open {token, kind} -> verify
//   -> opened | error 401/403 -> kind http: one request to the node's local API, if the
//   route table allows it | kind stream: a TCP connection to 127.0.0.1:<port>, if the
//   resolver allows that service and port, pumped both ways until both ends half-close.
//
// Bounds: at most Options::max_channels channels at once (a connection over the bound
// is closed at once); every wait is bounded by Options::io_timeout (a stream's by
// Options::stream_idle_timeout); request bodies up to kPeerMaxRequestBytes (413 beyond);
// the node API's reply is held until complete, up to kPeerMaxResponseBytes (502 beyond).
//
// Thread-safety: serve(), activeChannels() and waitIdle() may be called from any thread
// (serve() returns at once, so discovery's loop can call it); listen() and stop() from
// the owner. The destructor stops.
//
// Errors: listen() returns kInvalidArgument for an address that is not "host:port"
// (IPv4, port 0 picks one), or the errno-derived Status of socket/bind/listen.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <functional>
#include <list>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/status.h"
#include "identity/identity.h"

namespace edge::mesh {

// One entry of the table of local API routes a peer may call.
struct PeerRoute {
  std::string method;    // "GET", ... or "*" for any
  std::string path;      // "/api/v1/node"
  bool subtree = false;  // also every path below `path` ("/api/v1/services/...")
};

// What a peer may call today. The gateway's service calls (any method on
// /api/v1/services/<name>/call/...) join this table when they exist.
const std::vector<PeerRoute>& defaultPeerRoutes();

// Whether `method` + `path` (the query string is ignored) is in `routes`. Paths that are
// not canonical (".", ".." segments, "//", encoded slashes or dots, backslashes) never
// match, so no spelling reaches a route the table does not list.
bool peerRouteAllowed(const std::vector<PeerRoute>& routes, std::string_view method,
                      std::string_view path);
// "GET /api/v1/node, GET /api/v1/services[/...], ..." for error messages.
std::string describePeerRoutes(const std::vector<PeerRoute>& routes);

class PeerServer {
 public:
  struct Options {
    // Checks the caller's access token (audience edge-node, same account, issued to
    // the node `caller_node_id`) and returns its claims. kPermissionDenied (or
    // kInvalidArgument) is answered 401 with the message; other errors 503. The server
    // itself answers 403 when the claims' "scope" lacks node:call.
    std::function<Result<nlohmann::json>(std::string_view token, std::string_view caller_node_id)>
        verify;
    // The node's own API (a unix socket path) that kind http requests go to.
    std::string local_api;
    size_t max_channels = 64;
    // Handshake, each message, each call to the local API.
    std::chrono::milliseconds io_timeout{std::chrono::seconds(10)};
    // kind stream: whether `service` may be reached on 127.0.0.1:`port` (OK), or
    // kPermissionDenied (403) / kNotFound (404). Unset: streams are refused.
    std::function<Status(std::string_view service, int port)> resolve_stream;
    // A stream with no byte either way for this long is torn down.
    std::chrono::milliseconds stream_idle_timeout{std::chrono::minutes(5)};
    std::vector<PeerRoute> routes = defaultPeerRoutes();
  };

  PeerServer(identity::NodeIdentity identity, Options options);
  ~PeerServer();
  PeerServer(const PeerServer&) = delete;
  PeerServer& operator=(const PeerServer&) = delete;

  // Takes `fd` (a connected stream socket; set to blocking here) and runs one channel
  // on it; `already_read` are bytes read from it before (part of "ECP1" and the
  // handshake). Over max_channels, or once stopped, the fd is just closed.
  void serve(int fd, std::string already_read);

  // Its own TCP listener ("127.0.0.1:0", "0.0.0.0:8084"), for when discovery does not
  // hold port 8083; connections must start with "ECP1" as anywhere else.
  Status listen(const std::string& address);
  // The port listen() bound; 0 before.
  int listenPort() const { return listen_port_; }

  // Stops accepting, shuts every channel's connection down and waits for the threads.
  // A channel waiting on the local API ends when that call does (io_timeout at most).
  // Idempotent.
  void stop();

  size_t activeChannels() const;
  // Blocks until no channel runs (true) or `timeout` passes (false).
  bool waitIdle(std::chrono::milliseconds timeout) const;

 private:
  struct Worker;
  void acceptLoop();
  void reap();

  identity::NodeIdentity identity_;
  Options options_;

  int listen_fd_ = -1;
  int listen_port_ = 0;
  int stop_fd_ = -1;  // eventfd that wakes the accept loop
  std::thread acceptor_;

  mutable std::mutex mu_;
  mutable std::condition_variable idle_cv_;
  bool stopping_ = false;                       // under mu_
  std::list<std::unique_ptr<Worker>> workers_;  // under mu_
  size_t active_ = 0;                           // under mu_
};

}  // namespace edge::mesh
