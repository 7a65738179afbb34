#include "edged/backend_link.h"

#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>

#include "common/cluster_port.h"
#include "common/crypto.h"
#include "common/jwt.h"
#include "common/log.h"
#include "common/net.h"
#include "gateway/token_verifier.h"
#include "mesh/peer_client.h"
#include "mesh/peer_server.h"
#include "mesh/relay_client.h"

namespace edge::edged {

using nlohmann::json;
using namespace std::chrono_literals;

namespace {

constexpr auto kTick = 2s;
constexpr auto kRetryAfterError = 10s;
constexpr auto kPeerTimeout = 10s;
constexpr auto kDialTimeout = 3s;

// What a supernode tells the backend about one member: enough to find and reach it.
json memberSummary(const discovery::Member& m) {
  const auto& p = m.profile;
  json addresses = json::array();
  for (const auto& a : p.addresses) addresses.push_back(a.address);
  json j = {{"node_id", p.node_id},
            {"name", p.name},
            {"endpoint", p.endpoint},
            {"public_address", p.public_address},
            {"arch", p.arch},
            {"os", p.os},
            {"runtime", p.runtime},
            {"addresses", addresses},
            {"services", p.services},
            {"roles", m.roles},
            {"cpus", p.cpus},
            {"memory_bytes", p.memory_bytes},
            {"storage_free_bytes", p.storage_free_bytes},
            {"score", m.score},
            {"started_at", p.started_at}};
  if (p.has_location) j["location"] = {{"lat", p.latitude}, {"lon", p.longitude}};
  return j;
}

// GET `path` of the backend at `url` (a /.well-known document): its body, or why not.
Result<std::string> fetchWellKnown(const std::string& url, const std::string& path) {
  http::Client c(*http::Endpoint::parse(url));
  http::Request req;
  req.path = path;
  req.read_timeout = 5s;
  ASSIGN_OR_RETURN(auto res, c.send(req));
  if (!res.isSuccess())
    return Status::unavailable("backend " + url + path + ": HTTP " + std::to_string(res.status));
  return res.body;
}

// The claims of a verified token as the peer server reads them.
json claimsJson(const gateway::TokenClaims& c) {
  return {{"sub", c.subject},
          {"client_id", c.client_id},
          {"acct", c.account},
          {"node", c.node},
          {"scope", jwt::joinScopes(c.scopes)},
          {"iss", c.issuer},
          {"aud", c.audiences},
          {"exp", c.expires_at}};
}

}  // namespace

BackendLink::BackendLink(Options options, identity::NodeIdentity identity, Clock& clock)
    : options_(std::move(options)), identity_(std::move(identity)), clock_(clock) {
  // Made here, not in start(): discovery starts first and may hand over a peer channel
  // before start() runs. Until the node API is up such a call fails like any other.
  mesh::PeerServer::Options po;
  po.local_api = options_.local_api;
  po.verify = [this](std::string_view token, std::string_view caller) {
    return verifyPeerToken(token, caller);
  };
  peers_ = std::make_unique<mesh::PeerServer>(identity_, po);
  if (options_.backend.empty()) return;
  mesh::BackendClient::Options bo;
  bo.url = options_.backend;
  bo.data_dir = options_.data_dir;
  bo.join_token_file = options_.join_token_file;
  auto client = mesh::BackendClient::create(bo, identity_, clock_);
  if (!client.isOk()) {
    init_error_ = client.status();
    return;
  }
  client_ = std::move(*client);
  mesh::RelayClient::Options ro;
  ro.backend_url = options_.backend;
  ro.node_id = identity_.id();
  ro.access_token = [this] { return client_->accessToken("edge-backend"); };
  ro.node_token = [this](const std::string&) { return client_->accessToken("edge-node"); };
  relay_ = std::make_unique<mesh::RelayClient>(ro);
}

BackendLink::~BackendLink() {
  stop();
}

Status BackendLink::start(discovery::Discovery* discovery) {
  discovery_ = discovery;
  RETURN_IF_ERROR(init_error_);
  if (!client_) return Status::ok();
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = false;
  }
  thread_ = std::thread([this] { loop(); });
  return Status::ok();
}

void BackendLink::stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
  if (relay_) relay_->stop();
  if (peers_) peers_->stop();
}

void BackendLink::servePeerChannel(int fd, std::string already_read) {
  peers_->serve(fd, std::move(already_read));
}

Result<std::string> BackendLink::issuer() {
  if (!client_) return Status::failedPrecondition("no backend configured");
  {
    std::lock_guard<std::mutex> lock(keys_mu_);
    if (!issuer_.empty()) return issuer_;
  }
  const std::string path = "/.well-known/openid-configuration";
  ASSIGN_OR_RETURN(std::string body, fetchWellKnown(options_.backend, path));
  json meta = json::parse(body, nullptr, false);
  if (!meta.is_object())
    return Status::invalidArgument("backend " + options_.backend + path + ": not a JSON object");
  auto it = meta.find("issuer");
  if (it == meta.end() || !it->is_string() || it->get_ref<const std::string&>().empty())
    return Status::invalidArgument("backend " + options_.backend + path +
                                   ": issuer is missing or not a non-empty string");
  std::lock_guard<std::mutex> lock(keys_mu_);
  issuer_ = it->get<std::string>();
  return issuer_;
}

Result<std::shared_ptr<gateway::TokenVerifier>> BackendLink::tokenVerifier() {
  if (!client_) return Status::failedPrecondition("no backend configured");
  std::lock_guard<std::mutex> lock(keys_mu_);
  if (!verifier_) {
    // Captures the URL, not this: the gateway may hold the verifier a little longer.
    auto cache = gateway::JwksCache::create(
        [url = options_.backend] { return fetchWellKnown(url, "/.well-known/jwks.json"); }, clock_);
    verifier_ = std::make_shared<gateway::TokenVerifier>(std::move(cache), clock_);
  }
  return verifier_;
}

std::string BackendLink::account() const {
  return client_ ? client_->account() : "";
}

Result<std::string> BackendLink::nodeToken() {
  if (!client_) return Status::failedPrecondition("no backend configured");
  return client_->accessToken("edge-node");
}

Result<int> BackendLink::dialRelay(const std::string& node_id) {
  if (!client_ || !relay_) return Status::failedPrecondition("no backend configured");
  return relay_->dial(node_id, "http");
}

void BackendLink::noteError(const std::string& what, const Status& s) {
  std::string text = what + ": " + s.message();
  std::lock_guard<std::mutex> lock(mu_);
  if (text != last_error_) LOG_WARN("backend.error").kv("what", what).kv("error", s.message());
  last_error_ = text;
  ++errors_this_tick_;
}

void BackendLink::loop() {
  std::unique_lock<std::mutex> lock(mu_);
  while (!stopping_) {
    lock.unlock();
    tick();
    lock.lock();
    cv_.wait_for(lock, kTick, [this] { return stopping_; });
  }
}

std::string BackendLink::ownEndpoint() const {
  if (!options_.endpoint.empty()) return options_.endpoint;
  discovery::Discovery* d = discovery_.load();
  if (d == nullptr) return "";
  auto snap = d->snapshot();
  for (const auto& c : snap.clusters)
    for (const auto& m : c.members)
      if (m.profile.node_id == identity_.id() && !m.profile.endpoint.empty())
        return m.profile.endpoint;
  return "";
}

void BackendLink::tick() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    errors_this_tick_ = 0;
  }
  tickOnce();
  // A round without errors clears the last one: state() shows only a current problem.
  std::lock_guard<std::mutex> lock(mu_);
  if (errors_this_tick_ == 0) last_error_.clear();
}

void BackendLink::tickOnce() {
  Status reg = client_->ensureRegistered();
  if (!reg.isOk()) {
    noteError("registration", reg);
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait_for(lock, kRetryAfterError, [this] { return stopping_; });
    return;
  }
  std::string endpoint = ownEndpoint();
  bool due;
  {
    std::lock_guard<std::mutex> lock(mu_);
    due = !endpoint.empty() && (endpoint != checked_endpoint_ || clock_.now() >= next_check_);
  }
  if (due) checkReachability(endpoint);
  registerClusters();
}

void BackendLink::checkReachability(const std::string& endpoint) {
  auto r = client_->call("POST", "/v1/nodes/self/reachability", json{{"endpoint", endpoint}});
  if (!r.isOk()) {
    noteError("reachability", r.status());
    std::lock_guard<std::mutex> lock(mu_);
    next_check_ = clock_.now() + kRetryAfterError;
    return;
  }
  bool reachable = r->value("reachable", false);
  bool start_sep = false;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!reachable_known_ || reachable != reachable_)
      LOG_INFO("backend.reachability")
          .kv("endpoint", endpoint)
          .kv("reachable", reachable)
          .kv("message", r->value("message", ""));
    reachable_known_ = true;
    reachable_ = reachable;
    checked_endpoint_ = endpoint;
    next_check_ = clock_.now() + options_.reachability_recheck;
    start_sep = !reachable && !sep_started_;
    if (start_sep) sep_started_ = true;
  }
  if (start_sep) {
    // A node the backend cannot call holds a SEP; signals of callers arrive there.
    // Once held, the SEP stays until edged stops: a node that became reachable costs
    // the relay one idle connection, and callers that still see it as unreachable work.
    Status s = relay_->startSep(
        [this](const mesh::Signal& sig) -> Status {
          auto claims = verifyPeerToken(sig.token, sig.from);
          return claims.isOk() ? Status::ok() : claims.status();
        },
        [this](int fd, const std::string& /*caller*/) {
          if (port_) {
            port_->adopt(fd, /*allow_discovery=*/false);
          } else {
            ::close(fd);
          }
        });
    if (!s.isOk()) noteError("SEP", s);
  }
}

void BackendLink::registerClusters() {
  discovery::Discovery* d = discovery_.load();
  if (d == nullptr) return;
  auto snap = d->snapshot();
  for (const auto& c : snap.clusters) {
    if (c.state != "supernode" || c.supernode_id != identity_.id()) continue;
    json members = json::array();
    json location;
    std::string account = client_->account();
    for (const auto& m : c.members) {
      // A link may carry nodes of several accounts: a member that names another account
      // in its profile is not registered under ours.
      if (!m.profile.account_id.empty() && m.profile.account_id != account) continue;
      members.push_back(memberSummary(m));
      if (m.profile.node_id == identity_.id() && m.profile.has_location)
        location = {{"lat", m.profile.latitude}, {"lon", m.profile.longitude}};
    }
    json body = {{"cluster_id", c.cluster_id}, {"members", members}};
    if (!location.is_null()) body["location"] = location;
    std::string digest = crypto::sha256Hex(body.dump()).substr(0, 32);
    body["digest"] = digest;

    ClusterReg reg;
    {
      std::lock_guard<std::mutex> lock(mu_);
      reg = clusters_[c.cluster_id];
    }
    bool full = reg.digest != digest || reg.cluster_key.empty();
    if (!full && clock_.now() - reg.last_sent < options_.heartbeat) continue;
    if (!full) {
      auto hb = client_->call("POST", "/v1/clusters/" + reg.cluster_key + "/heartbeat",
                              json{{"digest", digest}});
      if (hb.isOk()) {
        std::lock_guard<std::mutex> lock(mu_);
        clusters_[c.cluster_id].last_sent = clock_.now();
        continue;
      }
      // Expired, or registered by another supernode meanwhile: send it all again.
      if (hb.status().code() != StatusCode::kNotFound &&
          hb.status().code() != StatusCode::kFailedPrecondition) {
        noteError("cluster heartbeat", hb.status());
        continue;
      }
    }
    auto r = client_->call("POST", "/v1/clusters", body);
    if (!r.isOk()) {
      noteError("cluster registration", r.status());
      continue;
    }
    std::lock_guard<std::mutex> lock(mu_);
    auto& cur = clusters_[c.cluster_id];
    cur.digest = digest;
    cur.cluster_key = r->value("cluster_key", "");
    cur.last_sent = clock_.now();
    LOG_INFO("backend.cluster_registered")
        .kv("cluster", c.cluster_id)
        .kv("key", cur.cluster_key)
        .kv("members", c.members.size());
  }
}

json BackendLink::state() const {
  if (!client_) return json{{"configured", false}};
  json out = {{"configured", true},
              {"url", client_->url()},
              {"registered", client_->registered()},
              {"account", client_->account()}};
  std::lock_guard<std::mutex> lock(mu_);
  out["reachable"] = reachable_known_ ? json(reachable_) : json(nullptr);
  out["endpoint"] = checked_endpoint_;
  out["path"] = !reachable_known_ ? "unknown" : reachable_ ? "direct" : "sep";
  json clusters = json::array();
  for (const auto& [id, reg] : clusters_)
    clusters.push_back({{"cluster_id", id}, {"cluster_key", reg.cluster_key}});
  out["registered_clusters"] = clusters;
  if (relay_) out["relay"] = relay_->state();
  out["last_error"] = last_error_;
  return out;
}

Result<json> BackendLink::queryNodes(const std::string& query) {
  if (!client_)
    return Status::failedPrecondition(
        "this node has no backend: scopes account and proximity across networks need one "
        "(set backend: http://host:port)");
  return client_->call("GET", "/v1/nodes" + (query.empty() ? "" : "?" + query));
}

Result<json> BackendLink::route(const std::string& node_id) {
  if (!identity::isNodeId(node_id))
    return Status::invalidArgument("node id \"" + node_id +
                                   "\" is not 16 lower-case hex characters");
  if (discovery::Discovery* d = discovery_.load()) {
    auto snap = d->snapshot();
    for (const auto& c : snap.clusters)
      for (const auto& m : c.members)
        if (m.profile.node_id == node_id)
          return json{{"node_id", node_id},
                      {"path", "link"},
                      {"endpoint", m.profile.endpoint},
                      {"cluster", c.cluster_id}};
  }
  if (!client_)
    return Status::notFound("node " + node_id +
                            " is on none of this node's links, and without a backend there is "
                            "no way to find it elsewhere");
  ASSIGN_OR_RETURN(auto n, client_->call("GET", "/v1/nodes/" + node_id));
  bool reachable = n.contains("reachable") && n["reachable"].is_boolean() && n["reachable"];
  std::string endpoint = n.value("reachability_endpoint", n.value("endpoint", ""));
  return json{{"node_id", node_id},
              {"path", reachable ? "direct" : "relay"},
              {"endpoint", endpoint},
              {"cluster", n.value("cluster_id", "")}};
}

Result<http::Response> BackendLink::callPeer(const std::string& node_id,
                                             const http::Request& request) {
  if (!client_)
    return Status::failedPrecondition(
        "calls to other nodes need tokens from edge-backend: configure backend: "
        "http://host:port");
  if (node_id == identity_.id())
    return Status::invalidArgument("node " + node_id + " is this node; call its API directly");
  ASSIGN_OR_RETURN(auto r, route(node_id));
  ASSIGN_OR_RETURN(auto token, client_->accessToken("edge-node"));
  std::string path = r.value("path", "");
  std::string endpoint = r.value("endpoint", "");
  Result<int> fd = Status::unavailable("no path");
  if ((path == "link" || path == "direct") && !endpoint.empty()) {
    fd = net::dialTcp(endpoint, kDialTimeout);
    if (!fd.isOk())
      LOG_INFO("peer.direct_failed").kv("node", node_id).kv("error", fd.status().message());
  }
  if (!fd.isOk()) {
    // Not reachable directly (behind NAT, or the direct dial failed): through the relays.
    fd = relay_->dial(node_id, "http");
    if (!fd.isOk())
      return Status(fd.status().code(), "node " + node_id + " (" + path + " " + endpoint +
                                            "): " + fd.status().message());
    path = "relay";
  }
  auto res = mesh::callPeer(*fd, identity_, node_id, token, request, kPeerTimeout);
  if (res.isOk()) res->headers.emplace("X-Edge-Peer-Path", path);
  return res;
}

Result<json> BackendLink::verifyPeerToken(std::string_view token, std::string_view caller_node_id) {
  if (!client_)
    return Status::permissionDenied(
        "this node has no backend to check tokens against: peer calls are refused");
  if (token.empty()) return Status::permissionDenied("no token");
  auto issuer = this->issuer();
  if (!issuer.isOk())
    return Status::unavailable("cannot fetch the backend's issuer: " + issuer.status().message());
  std::string account = client_->account();
  if (account.empty())
    return Status::permissionDenied(
        "this node serves no account until the backend registers it: peer calls are refused");
  ASSIGN_OR_RETURN(auto verifier, tokenVerifier());
  gateway::Requirement req;
  req.issuer = *issuer;
  req.audience = "edge-node";
  req.account = account;
  req.node = std::string(caller_node_id);
  gateway::TokenCheck check = verifier->checkTokenBlocking(token, req);
  if (!check.ok()) {
    if (check.status == 401 || check.status == 403) return Status::permissionDenied(check.reason);
    return Status::unavailable(check.reason);
  }
  // Requirement::node "" binds nothing; an unnamed channel must carry a token of no node.
  if (caller_node_id.empty() && !check.claims->node.empty())
    return Status::permissionDenied("the token was issued to node " + check.claims->node +
                                    ", but the channel names no node");
  return claimsJson(*check.claims);
}

}  // namespace edge::edged
