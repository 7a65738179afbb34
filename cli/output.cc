#include "cli/output.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <cstdlib>

namespace edge::cli {

Result<OutputFormat> parseOutputFormat(std::string_view text) {
  if (text == "table") return OutputFormat::kTable;
  if (text == "json") return OutputFormat::kJson;
  if (text == "yaml") return OutputFormat::kYaml;
  return Status::invalidArgument("output format '" + std::string(text) +
                                 "' is not known; use table, json or yaml");
}

namespace {

// Characters as a terminal shows them: UTF-8 continuation bytes take no column.
size_t displayWidth(std::string_view s) {
  size_t n = 0;
  for (unsigned char c : s) {
    if ((c & 0xC0) != 0x80) ++n;
  }
  return n;
}

std::string upper(std::string s) {
  for (char& c : s) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return s;
}

}  // namespace

Table::Table(std::vector<std::string> headers) {
  for (auto& h : headers) headers_.push_back(upper(std::move(h)));
}

void Table::addRow(std::vector<std::string> cells) {
  cells.resize(headers_.size());
  // A cell with a line break would tear the table apart; keep it on one line.
  for (auto& c : cells) std::replace(c.begin(), c.end(), '\n', ' ');
  rows_.push_back(std::move(cells));
}

std::string Table::render(bool header) const {
  std::vector<size_t> width(headers_.size(), 0);
  if (header) {
    for (size_t i = 0; i < headers_.size(); ++i) width[i] = displayWidth(headers_[i]);
  }
  for (const auto& r : rows_) {
    for (size_t i = 0; i < r.size(); ++i) width[i] = std::max(width[i], displayWidth(r[i]));
  }
  std::string out;
  auto line = [&](const std::vector<std::string>& cells) {
    std::string l;
    for (size_t i = 0; i < cells.size(); ++i) {
      l += cells[i];
      if (i + 1 < cells.size()) l.append(width[i] - displayWidth(cells[i]) + 3, ' ');
    }
    while (!l.empty() && l.back() == ' ') l.pop_back();
    out += l + "\n";
  };
  if (header) line(headers_);
  for (const auto& r : rows_) line(r);
  return out;
}

std::string formatAge(std::chrono::nanoseconds d) {
  int64_t s = std::chrono::duration_cast<std::chrono::seconds>(d).count();
  if (s < 0) s = 0;
  if (s < 60) return std::to_string(s) + "s";
  if (s < 3600) return std::to_string(s / 60) + "m";
  if (s < 86400) return std::to_string(s / 3600) + "h";
  if (s < 365 * 86400) return std::to_string(s / 86400) + "d";
  return std::to_string(s / (365 * 86400)) + "y";
}

std::string formatAgeSince(std::string_view rfc3339, WallTime now) {
  WallTime t;
  if (rfc3339.empty() || !parseTimestamp(std::string(rfc3339), &t)) return "-";
  return formatAge(now - t);
}

std::string formatBytes(int64_t bytes) {
  static const char* kUnits[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  if (bytes < 0) bytes = 0;
  double v = static_cast<double>(bytes);
  int u = 0;
  while (v >= 1024 && u < 4) {
    v /= 1024;
    ++u;
  }
  char buf[32];
  std::snprintf(buf, sizeof buf, u == 0 ? "%.0f%s" : "%.1f%s", v, kUnits[u]);
  return buf;
}

std::string field(const Json& obj, std::string_view key, std::string_view fallback) {
  if (!obj.is_object()) return std::string(fallback);
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return std::string(fallback);
  if (it->is_string()) return it->get<std::string>();
  return json::dump(*it);
}

int64_t intField(const Json& obj, std::string_view key, int64_t fallback) {
  if (!obj.is_object()) return fallback;
  auto it = obj.find(key);
  if (it == obj.end() || !it->is_number_integer()) return fallback;
  return it->get<int64_t>();
}

const Json& at(const Json& obj, std::string_view dotted_path) {
  static const Json kNull;
  const Json* cur = &obj;
  while (!dotted_path.empty()) {
    size_t dot = dotted_path.find('.');
    std::string_view key = dotted_path.substr(0, dot);
    if (!cur->is_object()) return kNull;
    auto it = cur->find(key);
    if (it == cur->end()) return kNull;
    cur = &*it;
    dotted_path = dot == std::string_view::npos ? std::string_view() : dotted_path.substr(dot + 1);
  }
  return *cur;
}

namespace {

// Plain scalars YAML 1.1/1.2 readers would take for something other than a string.
bool readsAsNonString(const std::string& s) {
  if (s.empty()) return true;
  std::string l;
  for (char c : s) l += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  static const char* kWords[] = {"true", "false", "yes", "no",   "on",    "off", "y",
                                 "n",    "null",  "~",   ".inf", "-.inf", ".nan"};
  for (const char* w : kWords) {
    if (l == w) return true;
  }
  // Anything that starts like a number (ints, floats, 0x.., 1e3, 1_000, +1, .5) is quoted:
  // cheaper to over-quote than to turn a version "1.10" into a float.
  char c = s[0];
  if (c == '+' || c == '-' || c == '.') c = s.size() > 1 ? s[1] : 'x';
  return std::isdigit(static_cast<unsigned char>(c)) != 0;
}

void emit(YAML::Emitter& e, const Json& j) {
  switch (j.type()) {
    case Json::value_t::object:
      if (j.empty()) {
        e << YAML::Flow << YAML::BeginMap << YAML::EndMap;
        return;
      }
      e << YAML::BeginMap;
      for (auto it = j.begin(); it != j.end(); ++it) {
        e << YAML::Key;
        if (readsAsNonString(it.key())) {
          e << YAML::DoubleQuoted << it.key();
        } else {
          e << it.key();
        }
        e << YAML::Value;
        emit(e, it.value());
      }
      e << YAML::EndMap;
      return;
    case Json::value_t::array:
      if (j.empty()) {
        e << YAML::Flow << YAML::BeginSeq << YAML::EndSeq;
        return;
      }
      e << YAML::BeginSeq;
      for (const auto& v : j) emit(e, v);
      e << YAML::EndSeq;
      return;
    case Json::value_t::string: {
      const auto& s = j.get_ref<const std::string&>();
      if (readsAsNonString(s)) {
        e << YAML::DoubleQuoted << s;
      } else {
        e << s;
      }
      return;
    }
    case Json::value_t::boolean:
      e << (j.get<bool>() ? "true" : "false");
      return;
    case Json::value_t::number_integer:
      e << j.get<int64_t>();
      return;
    case Json::value_t::number_unsigned:
      e << j.get<uint64_t>();
      return;
    case Json::value_t::number_float:
      // JSON's own spelling of the number, so YAML and JSON agree digit for digit.
      e << json::dump(j);
      return;
    default:
      e << YAML::Null;
      return;
  }
}

}  // namespace

std::string toYaml(const Json& j) {
  YAML::Emitter e;
  e.SetIndent(2);
  emit(e, j);
  std::string out = e.c_str();
  if (out.empty() || out.back() != '\n') out += '\n';
  return out;
}

std::string renderDocument(const Json& j, OutputFormat format) {
  if (format == OutputFormat::kYaml) return toYaml(j);
  return json::dump(j, 2) + "\n";
}

}  // namespace edge::cli
