// Seams of the light runtime for tests: the image store, the rootfs fallback and the host
// checks can be replaced, so recovery and the root check are tested without root and the
// container path is tested before (or without) the real image store.
#pragma once

#include <sys/types.h>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "runtime-shim/image/image_store.h"
#include "runtime-shim/light/light_runtime.h"

namespace edge::runtime::light {

struct LightRuntimeDeps {
  std::unique_ptr<ImageStore> images;  // required
  std::function<Status(const std::vector<std::string>& layers, const std::string& target)>
      materialize;                 // null = copy fallback unavailable
  std::function<uid_t()> euid;     // null = geteuid
  bool check_host = true;          // namespaces and cgroups must be present
  bool force_copy_rootfs = false;  // as if overlayfs could not be used
  std::string mountinfo_path = "/proc/self/mountinfo";
};

// What the host lacks for isolated containers, or OK. `euid` is the effective uid.
Status checkHostSupport(uid_t euid, bool check_namespaces, const std::string& mountinfo_path);

Result<ContainerRuntimePtr> openLightRuntimeWith(const LightRuntimeOptions& options,
                                                 LightRuntimeDeps deps);

}  // namespace edge::runtime::light
