// manifest_fuzz: service manifests are what users (and anyone who can reach the node
// API) send to a node, so parseManifestsDetailed must survive any bytes. Beyond "no
// crash, leak or hang" it checks the properties the node relies on:
// - a parse that reports no error yields at least one service (an empty file is an error);
// - at most 100 errors plus the "and N more" line;
// - the stored form round-trips: manifestToJson(m) parses back to exactly m, and its own
//   canonical form is the same text (the store compares canonical texts to detect changes).
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "orchestrator/manifest.h"
#include "tests/fuzz/fuzz_check.h"

using edge::orchestrator::ManifestParse;
using edge::orchestrator::manifestToJson;
using edge::orchestrator::parseManifestsDetailed;

namespace {

std::string errorsText(const ManifestParse& p) {
  std::string out;
  for (const auto& e : p.errors) out += e.toString() + "\n";
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  ManifestParse p = parseManifestsDetailed(text, "fuzz");
  FUZZ_CHECK(p.errors.size() <= 101, errorsText(p));
  for (const auto& e : p.errors) FUZZ_CHECK(!e.message.empty(), errorsText(p));
  if (!p.errors.empty()) return 0;
  FUZZ_CHECK(!p.services.empty(), "no error and no service");

  for (const auto& m : p.services) {
    std::string json = manifestToJson(m);
    ManifestParse again = parseManifestsDetailed(json, "fuzz-canonical");
    FUZZ_CHECK(again.errors.empty(),
               "canonical form does not parse:\n" + json + "\n" + errorsText(again));
    FUZZ_CHECK(
        again.services.size() == 1,
        "canonical form holds " + std::to_string(again.services.size()) + " services:\n" + json);
    FUZZ_CHECK(again.services[0] == m, "canonical form parses to another manifest:\n" + json +
                                           "\nwhich gives\n" + manifestToJson(again.services[0]));
    FUZZ_CHECK(manifestToJson(again.services[0]) == json, "canonical form is not stable:\n" + json);
    // Replica indexes are never untrusted, but the spec is built from every field.
    (void)edge::orchestrator::toContainerSpec(m, 0);
  }
  return 0;
}
