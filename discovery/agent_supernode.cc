// LinkAgent as the supernode: taking over (or yielding to a better one), handing over on
// leave, registration of members with the check of their advertised endpoint, profile
// updates, expiry, the blacklist and refusals, roles and the deltas published to the
// group. The agent's other parts are listed in agent_internal.h.
//
// Not thread-safe: one thread drives the agent (agent.h).
#include "discovery/agent.h"

#include <algorithm>

#include "common/json.h"
#include "common/log.h"
#include "discovery/agent_internal.h"
#include "discovery/codec.h"
#include "discovery/election.h"
#include "discovery/profile.h"
#include "discovery/wire.h"
#include "identity/secure.h"

namespace edge::discovery {

using namespace agent_internal;
using nlohmann::json;

void LinkAgent::becomeSupernode(const std::string& takeover_from, const std::string& why) {
  if (join_session_) io_.close(join_session_);
  if (super_session_) io_.close(super_session_);
  join_session_ = super_session_ = 0;
  bool fresh = members_.empty() || takeover_from.empty();
  state_ = State::kSupernode;
  lost_supernode_ = takeover_from;
  if (fresh) members_.clear();
  if (!takeover_from.empty()) members_.erase(takeover_from);
  inherited_version_ = fresh ? -1 : version_;
  inherited_seqs_.clear();
  if (!fresh)
    for (const auto& [id, m] : members_) inherited_seqs_[id] = m.profile.seq;
  Member& me = members_[identity_.id()];
  me.profile = self_;
  me.score = selfScore();
  if (me.joined_at == 0) me.joined_at = nowUnix();
  SteadyTime now = clock_.now();
  member_sessions_.clear();
  session_members_.clear();
  last_heard_.clear();
  pending_.clear();
  checks_.clear();
  // Members of the old list have a member timeout to register again; those that do not
  // have gone with the old supernode.
  for (const auto& [id, m] : members_)
    if (id != identity_.id()) last_heard_[id] = now;
  group_key_ = identity::randomBytes(32);
  group_epoch_ = static_cast<uint32_t>(rng_());
  ++version_;
  // A new key: members re-register and get the list in their welcome.
  published_version_ = version_;
  pending_delta_ = json::object();
  next_delta_at_ = {};
  last_delta_at_ = {};
  json roles;
  recomputeRoles(&roles);
  emit(fresh ? "cluster.joined" : "cluster.takeover", identity_.id(),
       fresh ? "formed the cluster as its supernode (" + why + ")" : "supernode now: " + why);
  setSupernode(identity_.id());
  sendBeacon();
}

void LinkAgent::yieldTo(const std::string& winner_id, const std::string& endpoint) {
  emit("cluster.merge", winner_id,
       "yielding to supernode " + shortId(winner_id) + ", " + std::to_string(members_.size()) +
           " members follow");
  for (const auto& [id, s] : member_sessions_)
    if (s) {
      io_.send(s, json{{"t", "redirect"}, {"supernode", winner_id}, {"endpoint", endpoint}});
      io_.close(s);
    }
  member_sessions_.clear();
  session_members_.clear();
  last_heard_.clear();
  pending_.clear();
  checks_.clear();
  lost_supernode_.clear();
  state_ = State::kJoining;
  join(winner_id, endpoint, "", 2 * options_.join_timeout);
}

Status LinkAgent::verifyProfile(const json& j, const std::string& expected_id, NodeProfile* out) {
  auto p = profileFromWire(j);
  if (!p.isOk()) return p.status();
  RETURN_IF_ERROR(verifyDecodedProfile(*p, expected_id));
  *out = std::move(*p);
  return Status::ok();
}

Status LinkAgent::verifyDecodedProfile(const NodeProfile& p, const std::string& expected_id) {
  // decodeProfile derives the id from the key, so only the session's id and the
  // signature are left to check.
  if (!expected_id.empty() && p.node_id != expected_id)
    return Status::permissionDenied("profile claims id " + p.node_id +
                                    " but the session is authenticated as " + expected_id);
  if (!identity::verifySignature(p.public_key, profileSigningBytesV2(p), p.signature))
    return Status::permissionDenied("profile signature of " + p.node_id + " does not verify");
  return Status::ok();
}

void LinkAgent::reject(SessionId s, const std::string& reason) {
  json r{{"t", "reject"}, {"reason", reason}};
  io_.send(s, r);
  io_.close(s);
}

void LinkAgent::handleRegister(SessionId s, const std::string& peer, const json& m) {
  if (str(m, "cluster") != options_.cluster_id) {
    reject(s, "this node's cluster on " + options_.interface + " is " + options_.cluster_id);
    return;
  }
  if (state_ != State::kSupernode) {
    // A member that lost the supernode came to us as its successor. Take over if we
    // have lost it too (or are electing); otherwise send it back.
    std::string old = str(m, "succession_of");
    bool lost_too = false;
    if (state_ == State::kElecting && old == lost_supernode_) lost_too = true;
    if (state_ == State::kMember && old == supernode_id_ &&
        (clock_.now() - last_heard_super_ > 2 * options_.beacon_interval || !super_session_))
      lost_too = true;
    if (lost_too) {
      if (super_session_) io_.close(super_session_);
      super_session_ = 0;
      if (state_ == State::kMember)
        emit("cluster.member_left", old, "supernode " + shortId(old) + " lost");
      becomeSupernode(old, "successor of " + shortId(old));
    } else if (state_ == State::kMember && !supernode_id_.empty()) {
      io_.send(s, json{{"t", "redirect"},
                       {"supernode", supernode_id_},
                       {"endpoint", endpointOf(supernode_id_)}});
      io_.close(s);
      return;
    } else if (state_ == State::kJoining && !join_target_.empty() && !join_endpoint_.empty()) {
      // This node just yielded (a merge) or follows a redirect: send the newcomer where
      // it is going itself, rather than back to probing.
      io_.send(s,
               json{{"t", "redirect"}, {"supernode", join_target_}, {"endpoint", join_endpoint_}});
      io_.close(s);
      return;
    } else {
      // Soon again: a node between roles (probing, electing) may be a supernode in a moment.
      io_.send(s, json{{"t", "reject"}, {"reason", "not a supernode"}, {"until", nowUnix() + 1}});
      io_.close(s);
      return;
    }
  }
  if (auto b = blacklist_.find(peer); b != blacklist_.end()) {
    ++counters_.dropped_blacklisted;
    json r{{"t", "reject"},
           {"reason", "blacklisted: " + b->second.reason},
           {"until", b->second.until}};
    io_.send(s, r);
    io_.close(s);
    return;
  }
  NodeProfile p;
  Status v =
      verifyProfile(m.is_object() && m.contains("profile") ? m["profile"] : json(), peer, &p);
  if (!v.isOk()) {
    if (v.code() == StatusCode::kPermissionDenied) {
      blacklist(peer, "", v.message());
      json r{{"t", "reject"}, {"reason", "blacklisted: " + v.message()}};
      io_.send(s, r);
      io_.close(s);
    } else {
      ++counters_.dropped_malformed;
      reject(s, "bad profile: " + v.message());
    }
    return;
  }
  auto existing = members_.find(peer);
  if (existing != members_.end() && existing->second.profile.endpoint == p.endpoint &&
      existing->second.profile.boot_id == p.boot_id) {
    // Re-registration (after a failover or a reconnect): already verified.
    if (auto old = member_sessions_.find(peer);
        old != member_sessions_.end() && old->second && old->second != s) {
      session_members_.erase(old->second);
      io_.close(old->second);
    }
    member_sessions_[peer] = s;
    session_members_[s] = peer;
    last_heard_[peer] = clock_.now();
    if (p.seq > existing->second.profile.seq) existing->second.profile = p;
    sendWelcome(s, num(m, "known_version", -1));
    return;
  }
  // The advertised endpoint must reach this very node (others will call it there). When
  // the session comes from the endpoint's own address, the node is admitted at once and
  // its port is checked in the background; otherwise (an advertised address, NAT) it is
  // checked first.
  std::string endpoint = p.endpoint;
  std::string host = endpoint.substr(0, endpoint.rfind(':'));
  pending_[peer] = Pending{.session = s, .profile = std::move(p)};
  session_members_[s] = peer;  // so the session is ours while the check runs
  if (!host.empty() && io_.peerAddress(s) == host) {
    checks_[peer] = EndpointCheck{.next = clock_.now()};
    onEndpointChecked(peer, Status::ok());
    return;
  }
  io_.checkEndpoint(endpoint, peer);
}

void LinkAgent::runEndpointChecks() {
  SteadyTime now = clock_.now();
  int in_flight = 0;
  for (const auto& [id, c] : checks_) in_flight += c.in_flight ? 1 : 0;
  for (auto& [id, c] : checks_) {
    if (in_flight >= kMaxChecksInFlight) return;
    if (c.in_flight || c.next > now) continue;
    c.in_flight = true;
    ++in_flight;
    io_.checkEndpoint(endpointOf(id), id);
  }
}

// What a failed check proves: a refused connection or another node answering is a lie
// (nobody of that id serves the endpoint); a timeout proves nothing on a loaded host or
// link, so it is tried again, and only an endpoint that never answers is taken for a lie.
bool LinkAgent::checkFailureProvesLie(const Status& result) {
  return result.code() == StatusCode::kUnavailable ||
         result.code() == StatusCode::kPermissionDenied;
}

void LinkAgent::onEndpointChecked(const std::string& node_id, const Status& result) {
  if (state_ != State::kSupernode) return;
  auto it = pending_.find(node_id);
  if (it == pending_.end()) {
    // A member admitted before its check (handleRegister).
    auto c = checks_.find(node_id);
    if (c == checks_.end() || !c->second.in_flight) return;
    c->second.in_flight = false;
    if (result.isOk()) {
      checks_.erase(c);
      return;
    }
    ++c->second.attempts;
    if (!checkFailureProvesLie(result) && c->second.attempts < kMaxCheckAttempts) {
      c->second.next = clock_.now() + std::chrono::seconds(1 << c->second.attempts);
      return;
    }
    checks_.erase(c);
    std::string endpoint = endpointOf(node_id);
    blacklist(
        node_id, endpoint.substr(0, endpoint.rfind(':')),
        "advertised endpoint " + endpoint + " did not answer as this node: " + result.message());
    removeMember(node_id, "blacklisted", true);
    return;
  }
  Pending p = std::move(it->second);
  pending_.erase(it);
  if (!result.isOk() && !checkFailureProvesLie(result)) {
    // Not proven either way: the node is asked to come back in a moment.
    session_members_.erase(p.session);
    io_.send(p.session, json{{"t", "reject"},
                             {"reason", "endpoint " + p.profile.endpoint +
                                            " not checked: " + result.message() + "; try again"},
                             {"until", nowUnix() + 2}});
    io_.close(p.session);
    return;
  }
  if (!result.isOk()) {
    std::string address = p.profile.endpoint.substr(0, p.profile.endpoint.rfind(':'));
    std::string reason = "advertised endpoint " + p.profile.endpoint +
                         " did not answer as this node: " + result.message();
    blacklist(node_id, address, reason);
    session_members_.erase(p.session);
    json r{{"t", "reject"},
           {"reason", "blacklisted: " + reason},
           {"until", blacklist_.count(node_id) ? blacklist_[node_id].until : 0}};
    io_.send(p.session, r);
    io_.close(p.session);
    return;
  }
  Member mem;
  mem.profile = std::move(p.profile);
  mem.score = meritScore(mem.profile, nowUnix());
  mem.joined_at = nowUnix();
  members_[node_id] = std::move(mem);
  member_sessions_[node_id] = p.session;
  session_members_[p.session] = node_id;
  last_heard_[node_id] = clock_.now();
  admit(node_id);
}

void LinkAgent::admit(const std::string& id) {
  const Member& mem = members_[id];
  emit("cluster.member_joined", id, mem.profile.name + " (" + shortId(id) + ") joined");
  json roles;
  recomputeRoles(&roles);
  ++version_;
  sendWelcome(member_sessions_[id]);
  json joined = json::array();
  joined.push_back(json{
      {"profile", profileToWire(mem.profile)}, {"score", mem.score}, {"joined_at", mem.joined_at}});
  publishDelta(json{{"joined", joined}, {"roles", roles}});
  maybeHandOver(id);
}

void LinkAgent::maybeHandOver(const std::string& id) {
  if (!handing_over_to_.empty() || id == identity_.id()) return;
  auto it = members_.find(id);
  if (it == members_.end()) return;
  int theirs = meritScore(it->second.profile, nowUnix());
  if (!clearlyBetter(theirs, selfScore())) return;
  auto s = member_sessions_.find(id);
  if (s == member_sessions_.end() || !s->second) return;
  handing_over_to_ = id;
  emit("cluster.handover", id,
       "handing the supernode role to " + it->second.profile.name + " (score " +
           std::to_string(theirs) + " against " + std::to_string(selfScore()) + ")");
  io_.send(s->second, json{{"t", "promote"}});
}

void LinkAgent::sendWelcome(SessionId s, int64_t known_version) {
  if (known_version >= 0 && known_version == inherited_version_) {
    // A member of the cluster this node took over holds the list it inherited: after a
    // failover a hundred members re-register at once, and a hundred full lists were what
    // made the successor too slow to answer them all in time.
    json changed = json::array(), gone = json::array(), roles = json::object();
    for (const auto& [id, seq] : inherited_seqs_)
      if (!members_.count(id)) gone.push_back(id);
    for (const auto& [id, m] : members_) {
      auto it = inherited_seqs_.find(id);
      if (it == inherited_seqs_.end() || it->second != m.profile.seq)
        changed.push_back(json{
            {"profile", profileToWire(m.profile)}, {"score", m.score}, {"joined_at", m.joined_at}});
      if (!m.roles.empty()) roles[id] = m.roles;
    }
    io_.send(s, json{{"t", "welcome"},
                     {"cluster", options_.cluster_id},
                     {"supernode", identity_.id()},
                     {"version", version_},
                     {"base", inherited_version_},
                     {"changed", changed},
                     {"gone", gone},
                     {"roles", roles},
                     {"count", members_.size()},
                     {"blacklist", blacklistJson()},
                     {"group_key", identity::toHex(group_key_)},
                     {"epoch", group_epoch_}});
    return;
  }
  io_.send(s, json{{"t", "welcome"},
                   {"cluster", options_.cluster_id},
                   {"supernode", identity_.id()},
                   {"version", version_},
                   {"members", memberListJson()},
                   {"blacklist", blacklistJson()},
                   {"group_key", identity::toHex(group_key_)},
                   {"epoch", group_epoch_}});
}

void LinkAgent::handleProfileUpdate(const std::string& peer, const json& m) {
  NodeProfile p;
  Status v = verifyProfile(m.value("profile", json()), peer, &p);
  if (!v.isOk()) {
    if (v.code() == StatusCode::kPermissionDenied) {
      blacklist(peer, "", v.message());
      removeMember(peer, "blacklisted", true);
    }
    return;
  }
  auto it = members_.find(peer);
  if (it == members_.end() || p.seq <= it->second.profile.seq) return;
  const NodeProfile& before = it->second.profile;
  if (before.boot_id == p.boot_id && before.started_at == p.started_at &&
      immutableFactsDiffer(before, p)) {
    std::string changed;
    auto note = [&](const std::string& what, const std::string& a, const std::string& b) {
      if (a != b) changed += (changed.empty() ? "" : ", ") + what + " " + a + " -> " + b;
    };
    note("cpus", std::to_string(before.cpus), std::to_string(p.cpus));
    note("memory", std::to_string(before.memory_bytes), std::to_string(p.memory_bytes));
    note("arch", before.arch, p.arch);
    blacklist(peer, before.endpoint.substr(0, before.endpoint.rfind(':')),
              "contradictory re-announcement: facts that cannot change without a restart "
              "changed under the same boot and start (" +
                  changed + ")");
    removeMember(peer, "blacklisted", true);
    return;
  }
  it->second.profile = std::move(p);
  it->second.score = meritScore(it->second.profile, nowUnix());
  json roles;
  recomputeRoles(&roles);
  ++version_;
  json updated = json::array();
  updated.push_back(json{{"profile", profileToWire(it->second.profile)},
                         {"score", it->second.score},
                         {"joined_at", it->second.joined_at}});
  publishDelta(json{{"updated", updated}, {"roles", roles}});
  maybeHandOver(peer);
}

void LinkAgent::removeMember(const std::string& id, const std::string& why, bool close_session) {
  auto it = members_.find(id);
  if (it == members_.end()) return;
  emit("cluster.member_left", id, it->second.profile.name + " (" + shortId(id) + ") " + why);
  members_.erase(it);
  last_heard_.erase(id);
  checks_.erase(id);
  if (auto s = member_sessions_.find(id); s != member_sessions_.end()) {
    if (s->second) {
      session_members_.erase(s->second);
      if (close_session) io_.close(s->second);
    }
    member_sessions_.erase(s);
  }
  if (handing_over_to_ == id) handing_over_to_.clear();
  json roles;
  recomputeRoles(&roles);
  ++version_;
  json left = json::array();
  left.push_back(json{{"node_id", id}, {"reason", why}});
  publishDelta(json{{"left", left}, {"roles", roles}});
}

void LinkAgent::blacklist(const std::string& id, const std::string& address,
                          const std::string& reason) {
  int64_t now = nowUnix();
  BlacklistEntry b{.node_id = id,
                   .address = address,
                   .reason = reason,
                   .since = now,
                   .until = now + options_.blacklist_period.count()};
  blacklist_[id] = b;
  emit("cluster.blacklisted", id, reason);
  LOG_WARN("discovery: node blacklisted").kv("node", id).kv("reason", reason);
  if (state_ == State::kSupernode) {
    ++version_;
    json bl = json::array();
    bl.push_back(blacklistEntryJson(b));
    publishDelta(json{{"blacklist", bl}});
  }
}

void LinkAgent::reportRefusal(const std::string& node_id, const std::string& what) {
  if (node_id.empty() || node_id == identity_.id()) return;
  if (state_ == State::kMember && super_session_) {
    io_.send(super_session_, json{{"t", "refusal"}, {"node", node_id}, {"what", what}});
    return;
  }
  if (state_ != State::kSupernode || !members_.count(node_id)) return;
  auto& times = refusals_[node_id];
  int64_t now = nowUnix();
  times.push_back(now);
  std::erase_if(times, [&](int64_t t) { return now - t > 600; });
  if (static_cast<int>(times.size()) < options_.refusal_limit) return;
  const auto& p = members_[node_id].profile;
  std::string reason = "claims " + std::to_string(p.cpus) + " CPUs, " +
                       std::to_string(p.memory_bytes >> 20) + " MiB memory and " +
                       std::to_string(p.storage_free_bytes >> 20) +
                       " MiB free storage but refused " + std::to_string(times.size()) +
                       " requests in 10 min (last: " + what + ")";
  refusals_.erase(node_id);
  std::string address = p.endpoint.substr(0, p.endpoint.rfind(':'));
  blacklist(node_id, address, reason);
  removeMember(node_id, "blacklisted", true);
}

void LinkAgent::recomputeRoles(json* roles_out) {
  std::vector<Member> list;
  for (const auto& [id, m] : members_) list.push_back(m);
  auto roles = assignRoles(list, identity_.id());
  // Only the roles that changed go into the delta, so its size does not grow with the
  // cluster (a join must stay one datagram).
  *roles_out = json::object();
  for (auto& [id, m] : members_) {
    auto next = roles[id];
    if (next == m.roles) continue;
    if (id == identity_.id()) emitOwnRoles(next);
    m.roles = next;
    (*roles_out)[id] = next;
  }
}

// A change is published at once, unless a delta went out less than kDeltaBurst ago: then
// changes are gathered for kDeltaCoalesce (tick() flushes them), so a hundred nodes
// joining in two seconds make about forty deltas, not a hundred, and every member checks
// the signature of each.
void LinkAgent::publishDelta(json delta) {
  // Entries name their node by "node_id" (left, blacklist) or in their profile.
  auto idOf = [](const json& e) {
    if (e.contains("node_id")) return str(e, "node_id");
    auto p = profileFromWire(e.value("profile", json()));
    return p.isOk() ? p->node_id : std::string();
  };
  auto drop = [&](json* list, const std::string& id) {
    if (!list->is_array()) return;
    json kept = json::array();
    for (auto& e : *list)
      if (idOf(e) != id) kept.push_back(std::move(e));
    *list = std::move(kept);
  };
  for (const char* list : {"joined", "updated", "left", "blacklist"}) {
    if (!delta.contains(list)) continue;
    for (auto& e : delta[list]) {
      std::string id = idOf(e);
      // A member that joins and leaves (or leaves and comes back) within one delta
      // appears once, as it is now, whatever order the receiver applies the lists in.
      if (std::string(list) == "left") {
        drop(&pending_delta_["joined"], id);
        drop(&pending_delta_["updated"], id);
      } else if (std::string(list) == "joined") {
        drop(&pending_delta_["left"], id);
      }
      e["_v"] = version_;  // the version of this change (taken off before sending)
      pending_delta_[list].push_back(std::move(e));
    }
  }
  if (auto roles = delta.find("roles"); roles != delta.end() && roles->is_object())
    for (auto& [id, r] : roles->items()) pending_delta_["roles"][id] = r;
  SteadyTime now = clock_.now();
  if (next_delta_at_ != SteadyTime{}) return;  // a gathering is under way
  if (now - last_delta_at_ >= kDeltaBurst) {
    flushDeltas();
  } else {
    next_delta_at_ = now + kDeltaCoalesce;
  }
}

void LinkAgent::flushDeltas() {
  last_delta_at_ = clock_.now();
  next_delta_at_ = {};
  if (pending_delta_.empty() || version_ == published_version_) {
    pending_delta_ = json::object();
    return;
  }
  // The coalesced change holds each member's latest state over the versions it covers,
  // so a member at any version in that range can apply it (applyDelta). It is split in
  // order of the changes' versions so each part fits in a datagram; a part ends at the
  // version of its last change, the last part at the current version.
  struct Item {
    int64_t v;
    const char* list;
    json entry;
  };
  std::vector<Item> items;
  for (const char* list : {"joined", "updated", "left", "blacklist"})
    if (pending_delta_.contains(list) && pending_delta_[list].is_array())
      for (auto& e : pending_delta_[list]) {
        int64_t v = num(e, "_v", version_);
        e.erase("_v");
        items.push_back({v, list, std::move(e)});
      }
  std::stable_sort(items.begin(), items.end(),
                   [](const Item& a, const Item& b) { return a.v < b.v; });
  json roles = pending_delta_.value("roles", json::object());
  pending_delta_ = json::object();
  std::vector<std::pair<json, int64_t>> parts(1, {json::object(), version_});  // part, ends at
  constexpr size_t kRoom = kMaxDatagram - kDatagramHeader - kSignatureSize - 64;
  int64_t last_v = published_version_;
  for (auto& item : items) {
    json& part = parts.back().first;
    json trial = part;
    trial[item.list].push_back(item.entry);
    if (!part.empty() && encodeMessage(trial).size() > kRoom && last_v < item.v) {
      parts.back().second = last_v;
      parts.push_back({json::object(), version_});
      parts.back().first[item.list].push_back(std::move(item.entry));
    } else {
      part = std::move(trial);
    }
    last_v = item.v;
  }
  parts.back().second = version_;
  if (!roles.empty()) parts.back().first["roles"] = std::move(roles);
  for (auto& [delta, ends_at] : parts) {
    delta["t"] = "delta";
    delta["from"] = published_version_;
    delta["version"] = ends_at;
    published_version_ = ends_at;
    std::string plain = encodeMessage(delta);
    std::string sealed = identity::sealGroup(group_key_, options_.cluster_id, plain);
    auto dg = encodeDatagram(DatagramType::kDelta,
                             encodeDeltaBody(identity_.id(), group_epoch_, sealed), identity_);
    if (dg.isOk()) {
      io_.multicast(*dg);
      continue;
    }
    // Too large for one datagram (a profile near its limits): each member gets it on its
    // session instead.
    for (const auto& [id, s] : member_sessions_)
      if (s) io_.send(s, delta);
  }
}

json LinkAgent::memberListJson() const {
  json list = json::array();
  for (const auto& [id, m] : members_)
    list.push_back(json{{"profile", profileToWire(m.profile)},
                        {"roles", m.roles},
                        {"score", m.score},
                        {"joined_at", m.joined_at}});
  return list;
}

json LinkAgent::blacklistJson() const {
  json list = json::array();
  for (const auto& [id, b] : blacklist_) list.push_back(blacklistEntryJson(b));
  return list;
}

}  // namespace edge::discovery
