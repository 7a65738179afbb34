#include "fake_node.h"

#include <gtest/gtest.h>
#include <httplib.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <regex>

namespace edge::cli::testing {
namespace {

constexpr const char* kJson = "application/json";

// A whole second more than asked, so the age edgectl computes is `seconds` whatever
// fraction of a second passes before it looks.
std::string nowMinus(int seconds) {
  auto t = std::chrono::system_clock::now() - std::chrono::seconds(seconds + 1);
  std::time_t tt = std::chrono::system_clock::to_time_t(t);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S.000Z", std::gmtime(&tt));
  return buf;
}

std::string instance(const std::string& name, const std::string& service, int replica,
                     const std::string& state, int age_s) {
  return R"({"id":")" + std::string(64, 'a' + replica) + R"(","name":")" + name +
         R"(","service":")" + service + R"(","replica":)" + std::to_string(replica) +
         R"(,"generation":3,"managed":true,"image":"edgecloud/hello:latest","state":")" + state +
         R"(","health":"healthy","ready":true,"restarts":0,"exit_code":0,"ports":{"http":)" +
         std::to_string(20001 + replica) + R"(},"started_at":")" + nowMinus(age_s) +
         R"(","finished_at":null,"message":"","next_restart_at":null})";
}

std::string webService() {
  return R"({"name":"web","generation":3,"applied_at":")" + nowMinus(180) +
         R"(","state":"running","replicas":{"desired":2,"ready":2,"running":2,"updated":2},)"
         R"("message":"","manifest":{"apiVersion":"edge/v1","kind":"Service",)"
         R"("metadata":{"name":"web"},"spec":{"image":"edgecloud/hello:latest","replicas":2,)"
         R"("ports":[{"containerPort":8080,"name":"http"}]}},"instances":[)" +
         instance("web-0-3", "web", 0, "running", 7200) + "," +
         instance("web-1-3", "web", 1, "running", 7200) + "]}";
}

std::string apiService() {
  return R"({"name":"api","generation":1,"applied_at":")" + nowMinus(5 * 86400) +
         R"(","state":"crashloop","replicas":{"desired":1,"ready":0,"running":0,"updated":1},)"
         R"("message":"exits with 1","manifest":{"spec":{"image":"example/api:2"}},"instances":[)" +
         instance("api-0-1", "api", 0, "exited", 60) + "]}";
}

// GET /api/v1/cluster of a member of one cluster of two nodes, with one blacklisted liar.
std::string clusterAnswer() {
  return R"({"node_id":"00000000000000aa","node_name":"edge-1","enabled":true,"clusters":[)"
         R"({"interface":"eth0","cluster_id":"198.18.0.0/24","state":"member",)"
         R"("supernode_id":"3f2a9c01d4e5b6a7","version":12,"supernode_since":1700000000,)"
         R"("members":[)"
         R"({"node_id":"00000000000000aa","name":"edge-1","endpoint":"198.18.0.11:8083",)"
         R"("roles":[],"score":40,"joined_at":1700000000,"uptime_seconds":90,)"
         R"("profile":{"runtime":"light"}},)"
         R"({"node_id":"3f2a9c01d4e5b6a7","name":"edge-2","endpoint":"198.18.0.12:8083",)"
         R"("roles":["supernode","proxy"],"score":87,"joined_at":1700000000,)"
         R"("uptime_seconds":7200,"profile":{"runtime":"docker"}}],)"
         R"("blacklist":[{"node_id":"00000000000000ff","address":"198.18.0.15",)"
         R"("reason":"endpoint 198.18.0.15:9 does not answer","since":1700000000,)"
         R"("until":4000000000}],)"
         R"("counters":{"packets_sent":10,"packets_received":20,"dropped_malformed":0,)"
         R"("dropped_forged":0,"dropped_blacklisted":2}}]})";
}

std::string nodesAnswer(const std::string& scope) {
  return R"({"scope":")" + scope +
         R"(","enabled":true,"nodes":[)"
         R"({"node_id":"00000000000000aa","name":"edge-1","endpoint":"198.18.0.11:8083",)"
         R"("roles":[],"score":40,"joined_at":1700000000,"uptime_seconds":90,)"
         R"("profile":{"runtime":"light"},"clusters":["198.18.0.0/24"]},)"
         R"({"node_id":"3f2a9c01d4e5b6a7","name":"edge-2","endpoint":"198.18.0.12:8083",)"
         R"("roles":["supernode","proxy"],"score":87,"joined_at":1700000000,)"
         R"("uptime_seconds":7200,"profile":{"runtime":"docker"},)"
         R"("clusters":["198.18.0.0/24"]}]})";
}

void error(httplib::Response& res, int status, const std::string& message) {
  res.status = status;
  res.set_content(R"({"message":")" + message + R"("})", kJson);
}

}  // namespace

FakeNode::FakeNode() : server_(std::make_unique<httplib::Server>()) {
  char tmpl[] = "/tmp/edgectl-test-XXXXXX";
  dir_ = ::mkdtemp(tmpl);
  socket_ = dir_ + "/edged.sock";
  httplib::Server& s = *server_;
  s.set_address_family(AF_UNIX);

  // Recorded before the answer goes out: edgectl may exit as soon as it has read it.
  s.set_pre_routing_handler([this](const httplib::Request& req, httplib::Response&) {
    Received r{.method = req.method, .path = req.path};
    std::string q;
    for (const auto& [k, v] : req.params) q += (q.empty() ? "?" : "&") + k + "=" + v;
    r.path += q;
    for (const auto& [k, v] : req.headers) r.headers[k] = v;
    record(std::move(r));
    return httplib::Server::HandlerResponse::Unhandled;
  });

  s.Get("/api/v1/node", [](const httplib::Request&, httplib::Response& res) {
    res.set_content(R"({"name":"edge-1","version":"0.1.0","runtime":{"kind":"light",)"
                    R"("version":"0.1.0","api_version":"","cgroup_version":"1",)"
                    R"("isolation":"namespaces+seccomp"},"data_dir":"/var/lib/edged",)"
                    R"("api_socket":"/run/edged/edged.sock","started_at":")" +
                        nowMinus(3 * 3600) +
                        R"(","uptime_s":10800,"services":2,"instances":{"total":3,)"
                        R"("running":2},"images":1,"store_revision":7})",
                    kJson);
  });

  s.Post("/api/v1/services", [this](const httplib::Request& req, httplib::Response& res) {
    {
      std::lock_guard lock(mu_);
      received_.back().body = req.body;
    }
    bool dry = req.get_param_value("dryRun") == "1";
    if (req.body.find("replicas: three") != std::string::npos) {
      res.status = 400;
      res.set_content(
          R"j({"message":"the manifest is not valid (2 errors)","errors":[)j"
          R"({"doc":1,"path":"spec.replicas","message":"expected an integer, got \"three\""},)"
          R"({"doc":2,"path":"metadata.name","message":"missing"}]})",
          kJson);
      return;
    }
    // Every "name:" line names a service, as metadata.name would.
    std::string services;
    std::regex name_re(R"x("?name"?: *"?([a-z0-9-]+))x");
    for (auto it = std::sregex_iterator(req.body.begin(), req.body.end(), name_re);
         it != std::sregex_iterator(); ++it) {
      std::string name = (*it)[1];
      services += std::string(services.empty() ? "" : ",") + R"({"name":")" + name +
                  R"(","generation":)" + (name == "web" ? "4" : "1") + R"(,"action":")" +
                  (name == "web" ? "updated" : "created") + R"("})";
    }
    res.set_content(std::string(R"({"dryRun":)") + (dry ? "true" : "false") + R"(,"services":[)" +
                        services + "]}",
                    kJson);
  });

  s.Get("/api/v1/services", [](const httplib::Request&, httplib::Response& res) {
    res.set_content(R"({"services":[)" + apiService() + "," + webService() + "]}", kJson);
  });
  s.Get("/api/v1/services/web", [](const httplib::Request&, httplib::Response& res) {
    res.set_content(webService(), kJson);
  });
  s.Get("/api/v1/services/web/history", [](const httplib::Request&, httplib::Response& res) {
    res.set_content(
        R"({"name":"web","generations":[)"
        R"({"generation":3,"applied_at":")" +
            nowMinus(180) +
            R"(","current":true,"manifest":{"spec":{"image":"edgecloud/hello:latest"}}},)"
            R"({"generation":2,"applied_at":")" +
            nowMinus(7200) +
            R"(","current":false,"manifest":{"spec":{"image":"edgecloud/hello:old"}}}]})",
        kJson);
  });

  s.Get("/api/v1/services/web/logs", [this](const httplib::Request& req, httplib::Response& res) {
    if (req.get_param_value("follow") != "1") {
      res.set_content("web-0-3 | hello\nweb-1-3 | hello\n", "text/plain");
      return;
    }
    res.set_chunked_content_provider("text/plain", [this](size_t off, httplib::DataSink& sink) {
      if (off == 0) return sink.write("line 1\n", 7);
      std::unique_lock lock(mu_);
      if (!cv_.wait_for(lock, std::chrono::seconds(20), [this] { return released_; })) {
        return false;
      }
      lock.unlock();
      sink.write("line 2\n", 7);
      sink.done();
      return true;
    });
  });
  s.Get("/api/v1/instances/web-0-3/logs", [](const httplib::Request&, httplib::Response& res) {
    res.set_content("only web-0-3\n", "text/plain");
  });
  s.Get(R"(/api/v1/(services|instances)/[^/]+(/history|/logs)?)",
        [](const httplib::Request& req, httplib::Response& res) {
          error(res, 404,
                "no such " + std::string(req.matches[1]) + " '" +
                    req.path.substr(req.path.find_last_of('/') + 1) + "'");
        });

  s.Get("/api/v1/instances", [](const httplib::Request&, httplib::Response& res) {
    res.set_content(R"({"instances":[)" + instance("api-0-1", "api", 0, "exited", 60) + "," +
                        instance("web-0-3", "web", 0, "running", 7200) + "," +
                        instance("web-1-3", "web", 1, "running", 7200) + "]}",
                    kJson);
  });

  s.Get("/api/v1/images", [](const httplib::Request&, httplib::Response& res) {
    res.set_content(R"({"images":[{"id":"sha256:)" + std::string(64, 'c') +
                        R"(","tags":["edgecloud/hello:latest","edgecloud/hello:1"],)"
                        R"("size":5347737,"created":")" +
                        nowMinus(86400 * 3) + R"(","in_use":true}]})",
                    kJson);
  });
  s.Post("/api/v1/images/load", [this](const httplib::Request& req, httplib::Response& res,
                                       const httplib::ContentReader& reader) {
    int64_t n = 0;
    reader([&n](const char*, size_t len) {
      n += static_cast<int64_t>(len);
      return true;
    });
    {
      std::lock_guard lock(mu_);
      uploaded_ = n;
      chunked_ = req.get_header_value("Transfer-Encoding") == "chunked";
    }
    res.set_content(R"({"images":[{"id":"sha256:)" + std::string(64, 'd') +
                        R"(","tags":["example/app:1"],"size":)" + std::to_string(n) + "}]}",
                    kJson);
  });
  s.Delete(R"(/api/v1/images/(.+))", [](const httplib::Request& req, httplib::Response& res) {
    if (req.matches[1] == "edgecloud/hello:latest" && req.get_param_value("force") != "1") {
      error(res, 409, "image edgecloud/hello:latest is in use by web-0-3");
      return;
    }
    res.set_content(R"({"deleted":"sha256:)" + std::string(64, 'c') + R"("})", kJson);
  });

  s.Delete(R"(/api/v1/services/([^/]+))", [](const httplib::Request& req, httplib::Response& res) {
    if (req.matches[1] != "web")
      return error(res, 404, "no such service '" + std::string(req.matches[1]) + "'");
    res.set_content(R"({"name":"web","deleted":true,"generation":3})", kJson);
  });
  s.Post("/api/v1/services/web/restart", [](const httplib::Request&, httplib::Response& res) {
    res.status = 202;
    res.set_content(R"({"name":"web","restarting":2})", kJson);
  });
  s.Post("/api/v1/services/web/rollback", [](const httplib::Request& req, httplib::Response& res) {
    std::string to = req.has_param("to") ? req.get_param_value("to") : "2";
    if (to == "9") return error(res, 409, "generation 9 is not in the history of web");
    res.set_content(R"({"name":"web","generation":4,"from":3,"to":)" + to + "}", kJson);
  });
  s.Post("/api/v1/services/broken/restart", [](const httplib::Request&, httplib::Response& res) {
    error(res, 500, "store write failed: disk full");
  });

  s.Get("/api/v1/events", [](const httplib::Request& req, httplib::Response& res) {
    std::string svc = req.get_param_value("service");
    std::string out;
    int seq = 40;
    for (const char* type : {"service.applied", "instance.started", "instance.exited"}) {
      std::string service = std::string(type) == "instance.exited" ? "api" : "web";
      if (!svc.empty() && svc != service) continue;
      ++seq;
      out += R"({"seq":)" + std::to_string(seq) + R"(,"time":")" + nowMinus(100 - seq) +
             R"(","type":")" + type + R"(","service":")" + service + R"(","instance":")" +
             (service == "web" ? "web-0-3" : "api-0-1") + R"(","message":"m)" +
             std::to_string(seq) + "\"}\n";
    }
    if (svc.empty()) {
      out += R"({"seq":44,"time":")" + nowMinus(50) +
             R"(","type":"cluster.member_joined","service":"","instance":"",)"
             R"("node":"3f2a9c01d4e5b6a7","message":"edge-2 joined 198.18.0.0/24"})"
             "\n";
    }
    res.set_content(out, "application/x-ndjson");
  });

  s.Get("/api/v1/cluster", [](const httplib::Request&, httplib::Response& res) {
    res.set_content(clusterAnswer(), kJson);
  });
  s.Get("/api/v1/nodes", [](const httplib::Request& req, httplib::Response& res) {
    std::string scope = req.get_param_value("scope");
    if (scope == "account" && req.get_param_value("account").empty())
      return error(res, 400,
                   "scope=account needs an account id: configure account_id or pass account=");
    if (req.has_param("interface") && req.get_param_value("interface") != "eth0")
      return error(res, 404,
                   "no cluster on interface \\\"" + req.get_param_value("interface") +
                       "\\\" (clusters on: eth0)");
    res.set_content(nodesAnswer(scope), kJson);
  });

  thread_ = std::thread([this] { server_->listen(socket_.c_str(), 80); });
  while (!server_->is_running()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
}

FakeNode::~FakeNode() {
  releaseFollow();
  server_->stop();
  thread_.join();
  std::error_code ec;
  std::filesystem::remove_all(dir_, ec);
}

void FakeNode::record(Received r) {
  std::lock_guard lock(mu_);
  received_.push_back(std::move(r));
}

std::vector<Received> FakeNode::received() const {
  std::lock_guard lock(mu_);
  return received_;
}

int64_t FakeNode::uploadedBytes() const {
  std::lock_guard lock(mu_);
  return uploaded_;
}

bool FakeNode::uploadWasChunked() const {
  std::lock_guard lock(mu_);
  return chunked_;
}

void FakeNode::releaseFollow() {
  {
    std::lock_guard lock(mu_);
    released_ = true;
  }
  cv_.notify_all();
}

}  // namespace edge::cli::testing
