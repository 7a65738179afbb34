// The scheduler's view of a cluster's members (scheduler.h NodeInfo), from discovery's
// view of the link (discovery/types.h ClusterView): each member's signed profile (name,
// arch, os, runtime, power, labels, allocatable), its roles and merit as the supernode
// computed them, and whether it is blacklisted.
//
// Thread-safety: free functions on values.
#pragma once

#include <vector>

#include "cluster/scheduler.h"
#include "discovery/types.h"

namespace edge::cluster {

// The members of `view`, this node included, sorted by node id.
std::vector<NodeInfo> nodeInfos(const discovery::ClusterView& view);

// The cluster the controller follows: the first cluster of the snapshot in which this
// node is a member or the supernode (nullptr when there is none yet).
const discovery::ClusterView* primaryCluster(const discovery::ClusterSnapshot& snapshot);

}  // namespace edge::cluster
