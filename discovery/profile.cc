#include "discovery/profile.h"

#include <arpa/inet.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sched.h>
#include <sys/statvfs.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cctype>
#include <chrono>
#include <tuple>

#include "common/fs.h"

namespace edge::discovery {
namespace {

constexpr size_t kMaxHostFile = 64 << 10;  // the files read here are a few KiB at most
constexpr size_t kMaxProfileAddresses = 64;
constexpr size_t kMaxProfileServices = 256;

std::string readHostFile(const std::string& path) {
  auto text = fs::readFile(path, kMaxHostFile);
  return text.isOk() ? *text : std::string();
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  return s;
}

// Calls `each(line)` for every line of `text`.
template <typename F>
void forEachLine(std::string_view text, F&& each) {
  while (!text.empty()) {
    size_t nl = text.find('\n');
    std::string_view line = text.substr(0, nl);
    each(line);
    if (nl == std::string_view::npos) break;
    text.remove_prefix(nl + 1);
  }
}

// An os-release value: shell-like quoting, as os-release(5) defines it.
std::string unquoteOsReleaseValue(std::string_view v) {
  v = trim(v);
  if (v.size() >= 2 && (v.front() == '"' || v.front() == '\'') && v.back() == v.front()) {
    char q = v.front();
    v = v.substr(1, v.size() - 2);
    if (q == '\'') return std::string(v);
    std::string out;
    for (size_t i = 0; i < v.size(); ++i) {
      if (v[i] == '\\' && i + 1 < v.size()) ++i;
      out += v[i];
    }
    return out;
  }
  return std::string(v);
}

int cpuCount() {
  // The CPUs edged may run on (taskset, cpusets), which is what it can offer to workloads.
  cpu_set_t set;
  CPU_ZERO(&set);
  if (::sched_getaffinity(0, sizeof set, &set) == 0) {
    int n = CPU_COUNT(&set);
    if (n > 0) return n;
  }
  long n = ::sysconf(_SC_NPROCESSORS_ONLN);
  return n > 0 ? static_cast<int>(n) : 0;
}

std::string hostName() {
  char buf[256] = {};
  if (::gethostname(buf, sizeof buf - 1) != 0) return "";
  return buf;
}

std::string lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

int prefixLength(const sockaddr* mask) {
  if (mask == nullptr || mask->sa_family != AF_INET) return 0;
  uint32_t m = ntohl(reinterpret_cast<const sockaddr_in*>(mask)->sin_addr.s_addr);
  return std::popcount(m);
}

}  // namespace

int64_t parseMemTotal(std::string_view meminfo) {
  int64_t out = 0;
  forEachLine(meminfo, [&](std::string_view line) {
    if (out != 0 || !line.starts_with("MemTotal:")) return;
    std::string_view rest = trim(line.substr(9));
    int64_t n = 0;
    size_t i = 0;
    for (; i < rest.size() && std::isdigit(static_cast<unsigned char>(rest[i])); ++i) {
      if (n > (INT64_MAX - 9) / 10 / 1024) return;  // nonsense; no overflow either
      n = n * 10 + (rest[i] - '0');
    }
    if (i == 0) return;
    std::string_view unit = trim(rest.substr(i));
    if (unit == "kB" || unit == "KB" || unit == "kiB") {
      out = n * 1024;
    } else if (unit.empty() || unit == "B") {
      out = n;
    }
  });
  return out;
}

std::string parseOsPrettyName(std::string_view os_release) {
  std::string pretty, name;
  forEachLine(os_release, [&](std::string_view line) {
    line = trim(line);
    if (line.starts_with("PRETTY_NAME=")) pretty = unquoteOsReleaseValue(line.substr(12));
    if (line.starts_with("NAME=")) name = unquoteOsReleaseValue(line.substr(5));
  });
  return pretty.empty() ? name : pretty;
}

std::string parseBootId(std::string_view text) {
  return std::string(trim(text));
}

bool isContainerPlumbing(std::string_view n) {
  return n.starts_with("docker") || n.starts_with("veth") || n.starts_with("br-") ||
         n.starts_with("virbr") || n.starts_with("cni") || n.starts_with("flannel");
}

std::vector<InterfaceAddress> selectLinkInterfaces(const std::vector<RawInterface>& raw,
                                                   bool include_container_bridges) {
  std::vector<InterfaceAddress> out;
  for (const auto& r : raw) {
    if ((r.flags & IFF_UP) == 0 || (r.flags & IFF_MULTICAST) == 0 || (r.flags & IFF_LOOPBACK))
      continue;
    if (!include_container_bridges && isContainerPlumbing(r.name)) continue;
    out.push_back(InterfaceAddress{r.name, r.address, r.prefix_len});
  }
  std::sort(out.begin(), out.end(), [](const InterfaceAddress& a, const InterfaceAddress& b) {
    return std::tie(a.interface, a.address) < std::tie(b.interface, b.address);
  });
  return out;
}

std::vector<InterfaceAddress> linkInterfaces(bool include_container_bridges) {
  ifaddrs* list = nullptr;
  if (::getifaddrs(&list) != 0) return {};
  std::vector<RawInterface> raw;
  for (ifaddrs* i = list; i != nullptr; i = i->ifa_next) {
    if (i->ifa_addr == nullptr || i->ifa_addr->sa_family != AF_INET || i->ifa_name == nullptr)
      continue;
    char text[INET_ADDRSTRLEN] = {};
    const auto* in = reinterpret_cast<const sockaddr_in*>(i->ifa_addr);
    if (::inet_ntop(AF_INET, &in->sin_addr, text, sizeof text) == nullptr) continue;
    raw.push_back(RawInterface{i->ifa_name, i->ifa_flags, text, prefixLength(i->ifa_netmask)});
  }
  ::freeifaddrs(list);
  return selectLinkInterfaces(raw, include_container_bridges);
}

std::string networkOf(const InterfaceAddress& a) {
  in_addr addr{};
  if (a.prefix_len < 0 || a.prefix_len > 32 || ::inet_pton(AF_INET, a.address.c_str(), &addr) != 1)
    return "";
  uint32_t mask = a.prefix_len == 0 ? 0 : ~uint32_t{0} << (32 - a.prefix_len);
  in_addr net{htonl(ntohl(addr.s_addr) & mask)};
  char text[INET_ADDRSTRLEN] = {};
  ::inet_ntop(AF_INET, &net, text, sizeof text);
  return std::string(text) + "/" + std::to_string(a.prefix_len);
}

bool immutableFactsDiffer(const NodeProfile& a, const NodeProfile& b) {
  return a.arch != b.arch || a.cpus != b.cpus || a.memory_bytes != b.memory_bytes ||
         a.boot_id != b.boot_id || a.started_at != b.started_at;
}

NodeProfile collectProfile(const ProfileInputs& in, WallTime started_at) {
  NodeProfile p;
  p.name = in.node_name.empty() ? hostName() : in.node_name;
  p.boot_id = parseBootId(readHostFile("/proc/sys/kernel/random/boot_id"));
  p.started_at =
      std::chrono::duration_cast<std::chrono::seconds>(started_at.time_since_epoch()).count();
  p.cpus = cpuCount();
  p.memory_bytes = parseMemTotal(readHostFile("/proc/meminfo"));
  p.storage_free_bytes = freeStorageBytes(in.data_dir);
  struct utsname u {};
  if (::uname(&u) == 0) {
    p.os = lower(u.sysname);
    p.arch = u.machine;
  }
  p.os_release = parseOsPrettyName(readHostFile("/etc/os-release"));
  if (p.os_release.empty()) p.os_release = parseOsPrettyName(readHostFile("/usr/lib/os-release"));
  p.runtime = in.runtime_kind;
  p.power = in.power;
  p.persistent = in.persistent;
  if (in.interfaces.empty()) {
    p.addresses = linkInterfaces();
  } else {
    // Named interfaces are taken as configured, container bridges included: the
    // operator asked for them.
    for (auto& a : linkInterfaces(true))
      if (std::find(in.interfaces.begin(), in.interfaces.end(), a.interface) != in.interfaces.end())
        p.addresses.push_back(std::move(a));
  }
  p.endpoint = in.endpoint;
  p.public_address = in.public_address;
  p.services = in.services;
  std::sort(p.services.begin(), p.services.end());
  p.services.erase(std::unique(p.services.begin(), p.services.end()), p.services.end());
  p.account_id = in.account_id;
  p.has_location = in.has_location;
  p.latitude = in.latitude;
  p.longitude = in.longitude;
  // What the wire form admits (types.cc): a profile peers would refuse is worse than a
  // shortened one.
  if (p.addresses.size() > kMaxProfileAddresses) p.addresses.resize(kMaxProfileAddresses);
  if (p.services.size() > kMaxProfileServices) p.services.resize(kMaxProfileServices);
  return p;
}

int64_t freeStorageBytes(const std::string& dir) {
  struct statvfs st {};
  if (dir.empty() || ::statvfs(dir.c_str(), &st) != 0) return 0;
  return static_cast<int64_t>(st.f_bavail) * static_cast<int64_t>(st.f_frsize);
}

bool storageChangedMuch(int64_t before, int64_t now) {
  int64_t threshold = std::max<int64_t>(int64_t{1} << 30, before / 20);
  return now > before + threshold || now < before - threshold;
}

}  // namespace edge::discovery
