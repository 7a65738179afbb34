// Global discovery and registry over a real SQLite store, with a fake clock and a fake
// call-back (which nodes "answer" is a set the test controls).
#include "backend/discovery_service.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <set>

#include "backend/store.h"

namespace edge::backend {
namespace {

using nlohmann::json;

const std::string kA = "aaaaaaaaaaaaaaa1";
const std::string kB = "bbbbbbbbbbbbbbb2";
const std::string kC = "ccccccccccccccc3";

class NoAuth : public Authenticator {
 public:
  Result<Caller> authenticate(std::string_view, std::string_view) override {
    return Status::permissionDenied("not used");
  }
};

Caller nodeCaller(const std::string& id, const std::string& account) {
  Caller c;
  c.subject = "node:" + id;
  c.node_id = id;
  c.account = account;
  c.scopes = {"discovery:register", "discovery:read"};
  return c;
}

json member(const std::string& id, std::optional<GeoPoint> loc = std::nullopt) {
  json m = {{"node_id", id},
            {"name", "n-" + id.substr(0, 2)},
            {"endpoint", "198.18.0." + std::to_string(10 + (id[0] - 'a')) + ":8083"},
            {"services", json::array({"web"})},
            {"cpus", 2}};
  if (loc) m["location"] = {{"lat", loc->lat}, {"lon", loc->lon}};
  return m;
}

json with(json m, const char* key, json value) {
  m[key] = std::move(value);
  return m;
}

class DiscoveryServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("disc-test-" + std::to_string(::getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
    auto s = openStore("sqlite:" + (dir_ / "b.db").string());
    ASSERT_TRUE(s.isOk()) << s.status().toString();
    store_ = std::move(*s);
    DiscoveryService::Options o;
    o.call_back = [this](const std::string& endpoint, const std::string& node) {
      calls_.push_back(endpoint);
      return answering_.count(node) ? Status::ok()
                                    : Status::deadlineExceeded(endpoint + ": no answer");
    };
    svc_ = std::make_unique<DiscoveryService>(*store_, auth_, clock_, o);
  }
  void TearDown() override {
    svc_.reset();
    store_.reset();
    std::filesystem::remove_all(dir_);
  }

  json registerCluster(const std::string& supernode, const std::string& account,
                       const std::string& cluster_id, std::vector<json> members,
                       const std::string& from = "198.18.0.10") {
    json body = {{"cluster_id", cluster_id}, {"members", members}};
    auto r = svc_->registerCluster(nodeCaller(supernode, account), body, from);
    EXPECT_TRUE(r.isOk()) << r.status().toString();
    return r.isOk() ? *r : json();
  }
  std::vector<std::string> ids(const json& answer) {
    std::vector<std::string> out;
    for (const auto& n : answer["nodes"]) out.push_back(n["node_id"]);
    return out;
  }

  std::filesystem::path dir_;
  StorePtr store_;
  FakeClock clock_;
  NoAuth auth_;
  std::set<std::string> answering_;
  std::vector<std::string> calls_;
  std::unique_ptr<DiscoveryService> svc_;
};

TEST_F(DiscoveryServiceTest, AccountScopeSpansNetworksAndStopsAtTheAccount) {
  registerCluster(kA, "acme", "198.18.0.0/24", {member(kA)});
  registerCluster(kB, "acme", "198.18.1.0/24", {member(kB)}, "198.18.0.13");
  registerCluster(kC, "other", "198.18.2.0/24", {member(kC)});
  NodesQuery q;
  auto r = svc_->queryNodes(nodeCaller(kA, "acme"), q);
  ASSERT_TRUE(r.isOk()) << r.status().toString();
  EXPECT_EQ(ids(*r), (std::vector<std::string>{kA, kB}));
  q.network = "198.18.1.0/24";
  r = svc_->queryNodes(nodeCaller(kA, "acme"), q);
  ASSERT_TRUE(r.isOk());
  EXPECT_EQ(ids(*r), (std::vector<std::string>{kB}));
  // Another account's token cannot ask for acme.
  q = {};
  q.account = "acme";
  auto denied = svc_->queryNodes(nodeCaller(kC, "other"), q);
  EXPECT_EQ(denied.status().code(), StatusCode::kPermissionDenied);
}

TEST_F(DiscoveryServiceTest, ProximityByRadiusAndBoxNearestFirst) {
  GeoPoint paris{48.8566, 2.3522}, lyon{45.764, 4.8357}, berlin{52.52, 13.405};
  registerCluster(kA, "acme", "198.18.0.0/24",
                  {member(kA, paris), member(kB, lyon), member(kC, berlin)});
  NodesQuery q;
  q.scope = "proximity";
  q.near = GeoPoint{46.0, 4.0};
  q.radius_km = 500;
  auto r = svc_->queryNodes(nodeCaller(kA, "acme"), q);
  ASSERT_TRUE(r.isOk()) << r.status().toString();
  EXPECT_EQ(ids(*r), (std::vector<std::string>{kB, kA}));
  EXPECT_GT((*r)["nodes"][1]["distance_km"].get<double>(), 250);
  q.near.reset();
  q.radius_km = 0;
  q.box = std::make_pair(GeoPoint{50, 10}, GeoPoint{55, 15});
  r = svc_->queryNodes(nodeCaller(kA, "acme"), q);
  ASSERT_TRUE(r.isOk());
  EXPECT_EQ(ids(*r), (std::vector<std::string>{kC}));
  // Neither a radius nor a box: a clear error.
  q.box.reset();
  auto bad = svc_->queryNodes(nodeCaller(kA, "acme"), q);
  EXPECT_EQ(bad.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(bad.status().message().find("near="), std::string::npos);
}

TEST_F(DiscoveryServiceTest, RecordsExpireWithoutHeartbeatsAndHeartbeatsKeepThem) {
  json reg = registerCluster(kA, "acme", "198.18.0.0/24", {member(kA), member(kB)});
  std::string key = reg["cluster_key"];
  clock_.advance(std::chrono::seconds(60));
  auto hb = svc_->heartbeat(nodeCaller(kA, "acme"), key, reg["digest"]);
  ASSERT_TRUE(hb.isOk()) << hb.status().toString();
  clock_.advance(std::chrono::seconds(60));  // 120 s after registering, 60 after the beat
  auto r = svc_->queryNodes(nodeCaller(kA, "acme"), NodesQuery{});
  ASSERT_TRUE(r.isOk());
  EXPECT_EQ((*r)["count"], 2);
  clock_.advance(std::chrono::seconds(60));
  r = svc_->queryNodes(nodeCaller(kA, "acme"), NodesQuery{});
  ASSERT_TRUE(r.isOk());
  EXPECT_EQ((*r)["count"], 0) << "expired records must not be returned";
  auto removed = svc_->expire();
  ASSERT_TRUE(removed.isOk());
  EXPECT_EQ(*removed, 3u);  // the cluster and its two nodes
  auto gone = svc_->heartbeat(nodeCaller(kA, "acme"), key, reg["digest"]);
  EXPECT_EQ(gone.status().code(), StatusCode::kNotFound);
}

TEST_F(DiscoveryServiceTest, AStaleDigestOrAnotherSupernodeAsksForAFullRegistration) {
  json reg = registerCluster(kA, "acme", "198.18.0.0/24", {member(kA), member(kB)});
  auto stale = svc_->heartbeat(nodeCaller(kA, "acme"), reg["cluster_key"], "0000");
  EXPECT_EQ(stale.status().code(), StatusCode::kFailedPrecondition);
  // After a failover kB registers the same cluster: kA's heartbeats are refused.
  registerCluster(kB, "acme", "198.18.0.0/24", {member(kB)});
  auto other = svc_->heartbeat(nodeCaller(kA, "acme"), reg["cluster_key"], reg["digest"]);
  EXPECT_EQ(other.status().code(), StatusCode::kFailedPrecondition);
  // ...and kA, which left, is no longer listed.
  auto r = svc_->queryNodes(nodeCaller(kB, "acme"), NodesQuery{});
  ASSERT_TRUE(r.isOk());
  EXPECT_EQ(ids(*r), (std::vector<std::string>{kB}));
}

TEST_F(DiscoveryServiceTest, ReachabilityIsProvenByTheCallBack) {
  registerCluster(kA, "acme", "198.18.0.0/24", {member(kA), member(kB)});
  answering_ = {kA};
  auto a = svc_->checkReachability(nodeCaller(kA, "acme"), {{"endpoint", "198.18.0.10:8083"}},
                                   "198.18.0.10");
  ASSERT_TRUE(a.isOk()) << a.status().toString();
  EXPECT_TRUE((*a)["reachable"].get<bool>());
  EXPECT_EQ((*a)["path"], "direct");
  auto b = svc_->checkReachability(nodeCaller(kB, "acme"), {{"endpoint", "198.18.1.12:8083"}},
                                   "198.18.0.13");
  ASSERT_TRUE(b.isOk());
  EXPECT_FALSE((*b)["reachable"].get<bool>());
  EXPECT_EQ((*b)["path"], "sep");
  EXPECT_EQ((*b)["observed_address"], "198.18.0.13");
  auto node = svc_->getNode(nodeCaller(kA, "acme"), kB);
  ASSERT_TRUE(node.isOk());
  EXPECT_EQ((*node)["path"], "sep");
  EXPECT_EQ(calls_, (std::vector<std::string>{"198.18.0.10:8083", "198.18.1.12:8083"}));
  auto bad = svc_->checkReachability(nodeCaller(kA, "acme"), {{"endpoint", "198.18.0.1"}}, "");
  EXPECT_EQ(bad.status().code(), StatusCode::kInvalidArgument);
}

TEST_F(DiscoveryServiceTest, MalformedRegistrationsNameTheFieldAndWriteNothing) {
  struct Case {
    json body;
    std::string field;
  } cases[] = {
      {{{"members", json::array({member(kA)})}}, "body.cluster_id"},
      {{{"cluster_id", "x"}}, "body.members"},
      {{{"cluster_id", "x"}, {"members", json::array({{{"node_id", "XYZ"}}})}},
       "body.members[0].node_id"},
      {{{"cluster_id", "x"}, {"members", json::array({member(kB)})}}, "supernode"},
      {{{"cluster_id", "x"}, {"members", json::array({member(kA), member(kA)})}}, "twice"},
      {{{"cluster_id", "x"},
        {"members", json::array({with(member(kA), "location", {{"lat", 91}, {"lon", 0}})})}},
       "location.lat"},
      {{{"cluster_id", "x"}, {"members", json::array({with(member(kA), "endpoint", "nowhere")})}},
       "endpoint"},
  };
  for (const auto& c : cases) {
    auto r = svc_->registerCluster(nodeCaller(kA, "acme"), c.body, "198.18.0.10");
    ASSERT_FALSE(r.isOk()) << c.body.dump();
    EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
    EXPECT_NE(r.status().message().find(c.field), std::string::npos) << r.status().message();
  }
  auto rev = store_->revision();
  ASSERT_TRUE(rev.isOk());
  EXPECT_EQ(*rev, 0) << "a refused registration must write nothing";
  Caller user;
  user.subject = "user:acme/bob";
  user.account = "acme";
  auto notNode = svc_->registerCluster(user, {{"cluster_id", "x"}, {"members", json::array()}}, "");
  EXPECT_EQ(notNode.status().code(), StatusCode::kPermissionDenied);
}

TEST_F(DiscoveryServiceTest, SamePrivatePrefixBehindTwoNatsIsTwoClusters) {
  json one = registerCluster(kA, "acme", "198.19.1.0/24", {member(kA)}, "198.18.0.20");
  json two = registerCluster(kB, "acme", "198.19.1.0/24", {member(kB)}, "198.18.0.21");
  EXPECT_NE(one["cluster_key"], two["cluster_key"]);
  auto r = svc_->queryNodes(nodeCaller(kA, "acme"), NodesQuery{});
  ASSERT_TRUE(r.isOk());
  EXPECT_EQ((*r)["count"], 2);
}

TEST_F(DiscoveryServiceTest, RegistryListsInstancesNearestFirst) {
  ASSERT_TRUE(
      store_
          ->put("registry/instances/paris", json{{"id", "paris"},
                                                 {"relay_address", "198.18.0.1:8085"},
                                                 {"location", {{"lat", 48.85}, {"lon", 2.35}}},
                                                 {"updated_at", 1'800'000'000}}
                                                .dump())
          .isOk());
  ASSERT_TRUE(
      store_
          ->put("registry/instances/berlin", json{{"id", "berlin"},
                                                  {"relay_address", "198.18.0.2:8085"},
                                                  {"location", {{"lat", 52.52}, {"lon", 13.4}}},
                                                  {"updated_at", 1'800'000'000}}
                                                 .dump())
          .isOk());
  auto r = svc_->listInstances(GeoPoint{51, 12});
  ASSERT_TRUE(r.isOk());
  EXPECT_EQ((*r)["instances"][0]["id"], "berlin");
  EXPECT_TRUE((*r)["instances"][0]["live"].get<bool>());
  auto svc = svc_->putService(nodeCaller(kA, "acme"), "billing",
                              {{"clusters", {"eu-west"}}, {"endpoint", "http://198.18.0.5"}});
  ASSERT_TRUE(svc.isOk()) << svc.status().toString();
  auto bad = svc_->putService(nodeCaller(kA, "acme"), "bad name!", json::object());
  EXPECT_EQ(bad.status().code(), StatusCode::kInvalidArgument);
  auto list = svc_->listServices(nodeCaller(kA, "acme"));
  ASSERT_TRUE(list.isOk());
  EXPECT_EQ((*list)["services"].size(), 1u);
}

TEST(GeoTest, DistancesAndParsing) {
  EXPECT_NEAR(distanceKm({48.8566, 2.3522}, {51.5074, -0.1278}), 343.5, 2.0);
  EXPECT_NEAR(distanceKm({0, 0}, {0, 180}), 20015, 5);
  EXPECT_TRUE(parseGeoPointText("48.85,2.35", "near").isOk());
  EXPECT_FALSE(parseGeoPointText("48.85", "near").isOk());
  EXPECT_FALSE(parseGeoPointText("48.85,abc", "near").isOk());
  auto far = parseGeoPointText("91,0", "near");
  ASSERT_FALSE(far.isOk());
  EXPECT_NE(far.status().message().find("-90, 90"), std::string::npos);
}

}  // namespace
}  // namespace edge::backend
