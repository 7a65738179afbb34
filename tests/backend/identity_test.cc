// IdentityService, TokenService (key ring, rotation) and RateLimiter, on the in-memory
// Store with a FakeClock.
#include "backend/identity.h"

#include <gtest/gtest.h>

#include "backend/rate_limit.h"
#include "backend/tokens.h"
#include "common/jwt.h"
#include "identity/identity.h"
#include "tests/backend/memory_store.h"

namespace edge::backend {
namespace {

using namespace std::chrono_literals;
using testing::MemoryStore;

IdentityOptions fastOptions() {
  IdentityOptions o;
  o.password_iterations = 1000;  // production uses 210000; tests only need the format
  o.secret_iterations = 10;
  o.admin_secret = "bootstrap-admin-secret";
  return o;
}

TokenOptions tokenOptions() {
  TokenOptions o;
  o.issuer = "https://backend.test";
  o.kek = std::string(32, 'k');
  return o;
}

class IdentityTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_TRUE(identity_.createAccount("acme").isOk()); }

  NodeRegistration registration(const identity::NodeIdentity& node, const std::string& token) {
    return {token, node.id(), identity::toHex(node.publicKey()),
            identity::toHex(node.sign(registrationMessage(node.id(), token)))};
  }

  std::shared_ptr<FakeClock> clock_ = std::make_shared<FakeClock>();
  MemoryStore store_;
  IdentityService identity_{store_, fastOptions(), clock_};
};

TEST_F(IdentityTest, AccountsAreUniqueAndNamesChecked) {
  Status s = identity_.createAccount("acme");
  EXPECT_EQ(s.code(), StatusCode::kAlreadyExists) << s.toString();
  s = identity_.createAccount("bad/name");
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("'/' at 3"), std::string::npos) << s.message();
  EXPECT_EQ(identity_.createClient("nope", {"svc"}).status().code(), StatusCode::kNotFound);
}

TEST_F(IdentityTest, ClientSecretsAreHashedAndChecked) {
  auto secret = identity_.createClient("acme", {"billing", ClientKind::kService, {"node:call"}});
  ASSERT_TRUE(secret.isOk()) << secret.status().toString();
  EXPECT_GE(secret->size(), 43u);
  auto kv = store_.get("id/clients/billing");
  ASSERT_TRUE(kv.isOk());
  EXPECT_EQ(kv->value.find(*secret), std::string::npos);
  EXPECT_NE(kv->value.find("pbkdf2-sha256$10$"), std::string::npos);

  auto c = identity_.authenticateClient("billing", *secret);
  ASSERT_TRUE(c.isOk()) << c.status().toString();
  EXPECT_EQ(c->account, "acme");
  EXPECT_EQ(c->scopes, std::vector<std::string>{"node:call"});
  // Twice: the second time from the verified-secret cache.
  EXPECT_TRUE(identity_.authenticateClient("billing", *secret).isOk());

  auto bad = identity_.authenticateClient("billing", *secret + "x");
  EXPECT_EQ(bad.status().code(), StatusCode::kPermissionDenied);
  EXPECT_EQ(bad.status().message(), "invalid client credentials");
  // An unknown client gets the same answer.
  EXPECT_EQ(identity_.authenticateClient("ghost", *secret).status(), bad.status());

  EXPECT_EQ(identity_.createClient("acme", {"billing"}).status().code(),
            StatusCode::kAlreadyExists);
  ASSERT_TRUE(identity_.deleteClient("acme", "billing").isOk());
  EXPECT_FALSE(identity_.authenticateClient("billing", *secret).isOk());
}

TEST_F(IdentityTest, ReservedAndInvalidClients) {
  auto r = identity_.createClient("acme", {"admin"});
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  r = identity_.createClient("acme", {"node-0123456789abcdef", ClientKind::kService});
  EXPECT_NE(r.status().message().find("reserved"), std::string::npos);
  r = identity_.createClient("acme", {"n", ClientKind::kNode});
  EXPECT_NE(r.status().message().find("/v1/nodes/register"), std::string::npos);
  r = identity_.createClient("acme", {"x", ClientKind::kService, {"admin"}});
  EXPECT_NE(r.status().message().find("bootstrap admin only"), std::string::npos);
  r = identity_.createClient("acme", {"x", ClientKind::kService, {"Bad Scope"}});
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  r = identity_.createClient("acme", {"x", ClientKind::kService, {}, /*is_public=*/true});
  EXPECT_NE(r.status().message().find("only application clients"), std::string::npos);
}

TEST_F(IdentityTest, BootstrapAdmin) {
  auto a = identity_.authenticateClient("admin", "bootstrap-admin-secret");
  ASSERT_TRUE(a.isOk());
  EXPECT_TRUE(a->is_admin);
  EXPECT_EQ(a->scopes, std::vector<std::string>{"admin"});
  EXPECT_FALSE(identity_.authenticateClient("admin", "guess").isOk());
}

TEST_F(IdentityTest, UsersAndPasswords) {
  ASSERT_TRUE(identity_.createUser("acme", "ada", "correct horse", {}).isOk());
  auto u = identity_.authenticateUser("acme", "ada", "correct horse");
  ASSERT_TRUE(u.isOk()) << u.status().toString();
  EXPECT_EQ(u->scopes, std::vector<std::string>{"discovery:read"});
  EXPECT_EQ(identity_.authenticateUser("acme", "ada", "wrong horse").status().message(),
            "invalid username or password");
  EXPECT_EQ(identity_.createUser("acme", "bob", "short", {}).code(), StatusCode::kInvalidArgument);
  ASSERT_TRUE(identity_.deleteUser("acme", "ada").isOk());
  EXPECT_FALSE(identity_.authenticateUser("acme", "ada", "correct horse").isOk());
  EXPECT_EQ(identity_.deleteUser("acme", "ada").code(), StatusCode::kNotFound);
}

TEST_F(IdentityTest, NodeRegistrationAndSecretRotation) {
  auto node = identity::NodeIdentity::generate();
  ASSERT_TRUE(node.isOk());
  auto join = identity_.createJoinToken("acme", 600, 0);
  ASSERT_TRUE(join.isOk()) << join.status().toString();
  // Stored hashed only.
  auto listed = store_.list("id/join/");
  ASSERT_TRUE(listed.isOk());
  ASSERT_EQ(listed->size(), 1u);
  EXPECT_EQ(listed->front().key.find(join->token), std::string::npos);
  EXPECT_EQ(listed->front().value.find(join->token), std::string::npos);

  auto first = identity_.registerNode(registration(*node, join->token));
  ASSERT_TRUE(first.isOk()) << first.status().toString();
  EXPECT_EQ(first->client_id, "node-" + node->id());
  EXPECT_EQ(first->account, "acme");
  EXPECT_FALSE(first->rotated);
  auto c = identity_.authenticateClient(first->client_id, first->client_secret);
  ASSERT_TRUE(c.isOk());
  EXPECT_EQ(c->kind, ClientKind::kNode);
  EXPECT_EQ(c->node_id, node->id());
  EXPECT_EQ(c->scopes, nodeScopes());

  auto second = identity_.registerNode(registration(*node, join->token));
  ASSERT_TRUE(second.isOk());
  EXPECT_TRUE(second->rotated);
  EXPECT_NE(second->client_secret, first->client_secret);
  EXPECT_FALSE(identity_.authenticateClient(first->client_id, first->client_secret).isOk());
  EXPECT_TRUE(identity_.authenticateClient(second->client_id, second->client_secret).isOk());
}

TEST_F(IdentityTest, RegistrationRefusals) {
  auto node = identity::NodeIdentity::generate();
  auto other = identity::NodeIdentity::generate();
  ASSERT_TRUE(node.isOk() && other.isOk());
  auto join = identity_.createJoinToken("acme", 600, 1);
  ASSERT_TRUE(join.isOk());

  NodeRegistration bad_sig = registration(*node, join->token);
  bad_sig.signature_hex =
      identity::toHex(other->sign(registrationMessage(node->id(), join->token)));
  auto r = identity_.registerNode(bad_sig);
  EXPECT_EQ(r.status().code(), StatusCode::kPermissionDenied);
  EXPECT_NE(r.status().message().find("signature: does not verify"), std::string::npos);

  NodeRegistration wrong_id = registration(*node, join->token);
  wrong_id.node_id = other->id();
  r = identity_.registerNode(wrong_id);
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(
      r.status().message(),
      "node_id: " + other->id() + " is not the id of public_key (its id is " + node->id() + ")");

  NodeRegistration short_key = registration(*node, join->token);
  short_key.public_key_hex = "abcd";
  EXPECT_NE(identity_.registerNode(short_key).status().message().find("expected 32 bytes"),
            std::string::npos);

  r = identity_.registerNode(registration(*node, "ej1.unknown"));
  EXPECT_EQ(r.status().message(), "join_token: not valid (unknown or revoked)");

  // max_uses 1: the first registration takes it, the second is refused. The refusals
  // above did not consume it.
  ASSERT_TRUE(identity_.registerNode(registration(*node, join->token)).isOk());
  r = identity_.registerNode(registration(*other, join->token));
  EXPECT_EQ(r.status().code(), StatusCode::kPermissionDenied);
  EXPECT_EQ(r.status().message(), "join_token: already used 1 times, its maximum");

  auto short_lived = identity_.createJoinToken("acme", 60, 0);
  ASSERT_TRUE(short_lived.isOk());
  clock_->advance(102s);
  r = identity_.registerNode(registration(*other, short_lived->token));
  EXPECT_EQ(r.status().message(), "join_token: expired 42 s ago");

  EXPECT_EQ(identity_.createJoinToken("acme", 0, 0).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(identity_.createJoinToken("acme", 60, -1).status().code(),
            StatusCode::kInvalidArgument);
}

TEST_F(IdentityTest, NodeCannotMoveAccountsSilently) {
  ASSERT_TRUE(identity_.createAccount("globex").isOk());
  auto node = identity::NodeIdentity::generate();
  ASSERT_TRUE(node.isOk());
  auto a = identity_.createJoinToken("acme", 600, 0);
  auto b = identity_.createJoinToken("globex", 600, 0);
  ASSERT_TRUE(identity_.registerNode(registration(*node, a->token)).isOk());
  auto r = identity_.registerNode(registration(*node, b->token));
  EXPECT_EQ(r.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(r.status().message().find("registered in account acme"), std::string::npos);
}

TEST_F(IdentityTest, ReadModifyWriteRetriesWhenAnotherReplicaWins) {
  auto node = identity::NodeIdentity::generate();
  auto join = identity_.createJoinToken("acme", 600, 2);
  ASSERT_TRUE(node.isOk() && join.isOk());
  store_.failNextCommits(3);
  auto r = identity_.registerNode(registration(*node, join->token));
  ASSERT_TRUE(r.isOk()) << r.status().toString();
  store_.failNextCommits(100);
  r = identity_.registerNode(registration(*node, join->token));
  EXPECT_EQ(r.status().code(), StatusCode::kAborted);
  store_.failNextCommits(0);
}

// --- the key ring ---

class KeyRingTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(identity_.createAccount("acme").isOk());
    auto secret = identity_.createClient("acme", {"svc", ClientKind::kService, {"node:call"}});
    ASSERT_TRUE(secret.isOk());
    secret_ = *secret;
    auto t = TokenService::create(store_, identity_, tokenOptions(), clock_);
    ASSERT_TRUE(t.isOk()) << t.status().toString();
    tokens_ = std::move(t).value();
  }
  std::string issue(TokenService& t) {
    OAuthRequest r;
    r.params = {
        {"grant_type", "client_credentials"}, {"client_id", "svc"}, {"client_secret", secret_}};
    OAuthReply reply = t.token(r);
    EXPECT_EQ(reply.status, 200) << reply.body.dump();
    return reply.body.value("access_token", "");
  }
  Status check(TokenService& t, const std::string& token) {
    return t.authenticate("Bearer " + token).status();
  }

  std::shared_ptr<FakeClock> clock_ = std::make_shared<FakeClock>();
  MemoryStore store_;
  IdentityService identity_{store_, fastOptions(), clock_};
  std::string secret_;
  std::unique_ptr<TokenService> tokens_;
};

TEST_F(KeyRingTest, PrivateKeysAreSealedInTheStore) {
  auto kv = store_.get("tok/keys");
  ASSERT_TRUE(kv.isOk());
  EXPECT_EQ(kv->value.find("PRIVATE KEY"), std::string::npos);
  EXPECT_EQ(tokens_->publishedKids().size(), 1u);

  TokenOptions other = tokenOptions();
  other.kek = std::string(32, 'x');
  auto wrong = TokenService::create(store_, identity_, other, clock_);
  ASSERT_FALSE(wrong.isOk());
  EXPECT_EQ(wrong.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(wrong.status().message().find("does not decrypt with this key-encryption key"),
            std::string::npos);

  other.kek = "short";
  EXPECT_EQ(TokenService::create(store_, identity_, other, clock_).status().code(),
            StatusCode::kInvalidArgument);
}

TEST_F(KeyRingTest, RotationPublishesBeforeUseAndKeepsUntilExpiry) {
  const std::string first = tokens_->signingKid();
  ASSERT_FALSE(first.empty());
  std::string old_token = issue(*tokens_);

  // Nothing is due before period - lead.
  clock_->advance(22h);
  ASSERT_TRUE(tokens_->maintain().isOk());
  EXPECT_EQ(tokens_->publishedKids(), std::vector<std::string>{first});

  // One lead before the period ends, the next key is published but does not sign yet.
  clock_->advance(1h);
  ASSERT_TRUE(tokens_->maintain().isOk());
  auto kids = tokens_->publishedKids();
  ASSERT_EQ(kids.size(), 2u);
  const std::string next = kids[1];
  EXPECT_EQ(kids[0], first);
  EXPECT_EQ(tokens_->signingKid(), first);
  auto jwks = tokens_->jwks();
  ASSERT_EQ(jwks["keys"].size(), 2u);
  EXPECT_EQ(jwks["keys"][1]["kid"], next);

  // A token of the old key, issued just before the switch.
  clock_->advance(1h - 10s);
  std::string last_old = issue(*tokens_);
  clock_->advance(10s);
  EXPECT_EQ(tokens_->signingKid(), next);  // no maintenance needed to switch
  std::string new_token = issue(*tokens_);
  EXPECT_TRUE(check(*tokens_, new_token).isOk());
  ASSERT_TRUE(tokens_->maintain().isOk());
  EXPECT_EQ(tokens_->publishedKids().size(), 2u);  // the old one still verifies
  EXPECT_TRUE(check(*tokens_, last_old).isOk()) << check(*tokens_, last_old).toString();

  // access ttl (300 s) + leeway (30 s) after the switch, the old key goes.
  clock_->advance(300s);
  ASSERT_TRUE(tokens_->maintain().isOk());
  EXPECT_EQ(tokens_->publishedKids().size(), 2u);
  clock_->advance(30s);
  ASSERT_TRUE(tokens_->maintain().isOk());
  EXPECT_EQ(tokens_->publishedKids(), std::vector<std::string>{next});
  Status s = check(*tokens_, last_old);
  EXPECT_EQ(s.code(), StatusCode::kPermissionDenied);
}

TEST_F(KeyRingTest, ReplicasShareTheRing) {
  auto b = TokenService::create(store_, identity_, tokenOptions(), clock_);
  ASSERT_TRUE(b.isOk());
  EXPECT_EQ((*b)->signingKid(), tokens_->signingKid());
  EXPECT_TRUE(check(**b, issue(*tokens_)).isOk());

  // Both maintain at the same time: one next key, not two.
  clock_->advance(23h);
  ASSERT_TRUE(tokens_->maintain().isOk());
  ASSERT_TRUE((*b)->maintain().isOk());
  EXPECT_EQ(tokens_->publishedKids(), (*b)->publishedKids());
  EXPECT_EQ(tokens_->publishedKids().size(), 2u);

  // A key B has not seen yet (B missed its maintenance) is found on first use.
  clock_->advance(1h);
  clock_->advance(24h - 1h);
  ASSERT_TRUE(tokens_->maintain().isOk());  // A retires the first and adds a third key
  clock_->advance(1h);
  std::string t = issue(*tokens_);
  EXPECT_TRUE(check(**b, t).isOk()) << check(**b, t).toString();
}

TEST_F(KeyRingTest, AuthenticateExplainsRefusals) {
  std::string t = issue(*tokens_);
  EXPECT_EQ(tokens_->authenticate("").status().message(),
            "no access token: send Authorization: Bearer <token>");
  EXPECT_EQ(tokens_->authenticate("Basic abc").status().message(),
            "Authorization scheme is not Bearer");
  auto wrong_aud = tokens_->authenticate("Bearer " + t, kNodeAudience);
  EXPECT_EQ(wrong_aud.status().message(), "audience edge-node not in [edge-backend]");
  clock_->advance(301s + 30s);
  EXPECT_EQ(check(*tokens_, t).message(), "token expired 31 s ago");
}

TEST_F(KeyRingTest, RefreshFamiliesExpireAndAreSwept) {
  auto cli = identity_.createClient("acme", {"cli", ClientKind::kApplication, {}});
  ASSERT_TRUE(cli.isOk());
  ASSERT_TRUE(identity_.createUser("acme", "ada", "correct horse", {}).isOk());
  OAuthRequest login;
  login.params = {{"grant_type", "password"},
                  {"client_id", "cli"},
                  {"client_secret", *cli},
                  {"username", "ada"},
                  {"password", "correct horse"}};
  OAuthReply first = tokens_->token(login);
  ASSERT_EQ(first.status, 200) << first.body.dump();
  ASSERT_TRUE(tokens_->token(login).status == 200);  // a second session
  EXPECT_EQ(store_.list("tok/refresh/")->size(), 2u);

  clock_->advance(std::chrono::hours(24 * 30));
  OAuthRequest refresh;
  refresh.params = {{"grant_type", "refresh_token"},
                    {"client_id", "cli"},
                    {"client_secret", *cli},
                    {"refresh_token", first.body["refresh_token"]}};
  OAuthReply r = tokens_->token(refresh);
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(r.body["error_description"], "refresh token expired");
  EXPECT_EQ(store_.list("tok/refresh/")->size(), 1u);  // deleted when presented
  ASSERT_TRUE(tokens_->maintain().isOk());             // the hourly sweep takes the other
  EXPECT_EQ(store_.list("tok/refresh/")->size(), 0u);
}

// Family ids and jtis are random base64url; 1 in 32 starts with '-' or '_'. Such refresh
// tokens were refused as unknown and such access tokens could not be revoked, so this
// draws until it has one of each (32 draws on average; 4096 miss with p < 1e-56).
bool leadsWithPunctuation(const std::string& id) {
  return !id.empty() && (id[0] == '-' || id[0] == '_');
}

TEST_F(KeyRingTest, RandomIdsStartingWithPunctuationWork) {
  auto cli = identity_.createClient("acme", {"cli", ClientKind::kApplication, {}});
  ASSERT_TRUE(cli.isOk());
  ASSERT_TRUE(identity_.createUser("acme", "ada", "correct horse", {}).isOk());
  OAuthRequest login;
  login.params = {{"grant_type", "password"},
                  {"client_id", "cli"},
                  {"client_secret", *cli},
                  {"username", "ada"},
                  {"password", "correct horse"}};
  std::string refresh_token;
  for (int i = 0; i < 4096 && refresh_token.empty(); ++i) {
    OAuthReply r = tokens_->token(login);
    ASSERT_EQ(r.status, 200) << r.body.dump();
    std::string t = r.body["refresh_token"];  // ert1.<family>.<secret>
    if (leadsWithPunctuation(t.substr(5))) refresh_token = t;
  }
  ASSERT_FALSE(refresh_token.empty());
  OAuthRequest refresh;
  refresh.params = {{"grant_type", "refresh_token"},
                    {"client_id", "cli"},
                    {"client_secret", *cli},
                    {"refresh_token", refresh_token}};
  OAuthReply r = tokens_->token(refresh);
  EXPECT_EQ(r.status, 200) << r.body.dump();

  std::string access;
  for (int i = 0; i < 4096 && access.empty(); ++i) {
    std::string t = issue(*tokens_);
    size_t d1 = t.find('.'), d2 = t.find('.', d1 + 1);
    auto payload = jwt::base64UrlDecode(t.substr(d1 + 1, d2 - d1 - 1));
    ASSERT_TRUE(payload.isOk());
    if (leadsWithPunctuation(nlohmann::json::parse(*payload).value("jti", ""))) access = t;
  }
  ASSERT_FALSE(access.empty());
  OAuthRequest revoke;
  revoke.params = {{"token", access}, {"client_id", "svc"}, {"client_secret", secret_}};
  EXPECT_EQ(tokens_->revoke(revoke).status, 200);
  EXPECT_EQ(check(*tokens_, access).message(), "token was revoked");
}

// --- rate limits ---

TEST(RateLimiterTest, BucketsPerClientAndAddress) {
  auto clock = std::make_shared<FakeClock>();
  RateLimiter::Options o;
  o.client_rate = 1;
  o.client_burst = 2;
  o.address_rate = 10;
  o.address_burst = 3;
  RateLimiter l(o, clock);
  EXPECT_TRUE(l.admit("198.18.0.1", "a").allowed);
  EXPECT_TRUE(l.admit("198.18.0.1", "a").allowed);
  auto d = l.admit("198.18.0.1", "a");
  EXPECT_FALSE(d.allowed);
  EXPECT_EQ(d.retry_after, 1s);
  EXPECT_EQ(d.message, "too many token requests for client a; retry in 1 s");
  // Another client from the same address still has the address's third token.
  EXPECT_TRUE(l.admit("198.18.0.1", "b").allowed);
  d = l.admit("198.18.0.1", "c");
  EXPECT_FALSE(d.allowed);
  EXPECT_NE(d.message.find("from 198.18.0.1"), std::string::npos);
  clock->advance(1s);
  EXPECT_TRUE(l.admit("198.18.0.1", "a").allowed);
}

TEST(RateLimiterTest, ATinyRateWaitsAtMostADay) {
  auto clock = std::make_shared<FakeClock>();
  RateLimiter::Options o;
  o.client_rate = 1e-300;  // 1e300 s to the next token: more than an int64_t of seconds
  o.client_burst = 1;
  RateLimiter l(o, clock);
  EXPECT_TRUE(l.admit("198.18.0.1", "a").allowed);
  auto d = l.admit("198.18.0.1", "a");
  EXPECT_FALSE(d.allowed);
  EXPECT_EQ(d.retry_after, 24h);
  EXPECT_EQ(d.message, "too many token requests for client a; retry in 86400 s");
}

TEST(RateLimiterTest, MemoryIsBounded) {
  auto clock = std::make_shared<FakeClock>();
  RateLimiter::Options o;
  o.max_buckets = 100;
  RateLimiter l(o, clock);
  for (int i = 0; i < 1000; ++i)
    l.admit("198.18." + std::to_string(i / 256) + "." + std::to_string(i % 256),
            "c" + std::to_string(i));
  EXPECT_LE(l.bucketCount(), 200u);
}

}  // namespace
}  // namespace edge::backend
