// The binary wire of discovery (issue 14): node profiles as compact, versioned tagged
// fields, and session messages / datagram bodies as MessagePack. The format, field by
// field, is in docs/discovery.md ("The binary wire").
//
// Profiles. encodeProfile writes a version byte (kWireProfileVersion) then tagged fields
// (tag varint, length varint, value) in tag order. A decoder keeps the fields it does not
// know (NodeProfile::wire_extensions) and writes them back when it re-encodes, so a later
// release can add a field without breaking this one, and a relayed profile still verifies.
// The encoding is canonical: decodeProfile refuses anything encodeProfile would not have
// written (fields out of order or twice, over-long varints, defaults spelled out), so for
// every input it accepts, encodeProfile(decoded) is the input again, and a signature is
// checked against profileSigningBytesV2(decoded).
//
// Messages. encodeMessage writes a version byte (kWireMessageVersion) then the message as
// MessagePack; an encoded profile travels in it as a binary value (profileToWire).
//
// Thread-safety: pure functions. Errors: decode* return InvalidArgument naming the field,
// what was wrong and what is allowed; nothing here throws, reads past its input, or
// allocates more than its size caps allow, whatever the bytes.
#pragma once

#include <cstddef>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "common/status.h"
#include "discovery/types.h"

namespace edge::discovery {

inline constexpr uint8_t kWireProfileVersion = 1;
inline constexpr uint8_t kWireMessageVersion = 1;
// A profile at every limit of validateProfile encodes to about 95 KiB.
inline constexpr size_t kMaxWireProfile = 128 << 10;
// The most a secure session carries in one message (identity::SecureSession).
inline constexpr size_t kMaxWireMessage = 1 << 20;
// Objects and arrays nested deeper than this are refused before parsing.
inline constexpr int kMaxWireDepth = 8;

// The profile's encoding, signature included when it has one. Text that is not UTF-8 is
// written with U+FFFD in place of each bad byte (a locally configured name), so sender and
// receiver compute the same signing bytes. The endpoint's port is written as a number (a
// leading zero in the text is not kept). Expects a profile that validateProfile accepts;
// what cannot be represented (an endpoint that is not IPv4:port, a non-IPv4 interface
// address) is left out, and the receiver then refuses the profile.
std::string encodeProfile(const NodeProfile& p);
// The bytes a profile's signature covers: encodeProfile without the signature field.
std::string profileSigningBytesV2(const NodeProfile& p);
// Decodes and validates (validateProfile); node_id is derived from the public key.
Result<NodeProfile> decodeProfile(std::string_view bytes);

// The message (a JSON object) as version byte + MessagePack. Text that is not UTF-8 is
// written with U+FFFD for each bad byte, as on the JSON wire. The caller keeps the message
// within kMaxWireMessage and kMaxWireDepth; decodeMessage refuses anything beyond.
std::string encodeMessage(const nlohmann::json& message);
// Refuses: another version, more than kMaxWireMessage bytes, nesting deeper than
// kMaxWireDepth, text that is not UTF-8, anything but one MessagePack map.
Result<nlohmann::json> decodeMessage(std::string_view bytes);

// An encoded profile as a message value (a MessagePack binary).
nlohmann::json profileToWire(const NodeProfile& p);
// The profile in a binary value; an error for any other JSON type.
Result<NodeProfile> profileFromWire(const nlohmann::json& j);

}  // namespace edge::discovery
