// Replicator: keeps every member's copy of the ClusterState equal to the supernode's, and
// carries members' requests (apply, delete, cordon...) to the supernode
// (docs/scheduling.md, "Replication").
//
// Who dials whom: each member keeps one connection to the supernode's cluster port
// (followSupernode); it writes the byte 0x01 (net::PortClass::kClusterState), then runs
// a SecureSession as initiator keyed with the cluster key, so only the trust domain gets
// through, and checks that the responder is the node it was told is the supernode. The
// supernode takes the connections from the port (serve) and keeps those whose node id
// is_member() accepts.
//
// What goes over the wire, one SecureSession message each (version byte, type byte,
// body; see replication.cc for the exact layout and bounds):
//   member -> supernode  hello {digest and max stamp of its copy}, again whenever the
//                        member's copy changes (publish() on a member);
//                        ack {digest} for each state received; its own copy when asked;
//                        request {id, kind, body}
//   supernode -> member  the state, whole, in parts of at most kStatePartBytes: at
//                        connect and on every publish() whose digest differs from what
//                        that member acknowledged (a member that is still receiving an
//                        older state gets the newest once it has it: never a queue);
//                        ask (send me your copy: its max stamp is one the supernode has
//                        never seen, e.g. it comes from the other side of a healed
//                        partition); reply {id, result}
//   both ways            ping, so a peer that vanished without a FIN is noticed
//
// Threading: one event-loop thread per Replicator (epoll, non-blocking fds) owns every
// connection; the public methods may be called from any thread and return at once, except
// request(), which waits for its answer (bounded by its timeout) and must not be called
// from a callback, and publish(), which encodes the state on the caller's thread (a few
// ms per 100 KB of state JSON; the loop then seals it per member). Callbacks run on the loop
// thread, one at a time: keep them short (hand long work to another thread; on_request answers
// through its Reply, from any thread).
//
// Errors: hostile bytes, malformed or out-of-order messages close that connection only,
// and are counted (counters()); nothing here throws out.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include <nlohmann/json.hpp>

#include "cluster/cluster_state.h"
#include "common/status.h"
#include "identity/identity.h"

namespace edge::cluster {

// The most one state transfer may carry (the JSON of a ClusterState): larger states are
// not sent (publish() logs it and counts states_too_large).
inline constexpr size_t kMaxStateBytes = 64 << 20;
// The bytes of state in one message (SecureSession carries at most 1 MiB).
inline constexpr size_t kStatePartBytes = 960 << 10;

class Replicator {
 public:
  // Answers one request; may be called from any thread, once (later calls are ignored).
  using Reply = std::function<void(Result<nlohmann::json>)>;

  struct Options {
    // "" = none: then only nodes without a cluster key can talk to each other.
    std::string cluster_key;

    // Supernode: whether `node_id` is a member of this cluster (others are closed). Asked
    // at each handshake and again every second for the connected ones: a node that left
    // the member list is dropped. nullptr refuses everyone.
    std::function<bool(const std::string& node_id)> is_member;
    // Member: every new copy of the supernode's state (a digest not delivered before).
    std::function<void(const ClusterState& state)> on_state;
    // Supernode: a member's copy, asked for because it holds stamps the supernode does
    // not know. The owner merges it and publish()es the result (or not).
    std::function<void(const std::string& member_id, ClusterState state)> on_peer_state;
    // Supernode: a member's request (or this node's own request()), answered through
    // `reply`. nullptr answers every request with Unimplemented.
    std::function<void(const std::string& member_id, const std::string& kind,
                       const nlohmann::json& body, Reply reply)>
        on_request;

    std::chrono::milliseconds handshake_timeout{5000};   // connect + handshake + hello
    std::chrono::milliseconds keepalive_interval{5000};  // a ping when nothing else went
    std::chrono::milliseconds idle_timeout{20000};       // nothing received: peer gone
    // Output pending and none of it taken by the peer for this long: the peer is too
    // slow (or gone) and is dropped.
    std::chrono::milliseconds stall_timeout{15000};
    std::chrono::milliseconds backoff_initial{1000};  // member: reconnect after 1, 2, 4 s
    std::chrono::milliseconds backoff_max{4000};
    size_t max_members = 1000;  // supernode: authenticated member connections
    size_t max_in_flight = 16;  // requests unanswered per member (both sides enforce it)
    // Sealed bytes waiting for one peer beyond the state part being sent (replies,
    // pings): more, and the peer is dropped.
    size_t max_pending_output = 4 << 20;
  };

  // Every field a counter since create(); read with counters().
  struct Counters {
    uint64_t connections_accepted = 0;  // authenticated, member (or supernode) checked
    uint64_t refused_handshake = 0;     // wrong or missing cluster key, forged, timed out
    uint64_t refused_not_member = 0;    // supernode: is_member() said no (or no longer)
    uint64_t refused_wrong_peer = 0;    // member: the responder was not the supernode
    uint64_t malformed = 0;             // a message that does not decode or is out of place
    uint64_t dropped_slow = 0;          // a peer that did not read (stall/max output)
    uint64_t dropped_idle = 0;          // nothing received for idle_timeout
    uint64_t states_sent = 0;           // complete transfers queued
    uint64_t states_received = 0;       // complete, valid transfers
    uint64_t states_too_large = 0;
    uint64_t bytes_sent = 0;  // on the wire, all connections
    uint64_t requests_sent = 0;
    uint64_t requests_served = 0;  // answered to a member
    uint64_t dials = 0;            // member: connection attempts
  };

  // Starts the loop thread. Errors: the errno Status of epoll/eventfd creation.
  static Result<std::unique_ptr<Replicator>> create(const identity::NodeIdentity& self,
                                                    Options options);
  virtual ~Replicator() = default;

  // This node is the supernode: drops the connection to a former supernode (its pending
  // requests fail with Unavailable) and serves members from now on.
  virtual void becomeSupernode() = 0;
  // The supernode is `node_id` at `endpoint` ("a.b.c.d:port", from discovery's snapshot):
  // connects to it (at once when it is a change, dropping the former connection and, if
  // this node was supernode, its members), and reconnects with backoff when the
  // connection is lost. Telling the same supernode again does nothing.
  virtual void followSupernode(const std::string& node_id, const std::string& endpoint) = 0;
  // Neither: drops every connection.
  virtual void standBy() = 0;

  // This node's copy of the state. On the supernode it goes to every member whose copy
  // differs; on a member it is what hello describes and what the supernode gets when it
  // asks. A member's copy is also replaced by each state it receives, so a member
  // publishes only what did not come from the supernode: the copy restored from its
  // store at start, or one changed while it was cut off (e.g. it was a supernode).
  virtual void publish(const ClusterState& state) = 0;

  // Sends a request to the supernode and waits for its answer, at most `timeout`.
  // Errors: Unavailable when there is no connection to the supernode or it was lost
  // before the answer; DeadlineExceeded at the timeout; ResourceExhausted with
  // max_in_flight requests already waiting; the supernode's own error otherwise. On the
  // supernode it goes to on_request directly. FailedPrecondition from a callback (it
  // would wait on its own loop) or after stop().
  virtual Result<nlohmann::json> request(const std::string& kind, nlohmann::json body,
                                         std::chrono::milliseconds timeout) = 0;

  // For the cluster port's kClusterState handler: takes `fd` (any blocking mode; it is
  // ours to close) with the bytes the port already read (starting with 0x01), and
  // returns at once.
  virtual void serve(int fd, std::string already_read) = 0;

  // Closes every connection, fails waiting requests (Cancelled), joins the loop thread;
  // no callback runs after it returns. Idempotent; the destructor calls it. From a
  // callback it only asks the loop to end (after that callback returns).
  virtual void stop() = 0;

  virtual Counters counters() const = 0;
  // Supernode: members connected and authenticated; member: 1 while connected.
  virtual size_t connections() const = 0;
};

using ReplicatorPtr = std::unique_ptr<Replicator>;

}  // namespace edge::cluster
