// The container side of edge-shim: what runs in the freshly cloned child (already in its
// new pid/mount/uts/ipc[/net] namespaces) up to execve of the container's command.
//
// Runs in a single-threaded child of the shim; reports the first failing step as text
// ("mount overlay: Invalid argument") on `error_fd` (close-on-exec, so EOF there means
// the exec succeeded) and exits 127.
#pragma once

#include <string>
#include <vector>

#include "runtime-shim/light/container_files.h"

namespace edge::runtime::light {

struct InitParams {
  const LaunchConfig* config = nullptr;
  std::string container_dir;
  std::string run_dir;      // on a tmpfs: holds the /etc layer (see runContainerInit)
  std::string seccomp_bpf;  // raw sock_filter program; empty = none
  int stdin_fd = -1;
  int stdout_fd = -1;
  int stderr_fd = -1;
  int error_fd = -1;
  // The shim moves the child into its cgroups while it sets up its mounts (a cgroup v1
  // attach waits for an RCU grace period: milliseconds that overlap the setup this way)
  // and writes one byte here when done. The child execs only after that byte; EOF means
  // the shim gave up, and the child exits.
  int go_fd = -1;
  void (*trace)(const char* step) = nullptr;  // development timing hook, may be null
};

[[noreturn]] void runContainerInit(const InitParams& p);

// The overlay mount data for `layers` (lowest first; lowerdir lists them topmost first).
// When the absolute form would exceed `max_len`, `chdir_to` is the parent of the lowest
// layer and lowerdir names the layers under it relative to it (mount(2) data is limited
// to a page); other layers keep their absolute names.
struct OverlayMountData {
  std::string chdir_to;  // "" = no chdir needed
  std::string data;
};
OverlayMountData overlayMountData(const std::vector<std::string>& layers, const std::string& upper,
                                  const std::string& work, size_t max_len = 4000);

}  // namespace edge::runtime::light
