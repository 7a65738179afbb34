#include "backend/identity.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include <algorithm>
#include <cstdlib>

#include "common/json.h"
#include "common/jwt.h"
#include "identity/identity.h"

namespace edge::backend {

namespace {

using nlohmann::json;
using namespace identity_internal;

constexpr char kAccountsPrefix[] = "id/accounts/";
constexpr char kClientsPrefix[] = "id/clients/";
constexpr char kUsersPrefix[] = "id/users/";
constexpr char kJoinPrefix[] = "id/join/";
constexpr size_t kMaxSecretBytes = 1024;
constexpr size_t kMinPasswordBytes = 8;

std::string accountKey(std::string_view a) {
  return kAccountsPrefix + std::string(a);
}
std::string clientKey(std::string_view c) {
  return kClientsPrefix + std::string(c);
}
std::string userKey(std::string_view a, std::string_view n) {
  return kUsersPrefix + std::string(a) + "/" + std::string(n);
}

Result<json> parseRecord(const KeyValue& kv) {
  json j = json::parse(kv.value, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object())
    return Status::internal("store record " + kv.key + " is not a JSON object");
  return j;
}

json scopesJson(const std::vector<std::string>& scopes) {
  return json(scopes);
}

Status checkScopes(const std::vector<std::string>& scopes) {
  for (const auto& s : scopes) {
    RETURN_IF_ERROR(checkScope(s));
    if (s == "admin")
      return Status::invalidArgument(
          "scopes: \"admin\" belongs to the bootstrap admin only; an account's own admin "
          "clients take \"" +
          std::string(kAccountAdminScope) + "\"");
  }
  return Status::ok();
}

std::vector<std::string> dedupe(std::vector<std::string> v) {
  std::vector<std::string> out;
  for (auto& s : v)
    if (std::find(out.begin(), out.end(), s) == out.end()) out.push_back(std::move(s));
  return out;
}

bool constantTimeEqual(std::string_view a, std::string_view b) {
  return a.size() == b.size() && CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

std::string pbkdf2(std::string_view secret, std::string_view salt, int iterations) {
  unsigned char out[32];
  PKCS5_PBKDF2_HMAC(secret.data(), static_cast<int>(secret.size()),
                    reinterpret_cast<const unsigned char*>(salt.data()),
                    static_cast<int>(salt.size()), iterations, EVP_sha256(), sizeof out, out);
  return std::string(reinterpret_cast<char*>(out), sizeof out);
}

std::string randomBytes(size_t n) {
  std::string out(n, '\0');
  if (RAND_bytes(reinterpret_cast<unsigned char*>(out.data()), static_cast<int>(n)) != 1)
    std::abort();  // no randomness: nothing safe can be issued
  return out;
}

}  // namespace

namespace identity_internal {

Status checkName(std::string_view what, std::string_view value) {
  if (value.empty() || value.size() > 64)
    return Status::invalidArgument(std::string(what) + ": must be 1 to 64 characters, got " +
                                   std::to_string(value.size()));
  for (size_t i = 0; i < value.size(); ++i) {
    char c = value[i];
    bool alnum = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
    if (!alnum && (i == 0 || (c != '.' && c != '_' && c != '-')))
      return Status::invalidArgument(std::string(what) + ": \"" + std::string(value) + "\" has '" +
                                     std::string(1, c) + "' at " + std::to_string(i) +
                                     "; allowed are letters, digits and . _ - (not first)");
  }
  return Status::ok();
}

Status checkScope(std::string_view scope) {
  bool ok = !scope.empty() && scope.size() <= 64;
  for (char c : scope)
    ok = ok && ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == ':' || c == '.' ||
                c == '_' || c == '-');
  if (!ok)
    return Status::invalidArgument("scope \"" + std::string(scope) +
                                   "\": 1 to 64 of a-z 0-9 : . _ -");
  return Status::ok();
}

std::string hashSecret(std::string_view secret, int iterations) {
  std::string salt = randomBytes(16);
  return "pbkdf2-sha256$" + std::to_string(iterations) + "$" + jwt::base64UrlEncode(salt) + "$" +
         jwt::base64UrlEncode(pbkdf2(secret, salt, iterations));
}

bool verifySecret(std::string_view secret, std::string_view stored) {
  // pbkdf2-sha256$<iterations>$<salt>$<hash>
  std::vector<std::string_view> parts;
  size_t start = 0;
  while (parts.size() < 4) {
    size_t d = stored.find('$', start);
    parts.push_back(stored.substr(start, d == std::string_view::npos ? d : d - start));
    if (d == std::string_view::npos) break;
    start = d + 1;
  }
  if (parts.size() != 4 || parts[0] != "pbkdf2-sha256") return false;
  int iterations = std::atoi(std::string(parts[1]).c_str());
  auto salt = jwt::base64UrlDecode(parts[2]);
  auto hash = jwt::base64UrlDecode(parts[3]);
  if (iterations < 1 || iterations > 10'000'000 || !salt.isOk() || !hash.isOk()) return false;
  return constantTimeEqual(pbkdf2(secret, *salt, iterations), *hash);
}

std::string randomToken() {
  return jwt::base64UrlEncode(randomBytes(32));
}

std::string sha256Hex(std::string_view data) {
  unsigned char md[32];
  unsigned int len = 0;
  EVP_Digest(data.data(), data.size(), md, &len, EVP_sha256(), nullptr);
  return identity::toHex(std::string_view(reinterpret_cast<char*>(md), len));
}

}  // namespace identity_internal

std::string_view clientKindName(ClientKind kind) {
  switch (kind) {
    case ClientKind::kNode:
      return "node";
    case ClientKind::kService:
      return "service";
    case ClientKind::kApplication:
      return "application";
  }
  return "service";
}

Result<ClientKind> parseClientKind(std::string_view name) {
  if (name == "node") return ClientKind::kNode;
  if (name == "service") return ClientKind::kService;
  if (name == "application") return ClientKind::kApplication;
  return Status::invalidArgument("kind: \"" + std::string(name) +
                                 "\" is not one of node, service, application");
}

const std::vector<std::string>& nodeScopes() {
  static const std::vector<std::string> kScopes = {"node:call",      "discovery:register",
                                                   "discovery:read", "relay:sep",
                                                   "relay:connect",  "relay:bep"};
  return kScopes;
}

std::string registrationMessage(std::string_view node_id, std::string_view join_token) {
  return "edge-register\n" + std::string(node_id) + "\n" + std::string(join_token);
}

IdentityService::IdentityService(Store& store, IdentityOptions options, ClockPtr clock)
    : store_(store), options_(std::move(options)), clock_(std::move(clock)) {
  if (!options_.admin_secret.empty()) admin_secret_sha_ = sha256Hex(options_.admin_secret);
}

int64_t IdentityService::nowSeconds() const {
  return std::chrono::duration_cast<std::chrono::seconds>(clock_->wallNow().time_since_epoch())
      .count();
}

Status IdentityService::createAccount(const std::string& id) {
  RETURN_IF_ERROR(checkName("account id", id));
  auto r = store_.put(accountKey(id), json{{"id", id}, {"created", nowSeconds()}}.dump(),
                      /*expected=*/0);
  if (r.status().code() == StatusCode::kAborted)
    return Status::alreadyExists("account " + id + " already exists");
  return r.status();
}

Status IdentityService::requireAccount(const std::string& id) {
  RETURN_IF_ERROR(checkName("account id", id));
  auto r = store_.get(accountKey(id));
  if (r.status().code() == StatusCode::kNotFound)
    return Status::notFound("account " + id + " does not exist");
  return r.status();
}

Result<std::string> IdentityService::createClient(const std::string& account,
                                                  const NewClient& client) {
  RETURN_IF_ERROR(requireAccount(account));
  RETURN_IF_ERROR(checkName("client id", client.id));
  if (client.id == kAdminClientId || client.id.rfind("node-", 0) == 0)
    return Status::invalidArgument("client id: \"" + client.id +
                                   "\" is reserved (admin, node-*: nodes get theirs by "
                                   "registering)");
  if (client.kind == ClientKind::kNode)
    return Status::invalidArgument(
        "kind: node clients are created by POST /v1/nodes/register with a join token");
  if (client.is_public && client.kind != ClientKind::kApplication)
    return Status::invalidArgument("public: only application clients may be public");
  RETURN_IF_ERROR(checkScopes(client.scopes));
  std::string secret = client.is_public ? "" : randomToken();
  json record = {
      {"id", client.id},
      {"account", account},
      {"kind", clientKindName(client.kind)},
      {"scopes", scopesJson(dedupe(client.scopes))},
      {"public", client.is_public},
      {"secret_hash", client.is_public ? "" : hashSecret(secret, options_.secret_iterations)},
      {"created", nowSeconds()}};
  auto r = store_.put(clientKey(client.id), record.dump(), /*expected=*/0);
  if (r.status().code() == StatusCode::kAborted)
    return Status::alreadyExists("client " + client.id + " already exists");
  RETURN_IF_ERROR(r.status());
  return secret;
}

Status IdentityService::deleteClient(const std::string& account, const std::string& id) {
  RETURN_IF_ERROR(checkName("client id", id));
  return retryOnAbort([&]() -> Status {
    int64_t rev = 0;
    auto c = readClient(id, &rev, nullptr);
    if (!c.isOk()) return c.status();
    if (c->account != account)
      return Status::notFound("client " + id + " does not exist in account " + account);
    return store_.remove(clientKey(id), rev).status();
  });
}

Status IdentityService::createUser(const std::string& account, const std::string& name,
                                   const std::string& password, std::vector<std::string> scopes) {
  RETURN_IF_ERROR(requireAccount(account));
  RETURN_IF_ERROR(checkName("user name", name));
  if (password.size() < kMinPasswordBytes || password.size() > kMaxSecretBytes)
    return Status::invalidArgument("password: must be 8 to 1024 bytes");
  if (scopes.empty()) scopes = {"discovery:read"};
  RETURN_IF_ERROR(checkScopes(scopes));
  json record = {{"account", account},
                 {"name", name},
                 {"password_hash", hashSecret(password, options_.password_iterations)},
                 {"scopes", scopesJson(dedupe(scopes))},
                 {"created", nowSeconds()}};
  auto r = store_.put(userKey(account, name), record.dump(), /*expected=*/0);
  if (r.status().code() == StatusCode::kAborted)
    return Status::alreadyExists("user " + name + " already exists in account " + account);
  return r.status();
}

Status IdentityService::deleteUser(const std::string& account, const std::string& name) {
  RETURN_IF_ERROR(checkName("account id", account));
  RETURN_IF_ERROR(checkName("user name", name));
  return retryOnAbort([&]() -> Status {
    auto kv = store_.get(userKey(account, name));
    if (kv.status().code() == StatusCode::kNotFound)
      return Status::notFound("user " + name + " does not exist in account " + account);
    RETURN_IF_ERROR(kv.status());
    return store_.remove(kv->key, kv->revision).status();
  });
}

Result<JoinToken> IdentityService::createJoinToken(const std::string& account, int64_t ttl_seconds,
                                                   int64_t max_uses) {
  RETURN_IF_ERROR(requireAccount(account));
  if (ttl_seconds <= 0 || ttl_seconds > options_.max_join_token_ttl.count())
    return Status::invalidArgument("ttl_seconds: must be 1 to " +
                                   std::to_string(options_.max_join_token_ttl.count()) + ", got " +
                                   std::to_string(ttl_seconds));
  if (max_uses < 0)
    return Status::invalidArgument("max_uses: must be 0 (unlimited) or more, got " +
                                   std::to_string(max_uses));
  JoinToken t{"ej1." + randomToken(), nowSeconds() + ttl_seconds, max_uses};
  json record = {{"account", account},
                 {"expires_at", t.expires_at},
                 {"max_uses", max_uses},
                 {"uses", 0},
                 {"created", nowSeconds()}};
  RETURN_IF_ERROR(store_.put(kJoinPrefix + sha256Hex(t.token), record.dump(), 0).status());
  return t;
}

Result<RegisteredNode> IdentityService::registerNode(const NodeRegistration& reg) {
  if (reg.join_token.empty() || reg.join_token.size() > 256)
    return Status::invalidArgument("join_token: missing or longer than 256 characters");
  if (!identity::isNodeId(reg.node_id))
    return Status::invalidArgument("node_id: \"" + reg.node_id +
                                   "\" is not a node id (16 lower-case hex characters)");
  auto key = identity::fromHex(reg.public_key_hex);
  if (!key.isOk()) return Status::invalidArgument("public_key: " + key.status().message());
  if (key->size() != identity::kPublicKeyBytes)
    return Status::invalidArgument("public_key: expected 32 bytes (64 hex characters), got " +
                                   std::to_string(key->size()));
  auto sig = identity::fromHex(reg.signature_hex);
  if (!sig.isOk()) return Status::invalidArgument("signature: " + sig.status().message());
  if (sig->size() != identity::kSignatureBytes)
    return Status::invalidArgument("signature: expected 64 bytes (128 hex characters), got " +
                                   std::to_string(sig->size()));
  std::string derived = identity::nodeIdFromPublicKey(*key);
  if (derived != reg.node_id)
    return Status::invalidArgument("node_id: " + reg.node_id +
                                   " is not the id of public_key (its id is " + derived + ")");
  if (!identity::verifySignature(*key, registrationMessage(reg.node_id, reg.join_token), *sig))
    return Status::permissionDenied(
        "signature: does not verify; sign \"edge-register\\n<node_id>\\n<join_token>\" with "
        "the node key");

  std::string join_key = kJoinPrefix + sha256Hex(reg.join_token);
  std::string client_id = "node-" + reg.node_id;
  return retryOnAbort([&]() -> Result<RegisteredNode> {
    auto join_kv = store_.get(join_key);
    if (join_kv.status().code() == StatusCode::kNotFound)
      return Status::permissionDenied("join_token: not valid (unknown or revoked)");
    RETURN_IF_ERROR(join_kv.status());
    ASSIGN_OR_RETURN(json join, parseRecord(*join_kv));
    ASSIGN_OR_RETURN(std::string account, edge::json::getString(join, "account", "join token"));
    ASSIGN_OR_RETURN(int64_t expires_at, edge::json::getInt(join, "expires_at", "join token"));
    ASSIGN_OR_RETURN(int64_t max_uses, edge::json::getInt(join, "max_uses", "join token", 0));
    ASSIGN_OR_RETURN(int64_t uses, edge::json::getInt(join, "uses", "join token", 0));
    int64_t now = nowSeconds();
    if (now >= expires_at)
      return Status::permissionDenied("join_token: expired " + std::to_string(now - expires_at) +
                                      " s ago");
    if (max_uses > 0 && uses >= max_uses)
      return Status::permissionDenied("join_token: already used " + std::to_string(uses) +
                                      " times, its maximum");

    RegisteredNode out{client_id, randomToken(), account, false};
    int64_t client_rev = 0;
    auto existing = readClient(client_id, &client_rev, nullptr);
    if (existing.isOk()) {
      if (existing->account != account)
        return Status::failedPrecondition("node " + reg.node_id + " is registered in account " +
                                          existing->account +
                                          "; delete its client there before moving it");
      out.rotated = true;
    } else if (existing.status().code() != StatusCode::kNotFound) {
      return existing.status();
    }
    json client = {{"id", client_id},
                   {"account", account},
                   {"kind", "node"},
                   {"scopes", scopesJson(nodeScopes())},
                   {"public", false},
                   {"node_id", reg.node_id},
                   {"public_key", reg.public_key_hex},
                   {"secret_hash", hashSecret(out.client_secret, options_.secret_iterations)},
                   {"created", now}};
    join["uses"] = uses + 1;
    RETURN_IF_ERROR(store_
                        .commit({StoreOp::put(join_key, join.dump(), join_kv->revision),
                                 StoreOp::put(clientKey(client_id), client.dump(), client_rev)})
                        .status());
    return out;
  });
}

Result<ClientInfo> IdentityService::readClient(const std::string& id, int64_t* revision,
                                               std::string* secret_hash) {
  auto kv = store_.get(clientKey(id));
  if (kv.status().code() == StatusCode::kNotFound)
    return Status::notFound("client " + id + " does not exist");
  RETURN_IF_ERROR(kv.status());
  ASSIGN_OR_RETURN(json j, parseRecord(*kv));
  ClientInfo c;
  c.id = id;
  std::string where = "client " + id;
  ASSIGN_OR_RETURN(c.account, edge::json::getString(j, "account", where));
  ASSIGN_OR_RETURN(std::string kind, edge::json::getString(j, "kind", where));
  ASSIGN_OR_RETURN(c.kind, parseClientKind(kind));
  ASSIGN_OR_RETURN(c.scopes, edge::json::getStringArray(j, "scopes", where));
  ASSIGN_OR_RETURN(c.is_public, edge::json::getBool(j, "public", where, false));
  ASSIGN_OR_RETURN(c.node_id, edge::json::getString(j, "node_id", where, ""));
  if (secret_hash) {
    ASSIGN_OR_RETURN(*secret_hash, edge::json::getString(j, "secret_hash", where, ""));
  }
  if (revision) *revision = kv->revision;
  return c;
}

Result<ClientInfo> IdentityService::getClient(const std::string& id) {
  if (id == kAdminClientId && !admin_secret_sha_.empty()) {
    ClientInfo admin;
    admin.id = id;
    admin.kind = ClientKind::kService;
    admin.scopes = {"admin"};
    admin.is_admin = true;
    return admin;
  }
  return readClient(id, nullptr, nullptr);
}

Result<ClientInfo> IdentityService::authenticateClient(const std::string& id,
                                                       const std::string& secret) {
  const Status kInvalid = Status::permissionDenied("invalid client credentials");
  if (id.empty() || secret.size() > kMaxSecretBytes) return kInvalid;
  if (id == kAdminClientId) {
    if (admin_secret_sha_.empty() || !constantTimeEqual(sha256Hex(secret), admin_secret_sha_))
      return kInvalid;
    return getClient(id);
  }
  if (!checkName("client id", id).isOk()) return kInvalid;
  int64_t rev = 0;
  std::string stored;
  auto c = readClient(id, &rev, &stored);
  if (c.status().code() == StatusCode::kNotFound) {
    // Same work as for a real client, so response times do not tell which ids exist.
    verifySecret(secret, "pbkdf2-sha256$" + std::to_string(options_.secret_iterations) +
                             "$AAAAAAAAAAAAAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA");
    return kInvalid;
  }
  RETURN_IF_ERROR(c.status());
  if (c->is_public) {
    if (!secret.empty()) return kInvalid;
    return c;
  }
  if (secret.empty() || stored.empty()) return kInvalid;
  std::string secret_sha = sha256Hex(secret);
  {
    std::lock_guard<std::mutex> lock(cache_mu_);
    auto it = verified_.find(id);
    if (it != verified_.end() && it->second.revision == rev &&
        constantTimeEqual(it->second.secret_sha, secret_sha))
      return c;
  }
  if (!verifySecret(secret, stored)) return kInvalid;
  std::lock_guard<std::mutex> lock(cache_mu_);
  if (verified_.size() >= 10'000) verified_.clear();
  verified_[id] = VerifiedSecret{rev, secret_sha};
  return c;
}

Result<UserInfo> IdentityService::getUser(const std::string& account, const std::string& name) {
  RETURN_IF_ERROR(checkName("account id", account));
  RETURN_IF_ERROR(checkName("user name", name));
  auto kv = store_.get(userKey(account, name));
  if (kv.status().code() == StatusCode::kNotFound)
    return Status::notFound("user " + name + " does not exist in account " + account);
  RETURN_IF_ERROR(kv.status());
  ASSIGN_OR_RETURN(json j, parseRecord(*kv));
  UserInfo u{account, name, {}};
  ASSIGN_OR_RETURN(u.scopes, edge::json::getStringArray(j, "scopes", "user " + name));
  return u;
}

Result<UserInfo> IdentityService::authenticateUser(const std::string& account,
                                                   const std::string& name,
                                                   const std::string& password) {
  const Status kInvalid = Status::permissionDenied("invalid username or password");
  if (password.size() > kMaxSecretBytes || !checkName("account id", account).isOk() ||
      !checkName("user name", name).isOk())
    return kInvalid;
  auto kv = store_.get(userKey(account, name));
  if (kv.status().code() == StatusCode::kNotFound) {
    verifySecret(password,
                 "pbkdf2-sha256$" + std::to_string(options_.password_iterations) +
                     "$AAAAAAAAAAAAAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA");
    return kInvalid;
  }
  RETURN_IF_ERROR(kv.status());
  ASSIGN_OR_RETURN(json j, parseRecord(*kv));
  ASSIGN_OR_RETURN(std::string stored, edge::json::getString(j, "password_hash", "user " + name));
  if (!verifySecret(password, stored)) return kInvalid;
  UserInfo u{account, name, {}};
  ASSIGN_OR_RETURN(u.scopes, edge::json::getStringArray(j, "scopes", "user " + name));
  return u;
}

}  // namespace edge::backend
