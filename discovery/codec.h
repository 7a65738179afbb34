// The datagrams of a link: probes and beacons (signed, readable by anyone on the link, so
// a new node can find the cluster) and membership deltas (signed and sealed with the
// cluster's group key, which members receive over their encrypted sessions).
//
//   "ECD1" | type u8 | 0 u8 | body length u16 (big-endian) | body | Ed25519 signature (64)
//
// The signature covers everything before it. Probe and beacon bodies are messages of the
// binary wire (wire.h: a version byte and a MessagePack map) carrying the sender's raw
// Ed25519 public key ("pub", 32 bytes); the sender's id is derived from it, and the key
// must verify the signature, or the datagram is forged. A delta body is the supernode's
// id (16 bytes) | key epoch u32 (big-endian) | a sealed message of the binary wire.
//
// Decoding never throws: every failure is a Status naming what was wrong, which the
// caller counts as malformed or forged and drops.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "common/status.h"

namespace edge::identity {
class NodeIdentity;
}  // namespace edge::identity

namespace edge::discovery {

enum class DatagramType : uint8_t { kProbe = 1, kBeacon = 2, kDelta = 3 };

inline constexpr size_t kMaxDatagram = 1400;  // stays under a 1500-byte MTU with headers
inline constexpr size_t kDatagramHeader = 8;
inline constexpr size_t kSignatureSize = 64;

struct Datagram {
  DatagramType type = DatagramType::kProbe;
  std::string body;
  std::string signed_part;  // header + body, what the signature covers
  std::string signature;
};

// Encodes and signs. Fails when the result would exceed kMaxDatagram.
Result<std::string> encodeDatagram(DatagramType type, std::string_view body,
                                   const identity::NodeIdentity& signer);

// Splits a datagram; checks magic, type, sizes. Does not verify the signature.
Result<Datagram> decodeDatagram(std::string_view bytes);

// For probes and beacons: decodes the body, sets "id" to the id derived from "pub", and
// checks that "pub" verifies the signature. kPermissionDenied = forged; kInvalidArgument =
// malformed.
Result<nlohmann::json> openSignedJson(const Datagram& d);

// openSignedJson in two steps, so a receiver can drop what it would ignore anyway before
// paying for a signature check (with a hundred nodes on a link, most beacons a node hears
// change nothing for it): parseSignedJson checks the form only (a message with a 32-byte
// "pub"; it adds "id"), verifySignedJson the signature (kPermissionDenied when forged).
// Nothing read from a parsed but unverified body may change state.
Result<nlohmann::json> parseSignedJson(const Datagram& d);
Status verifySignedJson(const Datagram& d, const nlohmann::json& body);

// Delta bodies.
std::string encodeDeltaBody(const std::string& sender_id, uint32_t epoch, std::string_view sealed);
struct DeltaBody {
  std::string sender_id;
  uint32_t epoch = 0;
  std::string sealed;
};
Result<DeltaBody> decodeDeltaBody(std::string_view body);

}  // namespace edge::discovery
