#include "orchestrator/manifest.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>
#include <exception>
#include <initializer_list>
#include <set>

#include "common/config.h"
#include "common/json.h"

namespace edge::orchestrator {

std::string_view restartPolicyName(RestartPolicy p) {
  switch (p) {
    case RestartPolicy::kAlways:
      return "always";
    case RestartPolicy::kOnFailure:
      return "on-failure";
    case RestartPolicy::kNever:
      return "never";
  }
  return "always";
}

std::string portEnvName(std::string_view port_name) {
  std::string out = "PORT_";
  for (char c : port_name) {
    out += c == '-' ? '_' : static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  }
  return out;
}

std::string FieldError::toString() const {
  std::string out;
  if (doc > 0) out += "doc " + std::to_string(doc) + ": ";
  if (!path.empty()) out += path + ": ";
  out += message;
  return out;
}

namespace {

constexpr int64_t kMinMemory = 6 << 20;
constexpr size_t kMaxFlowDepth = 64;
constexpr size_t kMaxIndent = 256;
// A generated file can be wrong in thousands of places; the first ones are enough.
constexpr size_t kMaxErrors = 100;

// Quoted, control characters escaped and long values cut, so an error line stays one line.
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

bool isLowerAlnum(char c) {
  return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

bool isDigits(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
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

// What is wrong with image reference `ref` ([registry[:port]/]path[:tag][@sha256:<hex>]),
// or nullopt when it is valid.
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

// YAML text is Unicode; refusing other bytes up front keeps every stored string valid
// UTF-8, which the node API's JSON needs.
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

// yaml-cpp's parser recurses once per nesting level; refuse absurd nesting before it
// sees the text. Deliberately rough: real manifests use a handful of levels.
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

// A validated mapping: its fields by name, in the order written.
class Fields {
 public:
  // A field set to null ("replicas:", "~") counts as not given, as in Kubernetes, so
  // commenting out every entry under `env:` does not make the file invalid.
  std::optional<YAML::Node> get(std::string_view key) const {
    for (const auto& [k, v] : items_) {
      if (k == key) return v.IsNull() ? std::nullopt : std::optional<YAML::Node>(v);
    }
    return std::nullopt;
  }
  std::vector<std::pair<std::string, YAML::Node>> items_;
};

// Walks one document, collecting errors. Every check reports and carries on, so one
// pass finds every problem.
class Checker {
 public:
  Checker(int doc, std::vector<FieldError>* errors) : doc_(doc), errors_(errors) {}

  void error(const std::string& path, std::string message) {
    errors_->push_back({doc_, path, std::move(message)});
  }
  size_t errorCount() const { return errors_->size(); }

  // A mapping whose keys are all in `allowed`; unknown and repeated keys are errors.
  std::optional<Fields> object(const YAML::Node& n, const std::string& path,
                               std::initializer_list<std::string_view> allowed) {
    if (!n.IsMap()) {
      error(path, "expected a mapping, got " + describe(n));
      return std::nullopt;
    }
    Fields f;
    std::set<std::string> seen;
    for (const auto& kv : n) {
      if (!kv.first.IsScalar()) {
        error(path, "keys must be strings, got " + describe(kv.first));
        continue;
      }
      const std::string& key = kv.first.Scalar();
      std::string sub = join(path, key);
      if (std::find(allowed.begin(), allowed.end(), key) == allowed.end()) {
        std::string msg = "unknown field";
        if (auto s = suggest(key, allowed)) msg += "; did you mean " + *s + "?";
        std::string list;
        for (auto a : allowed) list += (list.empty() ? "" : ", ") + std::string(a);
        error(sub, msg + " (allowed: " + list + ")");
        continue;
      }
      if (!seen.insert(key).second) {
        error(sub, "field given twice");
        continue;
      }
      f.items_.emplace_back(key, kv.second);
    }
    return f;
  }

  std::optional<std::string> string(const YAML::Node& n, const std::string& path) {
    if (!n.IsScalar()) {
      error(path, "expected a string, got " + describe(n));
      return std::nullopt;
    }
    return n.Scalar();
  }

  std::optional<int64_t> integer(const YAML::Node& n, const std::string& path, int64_t min,
                                 int64_t max) {
    if (!n.IsScalar()) {
      error(path, "expected an integer, got " + describe(n));
      return std::nullopt;
    }
    const std::string& s = n.Scalar();
    int64_t v = 0;
    auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (s.empty() || ec == std::errc::invalid_argument || end != s.data() + s.size()) {
      error(path, "expected an integer, got " + quote(s));
      return std::nullopt;
    }
    if (ec != std::errc() || v < min || v > max) {
      error(path, quote(s) + " is out of range; allowed " + std::to_string(min) + ".." +
                      std::to_string(max));
      return std::nullopt;
    }
    return v;
  }

  std::optional<Millis> duration(const YAML::Node& n, const std::string& path, bool allow_zero) {
    auto s = string(n, path);
    if (!s) return std::nullopt;
    auto d = parseDuration(*s);
    if (!d.isOk()) {
      error(path, quote(*s) + " is not a duration; use e.g. 500ms, 2s, 1.5m, 1h");
      return std::nullopt;
    }
    if (!allow_zero && d->count() <= 0) {
      error(path, quote(*s) + " must be longer than 0");
      return std::nullopt;
    }
    return *d;
  }

  std::optional<std::string> oneOf(const YAML::Node& n, const std::string& path,
                                   std::initializer_list<std::string_view> allowed) {
    auto s = string(n, path);
    if (!s) return std::nullopt;
    if (std::find(allowed.begin(), allowed.end(), *s) != allowed.end()) return s;
    std::string list;
    for (auto a : allowed) list += (list.empty() ? "" : ", ") + std::string(a);
    error(path, quote(*s) + " is not allowed; use one of: " + list);
    return std::nullopt;
  }

  std::optional<std::vector<std::string>> stringList(const YAML::Node& n, const std::string& path) {
    if (!n.IsSequence()) {
      error(path, "expected a list of strings, got " + describe(n));
      return std::nullopt;
    }
    std::vector<std::string> out;
    bool ok = true;
    size_t i = 0;
    for (const auto& item : n) {
      auto s = string(item, index(path, i++));
      if (s) {
        out.push_back(*s);
      } else {
        ok = false;
      }
    }
    if (!ok) return std::nullopt;
    return out;
  }

  std::map<std::string, std::string> labels(const YAML::Node& n, const std::string& path) {
    std::map<std::string, std::string> out;
    if (!n.IsMap()) {
      error(path, "expected a mapping of strings, got " + describe(n));
      return out;
    }
    for (const auto& kv : n) {
      if (!kv.first.IsScalar()) {
        error(path, "keys must be strings, got " + describe(kv.first));
        continue;
      }
      const std::string& key = kv.first.Scalar();
      std::string sub = join(path, key);
      if (!isLabelKey(key)) {
        error(sub, "bad label key " + quote(key) +
                       "; use letters, digits, '-', '_', '.', '/' (at most 253)");
        continue;
      }
      auto v = string(kv.second, sub);
      if (!v) continue;
      if (!out.emplace(key, *v).second) error(sub, "label given twice");
    }
    return out;
  }

  static std::string join(const std::string& path, std::string_view key) {
    return path.empty() ? std::string(key) : path + "." + std::string(key);
  }
  static std::string index(const std::string& path, size_t i) {
    return path + "[" + std::to_string(i) + "]";
  }

 private:
  static std::optional<std::string> suggest(std::string_view key,
                                            std::initializer_list<std::string_view> allowed) {
    std::optional<std::string> best;
    size_t best_d = std::max<size_t>(2, key.size() / 3) + 1;
    for (auto a : allowed) {
      size_t d = editDistance(key, a);
      if (d < best_d) {
        best_d = d;
        best = std::string(a);
      }
    }
    return best;
  }

  int doc_;
  std::vector<FieldError>* errors_;
};

std::optional<int64_t> parseCpu(std::string_view s) {
  bool milli = !s.empty() && s.back() == 'm';
  if (milli) s.remove_suffix(1);
  if (s.empty() || s.size() > 32) return std::nullopt;
  if (!std::all_of(s.begin(), s.end(), [](char c) { return (c >= '0' && c <= '9') || c == '.'; }))
    return std::nullopt;
  double v = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || end != s.data() + s.size() || !std::isfinite(v)) return std::nullopt;
  double nano = milli ? v * 1e6 : v * 1e9;
  if (nano > 1e13) return std::nullopt;  // 10000 CPUs
  return static_cast<int64_t>(std::llround(nano));
}

void parseResources(Checker& c, const YAML::Node& n, const std::string& path, ResourceLimits* r) {
  auto f = c.object(n, path, {"cpu", "memory", "pids"});
  if (!f) return;
  if (auto v = f->get("cpu")) {
    std::string p = path + ".cpu";
    if (auto s = c.string(*v, p)) {
      auto nano = parseCpu(*s);
      if (!nano) {
        c.error(p, quote(*s) + " is not a CPU quantity; use e.g. 0.5, 2 or 500m");
      } else if (*nano <= 0) {
        c.error(p, quote(*s) + " must be more than 0");
      } else {
        r->nano_cpus = *nano;
      }
    }
  }
  if (auto v = f->get("memory")) {
    std::string p = path + ".memory";
    if (auto s = c.string(*v, p)) {
      auto bytes = parseBytes(*s);
      if (!bytes.isOk()) {
        c.error(p, quote(*s) + " is not a quantity; use 64Mi, 1Gi, ...");
      } else if (*bytes < kMinMemory) {
        c.error(p, quote(*s) + " is below the minimum of 6Mi");
      } else {
        r->memory_bytes = *bytes;
      }
    }
  }
  if (auto v = f->get("pids")) {
    if (auto i = c.integer(*v, path + ".pids", 1, 4'194'304)) r->pids = *i;
  }
}

void parseEnv(Checker& c, const YAML::Node& n, const std::string& path, std::vector<EnvVar>* env) {
  std::set<std::string> seen;
  auto add = [&](const std::string& p, const std::string& name, const std::string& value) {
    if (!isEnvName(name)) {
      c.error(p, quote(name) + " is not a variable name; use letters, digits and '_'");
    } else if (!seen.insert(name).second) {
      c.error(p, quote(name) + " is set twice");
    } else {
      env->push_back({name, value});
    }
  };
  if (n.IsMap()) {
    for (const auto& kv : n) {
      if (!kv.first.IsScalar()) {
        c.error(path, "keys must be strings, got " + describe(kv.first));
        continue;
      }
      std::string p = Checker::join(path, kv.first.Scalar());
      if (auto v = c.string(kv.second, p)) add(p, kv.first.Scalar(), *v);
    }
  } else if (n.IsSequence()) {
    size_t i = 0;
    for (const auto& item : n) {
      std::string p = Checker::index(path, i++);
      auto f = c.object(item, p, {"name", "value"});
      if (!f) continue;
      auto name = f->get("name");
      if (!name) {
        c.error(p + ".name", "missing required field");
        continue;
      }
      auto ns = c.string(*name, p + ".name");
      std::optional<std::string> vs = "";
      if (auto v = f->get("value")) vs = c.string(*v, p + ".value");
      if (ns && vs) add(p + ".name", *ns, *vs);
    }
  } else {
    c.error(path, "expected a mapping or a list of {name, value}, got " + describe(n));
  }
}

void parsePorts(Checker& c, const YAML::Node& n, const std::string& path,
                std::vector<PortSpec>* ports) {
  if (!n.IsSequence()) {
    c.error(path, "expected a list of ports, got " + describe(n));
    return;
  }
  std::set<std::pair<int, std::string>> seen;
  std::set<std::string> names;
  size_t i = 0;
  for (const auto& item : n) {
    std::string p = Checker::index(path, i++);
    auto f = c.object(item, p, {"containerPort", "protocol", "name"});
    if (!f) continue;
    PortSpec port;
    bool ok = true;
    if (auto v = f->get("containerPort")) {
      auto cp = c.integer(*v, p + ".containerPort", 1, 65535);
      ok = ok && cp.has_value();
      if (cp) port.container_port = static_cast<int>(*cp);
    }
    if (auto v = f->get("protocol")) {
      auto proto = c.oneOf(*v, p + ".protocol", {"tcp", "udp"});
      ok = ok && proto.has_value();
      if (proto) port.protocol = *proto;
    }
    if (auto v = f->get("name")) {
      auto name = c.string(*v, p + ".name");
      if (name && !isDnsLabel(*name)) {
        c.error(p + ".name", quote(*name) + " is not a valid port name; use [a-z0-9-]");
        name.reset();
      } else if (name && !names.insert(*name).second) {
        c.error(p + ".name", quote(*name) + " is used by another port");
        name.reset();
      }
      ok = ok && name.has_value();
      if (name) port.name = *name;
    }
    if (!ok) continue;
    if (port.isDynamic() && port.name.empty()) {
      c.error(p,
              "a port without containerPort is dynamic (the node gives each instance a free "
              "host port, in $PORT_<NAME>) and needs a name; add one, or set containerPort "
              "for a fixed port");
      continue;
    }
    if (!port.isDynamic() && !seen.emplace(port.container_port, port.protocol).second) {
      c.error(p, "port " + std::to_string(port.container_port) + "/" + port.protocol +
                     " is listed twice");
      continue;
    }
    ports->push_back(port);
  }
}

std::optional<HealthCheck> parseHealthCheck(Checker& c, const YAML::Node& n,
                                            const std::string& path) {
  auto f =
      c.object(n, path, {"http", "tcp", "exec", "interval", "timeout", "startPeriod", "retries"});
  if (!f) return std::nullopt;
  HealthCheck h;
  int probes = 0;
  // http and tcp probes both need a port: a number, or the name of a declared port
  // (checked against spec.ports in checkPortReferences).
  auto readPort = [&](const auto& g, const std::string& p) {
    auto po = g->get("port");
    if (!po) {
      c.error(p + ".port", "missing required field");
    } else if (!po->IsScalar()) {
      c.error(p + ".port", "expected a port number or a port name, got " + describe(*po));
    } else if (isDigits(po->Scalar())) {
      if (auto i = c.integer(*po, p + ".port", 1, 65535)) h.port = static_cast<int>(*i);
    } else if (isDnsLabel(po->Scalar())) {
      h.port_name = po->Scalar();
    } else {
      c.error(p + ".port", quote(po->Scalar()) +
                               " is neither a port number (1..65535) nor a port name ([a-z0-9-])");
    }
  };
  if (auto v = f->get("http")) {
    ++probes;
    h.kind = HealthCheck::Kind::kHttp;
    std::string p = path + ".http";
    if (auto g = c.object(*v, p, {"path", "port"})) {
      if (auto pa = g->get("path")) {
        if (auto s = c.string(*pa, p + ".path")) {
          if (s->empty() || s->front() != '/') {
            c.error(p + ".path", quote(*s) + " must start with '/'");
          } else {
            h.http_path = *s;
          }
        }
      } else {
        h.http_path = "/";
      }
      readPort(g, p);
    }
  }
  if (auto v = f->get("tcp")) {
    ++probes;
    h.kind = HealthCheck::Kind::kTcp;
    std::string p = path + ".tcp";
    if (auto g = c.object(*v, p, {"port"})) {
      readPort(g, p);
    }
  }
  if (auto v = f->get("exec")) {
    ++probes;
    h.kind = HealthCheck::Kind::kExec;
    std::string p = path + ".exec";
    if (auto g = c.object(*v, p, {"command"})) {
      if (auto cmd = g->get("command")) {
        if (auto l = c.stringList(*cmd, p + ".command")) {
          if (l->empty()) {
            c.error(p + ".command", "must not be empty");
          } else {
            h.exec_command = *l;
          }
        }
      } else {
        c.error(p + ".command", "missing required field");
      }
    }
  }
  if (probes != 1) {
    c.error(path, "give exactly one of http, tcp, exec (got " + std::to_string(probes) + ")");
  }
  if (auto v = f->get("interval")) {
    if (auto d = c.duration(*v, path + ".interval", false)) h.interval = *d;
  }
  if (auto v = f->get("timeout")) {
    if (auto d = c.duration(*v, path + ".timeout", false)) h.timeout = *d;
  }
  if (auto v = f->get("startPeriod")) {
    if (auto d = c.duration(*v, path + ".startPeriod", true)) h.start_period = *d;
  }
  if (auto v = f->get("retries")) {
    if (auto i = c.integer(*v, path + ".retries", 1, 100)) h.retries = static_cast<int>(*i);
  }
  if (h.timeout > h.interval) {
    c.error(path + ".timeout", std::to_string(h.timeout.count()) +
                                   "ms is longer than the interval (" +
                                   std::to_string(h.interval.count()) + "ms); make it shorter");
  }
  return h;
}

void parseLifecycle(Checker& c, const YAML::Node& n, const std::string& path, Lifecycle* l) {
  auto f = c.object(n, path, {"mode", "idleTimeout"});
  if (!f) return;
  if (auto v = f->get("mode")) {
    if (auto m = c.oneOf(*v, path + ".mode", {"always", "on-demand"})) {
      l->mode = *m == "on-demand" ? Lifecycle::Mode::kOnDemand : Lifecycle::Mode::kAlways;
    }
  }
  if (auto v = f->get("idleTimeout")) {
    if (l->mode != Lifecycle::Mode::kOnDemand) {
      c.error(path + ".idleTimeout", "only allowed with mode: on-demand");
    } else if (auto d = c.duration(*v, path + ".idleTimeout", false)) {
      l->idle_timeout = *d;
    }
  }
}

}  // namespace

const std::vector<std::string>& retryConditions() {
  static const std::vector<std::string> kConditions = {"502",   "503",    "504", "connect-failure",
                                                       "reset", "timeout"};
  return kConditions;
}

namespace {

void parseRoute(Checker& c, const YAML::Node& n, const std::string& path, Route* r) {
  auto f = c.object(n, path, {"basePath", "scope", "retry", "scopes"});
  if (!f) return;
  if (auto v = f->get("basePath")) {
    if (auto s = c.string(*v, path + ".basePath")) {
      if (s->empty() || s->front() != '/' || hasControlOrSpace(*s)) {
        c.error(path + ".basePath", quote(*s) + " must start with '/' and contain no spaces");
      } else {
        r->base_path = *s;
      }
    }
  }
  if (auto v = f->get("scope")) {
    if (auto s = c.oneOf(*v, path + ".scope", {"local", "global"})) {
      r->scope = *s == "global" ? Route::Scope::kGlobal : Route::Scope::kLocal;
    }
  }
  if (auto v = f->get("retry")) {
    std::string p = path + ".retry";
    if (auto g = c.object(
            *v, p, {"attempts", "perTryTimeout", "timeout", "on", "nonIdempotent", "backoff"})) {
      if (auto a = g->get("attempts")) {
        if (auto i = c.integer(*a, p + ".attempts", 0, 10))
          r->retry.attempts = static_cast<int>(*i);
      }
      if (auto t = g->get("perTryTimeout")) {
        if (auto d = c.duration(*t, p + ".perTryTimeout", false)) r->retry.per_try_timeout = *d;
      }
      if (auto t = g->get("timeout")) {
        if (auto d = c.duration(*t, p + ".timeout", false)) r->retry.timeout = *d;
      }
      if (auto o = g->get("on")) {
        if (auto l = c.stringList(*o, p + ".on")) {
          std::vector<std::string> on;
          for (size_t i = 0; i < l->size(); ++i) {
            const auto& allowed = retryConditions();
            if (std::find(allowed.begin(), allowed.end(), (*l)[i]) == allowed.end()) {
              c.error(Checker::index(p + ".on", i),
                      quote((*l)[i]) +
                          " is not a retry condition; allowed: connect-failure, "
                          "reset, timeout, 502, 503, 504");
            } else if (std::find(on.begin(), on.end(), (*l)[i]) == on.end()) {
              on.push_back((*l)[i]);
            }
          }
          std::sort(on.begin(), on.end());
          r->retry.on = std::move(on);
        }
      }
      if (auto b = g->get("nonIdempotent")) {
        if (auto m = c.oneOf(*b, p + ".nonIdempotent", {"true", "false"}))
          r->retry.non_idempotent = *m == "true";
      }
      if (auto b = g->get("backoff")) {
        std::string bp = p + ".backoff";
        if (auto h = c.object(*b, bp, {"base", "max"})) {
          if (auto t = h->get("base")) {
            if (auto d = c.duration(*t, bp + ".base", true)) r->retry.backoff_base = *d;
          }
          if (auto t = h->get("max")) {
            if (auto d = c.duration(*t, bp + ".max", true)) r->retry.backoff_max = *d;
          }
        }
      }
      if (r->retry.per_try_timeout > r->retry.timeout) {
        c.error(p + ".perTryTimeout", std::to_string(r->retry.per_try_timeout.count()) +
                                          "ms is longer than the call's timeout (" +
                                          std::to_string(r->retry.timeout.count()) +
                                          "ms); make it shorter or raise timeout");
      }
      if (r->retry.backoff_base > r->retry.backoff_max) {
        c.error(p + ".backoff.base", "is longer than backoff.max; make it shorter");
      }
    }
  }
  if (auto v = f->get("scopes")) {
    if (auto l = c.stringList(*v, path + ".scopes")) {
      for (size_t i = 0; i < l->size(); ++i) {
        if ((*l)[i].empty() || hasControlOrSpace((*l)[i])) {
          c.error(Checker::index(path + ".scopes", i),
                  quote((*l)[i]) + " is not a token scope; use a non-empty word without spaces");
        } else {
          r->scopes.push_back((*l)[i]);
        }
      }
    }
  }
}

void parsePlacement(Checker& c, const YAML::Node& n, const std::string& path, Placement* pl) {
  auto f = c.object(n, path, {"nodes", "labels"});
  if (!f) return;
  if (auto v = f->get("nodes")) {
    if (auto l = c.stringList(*v, path + ".nodes")) {
      for (size_t i = 0; i < l->size(); ++i) {
        if ((*l)[i].empty() || hasControlOrSpace((*l)[i])) {
          c.error(Checker::index(path + ".nodes", i),
                  quote((*l)[i]) + " is not a node name; use a non-empty word without spaces");
        } else {
          pl->nodes.push_back((*l)[i]);
        }
      }
    }
  }
  if (auto v = f->get("labels")) pl->labels = c.labels(*v, path + ".labels");
}

// Rules that tie the ports to the rest of the spec. Instances run on the host's
// network, so a static port is a host port: two replicas cannot both bind it.
void checkPortReferences(Checker& c, ServiceManifest* m) {
  if (m->replicas > 1) {
    for (const auto& p : m->ports) {
      if (p.isDynamic()) continue;
      c.error("spec.replicas",
              std::to_string(m->replicas) + " replicas cannot share the static port " +
                  std::to_string(p.container_port) + "/" + p.protocol +
                  ": instances use the host's network, so each would bind that same host "
                  "port; declare the port without containerPort (a dynamic port: each instance "
                  "gets its own, in $PORT_<NAME>), or use replicas: 1");
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

void parseSpec(Checker& c, const YAML::Node& n, ServiceManifest* m) {
  const std::string path = "spec";
  auto f = c.object(n, path,
                    {"image", "entrypoint", "command", "env", "ports", "resources", "replicas",
                     "restartPolicy", "healthCheck", "lifecycle", "route", "placement"});
  if (!f) return;
  if (auto v = f->get("image")) {
    if (auto s = c.string(*v, "spec.image")) {
      if (s->empty() || s->size() > 1024 || hasControlOrSpace(*s)) {
        c.error("spec.image", quote(*s) +
                                  " is not an image; use a reference (busybox:1) or a path to "
                                  "a .tar file, without spaces");
      } else {
        m->image = *s;
        m->image_is_tarball = s->size() > 4 && s->ends_with(".tar");
        if (!m->image_is_tarball) {
          if (auto problem = imageReferenceProblem(*s)) {
            c.error("spec.image", quote(*s) + " is not a valid image reference: " + *problem +
                                      "; use e.g. busybox:1.36, registry.local:5000/team/app:1.4 "
                                      "or app@sha256:<64 hex digits>, or a path ending in .tar");
          }
        }
      }
    }
  } else {
    c.error("spec.image", "missing required field");
  }
  if (auto v = f->get("entrypoint")) m->entrypoint = c.stringList(*v, "spec.entrypoint");
  if (auto v = f->get("command")) m->command = c.stringList(*v, "spec.command");
  if (auto v = f->get("env")) parseEnv(c, *v, "spec.env", &m->env);
  size_t before_ports = c.errorCount();
  if (auto v = f->get("ports")) parsePorts(c, *v, "spec.ports", &m->ports);
  bool ports_ok = c.errorCount() == before_ports;
  if (auto v = f->get("resources")) parseResources(c, *v, "spec.resources", &m->resources);
  if (auto v = f->get("replicas")) {
    if (auto i = c.integer(*v, "spec.replicas", 0, 1000)) m->replicas = static_cast<int>(*i);
  }
  if (auto v = f->get("restartPolicy")) {
    if (auto s = c.oneOf(*v, "spec.restartPolicy", {"always", "on-failure", "never"})) {
      m->restart_policy = *s == "never"        ? RestartPolicy::kNever
                          : *s == "on-failure" ? RestartPolicy::kOnFailure
                                               : RestartPolicy::kAlways;
    }
  }
  if (auto v = f->get("healthCheck")) m->health_check = parseHealthCheck(c, *v, "spec.healthCheck");
  if (auto v = f->get("lifecycle")) parseLifecycle(c, *v, "spec.lifecycle", &m->lifecycle);
  if (auto v = f->get("route")) parseRoute(c, *v, "spec.route", &m->route);
  if (auto v = f->get("placement")) parsePlacement(c, *v, "spec.placement", &m->placement);
  // With a broken port list, reference errors would only repeat the same mistake.
  if (ports_ok) checkPortReferences(c, m);
}

std::optional<ServiceManifest> parseDocument(Checker& c, const YAML::Node& doc) {
  if (!doc.IsMap()) {
    c.error("",
            "expected a mapping with apiVersion, kind, metadata and spec, got " + describe(doc));
    return std::nullopt;
  }
  auto f = c.object(doc, "", {"apiVersion", "kind", "metadata", "spec"});
  if (!f) return std::nullopt;
  ServiceManifest m;
  if (auto v = f->get("apiVersion")) {
    c.oneOf(*v, "apiVersion", {"edge/v1"});
  } else {
    c.error("apiVersion", "missing required field; use edge/v1");
  }
  if (auto v = f->get("kind")) {
    c.oneOf(*v, "kind", {"Service"});
  } else {
    c.error("kind", "missing required field; use Service");
  }
  if (auto v = f->get("metadata")) {
    if (auto md = c.object(*v, "metadata", {"name", "labels"})) {
      if (auto n = md->get("name")) {
        if (auto s = c.string(*n, "metadata.name")) {
          if (!isDnsLabel(*s)) {
            c.error("metadata.name",
                    quote(*s) +
                        " is not a valid name; use 1-63 lower-case letters, digits and '-', "
                        "starting and ending with a letter or digit");
          } else {
            m.name = *s;
          }
        }
      } else {
        c.error("metadata.name", "missing required field");
      }
      if (auto l = md->get("labels")) m.labels = c.labels(*l, "metadata.labels");
    }
  } else {
    c.error("metadata", "missing required field");
  }
  if (auto v = f->get("spec")) {
    parseSpec(c, *v, &m);
  } else {
    c.error("spec", "missing required field");
  }
  if (m.route.base_path.empty() && !m.name.empty()) m.route.base_path = "/" + m.name;
  return m;
}

}  // namespace

namespace {

struct YamlChunk {
  std::string text;
  int first_line = 0;           // 0-based line of the chunk's first line in the file
  bool explicit_start = false;  // begins with a `---` marker
};

// Splits a multi-document stream at its `---` markers and loads each document with
// YAML::Load. yaml-cpp 0.7's LoadAll loops forever on some inputs (a lone ",", upstream
// jbeder/yaml-cpp#1319), adding empty documents until memory runs out; a manifest from
// the API must never do that. A `---` at the start of a line always starts a document in
// YAML (it cannot occur inside a scalar there), so splitting on it is exact. Directives
// (`%YAML`) and comments before the first marker stay with the first document.
std::vector<YamlChunk> splitDocuments(std::string_view text) {
  std::vector<YamlChunk> chunks(1);
  int line_no = 0;
  bool content_before_marker = false;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t end = text.find('\n', pos);
    std::string_view line =
        text.substr(pos, end == std::string_view::npos ? std::string_view::npos : end - pos + 1);
    bool marker =
        line.starts_with("---") && (line.size() == 3 || line[3] == ' ' || line[3] == '\t' ||
                                    line[3] == '\n' || line[3] == '\r');
    if (marker) {
      if (chunks.size() == 1 && !chunks[0].explicit_start && !content_before_marker) {
        // Only directives, comments or blanks so far: they belong to this document.
        chunks[0].explicit_start = true;
      } else {
        chunks.push_back(YamlChunk{.text = "", .first_line = line_no, .explicit_start = true});
      }
    } else if (chunks.size() == 1 && !chunks[0].explicit_start) {
      std::string_view t = line;
      while (!t.empty() && (t.front() == ' ' || t.front() == '\t')) t.remove_prefix(1);
      if (!t.empty() && t.front() != '#' && t.front() != '%' && t.front() != '\n' &&
          t.front() != '\r')
        content_before_marker = true;
    }
    chunks.back().text.append(line);
    ++line_no;
    if (end == std::string_view::npos) break;
    pos = end + 1;
  }
  return chunks;
}

}  // namespace

ManifestParse parseManifestsDetailed(std::string_view text, std::string_view source_name) {
  (void)source_name;
  ManifestParse out;
  auto fileError = [&](std::string msg) { out.errors.push_back({0, "", std::move(msg)}); };
  if (text.size() > kMaxManifestBytes) {
    fileError("file is " + std::to_string(text.size()) + " bytes; the limit is " +
              std::to_string(kMaxManifestBytes));
    return out;
  }
  if (auto bad = firstInvalidUtf8(text)) {
    fileError(*bad);
    return out;
  }
  if (auto nesting = checkNesting(text)) {
    fileError(*nesting);
    return out;
  }
  std::vector<YAML::Node> docs;
  {
    auto chunks = splitDocuments(text);
    for (size_t i = 0; i < chunks.size(); ++i) {
      const YamlChunk& chunk = chunks[i];
      try {
        YAML::Node node = YAML::Load(chunk.text);
        // Text before the first `---` is a document only when it holds something.
        if (i == 0 && !chunk.explicit_start && (!node.IsDefined() || node.IsNull())) continue;
        docs.push_back(node);
      } catch (const YAML::Exception& e) {
        fileError("line " + std::to_string(chunk.first_line + e.mark.line + 1) + ", column " +
                  std::to_string(e.mark.column + 1) + ": YAML syntax error: " + e.msg);
        return out;
      } catch (const std::exception& e) {
        fileError(std::string("cannot read YAML: ") + e.what());
        return out;
      } catch (...) {
        fileError("cannot read YAML");
        return out;
      }
    }
  }
  std::map<std::string, int> names;
  int index = 0;
  for (const auto& doc : docs) {
    ++index;
    if (!doc.IsDefined() || doc.IsNull()) continue;
    Checker c(index, &out.errors);
    try {
      size_t before = out.errors.size();
      auto m = parseDocument(c, doc);
      if (!m) continue;
      if (!m->name.empty()) {
        auto [it, fresh] = names.emplace(m->name, index);
        if (!fresh) {
          c.error("metadata.name",
                  quote(m->name) + " is already used by doc " + std::to_string(it->second));
        }
      }
      if (out.errors.size() == before) out.services.push_back(std::move(*m));
    } catch (const std::exception& e) {
      c.error("", std::string("cannot read document: ") + e.what());
    } catch (...) {
      c.error("", "cannot read document");
    }
  }
  if (out.errors.empty() && out.services.empty()) fileError("no Service documents in the file");
  if (out.errors.size() > kMaxErrors) {
    size_t more = out.errors.size() - kMaxErrors;
    out.errors.resize(kMaxErrors);
    fileError(std::to_string(more) + " more errors not shown");
  }
  if (!out.errors.empty()) out.services.clear();
  return out;
}

Result<std::vector<ServiceManifest>> parseManifests(std::string_view text,
                                                    std::string_view source_name) {
  ManifestParse p = parseManifestsDetailed(text, source_name);
  if (p.errors.empty()) return std::move(p.services);
  std::string msg;
  for (const auto& e : p.errors) {
    if (!msg.empty()) msg += '\n';
    msg += std::string(source_name) + ": " + e.toString();
  }
  return Status::invalidArgument(std::move(msg));
}

namespace {

// The largest unit that writes `d` exactly, so "5s" stays "5s" and 1500 ms "1500ms".
std::string durationText(Millis d) {
  int64_t ms = d.count();
  if (ms == 0) return "0s";
  if (ms % 3'600'000 == 0) return std::to_string(ms / 3'600'000) + "h";
  if (ms % 60'000 == 0) return std::to_string(ms / 60'000) + "m";
  if (ms % 1'000 == 0) return std::to_string(ms / 1'000) + "s";
  return std::to_string(ms) + "ms";
}

// Binary units only: the parser reads quantities through a double, and a power-of-two
// multiplier keeps every value it produced exact.
std::string bytesText(int64_t bytes) {
  static const std::pair<const char*, int> kUnits[] = {
      {"Ti", 40}, {"Gi", 30}, {"Mi", 20}, {"Ki", 10}};
  for (const auto& [unit, shift] : kUnits) {
    if (bytes % (int64_t{1} << shift) == 0) return std::to_string(bytes >> shift) + unit;
  }
  return std::to_string(bytes);
}

std::string cpuText(int64_t nano) {
  if (nano % 1'000'000 == 0) return std::to_string(nano / 1'000'000) + "m";
  std::string frac = std::to_string(nano % 1'000'000'000);
  frac.insert(0, 9 - frac.size(), '0');
  while (frac.back() == '0') frac.pop_back();
  return std::to_string(nano / 1'000'000'000) + "." + frac;
}

json::Json optionalList(const std::optional<std::vector<std::string>>& l) {
  return l ? json::Json(*l) : json::Json(nullptr);
}

json::Json healthCheckJson(const HealthCheck& h) {
  json::Json port = h.port_name.empty() ? json::Json(h.port) : json::Json(h.port_name);
  json::Json out = {{"interval", durationText(h.interval)},
                    {"timeout", durationText(h.timeout)},
                    {"startPeriod", durationText(h.start_period)},
                    {"retries", h.retries}};
  switch (h.kind) {
    case HealthCheck::Kind::kHttp:
      out["http"] = {{"path", h.http_path}, {"port", port}};
      break;
    case HealthCheck::Kind::kTcp:
      out["tcp"] = {{"port", port}};
      break;
    case HealthCheck::Kind::kExec:
      out["exec"] = {{"command", h.exec_command}};
      break;
  }
  return out;
}

}  // namespace

std::string manifestToJson(const ServiceManifest& m) {
  // nlohmann's default object is a std::map, so keys come out sorted.
  json::Json env = json::Json::array();
  for (const auto& e : m.env) env.push_back({{"name", e.name}, {"value", e.value}});
  json::Json ports = json::Json::array();
  for (const auto& p : m.ports) {
    ports.push_back(
        {{"containerPort", p.isDynamic() ? json::Json(nullptr) : json::Json(p.container_port)},
         {"name", p.name.empty() ? json::Json(nullptr) : json::Json(p.name)},
         {"protocol", p.protocol}});
  }
  auto orNull = [](int64_t v, std::string text) {
    return v == 0 ? json::Json(nullptr) : json::Json(std::move(text));
  };
  bool on_demand = m.lifecycle.mode == Lifecycle::Mode::kOnDemand;
  json::Json spec = {
      {"image", m.image},
      {"entrypoint", optionalList(m.entrypoint)},
      {"command", optionalList(m.command)},
      {"env", env},
      {"ports", ports},
      {"resources",
       {{"cpu", orNull(m.resources.nano_cpus, cpuText(m.resources.nano_cpus))},
        {"memory", orNull(m.resources.memory_bytes, bytesText(m.resources.memory_bytes))},
        {"pids", m.resources.pids == 0 ? json::Json(nullptr) : json::Json(m.resources.pids)}}},
      {"replicas", m.replicas},
      {"restartPolicy", std::string(restartPolicyName(m.restart_policy))},
      {"healthCheck", m.health_check ? healthCheckJson(*m.health_check) : json::Json(nullptr)},
      {"lifecycle",
       {{"mode", on_demand ? "on-demand" : "always"},
        {"idleTimeout",
         on_demand ? json::Json(durationText(m.lifecycle.idle_timeout)) : json::Json(nullptr)}}},
      {"route",
       {{"basePath", m.route.base_path},
        {"scope", m.route.scope == Route::Scope::kGlobal ? "global" : "local"},
        {"retry",
         {{"attempts", m.route.retry.attempts},
          {"perTryTimeout", durationText(m.route.retry.per_try_timeout)},
          {"timeout", durationText(m.route.retry.timeout)},
          {"on", m.route.retry.on},
          {"nonIdempotent", m.route.retry.non_idempotent},
          {"backoff",
           {{"base", durationText(m.route.retry.backoff_base)},
            {"max", durationText(m.route.retry.backoff_max)}}}}},
        {"scopes", m.route.scopes}}},
      {"placement", {{"nodes", m.placement.nodes}, {"labels", m.placement.labels}}},
  };
  json::Json doc = {{"apiVersion", "edge/v1"},
                    {"kind", "Service"},
                    {"metadata", {{"name", m.name}, {"labels", m.labels}}},
                    {"spec", spec}};
  return json::dump(doc);
}

runtime::ContainerSpec toContainerSpec(const ServiceManifest& m, int replica) {
  runtime::ContainerSpec spec;
  spec.name = m.name + "-" + std::to_string(replica);
  spec.image = m.image;
  spec.entrypoint = m.entrypoint;
  spec.cmd = m.command;
  for (const auto& e : m.env) spec.env.push_back(e.name + "=" + e.value);
  spec.labels = m.labels;
  spec.labels[runtime::kManagedLabel] = "true";
  spec.labels["io.edgecloud.service"] = m.name;
  spec.labels["io.edgecloud.replica"] = std::to_string(replica);
  spec.resources.memory_bytes = m.resources.memory_bytes;
  spec.resources.nano_cpus = m.resources.nano_cpus;
  spec.resources.pids_limit = m.resources.pids;
  return spec;
}

}  // namespace edge::orchestrator
