// spec.placement, spec.disconnect and spec.update: where a service runs, what the cluster
// does with a lost node's share, how its instances are replaced (docs/manifest.md). The
// constraint grammar is here too. Each part checks its own fields and values; the rules
// that tie placement to the rest of the spec (scope node with cluster-only fields,
// every-node with replicas) are checkPlacement's, in manifest_check.cc.
//
// Thread-safety: free functions; the Checker and the manifest are the caller's.
#include <algorithm>
#include <array>
#include <string>
#include <utility>
#include <vector>

#include "orchestrator/manifest_internal.h"

namespace edge::orchestrator::manifest_internal {
namespace {

// Bounds that keep a placement cheap to evaluate for every node at every scheduling pass.
constexpr size_t kMaxNodes = 64;
constexpr size_t kMaxConstraints = 32;
constexpr size_t kMaxAffinity = 16;
constexpr size_t kMaxNodeLabelKey = 63;  // as node labels (discovery/types.h)
constexpr size_t kMaxConstraintValue = 253;
constexpr int kDefaultAffinityWeight = 50;  // as Nomad's
constexpr Millis kMaxPolicyDuration{24 * 3'600'000};

constexpr char kConstraintForm[] =
    "write <attribute> <op> <value>, e.g. \"arch == x86_64\" or \"memory >= 1Gi\"";
constexpr char kOpsAllowed[] = "use ==, !=, >=, >, <=, <";
constexpr std::array<std::string_view, 9> kAttributes = {"arch", "os",   "runtime", "power", "name",
                                                         "node", "role", "cpu",     "memory"};

bool isSpace(char c) {
  return c == ' ' || c == '\t';
}
bool isOpChar(char c) {
  return c == '=' || c == '!' || c == '<' || c == '>';
}

bool hasControl(std::string_view s) {
  return std::any_of(s.begin(), s.end(), [](char c) {
    auto u = static_cast<unsigned char>(c);
    return u < 0x20 || u == 0x7f;
  });
}

// A key as node labels allow it (discovery/types.h): what label.<key> and an affinity's
// label may name; a longer key could never match a node.
bool isNodeLabelKey(std::string_view s) {
  if (s.empty() || s.size() > kMaxNodeLabelKey) return false;
  return std::all_of(s.begin(), s.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
           c == '_' || c == '/' || c == '-';
  });
}

const char kNodeLabelKeyRule[] = "1-63 letters, digits, '.', '_', '/' or '-'";

// What is wrong with a text value (os, arch, runtime, name, node, role, a label's value),
// or nullopt.
std::optional<std::string> textValueProblem(std::string_view v) {
  if (v.size() > kMaxConstraintValue) {
    return "the value is " + std::to_string(v.size()) + " characters long; at most " +
           std::to_string(kMaxConstraintValue);
  }
  if (hasControl(v)) return "the value " + quote(v) + " holds control characters";
  return std::nullopt;
}

std::optional<PlacementConstraint::Op> opFromText(std::string_view op) {
  using Op = PlacementConstraint::Op;
  for (Op o : {Op::kEq, Op::kNe, Op::kGe, Op::kGt, Op::kLe, Op::kLt}) {
    if (constraintOpName(o) == op) return o;
  }
  return std::nullopt;
}

bool isOrdering(PlacementConstraint::Op op) {
  return op != PlacementConstraint::Op::kEq && op != PlacementConstraint::Op::kNe;
}

// `<attribute> <op> <value>`, spaces optional around the op. Fills *out (text, attribute,
// op, value, quantity) and returns nullopt, or returns what is wrong and what is allowed.
std::optional<std::string> parseConstraint(std::string_view text, PlacementConstraint* out) {
  std::string_view s = text;
  while (!s.empty() && isSpace(s.front())) s.remove_prefix(1);
  while (!s.empty() && isSpace(s.back())) s.remove_suffix(1);
  if (s.empty()) return std::string("the constraint is empty; ") + kConstraintForm;
  size_t i = 0;
  while (i < s.size() && !isSpace(s[i]) && !isOpChar(s[i])) ++i;
  std::string_view attribute = s.substr(0, i);
  while (i < s.size() && isSpace(s[i])) ++i;
  size_t op_start = i;
  while (i < s.size() && isOpChar(s[i])) ++i;
  std::string_view op_text = s.substr(op_start, i - op_start);
  while (i < s.size() && isSpace(s[i])) ++i;
  std::string_view value = s.substr(i);

  if (attribute.empty()) return std::string("the attribute is missing; ") + kConstraintForm;
  if (op_text.empty()) {
    return "no operator after " + quote(attribute) + "; " + kConstraintForm + " (" + kOpsAllowed +
           ")";
  }
  auto op = opFromText(op_text);
  if (!op) return "unknown operator '" + std::string(op_text) + "'; " + kOpsAllowed;
  bool known = std::find(kAttributes.begin(), kAttributes.end(), attribute) != kAttributes.end();
  if (!known && attribute.starts_with("label.")) {
    std::string_view key = attribute.substr(6);
    if (!isNodeLabelKey(key)) {
      return "the label key " + quote(key) + " is not a node label key; use " + kNodeLabelKeyRule;
    }
    known = true;
  }
  if (!known) {
    std::string msg = "unknown attribute " + quote(attribute);
    size_t best_d = 3;
    std::string_view best;
    for (std::string_view a : kAttributes) {
      size_t d = editDistance(attribute, a);
      if (d < best_d) {
        best_d = d;
        best = a;
      }
    }
    // A word that could be a node label's key most likely is one, written without label.
    bool label_key = isNodeLabelKey(attribute) && best_d > 0;
    std::string as_label = "label." + std::string(attribute);
    if (attribute == "label") {
      msg += "; write label.<key>, e.g. label.zone";
    } else if (!best.empty() && label_key) {
      msg += "; did you mean " + std::string(best) + ", or the node label " + as_label + "?";
    } else if (!best.empty()) {
      msg += "; did you mean " + std::string(best) + "?";
    } else if (label_key) {
      msg += "; for a node label write " + as_label;
    }
    return msg + " (allowed: arch, os, runtime, power, name, node, role, cpu, memory, label.<key>)";
  }
  if (value.empty()) return "the value is missing after '" + std::string(op_text) + "'";

  PlacementConstraint c;
  c.text = std::string(text);
  c.attribute = std::string(attribute);
  c.op = *op;
  c.value = std::string(value);
  if (attribute == "cpu") {
    auto nano = parseCpu(value);
    if (!nano) return quote(value) + " is not a CPU quantity; use e.g. 500m, 0.5 or 2";
    if (*nano % 1'000'000 != 0) {
      return quote(value) + " is finer than a millicore; use e.g. 500m, 0.5 or 2";
    }
    c.quantity = *nano / 1'000'000;
  } else if (attribute == "memory") {
    auto bytes = parseBytes(value);
    if (!bytes.isOk()) return quote(value) + " is not a quantity of bytes; use e.g. 512Mi, 1Gi";
    c.quantity = *bytes;
  } else if (isOrdering(*op)) {
    return "'" + std::string(op_text) + "' compares quantities: only cpu and memory; use == or " +
           "!= with " + std::string(attribute);
  } else if (attribute == "power") {
    if (value != "mains" && value != "battery") {
      return quote(value) + " is not a power source; use mains or battery";
    }
  } else if (auto problem = textValueProblem(value)) {
    return *problem;
  }
  *out = std::move(c);
  return std::nullopt;
}

// A list field with at most `max` entries; false (reported) when it is too long.
bool withinCount(Checker& c, const YAML::Node& n, const std::string& path, size_t max,
                 std::string_view what) {
  if (!n.IsSequence() || n.size() <= max) return true;
  c.error(path, "at most " + std::to_string(max) + " " + std::string(what) + " are allowed, got " +
                    std::to_string(n.size()));
  return false;
}

std::optional<bool> boolean(Checker& c, const YAML::Node& n, const std::string& path) {
  auto s = c.oneOf(n, path, {"true", "false"});
  if (!s) return std::nullopt;
  return *s == "true";
}

// A duration of at most 24 h: the policies' times are waits, and a day is already beyond
// what any of them means.
std::optional<Millis> policyDuration(Checker& c, const YAML::Node& n, const std::string& path,
                                     bool allow_zero) {
  auto d = c.duration(n, path, allow_zero);
  if (!d) return std::nullopt;
  if (*d > kMaxPolicyDuration) {
    c.error(path, quote(n.Scalar()) + " is out of range; allowed " +
                      (allow_zero ? std::string("0s") : std::string("more than 0")) + " up to 24h");
    return std::nullopt;
  }
  return d;
}

void parseAffinity(Checker& c, const YAML::Node& n, const std::string& path,
                   std::vector<PlacementAffinity>* out) {
  if (!n.IsSequence()) {
    c.error(path, "expected a list of {label, value, weight}, got " + describe(n));
    return;
  }
  if (!withinCount(c, n, path, kMaxAffinity, "affinity entries")) return;
  size_t i = 0;
  for (const auto& item : n) {
    std::string p = Checker::index(path, i++);
    auto f = c.object(item, p, {"label", "value", "weight"});
    if (!f) continue;
    PlacementAffinity a;
    a.weight = kDefaultAffinityWeight;
    bool ok = true;
    if (auto v = f->get("label")) {
      auto s = c.string(*v, p + ".label");
      if (s && !isNodeLabelKey(*s)) {
        c.error(p + ".label", quote(*s) + " is not a node label key; use " + kNodeLabelKeyRule);
        s.reset();
      }
      ok = ok && s.has_value();
      if (s) a.label = *s;
    } else {
      c.error(p + ".label", "missing required field (a node label key)");
      ok = false;
    }
    if (auto v = f->get("value")) {
      auto s = c.string(*v, p + ".value");
      if (s && s->empty()) {
        c.error(p + ".value", "must not be empty");
        s.reset();
      } else if (s) {
        if (auto problem = textValueProblem(*s)) {
          c.error(p + ".value", *problem);
          s.reset();
        }
      }
      ok = ok && s.has_value();
      if (s) a.value = *s;
    } else {
      c.error(p + ".value", "missing required field (the label's value)");
      ok = false;
    }
    if (auto v = f->get("weight")) {
      auto w = c.integer(*v, p + ".weight", -100, 100);
      if (w && *w == 0) {
        c.error(p + ".weight",
                "0 has no effect; use 1..100 to prefer the nodes with this label, -100..-1 to "
                "avoid them");
        w.reset();
      }
      ok = ok && w.has_value();
      if (w) a.weight = static_cast<int>(*w);
    }
    if (!ok) continue;
    auto same = std::find_if(out->begin(), out->end(), [&](const PlacementAffinity& b) {
      return b.label == a.label && b.value == a.value;
    });
    if (same != out->end()) {
      c.error(p, "label " + quote(a.label + "=" + a.value) + " is listed twice; give it once, " +
                     "with the sum of the weights");
      continue;
    }
    out->push_back(std::move(a));
  }
}

}  // namespace

void parsePlacement(Checker& c, const YAML::Node& n, const std::string& path, Placement* pl) {
  auto f = c.object(n, path,
                    {"scope", "mode", "nodes", "labels", "constraints", "strategy", "affinity"});
  if (!f) return;
  if (auto v = f->get("scope")) {
    if (auto s = c.oneOf(*v, path + ".scope", {"node", "cluster"})) {
      pl->scope = *s == "cluster" ? Placement::Scope::kCluster : Placement::Scope::kNode;
    }
  }
  if (auto v = f->get("mode")) {
    if (auto s = c.oneOf(*v, path + ".mode", {"replicas", "every-node"})) {
      pl->mode = *s == "every-node" ? Placement::Mode::kEveryNode : Placement::Mode::kReplicas;
    }
  }
  if (auto v = f->get("nodes")) {
    std::string p = path + ".nodes";
    if (withinCount(c, *v, p, kMaxNodes, "nodes")) {
      if (auto l = c.stringList(*v, p)) {
        for (size_t i = 0; i < l->size(); ++i) {
          if ((*l)[i].empty() || hasControlOrSpace((*l)[i])) {
            c.error(Checker::index(p, i),
                    quote((*l)[i]) + " is not a node name; use a non-empty word without spaces");
          } else {
            pl->nodes.push_back((*l)[i]);
          }
        }
      }
    }
  }
  if (auto v = f->get("labels")) pl->labels = c.labels(*v, path + ".labels");
  if (auto v = f->get("constraints")) {
    std::string p = path + ".constraints";
    if (!v->IsSequence()) {
      c.error(p, "expected a list of strings (" + std::string(kConstraintForm) + "), got " +
                     describe(*v));
    } else if (withinCount(c, *v, p, kMaxConstraints, "constraints")) {
      size_t i = 0;
      for (const auto& item : *v) {
        std::string ip = Checker::index(p, i++);
        auto s = c.string(item, ip);
        if (!s) continue;
        PlacementConstraint pc;
        if (auto problem = parseConstraint(*s, &pc)) {
          c.error(ip, quote(*s) + ": " + *problem);
        } else {
          pl->constraints.push_back(std::move(pc));
        }
      }
    }
  }
  if (auto v = f->get("strategy")) {
    if (auto s = c.oneOf(*v, path + ".strategy", {"spread", "binpack"})) {
      pl->strategy = *s == "binpack" ? Placement::Strategy::kBinpack : Placement::Strategy::kSpread;
    }
  }
  if (auto v = f->get("affinity")) parseAffinity(c, *v, path + ".affinity", &pl->affinity);
}

void parseDisconnect(Checker& c, const YAML::Node& n, const std::string& path,
                     DisconnectPolicy* d) {
  auto f = c.object(n, path, {"replace", "lostAfter"});
  if (!f) return;
  if (auto v = f->get("replace")) {
    if (auto b = boolean(c, *v, path + ".replace")) d->replace = *b;
  }
  if (auto v = f->get("lostAfter")) {
    if (auto t = policyDuration(c, *v, path + ".lostAfter", true)) d->lost_after = *t;
  }
}

void parseUpdate(Checker& c, const YAML::Node& n, const std::string& path, UpdatePolicy* u) {
  auto f = c.object(n, path, {"maxParallel", "minHealthyTime", "healthyDeadline", "autoRevert"});
  if (!f) return;
  size_t before = c.errorCount();
  if (auto v = f->get("maxParallel")) {
    if (auto i = c.integer(*v, path + ".maxParallel", 1, 100)) {
      u->max_parallel = static_cast<int>(*i);
    }
  }
  if (auto v = f->get("minHealthyTime")) {
    if (auto t = policyDuration(c, *v, path + ".minHealthyTime", true)) u->min_healthy_time = *t;
  }
  if (auto v = f->get("healthyDeadline")) {
    if (auto t = policyDuration(c, *v, path + ".healthyDeadline", false)) u->healthy_deadline = *t;
  }
  if (auto v = f->get("autoRevert")) {
    if (auto b = boolean(c, *v, path + ".autoRevert")) u->auto_revert = *b;
  }
  // Compared only when both were read: a default beside a broken value says nothing.
  if (c.errorCount() == before && u->healthy_deadline <= u->min_healthy_time) {
    c.error(path + ".healthyDeadline",
            std::to_string(u->healthy_deadline.count()) + "ms is not longer than minHealthyTime (" +
                std::to_string(u->min_healthy_time.count()) +
                "ms): a new instance must stay healthy for minHealthyTime before the deadline; "
                "make it longer");
  }
}

}  // namespace edge::orchestrator::manifest_internal
