// The Docker Engine API subset a node serves, so the stock `docker` CLI and the Docker
// SDKs work against any Edgecloud node whatever its runtime: /_ping, /version, /info,
// containers (list, create, start, stop, kill, restart, wait, logs, inspect, remove)
// and images (list, load, inspect, remove), each with and without a /v1.NN prefix. The
// server advertises API 1.43 and accepts clients from 1.24 up. What the CLI sends is in
// ../shared/DOCKER-API-TRACE.md; what is refused or dropped is in parseCreateRequest()
// (docker_codec.h, the mapping between Docker's JSON and the runtime types; this file
// has the routes).
//
// Containers created here carry no io.edgecloud.managed label: they are the user's, not
// a manifest's. Lists show every container of the runtime, managed ones included.
//
// Thread-safety: handlers run concurrently on the server's connection threads; the
// runtime must be thread-safe (every ContainerRuntime is) and outlive the server.
//
// Errors (HTTP): {"message": "..."} with 404 for an unknown container or image ("No
// such container: x"), 409 for conflicts, 400 for bad bodies or parameters (naming the
// field), 503 when the runtime is unreachable, 500 otherwise; 404 for endpoints outside
// the subset, saying so.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "common/http_server.h"
#include "edged/api/docker_codec.h"
#include "runtime-shim/runtime.h"

namespace edge::edged {

struct DockerApiOptions {
  std::string node_name;  // /info Name
  std::string version;    // edged's: /version Version, /info ServerVersion
  std::string data_dir;   // /info DockerRootDir
  // Where `POST /images/load` stores the uploaded tarball while the runtime loads it
  // (created 0700 when missing). Not a small tmpfs: images can be large.
  std::string temp_dir;
  // Called after a container or image changed through this API (create, start, stop,
  // kill, restart, remove, load, image removal); the node wakes its reconciler and
  // event log with it. Called on a connection thread; must not block for long.
  std::function<void()> on_change;
};

void registerDockerApi(http::ApiServer& server, runtime::ContainerRuntime& runtime,
                       DockerApiOptions options);

}  // namespace edge::edged
