#include "discovery/agent.h"

#include <algorithm>

#include "common/json.h"
#include "common/log.h"
#include "discovery/codec.h"
#include "discovery/election.h"
#include "discovery/profile.h"
#include "identity/secure.h"

namespace edge::discovery {
namespace {

using nlohmann::json;

// Peers' messages are untrusted: these read a field of the expected type or give a
// fallback, never throw.
std::string str(const json& j, const char* key) {
  if (!j.is_object()) return {};
  auto it = j.find(key);
  if (it == j.end() || !it->is_string()) return {};
  return it->get<std::string>();
}

int64_t num(const json& j, const char* key, int64_t fallback = 0) {
  if (!j.is_object()) return fallback;
  auto it = j.find(key);
  if (it == j.end() || !it->is_number_integer()) return fallback;
  return it->get<int64_t>();
}

const json& arr(const json& j, const char* key) {
  static const json kEmpty = json::array();
  if (!j.is_object()) return kEmpty;
  auto it = j.find(key);
  if (it == j.end() || !it->is_array()) return kEmpty;
  return *it;
}

constexpr size_t kMaxEarlyDeltas = 32;
constexpr size_t kMaxSendersTracked = 4096;

std::string shortId(const std::string& id) {
  return id.substr(0, 8);
}

json blacklistEntryJson(const BlacklistEntry& b) {
  return json{{"node_id", b.node_id},
              {"address", b.address},
              {"reason", b.reason},
              {"since", b.since},
              {"until", b.until}};
}

BlacklistEntry blacklistEntryFromJson(const json& e) {
  return BlacklistEntry{.node_id = str(e, "node_id"),
                        .address = str(e, "address"),
                        .reason = str(e, "reason"),
                        .since = num(e, "since"),
                        .until = num(e, "until")};
}

std::vector<std::string> stringList(const json& j) {
  std::vector<std::string> out;
  if (!j.is_array()) return out;
  for (const auto& v : j)
    if (v.is_string()) out.push_back(v.get<std::string>());
  return out;
}

}  // namespace

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
  self_.signature = identity_.sign(profileSigningBytes(self_));
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
    io_.send(super_session_, json{{"t", "profile"}, {"profile", profileToJson(self_)}});
  } else if (state_ == State::kSupernode) {
    auto& m = members_[identity_.id()];
    m.profile = self_;
    m.score = selfScore();
    json roles;
    recomputeRoles(&roles);
    ++version_;
    json updated = json::array();
    updated.push_back(
        json{{"profile", profileToJson(self_)}, {"score", m.score}, {"joined_at", m.joined_at}});
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
      if (now >= probe_deadline_) {
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
      if (now >= next_beacon_) sendBeacon();
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

// ---------------------------------------------------------------------------------------
// Datagrams

void LinkAgent::addKeyProof(json* body) const {
  if (options_.cluster_key.empty()) return;
  std::string data =
      identity_.id() + "|" + boot_nonce_ + "|" + std::to_string((*body)["seq"].get<uint64_t>());
  (*body)["proof"] = identity::toHex(identity::clusterKeyProof(options_.cluster_key, data));
}

void LinkAgent::sendProbe() {
  json body{{"t", "probe"},
            {"id", identity_.id()},
            {"pub", identity::toHex(identity_.publicKey())},
            {"cluster", options_.cluster_id},
            {"score", selfScore()},
            {"boot", boot_nonce_},
            {"seq", ++beacon_seq_}};
  addKeyProof(&body);
  auto dg = encodeDatagram(DatagramType::kProbe, body.dump(), identity_);
  if (dg.isOk()) io_.multicast(*dg);
  ++probes_sent_;
  next_probe_ = clock_.now() + (probe_deadline_ - clock_.now()) / 2;
}

int64_t LinkAgent::activeMembers() const {
  // Members inherited from a lost supernode count once they have registered: a node
  // that took over a stale list alone (its link was down) must not outweigh the
  // cluster the others kept.
  int64_t n = 1;
  for (const auto& [id, s] : member_sessions_)
    if (s) ++n;
  return n;
}

void LinkAgent::sendBeacon() {
  json body{{"t", "beacon"},
            {"id", identity_.id()},
            {"pub", identity::toHex(identity_.publicKey())},
            {"cluster", options_.cluster_id},
            {"score", selfScore()},
            {"members", activeMembers()},
            {"version", version_},
            {"endpoint", self_.endpoint},
            {"boot", boot_nonce_},
            {"seq", ++beacon_seq_}};
  if (!lost_supernode_.empty()) body["takeover_from"] = lost_supernode_;
  addKeyProof(&body);
  auto dg = encodeDatagram(DatagramType::kBeacon, body.dump(), identity_);
  if (dg.isOk()) io_.multicast(*dg);
  next_beacon_ = clock_.now() + options_.beacon_interval;
}

void LinkAgent::onDatagram(std::string_view bytes) {
  ++counters_.packets_received;
  counters_.bytes_received += static_cast<int64_t>(bytes.size());
  auto d = decodeDatagram(bytes);
  if (!d.isOk()) {
    ++counters_.dropped_malformed;
    return;
  }
  if (d->type == DatagramType::kDelta) {
    handleDelta(*d);
    return;
  }
  auto j = openSignedJson(*d);
  if (!j.isOk()) {
    if (j.status().code() == StatusCode::kPermissionDenied) {
      ++counters_.dropped_forged;
    } else {
      ++counters_.dropped_malformed;
    }
    return;
  }
  std::string id = str(*j, "id");
  if (id == identity_.id()) return;
  if (isBlacklisted(id)) {
    ++counters_.dropped_blacklisted;
    return;
  }
  if (!options_.cluster_key.empty()) {
    auto proof = identity::fromHex(str(*j, "proof"));
    if (!proof.isOk() ||
        !identity::checkClusterKeyProof(
            options_.cluster_key, id + "|" + str(*j, "boot") + "|" + std::to_string(num(*j, "seq")),
            *proof)) {
      ++counters_.dropped_forged;  // not a holder of this cluster's key
      return;
    }
  }
  if (str(*j, "cluster") != options_.cluster_id) return;  // another network on this link
  // Replays: a sender's (boot, seq) only moves forward.
  std::string boot = str(*j, "boot");
  auto seq = static_cast<uint64_t>(num(*j, "seq", -1));
  if (beacon_seen_.size() >= kMaxSendersTracked && !beacon_seen_.count(id)) {
    // Anyone can mint keys: remember senders that are members, forget the rest, so a
    // flood of valid signatures cannot grow this map.
    std::erase_if(beacon_seen_, [&](const auto& e) { return !members_.count(e.first); });
  }
  auto& seen = beacon_seen_[id];
  if (seen.first == boot && seq <= seen.second) {
    ++counters_.dropped_forged;
    return;
  }
  seen = {boot, seq};
  if (d->type == DatagramType::kProbe) {
    handleProbe(*j);
  } else {
    handleBeacon(*j);
  }
}

void LinkAgent::handleProbe(const json& /*j*/) {
  if (state_ != State::kSupernode) return;
  // Answer at once; probes that come quicker than one per 20 ms share the next answer
  // (sent by tick()), so a probe flood cannot turn into a beacon flood, and two nodes
  // starting together both hear back within the tick.
  SteadyTime now = clock_.now();
  auto spacing = std::chrono::milliseconds(20);
  if (now - last_probe_answer_ < spacing) {
    next_beacon_ = std::min(next_beacon_, last_probe_answer_ + spacing);
    return;
  }
  last_probe_answer_ = now;
  sendBeacon();
}

void LinkAgent::handleBeacon(const json& j) {
  std::string id = str(j, "id");
  std::string endpoint = str(j, "endpoint");
  SteadyTime now = clock_.now();
  if (auto it = refused_by_.find(id); it != refused_by_.end() && it->second > now) return;
  switch (state_) {
    case State::kIdle:
      return;
    case State::kProbing:
      join(id, endpoint, "", 2 * options_.supernode_timeout);
      return;
    case State::kJoining:
      return;
    case State::kElecting:
      // Someone took over: follow it (it is either our successor or knows better).
      if (id != lost_supernode_ && id != join_target_) {
        if (join_session_) io_.close(join_session_);
        join_session_ = 0;
        join(id, endpoint, lost_supernode_, options_.supernode_timeout);
      }
      return;
    case State::kMember: {
      if (id == supernode_id_) {
        last_heard_super_ = now;
        int64_t v = num(j, "version");
        if (v > version_) {
          if (behind_since_ == SteadyTime{}) behind_since_ = now;
        } else {
          behind_since_ = {};
          sync_requested_ = false;
        }
        return;
      }
      // A node that took over from our supernode in a failover we have not seen
      // ourselves yet; followed only when ours has gone quiet too, since a node that
      // was cut off and took over alone says the same while ours is alive and well.
      if (str(j, "takeover_from") == supernode_id_ &&
          now - last_heard_super_ > 2 * options_.beacon_interval) {
        if (super_session_) io_.close(super_session_);
        super_session_ = 0;
        join(id, endpoint, supernode_id_, options_.supernode_timeout);
      }
      return;
    }
    case State::kSupernode: {
      // Two supernodes of one network: the merge rule decides who yields (election.h).
      int their_score = static_cast<int>(num(j, "score"));
      int64_t their_members = num(j, "members");
      int mine = selfScore();
      int64_t my_members = activeMembers();
      bool they_win;
      if (clearlyBetter(their_score, mine)) {
        they_win = true;
      } else if (clearlyBetter(mine, their_score)) {
        they_win = false;
      } else if (their_members != my_members) {
        they_win = their_members > my_members;
      } else {
        they_win = ranksBefore(their_score, id, mine, identity_.id());
      }
      if (they_win) yieldTo(id, endpoint);
      return;
    }
  }
}

void LinkAgent::handleDelta(const Datagram& d) {
  auto body = decodeDeltaBody(d.body);
  if (!body.isOk()) {
    ++counters_.dropped_malformed;
    return;
  }
  if ((state_ == State::kJoining || state_ == State::kElecting) && join_session_ &&
      body->sender_id == join_target_) {
    // Changes the supernode publishes while our welcome is on its way: kept, and
    // applied after the welcome (which holds the key), so a node joining together with
    // others does not wait for a sync to learn about them.
    if (early_deltas_.size() < kMaxEarlyDeltas) early_deltas_.push_back(d);
    return;
  }
  if (state_ != State::kMember || body->sender_id != supernode_id_) {
    // A sealed delta from a node we know nothing of cannot be checked at all.
    if (!members_.count(body->sender_id)) ++counters_.dropped_forged;
    return;
  }
  auto it = members_.find(supernode_id_);
  if (it == members_.end() ||
      !identity::verifySignature(it->second.profile.public_key, d.signed_part, d.signature)) {
    ++counters_.dropped_forged;
    return;
  }
  if (body->epoch != group_epoch_) return;  // an old key: the beacon's version triggers a sync
  auto plain = identity::openGroup(group_key_, options_.cluster_id, body->sealed);
  if (!plain.isOk()) {
    ++counters_.dropped_forged;
    return;
  }
  auto j = edge::json::parse(*plain, "delta");
  if (!j.isOk() || !j->is_object()) {
    ++counters_.dropped_malformed;
    return;
  }
  last_heard_super_ = clock_.now();
  applyDelta(*j);
}

// ---------------------------------------------------------------------------------------
// Member side

void LinkAgent::startProbing() {
  state_ = State::kProbing;
  probes_sent_ = 0;
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
  join(next, endpointOf(next), lost_supernode_, options_.supernode_timeout);
}

void LinkAgent::onSessionUp(SessionId session, const std::string& peer_id) {
  if (session != join_session_) return;
  if (peer_id != join_target_) {
    io_.close(session);
    joinFailed("endpoint answered as " + shortId(peer_id) + ", not " + shortId(join_target_));
    return;
  }
  json reg{{"t", "register"}, {"cluster", options_.cluster_id}, {"profile", profileToJson(self_)}};
  if (!join_succession_of_.empty()) reg["succession_of"] = join_succession_of_;
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
    if (t == "welcome" || (t == "full" && s == super_session_)) {
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
      if (to.empty() || to == identity_.id()) {
        startProbing();
      } else {
        if (state_ == State::kMember) state_ = State::kJoining;
        join(to, ep, "", options_.supernode_timeout);
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
        join(next, endpointOf(next), old, options_.supernode_timeout);
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
    join(peer, ep, "", 2 * options_.supernode_timeout);
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
  for (const auto& e : arr(m, "members")) {
    const json& pj = e.is_object() && e.contains("profile") ? e["profile"] : json();
    Member mem;
    // A profile we already hold, with the same signature, was verified when it came:
    // after a failover every member receives the whole list again, and checking fifty
    // signatures each time is what made re-registration slow.
    auto known = members_.find(str(pj, "node_id"));
    if (known != members_.end() && !known->second.profile.signature.empty() &&
        str(pj, "signature") == identity::toHex(known->second.profile.signature) &&
        num(pj, "seq", -1) == known->second.profile.seq) {
      mem.profile = known->second.profile;
    } else {
      NodeProfile p;
      if (!verifyProfile(pj, "", &p).isOk()) {
        ++counters_.dropped_forged;
        continue;
      }
      mem.profile = std::move(p);
    }
    mem.roles = stringList(e.value("roles", json::array()));
    mem.score = static_cast<int>(num(e, "score"));
    mem.joined_at = num(e, "joined_at");
    members[mem.profile.node_id] = std::move(mem);
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

void LinkAgent::emitOwnRoles(const std::vector<std::string>& roles) {
  std::string text;
  for (const auto& r : roles) text += (text.empty() ? "" : ",") + r;
  emit("cluster.role", identity_.id(), "this node's roles: " + (text.empty() ? "none" : text));
}

bool LinkAgent::applyDelta(const json& d) {
  int64_t from = num(d, "from", -1);
  int64_t to = num(d, "version", -1);
  if (to <= version_) return true;  // already have it
  if (from != version_) {
    // A gap: ask for the whole list once.
    if (!sync_requested_ && super_session_) {
      io_.send(super_session_, json{{"t", "sync"}});
      sync_requested_ = true;
    }
    return false;
  }
  for (const auto& e : arr(d, "joined")) {
    NodeProfile p;
    if (!e.is_object() || !verifyProfile(e.value("profile", json()), "", &p).isOk()) {
      ++counters_.dropped_forged;
      continue;
    }
    Member mem;
    mem.profile = std::move(p);
    mem.score = static_cast<int>(num(e, "score"));
    mem.joined_at = num(e, "joined_at");
    std::string id = mem.profile.node_id;
    if (!members_.count(id) && id != identity_.id())
      emit("cluster.member_joined", id, mem.profile.name + " (" + shortId(id) + ") joined");
    members_[id] = std::move(mem);
  }
  for (const auto& e : arr(d, "updated")) {
    NodeProfile p;
    if (!e.is_object() || !verifyProfile(e.value("profile", json()), "", &p).isOk()) continue;
    auto it = members_.find(p.node_id);
    if (it == members_.end()) continue;
    it->second.profile = std::move(p);
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

// ---------------------------------------------------------------------------------------
// Supernode side

void LinkAgent::becomeSupernode(const std::string& takeover_from, const std::string& why) {
  if (join_session_) io_.close(join_session_);
  if (super_session_) io_.close(super_session_);
  join_session_ = super_session_ = 0;
  bool fresh = members_.empty() || takeover_from.empty();
  state_ = State::kSupernode;
  lost_supernode_ = takeover_from;
  if (fresh) members_.clear();
  if (!takeover_from.empty()) members_.erase(takeover_from);
  Member& me = members_[identity_.id()];
  me.profile = self_;
  me.score = selfScore();
  if (me.joined_at == 0) me.joined_at = nowUnix();
  SteadyTime now = clock_.now();
  member_sessions_.clear();
  session_members_.clear();
  last_heard_.clear();
  pending_.clear();
  // Members of the old list have a member timeout to register again; those that do not
  // have gone with the old supernode.
  for (const auto& [id, m] : members_)
    if (id != identity_.id()) last_heard_[id] = now;
  group_key_ = identity::randomBytes(32);
  group_epoch_ = static_cast<uint32_t>(rng_());
  ++version_;
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
  lost_supernode_.clear();
  state_ = State::kJoining;
  join(winner_id, endpoint, "", 2 * options_.supernode_timeout);
}

Status LinkAgent::verifyProfile(const json& j, const std::string& expected_id, NodeProfile* out) {
  auto p = profileFromJson(j);
  if (!p.isOk()) return p.status();
  if (identity::nodeIdFromPublicKey(p->public_key) != p->node_id)
    return Status::permissionDenied("profile id " + p->node_id +
                                    " does not derive from its public key");
  if (!expected_id.empty() && p->node_id != expected_id)
    return Status::permissionDenied("profile claims id " + p->node_id +
                                    " but the session is authenticated as " + expected_id);
  if (!identity::verifySignature(p->public_key, profileSigningBytes(*p), p->signature))
    return Status::permissionDenied("profile signature of " + p->node_id + " does not verify");
  *out = std::move(*p);
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
    } else {
      reject(s, "not a supernode");
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
    sendWelcome(s);
    return;
  }
  pending_[peer] = Pending{.session = s, .profile = std::move(p)};
  session_members_[s] = peer;  // so the session is ours while the check runs
  io_.checkEndpoint(pending_[peer].profile.endpoint, peer);
}

void LinkAgent::onEndpointChecked(const std::string& node_id, const Status& result) {
  auto it = pending_.find(node_id);
  if (it == pending_.end() || state_ != State::kSupernode) return;
  Pending p = std::move(it->second);
  pending_.erase(it);
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
      {"profile", profileToJson(mem.profile)}, {"score", mem.score}, {"joined_at", mem.joined_at}});
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

void LinkAgent::sendWelcome(SessionId s) {
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
  updated.push_back(json{{"profile", profileToJson(it->second.profile)},
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

void LinkAgent::publishDelta(json delta) {
  delta["t"] = "delta";
  delta["version"] = version_;
  delta["from"] = version_ - 1;
  std::string plain = delta.dump();
  std::string sealed = identity::sealGroup(group_key_, options_.cluster_id, plain);
  auto dg = encodeDatagram(DatagramType::kDelta,
                           encodeDeltaBody(identity_.id(), group_epoch_, sealed), identity_);
  if (dg.isOk()) {
    io_.multicast(*dg);
    return;
  }
  // Too large for one datagram (several profiles at once): each member gets it on its
  // session instead.
  for (const auto& [id, s] : member_sessions_)
    if (s) io_.send(s, delta);
}

json LinkAgent::memberListJson() const {
  json list = json::array();
  for (const auto& [id, m] : members_)
    list.push_back(json{{"profile", profileToJson(m.profile)},
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
