#include "runtime-shim/image/manifest.h"

#include <algorithm>
#include <map>

#include "common/clock.h"
#include "common/json.h"

namespace edge::runtime::image {
namespace {

using json::Json;

constexpr int kMaxIndexDepth = 4;

bool isDigest(const std::string& d) {
  if (!d.starts_with("sha256:") || d.size() != 71) return false;
  return std::all_of(d.begin() + 7, d.end(),
                     [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); });
}

Result<std::string> normaliseTag(const std::string& tag, const std::string& what) {
  if (tag.empty() || tag.size() > 512 ||
      std::any_of(tag.begin(), tag.end(), [](char c) { return c <= ' ' || c == 0x7f; })) {
    return Status::invalidArgument(what + ": \"" + tag + "\" is not an image reference");
  }
  return normalizeImageRef(tag);
}

void addTag(std::vector<std::string>* tags, const std::string& t) {
  if (std::find(tags->begin(), tags->end(), t) == tags->end()) tags->push_back(t);
}

Result<Json> readJson(const ReadFn& read, const std::string& path) {
  ASSIGN_OR_RETURN(std::string text, read(path));
  return json::parse(text, path);
}

Result<std::vector<ImageCandidate>> fromManifestJson(const ReadFn& read) {
  ASSIGN_OR_RETURN(Json m, readJson(read, "manifest.json"));
  if (!m.is_array()) {
    return Status::invalidArgument("manifest.json: expected an array, got " + json::typeName(m));
  }
  std::vector<ImageCandidate> out;
  for (size_t i = 0; i < m.size(); ++i) {
    std::string path = "manifest.json: [" + std::to_string(i) + "]";
    if (!m[i].is_object()) return Status::invalidArgument(path + ": expected an object");
    ImageCandidate c;
    ASSIGN_OR_RETURN(c.config_path, json::getString(m[i], "Config", path));
    ASSIGN_OR_RETURN(c.layer_paths, json::getStringArray(m[i], "Layers", path));
    ASSIGN_OR_RETURN(std::vector<std::string> tags, json::getStringArray(m[i], "RepoTags", path));
    for (const auto& t : tags) {
      ASSIGN_OR_RETURN(std::string n, normaliseTag(t, path + ".RepoTags"));
      addTag(&c.tags, n);
    }
    // Both "<hex>.json" (classic) and "blobs/sha256/<hex>" (Docker 25+) name the digest.
    std::string base = c.config_path.substr(c.config_path.rfind('/') + 1);
    if (base.ends_with(".json")) base.resize(base.size() - 5);
    if (isDigest("sha256:" + base)) c.config_digest = "sha256:" + base;
    out.push_back(std::move(c));
  }
  return out;
}

std::string blobPath(const std::string& digest) {
  return "blobs/sha256/" + digest.substr(7);
}

class IndexWalker {
 public:
  IndexWalker(const ReadFn& read, std::string arch) : read_(read), arch_(std::move(arch)) {}

  Status walk(const Json& index, const std::string& what, const std::vector<std::string>& tags,
              int depth);
  std::vector<ImageCandidate> take() { return std::move(out_); }

 private:
  Status addManifest(const std::string& digest, const std::vector<std::string>& tags);

  const ReadFn& read_;
  std::string arch_;
  std::vector<ImageCandidate> out_;
  std::map<std::string, size_t> by_manifest_;
};

Status IndexWalker::addManifest(const std::string& digest, const std::vector<std::string>& tags) {
  auto it = by_manifest_.find(digest);
  if (it != by_manifest_.end()) {
    for (const auto& t : tags) addTag(&out_[it->second].tags, t);
    return Status::ok();
  }
  std::string path = blobPath(digest);
  ASSIGN_OR_RETURN(Json m, readJson(read_, path));
  std::string what = "manifest " + digest;
  if (!m.is_object() || !m.contains("config") || !m["config"].is_object()) {
    return Status::invalidArgument(what + ": .config must be an object");
  }
  ImageCandidate c;
  ASSIGN_OR_RETURN(c.config_digest, json::getString(m["config"], "digest", ".config"));
  if (!isDigest(c.config_digest)) {
    return Status::invalidArgument(what + ": .config.digest \"" + c.config_digest +
                                   "\" is not a sha256 digest");
  }
  c.config_path = blobPath(c.config_digest);
  if (m.contains("layers") && !m["layers"].is_null()) {
    if (!m["layers"].is_array())
      return Status::invalidArgument(what + ": .layers must be an array");
    for (const auto& l : m["layers"]) {
      if (!l.is_object()) return Status::invalidArgument(what + ": .layers[] must be objects");
      ASSIGN_OR_RETURN(std::string d, json::getString(l, "digest", ".layers[]"));
      if (!isDigest(d)) {
        return Status::invalidArgument(what + ": layer digest \"" + d +
                                       "\" is not a sha256 digest");
      }
      c.layer_paths.push_back(blobPath(d));
    }
  }
  c.tags = tags;
  c.manifest_digests.push_back(digest);
  by_manifest_[digest] = out_.size();
  out_.push_back(std::move(c));
  return Status::ok();
}

Status IndexWalker::walk(const Json& index, const std::string& what,
                         const std::vector<std::string>& tags, int depth) {
  if (depth > kMaxIndexDepth) return Status::invalidArgument(what + ": indexes nested too deeply");
  if (!index.is_object() || !index.contains("manifests") || !index["manifests"].is_array()) {
    return Status::invalidArgument(what + ": .manifests must be an array");
  }
  struct Desc {
    std::string digest;
    std::string media_type;
    std::vector<std::string> tags;
    std::string os, arch;
    bool has_platform = false;
  };
  std::vector<Desc> descs;
  for (const auto& d : index["manifests"]) {
    if (!d.is_object()) return Status::invalidArgument(what + ": .manifests[] must be objects");
    Desc desc;
    ASSIGN_OR_RETURN(desc.digest, json::getString(d, "digest", ".manifests[]"));
    if (!isDigest(desc.digest)) {
      return Status::invalidArgument(what + ": digest \"" + desc.digest +
                                     "\" is not a sha256 digest");
    }
    ASSIGN_OR_RETURN(desc.media_type, json::getString(d, "mediaType", ".manifests[]", ""));
    ASSIGN_OR_RETURN(auto ann, json::getStringMap(d, "annotations", ".manifests[]"));
    if (ann["vnd.docker.reference.type"] == "attestation-manifest") continue;
    desc.tags = tags;
    // containerd's annotation carries the whole reference; the OCI one usually only the
    // tag, which names nothing without a repository.
    std::string ref = ann["io.containerd.image.name"];
    if (ref.empty()) {
      const std::string& oci = ann["org.opencontainers.image.ref.name"];
      if (oci.find_first_of("/:") != std::string::npos) ref = oci;
    }
    if (!ref.empty()) {
      ASSIGN_OR_RETURN(std::string n, normaliseTag(ref, what + ": annotation"));
      addTag(&desc.tags, n);
    }
    if (d.contains("platform") && d["platform"].is_object()) {
      desc.has_platform = true;
      ASSIGN_OR_RETURN(desc.os, json::getString(d["platform"], "os", ".platform", ""));
      ASSIGN_OR_RETURN(desc.arch, json::getString(d["platform"], "architecture", ".platform", ""));
      if (desc.os == "unknown") continue;
    }
    descs.push_back(std::move(desc));
  }
  std::map<std::string, int> platforms;
  for (const auto& d : descs) {
    if (d.has_platform) platforms[d.os + "/" + d.arch]++;
  }
  if (platforms.size() > 1) {
    std::vector<Desc> chosen;
    for (auto& d : descs) {
      if (d.has_platform && d.os == "linux" && d.arch == arch_) {
        chosen.push_back(std::move(d));
        break;
      }
    }
    if (chosen.empty()) {
      std::string avail;
      for (const auto& [p, n] : platforms) avail += (avail.empty() ? "" : ", ") + p;
      return Status::notFound(what + ": no image for linux/" + arch_ + " (has " + avail + ")");
    }
    descs = std::move(chosen);
  }
  for (const auto& d : descs) {
    bool nested = d.media_type.find("index") != std::string::npos ||
                  d.media_type.find("manifest.list") != std::string::npos;
    Json blob;
    if (!nested && d.media_type.empty()) {
      ASSIGN_OR_RETURN(blob, readJson(read_, blobPath(d.digest)));
      nested = blob.is_object() && blob.contains("manifests");
    }
    if (nested) {
      if (blob.is_null()) {
        ASSIGN_OR_RETURN(blob, readJson(read_, blobPath(d.digest)));
      }
      RETURN_IF_ERROR(walk(blob, "index " + d.digest, d.tags, depth + 1));
    } else {
      RETURN_IF_ERROR(addManifest(d.digest, d.tags));
    }
  }
  return Status::ok();
}

}  // namespace

Result<std::vector<ImageCandidate>> findImages(const ReadFn& read, const ExistsFn& exists,
                                               const std::string& arch) {
  if (exists("manifest.json")) return fromManifestJson(read);
  if (!exists("index.json")) {
    return Status::invalidArgument(
        "neither manifest.json nor index.json found: not a docker-save or OCI image archive");
  }
  ASSIGN_OR_RETURN(Json index, readJson(read, "index.json"));
  IndexWalker walker(read, arch);
  RETURN_IF_ERROR(walker.walk(index, "index.json", {}, 0));
  std::vector<ImageCandidate> out = walker.take();
  if (out.empty()) return Status::invalidArgument("index.json lists no image");
  return out;
}

Result<ParsedConfig> parseConfig(const std::string& text, const std::string& what) {
  ASSIGN_OR_RETURN(Json j, json::parse(text, what));
  if (!j.is_object()) return Status::invalidArgument(what + ": expected an object");
  ParsedConfig p;
  ImageInfo& i = p.info;
  ASSIGN_OR_RETURN(std::string created, json::getString(j, "created", "", ""));
  if (!created.empty() && !parseTimestamp(created, &i.created)) {
    return Status::invalidArgument(what + ": .created \"" + created + "\" is not a timestamp");
  }
  ASSIGN_OR_RETURN(i.os, json::getString(j, "os", "", "linux"));
  ASSIGN_OR_RETURN(i.architecture, json::getString(j, "architecture", "", ""));
  if (j.contains("config") && j["config"].is_object()) {
    const Json& c = j["config"];
    ASSIGN_OR_RETURN(i.entrypoint, json::getStringArray(c, "Entrypoint", ".config"));
    ASSIGN_OR_RETURN(i.cmd, json::getStringArray(c, "Cmd", ".config"));
    ASSIGN_OR_RETURN(i.env, json::getStringArray(c, "Env", ".config"));
    ASSIGN_OR_RETURN(i.working_dir, json::getString(c, "WorkingDir", ".config", ""));
    ASSIGN_OR_RETURN(i.user, json::getString(c, "User", ".config", ""));
    ASSIGN_OR_RETURN(i.stop_signal, json::getString(c, "StopSignal", ".config", ""));
    ASSIGN_OR_RETURN(i.labels, json::getStringMap(c, "Labels", ".config"));
  }
  if (!j.contains("rootfs") || !j["rootfs"].is_object()) {
    return Status::invalidArgument(what + ": .rootfs must be an object");
  }
  Result<std::vector<std::string>> ids = json::getStringArray(j["rootfs"], "diff_ids", ".rootfs");
  if (!ids) return ids.status().withContext(what);
  p.diff_ids = std::move(*ids);
  return p;
}

}  // namespace edge::runtime::image
