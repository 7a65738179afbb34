// Placeholder until the Docker driver lands; replaced by docker_runtime.cc.
#include "runtime-shim/docker/docker_runtime.h"

namespace edge::runtime {
Result<ContainerRuntimePtr> openDockerRuntime(const std::string&, ClockPtr) {
  return Status::unimplemented("docker runtime not built yet");
}
bool dockerAnswers(const std::string&, std::chrono::milliseconds) { return false; }
}  // namespace edge::runtime
