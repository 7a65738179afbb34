// The HTTP face of the identity and token services: OAuth 2.0 endpoints, OpenID discovery
// and JWKS, node registration and the account administration REST API.
//
//   POST   /oauth2/token                          form; client_credentials | password |
//                                                 refresh_token (RFC 6749), rate-limited
//   POST   /oauth2/revoke                         form; RFC 7009, rate-limited
//   GET    /.well-known/openid-configuration      (also /.well-known/oauth-authorization-server)
//   GET    /.well-known/jwks.json                 Cache-Control: max-age
//   POST   /v1/nodes/register                     {"join_token","node_id","public_key",
//                                                  "signature"} -> {"client_id",
//                                                  "client_secret","account"}
//   POST   /v1/accounts                           {"id"}                       admin
//   POST   /v1/accounts/{a}/clients               {"id","kind","scopes","public"} -> secret
//   DELETE /v1/accounts/{a}/clients/{id}
//   POST   /v1/accounts/{a}/users                 {"name","password","scopes"}
//   DELETE /v1/accounts/{a}/users/{name}
//   POST   /v1/accounts/{a}/join-tokens           {"ttl_seconds","max_uses"} -> token
// The /v1/accounts/{a}/... routes take a bearer token with scope "admin", or
// "account:admin" of account {a}.
//
// OAuth endpoints answer RFC 6749 5.2 errors ({"error","error_description"}, 400 or 401
// with WWW-Authenticate); 429 carries Retry-After and error "slow_down". The REST routes
// answer backend/http_util.h errors ({"error","message"}).
//
// Thread-safety: the services are used from the server's handler threads at once; they
// must outlive the server.
#pragma once

#include "backend/identity.h"
#include "backend/rate_limit.h"
#include "backend/tokens.h"
#include "common/http_server.h"

namespace edge::backend {

void registerIdentityApi(http::ApiServer& server, IdentityService& identity, TokenService& tokens,
                         RateLimiter& limiter);

// Decodes an application/x-www-form-urlencoded body ('+' is a space, %XX escapes);
// kInvalidArgument naming a bad escape.
Result<std::multimap<std::string, std::string>> parseForm(std::string_view body);

}  // namespace edge::backend
