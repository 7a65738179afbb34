#include "gateway/route_table.h"

#include <algorithm>
#include <set>
#include <utility>

#include "identity/identity.h"

namespace edge::gateway {
namespace {

constexpr size_t kMaxBasePathBytes = 1024;
constexpr size_t kMaxServiceBytes = 253;

bool isServiceChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
         c == '_' || c == '.';
}

Status checkBasePath(const RouteSpec& spec) {
  const std::string& p = spec.base_path;
  auto bad = [&](std::string_view why) {
    return Status::invalidArgument("route " + spec.service + ": base_path \"" + p + "\" " +
                                   std::string(why) +
                                   "; allowed: \"/\" or \"/segment[/segment...]\" without a "
                                   "trailing '/', empty segments, '.', '..', '?', '#', spaces");
  };
  if (p.empty() || p.front() != '/') return bad("does not start with '/'");
  if (p.size() > kMaxBasePathBytes) return bad("is longer than 1024 bytes");
  if (p == "/") return Status::ok();
  if (p.back() == '/') return bad("ends with '/'");
  for (char c : p) {
    auto u = static_cast<unsigned char>(c);
    if (u <= 0x20 || u == 0x7f) return bad("contains a space or control character");
    if (c == '?' || c == '#') return bad("contains '?' or '#'");
  }
  size_t pos = 1;
  while (pos <= p.size()) {
    size_t slash = p.find('/', pos);
    if (slash == std::string::npos) slash = p.size();
    std::string_view seg(p.data() + pos, slash - pos);
    if (seg.empty()) return bad("has an empty segment (\"//\")");
    if (seg == "." || seg == "..") return bad("has a '.' or '..' segment");
    pos = slash + 1;
  }
  return Status::ok();
}

// host:port, host a name or IPv4 address or [IPv6]; port 1..65535.
bool isHostPort(std::string_view text) {
  size_t colon = text.rfind(':');
  if (colon == std::string_view::npos || colon == 0) return false;
  std::string_view host = text.substr(0, colon);
  std::string_view port = text.substr(colon + 1);
  if (port.empty() || port.size() > 5) return false;
  int value = 0;
  for (char c : port) {
    if (c < '0' || c > '9') return false;
    value = value * 10 + (c - '0');
  }
  if (value < 1 || value > 65535) return false;
  if (host.front() == '[') {
    if (host.size() < 3 || host.back() != ']') return false;
    for (char c : host.substr(1, host.size() - 2)) {
      bool ok = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F') ||
                c == ':' || c == '.';
      if (!ok) return false;
    }
    return true;
  }
  if (host.size() > 253) return false;
  for (char c : host) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '.';
    if (!ok) return false;
  }
  return true;
}

Status badEndpoint(const RouteSpec& spec, std::string_view field, std::string_view value) {
  return Status::invalidArgument("route " + spec.service + ": " + std::string(field) + " \"" +
                                 std::string(value) +
                                 "\" is not host:port (a name, IPv4 or [IPv6] address, then a "
                                 "port 1..65535)");
}

}  // namespace

Status validateRouteSpec(const RouteSpec& spec) {
  if (spec.service.empty() || spec.service.size() > kMaxServiceBytes ||
      !std::all_of(spec.service.begin(), spec.service.end(), isServiceChar)) {
    return Status::invalidArgument("route service name \"" + spec.service +
                                   "\" is invalid; allowed: 1..253 of [A-Za-z0-9._-]");
  }
  RETURN_IF_ERROR(checkBasePath(spec));
  for (const auto& local : spec.local_instances) {
    if (!isHostPort(local)) return badEndpoint(spec, "local instance", local);
  }
  for (const auto& peer : spec.peers) {
    if (!identity::isNodeId(peer.node_id)) {
      return Status::invalidArgument("route " + spec.service + ": peer node id \"" + peer.node_id +
                                     "\" is not a node id (16 lower-case hex)");
    }
    if (peer.endpoint.empty()) {
      if (peer.via != PeerInstance::Via::kRelay) {
        return Status::invalidArgument("route " + spec.service + ": peer " + peer.node_id +
                                       " has no endpoint; only a relayed peer may have none");
      }
    } else if (!isHostPort(peer.endpoint)) {
      return badEndpoint(spec, "peer endpoint", peer.endpoint);
    }
    if (peer.via == PeerInstance::Via::kProxy && !identity::isNodeId(peer.proxy_node_id)) {
      return Status::invalidArgument("route " + spec.service + ": peer " + peer.node_id +
                                     " goes through a proxy node but proxy_node_id \"" +
                                     peer.proxy_node_id +
                                     "\" is not a node id (16 lower-case hex)");
    }
  }
  if (!spec.global_upstream.empty()) {
    if (spec.scope != RouteScope::kGlobal) {
      return Status::invalidArgument("route " + spec.service + ": global_upstream \"" +
                                     spec.global_upstream +
                                     "\" set on a local route; only global routes may have one");
    }
    if (!isHostPort(spec.global_upstream)) {
      return badEndpoint(spec, "global_upstream", spec.global_upstream);
    }
  }
  if (Status s = spec.retry.validate(); !s.isOk()) {
    return Status::invalidArgument("route " + spec.service + ": retry." + s.message());
  }
  return Status::ok();
}

RouteTable::Built RouteTable::build(const std::vector<RouteSpec>& specs,
                                    UpstreamRegistry& registry) {
  Built built;
  std::vector<const RouteSpec*> valid;
  std::set<std::string> services;
  for (const auto& spec : specs) {
    if (Status s = validateRouteSpec(spec); !s.isOk()) {
      built.warnings.push_back("route left out: " + s.message());
      continue;
    }
    if (!services.insert(spec.service).second) {
      built.warnings.push_back("route " + spec.service + ": service listed twice; base path " +
                               spec.base_path + " of the second entry ignored");
      continue;
    }
    valid.push_back(&spec);
  }
  std::sort(valid.begin(), valid.end(), [](const RouteSpec* a, const RouteSpec* b) {
    return std::tie(a->base_path, a->service) < std::tie(b->base_path, b->service);
  });

  std::shared_ptr<RouteTable> table(new RouteTable());
  table->routes_.reserve(valid.size());
  for (size_t i = 0; i < valid.size(); ++i) {
    const RouteSpec& spec = *valid[i];
    if (i > 0 && valid[i - 1]->base_path == spec.base_path) {
      built.warnings.push_back("base path " + spec.base_path + " claimed by services " +
                               table->routes_.back().spec.service + " and " + spec.service + "; " +
                               table->routes_.back().spec.service + " serves it (lowest name), " +
                               spec.service + " gets no route");
      continue;
    }
    RouteEntry entry;
    entry.spec = spec;
    entry.state = registry.route(spec.service);
    std::set<std::string> seen;
    for (const auto& local : spec.local_instances) {
      if (!seen.insert(local).second) continue;
      entry.endpoints.push_back(
          Endpoint{registry.upstream(spec.service, Tier::kLocal, local), Tier::kLocal, local, {}});
      ++entry.local_count;
    }
    seen.clear();
    for (const auto& peer : spec.peers) {
      std::string address = peer.node_id + "@" + (peer.endpoint.empty() ? "relay" : peer.endpoint);
      if (!seen.insert(address).second) continue;
      entry.endpoints.push_back(Endpoint{registry.upstream(spec.service, Tier::kPeer, address),
                                         Tier::kPeer, peer.endpoint, peer});
      ++entry.peer_count;
    }
    if (!spec.global_upstream.empty()) {
      entry.endpoints.push_back(
          Endpoint{registry.upstream(spec.service, Tier::kGlobal, spec.global_upstream),
                   Tier::kGlobal,
                   spec.global_upstream,
                   {}});
    }
    if (entry.endpoints.empty() && !spec.on_demand) {
      built.warnings.push_back("route " + spec.service + " (" + spec.base_path +
                               ") has no instance anywhere: its requests get 503");
    }
    table->routes_.push_back(std::move(entry));
  }
  for (const auto& route : table->routes_) {
    table->by_path_.emplace(route.spec.base_path, &route);
    table->max_path_len_ = std::max(table->max_path_len_, route.spec.base_path.size());
  }
  built.table = std::move(table);
  return built;
}

const RouteEntry* RouteTable::match(std::string_view path) const {
  size_t end = path.find_first_of("?#");
  if (end != std::string_view::npos) path = path.substr(0, end);
  if (path.empty() || path.front() != '/' || by_path_.empty()) return nullptr;
  std::string_view candidate = path;
  while (true) {
    if (candidate.size() <= max_path_len_) {
      auto it = by_path_.find(candidate);
      if (it != by_path_.end()) return it->second;
    }
    if (candidate.size() == 1) return nullptr;  // "/" itself was not found
    size_t slash = candidate.rfind('/');
    candidate = candidate.substr(0, slash == 0 ? 1 : slash);
  }
}

RouteTableHolder::RouteTableHolder()
    : table_(std::shared_ptr<const RouteTable>(new RouteTable())) {}

}  // namespace edge::gateway
