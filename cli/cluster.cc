#include "cli/cluster.h"

#include <algorithm>
#include <sstream>

namespace edge::cli {
namespace {

const Json& listAt(const Json& obj, std::string_view key) {
  static const Json kEmpty = Json::array();
  const Json& l = at(obj, key);
  return l.is_array() ? l : kEmpty;
}

std::string dashIfEmpty(std::string s) {
  return s.empty() ? "-" : s;
}

std::string joined(const Json& list, const char* sep) {
  std::string out;
  if (!list.is_array()) return out;
  for (const auto& v : list) {
    if (!v.is_string()) continue;
    out += (out.empty() ? "" : sep) + v.get<std::string>();
  }
  return out;
}

std::string uptimeText(const Json& member) {
  const Json& u = at(member, "uptime_seconds");
  if (!u.is_number_integer()) return "-";
  return formatAge(std::chrono::seconds(u.get<int64_t>()));
}

bool hasRole(const Json& member, std::string_view role) {
  for (const auto& r : listAt(member, "roles"))
    if (r.is_string() && r.get_ref<const std::string&>() == role) return true;
  return false;
}

// Roles as shown: the supernode is one even when the member list lags behind the view.
std::string rolesText(const Json& member, bool is_supernode) {
  std::string roles = joined(at(member, "roles"), ",");
  if (is_supernode && !hasRole(member, "supernode"))
    roles = "supernode" + (roles.empty() ? "" : "," + roles);
  return dashIfEmpty(roles);
}

std::string plural(int64_t n, const char* one, const char* many) {
  return std::to_string(n) + " " + (n == 1 ? one : many);
}

std::string indented(const std::string& text) {
  std::string out;
  std::istringstream rows(text);
  for (std::string l; std::getline(rows, l);) out += "  " + l + "\n";
  return out;
}

// "2027-01-15T08:00:00Z (in 9m)" for a unix time.
std::string untilText(const Json& entry, WallTime now) {
  const Json& u = at(entry, "until");
  if (!u.is_number_integer()) return "-";
  WallTime t{std::chrono::seconds(u.get<int64_t>())};
  std::string s = formatRfc3339Nano(t);
  size_t dot = s.find('.');
  if (dot != std::string::npos) s = s.substr(0, dot) + "Z";
  if (t <= now) return s + " (expired)";
  return s + " (in " + formatAge(t - now) + ")";
}

std::string clusterHeader(const Json& c, const std::string& self, const Json& supernode) {
  std::string h = "cluster " + dashIfEmpty(field(c, "cluster_id")) + " on " +
                  dashIfEmpty(field(c, "interface")) +
                  " — this node: " + dashIfEmpty(field(c, "state"));
  std::string sn = field(c, "supernode_id");
  if (sn.empty()) {
    h += ", no supernode yet";
  } else if (sn != self) {
    h += ", supernode " + sn;
    if (!supernode.is_null() && !field(supernode, "name").empty())
      h += " (" + field(supernode, "name") + ")";
  }
  h += ", version " + field(c, "version", "-") + ", " +
       plural(static_cast<int64_t>(listAt(c, "members").size()), "member", "members");
  return h;
}

std::string renderOneCluster(const Json& c, const std::string& self, WallTime now) {
  std::string sn = field(c, "supernode_id");
  std::vector<const Json*> members;
  const Json* supernode = nullptr;
  for (const auto& m : listAt(c, "members")) {
    members.push_back(&m);
    if (!sn.empty() && field(m, "node_id") == sn) supernode = &m;
  }
  std::stable_sort(members.begin(), members.end(), [&](const Json* a, const Json* b) {
    bool sa = field(*a, "node_id") == sn, sb = field(*b, "node_id") == sn;
    if (sa != sb) return sa;
    return field(*a, "name") < field(*b, "name");
  });
  static const Json kNull;
  std::string out = clusterHeader(c, self, supernode ? *supernode : kNull) + "\n";
  Table t({"", "NODE ID", "NAME", "ENDPOINT", "ROLES", "SCORE", "RUNTIME", "UPTIME"});
  for (const Json* m : members) {
    std::string id = field(*m, "node_id");
    t.addRow({id == self && !self.empty() ? "*" : "", dashIfEmpty(id),
              dashIfEmpty(field(*m, "name")), dashIfEmpty(field(*m, "endpoint")),
              rolesText(*m, !sn.empty() && id == sn), field(*m, "score", "-"),
              dashIfEmpty(field(at(*m, "profile"), "runtime")), uptimeText(*m)});
  }
  out += members.empty() ? "  (no members)\n" : indented(t.render());
  const Json& blacklist = listAt(c, "blacklist");
  if (!blacklist.empty()) {
    Table b({"NODE ID", "ADDRESS", "REASON", "UNTIL"});
    for (const auto& e : blacklist)
      b.addRow({dashIfEmpty(field(e, "node_id")), dashIfEmpty(field(e, "address")),
                dashIfEmpty(field(e, "reason")), untilText(e, now)});
    out += "  Blacklist:\n" + indented(indented(b.render()));
  }
  const Json& k = at(c, "counters");
  if (k.is_object()) {
    out += "  Packets: " + field(k, "packets_sent", "0") + " sent, " +
           field(k, "packets_received", "0") +
           " received; dropped: " + field(k, "dropped_malformed", "0") + " malformed, " +
           field(k, "dropped_forged", "0") + " forged, " + field(k, "dropped_blacklisted", "0") +
           " blacklisted\n";
  }
  return out;
}

}  // namespace

Table nodesTable(const Json& nodes_answer) {
  Table t({"NODE ID", "NAME", "ENDPOINT", "ROLES", "SCORE", "RUNTIME", "UPTIME", "CLUSTER"});
  for (const auto& n : listAt(nodes_answer, "nodes")) {
    t.addRow({dashIfEmpty(field(n, "node_id")), dashIfEmpty(field(n, "name")),
              dashIfEmpty(field(n, "endpoint")), rolesText(n, false), field(n, "score", "-"),
              dashIfEmpty(field(at(n, "profile"), "runtime")), uptimeText(n),
              dashIfEmpty(n.contains("clusters") ? joined(at(n, "clusters"), ",")
                                                 : field(n, "cluster_id"))});
  }
  return t;
}

Table routesTable(const Json& routes_answer) {
  Table t({"PATH", "SERVICE", "LOCAL", "PEERS", "GLOBAL", "ON-DEMAND", "SCOPES", "RETRY"});
  for (const auto& r : listAt(routes_answer, "routes")) {
    std::string local, peers, global;
    for (const auto& u : listAt(r, "upstreams")) {
      std::string tier = field(u, "tier");
      bool ejected = at(u, "ejected").is_boolean() && at(u, "ejected").get<bool>();
      std::string mark = ejected ? "!" : "";
      if (tier == "local") {
        local += (local.empty() ? "" : ",") + field(u, "address") + mark;
      } else if (tier == "peer") {
        peers += (peers.empty() ? "" : ",") + field(u, "node") + mark;
      } else if (tier == "global") {
        global = field(u, "address") + mark;
      }
    }
    const Json& od = at(r, "on_demand");
    const Json& retry = at(r, "retry");
    t.addRow({dashIfEmpty(field(r, "path")), dashIfEmpty(field(r, "service")), dashIfEmpty(local),
              dashIfEmpty(peers), dashIfEmpty(global),
              od.is_boolean() && od.get<bool>() ? "yes" : "no",
              dashIfEmpty(joined(at(r, "scopes"), ",")),
              field(retry, "attempts", "-") + " on " + dashIfEmpty(field(retry, "on"))});
  }
  return t;
}

std::string renderCluster(const Json& snapshot, WallTime now) {
  const Json& enabled = at(snapshot, "enabled");
  if (!enabled.is_boolean() || !enabled.get<bool>()) return "discovery is off on this node\n";
  const Json& clusters = listAt(snapshot, "clusters");
  if (clusters.empty()) return "discovery is on, but this node is in no cluster yet\n";
  std::string self = field(snapshot, "node_id");
  std::string out;
  for (const auto& c : clusters) {
    if (!out.empty()) out += "\n";
    out += renderOneCluster(c, self, now);
  }
  return out;
}

}  // namespace edge::cli
