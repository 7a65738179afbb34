// Small helpers shared by the backend's HTTP handlers: JSON replies, errors as
// {"error": ..., "message": ...} with the HTTP status a Status code maps to, bearer
// authentication with the 401/403 split, and JSON body parsing that names what is wrong.
#pragma once

#include <httplib.h>

#include <string>
#include <string_view>

#include "backend/auth.h"
#include "common/json.h"
#include "common/status.h"

namespace edge::backend {

void replyJson(httplib::Response& res, int status, const nlohmann::json& body);
// {"error": "<code name>", "message": "<status message>"} with the status
// common/http_status.h gives s's code.
void replyError(httplib::Response& res, const Status& s);
void replyError(httplib::Response& res, int status, std::string_view error,
                std::string_view message);

// Parses the request body as a JSON object; InvalidArgument naming the problem (not
// JSON, not an object, too large) otherwise.
Result<nlohmann::json> parseJsonBody(const httplib::Request& req);

// Authenticates the request's bearer token and checks `scope` ("" = any valid token).
// On failure it has already replied (401 with WWW-Authenticate, or 403 naming the
// missing scope) and returns the error; the handler just returns.
Result<Caller> authorize(Authenticator& auth, const httplib::Request& req, httplib::Response& res,
                         std::string_view scope);

}  // namespace edge::backend
