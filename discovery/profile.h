// Reading the host for the node profile: resources, OS, the links discovery runs on.
//
// A profile is best effort: a fact that cannot be read is left zero or "" and never
// fails the node. The readers of /proc and /etc text are pure functions over that text
// so they are unit-tested with sample files; collectProfile() and linkInterfaces() read
// the live host.
//
// Thread-safety: free functions, no shared state.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "common/clock.h"
#include "discovery/types.h"

namespace edge::discovery {

struct ProfileInputs {
  std::string node_name;  // "" = the host name
  std::string runtime_kind;
  std::string data_dir;  // free storage is measured here
  std::string power = "mains";
  std::string account_id;
  std::string public_address;
  bool has_location = false;
  double latitude = 0;
  double longitude = 0;
  std::string endpoint;  // "addr:port" peers use; copied as given
  bool persistent = true;
  std::vector<std::string> interfaces;  // empty = every link interface (linkInterfaces())
  std::vector<std::string> services;
};

// Fills every NodeProfile field except node_id, public_key, seq and signature. Services
// come out sorted and without duplicates, so the same set always gives the same profile.
NodeProfile collectProfile(const ProfileInputs& in, WallTime started_at);

// IPv4 interfaces that are up, multicast-capable and not loopback, with their addresses
// and prefix lengths, sorted by name then address (one entry per address). Container
// plumbing (docker*, veth*, br-*, virbr*, cni*, flannel*) is left out unless asked for:
// it links this host to its own containers, not to other hosts. Empty when the host has
// none or getifaddrs fails.
std::vector<InterfaceAddress> linkInterfaces(bool include_container_bridges = false);

// What linkInterfaces() keeps of a raw interface list (the testable half of it).
struct RawInterface {
  std::string name;
  unsigned flags = 0;   // IFF_* of the interface
  std::string address;  // IPv4, dotted
  int prefix_len = 0;
};
std::vector<InterfaceAddress> selectLinkInterfaces(const std::vector<RawInterface>& raw,
                                                   bool include_container_bridges);
// docker0, veth1a2b, br-3f2a..., virbr0, cni0, flannel.1.
bool isContainerPlumbing(std::string_view interface_name);

// The network of an address: "198.18.0.7"/24 -> "198.18.0.0/24"; "" when the address is
// not IPv4 or the prefix is outside 0..32.
std::string networkOf(const InterfaceAddress& a);

// Free space for unprivileged users in the file system of `dir`, bytes; 0 when unknown.
int64_t freeStorageBytes(const std::string& dir);
// Whether free storage moved enough to be re-announced: by 1 GiB or 5 %, whichever is
// more (a profile is not re-announced for every log line written).
bool storageChangedMuch(int64_t before, int64_t now);

// True when facts that cannot change without a reboot or a restart of edged differ
// (arch, cpus, memory, boot id, start time): the blacklist's test for contradictory
// re-announcements.
bool immutableFactsDiffer(const NodeProfile& a, const NodeProfile& b);

// Parsers of host files. Each returns 0 or "" when the text does not hold the fact.
// /proc/meminfo: MemTotal in bytes ("MemTotal:  16303300 kB" -> 16694579200).
int64_t parseMemTotal(std::string_view meminfo);
// /etc/os-release: PRETTY_NAME unquoted and unescaped; NAME when PRETTY_NAME is absent.
std::string parseOsPrettyName(std::string_view os_release);
// /proc/sys/kernel/random/boot_id: the id without surrounding white space.
std::string parseBootId(std::string_view text);

}  // namespace edge::discovery
