#include "backend/identity_api.h"

#include "backend/http_util.h"
#include "common/http_server.h"
#include "common/json.h"
#include "common/jwt.h"
#include "common/log.h"

namespace edge::backend {

namespace {

using nlohmann::json;

int hexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

Result<std::string> formDecode(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '+') {
      out += ' ';
    } else if (s[i] == '%') {
      int hi = i + 2 < s.size() ? hexValue(s[i + 1]) : -1;
      int lo = i + 2 < s.size() ? hexValue(s[i + 2]) : -1;
      if (hi < 0 || lo < 0)
        return Status::invalidArgument("bad %-escape at offset " + std::to_string(i));
      out += static_cast<char>(hi * 16 + lo);
      i += 2;
    } else {
      out += s[i];
    }
  }
  return out;
}

void replyOAuth(httplib::Response& res, const OAuthReply& r) {
  // RFC 6749 5.1: token responses must not be cached.
  res.set_header("Cache-Control", "no-store");
  res.set_header("Pragma", "no-cache");
  if (r.basic_challenge) res.set_header("WWW-Authenticate", "Basic realm=\"edge-backend\"");
  replyJson(res, r.status, r.body);
}

// Builds the OAuthRequest of a form POST; false (after replying) when it is malformed.
bool readOAuthRequest(const httplib::Request& req, httplib::Response& res, OAuthRequest* out) {
  std::string type = req.get_header_value("Content-Type");
  if (type.rfind("application/x-www-form-urlencoded", 0) != 0) {
    replyOAuth(
        res,
        {400,
         {{"error", "invalid_request"},
          {"error_description", "expected a body of type application/x-www-form-urlencoded, got " +
                                    (type.empty() ? std::string("none") : type)}}});
    return false;
  }
  auto form = parseForm(req.body);
  if (!form.isOk()) {
    replyOAuth(res, {400,
                     {{"error", "invalid_request"},
                      {"error_description", "request body: " + form.status().message()}}});
    return false;
  }
  out->params = std::move(form).value();
  out->remote_address = req.remote_addr;
  std::string auth = req.get_header_value("Authorization");
  if (auth.size() > 6 && (auth.compare(0, 6, "Basic ") == 0 || auth.compare(0, 6, "basic ") == 0)) {
    // RFC 6749 2.3.1: id and secret are form-encoded before Basic encodes them.
    auto raw = jwt::base64Decode(auth.substr(6));
    size_t colon = raw.isOk() ? raw->find(':') : std::string::npos;
    auto id = colon == std::string::npos ? Result<std::string>(Status::invalidArgument(""))
                                         : formDecode(raw->substr(0, colon));
    auto secret = colon == std::string::npos ? Result<std::string>(Status::invalidArgument(""))
                                             : formDecode(raw->substr(colon + 1));
    if (!id.isOk() || !secret.isOk()) {
      replyOAuth(res, {401,
                       {{"error", "invalid_client"},
                        {"error_description",
                         "malformed HTTP Basic credentials (base64 of client_id:client_secret)"}},
                       true});
      return false;
    }
    out->has_basic = true;
    out->basic_id = std::move(id).value();
    out->basic_secret = std::move(secret).value();
  }
  return true;
}

bool rateLimited(RateLimiter& limiter, const httplib::Request& req, httplib::Response& res,
                 const std::string& client_id, bool oauth) {
  auto d = limiter.admit(req.remote_addr, client_id);
  if (d.allowed) return false;
  res.set_header("Retry-After", std::to_string(d.retry_after.count()));
  if (oauth)
    replyOAuth(res, {429, {{"error", "slow_down"}, {"error_description", d.message}}});
  else
    replyError(res, 429, "ResourceExhausted", d.message);
  LOG_WARN("tokens.rate_limited").kv("address", req.remote_addr).kv("client", client_id);
  return true;
}

// The caller may manage account `a`: the bootstrap admin, or an account:admin of `a`.
bool authorizeAccount(TokenService& tokens, const httplib::Request& req, httplib::Response& res,
                      const std::string& account) {
  auto caller = authorize(tokens, req, res, "");
  if (!caller.isOk()) return false;
  if (caller->isAdmin() || (caller->account == account && caller->hasScope(kAccountAdminScope)))
    return true;
  replyError(res, 403, "insufficient_scope",
             "managing account " + account + " needs the scope \"admin\" or \"" +
                 std::string(kAccountAdminScope) + "\" of that account");
  return false;
}

template <typename T>
bool ok(const Result<T>& r, httplib::Response& res) {
  if (r.isOk()) return true;
  replyError(res, r.status());
  return false;
}

}  // namespace

Result<std::multimap<std::string, std::string>> parseForm(std::string_view body) {
  std::multimap<std::string, std::string> out;
  size_t i = 0;
  while (i <= body.size() && !body.empty()) {
    size_t amp = body.find('&', i);
    if (amp == std::string_view::npos) amp = body.size();
    std::string_view pair = body.substr(i, amp - i);
    if (!pair.empty()) {
      size_t eq = pair.find('=');
      auto name = formDecode(pair.substr(0, eq));
      if (!name.isOk()) return name.status();
      auto value = formDecode(eq == std::string_view::npos ? "" : pair.substr(eq + 1));
      if (!value.isOk()) return Status::invalidArgument(*name + ": " + value.status().message());
      out.emplace(std::move(name).value(), std::move(value).value());
    }
    i = amp + 1;
  }
  return out;
}

void registerIdentityApi(http::ApiServer& server, IdentityService& identity, TokenService& tokens,
                         RateLimiter& limiter) {
  auto& s = server;

  s.post("/oauth2/token", [&](const httplib::Request& req, httplib::Response& res) {
    OAuthRequest r;
    if (!readOAuthRequest(req, res, &r)) return;
    if (rateLimited(limiter, req, res, oauthClientId(r), true)) return;
    replyOAuth(res, tokens.token(r));
  });

  s.post("/oauth2/revoke", [&](const httplib::Request& req, httplib::Response& res) {
    OAuthRequest r;
    if (!readOAuthRequest(req, res, &r)) return;
    if (rateLimited(limiter, req, res, oauthClientId(r), true)) return;
    replyOAuth(res, tokens.revoke(r));
  });

  auto discovery = [&](const httplib::Request&, httplib::Response& res) {
    res.set_header("Cache-Control", "public, max-age=3600");
    replyJson(res, 200, tokens.discoveryDocument());
  };
  s.get("/.well-known/openid-configuration", discovery);
  s.get("/.well-known/oauth-authorization-server", discovery);

  s.get("/.well-known/jwks.json", [&](const httplib::Request&, httplib::Response& res) {
    // Verifiers may cache it this long; the rotation lead is longer, so they fetch a new
    // key before it signs anything.
    res.set_header("Cache-Control",
                   "public, max-age=" + std::to_string(tokens.options().jwks_max_age.count()));
    res.set_content(tokens.jwks().dump(), "application/jwk-set+json");
  });

  s.post("/v1/nodes/register", [&](const httplib::Request& req, httplib::Response& res) {
    if (rateLimited(limiter, req, res, "", false)) return;
    auto body = parseJsonBody(req);
    if (!ok(body, res)) return;
    NodeRegistration reg;
    for (auto [field, target] :
         {std::pair{"join_token", &reg.join_token}, std::pair{"node_id", &reg.node_id},
          std::pair{"public_key", &reg.public_key_hex},
          std::pair{"signature", &reg.signature_hex}}) {
      auto v = edge::json::getString(*body, field, "request body");
      if (!ok(v, res)) return;
      *target = std::move(v).value();
    }
    auto node = identity.registerNode(reg);
    if (!ok(node, res)) return;
    LOG_INFO("identity.node_registered")
        .kv("node", reg.node_id)
        .kv("account", node->account)
        .kv("rotated", node->rotated);
    replyJson(res, 200,
              {{"client_id", node->client_id},
               {"client_secret", node->client_secret},
               {"account", node->account}});
  });

  s.post("/v1/accounts", [&](const httplib::Request& req, httplib::Response& res) {
    if (!authorize(tokens, req, res, "admin").isOk()) return;
    auto body = parseJsonBody(req);
    if (!ok(body, res)) return;
    auto id = edge::json::getString(*body, "id", "request body");
    if (!ok(id, res)) return;
    Status st = identity.createAccount(*id);
    if (!st.isOk()) return replyError(res, st);
    replyJson(res, 201, {{"id", *id}});
  });

  s.post("/v1/accounts/{account}/clients",
         [&](const httplib::Request& req, httplib::Response& res, const http::PathParams& p) {
           std::string account = std::string(p[0]);
           if (!authorizeAccount(tokens, req, res, account)) return;
           auto body = parseJsonBody(req);
           if (!ok(body, res)) return;
           auto id = edge::json::getString(*body, "id", "request body");
           auto kind_name = edge::json::getString(*body, "kind", "request body", "service");
           auto scopes = edge::json::getStringArray(*body, "scopes", "request body");
           auto is_public = edge::json::getBool(*body, "public", "request body", false);
           if (!ok(id, res) || !ok(kind_name, res) || !ok(scopes, res) || !ok(is_public, res))
             return;
           auto kind = parseClientKind(*kind_name);
           if (!ok(kind, res)) return;
           NewClient c{*id, *kind, *scopes, *is_public};
           auto secret = identity.createClient(account, c);
           if (!ok(secret, res)) return;
           json reply = {
               {"client_id", *id}, {"account", account}, {"kind", *kind_name}, {"scopes", *scopes}};
           if (!secret->empty()) reply["client_secret"] = *secret;
           replyJson(res, 201, reply);
         });

  s.del("/v1/accounts/{account}/clients/{client}",
        [&](const httplib::Request& req, httplib::Response& res, const http::PathParams& p) {
          std::string account = std::string(p[0]);
          if (!authorizeAccount(tokens, req, res, account)) return;
          Status st = identity.deleteClient(account, std::string(p[1]));
          if (!st.isOk()) return replyError(res, st);
          res.status = 204;
        });

  s.post("/v1/accounts/{account}/users",
         [&](const httplib::Request& req, httplib::Response& res, const http::PathParams& p) {
           std::string account = std::string(p[0]);
           if (!authorizeAccount(tokens, req, res, account)) return;
           auto body = parseJsonBody(req);
           if (!ok(body, res)) return;
           auto name = edge::json::getString(*body, "name", "request body");
           auto password = edge::json::getString(*body, "password", "request body");
           auto scopes = edge::json::getStringArray(*body, "scopes", "request body");
           if (!ok(name, res) || !ok(password, res) || !ok(scopes, res)) return;
           Status st = identity.createUser(account, *name, *password, *scopes);
           if (!st.isOk()) return replyError(res, st);
           replyJson(res, 201, {{"name", *name}, {"account", account}});
         });

  s.del("/v1/accounts/{account}/users/{user}",
        [&](const httplib::Request& req, httplib::Response& res, const http::PathParams& p) {
          std::string account = std::string(p[0]);
          if (!authorizeAccount(tokens, req, res, account)) return;
          Status st = identity.deleteUser(account, std::string(p[1]));
          if (!st.isOk()) return replyError(res, st);
          res.status = 204;
        });

  s.post("/v1/accounts/{account}/join-tokens",
         [&](const httplib::Request& req, httplib::Response& res, const http::PathParams& p) {
           std::string account = std::string(p[0]);
           if (!authorizeAccount(tokens, req, res, account)) return;
           auto body = parseJsonBody(req);
           if (!ok(body, res)) return;
           auto ttl = edge::json::getInt(*body, "ttl_seconds", "request body", 3600);
           auto max_uses = edge::json::getInt(*body, "max_uses", "request body", 0);
           if (!ok(ttl, res) || !ok(max_uses, res)) return;
           auto t = identity.createJoinToken(account, *ttl, *max_uses);
           if (!ok(t, res)) return;
           replyJson(res, 201,
                     {{"join_token", t->token},
                      {"account", account},
                      {"expires_at", t->expires_at},
                      {"max_uses", t->max_uses}});
         });
}

}  // namespace edge::backend
