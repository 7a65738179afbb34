// The node's REST API (edged/api/rest_api.cc) served on 127.0.0.1:0 over a fake
// NodeApi: what a client sees for each kind of answer the node gives, with no store,
// reconciler, runtime daemon or network behind.
#include "edged/api/rest_api.h"

#include <gtest/gtest.h>

#include <chrono>
#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "common/clock.h"
#include "common/http.h"
#include "common/http_server.h"
#include "edged/node_api.h"
#include "tests/orchestrator/fake_runtime.h"

namespace edge::edged {
namespace {

using nlohmann::json;

class FakeNodeApi final : public NodeApi {
 public:
  FakeNodeApi() : runtime_(clock_), events_(clock_) {}

  // What the test arranges.
  std::map<std::string, std::vector<orchestrator::ServiceRecord>> histories;  // newest first
  std::map<std::string, orchestrator::ServiceStatus> statuses;
  std::vector<orchestrator::InstanceStatus> running;
  Result<ApplyResult> next_apply = ApplyResult{};
  Status next_change = Status::ok();  // remove, restart and rollback answer this when set
  bool backend = false;
  // What the node was asked.
  std::string applied_text;
  std::string applied_dir;
  bool applied_dry = false;
  std::string peer_called;
  http::Request peer_request;
  // Counted by the server's logger after each reply is sent, so tests wait for them.
  std::mutex count_mu;
  std::condition_variable counted;
  int requests = 0;
  int request_errors = 0;
  bool waitForRequests(int n) {
    std::unique_lock lock(count_mu);
    return counted.wait_for(lock, std::chrono::seconds(10), [&] { return requests >= n; });
  }

  static orchestrator::ServiceRecord record(const std::string& name, int64_t generation,
                                            int replicas) {
    orchestrator::ServiceRecord r;
    r.name = name;
    r.generation = generation;
    r.manifest_json = json{{"name", name}, {"replicas", replicas}}.dump();
    r.manifest.name = name;
    r.manifest.replicas = replicas;
    return r;
  }

  const std::string& name() const override { return name_; }
  const std::string& id() const override { return id_; }
  WallTime startedAt() const override { return WallTime{}; }
  Clock& clock() override { return clock_; }
  const std::string& dataDir() const override { return data_dir_; }
  const std::string& apiSocket() const override { return socket_; }

  Result<ApplyResult> apply(std::string_view text, const std::string& dir, bool dry) override {
    applied_text = std::string(text);
    applied_dir = dir;
    applied_dry = dry;
    return next_apply;
  }
  Result<int64_t> remove(const std::string& name, bool) override {
    RETURN_IF_ERROR(next_change);
    ASSIGN_OR_RETURN(orchestrator::ServiceRecord r, service(name));
    return r.generation + 1;
  }
  Result<orchestrator::ServiceRecord> rollback(const std::string& name,
                                               std::optional<int64_t> to) override {
    RETURN_IF_ERROR(next_change);
    auto& h = histories[name];
    orchestrator::ServiceRecord back = h.at(to ? h.size() - static_cast<size_t>(*to) : 1);
    back.generation = h.front().generation + 1;
    h.insert(h.begin(), back);
    return back;
  }
  Result<int> restart(const std::string& name) override {
    RETURN_IF_ERROR(next_change);
    ASSIGN_OR_RETURN(orchestrator::ServiceRecord r, service(name));
    return r.manifest.replicas;
  }
  Result<std::vector<orchestrator::ServiceRecord>> services() override {
    std::vector<orchestrator::ServiceRecord> out;
    for (const auto& [_, h] : histories) out.push_back(h.front());
    return out;
  }
  Result<orchestrator::ServiceRecord> service(const std::string& name) override {
    auto it = histories.find(name);
    if (it == histories.end()) return Status::notFound("no service named " + name);
    return it->second.front();
  }
  Result<std::vector<orchestrator::ServiceRecord>> history(const std::string& name) override {
    auto it = histories.find(name);
    if (it == histories.end()) return Status::notFound("no service named " + name);
    return it->second;
  }
  int64_t storeRevision() override { return 7; }
  std::optional<orchestrator::ServiceStatus> serviceStatus(const std::string& name) override {
    auto it = statuses.find(name);
    if (it == statuses.end()) return std::nullopt;
    return it->second;
  }
  std::vector<orchestrator::InstanceStatus> instances() override { return running; }
  void wakeReconciler() override {}
  runtime::ContainerRuntime& runtime() override { return runtime_; }
  orchestrator::EventLog& events() override { return events_; }
  discovery::ClusterSnapshot clusterSnapshot() const override {
    return {.node_id = id_, .node_name = name_};
  }
  json gatewayRoutes() override { return json::array({{{"service", "web"}}}); }
  bool backendConfigured() override { return backend; }
  json backendState() override { return {{"configured", backend}}; }
  Result<json> queryNodes(const std::string& query) override {
    if (!backend) return Status::failedPrecondition("this node has no backend: " + query);
    return json{{"query", query}};
  }
  Result<json> peerRoute(const std::string& node_id) override {
    return json{{"node", node_id}, {"path", "direct"}};
  }
  Result<http::Response> callPeer(const std::string& node_id, const http::Request& r) override {
    peer_called = node_id;
    peer_request = r;
    http::Response out;
    out.status = 202;
    out.body = "from the peer";
    return out;
  }
  std::string metricsText() override { return "edged_services 1\n"; }
  void countRequest(bool error) override {
    std::lock_guard lock(count_mu);
    ++requests;
    if (error) ++request_errors;
    counted.notify_all();
  }

  FakeClock clock_;
  testing::FakeRuntime runtime_;
  orchestrator::EventLog events_;

 private:
  std::string name_ = "n1";
  std::string id_ = "0123456789abcdef";
  std::string data_dir_ = "/nonexistent/data";
  std::string socket_ = "/nonexistent/edged.sock";
};

class RestApiTest : public ::testing::Test {
 protected:
  void SetUp() override {
    server_ =
        std::make_unique<http::ApiServer>(http::ApiServer::Options{.tcp_address = "127.0.0.1:0"});
    registerRestApi(*server_, node_);
    ASSERT_TRUE(server_->start().isOk());
    client_ = std::make_unique<http::Client>(
        *http::Endpoint::parse("tcp://127.0.0.1:" + std::to_string(server_->boundTcpPort())));
  }
  void TearDown() override { server_->stop(); }

  http::Response send(http::Request r) {
    Result<http::Response> out = client_->send(std::move(r));
    EXPECT_TRUE(out.isOk()) << out.status().toString();
    return out.isOk() ? *out : http::Response{};
  }
  json sendJson(http::Request r, int want_status) {
    http::Response out = send(std::move(r));
    EXPECT_EQ(out.status, want_status) << out.body;
    json j = json::parse(out.body, nullptr, false);
    EXPECT_FALSE(j.is_discarded()) << out.body;
    return j;
  }

  FakeNodeApi node_;
  std::unique_ptr<http::ApiServer> server_;
  std::unique_ptr<http::Client> client_;
};

TEST_F(RestApiTest, ServicesShowTheReconcilersViewOrPending) {
  node_.histories["web"] = {FakeNodeApi::record("web", 3, 2)};
  node_.histories["db"] = {FakeNodeApi::record("db", 1, 1)};
  node_.statuses["web"] = {.name = "web",
                           .generation = 3,
                           .state = "running",
                           .desired = 2,
                           .ready = 2,
                           .running = 2,
                           .updated = 2};
  node_.running.push_back({.id = "c1",
                           .name = "web-1",
                           .service = "web",
                           .replica = 1,
                           .generation = 3,
                           .state = runtime::ContainerState::kRunning});

  json list = sendJson({.path = "/api/v1/services"}, 200);
  ASSERT_EQ(list["services"].size(), 2u);
  json db = list["services"][0], web = list["services"][1];
  EXPECT_EQ(web["state"], "running");
  EXPECT_EQ(web["replicas"]["ready"], 2);
  EXPECT_EQ(web["instances"].size(), 1u);
  EXPECT_EQ(web["instances"][0]["name"], "web-1");
  EXPECT_EQ(web["manifest"]["replicas"], 2);
  EXPECT_EQ(db["state"], "pending");
  EXPECT_EQ(db["replicas"]["desired"], 1);

  json one = sendJson({.path = "/api/v1/services/web"}, 200);
  EXPECT_EQ(one["generation"], 3);
  json missing = sendJson({.path = "/api/v1/services/nope"}, 404);
  EXPECT_EQ(missing["message"], "no service named nope");
}

TEST_F(RestApiTest, ApplyPassesTheManifestOnAndReportsFieldErrorsAs400) {
  ApplyResult ok;
  ok.outcomes.push_back(
      {.name = "web", .generation = 4, .action = orchestrator::ApplyOutcome::Action::kUpdated});
  ok.warnings.push_back("port 80 is shared");
  node_.next_apply = ok;
  json j = sendJson({.method = "POST",
                     .path = "/api/v1/services?dryRun=1",
                     .headers = {{"X-Edge-Manifest-Dir", "/home/u"}},
                     .body = "name: web\n",
                     .content_type = "application/yaml"},
                    200);
  EXPECT_EQ(node_.applied_text, "name: web\n");
  EXPECT_EQ(node_.applied_dir, "/home/u");
  EXPECT_TRUE(node_.applied_dry);
  EXPECT_EQ(j["dryRun"], true);
  EXPECT_EQ(j["services"][0]["action"], "updated");
  EXPECT_EQ(j["warnings"][0], "port 80 is shared");

  ApplyResult bad;
  bad.errors.push_back({.doc = 1, .path = "spec.replicas", .message = "expected an integer"});
  node_.next_apply = bad;
  j = sendJson({.method = "POST", .path = "/api/v1/services", .body = "x"}, 400);
  EXPECT_EQ(j["message"], "1 problem(s) in the manifests; nothing was applied");
  EXPECT_EQ(j["errors"][0]["path"], "spec.replicas");
}

TEST_F(RestApiTest, StatusCodesFollowTheNodeApiTable) {
  node_.histories["web"] = {FakeNodeApi::record("web", 2, 3), FakeNodeApi::record("web", 1, 1)};
  EXPECT_EQ(sendJson({.method = "POST", .path = "/api/v1/services/web/restart"}, 202)["restarting"],
            3);
  node_.next_change = Status::failedPrecondition("nothing to roll back to");
  EXPECT_EQ(sendJson({.method = "POST", .path = "/api/v1/services/web/rollback"}, 409)["message"],
            "nothing to roll back to");
  node_.next_change = Status::resourceExhausted("manifest over the size limit");
  sendJson({.method = "DELETE", .path = "/api/v1/services/web"}, 413);
  node_.next_change = Status::unavailable("runtime down");
  sendJson({.method = "POST", .path = "/api/v1/services/web/restart"}, 503);
  node_.next_change = Status::ok();
  json bad_to = sendJson({.method = "POST", .path = "/api/v1/services/web/rollback?to=x"}, 400);
  EXPECT_EQ(bad_to["message"], "to: expected a generation number (1, 2, ...), got \"x\"");
  json back = sendJson({.method = "POST", .path = "/api/v1/services/web/rollback"}, 200);
  EXPECT_EQ(back["from"], 2);
  EXPECT_EQ(back["generation"], 3);
  EXPECT_EQ(back["to"], 1);
}

TEST_F(RestApiTest, PeersTakeOnlyNodeIdsAndTheProxyPassesPathAndQuery) {
  EXPECT_EQ(sendJson({.path = "/api/v1/peers/0123456789abcdef"}, 200)["path"], "direct");
  http::Response not_id = send({.path = "/api/v1/peers/NOT-A-NODE-ID"});
  EXPECT_EQ(not_id.status, 404);
  EXPECT_NE(not_id.body.find("no such endpoint"), std::string::npos) << not_id.body;

  http::Response r = send({.method = "POST",
                           .path = "/api/v1/peers/fedcba9876543210/proxy/api/v1/node?a=1",
                           .body = "{}",
                           .content_type = "application/json"});
  EXPECT_EQ(r.status, 202);
  EXPECT_EQ(r.body, "from the peer");
  EXPECT_EQ(node_.peer_called, "fedcba9876543210");
  EXPECT_EQ(node_.peer_request.method, "POST");
  EXPECT_EQ(node_.peer_request.path, "/api/v1/node?a=1");
  EXPECT_EQ(node_.peer_request.body, "{}");
  send({.path = "/api/v1/peers/fedcba9876543210/proxy"});
  EXPECT_EQ(node_.peer_request.path, "/");
}

TEST_F(RestApiTest, BackendQueriesSayWhenThereIsNoBackend) {
  json j = sendJson({.path = "/api/v1/nodes?scope=proximity"}, 409);
  EXPECT_EQ(j["message"], "this node has no backend: scope=proximity");
  node_.backend = true;
  EXPECT_EQ(sendJson({.path = "/api/v1/nodes?scope=account"}, 200)["query"], "scope=account");
  EXPECT_EQ(sendJson({.path = "/api/v1/cluster"}, 200)["backend"]["configured"], true);
}

TEST_F(RestApiTest, RoutesMetricsAndRequestCounting) {
  EXPECT_EQ(sendJson({.path = "/api/v1/routes"}, 200)["routes"][0]["service"], "web");
  http::Response m = send({.path = "/metrics"});
  EXPECT_EQ(m.status, 200);
  EXPECT_EQ(m.body, "edged_services 1\n");
  send({.path = "/api/v1/nowhere"});
  ASSERT_TRUE(node_.waitForRequests(3));
  std::lock_guard lock(node_.count_mu);
  EXPECT_EQ(node_.requests, 3);
  EXPECT_EQ(node_.request_errors, 1);
}

TEST_F(RestApiTest, InstancesListManagedAndHandMadeContainers) {
  node_.running.push_back({.id = "c1", .name = "web-1", .service = "web", .replica = 1});
  runtime::ContainerSpec spec;
  spec.name = "by-hand";
  spec.image = "busybox:latest";
  node_.runtime_.addImage("busybox:latest");
  ASSERT_TRUE(node_.runtime_.createContainer(spec).isOk());
  json j = sendJson({.path = "/api/v1/instances"}, 200);
  ASSERT_EQ(j["instances"].size(), 2u);
  EXPECT_EQ(j["instances"][0]["managed"], true);
  EXPECT_EQ(j["instances"][1]["name"], "by-hand");
  EXPECT_EQ(j["instances"][1]["managed"], false);
  EXPECT_EQ(sendJson({.path = "/api/v1/instances?service=web"}, 200)["instances"].size(), 1u);
}

}  // namespace
}  // namespace edge::edged
