// ClusterController: the cluster's orchestration as one node takes part in it
// (docs/scheduling.md, "The controller").
//
// Every node holds a copy of the ClusterState (cluster_state.h) and runs its own share of
// it: the instances assigned to it. The supernode is the one that changes it: it takes in
// applies (its own, and those members forward), stamps and signs them, runs the
// scheduler (scheduler.h) after every change it learns of — a spec, a member that joined,
// left or changed, a cordon — and publishes the result to the members.
//
// A member that goes away is not re-placed blindly: a closed session looks the same
// whether the host died or only edged did (and its containers still serve). The owner
// probes the node (its cluster port, its instances' ports) and reports what it found:
//   gone          nothing answers: its instances are re-placed at once (or after
//                 spec.disconnect.lostAfter) when spec.disconnect.replace;
//   edged down    the host answers, edged does not, instances do: nothing moves; the node
//                 keeps its share (as if cordoned) while it restarts and re-registers;
//   unknown       not probed yet: kept for at most kSuspectWindow, then treated as gone.
//
// No threads, no I/O: the owner (edged) calls it under one lock and it answers through
// Hooks; time comes in through tick(). So it is unit-tested with plain values.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "cluster/cluster_state.h"
#include "cluster/scheduler.h"
#include "common/clock.h"
#include "common/status.h"
#include "orchestrator/manifest.h"
#include "orchestrator/store.h"

namespace edge::cluster {

// One service this node must run for the cluster: its spec and how many instances.
struct LocalShare {
  orchestrator::ServiceManifest manifest;
  int64_t generation = 0;  // grows with every new version of the spec (from its stamp)
  std::vector<int> slots;  // the slots assigned here, sorted
  bool operator==(const LocalShare&) const = default;
};

enum class Probe { kUnknown, kGone, kEdgedDown };

class ClusterController {
 public:
  // How long a member that vanished stays "suspect" without a probe result.
  static constexpr std::chrono::milliseconds kSuspectWindow{3000};
  // How long a node whose edged is down keeps its share without re-registering.
  static constexpr std::chrono::milliseconds kEdgedRestartGrace{std::chrono::minutes(5)};

  struct Hooks {
    // Writes this node's copy durably; called before anything acts on a new copy.
    std::function<Status(const ClusterState&)> persist;
    // Supernode: every member gets this copy.
    std::function<void(const ClusterState&)> publish;
    // This node's share changed: what it must run now (all of it, sorted by service).
    std::function<void(const std::vector<LocalShare>&)> run;
    // Signs `bytes` with this node's key (SpecEntry::signingBytes).
    std::function<std::string(const std::string& bytes)> sign;
    // Whether `signature` over `bytes` is `author`'s and `author` may write specs (a
    // node of the trust domain, an operator key with the deploy role).
    std::function<bool(const std::string& author, const std::string& bytes,
                       const std::string& signature)>
        verify;
    // placement.scheduled, placement.pending, placement.conflict, placement.moved,
    // placement.refused: type, service, what happened.
    std::function<void(const std::string& type, const std::string& service,
                       const std::string& detail)>
        event;
  };

  ClusterController(std::string self_id, HlcClock& hlc, Hooks hooks);

  // The copy read back from the store at start: this node runs its share from it at
  // once, network or not.
  void restore(ClusterState state);

  // Whether this node is the cluster's supernode now. Becoming it reschedules (the
  // copy it holds is the cluster's: it was a member until now).
  void setSupernode(bool supernode);
  bool supernode() const { return supernode_; }

  // Supernode: the members as discovery sees them now (this node included). A member
  // missing from the list becomes suspect (see the top of this file).
  void setMembers(std::vector<NodeInfo> members, std::chrono::steady_clock::time_point now);
  // Supernode: what a probe of a suspect member found.
  void reportProbe(const std::string& node_id, Probe result,
                   std::chrono::steady_clock::time_point now);
  // Supernode: suspects whose window or grace passed are given up; lostAfter delays
  // expire. Call about once a second.
  void tick(std::chrono::steady_clock::time_point now);
  // The members the owner should probe now.
  std::vector<std::string> suspects() const;

  // Supernode: applies cluster-scoped specs from `author` (already authorised by the
  // caller), all or nothing. Unchanged specs are left alone (same canonical JSON).
  // kFailedPrecondition on a member (forward it to the supernode instead).
  Result<std::vector<orchestrator::ApplyOutcome>> apply(
      const std::vector<orchestrator::ServiceManifest>& specs, const std::string& author,
      bool dry_run);
  // Supernode: removes a cluster-scoped service. kNotFound when there is none.
  Status remove(const std::string& name, const std::string& author);
  // Supernode: cordon (no new instances), drain (and move its instances), uncordon.
  Status cordon(const std::string& node_id, bool cordoned, bool draining);

  // Member: a copy published by the supernode. Specs whose signature does not verify
  // are dropped from it (placement.refused); the rest is merged into this node's copy.
  void receive(const ClusterState& copy);
  // Supernode: a member's own copy (it was on the other side of a partition): merged,
  // conflicts reported, then rescheduled and published.
  void mergeFrom(const ClusterState& copy);

  const ClusterState& state() const { return state_; }
  // The services the last schedule could not place fully, with the reasons.
  const std::vector<Pending>& pending() const { return pending_; }

 private:
  struct Suspect {
    std::chrono::steady_clock::time_point since;
    Probe probe = Probe::kUnknown;
    NodeInfo last;  // as it was last seen: kept in the schedule while suspect
  };

  void reschedule(std::chrono::steady_clock::time_point now);
  ClusterState verified(const ClusterState& copy);
  void reportConflicts(const std::vector<Conflict>& conflicts);
  void commit(bool publish);
  void deliver();
  std::vector<orchestrator::ServiceManifest> liveSpecs() const;

  std::string self_id_;
  HlcClock& hlc_;
  Hooks hooks_;
  bool supernode_ = false;
  ClusterState state_;
  std::map<std::string, NodeInfo> members_;
  std::map<std::string, Suspect> suspects_;
  // Node -> when its share may be re-placed (spec.disconnect.lostAfter): kept until then.
  std::map<std::string, std::chrono::steady_clock::time_point> lost_;
  std::vector<Pending> pending_;
  std::vector<LocalShare> delivered_;
  bool delivered_once_ = false;
  std::chrono::steady_clock::time_point last_now_{};
};

// The generation a spec version runs as on a node: grows with its stamp.
int64_t generationOf(const Hlc& hlc);

}  // namespace edge::cluster
