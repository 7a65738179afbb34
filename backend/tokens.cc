#include "backend/tokens.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>

#include "common/fs.h"
#include "common/json.h"
#include "common/log.h"
#include "identity/identity.h"

namespace edge::backend {

namespace {

using nlohmann::json;
using namespace identity_internal;

constexpr char kKeysKey[] = "tok/keys";
constexpr char kRefreshPrefix[] = "tok/refresh/";
constexpr char kRevokedPrefix[] = "tok/revoked/";
constexpr char kRefreshTokenTag[] = "ert1";
constexpr size_t kKekBytes = 32;
constexpr size_t kNonceBytes = 12;
constexpr size_t kTagBytes = 16;
constexpr size_t kMaxParamBytes = 4096;
constexpr std::chrono::seconds kForcedReloadInterval{5};
constexpr std::chrono::seconds kRefreshSweepInterval{3600};

struct CipherCtxFree {
  void operator()(EVP_CIPHER_CTX* c) const { EVP_CIPHER_CTX_free(c); }
};
using CipherCtxPtr = std::unique_ptr<EVP_CIPHER_CTX, CipherCtxFree>;

std::string randomBytes(size_t n) {
  std::string out(n, '\0');
  if (RAND_bytes(reinterpret_cast<unsigned char*>(out.data()), static_cast<int>(n)) != 1)
    std::abort();  // no randomness: nothing safe can be issued
  return out;
}

std::string strField(const json& j, const char* name) {
  auto it = j.find(name);
  return it != j.end() && it->is_string() ? it->get<std::string>() : std::string();
}
int64_t intField(const json& j, const char* name) {
  auto it = j.find(name);
  return it != j.end() && it->is_number_integer() ? it->get<int64_t>() : 0;
}

OAuthReply oauthError(int status, std::string error, std::string description) {
  OAuthReply r;
  r.status = status;
  r.body = {{"error", std::move(error)}, {"error_description", std::move(description)}};
  return r;
}

OAuthReply serverError(const Status& s) {
  int status = s.code() == StatusCode::kUnavailable ? 503 : 500;
  return oauthError(status, status == 503 ? "temporarily_unavailable" : "server_error",
                    s.message());
}

std::string joined(const std::vector<std::string>& v, std::string_view sep = " ") {
  std::string out;
  for (const auto& s : v) {
    if (!out.empty()) out += sep;
    out += s;
  }
  return out;
}

// A refresh family id or an access token's jti as issue() makes them: 22 characters of
// base64url. Checked before either becomes part of a Store key. Not checkName(): that
// refuses a leading '-' or '_', which 1 in 32 random ids have, so those refresh tokens were
// refused as unknown and those access tokens could not be revoked.
constexpr size_t kRandomIdChars = 22;
std::string randomId() {
  return randomToken().substr(0, kRandomIdChars);
}
bool isRandomId(std::string_view id) {
  return id.size() == kRandomIdChars && std::all_of(id.begin(), id.end(), [](char c) {
           return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '-' || c == '_';
         });
}

// A parameter that may appear at most once (RFC 6749 3.1/3.2).
Result<std::optional<std::string>> single(const OAuthRequest& req, const std::string& name) {
  auto [lo, hi] = req.params.equal_range(name);
  if (lo == hi) return std::optional<std::string>();
  if (std::next(lo) != hi) return Status::invalidArgument("parameter " + name + " is repeated");
  if (lo->second.size() > kMaxParamBytes)
    return Status::invalidArgument("parameter " + name + " is longer than 4096 bytes");
  return std::optional<std::string>(lo->second);
}

}  // namespace

struct TokenService::Grant {
  std::string subject;
  std::string client_id;
  std::string account;
  std::string node_id;
  std::string user;  // password and refresh grants
  std::vector<std::string> scopes;
  std::vector<std::string> family_scopes;  // refresh: what the family keeps; "" = scopes
  std::vector<std::string> audiences;
};

std::string oauthClientId(const OAuthRequest& request) {
  if (request.has_basic) return request.basic_id;
  auto it = request.params.find("client_id");
  return it == request.params.end() ? "" : it->second;
}

Result<std::string> loadOrCreateKek(const std::string& path) {
  auto existing = fs::readFile(path, 4096);
  if (existing.isOk()) {
    if (existing->size() != kKekBytes)
      return Status::invalidArgument("key-encryption key " + path + ": " +
                                     std::to_string(existing->size()) +
                                     " bytes; expected 32 raw bytes");
    return existing;
  }
  if (existing.status().code() != StatusCode::kNotFound) return existing.status();
  std::string kek = randomBytes(kKekBytes);
  // Complete under a unique name, then link(): unlike rename it never replaces a key a
  // concurrent replica published first, and the loser reads the winner's key.
  std::string tmp = path + ".new." + identity::toHex(randomBytes(8));
  RETURN_IF_ERROR(fs::writeFileAtomic(tmp, kek, 0600));
  int rc = ::link(tmp.c_str(), path.c_str());
  int err = errno;
  ::unlink(tmp.c_str());
  if (rc != 0 && err != EEXIST) return Status::fromErrno(err, "link " + path);
  if (rc != 0) return loadOrCreateKek(path);
  LOG_INFO("tokens.kek_created").kv("path", path);
  return kek;
}

TokenService::TokenService(Store& store, IdentityService& identity, TokenOptions options,
                           ClockPtr clock)
    : store_(store), identity_(identity), options_(std::move(options)), clock_(std::move(clock)) {}

TokenService::~TokenService() {
  stopMaintenance();
}

Result<std::unique_ptr<TokenService>> TokenService::create(Store& store, IdentityService& identity,
                                                           TokenOptions options, ClockPtr clock) {
  if (options.kek.size() != kKekBytes)
    return Status::invalidArgument("tokens: the key-encryption key must be 32 bytes, got " +
                                   std::to_string(options.kek.size()));
  if (options.issuer.empty()) return Status::invalidArgument("tokens: issuer is empty");
  while (!options.issuer.empty() && options.issuer.back() == '/') options.issuer.pop_back();
  if (options.access_ttl.count() <= 0 || options.refresh_ttl.count() <= 0)
    return Status::invalidArgument("tokens: token lifetimes must be positive");
  if (options.rotation_lead.count() <= 0 || options.rotation_lead >= options.rotation_period)
    return Status::invalidArgument("tokens: rotation_lead (" +
                                   std::to_string(options.rotation_lead.count()) +
                                   " s) must be positive and shorter than rotation_period (" +
                                   std::to_string(options.rotation_period.count()) + " s)");
  if (options.jwks_max_age >= options.rotation_lead)
    return Status::invalidArgument(
        "tokens: jwks_max_age must be shorter than rotation_lead, or verifiers holding a "
        "cached JWKS would meet a key they have not seen");
  std::unique_ptr<TokenService> s(
      new TokenService(store, identity, std::move(options), std::move(clock)));
  RETURN_IF_ERROR(s->maintain());
  return s;
}

int64_t TokenService::nowSeconds() const {
  return std::chrono::duration_cast<std::chrono::seconds>(clock_->wallNow().time_since_epoch())
      .count();
}

std::shared_ptr<const TokenService::Ring> TokenService::ring() const {
  std::lock_guard<std::mutex> lock(mu_);
  return ring_;
}

// --- the key ring ---

Result<std::string> TokenService::seal(const jwt::SigningKey& key) const {
  std::string pem = key.toPem();
  std::string nonce = randomBytes(kNonceBytes);
  std::string aad = "edge-backend signing key " + key.kid();
  std::string out(pem.size() + kTagBytes, '\0');
  CipherCtxPtr ctx(EVP_CIPHER_CTX_new());
  int len = 0, total = 0;
  auto* o = reinterpret_cast<unsigned char*>(out.data());
  if (!ctx ||
      EVP_EncryptInit_ex(ctx.get(), EVP_aes_256_gcm(), nullptr,
                         reinterpret_cast<const unsigned char*>(options_.kek.data()),
                         reinterpret_cast<const unsigned char*>(nonce.data())) != 1 ||
      EVP_EncryptUpdate(ctx.get(), nullptr, &len,
                        reinterpret_cast<const unsigned char*>(aad.data()),
                        static_cast<int>(aad.size())) != 1 ||
      EVP_EncryptUpdate(ctx.get(), o, &len, reinterpret_cast<const unsigned char*>(pem.data()),
                        static_cast<int>(pem.size())) != 1)
    return Status::internal("sealing a signing key failed");
  total = len;
  if (EVP_EncryptFinal_ex(ctx.get(), o + total, &len) != 1 ||
      EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_GET_TAG, kTagBytes, o + total + len) != 1)
    return Status::internal("sealing a signing key failed");
  total += len;
  out.resize(static_cast<size_t>(total) + kTagBytes);
  return jwt::base64UrlEncode(nonce + out);
}

Result<jwt::SigningKey> TokenService::unseal(const KeyEntry& entry) const {
  const Status kBad = Status::failedPrecondition(
      std::string(kKeysKey) + ": key " + entry.kid +
      " does not decrypt with this key-encryption key (is the KEK file the one the other "
      "replicas use?)");
  auto raw = jwt::base64UrlDecode(entry.sealed);
  if (!raw.isOk() || raw->size() < kNonceBytes + kTagBytes) return kBad;
  std::string_view nonce(raw->data(), kNonceBytes);
  std::string_view body(raw->data() + kNonceBytes, raw->size() - kNonceBytes - kTagBytes);
  std::string tag = raw->substr(raw->size() - kTagBytes);
  std::string aad = "edge-backend signing key " + entry.kid;
  std::string pem(body.size(), '\0');
  CipherCtxPtr ctx(EVP_CIPHER_CTX_new());
  int len = 0;
  auto* p = reinterpret_cast<unsigned char*>(pem.data());
  if (!ctx ||
      EVP_DecryptInit_ex(ctx.get(), EVP_aes_256_gcm(), nullptr,
                         reinterpret_cast<const unsigned char*>(options_.kek.data()),
                         reinterpret_cast<const unsigned char*>(nonce.data())) != 1 ||
      EVP_DecryptUpdate(ctx.get(), nullptr, &len,
                        reinterpret_cast<const unsigned char*>(aad.data()),
                        static_cast<int>(aad.size())) != 1 ||
      EVP_DecryptUpdate(ctx.get(), p, &len, reinterpret_cast<const unsigned char*>(body.data()),
                        static_cast<int>(body.size())) != 1 ||
      EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_SET_TAG, kTagBytes, tag.data()) != 1 ||
      EVP_DecryptFinal_ex(ctx.get(), p + len, &len) != 1)
    return kBad;
  ASSIGN_OR_RETURN(jwt::SigningKey key, jwt::SigningKey::fromPem(pem));
  if (key.kid() != entry.kid)
    return Status::failedPrecondition(std::string(kKeysKey) + ": key " + entry.kid +
                                      " holds a key whose thumbprint is " + key.kid());
  return key;
}

Result<std::shared_ptr<const TokenService::Ring>> TokenService::buildRing(
    int64_t revision, std::vector<KeyEntry> entries) {
  std::sort(entries.begin(), entries.end(),
            [](const KeyEntry& a, const KeyEntry& b) { return a.active_from < b.active_from; });
  auto ring = std::make_shared<Ring>();
  ring->revision = revision;
  ring->jwks = {{"keys", json::array()}};
  for (const auto& e : entries) {
    std::optional<jwt::SigningKey> key;
    {
      std::lock_guard<std::mutex> lock(mu_);
      auto it = unsealed_.find(e.kid);
      if (it != unsealed_.end()) key = it->second;
    }
    if (!key) {
      ASSIGN_OR_RETURN(jwt::SigningKey k, unseal(e));
      std::lock_guard<std::mutex> lock(mu_);
      unsealed_.emplace(e.kid, k);
      key = k;
    }
    ring->verify_set.add(*key);
    ring->jwks["keys"].push_back(key->publicJwk());
    ring->keys.push_back(*key);
  }
  ring->entries = std::move(entries);
  // Keys no longer in the ring need not stay decrypted in memory.
  std::lock_guard<std::mutex> lock(mu_);
  for (auto it = unsealed_.begin(); it != unsealed_.end();) {
    bool kept = std::any_of(ring->entries.begin(), ring->entries.end(),
                            [&](const KeyEntry& e) { return e.kid == it->first; });
    it = kept ? std::next(it) : unsealed_.erase(it);
  }
  return std::shared_ptr<const Ring>(std::move(ring));
}

namespace {
Result<std::vector<json>> parseRingRecord(const std::string& value) {
  json j = json::parse(value, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object() || !j.contains("keys") || !j["keys"].is_array())
    return Status::internal(std::string(kKeysKey) + " is not a key ring record");
  return j["keys"].get<std::vector<json>>();
}
}  // namespace

Status TokenService::rotate(int64_t now) {
  const int64_t period = options_.rotation_period.count();
  const int64_t lead = options_.rotation_lead.count();
  const int64_t retire_after = options_.access_ttl.count() + options_.leeway.count();
  return retryOnAbort([&]() -> Status {
    auto kv = store_.get(kKeysKey);
    int64_t revision = 0;
    std::vector<KeyEntry> entries;
    if (kv.isOk()) {
      revision = kv->revision;
      ASSIGN_OR_RETURN(auto records, parseRingRecord(kv->value));
      for (const auto& r : records) {
        KeyEntry e;
        ASSIGN_OR_RETURN(e.kid, edge::json::getString(r, "kid", kKeysKey));
        ASSIGN_OR_RETURN(e.active_from, edge::json::getInt(r, "active_from", kKeysKey));
        ASSIGN_OR_RETURN(e.sealed, edge::json::getString(r, "sealed", kKeysKey));
        entries.push_back(std::move(e));
      }
    } else if (kv.status().code() != StatusCode::kNotFound) {
      return kv.status();
    }
    std::sort(entries.begin(), entries.end(),
              [](const KeyEntry& a, const KeyEntry& b) { return a.active_from < b.active_from; });

    bool changed = false;
    auto addKey = [&](int64_t active_from) -> Status {
      ASSIGN_OR_RETURN(jwt::SigningKey key, jwt::SigningKey::generate());
      ASSIGN_OR_RETURN(std::string sealed, seal(key));
      {
        std::lock_guard<std::mutex> lock(mu_);
        unsealed_.emplace(key.kid(), key);
      }
      entries.push_back(KeyEntry{key.kid(), active_from, std::move(sealed)});
      LOG_INFO("tokens.key_added").kv("kid", key.kid()).kv("active_from", active_from);
      changed = true;
      return Status::ok();
    };
    int current = -1;
    for (size_t i = 0; i < entries.size(); ++i)
      if (entries[i].active_from <= now) current = static_cast<int>(i);
    if (current < 0) {
      // First start (or only future keys): sign at once; nobody holds older tokens.
      RETURN_IF_ERROR(addKey(now));
    } else {
      const KeyEntry& cur = entries[current];
      bool has_next = static_cast<size_t>(current) + 1 < entries.size();
      if (!has_next && now >= cur.active_from + period - lead)
        RETURN_IF_ERROR(addKey(std::max(cur.active_from + period, now + lead)));
      // A superseded key stays until the last token it signed has expired.
      std::vector<KeyEntry> kept;
      for (size_t i = 0; i < entries.size(); ++i) {
        bool superseded = static_cast<int>(i) < current;
        if (superseded && entries[i + 1].active_from + retire_after <= now) {
          LOG_INFO("tokens.key_retired").kv("kid", entries[i].kid);
          changed = true;
          continue;
        }
        kept.push_back(entries[i]);
      }
      entries = std::move(kept);
    }
    if (changed) {
      json record = {{"keys", json::array()}};
      for (const auto& e : entries)
        record["keys"].push_back(
            {{"kid", e.kid}, {"active_from", e.active_from}, {"sealed", e.sealed}});
      ASSIGN_OR_RETURN(revision, store_.put(kKeysKey, record.dump(), revision));
    }
    auto current_ring = ring();
    if (current_ring && current_ring->revision == revision && !changed) return Status::ok();
    ASSIGN_OR_RETURN(auto built, buildRing(revision, std::move(entries)));
    std::lock_guard<std::mutex> lock(mu_);
    ring_ = std::move(built);
    return Status::ok();
  });
}

Status TokenService::reloadRing() {
  // rotate() with nothing due only re-reads; it never writes a ring it did not change.
  return rotate(nowSeconds());
}

Status TokenService::reloadRevoked(int64_t now) {
  ASSIGN_OR_RETURN(auto listed, store_.list(kRevokedPrefix));
  std::map<std::string, int64_t> revoked;
  for (const auto& kv : listed) {
    json j = json::parse(kv.value, nullptr, false);
    int64_t exp = j.is_object() ? intField(j, "exp") : 0;
    if (exp + options_.leeway.count() < now) {
      (void)store_.remove(kv.key, kv.revision);  // a racing replica may have done it
      continue;
    }
    revoked[kv.key.substr(sizeof(kRevokedPrefix) - 1)] = exp;
  }
  std::lock_guard<std::mutex> lock(mu_);
  revoked_ = std::move(revoked);
  return Status::ok();
}

Status TokenService::sweepRefresh(int64_t now) {
  std::string after;
  while (true) {
    ASSIGN_OR_RETURN(auto page, store_.list(kRefreshPrefix, 500, after));
    for (const auto& kv : page) {
      json rec = json::parse(kv.value, nullptr, false);
      if (rec.is_object() && intField(rec, "expires_at") > now) continue;
      (void)store_.remove(kv.key, kv.revision);  // a racing replica may have done it
    }
    if (page.size() < 500) return Status::ok();
    after = page.back().key;
  }
}

Status TokenService::maintain() {
  int64_t now = nowSeconds();
  RETURN_IF_ERROR(rotate(now));
  RETURN_IF_ERROR(reloadRevoked(now));
  // Expired refresh families are deleted when presented; the rest are swept now and then.
  bool sweep = false;
  {
    std::lock_guard<std::mutex> lock(mu_);
    SteadyTime steady = clock_->now();
    if (!last_sweep_ || steady - *last_sweep_ >= kRefreshSweepInterval) {
      last_sweep_ = steady;
      sweep = true;
    }
  }
  return sweep ? sweepRefresh(now) : Status::ok();
}

void TokenService::startMaintenance() {
  std::lock_guard<std::mutex> lock(thread_mu_);
  if (thread_.joinable()) return;
  thread_stop_ = false;
  thread_ = std::thread([this] {
    std::unique_lock<std::mutex> lock(thread_mu_);
    while (!thread_cv_.wait_for(lock, options_.maintenance_interval,
                                [this] { return thread_stop_; })) {
      lock.unlock();
      Status s = maintain();
      if (!s.isOk()) LOG_WARN("tokens.maintenance_failed").kv("error", s.toString());
      lock.lock();
    }
  });
}

void TokenService::stopMaintenance() {
  {
    std::lock_guard<std::mutex> lock(thread_mu_);
    thread_stop_ = true;
  }
  thread_cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

std::string TokenService::signingKid() const {
  auto r = ring();
  int64_t now = nowSeconds();
  std::string kid;
  for (const auto& e : r->entries)
    if (e.active_from <= now) kid = e.kid;
  return kid;
}

std::vector<std::string> TokenService::publishedKids() const {
  std::vector<std::string> out;
  for (const auto& e : ring()->entries) out.push_back(e.kid);
  return out;
}

json TokenService::jwks() const {
  return ring()->jwks;
}

json TokenService::discoveryDocument() const {
  const std::string& iss = options_.issuer;
  std::vector<std::string> scopes = nodeScopes();
  scopes.push_back(std::string(kAccountAdminScope));
  scopes.push_back("admin");
  return {{"issuer", iss},
          {"token_endpoint", iss + "/oauth2/token"},
          {"jwks_uri", iss + "/.well-known/jwks.json"},
          {"revocation_endpoint", iss + "/oauth2/revoke"},
          {"grant_types_supported", {"client_credentials", "password", "refresh_token"}},
          {"token_endpoint_auth_methods_supported",
           {"client_secret_basic", "client_secret_post", "none"}},
          {"revocation_endpoint_auth_methods_supported",
           {"client_secret_basic", "client_secret_post", "none"}},
          {"scopes_supported", scopes},
          {"response_types_supported", json::array()},
          {"access_token_signing_alg_values_supported", {jwt::kAlgorithm}}};
}

// --- issuing ---

Result<std::string> TokenService::signAccessToken(const Grant& grant, int64_t now,
                                                  std::string* jti) {
  auto r = ring();
  const jwt::SigningKey* key = nullptr;
  for (size_t i = 0; i < r->entries.size(); ++i)
    if (r->entries[i].active_from <= now) key = &r->keys[i];
  if (!key)
    return Status::failedPrecondition("no signing key is active yet (" + std::string(kKeysKey) +
                                      " holds only future keys)");
  *jti = randomId();
  json claims = {{"iss", options_.issuer},
                 {"sub", grant.subject},
                 {"exp", now + options_.access_ttl.count()},
                 {"iat", now},
                 {"jti", *jti},
                 {"client_id", grant.client_id},
                 {"scope", joined(grant.scopes)}};
  if (grant.audiences.size() == 1)
    claims["aud"] = grant.audiences[0];
  else
    claims["aud"] = grant.audiences;
  if (!grant.account.empty()) claims["acct"] = grant.account;
  if (!grant.node_id.empty()) claims["node"] = grant.node_id;
  return key->sign({{"typ", jwt::kAccessTokenType}}, claims);
}

OAuthReply TokenService::issue(const Grant& grant, bool with_refresh, const std::string& family,
                               int64_t family_revision) {
  int64_t now = nowSeconds();
  std::string refresh_token;
  if (with_refresh) {
    std::string fam = family.empty() ? randomId() : family;
    refresh_token = std::string(kRefreshTokenTag) + "." + fam + "." + randomToken();
    json record = {{"family", fam},
                   {"current", sha256Hex(refresh_token)},
                   {"client_id", grant.client_id},
                   {"account", grant.account},
                   {"user", grant.user},
                   {"scope", grant.family_scopes.empty() ? grant.scopes : grant.family_scopes},
                   {"aud", grant.audiences},
                   {"expires_at", now + options_.refresh_ttl.count()},
                   {"revoked", false}};
    auto put =
        store_.put(kRefreshPrefix + fam, record.dump(), family.empty() ? 0 : family_revision);
    if (!put.isOk()) {
      if (put.status().code() == StatusCode::kAborted && !family.empty()) {
        // Another use of the same token won the race: that is a reuse too.
        Status revoked =
            revokeFamily(kRefreshPrefix + fam, "the refresh token was used twice at once");
        if (!revoked.isOk()) return serverError(revoked);
        return oauthError(400, "invalid_grant",
                          "refresh token was used concurrently; its whole family is revoked");
      }
      return serverError(put.status());
    }
  }
  std::string jti;
  auto access = signAccessToken(grant, now, &jti);
  if (!access.isOk()) return serverError(access.status());
  OAuthReply reply;
  reply.body = {{"access_token", *access},
                {"token_type", "Bearer"},
                {"expires_in", options_.access_ttl.count()},
                {"scope", joined(grant.scopes)}};
  if (with_refresh) reply.body["refresh_token"] = refresh_token;
  return reply;
}

namespace {

// The scopes to grant: those requested that are allowed, or all allowed when none is
// requested. An error reply when a requested scope is malformed or nothing is left.
Result<std::vector<std::string>> grantScopes(const std::optional<std::string>& requested,
                                             const std::vector<std::string>& allowed,
                                             const std::string& who) {
  if (!requested) return allowed;
  std::vector<std::string> out;
  for (const auto& s : jwt::splitScopes(*requested)) {
    RETURN_IF_ERROR(checkScope(s));
    if (std::find(allowed.begin(), allowed.end(), s) != allowed.end() &&
        std::find(out.begin(), out.end(), s) == out.end())
      out.push_back(s);
  }
  if (out.empty())
    return Status::permissionDenied(
        "none of the requested scopes (" + *requested + ") is granted to " + who +
        "; it may have: " + (allowed.empty() ? "none" : joined(allowed)));
  return out;
}

Result<std::vector<std::string>> audiences(const OAuthRequest& req) {
  std::vector<std::string> out;
  for (const char* name : {"audience", "resource"}) {
    auto [lo, hi] = req.params.equal_range(name);
    for (auto it = lo; it != hi; ++it)
      for (auto& a : jwt::splitScopes(it->second)) {
        if (a != kBackendAudience && a != kNodeAudience)
          return Status::invalidArgument(std::string(name) + " \"" + a + "\" is not one of " +
                                         std::string(kBackendAudience) + ", " +
                                         std::string(kNodeAudience));
        if (std::find(out.begin(), out.end(), a) == out.end()) out.push_back(a);
      }
  }
  if (out.empty()) out.push_back(std::string(kBackendAudience));
  return out;
}

OAuthReply scopeError(const Status& s) {
  return oauthError(400, "invalid_scope", s.message());
}

}  // namespace

OAuthReply TokenService::token(const OAuthRequest& req) {
  auto grant_type = single(req, "grant_type");
  if (!grant_type.isOk()) return oauthError(400, "invalid_request", grant_type.status().message());
  if (!grant_type->has_value()) return oauthError(400, "invalid_request", "grant_type is missing");

  // Client authentication: exactly one method (RFC 6749 2.3).
  auto form_id = single(req, "client_id");
  auto form_secret = single(req, "client_secret");
  if (!form_id.isOk()) return oauthError(400, "invalid_request", form_id.status().message());
  if (!form_secret.isOk())
    return oauthError(400, "invalid_request", form_secret.status().message());
  std::string id, secret;
  if (req.has_basic) {
    if (form_secret->has_value())
      return oauthError(400, "invalid_request",
                        "the client authenticated twice (HTTP Basic and client_secret); use one");
    if (form_id->has_value() && **form_id != req.basic_id)
      return oauthError(400, "invalid_request", "client_id differs from the Basic credentials");
    id = req.basic_id;
    secret = req.basic_secret;
  } else {
    id = form_id->value_or("");
    secret = form_secret->value_or("");
  }
  if (id.empty()) {
    OAuthReply r =
        oauthError(401, "invalid_client",
                   "no client authentication: send HTTP Basic or client_id and client_secret");
    r.basic_challenge = true;
    return r;
  }
  auto client = identity_.authenticateClient(id, secret);
  if (!client.isOk()) {
    if (client.status().code() != StatusCode::kPermissionDenied)
      return serverError(client.status());
    OAuthReply r = oauthError(401, "invalid_client", client.status().message());
    r.basic_challenge = req.has_basic;
    return r;
  }

  const std::string& type = **grant_type;
  if (type == "client_credentials") return clientCredentials(req, *client);
  if (type == "password") return password(req, *client);
  if (type == "refresh_token") return refresh(req, *client);
  return oauthError(400, "unsupported_grant_type",
                    "grant_type " + type +
                        " is not supported; use client_credentials, password or refresh_token");
}

OAuthReply TokenService::clientCredentials(const OAuthRequest& req, const ClientInfo& client) {
  if (client.is_public)
    return oauthError(400, "unauthorized_client",
                      "client " + client.id + " is public and may not use client_credentials");
  auto scope = single(req, "scope");
  if (!scope.isOk()) return oauthError(400, "invalid_request", scope.status().message());
  auto scopes = grantScopes(*scope, client.scopes, "client " + client.id);
  if (!scopes.isOk()) return scopeError(scopes.status());
  auto aud = audiences(req);
  if (!aud.isOk()) return oauthError(400, "invalid_target", aud.status().message());
  Grant g;
  g.client_id = client.id;
  g.account = client.account;
  g.node_id = client.node_id;
  g.subject = client.kind == ClientKind::kNode ? "node:" + client.node_id : "client:" + client.id;
  g.scopes = std::move(scopes).value();
  g.audiences = std::move(aud).value();
  return issue(g, /*with_refresh=*/false, "", 0);
}

OAuthReply TokenService::password(const OAuthRequest& req, const ClientInfo& client) {
  if (client.kind != ClientKind::kApplication || client.is_admin)
    return oauthError(400, "unauthorized_client",
                      "client " + client.id + " (kind " + std::string(clientKindName(client.kind)) +
                          ") may not use grant password; only application clients may");
  auto username = single(req, "username");
  auto pw = single(req, "password");
  auto scope = single(req, "scope");
  for (const auto* r : {&username, &pw, &scope})
    if (!r->isOk()) return oauthError(400, "invalid_request", r->status().message());
  if (!username->has_value() || !pw->has_value())
    return oauthError(400, "invalid_request", "grant password needs username and password");
  auto user = identity_.authenticateUser(client.account, **username, **pw);
  if (!user.isOk()) {
    if (user.status().code() != StatusCode::kPermissionDenied) return serverError(user.status());
    return oauthError(400, "invalid_grant", user.status().message());
  }
  auto scopes = grantScopes(*scope, user->scopes, "user " + user->name);
  if (!scopes.isOk()) return scopeError(scopes.status());
  auto aud = audiences(req);
  if (!aud.isOk()) return oauthError(400, "invalid_target", aud.status().message());
  Grant g;
  g.client_id = client.id;
  g.account = client.account;
  g.user = user->name;
  g.subject = "user:" + client.account + "/" + user->name;
  g.scopes = std::move(scopes).value();
  g.audiences = std::move(aud).value();
  return issue(g, /*with_refresh=*/true, "", 0);
}

Status TokenService::revokeFamily(const std::string& key, const std::string& reason) {
  return retryOnAbort([&]() -> Status {
    auto kv = store_.get(key);
    if (kv.status().code() == StatusCode::kNotFound) return Status::ok();
    RETURN_IF_ERROR(kv.status());
    json rec = json::parse(kv->value, nullptr, false);
    if (!rec.is_object()) return store_.remove(key, kv->revision).status();
    rec["revoked"] = true;
    rec["revoked_reason"] = reason;
    return store_.put(key, rec.dump(), kv->revision).status();
  });
}

OAuthReply TokenService::refresh(const OAuthRequest& req, const ClientInfo& client) {
  auto token = single(req, "refresh_token");
  auto scope = single(req, "scope");
  if (!token.isOk()) return oauthError(400, "invalid_request", token.status().message());
  if (!scope.isOk()) return oauthError(400, "invalid_request", scope.status().message());
  if (!token->has_value()) return oauthError(400, "invalid_request", "refresh_token is missing");
  const std::string& presented = **token;
  const OAuthReply kUnknown =
      oauthError(400, "invalid_grant", "refresh token is not valid (unknown, expired or revoked)");
  std::vector<std::string> parts;
  for (size_t i = 0, j; i <= presented.size(); i = j + 1) {
    j = presented.find('.', i);
    if (j == std::string::npos) j = presented.size();
    parts.push_back(presented.substr(i, j - i));
  }
  if (parts.size() != 3 || parts[0] != kRefreshTokenTag || !isRandomId(parts[1])) return kUnknown;
  const std::string key = kRefreshPrefix + parts[1];
  int64_t now = nowSeconds();

  auto kv = store_.get(key);
  if (kv.status().code() == StatusCode::kNotFound) return kUnknown;
  if (!kv.isOk()) return serverError(kv.status());
  json rec = json::parse(kv->value, nullptr, false);
  if (!rec.is_object()) return serverError(Status::internal(key + " is not a JSON object"));
  auto str = [&](const char* f) { return strField(rec, f); };
  if (intField(rec, "expires_at") <= now) {
    (void)store_.remove(key, kv->revision);
    return oauthError(400, "invalid_grant", "refresh token expired");
  }
  if (rec.contains("revoked") && rec["revoked"].is_boolean() && rec["revoked"].get<bool>())
    return oauthError(400, "invalid_grant",
                      "refresh token family was revoked (" + str("revoked_reason") + ")");
  if (str("client_id") != client.id)
    return oauthError(400, "invalid_grant", "refresh token was issued to another client");
  std::string current = str("current"), presented_hash = sha256Hex(presented);
  if (current.size() != presented_hash.size() ||
      CRYPTO_memcmp(current.data(), presented_hash.data(), current.size()) != 0) {
    // A spent token came back: the holder and someone else both have the family.
    Status revoked = revokeFamily(key, "a spent refresh token was presented again");
    if (!revoked.isOk()) return serverError(revoked);
    LOG_WARN("tokens.refresh_reuse").kv("family", parts[1]).kv("client", client.id);
    return oauthError(400, "invalid_grant",
                      "refresh token was already used; its whole family is revoked (reuse "
                      "detection): log in again");
  }
  // The user must still exist; its scopes may have shrunk since.
  std::string user_name = str("user");
  std::string account = str("account");
  auto user = identity_.getUser(account, user_name);
  if (!user.isOk()) {
    if (user.status().code() == StatusCode::kNotFound)
      return oauthError(400, "invalid_grant", "the user of this refresh token no longer exists");
    return serverError(user.status());
  }
  std::vector<std::string> original;
  if (rec.contains("scope") && rec["scope"].is_array())
    for (const auto& s : rec["scope"])
      if (s.is_string() &&
          std::find(user->scopes.begin(), user->scopes.end(), s) != user->scopes.end())
        original.push_back(s.get<std::string>());
  auto scopes = grantScopes(*scope, original, "this refresh token");
  if (!scopes.isOk()) return scopeError(scopes.status());
  Grant g;
  g.client_id = client.id;
  g.account = account;
  g.user = user_name;
  g.subject = "user:" + account + "/" + user_name;
  // A narrower scope applies to this access token; the family keeps the original.
  g.scopes = std::move(scopes).value();
  g.family_scopes = original;
  auto aud = audiences(req);
  if (!aud.isOk()) return oauthError(400, "invalid_target", aud.status().message());
  if (req.params.count("audience") == 0 && req.params.count("resource") == 0 &&
      rec.contains("aud") && rec["aud"].is_array()) {
    std::vector<std::string> stored;
    for (const auto& a : rec["aud"])
      if (a.is_string()) stored.push_back(a.get<std::string>());
    if (!stored.empty()) aud = std::move(stored);
  }
  g.audiences = std::move(aud).value();
  return issue(g, /*with_refresh=*/true, parts[1], kv->revision);
}

OAuthReply TokenService::revoke(const OAuthRequest& req) {
  std::string id = oauthClientId(req);
  std::string secret = req.has_basic ? req.basic_secret : "";
  if (!req.has_basic) {
    auto it = req.params.find("client_secret");
    if (it != req.params.end()) secret = it->second;
  }
  auto client = identity_.authenticateClient(id, secret);
  if (!client.isOk()) {
    if (client.status().code() != StatusCode::kPermissionDenied)
      return serverError(client.status());
    OAuthReply r = oauthError(401, "invalid_client", client.status().message());
    r.basic_challenge = req.has_basic;
    return r;
  }
  auto token = single(req, "token");
  if (!token.isOk()) return oauthError(400, "invalid_request", token.status().message());
  if (!token->has_value()) return oauthError(400, "invalid_request", "token is missing");
  const std::string& t = **token;
  OAuthReply ok;  // RFC 7009 2.2: 200 also for tokens that are invalid or not the client's

  if (t.rfind(std::string(kRefreshTokenTag) + ".", 0) == 0) {
    size_t d1 = t.find('.'), d2 = t.find('.', d1 + 1);
    if (d2 == std::string::npos || !isRandomId(std::string_view(t).substr(d1 + 1, d2 - d1 - 1)))
      return ok;
    std::string key = kRefreshPrefix + t.substr(d1 + 1, d2 - d1 - 1);
    Status s = retryOnAbort([&]() -> Status {
      auto kv = store_.get(key);
      if (!kv.isOk())
        return kv.status().code() == StatusCode::kNotFound ? Status::ok() : kv.status();
      json rec = json::parse(kv->value, nullptr, false);
      if (!rec.is_object() || strField(rec, "client_id") != client->id ||
          strField(rec, "current") != sha256Hex(t))
        return Status::ok();
      return store_.remove(key, kv->revision).status();
    });
    return s.isOk() ? ok : serverError(s);
  }

  // An access token of ours: refuse its jti until it would have expired anyway.
  auto r = ring();
  for (std::string_view aud : {kBackendAudience, kNodeAudience}) {
    jwt::VerifyOptions o;
    o.issuer = options_.issuer;
    o.audience = std::string(aud);
    o.leeway = options_.leeway;
    o.now = clock_->wallNow();
    auto claims = jwt::verify(t, r->verify_set, o);
    if (!claims.isOk()) continue;
    if (strField(*claims, "client_id") != client->id) return ok;
    std::string jti = strField(*claims, "jti");
    int64_t exp = intField(*claims, "exp");
    if (!isRandomId(jti)) return ok;
    auto put = store_.put(kRevokedPrefix + jti, json{{"exp", exp}}.dump());
    if (!put.isOk()) return serverError(put.status());
    std::lock_guard<std::mutex> lock(mu_);
    revoked_[jti] = exp;
    return ok;
  }
  return ok;
}

// --- verifying ---

Result<Caller> TokenService::authenticate(std::string_view authorization,
                                          std::string_view audience) {
  if (authorization.empty())
    return Status::permissionDenied("no access token: send Authorization: Bearer <token>");
  size_t sp = authorization.find(' ');
  std::string scheme(authorization.substr(0, sp));
  for (char& c : scheme) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (scheme != "bearer" || sp == std::string_view::npos)
    return Status::permissionDenied("Authorization scheme is not Bearer");
  std::string_view token = authorization.substr(sp + 1);
  while (!token.empty() && token.front() == ' ') token.remove_prefix(1);
  while (!token.empty() && token.back() == ' ') token.remove_suffix(1);

  jwt::VerifyOptions o;
  o.issuer = options_.issuer;
  o.audience = std::string(audience);
  o.leeway = options_.leeway;
  o.now = clock_->wallNow();
  auto claims = jwt::verify(token, ring()->verify_set, o);
  if (!claims.isOk() && claims.status().message().rfind("unknown key id", 0) == 0) {
    // A key another replica added since our last maintenance; look once in a while.
    bool reload = false;
    {
      std::lock_guard<std::mutex> lock(mu_);
      SteadyTime now = clock_->now();
      if (last_forced_reload_ == SteadyTime{} ||
          now - last_forced_reload_ >= kForcedReloadInterval) {
        last_forced_reload_ = now;
        reload = true;
      }
    }
    if (reload && reloadRing().isOk()) claims = jwt::verify(token, ring()->verify_set, o);
  }
  if (!claims.isOk()) return claims.status();

  Caller c;
  auto str = [&](const char* f) {
    auto it = claims->find(f);
    return it != claims->end() && it->is_string() ? it->get<std::string>() : std::string();
  };
  c.subject = str("sub");
  c.client_id = str("client_id");
  c.account = str("acct");
  c.node_id = str("node");
  c.scopes = jwt::splitScopes(str("scope"));
  c.expires_at = intField(*claims, "exp");
  if (c.subject.empty()) return Status::permissionDenied("token has no sub");
  std::string jti = str("jti");
  std::lock_guard<std::mutex> lock(mu_);
  if (!jti.empty() && revoked_.count(jti)) return Status::permissionDenied("token was revoked");
  return c;
}

}  // namespace edge::backend
