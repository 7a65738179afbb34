// Configuration: embedded defaults, overlaid by a JSON file, overlaid by explicit
// settings (command-line flags). Keys are dotted paths ("runtime.kind"); nested
// objects in the file are flattened to them.
//
// Unknown keys in a file are an error: a typo must not silently fall back to a default.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <string_view>

#include "common/status.h"

namespace edge {

class Config {
 public:
  // `defaults` also declares which keys exist.
  explicit Config(std::map<std::string, std::string> defaults);

  // Merges a JSON object file. Errors name the file and the key.
  Status loadFile(const std::string& path);
  // Sets one key; unknown keys are rejected.
  Status set(const std::string& key, const std::string& value);

  std::string getString(const std::string& key) const;
  Result<int64_t> getInt(const std::string& key) const;
  Result<bool> getBool(const std::string& key) const;
  // Accepts "500ms", "2s", "1m", "1h" or a bare number of seconds.
  Result<std::chrono::milliseconds> getDuration(const std::string& key) const;
  // Accepts "64Mi", "1Gi", "512Ki", "100M" or bytes.
  Result<int64_t> getBytes(const std::string& key) const;

  const std::map<std::string, std::string>& values() const { return values_; }

 private:
  std::map<std::string, std::string> values_;
};

// Parsers shared with manifests and flags; errors say what is allowed.
Result<std::chrono::milliseconds> parseDuration(std::string_view text);
Result<int64_t> parseBytes(std::string_view text);

}  // namespace edge
