// ServiceRouter's decisions, without sockets: which route, which caller must show what
// token, what is attached, when an on-demand service is started, which upstream each try
// gets and when a failed try is retried. The engine's side is played by the test.
#include "gateway/router.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>

#include "common/clock.h"
#include "common/log.h"

namespace edge::gateway {
namespace {

constexpr char kNode[] = "00112233445566aa";
constexpr char kPeer[] = "99887766554433bb";

RequestHead get(std::string target, std::vector<Header> headers = {}) {
  RequestHead h;
  h.method = "GET";
  h.target = std::move(target);
  h.headers = std::move(headers);
  return h;
}

Caller local() {
  return Caller{Caller::Kind::kLocal, "127.0.0.1:5000", ""};
}
Caller network() {
  return Caller{Caller::Kind::kNetwork, "198.18.0.9:5000", ""};
}
Caller peer() {
  return Caller{Caller::Kind::kNode, "198.18.0.2:5000", kPeer};
}

RouteSpec spec(std::string name, std::vector<std::string> locals = {},
               std::vector<PeerInstance> peers = {}) {
  RouteSpec s;
  s.service = name;
  s.base_path = "/" + name;
  s.local_instances = std::move(locals);
  s.peers = std::move(peers);
  return s;
}

class RouterTest : public ::testing::Test {
 protected:
  RouterTest() {
    log::setLevel(log::Level::kWarn);
    dir_ = std::filesystem::temp_directory_path() /
           ("router_test_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::create_directories(dir_);
  }
  ~RouterTest() override { std::filesystem::remove_all(dir_); }

  // A router whose node signs and checks tokens with an account key.
  void makeRouter(bool with_tokens, RouterHooks hooks = {}) {
    RouterOptions o;
    o.node_id = kNode;
    o.account = "acct1";
    o.access_log = false;
    if (with_tokens) {
      LocalAccountSigner::Options so;
      so.key_file = (dir_ / "account.pem").string();
      so.account = "acct1";
      so.node_id = kNode;
      auto s = LocalAccountSigner::open(so, *clock_);
      ASSERT_TRUE(s.isOk()) << s.status().toString();
      signer_ = std::move(*s);
      o.issuer = signer_->issuer();
      o.verifier = std::make_shared<TokenVerifier>(JwksCache::fixed(signer_->keySet()), *clock_);
      o.tokens = signer_;
    }
    router_ = std::make_unique<ServiceRouter>(o, std::move(hooks), clock_,
                                              std::make_shared<GatewayMetrics>(clock_));
  }

  Decision route(const RequestHead& head, const Caller& caller) {
    std::optional<Decision> out;
    router_->route(head, caller, [&](Decision d) { out = std::move(d); });
    EXPECT_TRUE(out.has_value()) << "the decision was deferred";
    return out ? std::move(*out) : Decision{};
  }

  std::string header(const Exchange& e, const std::string& name) {
    for (const auto& h : e.setHeaders())
      if (h.name == name) return h.value;
    return "";
  }

  std::shared_ptr<FakeClock> clock_ = std::make_shared<FakeClock>();
  std::filesystem::path dir_;
  std::shared_ptr<LocalAccountSigner> signer_;
  std::unique_ptr<ServiceRouter> router_;
};

TEST_F(RouterTest, UnknownPathsGetA404NamingThePath) {
  makeRouter(false);
  router_->setRoutes({spec("hello", {"127.0.0.1:20000"})}, {});
  Decision d = route(get("/helloworld/x"), local());
  EXPECT_EQ(d.status, 404);
  EXPECT_NE(d.body.find("no route for /helloworld/x"), std::string::npos) << d.body;
  EXPECT_EQ(d.exchange, nullptr);
}

TEST_F(RouterTest, LocalInstancesComeFirstThenPeersOverTls) {
  makeRouter(false);
  router_->setRoutes({spec("hello", {"127.0.0.1:20000"}, {{kPeer, "198.18.0.2:8083"}})}, {});
  Decision d = route(get("/hello/x?y=1"), local());
  ASSERT_NE(d.exchange, nullptr);
  auto t = d.exchange->nextTarget(0);
  ASSERT_TRUE(t.has_value());
  EXPECT_EQ(t->address, "127.0.0.1:20000");
  EXPECT_TRUE(t->tls_node_id.empty());
  // The local instance refuses: the retry goes to the peer, bound to its node id.
  auto delay = d.exchange->tryDone(TryResult{TryEnd::kConnectFailed, 0, {}, "refused"}, true);
  ASSERT_TRUE(delay.has_value());
  auto t2 = d.exchange->nextTarget(1);
  ASSERT_TRUE(t2.has_value());
  EXPECT_EQ(t2->address, "198.18.0.2:8083");
  EXPECT_EQ(t2->tls_node_id, kPeer);
  EXPECT_EQ(header(*d.exchange, "X-Edge-Route"), "hello");
  d.exchange->tryDone(TryResult{TryEnd::kResponse, 200, {}, ""}, true);
  d.exchange->finish(FinishInfo{.status = 200, .tries = 2});
}

TEST_F(RouterTest, APeerGatewayIsServedByLocalInstancesOnly) {
  makeRouter(false);
  router_->setRoutes({spec("hello", {}, {{kPeer, "198.18.0.2:8083"}})}, {});
  Decision d = route(get("/hello/"), peer());
  ASSERT_NE(d.exchange, nullptr);
  EXPECT_FALSE(d.exchange->nextTarget(0).has_value());
  EXPECT_EQ(d.exchange->rejectStatus(), 503);
  EXPECT_NE(d.exchange->rejectReason().find("no ready instance on node"), std::string::npos);
}

TEST_F(RouterTest, PostIsNotRetriedAfterItMayHaveArrivedButGetIs) {
  makeRouter(false);
  router_->setRoutes({spec("hello", {"127.0.0.1:20000", "127.0.0.1:20001"})}, {});
  RequestHead post = get("/hello/");
  post.method = "POST";
  Decision p = route(post, local());
  ASSERT_TRUE(p.exchange->nextTarget(0).has_value());
  EXPECT_FALSE(p.exchange->tryDone(TryResult{TryEnd::kReset, 0, {}, "reset"}, true).has_value());
  Decision g = route(get("/hello/"), local());
  ASSERT_TRUE(g.exchange->nextTarget(0).has_value());
  EXPECT_TRUE(g.exchange->tryDone(TryResult{TryEnd::kReset, 0, {}, "reset"}, true).has_value());
  // A 404 is the service's answer, never retried.
  Decision n = route(get("/hello/"), local());
  ASSERT_TRUE(n.exchange->nextTarget(0).has_value());
  EXPECT_FALSE(n.exchange->tryDone(TryResult{TryEnd::kResponse, 404, {}, ""}, true).has_value());
}

TEST_F(RouterTest, NetworkCallersNeedAValidTokenAndTheRouteScopes) {
  makeRouter(true);
  RouteSpec s = spec("orders", {"127.0.0.1:20000"});
  s.required_scopes = {"orders:read"};
  router_->setRoutes({s, spec("open", {"127.0.0.1:20001"})}, {});

  Decision none = route(get("/orders/1"), network());
  EXPECT_EQ(none.status, 401) << none.body;
  ASSERT_FALSE(none.headers.empty());
  EXPECT_EQ(none.headers[0].name, "WWW-Authenticate");

  Decision garbage = route(get("/orders/1", {{"Authorization", "Bearer not.a.token"}}), network());
  EXPECT_EQ(garbage.status, 401) << garbage.body;

  auto weak = signer_->issue({"other:scope"});
  ASSERT_TRUE(weak.isOk());
  Decision lacking = route(get("/orders/1", {{"Authorization", "Bearer " + *weak}}), network());
  EXPECT_EQ(lacking.status, 403) << lacking.body;
  EXPECT_NE(lacking.body.find("orders:read"), std::string::npos) << lacking.body;

  auto good = signer_->issue({"orders:read"});
  ASSERT_TRUE(good.isOk());
  Decision ok = route(get("/orders/1", {{"Authorization", "Bearer " + *good}}), network());
  EXPECT_EQ(ok.status, 0) << ok.body;
  EXPECT_NE(ok.exchange, nullptr);
  // A caller's own token goes on as it is: nothing attached.
  EXPECT_EQ(header(*ok.exchange, "Authorization"), "");

  // An open route still wants a token of the account from the network...
  EXPECT_EQ(route(get("/open/"), network()).status, 401);
  // ...but a local app is the sidecar's workload: the node's token goes with the call.
  Decision app = route(get("/orders/1"), local());
  ASSERT_NE(app.exchange, nullptr);
  std::string attached = header(*app.exchange, "Authorization");
  ASSERT_EQ(attached.rfind("Bearer ", 0), 0u) << attached;
  auto check = TokenVerifier(JwksCache::fixed(signer_->keySet()), *clock_)
                   .checkBlocking(attached, Requirement{.issuer = signer_->issuer(),
                                                        .account = "acct1",
                                                        .scopes = {"orders:read"}});
  EXPECT_TRUE(check.ok()) << check.reason;
}

TEST_F(RouterTest, ScopedRoutesWithoutAnIssuerRefuseNetworkCallersClearly) {
  makeRouter(false);
  RouteSpec s = spec("orders", {"127.0.0.1:20000"});
  s.required_scopes = {"orders:read"};
  router_->setRoutes({s}, {});
  Decision d = route(get("/orders/"), network());
  EXPECT_EQ(d.status, 503);
  EXPECT_NE(d.body.find("no token issuer"), std::string::npos) << d.body;
}

TEST_F(RouterTest, AnOnDemandServiceIsStartedAndItsCallsWaitForIt) {
  std::vector<std::function<void(RouterHooks::Endpoints)>> pending;
  int started = 0, ended = 0;
  RouterHooks hooks;
  hooks.activate = [&](const std::string& service,
                       std::function<void(RouterHooks::Endpoints)> done) {
    EXPECT_EQ(service, "lazy");
    pending.push_back(std::move(done));
  };
  hooks.call_started = [&](const std::string&) { started++; };
  hooks.call_ended = [&](const std::string&) { ended++; };
  makeRouter(false, hooks);
  RouteSpec s = spec("lazy");
  s.on_demand = true;
  router_->setRoutes({s}, {"lazy"});

  std::vector<Decision> decisions;
  for (int i = 0; i < 3; ++i)
    router_->route(get("/lazy/"), local(), [&](Decision d) { decisions.push_back(std::move(d)); });
  EXPECT_TRUE(decisions.empty());  // waiting for the start
  ASSERT_EQ(pending.size(), 3u);
  for (auto& p : pending) p(std::vector<std::string>{"127.0.0.1:20005"});
  ASSERT_EQ(decisions.size(), 3u);
  for (auto& d : decisions) {
    ASSERT_NE(d.exchange, nullptr);
    auto t = d.exchange->nextTarget(0);
    ASSERT_TRUE(t.has_value());
    EXPECT_EQ(t->address, "127.0.0.1:20005");
  }
  EXPECT_EQ(started, 3);
  decisions.clear();  // the exchanges end
  EXPECT_EQ(ended, 3);
}

TEST_F(RouterTest, AFailedOnDemandStartIsA503WithTheReason) {
  RouterHooks hooks;
  hooks.activate = [](const std::string&, std::function<void(RouterHooks::Endpoints)> done) {
    done(Status::deadlineExceeded("not ready within 60 s: image missing"));
  };
  makeRouter(false, hooks);
  RouteSpec s = spec("lazy");
  s.on_demand = true;
  router_->setRoutes({s}, {"lazy"});
  Decision d = route(get("/lazy/"), local());
  EXPECT_EQ(d.status, 503);
  EXPECT_NE(d.body.find("image missing"), std::string::npos) << d.body;
}

TEST_F(RouterTest, ADirectPeerThatCannotBeReachedIsTriedThroughTheRelays) {
  RouterHooks hooks;
  std::vector<std::string> dialled;
  hooks.dial_relay = [&](const std::string& node) -> Result<int> {
    dialled.push_back(node);
    return Status::unavailable("test");
  };
  makeRouter(false, hooks);
  router_->setRoutes({spec("hello", {}, {{kPeer, "198.18.0.2:8083"}})}, {});
  Decision d = route(get("/hello/"), local());
  auto t = d.exchange->nextTarget(0);
  ASSERT_TRUE(t.has_value());
  EXPECT_FALSE(t->dial);
  ASSERT_TRUE(d.exchange->tryDone(TryResult{TryEnd::kConnectFailed, 0, {}, "no route"}, true));
  auto relayed = d.exchange->nextTarget(1);
  ASSERT_TRUE(relayed.has_value());
  ASSERT_TRUE(relayed->dial);
  EXPECT_EQ(relayed->tls_node_id, kPeer);  // end to end: TLS with the peer, not the relay
  EXPECT_FALSE(relayed->dial().isOk());
  EXPECT_EQ(dialled, std::vector<std::string>{kPeer});
}

}  // namespace
}  // namespace edge::gateway
