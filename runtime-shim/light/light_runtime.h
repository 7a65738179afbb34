// LightRuntime: runs containers without any daemon, with Linux namespaces, cgroups,
// overlayfs, seccomp and one `edge-shim` parent process per container.
#pragma once

#include <string>

#include "common/clock.h"
#include "runtime-shim/runtime.h"

namespace edge::runtime {

struct LightRuntimeOptions {
  std::string root;  // state directory, e.g. /var/lib/edged/runtime/light
  // Volatile per-container state (state.json, exit.json, the /etc layer): a tmpfs, as
  // /run is on a normal host. When it is not one, the runtime mounts a small tmpfs on it.
  std::string run_root = "/run/edged/light";
  std::string shim_path;  // the edge-shim binary (absolute)
  ClockPtr clock;
};

// Opens the runtime, recovering containers whose shims still run. Refuses with
// kFailedPrecondition, saying what is missing, when the host cannot isolate containers
// (not root, no namespaces, no cgroups).
Result<ContainerRuntimePtr> openLightRuntime(const LightRuntimeOptions& options);

}  // namespace edge::runtime
