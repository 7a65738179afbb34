// DockerRuntime: ContainerRuntime over the Docker Engine API on a unix socket (or TCP),
// compatible with Podman's Docker-compatible socket.
//
// The API version is negotiated once: min(daemon's, 1.43); daemons older than 1.24 are
// refused. Every request opens its own connection, so a wait or a log follow blocks
// only its caller. Daemon replies map to the interface's codes (docker_json.h,
// statusFromHttp); a 304 from start (already running) is kFailedPrecondition as the
// interface asks, a 304 from stop is success. Events are read in bounded windows so a
// Subscription ends within about half a second (docker_events.h). Pieces: docker_api
// (versioned requests), docker_json (shapes), docker_frames (log stream), docker_events.
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
