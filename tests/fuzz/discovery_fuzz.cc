// discovery_fuzz: what other hosts on the link send us. The first byte picks the door:
//   0: a raw datagram, to a supernode's agent (multicast is open to anyone on the link);
//   1: the rest is a JSON body, signed with a valid key and sent as a beacon or a probe
//      (a real node that sends nonsense, past the signature check);
//   2: the rest is a session message from an authenticated peer (register, profile, ...);
//   3: bytes fed to the responder side of a secure session (before any authentication);
//   4: the rest is a profile, parsed and checked.
// Properties: nothing crashes or throws, a refused profile says why, and the agent still
// describes a cluster that contains this node.
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "common/clock.h"
#include "discovery/agent.h"
#include "discovery/codec.h"
#include "discovery/types.h"
#include "discovery/wire.h"
#include "identity/identity.h"
#include "identity/secure.h"
#include "tests/fuzz/fuzz_check.h"

namespace {

using namespace edge;
using namespace edge::discovery;

class NullIo : public LinkIo {
 public:
  void multicast(const std::string&) override {}
  SessionId connect(const std::string&) override { return ++next_; }
  void send(SessionId, const nlohmann::json&) override {}
  void close(SessionId) override {}
  void checkEndpoint(const std::string&, const std::string&) override {}
  std::string peerAddress(SessionId) const override { return {}; }

 private:
  SessionId next_ = 0;
};

struct World {
  FakeClock clock;
  NullIo io;
  identity::NodeIdentity self = *identity::NodeIdentity::generate();
  identity::NodeIdentity peer = *identity::NodeIdentity::generate();
  std::unique_ptr<LinkAgent> agent;

  World() {
    AgentOptions o;
    o.interface = "eth0";
    o.cluster_id = "198.18.0.0/24";
    o.seed = 1;
    agent = std::make_unique<LinkAgent>(o, self, clock, io, nullptr);
    NodeProfile p;
    p.name = "fuzz";
    p.endpoint = "198.18.0.10:8083";
    p.started_at = 1;
    agent->start(p);
    for (int i = 0; i < 200 && agent->state() != LinkAgent::State::kSupernode; ++i) {
      clock.advance(std::chrono::milliseconds(10));
      agent->tick();
    }
  }
};

World& world() {
  static World w;
  return w;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  World& w = world();
  std::string rest(reinterpret_cast<const char*>(data) + 1, size - 1);
  switch (data[0] % 5) {
    case 0:
      w.agent->onDatagram(rest);
      break;
    case 1: {
      auto dg = encodeDatagram(data[0] & 0x10 ? DatagramType::kBeacon : DatagramType::kProbe, rest,
                               w.peer);
      if (dg.isOk()) w.agent->onDatagram(*dg);
      break;
    }
    case 2: {
      auto j = decodeMessage(rest);  // as a session delivers it
      if (j.isOk()) w.agent->onMessage(data[0] >> 3, w.peer.id(), *j);
      break;
    }
    case 3: {
      identity::SecureSession s(identity::SecureSession::Role::kResponder, w.self, "");
      std::vector<std::string> messages;
      (void)s.feed(rest, &messages);
      FUZZ_CHECK(!s.established(), "a responder authenticated a peer from fuzz bytes");
      break;
    }
    case 4: {
      auto j = nlohmann::json::parse(rest, nullptr, false);
      if (j.is_discarded()) break;
      auto p = profileFromJson(j);
      FUZZ_CHECK(p.isOk() || !p.status().message().empty(), "a refusal without a reason");
      break;
    }
  }
  w.clock.advance(std::chrono::milliseconds(30));
  w.agent->tick();
  auto v = w.agent->view();
  bool has_self = false;
  for (const auto& m : v.members) has_self = has_self || m.profile.node_id == w.self.id();
  FUZZ_CHECK(has_self, std::string("this node is missing from its own view in state ") + v.state);
  return 0;
}
