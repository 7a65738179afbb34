// LinkAgent's multicast side: probes and the supernode's answer to them, beacons (signed,
// with the cluster key's proof, replay-protected per sender) and the sealed group deltas
// members apply. The agent's other parts are listed in agent_internal.h.
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

void LinkAgent::addKeyProof(json* body) const {
  if (options_.cluster_key.empty()) return;
  std::string data =
      identity_.id() + "|" + boot_nonce_ + "|" + std::to_string((*body)["seq"].get<uint64_t>());
  (*body)["proof"] = binaryValue(identity::clusterKeyProof(options_.cluster_key, data));
}

void LinkAgent::sendProbe() {
  json body{{"t", "probe"},
            {"pub", binaryValue(identity_.publicKey())},
            {"cluster", options_.cluster_id},
            {"score", selfScore()},
            {"boot", boot_nonce_},
            {"seq", ++beacon_seq_}};
  addKeyProof(&body);
  auto dg = encodeDatagram(DatagramType::kProbe, encodeMessage(body), identity_);
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
            {"pub", binaryValue(identity_.publicKey())},
            {"cluster", options_.cluster_id},
            {"score", selfScore()},
            {"members", activeMembers()},
            {"version", version_},
            {"endpoint", self_.endpoint},
            {"boot", boot_nonce_},
            {"seq", ++beacon_seq_}};
  if (!lost_supernode_.empty()) body["takeover_from"] = lost_supernode_;
  addKeyProof(&body);
  auto dg = encodeDatagram(DatagramType::kBeacon, encodeMessage(body), identity_);
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
  auto j = parseSignedJson(*d);
  if (!j.isOk()) {
    ++counters_.dropped_malformed;
    return;
  }
  std::string id = str(*j, "id");
  if (id == identity_.id()) return;
  if (isBlacklisted(id)) {
    ++counters_.dropped_blacklisted;
    return;
  }
  if (str(*j, "cluster") != options_.cluster_id) return;  // another network on this link
  // Most of what a node hears on a busy link changes nothing for it (another member's
  // probe, a losing supernode's beacon); those are dropped before the signature check,
  // which is what a hundred nodes starting together would otherwise spend their CPU on.
  if (!worthVerifying(d->type, *j)) return;
  if (Status v = verifySignedJson(*d, *j); !v.isOk()) {
    if (v.code() == StatusCode::kPermissionDenied) {
      ++counters_.dropped_forged;
    } else {
      ++counters_.dropped_malformed;
    }
    return;
  }
  if (!options_.cluster_key.empty()) {
    std::string proof = bytesOf(*j, "proof");
    if (proof.empty() ||
        !identity::checkClusterKeyProof(
            options_.cluster_key, id + "|" + str(*j, "boot") + "|" + std::to_string(num(*j, "seq")),
            proof)) {
      ++counters_.dropped_forged;  // not a holder of this cluster's key
      return;
    }
  }
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

bool LinkAgent::worthVerifying(DatagramType type, const json& j) const {
  std::string id = str(j, "id");
  SteadyTime now = clock_.now();
  if (type == DatagramType::kProbe) {
    if (state_ == State::kSupernode) return true;  // answered
    // A prober that ranks before this one defers its claim (startProbing); only the
    // first such one matters.
    return state_ == State::kProbing && better_prober_.empty() &&
           ranksBefore(static_cast<int>(num(j, "score")), id, selfScore(), identity_.id());
  }
  if (auto it = refused_by_.find(id); it != refused_by_.end() && it->second > now) return false;
  switch (state_) {
    case State::kIdle:
    case State::kJoining:
      return false;
    case State::kProbing:
      return true;
    case State::kElecting:
      return id != lost_supernode_ && id != join_target_;
    case State::kMember:
      return id == supernode_id_ || (str(j, "takeover_from") == supernode_id_ &&
                                     now - last_heard_super_ > 2 * options_.beacon_interval);
    case State::kSupernode:
      return mergeWinner(static_cast<int>(num(j, "score")), num(j, "members"), id);
  }
  return false;
}

// Two supernodes of one network: the merge rule decides who yields (election.h).
bool LinkAgent::mergeWinner(int their_score, int64_t their_members, const std::string& id) const {
  int mine = selfScore();
  int64_t my_members = activeMembers();
  if (clearlyBetter(their_score, mine)) return true;
  if (clearlyBetter(mine, their_score)) return false;
  if (their_members != my_members) return their_members > my_members;
  return ranksBefore(their_score, id, mine, identity_.id());
}

void LinkAgent::handleProbe(const json& j) {
  if (state_ == State::kProbing) {
    // Nodes started together all probe; the best-ranked one claims the role and the
    // others, having heard it, wait for its beacon instead of claiming too and merging.
    if (better_prober_.empty()) better_prober_ = str(j, "id");
    return;
  }
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
      join(id, endpoint, "", 2 * options_.join_timeout);
      return;
    case State::kJoining:
      return;
    case State::kElecting:
      // Someone took over: follow it (it is either our successor or knows better).
      if (id != lost_supernode_ && id != join_target_) {
        if (join_session_) io_.close(join_session_);
        join_session_ = 0;
        join(id, endpoint, lost_supernode_, options_.join_timeout);
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
        join(id, endpoint, supernode_id_, options_.join_timeout);
      }
      return;
    }
    case State::kSupernode:
      if (mergeWinner(static_cast<int>(num(j, "score")), num(j, "members"), id))
        yieldTo(id, endpoint);
      return;
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
  auto j = decodeMessage(*plain);
  if (!j.isOk() || !j->is_object()) {
    ++counters_.dropped_malformed;
    return;
  }
  last_heard_super_ = clock_.now();
  applyDelta(*j);
}

}  // namespace edge::discovery
