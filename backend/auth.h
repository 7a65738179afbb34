// Who is calling a backend API, as the bearer access token says, and the one interface
// every backend service uses to find out. The token service implements it (verifying
// its own JWTs against its published keys); tests use a fake.
//
// Thread-safety: authenticate() may be called from any thread at once.
#pragma once

#include <algorithm>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace edge::backend {

// Audiences the token service issues for.
inline constexpr std::string_view kBackendAudience = "edge-backend";  // backend APIs
inline constexpr std::string_view kNodeAudience = "edge-node";        // node-to-node calls

struct Caller {
  std::string subject;    // `sub`: "node:<id>", "client:<id>", "user:<account>/<name>"
  std::string client_id;  // the OAuth client the token was issued to
  std::string account;    // the account the subject belongs to ("" for the admin)
  std::string node_id;    // for node subjects, the node id; else ""
  std::vector<std::string> scopes;
  int64_t expires_at = 0;  // unix seconds

  bool hasScope(std::string_view scope) const {
    return std::find(scopes.begin(), scopes.end(), scope) != scopes.end() ||
           std::find(scopes.begin(), scopes.end(), "admin") != scopes.end();
  }
  bool isAdmin() const { return std::find(scopes.begin(), scopes.end(), "admin") != scopes.end(); }
};

class Authenticator {
 public:
  virtual ~Authenticator() = default;
  // `authorization` is the Authorization header's value ("Bearer <JWT>"). Returns the
  // caller, or kPermissionDenied with the reason (missing, malformed, expired, wrong
  // audience, unknown key, bad signature, revoked): the API answers 401 with it.
  virtual Result<Caller> authenticate(std::string_view authorization,
                                      std::string_view audience = kBackendAudience) = 0;
};

}  // namespace edge::backend
