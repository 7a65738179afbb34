#include "cluster/controller.h"

#include <algorithm>
#include <utility>

#include "common/log.h"

namespace edge::cluster {

namespace {

using orchestrator::ApplyOutcome;
using orchestrator::ManifestOrigin;
using orchestrator::Placement;
using orchestrator::ServiceManifest;
using Steady = std::chrono::steady_clock;

// The spec a register holds, parsed back; nullopt for tombstones and for text that no
// longer parses (a newer node's spec on an older node: it is not run here).
std::optional<ServiceManifest> parsedSpec(const SpecEntry& e) {
  if (e.deleted) return std::nullopt;
  auto parsed = orchestrator::parseManifests(e.manifest_json, "cluster spec " + e.name,
                                             ManifestOrigin::kStored);
  if (!parsed.isOk() || parsed->size() != 1 || (*parsed)[0].name != e.name) return std::nullopt;
  return std::move((*parsed)[0]);
}

std::string slotsText(const std::vector<Assignment>& list, const std::string& service) {
  std::string out;
  for (const Assignment& a : list) {
    if (a.service != service) continue;
    if (!out.empty()) out += ",";
    out += a.node_id.substr(0, 8);
  }
  return out;
}

}  // namespace

int64_t generationOf(const Hlc& hlc) {
  return hlc.wall_ms * 1000 + std::min<int64_t>(hlc.logical, 999);
}

ClusterController::ClusterController(std::string self_id, HlcClock& hlc, Hooks hooks)
    : self_id_(std::move(self_id)), hlc_(hlc), hooks_(std::move(hooks)) {}

void ClusterController::restore(ClusterState state) {
  state_ = std::move(state);
  (void)hlc_.observe(state_.maxHlc());
  deliver();
}

void ClusterController::setSupernode(bool supernode) {
  if (supernode == supernode_) return;
  supernode_ = supernode;
  suspects_.clear();
  lost_.clear();
  if (supernode_) reschedule(last_now_);
}

void ClusterController::setMembers(std::vector<NodeInfo> members, Steady::time_point now) {
  last_now_ = now;
  std::map<std::string, NodeInfo> next;
  for (NodeInfo& m : members) {
    std::string id = m.node_id;
    next.emplace(std::move(id), std::move(m));
  }
  // Gone from the list: suspect until a probe (or the window) says what happened.
  for (auto& [id, info] : members_) {
    if (!next.count(id) && !suspects_.count(id) && !lost_.count(id)) {
      suspects_[id] = Suspect{now, Probe::kUnknown, info};
    }
  }
  // Back (re-registered): neither suspect nor lost any more.
  for (const auto& [id, info] : next) {
    suspects_.erase(id);
    lost_.erase(id);
  }
  bool changed = next != members_;
  members_ = std::move(next);
  if (supernode_ && changed) reschedule(now);
}

void ClusterController::reportProbe(const std::string& node_id, Probe result,
                                    Steady::time_point now) {
  auto it = suspects_.find(node_id);
  if (it == suspects_.end()) return;
  last_now_ = now;
  if (result == Probe::kGone) {
    if (hooks_.event) {
      hooks_.event("placement.node_lost", "",
                   it->second.last.name + " (" + node_id.substr(0, 8) +
                       ") is gone: host and instances do not answer");
    }
    suspects_.erase(it);
    lost_[node_id] = now;
    if (supernode_) reschedule(now);
    return;
  }
  if (result == Probe::kEdgedDown && it->second.probe != Probe::kEdgedDown && hooks_.event) {
    hooks_.event("placement.node_suspect", "",
                 it->second.last.name + " (" + node_id.substr(0, 8) +
                     "): edged is down but its instances answer; nothing moves while it "
                     "restarts");
  }
  it->second.probe = result;
}

void ClusterController::tick(Steady::time_point now) {
  last_now_ = now;
  bool changed = false;
  for (auto it = suspects_.begin(); it != suspects_.end();) {
    auto limit = it->second.probe == Probe::kEdgedDown ? kEdgedRestartGrace : kSuspectWindow;
    if (now - it->second.since >= limit) {
      if (hooks_.event) {
        hooks_.event("placement.node_lost", "",
                     it->second.last.name + " (" + it->first.substr(0, 8) + ") given up after " +
                         std::to_string(std::chrono::duration_cast<std::chrono::seconds>(
                                            now - it->second.since)
                                            .count()) +
                         " s without re-registering");
      }
      lost_[it->first] = now;
      it = suspects_.erase(it);
      changed = true;
    } else {
      ++it;
    }
  }
  // A lostAfter that expired moves what it held back.
  if (!changed && supernode_) {
    for (const auto& [id, since] : lost_) {
      for (const Assignment& a : state_.assignmentsOf(id)) {
        const SpecEntry* e = state_.spec(a.service);
        auto m = e ? parsedSpec(*e) : std::nullopt;
        if (m && m->disconnect.replace && now - since >= m->disconnect.lost_after) {
          changed = true;
          break;
        }
      }
      if (changed) break;
    }
  }
  if (supernode_ && changed) reschedule(now);
}

std::vector<std::string> ClusterController::suspects() const {
  std::vector<std::string> out;
  for (const auto& [id, s] : suspects_) {
    if (s.probe == Probe::kUnknown) out.push_back(id);
  }
  return out;
}

std::vector<ServiceManifest> ClusterController::liveSpecs() const {
  std::vector<ServiceManifest> out;
  for (const auto& [name, e] : state_.specs()) {
    if (auto m = parsedSpec(e)) out.push_back(std::move(*m));
  }
  return out;
}

void ClusterController::reschedule(Steady::time_point now) {
  if (!supernode_) return;
  std::vector<ServiceManifest> specs = liveSpecs();
  std::map<std::string, const ServiceManifest*> by_name;
  std::set<std::string> every_node;
  for (const ServiceManifest& m : specs) {
    by_name[m.name] = &m;
    if (m.placement.mode == Placement::Mode::kEveryNode) every_node.insert(m.name);
  }
  std::vector<NodeInfo> nodes;
  for (const auto& [id, info] : members_) {
    NodeInfo n = info;
    n.cordoned = n.cordoned || state_.cordoned(id);
    nodes.push_back(std::move(n));
  }
  // Suspect and lost nodes stay in the schedule as cordoned (they keep what they have,
  // get nothing new); what they hold is taken off them below where it must move.
  for (const auto& [id, s] : suspects_) {
    NodeInfo n = s.last;
    n.cordoned = true;
    nodes.push_back(std::move(n));
  }
  std::vector<Assignment> current;
  for (const Assignment& a : resolveSlots(state_.assignments(), every_node)) {
    auto spec = by_name.find(a.service);
    if (spec == by_name.end()) continue;
    if (auto cut = state_.cordons().find(a.node_id);
        cut != state_.cordons().end() && cut->second.draining) {
      continue;  // drained: its instances move
    }
    if (auto lost = lost_.find(a.node_id); lost != lost_.end()) {
      const auto& d = spec->second->disconnect;
      if (d.replace && now - lost->second >= d.lost_after) continue;  // re-placed
      // Not (yet) re-placed: the lost node keeps it, cordoned.
      bool listed = std::any_of(nodes.begin(), nodes.end(),
                                [&](const NodeInfo& n) { return n.node_id == a.node_id; });
      if (!listed) {
        NodeInfo n;
        n.node_id = a.node_id;
        n.name = a.node_id.substr(0, 8);
        n.cordoned = true;
        nodes.push_back(std::move(n));
      }
    }
    current.push_back(a);
  }
  Plan plan = schedule(specs, nodes, current);
  std::vector<Assignment> before = state_.assignments();
  bool moved = plan.assignments != before;
  if (moved) state_.setAssignments(plan.assignments, hlc_.now());
  if (hooks_.event) {
    for (const ServiceManifest& m : specs) {
      std::string was = slotsText(before, m.name);
      std::string now_on = slotsText(state_.assignments(), m.name);
      if (was != now_on) {
        hooks_.event("placement.scheduled", m.name,
                     now_on.empty() ? "no instance placed" : "on " + now_on);
      }
    }
    for (const Pending& p : plan.pending) {
      bool known = std::any_of(pending_.begin(), pending_.end(), [&](const Pending& q) {
        return q.service == p.service && q.missing == p.missing && q.reasons == p.reasons;
      });
      if (!known) {
        std::string why = p.reasons.empty() ? "" : ": " + p.reasons.front();
        if (p.reasons.size() > 1) why += " (+" + std::to_string(p.reasons.size() - 1) + " more)";
        hooks_.event("placement.pending", p.service,
                     std::to_string(p.missing) + " instance(s) not placed" + why);
      }
    }
  }
  pending_ = std::move(plan.pending);
  if (moved) commit(true);
}

void ClusterController::commit(bool publish) {
  if (hooks_.persist) {
    Status st = hooks_.persist(state_);
    if (!st.isOk()) {
      LOG_ERROR("cluster state not persisted").kv("error", st.message());
    }
  }
  if (publish && supernode_ && hooks_.publish) hooks_.publish(state_);
  deliver();
}

void ClusterController::deliver() {
  std::map<std::string, std::vector<int>> mine;
  for (const Assignment& a : state_.assignmentsOf(self_id_)) mine[a.service].push_back(a.slot);
  std::vector<LocalShare> share;
  for (auto& [name, slots] : mine) {
    const SpecEntry* e = state_.spec(name);
    if (!e) continue;
    auto m = parsedSpec(*e);
    if (!m) continue;
    std::sort(slots.begin(), slots.end());
    if (m->placement.mode == Placement::Mode::kReplicas) {
      m->replicas = static_cast<int>(slots.size());
    }
    share.push_back(LocalShare{std::move(*m), generationOf(e->hlc), slots});
  }
  if (delivered_once_ && share == delivered_) return;
  delivered_once_ = true;
  delivered_ = share;
  if (hooks_.run) hooks_.run(share);
}

Result<std::vector<ApplyOutcome>> ClusterController::apply(
    const std::vector<ServiceManifest>& specs, const std::string& author, bool dry_run) {
  if (!supernode_) {
    return Status::failedPrecondition("not the supernode: forward the apply to it");
  }
  std::vector<ApplyOutcome> outcomes;
  std::vector<SpecEntry> writes;
  for (const ServiceManifest& m : specs) {
    if (m.placement.scope != Placement::Scope::kCluster) {
      return Status::invalidArgument("service " + m.name + ": not scope cluster");
    }
    std::string json = orchestrator::manifestToJson(m);
    const SpecEntry* cur = state_.spec(m.name);
    ApplyOutcome o;
    o.name = m.name;
    if (cur && !cur->deleted && cur->manifest_json == json) {
      o.action = ApplyOutcome::Action::kUnchanged;
      o.generation = generationOf(cur->hlc);
      outcomes.push_back(o);
      continue;
    }
    o.action =
        cur && !cur->deleted ? ApplyOutcome::Action::kUpdated : ApplyOutcome::Action::kCreated;
    SpecEntry e;
    e.name = m.name;
    e.manifest_json = std::move(json);
    e.author = author;
    writes.push_back(std::move(e));
    outcomes.push_back(o);
  }
  if (dry_run || writes.empty()) return outcomes;
  size_t w = 0;
  for (ApplyOutcome& o : outcomes) {
    if (o.action == ApplyOutcome::Action::kUnchanged) continue;
    SpecEntry& e = writes[w++];
    e.hlc = hlc_.now();
    if (hooks_.sign) e.signature = hooks_.sign(e.signingBytes());
    o.generation = generationOf(e.hlc);
    state_.put(std::move(e));
    if (hooks_.event) {
      hooks_.event(
          "placement.applied", o.name,
          std::string(orchestrator::applyActionName(o.action)) + " by " + author.substr(0, 16));
    }
  }
  commit(true);
  reschedule(last_now_);
  return outcomes;
}

Status ClusterController::remove(const std::string& name, const std::string& author) {
  if (!supernode_) return Status::failedPrecondition("not the supernode: forward it");
  const SpecEntry* cur = state_.spec(name);
  if (!cur || cur->deleted) {
    return Status::notFound("no cluster-scoped service " + name);
  }
  SpecEntry e;
  e.name = name;
  e.deleted = true;
  e.author = author;
  e.hlc = hlc_.now();
  if (hooks_.sign) e.signature = hooks_.sign(e.signingBytes());
  state_.put(std::move(e));
  if (hooks_.event) hooks_.event("placement.deleted", name, "by " + author.substr(0, 16));
  commit(true);
  reschedule(last_now_);
  return Status::ok();
}

Status ClusterController::cordon(const std::string& node_id, bool cordoned, bool draining) {
  if (!supernode_) return Status::failedPrecondition("not the supernode: forward it");
  state_.putCordon({node_id, hlc_.now(), cordoned || draining, draining});
  if (hooks_.event) {
    hooks_.event("placement.cordon", "",
                 node_id.substr(0, 8) + (draining   ? " drained"
                                         : cordoned ? " cordoned"
                                                    : " uncordoned"));
  }
  commit(true);
  reschedule(last_now_);
  return Status::ok();
}

ClusterState ClusterController::verified(const ClusterState& copy) {
  if (!hooks_.verify) return copy;
  // The copy without the specs whose signature does not hold: a node that merely joined
  // the link cannot make this one run anything.
  nlohmann::json json = copy.toJson();
  nlohmann::json kept = nlohmann::json::array();
  for (auto& j : json["specs"]) {
    const SpecEntry* e = copy.spec(j["name"].get<std::string>());
    if (e && hooks_.verify(e->author, e->signingBytes(), e->signature)) {
      kept.push_back(std::move(j));
    } else if (e && hooks_.event) {
      hooks_.event("placement.refused", e->name,
                   "spec signed by " + e->author.substr(0, 16) +
                       " does not verify or its author may not deploy: ignored");
    }
  }
  json["specs"] = std::move(kept);
  auto rebuilt = ClusterState::fromJson(json);
  if (!rebuilt.isOk()) {
    // Cannot happen for a copy that was itself parsed; nothing of it is taken in.
    LOG_ERROR("cluster state copy refused").kv("error", rebuilt.status().message());
    return ClusterState();
  }
  return std::move(*rebuilt);
}

void ClusterController::reportConflicts(const std::vector<Conflict>& conflicts) {
  if (!hooks_.event) return;
  for (const Conflict& c : conflicts) {
    hooks_.event("placement.conflict", c.service,
                 "changed on both sides of a partition: kept " + c.kept.toString() + ", dropped " +
                     c.lost.toString());
  }
}

void ClusterController::receive(const ClusterState& copy) {
  ClusterState v = verified(copy);
  (void)hlc_.observe(v.maxHlc());
  std::string before = state_.digest();
  // The supernode's assignments are the plan: taken whole when newer, not unioned.
  std::vector<Assignment> plan = v.assignments();
  Hlc plan_hlc = v.assignmentsHlc();
  bool newer_plan = state_.assignmentsHlc() < plan_hlc;
  reportConflicts(state_.merge(v));
  if (newer_plan) state_.setAssignments(std::move(plan), std::move(plan_hlc));
  if (state_.digest() != before) commit(false);
}

void ClusterController::mergeFrom(const ClusterState& copy) {
  ClusterState v = verified(copy);
  std::string before = state_.digest();
  (void)hlc_.observe(v.maxHlc());
  reportConflicts(state_.merge(v));
  if (state_.digest() == before) return;
  commit(true);
  reschedule(last_now_);
}

}  // namespace edge::cluster
