// edged's configuration: embedded defaults, then the config file (YAML,
// /etc/edged/config.yaml by default), then command-line flags.
//
// Unknown keys and bad values are errors naming the key and what is allowed; a missing
// file is fine only when it is the default path (a host with no config runs on the
// embedded defaults).
#pragma once

#include <string>
#include <vector>

#include "common/status.h"
#include "edged/node.h"

namespace edge::edged {

inline constexpr char kDefaultConfigPath[] = "/etc/edged/config.yaml";

struct EdgedConfig {
  NodeConfig node;
  std::string log_level = "info";
};

// Applies the keys of the YAML document `text` over `config`. `source` names the file
// in errors.
Status applyConfigText(const std::string& text, const std::string& source, EdgedConfig* config);

// "eth0, eth1" or "eth0,eth1" -> {"eth0", "eth1"} (list settings and their flags).
std::vector<std::string> splitList(const std::string& text);

// Reads `path` and applies it. A missing file is an error unless `optional`.
Status loadConfigFile(const std::string& path, bool optional, EdgedConfig* config);

}  // namespace edge::edged
