// Reading the metadata of image archives: docker-save manifest.json (classic and
// Docker 25+), OCI image layouts (index.json, nested indexes, multi-platform), and image
// configs. Pure parsing over a file-reading callback, so it is tested without archives.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "common/status.h"
#include "runtime-shim/runtime.h"

namespace edge::runtime::image {

// One image found in an archive. Paths are archive paths.
struct ImageCandidate {
  std::string config_path;
  std::string config_digest;  // "sha256:..." when the archive names it (OCI), else ""
  std::vector<std::string> layer_paths;
  std::vector<std::string> tags;              // normalised
  std::vector<std::string> manifest_digests;  // OCI manifests naming this image
};

using ReadFn = std::function<Result<std::string>(const std::string& archive_path)>;
using ExistsFn = std::function<bool(const std::string& archive_path)>;

// Finds the images of an archive: manifest.json when present, else index.json. With
// several platforms in one index, picks linux/`arch`. kInvalidArgument names the file and
// field that is wrong; kNotFound when no manifest matches the platform.
Result<std::vector<ImageCandidate>> findImages(const ReadFn& read, const ExistsFn& exists,
                                               const std::string& arch);

struct ParsedConfig {
  ImageInfo info;  // id, tags, size and layers left empty
  std::vector<std::string> diff_ids;
};

Result<ParsedConfig> parseConfig(const std::string& text, const std::string& what);

}  // namespace edge::runtime::image
