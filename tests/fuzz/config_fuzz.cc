// config_fuzz: edged's config file. It is written by the host's administrator, not by a
// remote party, but a typo or a truncated file must still give an error rather than a
// crash at boot. Checks that a refusal says something and that an accepted file leaves
// a config edged can use (absolute paths, a valid port range, a known runtime).
#include <cstddef>
#include <cstdint>
#include <string>

#include "edged/node_config.h"
#include "tests/fuzz/fuzz_check.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string text(reinterpret_cast<const char*>(data), size);
  edge::edged::EdgedConfig config;
  edge::Status s = edge::edged::applyConfigText(text, "fuzz.yaml", &config);
  if (!s.isOk()) {
    FUZZ_CHECK(s.message().find("fuzz.yaml") != std::string::npos,
               "error does not name the file: " + s.message());
    return 0;
  }
  const auto& n = config.node;
  for (const std::string* p : {&n.data_dir, &n.run_dir, &n.api_socket})
    FUZZ_CHECK(p->empty() || p->front() == '/', "accepted a relative path: " + *p);
  FUZZ_CHECK(n.runtime == "auto" || n.runtime == "docker" || n.runtime == "light",
             "accepted runtime " + n.runtime);
  FUZZ_CHECK(1024 <= n.port_range_first && n.port_range_first <= n.port_range_last &&
                 n.port_range_last <= 65535,
             "accepted port range " + std::to_string(n.port_range_first) + "-" +
                 std::to_string(n.port_range_last));
  return 0;
}
