// ImageStore: the light runtime's content-addressed image store under a directory.
//
// Layout (under `root`):
//   blobs/sha256/<hex>          image configs and OCI manifests, by digest
//   layers/<hex of diff id>/    one unpacked layer each, shared between images; whiteouts
//                               are stored in overlayfs form (0/0 char device, opaque
//                               xattr) so the layers stack directly as overlay lowerdirs
//   layerinfo/<hex of diff id>  the layer's unpacked size (written before the layer dir
//                               appears, so list() never walks trees)
//   images.json                 image id -> tags, layers and run defaults, written atomically
//   tmp/                        staging of loads in flight; leftovers older than 6 h are
//                               removed by open()
//   lock                        flock()ed around index changes, for other processes
//
// Loading streams the tarball from disk (64 KiB blocks): every regular entry is copied to
// tmp/ while blobs are hashed against their names; then each layer is decompressed
// (plain/gzip/zstd, detected from content), hashed and unpacked in one pass into
// layers/<hex>.tmp-<random>, checked against the config's diff id and renamed into place.
// A failed load leaves no registered image and no new layers. See layer.h for the
// unpacking safety rules; refusals are kInvalidArgument naming layer and entry.
//
// Errors: kNotFound for an unknown reference or a missing tarball, kInvalidArgument for a
// malformed or hostile archive, kFailedPrecondition for a removal that is not allowed.
//
// Thread-safety: all methods are safe to call concurrently, also from several processes
// on one root (a mutex plus the lock file guard the index; unpacking runs outside them;
// two loads of the same layer unpack it once).
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "common/status.h"
#include "runtime-shim/image/layer.h"
#include "runtime-shim/runtime.h"

namespace edge::runtime {

class ImageStore {
 public:
  virtual ~ImageStore() = default;

  // Opens (creating if needed) the store rooted at `root`.
  static Result<std::unique_ptr<ImageStore>> open(const std::string& root);

  // Loads every image in a docker-save (classic or OCI) or OCI-layout tarball. Tags in
  // the archive move to the loaded image, as `docker load` does.
  virtual Result<std::vector<ImageInfo>> load(const std::string& tarball_path) = 0;
  virtual Result<std::vector<ImageInfo>> list() = 0;
  // `ref` is a reference ("busybox", "busybox:1"), a full id or a unique id prefix
  // (with or without "sha256:").
  virtual Result<ImageInfo> inspect(const std::string& ref) = 0;
  // Absolute paths of the unpacked layer directories of an image, lowest first, ready to
  // be overlay lowerdirs (reverse the order for the mount option: overlayfs wants the top
  // first). A layer the image lists twice appears once, at its highest position.
  virtual Result<std::vector<std::string>> layerPaths(const std::string& ref) = 0;
  // Removes a tag; when `ref` is an id or the last tag, removes the image and every
  // layer no other image uses. `in_use(image_id)` is asked first; removal is refused
  // with kFailedPrecondition while it returns true, unless `force`.
  virtual Status remove(const std::string& ref, bool force,
                        const std::function<bool(const std::string& image_id)>& in_use) = 0;
  // Size limits applied to layers unpacked by later loads (defaults: 16 GiB per entry,
  // 64 GiB per layer). An entry or layer over a limit fails its load.
  virtual void setLimits(const image::LayerLimits& limits) = 0;
};

// Builds a plain directory tree from overlay-form layers (lowest first), applying
// whiteouts and opaque markers as overlayfs would: the fallback rootfs when overlayfs
// cannot be mounted. `target` must be empty or absent.
Status materializeRootfs(const std::vector<std::string>& layer_dirs, const std::string& target);

}  // namespace edge::runtime
