#include "discovery/codec.h"

#include "common/json.h"
#include "discovery/wire.h"
#include "identity/identity.h"

namespace edge::discovery {
namespace {

constexpr char kMagic[] = "ECD1";
constexpr size_t kIdSize = 16;
constexpr size_t kPublicKeySize = 32;

}  // namespace

Result<std::string> encodeDatagram(DatagramType type, std::string_view body,
                                   const identity::NodeIdentity& signer) {
  size_t total = kDatagramHeader + body.size() + kSignatureSize;
  if (total > kMaxDatagram)
    return Status::invalidArgument("datagram of " + std::to_string(total) +
                                   " bytes exceeds the limit of " + std::to_string(kMaxDatagram));
  std::string out;
  out.reserve(total);
  out.append(kMagic, 4);
  out.push_back(static_cast<char>(type));
  out.push_back(0);
  out.push_back(static_cast<char>((body.size() >> 8) & 0xff));
  out.push_back(static_cast<char>(body.size() & 0xff));
  out.append(body);
  out.append(signer.sign(out));
  return out;
}

Result<Datagram> decodeDatagram(std::string_view bytes) {
  if (bytes.size() < kDatagramHeader + kSignatureSize)
    return Status::invalidArgument("datagram of " + std::to_string(bytes.size()) +
                                   " bytes is shorter than a header and a signature");
  if (bytes.size() > kMaxDatagram)
    return Status::invalidArgument("datagram of " + std::to_string(bytes.size()) +
                                   " bytes exceeds the limit of " + std::to_string(kMaxDatagram));
  if (bytes.substr(0, 4) != std::string_view(kMagic, 4))
    return Status::invalidArgument("not an edgecloud datagram (bad magic)");
  auto type = static_cast<uint8_t>(bytes[4]);
  if (type < 1 || type > 3)
    return Status::invalidArgument("unknown datagram type " + std::to_string(type));
  if (bytes[5] != 0) return Status::invalidArgument("reserved byte is not zero");
  size_t len = (static_cast<uint8_t>(bytes[6]) << 8) | static_cast<uint8_t>(bytes[7]);
  if (kDatagramHeader + len + kSignatureSize != bytes.size())
    return Status::invalidArgument("body length " + std::to_string(len) +
                                   " does not match the datagram size " +
                                   std::to_string(bytes.size()));
  Datagram d;
  d.type = static_cast<DatagramType>(type);
  d.body = std::string(bytes.substr(kDatagramHeader, len));
  d.signed_part = std::string(bytes.substr(0, kDatagramHeader + len));
  d.signature = std::string(bytes.substr(kDatagramHeader + len));
  return d;
}

namespace {

std::string publicKeyOf(const nlohmann::json& body) {
  auto pub = body.find("pub");
  if (pub == body.end() || !pub->is_binary() || pub->get_binary().size() != kPublicKeySize)
    return {};
  const auto& b = pub->get_binary();
  return std::string(b.begin(), b.end());
}

}  // namespace

Result<nlohmann::json> parseSignedJson(const Datagram& d) {
  auto j = decodeMessage(d.body);
  if (!j.isOk()) return Status::invalidArgument("body: " + j.status().message());
  std::string pub = publicKeyOf(*j);
  if (pub.empty())
    return Status::invalidArgument("\"pub\" must be a binary of " + std::to_string(kPublicKeySize) +
                                   " bytes");
  (*j)["id"] = identity::nodeIdFromPublicKey(pub);  // the sender is who holds the key
  return std::move(*j);
}

Status verifySignedJson(const Datagram& d, const nlohmann::json& body) {
  std::string pub = body.is_object() ? publicKeyOf(body) : std::string();
  if (pub.empty())
    return Status::invalidArgument("body without \"pub\" (not from parseSignedJson)");
  if (!identity::verifySignature(pub, d.signed_part, d.signature))
    return Status::permissionDenied("signature of " + identity::nodeIdFromPublicKey(pub) +
                                    " does not verify");
  return Status::ok();
}

Result<nlohmann::json> openSignedJson(const Datagram& d) {
  auto j = parseSignedJson(d);
  if (!j.isOk()) return j.status();
  RETURN_IF_ERROR(verifySignedJson(d, *j));
  return std::move(*j);
}

std::string encodeDeltaBody(const std::string& sender_id, uint32_t epoch, std::string_view sealed) {
  std::string out = sender_id.substr(0, kIdSize);
  out.resize(kIdSize, '0');
  for (int shift = 24; shift >= 0; shift -= 8)
    out.push_back(static_cast<char>((epoch >> shift) & 0xff));
  out.append(sealed);
  return out;
}

Result<DeltaBody> decodeDeltaBody(std::string_view body) {
  if (body.size() < kIdSize + 4 + 28)
    return Status::invalidArgument("delta body of " + std::to_string(body.size()) +
                                   " bytes is too short");
  DeltaBody d;
  d.sender_id = std::string(body.substr(0, kIdSize));
  if (!identity::isNodeId(d.sender_id))
    return Status::invalidArgument("delta sender is not a node id");
  for (size_t i = 0; i < 4; ++i) d.epoch = (d.epoch << 8) | static_cast<uint8_t>(body[kIdSize + i]);
  d.sealed = std::string(body.substr(kIdSize + 4));
  return d;
}

}  // namespace edge::discovery
