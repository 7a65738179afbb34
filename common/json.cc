#include "common/json.h"

#include <cmath>
#include <limits>

namespace edge::json {
namespace {

std::string fieldPath(std::string_view path, std::string_view key) {
  std::string p(path);
  p += '.';
  p += key;
  return p;
}

Status wrongType(std::string_view path, std::string_view key, std::string_view want,
                 const Json& got) {
  return Status::invalidArgument(fieldPath(path, key) + ": expected " + std::string(want) +
                                 ", got " + typeName(got));
}

const Json* find(const Json& obj, std::string_view key) {
  if (!obj.is_object()) return nullptr;
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return nullptr;
  return &*it;
}

}  // namespace

Result<Json> parse(std::string_view text, std::string_view what) {
  try {
    return Json::parse(text.begin(), text.end());
  } catch (const Json::parse_error& e) {
    return Status::invalidArgument(std::string(what) + " is not valid JSON: " + e.what());
  } catch (const Json::exception& e) {
    // Not only syntax: a number beyond double's range is out_of_range (found by fuzzing).
    return Status::invalidArgument(std::string(what) + " is not usable JSON: " + e.what());
  }
}

std::string dump(const Json& j, int indent) {
  return j.dump(indent, ' ', false, Json::error_handler_t::replace);
}

std::string typeName(const Json& j) {
  return j.type_name();
}

Result<std::string> getString(const Json& obj, std::string_view key, std::string_view path,
                              std::optional<std::string> fallback) {
  const Json* v = find(obj, key);
  if (!v) {
    if (fallback) return *fallback;
    return Status::invalidArgument(fieldPath(path, key) + ": required string is missing");
  }
  if (!v->is_string()) return wrongType(path, key, "a string", *v);
  return v->get<std::string>();
}

Result<int64_t> getInt(const Json& obj, std::string_view key, std::string_view path,
                       std::optional<int64_t> fallback) {
  const Json* v = find(obj, key);
  if (!v) {
    if (fallback) return *fallback;
    return Status::invalidArgument(fieldPath(path, key) + ": required number is missing");
  }
  auto outOfRange = [&] {
    return Status::invalidArgument(fieldPath(path, key) + ": " + v->dump() +
                                   " is out of range; allowed: integers from " +
                                   std::to_string(std::numeric_limits<int64_t>::min()) + " to " +
                                   std::to_string(std::numeric_limits<int64_t>::max()));
  };
  if (v->is_number_unsigned()) {
    // Above INT64_MAX, get<int64_t>() would wrap to a negative number.
    if (v->get<uint64_t>() > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))
      return outOfRange();
    return v->get<int64_t>();
  }
  if (v->is_number_integer()) return v->get<int64_t>();
  if (v->is_number_float()) {
    double d = v->get<double>();
    // Converting a double outside int64_t's range (or a NaN) is undefined behaviour, so the
    // range is checked first. -2^63 is exact as a double and 2^63 is the first double above
    // INT64_MAX; the negated form also refuses NaN.
    constexpr double kLow = -9223372036854775808.0;
    constexpr double kHigh = 9223372036854775808.0;
    if (!(d >= kLow && d < kHigh)) return outOfRange();
    if (std::trunc(d) != d)
      return Status::invalidArgument(fieldPath(path, key) + ": expected an integer, got " +
                                     v->dump());
    return static_cast<int64_t>(d);
  }
  return wrongType(path, key, "an integer", *v);
}

Result<bool> getBool(const Json& obj, std::string_view key, std::string_view path,
                     std::optional<bool> fallback) {
  const Json* v = find(obj, key);
  if (!v) {
    if (fallback) return *fallback;
    return Status::invalidArgument(fieldPath(path, key) + ": required boolean is missing");
  }
  if (!v->is_boolean()) return wrongType(path, key, "a boolean", *v);
  return v->get<bool>();
}

Result<std::vector<std::string>> getStringArray(const Json& obj, std::string_view key,
                                                std::string_view path) {
  std::vector<std::string> out;
  const Json* v = find(obj, key);
  if (!v) return out;
  if (!v->is_array()) return wrongType(path, key, "an array of strings", *v);
  for (size_t i = 0; i < v->size(); ++i) {
    const Json& e = (*v)[i];
    if (!e.is_string()) {
      return Status::invalidArgument(fieldPath(path, key) + "[" + std::to_string(i) +
                                     "]: expected a string, got " + typeName(e));
    }
    out.push_back(e.get<std::string>());
  }
  return out;
}

Result<std::map<std::string, std::string>> getStringMap(const Json& obj, std::string_view key,
                                                        std::string_view path) {
  std::map<std::string, std::string> out;
  const Json* v = find(obj, key);
  if (!v) return out;
  if (!v->is_object()) return wrongType(path, key, "an object of strings", *v);
  for (auto it = v->begin(); it != v->end(); ++it) {
    if (!it->is_string()) {
      return Status::invalidArgument(fieldPath(path, key) + "." + it.key() +
                                     ": expected a string, got " + typeName(*it));
    }
    out[it.key()] = it->get<std::string>();
  }
  return out;
}

}  // namespace edge::json
