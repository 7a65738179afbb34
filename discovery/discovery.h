// Discovery: the node's membership in the self-organised clusters of its links.
//
// One Discovery per edged. For every configured interface (all multicast-capable IPv4
// interfaces by default) it runs a link agent (agent.h): beacons and probes on the
// link's multicast group, supernode election by merit, registration over TCP with the
// supernode, member lists and deltas, roles and the blacklist. One thread runs the
// sockets and timers of all links; the agents are single-threaded state machines.
//
// Thread-safety: snapshot(), setServices() and reportRefusal() may be called from any
// thread; start()/stop() from one owner.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "common/clock.h"
#include "common/status.h"
#include "discovery/profile.h"
#include "discovery/types.h"

namespace edge::net {
class ClusterPort;
}  // namespace edge::net

namespace edge::identity {
class NodeIdentity;
}  // namespace edge::identity

namespace edge::discovery {

struct DiscoveryOptions {
  std::vector<std::string> interfaces;       // empty = every multicast-capable IPv4 interface
  std::string group = "239.255.83.83:8083";  // multicast group and UDP port of the beacons
  std::string listen = "0.0.0.0:8083";       // TCP: registrations and member sessions
  std::string advertise;                     // "addr:port" peers should use; "" = derived
  std::string cluster_key;                   // optional pre-shared key (raw bytes); "" = none
  // What the profile says about this node (name, runtime, power, account, ...); its
  // interfaces and endpoint are filled in per link.
  ProfileInputs profile;
  std::chrono::milliseconds beacon_interval{200};
  std::chrono::milliseconds supernode_timeout{700};
  std::chrono::milliseconds member_timeout{4000};
  std::chrono::seconds blacklist_period{600};
  // The cluster port (common/cluster_port.h) discovery sessions arrive on: discovery
  // registers its handler for them there and does not listen itself; the owner registers
  // the other classes and starts the port. Null: discovery makes its own port on `listen`
  // (standalone use) and hands what is not a discovery session (first byte not 0x00; a
  // peer channel starts with "ECP1") to on_foreign_connection — blocking, with the bytes
  // already read, on the port's thread, which this call must not hold up (start a thread
  // or queue it). Unset: they are closed. `listen` also gives the advertised port.
  net::ClusterPort* port = nullptr;
  std::function<void(int fd, std::string already_read)> on_foreign_connection;
};

// type: "cluster.joined", "cluster.member_joined", "cluster.member_left",
// "cluster.supernode", "cluster.blacklisted", "cluster.role"; node: the node concerned.
using EventSink = std::function<void(const std::string& type, const std::string& node,
                                     const std::string& message)>;

class Discovery {
 public:
  static Result<std::unique_ptr<Discovery>> create(const DiscoveryOptions& options,
                                                   const identity::NodeIdentity& identity,
                                                   Clock& clock, EventSink events);
  virtual ~Discovery() = default;

  virtual Status start() = 0;
  // Leaves every cluster cleanly (members say so, a supernode hands over) and stops.
  virtual void stop() = 0;

  virtual ClusterSnapshot snapshot() const = 0;
  // The services this node hosts; a change re-announces the profile.
  virtual void setServices(std::vector<std::string> services) = 0;
  // A peer refused work it claimed capacity for (placement reports it); repeated
  // refusals contradict the profile and blacklist the peer.
  virtual void reportRefusal(const std::string& node_id, const std::string& what) = 0;
};

}  // namespace edge::discovery
