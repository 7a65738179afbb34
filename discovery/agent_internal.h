// LinkAgent's internals, shared by its source files; the public face is agent.h, and
// nothing outside discovery/agent*.cc includes this header.
//
// LinkAgent is one class whose methods live in four files, along the roles it plays:
//  - agent.cc            construction, lifecycle (start, updateProfile, leave, tick), the
//                        helpers every role uses, and view()
//  - agent_datagrams.cc  the multicast side: probes, beacons (with replay protection and
//                        the cluster key's proof) and sealed group deltas
//  - agent_member.cc     a member: probing, joining, election of the successor, the
//                        supernode's session, welcome and deltas
//  - agent_supernode.cc  the supernode: taking over and handing over, registration with
//                        its endpoint check, members' expiry, blacklist and refusals, roles,
//                        publishing deltas
//
// Thread-safety: as LinkAgent (one thread drives it); the helpers here are pure.
#pragma once

#include <nlohmann/json.hpp>

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "discovery/types.h"

namespace edge::discovery::agent_internal {

using nlohmann::json;

// Peers' messages are untrusted: these read a field of the expected type or give a
// fallback, never throw.
inline std::string str(const json& j, const char* key) {
  if (!j.is_object()) return {};
  auto it = j.find(key);
  if (it == j.end() || !it->is_string()) return {};
  return it->get<std::string>();
}

inline int64_t num(const json& j, const char* key, int64_t fallback = 0) {
  if (!j.is_object()) return fallback;
  auto it = j.find(key);
  if (it == j.end() || !it->is_number_integer()) return fallback;
  return it->get<int64_t>();
}

inline const json& arr(const json& j, const char* key) {
  static const json kEmpty = json::array();
  if (!j.is_object()) return kEmpty;
  auto it = j.find(key);
  if (it == j.end() || !it->is_array()) return kEmpty;
  return *it;
}

// Raw bytes as a MessagePack binary value, and back ("" when the field is not one).
inline json binaryValue(std::string_view bytes) {
  return json::binary(std::vector<uint8_t>(bytes.begin(), bytes.end()));
}

inline std::string bytesOf(const json& j, const char* key) {
  if (!j.is_object()) return {};
  auto it = j.find(key);
  if (it == j.end() || !it->is_binary()) return {};
  const auto& b = it->get_binary();
  return std::string(b.begin(), b.end());
}

inline constexpr size_t kMaxEarlyDeltas = 32;
// A prober that heard a better-ranked one defers its claim this long, at most this often.
inline constexpr std::chrono::milliseconds kClaimDeferral{300};
inline constexpr int kMaxClaimDeferrals = 3;
// Background checks of members' endpoints: at most this many at once, and an endpoint that
// times out this many times (1, 2, 4 s apart) is taken for one nobody serves.
inline constexpr int kMaxChecksInFlight = 4;
// Membership changes that follow a delta within kDeltaBurst are gathered for
// kDeltaCoalesce and go out as one.
inline constexpr std::chrono::milliseconds kDeltaBurst{20};
inline constexpr std::chrono::milliseconds kDeltaCoalesce{50};
inline constexpr int kMaxCheckAttempts = 4;
inline constexpr size_t kMaxSendersTracked = 4096;

inline std::string shortId(const std::string& id) {
  return id.substr(0, 8);
}

inline json blacklistEntryJson(const BlacklistEntry& b) {
  return json{{"node_id", b.node_id},
              {"address", b.address},
              {"reason", b.reason},
              {"since", b.since},
              {"until", b.until}};
}

inline BlacklistEntry blacklistEntryFromJson(const json& e) {
  return BlacklistEntry{.node_id = str(e, "node_id"),
                        .address = str(e, "address"),
                        .reason = str(e, "reason"),
                        .since = num(e, "since"),
                        .until = num(e, "until")};
}

inline std::vector<std::string> stringList(const json& j) {
  std::vector<std::string> out;
  if (!j.is_array()) return out;
  for (const auto& v : j)
    if (v.is_string()) out.push_back(v.get<std::string>());
  return out;
}

}  // namespace edge::discovery::agent_internal
