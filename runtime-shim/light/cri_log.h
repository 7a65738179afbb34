// Container logs in the CRI format, one record per line:
//   2026-11-27T11:23:13.123456789Z stdout F hello
// F ends a line; P marks a piece of a longer line (split at max_line bytes, or the
// unterminated tail of the stream). The writer rotates `path` to `path.1`, `path.2`, ...
// at a size limit; the reader stitches rotated files back in order.
//
// Thread-safety: a CriLogWriter is used by one thread (the shim). Readers are independent.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

#include "common/clock.h"
#include "common/fs.h"
#include "common/status.h"
#include "runtime-shim/runtime.h"

namespace edge::runtime::light {

struct CriLogLimits {
  int64_t max_file_bytes = 10 << 20;  // rotate when the current file would exceed this
  int max_files = 3;                  // current + rotated ones kept
  size_t max_line = 16 << 10;         // longer lines are split into P records
};

// Formats one record (without rotation); exposed for tests.
std::string formatCriRecord(WallTime t, LogStream stream, bool partial, std::string_view data);
// Parses one record line (without its '\n'); false for garbage.
bool parseCriRecord(std::string_view line, LogEntry* out);

class CriLogWriter {
 public:
  CriLogWriter(std::string path, CriLogLimits limits, std::function<WallTime()> now);
  Status open();
  // Appends stream data; complete lines become F records, over-long ones P records.
  Status write(LogStream stream, std::string_view data);
  // Emits any buffered unterminated line of `stream` as a P record (at EOF).
  Status flush(LogStream stream);

 private:
  Status emit(LogStream stream, bool partial, std::string_view data);
  Status rotate();

  std::string path_;
  CriLogLimits limits_;
  std::function<WallTime()> now_;
  fs::UniqueFd fd_;
  int64_t size_ = 0;
  std::string pending_[3];  // indexed by LogStream
};

// Paths of the log files, oldest first, that exist now.
std::vector<std::string> criLogFiles(const std::string& path, int max_files);

struct CriReadControl {
  // Follow mode: true once no more records can appear (the container has exited).
  std::function<bool()> finished;
  // Upper bound on a single wait for new data in follow mode (re-checks `finished`).
  Duration poll_interval = std::chrono::milliseconds(200);
};

// Reads the logs at `path` (and its rotations) applying `options`; see LogOptions.
Status readCriLogs(const std::string& path, int max_files, const LogOptions& options,
                   const LogSink& sink, const CriReadControl& control);

}  // namespace edge::runtime::light
