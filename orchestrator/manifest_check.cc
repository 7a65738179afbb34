// The manifest's validation rules: what a name, a label key, an env name and an image
// reference may be, the UTF-8 and nesting checks on the raw text (before yaml-cpp sees
// it), and the rules that tie fields of a spec together. manifest_parse.cc calls them
// field by field; manifest_internal.h lists them.
//
// Thread-safety: pure functions, and a Checker that belongs to one document.
#include <algorithm>
#include <string>
#include <vector>

#include "orchestrator/manifest_internal.h"

namespace edge::orchestrator::manifest_internal {

namespace {

constexpr size_t kMaxFlowDepth = 64;
constexpr size_t kMaxIndent = 256;

bool isLowerAlnum(char c) {
  return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

// Docker's path-component: lower-case alphanumeric runs joined by '.', '_', '__' or
// any number of '-'.
bool isPathComponent(std::string_view s) {
  size_t i = 0;
  while (true) {
    size_t run = i;
    while (i < s.size() && isLowerAlnum(s[i])) ++i;
    if (i == run) return false;
    if (i == s.size()) return true;
    if (s[i] == '.') {
      ++i;
    } else if (s[i] == '_') {
      ++i;
      if (i < s.size() && s[i] == '_') ++i;
    } else if (s[i] == '-') {
      while (i < s.size() && s[i] == '-') ++i;
    } else {
      return false;
    }
  }
}

// host[:port], host being dot-separated labels of letters, digits and '-'.
bool isRegistry(std::string_view s) {
  if (auto colon = s.find(':'); colon != std::string_view::npos) {
    std::string_view port = s.substr(colon + 1);
    if (!isDigits(port) || port.size() > 5 || std::stoi(std::string(port)) > 65535 ||
        std::stoi(std::string(port)) == 0)
      return false;
    s = s.substr(0, colon);
  }
  if (s.empty()) return false;
  size_t start = 0;
  while (start <= s.size()) {
    size_t dot = s.find('.', start);
    std::string_view label = s.substr(start, dot == std::string_view::npos ? dot : dot - start);
    if (label.empty() || label.front() == '-' || label.back() == '-') return false;
    for (char c : label) {
      if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-') return false;
    }
    if (dot == std::string_view::npos) break;
    start = dot + 1;
  }
  return true;
}

}  // namespace

std::string quote(std::string_view s) {
  std::string out = "\"";
  size_t n = 0;
  for (char c : s) {
    if (++n > 60) {
      out += "...";
      break;
    }
    auto u = static_cast<unsigned char>(c);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (u < 0x20 || u >= 0x7f) {
      static const char kHex[] = "0123456789abcdef";
      out += "\\x";
      out += kHex[u >> 4];
      out += kHex[u & 15];
    } else {
      out += c;
    }
  }
  return out + "\"";
}

std::string describe(const YAML::Node& n) {
  switch (n.Type()) {
    case YAML::NodeType::Null:
      return "null";
    case YAML::NodeType::Scalar:
      return quote(n.Scalar());
    case YAML::NodeType::Sequence:
      return "a list";
    case YAML::NodeType::Map:
      return "a mapping";
    default:
      return "nothing";
  }
}

size_t editDistance(std::string_view a, std::string_view b) {
  std::vector<size_t> prev(b.size() + 1), cur(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) prev[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    cur[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      auto ca = static_cast<char>(std::tolower(static_cast<unsigned char>(a[i - 1])));
      auto cb = static_cast<char>(std::tolower(static_cast<unsigned char>(b[j - 1])));
      cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca == cb ? 0 : 1)});
    }
    std::swap(prev, cur);
  }
  return prev[b.size()];
}

bool isDnsLabel(std::string_view s) {
  if (s.empty() || s.size() > 63) return false;
  auto alnum = [](char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); };
  if (!alnum(s.front()) || !alnum(s.back())) return false;
  return std::all_of(s.begin(), s.end(), [&](char c) { return alnum(c) || c == '-'; });
}

bool isLabelKey(std::string_view s) {
  if (s.empty() || s.size() > 253) return false;
  return std::all_of(s.begin(), s.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.' ||
           c == '/';
  });
}

bool isEnvName(std::string_view s) {
  if (s.empty() || std::isdigit(static_cast<unsigned char>(s[0]))) return false;
  return std::all_of(s.begin(), s.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '_';
  });
}

bool hasControlOrSpace(std::string_view s) {
  return std::any_of(s.begin(), s.end(), [](char c) {
    auto u = static_cast<unsigned char>(c);
    return u <= 0x20 || u == 0x7f;
  });
}

bool isDigits(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

std::optional<std::string> imageReferenceProblem(std::string_view ref) {
  std::string_view name = ref;
  if (auto at = ref.find('@'); at != std::string_view::npos) {
    std::string_view digest = ref.substr(at + 1);
    name = ref.substr(0, at);
    constexpr std::string_view kAlgo = "sha256:";
    bool hex = digest.size() == kAlgo.size() + 64 && digest.starts_with(kAlgo) &&
               std::all_of(digest.begin() + kAlgo.size(), digest.end(),
                           [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); });
    if (!hex) return "the digest after '@' must be sha256: and 64 lower-case hex digits";
  }
  size_t slash = name.rfind('/');
  size_t colon = name.rfind(':');
  if (colon != std::string_view::npos && (slash == std::string_view::npos || colon > slash)) {
    std::string_view tag = name.substr(colon + 1);
    name = name.substr(0, colon);
    bool ok =
        !tag.empty() && tag.size() <= 128 && tag.front() != '.' && tag.front() != '-' &&
        std::all_of(tag.begin(), tag.end(), [](char c) {
          return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '.' || c == '-';
        });
    if (!ok) {
      return "the tag " + quote(tag) +
             " must be 1-128 letters, digits, '_', '.' or '-', not starting with '.' or '-'";
    }
  }
  if (name.empty()) return "the repository name is missing";
  if (name.size() > 255) return "the repository name is longer than 255 characters";
  std::vector<std::string_view> parts;
  for (size_t start = 0;;) {
    size_t next = name.find('/', start);
    parts.push_back(name.substr(start, next == std::string_view::npos ? next : next - start));
    if (next == std::string_view::npos) break;
    start = next + 1;
  }
  size_t first = 0;
  // As in Docker, the first part names a registry only if it looks like a host.
  if (parts.size() > 1 &&
      (parts[0].find_first_of(".:") != std::string_view::npos || parts[0] == "localhost")) {
    if (!isRegistry(parts[0])) {
      return "the registry " + quote(parts[0]) + " is not a host name with an optional :port";
    }
    first = 1;
  }
  for (size_t i = first; i < parts.size(); ++i) {
    if (isPathComponent(parts[i])) continue;
    if (parts[i].empty()) return std::string("the name has an empty path component");
    bool upper =
        std::any_of(parts[i].begin(), parts[i].end(), [](char c) { return c >= 'A' && c <= 'Z'; });
    return "the path component " + quote(parts[i]) +
           (upper ? " must be lower-case"
                  : " must be lower-case letters and digits separated by '.', '_', '__' or '-'");
  }
  return std::nullopt;
}

std::optional<std::string> firstInvalidUtf8(std::string_view s) {
  size_t line = 1;
  for (size_t i = 0; i < s.size();) {
    auto u = static_cast<unsigned char>(s[i]);
    size_t len = u < 0x80 ? 1 : (u >> 5) == 6 ? 2 : (u >> 4) == 14 ? 3 : (u >> 3) == 30 ? 4 : 0;
    bool ok = len > 0 && i + len <= s.size() && (len != 2 || u >= 0xc2);
    for (size_t k = 1; ok && k < len; ++k) {
      ok = (static_cast<unsigned char>(s[i + k]) & 0xc0) == 0x80;
    }
    if (!ok || u == 0) {
      return "line " + std::to_string(line) + ": the file is not UTF-8 text (byte " +
             std::to_string(u) + ")";
    }
    if (u == '\n') ++line;
    i += len;
  }
  return std::nullopt;
}

std::optional<std::string> checkNesting(std::string_view text) {
  size_t flow = 0, line = 1, indent = 0;
  bool at_line_start = true, in_dq = false, in_sq = false;
  char prev = '\n';
  for (size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (c == '\n') {
      ++line;
      at_line_start = true;
      indent = 0;
      prev = c;
      continue;
    }
    if (at_line_start) {
      // Indentation plus block indicators ("- - - x") is the block nesting depth.
      if (c == ' ' ||
          ((c == '-' || c == '?' || c == ':') && i + 1 < text.size() && (text[i + 1] == ' '))) {
        if (++indent > kMaxIndent) {
          return "line " + std::to_string(line) + ": nested too deeply (more than " +
                 std::to_string(kMaxIndent) + " columns of indentation)";
        }
        prev = c;
        continue;
      }
      at_line_start = false;
    }
    if (in_dq) {
      if (c == '\\') {
        ++i;
      } else if (c == '"') {
        in_dq = false;
      }
    } else if (in_sq) {
      if (c == '\'') in_sq = false;
    } else if ((c == '"' || c == '\'') &&
               (std::string_view(" \t:,[{-\n").find(prev) != std::string_view::npos)) {
      (c == '"' ? in_dq : in_sq) = true;
    } else if (c == '#' && (prev == ' ' || prev == '\t' || prev == '\n')) {
      while (i + 1 < text.size() && text[i + 1] != '\n') ++i;
    } else if (c == '[' || c == '{') {
      if (++flow > kMaxFlowDepth) {
        return "line " + std::to_string(line) + ": nested too deeply (more than " +
               std::to_string(kMaxFlowDepth) + " levels of [ ] or { })";
      }
    } else if ((c == ']' || c == '}') && flow > 0) {
      --flow;
    }
    prev = c;
  }
  return std::nullopt;
}

// Rules that tie the ports to the rest of the spec. Instances run on the host's
// network, so a static port is a host port: two replicas on one node cannot both bind it.
// scope: cluster puts each replica of a service with a static port on another node (the
// scheduler counts the host ports taken on each), so there the rule does not apply.
void checkPortReferences(Checker& c, ServiceManifest* m, bool placement_known) {
  if (placement_known && m->replicas > 1 && m->placement.scope == Placement::Scope::kNode) {
    for (const auto& p : m->ports) {
      if (p.isDynamic()) continue;
      c.error("spec.replicas",
              std::to_string(m->replicas) + " replicas cannot share the static port " +
                  std::to_string(p.container_port) + "/" + p.protocol +
                  " on one node: instances use the host's network, so each would bind that "
                  "same host port; declare the port without containerPort (a dynamic port: "
                  "each instance gets its own, in $PORT_<NAME>), set placement.scope: cluster "
                  "(each replica then runs on a different node), or use replicas: 1");
      break;
    }
  }
  // The node sets these for every instance; a second value would be ambiguous.
  for (const auto& e : m->env) {
    if (!m->ports.empty() && e.name == kPortEnv) {
      c.error("spec.env", quote(e.name) +
                              " is set by the node (the host port of the first port); remove it "
                              "from env");
    }
    for (const auto& p : m->ports) {
      if (!p.name.empty() && e.name == portEnvName(p.name)) {
        c.error("spec.env", quote(e.name) + " is set by the node (the host port of port " +
                                quote(p.name) + "); remove it from env or rename the port");
      }
    }
  }
  if (!m->health_check || m->health_check->kind == HealthCheck::Kind::kExec) return;
  HealthCheck& h = *m->health_check;
  if (h.port == 0 && h.port_name.empty()) return;  // already reported
  std::string path = std::string("spec.healthCheck.") +
                     (h.kind == HealthCheck::Kind::kHttp ? "http" : "tcp") + ".port";
  if (m->ports.empty()) {
    if (!h.port_name.empty()) {
      c.error(path, quote(h.port_name) +
                        " names no port: spec.ports declares none; declare it there or give "
                        "the port number");
    }
    return;
  }
  // Probes are TCP connections, so only tcp ports qualify.
  std::string allowed;
  for (const auto& p : m->ports) {
    if (p.protocol != "tcp") continue;
    if (!p.isDynamic()) allowed += (allowed.empty() ? "" : ", ") + std::to_string(p.container_port);
    if (!p.name.empty()) allowed += (allowed.empty() ? "" : ", ") + p.name;
  }
  std::string hint = allowed.empty() ? " (no tcp port is declared)" : "; allowed: " + allowed;
  if (!h.port_name.empty()) {
    auto it = std::find_if(m->ports.begin(), m->ports.end(),
                           [&](const PortSpec& p) { return p.name == h.port_name; });
    if (it == m->ports.end()) {
      c.error(path, quote(h.port_name) + " is not a declared port" + hint);
    } else if (it->protocol != "tcp") {
      c.error(path, quote(h.port_name) + " is a " + it->protocol +
                        " port; http and tcp checks need a tcp port" + hint);
    } else {
      h.port = it->container_port;
    }
    return;
  }
  bool found = std::any_of(m->ports.begin(), m->ports.end(), [&](const PortSpec& p) {
    return !p.isDynamic() && p.protocol == "tcp" && p.container_port == h.port;
  });
  if (!found) {
    c.error(path, "port " + std::to_string(h.port) +
                      " is not a declared static tcp port (a dynamic port is checked by its "
                      "name)" +
                      hint);
  }
}

// A service of scope node runs on the node it is applied to: a field that chooses nodes
// would be silently ignored there, so it is refused, pointing to scope: cluster.
// Whether this node may act on scope: cluster (a trust domain, a cluster) is the node's
// decision when it applies the service, not the manifest's.
void checkPlacement(Checker& c, const ServiceManifest& m) {
  const Placement& p = m.placement;
  if (p.scope == Placement::Scope::kNode) {
    const std::string why =
        "needs scope: cluster; with scope: node (the default) a service runs on the node it is "
        "applied to, whatever its placement says; set spec.placement.scope: cluster to have "
        "the cluster place it";
    if (!p.nodes.empty()) c.error("spec.placement.nodes", why);
    if (!p.labels.empty()) c.error("spec.placement.labels", why);
    if (!p.constraints.empty()) c.error("spec.placement.constraints", why);
    if (!p.affinity.empty()) c.error("spec.placement.affinity", why);
    if (p.mode == Placement::Mode::kEveryNode) {
      c.error("spec.placement.mode", "\"every-node\" " + why);
    }
    if (p.strategy == Placement::Strategy::kBinpack) {
      c.error("spec.placement.strategy", "\"binpack\" " + why);
    }
  }
  // The eligible nodes make the count: a number written beside every-node would be
  // silently ignored, so only the default (1) is accepted.
  if (p.mode == Placement::Mode::kEveryNode && m.replicas != 1) {
    c.error("spec.replicas",
            std::to_string(m.replicas) +
                " is not allowed with placement.mode: every-node, which runs one instance on "
                "each eligible node (the nodes make the count); remove replicas, or use mode: "
                "replicas");
  }
}

}  // namespace edge::orchestrator::manifest_internal
