// The production entry point, kept apart so that tests which inject a fake image store
// do not need the real one linked in.
#include "runtime-shim/image/image_store.h"
#include "runtime-shim/light/light_runtime.h"
#include "runtime-shim/light/light_runtime_internal.h"

namespace edge::runtime {

Result<ContainerRuntimePtr> openLightRuntime(const LightRuntimeOptions& options) {
  light::LightRuntimeDeps deps;
  deps.euid = [] { return ::geteuid(); };
  // Refuse before touching the store: a non-root caller must not create directories.
  RETURN_IF_ERROR(light::checkHostSupport(::geteuid(), true, deps.mountinfo_path));
  ASSIGN_OR_RETURN(deps.images, ImageStore::open(options.root + "/images"));
  deps.materialize = materializeRootfs;
  return light::openLightRuntimeWith(options, std::move(deps));
}

}  // namespace edge::runtime
