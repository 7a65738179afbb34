// IdentityService: who exists in edge-backend — accounts, their OAuth clients (nodes,
// services, applications), their users — and how a node joins an account.
//
// Everything lives in the Store, under these prefixes (values are JSON):
//   id/accounts/<account>         {"id","created"}
//   id/clients/<client_id>        {"id","account","kind","scopes","secret_hash","public",
//                                  "node_id","created"}  (client ids are global: the token
//                                  endpoint is handed a client_id alone)
//   id/users/<account>/<name>     {"account","name","password_hash","scopes","created"}
//   id/join/<sha256 of token>     {"account","expires_at","max_uses","uses","created"}
// Secrets and passwords are stored as "pbkdf2-sha256$<iterations>$<salt>$<hash>"
// (per-secret random salt, compared in constant time); join tokens, which are 256-bit
// random, as their SHA-256. Every read-modify-write compares the revision it read and
// retries on kAborted, so several replicas on one etcd stay consistent.
//
// Node registration: an account admin mints a join token; the node proves it holds the
// key its id derives from by signing "edge-register\n" + node_id + "\n" + join_token with
// it, and gets client "node-<id>" of kind node in the join token's account. Registering
// the same key again (with a valid join token of the same account) rotates the secret.
//
// The bootstrap admin: client "admin", authenticated by the secret of the file given to
// edge-backend, scope "admin", no account; never stored.
//
// Thread-safety: every method may be called from any thread at once.
//
// Errors: kInvalidArgument naming the field and what is allowed; kNotFound for an
// unknown account/client/user; kAlreadyExists for a duplicate; kPermissionDenied for
// wrong credentials, an invalid/expired/used-up join token or a bad registration
// signature; kUnavailable/kInternal from the Store; kAborted only if a key stays
// contended through every retry.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "backend/store.h"
#include "common/clock.h"
#include "common/status.h"

namespace edge::backend {

enum class ClientKind { kNode, kService, kApplication };
std::string_view clientKindName(ClientKind kind);
Result<ClientKind> parseClientKind(std::string_view name);

// The scopes a node client holds (all of them, always).
const std::vector<std::string>& nodeScopes();
// The scope that lets a caller manage its own account (clients, users, join tokens).
inline constexpr std::string_view kAccountAdminScope = "account:admin";
inline constexpr std::string_view kAdminClientId = "admin";

struct ClientInfo {
  std::string id;
  std::string account;  // "" for the bootstrap admin
  ClientKind kind = ClientKind::kService;
  std::vector<std::string> scopes;  // what tokens of this client may carry
  bool is_public = false;           // no secret: password/refresh grants only
  std::string node_id;              // for kind node
  bool is_admin = false;            // the bootstrap admin
};

struct UserInfo {
  std::string account;
  std::string name;
  std::vector<std::string> scopes;
};

struct NewClient {
  std::string id;
  ClientKind kind = ClientKind::kService;
  std::vector<std::string> scopes;
  bool is_public = false;  // only for kind application (a CLI that cannot keep a secret)
};

struct JoinToken {
  std::string token;   // shown once
  int64_t expires_at;  // unix seconds
  int64_t max_uses;    // 0 = unlimited
};

struct NodeRegistration {
  std::string join_token;
  std::string node_id;
  std::string public_key_hex;  // 32-byte Ed25519 key
  std::string signature_hex;   // Ed25519 over registrationMessage(node_id, join_token)
};

struct RegisteredNode {
  std::string client_id;
  std::string client_secret;
  std::string account;
  bool rotated = false;  // the node was registered before; its old secret no longer works
};

// "edge-register\n" + node_id + "\n" + join_token: what a node signs to register.
std::string registrationMessage(std::string_view node_id, std::string_view join_token);

struct IdentityOptions {
  // PBKDF2 iterations for user passwords (people choose weak ones) and for generated
  // client secrets (256 random bits: the iterations guard nothing, they only cost time).
  int password_iterations = 210'000;
  int secret_iterations = 1'000;
  std::string admin_secret;  // "" disables the bootstrap admin
  std::chrono::seconds max_join_token_ttl{30 * 24 * 3600};
};

class IdentityService {
 public:
  IdentityService(Store& store, IdentityOptions options, ClockPtr clock);

  Status createAccount(const std::string& id);
  Status requireAccount(const std::string& id);

  // Creates a service or application client of `account` and returns its secret (the
  // only time it is seen; "" for a public client). Node clients come from
  // registerNode(); the scope "admin" is the bootstrap admin's alone.
  Result<std::string> createClient(const std::string& account, const NewClient& client);
  Status deleteClient(const std::string& account, const std::string& id);

  Status createUser(const std::string& account, const std::string& name,
                    const std::string& password, std::vector<std::string> scopes);
  Status deleteUser(const std::string& account, const std::string& name);

  // ttl within (0, max_join_token_ttl]; max_uses >= 0 (0 = unlimited).
  Result<JoinToken> createJoinToken(const std::string& account, int64_t ttl_seconds,
                                    int64_t max_uses);
  Result<RegisteredNode> registerNode(const NodeRegistration& registration);

  // The client, when `secret` is its secret (public clients pass ""): kPermissionDenied
  // "invalid client credentials" otherwise, the same for an unknown client so ids cannot
  // be probed.
  Result<ClientInfo> authenticateClient(const std::string& id, const std::string& secret);
  // The client as stored (kNotFound when deleted), for refresh grants.
  Result<ClientInfo> getClient(const std::string& id);
  // The user, when `password` is right; kPermissionDenied otherwise.
  Result<UserInfo> authenticateUser(const std::string& account, const std::string& name,
                                    const std::string& password);
  Result<UserInfo> getUser(const std::string& account, const std::string& name);

 private:
  Result<ClientInfo> readClient(const std::string& id, int64_t* revision, std::string* secret_hash);
  int64_t nowSeconds() const;

  Store& store_;
  IdentityOptions options_;
  ClockPtr clock_;
  std::string admin_secret_sha_;  // SHA-256 of the admin secret

  // Verified client secrets, as SHA-256(secret) per client and record revision, so a
  // client asking for tokens does not pay PBKDF2 each time. Cleared when full.
  struct VerifiedSecret {
    int64_t revision;
    std::string secret_sha;
  };
  std::mutex cache_mu_;
  std::unordered_map<std::string, VerifiedSecret> verified_;
};

// Helpers shared with the token service and tests.
namespace identity_internal {
// 1 to 64 of [A-Za-z0-9._-], starting with a letter or digit.
Status checkName(std::string_view what, std::string_view value);
// A scope: 1 to 64 of [a-z0-9:._-].
Status checkScope(std::string_view scope);
std::string hashSecret(std::string_view secret, int iterations);
bool verifySecret(std::string_view secret, std::string_view stored);
// 32 random bytes, base64url.
std::string randomToken();
std::string sha256Hex(std::string_view data);
// Runs `attempt` until it returns something other than kAborted, at most 8 times.
template <typename F>
auto retryOnAbort(F attempt) -> decltype(attempt()) {
  for (int i = 0;; ++i) {
    auto r = attempt();
    bool aborted;
    if constexpr (std::is_same_v<decltype(r), Status>)
      aborted = r.code() == StatusCode::kAborted;
    else
      aborted = r.status().code() == StatusCode::kAborted;
    if (!aborted || i == 7) return r;
  }
}
}  // namespace identity_internal

}  // namespace edge::backend
