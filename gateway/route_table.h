// The gateway's route table: which service answers a request path and where its instances
// are. The orchestrator describes each service as a RouteSpec; RouteTable::build() turns
// the list into an immutable snapshot that matches paths by longest base-path prefix on a
// segment boundary; RouteTableHolder swaps snapshots while workers keep reading the one
// they took. Per-upstream state lives in UpstreamRegistry, so it survives the swap.
//
// Thread-safety: a RouteTable is immutable and read by any number of threads; what it
// points to (Upstream, RouteState) is thread-safe. RouteTableHolder::current() and
// update() may be called from any thread at any time. build() is for the control plane.
//
// Errors: validateRouteSpec() returns InvalidArgument naming the service, the field, the
// value and what is allowed. build() never fails: it leaves out invalid specs and the
// losers of base-path conflicts, and says so, one line each, in Built::warnings.
#pragma once

#include <atomic>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "common/status.h"
#include "gateway/resilience.h"
#include "gateway/upstream.h"

namespace edge::gateway {

enum class RouteScope : uint8_t { kLocal, kGlobal };

// An instance of the service on another node.
struct PeerInstance {
  enum class Via : uint8_t { kDirect, kProxy, kRelay };
  std::string node_id;   // hex node id (identity/identity.h)
  std::string endpoint;  // host:port of the peer's gateway as the route should dial it
  Via via = Via::kDirect;
  std::string proxy_node_id;  // Via::kProxy: the link-local proxy node to go through
  bool operator==(const PeerInstance&) const = default;
};

struct RouteSpec {
  std::string service;    // the service's name; also the route= metrics label
  std::string base_path;  // "/hello"; "/" = everything; no trailing '/', no "//", no '?' '#'
  RouteScope scope = RouteScope::kLocal;
  std::vector<std::string> required_scopes;  // token scopes a caller must hold; empty = any
  bool on_demand = false;
  RetryPolicy retry;
  std::vector<std::string> local_instances;  // "127.0.0.1:20001"
  std::vector<PeerInstance> peers;
  std::string global_upstream;  // host:port of the central gateway; global routes only
  bool operator==(const RouteSpec&) const = default;
};

// InvalidArgument for: an empty service name; a base path that is not "/" or "/seg[/seg]"
// (empty segments, '?', '#', whitespace, control characters); an endpoint that is not
// host:port with a port 1..65535 (IPv6 as [addr]:port); a peer without node id or with
// Via::kProxy but no proxy node id (node ids: 16 lower-case hex); a peer endpoint may be
// empty only with Via::kRelay; a global upstream on a local route; an invalid
// RetryPolicy.
Status validateRouteSpec(const RouteSpec& spec);

// One upstream of a route, as this snapshot knows it.
struct Endpoint {
  UpstreamPtr upstream;
  Tier tier = Tier::kLocal;
  std::string address;  // host:port to dial (for peers: the peer's endpoint)
  PeerInstance peer;    // Tier::kPeer only
};

struct RouteEntry {
  RouteSpec spec;
  // Locals first, then peers, then the global upstream (at most one).
  std::vector<Endpoint> endpoints;
  size_t local_count = 0;
  size_t peer_count = 0;
  RouteStatePtr state;
};

class RouteTable {
 public:
  struct Built {
    std::shared_ptr<const RouteTable> table;
    std::vector<std::string> warnings;
  };
  // Validates every spec, resolves conflicts and takes the upstreams' state from
  // `registry`. Conflicts: a service named twice keeps its first spec; a base path
  // claimed by several services goes to the lowest service name (byte order), whatever
  // the input order; duplicate endpoints within a spec are merged.
  static Built build(const std::vector<RouteSpec>& specs, UpstreamRegistry& registry);

  // The route whose base path is the longest prefix of `path` ending on a segment
  // boundary; the query ('?...') and fragment are ignored. Null when none matches (no "/"
  // route). The pointer lives as long as this snapshot.
  const RouteEntry* match(std::string_view path) const;

  // Every route, sorted by base path (`edgectl routes`).
  const std::vector<RouteEntry>& routes() const { return routes_; }

 private:
  friend class RouteTableHolder;
  RouteTable() = default;
  std::vector<RouteEntry> routes_;
  std::unordered_map<std::string_view, const RouteEntry*> by_path_;  // views into routes_
  size_t max_path_len_ = 0;  // longest base path: longer candidates cannot match
};
using RouteTableSnapshot = std::shared_ptr<const RouteTable>;

// Holds the current snapshot. A worker takes current() once per request and keeps it
// until the request ends, so an update never pulls a route from under a request.
class RouteTableHolder {
 public:
  RouteTableHolder();  // starts with an empty table
  RouteTableSnapshot current() const { return table_.load(std::memory_order_acquire); }
  void update(RouteTableSnapshot table) {
    table_.store(std::move(table), std::memory_order_release);
  }

 private:
  std::atomic<RouteTableSnapshot> table_;
};

}  // namespace edge::gateway
