// Cgroups for light-runtime containers: detection of the host's layout (v1 per-controller
// mounts or the v2 unified tree), the pure mapping from Resources to cgroup file writes,
// and a CgroupManager that performs them through a small CgroupFs interface so tests run
// against a fake tree in a temp dir.
//
// Every container gets `<mount>/edgecloud/<id>` under each controller mount it uses.
//
// Thread-safety: CgroupManager holds no mutable state; calls for different ids may run
// concurrently.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "runtime-shim/runtime.h"

namespace edge::runtime::light {

enum class CgroupVersion { kV1 = 1, kV2 = 2 };

// Where the controllers live. v1: controller name -> mount dir (several controllers may
// share one dir, as "cpu,cpuacct" mounts do). v2: the unified mount.
struct CgroupLayout {
  CgroupVersion version = CgroupVersion::kV1;
  std::map<std::string, std::string> v1_mounts;  // "memory" -> "/sys/fs/cgroup/memory"
  std::string v2_root;                           // "/sys/fs/cgroup"
};

// Parses /proc/self/mountinfo. v1 wins when the memory controller is mounted as v1 (a
// hybrid host keeps its controllers there); otherwise the cgroup2 mount. Fails when
// neither exists.
Result<CgroupLayout> parseCgroupLayout(std::string_view mountinfo);

// One file write: <controller dir>/<file> = value, in order.
struct CgroupWrite {
  std::string controller;  // v1 controller ("memory") or "" for the v2 unified dir
  std::string file;
  std::string value;
  bool operator==(const CgroupWrite&) const = default;
};

// The writes that apply `r`. `v1_memsw` says whether memory.memsw.* exists (swap
// accounting on): then swap is limited to the same value so it cannot be used to escape.
std::vector<CgroupWrite> computeCgroupWrites(CgroupVersion version, const Resources& r,
                                             bool v1_memsw);

// The file operations the manager needs; paths are absolute.
class CgroupFs {
 public:
  virtual ~CgroupFs() = default;
  virtual bool exists(const std::string& path) = 0;
  virtual Status makeDir(const std::string& path) = 0;    // EEXIST is OK
  virtual Status removeDir(const std::string& path) = 0;  // ENOENT is OK
  virtual Status writeFile(const std::string& path, std::string_view value) = 0;
  virtual Result<std::string> readFile(const std::string& path) = 0;
};
std::unique_ptr<CgroupFs> makeRealCgroupFs();

class CgroupManager {
 public:
  CgroupManager(CgroupLayout layout, std::shared_ptr<CgroupFs> fs);

  const CgroupLayout& layout() const { return layout_; }
  // The controllers containers are placed in ("memory", "cpu", "cpuacct", "pids",
  // "devices"), those
  // present on the host; v2: the single unified dir.
  std::vector<std::string> dirs(const std::string& id) const;
  // Creates the container's cgroups and applies the limits.
  Status create(const std::string& id, const Resources& r);
  // Removes them; missing dirs are fine. Fails only when a dir is still busy.
  Status destroy(const std::string& id);
  // Whether the kernel OOM-killed a process in the container's memory cgroup.
  bool oomKilled(const std::string& id);
  Result<Stats> stats(const std::string& id);

 private:
  std::string controllerDir(const std::string& controller, const std::string& id) const;

  CgroupLayout layout_;
  std::shared_ptr<CgroupFs> fs_;
};

}  // namespace edge::runtime::light
