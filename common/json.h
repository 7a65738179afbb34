// JSON helpers on nlohmann/json that turn its exceptions into Status values with a
// field path a person can act on ("config.json: .limits.memory: expected a number, got
// a string").
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/status.h"

namespace edge::json {

using Json = nlohmann::json;

// Parses `text`; `what` names the document in the error ("manifest.json").
Result<Json> parse(std::string_view text, std::string_view what);

// Serialises; invalid UTF-8 in strings is replaced rather than thrown.
std::string dump(const Json& j, int indent = -1);

// "string", "number", "object", ... for error messages.
std::string typeName(const Json& j);

// Typed field access. `path` is the JSON path of `obj` used in messages (".config").
// Missing fields give the fallback; present fields of the wrong type are errors.
Result<std::string> getString(const Json& obj, std::string_view key, std::string_view path,
                              std::optional<std::string> fallback = std::nullopt);
Result<int64_t> getInt(const Json& obj, std::string_view key, std::string_view path,
                       std::optional<int64_t> fallback = std::nullopt);
Result<bool> getBool(const Json& obj, std::string_view key, std::string_view path,
                     std::optional<bool> fallback = std::nullopt);
// An array of strings; null or missing gives an empty vector.
Result<std::vector<std::string>> getStringArray(const Json& obj, std::string_view key,
                                                std::string_view path);
// An object of string values; null or missing gives an empty map.
Result<std::map<std::string, std::string>> getStringMap(const Json& obj, std::string_view key,
                                                        std::string_view path);

}  // namespace edge::json
