// LinkAgent: construction, lifecycle (start, updateProfile, leave, the timers in tick)
// and the helpers every role uses. The agent's other parts are listed in
// agent_internal.h; its behaviour in agent.h.
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

const char* stateName(LinkAgent::State s) {
  switch (s) {
    case LinkAgent::State::kIdle:
      return "idle";
    case LinkAgent::State::kProbing:
      return "probing";
    case LinkAgent::State::kJoining:
      return "joining";
    case LinkAgent::State::kMember:
      return "member";
    case LinkAgent::State::kElecting:
      return "electing";
    case LinkAgent::State::kSupernode:
      return "supernode";
  }
  return "?";
}

LinkAgent::LinkAgent(AgentOptions options, const identity::NodeIdentity& identity, Clock& clock,
                     LinkIo& io, EventSink events)
    : options_(std::move(options)),
      identity_(identity),
      clock_(clock),
      io_(io),
      events_(std::move(events)),
      rng_(options_.seed ? options_.seed : std::random_device{}()) {}

int64_t LinkAgent::nowUnix() const {
  return std::chrono::duration_cast<std::chrono::seconds>(clock_.wallNow().time_since_epoch())
      .count();
}

int LinkAgent::selfScore() const {
  return meritScore(self_, nowUnix());
}

void LinkAgent::signSelf() {
  self_.node_id = identity_.id();
  self_.public_key = identity_.publicKey();
  self_.signature.clear();
  self_.signature = identity_.sign(profileSigningBytesV2(self_));
}

void LinkAgent::emit(const std::string& type, const std::string& node, const std::string& message) {
  std::string text = options_.interface + " " + options_.cluster_id + ": " + message;
  if (events_) events_(type, node, text);
}

std::string LinkAgent::endpointOf(const std::string& id) const {
  auto it = members_.find(id);
  return it == members_.end() ? std::string() : it->second.profile.endpoint;
}

bool LinkAgent::isBlacklisted(const std::string& id) const {
  return blacklist_.count(id) > 0;
}

bool LinkAgent::ownsSession(SessionId s) const {
  return s == join_session_ || s == super_session_ || session_members_.count(s) ||
         leaving_sessions_.count(s);
}

void LinkAgent::setSupernode(const std::string& id) {
  if (id == supernode_id_) return;
  supernode_id_ = id;
  supernode_since_ = nowUnix();
  auto it = members_.find(id);
  std::string name = it != members_.end() ? it->second.profile.name : shortId(id);
  emit("cluster.supernode", id,
       id == identity_.id() ? "this node is the supernode"
                            : "supernode is " + name + " (" + shortId(id) + ")");
}

// ---------------------------------------------------------------------------------------
// Lifecycle

void LinkAgent::start(NodeProfile self) {
  self_ = std::move(self);
  self_.seq = std::max<int64_t>(self_.seq, 1);
  signSelf();
  boot_nonce_ = identity::toHex(identity::randomBytes(8));
  startProbing();
}

void LinkAgent::updateProfile(NodeProfile self) {
  int64_t seq = self_.seq + 1;
  self_ = std::move(self);
  self_.seq = seq;
  signSelf();
  if (state_ == State::kMember && super_session_) {
    io_.send(super_session_, json{{"t", "profile"}, {"profile", profileToWire(self_)}});
  } else if (state_ == State::kSupernode) {
    auto& m = members_[identity_.id()];
    m.profile = self_;
    m.score = selfScore();
    json roles;
    recomputeRoles(&roles);
    ++version_;
    json updated = json::array();
    updated.push_back(
        json{{"profile", profileToWire(self_)}, {"score", m.score}, {"joined_at", m.joined_at}});
    publishDelta(json{{"updated", updated}, {"roles", roles}});
  }
}

void LinkAgent::leave() {
  if (state_ == State::kSupernode) {
    std::vector<Member> others;
    for (const auto& [id, m] : members_)
      if (id != identity_.id()) others.push_back(m);
    std::string next = successor(others, {});
    for (const auto& [id, s] : member_sessions_)
      if (s) io_.send(s, json{{"t", "bye"}, {"successor", next}});
    for (const auto& [id, s] : member_sessions_)
      if (s) io_.close(s);
  } else if (super_session_) {
    io_.send(super_session_, json{{"t", "leave"}});
    io_.close(super_session_);
  }
  if (join_session_) io_.close(join_session_);
  member_sessions_.clear();
  session_members_.clear();
  super_session_ = join_session_ = 0;
  state_ = State::kIdle;
}

void LinkAgent::tick() {
  SteadyTime now = clock_.now();
  switch (state_) {
    case State::kIdle:
      return;
    case State::kProbing:
      if (now >= probe_deadline_ && !better_prober_.empty() &&
          claim_deferrals_ < kMaxClaimDeferrals) {
        // A better-ranked node is probing too: give it the time to claim, and ask again
        // (its beacon answers the probe). Bounded, in case it is gone.
        ++claim_deferrals_;
        better_prober_.clear();
        probe_deadline_ =
            now + kClaimDeferral + std::chrono::milliseconds(rng_() % kClaimDeferral.count());
        probes_sent_ = 0;
        sendProbe();
      } else if (now >= probe_deadline_) {
        becomeSupernode("", "no supernode answered on the link");
      } else if (now >= next_probe_ && probes_sent_ < 2) {
        sendProbe();
      }
      break;
    case State::kJoining:
    case State::kElecting:
      if (join_session_ && now >= join_deadline_) {
        io_.close(join_session_);
        join_session_ = 0;
        joinFailed("no answer from " + shortId(join_target_) + " in time");
      }
      break;
    case State::kMember:
      if (now - last_heard_super_ > options_.supernode_timeout) {
        supernodeLost("no beacon or message for " +
                      std::to_string(options_.supernode_timeout.count()) + " ms");
        break;
      }
      if (now >= next_ping_ && super_session_) {
        io_.send(super_session_, json{{"t", "ping"}, {"version", version_}});
        next_ping_ = now + options_.ping_interval;
      }
      if (behind_since_ != SteadyTime{} && !sync_requested_ &&
          now - behind_since_ > 2 * options_.beacon_interval && super_session_) {
        io_.send(super_session_, json{{"t", "sync"}});
        sync_requested_ = true;
      }
      break;
    case State::kSupernode: {
      if (next_delta_at_ != SteadyTime{} && now >= next_delta_at_) flushDeltas();
      if (now >= next_beacon_) sendBeacon();
      runEndpointChecks();
      std::vector<std::string> expired;
      for (const auto& [id, t] : last_heard_)
        if (id != identity_.id() && now - t > options_.member_timeout) expired.push_back(id);
      for (const auto& id : expired)
        removeMember(
            id, "vanished: silent for " + std::to_string(options_.member_timeout.count()) + " ms",
            true);
      break;
    }
  }
  int64_t unix_now = nowUnix();
  for (auto it = blacklist_.begin(); it != blacklist_.end();) {
    if (it->second.until <= unix_now) {
      emit("cluster.blacklisted", it->first, "blacklist entry expired");
      it = blacklist_.erase(it);
    } else {
      ++it;
    }
  }
  for (auto it = refused_by_.begin(); it != refused_by_.end();)
    it = it->second <= now ? refused_by_.erase(it) : std::next(it);
}

ClusterView LinkAgent::view() const {
  ClusterView v;
  v.interface = options_.interface;
  v.cluster_id = options_.cluster_id;
  v.state = stateName(state_);
  if (state_ == State::kJoining) v.state = "probing";
  v.supernode_id = (state_ == State::kMember || state_ == State::kSupernode) ? supernode_id_ : "";
  v.version = version_;
  v.supernode_since = supernode_since_;
  for (const auto& [id, m] : members_) v.members.push_back(m);
  if (state_ != State::kMember && state_ != State::kSupernode) {
    // Not in a cluster right now: show only this node.
    v.members.clear();
    Member me;
    me.profile = self_;
    me.score = selfScore();
    v.members.push_back(me);
  }
  for (const auto& [id, b] : blacklist_) v.blacklist.push_back(b);
  v.counters = counters_;
  return v;
}

}  // namespace edge::discovery
