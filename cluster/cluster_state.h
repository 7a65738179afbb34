// ClusterState: the cluster's desired state that every member holds a copy of
// (docs/scheduling.md, "The replicated state"): the cluster-scoped services, the nodes
// cordoned or drained, and where each instance runs.
//
// It is built so that any two copies can be merged without a leader: after a supernode
// failover (the successor already holds it), after a partition healed (two supernodes
// changed it apart), after a node rebooted without network (its own copy, from its
// store, keeps its assignments running).
//  - Services and cordons are last-writer-wins registers keyed by name (node id), each
//    stamped with a hybrid logical clock (Hlc): a change made after another one seen
//    always orders after it, whatever the wall clocks say; concurrent changes order by
//    wall time, then counter, then node id, so every member picks the same winner.
//    A deletion is a tombstone, kept so a merge cannot resurrect the service.
//  - Each register remembers the stamps of the versions it replaced (up to
//    kHistoryDepth): a merge that meets two versions neither of which replaced the
//    other has found a spec changed on both sides; the later one wins and the merge
//    reports a Conflict (the placement.conflict event).
//  - Assignments are not merged value by value: after a merge the supernode schedules
//    again (the scheduler keeps what still fits). The union of both sides' assignments
//    is its starting point; where both sides placed the same slot, resolveSlots()
//    keeps one before scheduling, so the merged cluster runs exactly `replicas`
//    instances.
//
// Encoding: JSON (toJson/fromJson), validated field by field like a manifest: a copy
// from a peer is untrusted input. Signatures of the specs are checked by the caller
// (the trust domain decides who may author a spec); ClusterState only carries them.
//
// Thread-safety: ClusterState is a value; HlcClock is thread-safe.
#pragma once

#include <compare>
#include <cstdint>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "cluster/scheduler.h"
#include "common/clock.h"
#include "common/status.h"

namespace edge::cluster {

// A hybrid logical clock stamp: wall milliseconds, a counter that orders stamps within
// one millisecond (or while the wall clock is behind a stamp already seen), and the
// node that made it, so two different events never compare equal.
struct Hlc {
  int64_t wall_ms = 0;
  uint32_t logical = 0;
  std::string node_id;
  auto operator<=>(const Hlc&) const = default;
  bool operator==(const Hlc&) const = default;
  bool isZero() const { return wall_ms == 0 && logical == 0 && node_id.empty(); }
  // "1765152000123.4@1f2e3d4c5b6a7980"; "0" for the zero stamp.
  std::string toString() const;
  static Result<Hlc> parse(std::string_view text);
};

// Makes the stamps of one node.
class HlcClock {
 public:
  // Stamps more than this far ahead of our wall clock are refused by observe(): a peer
  // with a clock years ahead must not drag every later change of the cluster along.
  static constexpr int64_t kMaxAheadMs = 60 * 60 * 1000;

  HlcClock(const Clock& clock, std::string node_id);
  // A stamp for a change made here: greater than every stamp made or observed before.
  Hlc now();
  // A stamp seen in a peer's state: later now() calls order after it.
  // kFailedPrecondition when it is more than kMaxAheadMs ahead of our wall clock
  // (ignored then).
  Status observe(const Hlc& seen);

 private:
  const Clock& clock_;
  const std::string node_id_;
  std::mutex mu_;
  int64_t wall_ms_ = 0;
  uint32_t logical_ = 0;
};

// One service of the cluster: the current version of its spec, or its tombstone.
struct SpecEntry {
  std::string name;
  Hlc hlc;                    // when this version was written
  std::vector<Hlc> replaced;  // the stamps it replaced, newest first (<= kHistoryDepth)
  bool deleted = false;       // a tombstone: removed at `hlc`
  std::string manifest_json;  // orchestrator::manifestToJson; empty when deleted
  std::string author;         // who wrote it: a node id or an operator key id
  std::string signature;      // the author's, over signingBytes(); checked by callers
  // What the author signs: name, hlc, deleted and the manifest, canonical.
  std::string signingBytes() const;
  bool operator==(const SpecEntry&) const = default;
};

struct CordonEntry {
  std::string node_id;
  Hlc hlc;
  bool cordoned = false;  // no new instances
  bool draining = false;  // and its instances move elsewhere
  bool operator==(const CordonEntry&) const = default;
};

// A spec changed on both sides of a partition: `kept` won, `lost` was dropped.
struct Conflict {
  std::string service;
  Hlc kept;
  Hlc lost;
};

inline constexpr size_t kHistoryDepth = 8;
// Bounds on what a copy may hold (fromJson refuses more): a cluster of edge hosts, not
// a datacenter.
inline constexpr size_t kMaxServices = 1000;
inline constexpr size_t kMaxAssignments = 20000;
inline constexpr size_t kMaxNodes = 1000;

class ClusterState {
 public:
  // Writes `e` when it is newer than the register's current version (or the register
  // is empty); returns whether it did. `e.replaced` is filled in here from the version
  // it replaces.
  bool put(SpecEntry e);
  bool putCordon(CordonEntry e);

  // nullptr when unknown; tombstones are returned too.
  const SpecEntry* spec(std::string_view name) const;
  const std::map<std::string, SpecEntry, std::less<>>& specs() const { return specs_; }
  const std::map<std::string, CordonEntry, std::less<>>& cordons() const { return cordons_; }
  bool cordoned(std::string_view node_id) const;

  const std::vector<Assignment>& assignments() const { return assignments_; }
  const Hlc& assignmentsHlc() const { return assignments_hlc_; }
  // Replaces the assignments (the supernode's new plan), stamped `hlc`; sorted here.
  void setAssignments(std::vector<Assignment> list, Hlc hlc);
  // The instances assigned to `node_id`.
  std::vector<Assignment> assignmentsOf(std::string_view node_id) const;

  // Takes in another copy: per register the later version wins; a version that neither
  // replaced the other is a conflict (returned, sorted by service). The assignments
  // become the union of both, stamped with the later stamp (see resolveSlots).
  std::vector<Conflict> merge(const ClusterState& other);

  // The latest stamp anywhere in the state (zero for an empty state).
  Hlc maxHlc() const;
  // Same digest <=> same content (canonical encoding, SHA-256, hex).
  std::string digest() const;

  nlohmann::json toJson() const;
  // Validates every field (types, sizes, names, stamps, sorted unique assignments);
  // errors say which field and what is allowed ("clusterState.specs[3].hlc: ...").
  static Result<ClusterState> fromJson(const nlohmann::json& j);

  bool operator==(const ClusterState&) const = default;

 private:
  std::map<std::string, SpecEntry, std::less<>> specs_;
  std::map<std::string, CordonEntry, std::less<>> cordons_;
  std::vector<Assignment> assignments_;  // sorted, unique
  Hlc assignments_hlc_;
};

// One node per (service, slot) of the replicas-mode services: where both sides of a
// healed partition placed a slot, the assignment on the smallest node id stays (the
// others' instances stop). every-node services (named in `every_node`) keep one per
// node. Sorted, unique output.
std::vector<Assignment> resolveSlots(std::vector<Assignment> list,
                                     const std::set<std::string>& every_node);

}  // namespace edge::cluster
