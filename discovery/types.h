// The data of discovery: node profiles, cluster members, the blacklist, and the
// snapshot the node API and `edgectl` show. Plain values; no locking.
//
// JSON forms (types.cc) are the API form of profiles and snapshots; the field names are
// part of the contract (docs/api.md, docs/discovery.md). On the wire, profiles travel in
// the binary form of wire.h. validateProfile holds the checks both forms share.
#pragma once

#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "common/status.h"

namespace edge::discovery {

// Role names, as shown by the API and carried on the wire.
inline constexpr char kRoleSupernode[] = "supernode";
inline constexpr char kRoleProxy[] = "proxy";
inline constexpr char kRoleCache[] = "cache";

struct InterfaceAddress {
  std::string interface;  // "eth0"
  std::string address;    // "198.18.0.2"
  int prefix_len = 0;     // 24
};

// What a node says about itself, signed with its key. Only facts that change rarely are
// in it (start time rather than uptime), so a profile is re-announced when something
// changes, never periodically.
struct NodeProfile {
  std::string node_id;     // derived from public_key (identity.h)
  std::string public_key;  // raw Ed25519 public key, 32 bytes (hex in JSON)
  std::string name;        // the node's name (host name unless configured)
  int64_t seq = 0;         // increases with every change the node announces
  std::string boot_id;     // the kernel's boot id: same boot => immutable facts stay
  int64_t started_at = 0;  // edged start, unix seconds; uptime = now - started_at
  int cpus = 0;
  int64_t memory_bytes = 0;        // total
  int64_t storage_free_bytes = 0;  // free space under the data dir
  std::string os;                  // "linux"
  std::string os_release;          // "Debian GNU/Linux 12 (bookworm)"
  std::string arch;                // "x86_64"
  std::string runtime;             // "docker" | "light"
  std::string power = "mains";     // "mains" | "battery" (configured)
  bool persistent = true;          // always-on host (configured)
  std::vector<InterfaceAddress> addresses;
  std::string endpoint;        // "198.18.0.2:8083": where peers reach this node over TCP
  std::string public_address;  // configured, "" = unknown
  std::vector<std::string> services;
  std::string account_id;  // "" = none configured
  // Where the node is (configured; proximity queries of the global discovery use it).
  bool has_location = false;
  double latitude = 0;   // -90..90
  double longitude = 0;  // -180..180
  // What cluster-wide placement (issue 15) schedules on: configured labels and the share
  // of the host a node offers to workloads.
  std::map<std::string, std::string> labels;  // <= 64; key [a-zA-Z0-9._/-]{1,63}, value <= 253
  int64_t allocatable_cpu_millis = 0;         // 0 = unknown
  int64_t allocatable_memory_bytes = 0;       // 0 = unknown
  // Tagged fields of a later release that this one does not know (discovery/wire.h), raw
  // and in tag order: kept so the profile re-encodes to exactly the bytes its signature
  // covers, and reaches newer peers whole when a supernode relays it. Empty for profiles
  // that came as JSON.
  std::string wire_extensions;
  // Ed25519 over profileSigningBytesV2 (wire.h); 64 bytes raw.
  std::string signature;
};

// labels, allocatable_cpu_millis and allocatable_memory_bytes appear only when set, so a
// profile that does not use them has the same JSON (and signing bytes) as before they
// existed.
nlohmann::json profileToJson(const NodeProfile& p);
// Validates every field (types, ranges, sizes); errors name the field.
Result<NodeProfile> profileFromJson(const nlohmann::json& j);
// The checks every decoded profile passes, whatever its encoding (JSON here, binary in
// wire.h): sizes, ranges, formats and printable text, in field order; the first failure is
// returned as InvalidArgument "profile.<field>: <what was wrong and what is allowed>".
// node_id is not checked (the JSON form checks its syntax; the binary form derives it).
Status validateProfile(const NodeProfile& p);
// The canonical JSON without "signature": what profiles were signed over before the
// binary wire (nodes now sign profileSigningBytesV2, wire.h); kept for its tests of the
// JSON form's canonical order.
std::string profileSigningBytes(const NodeProfile& p);

// A member as the cluster knows it.
struct Member {
  NodeProfile profile;
  std::vector<std::string> roles;  // kRole* names
  int score = 0;                   // merit (election.h), at the last membership change
  int64_t joined_at = 0;           // unix seconds, as the supernode saw it
};

struct BlacklistEntry {
  std::string node_id;
  std::string address;  // where it was seen
  std::string reason;   // what it claimed and what was observed
  int64_t since = 0;    // unix seconds
  int64_t until = 0;
};

// Counters of one link's traffic (the benchmark and /metrics read them).
struct LinkCounters {
  int64_t packets_sent = 0;
  int64_t packets_received = 0;
  int64_t bytes_sent = 0;
  int64_t bytes_received = 0;
  int64_t messages_sent = 0;  // TCP frames
  int64_t messages_received = 0;
  int64_t dropped_malformed = 0;  // not parseable / wrong size / wrong version
  int64_t dropped_forged = 0;     // signature or id that does not verify
  int64_t dropped_blacklisted = 0;
};

// One cluster this node belongs to: one per interface (a host on two networks is a
// member of two clusters).
struct ClusterView {
  std::string interface;
  std::string cluster_id;  // "198.18.0.0/24", "+@<public address>" when known
  std::string state;       // "probing" | "member" | "supernode" | "electing"
  std::string supernode_id;
  int64_t version = 0;  // membership version, increases with every change
  int64_t supernode_since = 0;
  std::vector<Member> members;  // including this node
  std::vector<BlacklistEntry> blacklist;
  LinkCounters counters;
};

struct ClusterSnapshot {
  std::string node_id;
  std::string node_name;
  bool enabled = false;  // discovery off => no clusters
  std::vector<ClusterView> clusters;
};

// The API form (docs/api.md); `now_unix` (default: time(nullptr)) gives members' uptime.
nlohmann::json snapshotToJson(const ClusterSnapshot& s);
nlohmann::json snapshotToJson(const ClusterSnapshot& s, int64_t now_unix);
nlohmann::json memberToJson(const Member& m, int64_t now_unix);

// GET /api/v1/nodes: the members of this node's clusters within a scope, one entry per
// node (memberToJson plus "clusters": the ids of the clusters it was seen in).
struct NodesQuery {
  std::string scope = "network";  // "network" | "account"
  std::string interface;          // "" = every cluster
  std::string account;            // scope=account; "" = this node's own account id
};
// kInvalidArgument for an unknown scope (naming the allowed ones) or an account scope
// without an account id; kNotFound for an interface this node has no cluster on.
Result<nlohmann::json> nodesToJson(const ClusterSnapshot& s, const NodesQuery& q, int64_t now_unix);

}  // namespace edge::discovery
