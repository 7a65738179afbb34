#include "common/config.h"

#include <cmath>

#include "common/fs.h"
#include "common/json.h"

namespace edge {

Config::Config(std::map<std::string, std::string> defaults) : values_(std::move(defaults)) {}

Status Config::set(const std::string& key, const std::string& value) {
  auto it = values_.find(key);
  if (it == values_.end()) {
    std::string known;
    for (const auto& [k, v] : values_) known += (known.empty() ? "" : ", ") + k;
    return Status::invalidArgument("unknown configuration key '" + key + "'; known keys: " + known);
  }
  it->second = value;
  return Status::ok();
}

namespace {
Status flatten(Config* cfg, const json::Json& j, const std::string& prefix,
               const std::string& file) {
  for (auto it = j.begin(); it != j.end(); ++it) {
    std::string key = prefix.empty() ? it.key() : prefix + "." + it.key();
    if (it->is_object()) {
      RETURN_IF_ERROR(flatten(cfg, *it, key, file));
      continue;
    }
    std::string value;
    if (it->is_string()) {
      value = it->get<std::string>();
    } else if (it->is_boolean() || it->is_number()) {
      value = it->dump();
    } else {
      return Status::invalidArgument(file + ": " + key + ": expected a string, number or " +
                                     "boolean, got " + json::typeName(*it));
    }
    RETURN_IF_ERROR(cfg->set(key, value).withContext(file));
  }
  return Status::ok();
}
}  // namespace

Status Config::loadFile(const std::string& path) {
  ASSIGN_OR_RETURN(std::string text, fs::readFile(path, 1 << 20));
  ASSIGN_OR_RETURN(json::Json j, json::parse(text, path));
  if (!j.is_object()) return Status::invalidArgument(path + ": expected a JSON object at the top");
  // Apply to a copy so a bad file changes nothing.
  Config staged = *this;
  RETURN_IF_ERROR(flatten(&staged, j, "", path));
  *this = std::move(staged);
  return Status::ok();
}

std::string Config::getString(const std::string& key) const {
  auto it = values_.find(key);
  return it == values_.end() ? std::string() : it->second;
}

Result<int64_t> Config::getInt(const std::string& key) const {
  std::string v = getString(key);
  try {
    size_t used = 0;
    int64_t n = std::stoll(v, &used);
    if (used == v.size()) return n;
  } catch (...) {
  }
  return Status::invalidArgument("configuration " + key + ": '" + v + "' is not an integer");
}

Result<bool> Config::getBool(const std::string& key) const {
  std::string v = getString(key);
  if (v == "true" || v == "1" || v == "yes") return true;
  if (v == "false" || v == "0" || v == "no") return false;
  return Status::invalidArgument("configuration " + key + ": '" + v +
                                 "' is not a boolean (true/false)");
}

Result<std::chrono::milliseconds> Config::getDuration(const std::string& key) const {
  auto r = parseDuration(getString(key));
  if (!r.isOk()) return r.status().withContext("configuration " + key);
  return r;
}

Result<int64_t> Config::getBytes(const std::string& key) const {
  auto r = parseBytes(getString(key));
  if (!r.isOk()) return r.status().withContext("configuration " + key);
  return r;
}

namespace {
// Splits "12.5Mi" into 12.5 and "Mi". Returns false when there is no leading number.
bool splitNumber(std::string_view text, double* number, std::string_view* unit) {
  size_t i = 0;
  while (i < text.size() && ((text[i] >= '0' && text[i] <= '9') || text[i] == '.')) ++i;
  if (i == 0) return false;
  try {
    size_t used = 0;
    std::string num(text.substr(0, i));
    *number = std::stod(num, &used);
    if (used != num.size()) return false;
  } catch (...) {
    return false;
  }
  *unit = text.substr(i);
  return std::isfinite(*number);
}
}  // namespace

Result<std::chrono::milliseconds> parseDuration(std::string_view text) {
  double n;
  std::string_view unit;
  auto bad = [&] {
    return Status::invalidArgument("'" + std::string(text) +
                                   "' is not a duration; use e.g. 500ms, 2s, 1.5m, 1h");
  };
  if (!splitNumber(text, &n, &unit)) return bad();
  double ms;
  if (unit.empty() || unit == "s") {
    ms = n * 1000;
  } else if (unit == "ms") {
    ms = n;
  } else if (unit == "m") {
    ms = n * 60'000;
  } else if (unit == "h") {
    ms = n * 3'600'000;
  } else {
    return bad();
  }
  if (ms > 1e15) return bad();
  return std::chrono::milliseconds(static_cast<int64_t>(ms));
}

Result<int64_t> parseBytes(std::string_view text) {
  double n;
  std::string_view unit;
  auto bad = [&] {
    return Status::invalidArgument("'" + std::string(text) +
                                   "' is not a quantity of bytes; use e.g. 64Mi, 1Gi, 512Ki, "
                                   "100M or a plain number of bytes");
  };
  if (!splitNumber(text, &n, &unit)) return bad();
  // Upper case: SI (K8s style). Ki/Mi/Gi/Ti: binary. Lower case k/m/g: binary, as
  // `docker run --memory 64m` means.
  static const std::pair<std::string_view, double> kUnits[] = {{"", 1},
                                                               {"b", 1},
                                                               {"K", 1e3},
                                                               {"M", 1e6},
                                                               {"G", 1e9},
                                                               {"T", 1e12},
                                                               {"Ki", 1024.0},
                                                               {"Mi", 1048576.0},
                                                               {"Gi", 1073741824.0},
                                                               {"Ti", 1099511627776.0},
                                                               {"k", 1024.0},
                                                               {"m", 1048576.0},
                                                               {"g", 1073741824.0}};
  for (const auto& [name, mult] : kUnits) {
    if (unit == name) {
      double bytes = n * mult;
      if (bytes > 9.0e18) return bad();
      return static_cast<int64_t>(bytes);
    }
  }
  return bad();
}

}  // namespace edge
