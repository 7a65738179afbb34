// The cluster scheduler: where each instance of the cluster-scoped services runs
// (docs/scheduling.md).
//
// schedule() is a pure, deterministic function of (services, nodes, current assignments):
// no clock, no randomness, no dependence on the order of its inputs. The supernode runs it
// after every change it learns of (a spec applied, a member joined, left or changed its
// profile, a node cordoned), and a successor supernode that holds the same replicated log
// computes the same plan, so a failover moves nothing.
//
// For each service it keeps what still fits (an assignment whose node is still eligible
// stays where it is: no churn), then places what is missing, one instance at a time:
//   1. feasibility, per node: cordon, blacklist, arch/os/runtime/power/name/role/label
//      constraints, spec.placement.nodes and .labels, the resources the service reserves
//      (spec.resources) against what the node offers (allocatable) minus what the
//      instances already placed there reserve, and static host ports already taken there;
//   2. ranking of the feasible nodes: spread (fewest instances of this service, then
//      fewest instances overall) or binpack (most reserved first), the sum of the
//      affinity weights the node matches, nodes that already hold the image first,
//      battery-powered nodes last, merit, then node id (the final tie-break, so the
//      result never depends on input order).
// every-node services get one instance on each feasible node.
//
// An instance that cannot be placed is not an error: the service's Pending lists, per
// node, why that node was not eligible ("edge-3: arch arm64 != x86_64"), for
// `edgectl describe` and a visible `pending` state.
//
// Thread-safety: free functions on values.
#pragma once

#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "orchestrator/manifest.h"

namespace edge::cluster {

// A member as the scheduler sees it: its signed profile's facts plus the cluster's view.
struct NodeInfo {
  std::string node_id;
  std::string name;
  std::string arch;     // "x86_64"
  std::string os;       // "linux"
  std::string runtime;  // "docker" | "light"
  std::string power;    // "mains" | "battery"
  std::map<std::string, std::string> labels;
  std::vector<std::string> roles;        // discovery's role names ("cache", ...)
  int64_t allocatable_cpu_millis = 0;    // 0 = unknown: cpu reservations do not fit
  int64_t allocatable_memory_bytes = 0;  // 0 = unknown: memory reservations do not fit
  int merit = 0;                         // election.h score: higher ranks first
  bool cordoned = false;                 // no new instances (existing ones stay)
  bool blacklisted = false;              // refused assignments (Discovery::reportRefusal)
  std::set<std::string> images;          // image references and digests the node holds
  bool operator==(const NodeInfo&) const = default;
};

// One instance of a service on one node. For kReplicas, slot is the replica index
// 0..replicas-1; for kEveryNode it is 0 and there is one per node.
struct Assignment {
  std::string service;
  int slot = 0;
  std::string node_id;
  bool operator==(const Assignment&) const = default;
  auto operator<=>(const Assignment&) const = default;
};

// Why one service is not (fully) placed.
struct Pending {
  std::string service;
  int missing = 0;                   // instances without a node
  std::vector<std::string> reasons;  // one per ineligible node, sorted by node name:
                                     // "edge-3: arch arm64 != x86_64"
};

// The scheduler's answer: the full set of assignments (kept and new), sorted, and what
// could not be placed.
struct Plan {
  std::vector<Assignment> assignments;
  std::vector<Pending> pending;
};

// Services: the cluster-scoped services only (placement.scope == kCluster).
Plan schedule(const std::vector<orchestrator::ServiceManifest>& services,
              const std::vector<NodeInfo>& nodes, const std::vector<Assignment>& current);

// Whether `node` meets the service's conditions (everything of step 1 but resources
// and ports); when not, *why (if not null) gets the first reason, without the node's
// name: "arch arm64 != x86_64", "label zone is not set", "cordoned".
bool eligible(const orchestrator::ServiceManifest& service, const NodeInfo& node,
              std::string* why = nullptr);

}  // namespace edge::cluster
