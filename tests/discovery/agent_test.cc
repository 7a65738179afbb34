// Link agents on a fake network with a fake clock: election, takeover, merge, failover,
// expiry and blacklisting, deterministic and without sockets.
#include "discovery/agent.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <set>

#include "discovery/codec.h"
#include "discovery/election.h"
#include "discovery/wire.h"
#include "identity/identity.h"

namespace edge::discovery {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;

class FakeNet;

struct FakeNode;

class FakeIo : public LinkIo {
 public:
  FakeIo(FakeNet& net, int index) : net_(net), index_(index) {}
  void multicast(const std::string& datagram) override;
  SessionId connect(const std::string& endpoint) override;
  void send(SessionId session, const json& message) override;
  void close(SessionId session) override;
  void checkEndpoint(const std::string& endpoint, const std::string& node_id) override;
  std::string peerAddress(SessionId session) const override;

 private:
  FakeNet& net_;
  int index_;
};

struct FakeNode {
  explicit FakeNode(identity::NodeIdentity id) : identity(std::move(id)) {}
  int index = 0;
  identity::NodeIdentity identity;
  std::unique_ptr<FakeIo> io;
  std::unique_ptr<LinkAgent> agent;
  NodeProfile profile;
  bool alive = false;
  bool listening = true;    // whether its advertised endpoint answers
  bool slow = false;        // its endpoint answers checks too late (a loaded host)
  int group = 0;            // partition group; -1 = cut off
  std::string cluster_key;  // sessions need the same key at both ends
  std::vector<std::pair<std::string, std::string>> events;  // type, node
};

struct Session {
  int a = -1, b = -1;  // initiator, responder
  bool open = true;
};

class FakeNet {
 public:
  FakeClock clock;

  FakeNode& add(const std::string& power = "mains", bool persistent = true,
                const std::string& cluster_key = "") {
    auto id = identity::NodeIdentity::generate();
    EXPECT_TRUE(id.isOk());
    auto n = std::make_unique<FakeNode>(*id);
    n->index = static_cast<int>(nodes_.size());
    n->io = std::make_unique<FakeIo>(*this, n->index);
    n->profile.name = "n" + std::to_string(n->index);
    n->profile.boot_id = "boot-" + std::to_string(n->index);
    n->profile.started_at = unixNow();
    n->profile.cpus = 2;
    n->profile.memory_bytes = int64_t{4} << 30;
    n->profile.storage_free_bytes = int64_t{10 + n->index} << 30;
    n->profile.os = "linux";
    n->profile.arch = "x86_64";
    n->profile.runtime = "light";
    n->profile.power = power;
    n->profile.persistent = persistent;
    n->profile.endpoint = "198.18.0." + std::to_string(10 + n->index) + ":8083";
    n->profile.addresses.push_back({"eth0", "198.18.0." + std::to_string(10 + n->index), 24});
    AgentOptions ao;
    ao.interface = "eth0";
    ao.cluster_id = "198.18.0.0/24";
    ao.seed = 1000 + static_cast<uint64_t>(n->index);
    ao.cluster_key = cluster_key;
    n->cluster_key = cluster_key;
    FakeNode* raw = n.get();
    n->agent = std::make_unique<LinkAgent>(
        ao, n->identity, clock, *n->io,
        [raw](const std::string& type, const std::string& node, const std::string&) {
          raw->events.push_back({type, node});
        });
    nodes_.push_back(std::move(n));
    return *nodes_.back();
  }

  void start(FakeNode& n) {
    n.alive = true;
    n.agent->start(n.profile);
  }

  FakeNode& node(int i) { return *nodes_[static_cast<size_t>(i)]; }
  size_t size() const { return nodes_.size(); }

  int64_t unixNow() const {
    return std::chrono::duration_cast<std::chrono::seconds>(clock.wallNow().time_since_epoch())
        .count();
  }

  // Process death: its sessions close at the other ends (the kernel does that).
  void kill(FakeNode& n) {
    n.alive = false;
    for (auto& [id, s] : sessions_) {
      if (!s.open || (s.a != n.index && s.b != n.index)) continue;
      s.open = false;
      int other = s.a == n.index ? s.b : s.a;
      SessionId sid = id;
      after(1ms, [this, other, sid] {
        if (node(other).alive) node(other).agent->onSessionDown(sid);
      });
    }
  }
  // Link down: nothing gets through, nothing is closed.
  void cut(FakeNode& n) { n.group = -1; }
  void setGroup(FakeNode& n, int g) { n.group = g; }

  bool reachable(int from, int to) const {
    const auto& a = *nodes_[static_cast<size_t>(from)];
    const auto& b = *nodes_[static_cast<size_t>(to)];
    return a.alive && b.alive && a.group >= 0 && a.group == b.group;
  }

  void after(Duration d, std::function<void()> f) {
    queue_.push_back({clock.now() + d, seq_++, std::move(f)});
  }

  // Runs the network for `d` of fake time in 5 ms steps.
  void run(Duration d) {
    SteadyTime end = clock.now() + d;
    while (clock.now() < end) {
      deliverDue();
      for (auto& n : nodes_)
        if (n->alive) n->agent->tick();
      deliverDue();
      clock.advance(5ms);
    }
    deliverDue();
  }

  // Runs until `pred` holds or `limit` passes; returns the time it took.
  std::optional<Duration> runUntil(const std::function<bool()>& pred, Duration limit) {
    SteadyTime start = clock.now();
    while (clock.now() - start < limit) {
      if (pred()) return clock.now() - start;
      run(5ms);
    }
    return pred() ? std::optional<Duration>(clock.now() - start) : std::nullopt;
  }

  // Every live node in the list agrees on one supernode and has exactly these members.
  bool agreed(const std::vector<int>& indexes) {
    std::string super;
    std::set<std::string> want;
    for (int i : indexes) want.insert(node(i).identity.id());
    for (int i : indexes) {
      auto& a = *node(i).agent;
      if (a.state() != LinkAgent::State::kMember && a.state() != LinkAgent::State::kSupernode)
        return false;
      if (super.empty()) super = a.supernodeId();
      if (a.supernodeId() != super) return false;
      std::set<std::string> have;
      for (const auto& m : a.view().members) have.insert(m.profile.node_id);
      if (have != want) return false;
    }
    return want.count(super) == 1;
  }

  int indexOf(const std::string& id) const {
    for (const auto& n : nodes_)
      if (n->identity.id() == id) return n->index;
    return -1;
  }

  // For FakeIo.
  int byEndpoint(const std::string& ep) const {
    for (const auto& n : nodes_)
      if (n->profile.endpoint == ep) return n->index;
    return -1;
  }
  std::map<SessionId, Session> sessions_;
  SessionId next_session_ = 1;
  int64_t datagrams = 0;
  int64_t messages = 0;
  int64_t message_bytes = 0;

 private:
  struct Item {
    SteadyTime at;
    uint64_t seq;
    std::function<void()> f;
  };
  void deliverDue() {
    for (int guard = 0; guard < 100000; ++guard) {
      auto it = std::min_element(queue_.begin(), queue_.end(), [](const Item& x, const Item& y) {
        return x.at != y.at ? x.at < y.at : x.seq < y.seq;
      });
      if (it == queue_.end() || it->at > clock.now()) return;
      auto f = std::move(it->f);
      queue_.erase(it);
      f();
    }
    FAIL() << "message storm: more than 100000 deliveries in one step";
  }
  std::vector<std::unique_ptr<FakeNode>> nodes_;
  std::deque<Item> queue_;
  uint64_t seq_ = 0;
};

void FakeIo::multicast(const std::string& datagram) {
  ++net_.datagrams;
  for (size_t i = 0; i < net_.size(); ++i) {
    int to = static_cast<int>(i);
    if (to == index_ || !net_.reachable(index_, to)) continue;
    net_.after(1ms, [this, to, datagram] {
      if (net_.reachable(index_, to)) net_.node(to).agent->onDatagram(datagram);
    });
  }
}

SessionId FakeIo::connect(const std::string& endpoint) {
  SessionId id = net_.next_session_++;
  int to = net_.byEndpoint(endpoint);
  net_.sessions_[id] = Session{index_, to, true};
  FakeNode& self = net_.node(index_);
  net_.after(1ms, [this, id, to, &self] {
    auto& s = net_.sessions_[id];
    if (!s.open || !self.alive) return;
    if (to < 0 || !net_.reachable(index_, to) || !net_.node(to).listening ||
        net_.node(to).cluster_key != self.cluster_key) {
      s.open = false;
      self.agent->onSessionDown(id);
      return;
    }
    self.agent->onSessionUp(id, net_.node(to).identity.id());
  });
  return id;
}

void FakeIo::send(SessionId session, const json& message) {
  ++net_.messages;
  auto it = net_.sessions_.find(session);
  if (it == net_.sessions_.end() || !it->second.open) return;
  int from = index_;
  int to = it->second.a == from ? it->second.b : it->second.a;
  std::string bytes = encodeMessage(message);  // what goes on the wire
  net_.message_bytes += static_cast<int64_t>(bytes.size());
  net_.after(1ms, [this, session, from, to, bytes] {
    auto s = net_.sessions_.find(session);
    if (s == net_.sessions_.end() || !net_.reachable(from, to)) return;
    auto m = decodeMessage(bytes);
    ASSERT_TRUE(m.isOk()) << m.status().message();
    net_.node(to).agent->onMessage(session, net_.node(from).identity.id(), *m);
  });
}

void FakeIo::close(SessionId session) {
  auto it = net_.sessions_.find(session);
  if (it == net_.sessions_.end() || !it->second.open) return;
  int from = index_;
  int to = it->second.a == from ? it->second.b : it->second.a;
  // Messages sent before the close still arrive first (same 1 ms delay, later seq).
  net_.after(1ms, [this, session, to] {
    auto s = net_.sessions_.find(session);
    if (s == net_.sessions_.end() || !s->second.open) return;
    s->second.open = false;
    if (net_.node(to).alive) net_.node(to).agent->onSessionDown(session);
  });
}

void FakeIo::checkEndpoint(const std::string& endpoint, const std::string& node_id) {
  int to = net_.byEndpoint(endpoint);
  FakeNode& self = net_.node(index_);
  // As on a real link: an unreachable endpoint times out (1 s), a host without a listener
  // refuses, another node answers as itself.
  bool reachable = to >= 0 && net_.reachable(index_, to);
  net_.after(reachable ? 2ms : 1000ms, [this, to, node_id, reachable, &self] {
    if (!self.alive) return;
    Status result = Status::ok();
    if (!reachable || net_.node(to).slow) {
      result = Status::deadlineExceeded("no answer in time");
    } else if (!net_.node(to).listening) {
      result = Status::unavailable("refused");
    } else if (net_.node(to).identity.id() != node_id) {
      result = Status::permissionDenied("it answered as another node");
    }
    self.agent->onEndpointChecked(node_id, result);
  });
}

std::string FakeIo::peerAddress(SessionId session) const {
  auto it = net_.sessions_.find(session);
  if (it == net_.sessions_.end()) return {};
  int other = it->second.a == index_ ? it->second.b : it->second.a;
  if (other < 0) return {};
  const auto& p = net_.node(other).profile;
  return p.addresses.empty() ? std::string() : p.addresses[0].address;
}

std::vector<int> range(int from, int to) {
  std::vector<int> v;
  for (int i = from; i < to; ++i) v.push_back(i);
  return v;
}

TEST(LinkAgent, LoneNodeClaimsTheSupernodeRoleAfterItsProbeWindow) {
  FakeNet net;
  auto& a = net.add();
  net.start(a);
  EXPECT_EQ(a.agent->state(), LinkAgent::State::kProbing);
  net.run(100ms);
  EXPECT_EQ(a.agent->state(), LinkAgent::State::kProbing);
  net.run(500ms);
  EXPECT_EQ(a.agent->state(), LinkAgent::State::kSupernode);
  EXPECT_EQ(a.agent->supernodeId(), a.identity.id());
}

TEST(LinkAgent, TenNodesStartedTogetherFormOneClusterAroundTheBestNode) {
  FakeNet net;
  for (int i = 0; i < 9; ++i) net.add("battery", false);
  net.add("mains", true);  // clearly the best
  for (size_t i = 0; i < net.size(); ++i) net.start(net.node(static_cast<int>(i)));
  auto took = net.runUntil([&] { return net.agreed(range(0, 10)); }, 5s);
  ASSERT_TRUE(took) << "no agreement in 5 s";
  EXPECT_LT(*took, 1500ms);
  EXPECT_EQ(net.node(0).agent->supernodeId(), net.node(9).identity.id());
  // Roles: one supernode, one proxy, one cache, the same on every node.
  auto view = net.node(3).agent->view();
  std::map<std::string, int> counts;
  for (const auto& m : view.members)
    for (const auto& r : m.roles) ++counts[r];
  EXPECT_EQ(counts[kRoleSupernode], 1);
  EXPECT_EQ(counts[kRoleProxy], 1);
  EXPECT_EQ(counts[kRoleCache], 1);
  // The cache is the node with the most free storage (the last one added).
  for (const auto& m : view.members) {
    if (m.profile.node_id == net.node(9).identity.id()) {
      EXPECT_NE(std::find(m.roles.begin(), m.roles.end(), kRoleCache), m.roles.end());
    }
  }
}

TEST(LinkAgent, NodesJoiningOneByOneRegisterWithTheSupernodeAtConstantCost) {
  FakeNet net;
  // 41 nodes: well past the size where a delta carrying every member's roles would no
  // longer fit one datagram.
  constexpr int kNodes = 41;
  for (int i = 0; i < kNodes; ++i) net.add();
  net.start(net.node(0));
  net.run(1s);
  ASSERT_EQ(net.node(0).agent->state(), LinkAgent::State::kSupernode);
  for (int i = 1; i < kNodes - 1; ++i) {
    net.start(net.node(i));
    ASSERT_TRUE(net.runUntil([&] { return net.agreed(range(0, i + 1)); }, 3s)) << "join " << i;
  }
  net.run(2s);  // let pings settle
  // The last join: count what it costs on the wire, beyond the background.
  int64_t d0 = net.datagrams, m0 = net.messages;
  net.run(2s);
  int64_t background_d = net.datagrams - d0, background_m = net.messages - m0;
  d0 = net.datagrams;
  m0 = net.messages;
  net.start(net.node(kNodes - 1));
  ASSERT_TRUE(net.runUntil([&] { return net.agreed(range(0, kNodes)); }, 3s));
  net.run(2s - 5ms);
  int64_t join_d = net.datagrams - d0 - background_d;
  int64_t join_m = net.messages - m0 - background_m;
  // A probe (or two), an answering beacon, one delta; register + welcome, and the
  // newcomer's own pings and pongs in the window: not one message per member (a
  // delta sent member by member would be 40 here).
  EXPECT_LE(join_d, 5) << "datagrams per join";
  EXPECT_LE(join_m, 10) << "session messages per join";
}

TEST(LinkAgent, NodesJoiningTogetherLearnOfEachOtherWithoutWaitingForASync) {
  FakeNet net;
  for (int i = 0; i < 8; ++i) net.add();
  net.start(net.node(0));
  net.run(1s);
  ASSERT_EQ(net.node(0).agent->state(), LinkAgent::State::kSupernode);
  for (int i = 1; i < 8; ++i) net.start(net.node(i));
  // The supernode announces some joins while others' welcomes are still on their way;
  // those deltas must not be lost (a sync would only come after two beacons, 500 ms).
  auto took = net.runUntil([&] { return net.agreed(range(0, 8)); }, 3s);
  ASSERT_TRUE(took);
  EXPECT_LT(*took, 100ms);
}

TEST(LinkAgent, AProbeRightAfterAnotherIsStillAnsweredAtOnce) {
  FakeNet net;
  for (int i = 0; i < 3; ++i) net.add();
  net.start(net.node(0));
  net.run(1s);
  ASSERT_EQ(net.node(0).agent->state(), LinkAgent::State::kSupernode);
  net.start(net.node(1));
  net.run(5ms);  // the beacon answering node 1 has gone out before node 2 listens
  net.start(net.node(2));
  auto took = net.runUntil([&] { return net.agreed(range(0, 3)); }, 1s);
  ASSERT_TRUE(took);
  EXPECT_LT(*took, 60ms) << "node 2's probe must not wait for the periodic beacon";
}

TEST(LinkAgent, KilledSupernodeIsReplacedByItsSuccessorWellWithinTwoSeconds) {
  FakeNet net;
  for (int i = 0; i < 6; ++i) net.add();
  for (int i = 0; i < 6; ++i) net.start(net.node(i));
  ASSERT_TRUE(net.runUntil([&] { return net.agreed(range(0, 6)); }, 5s));
  int super = net.indexOf(net.node(0).agent->supernodeId());
  std::vector<int> rest;
  for (int i = 0; i < 6; ++i)
    if (i != super) rest.push_back(i);
  net.kill(net.node(super));
  auto took = net.runUntil([&] { return net.agreed(rest); }, 5s);
  ASSERT_TRUE(took) << "no new supernode";
  EXPECT_LT(*took, 300ms) << "a crash closes sessions: failover should be immediate";
}

TEST(LinkAgent, SupernodeCutFromTheLinkIsReplacedWithinTwoSeconds) {
  FakeNet net;
  for (int i = 0; i < 6; ++i) net.add();
  for (int i = 0; i < 6; ++i) net.start(net.node(i));
  ASSERT_TRUE(net.runUntil([&] { return net.agreed(range(0, 6)); }, 5s));
  int super = net.indexOf(net.node(0).agent->supernodeId());
  std::vector<int> rest;
  for (int i = 0; i < 6; ++i)
    if (i != super) rest.push_back(i);
  net.cut(net.node(super));
  auto took = net.runUntil(
      [&] {
        // Agreement on a new supernode (the old one is still in lists until it expires).
        std::string s = net.node(rest[0]).agent->supernodeId();
        if (s.empty() || net.indexOf(s) == super) return false;
        for (int i : rest)
          if (net.node(i).agent->supernodeId() != s ||
              (net.node(i).agent->state() != LinkAgent::State::kMember &&
               net.node(i).agent->state() != LinkAgent::State::kSupernode))
            return false;
        return true;
      },
      5s);
  ASSERT_TRUE(took);
  EXPECT_LT(*took, 2s);
  // The cut node has expired from the list after the member timeout.
  ASSERT_TRUE(net.runUntil([&] { return net.agreed(rest); }, 6s));
}

TEST(LinkAgent, ClearlyBetterNodeTakesOverAndRolesDoNotFlap) {
  FakeNet net;
  for (int i = 0; i < 4; ++i) net.add("battery", false);
  for (int i = 0; i < 4; ++i) net.start(net.node(i));
  ASSERT_TRUE(net.runUntil([&] { return net.agreed(range(0, 4)); }, 5s));
  auto& best = net.add("mains", true);
  net.start(best);
  ASSERT_TRUE(net.runUntil(
      [&] {
        return net.agreed(range(0, 5)) && net.node(0).agent->supernodeId() == best.identity.id();
      },
      5s));
  // Stable afterwards: no further supernode change anywhere.
  std::vector<size_t> before;
  for (int i = 0; i < 5; ++i) before.push_back(net.node(i).events.size());
  net.run(10s);
  for (int i = 0; i < 5; ++i)
    for (size_t e = before[static_cast<size_t>(i)]; e < net.node(i).events.size(); ++e)
      EXPECT_NE(net.node(i).events[e].first, "cluster.supernode") << "node " << i << " flapped";
  EXPECT_TRUE(net.agreed(range(0, 5)));
}

TEST(LinkAgent, SlightlyBetterNodeDoesNotTakeOver) {
  FakeNet net;
  for (int i = 0; i < 3; ++i) net.add("mains", true);
  for (int i = 0; i < 3; ++i) net.start(net.node(i));
  ASSERT_TRUE(net.runUntil([&] { return net.agreed(range(0, 3)); }, 5s));
  std::string super = net.node(0).agent->supernodeId();
  auto& slightly = net.add("mains", true);
  slightly.profile.cpus = 8;  // a few points more, under the margin
  net.start(slightly);
  ASSERT_TRUE(net.runUntil([&] { return net.agreed(range(0, 4)); }, 5s));
  net.run(3s);
  EXPECT_EQ(net.node(3).agent->supernodeId(), super);
}

TEST(LinkAgent, PartitionedHalvesEachElectAndMergeBackWithoutLosingMembers) {
  FakeNet net;
  for (int i = 0; i < 6; ++i) net.add();
  for (int i = 0; i < 6; ++i) net.start(net.node(i));
  ASSERT_TRUE(net.runUntil([&] { return net.agreed(range(0, 6)); }, 5s));
  for (int i = 3; i < 6; ++i) net.setGroup(net.node(i), 1);
  ASSERT_TRUE(net.runUntil(
      [&] {
        return net.agreed({0, 1, 2}) && net.agreed({3, 4, 5});
      },
      10s))
      << "each side should settle on its own supernode and expire the other side";
  EXPECT_NE(net.node(0).agent->supernodeId(), net.node(3).agent->supernodeId());
  for (int i = 3; i < 6; ++i) net.setGroup(net.node(i), 0);
  auto took = net.runUntil([&] { return net.agreed(range(0, 6)); }, 5s);
  ASSERT_TRUE(took) << "the halves did not merge";
  EXPECT_LT(*took, 2s);
}

TEST(LinkAgent, MemberBackFromABriefCutRejoinsWithoutMovingTheCluster) {
  FakeNet net;
  for (int i = 0; i < 6; ++i) net.add();
  for (int i = 0; i < 6; ++i) net.start(net.node(i));
  ASSERT_TRUE(net.runUntil([&] { return net.agreed(range(0, 6)); }, 5s));
  std::string super = net.node(0).agent->supernodeId();
  // The successor-to-be: cut off, it takes over the list it holds, alone.
  std::vector<Member> others;
  for (const auto& m : net.node(0).agent->view().members)
    if (m.profile.node_id != super) others.push_back(m);
  int cut = net.indexOf(successor(others, {}));
  net.cut(net.node(cut));
  net.run(2s);  // past the supernode timeout, within the member timeout
  EXPECT_EQ(net.node(cut).agent->state(), LinkAgent::State::kSupernode);
  net.setGroup(net.node(cut), 0);
  ASSERT_TRUE(net.runUntil([&] { return net.agreed(range(0, 6)); }, 5s));
  EXPECT_EQ(net.node(0).agent->supernodeId(), super)
      << "the five that stayed together keep their supernode";
}

TEST(LinkAgent, NodeWhoseAdvertisedEndpointDoesNotAnswerIsBlacklisted) {
  FakeNet net;
  for (int i = 0; i < 3; ++i) net.add();
  for (int i = 0; i < 3; ++i) net.start(net.node(i));
  ASSERT_TRUE(net.runUntil([&] { return net.agreed(range(0, 3)); }, 5s));
  auto& liar = net.add("battery", false);
  liar.listening = false;  // advertises an endpoint nobody serves
  net.start(liar);
  net.run(3s);
  EXPECT_TRUE(net.agreed(range(0, 3))) << "the liar must not be a member";
  for (int i = 0; i < 3; ++i) {
    auto view = net.node(i).agent->view();
    ASSERT_EQ(view.blacklist.size(), 1u) << "node " << i;
    EXPECT_EQ(view.blacklist[0].node_id, liar.identity.id());
    EXPECT_NE(view.blacklist[0].reason.find("198.18.0.13:8083"), std::string::npos)
        << view.blacklist[0].reason;
  }
  // Its beacons (it claims its own cluster) are dropped, not merged with.
  net.run(3s);
  EXPECT_TRUE(net.agreed(range(0, 3)));
  EXPECT_GT(net.node(0).agent->view().counters.dropped_blacklisted, 0);
}

TEST(LinkAgent, EndpointCheckThatOnlyTimesOutNeverBlacklists) {
  // On a loaded host a check can time out; that proves nothing. The node is admitted (its
  // session comes from its endpoint's address), checked again later, and stays.
  FakeNet net;
  for (int i = 0; i < 3; ++i) net.add();
  for (int i = 0; i < 3; ++i) net.start(net.node(i));
  ASSERT_TRUE(net.runUntil([&] { return net.agreed(range(0, 3)); }, 5s));
  auto& slow = net.add();
  slow.slow = true;
  net.start(slow);
  ASSERT_TRUE(net.runUntil([&] { return net.agreed(range(0, 4)); }, 2s))
      << "admitted at once, before its check";
  net.run(5s);  // checks time out twice meanwhile
  slow.slow = false;
  net.run(10s);  // and the next one passes
  EXPECT_TRUE(net.agreed(range(0, 4)));
  for (int i = 0; i < 4; ++i) EXPECT_TRUE(net.node(i).agent->view().blacklist.empty()) << i;
}

TEST(LinkAgent, EndpointThatNeverAnswersIsBlacklistedAfterItsRetries) {
  FakeNet net;
  for (int i = 0; i < 3; ++i) net.add();
  for (int i = 0; i < 3; ++i) net.start(net.node(i));
  ASSERT_TRUE(net.runUntil([&] { return net.agreed(range(0, 3)); }, 5s));
  auto& mute = net.add("battery", false);
  mute.slow = true;  // its endpoint swallows connections
  net.start(mute);
  ASSERT_TRUE(net.runUntil([&] { return net.agreed(range(0, 4)); }, 2s));
  ASSERT_TRUE(net.runUntil([&] { return net.agreed(range(0, 3)); }, 30s))
      << "never answering its endpoint, it must go in the end";
  auto view = net.node(0).agent->view();
  ASSERT_EQ(view.blacklist.size(), 1u);
  EXPECT_EQ(view.blacklist[0].node_id, mute.identity.id());
  EXPECT_NE(view.blacklist[0].reason.find("no answer in time"), std::string::npos)
      << view.blacklist[0].reason;
}

TEST(LinkAgent, HundredNodesStartedTogetherFormOneClusterWithoutAStormOfClaims) {
  FakeNet net;
  constexpr int kNodes = 100;
  for (int i = 0; i < kNodes; ++i) net.add();
  for (int i = 0; i < kNodes; ++i) net.start(net.node(i));
  auto took = net.runUntil([&] { return net.agreed(range(0, kNodes)); }, 10s);
  ASSERT_TRUE(took) << "no agreement in 10 s";
  EXPECT_LT(*took, 2s);
  // Probers defer to the best-ranked one among them, so (nearly) only it claims.
  int claims = 0;
  for (int i = 0; i < kNodes; ++i)
    for (const auto& [type, node] : net.node(i).events)
      if (type == "cluster.joined" && node == net.node(i).identity.id()) ++claims;
  EXPECT_LE(claims, 3) << "supernode claims in a cold start of " << kNodes;
}

TEST(LinkAgent, AfterAFailoverMembersAreSentOnlyWhatChanged) {
  // A hundred members re-register with the successor at once; each already holds the
  // list, so the successor sends what changed since, not a hundred profiles to each.
  FakeNet net;
  constexpr int kNodes = 100;
  for (int i = 0; i < kNodes; ++i) net.add();
  for (int i = 0; i < kNodes; ++i) net.start(net.node(i));
  ASSERT_TRUE(net.runUntil([&] { return net.agreed(range(0, kNodes)); }, 10s));
  net.run(1s);
  int super = net.indexOf(net.node(0).agent->supernodeId());
  ASSERT_GE(super, 0);
  std::vector<int> rest;
  for (int i = 0; i < kNodes; ++i)
    if (i != super) rest.push_back(i);
  int64_t before = net.message_bytes;
  net.kill(net.node(super));
  auto took = net.runUntil([&] { return net.agreed(rest); }, 5s);
  ASSERT_TRUE(took) << "no agreement after the kill";
  EXPECT_LT(*took, 500ms);
  int64_t per_member = (net.message_bytes - before) / (kNodes - 1);
  // A full list of 100 profiles is about 25 KB; registration and a compact welcome are
  // a few hundred bytes.
  EXPECT_LT(per_member, 2000) << "bytes on sessions per member during the failover";
  // And the lists they hold are right: roles moved with the supernode role.
  auto view = net.node(rest[0]).agent->view();
  int supernodes = 0;
  for (const auto& m : view.members)
    for (const auto& r : m.roles) supernodes += r == kRoleSupernode;
  EXPECT_EQ(supernodes, 1);
}

TEST(LinkAgent, ContradictoryReannouncementIsBlacklisted) {
  FakeNet net;
  for (int i = 0; i < 3; ++i) net.add();
  for (int i = 0; i < 3; ++i) net.start(net.node(i));
  ASSERT_TRUE(net.runUntil([&] { return net.agreed(range(0, 3)); }, 5s));
  int super = net.indexOf(net.node(0).agent->supernodeId());
  ASSERT_GE(super, 0);
  int member = super == 0 ? 1 : 0;
  int other = 3 - member - super;  // the third node, a member that did nothing wrong
  NodeProfile p = net.node(member).profile;
  p.cpus = 64;  // same boot, same start: CPUs cannot have appeared
  net.node(member).agent->updateProfile(p);
  net.run(500ms);
  auto view = net.node(other).agent->view();
  ASSERT_EQ(view.blacklist.size(), 1u);
  EXPECT_EQ(view.blacklist[0].node_id, net.node(member).identity.id());
  EXPECT_NE(view.blacklist[0].reason.find("contradictory"), std::string::npos);
  EXPECT_EQ(view.members.size(), 2u);
}

TEST(LinkAgent, RepeatedRefusalsAgainstClaimedCapacityBlacklist) {
  FakeNet net;
  for (int i = 0; i < 3; ++i) net.add();
  for (int i = 0; i < 3; ++i) net.start(net.node(i));
  ASSERT_TRUE(net.runUntil([&] { return net.agreed(range(0, 3)); }, 5s));
  int super = net.indexOf(net.node(0).agent->supernodeId());
  int reporter = super == 0 ? 1 : 0;
  int refuser = 3 - super - reporter;
  for (int k = 0; k < 3; ++k)
    net.node(reporter).agent->reportRefusal(net.node(refuser).identity.id(), "start web");
  net.run(500ms);
  auto view = net.node(super).agent->view();
  ASSERT_EQ(view.blacklist.size(), 1u);
  EXPECT_NE(view.blacklist[0].reason.find("refused 3"), std::string::npos);
}

TEST(LinkAgent, CleanLeaveOfAMemberAndOfTheSupernode) {
  FakeNet net;
  for (int i = 0; i < 4; ++i) net.add();
  for (int i = 0; i < 4; ++i) net.start(net.node(i));
  ASSERT_TRUE(net.runUntil([&] { return net.agreed(range(0, 4)); }, 5s));
  net.run(100ms);  // quiet: changes right after a burst are gathered for up to 50 ms
  int super = net.indexOf(net.node(0).agent->supernodeId());
  int member = super == 0 ? 1 : 0;
  net.node(member).agent->leave();
  net.node(member).alive = false;
  std::vector<int> rest;
  for (int i = 0; i < 4; ++i)
    if (i != member) rest.push_back(i);
  auto took = net.runUntil([&] { return net.agreed(rest); }, 2s);
  ASSERT_TRUE(took);
  EXPECT_LT(*took, 50ms) << "a member that says goodbye is gone at once";
  net.node(super).agent->leave();
  net.node(super).alive = false;
  std::vector<int> last;
  for (int i : rest)
    if (i != super) last.push_back(i);
  took = net.runUntil([&] { return net.agreed(last); }, 2s);
  ASSERT_TRUE(took);
  EXPECT_LT(*took, 100ms) << "a leaving supernode names its successor";
}

TEST(LinkAgent, ForgedAndMalformedDatagramsAreCountedAndDropped) {
  FakeNet net;
  auto& a = net.add();
  net.start(a);
  net.run(1s);
  auto other = identity::NodeIdentity::generate();
  auto liar = identity::NodeIdentity::generate();
  ASSERT_TRUE(other.isOk() && liar.isOk());
  auto bin = [](const std::string& s) {
    return json::binary(std::vector<uint8_t>(s.begin(), s.end()));
  };
  // Carries another node's key, signed with its own.
  json body{{"t", "beacon"},
            {"pub", bin(other->publicKey())},
            {"cluster", "198.18.0.0/24"},
            {"score", 100},
            {"members", 50},
            {"version", 9},
            {"endpoint", "198.18.0.99:8083"},
            {"boot", "x"},
            {"seq", 1}};
  auto dg = encodeDatagram(DatagramType::kBeacon, encodeMessage(body), *liar);
  ASSERT_TRUE(dg.isOk());
  a.agent->onDatagram(*dg);
  // Bit flip in a validly signed one.
  body["pub"] = bin(liar->publicKey());
  auto good = encodeDatagram(DatagramType::kBeacon, encodeMessage(body), *liar);
  ASSERT_TRUE(good.isOk());
  std::string flipped = *good;
  flipped[flipped.find("198.18.0.99") + 10] ^= 1;  // still a message, no longer what was signed
  a.agent->onDatagram(flipped);
  for (size_t len = 0; len < 200; len += 7) a.agent->onDatagram(std::string(len, '\x01'));
  a.agent->onDatagram("ECD1\x02\x00\x00\x05hello" + std::string(64, 'x'));
  auto c = a.agent->view().counters;
  EXPECT_EQ(c.dropped_forged, 2);
  EXPECT_GE(c.dropped_malformed, 20);
  EXPECT_EQ(a.agent->state(), LinkAgent::State::kSupernode);
  // A replay of a probe already answered is dropped too. (A replayed beacon this node
  // would ignore anyway is dropped before any check, uncounted.)
  json probe{{"t", "probe"},
             {"pub", bin(liar->publicKey())},
             {"cluster", "198.18.0.0/24"},
             {"score", 1},
             {"boot", "y"},
             {"seq", 1}};
  auto p = encodeDatagram(DatagramType::kProbe, encodeMessage(probe), *liar);
  ASSERT_TRUE(p.isOk());
  a.agent->onDatagram(*p);
  net.run(10ms);
  int64_t forged = a.agent->view().counters.dropped_forged;
  a.agent->onDatagram(*p);
  EXPECT_EQ(a.agent->view().counters.dropped_forged, forged + 1);
  EXPECT_EQ(a.agent->state(), LinkAgent::State::kSupernode);
}

TEST(LinkAgent, WithAClusterKeyNodesWithoutItAreNeitherHeardNorAdmitted) {
  FakeNet net;
  const std::string key(32, 'k');
  for (int i = 0; i < 3; ++i) net.add("mains", true, key);
  auto& outsider = net.add("mains", true, "");
  for (int i = 0; i < 3; ++i) net.start(net.node(i));
  ASSERT_TRUE(net.runUntil([&] { return net.agreed(range(0, 3)); }, 5s));
  net.start(outsider);
  net.run(5s);
  EXPECT_TRUE(net.agreed(range(0, 3)));
  EXPECT_EQ(outsider.agent->state(), LinkAgent::State::kSupernode) << "alone in its own cluster";
  // The supernode answers probes, so it checks them (members drop an outsider's
  // datagrams unread: they would ignore them anyway).
  int super = net.indexOf(net.node(0).agent->supernodeId());
  ASSERT_GE(super, 0);
  EXPECT_GT(net.node(super).agent->view().counters.dropped_forged, 0)
      << "its probes carry no proof of the key";
}

}  // namespace
}  // namespace edge::discovery
