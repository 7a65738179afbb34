// DockerRuntime: ContainerRuntime over the Docker Engine API on a unix socket (or TCP),
// compatible with Podman's Docker-compatible socket.
#pragma once

#include <chrono>
#include <string>

#include "common/clock.h"
#include "runtime-shim/runtime.h"

namespace edge::runtime {

// Connects to `endpoint` ("unix:///var/run/docker.sock"), negotiates the API version
// with /_ping and returns the runtime. kUnavailable / kPermissionDenied when the daemon
// cannot be used, with a message saying why.
Result<ContainerRuntimePtr> openDockerRuntime(const std::string& endpoint, ClockPtr clock);

// True when a Docker-compatible daemon answers /_ping at `endpoint` within `timeout`.
bool dockerAnswers(const std::string& endpoint, std::chrono::milliseconds timeout);

}  // namespace edge::runtime
