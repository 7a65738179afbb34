// ProxyServer: the gateway's data path, an HTTP/1.1 reverse proxy on epoll.
//
// nginx's shape: `workers` threads, each with its own EventLoop, its own SO_REUSEPORT
// listening socket per TCP address, its own upstream keep-alive pool; nothing is shared
// between workers on the hot path (no locks; counters are per worker). The engine knows
// nothing of routes, tokens or policies: for every request head it asks the Router, which
// answers with a local reply or an Exchange that chooses targets and decides on retries.
//
// Behaviour (details in docs/gateway.md and in proxy.cc):
//  - keep-alive on both sides; HTTP/1.0 clients (keep-alive only when asked); pipelined
//    requests are answered in order, one at a time.
//  - bodies stream both ways with back-pressure (bounded buffers per connection); chunked
//    bodies pass through verbatim; request bodies up to `replay_buffer` are kept so a
//    failed try can be replayed, larger ones are not retried.
//  - Expect: 100-continue is answered by the gateway itself once the Router chose an
//    exchange (a local answer is sent instead of 100, and the connection then closes);
//    Expect is not forwarded and an upstream's own 100 is dropped.
//  - Upgrade (WebSocket): forwarded when the request asks for it; on 101 both
//    connections become a byte tunnel until either side closes.
//  - X-Forwarded-For (appended), X-Forwarded-Proto (set; kept from node callers) and
//    Via are added; hop-by-hop headers and those named by Connection are removed; Host
//    is kept.
//  - A pooled upstream connection that turns out dead before any response byte is
//    replaced by a fresh one for idempotent requests; that try is not counted (the
//    Exchange never hears of it).
//  - Errors are the gateway's own JSON, {"error":"...","upstream":"..."}: 502 bad or
//    reset upstream, 503 nothing available (Exchange::rejectStatus), 504 timeout,
//    400/413/414/431/501/505 for bad requests.
//  - Timeouts: header_timeout from a connection's first byte of a head to its end
//    (slowloris), idle_timeout between requests and while a body makes no progress,
//    Exchange::perTryTimeout from a try's start to its response head,
//    Exchange::deadline over all tries up to the response head (not the body: large
//    downloads are bounded by idle_timeout instead).
//
// Threading: create/start/stop/adopt/tcpPorts/counters are thread-safe. Router::route
// and every Exchange method are called on the request's worker thread.
// Errors: create() kInvalidArgument for bad options (names the option); start()
// kUnavailable/kPermissionDenied when an address cannot be bound (names it).
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/clock.h"
#include "common/status.h"
#include "gateway/http1.h"
#include "gateway/transport.h"

namespace edge::gateway {

struct Caller {                                 // who sent the request
  enum class Kind { kLocal, kNetwork, kNode };  // local: unix socket or loopback TCP;
  Kind kind = Kind::kLocal;                     // node: a TLS peer gateway (node_id proven)
  std::string address;                          // "198.18.0.2:40000", "unix"
  std::string node_id;                          // kNode only (Transport::peerNodeId())
};

struct Target {             // where one try goes
  std::string key;          // stable upstream id: pools and stats are per key
  std::string address;      // "host:port": non-blocking TCP connect (numeric IPs; names
                            // are resolved and dialled on a helper thread)
  std::string tls_node_id;  // non-empty: wrap in TLS via ProxyOptions::tls_client
  // Set: run on a blocking helper thread instead of connecting to `address`; returns a
  // connected fd (relay or proxy-node paths). Connections made this way are not pooled.
  std::function<Result<int>()> dial;
};

enum class TryEnd { kResponse, kConnectFailed, kReset, kTimeout, kBadResponse };
std::string_view tryEndName(TryEnd o);

struct TryResult {
  TryEnd outcome = TryEnd::kResponse;
  int status = 0;  // kResponse: the upstream's status
  Duration latency{};
  std::string error;
};

struct FinishInfo {  // once per request, for metrics and the access log
  int status = 0;    // what the caller got (0: connection dropped before a head)
  int tries = 0;
  uint64_t bytes_in = 0, bytes_out = 0;  // request and response body bytes forwarded
  Duration duration{};
  std::string upstream;  // last Target::key, "" when answered locally
  std::string error;     // why it failed, if it did
};

class Exchange {  // one request being forwarded; called on its worker thread
 public:
  virtual ~Exchange() = default;
  // Target of try `attempt` (0-based). nullopt: nothing available; the engine answers
  // rejectStatus() (e.g. 503) with rejectReason() as a JSON error body.
  virtual std::optional<Target> nextTarget(int attempt) = 0;
  // Called after every try. Return a delay to retry after it, or nullopt to stop. The
  // engine only asks when a retry is possible (request body fully replayable from its
  // buffer, no response byte sent downstream, deadline not passed); when it cannot ask,
  // it still calls tryDone(result, false) so stats and outlier detection see every try.
  virtual std::optional<Duration> tryDone(const TryResult& r, bool retry_possible) = 0;
  virtual int rejectStatus() const = 0;
  virtual std::string rejectReason() const = 0;
  virtual Duration perTryTimeout() const = 0;  // connect + until the response head
  virtual Duration deadline() const = 0;       // whole request, all tries
  // Applied to the upstream request head: set (replace); an empty value removes.
  virtual const std::vector<Header>& setHeaders() const = 0;
  virtual void finish(const FinishInfo& info) = 0;
};

struct Decision {  // exactly one of: a local answer, or an exchange
  int status = 0;  // != 0: answer with it; body is sent as is
  std::string content_type = "application/json";
  std::string body;
  std::vector<Header> headers;  // e.g. WWW-Authenticate
  std::unique_ptr<Exchange> exchange;
};

class Router {
 public:
  virtual ~Router() = default;
  // Called on a worker thread for each request head; must not block. Calls `done`
  // exactly once, inline or later from any thread (on-demand start, token fetch); the
  // engine posts it back to the request's loop. The connection survives the wait
  // (header_timeout applies to it: the caller gets a 504 if `done` is that late).
  virtual void route(const RequestHead& head, const Caller& caller,
                     std::function<void(Decision)> done) = 0;
};

struct ProxyOptions {
  int workers = 2;
  std::vector<std::string> listen_tcp;   // "127.0.0.1:8090"; SO_REUSEPORT, one per worker
  std::vector<std::string> listen_unix;  // socket paths (mode 0666: apps call it)
  // Factories for TLS (edged's NodeGateway passes gateway/node_tls's); unset = no TLS.
  std::function<Result<TransportPtr>(int fd, std::string already_read)> tls_server;
  std::function<Result<TransportPtr>(int fd, const std::string& node_id)> tls_client;

  ParseLimits limits;                                // request heads (400/414/431)
  size_t max_response_head = 64 * 1024;              // larger upstream head: 502
  std::chrono::milliseconds header_timeout{10'000};  // one request head, and routing
  std::chrono::milliseconds idle_timeout{60'000};    // keep-alive wait, stalled bodies
  std::chrono::milliseconds stop_grace{5'000};       // stop(): in-flight requests
  int max_connections_per_worker = 10'000;           // more are closed at accept
  size_t replay_buffer = 64 * 1024;                  // bigger bodies are not retried
  uint64_t max_request_body = 0;          // 413 above it (chunked: when it gets there); 0: no limit
  size_t max_pending_bytes = 256 * 1024;  // per direction, back-pressure
  int upstream_idle_per_key = 64;         // idle pool size per worker and key
  std::chrono::milliseconds upstream_idle_timeout{60'000};
  int upstream_max_per_key = 1024;  // per worker; more requests queue
  int dial_threads = 2;             // helpers for Target::dial/names
};

struct ProxyCounters {
  uint64_t connections_accepted = 0;
  uint64_t connections_active = 0;
  uint64_t requests = 0;           // request heads parsed
  uint64_t local_replies = 0;      // answered by the Router or by the engine's errors
  uint64_t bad_requests = 0;       // 4xx/5xx for malformed requests
  uint64_t bytes_in = 0;           // read from downstream
  uint64_t bytes_out = 0;          // written to downstream
  uint64_t upstream_connects = 0;  // new upstream connections
  uint64_t upstream_reused = 0;    // tries on a pooled connection
  uint64_t upstream_stale = 0;     // pooled connections found dead (free retry)
  uint64_t connect_failures = 0;
  uint64_t resets = 0;
  uint64_t timeouts = 0;
  uint64_t bad_responses = 0;
  uint64_t retries = 0;  // policy retries (tryDone returned a delay)
  uint64_t tunnels = 0;  // 101 upgrades
};

class ProxyServer {
 public:
  static Result<std::unique_ptr<ProxyServer>> create(ProxyOptions options, Router& router);
  virtual ~ProxyServer() = default;

  virtual Status start() = 0;  // binds, starts workers
  // Closes listeners, lets in-flight requests finish up to stop_grace, joins workers.
  virtual void stop() = 0;
  // A connection accepted by someone else (the port 8083 demultiplexer hands over HTTP
  // and TLS connections with the bytes it already read); `tls` = start a TLS server
  // handshake. Takes ownership of fd (closed if the server is not running).
  virtual void adopt(int fd, std::string already_read, bool tls, std::string remote_address) = 0;
  virtual std::vector<uint16_t> tcpPorts() const = 0;  // bound ports, in listen_tcp order
  virtual ProxyCounters counters() const = 0;
};
using ProxyServerPtr = std::unique_ptr<ProxyServer>;

}  // namespace edge::gateway
