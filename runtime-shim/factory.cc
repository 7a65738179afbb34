#include "runtime-shim/factory.h"

#include <unistd.h>

#include <climits>

#include "common/crypto.h"
#include "common/fs.h"
#include "common/log.h"
#include "runtime-shim/docker/docker_runtime.h"
#include "runtime-shim/light/light_runtime.h"

namespace edge::runtime {
namespace {

// edge-shim is installed next to the binaries that use it; fall back to $PATH.
std::string findShim(const std::string& configured) {
  if (!configured.empty()) return configured;
  char self[PATH_MAX];
  ssize_t n = ::readlink("/proc/self/exe", self, sizeof self - 1);
  if (n > 0) {
    self[n] = '\0';
    std::string dir(self);
    dir = dir.substr(0, dir.rfind('/'));
    for (const char* rel : {"/edge-shim", "/../bin/edge-shim"}) {
      std::string candidate = dir + rel;
      if (::access(candidate.c_str(), X_OK) == 0) return candidate;
    }
  }
  if (const char* path = std::getenv("PATH")) {
    std::string p(path);
    size_t pos = 0;
    while (pos <= p.size()) {
      size_t next = p.find(':', pos);
      if (next == std::string::npos) next = p.size();
      std::string candidate = p.substr(pos, next - pos) + "/edge-shim";
      if (::access(candidate.c_str(), X_OK) == 0) return candidate;
      pos = next + 1;
    }
  }
  return "edge-shim";
}

Result<ContainerRuntimePtr> openLight(const RuntimeOptions& o, ClockPtr clock) {
  LightRuntimeOptions lo;
  lo.root = o.data_dir + "/runtime/light";
  lo.run_root = lightRunRoot(o);
  lo.shim_path = findShim(o.shim_path);
  lo.clock = std::move(clock);
  return openLightRuntime(lo);
}

}  // namespace

std::string lightRunRoot(const RuntimeOptions& options) {
  std::string data_dir = options.data_dir;
  while (data_dir.size() > 1 && data_dir.back() == '/') data_dir.pop_back();
  if (data_dir == RuntimeOptions().data_dir) return options.run_dir + "/light";
  return options.run_dir + "/light-" + crypto::sha256Hex(data_dir).substr(0, 12);
}

Result<ContainerRuntimePtr> createRuntime(const RuntimeOptions& options) {
  ClockPtr clock = options.clock ? options.clock : SystemClock::instance();
  if (options.kind == "docker") return openDockerRuntime(options.docker_endpoint, clock);
  if (options.kind == "light") return openLight(options, clock);
  if (options.kind != "auto") {
    return Status::invalidArgument("runtime '" + options.kind +
                                   "' is not known; use auto, docker or light");
  }
  if (dockerAnswers(options.docker_endpoint, std::chrono::milliseconds(1500))) {
    auto docker = openDockerRuntime(options.docker_endpoint, clock);
    if (docker.isOk()) return docker;
    LOG_WARN("docker answered but could not be used; using the light runtime")
        .kv("endpoint", options.docker_endpoint)
        .kv("error", docker.status().message());
  } else {
    LOG_INFO("no docker daemon answers; using the light runtime")
        .kv("endpoint", options.docker_endpoint);
  }
  return openLight(options, clock);
}

}  // namespace edge::runtime
