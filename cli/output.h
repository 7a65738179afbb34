// Output for people and for scripts: aligned tables, ages ("3m", "2h", "5d"), sizes, and
// the same API data as pretty JSON or YAML (`-o table|json|yaml`).
//
// Everything here is pure (time comes in as an argument) and never throws: data from
// the node that has an unexpected shape renders as "-" or "" rather than failing.
// Thread-safety: free functions and value types; a Table is not shared between threads.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "common/clock.h"
#include "common/json.h"
#include "common/status.h"

namespace edge::cli {

using json::Json;

enum class OutputFormat { kTable, kJson, kYaml };

// "table", "json", "yaml"; anything else is kInvalidArgument naming what is allowed.
Result<OutputFormat> parseOutputFormat(std::string_view text);

// Rows of cells under a header; columns are padded to their widest cell (counted in
// characters, not bytes) and separated by three spaces, kubectl-style. Headers are
// upper-cased. The last column is not padded, so lines carry no trailing spaces.
class Table {
 public:
  explicit Table(std::vector<std::string> headers);
  // Missing cells render empty; extra cells are ignored.
  void addRow(std::vector<std::string> cells);
  size_t rows() const { return rows_.size(); }
  // With `header` false only the rows are printed (for `-q`-like listings).
  std::string render(bool header = true) const;

 private:
  std::vector<std::string> headers_;
  std::vector<std::vector<std::string>> rows_;
};

// A duration as people read it in listings: "45s", "3m", "2h", "5d", "3y" (whole units,
// rounded down). Negative durations (clock skew between node and client) are "0s".
std::string formatAge(std::chrono::nanoseconds d);
// The age of an RFC 3339 timestamp at `now`; "-" when the text is empty or not a time.
std::string formatAgeSince(std::string_view rfc3339, WallTime now);
// 1536 -> "1.5KiB", 0 -> "0B".
std::string formatBytes(int64_t bytes);

// The value of `key` in `obj` as display text: strings as they are, numbers and bools as
// JSON writes them, absent/null as `fallback`. Objects and arrays are compact JSON.
std::string field(const Json& obj, std::string_view key, std::string_view fallback = "");
// The integer at `key`, or `fallback` when it is absent or not an integer.
int64_t intField(const Json& obj, std::string_view key, int64_t fallback = 0);
// The member at a dotted path ("manifest.spec.image"), or a null Json when any part is
// missing or not an object.
const Json& at(const Json& obj, std::string_view dotted_path);

// `j` as YAML: maps in block style, keys in the order the JSON holds them (sorted),
// strings quoted whenever YAML would otherwise read them as another type ("true",
// "123", "null", "") so the YAML carries the same data as the JSON.
std::string toYaml(const Json& j);

// The document in the chosen machine format: pretty JSON (2-space indent) or YAML, with
// a trailing newline. kTable is not a document format: the caller renders tables.
std::string renderDocument(const Json& j, OutputFormat format);

}  // namespace edge::cli
