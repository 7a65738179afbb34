// LogDecoder: turns the body of `GET /containers/{id}/logs` into one LogEntry per line.
//
// Without a TTY the daemon multiplexes stdout and stderr into frames: an 8-byte header
// [stream, 0, 0, 0, payload size as big-endian uint32] then the payload. With
// Config.Tty=true it sends the raw terminal bytes, no frames. Either way the body
// arrives in HTTP chunks that need not line up with frames or lines, so the decoder
// keeps state between feed() calls.
//
// Lines: a frame may hold several lines, and a line may span frames (the daemon splits
// lines longer than 16 KiB into "partial" messages). Each stream has its own line buffer;
// an entry is emitted when its '\n' arrives, when the buffer passes `max_line` bytes, or
// at finish() (then without a '\n').
//
// Timestamps: with `timestamps` set (the request said timestamps=1) each line starts
// with an RFC 3339 time and a space; it is parsed into LogEntry::time and removed. A
// frame continuing a partial line carries its own timestamp, which is dropped.
//
// Thread-safety: none; one decoder per response.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "common/status.h"
#include "runtime-shim/runtime.h"

namespace edge::runtime::docker {

class LogDecoder {
 public:
  struct Options {
    bool framed = true;  // false for Tty=true containers
    bool timestamps = false;
    size_t max_line = 64 * 1024;
    size_t max_frame = 16 * 1024 * 1024;  // a bigger header means the stream is garbage
  };

  explicit LogDecoder(Options options);

  // Decodes the next piece of the body, calling `sink` for each finished entry.
  // Returns kInternal on a malformed frame header (the stream is unusable afterwards).
  // After `sink` returns false, stopped() is true and further data is ignored.
  Status feed(std::string_view data, const LogSink& sink);

  // The body ended: emits partial lines still buffered. kInternal when the body ended
  // inside a frame (the daemon went away mid-frame).
  Status finish(const LogSink& sink);

  bool stopped() const { return stopped_; }
  uint64_t bytesSeen() const { return offset_; }

 private:
  Status feedFramed(std::string_view data, const LogSink& sink);
  // Appends to the line buffer of `stream` and emits what is complete.
  void append(int stream, std::string_view data, bool continues_message, const LogSink& sink);
  void emitLines(int stream, const LogSink& sink);
  void emit(int stream, std::string line, const LogSink& sink);

  Options options_;
  bool stopped_ = false;
  Status error_;
  uint64_t offset_ = 0;  // bytes of body consumed, for error messages

  // Frame state.
  std::array<unsigned char, 8> header_{};
  size_t header_len_ = 0;
  bool in_payload_ = false;
  int frame_stream_ = 1;
  size_t payload_left_ = 0;
  std::string payload_;

  // Line buffers, indexed by stream (1 = stdout, 2 = stderr).
  std::array<std::string, 3> lines_;
};

// Splits "2026-11-27T11:37:12.078065156Z hi\n" into the time and the rest. Returns
// false (and leaves the inputs alone) when `line` does not start with a timestamp.
bool splitTimestamp(std::string_view line, WallTime* time, std::string_view* rest);

}  // namespace edge::runtime::docker
