// Manifests' entry points: the limits on a file, its YAML documents (split here, loaded
// one by one), a Checker per document, names unique across the file and the cap on the
// errors reported; and the small public helpers of manifest.h. How a document becomes a
// ServiceManifest is in manifest_parse.cc, the rules in manifest_check.cc, the canonical
// form in manifest_spec.cc (the map is in manifest_internal.h).
//
// Thread-safety: free functions on values; safe from any thread.
#include "orchestrator/manifest.h"

#include <yaml-cpp/yaml.h>

#include <cctype>
#include <exception>
#include <map>

#include "orchestrator/manifest_internal.h"

namespace edge::orchestrator {

using namespace manifest_internal;

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

std::string_view constraintOpName(PlacementConstraint::Op op) {
  switch (op) {
    case PlacementConstraint::Op::kEq:
      return "==";
    case PlacementConstraint::Op::kNe:
      return "!=";
    case PlacementConstraint::Op::kGe:
      return ">=";
    case PlacementConstraint::Op::kGt:
      return ">";
    case PlacementConstraint::Op::kLe:
      return "<=";
    case PlacementConstraint::Op::kLt:
      return "<";
  }
  return "==";
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

// A generated file can be wrong in thousands of places; the first ones are enough.
constexpr size_t kMaxErrors = 100;

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

ManifestParse parseManifestsDetailed(std::string_view text, std::string_view source_name,
                                     ManifestOrigin origin) {
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
      if (origin == ManifestOrigin::kApply) checkPlacement(c, *m);
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
                                                    std::string_view source_name,
                                                    ManifestOrigin origin) {
  ManifestParse p = parseManifestsDetailed(text, source_name, origin);
  if (p.errors.empty()) return std::move(p.services);
  std::string msg;
  for (const auto& e : p.errors) {
    if (!msg.empty()) msg += '\n';
    msg += std::string(source_name) + ": " + e.toString();
  }
  return Status::invalidArgument(std::move(msg));
}

}  // namespace edge::orchestrator
