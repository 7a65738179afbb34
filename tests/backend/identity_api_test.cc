// The identity and token endpoints through a real http::ApiServer on 127.0.0.1:0, as a
// node, a CLI or an operator would call them, with the state in a real SqliteStore.
#include "backend/identity_api.h"

#include <gtest/gtest.h>

#include <stdlib.h>
#include "common/http.h"
#include "common/jwt.h"
#include "identity/identity.h"

#include "backend/sqlite_store.h"
#include "common/fs.h"

namespace edge::backend {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;

constexpr char kAdminSecret[] = "bootstrap-admin-secret";

class IdentityApiTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char dir[] = "/tmp/edge-identity-api-XXXXXX";
    ASSERT_NE(mkdtemp(dir), nullptr);
    dir_ = dir;
    auto store = SqliteStore::open(dir_ + "/backend.db");
    ASSERT_TRUE(store.isOk()) << store.status().toString();
    store_ = std::move(store).value();
    start({});
  }
  void TearDown() override {
    if (server_) server_->stop();
    server_.reset();
    tokens_.reset();
    store_.reset();
    (void)fs::removeAll(dir_);
  }

  void start(RateLimiter::Options limits) {
    IdentityOptions io;
    io.password_iterations = 1000;
    io.secret_iterations = 10;
    io.admin_secret = kAdminSecret;
    identity_ = std::make_unique<IdentityService>(*store_, io, clock_);
    TokenOptions to;
    to.issuer = "https://backend.test";
    to.kek = std::string(32, 'k');
    auto t = TokenService::create(*store_, *identity_, to, clock_);
    ASSERT_TRUE(t.isOk()) << t.status().toString();
    tokens_ = std::move(t).value();
    limiter_ = std::make_unique<RateLimiter>(limits, clock_);
    http::ApiServer::Options so;
    so.tcp_address = "127.0.0.1:0";
    server_ = std::make_unique<http::ApiServer>(so);
    registerIdentityApi(*server_, *identity_, *tokens_, *limiter_);
    ASSERT_TRUE(server_->start().isOk());
    http::Endpoint ep;
    ep.kind = http::Endpoint::Kind::kTcp;
    ep.host = "127.0.0.1";
    ep.port = server_->boundTcpPort();
    client_ = std::make_unique<http::Client>(ep);
  }

  http::Response send(const std::string& method, const std::string& path,
                      const std::string& body = "", const std::string& type = "",
                      http::Headers headers = {}) {
    http::Request r;
    r.method = method;
    r.path = path;
    r.body = body;
    r.content_type = type;
    r.headers = std::move(headers);
    auto res = client_->send(r);
    EXPECT_TRUE(res.isOk()) << res.status().toString();
    return res.valueOr(http::Response{});
  }
  http::Response form(const std::string& path, const std::string& body,
                      http::Headers headers = {}) {
    return send("POST", path, body, "application/x-www-form-urlencoded", std::move(headers));
  }
  http::Response postJson(const std::string& path, const json& body, const std::string& bearer) {
    http::Headers h;
    if (!bearer.empty()) h.emplace("Authorization", "Bearer " + bearer);
    return send("POST", path, body.dump(), "application/json", h);
  }
  static json body(const http::Response& r) { return json::parse(r.body, nullptr, false); }

  std::string basic(const std::string& id, const std::string& secret) {
    return "Basic " + base64(id + ":" + secret);
  }
  static std::string base64(const std::string& s) {
    // base64url -> standard alphabet with padding
    std::string b = jwt::base64UrlEncode(s);
    for (char& c : b) c = c == '-' ? '+' : c == '_' ? '/' : c;
    while (b.size() % 4) b += '=';
    return b;
  }

  std::string adminToken() {
    auto r = form("/oauth2/token", "grant_type=client_credentials",
                  {{"Authorization", basic("admin", kAdminSecret)}});
    EXPECT_EQ(r.status, 200) << r.body;
    return body(r).value("access_token", "");
  }

  // An account with an application client "cli" (for logins) and a user ada.
  std::string setUpAccount() {
    std::string admin = adminToken();
    EXPECT_EQ(postJson("/v1/accounts", {{"id", "acme"}}, admin).status, 201);
    auto c = postJson("/v1/accounts/acme/clients",
                      {{"id", "cli"}, {"kind", "application"}, {"scopes", json::array()}}, admin);
    EXPECT_EQ(c.status, 201) << c.body;
    auto u = postJson("/v1/accounts/acme/users",
                      {{"name", "ada"},
                       {"password", "correct horse"},
                       {"scopes", {"discovery:read", "node:call"}}},
                      admin);
    EXPECT_EQ(u.status, 201) << u.body;
    return body(c).value("client_secret", "");
  }

  Result<json> verifyWithJwks(const std::string& token, const std::string& audience) {
    auto jwks = send("GET", "/.well-known/jwks.json");
    auto keys = jwt::KeySet::fromJwksText(jwks.body);
    if (!keys.isOk()) return keys.status();
    jwt::VerifyOptions o;
    o.issuer = "https://backend.test";
    o.audience = audience;
    o.now = clock_->wallNow();
    return jwt::verify(token, *keys, o);
  }

  std::shared_ptr<FakeClock> clock_ = std::make_shared<FakeClock>();
  std::string dir_;
  std::unique_ptr<SqliteStore> store_;
  std::unique_ptr<IdentityService> identity_;
  std::unique_ptr<TokenService> tokens_;
  std::unique_ptr<RateLimiter> limiter_;
  std::unique_ptr<http::ApiServer> server_;
  std::unique_ptr<http::Client> client_;
};

TEST_F(IdentityApiTest, DiscoveryDocumentAndJwks) {
  auto d = send("GET", "/.well-known/openid-configuration");
  ASSERT_EQ(d.status, 200);
  json doc = body(d);
  EXPECT_EQ(doc["issuer"], "https://backend.test");
  EXPECT_EQ(doc["token_endpoint"], "https://backend.test/oauth2/token");
  EXPECT_EQ(doc["jwks_uri"], "https://backend.test/.well-known/jwks.json");
  EXPECT_EQ(doc["revocation_endpoint"], "https://backend.test/oauth2/revoke");
  EXPECT_EQ(doc["grant_types_supported"],
            json({"client_credentials", "password", "refresh_token"}));

  auto k = send("GET", "/.well-known/jwks.json");
  ASSERT_EQ(k.status, 200);
  EXPECT_EQ(k.header("Cache-Control"), "public, max-age=300");
  json jwks = body(k);
  ASSERT_EQ(jwks["keys"].size(), 1u);
  EXPECT_EQ(jwks["keys"][0]["kid"], tokens_->signingKid());
  EXPECT_FALSE(jwks["keys"][0].contains("d"));
}

TEST_F(IdentityApiTest, ClientCredentialsHappyPath) {
  std::string admin = adminToken();
  ASSERT_EQ(postJson("/v1/accounts", {{"id", "acme"}}, admin).status, 201);
  auto c = postJson(
      "/v1/accounts/acme/clients",
      {{"id", "billing"}, {"kind", "service"}, {"scopes", {"node:call", "discovery:read"}}}, admin);
  ASSERT_EQ(c.status, 201) << c.body;
  std::string secret = body(c)["client_secret"];

  // client_secret_post, one scope of two, the node audience.
  auto r = form("/oauth2/token", "grant_type=client_credentials&client_id=billing&client_secret=" +
                                     http::urlEncode(secret) +
                                     "&scope=node:call+relay:bep&audience=edge-node");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.header("Cache-Control"), "no-store");
  json reply = body(r);
  EXPECT_EQ(reply["token_type"], "Bearer");
  EXPECT_EQ(reply["expires_in"], 300);
  EXPECT_EQ(reply["scope"], "node:call");
  EXPECT_FALSE(reply.contains("refresh_token"));  // RFC 6749 4.4.3

  auto claims = verifyWithJwks(reply["access_token"], "edge-node");
  ASSERT_TRUE(claims.isOk()) << claims.status().toString();
  EXPECT_EQ((*claims)["sub"], "client:billing");
  EXPECT_EQ((*claims)["client_id"], "billing");
  EXPECT_EQ((*claims)["acct"], "acme");
  EXPECT_EQ((*claims)["aud"], "edge-node");
  EXPECT_EQ((*claims)["exp"].get<int64_t>() - (*claims)["iat"].get<int64_t>(), 300);
  EXPECT_TRUE(claims->contains("jti"));

  // HTTP Basic, both audiences.
  r = form("/oauth2/token",
           "grant_type=client_credentials&resource=edge-backend&resource=edge-node",
           {{"Authorization", basic("billing", secret)}});
  ASSERT_EQ(r.status, 200) << r.body;
  claims = verifyWithJwks(body(r)["access_token"], "edge-backend");
  ASSERT_TRUE(claims.isOk());
  EXPECT_EQ((*claims)["aud"], json({"edge-backend", "edge-node"}));
  EXPECT_EQ((*claims)["scope"], "node:call discovery:read");
  auto caller = tokens_->authenticate("Bearer " + body(r)["access_token"].get<std::string>());
  ASSERT_TRUE(caller.isOk());
  EXPECT_EQ(caller->account, "acme");
  EXPECT_TRUE(caller->hasScope("discovery:read"));
}

TEST_F(IdentityApiTest, WrongSecretAndBadRequests) {
  setUpAccount();
  auto r = form("/oauth2/token", "grant_type=client_credentials",
                {{"Authorization", basic("cli", "nope")}});
  EXPECT_EQ(r.status, 401);
  EXPECT_EQ(r.header("WWW-Authenticate"), "Basic realm=\"edge-backend\"");
  EXPECT_EQ(body(r)["error"], "invalid_client");
  EXPECT_EQ(body(r)["error_description"], "invalid client credentials");

  r = form("/oauth2/token", "grant_type=client_credentials");
  EXPECT_EQ(r.status, 401);
  EXPECT_EQ(body(r)["error"], "invalid_client");

  r = form("/oauth2/token", "grant_type=authorization_code&client_id=admin&client_secret=" +
                                std::string(kAdminSecret));
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(body(r)["error"], "unsupported_grant_type");

  r = form("/oauth2/token", "grant_type=client_credentials&grant_type=password");
  EXPECT_EQ(body(r)["error"], "invalid_request");
  EXPECT_EQ(body(r)["error_description"], "parameter grant_type is repeated");

  r = form("/oauth2/token", "grant_type=%zz");
  EXPECT_EQ(r.status, 400);
  EXPECT_NE(body(r)["error_description"].get<std::string>().find("bad %-escape"),
            std::string::npos);

  r = send("POST", "/oauth2/token", "{\"grant_type\":\"client_credentials\"}", "application/json");
  EXPECT_EQ(r.status, 400);
  EXPECT_NE(
      body(r)["error_description"].get<std::string>().find("application/x-www-form-urlencoded"),
      std::string::npos);

  r = form("/oauth2/token",
           "grant_type=client_credentials&audience=elsewhere&client_id=admin&client_secret=" +
               std::string(kAdminSecret));
  EXPECT_EQ(body(r)["error"], "invalid_target");

  r = form("/oauth2/token",
           "grant_type=client_credentials&scope=relay:bep&client_id=admin&"
           "client_secret=" +
               std::string(kAdminSecret));
  EXPECT_EQ(body(r)["error"], "invalid_scope");
  EXPECT_NE(body(r)["error_description"].get<std::string>().find("it may have: admin"),
            std::string::npos);
}

TEST_F(IdentityApiTest, PasswordRefreshRotationAndReuse) {
  std::string cli = setUpAccount();
  auto r = form("/oauth2/token", "grant_type=password&username=ada&password=correct+horse",
                {{"Authorization", basic("cli", cli)}});
  ASSERT_EQ(r.status, 200) << r.body;
  json first = body(r);
  ASSERT_TRUE(first.contains("refresh_token"));
  auto claims = verifyWithJwks(first["access_token"], "edge-backend");
  ASSERT_TRUE(claims.isOk());
  EXPECT_EQ((*claims)["sub"], "user:acme/ada");
  EXPECT_EQ((*claims)["scope"], "discovery:read node:call");

  r = form("/oauth2/token", "grant_type=password&username=ada&password=wrong",
           {{"Authorization", basic("cli", cli)}});
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(body(r)["error"], "invalid_grant");

  // Rotation: each use gives a new refresh token; a narrower scope is allowed.
  std::string rt1 = first["refresh_token"];
  r = form("/oauth2/token", "grant_type=refresh_token&scope=node:call&refresh_token=" + rt1,
           {{"Authorization", basic("cli", cli)}});
  ASSERT_EQ(r.status, 200) << r.body;
  json second = body(r);
  std::string rt2 = second["refresh_token"];
  EXPECT_NE(rt2, rt1);
  EXPECT_EQ(second["scope"], "node:call");

  r = form("/oauth2/token", "grant_type=refresh_token&refresh_token=" + rt2,
           {{"Authorization", basic("cli", cli)}});
  ASSERT_EQ(r.status, 200) << r.body;
  std::string rt3 = body(r)["refresh_token"];
  EXPECT_EQ(body(r)["scope"], "discovery:read node:call");  // the family keeps its scope

  // rt1 again: reuse, the whole family goes, including the newest token.
  r = form("/oauth2/token", "grant_type=refresh_token&refresh_token=" + rt1,
           {{"Authorization", basic("cli", cli)}});
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(body(r)["error"], "invalid_grant");
  EXPECT_NE(body(r)["error_description"].get<std::string>().find(
                "already used; its whole family is revoked"),
            std::string::npos);
  r = form("/oauth2/token", "grant_type=refresh_token&refresh_token=" + rt3,
           {{"Authorization", basic("cli", cli)}});
  EXPECT_EQ(r.status, 400);
  EXPECT_NE(body(r)["error_description"].get<std::string>().find("family was revoked"),
            std::string::npos);
}

TEST_F(IdentityApiTest, PublicClientLogin) {
  std::string admin = adminToken();
  ASSERT_EQ(postJson("/v1/accounts", {{"id", "acme"}}, admin).status, 201);
  auto c = postJson("/v1/accounts/acme/clients",
                    {{"id", "edgectl"}, {"kind", "application"}, {"public", true}}, admin);
  ASSERT_EQ(c.status, 201);
  EXPECT_FALSE(body(c).contains("client_secret"));
  ASSERT_EQ(
      postJson("/v1/accounts/acme/users", {{"name", "ada"}, {"password", "correct horse"}}, admin)
          .status,
      201);
  auto r = form("/oauth2/token",
                "grant_type=password&client_id=edgectl&username=ada&password=correct+horse");
  ASSERT_EQ(r.status, 200) << r.body;
  r = form("/oauth2/token", "grant_type=client_credentials&client_id=edgectl");
  EXPECT_EQ(body(r)["error"], "unauthorized_client");
}

TEST_F(IdentityApiTest, Revocation) {
  std::string cli = setUpAccount();
  auto r = form("/oauth2/token", "grant_type=password&username=ada&password=correct+horse",
                {{"Authorization", basic("cli", cli)}});
  ASSERT_EQ(r.status, 200);
  std::string access = body(r)["access_token"];
  std::string refresh = body(r)["refresh_token"];
  ASSERT_TRUE(tokens_->authenticate("Bearer " + access).isOk());

  r = form("/oauth2/revoke", "token=" + refresh + "&token_type_hint=refresh_token",
           {{"Authorization", basic("cli", cli)}});
  EXPECT_EQ(r.status, 200) << r.body;
  r = form("/oauth2/token", "grant_type=refresh_token&refresh_token=" + refresh,
           {{"Authorization", basic("cli", cli)}});
  EXPECT_EQ(body(r)["error"], "invalid_grant");

  r = form("/oauth2/revoke", "token=" + access, {{"Authorization", basic("cli", cli)}});
  EXPECT_EQ(r.status, 200);
  auto caller = tokens_->authenticate("Bearer " + access);
  EXPECT_EQ(caller.status().message(), "token was revoked");
  // Another replica learns it at its next maintenance.
  TokenOptions to = tokens_->options();
  auto other = TokenService::create(*store_, *identity_, to, clock_);
  ASSERT_TRUE(other.isOk());
  EXPECT_EQ((*other)->authenticate("Bearer " + access).status().message(), "token was revoked");

  // Unknown tokens are not an error (RFC 7009 2.2); a bad client is.
  EXPECT_EQ(form("/oauth2/revoke", "token=garbage", {{"Authorization", basic("cli", cli)}}).status,
            200);
  EXPECT_EQ(form("/oauth2/revoke", "token=garbage", {{"Authorization", basic("cli", "x")}}).status,
            401);
}

TEST_F(IdentityApiTest, RateLimitAnswers429WithRetryAfter) {
  server_->stop();
  RateLimiter::Options limits;
  limits.client_rate = 1;
  limits.client_burst = 3;
  start(limits);
  int ok = 0;
  http::Response last;
  for (int i = 0; i < 5; ++i) {
    last = form("/oauth2/token", "grant_type=client_credentials",
                {{"Authorization", basic("admin", "wrong")}});
    if (last.status == 401) ++ok;
  }
  EXPECT_EQ(ok, 3);
  EXPECT_EQ(last.status, 429);
  EXPECT_EQ(last.header("Retry-After"), "1");
  EXPECT_EQ(body(last)["error"], "slow_down");
  EXPECT_EQ(body(last)["error_description"],
            "too many token requests for client admin; retry in 1 s");
  clock_->advance(1s);
  EXPECT_EQ(form("/oauth2/token", "grant_type=client_credentials",
                 {{"Authorization", basic("admin", kAdminSecret)}})
                .status,
            200);
}

TEST_F(IdentityApiTest, NodeRegistersThenGetsNodeTokens) {
  std::string admin = adminToken();
  ASSERT_EQ(postJson("/v1/accounts", {{"id", "acme"}}, admin).status, 201);
  auto j =
      postJson("/v1/accounts/acme/join-tokens", {{"ttl_seconds", 600}, {"max_uses", 1}}, admin);
  ASSERT_EQ(j.status, 201) << j.body;
  std::string join = body(j)["join_token"];
  // A number no int64_t holds is a 400 naming the field, not a cast.
  auto huge = postJson("/v1/accounts/acme/join-tokens", {{"ttl_seconds", 1e300}}, admin);
  EXPECT_EQ(huge.status, 400);
  EXPECT_EQ(body(huge)["message"],
            "request body.ttl_seconds: 1e+300 is out of range; allowed: integers from "
            "-9223372036854775808 to 9223372036854775807");

  auto node = identity::NodeIdentity::generate();
  ASSERT_TRUE(node.isOk());
  json reg = {{"join_token", join},
              {"node_id", node->id()},
              {"public_key", identity::toHex(node->publicKey())},
              {"signature", identity::toHex(node->sign(registrationMessage(node->id(), join)))}};
  json forged = reg;
  forged["signature"] = identity::toHex(std::string(64, '\1'));
  auto r = postJson("/v1/nodes/register", forged, "");
  EXPECT_EQ(r.status, 403);
  EXPECT_NE(body(r)["message"].get<std::string>().find("signature"), std::string::npos);

  r = postJson("/v1/nodes/register", reg, "");
  ASSERT_EQ(r.status, 200) << r.body;
  json creds = body(r);
  EXPECT_EQ(creds["client_id"], "node-" + node->id());
  EXPECT_EQ(creds["account"], "acme");

  r = postJson("/v1/nodes/register", reg, "");  // max_uses 1
  EXPECT_EQ(r.status, 403);
  EXPECT_EQ(body(r)["message"], "join_token: already used 1 times, its maximum");

  r = form("/oauth2/token", "grant_type=client_credentials&audience=edge-node",
           {{"Authorization", basic(creds["client_id"], creds["client_secret"])}});
  ASSERT_EQ(r.status, 200) << r.body;
  auto claims = verifyWithJwks(body(r)["access_token"], "edge-node");
  ASSERT_TRUE(claims.isOk()) << claims.status().toString();
  EXPECT_EQ((*claims)["sub"], "node:" + node->id());
  EXPECT_EQ((*claims)["node"], node->id());
  EXPECT_EQ((*claims)["acct"], "acme");
  EXPECT_EQ((*claims)["scope"],
            "node:call discovery:register discovery:read relay:sep relay:connect relay:bep");

  r = postJson("/v1/nodes/register", {{"join_token", join}}, "");
  EXPECT_EQ(r.status, 400);
  EXPECT_NE(body(r)["message"].get<std::string>().find("node_id"), std::string::npos);
}

TEST_F(IdentityApiTest, AccountAdminsManageOnlyTheirAccount) {
  std::string admin = adminToken();
  ASSERT_EQ(postJson("/v1/accounts", {{"id", "acme"}}, admin).status, 201);
  ASSERT_EQ(postJson("/v1/accounts", {{"id", "globex"}}, admin).status, 201);
  EXPECT_EQ(postJson("/v1/accounts", {{"id", "acme"}}, admin).status, 409);
  auto c = postJson("/v1/accounts/acme/clients",
                    {{"id", "ops"}, {"kind", "service"}, {"scopes", {"account:admin"}}}, admin);
  ASSERT_EQ(c.status, 201);
  auto r = form("/oauth2/token", "grant_type=client_credentials",
                {{"Authorization", basic("ops", body(c)["client_secret"])}});
  ASSERT_EQ(r.status, 200);
  std::string ops = body(r)["access_token"];

  EXPECT_EQ(postJson("/v1/accounts/acme/join-tokens", {{"ttl_seconds", 60}}, ops).status, 201);
  r = postJson("/v1/accounts/globex/join-tokens", {{"ttl_seconds", 60}}, ops);
  EXPECT_EQ(r.status, 403);
  EXPECT_NE(body(r)["message"].get<std::string>().find("account globex"), std::string::npos);
  EXPECT_EQ(postJson("/v1/accounts", {{"id", "initech"}}, ops).status, 403);
  r = postJson("/v1/accounts", {{"id", "initech"}}, "");
  EXPECT_EQ(r.status, 401);

  r = postJson("/v1/accounts/acme/clients", {{"id", "x"}, {"kind", "robot"}}, ops);
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(body(r)["message"], "kind: \"robot\" is not one of node, service, application");

  http::Headers h{{"Authorization", "Bearer " + ops}};
  EXPECT_EQ(send("DELETE", "/v1/accounts/acme/clients/ops", "", "", h).status, 204);
  EXPECT_EQ(send("DELETE", "/v1/accounts/acme/clients/ops", "", "",
                 {{"Authorization", "Bearer " + admin}})
                .status,
            404);
}

}  // namespace
}  // namespace edge::backend
