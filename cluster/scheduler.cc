// The cluster scheduler (cluster/scheduler.h, docs/scheduling.md).
//
// The inputs are first put in a canonical order (services by name, nodes by id, current
// assignments sorted and de-duplicated), so nothing after that can depend on the order
// they came in. Then, on indices rather than strings:
//   keep    current assignments whose node exists, still meets the service's conditions
//           (a cordoned node keeps what it has) and whose slot is still wanted, admitted
//           per node in (slot, service) order while reservations and static ports fit,
//           so an over-committed node sheds its highest slots first;
//   place   every-node services first (per-node agents get their share before replicas
//           fill the nodes), then the missing replica slots in (slot, service) order, so
//           when capacity is short every service gets its first replicas before any gets
//           its last; each one on the best-ranked feasible node at that moment;
//   pending for each service left short, why each node could not take one more, against
//           the final state (so feeding the plan back gives the same reasons).
// Integer arithmetic only: a successor on another architecture ranks identically.
#include "cluster/scheduler.h"

#include <algorithm>
#include <cstdint>
#include <limits>
#include <string_view>
#include <tuple>
#include <unordered_map>
#include <utility>

namespace edge::cluster {

namespace {

using orchestrator::Placement;
using orchestrator::PlacementConstraint;
using orchestrator::ServiceManifest;
using Op = PlacementConstraint::Op;

constexpr int64_t kNanoPerMilli = 1'000'000;

// Millicores as nano-CPUs, clamped so that no figure a profile or spec may carry
// overflows.
int64_t nanoFromMillis(int64_t millis) {
  constexpr int64_t kMax = std::numeric_limits<int64_t>::max() / kNanoPerMilli;
  return std::clamp<int64_t>(millis, 0, kMax) * kNanoPerMilli;
}

// ---- text --------------------------------------------------------------------------

// Exact, in the largest binary unit that divides it ("512Mi", "1Gi"), else bytes.
std::string bytesText(int64_t bytes) {
  static const std::pair<const char*, int> kUnits[] = {
      {"Ti", 40}, {"Gi", 30}, {"Mi", 20}, {"Ki", 10}};
  if (bytes == 0) return "0";
  for (const auto& [unit, shift] : kUnits) {
    if (bytes % (int64_t{1} << shift) == 0) return std::to_string(bytes >> shift) + unit;
  }
  return std::to_string(bytes);
}

// CPUs from nano-CPUs, as the manifest writes them: "2", "500m", "0.0005".
std::string cpuText(int64_t nano) {
  if (nano % 1'000'000'000 == 0) return std::to_string(nano / 1'000'000'000);
  if (nano % kNanoPerMilli == 0) return std::to_string(nano / kNanoPerMilli) + "m";
  std::string frac = std::to_string(nano % 1'000'000'000);
  frac.insert(0, 9 - frac.size(), '0');
  while (frac.back() == '0') frac.pop_back();
  return std::to_string(nano / 1'000'000'000) + "." + frac;
}

std::string_view negated(Op op) {
  switch (op) {
    case Op::kEq:
      return "!=";
    case Op::kNe:
      return "==";
    case Op::kGe:
      return "<";
    case Op::kGt:
      return "<=";
    case Op::kLe:
      return ">";
    case Op::kLt:
      return ">=";
  }
  return "?";
}

std::string shown(const std::string& v) {
  return v.empty() ? "(unknown)" : v;
}

// ---- eligibility -------------------------------------------------------------------

void setWhy(std::string* why, std::string text) {
  if (why) *why = std::move(text);
}

bool holdsRole(const NodeInfo& node, const std::string& role) {
  return std::find(node.roles.begin(), node.roles.end(), role) != node.roles.end();
}

// A string attribute of the node, or nullptr when `attribute` is not one.
const std::string* stringAttribute(const NodeInfo& node, const std::string& attribute) {
  if (attribute == "arch") return &node.arch;
  if (attribute == "os") return &node.os;
  if (attribute == "runtime") return &node.runtime;
  if (attribute == "power") return &node.power;
  if (attribute == "name") return &node.name;
  if (attribute == "node") return &node.node_id;
  return nullptr;
}

bool compare(int64_t a, Op op, int64_t b) {
  switch (op) {
    case Op::kEq:
      return a == b;
    case Op::kNe:
      return a != b;
    case Op::kGe:
      return a >= b;
    case Op::kGt:
      return a > b;
    case Op::kLe:
      return a <= b;
    case Op::kLt:
      return a < b;
  }
  return false;
}

bool meets(const PlacementConstraint& c, const NodeInfo& node, std::string* why) {
  const bool ordering = c.op != Op::kEq && c.op != Op::kNe;
  std::string_view op = orchestrator::constraintOpName(c.op);

  if (c.attribute == "cpu" || c.attribute == "memory") {
    const bool cpu = c.attribute == "cpu";
    int64_t have = cpu ? node.allocatable_cpu_millis : node.allocatable_memory_bytes;
    if (have <= 0) {
      setWhy(why, c.attribute + " allocatable unknown (constraint " + c.attribute + " " +
                      std::string(op) + " " + c.value + ")");
      return false;
    }
    if (compare(have, c.op, c.quantity)) return true;
    std::string have_text = cpu ? cpuText(nanoFromMillis(have)) : bytesText(have);
    std::string want_text = cpu ? cpuText(nanoFromMillis(c.quantity)) : bytesText(c.quantity);
    setWhy(why, c.attribute + " " + have_text + " " + std::string(negated(c.op)) + " " + want_text);
    return false;
  }

  const bool is_label = c.attribute.starts_with("label.");
  const std::string* str = stringAttribute(node, c.attribute);
  if (!is_label && !str && c.attribute != "role") {
    setWhy(why, "unknown attribute " + c.attribute + " (constraint " + c.text + ")");
    return false;
  }
  if (ordering) {
    setWhy(why, c.attribute + " " + std::string(op) + " " + c.value + ": " + std::string(op) +
                    " compares cpu and memory only, " + c.attribute + " is a string");
    return false;
  }
  const bool want_equal = c.op == Op::kEq;

  if (c.attribute == "role") {
    if (holdsRole(node, c.value) == want_equal) return true;
    setWhy(why, (want_equal ? "no role " : "has role ") + c.value);
    return false;
  }
  if (is_label) {
    std::string key = c.attribute.substr(6);
    auto it = node.labels.find(key);
    if (it == node.labels.end()) {
      if (!want_equal) return true;
      setWhy(why, "label " + key + " is not set");
      return false;
    }
    if ((it->second == c.value) == want_equal) return true;
    setWhy(why,
           "label " + key + " " + it->second + " " + std::string(negated(c.op)) + " " + c.value);
    return false;
  }
  if ((*str == c.value) == want_equal) return true;
  setWhy(why, c.attribute + " " + shown(*str) + " " + std::string(negated(c.op)) + " " + c.value);
  return false;
}

// eligible(), with cordon optional: a cordoned node takes no new instance but keeps the
// ones it has.
bool check(const ServiceManifest& service, const NodeInfo& node, bool cordon_counts,
           std::string* why) {
  if (cordon_counts && node.cordoned) {
    setWhy(why, "cordoned");
    return false;
  }
  if (node.blacklisted) {
    setWhy(why, "blacklisted");
    return false;
  }
  const Placement& p = service.placement;
  if (!p.nodes.empty() && std::none_of(p.nodes.begin(), p.nodes.end(), [&](const std::string& n) {
        return n == node.name || n == node.node_id;
      })) {
    setWhy(why, "not in placement.nodes");
    return false;
  }
  for (const auto& [key, value] : p.labels) {
    auto it = node.labels.find(key);
    if (it == node.labels.end()) {
      setWhy(why, "label " + key + " is not set");
      return false;
    }
    if (it->second != value) {
      setWhy(why, "label " + key + " " + it->second + " != " + value);
      return false;
    }
  }
  for (const auto& c : p.constraints) {
    if (!meets(c, node, why)) return false;
  }
  return true;
}

// ---- canonical inputs --------------------------------------------------------------

// Total order on NodeInfo, for duplicates of one id (a member list should never hold
// them; if it does, the same one wins whatever the input order).
auto nodeKey(const NodeInfo& n) {
  return std::tie(n.node_id, n.name, n.arch, n.os, n.runtime, n.power, n.labels, n.roles,
                  n.allocatable_cpu_millis, n.allocatable_memory_bytes, n.merit, n.cordoned,
                  n.blacklisted, n.images);
}

// A static host port: port * 2 + (udp ? 1 : 0).
using PortKey = int32_t;

struct Service {
  const ServiceManifest* m = nullptr;
  bool every_node = false;
  int replicas = 0;
  int64_t cpu_nano = 0;
  int64_t memory = 0;
  std::vector<PortKey> ports;     // static host ports, sorted, unique
  std::vector<uint8_t> eligible;  // per node: may take new instances
  std::vector<uint8_t> keeps;     // per node: may keep the instances it has (cordon ignored)
  std::vector<int> rank;          // per node: position by the static ranking keys
  std::vector<int> count;         // per node: instances of this service
  int placed = 0;
  int missing = 0;
};

struct NodeState {
  int64_t cpu_cap = 0;  // nano-CPUs; 0 = unknown
  int64_t mem_cap = 0;  // bytes; 0 = unknown
  int64_t cpu_used = 0;
  int64_t mem_used = 0;
  int total = 0;                               // instances of every service
  std::vector<std::pair<PortKey, int>> ports;  // static host port -> service index
};

std::string portText(PortKey k) {
  return std::to_string(k / 2) + ((k % 2) ? "/udp" : "/tcp");
}

bool holdsImage(const NodeInfo& node, const std::string& image) {
  if (image.empty()) return false;
  if (node.images.count(image)) return true;
  auto at = image.find('@');
  return at != std::string::npos && node.images.count(image.substr(at + 1));
}

class Scheduler {
 public:
  Scheduler(const std::vector<ServiceManifest>& services, const std::vector<NodeInfo>& nodes) {
    canonicalNodes(nodes);
    canonicalServices(services);
  }

  Plan run(const std::vector<Assignment>& current);

 private:
  void canonicalNodes(const std::vector<NodeInfo>& nodes);
  void canonicalServices(const std::vector<ServiceManifest>& services);
  void keep(const std::vector<Assignment>& current);
  void placeEveryNode(int s);
  void placeReplica(int s, int slot);
  // Whether node n has room for one more instance of s; `why` (if not null) says what
  // it lacks.
  bool fits(const Service& s, int n, std::string* why) const;
  void commit(int s, int slot, int n);
  // Ranking: true when node a is better than node b for service s.
  bool better(const Service& s, int a, int b) const;
  int64_t reservedPpm(int n) const;
  Pending pendingOf(int s) const;

  std::vector<const NodeInfo*> nodes_;  // sorted by id, unique
  std::vector<NodeState> state_;
  std::unordered_map<std::string_view, int> node_index_;
  std::vector<Service> services_;  // sorted by name, unique
  std::unordered_map<std::string_view, int> service_index_;
  std::vector<Assignment> out_;
};

void Scheduler::canonicalNodes(const std::vector<NodeInfo>& nodes) {
  for (const auto& n : nodes) nodes_.push_back(&n);
  std::sort(nodes_.begin(), nodes_.end(),
            [](const NodeInfo* a, const NodeInfo* b) { return nodeKey(*a) < nodeKey(*b); });
  nodes_.erase(
      std::unique(nodes_.begin(), nodes_.end(),
                  [](const NodeInfo* a, const NodeInfo* b) { return a->node_id == b->node_id; }),
      nodes_.end());
  state_.resize(nodes_.size());
  for (size_t i = 0; i < nodes_.size(); ++i) {
    node_index_.emplace(nodes_[i]->node_id, static_cast<int>(i));
    state_[i].cpu_cap = nanoFromMillis(nodes_[i]->allocatable_cpu_millis);
    state_[i].mem_cap = std::max<int64_t>(0, nodes_[i]->allocatable_memory_bytes);
  }
}

void Scheduler::canonicalServices(const std::vector<ServiceManifest>& services) {
  std::vector<const ServiceManifest*> sorted;
  for (const auto& m : services) {
    if (m.placement.scope == Placement::Scope::kCluster) sorted.push_back(&m);
  }
  std::sort(sorted.begin(), sorted.end(),
            [](const ServiceManifest* a, const ServiceManifest* b) { return a->name < b->name; });
  // Two specs under one name (a spec log should never hold them): the one whose
  // canonical text sorts first, whatever the input order.
  for (size_t i = 0; i < sorted.size();) {
    size_t j = i + 1;
    while (j < sorted.size() && sorted[j]->name == sorted[i]->name) ++j;
    if (j - i > 1) {
      auto best = std::min_element(sorted.begin() + i, sorted.begin() + j,
                                   [](const ServiceManifest* a, const ServiceManifest* b) {
                                     return orchestrator::manifestToJson(*a) <
                                            orchestrator::manifestToJson(*b);
                                   });
      sorted[i] = *best;
      sorted.erase(sorted.begin() + i + 1, sorted.begin() + j);
    }
    ++i;
  }

  const size_t n_nodes = nodes_.size();
  services_.resize(sorted.size());
  for (size_t si = 0; si < sorted.size(); ++si) {
    Service& s = services_[si];
    s.m = sorted[si];
    service_index_.emplace(s.m->name, static_cast<int>(si));
    s.every_node = s.m->placement.mode == Placement::Mode::kEveryNode;
    s.replicas = s.every_node ? 0 : std::max(0, s.m->replicas);
    s.cpu_nano = std::max<int64_t>(0, s.m->resources.nano_cpus);
    s.memory = std::max<int64_t>(0, s.m->resources.memory_bytes);
    for (const auto& p : s.m->ports) {
      if (!p.isDynamic()) s.ports.push_back(p.container_port * 2 + (p.protocol == "udp" ? 1 : 0));
    }
    std::sort(s.ports.begin(), s.ports.end());
    s.ports.erase(std::unique(s.ports.begin(), s.ports.end()), s.ports.end());

    s.eligible.assign(n_nodes, 0);
    s.keeps.assign(n_nodes, 0);
    s.count.assign(n_nodes, 0);
    s.rank.assign(n_nodes, 0);
    // The ranking keys that do not change while placing: affinity (higher sum first),
    // image held first, battery last, merit (higher first), node id.
    struct Static {
      int64_t affinity;
      int image;
      int battery;
      int merit;
      int index;
    };
    std::vector<Static> order;
    for (size_t n = 0; n < n_nodes; ++n) {
      const NodeInfo& node = *nodes_[n];
      s.keeps[n] = check(*s.m, node, /*cordon_counts=*/false, nullptr);
      s.eligible[n] = s.keeps[n] && !node.cordoned;
      int64_t affinity = 0;
      for (const auto& a : s.m->placement.affinity) {
        auto it = node.labels.find(a.label);
        if (it != node.labels.end() && it->second == a.value) affinity += a.weight;
      }
      order.push_back({affinity, holdsImage(node, s.m->image) ? 0 : 1,
                       node.power == "battery" ? 1 : 0, node.merit, static_cast<int>(n)});
    }
    std::sort(order.begin(), order.end(), [](const Static& a, const Static& b) {
      return std::tie(b.affinity, a.image, a.battery, b.merit, a.index) <
             std::tie(a.affinity, b.image, b.battery, a.merit, b.index);
    });
    for (size_t r = 0; r < order.size(); ++r) s.rank[order[r].index] = static_cast<int>(r);
  }
}

bool Scheduler::fits(const Service& s, int n, std::string* why) const {
  const NodeState& st = state_[n];
  if (s.cpu_nano > 0) {
    if (st.cpu_cap == 0) {
      setWhy(why, "cpu allocatable unknown, " + cpuText(s.cpu_nano) + " requested");
      return false;
    }
    if (st.cpu_cap - st.cpu_used < s.cpu_nano) {
      setWhy(why, "cpu " + cpuText(std::max<int64_t>(0, st.cpu_cap - st.cpu_used)) + " free < " +
                      cpuText(s.cpu_nano) + " requested");
      return false;
    }
  }
  if (s.memory > 0) {
    if (st.mem_cap == 0) {
      setWhy(why, "memory allocatable unknown, " + bytesText(s.memory) + " requested");
      return false;
    }
    if (st.mem_cap - st.mem_used < s.memory) {
      setWhy(why, "memory " + bytesText(std::max<int64_t>(0, st.mem_cap - st.mem_used)) +
                      " free < " + bytesText(s.memory) + " requested");
      return false;
    }
  }
  for (PortKey p : s.ports) {
    for (const auto& [taken, by] : st.ports) {
      if (taken == p) {
        setWhy(why, "host port " + portText(p) + " taken by " + services_[by].m->name);
        return false;
      }
    }
  }
  return true;
}

void Scheduler::commit(int si, int slot, int n) {
  Service& s = services_[si];
  NodeState& st = state_[n];
  st.cpu_used += s.cpu_nano;
  st.mem_used += s.memory;
  st.total++;
  for (PortKey p : s.ports) st.ports.emplace_back(p, si);
  s.count[n]++;
  s.placed++;
  out_.push_back({s.m->name, slot, nodes_[n]->node_id});
}

// How full a node is, in parts per million of its allocatable cpu plus the same of its
// memory (a resource it does not report counts as empty).
int64_t Scheduler::reservedPpm(int n) const {
  const NodeState& st = state_[n];
  int64_t ppm = 0;
  if (st.cpu_cap > 0) {
    ppm += static_cast<int64_t>(static_cast<__int128>(st.cpu_used) * 1'000'000 / st.cpu_cap);
  }
  if (st.mem_cap > 0) {
    ppm += static_cast<int64_t>(static_cast<__int128>(st.mem_used) * 1'000'000 / st.mem_cap);
  }
  return ppm;
}

bool Scheduler::better(const Service& s, int a, int b) const {
  if (s.m->placement.strategy == Placement::Strategy::kBinpack) {
    int64_t ra = reservedPpm(a), rb = reservedPpm(b);
    if (ra != rb) return ra > rb;
    if (state_[a].total != state_[b].total) return state_[a].total > state_[b].total;
  } else {
    if (s.count[a] != s.count[b]) return s.count[a] < s.count[b];
    if (state_[a].total != state_[b].total) return state_[a].total < state_[b].total;
  }
  return s.rank[a] < s.rank[b];
}

void Scheduler::keep(const std::vector<Assignment>& current) {
  struct Kept {
    int slot;
    int service;
    int node;
  };
  std::vector<Kept> candidates;
  for (const auto& a : current) {
    auto si = service_index_.find(a.service);
    auto ni = node_index_.find(a.node_id);
    if (si == service_index_.end() || ni == node_index_.end()) continue;
    const Service& s = services_[si->second];
    if (!s.keeps[ni->second]) continue;
    if (s.every_node ? a.slot != 0 : (a.slot < 0 || a.slot >= s.replicas)) continue;
    candidates.push_back({a.slot, si->second, ni->second});
  }
  // Node indices follow node ids, so this is (service, slot, node id) order: one slot
  // held on several nodes (a healed partition) stays on the lowest id.
  std::sort(candidates.begin(), candidates.end(), [](const Kept& a, const Kept& b) {
    return std::tie(a.service, a.slot, a.node) < std::tie(b.service, b.slot, b.node);
  });
  candidates.erase(std::unique(candidates.begin(), candidates.end(),
                               [&](const Kept& a, const Kept& b) {
                                 if (a.service != b.service || a.slot != b.slot) return false;
                                 // every-node: slot 0 once per node; replicas: once.
                                 return !services_[a.service].every_node || a.node == b.node;
                               }),
                   candidates.end());
  // Admitted per node in (slot, service) order while they fit: an over-committed node
  // sheds its highest slots first.
  std::sort(candidates.begin(), candidates.end(), [](const Kept& a, const Kept& b) {
    return std::tie(a.node, a.slot, a.service) < std::tie(b.node, b.slot, b.service);
  });
  for (const Kept& k : candidates) {
    if (fits(services_[k.service], k.node, nullptr)) commit(k.service, k.slot, k.node);
  }
}

void Scheduler::placeEveryNode(int si) {
  Service& s = services_[si];
  for (size_t n = 0; n < nodes_.size(); ++n) {
    if (!s.eligible[n] || s.count[n] > 0) continue;
    if (fits(s, static_cast<int>(n), nullptr)) {
      commit(si, 0, static_cast<int>(n));
    } else {
      s.missing++;
    }
  }
}

void Scheduler::placeReplica(int si, int slot) {
  Service& s = services_[si];
  int best = -1;
  for (size_t i = 0; i < nodes_.size(); ++i) {
    int n = static_cast<int>(i);
    if (!s.eligible[n] || !fits(s, n, nullptr)) continue;
    if (best < 0 || better(s, n, best)) best = n;
  }
  if (best < 0) {
    s.missing++;
  } else {
    commit(si, slot, best);
  }
}

Pending Scheduler::pendingOf(int si) const {
  const Service& s = services_[si];
  Pending p;
  p.service = s.m->name;
  p.missing = s.missing;
  std::vector<std::pair<std::pair<std::string_view, std::string_view>, std::string>> reasons;
  for (size_t i = 0; i < nodes_.size(); ++i) {
    int n = static_cast<int>(i);
    const NodeInfo& node = *nodes_[n];
    if (s.every_node && s.count[n] > 0) continue;
    std::string why;
    // A node that could take one more has nothing to explain (only an every-node
    // service's own nodes, skipped above, or none: placing would have used it).
    if (check(*s.m, node, /*cordon_counts=*/true, &why) && fits(s, n, &why)) continue;
    const std::string& label = node.name.empty() ? node.node_id : node.name;
    reasons.push_back({{node.name, node.node_id}, label + ": " + why});
  }
  std::sort(reasons.begin(), reasons.end());
  for (auto& r : reasons) p.reasons.push_back(std::move(r.second));
  return p;
}

Plan Scheduler::run(const std::vector<Assignment>& current) {
  keep(current);
  for (size_t si = 0; si < services_.size(); ++si) {
    if (services_[si].every_node) placeEveryNode(static_cast<int>(si));
  }
  // The missing replica slots, in (slot, service) order.
  std::vector<std::vector<uint8_t>> held(services_.size());
  for (size_t si = 0; si < services_.size(); ++si) held[si].assign(services_[si].replicas, 0);
  for (const auto& a : out_) {
    const Service& s = services_[service_index_.at(a.service)];
    if (!s.every_node) held[service_index_.at(a.service)][a.slot] = 1;
  }
  int max_replicas = 0;
  for (const auto& s : services_) max_replicas = std::max(max_replicas, s.replicas);
  for (int slot = 0; slot < max_replicas; ++slot) {
    for (size_t si = 0; si < services_.size(); ++si) {
      if (slot < services_[si].replicas && !held[si][slot])
        placeReplica(static_cast<int>(si), slot);
    }
  }

  Plan plan;
  std::sort(out_.begin(), out_.end());
  plan.assignments = std::move(out_);
  for (size_t si = 0; si < services_.size(); ++si) {
    const Service& s = services_[si];
    if (s.missing > 0 || (s.every_node && s.placed == 0)) {
      plan.pending.push_back(pendingOf(static_cast<int>(si)));
    }
  }
  return plan;
}

}  // namespace

Plan schedule(const std::vector<orchestrator::ServiceManifest>& services,
              const std::vector<NodeInfo>& nodes, const std::vector<Assignment>& current) {
  return Scheduler(services, nodes).run(current);
}

bool eligible(const orchestrator::ServiceManifest& service, const NodeInfo& node,
              std::string* why) {
  return check(service, node, /*cordon_counts=*/true, why);
}

}  // namespace edge::cluster
