// ApiServer's routing over a real connection (127.0.0.1:0): what a client sees for routed,
// unknown and wrong-method requests, bodies read for handlers, streamed bodies, HEAD, and
// routes added on raw() keeping precedence.
#include "common/http_server.h"

#include <gtest/gtest.h>

#include <memory>
#include <string>

#include "common/http.h"

namespace edge::http {
namespace {

class ApiServerRoutingTest : public ::testing::Test {
 protected:
  void SetUp() override {
    server_ = std::make_unique<ApiServer>(ApiServer::Options{.tcp_address = "127.0.0.1:0"});
  }
  void start() {
    ASSERT_TRUE(server_->start().isOk());
    client_ = std::make_unique<Client>(
        *Endpoint::parse("tcp://127.0.0.1:" + std::to_string(server_->boundTcpPort())));
  }
  Response send(Request r) {
    Result<Response> out = client_->send(std::move(r));
    EXPECT_TRUE(out.isOk()) << out.status().toString();
    return out.isOk() ? *out : Response{};
  }

  std::unique_ptr<ApiServer> server_;
  std::unique_ptr<Client> client_;
};

TEST_F(ApiServerRoutingTest, RoutesGetTheirCapturesAndBodies) {
  server_->get("/things/{id}",
               [](const ApiServer::Request&, ApiServer::Response& res, const PathParams& p) {
                 res.set_content("thing " + std::string(p[0]), "text/plain");
               });
  server_->post("/things/{id}/echo",
                [](const ApiServer::Request& req, ApiServer::Response& res, const PathParams& p) {
                  res.status = 201;
                  res.set_content(std::string(p.get("id")) + ":" + req.body, "text/plain");
                });
  server_->get("/plain", [](const ApiServer::Request&, ApiServer::Response& res) {
    res.set_content("two-argument handler", "text/plain");
  });
  start();

  Response r = send({.path = "/things/a%20b"});
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, "thing a b");  // the decoded path is matched
  r = send({.method = "POST", .path = "/things/7/echo", .body = "hello", .content_type = "x/y"});
  EXPECT_EQ(r.status, 201);
  EXPECT_EQ(r.body, "7:hello");
  EXPECT_EQ(send({.path = "/plain"}).body, "two-argument handler");
  r = send({.method = "HEAD", .path = "/things/1"});
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, "");
}

TEST_F(ApiServerRoutingTest, UnknownPathsAndOtherMethodsAre404WithAMessage) {
  server_->get("/things/{id}", [](const ApiServer::Request&, ApiServer::Response& res) {
    res.set_content("x", "text/plain");
  });
  start();
  for (const auto& [method, path] : {std::pair{"GET", "/nothing"}, std::pair{"DELETE", "/things/1"},
                                     std::pair{"POST", "/things/1"}}) {
    Response r = send({.method = method, .path = path, .body = "ignored"});
    EXPECT_EQ(r.status, 404) << method << " " << path;
    EXPECT_NE(r.body.find("no such endpoint"), std::string::npos) << r.body;
    EXPECT_NE(r.body.find(std::string(method) + " " + path), std::string::npos) << r.body;
  }
}

TEST_F(ApiServerRoutingTest, BodiesBeyondTheLimitAre413UnlessTheRouteStreamsThem) {
  server_ = std::make_unique<ApiServer>(
      ApiServer::Options{.tcp_address = "127.0.0.1:0", .max_body_bytes = 1024});
  server_->post("/small", [](const ApiServer::Request& req, ApiServer::Response& res) {
    res.set_content(std::to_string(req.body.size()), "text/plain");
  });
  server_->allowStreamedBody([](const std::string& method, const std::string& path) {
    return method == "POST" && path == "/upload";
  });
  server_->routeStreamed("POST", "/upload",
                         [](const ApiServer::Request&, ApiServer::Response& res, const PathParams&,
                            const httplib::ContentReader& reader) {
                           size_t total = 0;
                           bool ok = reader([&](const char*, size_t n) {
                             total += n;
                             return true;
                           });
                           res.set_content((ok ? "ok " : "short ") + std::to_string(total),
                                           "text/plain");
                         });
  start();
  std::string big(64 * 1024, 'x');
  EXPECT_EQ(send({.method = "POST", .path = "/small", .body = "abc"}).body, "3");
  Response r = send({.method = "POST", .path = "/small", .body = big});
  EXPECT_EQ(r.status, 413);
  r = send({.method = "POST", .path = "/upload", .body = big});
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, "ok 65536");
}

TEST_F(ApiServerRoutingTest, RoutesOnRawComeFirst) {
  server_->get("/both", [](const ApiServer::Request&, ApiServer::Response& res) {
    res.set_content("router", "text/plain");
  });
  server_->get("/router-only", [](const ApiServer::Request&, ApiServer::Response& res) {
    res.set_content("router", "text/plain");
  });
  server_->raw().Get("/both", [](const httplib::Request&, httplib::Response& res) {
    res.set_content("raw", "text/plain");
  });
  start();
  EXPECT_EQ(send({.path = "/both"}).body, "raw");
  EXPECT_EQ(send({.path = "/router-only"}).body, "router");
}

TEST_F(ApiServerRoutingTest, VersionedRoutesServeBehindDockersPrefix) {
  server_->get("/containers/{id}/json",
               [](const ApiServer::Request& req, ApiServer::Response& res, const PathParams& p) {
                 res.set_content(std::string(p[0]) + " " + ApiServer::pathApiVersion(req.path),
                                 "text/plain");
               },
               {.version_prefix = true});
  start();
  EXPECT_EQ(send({.path = "/containers/c1/json"}).body, "c1 ");
  EXPECT_EQ(send({.path = "/v1.43/containers/c1/json"}).body, "c1 1.43");
  EXPECT_EQ(send({.path = "/v1.43x/containers/c1/json"}).status, 404);
}

}  // namespace
}  // namespace edge::http
