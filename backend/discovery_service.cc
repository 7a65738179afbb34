#include "backend/discovery_service.h"

#include <arpa/inet.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <set>

#include "backend/http_util.h"
#include "common/crypto.h"
#include "common/http_server.h"
#include "common/log.h"
#include "identity/identity.h"

namespace edge::backend {

using nlohmann::json;

namespace {

constexpr int kCommitRetries = 5;
constexpr size_t kMaxIdBytes = 128;

bool isSafeName(std::string_view s, size_t max) {
  if (s.empty() || s.size() > max) return false;
  for (char c : s) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_' || c == '.';
    if (!ok) return false;
  }
  return true;
}

Result<std::string> stringField(const json& obj, const char* key, std::string_view path, size_t max,
                                bool required) {
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) {
    if (required) return Status::invalidArgument(std::string(path) + "." + key + ": required");
    return std::string();
  }
  if (!it->is_string())
    return Status::invalidArgument(std::string(path) + "." + key + ": expected a string, got " +
                                   it->type_name());
  const auto& s = it->get_ref<const std::string&>();
  if (s.size() > max)
    return Status::invalidArgument(std::string(path) + "." + key + ": longer than " +
                                   std::to_string(max) + " characters");
  return s;
}

Result<std::vector<std::string>> stringList(const json& obj, const char* key, std::string_view path,
                                            size_t max_items, size_t max_len) {
  std::vector<std::string> out;
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return out;
  if (!it->is_array())
    return Status::invalidArgument(std::string(path) + "." + key + ": expected an array");
  if (it->size() > max_items)
    return Status::invalidArgument(std::string(path) + "." + key + ": more than " +
                                   std::to_string(max_items) + " entries");
  for (size_t i = 0; i < it->size(); ++i) {
    const auto& v = (*it)[i];
    if (!v.is_string() || v.get_ref<const std::string&>().size() > max_len)
      return Status::invalidArgument(std::string(path) + "." + key + "[" + std::to_string(i) +
                                     "]: expected a string of at most " + std::to_string(max_len) +
                                     " characters");
    out.push_back(v.get<std::string>());
  }
  return out;
}

bool isHostPort(std::string_view s) {
  auto colon = s.rfind(':');
  if (colon == std::string_view::npos || colon == 0 || colon + 1 >= s.size()) return false;
  std::string host(s.substr(0, colon));
  in_addr a{};
  if (inet_pton(AF_INET, host.c_str(), &a) != 1) return false;
  int port = 0;
  for (char c : s.substr(colon + 1)) {
    if (c < '0' || c > '9') return false;
    port = port * 10 + (c - '0');
    if (port > 65535) return false;
  }
  return port > 0;
}

// Whether `address` (dotted quad) lies in the prefix at the start of a cluster id
// ("198.18.1.0/24" or "198.18.1.0/24@203.0.113.9").
bool inClusterPrefix(const std::string& cluster_id, const std::string& address) {
  std::string prefix = cluster_id.substr(0, cluster_id.find('@'));
  auto slash = prefix.find('/');
  if (slash == std::string::npos) return false;
  in_addr net{}, addr{};
  if (inet_pton(AF_INET, prefix.substr(0, slash).c_str(), &net) != 1) return false;
  if (inet_pton(AF_INET, address.c_str(), &addr) != 1) return false;
  int len = std::atoi(prefix.c_str() + slash + 1);
  if (len < 0 || len > 32) return false;
  uint32_t mask = len == 0 ? 0 : htonl(~uint32_t(0) << (32 - len));
  return (net.s_addr & mask) == (addr.s_addr & mask);
}

json parseRecord(const KeyValue& kv) {
  json j = json::parse(kv.value, nullptr, false);
  if (!j.is_object()) return json::object();
  return j;
}

// Validates one member of a registration and keeps only the fields we know.
Result<json> cleanMember(const json& m, const std::string& path) {
  if (!m.is_object()) return Status::invalidArgument(path + ": expected an object");
  json out = json::object();
  ASSIGN_OR_RETURN(auto id, stringField(m, "node_id", path, 16, true));
  if (!identity::isNodeId(id))
    return Status::invalidArgument(path + ".node_id: \"" + id +
                                   "\" is not a node id (16 lower-case hex characters)");
  out["node_id"] = id;
  ASSIGN_OR_RETURN(auto name, stringField(m, "name", path, 253, false));
  out["name"] = name;
  ASSIGN_OR_RETURN(auto endpoint, stringField(m, "endpoint", path, 64, false));
  if (!endpoint.empty() && !isHostPort(endpoint))
    return Status::invalidArgument(path + ".endpoint: \"" + endpoint +
                                   "\" is not an IPv4 address and port");
  out["endpoint"] = endpoint;
  ASSIGN_OR_RETURN(auto pub, stringField(m, "public_address", path, 64, false));
  out["public_address"] = pub;
  for (const char* k : {"arch", "runtime", "os"}) {
    ASSIGN_OR_RETURN(auto v, stringField(m, k, path, 64, false));
    out[k] = v;
  }
  ASSIGN_OR_RETURN(auto addresses, stringList(m, "addresses", path, 64, 64));
  out["addresses"] = addresses;
  ASSIGN_OR_RETURN(auto services, stringList(m, "services", path, 512, 128));
  out["services"] = services;
  ASSIGN_OR_RETURN(auto roles, stringList(m, "roles", path, 8, 32));
  out["roles"] = roles;
  for (const char* k : {"cpus", "memory_bytes", "storage_free_bytes", "score", "started_at"}) {
    auto it = m.find(k);
    if (it == m.end() || it->is_null()) continue;
    if (!it->is_number_integer() || it->get<int64_t>() < 0)
      return Status::invalidArgument(path + "." + k + ": expected a non-negative integer");
    out[k] = it->get<int64_t>();
  }
  if (m.contains("location") && !m["location"].is_null()) {
    ASSIGN_OR_RETURN(auto p, parseGeoPoint(m["location"], path + ".location"));
    out["location"] = {{"lat", p.lat}, {"lon", p.lon}};
  }
  return out;
}

std::optional<GeoPoint> locationOf(const json& record) {
  auto it = record.find("location");
  if (it == record.end() || !it->is_object()) return std::nullopt;
  auto p = parseGeoPoint(*it, "location");
  if (!p.isOk()) return std::nullopt;
  return *p;
}

}  // namespace

DiscoveryService::DiscoveryService(Store& store, Authenticator& auth, Clock& clock, Options options)
    : store_(store), auth_(auth), clock_(clock), options_(std::move(options)) {}

int64_t DiscoveryService::nowUnix() const {
  return std::chrono::duration_cast<std::chrono::seconds>(clock_.wallNow().time_since_epoch())
      .count();
}

Result<std::string> DiscoveryService::accountFor(const Caller& caller,
                                                 const std::string& requested) const {
  if (caller.isAdmin()) {
    if (requested.empty())
      return Status::invalidArgument("account: the admin must name the account to query");
    return requested;
  }
  if (caller.account.empty())
    return Status::permissionDenied("the token's subject " + caller.subject +
                                    " belongs to no account");
  if (!requested.empty() && requested != caller.account)
    return Status::permissionDenied("account " + requested + ": a token of account " +
                                    caller.account + " may only query its own account");
  return caller.account;
}

Result<json> DiscoveryService::registerCluster(const Caller& caller, const json& body,
                                               const std::string& remote_address) {
  if (caller.node_id.empty())
    return Status::permissionDenied("only nodes register clusters; the token's subject is " +
                                    caller.subject);
  if (caller.account.empty())
    return Status::permissionDenied("node " + caller.node_id + " is in no account");
  ASSIGN_OR_RETURN(auto cluster_id, stringField(body, "cluster_id", "body", kMaxIdBytes, true));
  if (cluster_id.empty()) return Status::invalidArgument("body.cluster_id: must not be empty");
  ASSIGN_OR_RETURN(auto digest, stringField(body, "digest", "body", 128, false));
  auto members_it = body.find("members");
  if (members_it == body.end() || !members_it->is_array())
    return Status::invalidArgument("body.members: required, an array of the cluster's nodes");
  if (members_it->size() > options_.max_members)
    return Status::invalidArgument("body.members: more than " +
                                   std::to_string(options_.max_members) + " members");
  std::vector<json> members;
  std::set<std::string> ids;
  for (size_t i = 0; i < members_it->size(); ++i) {
    ASSIGN_OR_RETURN(auto m,
                     cleanMember((*members_it)[i], "body.members[" + std::to_string(i) + "]"));
    if (!ids.insert(m["node_id"].get<std::string>()).second)
      return Status::invalidArgument("body.members[" + std::to_string(i) + "].node_id: " +
                                     m["node_id"].get<std::string>() + " appears twice");
    members.push_back(std::move(m));
  }
  if (!ids.count(caller.node_id))
    return Status::invalidArgument("body.members: the registering supernode " + caller.node_id +
                                   " must be one of the members");
  std::optional<GeoPoint> location;
  if (body.contains("location") && !body["location"].is_null()) {
    ASSIGN_OR_RETURN(auto p, parseGeoPoint(body["location"], "body.location"));
    location = p;
  }
  if (digest.empty()) digest = crypto::sha256Hex(json(members).dump()).substr(0, 32);

  // Behind NAT, two sites of one account may use the same private prefix: the address the
  // registration comes from tells them apart. On a routed network it is the supernode's
  // own address, which changes with a failover, so it is left out there.
  std::string observed = inClusterPrefix(cluster_id, remote_address) ? "" : remote_address;
  std::string cluster_key = crypto::sha256Hex(cluster_id + "|" + observed).substr(0, 16);
  std::string ckey = "disc/clusters/" + caller.account + "/" + cluster_key;
  std::string nprefix = "disc/nodes/" + caller.account + "/";

  int64_t now = nowUnix();
  json record = {{"cluster_key", cluster_key},
                 {"cluster_id", cluster_id},
                 {"account", caller.account},
                 {"supernode", caller.node_id},
                 {"observed_address", remote_address},
                 {"digest", digest},
                 {"members", json::array()},
                 {"updated_at", now},
                 {"expires_at", now + options_.record_ttl_seconds}};
  for (const auto& m : members) record["members"].push_back(m["node_id"]);
  if (location) record["location"] = {{"lat", location->lat}, {"lon", location->lon}};

  for (int attempt = 0;; ++attempt) {
    int64_t expected = 0;
    std::vector<std::string> left;
    auto old = store_.get(ckey);
    if (old.isOk()) {
      expected = old->revision;
      json prev = parseRecord(*old);
      if (prev.contains("members") && prev["members"].is_array())
        for (const auto& id : prev["members"])
          if (id.is_string() && !ids.count(id.get<std::string>()))
            left.push_back(id.get<std::string>());
    } else if (old.status().code() != StatusCode::kNotFound) {
      return old.status();
    }
    std::vector<StoreOp> ops;
    ops.push_back(StoreOp::put(ckey, record.dump(), expected));
    for (const auto& m : members) {
      json n = m;
      n["cluster_key"] = cluster_key;
      n["cluster_id"] = cluster_id;
      n["supernode"] = m["node_id"] == caller.node_id;
      n["updated_at"] = now;
      ops.push_back(StoreOp::put(nprefix + m["node_id"].get<std::string>(), n.dump()));
    }
    for (const auto& id : left) {
      auto n = store_.get(nprefix + id);
      if (!n.isOk()) continue;
      if (parseRecord(*n).value("cluster_key", "") == cluster_key)
        ops.push_back(StoreOp::remove(nprefix + id, n->revision));
    }
    // The cluster record's compare guards the first batch; the rest only writes members
    // of this registration, which a concurrent registration would overwrite the same way.
    Status failed;
    for (size_t i = 0; i < ops.size(); i += Store::kMaxOpsPerCommit) {
      std::vector<StoreOp> batch(ops.begin() + i,
                                 ops.begin() + std::min(ops.size(), i + Store::kMaxOpsPerCommit));
      auto r = store_.commit(batch);
      if (!r.isOk()) {
        failed = r.status();
        break;
      }
    }
    if (failed.isOk()) break;
    if (failed.code() != StatusCode::kAborted || attempt >= kCommitRetries) return failed;
  }
  return json{{"cluster_key", cluster_key},
              {"members", members.size()},
              {"digest", digest},
              {"expires_in", options_.record_ttl_seconds}};
}

Result<json> DiscoveryService::heartbeat(const Caller& caller, const std::string& cluster_key,
                                         const std::string& digest) {
  if (caller.node_id.empty() || caller.account.empty())
    return Status::permissionDenied("only nodes of an account send heartbeats");
  if (!isSafeName(cluster_key, 64))
    return Status::invalidArgument("cluster key \"" + cluster_key + "\" is malformed");
  std::string ckey = "disc/clusters/" + caller.account + "/" + cluster_key;
  for (int attempt = 0;; ++attempt) {
    auto kv = store_.get(ckey);
    if (!kv.isOk()) {
      if (kv.status().code() == StatusCode::kNotFound)
        return Status::notFound("cluster " + cluster_key +
                                " is not registered (expired or never sent): register it again");
      return kv.status();
    }
    json rec = parseRecord(*kv);
    if (rec.value("supernode", "") != caller.node_id)
      return Status::failedPrecondition("cluster " + cluster_key + " is registered by node " +
                                        rec.value("supernode", "?") + ", not by " + caller.node_id +
                                        ": register it again");
    if (!digest.empty() && rec.value("digest", "") != digest)
      return Status::failedPrecondition("cluster " + cluster_key +
                                        ": the backend holds another version (digest " +
                                        rec.value("digest", "") + "): register it again");
    int64_t now = nowUnix();
    rec["expires_at"] = now + options_.record_ttl_seconds;
    auto r = store_.put(ckey, rec.dump(), kv->revision);
    if (r.isOk())
      return json{{"cluster_key", cluster_key}, {"expires_in", options_.record_ttl_seconds}};
    if (r.status().code() != StatusCode::kAborted || attempt >= kCommitRetries) return r.status();
  }
}

Result<json> DiscoveryService::checkReachability(const Caller& caller, const json& body,
                                                 const std::string& remote_address) {
  if (caller.node_id.empty() || caller.account.empty())
    return Status::permissionDenied("only nodes of an account check their reachability");
  ASSIGN_OR_RETURN(auto endpoint, stringField(body, "endpoint", "body", 64, true));
  if (!isHostPort(endpoint))
    return Status::invalidArgument("body.endpoint: \"" + endpoint +
                                   "\" is not an IPv4 address and port (e.g. 203.0.113.7:8083)");
  Status answer = options_.call_back ? options_.call_back(endpoint, caller.node_id)
                                     : Status::unimplemented("no call-back configured");
  int64_t now = nowUnix();
  json rec = {
      {"node_id", caller.node_id},  {"endpoint", endpoint},
      {"reachable", answer.isOk()}, {"observed_address", remote_address},
      {"checked_at", now},          {"expires_at", now + options_.reachability_ttl_seconds}};
  if (!answer.isOk()) rec["message"] = answer.message();
  RETURN_IF_ERROR(
      store_.put("disc/reach/" + caller.account + "/" + caller.node_id, rec.dump()).status());
  LOG_INFO("backend.reachability")
      .kv("node", caller.node_id)
      .kv("endpoint", endpoint)
      .kv("reachable", answer.isOk());
  json out = {{"reachable", answer.isOk()},
              {"endpoint", endpoint},
              {"observed_address", remote_address},
              {"path", answer.isOk() ? "direct" : "sep"},
              {"recheck_in", options_.reachability_ttl_seconds / 2}};
  if (!answer.isOk()) out["message"] = answer.message();
  return out;
}

Result<json> DiscoveryService::queryNodes(const Caller& caller, const NodesQuery& q) {
  if (q.scope != "account" && q.scope != "proximity" && q.scope != "network")
    return Status::invalidArgument("scope: \"" + q.scope +
                                   "\" is not one of account, proximity, network");
  if (q.scope == "network" && q.network.empty())
    return Status::invalidArgument("scope=network needs network=<cluster id>");
  if (q.scope == "proximity") {
    if (!q.box && !(q.near && q.radius_km > 0))
      return Status::invalidArgument(
          "scope=proximity needs near=<lat,lon> with radius_km=<km> > 0, or "
          "box=<south,west,north,east>");
  }
  ASSIGN_OR_RETURN(auto account, accountFor(caller, q.account));
  int64_t now = nowUnix();

  // Records are parsed once per revision and kept (cached()): a query over 10,000 nodes
  // spent most of its time parsing the same JSON again.
  std::map<std::string, RecordPtr> clusters;  // cluster key -> live record
  ASSIGN_OR_RETURN(auto ckvs, store_.list("disc/clusters/" + account + "/"));
  for (const auto& kv : ckvs) {
    RecordPtr rec = cached(kv);
    if (rec->value("expires_at", int64_t{0}) <= now) continue;
    clusters[rec->value("cluster_key", "")] = rec;
  }
  std::map<std::string, RecordPtr> reach;
  ASSIGN_OR_RETURN(auto rkvs, store_.list("disc/reach/" + account + "/"));
  for (const auto& kv : rkvs) {
    RecordPtr rec = cached(kv);
    if (rec->value("expires_at", int64_t{0}) <= now) continue;
    reach[rec->value("node_id", "")] = rec;
  }
  ASSIGN_OR_RETURN(auto nkvs, store_.list("disc/nodes/" + account + "/"));

  std::vector<std::pair<double, json>> out;
  for (const auto& kv : nkvs) {
    RecordPtr stored = cached(kv);
    const json& n0 = *stored;
    auto c = clusters.find(n0.value("cluster_key", ""));
    if (c == clusters.end()) continue;  // its cluster stopped heart-beating
    if (!q.network.empty() && n0.value("cluster_id", "") != q.network) continue;
    double distance = 0;
    auto loc = locationOf(n0);
    if (!loc) loc = locationOf(*c->second);
    if (q.scope == "proximity") {
      if (!loc) continue;
      if (q.box) {
        const auto& [sw, ne] = *q.box;
        if (loc->lat < sw.lat || loc->lat > ne.lat || loc->lon < sw.lon || loc->lon > ne.lon)
          continue;
      }
      if (q.near) {
        distance = distanceKm(*q.near, *loc);
        if (q.radius_km > 0 && distance > q.radius_km) continue;
      }
    }
    json n = n0;  // only what the answer holds is copied
    if (q.scope == "proximity" && q.near) n["distance_km"] = std::round(distance * 1000) / 1000;
    n["account"] = account;
    n["cluster_expires_at"] = c->second->value("expires_at", int64_t{0});
    auto r = reach.find(n0.value("node_id", ""));
    if (r != reach.end()) {
      const json& rr = *r->second;
      n["reachable"] = rr.value("reachable", false);
      n["path"] = rr.value("reachable", false) ? "direct" : "sep";
      n["reachability_endpoint"] = rr.value("endpoint", "");
      n["observed_address"] = rr.value("observed_address", "");
    } else {
      n["reachable"] = nullptr;
      n["path"] = "unknown";
    }
    out.emplace_back(distance, std::move(n));
  }
  if (q.scope == "proximity" && q.near)
    std::stable_sort(out.begin(), out.end(),
                     [](const auto& a, const auto& b) { return a.first < b.first; });
  json nodes = json::array();
  for (auto& [d, n] : out) {
    if (nodes.size() >= q.limit) break;
    nodes.push_back(std::move(n));
  }
  json answer = {{"scope", q.scope}, {"account", account}, {"count", nodes.size()}};
  answer["nodes"] = std::move(nodes);
  return answer;
}

Result<json> DiscoveryService::getNode(const Caller& caller, const std::string& node_id) {
  if (!identity::isNodeId(node_id))
    return Status::invalidArgument("node id \"" + node_id +
                                   "\" is not 16 lower-case hex characters");
  ASSIGN_OR_RETURN(auto account, accountFor(caller, caller.isAdmin() ? "" : caller.account));
  auto kv = store_.get("disc/nodes/" + account + "/" + node_id);
  json n;
  int64_t now = nowUnix();
  if (kv.isOk()) {
    n = parseRecord(*kv);
    auto c = store_.get("disc/clusters/" + account + "/" + n.value("cluster_key", ""));
    if (!c.isOk() || parseRecord(*c).value("expires_at", int64_t{0}) <= now) n = json();
  } else if (kv.status().code() != StatusCode::kNotFound) {
    return kv.status();
  }
  auto r = store_.get("disc/reach/" + account + "/" + node_id);
  json reach = r.isOk() ? parseRecord(*r) : json();
  if (reach.is_object() && reach.value("expires_at", int64_t{0}) <= now) reach = json();
  if (!n.is_object() && !reach.is_object())
    return Status::notFound("node " + node_id + " is not registered under account " + account);
  if (!n.is_object()) n = {{"node_id", node_id}};
  n["account"] = account;
  if (reach.is_object()) {
    n["reachable"] = reach.value("reachable", false);
    n["path"] = reach.value("reachable", false) ? "direct" : "sep";
    n["reachability_endpoint"] = reach.value("endpoint", "");
  } else {
    n["reachable"] = nullptr;
    n["path"] = "unknown";
  }
  return n;
}

Result<json> DiscoveryService::putService(const Caller& caller, const std::string& name,
                                          const json& body) {
  if (!isSafeName(name, 128))
    return Status::invalidArgument("service name \"" + name +
                                   "\": use 1-128 letters, digits, '-', '_' or '.'");
  ASSIGN_OR_RETURN(auto clusters, stringList(body, "clusters", "body", 256, kMaxIdBytes));
  ASSIGN_OR_RETURN(auto endpoint, stringField(body, "endpoint", "body", 256, false));
  json rec = {{"name", name},
              {"clusters", clusters},
              {"endpoint", endpoint},
              {"registered_by", caller.subject},
              {"updated_at", nowUnix()}};
  if (body.contains("location") && !body["location"].is_null()) {
    ASSIGN_OR_RETURN(auto p, parseGeoPoint(body["location"], "body.location"));
    rec["location"] = {{"lat", p.lat}, {"lon", p.lon}};
  }
  RETURN_IF_ERROR(store_.put("registry/services/" + name, rec.dump()).status());
  return rec;
}

Result<json> DiscoveryService::listServices(const Caller&) {
  ASSIGN_OR_RETURN(auto kvs, store_.list("registry/services/"));
  json out = json::array();
  for (const auto& kv : kvs) out.push_back(parseRecord(kv));
  return json{{"services", out}};
}

Status DiscoveryService::deleteService(const Caller&, const std::string& name) {
  if (!isSafeName(name, 128))
    return Status::invalidArgument("service name \"" + name + "\" is malformed");
  auto kv = store_.get("registry/services/" + name);
  if (!kv.isOk()) return kv.status();
  return store_.remove("registry/services/" + name, kv->revision).status();
}

namespace {

// The records nearest `near` first (those without a location last, in store order), each
// with its "distance_km"; store order when there is no `near`.
json nearestFirst(std::vector<json> records, std::optional<GeoPoint> near) {
  std::vector<std::pair<double, json>> list;
  for (auto& rec : records) {
    double d = 0;
    if (near) {
      auto loc = locationOf(rec);
      d = loc ? distanceKm(*near, *loc) : 1e9;
      if (loc) rec["distance_km"] = std::round(d * 1000) / 1000;
    }
    list.emplace_back(d, std::move(rec));
  }
  std::stable_sort(list.begin(), list.end(),
                   [](const auto& a, const auto& b) { return a.first < b.first; });
  json out = json::array();
  for (auto& [d, r] : list) out.push_back(std::move(r));
  return out;
}

}  // namespace

Result<json> DiscoveryService::listInstances(std::optional<GeoPoint> near) {
  ASSIGN_OR_RETURN(auto kvs, store_.list("registry/instances/"));
  int64_t now = nowUnix();
  std::vector<json> records;
  for (const auto& kv : kvs) {
    json rec = parseRecord(kv);
    rec["live"] = rec.value("updated_at", int64_t{0}) >= now - 60;
    records.push_back(std::move(rec));
  }
  json answer;
  answer["instances"] = nearestFirst(std::move(records), near);
  return answer;
}

Result<json> DiscoveryService::listClusters(const Caller& caller, std::optional<GeoPoint> near) {
  ASSIGN_OR_RETURN(auto account, accountFor(caller, caller.isAdmin() ? "" : caller.account));
  ASSIGN_OR_RETURN(auto kvs, store_.list("disc/clusters/" + account + "/"));
  int64_t now = nowUnix();
  std::vector<json> records;
  for (const auto& kv : kvs) {
    json rec = parseRecord(kv);
    if (rec.value("expires_at", int64_t{0}) > now) records.push_back(std::move(rec));
  }
  json answer = {{"account", account}};
  answer["clusters"] = nearestFirst(std::move(records), near);
  return answer;
}

Result<size_t> DiscoveryService::expire() {
  int64_t now = nowUnix();
  size_t removed = 0;
  ASSIGN_OR_RETURN(auto ckvs, store_.list("disc/clusters/"));
  for (const auto& kv : ckvs) {
    json rec = parseRecord(kv);
    if (rec.value("expires_at", int64_t{0}) > now) continue;
    std::string account = rec.value("account", "");
    std::string key = rec.value("cluster_key", "");
    // A heartbeat that lands in between changes the revision: then nothing is removed.
    if (!store_.remove(kv.key, kv.revision).isOk()) continue;
    ++removed;
    if (!rec.contains("members") || !rec["members"].is_array()) continue;
    for (const auto& id : rec["members"]) {
      if (!id.is_string()) continue;
      std::string nkey = "disc/nodes/" + account + "/" + id.get<std::string>();
      auto n = store_.get(nkey);
      if (n.isOk() && parseRecord(*n).value("cluster_key", "") == key &&
          store_.remove(nkey, n->revision).isOk())
        ++removed;
    }
  }
  ASSIGN_OR_RETURN(auto rkvs, store_.list("disc/reach/"));
  for (const auto& kv : rkvs)
    if (parseRecord(kv).value("expires_at", int64_t{0}) <= now &&
        store_.remove(kv.key, kv.revision).isOk())
      ++removed;
  ASSIGN_OR_RETURN(auto ikvs, store_.list("registry/instances/"));
  for (const auto& kv : ikvs)
    if (parseRecord(kv).value("updated_at", int64_t{0}) < now - 600 &&
        store_.remove(kv.key, kv.revision).isOk())
      ++removed;
  return removed;
}

DiscoveryService::RecordPtr DiscoveryService::cached(const KeyValue& kv) const {
  {
    std::lock_guard<std::mutex> lock(cache_mu_);
    auto it = cache_.find(kv.key);
    if (it != cache_.end() && it->second.first == kv.revision) return it->second.second;
  }
  auto rec = std::make_shared<const json>(parseRecord(kv));
  std::lock_guard<std::mutex> lock(cache_mu_);
  // Keys of deleted records would linger: past the bound the cache starts over.
  if (cache_.size() >= kMaxCachedRecords) cache_.clear();
  cache_[kv.key] = {kv.revision, rec};
  return rec;
}

json DiscoveryService::stats() const {
  std::lock_guard<std::mutex> lock(cache_mu_);
  return json{{"cached_records", cache_.size()}};
}

// ---- routes ----

namespace {

void replyResult(httplib::Response& res, const Result<json>& r, int ok_status = 200) {
  if (r.isOk())
    replyJson(res, ok_status, *r);
  else
    replyError(res, r.status());
}

Result<NodesQuery> parseNodesQuery(const httplib::Request& req) {
  NodesQuery q;
  if (req.has_param("scope")) q.scope = req.get_param_value("scope");
  q.account = req.get_param_value("account");
  q.network = req.get_param_value("network");
  if (req.has_param("near")) {
    ASSIGN_OR_RETURN(auto p, parseGeoPointText(req.get_param_value("near"), "near"));
    q.near = p;
  }
  if (req.has_param("radius_km")) {
    std::string t = req.get_param_value("radius_km");
    char* end = nullptr;
    q.radius_km = std::strtod(t.c_str(), &end);
    if (t.empty() || *end != '\0' || !(q.radius_km > 0 && q.radius_km <= 40075))
      return Status::invalidArgument("radius_km: \"" + t + "\" is not a distance in (0, 40075]");
  }
  if (req.has_param("box")) {
    std::string t = req.get_param_value("box");
    double v[4];
    const char* p = t.c_str();
    for (int i = 0; i < 4; ++i) {
      char* end = nullptr;
      v[i] = std::strtod(p, &end);
      if (end == p || (i < 3 && *end != ',') || (i == 3 && *end != '\0'))
        return Status::invalidArgument("box: \"" + t +
                                       "\" is not south,west,north,east (four numbers)");
      p = end + 1;
    }
    ASSIGN_OR_RETURN(auto sw, parseGeoPoint(json{{"lat", v[0]}, {"lon", v[1]}}, "box south-west"));
    ASSIGN_OR_RETURN(auto ne, parseGeoPoint(json{{"lat", v[2]}, {"lon", v[3]}}, "box north-east"));
    if (sw.lat > ne.lat || sw.lon > ne.lon)
      return Status::invalidArgument("box: south must not exceed north, west not exceed east");
    q.box = std::make_pair(sw, ne);
  }
  if (req.has_param("limit")) {
    std::string t = req.get_param_value("limit");
    char* end = nullptr;
    long v = std::strtol(t.c_str(), &end, 10);
    if (t.empty() || *end != '\0' || v < 1 || v > 100000)
      return Status::invalidArgument("limit: \"" + t + "\" is not a number in [1, 100000]");
    q.limit = static_cast<size_t>(v);
  }
  return q;
}

std::optional<GeoPoint> nearParam(const httplib::Request& req, httplib::Response& res, bool* bad) {
  *bad = false;
  if (!req.has_param("near")) return std::nullopt;
  auto p = parseGeoPointText(req.get_param_value("near"), "near");
  if (!p.isOk()) {
    replyError(res, p.status());
    *bad = true;
    return std::nullopt;
  }
  return *p;
}

}  // namespace

void DiscoveryService::registerRoutes(http::ApiServer& server) {
  auto& s = server;
  s.post("/v1/clusters", [this](const httplib::Request& req, httplib::Response& res) {
    auto caller = authorize(auth_, req, res, "discovery:register");
    if (!caller.isOk()) return;
    auto body = parseJsonBody(req);
    if (!body.isOk()) return replyError(res, body.status());
    replyResult(res, registerCluster(*caller, *body, req.remote_addr));
  });
  s.post("/v1/clusters/{id}/heartbeat", [this](const httplib::Request& req, httplib::Response& res,
                                               const http::PathParams& p) {
     auto caller = authorize(auth_, req, res, "discovery:register");
     if (!caller.isOk()) return;
     std::string digest;
     if (!req.body.empty()) {
       auto body = parseJsonBody(req);
       if (!body.isOk()) return replyError(res, body.status());
       digest = body->value("digest", "");
     }
     replyResult(res, heartbeat(*caller, std::string(p[0]), digest));
   }).where("id", [](std::string_view id) { return id.size() <= 64 && http::isLowerHex(id); });
  s.post("/v1/nodes/self/reachability",
         [this](const httplib::Request& req, httplib::Response& res) {
           auto caller = authorize(auth_, req, res, "discovery:register");
           if (!caller.isOk()) return;
           auto body = parseJsonBody(req);
           if (!body.isOk()) return replyError(res, body.status());
           replyResult(res, checkReachability(*caller, *body, req.remote_addr));
         });
  s.get("/v1/nodes", [this](const httplib::Request& req, httplib::Response& res) {
    auto caller = authorize(auth_, req, res, "discovery:read");
    if (!caller.isOk()) return;
    auto q = parseNodesQuery(req);
    if (!q.isOk()) return replyError(res, q.status());
    replyResult(res, queryNodes(*caller, *q));
  });
  s.get("/v1/nodes/{id}",
        [this](const httplib::Request& req, httplib::Response& res, const http::PathParams& p) {
          auto caller = authorize(auth_, req, res, "discovery:read");
          if (!caller.isOk()) return;
          replyResult(res, getNode(*caller, std::string(p[0])));
        });
  s.get("/v1/registry/services", [this](const httplib::Request& req, httplib::Response& res) {
    auto caller = authorize(auth_, req, res, "discovery:read");
    if (!caller.isOk()) return;
    replyResult(res, listServices(*caller));
  });
  s.put("/v1/registry/services/{name}",
        [this](const httplib::Request& req, httplib::Response& res, const http::PathParams& p) {
          auto caller = authorize(auth_, req, res, "registry:write");
          if (!caller.isOk()) return;
          auto body = parseJsonBody(req);
          if (!body.isOk()) return replyError(res, body.status());
          replyResult(res, putService(*caller, std::string(p[0]), *body));
        });
  s.del("/v1/registry/services/{name}",
        [this](const httplib::Request& req, httplib::Response& res, const http::PathParams& p) {
          auto caller = authorize(auth_, req, res, "registry:write");
          if (!caller.isOk()) return;
          Status st = deleteService(*caller, std::string(p[0]));
          if (!st.isOk()) return replyError(res, st);
          res.status = 204;
        });
  s.get("/v1/registry/instances", [this](const httplib::Request& req, httplib::Response& res) {
    auto caller = authorize(auth_, req, res, "discovery:read");
    if (!caller.isOk()) return;
    bool bad = false;
    auto near = nearParam(req, res, &bad);
    if (bad) return;
    replyResult(res, listInstances(near));
  });
  s.get("/v1/registry/clusters", [this](const httplib::Request& req, httplib::Response& res) {
    auto caller = authorize(auth_, req, res, "discovery:read");
    if (!caller.isOk()) return;
    bool bad = false;
    auto near = nearParam(req, res, &bad);
    if (bad) return;
    replyResult(res, listClusters(*caller, near));
  });
}

}  // namespace edge::backend
