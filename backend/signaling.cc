#include "backend/signaling.h"

#include <openssl/rand.h>

#include <random>
#include <set>
#include <vector>

#include "backend/http_util.h"
#include "common/crypto.h"
#include "common/http_server.h"
#include "common/json.h"
#include "common/log.h"
#include "identity/identity.h"

namespace edge::backend {
namespace {

using nlohmann::json;
namespace ej = edge::json;

constexpr size_t kTicketBytes = 32;
constexpr size_t kTicketChars = 43;  // base64url of 32 bytes, unpadded

std::string base64Url(const unsigned char* data, size_t n) {
  static constexpr char kAlphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  std::string out;
  out.reserve((n * 4 + 2) / 3);
  size_t i = 0;
  for (; i + 3 <= n; i += 3) {
    uint32_t v = (uint32_t(data[i]) << 16) | (uint32_t(data[i + 1]) << 8) | data[i + 2];
    out += kAlphabet[(v >> 18) & 63];
    out += kAlphabet[(v >> 12) & 63];
    out += kAlphabet[(v >> 6) & 63];
    out += kAlphabet[v & 63];
  }
  if (n - i == 1) {
    uint32_t v = uint32_t(data[i]) << 16;
    out += kAlphabet[(v >> 18) & 63];
    out += kAlphabet[(v >> 12) & 63];
  } else if (n - i == 2) {
    uint32_t v = (uint32_t(data[i]) << 16) | (uint32_t(data[i + 1]) << 8);
    out += kAlphabet[(v >> 18) & 63];
    out += kAlphabet[(v >> 12) & 63];
    out += kAlphabet[(v >> 6) & 63];
  }
  return out;
}

std::string newTicket() {
  unsigned char raw[kTicketBytes];
  if (RAND_bytes(raw, sizeof raw) != 1) {
    // The kernel CSPRNG does not fail on Linux once seeded; a ticket without entropy
    // would be forgeable, so no fallback.
    LOG_ERROR("RAND_bytes failed; cannot mint relay tickets");
    std::abort();
  }
  return base64Url(raw, sizeof raw);
}

std::string ticketKey(std::string_view ticket) {
  return std::string(kRelayTicketPrefix) + crypto::sha256Hex(ticket);
}

Status storeError(const Status& s) {
  return s.code() == StatusCode::kUnavailable ? s : s.withContext("relay store");
}

// Fields a request may carry; anything else is a typo the caller should hear about.
Status checkFields(const json& body, std::initializer_list<std::string_view> allowed) {
  if (!body.is_object())
    return Status::invalidArgument("request body: expected a JSON object, got " +
                                   std::string(body.type_name()));
  for (auto it = body.begin(); it != body.end(); ++it) {
    bool ok = false;
    for (auto a : allowed) ok = ok || it.key() == a;
    if (ok) continue;
    std::string list;
    for (auto a : allowed) list += (list.empty() ? "" : ", ") + std::string(a);
    return Status::invalidArgument("." + it.key() + ": unknown field (allowed: " + list + ")");
  }
  return Status::ok();
}

Result<std::optional<GeoPoint>> getLocation(const json& body) {
  auto it = body.find("location");
  if (it == body.end() || it->is_null()) return std::optional<GeoPoint>();
  ASSIGN_OR_RETURN(GeoPoint p, parseGeoPoint(*it, ".location"));
  return std::optional<GeoPoint>(p);
}

Result<std::string> getKind(const json& body, std::string_view field, std::string fallback) {
  ASSIGN_OR_RETURN(std::string kind, ej::getString(body, field, "", fallback));
  if (kind != "http" && kind != "stream")
    return Status::invalidArgument("." + std::string(field) +
                                   ": must be \"http\" or \"stream\", got \"" + kind + "\"");
  return kind;
}

// An integer field within [lo, hi]. Checked here rather than by a cast, so 1e300 is an
// error message and not undefined behaviour.
Result<int64_t> getBoundedInt(const json& body, const char* key, int64_t fallback, int64_t lo,
                              int64_t hi, std::string_view unit) {
  auto it = body.find(key);
  if (it == body.end() || it->is_null()) return fallback;
  std::string range = "must be between " + std::to_string(lo) + " and " + std::to_string(hi) +
                      std::string(unit) + ", got " + it->dump();
  if (it->is_number_integer()) {
    int64_t v = it->is_number_unsigned() && it->get<uint64_t>() > uint64_t(INT64_MAX)
                    ? INT64_MAX
                    : it->get<int64_t>();
    if (v < lo || v > hi) return Status::invalidArgument("." + std::string(key) + ": " + range);
    return v;
  }
  if (it->is_number_float()) return Status::invalidArgument("." + std::string(key) + ": " + range);
  return Status::invalidArgument("." + std::string(key) + ": expected an integer, got " +
                                 ej::typeName(*it));
}

Status requireNode(const Caller& caller, std::string_view what) {
  if (!caller.node_id.empty()) return Status::ok();
  return Status::permissionDenied("only a node may " + std::string(what) +
                                  "; this token's subject is \"" + caller.subject + "\"");
}

Result<json> parseStored(const KeyValue& kv) {
  ASSIGN_OR_RETURN(json j, ej::parse(kv.value, kv.key));
  if (!j.is_object()) return Status::internal(kv.key + ": stored value is not an object");
  return j;
}

std::string str(const json& j, const char* key) {
  auto it = j.find(key);
  return it != j.end() && it->is_string() ? it->get<std::string>() : std::string();
}

int64_t num(const json& j, const char* key) {
  auto it = j.find(key);
  return it != j.end() && it->is_number_integer() ? it->get<int64_t>() : 0;
}

json ticketJson(const TicketRecord& t) {
  json j = {{"kind", t.kind},       {"node", t.node},         {"peer", t.peer},
            {"account", t.account}, {"instance", t.instance}, {"expires_at", t.expires_at}};
  if (!t.signal.empty()) j["signal"] = t.signal;
  if (!t.bep_id.empty()) j["bep_id"] = t.bep_id;
  if (!t.protocol.empty()) j["protocol"] = t.protocol;
  if (t.kind == "bep") j["max_connections"] = t.max_connections;
  if (!t.session.empty()) j["session"] = t.session;
  return j;
}

TicketRecord ticketFromJson(const json& j) {
  TicketRecord t;
  t.kind = str(j, "kind");
  t.node = str(j, "node");
  t.peer = str(j, "peer");
  t.account = str(j, "account");
  t.instance = str(j, "instance");
  t.signal = str(j, "signal");
  t.bep_id = str(j, "bep_id");
  t.protocol = str(j, "protocol");
  t.max_connections = static_cast<int>(std::max<int64_t>(1, num(j, "max_connections")));
  t.expires_at = num(j, "expires_at");
  t.session = str(j, "session");
  return t;
}

}  // namespace

bool looksLikeTicket(std::string_view text) {
  if (text.size() != kTicketChars) return false;
  for (char c : text) {
    bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_';
    if (!ok) return false;
  }
  return true;
}

Result<TicketRecord> redeemTicket(Store& store, std::string_view ticket, std::string_view instance,
                                  WallTime now) {
  if (!looksLikeTicket(ticket))
    return Status::permissionDenied("malformed ticket (expected 43 base64url characters)");
  std::string key = ticketKey(ticket);
  auto kv = store.get(key);
  if (!kv.isOk()) {
    if (kv.status().code() == StatusCode::kNotFound)
      return Status::permissionDenied("unknown or already used ticket");
    return storeError(kv.status());
  }
  auto j = parseStored(*kv);
  if (!j.isOk()) return j.status();
  TicketRecord t = ticketFromJson(*j);
  int64_t now_unix =
      std::chrono::duration_cast<std::chrono::seconds>(now.time_since_epoch()).count();
  if (t.expires_at <= now_unix) {
    (void)store.remove(key, kv->revision);  // litter only; the sweep gets it otherwise
    return Status::permissionDenied("ticket expired " + std::to_string(now_unix - t.expires_at) +
                                    " s ago");
  }
  if (t.instance != instance)
    return Status::permissionDenied("ticket is for relay instance \"" + t.instance +
                                    "\", this is \"" + std::string(instance) + "\"");
  auto removed = store.remove(key, kv->revision);
  if (!removed.isOk()) {
    if (removed.status().code() == StatusCode::kAborted)
      return Status::aborted("ticket already used");
    return storeError(removed.status());
  }
  return t;
}

Signaling::Signaling(Store& store, Authenticator& auth, Options options)
    : store_(store), auth_(auth), options_(std::move(options)) {
  if (!options_.clock) options_.clock = SystemClock::instance();
}

int64_t Signaling::nowUnix() const {
  return std::chrono::duration_cast<std::chrono::seconds>(
             options_.clock->wallNow().time_since_epoch())
      .count();
}

Result<std::pair<std::string, std::string>> Signaling::pickInstance(
    const std::optional<GeoPoint>& near) {
  auto listed = store_.list(kRegistryInstancePrefix);
  if (!listed.isOk()) return storeError(listed.status());
  int64_t cutoff = nowUnix() - options_.instance_liveness.count();
  struct Live {
    std::string id, address;
    std::optional<GeoPoint> location;
  };
  std::vector<Live> live;
  for (const auto& kv : *listed) {
    auto j = parseStored(kv);
    if (!j.isOk()) continue;  // one broken entry must not stop relaying
    Live l{str(*j, "id"), str(*j, "relay_address"), std::nullopt};
    if (l.id.empty()) l.id = kv.key.substr(kRegistryInstancePrefix.size());
    if (l.address.empty() || num(*j, "updated_at") < cutoff) continue;
    auto loc = j->find("location");
    if (loc != j->end() && loc->is_object()) {
      auto p = parseGeoPoint(*loc, kv.key + ".location");
      if (p.isOk()) l.location = *p;
    }
    live.push_back(std::move(l));
  }
  if (live.empty()) return std::pair(options_.instance_id, options_.relay_address);
  if (near) {
    const Live* best = nullptr;
    double best_km = 0;
    for (const auto& l : live) {
      if (!l.location) continue;
      double km = distanceKm(*near, *l.location);
      if (!best || km < best_km) best = &l, best_km = km;
    }
    if (best) return std::pair(best->id, best->address);
  }
  // No location to go by: spread the load rather than pile every SEP on one replica.
  thread_local std::mt19937 rng{std::random_device{}()};
  const Live& any = live[std::uniform_int_distribution<size_t>(0, live.size() - 1)(rng)];
  return std::pair(any.id, any.address);
}

Result<json> Signaling::openSep(const Caller& caller, const json& body) {
  RETURN_IF_ERROR(requireNode(caller, "hold a SEP"));
  RETURN_IF_ERROR(checkFields(body, {"location"}));
  ASSIGN_OR_RETURN(auto location, getLocation(body));
  ASSIGN_OR_RETURN(auto inst, pickInstance(location));

  int64_t now = nowUnix();
  std::string ticket = newTicket();
  TicketRecord t;
  t.kind = "sep";
  t.node = caller.node_id;
  t.account = caller.account;
  t.instance = inst.first;
  t.expires_at = now + options_.sep_ticket_ttl.count();
  t.session = crypto::sha256Hex(ticket).substr(0, 16);
  json sep = {{"instance", inst.first},
              {"address", inst.second},
              {"account", caller.account},
              {"since", now},
              {"session", t.session}};
  if (location) sep["location"] = {{"lat", location->lat}, {"lon", location->lon}};
  auto rev =
      store_.commit({StoreOp::put(ticketKey(ticket), ticketJson(t).dump()),
                     StoreOp::put(std::string(kRelaySepPrefix) + caller.node_id, sep.dump())});
  if (!rev.isOk()) return storeError(rev.status());
  LOG_INFO("relay sep granted").kv("node", caller.node_id).kv("instance", inst.first);
  return json{{"address", inst.second},
              {"instance", inst.first},
              {"ticket", ticket},
              {"expires_at", t.expires_at}};
}

Result<json> Signaling::connect(const Caller& caller, const json& body) {
  RETURN_IF_ERROR(requireNode(caller, "signal another node"));
  RETURN_IF_ERROR(checkFields(body, {"target", "kind"}));
  ASSIGN_OR_RETURN(std::string target, ej::getString(body, "target", ""));
  if (!identity::isNodeId(target))
    return Status::invalidArgument(
        ".target: expected a node id (16 lower-case hex characters), "
        "got \"" +
        target.substr(0, 64) + "\"");
  if (target == caller.node_id)
    return Status::invalidArgument(".target: is the caller itself; a node reaches itself directly");
  ASSIGN_OR_RETURN(std::string kind, getKind(body, "kind", "http"));

  auto kv = store_.get(std::string(kRelaySepPrefix) + target);
  if (!kv.isOk()) {
    if (kv.status().code() == StatusCode::kNotFound)
      return Status::notFound("node " + target +
                              " has no SEP: it never registered one with the backend, or its SEP "
                              "closed");
    return storeError(kv.status());
  }
  ASSIGN_OR_RETURN(json sep, parseStored(*kv));
  if (str(sep, "account") != caller.account)
    return Status::permissionDenied("node " + target + " is not in your account (" +
                                    caller.account + ")");

  int64_t now = nowUnix();
  std::string ticket = newTicket();
  TicketRecord t;
  t.kind = "signal";
  t.node = caller.node_id;
  t.peer = target;
  t.account = caller.account;
  t.instance = str(sep, "instance");
  t.signal = crypto::randomHex(8);
  t.protocol = kind;
  t.expires_at = now + options_.signal_ticket_ttl.count();
  json signal = {{"node", caller.node_id},
                 {"peer", target},
                 {"account", caller.account},
                 {"kind", kind},
                 {"expires_at", now + options_.signal_ttl.count()}};
  auto rev =
      store_.commit({StoreOp::put(ticketKey(ticket), ticketJson(t).dump()),
                     StoreOp::put(std::string(kRelaySignalPrefix) + t.signal, signal.dump(), 0)});
  if (!rev.isOk()) return storeError(rev.status());
  return json{{"address", str(sep, "address")},
              {"instance", t.instance},
              {"ticket", ticket},
              {"signal", t.signal},
              {"expires_at", t.expires_at}};
}

Result<json> Signaling::openBep(const Caller& caller, const json& body) {
  RETURN_IF_ERROR(requireNode(caller, "open a BEP"));
  RETURN_IF_ERROR(checkFields(
      body, {"signal", "caller", "ttl_seconds", "max_connections", "protocol", "location"}));
  ASSIGN_OR_RETURN(std::string signal_id, ej::getString(body, "signal", ""));
  if (signal_id.size() != 16 || !identity::fromHex(signal_id).isOk())
    return Status::invalidArgument(".signal: expected the 16-hex-character id of a signal, got \"" +
                                   signal_id.substr(0, 64) + "\"");
  ASSIGN_OR_RETURN(int64_t ttl,
                   getBoundedInt(body, "ttl_seconds", kDefaultTtlSeconds, 1, kMaxTtlSeconds, ""));
  ASSIGN_OR_RETURN(int64_t max_conn, getBoundedInt(body, "max_connections", 1, 1,
                                                   kMaxBepConnections, " (leg pairs)"));
  ASSIGN_OR_RETURN(auto location, getLocation(body));

  std::string signal_key = std::string(kRelaySignalPrefix) + signal_id;
  auto kv = store_.get(signal_key);
  int64_t now = nowUnix();
  if (!kv.isOk() && kv.status().code() != StatusCode::kNotFound) return storeError(kv.status());
  std::optional<json> sig;
  if (kv.isOk()) {
    ASSIGN_OR_RETURN(json j, parseStored(*kv));
    if (num(j, "expires_at") > now) sig = std::move(j);
  }
  if (!sig)
    return Status::notFound("signal " + signal_id + " is unknown or expired (a target has " +
                            std::to_string(options_.signal_ttl.count()) +
                            " s after a signal to ask for its BEP)");
  std::string from = str(*sig, "node");
  std::string target = str(*sig, "peer");
  if (target != caller.node_id)
    return Status::permissionDenied("signal " + signal_id + " is addressed to node " + target +
                                    ", not to you (" + caller.node_id + ")");
  if (str(*sig, "account") != caller.account)
    return Status::permissionDenied("signal " + signal_id + " comes from another account");
  ASSIGN_OR_RETURN(std::string claimed, ej::getString(body, "caller", "", from));
  if (claimed != from)
    return Status::invalidArgument(".caller: signal " + signal_id + " came from node " + from +
                                   ", not from \"" + claimed.substr(0, 64) + "\"");
  std::string kind = str(*sig, "kind");
  ASSIGN_OR_RETURN(std::string protocol, getKind(body, "protocol", kind));
  if (protocol != kind)
    return Status::invalidArgument(".protocol: the caller asked for \"" + kind +
                                   "\"; a BEP carries what the caller asked for, not \"" +
                                   protocol + "\"");

  // The target's own location first; else the one it gave with its SEP.
  if (!location) {
    auto sep_kv = store_.get(std::string(kRelaySepPrefix) + caller.node_id);
    if (sep_kv.isOk()) {
      auto sep = parseStored(*sep_kv);
      if (sep.isOk() && sep->contains("location")) {
        auto p = getLocation(*sep);
        if (p.isOk()) location = *p;
      }
    }
  }
  ASSIGN_OR_RETURN(auto inst, pickInstance(location));

  std::string bep_id = crypto::randomHex(8);
  int64_t expires = now + ttl;
  json bep = {{"id", bep_id},           {"instance", inst.first},
              {"address", inst.second}, {"caller", from},
              {"target", target},       {"account", caller.account},
              {"protocol", protocol},   {"max_connections", max_conn},
              {"ttl_seconds", ttl},     {"created_at", now},
              {"expires_at", expires}};
  std::vector<StoreOp> ops;
  // Deleting the signal in the same commit makes a signal good for one BEP only.
  ops.push_back(StoreOp::remove(signal_key, kv->revision));
  ops.push_back(StoreOp::put(std::string(kRelayBepPrefix) + bep_id, bep.dump(), 0));
  json tickets = json::array(), caller_tickets = json::array();
  for (int i = 0; i < max_conn; ++i) {
    for (bool target_leg : {true, false}) {
      TicketRecord t;
      t.kind = "bep";
      t.node = target_leg ? target : from;
      t.peer = target_leg ? from : target;
      t.account = caller.account;
      t.instance = inst.first;
      t.bep_id = bep_id;
      t.protocol = protocol;
      t.max_connections = static_cast<int>(max_conn);
      t.expires_at = expires;
      std::string ticket = newTicket();
      ops.push_back(StoreOp::put(ticketKey(ticket), ticketJson(t).dump()));
      (target_leg ? tickets : caller_tickets).push_back(ticket);
    }
  }
  auto rev = store_.commit(ops);
  if (!rev.isOk()) {
    if (rev.status().code() == StatusCode::kAborted)
      return Status::aborted("signal " + signal_id + " already has its BEP");
    return storeError(rev.status());
  }
  LOG_INFO("relay bep granted")
      .kv("bep", bep_id)
      .kv("caller", from)
      .kv("target", target)
      .kv("instance", inst.first)
      .kv("protocol", protocol)
      .kv("ttl", ttl)
      .kv("pairs", max_conn);
  return json{{"bep_id", bep_id},       {"address", inst.second},
              {"instance", inst.first}, {"expires_at", expires},
              {"ticket", tickets[0]},   {"caller_ticket", caller_tickets[0]},
              {"tickets", tickets},     {"caller_tickets", caller_tickets}};
}

Result<size_t> Signaling::sweepExpired() {
  int64_t now = nowUnix();
  size_t removed = 0;
  for (auto prefix : {kRelayTicketPrefix, kRelaySignalPrefix, kRelayBepPrefix}) {
    std::string after;
    for (;;) {
      auto page = store_.list(prefix, 256, after);
      if (!page.isOk()) return storeError(page.status());
      if (page->empty()) break;
      after = page->back().key;
      std::vector<StoreOp> ops;
      for (const auto& kv : *page) {
        auto j = parseStored(kv);
        // An unreadable record can never be redeemed either: it goes too.
        if (j.isOk() && num(*j, "expires_at") > now) continue;
        ops.push_back(StoreOp::remove(kv.key, kv.revision));
        if (ops.size() == Store::kMaxOpsPerCommit) {
          if (store_.commit(ops).isOk()) removed += ops.size();
          ops.clear();
        }
      }
      // A lost compare means someone just used or renewed it: leave it to them.
      if (!ops.empty() && store_.commit(ops).isOk()) removed += ops.size();
    }
  }
  return removed;
}

void registerSignalingApi(http::ApiServer& server, Signaling& signaling) {
  using Handler = Result<json> (Signaling::*)(const Caller&, const json&);
  auto route = [&server, &signaling](const char* path, const char* scope, Handler handler,
                                     bool body_optional) {
    server.post(path, [&signaling, scope, handler, body_optional](const httplib::Request& req,
                                                                  httplib::Response& res) {
      auto caller = authorize(signaling.authenticator(), req, res, scope);
      if (!caller.isOk()) return;
      json body = json::object();
      if (!body_optional || !req.body.empty()) {
        auto parsed = parseJsonBody(req);
        if (!parsed.isOk()) return replyError(res, parsed.status());
        body = std::move(*parsed);
      }
      Result<json> out = Status::internal("unreached");
      try {
        out = (signaling.*handler)(*caller, body);
      } catch (const json::exception& e) {
        out = Status::invalidArgument(std::string("request body: ") + e.what());
      }
      if (!out.isOk()) return replyError(res, out.status());
      replyJson(res, 200, *out);
    });
  };
  route("/v1/relay/sep", "relay:sep", &Signaling::openSep, true);
  route("/v1/relay/connect", "relay:connect", &Signaling::connect, false);
  route("/v1/relay/bep", "relay:bep", &Signaling::openBep, false);
}

}  // namespace edge::backend
