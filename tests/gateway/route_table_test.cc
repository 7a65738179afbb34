#include "gateway/route_table.h"

#include <gtest/gtest.h>

#include <atomic>
#include <thread>
#include <vector>

namespace edge::gateway {
namespace {

constexpr char kNodeA[] = "0123456789abcdef";
constexpr char kNodeB[] = "fedcba9876543210";

PeerInstance peer(std::string id, std::string endpoint) {
  PeerInstance p;
  p.node_id = std::move(id);
  p.endpoint = std::move(endpoint);
  return p;
}

RouteSpec spec(std::string service, std::string base_path,
               std::vector<std::string> locals = {"127.0.0.1:20001"}) {
  RouteSpec s;
  s.service = std::move(service);
  s.base_path = std::move(base_path);
  s.local_instances = std::move(locals);
  return s;
}

class RouteTableTest : public ::testing::Test {
 protected:
  std::shared_ptr<FakeClock> clock_ = std::make_shared<FakeClock>();
  UpstreamRegistry registry_{clock_, nullptr};

  RouteTableSnapshot build(const std::vector<RouteSpec>& specs,
                           std::vector<std::string>* warnings = nullptr) {
    auto built = RouteTable::build(specs, registry_);
    if (warnings != nullptr) *warnings = built.warnings;
    return built.table;
  }
  static std::string matched(const RouteTable& t, std::string_view path) {
    const RouteEntry* r = t.match(path);
    return r == nullptr ? "<none>" : r->spec.service;
  }
};

TEST_F(RouteTableTest, MatchesOnSegmentBoundariesOnly) {
  auto t = build({spec("hello", "/hello")});
  EXPECT_EQ(matched(*t, "/hello"), "hello");
  EXPECT_EQ(matched(*t, "/hello/"), "hello");
  EXPECT_EQ(matched(*t, "/hello/x/y"), "hello");
  EXPECT_EQ(matched(*t, "/hello?name=a/b"), "hello");
  EXPECT_EQ(matched(*t, "/hello#frag"), "hello");
  EXPECT_EQ(matched(*t, "/helloworld"), "<none>");
  EXPECT_EQ(matched(*t, "/hell"), "<none>");
  EXPECT_EQ(matched(*t, "/"), "<none>");
  EXPECT_EQ(matched(*t, ""), "<none>");
  EXPECT_EQ(matched(*t, "hello"), "<none>");
  EXPECT_EQ(matched(*t, "http://x/hello"), "<none>");
}

TEST_F(RouteTableTest, LongestPrefixWinsAndRootCatchesTheRest) {
  auto t = build({spec("root", "/"), spec("a", "/a"), spec("ab", "/a/b"), spec("deep", "/x/y/z")});
  EXPECT_EQ(matched(*t, "/a"), "a");
  EXPECT_EQ(matched(*t, "/a/c"), "a");
  EXPECT_EQ(matched(*t, "/a/b"), "ab");
  EXPECT_EQ(matched(*t, "/a/b/c/d"), "ab");
  EXPECT_EQ(matched(*t, "/a/bc"), "a");
  EXPECT_EQ(matched(*t, "/x/y"), "root");
  EXPECT_EQ(matched(*t, "/x/y/z/1"), "deep");
  EXPECT_EQ(matched(*t, "/"), "root");
  EXPECT_EQ(matched(*t, "/anything/else"), "root");
  EXPECT_EQ(matched(*t, "/?q"), "root");
  std::string long_path(10000, 'a');
  EXPECT_EQ(matched(*t, "/" + long_path + "/b"), "root");
  ASSERT_EQ(t->routes().size(), 4u);
  EXPECT_EQ(t->routes()[0].spec.base_path, "/");  // sorted by base path
  EXPECT_EQ(t->routes()[3].spec.base_path, "/x/y/z");
}

TEST_F(RouteTableTest, BasePathConflictGoesToTheLowestNameWhateverTheOrder) {
  for (bool reversed : {false, true}) {
    std::vector<RouteSpec> specs = {spec("zeta", "/api"), spec("alpha", "/api")};
    if (reversed) std::swap(specs[0], specs[1]);
    std::vector<std::string> warnings;
    auto t = build(specs, &warnings);
    EXPECT_EQ(matched(*t, "/api/x"), "alpha");
    EXPECT_EQ(t->routes().size(), 1u);
    ASSERT_EQ(warnings.size(), 1u);
    EXPECT_NE(warnings[0].find("/api"), std::string::npos) << warnings[0];
    EXPECT_NE(warnings[0].find("alpha"), std::string::npos) << warnings[0];
    EXPECT_NE(warnings[0].find("zeta gets no route"), std::string::npos) << warnings[0];
  }
}

TEST_F(RouteTableTest, ServiceListedTwiceKeepsItsFirstSpec) {
  std::vector<std::string> warnings;
  auto t = build({spec("hello", "/hello"), spec("hello", "/hi")}, &warnings);
  EXPECT_EQ(matched(*t, "/hello"), "hello");
  EXPECT_EQ(matched(*t, "/hi"), "<none>");
  ASSERT_EQ(warnings.size(), 1u);
  EXPECT_NE(warnings[0].find("listed twice"), std::string::npos);
}

TEST_F(RouteTableTest, InvalidSpecsAreLeftOutWithAReason) {
  struct Case {
    RouteSpec spec;
    std::string expect;  // in the message
  };
  auto with = [](auto change) {
    RouteSpec s = spec("svc", "/svc");
    change(s);
    return s;
  };
  std::vector<Case> cases = {
      {with([](RouteSpec& s) { s.service = ""; }), "service name"},
      {with([](RouteSpec& s) { s.service = "a\"b"; }), "service name"},
      {with([](RouteSpec& s) { s.base_path = "svc"; }), "does not start with '/'"},
      {with([](RouteSpec& s) { s.base_path = "/svc/"; }), "ends with '/'"},
      {with([](RouteSpec& s) { s.base_path = "/a//b"; }), "empty segment"},
      {with([](RouteSpec& s) { s.base_path = "/a/../b"; }), "'..'"},
      {with([](RouteSpec& s) { s.base_path = "/a?b"; }), "'?'"},
      {with([](RouteSpec& s) { s.base_path = "/a b"; }), "space"},
      {with([](RouteSpec& s) { s.local_instances = {"127.0.0.1"}; }), "local instance"},
      {with([](RouteSpec& s) { s.local_instances = {"127.0.0.1:0"}; }), "port 1..65535"},
      {with([](RouteSpec& s) { s.local_instances = {"127.0.0.1:65536"}; }), "port 1..65535"},
      {with([](RouteSpec& s) { s.local_instances = {"[::1:80"}; }), "not host:port"},
      {with([](RouteSpec& s) { s.peers = {peer("nothex", "198.18.0.2:8083")}; }), "not a node id"},
      {with([](RouteSpec& s) { s.peers = {peer(kNodeA, "")}; }), "has no endpoint"},
      {with([](RouteSpec& s) {
         s.peers = {{kNodeA, "198.18.0.2:8083", PeerInstance::Via::kProxy, ""}};
       }),
       "proxy_node_id"},
      {with([](RouteSpec& s) { s.global_upstream = "central:443"; }), "on a local route"},
      {with([](RouteSpec& s) {
         s.scope = RouteScope::kGlobal;
         s.global_upstream = "central";
       }),
       "global_upstream"},
      {with([](RouteSpec& s) { s.retry.attempts = 11; }), "retry.attempts"},
      {with([](RouteSpec& s) { s.retry.per_try_timeout = Millis(0); }), "per_try_timeout"},
  };
  for (const auto& c : cases) {
    Status s = validateRouteSpec(c.spec);
    EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << c.expect;
    EXPECT_NE(s.message().find(c.expect), std::string::npos) << s.message();
    std::vector<std::string> warnings;
    auto t = build({c.spec, spec("ok", "/ok")}, &warnings);
    EXPECT_EQ(t->routes().size(), 1u) << c.expect;
    ASSERT_EQ(warnings.size(), 1u) << c.expect;
    EXPECT_NE(warnings[0].find("route left out"), std::string::npos) << warnings[0];
  }
  // What is allowed.
  RouteSpec good = spec("svc.v2_x", "/", {"[::1]:8080", "localhost:1", "198.18.2.3:65535"});
  good.scope = RouteScope::kGlobal;
  good.global_upstream = "central.example:443";
  good.peers = {{kNodeA, "", PeerInstance::Via::kRelay, ""},
                {kNodeB, "198.18.0.2:8083", PeerInstance::Via::kProxy, kNodeA}};
  EXPECT_TRUE(validateRouteSpec(good).isOk()) << validateRouteSpec(good).toString();
}

TEST_F(RouteTableTest, EndpointsAreOrderedByTierAndDeduplicated) {
  RouteSpec s = spec("svc", "/svc", {"127.0.0.1:1", "127.0.0.1:2", "127.0.0.1:1"});
  s.scope = RouteScope::kGlobal;
  s.peers = {peer(kNodeA, "198.18.0.2:8083"), peer(kNodeA, "198.18.0.2:8083"),
             peer(kNodeB, "198.18.0.3:8083")};
  s.global_upstream = "198.18.1.1:443";
  auto t = build({s});
  const RouteEntry& r = t->routes()[0];
  EXPECT_EQ(r.local_count, 2u);
  EXPECT_EQ(r.peer_count, 2u);
  ASSERT_EQ(r.endpoints.size(), 5u);
  EXPECT_EQ(r.endpoints[0].tier, Tier::kLocal);
  EXPECT_EQ(r.endpoints[2].tier, Tier::kPeer);
  EXPECT_EQ(r.endpoints[2].peer.node_id, kNodeA);
  EXPECT_EQ(r.endpoints[2].address, "198.18.0.2:8083");
  EXPECT_EQ(r.endpoints[2].upstream->label(), std::string("peer:") + kNodeA + "@198.18.0.2:8083");
  EXPECT_EQ(r.endpoints[4].tier, Tier::kGlobal);
  EXPECT_EQ(r.endpoints[4].upstream->key(), "svc|global|198.18.1.1:443");
}

TEST_F(RouteTableTest, RouteWithoutInstancesIsKeptAndWarned) {
  std::vector<std::string> warnings;
  auto t = build({spec("empty", "/empty", {})}, &warnings);
  EXPECT_EQ(matched(*t, "/empty"), "empty");
  ASSERT_EQ(warnings.size(), 1u);
  EXPECT_NE(warnings[0].find("503"), std::string::npos);
  RouteSpec od = spec("lazy", "/lazy", {});
  od.on_demand = true;  // started on the first request: no instance yet is normal
  build({od}, &warnings);
  EXPECT_TRUE(warnings.empty());
}

TEST_F(RouteTableTest, UpstreamStateSurvivesTableUpdates) {
  RouteTableHolder holder;
  holder.update(build({spec("svc", "/svc", {"127.0.0.1:1", "127.0.0.1:2"})}));
  auto first = holder.current();
  Upstream* u1 = first->routes()[0].endpoints[0].upstream.get();
  for (int i = 0; i < 5; ++i) u1->outlier().recordFailure(clock_->now());
  u1->outlier().eject(clock_->now());
  RouteState* state = first->routes()[0].state.get();

  // The base path and the other instance change; 127.0.0.1:1 keeps its ejection.
  holder.update(build({spec("svc", "/v2/svc", {"127.0.0.1:1", "127.0.0.1:3"})}));
  auto second = holder.current();
  EXPECT_EQ(second->routes()[0].endpoints[0].upstream.get(), u1);
  EXPECT_TRUE(second->routes()[0].endpoints[0].upstream->outlier().isEjected(clock_->now()));
  EXPECT_EQ(second->routes()[0].state.get(), state);
  // The old snapshot still works for requests that took it.
  EXPECT_EQ(matched(*first, "/svc/x"), "svc");
  EXPECT_EQ(matched(*second, "/svc/x"), "<none>");
  EXPECT_EQ(registry_.upstreamCount(), 3u);
  first.reset();
  EXPECT_EQ(registry_.upstreamCount(), 2u);  // 127.0.0.1:2 is gone with the last snapshot
}

TEST_F(RouteTableTest, HolderStartsEmptyAndSwapsUnderConcurrentReaders) {
  RouteTableHolder holder;
  EXPECT_EQ(holder.current()->match("/anything"), nullptr);
  auto a = build({spec("a", "/svc")});
  auto b = build({spec("b", "/svc")});
  std::atomic<bool> stop{false};
  std::atomic<uint64_t> seen_a{0}, seen_b{0}, bad{0};
  std::vector<std::thread> readers;
  for (int i = 0; i < 4; ++i) {
    readers.emplace_back([&] {
      while (!stop.load()) {
        auto t = holder.current();
        const RouteEntry* r = t->match("/svc/x");
        if (r == nullptr) continue;  // the initial empty table
        if (r->spec.service == "a") {
          ++seen_a;
        } else if (r->spec.service == "b") {
          ++seen_b;
        } else {
          ++bad;
        }
      }
    });
  }
  for (int i = 0; i < 2000; ++i) holder.update(i % 2 == 0 ? a : b);
  while (seen_a.load() + seen_b.load() < 1000) std::this_thread::yield();
  stop = true;
  for (auto& t : readers) t.join();
  EXPECT_EQ(bad.load(), 0u);
  EXPECT_GT(seen_a.load() + seen_b.load(), 0u);
}

}  // namespace
}  // namespace edge::gateway
