#include "runtime-shim/light/cgroups.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <set>
#include <sstream>

#include "common/fs.h"

namespace edge::runtime::light {
namespace {

// The v1 controllers a container is placed in, in creation order.
constexpr const char* kV1Controllers[] = {"memory", "cpu", "cpuacct", "pids", "devices"};

// Device access as Docker allows it: the nodes the runtime creates in /dev, pseudo
// terminals, and mknod of anything (useless without access). Everything else, host disks
// in particular, stays out of reach even for a container root holding CAP_MKNOD.
constexpr const char* kV1DeviceAllow[] = {"c *:* m",   "b *:* m",   "c 1:3 rwm",  "c 1:5 rwm",
                                          "c 1:7 rwm", "c 1:8 rwm", "c 1:9 rwm",  "c 5:0 rwm",
                                          "c 5:1 rwm", "c 5:2 rwm", "c 136:* rwm"};

std::vector<std::string_view> splitView(std::string_view s, char sep) {
  std::vector<std::string_view> out;
  size_t start = 0;
  while (start <= s.size()) {
    size_t end = s.find(sep, start);
    if (end == std::string_view::npos) end = s.size();
    out.push_back(s.substr(start, end - start));
    start = end + 1;
  }
  return out;
}

int64_t parseInt(std::string_view s) {
  int64_t v = 0;
  bool any = false;
  for (char c : s) {
    if (c < '0' || c > '9') break;
    v = v * 10 + (c - '0');
    any = true;
  }
  return any ? v : -1;
}

// Value of "key N" in a flat-keyed file (memory.oom_control, memory.events, cpu.stat).
int64_t keyedValue(std::string_view text, std::string_view key) {
  for (std::string_view line : splitView(text, '\n')) {
    if (line.size() > key.size() && line.starts_with(key) && line[key.size()] == ' ') {
      return parseInt(line.substr(key.size() + 1));
    }
  }
  return -1;
}

class RealCgroupFs : public CgroupFs {
 public:
  bool exists(const std::string& path) override { return ::access(path.c_str(), F_OK) == 0; }
  Status makeDir(const std::string& path) override {
    if (::mkdir(path.c_str(), 0755) != 0 && errno != EEXIST) {
      return Status::fromErrno(errno, "mkdir " + path);
    }
    return Status::ok();
  }
  Status removeDir(const std::string& path) override {
    if (::rmdir(path.c_str()) != 0 && errno != ENOENT) {
      return Status::fromErrno(errno, "rmdir " + path);
    }
    return Status::ok();
  }
  Status writeFile(const std::string& path, std::string_view value) override {
    fs::UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CLOEXEC));
    if (!fd.valid()) return Status::fromErrno(errno, "open " + path);
    ssize_t n = ::write(fd.get(), value.data(), value.size());
    if (n < 0) return Status::fromErrno(errno, "write " + path);
    return Status::ok();
  }
  Result<std::string> readFile(const std::string& path) override {
    fs::UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    if (!fd.valid()) return Status::fromErrno(errno, "open " + path);
    std::string out;
    char buf[4096];
    for (int i = 0; i < 64; ++i) {
      ssize_t n = ::read(fd.get(), buf, sizeof buf);
      if (n < 0) return Status::fromErrno(errno, "read " + path);
      if (n == 0) break;
      out.append(buf, static_cast<size_t>(n));
    }
    return out;
  }
};

}  // namespace

std::unique_ptr<CgroupFs> makeRealCgroupFs() {
  return std::make_unique<RealCgroupFs>();
}

Result<CgroupLayout> parseCgroupLayout(std::string_view mountinfo) {
  CgroupLayout layout;
  std::string v2;
  for (std::string_view line : splitView(mountinfo, '\n')) {
    size_t dash = line.find(" - ");
    if (dash == std::string_view::npos) continue;
    auto pre = splitView(line.substr(0, dash), ' ');
    auto post = splitView(line.substr(dash + 3), ' ');
    if (pre.size() < 5 || post.size() < 3) continue;
    std::string mount_point(pre[4]);
    if (post[0] == "cgroup2") {
      if (v2.empty() || mount_point == "/sys/fs/cgroup") v2 = mount_point;
    } else if (post[0] == "cgroup") {
      for (std::string_view opt : splitView(post[2], ',')) {
        for (const char* c : kV1Controllers) {
          if (opt == c && !layout.v1_mounts.count(c)) layout.v1_mounts[c] = mount_point;
        }
      }
    }
  }
  if (layout.v1_mounts.count("memory")) {
    layout.version = CgroupVersion::kV1;
    return layout;
  }
  if (!v2.empty()) {
    layout.version = CgroupVersion::kV2;
    layout.v1_mounts.clear();
    layout.v2_root = v2;
    return layout;
  }
  return Status::failedPrecondition(
      "no cgroup memory controller: neither a cgroup v1 'memory' mount nor a cgroup2 mount "
      "is present in /proc/self/mountinfo");
}

std::vector<CgroupWrite> computeCgroupWrites(CgroupVersion version, const Resources& r,
                                             bool v1_memsw) {
  std::vector<CgroupWrite> w;
  constexpr int64_t kPeriod = 100000;
  int64_t quota = r.nano_cpus > 0 ? r.nano_cpus * kPeriod / 1'000'000'000 : 0;
  if (r.nano_cpus > 0 && quota < 1000) quota = 1000;  // the kernel's minimum is 1 ms
  if (version == CgroupVersion::kV1) {
    if (r.memory_bytes > 0) {
      std::string v = std::to_string(r.memory_bytes);
      w.push_back({"memory", "memory.limit_in_bytes", v});
      if (v1_memsw) w.push_back({"memory", "memory.memsw.limit_in_bytes", v});
    }
    if (r.nano_cpus > 0) {
      w.push_back({"cpu", "cpu.cfs_period_us", std::to_string(kPeriod)});
      w.push_back({"cpu", "cpu.cfs_quota_us", std::to_string(quota)});
    }
    if (r.pids_limit > 0) w.push_back({"pids", "pids.max", std::to_string(r.pids_limit)});
    w.push_back({"devices", "devices.deny", "a"});
    for (const char* rule : kV1DeviceAllow) w.push_back({"devices", "devices.allow", rule});
  } else {
    if (r.memory_bytes > 0) {
      w.push_back({"", "memory.max", std::to_string(r.memory_bytes)});
      w.push_back({"", "memory.swap.max", "0"});
    }
    if (r.nano_cpus > 0) {
      w.push_back({"", "cpu.max", std::to_string(quota) + " " + std::to_string(kPeriod)});
    }
    if (r.pids_limit > 0) w.push_back({"", "pids.max", std::to_string(r.pids_limit)});
  }
  return w;
}

CgroupManager::CgroupManager(CgroupLayout layout, std::shared_ptr<CgroupFs> fs)
    : layout_(std::move(layout)), fs_(std::move(fs)) {}

std::string CgroupManager::controllerDir(const std::string& controller,
                                         const std::string& id) const {
  if (layout_.version == CgroupVersion::kV2) return layout_.v2_root + "/edgecloud/" + id;
  auto it = layout_.v1_mounts.find(controller);
  if (it == layout_.v1_mounts.end()) return "";
  return it->second + "/edgecloud/" + id;
}

std::vector<std::string> CgroupManager::dirs(const std::string& id) const {
  std::vector<std::string> out;
  if (layout_.version == CgroupVersion::kV2) {
    out.push_back(controllerDir("", id));
    return out;
  }
  std::set<std::string> seen;
  for (const char* c : kV1Controllers) {
    std::string d = controllerDir(c, id);
    if (!d.empty() && seen.insert(d).second) out.push_back(d);
  }
  return out;
}

Status CgroupManager::create(const std::string& id, const Resources& r) {
  if (layout_.version == CgroupVersion::kV2) {
    // Controllers must be enabled in every ancestor's subtree_control to reach the leaf.
    std::string parent = layout_.v2_root + "/edgecloud";
    if (!fs_->exists(parent)) {
      RETURN_IF_ERROR(fs_->makeDir(parent));
    }
    for (const std::string& dir : {layout_.v2_root, parent}) {
      // Best effort per controller: a missing one must not block the others.
      for (const char* c : {"+memory", "+cpu", "+pids"}) {
        (void)fs_->writeFile(dir + "/cgroup.subtree_control", c);
      }
    }
  } else {
    for (const auto& [controller, mount] : layout_.v1_mounts) {
      std::string parent = mount + "/edgecloud";
      if (!fs_->exists(parent)) RETURN_IF_ERROR(fs_->makeDir(parent));
    }
  }
  for (const std::string& d : dirs(id)) RETURN_IF_ERROR(fs_->makeDir(d));
  bool memsw = layout_.version == CgroupVersion::kV1 &&
               fs_->exists(controllerDir("memory", id) + "/memory.memsw.limit_in_bytes");
  for (const CgroupWrite& w : computeCgroupWrites(layout_.version, r, memsw)) {
    std::string dir = controllerDir(w.controller, id);
    if (dir.empty() && w.controller == "devices") continue;  // hardening where available
    if (dir.empty()) {
      return Status::failedPrecondition("cgroup controller '" + w.controller +
                                        "' is not mounted; cannot apply " + w.file);
    }
    Status s = fs_->writeFile(dir + "/" + w.file, w.value);
    if (!s.isOk()) return s.withContext("cgroup limit " + w.file + "=" + w.value);
  }
  return Status::ok();
}

Status CgroupManager::destroy(const std::string& id) {
  Status first;
  for (const std::string& d : dirs(id)) {
    Status s = fs_->removeDir(d);
    if (!s.isOk() && first.isOk()) first = s;
  }
  return first;
}

bool CgroupManager::oomKilled(const std::string& id) {
  if (layout_.version == CgroupVersion::kV2) {
    auto ev = fs_->readFile(controllerDir("", id) + "/memory.events");
    return ev.isOk() && keyedValue(*ev, "oom_kill") > 0;
  }
  std::string dir = controllerDir("memory", id);
  if (dir.empty()) return false;
  auto oc = fs_->readFile(dir + "/memory.oom_control");
  if (oc.isOk()) {
    int64_t kills = keyedValue(*oc, "oom_kill");
    if (kills >= 0) return kills > 0;
    if (keyedValue(*oc, "under_oom") > 0) return true;
  }
  // Old kernels without the oom_kill counter: a hit limit is the best evidence there is.
  auto fc = fs_->readFile(dir + "/memory.failcnt");
  return fc.isOk() && parseInt(*fc) > 0 && oc.isOk();
}

Result<Stats> CgroupManager::stats(const std::string& id) {
  Stats st;
  auto num = [&](const std::string& path) -> int64_t {
    auto r = fs_->readFile(path);
    return r.isOk() ? parseInt(*r) : 0;
  };
  if (layout_.version == CgroupVersion::kV2) {
    std::string d = controllerDir("", id);
    if (!fs_->exists(d)) return Status::notFound("cgroup " + d + " does not exist");
    auto cpu = fs_->readFile(d + "/cpu.stat");
    if (cpu.isOk()) st.cpu_usage_ns = std::max<int64_t>(0, keyedValue(*cpu, "usage_usec")) * 1000;
    st.memory_usage_bytes = num(d + "/memory.current");
    auto max = fs_->readFile(d + "/memory.max");
    if (max.isOk() && !max->starts_with("max")) st.memory_limit_bytes = parseInt(*max);
    st.pids = num(d + "/pids.current");
    return st;
  }
  std::string mem = controllerDir("memory", id);
  if (mem.empty() || !fs_->exists(mem))
    return Status::notFound("cgroup " + mem + " does not exist");
  std::string acct = controllerDir("cpuacct", id);
  if (!acct.empty()) st.cpu_usage_ns = num(acct + "/cpuacct.usage");
  st.memory_usage_bytes = num(mem + "/memory.usage_in_bytes");
  int64_t limit = num(mem + "/memory.limit_in_bytes");
  // v1 reports "unlimited" as a huge page-rounded number.
  st.memory_limit_bytes = (limit > 0 && limit < (int64_t{1} << 62)) ? limit : 0;
  std::string pids = controllerDir("pids", id);
  if (!pids.empty()) st.pids = num(pids + "/pids.current");
  return st;
}

}  // namespace edge::runtime::light
