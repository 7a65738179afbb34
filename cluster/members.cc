#include "cluster/members.h"

#include <algorithm>
#include <set>

namespace edge::cluster {

std::vector<NodeInfo> nodeInfos(const discovery::ClusterView& view) {
  std::set<std::string> blacklisted;
  for (const auto& b : view.blacklist) blacklisted.insert(b.node_id);
  std::vector<NodeInfo> out;
  out.reserve(view.members.size());
  for (const discovery::Member& m : view.members) {
    const discovery::NodeProfile& p = m.profile;
    NodeInfo n;
    n.node_id = p.node_id;
    n.name = p.name;
    n.arch = p.arch;
    n.os = p.os;
    n.runtime = p.runtime;
    n.power = p.power;
    n.labels = p.labels;
    n.roles = m.roles;
    n.allocatable_cpu_millis = p.allocatable_cpu_millis;
    n.allocatable_memory_bytes = p.allocatable_memory_bytes;
    n.merit = m.score;
    n.blacklisted = blacklisted.count(p.node_id) > 0;
    out.push_back(std::move(n));
  }
  std::sort(out.begin(), out.end(),
            [](const NodeInfo& a, const NodeInfo& b) { return a.node_id < b.node_id; });
  return out;
}

const discovery::ClusterView* primaryCluster(const discovery::ClusterSnapshot& snapshot) {
  for (const discovery::ClusterView& c : snapshot.clusters) {
    if (c.state == "member" || c.state == "supernode") return &c;
  }
  return nullptr;
}

}  // namespace edge::cluster
