// DockerApi: versioned requests to one Docker-compatible daemon.
//
// Prefixes paths with the negotiated "/v<major.minor>", adds the operation to transport
// errors ("inspect container abc: cannot connect to unix:///var/run/docker.sock: ...")
// and maps non-2xx replies with statusFromHttp().
//
// Thread-safety: immutable after construction; every request opens its own connection
// (common/http), so long waits and follows never hold up other calls. Do not add a
// lock around send().
#pragma once

#include <chrono>
#include <string>
#include <string_view>

#include "common/http.h"
#include "runtime-shim/docker/docker_json.h"

namespace edge::runtime::docker {

inline constexpr std::chrono::milliseconds kDefaultReadTimeout{std::chrono::seconds(60)};

class DockerApi {
 public:
  DockerApi(http::Client client, ApiVersion version)
      : client_(std::move(client)), version_(version) {}

  ApiVersion version() const { return version_; }
  const http::Endpoint& endpoint() const { return client_.endpoint(); }

  // A request for `path` ("/containers/json?all=1") under the version prefix.
  http::Request request(std::string method, std::string path) const;

  // Sends; transport errors carry `what` as context. Any HTTP status is returned.
  Result<http::Response> send(const http::Request& req, std::string_view what) const;

  // Sends and requires a 2xx reply whose body is JSON.
  Result<Json> sendForJson(const http::Request& req, std::string_view what) const;
  Result<Json> getJson(std::string path, std::string_view what) const {
    return sendForJson(request("GET", std::move(path)), what);
  }

  // Sends and requires 2xx (or `also_ok`, e.g. 304 for an idempotent stop).
  Status sendExpectOk(const http::Request& req, std::string_view what, int also_ok = 0) const;

 private:
  http::Client client_;
  ApiVersion version_;
};

// A request body of JSON.
void setJsonBody(http::Request* req, const Json& body);

}  // namespace edge::runtime::docker
