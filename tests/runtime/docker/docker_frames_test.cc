#include "runtime-shim/docker/docker_frames.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace edge::runtime::docker {
namespace {

std::string frame(int stream, std::string_view payload) {
  std::string f(8, '\0');
  f[0] = static_cast<char>(stream);
  uint32_t n = static_cast<uint32_t>(payload.size());
  f[4] = static_cast<char>(n >> 24);
  f[5] = static_cast<char>(n >> 16);
  f[6] = static_cast<char>(n >> 8);
  f[7] = static_cast<char>(n);
  return f + std::string(payload);
}

struct Line {
  LogStream stream;
  std::string data;
  bool timed;
  bool operator==(const Line&) const = default;
};
std::ostream& operator<<(std::ostream& os, const Line& l) {
  return os << (l.stream == LogStream::kStderr ? "err:" : "out:") << l.data
            << (l.timed ? "@t" : "");
}

struct Collector {
  std::vector<Line> lines;
  std::vector<LogEntry> entries;
  LogSink sink() {
    return [this](const LogEntry& e) {
      entries.push_back(e);
      lines.push_back({e.stream, e.data, e.time != WallTime{}});
      return true;
    };
  }
};

// Feeds `body` split at the given offsets and returns what came out.
std::vector<Line> decode(const std::string& body, std::vector<size_t> cuts,
                         LogDecoder::Options opts, Status* end = nullptr) {
  LogDecoder d(opts);
  Collector c;
  size_t prev = 0;
  cuts.push_back(body.size());
  for (size_t cut : cuts) {
    Status s = d.feed(std::string_view(body).substr(prev, cut - prev), c.sink());
    EXPECT_TRUE(s.isOk()) << s.toString();
    prev = cut;
  }
  Status s = d.finish(c.sink());
  if (end) *end = s;
  return c.lines;
}

constexpr char kTs1[] = "2026-11-27T11:37:12.078065156Z ";
constexpr char kTs2[] = "2026-11-27T11:37:13.5Z ";

TEST(LogDecoderTest, FramesSplitAtEveryByteOffset) {
  // stdout and stderr interleaved, a frame with several lines, a line split over two
  // frames (the daemon's partial messages, each with its own timestamp).
  std::string body =
      frame(1, std::string(kTs1) + "hello\n") + frame(2, std::string(kTs2) + "oops\n") +
      frame(1, std::string(kTs1) + "a\n" + kTs2 + "b\n") + frame(1, std::string(kTs1) + "part-") +
      frame(2, std::string(kTs2) + "e2\n") + frame(1, std::string(kTs2) + "rest\n");
  std::vector<Line> want = {
      {LogStream::kStdout, "hello\n", true}, {LogStream::kStderr, "oops\n", true},
      {LogStream::kStdout, "a\n", true},     {LogStream::kStdout, "b\n", true},
      {LogStream::kStderr, "e2\n", true},    {LogStream::kStdout, "part-rest\n", true}};
  LogDecoder::Options opts{.framed = true, .timestamps = true};
  for (size_t i = 0; i <= body.size(); ++i) {
    ASSERT_EQ(decode(body, {i}, opts), want) << "split at " << i;
  }
  // And two cuts everywhere in the first frames (a header split three ways).
  for (size_t i = 0; i < 20; ++i) {
    for (size_t j = i; j < 20; ++j) ASSERT_EQ(decode(body, {i, j}, opts), want) << i << "," << j;
  }
}

TEST(LogDecoderTest, ByteByByteKeepsTimestamps) {
  std::string body = frame(1, std::string(kTs1) + "x\n");
  LogDecoder d({.framed = true, .timestamps = true});
  Collector c;
  for (char ch : body) ASSERT_TRUE(d.feed(std::string_view(&ch, 1), c.sink()).isOk());
  ASSERT_TRUE(d.finish(c.sink()).isOk());
  ASSERT_EQ(c.entries.size(), 1u);
  EXPECT_EQ(c.entries[0].data, "x\n");
  WallTime want;
  ASSERT_TRUE(parseTimestamp("2026-11-27T11:37:12.078065156Z", &want));
  EXPECT_EQ(c.entries[0].time, want);
}

TEST(LogDecoderTest, PartialLineAtEndHasNoNewline) {
  std::string body = frame(1, "no newline") + frame(2, "err\n");
  EXPECT_EQ(decode(body, {}, {.framed = true}),
            (std::vector<Line>{{LogStream::kStderr, "err\n", false},
                               {LogStream::kStdout, "no newline", false}}));
}

TEST(LogDecoderTest, EmptyFramesAndStdinStreamAreTolerated) {
  std::string body = frame(1, "") + frame(0, "in\n");
  EXPECT_EQ(decode(body, {}, {.framed = true}),
            (std::vector<Line>{{LogStream::kStdout, "in\n", false}}));
}

TEST(LogDecoderTest, LongLineIsCutAtMaxLine) {
  std::string body = frame(1, std::string(10, 'x') + "\n");
  EXPECT_EQ(decode(body, {}, {.framed = true, .max_line = 4}),
            (std::vector<Line>{{LogStream::kStdout, "xxxxxxxxxx\n", false}}));
  EXPECT_EQ(decode(frame(1, std::string(10, 'x')), {}, {.framed = true, .max_line = 4}),
            (std::vector<Line>{{LogStream::kStdout, "xxxxxxxxxx", false}}));
  EXPECT_EQ(decode(frame(1, "xxxx") + frame(1, "yyyy"), {}, {.framed = true, .max_line = 4}),
            (std::vector<Line>{{LogStream::kStdout, "xxxx", false},
                               {LogStream::kStdout, "yyyy", false}}));
}

TEST(LogDecoderTest, TtyRawBytesAreSplitIntoLines) {
  std::string body = std::string(kTs1) + "one\r\n" + kTs2 + "two\n" + kTs1 + "prompt> ";
  std::vector<Line> want = {{LogStream::kStdout, "one\r\n", true},
                            {LogStream::kStdout, "two\n", true},
                            {LogStream::kStdout, "prompt> ", true}};
  for (size_t i = 0; i <= body.size(); ++i) {
    ASSERT_EQ(decode(body, {i}, {.framed = false, .timestamps = true}), want) << "split at " << i;
  }
  // Bytes that would be a frame header are just text on a Tty.
  EXPECT_EQ(
      decode(std::string("\x01\x00\x00\x00", 4) + "x\n", {}, {.framed = false}),
      (std::vector<Line>{{LogStream::kStdout, std::string("\x01\x00\x00\x00x\n", 6), false}}));
}

TEST(LogDecoderTest, LinesWithoutTimestampKeepTheirText) {
  EXPECT_EQ(decode(frame(1, "not a time\n"), {}, {.framed = true, .timestamps = true}),
            (std::vector<Line>{{LogStream::kStdout, "not a time\n", false}}));
}

TEST(LogDecoderTest, GarbageHeaderIsAClearError) {
  LogDecoder d({.framed = true});
  Collector c;
  Status s = d.feed(frame(1, "ok\n") + "HTTP/1.1 500 oops\r\n", c.sink());
  ASSERT_EQ(s.code(), StatusCode::kInternal);
  EXPECT_NE(s.message().find("bad frame header"), std::string::npos) << s.message();
  EXPECT_NE(s.message().find("at byte 11"), std::string::npos) << s.message();
  EXPECT_EQ(c.lines.size(), 1u);
  // The decoder stays failed rather than resyncing on garbage.
  EXPECT_EQ(d.feed(frame(1, "more\n"), c.sink()).code(), StatusCode::kInternal);
  EXPECT_EQ(d.finish(c.sink()).code(), StatusCode::kInternal);
}

TEST(LogDecoderTest, OversizedFrameIsRejected) {
  LogDecoder d({.framed = true, .max_frame = 1024});
  Collector c;
  std::string header("\x01\x00\x00\x00\x7f\xff\xff\xff", 8);
  EXPECT_EQ(d.feed(header, c.sink()).code(), StatusCode::kInternal);
}

TEST(LogDecoderTest, TruncatedFrameIsReportedAtFinish) {
  Status end;
  std::string body = frame(1, "whole\n") + frame(1, "cut short\n").substr(0, 12);
  EXPECT_EQ(decode(body, {}, {.framed = true}, &end),
            (std::vector<Line>{{LogStream::kStdout, "whole\n", false}}));
  EXPECT_EQ(end.code(), StatusCode::kInternal);
  EXPECT_NE(end.message().find("ended inside a frame"), std::string::npos);

  decode(frame(1, "x\n").substr(0, 3), {}, {.framed = true}, &end);
  EXPECT_EQ(end.code(), StatusCode::kInternal);
}

TEST(LogDecoderTest, SinkReturningFalseStops) {
  LogDecoder d({.framed = true});
  int calls = 0;
  LogSink stop_after_two = [&](const LogEntry&) { return ++calls < 2; };
  ASSERT_TRUE(d.feed(frame(1, "a\nb\nc\n") + frame(1, "d\n"), stop_after_two).isOk());
  EXPECT_TRUE(d.stopped());
  ASSERT_TRUE(d.feed(frame(1, "e\n"), stop_after_two).isOk());
  ASSERT_TRUE(d.finish(stop_after_two).isOk());
  EXPECT_EQ(calls, 2);
}

TEST(SplitTimestampTest, Forms) {
  WallTime t;
  std::string_view rest;
  EXPECT_TRUE(splitTimestamp("2026-11-27T11:37:12.078065156Z hi", &t, &rest));
  EXPECT_EQ(rest, "hi");
  EXPECT_TRUE(splitTimestamp("2026-11-27T11:37:12Z ", &t, &rest));
  EXPECT_EQ(rest, "");
  EXPECT_FALSE(splitTimestamp("hello world", &t, &rest));
  EXPECT_FALSE(splitTimestamp("2026-11-27T11:37:12.0Z", &t, &rest));  // no space
  EXPECT_FALSE(splitTimestamp("", &t, &rest));
}

}  // namespace
}  // namespace edge::runtime::docker
