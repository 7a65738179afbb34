// The replication protocol's messages (cluster/replication.h): their encoding, and the
// checks every decoded field goes through. Internal to cluster/replication.cc.
//
// Messages (inside SecureSession, so already authenticated and bounded to 1 MiB):
//   byte 0     version (kVersion)
//   byte 1     type (MsgType)
//   kState:    u64 transfer id, u32 part index, u32 part count (big-endian), then at
//              most kStatePartBytes of the state's JSON; parts come in order, one
//              transfer at a time per direction, count * kStatePartBytes <= kMaxStateBytes.
//   others:    a JSON object (nesting <= kMaxDepth), fields checked per type:
//              hello {digest: 64 hex, max_hlc: stamp}, ack {digest}, ask {},
//              request {id: 1.., kind: [a-z0-9._-]{1,64}, body: any},
//              reply {id, ok: bool, body | code: StatusCode, message: text <= 4096}, ping {}.
//
// Thread-safety: pure functions on values.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "cluster/cluster_state.h"
#include "common/status.h"

namespace edge::cluster::replication_wire {

inline constexpr unsigned char kPortByte = 0x01;  // net::PortClass::kClusterState
inline constexpr unsigned char kVersion = 1;
inline constexpr int kMaxDepth = 64;
inline constexpr size_t kMaxMessageText = 4096;
// version, type, transfer id, part index, part count
inline constexpr size_t kStateHeader = 2 + 8 + 4 + 4;

enum MsgType : unsigned char {
  kHello = 1,
  kState = 2,
  kAck = 3,
  kAsk = 4,
  kRequest = 5,
  kReply = 6,
  kPing = 7,
};

// A control message: version, type, the body's JSON.
std::string control(MsgType t, const nlohmann::json& body);
// `n` big-endian bytes of `b` at `off` (the caller checked the size).
uint64_t getBig(std::string_view b, size_t off, size_t n);

// A state encoded once, sealed per connection part by part.
struct Encoded {
  std::string digest;
  std::vector<std::string> parts;  // whole messages
};
using EncodedPtr = std::shared_ptr<const Encoded>;
// kResourceExhausted over kMaxStateBytes.
Result<EncodedPtr> encodeState(const ClusterState& state, uint64_t transfer);

// JSON nested at most kMaxDepth deep (checked before nlohmann's recursive parser sees
// it); kInvalidArgument naming `what` otherwise.
Result<nlohmann::json> parseJson(std::string_view text, std::string_view what);
bool isDigest(const nlohmann::json& j);  // 64 lower-case hex
bool isKind(std::string_view s);         // [a-z0-9._-]{1,64}
// Every stamp a copy holds, replaced ones included.
std::set<Hlc> stampsOf(const ClusterState& s);
// A reply's body: {id, ok, body} or {id, ok: false, code, message <= kMaxMessageText}.
nlohmann::json statusJson(uint64_t id, const Result<nlohmann::json>& r);

}  // namespace edge::cluster::replication_wire
