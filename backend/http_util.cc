#include "backend/http_util.h"

#include "common/http_status.h"

namespace edge::backend {

void replyJson(httplib::Response& res, int status, const nlohmann::json& body) {
  res.status = status;
  res.set_content(body.dump(), "application/json");
}

void replyError(httplib::Response& res, int status, std::string_view error,
                std::string_view message) {
  replyJson(res, status, {{"error", error}, {"message", message}});
}

void replyError(httplib::Response& res, const Status& s) {
  replyError(res, http::httpStatusFor(s), statusCodeName(s.code()), s.message());
}

Result<nlohmann::json> parseJsonBody(const httplib::Request& req) {
  if (req.body.empty())
    return Status::invalidArgument("request body: expected a JSON object, got nothing");
  nlohmann::json j = nlohmann::json::parse(req.body, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return Status::invalidArgument("request body: not valid JSON");
  if (!j.is_object()) return Status::invalidArgument("request body: expected a JSON object");
  return j;
}

Result<Caller> authorize(Authenticator& auth, const httplib::Request& req, httplib::Response& res,
                         std::string_view scope) {
  auto caller = auth.authenticate(req.get_header_value("Authorization"));
  if (!caller.isOk()) {
    res.set_header("WWW-Authenticate", "Bearer error=\"invalid_token\", error_description=\"" +
                                           caller.status().message() + "\"");
    replyError(res, 401, "invalid_token", caller.status().message());
    return caller.status();
  }
  if (!scope.empty() && !caller->hasScope(scope)) {
    std::string msg = "this call needs the scope \"" + std::string(scope) + "\"; the token has: ";
    std::string have;
    for (const auto& s : caller->scopes) have += (have.empty() ? "" : " ") + s;
    msg += have.empty() ? "none" : have;
    res.set_header("WWW-Authenticate",
                   "Bearer error=\"insufficient_scope\", scope=\"" + std::string(scope) + "\"");
    replyError(res, 403, "insufficient_scope", msg);
    return Status::permissionDenied(msg);
  }
  return caller;
}

}  // namespace edge::backend
