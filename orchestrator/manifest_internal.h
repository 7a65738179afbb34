// The manifest parser's internals, shared by its source files; the public face is
// manifest.h, and nothing outside orchestrator/manifest*.cc includes this header.
//
//  - manifest.cc        the entry points: file limits, YAML documents, one Checker per
//                       document, duplicate names, the error cap
//  - manifest_parse.cc  YAML nodes -> ServiceManifest fields (each parse* reads one part
//                       of the spec and reports its own field errors)
//  - manifest_placement.cc  spec.placement (with the constraint grammar), spec.disconnect,
//                       spec.update
//  - manifest_check.cc  validation rules: names, image references, UTF-8 and nesting of
//                       the text, rules that tie fields together (ports, placement),
//                       Checker's typed reads
//  - manifest_spec.cc   the canonical form (manifestToJson) and the runtime spec
//
// Thread-safety: free functions on values, and a Checker per document on one thread.
#pragma once

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <charconv>
#include <cstdint>
#include <initializer_list>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/config.h"
#include "orchestrator/manifest.h"

namespace edge::orchestrator::manifest_internal {

// Quoted, control characters escaped and long values cut, so an error line stays one line.
std::string quote(std::string_view s);
// What a YAML node is, for "expected X, got Y": null, a list, a mapping, or the scalar quoted.
std::string describe(const YAML::Node& n);
size_t editDistance(std::string_view a, std::string_view b);
bool isDnsLabel(std::string_view s);
bool isLabelKey(std::string_view s);
bool isEnvName(std::string_view s);
bool hasControlOrSpace(std::string_view s);
bool isDigits(std::string_view s);
// What is wrong with image reference `ref` ([registry[:port]/]path[:tag][@sha256:<hex>]),
// or nullopt when it is valid.
std::optional<std::string> imageReferenceProblem(std::string_view ref);
// YAML text is Unicode; refusing other bytes up front keeps every stored string valid
// UTF-8, which the node API's JSON needs.
std::optional<std::string> firstInvalidUtf8(std::string_view s);
// yaml-cpp's parser recurses once per nesting level; refuse absurd nesting before it
// sees the text. Deliberately rough: real manifests use a handful of levels.
std::optional<std::string> checkNesting(std::string_view text);

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

// CPUs as resources write them ("0.5", "2", "500m") in nano-CPUs, or nullopt when `s` is
// not such a quantity or is above 10000 CPUs (manifest_parse.cc).
std::optional<int64_t> parseCpu(std::string_view s);

// spec.placement, spec.disconnect, spec.update: each field's type, range and grammar
// (manifest_placement.cc).
void parsePlacement(Checker& c, const YAML::Node& n, const std::string& path, Placement* pl);
void parseDisconnect(Checker& c, const YAML::Node& n, const std::string& path, DisconnectPolicy* d);
void parseUpdate(Checker& c, const YAML::Node& n, const std::string& path, UpdatePolicy* u);

// Rules that tie the ports to the rest of the spec (manifest_check.cc). `placement_known`
// is false when spec.placement had errors: the rules that depend on its scope are skipped
// then rather than guessed.
void checkPortReferences(Checker& c, ServiceManifest* m, bool placement_known);

// The rules of a placement as a whole (manifest_check.cc): the cluster-only fields need
// scope: cluster, every-node sets no replicas. Applied to manifests being applied only
// (ManifestOrigin): a document stored by an older node, which accepted any placement,
// still reads.
void checkPlacement(Checker& c, const ServiceManifest& m);

// One document: apiVersion, kind, metadata, spec (manifest_parse.cc).
std::optional<ServiceManifest> parseDocument(Checker& c, const YAML::Node& doc);

}  // namespace edge::orchestrator::manifest_internal
