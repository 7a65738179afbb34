// Layer unpacking: turns one image layer (a tar stream, plain, gzip or zstd; the
// compression is detected from the content) into a directory tree, safely.
//
// Two ways to treat OCI whiteouts (`.wh.<name>`, `.wh..wh..opq`):
//   kOverlay  the layer is unpacked alone into an empty directory and whiteouts are
//             stored the way overlayfs reads them (char device 0/0 at <name>; xattr
//             trusted.overlay.opaque=y on the directory), so layer directories stack
//             as overlay lowerdirs. Needs root for mknod and trusted.* xattrs.
//   kApply    the layer is applied onto an existing tree (the layers below it): a
//             whiteout deletes <name>, an opaque marker deletes every child of its
//             directory that this layer did not itself create.
//
// Safety: entries are created with openat() walks that never follow symlinks; absolute
// paths, `..`, parents that are symlinks or non-directories, hard links leaving the tree,
// device nodes, too-long names and entries above the size limits are refused with
// kInvalidArgument naming the layer and the entry. Symlink targets are stored as-is
// (absolute targets are normal in images); they are never resolved here.
//
// Ownership, modes (incl. setuid), mtimes and xattrs are kept. Without root, chown and
// trusted.* xattrs are skipped (so kOverlay whiteouts fail without root).
//
// Thread-safety: free functions without shared state; do not run two of them on the
// same directory at once.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/status.h"

namespace edge::runtime::image {

enum class WhiteoutMode { kOverlay, kApply };

struct LayerLimits {
  int64_t max_entry_bytes = int64_t{16} << 30;  // one file
  int64_t max_layer_bytes = int64_t{64} << 30;  // sum of all files of a layer
  size_t max_path_bytes = 4095;                 // whole entry path
  size_t max_name_bytes = 255;                  // one path component
};

struct LayerResult {
  std::string diff_id;     // "sha256:<hex>" of the uncompressed tar stream
  int64_t size_bytes = 0;  // sum of the regular files' sizes
};

// Unpacks the layer in the file `layer_path` into the directory `dir` (which must exist).
// `layer_name` is used in error messages only. On error `dir` holds partial content;
// the caller removes it (kOverlay) or knows the tree is half-applied (kApply).
Result<LayerResult> unpackLayer(const std::string& layer_path, const std::string& dir,
                                WhiteoutMode mode, const LayerLimits& limits,
                                const std::string& layer_name);

// Normalises an entry path from a tar header: strips leading "./" and "/" (only when
// `allow_absolute`), drops "." and empty components. Returns kInvalidArgument for ".."
// components, absolute paths (unless allowed) or an empty result.
Result<std::string> cleanEntryPath(const std::string& raw, bool allow_absolute = false);

}  // namespace edge::runtime::image
