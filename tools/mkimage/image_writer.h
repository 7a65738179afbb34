// Writes image tarballs from local directories: each directory becomes one layer, packed
// in sorted order with fixed owners and mtimes so the same input gives the same bytes.
//
// Output formats: kOci (an OCI image layout), kDocker (classic `docker save`: <id>.json,
// <n>/layer.tar, manifest.json) and kBoth (what Docker 25+ writes: the OCI layout plus a
// manifest.json pointing into blobs/, accepted by older `docker load` too).
//
// Layers are streamed: tar -> diff-id hash -> compressor -> blob file -> digest, never
// held in memory. Not thread-safe; one writer per output.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "common/status.h"

namespace edge::tools {

enum class OutputFormat { kBoth, kDocker, kOci };
enum class LayerCompression { kNone, kGzip, kZstd };

struct LayerSpec {
  std::string dir;
  LayerCompression compression = LayerCompression::kGzip;
};

struct ImageSpec {
  std::vector<std::string> tags;  // "name:tag"; ":latest" added when missing
  std::vector<LayerSpec> layers;
  std::optional<std::vector<std::string>> entrypoint;
  std::optional<std::vector<std::string>> cmd;
  std::vector<std::string> env;  // KEY=value
  std::string working_dir;
  std::string user;
  std::map<std::string, std::string> labels;
  std::string stop_signal;
  std::string architecture;                      // "" = host
  std::string created = "1970-01-01T00:00:00Z";  // fixed for reproducible output
  bool preserve_mtime = false;                   // else every entry gets mtime 0
  bool preserve_owner = false;                   // else every entry is root:root
  OutputFormat format = OutputFormat::kBoth;
};

// Writes the image to `output` (atomically: a temp file renamed into place). Returns the
// image id ("sha256:<config digest>"). kInvalidArgument for a missing layer directory,
// unsupported file types (device nodes) or a bad tag; the message names the path.
Result<std::string> writeImage(const ImageSpec& spec, const std::string& output);

}  // namespace edge::tools
