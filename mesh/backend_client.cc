#include "mesh/backend_client.h"

#include <sys/stat.h>

#include "common/fs.h"
#include "common/log.h"

namespace edge::mesh {

using nlohmann::json;

namespace {

constexpr const char* kCredentialsFile = "backend-credentials.json";

std::string trim(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r' || s.back() == ' ')) s.pop_back();
  size_t i = 0;
  while (i < s.size() && s[i] == ' ') ++i;
  return s.substr(i);
}

Status statusForHttp(int status, const std::string& what, const json& body) {
  std::string msg = what + ": ";
  if (body.is_object()) {
    if (body.contains("message") && body["message"].is_string())
      msg += body["message"].get<std::string>();
    else if (body.contains("error_description") && body["error_description"].is_string())
      msg += body["error_description"].get<std::string>();
    else if (body.contains("error") && body["error"].is_string())
      msg += body["error"].get<std::string>();
    else
      msg += "HTTP " + std::to_string(status);
  } else {
    msg += "HTTP " + std::to_string(status);
  }
  if (status == 400) return Status::invalidArgument(msg);
  if (status == 401 || status == 403) return Status::permissionDenied(msg);
  if (status == 404) return Status::notFound(msg);
  if (status == 409 || status == 412) return Status::failedPrecondition(msg);
  if (status == 429) return Status::resourceExhausted(msg);
  if (status >= 500) return Status::unavailable(msg);
  return Status::internal(msg);
}

}  // namespace

Result<std::unique_ptr<BackendClient>> BackendClient::create(Options options,
                                                             identity::NodeIdentity identity,
                                                             Clock& clock) {
  if (options.url.rfind("http://", 0) != 0)
    return Status::invalidArgument("backend: \"" + options.url +
                                   "\" is not an http://host:port URL");
  while (!options.url.empty() && options.url.back() == '/') options.url.pop_back();
  auto endpoint = http::Endpoint::parse(options.url);
  if (!endpoint.isOk())
    return Status::invalidArgument("backend: \"" + options.url +
                                   "\": " + endpoint.status().message());
  return std::unique_ptr<BackendClient>(
      new BackendClient(std::move(options), std::move(identity), clock, *endpoint));
}

BackendClient::BackendClient(Options options, identity::NodeIdentity identity, Clock& clock,
                             http::Endpoint endpoint)
    : options_(std::move(options)),
      identity_(std::move(identity)),
      clock_(clock),
      client_(endpoint, http::ClientOptions{.connect_timeout = options_.timeout,
                                            .write_timeout = options_.timeout,
                                            .host_header = endpoint.host}) {}

bool BackendClient::registered() const {
  std::lock_guard<std::mutex> lock(mu_);
  return !client_id_.empty();
}

std::string BackendClient::account() const {
  std::lock_guard<std::mutex> lock(mu_);
  return account_;
}

Status BackendClient::loadCredentials() {
  std::string path = options_.data_dir + "/" + kCredentialsFile;
  auto text = fs::readFile(path, 64 << 10);
  if (!text.isOk()) return text.status();
  json j = json::parse(*text, nullptr, false);
  if (!j.is_object() || !j.contains("client_id") || !j["client_id"].is_string() ||
      !j.contains("client_secret") || !j["client_secret"].is_string())
    return Status::invalidArgument(path + ": not a credentials file (client_id, client_secret)");
  if (j.value("backend", options_.url) != options_.url)
    return Status::notFound(path + ": credentials of another backend (" + j.value("backend", "") +
                            ")");
  std::lock_guard<std::mutex> lock(mu_);
  client_id_ = j["client_id"].get<std::string>();
  client_secret_ = j["client_secret"].get<std::string>();
  account_ = j.value("account", "");
  return Status::ok();
}

Status BackendClient::ensureRegistered() {
  if (registered()) return Status::ok();
  Status loaded = loadCredentials();
  if (loaded.isOk()) return loaded;
  if (loaded.code() != StatusCode::kNotFound) return loaded;
  if (options_.join_token_file.empty())
    return Status::failedPrecondition(
        "the node has no credentials for backend " + options_.url +
        " and no join token: set backend_join_token_file (an account's join token from "
        "`POST /v1/accounts/<account>/join-tokens`)");
  ASSIGN_OR_RETURN(auto token_text, fs::readFile(options_.join_token_file, 4096));
  std::string token = trim(token_text);
  if (token.empty())
    return Status::invalidArgument("backend_join_token_file " + options_.join_token_file +
                                   " is empty");
  std::string message = "edge-register\n" + identity_.id() + "\n" + token;
  json body = {{"join_token", token},
               {"node_id", identity_.id()},
               {"public_key", identity::toHex(identity_.publicKey())},
               {"signature", identity::toHex(identity_.sign(message))}};
  ASSIGN_OR_RETURN(auto reply,
                   send("POST", "/v1/nodes/register", body.dump(), "application/json", ""));
  if (!reply.contains("client_id") || !reply["client_id"].is_string() ||
      !reply.contains("client_secret") || !reply["client_secret"].is_string())
    return Status::invalidArgument("backend " + options_.url +
                                   ": the registration answer has no client_id/client_secret");
  json stored = {{"backend", options_.url},
                 {"client_id", reply["client_id"]},
                 {"client_secret", reply["client_secret"]},
                 {"account", reply.value("account", "")},
                 {"node_id", identity_.id()}};
  RETURN_IF_ERROR(
      fs::writeFileAtomic(options_.data_dir + "/" + kCredentialsFile, stored.dump(2), 0600));
  LOG_INFO("backend.registered")
      .kv("backend", options_.url)
      .kv("account", reply.value("account", ""))
      .kv("client", reply["client_id"].get<std::string>());
  return loadCredentials();
}

Result<std::string> BackendClient::accessToken(const std::string& audience) {
  std::string id, secret;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = tokens_.find(audience);
    if (it != tokens_.end() && clock_.now() < it->second.renew_at) return it->second.value;
    id = client_id_;
    secret = client_secret_;
  }
  if (id.empty()) {
    RETURN_IF_ERROR(ensureRegistered());
    std::lock_guard<std::mutex> lock(mu_);
    id = client_id_;
    secret = client_secret_;
  }
  std::string form = "grant_type=client_credentials&client_id=" + http::urlEncode(id) +
                     "&client_secret=" + http::urlEncode(secret) +
                     "&audience=" + http::urlEncode(audience);
  ASSIGN_OR_RETURN(auto reply,
                   send("POST", "/oauth2/token", form, "application/x-www-form-urlencoded", ""));
  if (!reply.contains("access_token") || !reply["access_token"].is_string())
    return Status::invalidArgument("backend " + options_.url +
                                   ": the token answer has no access_token");
  int64_t ttl = reply.value("expires_in", int64_t{60});
  if (ttl < 1) ttl = 1;
  Token t{reply["access_token"].get<std::string>(),
          clock_.now() + std::chrono::seconds(ttl - ttl / 5)};
  std::lock_guard<std::mutex> lock(mu_);
  tokens_[audience] = t;
  return t.value;
}

Result<json> BackendClient::call(const std::string& method, const std::string& path,
                                 const json& body) {
  std::string text = body.is_null() ? std::string() : body.dump();
  for (int attempt = 0;; ++attempt) {
    ASSIGN_OR_RETURN(auto token, accessToken("edge-backend"));
    auto r = send(method, path, text, body.is_null() ? "" : "application/json", "Bearer " + token);
    // A token the backend no longer takes (its key rotated away, revoked): fetch a new
    // one once.
    if (!r.isOk() && r.status().code() == StatusCode::kPermissionDenied && attempt == 0 &&
        r.status().message().find("invalid_token") != std::string::npos) {
      std::lock_guard<std::mutex> lock(mu_);
      tokens_.erase("edge-backend");
      continue;
    }
    return r;
  }
}

Result<json> BackendClient::send(const std::string& method, const std::string& path,
                                 const std::string& body, const std::string& content_type,
                                 const std::string& authorization) {
  http::Request req;
  req.method = method;
  req.path = path;
  req.body = body;
  req.content_type = content_type;
  req.read_timeout = options_.timeout;
  if (!authorization.empty()) req.headers.emplace("Authorization", authorization);
  req.headers.emplace("Accept", "application/json");
  auto res = client_.send(req);
  std::string what =
      "backend " + options_.url + " " + method + " " + path.substr(0, path.find('?'));
  if (!res.isOk()) return Status(res.status().code(), what + ": " + res.status().message());
  json j = res->body.empty() ? json::object() : json::parse(res->body, nullptr, false);
  if (!res->isSuccess()) {
    Status s = statusForHttp(res->status, what, j);
    if (res->status == 401) {
      std::string www = res->header("WWW-Authenticate");
      if (www.find("invalid_token") != std::string::npos)
        return Status::permissionDenied(s.message() + " (invalid_token)");
    }
    return s;
  }
  if (j.is_discarded()) return Status::invalidArgument(what + ": the answer is not JSON");
  return j;
}

}  // namespace edge::mesh
