// LinkAgent: this node's membership in the cluster of one link (one interface).
//
// A state machine driven by the discovery loop (discovery.cc) or, in unit tests, by a
// fake network and a FakeClock: datagrams, session events and messages come in through
// on*(), timers through tick(), and everything it sends goes out through LinkIo.
//
//   probing --beacon--> joining --welcome--> member --supernode lost--> electing
//      |                                        ^                            |
//      +--no beacon in the window--> supernode <+---- successor is self -----+
//
// Timers (AgentOptions, defaults chosen for failover within 1 s of a cut link):
// - the supernode multicasts a beacon every 200 ms (one datagram per cluster, whatever its
//   size) and answers a probe at once;
// - a member that hears neither a beacon nor its session for 700 ms (three beacons and
//   a half) takes the supernode for gone; a killed supernode's sessions close at once, so
//   a crash is usually seen in milliseconds and a cut link in 0.7 s;
// - the successor is computed from the member list every member holds (election.h), so
//   no vote is needed: members connect to it directly, it takes over when the first one
//   arrives (or when it sees the loss itself) and the rest re-register; a successor that
//   does not answer within 1 s (join_timeout) is skipped;
// - members ping the supernode every second over their session; a member silent for 4 s
//   has vanished and is expired (a closed session expires it at once).
//
// Cost per join: a probe, a beacon, one session (handshake + register + welcome), one
// sealed delta datagram to the group, and one check that the advertised endpoint answers
// as this node (off the join's path when the session comes from the endpoint's address:
// the node is admitted first): O(1) messages, whatever the size of the cluster.
//
// Not thread-safe: one thread drives it (the owner locks around calls).
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "common/clock.h"
#include "common/status.h"
#include "discovery/codec.h"
#include "discovery/discovery.h"
#include "discovery/types.h"
#include "identity/identity.h"

namespace edge::discovery {

using SessionId = uint64_t;

// The network as an agent sees it.
class LinkIo {
 public:
  virtual ~LinkIo() = default;
  virtual void multicast(const std::string& datagram) = 0;
  // Opens an authenticated, encrypted session to `endpoint`; onSessionUp() or
  // onSessionDown() follows. Returns the session's id (never 0).
  virtual SessionId connect(const std::string& endpoint) = 0;
  virtual void send(SessionId session, const nlohmann::json& message) = 0;
  // Closes after what was sent is flushed; no onSessionDown() follows.
  virtual void close(SessionId session) = 0;
  // Checks that `endpoint` completes a handshake as `node_id`; onEndpointChecked() follows
  // with ok, kUnavailable (refused, unreachable), kPermissionDenied (another node
  // answered) or another code when nothing was proven (kDeadlineExceeded: no answer in
  // time; kResourceExhausted: no connection could be made here).
  virtual void checkEndpoint(const std::string& endpoint, const std::string& node_id) = 0;
  // The remote IPv4 address of a session ("" when unknown).
  virtual std::string peerAddress(SessionId session) const = 0;
};

struct AgentOptions {
  std::string interface;
  std::string cluster_id;
  std::chrono::milliseconds beacon_interval{200};
  std::chrono::milliseconds supernode_timeout{700};
  // How long a node it joins (a successor taking a hundred re-registrations at once, a
  // winner of a merge) has to answer; twice that for a first join.
  std::chrono::milliseconds join_timeout{1000};
  std::chrono::milliseconds member_timeout{4000};
  std::chrono::milliseconds ping_interval{1000};
  std::chrono::seconds blacklist_period{600};
  int refusal_limit = 3;
  std::string cluster_key;  // optional pre-shared key mixed into the group key's use
  uint64_t seed = 0;        // jitter; 0 = random
};

class LinkAgent {
 public:
  enum class State { kIdle, kProbing, kJoining, kMember, kElecting, kSupernode };

  LinkAgent(AgentOptions options, const identity::NodeIdentity& identity, Clock& clock, LinkIo& io,
            EventSink events);

  // Starts probing for a supernode with this node's profile (node_id, public_key, seq
  // and signature are filled in here).
  void start(NodeProfile self);
  // Re-announces the profile when something in it changed.
  void updateProfile(NodeProfile self);
  // Leaves cleanly: a member says so; a supernode names its successor to every member.
  void leave();
  void tick();

  void onDatagram(std::string_view bytes);
  void onSessionUp(SessionId session, const std::string& peer_id);
  void onMessage(SessionId session, const std::string& peer_id, const nlohmann::json& message);
  void onSessionDown(SessionId session);
  void onEndpointChecked(const std::string& node_id, const Status& result);
  void reportRefusal(const std::string& node_id, const std::string& what);

  ClusterView view() const;
  State state() const { return state_; }
  const std::string& clusterId() const { return options_.cluster_id; }
  const std::string& supernodeId() const { return supernode_id_; }
  int64_t version() const { return version_; }
  LinkCounters& counters() { return counters_; }
  // Whether this agent owns the session (routing of inbound sessions' later messages).
  bool ownsSession(SessionId s) const;

 private:
  struct Pending {  // a registration waiting for its endpoint check
    SessionId session = 0;
    NodeProfile profile;
  };

  int64_t nowUnix() const;
  void signSelf();
  int selfScore() const;
  int64_t activeMembers() const;

  // Datagrams.
  // With a cluster key, probes and beacons prove the sender holds it.
  void addKeyProof(nlohmann::json* body) const;
  void sendProbe();
  void sendBeacon();
  bool worthVerifying(DatagramType type, const nlohmann::json& j) const;
  bool mergeWinner(int their_score, int64_t their_members, const std::string& id) const;
  void handleProbe(const nlohmann::json& j);
  void handleBeacon(const nlohmann::json& j);
  void handleDelta(const Datagram& d);

  // Member side.
  void startProbing();
  void join(const std::string& target_id, const std::string& endpoint,
            const std::string& succession_of, std::chrono::milliseconds deadline);
  void joinFailed(const std::string& why);
  void startElection(const std::string& lost_id, const std::string& why);
  void electNext();
  void applyWelcome(SessionId session, const std::string& peer_id, const nlohmann::json& m);
  bool welcomeFromBase(const nlohmann::json& m, std::map<std::string, Member>* out) const;
  bool applyDelta(const nlohmann::json& d);
  void supernodeLost(const std::string& why);
  void emitOwnRoles(const std::vector<std::string>& roles);

  // Supernode side.
  void becomeSupernode(const std::string& takeover_from, const std::string& why);
  void yieldTo(const std::string& winner_id, const std::string& endpoint);
  void handleRegister(SessionId s, const std::string& peer, const nlohmann::json& m);
  void admit(const std::string& id);
  void runEndpointChecks();
  static bool checkFailureProvesLie(const Status& result);
  void sendWelcome(SessionId s, int64_t known_version = -1);
  void handleProfileUpdate(const std::string& peer, const nlohmann::json& m);
  void removeMember(const std::string& id, const std::string& why, bool close_session);
  void blacklist(const std::string& id, const std::string& address, const std::string& reason);
  void reject(SessionId s, const std::string& reason);
  void publishDelta(nlohmann::json delta);
  void flushDeltas();
  void recomputeRoles(nlohmann::json* roles_out);
  void maybeHandOver(const std::string& id);
  nlohmann::json memberListJson() const;
  nlohmann::json blacklistJson() const;

  // Shared.
  Status verifyProfile(const nlohmann::json& j, const std::string& expected_id, NodeProfile* out);
  static Status verifyDecodedProfile(const NodeProfile& p, const std::string& expected_id);
  void setSupernode(const std::string& id);
  void emit(const std::string& type, const std::string& node, const std::string& message);
  std::string endpointOf(const std::string& id) const;
  bool isBlacklisted(const std::string& id) const;

  AgentOptions options_;
  const identity::NodeIdentity& identity_;
  Clock& clock_;
  LinkIo& io_;
  EventSink events_;
  std::mt19937_64 rng_;

  State state_ = State::kIdle;
  NodeProfile self_;
  std::string boot_nonce_;  // distinguishes this run's beacon sequence from a replay
  uint64_t beacon_seq_ = 0;

  std::string supernode_id_;
  int64_t supernode_since_ = 0;
  int64_t version_ = 0;
  std::map<std::string, Member> members_;
  std::map<std::string, BlacklistEntry> blacklist_;
  std::string group_key_;
  uint32_t group_epoch_ = 0;
  LinkCounters counters_;

  // Probing / joining / electing.
  SteadyTime probe_deadline_{};
  SteadyTime next_probe_{};
  int probes_sent_ = 0;
  std::string better_prober_;  // a prober that ranks before this node, heard this window
  int claim_deferrals_ = 0;
  SessionId join_session_ = 0;
  std::string join_target_;
  std::string join_endpoint_;
  std::string join_succession_of_;
  SteadyTime join_deadline_{};
  std::string lost_supernode_;
  std::vector<std::string> excluded_;
  std::map<std::string, SteadyTime> refused_by_;  // supernodes that rejected us, until
  std::vector<Datagram> early_deltas_;            // from the join target, before its welcome

  // Member.
  SessionId super_session_ = 0;
  SteadyTime last_heard_super_{};
  SteadyTime next_ping_{};
  SteadyTime behind_since_{};
  bool sync_requested_ = false;

  // Supernode.
  SteadyTime next_beacon_{};
  SteadyTime last_probe_answer_{};
  std::map<std::string, SessionId> member_sessions_;
  std::map<SessionId, std::string> session_members_;
  std::map<std::string, SteadyTime> last_heard_;
  std::map<std::string, Pending> pending_;
  struct EndpointCheck {  // a member admitted before its endpoint was checked
    int attempts = 0;
    SteadyTime next{};
    bool in_flight = false;
  };
  std::map<std::string, EndpointCheck> checks_;
  nlohmann::json pending_delta_ = nlohmann::json::object();  // gathered, not yet sent
  int64_t published_version_ = 0;  // the version the last delta sent ended at
  SteadyTime next_delta_at_{};     // when gathered changes go out ({} = none gathered)
  SteadyTime last_delta_at_{};
  // What this node held when it took over (-1: it formed the cluster): members that held
  // the same list are sent only what changed since.
  int64_t inherited_version_ = -1;
  std::map<std::string, int64_t> inherited_seqs_;  // id -> profile seq
  std::map<std::string, std::vector<int64_t>> refusals_;
  std::string handing_over_to_;
  std::set<SessionId> leaving_sessions_;

  // Replay protection for beacons: (boot nonce, last seq) per sender.
  std::map<std::string, std::pair<std::string, uint64_t>> beacon_seen_;
};

const char* stateName(LinkAgent::State s);

}  // namespace edge::discovery
