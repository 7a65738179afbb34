// Runtime selection: `auto` picks Docker when its socket answers /_ping, else the light
// runtime; `docker` and `light` force one and fail clearly when it cannot work.
#pragma once

#include <string>

#include "common/clock.h"
#include "runtime-shim/runtime.h"

namespace edge::runtime {

struct RuntimeOptions {
  std::string kind = "auto";  // auto | docker | light
  std::string docker_endpoint = "unix:///var/run/docker.sock";
  std::string data_dir = "/var/lib/edged";  // the light runtime keeps its state under it
  // Volatile state (a tmpfs): the light runtime uses <run_dir>/light for the default
  // data dir and <run_dir>/light-<hash of data_dir> for any other, so two data dirs on
  // one host never share it.
  std::string run_dir = "/run/edged";
  // Path of the edge-shim binary; "" = next to the running executable, then $PATH.
  std::string shim_path;
  ClockPtr clock;  // null = the system clock
};

Result<ContainerRuntimePtr> createRuntime(const RuntimeOptions& options);

// Where the light runtime keeps the volatile state of `options.data_dir`.
std::string lightRunRoot(const RuntimeOptions& options);

}  // namespace edge::runtime
