// ImageLoader: the images of an apply, before its manifests are stored.
//
// A manifest's image is either a reference the runtime should hold (a missing one is a
// warning: the service starts once the image is loaded) or a path to an image tarball
// (`image_is_tarball`). A relative tarball path is resolved against the directory of the
// manifest file, which only the client knows (`manifest_dir`, absolute). Each tarball is
// loaded into the runtime and its manifest rewritten to name the image it held (its
// first tag, else its id), so the store and the reconciler only ever see references.
//
// Errors are per document and every one is reported (a missing file in document 2 does
// not hide a bad path in document 3); the caller stores nothing when there is any. A
// tarball loaded before another document's error stays in the runtime, as an
// `edgectl images load` of it would: loading it again is harmless. A dry run checks the
// paths and loads nothing.
//
// Thread-safety: load() may be called from any thread; the runtime and the event log it
// uses are thread-safe. Both must outlive the loader.
#pragma once

#include <string>
#include <vector>

#include "orchestrator/events.h"
#include "orchestrator/manifest.h"
#include "runtime-shim/runtime.h"

namespace edge::orchestrator {

struct ImageLoad {
  std::vector<std::string> warnings;  // "web: image hello:1 is not on this node yet; ..."
  std::vector<FieldError> errors;     // path "spec.image", doc = the manifest's index + 1
};

class ImageLoader {
 public:
  // `node_name` names this node in "no such file" errors (the file is looked for here,
  // not on the client's host).
  ImageLoader(runtime::ContainerRuntime& runtime, EventLog& events, std::string node_name);

  // Checks every manifest's image and, unless `dry_run`, loads the tarballs and rewrites
  // their manifests in place (image = the loaded reference, image_is_tarball = false),
  // appending an "image.loaded" event for each. Manifests with errors are left as given.
  ImageLoad load(std::vector<ServiceManifest>& services, const std::string& manifest_dir,
                 bool dry_run);

 private:
  runtime::ContainerRuntime& runtime_;
  EventLog& events_;
  const std::string node_name_;
};

}  // namespace edge::orchestrator
