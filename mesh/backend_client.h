// BackendClient: a node's client of edge-backend — registration of the node under an
// account, OAuth 2.0 access tokens (client_credentials, cached and renewed before they
// expire), cluster registration and heartbeats by a supernode, the node's reachability
// check, and global discovery queries.
//
// Credentials: the first registration uses an account's join token and proves the node
// key (a signature over the node id and the token), and the backend answers with a
// client id and secret, kept in <data_dir>/backend-credentials.json (mode 0600); later
// starts reuse them and need no join token.
//
// Thread-safety: every method may be called from any thread at once (one mutex guards
// the credentials and the token cache; no lock is held across a network call).
//
// Errors: kUnavailable when the backend cannot be reached; kPermissionDenied when it
// refuses (a wrong join token, revoked credentials: the message is the backend's);
// kFailedPrecondition when the node has neither credentials nor a join token;
// kInvalidArgument for a malformed backend URL or answer.
#pragma once

#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "common/clock.h"
#include "common/http.h"
#include "common/json.h"
#include "common/status.h"
#include "identity/identity.h"

namespace edge::mesh {

class BackendClient {
 public:
  struct Options {
    std::string url;              // "http://198.18.0.1:8080"
    std::string data_dir;         // where backend-credentials.json lives
    std::string join_token_file;  // "" = none (credentials must exist)
    std::chrono::milliseconds timeout{5000};
  };

  // kInvalidArgument for a URL that is not http://host:port.
  static Result<std::unique_ptr<BackendClient>> create(Options options,
                                                       identity::NodeIdentity identity,
                                                       Clock& clock);

  // Loads the stored credentials, or registers with the join token and stores them.
  Status ensureRegistered();
  bool registered() const;
  std::string account() const;

  // A bearer access token for `audience` ("edge-backend" or "edge-node"), from the cache
  // while it has more than a fifth of its lifetime left.
  Result<std::string> accessToken(const std::string& audience = "edge-backend");

  // One authenticated JSON call to the backend (`body` null = no body). A non-2xx answer
  // becomes an error Status carrying the backend's message (401 -> kPermissionDenied
  // after one retry with a fresh token, 404 -> kNotFound, 409/412 -> kFailedPrecondition,
  // 429 -> kResourceExhausted, 5xx -> kUnavailable).
  Result<nlohmann::json> call(const std::string& method, const std::string& path,
                              const nlohmann::json& body = nullptr);

  const std::string& url() const { return options_.url; }
  const identity::NodeIdentity& identity() const { return identity_; }

 private:
  BackendClient(Options options, identity::NodeIdentity identity, Clock& clock,
                http::Endpoint endpoint);
  Status loadCredentials();
  Result<nlohmann::json> send(const std::string& method, const std::string& path,
                              const std::string& body, const std::string& content_type,
                              const std::string& authorization);

  Options options_;
  identity::NodeIdentity identity_;
  Clock& clock_;
  http::Client client_;

  struct Token {
    std::string value;
    SteadyTime renew_at{};
  };
  mutable std::mutex mu_;
  std::string client_id_;
  std::string client_secret_;
  std::string account_;
  std::map<std::string, Token> tokens_;  // by audience
};

}  // namespace edge::mesh
