// discovery_wire_fuzz: the binary wire of discovery (discovery/wire.h), what any peer
// can send once the agent reads it. The first byte picks the door:
//   even: the rest is an encoded profile (decodeProfile);
//   odd:  the rest is a message (decodeMessage), and every binary value in it is read as
//         a profile (profileFromWire), as the agent reads members' profiles.
// Properties: nothing crashes or throws; a refusal says why; a profile that decodes is
// valid, has the node id of its key and re-encodes to exactly its input (the encoding is
// canonical, so a signature can be checked against the re-encoded signing bytes); a
// message that decodes is a map, dumps as JSON (its text is UTF-8) and re-encodes to a
// fixed point.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "discovery/types.h"
#include "discovery/wire.h"
#include "identity/identity.h"
#include "tests/fuzz/fuzz_check.h"

namespace {

using namespace edge;
using namespace edge::discovery;

std::string hexOf(std::string_view bytes) {
  return identity::toHex(bytes.substr(0, 512));
}

void checkProfile(std::string_view bytes) {
  auto p = decodeProfile(bytes);
  if (!p.isOk()) {
    FUZZ_CHECK(p.status().code() == StatusCode::kInvalidArgument && !p.status().message().empty(),
               "a refusal without a reason: " + p.status().toString());
    return;
  }
  Status valid = validateProfile(*p);
  FUZZ_CHECK(valid.isOk(), "decoded but invalid: " + valid.toString());
  FUZZ_CHECK(p->node_id == identity::nodeIdFromPublicKey(p->public_key),
             "node_id is not the public key's: " + p->node_id);
  std::string again = encodeProfile(*p);
  FUZZ_CHECK(again == bytes,
             "not canonical: input " + hexOf(bytes) + " re-encodes as " + hexOf(again));
  std::string signing = profileSigningBytesV2(*p);
  FUZZ_CHECK(signing.size() + (p->signature.empty() ? 0 : 66) == again.size(),
             "signing bytes are not the encoding without the signature field");
  // The JSON form (the API's) of anything accepted here must be accepted there too.
  auto j = profileFromJson(profileToJson(*p));
  FUZZ_CHECK(j.isOk(), "decoded from the wire but refused as JSON: " + j.status().toString());
}

// Every binary value, at any depth (at most kMaxWireDepth: decodeMessage checked it).
void checkBinaries(const nlohmann::json& j) {
  if (j.is_binary()) {
    const auto& b = j.get_binary();
    std::string_view bytes(reinterpret_cast<const char*>(b.data()), b.size());
    auto p = profileFromWire(j);
    if (!b.has_subtype()) {
      checkProfile(bytes);
    } else {
      FUZZ_CHECK(!p.isOk(), "a binary with a subtype was read as a profile");
    }
    return;
  }
  if (j.is_structured())
    for (const auto& e : j) checkBinaries(e);
}

void checkMessage(std::string_view bytes) {
  auto m = decodeMessage(bytes);
  if (!m.isOk()) {
    FUZZ_CHECK(m.status().code() == StatusCode::kInvalidArgument && !m.status().message().empty(),
               "a refusal without a reason: " + m.status().toString());
    return;
  }
  FUZZ_CHECK(m->is_object(), std::string("decoded a ") + m->type_name() + ", not a map");
  std::string text;
  try {
    text = m->dump();
  } catch (const nlohmann::json::exception& e) {
    FUZZ_CHECK(false, std::string("a decoded message does not dump as JSON: ") + e.what());
  }
  std::string once = encodeMessage(*m);
  auto back = decodeMessage(once);
  FUZZ_CHECK(back.isOk(), "a re-encoded message is refused: " + back.status().toString());
  FUZZ_CHECK(encodeMessage(*back) == once, "re-encoding is not a fixed point: " + hexOf(once));
  checkBinaries(*m);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  std::string_view rest(reinterpret_cast<const char*>(data) + 1, size - 1);
  if (data[0] % 2 == 0)
    checkProfile(rest);
  else
    checkMessage(rest);
  return 0;
}
