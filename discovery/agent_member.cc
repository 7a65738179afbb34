// LinkAgent as a member: probing for a supernode, joining it over a session, the
// election of the successor when it is lost (no vote: every member computes the same
// one), messages from the supernode, the welcome and the deltas that keep the member list
// current. The agent's other parts are listed in agent_internal.h.
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

void LinkAgent::startProbing() {
  state_ = State::kProbing;
  probes_sent_ = 0;
  better_prober_.clear();
  claim_deferrals_ = 0;
  lost_supernode_.clear();
  excluded_.clear();
  // Better nodes wait less, so after a cold start of many nodes the best one usually
  // claims first and the others find it rather than merge.
  int score = selfScore();
  auto lo = 150, spread = 200;
  int wait = lo + (100 - std::clamp(score, 0, 100)) * spread / 100 + static_cast<int>(rng_() % 100);
  SteadyTime now = clock_.now();
  probe_deadline_ = now + std::chrono::milliseconds(wait);
  next_probe_ = now;
  sendProbe();
}

void LinkAgent::join(const std::string& target_id, const std::string& endpoint,
                     const std::string& succession_of, std::chrono::milliseconds deadline) {
  if (endpoint.empty()) {
    joinFailed("no endpoint known for " + shortId(target_id));
    return;
  }
  if (state_ != State::kElecting) state_ = State::kJoining;
  join_target_ = target_id;
  join_endpoint_ = endpoint;
  join_succession_of_ = succession_of;
  early_deltas_.clear();
  join_deadline_ = clock_.now() + deadline;
  join_session_ = io_.connect(endpoint);
}

void LinkAgent::joinFailed(const std::string& why) {
  LOG_DEBUG("discovery join failed").kv("interface", options_.interface).kv("why", why);
  join_session_ = 0;
  if (state_ == State::kElecting) {
    excluded_.push_back(join_target_);
    electNext();
    return;
  }
  // A supernode we cannot join (unreachable, another cluster key, refusing us) is left
  // alone for a while: this node forms its own cluster meanwhile, and merges later.
  if (!join_target_.empty() && !refused_by_.count(join_target_))
    refused_by_[join_target_] = clock_.now() + std::chrono::seconds(5);
  startProbing();
}

void LinkAgent::supernodeLost(const std::string& why) {
  std::string lost = supernode_id_;
  if (super_session_) io_.close(super_session_);
  super_session_ = 0;
  startElection(lost, why);
}

void LinkAgent::startElection(const std::string& lost_id, const std::string& why) {
  emit("cluster.member_left", lost_id, "supernode " + shortId(lost_id) + " lost: " + why);
  state_ = State::kElecting;
  lost_supernode_ = lost_id;
  excluded_ = {lost_id};
  members_.erase(lost_id);
  electNext();
}

void LinkAgent::electNext() {
  std::vector<Member> candidates;
  for (const auto& [id, m] : members_)
    if (!isBlacklisted(id)) candidates.push_back(m);
  std::string next = successor(candidates, excluded_);
  if (next.empty()) {
    startProbing();
    return;
  }
  if (next == identity_.id()) {
    becomeSupernode(lost_supernode_, "successor of " + shortId(lost_supernode_));
    return;
  }
  join(next, endpointOf(next), lost_supernode_, options_.join_timeout);
}

void LinkAgent::onSessionUp(SessionId session, const std::string& peer_id) {
  if (session != join_session_) return;
  if (peer_id != join_target_) {
    io_.close(session);
    joinFailed("endpoint answered as " + shortId(peer_id) + ", not " + shortId(join_target_));
    return;
  }
  json reg{{"t", "register"}, {"cluster", options_.cluster_id}, {"profile", profileToWire(self_)}};
  if (!join_succession_of_.empty()) {
    reg["succession_of"] = join_succession_of_;
    reg["known_version"] = version_;  // the list it holds: a successor sends only changes
  }
  io_.send(session, reg);
}

void LinkAgent::onSessionDown(SessionId session) {
  if (session == join_session_) {
    join_session_ = 0;
    joinFailed("session to " + shortId(join_target_) + " failed");
    return;
  }
  if (session == super_session_) {
    super_session_ = 0;
    if (state_ == State::kMember) supernodeLost("session closed");
    return;
  }
  leaving_sessions_.erase(session);
  auto it = session_members_.find(session);
  if (it == session_members_.end()) return;
  std::string id = it->second;
  session_members_.erase(it);
  if (auto p = pending_.find(id); p != pending_.end() && p->second.session == session) {
    pending_.erase(p);
    return;
  }
  if (auto ms = member_sessions_.find(id); ms != member_sessions_.end() && ms->second == session)
    ms->second = 0;
  if (state_ == State::kSupernode && members_.count(id))
    removeMember(id, "vanished: session closed", false);
}

void LinkAgent::onMessage(SessionId s, const std::string& peer, const json& m) {
  ++counters_.messages_received;
  std::string t = str(m, "t");
  if (t == "register") {
    handleRegister(s, peer, m);
    return;
  }
  // Messages from our supernode.
  if (s == join_session_ || s == super_session_) {
    if (t == "welcome" || t == "full") {  // "full": a sync's answer, on either session
      applyWelcome(s, peer, m);
    } else if (t == "delta" && s == super_session_) {
      last_heard_super_ = clock_.now();
      applyDelta(m);
    } else if (t == "pong" && s == super_session_) {
      last_heard_super_ = clock_.now();
    } else if (t == "reject") {
      std::string reason = str(m, "reason");
      int64_t until = num(m, "until");
      emit("cluster.rejected", peer, "rejected by " + shortId(peer) + ": " + reason);
      if (until > 0) {
        refused_by_[peer] =
            clock_.now() + std::chrono::seconds(std::max<int64_t>(1, until - nowUnix()));
      } else {
        refused_by_[peer] = clock_.now() + std::chrono::seconds(5);
      }
      io_.close(s);
      if (s == super_session_) {
        super_session_ = 0;
        startProbing();
      } else {
        join_session_ = 0;
        joinFailed("rejected: " + reason);
      }
    } else if (t == "redirect") {
      std::string to = str(m, "supernode");
      std::string ep = str(m, "endpoint");
      io_.close(s);
      if (s == super_session_) super_session_ = 0;
      if (s == join_session_) join_session_ = 0;
      // A successor that sends us elsewhere is not taking over; and a node that refused
      // us is not asked again before its time (or redirects would chase each other).
      if (state_ == State::kElecting) excluded_.push_back(peer);
      auto refused = refused_by_.find(to);
      if (to.empty() || to == identity_.id() ||
          (refused != refused_by_.end() && refused->second > clock_.now())) {
        if (state_ == State::kElecting) {
          electNext();
        } else {
          startProbing();
        }
      } else {
        if (state_ == State::kMember) state_ = State::kJoining;
        join(to, ep, "", options_.join_timeout);
      }
    } else if (t == "promote" && s == super_session_) {
      std::string old = supernode_id_;
      io_.send(s, json{{"t", "promoted"}});
      io_.close(s);
      super_session_ = 0;
      becomeSupernode(old, "takes over from " + shortId(old) + " (clearly better)");
    } else if (t == "bye" && s == super_session_) {
      std::string old = supernode_id_;
      std::string next = str(m, "successor");
      io_.close(s);
      super_session_ = 0;
      emit("cluster.member_left", old, "supernode " + shortId(old) + " left");
      state_ = State::kElecting;
      lost_supernode_ = old;
      excluded_ = {old};
      members_.erase(old);
      if (next == identity_.id()) {
        becomeSupernode(old, "named successor of " + shortId(old));
      } else if (!next.empty() && members_.count(next)) {
        join(next, endpointOf(next), old, options_.join_timeout);
      } else {
        electNext();
      }
    }
    return;
  }
  // Messages from members (this node is the supernode).
  auto it = session_members_.find(s);
  if (it == session_members_.end() || it->second != peer) return;
  if (state_ != State::kSupernode) return;
  last_heard_[peer] = clock_.now();
  if (t == "ping") {
    io_.send(s, json{{"t", "pong"}, {"version", version_}});
  } else if (t == "sync") {
    json full = memberListJson();
    io_.send(s, json{{"t", "full"},
                     {"cluster", options_.cluster_id},
                     {"supernode", identity_.id()},
                     {"version", version_},
                     {"members", full},
                     {"blacklist", blacklistJson()},
                     {"group_key", identity::toHex(group_key_)},
                     {"epoch", group_epoch_}});
  } else if (t == "profile") {
    handleProfileUpdate(peer, m);
  } else if (t == "leave") {
    leaving_sessions_.insert(s);
    session_members_.erase(s);
    member_sessions_.erase(peer);
    io_.close(s);
    removeMember(peer, "left", false);
  } else if (t == "refusal") {
    reportRefusal(str(m, "node"), "reported by " + shortId(peer) + ": " + str(m, "what"));
  } else if (t == "promoted" && peer == handing_over_to_) {
    // The new supernode is ready: send everyone there and follow them.
    std::string ep = endpointOf(peer);
    for (const auto& [id, sess] : member_sessions_)
      if (sess && id != peer) {
        io_.send(sess, json{{"t", "redirect"}, {"supernode", peer}, {"endpoint", ep}});
        io_.close(sess);
      }
    member_sessions_.clear();
    session_members_.clear();
    last_heard_.clear();
    handing_over_to_.clear();
    state_ = State::kJoining;
    join(peer, ep, "", 2 * options_.join_timeout);
  }
}

void LinkAgent::applyWelcome(SessionId s, const std::string& peer, const json& m) {
  const bool first = s == join_session_;
  if (str(m, "supernode") != peer || str(m, "cluster") != options_.cluster_id) {
    io_.close(s);
    if (first) {
      join_session_ = 0;
      joinFailed("welcome from " + shortId(peer) + " does not match the session");
    }
    return;
  }
  auto key = identity::fromHex(str(m, "group_key"));
  if (!key.isOk() || key->size() != 32) {
    ++counters_.dropped_malformed;
    return;
  }
  std::map<std::string, Member> members;
  if (m.contains("base")) {
    // After a takeover: only what changed since the list this node already holds.
    if (num(m, "base", -1) != version_ || !welcomeFromBase(m, &members)) {
      io_.send(s, json{{"t", "sync"}});  // not the list we hold: the whole one, please
      return;
    }
  }
  for (const auto& e : arr(m, m.contains("base") ? "changed" : "members")) {
    const json& pj = e.is_object() && e.contains("profile") ? e["profile"] : json();
    Member mem;
    auto decoded = profileFromWire(pj);
    if (!decoded.isOk()) {
      ++counters_.dropped_malformed;
      continue;
    }
    // The supernode checked every profile's signature when it took it in, and the
    // welcome comes over a session authenticated as the supernode (see applyDelta).
    mem.profile = std::move(*decoded);
    mem.roles = stringList(e.value("roles", json::array()));
    mem.score = static_cast<int>(num(e, "score"));
    mem.joined_at = num(e, "joined_at");
    members[mem.profile.node_id] = std::move(mem);
  }
  if (m.contains("base")) {
    const json& roles = m.contains("roles") && m["roles"].is_object() ? m["roles"] : json::object();
    for (auto& [id, mem] : members) {
      auto r = roles.find(id);
      mem.roles = r == roles.end() ? std::vector<std::string>() : stringList(*r);
    }
    if (static_cast<int64_t>(members.size()) != num(m, "count", -1)) {
      io_.send(s, json{{"t", "sync"}});
      return;
    }
  }
  std::map<std::string, BlacklistEntry> bl;
  for (const auto& e : arr(m, "blacklist")) {
    BlacklistEntry b = blacklistEntryFromJson(e);
    if (!b.node_id.empty()) bl[b.node_id] = b;
  }
  for (const auto& [id, mem] : members)
    if (!members_.count(id) && id != identity_.id())
      emit("cluster.member_joined", id, mem.profile.name + " (" + shortId(id) + ") is a member");
  for (const auto& [id, mem] : members_)
    if (!members.count(id) && id != identity_.id())
      emit("cluster.member_left", id, mem.profile.name + " (" + shortId(id) + ") is gone");
  if (first) {
    join_session_ = 0;
    super_session_ = s;
    bool was_member_of_lost = !lost_supernode_.empty();
    state_ = State::kMember;
    lost_supernode_.clear();
    excluded_.clear();
    if (!was_member_of_lost || supernode_id_ != peer)
      emit("cluster.joined", peer,
           "member of the cluster with " + std::to_string(members.size()) + " members");
  }
  std::vector<std::string> old_roles;
  if (auto me = members_.find(identity_.id()); me != members_.end()) old_roles = me->second.roles;
  members_ = std::move(members);
  blacklist_ = std::move(bl);
  version_ = num(m, "version");
  group_key_ = std::move(*key);
  group_epoch_ = static_cast<uint32_t>(num(m, "epoch"));
  setSupernode(peer);
  SteadyTime now = clock_.now();
  last_heard_super_ = now;
  next_ping_ = now + options_.ping_interval;
  behind_since_ = {};
  sync_requested_ = false;
  auto early = std::move(early_deltas_);
  early_deltas_.clear();
  for (const auto& e : early) handleDelta(e);
  if (auto me = members_.find(identity_.id());
      me != members_.end() && me->second.roles != old_roles)
    emitOwnRoles(me->second.roles);
}

// The list this node holds, less the members a takeover's welcome says are gone (the
// changed ones are applied by the caller). False when it names a member we do not hold.
bool LinkAgent::welcomeFromBase(const json& m, std::map<std::string, Member>* out) const {
  *out = members_;
  for (const auto& id : stringList(arr(m, "gone"))) {
    if (id != lost_supernode_ && !out->count(id)) return false;
    out->erase(id);
  }
  return true;
}

void LinkAgent::emitOwnRoles(const std::vector<std::string>& roles) {
  std::string text;
  for (const auto& r : roles) text += (text.empty() ? "" : ",") + r;
  emit("cluster.role", identity_.id(), "this node's roles: " + (text.empty() ? "none" : text));
}

bool LinkAgent::applyDelta(const json& d) {
  int64_t from = num(d, "from", -1);
  int64_t to = num(d, "version", -1);
  if (to <= version_) return true;  // already have it
  // A delta covers versions from..to and holds each member's latest state over them, so
  // a member anywhere in that range (welcomed while it was being gathered) applies it.
  if (from > version_) {
    // A gap: ask for the whole list once.
    if (!sync_requested_ && super_session_) {
      io_.send(super_session_, json{{"t", "sync"}});
      sync_requested_ = true;
    }
    return false;
  }
  // The profiles in a delta come from the supernode, which checked each signature when
  // the node registered or re-announced; the delta itself is signed by the supernode.
  // Checking them all again on every member was a hundred times the work at a hundred
  // nodes (most of a cold start's CPU), for no more trust.
  for (const auto& e : arr(d, "joined")) {
    auto p = e.is_object() ? profileFromWire(e.value("profile", json()))
                           : Result<NodeProfile>(Status::invalidArgument("not an object"));
    if (!p.isOk()) {
      ++counters_.dropped_malformed;
      continue;
    }
    Member mem;
    mem.profile = std::move(*p);
    mem.score = static_cast<int>(num(e, "score"));
    mem.joined_at = num(e, "joined_at");
    std::string id = mem.profile.node_id;
    if (!members_.count(id) && id != identity_.id())
      emit("cluster.member_joined", id, mem.profile.name + " (" + shortId(id) + ") joined");
    members_[id] = std::move(mem);
  }
  for (const auto& e : arr(d, "updated")) {
    auto p = e.is_object() ? profileFromWire(e.value("profile", json()))
                           : Result<NodeProfile>(Status::invalidArgument("not an object"));
    if (!p.isOk()) continue;
    auto it = members_.find(p->node_id);
    if (it == members_.end()) continue;
    it->second.profile = std::move(*p);
    it->second.score = static_cast<int>(num(e, "score", it->second.score));
  }
  for (const auto& v : arr(d, "left")) {
    if (!v.is_object()) continue;
    std::string id = str(v, "node_id");
    auto it = members_.find(id);
    if (it == members_.end()) continue;
    emit("cluster.member_left", id,
         it->second.profile.name + " (" + shortId(id) + ") " + str(v, "reason"));
    members_.erase(it);
  }
  for (const auto& e : arr(d, "blacklist")) {
    BlacklistEntry b = blacklistEntryFromJson(e);
    if (!b.node_id.empty() && !blacklist_.count(b.node_id)) {
      blacklist_[b.node_id] = b;
      emit("cluster.blacklisted", b.node_id, b.reason);
    }
  }
  if (auto roles = d.find("roles"); roles != d.end() && roles->is_object()) {
    for (auto& [id, mem] : members_) {
      auto r = roles->find(id);
      if (r == roles->end()) continue;  // unchanged
      std::vector<std::string> next = stringList(*r);
      if (id == identity_.id() && next != mem.roles) emitOwnRoles(next);
      mem.roles = std::move(next);
    }
  }
  version_ = to;
  behind_since_ = {};
  sync_requested_ = false;
  return true;
}

}  // namespace edge::discovery
