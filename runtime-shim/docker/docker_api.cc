#include "runtime-shim/docker/docker_api.h"

namespace edge::runtime::docker {

http::Request DockerApi::request(std::string method, std::string path) const {
  http::Request req;
  req.method = std::move(method);
  req.path = "/v" + version_.toString() + path;
  req.read_timeout = kDefaultReadTimeout;
  return req;
}

Result<http::Response> DockerApi::send(const http::Request& req, std::string_view what) const {
  Result<http::Response> r = client_.send(req);
  if (!r.isOk()) return r.status().withContext(what);
  return r;
}

Result<Json> DockerApi::sendForJson(const http::Request& req, std::string_view what) const {
  ASSIGN_OR_RETURN(http::Response res, send(req, what));
  if (!res.isSuccess()) return statusFromHttp(res.status, res.body, what);
  Result<Json> j = json::parse(res.body, "reply");
  // A daemon that answers 2xx with something else is broken, not our caller.
  if (!j.isOk()) return Status::internal(std::string(what) + ": " + j.status().message());
  return j;
}

Status DockerApi::sendExpectOk(const http::Request& req, std::string_view what, int also_ok) const {
  ASSIGN_OR_RETURN(http::Response res, send(req, what));
  if (res.isSuccess() || (also_ok != 0 && res.status == also_ok)) return Status::ok();
  return statusFromHttp(res.status, res.body, what);
}

void setJsonBody(http::Request* req, const Json& body) {
  req->body = json::dump(body);
  req->content_type = "application/json";
}

}  // namespace edge::runtime::docker
