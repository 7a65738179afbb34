// NodeClient: the node API (docs/api.md) as edgectl uses it, on common/http.
//
// Every answer is checked here once: 2xx JSON comes back as Json, anything else as a
// Status whose code maps to edgectl's exit code (cli/errors.h), with the node's message
// and field errors. Transport failures say which node could not be reached and why.
//
// Thread-safety: const methods; each call opens its own connection.
#pragma once

#include <chrono>
#include <functional>
#include <string>
#include <string_view>

#include "common/http.h"
#include "common/json.h"
#include "common/status.h"

namespace edge::cli {

struct NodeOptions {
  // Connect timeout, and the longest wait for the next byte of an answer.
  std::chrono::milliseconds timeout{std::chrono::seconds(30)};
  // Followed streams and image uploads wait without limit unless the user set --timeout.
  bool timeout_given = false;
};

struct Call {
  std::string method = "GET";
  std::string path;  // escaped, with the query
  std::string body;
  std::string content_type;
  http::Headers headers;
  std::string error_label;  // put before each field error ("m.yaml: doc 1: ...")
};

class NodeClient {
 public:
  // `host`: "/path", "unix:///path", "http://host:port" or "tcp://host:port". A bad
  // value is kInvalidArgument saying which forms are allowed.
  static Result<NodeClient> open(std::string_view host, NodeOptions options = {});

  // How the node is named in messages: "unix:///run/edged/edged.sock", "http://h:8083".
  const std::string& where() const { return where_; }

  // A request whose 2xx answer is JSON (an empty body reads as {}). A 2xx answer that
  // is not JSON is kInternal.
  Result<json::Json> call(const Call& c) const;
  Result<json::Json> get(const std::string& path) const { return call({.path = path}); }

  // GET whose 2xx body is handed to `sink` as it arrives (logs, events). Returns OK when
  // the node ends the answer; `sink` returning false stops reading (also OK).
  Status stream(const std::string& path, bool follow,
                const std::function<bool(std::string_view)>& sink) const;

  // POST of a body produced by `source` (chunked, never held whole); the answer as JSON.
  Result<json::Json> upload(const std::string& path, const std::string& content_type,
                            std::function<Result<size_t>(char*, size_t)> source) const;

  // Any request; the raw answer whatever its status (transport errors are the Status).
  Result<http::Response> send(http::Request req) const;

 private:
  NodeClient(http::Endpoint endpoint, std::string where, NodeOptions options);
  std::chrono::milliseconds streamTimeout() const;

  http::Client client_;
  std::string where_;
  NodeOptions options_;
};

}  // namespace edge::cli
