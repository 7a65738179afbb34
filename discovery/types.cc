#include "discovery/types.h"

#include <arpa/inet.h>

#include <algorithm>
#include <ctime>
#include <limits>
#include <string_view>
#include <tuple>

namespace edge::discovery {
namespace {

using nlohmann::json;

constexpr size_t kMaxName = 253;  // a DNS name: host names are the usual node names
constexpr size_t kMaxAddresses = 64;
constexpr size_t kMaxServices = 256;
constexpr size_t kMaxService = 253;
constexpr size_t kMaxString = 1024;
constexpr size_t kMaxInterface = 15;  // IFNAMSIZ - 1
constexpr int64_t kMaxCpus = 4096;
constexpr int64_t kMaxCpuMillis = kMaxCpus * 1000;
constexpr size_t kMaxLabels = 64;
constexpr size_t kMaxLabelKey = 63;
constexpr size_t kMaxLabelValue = 253;
constexpr size_t kPublicKeyBytes = 32;
constexpr size_t kSignatureBytes = 64;
constexpr int64_t kNoMax = std::numeric_limits<int64_t>::max();
constexpr size_t kNodeIdHex = 16;
constexpr size_t kPublicKeyHex = 64;
constexpr size_t kSignatureHex = 128;

std::string toHexLower(std::string_view bytes) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  out.reserve(bytes.size() * 2);
  for (unsigned char c : bytes) {
    out += kDigits[c >> 4];
    out += kDigits[c & 0xf];
  }
  return out;
}

bool isLowerHex(std::string_view s) {
  for (char c : s)
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  return true;
}

std::string fromHexLower(std::string_view hex) {
  auto nibble = [](char c) { return c <= '9' ? c - '0' : c - 'a' + 10; };
  std::string out;
  out.reserve(hex.size() / 2);
  for (size_t i = 0; i + 1 < hex.size(); i += 2)
    out += static_cast<char>((nibble(hex[i]) << 4) | nibble(hex[i + 1]));
  return out;
}

// Profiles come from peers and end up on operators' terminals: a control character
// (an escape sequence) in a name must not reach them.
bool hasControl(std::string_view s) {
  for (unsigned char c : s)
    if (c < 0x20 || c == 0x7f) return true;
  return false;
}

bool isIpv4(const std::string& s) {
  in_addr a{};
  return inet_pton(AF_INET, s.c_str(), &a) == 1;
}

bool isIpv6(const std::string& s) {
  in6_addr a{};
  return inet_pton(AF_INET6, s.c_str(), &a) == 1;
}

bool isHostName(std::string_view s) {
  if (s.empty() || s.size() > kMaxName) return false;
  for (char c : s)
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
          c == '.'))
      return false;
  return true;
}

// "198.18.0.2:8083" with a port 1..65535.
bool isIpv4Endpoint(const std::string& s) {
  size_t colon = s.rfind(':');
  if (colon == std::string::npos || !isIpv4(s.substr(0, colon))) return false;
  std::string port = s.substr(colon + 1);
  if (port.empty() || port.size() > 5) return false;
  int p = 0;
  for (char c : port) {
    if (c < '0' || c > '9') return false;
    p = p * 10 + (c - '0');
  }
  return p >= 1 && p <= 65535;
}

std::string shownText(std::string_view s) {
  constexpr size_t kShown = 40;
  std::string shown(s.substr(0, kShown));
  for (char& c : shown)
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) c = '?';
  return "\"" + shown + (s.size() > kShown ? "...\"" : "\"");
}

// "expected 0..4096" ("expected 0.." without an upper bound).
std::string rangeText(int64_t min, int64_t max) {
  return "expected " + std::to_string(min) + ".." +
         (max == kNoMax ? std::string() : std::to_string(max));
}

// What is wrong with a text field, "" when nothing: at most `max` bytes, no control
// characters.
std::string textProblem(std::string_view s, size_t max) {
  if (s.size() > max)
    return "expected at most " + std::to_string(max) + " bytes, got " + std::to_string(s.size());
  if (hasControl(s)) return "control characters are not allowed, got " + shownText(s);
  return "";
}

bool isLabelKey(std::string_view s) {
  if (s.empty() || s.size() > kMaxLabelKey) return false;
  for (char c : s)
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
          c == '_' || c == '/' || c == '-'))
      return false;
  return true;
}

// The validation of one profile: the first problem, in field order, as "field: message".
class Checker {
 public:
  const Status& status() const { return status_; }

  // Field names are views: nothing is built unless a check fails (every beacon's profile
  // passes through here).
  void fail(std::string_view field, const std::string& message) {
    if (status_.isOk())
      status_ = Status::invalidArgument("profile." + std::string(field) + ": " + message);
  }
  bool text(std::string_view field, std::string_view s, size_t max) {
    if (s.size() <= max && !hasControl(s)) return true;
    fail(field, textProblem(s, max));
    return false;
  }
  void range(std::string_view field, int64_t n, int64_t min, int64_t max) {
    if (n < min || n > max) fail(field, rangeText(min, max) + ", got " + std::to_string(n));
  }

 private:
  Status status_;
};

// Reads the members of one JSON object, each check naming the field's path. The first
// error wins; later reads are no-ops, so parsing code reads straight through.
class Reader {
 public:
  Reader(const json& obj, std::string path) : obj_(obj), path_(std::move(path)) {}

  const Status& status() const { return status_; }
  bool ok() const { return status_.isOk(); }
  std::string path(std::string_view key) const { return path_ + "." + std::string(key); }

  // nullptr when absent or null (both mean "not given").
  const json* find(std::string_view key) {
    if (!ok()) return nullptr;
    auto it = obj_.find(key);
    if (it == obj_.end() || it->is_null()) return nullptr;
    return &*it;
  }

  void fail(std::string_view key, const std::string& message) {
    if (ok()) status_ = Status::invalidArgument(path(key) + ": " + message);
  }

  const json* require(std::string_view key, bool required) {
    const json* v = find(key);
    if (v == nullptr && required && ok()) fail(key, "required, missing");
    return v;
  }

  // A string; its content is checked by validateProfile, whatever the encoding.
  bool string(std::string_view key, std::string* out, bool required = false) {
    const json* v = require(key, required);
    if (v == nullptr) return false;
    if (!v->is_string()) {
      fail(key, "expected a string, got " + std::string(v->type_name()));
      return false;
    }
    *out = v->get_ref<const std::string&>();
    return true;
  }

  // An integer in [min, max].
  template <typename T>
  bool integer(std::string_view key, T* out, int64_t min, int64_t max, bool required = false) {
    const json* v = require(key, required);
    if (v == nullptr) return false;
    auto range = [&] { return rangeText(min, max); };
    int64_t n = 0;
    if (v->is_number_unsigned()) {
      uint64_t u = v->get<uint64_t>();
      if (u > static_cast<uint64_t>(max)) {
        fail(key, range() + ", got " + std::to_string(u));
        return false;
      }
      n = static_cast<int64_t>(u);
    } else if (v->is_number_integer()) {
      n = v->get<int64_t>();
    } else if (v->is_number_float()) {
      fail(key, "expected an integer, got " + v->dump());
      return false;
    } else {
      fail(key, "expected an integer, got " + std::string(v->type_name()));
      return false;
    }
    if (n < min || n > max) {
      fail(key, range() + ", got " + std::to_string(n));
      return false;
    }
    *out = static_cast<T>(n);
    return true;
  }

  bool boolean(std::string_view key, bool* out) {
    const json* v = find(key);
    if (v == nullptr) return false;
    if (!v->is_boolean()) {
      fail(key, "expected true or false, got " + std::string(v->type_name()));
      return false;
    }
    *out = v->get<bool>();
    return true;
  }

  // Lower-case hex of exactly `chars` characters; "" accepted when `empty_ok`.
  bool hex(std::string_view key, std::string* out, size_t chars, bool required, bool empty_ok) {
    std::string s;
    if (!string(key, &s, required)) return false;
    if (s.empty() && empty_ok) {
      *out = "";
      return true;
    }
    if (s.size() != chars || !isLowerHex(s)) {
      fail(key, "expected " + std::to_string(chars) + " lower-case hex characters, got " +
                    shownText(s) + " (" + std::to_string(s.size()) + " characters)");
      return false;
    }
    *out = s;
    return true;
  }

  // An array of at most `max` entries.
  const json* array(std::string_view key, size_t max) {
    const json* v = find(key);
    if (v == nullptr) return nullptr;
    if (!v->is_array()) {
      fail(key, "expected an array, got " + std::string(v->type_name()));
      return nullptr;
    }
    if (v->size() > max) {
      fail(key, "expected at most " + std::to_string(max) + " entries, got " +
                    std::to_string(v->size()));
      return nullptr;
    }
    return v;
  }

 private:
  const json& obj_;
  std::string path_;
  Status status_;
};

Status parseAddress(const json& j, const std::string& path, InterfaceAddress* out) {
  if (!j.is_object())
    return Status::invalidArgument(path + ": expected an object, got " + j.type_name());
  Reader r(j, path);
  r.string("interface", &out->interface, true);
  r.string("address", &out->address, true);
  r.integer("prefix_len", &out->prefix_len, 0, 32, true);
  return r.status();
}

Status parseProfile(const json& j, NodeProfile* p) {
  if (!j.is_object())
    return Status::invalidArgument(std::string("profile: expected an object, got ") +
                                   j.type_name());
  Reader r(j, "profile");
  r.hex("node_id", &p->node_id, kNodeIdHex, true, false);
  std::string key_hex;
  if (r.hex("public_key", &key_hex, kPublicKeyHex, true, false))
    p->public_key = fromHexLower(key_hex);
  r.string("name", &p->name, true);
  r.integer("seq", &p->seq, 0, kNoMax, true);
  r.string("boot_id", &p->boot_id);
  r.integer("started_at", &p->started_at, 0, kNoMax, true);
  r.integer("cpus", &p->cpus, 0, kMaxCpus);
  r.integer("memory_bytes", &p->memory_bytes, 0, kNoMax);
  r.integer("storage_free_bytes", &p->storage_free_bytes, 0, kNoMax);
  r.string("os", &p->os);
  r.string("os_release", &p->os_release);
  r.string("arch", &p->arch);
  r.string("runtime", &p->runtime);
  r.string("power", &p->power);
  r.boolean("persistent", &p->persistent);
  if (const json* a = r.array("addresses", kMaxAddresses)) {
    for (size_t i = 0; i < a->size() && r.ok(); ++i) {
      InterfaceAddress ia;
      Status s = parseAddress((*a)[i], r.path("addresses") + "[" + std::to_string(i) + "]", &ia);
      if (!s.isOk()) return s;
      p->addresses.push_back(std::move(ia));
    }
  }
  r.string("endpoint", &p->endpoint, true);
  r.string("public_address", &p->public_address);
  if (const json* a = r.array("services", kMaxServices)) {
    for (size_t i = 0; i < a->size() && r.ok(); ++i) {
      const json& s = (*a)[i];
      if (!s.is_string())
        return Status::invalidArgument(r.path("services") + "[" + std::to_string(i) +
                                       "]: expected a string, got " + s.type_name());
      p->services.push_back(s.get<std::string>());
    }
  }
  r.string("account_id", &p->account_id);
  if (const json* loc = r.find("location")) {
    const json* lat = loc->is_object() && loc->contains("lat") ? &(*loc)["lat"] : nullptr;
    const json* lon = loc->is_object() && loc->contains("lon") ? &(*loc)["lon"] : nullptr;
    if (lat == nullptr || lon == nullptr || !lat->is_number() || !lon->is_number()) {
      r.fail("location", "expected {\"lat\": <-90..90>, \"lon\": <-180..180>}");
    } else {
      p->latitude = lat->get<double>();
      p->longitude = lon->get<double>();
      p->has_location = true;
    }
  }
  if (const json* l = r.find("labels")) {
    if (!l->is_object()) {
      r.fail("labels", "expected an object of strings, got " + std::string(l->type_name()));
    } else if (l->size() > kMaxLabels) {
      r.fail("labels", "expected at most " + std::to_string(kMaxLabels) + " entries, got " +
                           std::to_string(l->size()));
    } else {
      for (auto it = l->begin(); it != l->end(); ++it) {
        if (!it->is_string())
          return Status::invalidArgument(r.path("labels") + "[" + shownText(it.key()) +
                                         "]: expected a string, got " + it->type_name());
        p->labels[it.key()] = it->get<std::string>();
      }
    }
  }
  r.integer("allocatable_cpu_millis", &p->allocatable_cpu_millis, 0, kMaxCpuMillis);
  r.integer("allocatable_memory_bytes", &p->allocatable_memory_bytes, 0, kNoMax);
  std::string sig_hex;
  if (r.hex("signature", &sig_hex, kSignatureHex, false, true))
    p->signature = fromHexLower(sig_hex);
  if (!r.ok()) return r.status();
  return validateProfile(*p);
}

}  // namespace

nlohmann::json profileToJson(const NodeProfile& p) {
  json addresses = json::array();
  for (const auto& a : p.addresses)
    addresses.push_back(
        json{{"interface", a.interface}, {"address", a.address}, {"prefix_len", a.prefix_len}});
  json j{{"node_id", p.node_id},
         {"public_key", toHexLower(p.public_key)},
         {"name", p.name},
         {"seq", p.seq},
         {"boot_id", p.boot_id},
         {"started_at", p.started_at},
         {"cpus", p.cpus},
         {"memory_bytes", p.memory_bytes},
         {"storage_free_bytes", p.storage_free_bytes},
         {"os", p.os},
         {"os_release", p.os_release},
         {"arch", p.arch},
         {"runtime", p.runtime},
         {"power", p.power},
         {"persistent", p.persistent},
         {"addresses", std::move(addresses)},
         {"endpoint", p.endpoint},
         {"public_address", p.public_address},
         {"services", p.services},
         {"account_id", p.account_id}};
  if (p.has_location) j["location"] = json{{"lat", p.latitude}, {"lon", p.longitude}};
  // Only when set: today's profiles keep the JSON (and the signing bytes) they had before
  // these fields existed, so nodes of the previous release still verify them.
  if (!p.labels.empty()) j["labels"] = p.labels;
  if (p.allocatable_cpu_millis != 0) j["allocatable_cpu_millis"] = p.allocatable_cpu_millis;
  if (p.allocatable_memory_bytes != 0) j["allocatable_memory_bytes"] = p.allocatable_memory_bytes;
  // Unsigned profiles carry no signature key at all, so they read the same before and
  // after signing apart from that one key.
  if (!p.signature.empty()) j["signature"] = toHexLower(p.signature);
  return j;
}

Result<NodeProfile> profileFromJson(const nlohmann::json& j) {
  try {
    NodeProfile p;
    Status s = parseProfile(j, &p);
    if (!s.isOk()) return s;
    return p;
  } catch (const json::exception& e) {
    // Not expected (every access is type-checked first); kept so hostile input can never
    // take the node down through a path the checks missed.
    return Status::invalidArgument(std::string("profile: unusable JSON: ") + e.what());
  }
}

Status validateProfile(const NodeProfile& p) {
  Checker c;
  if (p.public_key.size() != kPublicKeyBytes)
    c.fail("public_key", "expected " + std::to_string(kPublicKeyBytes) + " bytes, got " +
                             std::to_string(p.public_key.size()));
  c.text("name", p.name, kMaxName);
  c.range("seq", p.seq, 0, kNoMax);
  c.text("boot_id", p.boot_id, kMaxString);
  c.range("started_at", p.started_at, 0, kNoMax);
  c.range("cpus", p.cpus, 0, kMaxCpus);
  c.range("memory_bytes", p.memory_bytes, 0, kNoMax);
  c.range("storage_free_bytes", p.storage_free_bytes, 0, kNoMax);
  c.text("os", p.os, kMaxString);
  c.text("os_release", p.os_release, kMaxString);
  c.text("arch", p.arch, kMaxString);
  c.text("runtime", p.runtime, kMaxString);
  if (c.text("power", p.power, kMaxString) && p.power != "mains" && p.power != "battery")
    c.fail("power", "expected \"mains\" or \"battery\", got " + shownText(p.power));
  if (p.addresses.size() > kMaxAddresses)
    c.fail("addresses", "expected at most " + std::to_string(kMaxAddresses) + " entries, got " +
                            std::to_string(p.addresses.size()));
  for (size_t i = 0; i < p.addresses.size() && c.status().isOk(); ++i) {
    const InterfaceAddress& a = p.addresses[i];
    if (!a.interface.empty() && a.interface.size() <= kMaxInterface && !hasControl(a.interface) &&
        isIpv4(a.address) && a.prefix_len >= 0 && a.prefix_len <= 32)
      continue;
    std::string at = "addresses[" + std::to_string(i) + "]";
    if (c.text(at + ".interface", a.interface, kMaxInterface) && a.interface.empty())
      c.fail(at + ".interface", "must not be empty");
    if (c.text(at + ".address", a.address, kMaxString) && !isIpv4(a.address))
      c.fail(at + ".address", "expected an IPv4 address, got " + shownText(a.address));
    c.range(at + ".prefix_len", a.prefix_len, 0, 32);
  }
  if (c.text("endpoint", p.endpoint, kMaxString) && !isIpv4Endpoint(p.endpoint))
    c.fail("endpoint", "expected an IPv4 address and a port 1..65535 (\"198.18.0.2:8083\"), got " +
                           shownText(p.endpoint));
  if (c.text("public_address", p.public_address, kMaxName) && !p.public_address.empty() &&
      !isIpv4(p.public_address) && !isIpv6(p.public_address) && !isHostName(p.public_address))
    c.fail("public_address",
           "expected an IP address or a host name, got " + shownText(p.public_address));
  if (p.services.size() > kMaxServices)
    c.fail("services", "expected at most " + std::to_string(kMaxServices) + " entries, got " +
                           std::to_string(p.services.size()));
  for (size_t i = 0; i < p.services.size() && c.status().isOk(); ++i) {
    const std::string& name = p.services[i];
    if (name.empty() || name.size() > kMaxService || hasControl(name))
      c.fail("services[" + std::to_string(i) + "]",
             "expected a service name of 1.." + std::to_string(kMaxService) +
                 " printable bytes, got " + shownText(name) + " (" + std::to_string(name.size()) +
                 " bytes)");
  }
  c.text("account_id", p.account_id, kMaxString);
  if (p.has_location &&
      !(p.latitude >= -90 && p.latitude <= 90 && p.longitude >= -180 && p.longitude <= 180))
    c.fail("location", "lat must lie in -90..90 and lon in -180..180");
  if (p.labels.size() > kMaxLabels)
    c.fail("labels", "expected at most " + std::to_string(kMaxLabels) + " entries, got " +
                         std::to_string(p.labels.size()));
  for (auto it = p.labels.begin(); it != p.labels.end() && c.status().isOk(); ++it) {
    if (isLabelKey(it->first) && it->second.size() <= kMaxLabelValue && !hasControl(it->second))
      continue;
    std::string at = "labels[" + shownText(it->first) + "]";
    if (!isLabelKey(it->first))
      c.fail(at, "expected a key of 1.." + std::to_string(kMaxLabelKey) +
                     " characters from a-z A-Z 0-9 . _ / -, got " + shownText(it->first) + " (" +
                     std::to_string(it->first.size()) + " bytes)");
    else if (it->second.size() > kMaxLabelValue || hasControl(it->second))
      c.fail(at, "expected a value of at most " + std::to_string(kMaxLabelValue) +
                     " printable bytes, got " + shownText(it->second) + " (" +
                     std::to_string(it->second.size()) + " bytes)");
  }
  c.range("allocatable_cpu_millis", p.allocatable_cpu_millis, 0, kMaxCpuMillis);
  c.range("allocatable_memory_bytes", p.allocatable_memory_bytes, 0, kNoMax);
  if (!p.signature.empty() && p.signature.size() != kSignatureBytes)
    c.fail("signature", "expected " + std::to_string(kSignatureBytes) + " bytes or none, got " +
                            std::to_string(p.signature.size()));
  return c.status();
}

std::string profileSigningBytes(const NodeProfile& p) {
  json j = profileToJson(p);
  j.erase("signature");
  // nlohmann objects are std::map-ordered: dump() is canonical. Invalid UTF-8 (a locally
  // configured name) is replaced the same way the wire form replaces it, so the receiver
  // recomputes the same bytes.
  return j.dump(-1, ' ', false, json::error_handler_t::replace);
}

nlohmann::json memberToJson(const Member& m, int64_t now_unix) {
  json profile = profileToJson(m.profile);
  profile.erase("signature");
  int64_t uptime = m.profile.started_at > 0 && now_unix > m.profile.started_at
                       ? now_unix - m.profile.started_at
                       : 0;
  return json{{"node_id", m.profile.node_id},
              {"name", m.profile.name},
              {"endpoint", m.profile.endpoint},
              {"roles", m.roles},
              {"score", m.score},
              {"joined_at", m.joined_at},
              {"uptime_seconds", uptime},
              {"profile", std::move(profile)}};
}

namespace {

nlohmann::json countersToJson(const LinkCounters& c) {
  return json{{"packets_sent", c.packets_sent},
              {"packets_received", c.packets_received},
              {"bytes_sent", c.bytes_sent},
              {"bytes_received", c.bytes_received},
              {"messages_sent", c.messages_sent},
              {"messages_received", c.messages_received},
              {"dropped_malformed", c.dropped_malformed},
              {"dropped_forged", c.dropped_forged},
              {"dropped_blacklisted", c.dropped_blacklisted}};
}

}  // namespace

nlohmann::json snapshotToJson(const ClusterSnapshot& s, int64_t now_unix) {
  json clusters = json::array();
  for (const auto& c : s.clusters) {
    json members = json::array();
    for (const auto& m : c.members) members.push_back(memberToJson(m, now_unix));
    json blacklist = json::array();
    for (const auto& b : c.blacklist)
      blacklist.push_back(json{{"node_id", b.node_id},
                               {"address", b.address},
                               {"reason", b.reason},
                               {"since", b.since},
                               {"until", b.until}});
    clusters.push_back(json{{"interface", c.interface},
                            {"cluster_id", c.cluster_id},
                            {"state", c.state},
                            {"supernode_id", c.supernode_id},
                            {"version", c.version},
                            {"supernode_since", c.supernode_since},
                            {"members", std::move(members)},
                            {"blacklist", std::move(blacklist)},
                            {"counters", countersToJson(c.counters)}});
  }
  return json{{"node_id", s.node_id},
              {"node_name", s.node_name},
              {"enabled", s.enabled},
              {"clusters", std::move(clusters)}};
}

Result<nlohmann::json> nodesToJson(const ClusterSnapshot& s, const NodesQuery& q,
                                   int64_t now_unix) {
  if (q.scope == "proximity")
    return Status::invalidArgument(
        "scope=proximity is not supported: nodes report no location yet");
  if (q.scope != "network" && q.scope != "account")
    return Status::invalidArgument("scope: expected one of network, account; got " +
                                   shownText(q.scope));
  std::string account = q.account;
  if (q.scope == "account" && account.empty()) {
    for (const auto& c : s.clusters)
      for (const auto& m : c.members)
        if (m.profile.node_id == s.node_id && !m.profile.account_id.empty())
          account = m.profile.account_id;
    if (account.empty())
      return Status::invalidArgument(
          "scope=account needs an account id: configure account_id or pass account=");
  }
  if (!q.interface.empty()) {
    bool known = false;
    std::string names;
    for (const auto& c : s.clusters) {
      known = known || c.interface == q.interface;
      names += (names.empty() ? "" : ", ") + c.interface;
    }
    if (!known)
      return Status::notFound("no cluster on interface " + shownText(q.interface) +
                              (names.empty() ? std::string(" (this node is in no cluster)")
                                             : " (clusters on: " + names + ")"));
  }
  // One entry per node: a host on two links shows up once, with both clusters.
  std::map<std::string, std::pair<const Member*, std::vector<std::string>>> seen;
  std::vector<std::string> order;
  for (const auto& c : s.clusters) {
    if (!q.interface.empty() && c.interface != q.interface) continue;
    for (const auto& m : c.members) {
      if (q.scope == "account" && m.profile.account_id != account) continue;
      auto [it, inserted] = seen.try_emplace(m.profile.node_id, &m, std::vector<std::string>{});
      if (inserted) order.push_back(m.profile.node_id);
      it->second.second.push_back(c.cluster_id);
    }
  }
  std::sort(order.begin(), order.end(), [&](const std::string& a, const std::string& b) {
    const auto& pa = seen[a].first->profile;
    const auto& pb = seen[b].first->profile;
    return std::tie(pa.name, pa.node_id) < std::tie(pb.name, pb.node_id);
  });
  json nodes = json::array();
  for (const auto& id : order) {
    json m = memberToJson(*seen[id].first, now_unix);
    m["clusters"] = seen[id].second;
    nodes.push_back(std::move(m));
  }
  json out{{"scope", q.scope}, {"enabled", s.enabled}, {"nodes", std::move(nodes)}};
  if (q.scope == "account") out["account"] = account;
  return out;
}

nlohmann::json snapshotToJson(const ClusterSnapshot& s) {
  return snapshotToJson(s, static_cast<int64_t>(::time(nullptr)));
}

}  // namespace edge::discovery
