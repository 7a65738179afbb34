// The records of a light-runtime container. On the data dir, under containers/<id>/:
//   config.json  the resolved configuration and everything the shim needs to launch
//                (written once at create)
// and on the run root (a tmpfs, emptied by a host restart), under <run_root>/<id>/:
//   state.json   created/running, pids with their start times, start error (runtime or
//                shim; replaced atomically)
//   exit.json    written by the shim when the container has exited
// and the pure recovery rule that turns them into a ContainerInfo after a restart.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "common/status.h"
#include "runtime-shim/light/cgroups.h"
#include "runtime-shim/light/cri_log.h"
#include "runtime-shim/runtime.h"

namespace edge::runtime::light {

struct LaunchConfig {
  ContainerInfo info;  // identity and effective config; state fields unused here
  std::string hostname;
  std::string stop_signal;          // resolved name, "" = SIGTERM
  int64_t stop_timeout_s = -1;      // -1 = default
  bool rootfs_copy = false;         // rootfs/ holds a materialized copy instead of overlay
  std::vector<std::string> layers;  // overlay lower dirs, lowest first
  CgroupLayout cgroups;
  CriLogLimits log;
  std::string seccomp_path;  // compiled BPF program ("" = none)
};

struct StateRecord {
  ContainerState state = ContainerState::kCreated;
  int pid = 0;
  uint64_t pid_start = 0;  // /proc/<pid>/stat starttime, against pid reuse
  int shim_pid = 0;
  uint64_t shim_start = 0;
  WallTime started{};
  std::string error;
  int exit_code = 0;
};

struct ExitRecord {
  int exit_code = 0;
  bool oom_killed = false;
  WallTime finished{};
};

std::string encodeLaunchConfig(const LaunchConfig& c);
Result<LaunchConfig> decodeLaunchConfig(std::string_view text);
std::string encodeState(const StateRecord& s);
Result<StateRecord> decodeState(std::string_view text);
std::string encodeExit(const ExitRecord& e);
Result<ExitRecord> decodeExit(std::string_view text);

// Replaces `path` via a temp file and rename (readers never see a torn file). No fsync:
// these records are cheap to lose in a power cut (the container is gone too) and an
// fsync per start would cost more than the rest of the start together.
Status replaceFile(const std::string& path, std::string_view data);

// Field 22 of /proc/<pid>/stat; 0 when the process does not exist.
uint64_t procStartTime(int pid);
// True when `pid` runs and started at `start_time`.
bool processMatches(int pid, uint64_t start_time);

// What a container looks like after a restart of the runtime.
struct Recovered {
  ContainerState state = ContainerState::kCreated;
  bool adopt = false;  // running: watch its shim
  int exit_code = 0;
  bool oom_killed = false;
  WallTime finished{};
  std::string error;
};
// `shim_alive`: the recorded shim pid runs with the recorded start time.
// `host_restarted`: the container's run dir is gone (the run root is a tmpfs, made anew
// at boot), so whatever it ran is gone too.
Recovered recoverContainer(const std::optional<StateRecord>& state,
                           const std::optional<ExitRecord>& exit, bool shim_alive,
                           bool host_restarted = false);

}  // namespace edge::runtime::light
