// Structured logging: one line per event, key=value fields, levels.
//
//   LOG_INFO("container started").kv("id", id).kv("pid", pid);
//
// prints `ts=2026-11-27T11:23:13.123Z level=info msg="container started" id=ab12 pid=42`
// to the configured sink (stderr by default) when the statement ends. Values with
// spaces, quotes or '=' are quoted. Records below the global level are not formatted.
//
// Thread-safety: all functions are thread-safe; each line is written with one write().
#pragma once

#include <cstdint>
#include <functional>
#include <sstream>
#include <string>
#include <string_view>

namespace edge::log {

enum class Level { kDebug = 0, kInfo = 1, kWarn = 2, kError = 3, kOff = 4 };

void setLevel(Level level);
Level level();
// Parses "debug" | "info" | "warn" | "error" | "off".
bool parseLevel(std::string_view text, Level* out);

// Replaces the sink (tests capture lines with it). nullptr restores stderr.
void setSink(std::function<void(std::string_view line)> sink);

class Record {
 public:
  Record(Level level, std::string_view msg);
  ~Record();
  Record(const Record&) = delete;
  Record& operator=(const Record&) = delete;

  Record& kv(std::string_view key, std::string_view value);
  Record& kv(std::string_view key, const char* value) { return kv(key, std::string_view(value)); }
  Record& kv(std::string_view key, const std::string& value) {
    return kv(key, std::string_view(value));
  }
  Record& kv(std::string_view key, bool value) { return kv(key, value ? "true" : "false"); }
  template <typename T>
  Record& kv(std::string_view key, T value) requires std::is_arithmetic_v<T> {
    if (enabled_) kv(key, std::string_view(std::to_string(value)));
    return *this;
  }

 private:
  bool enabled_;
  std::string line_;
};

// Quotes a value for key=value output when needed.
std::string quote(std::string_view value);

}  // namespace edge::log

#define LOG_DEBUG(msg) ::edge::log::Record(::edge::log::Level::kDebug, (msg))
#define LOG_INFO(msg) ::edge::log::Record(::edge::log::Level::kInfo, (msg))
#define LOG_WARN(msg) ::edge::log::Record(::edge::log::Level::kWarn, (msg))
#define LOG_ERROR(msg) ::edge::log::Record(::edge::log::Level::kError, (msg))
