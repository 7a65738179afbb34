// Placeholder until the light runtime lands; replaced by light_runtime.cc.
#include "runtime-shim/light/light_runtime.h"

namespace edge::runtime {
Result<ContainerRuntimePtr> openLightRuntime(const LightRuntimeOptions&) {
  return Status::unimplemented("light runtime not built yet");
}
}  // namespace edge::runtime
