#include "cli/node_client.h"

#include "cli/errors.h"

#ifndef EDGE_VERSION
#define EDGE_VERSION "0.0.0"
#endif

namespace edge::cli {

Result<NodeClient> NodeClient::open(std::string_view host, NodeOptions options) {
  ASSIGN_OR_RETURN(http::Endpoint ep, http::Endpoint::parse(host));
  std::string where = ep.kind == http::Endpoint::Kind::kUnix
                          ? "unix://" + ep.path
                          : "http://" + ep.host + ":" + std::to_string(ep.port);
  return NodeClient(std::move(ep), std::move(where), options);
}

NodeClient::NodeClient(http::Endpoint endpoint, std::string where, NodeOptions options)
    : client_(std::move(endpoint), http::ClientOptions{.connect_timeout = options.timeout,
                                                       .write_timeout = options.timeout}),
      where_(std::move(where)),
      options_(options) {}

std::chrono::milliseconds NodeClient::streamTimeout() const {
  return options_.timeout_given ? options_.timeout : std::chrono::milliseconds(0);
}

Result<http::Response> NodeClient::send(http::Request req) const {
  req.headers.emplace("User-Agent", "edgectl/" EDGE_VERSION);
  Result<http::Response> r = client_.send(req);
  if (!r.isOk()) return reachError(r.status(), where_);
  return r;
}

namespace {

Result<json::Json> parseAnswer(const http::Response& r, const std::string& label) {
  if (!r.isSuccess()) return statusFromResponse(r, label);
  if (r.body.find_first_not_of(" \t\r\n") == std::string::npos) return json::Json::object();
  Result<json::Json> j = json::parse(r.body, "the node's answer");
  if (!j.isOk()) return Status::internal(j.status().message());
  return j;
}

}  // namespace

Result<json::Json> NodeClient::call(const Call& c) const {
  http::Request req{.method = c.method,
                    .path = c.path,
                    .headers = c.headers,
                    .body = c.body,
                    .content_type = c.content_type,
                    .read_timeout = options_.timeout};
  ASSIGN_OR_RETURN(http::Response r, send(std::move(req)));
  return parseAnswer(r, c.error_label);
}

Status NodeClient::stream(const std::string& path, bool follow,
                          const std::function<bool(std::string_view)>& sink) const {
  bool stopped = false;
  http::Request req{
      .method = "GET", .path = path, .read_timeout = follow ? streamTimeout() : options_.timeout};
  req.body_sink = [&](const char* data, size_t len) {
    if (!sink(std::string_view(data, len))) stopped = true;
    return !stopped;
  };
  Result<http::Response> r = send(std::move(req));
  if (!r.isOk()) return stopped ? Status::ok() : r.status();
  if (!r->isSuccess()) return statusFromResponse(*r);
  return Status::ok();
}

Result<json::Json> NodeClient::upload(const std::string& path, const std::string& content_type,
                                      std::function<Result<size_t>(char*, size_t)> source) const {
  http::Request req{.method = "POST",
                    .path = path,
                    .content_type = content_type,
                    .read_timeout = streamTimeout()};
  req.body_source = std::move(source);
  ASSIGN_OR_RETURN(http::Response r, send(std::move(req)));
  return parseAnswer(r, "");
}

}  // namespace edge::cli
