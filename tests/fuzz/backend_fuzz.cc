// backend_fuzz: what edge-backend and a node's peer server take from anyone. The first
// byte picks the door:
//   0: a bearer token, verified against a real key set (as every API and peer does);
//   1: a JWKS document a node fetched;
//   2: a cluster registration body from an authenticated supernode;
//   3: a reachability / query: the body of a reachability check, then geo text;
//   4: an OAuth form body (the token endpoint's input);
//   5: a BEP request body and a relay ticket from an authenticated node.
// Properties: nothing crashes or throws; a refused token, body or form is an error
// Status with a message (never OK with garbage); a refused registration writes nothing.
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "backend/discovery_service.h"
#include "backend/identity_api.h"
#include "backend/signaling.h"
#include "common/clock.h"
#include "common/jwt.h"
#include "tests/backend/memory_store.h"
#include "tests/fuzz/fuzz_check.h"

namespace {

using namespace edge;
using namespace edge::backend;
using Json = nlohmann::json;
using testing::MemoryStore;

class FixedAuth : public Authenticator {
 public:
  Result<Caller> authenticate(std::string_view, std::string_view) override {
    return Status::permissionDenied("not used");
  }
};

Caller node(const std::string& id) {
  Caller c;
  c.subject = "node:" + id;
  c.node_id = id;
  c.account = "acme";
  c.scopes = {"discovery:register", "discovery:read", "relay:sep", "relay:connect", "relay:bep"};
  return c;
}

struct World {
  FakeClock clock;
  std::shared_ptr<FakeClock> clock_ptr = std::make_shared<FakeClock>();
  jwt::SigningKey key = *jwt::SigningKey::generate();
  jwt::KeySet keys;
  std::string valid_token;
  FixedAuth auth;

  World() {
    keys.add(key);
    Json claims = {{"iss", "http://backend"},
                   {"aud", "edge-node"},
                   {"sub", "node:x"},
                   {"exp", 1'900'000'000},
                   {"iat", 1'800'000'000}};
    valid_token = *key.sign(Json{{"typ", "at+jwt"}}, claims);
  }
};

World& world() {
  static World* w = new World();
  return *w;
}

void checkRefusal(const Status& s, const char* what) {
  FUZZ_CHECK(!s.message().empty(), std::string(what) + ": an error without a message");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  World& w = world();
  std::string input(reinterpret_cast<const char*>(data) + 1, size - 1);
  switch (data[0] % 6) {
    case 0: {
      jwt::VerifyOptions vo;
      vo.issuer = "http://backend";
      vo.audience = "edge-node";
      vo.now = WallTime(std::chrono::seconds(1'800'000'100));
      auto r = jwt::verify(input, w.keys, vo);
      if (!r.isOk()) {
        checkRefusal(r.status(), "verify");
        FUZZ_CHECK(r.status().code() == StatusCode::kPermissionDenied ||
                       r.status().code() == StatusCode::kInvalidArgument,
                   r.status().toString());
      } else {
        // Only a token our key signed can verify: the fuzzer cannot forge one.
        FUZZ_CHECK(input == w.valid_token, "a token other than the one we signed verified");
      }
      break;
    }
    case 1: {
      auto r = jwt::KeySet::fromJwksText(input);
      if (!r.isOk()) checkRefusal(r.status(), "jwks");
      break;
    }
    case 2: {
      MemoryStore store;
      DiscoveryService svc(store, w.auth, w.clock, {});
      Json body = Json::parse(input, nullptr, false);
      if (body.is_discarded()) break;
      auto r = svc.registerCluster(node("aaaaaaaaaaaaaaa1"), body, "198.18.0.10");
      if (!r.isOk()) {
        checkRefusal(r.status(), "registerCluster");
        FUZZ_CHECK(store.revision().value() == 0, "a refused registration wrote something");
      } else {
        auto q = svc.queryNodes(node("aaaaaaaaaaaaaaa1"), NodesQuery{});
        FUZZ_CHECK(q.isOk(), q.status().toString());
      }
      break;
    }
    case 3: {
      MemoryStore store;
      DiscoveryService::Options o;
      o.call_back = [](const std::string&, const std::string&) {
        return Status::unavailable("no");
      };
      DiscoveryService svc(store, w.auth, w.clock, o);
      Json body = Json::parse(input, nullptr, false);
      if (!body.is_discarded()) {
        auto r = svc.checkReachability(node("aaaaaaaaaaaaaaa1"), body, "198.18.0.10");
        if (!r.isOk()) checkRefusal(r.status(), "reachability");
      }
      auto g = parseGeoPointText(input, "near");
      if (!g.isOk()) checkRefusal(g.status(), "geo");
      break;
    }
    case 4: {
      auto r = parseForm(input);
      if (!r.isOk()) checkRefusal(r.status(), "form");
      break;
    }
    case 5: {
      MemoryStore store;
      Signaling::Options so;
      so.instance_id = "bk1";
      so.relay_address = "198.18.0.14:8085";
      so.clock = w.clock_ptr;
      Signaling sig(store, w.auth, so);
      Json body = Json::parse(input, nullptr, false);
      if (!body.is_discarded()) {
        auto r = sig.openBep(node("aaaaaaaaaaaaaaa1"), body);
        if (!r.isOk()) checkRefusal(r.status(), "openBep");
        auto c = sig.connect(node("aaaaaaaaaaaaaaa1"), body);
        if (!c.isOk()) checkRefusal(c.status(), "connect");
      }
      auto t = redeemTicket(store, input, "bk1", w.clock.wallNow());
      FUZZ_CHECK(!t.isOk(), "a made-up ticket was redeemed");
      break;
    }
  }
  return 0;
}
