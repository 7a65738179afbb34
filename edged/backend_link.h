// BackendLink: what an edged does with edge-backend, when one is configured.
//
//  - registers the node under its account (once; the credentials stay in the data dir);
//  - proves its reachability: the backend calls the node back; a node it cannot reach
//    (behind NAT, a firewall) holds a SEP on a relay so others can still signal it;
//  - as the supernode of a link cluster, registers the cluster and its members, again
//    only when it changed, with heartbeats in between;
//  - answers queries of the global discovery (scopes account and proximity);
//  - calls other nodes over end-to-end encrypted peer channels: directly when the target
//    is on one of our links or reachable, else through the relays (SEP signal, BEP);
//  - checks the tokens of nodes that call us with the gateway's TokenVerifier over the
//    backend's JWKS (the token must be issued to the very node whose key the channel
//    authenticated); the node's gateway checks its callers' tokens with the same one.
//
// Without a backend the node works as before; peer calls then fail with a message saying
// they need one (tokens come from it).
//
// Thread-safety: start()/stop() from one thread; every other method from any thread.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "common/clock.h"
#include "common/http.h"
#include "common/json.h"
#include "common/status.h"
#include "discovery/discovery.h"
#include "identity/identity.h"
#include "mesh/backend_client.h"

namespace edge::mesh {
class PeerServer;
class RelayClient;
}  // namespace edge::mesh

namespace edge::net {
class ClusterPort;
}  // namespace edge::net

namespace edge::gateway {
class TokenVerifier;
}  // namespace edge::gateway

namespace edge::edged {

class BackendLink {
 public:
  struct Options {
    std::string backend;  // "" = none
    std::string join_token_file;
    std::string data_dir;
    std::string local_api;  // the node's API socket (peer requests are served from it)
    std::string endpoint;   // where the backend and peers reach us ("" = from discovery)
    std::chrono::seconds reachability_recheck{300};
    std::chrono::seconds heartbeat{30};
  };

  BackendLink(Options options, identity::NodeIdentity identity, Clock& clock);
  ~BackendLink();  // stop()s
  BackendLink(const BackendLink&) = delete;
  BackendLink& operator=(const BackendLink&) = delete;

  // `discovery` may be null (discovery off); it must outlive this object.
  Status start(discovery::Discovery* discovery);
  void stop();

  bool configured() const { return client_ != nullptr; }

  // A peer channel ("ECP1") the cluster port classified, with the bytes it read: the peer
  // server serves it on a thread of its own.
  void servePeerChannel(int fd, std::string already_read);
  // Where relay legs (connections a caller made through our SEP) go: the cluster port,
  // which classifies them like the connections it accepts (peer channel, TLS or HTTP).
  // Set before start(); unset, relay legs are closed.
  void setClusterPort(net::ClusterPort* port) { port_ = port; }

  // For the gateway: the backend's token issuer (fetched once, from its OpenID
  // configuration), the verifier of the tokens it issues (made on first use; it fetches
  // the backend's JWKS in the background and keeps it fresh), a node token (aud
  // edge-node, cached by the client) and a relayed connection to a node.
  // kFailedPrecondition without a backend.
  Result<std::string> issuer();
  Result<std::shared_ptr<gateway::TokenVerifier>> tokenVerifier();
  // The account the backend registered this node in; "" until it has.
  std::string account() const;
  Result<std::string> nodeToken();
  Result<int> dialRelay(const std::string& node_id);

  // {"url", "registered", "account", "reachable", "path", "sep": {...}, "clusters": [...],
  //  "last_error"} for /api/v1/cluster.
  nlohmann::json state() const;

  // GET /v1/nodes on the backend with this query string (scope=account|proximity...).
  // kFailedPrecondition without a backend.
  Result<nlohmann::json> queryNodes(const std::string& query);

  // How `node_id` would be reached now: {"node_id", "path": "link"|"direct"|"relay",
  // "endpoint"}.
  Result<nlohmann::json> route(const std::string& node_id);

  // Sends `request` to `node_id`'s API through a peer channel (direct or relayed).
  Result<http::Response> callPeer(const std::string& node_id, const http::Request& request);

  // For the peer server: the caller's token must verify against the backend's keys, be
  // meant for nodes (aud edge-node), be of our account and issued to `caller_node_id`.
  // Returns the claims the peer server reads (sub, client_id, scope, acct, node, iss,
  // aud, exp); kPermissionDenied for a token refused, kUnavailable when the backend's
  // issuer or keys cannot be had.
  Result<nlohmann::json> verifyPeerToken(std::string_view token, std::string_view caller_node_id);

 private:
  void loop();
  void tick();
  void tickOnce();
  void checkReachability(const std::string& endpoint);
  void registerClusters();
  std::string ownEndpoint() const;
  void noteError(const std::string& what, const Status& s);

  Options options_;
  identity::NodeIdentity identity_;
  Clock& clock_;
  // Set by start(), read by API and peer threads that may already run.
  std::atomic<discovery::Discovery*> discovery_{nullptr};
  Status init_error_;  // a bad backend URL, reported by start()
  std::unique_ptr<mesh::BackendClient> client_;
  std::unique_ptr<mesh::PeerServer> peers_;
  std::unique_ptr<mesh::RelayClient> relay_;
  net::ClusterPort* port_ = nullptr;

  std::thread thread_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ = false;

  // Loop state, under mu_.
  std::string last_error_;
  int errors_this_tick_ = 0;
  bool reachable_known_ = false;
  bool reachable_ = false;
  std::string checked_endpoint_;
  SteadyTime next_check_{};
  bool sep_started_ = false;
  struct ClusterReg {
    std::string digest;
    std::string cluster_key;
    SteadyTime last_sent{};
  };
  std::map<std::string, ClusterReg> clusters_;  // by cluster id

  // Token verification, under keys_mu_.
  mutable std::mutex keys_mu_;
  std::string issuer_;  // "" until fetched
  std::shared_ptr<gateway::TokenVerifier> verifier_;
};

}  // namespace edge::edged
