#include "runtime-shim/docker/docker_frames.h"

#include <cstdio>
#include <utility>

namespace edge::runtime::docker {

bool splitTimestamp(std::string_view line, WallTime* time, std::string_view* rest) {
  // RFC 3339 with nanoseconds is at most ~35 bytes; look no further for the space.
  size_t space = line.substr(0, 40).find(' ');
  if (space == std::string_view::npos || space < 20) return false;
  WallTime t;
  if (!parseTimestamp(std::string(line.substr(0, space)), &t)) return false;
  *time = t;
  *rest = line.substr(space + 1);
  return true;
}

LogDecoder::LogDecoder(Options options) : options_(options) {}

Status LogDecoder::feed(std::string_view data, const LogSink& sink) {
  if (!error_.isOk()) return error_;
  if (stopped_) return Status::ok();
  if (!options_.framed) {
    offset_ += data.size();
    append(1, data, false, sink);
    return Status::ok();
  }
  error_ = feedFramed(data, sink);
  return error_;
}

Status LogDecoder::feedFramed(std::string_view data, const LogSink& sink) {
  while (!data.empty() && !stopped_) {
    if (!in_payload_) {
      size_t take = std::min(data.size(), header_.size() - header_len_);
      for (size_t i = 0; i < take; ++i)
        header_[header_len_ + i] = static_cast<unsigned char>(data[i]);
      header_len_ += take;
      data.remove_prefix(take);
      offset_ += take;
      if (header_len_ < header_.size()) return Status::ok();
      uint32_t size = (uint32_t{header_[4]} << 24) | (uint32_t{header_[5]} << 16) |
                      (uint32_t{header_[6]} << 8) | uint32_t{header_[7]};
      if (header_[0] > 2 || header_[1] != 0 || header_[2] != 0 || header_[3] != 0 ||
          size > options_.max_frame) {
        char hex[64];
        std::snprintf(hex, sizeof hex, "%02x %02x %02x %02x %02x %02x %02x %02x", header_[0],
                      header_[1], header_[2], header_[3], header_[4], header_[5], header_[6],
                      header_[7]);
        return Status::internal(
            "docker log stream is malformed: bad frame header [" + std::string(hex) + "] at byte " +
            std::to_string(offset_ - header_.size()) + " (expected [stream 0-2, 0, 0, 0, size < " +
            std::to_string(options_.max_frame) +
            " big-endian]); is the container's Tty setting what the daemon reports?");
      }
      header_len_ = 0;
      frame_stream_ = header_[0] == 2 ? 2 : 1;  // 0 (stdin) only appears on attach
      payload_left_ = size;
      payload_.clear();
      in_payload_ = true;
    }
    size_t take = std::min(data.size(), payload_left_);
    payload_.append(data.substr(0, take));
    data.remove_prefix(take);
    offset_ += take;
    payload_left_ -= take;
    if (payload_left_ == 0) {
      in_payload_ = false;
      bool continues = !lines_[frame_stream_].empty();
      append(frame_stream_, payload_, continues, sink);
    }
  }
  return Status::ok();
}

void LogDecoder::append(int stream, std::string_view data, bool continues_message,
                        const LogSink& sink) {
  if (continues_message && options_.timestamps) {
    WallTime ignored;
    std::string_view rest;
    if (splitTimestamp(data, &ignored, &rest)) data = rest;
  }
  lines_[stream].append(data);
  emitLines(stream, sink);
}

void LogDecoder::emitLines(int stream, const LogSink& sink) {
  std::string& buf = lines_[stream];
  size_t start = 0;
  while (!stopped_) {
    size_t nl = buf.find('\n', start);
    if (nl == std::string::npos) break;
    emit(stream, buf.substr(start, nl + 1 - start), sink);
    start = nl + 1;
  }
  buf.erase(0, start);
  if (!stopped_ && buf.size() >= options_.max_line) {
    emit(stream, std::move(buf), sink);
    buf.clear();
  }
  if (stopped_) buf.clear();
}

void LogDecoder::emit(int stream, std::string line, const LogSink& sink) {
  if (stopped_) return;
  LogEntry entry;
  entry.stream = stream == 2 ? LogStream::kStderr : LogStream::kStdout;
  std::string_view rest;
  if (options_.timestamps && splitTimestamp(line, &entry.time, &rest)) {
    entry.data = std::string(rest);
  } else {
    entry.data = std::move(line);
  }
  if (!sink(entry)) stopped_ = true;
}

Status LogDecoder::finish(const LogSink& sink) {
  if (!error_.isOk()) return error_;
  for (int stream : {1, 2}) {
    if (!lines_[stream].empty()) {
      emit(stream, std::move(lines_[stream]), sink);
      lines_[stream].clear();
    }
  }
  if (stopped_) return Status::ok();
  if (header_len_ != 0 || in_payload_) {
    error_ = Status::internal("docker log stream ended inside a frame at byte " +
                              std::to_string(offset_) + " (the daemon went away mid-frame?)");
    return error_;
  }
  return Status::ok();
}

}  // namespace edge::runtime::docker
