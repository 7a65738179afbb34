#include "runtime-shim/light/cri_log.h"

#include <unistd.h>

#include <gtest/gtest.h>

#include <fstream>

#include "common/fs.h"

namespace edge::runtime::light {
namespace {

using namespace std::chrono_literals;

class CriLogTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char t[] = "/tmp/edge-cri-test-XXXXXX";
    ASSERT_NE(::mkdtemp(t), nullptr);
    dir_ = t;
    path_ = dir_ + "/container.log";
  }
  void TearDown() override { (void)fs::removeAll(dir_); }

  // A writer whose clock advances one second per record.
  CriLogWriter writer(CriLogLimits limits = {}) {
    return CriLogWriter(path_, limits, [this] { return t0_ + std::chrono::seconds(tick_++); });
  }

  std::vector<LogEntry> read(const LogOptions& o, int max_files = 3) {
    std::vector<LogEntry> out;
    Status s = readCriLogs(path_, max_files, o,
                           [&](const LogEntry& e) {
                             out.push_back(e);
                             return true;
                           },
                           {});
    EXPECT_TRUE(s.isOk()) << s.toString();
    return out;
  }

  static std::string join(const std::vector<LogEntry>& es) {
    std::string s;
    for (const auto& e : es) s += e.data;
    return s;
  }

  std::string dir_, path_;
  WallTime t0_ = WallTime(std::chrono::seconds(1'800'000'000));
  int tick_ = 0;
};

TEST_F(CriLogTest, RecordFormatRoundTrips) {
  std::string rec = formatCriRecord(t0_ + 5ns, LogStream::kStderr, false, "hello world");
  EXPECT_EQ(rec, "2027-01-15T08:00:00.000000005Z stderr F hello world\n");
  LogEntry e;
  ASSERT_TRUE(parseCriRecord(std::string_view(rec).substr(0, rec.size() - 1), &e));
  EXPECT_EQ(e.stream, LogStream::kStderr);
  EXPECT_EQ(e.data, "hello world\n");
  EXPECT_EQ(e.time, t0_ + 5ns);
  ASSERT_TRUE(parseCriRecord("2027-01-15T08:00:00Z stdout P part", &e));
  EXPECT_EQ(e.data, "part");
  ASSERT_TRUE(parseCriRecord("2027-01-15T08:00:00Z stdout F ", &e));
  EXPECT_EQ(e.data, "\n");
  for (const char* bad :
       {"", "garbage", "2027-01-15T08:00:00Z stdin F x", "2027-01-15T08:00:00Z stdout X x",
        "notatime stdout F x", "2027-01-15T08:00:00Z stdout"}) {
    EXPECT_FALSE(parseCriRecord(bad, &e)) << bad;
  }
}

TEST_F(CriLogTest, WriterSplitsLinesAndKeepsStreamsApart) {
  auto w = writer(CriLogLimits{.max_line = 4});
  ASSERT_TRUE(w.open().isOk());
  ASSERT_TRUE(w.write(LogStream::kStdout, "ab").isOk());
  ASSERT_TRUE(w.write(LogStream::kStderr, "err\n").isOk());
  ASSERT_TRUE(w.write(LogStream::kStdout, "c\nlonger-line\ntail").isOk());
  ASSERT_TRUE(w.flush(LogStream::kStdout).isOk());
  auto text = fs::readFile(path_);
  ASSERT_TRUE(text.isOk());
  EXPECT_NE(text->find(" stderr F err\n"), std::string::npos);
  EXPECT_NE(text->find(" stdout F abc\n"), std::string::npos);
  EXPECT_NE(text->find(" stdout P long\n"), std::string::npos);
  EXPECT_NE(text->find(" stdout P tail\n"), std::string::npos);

  LogOptions out_only;
  out_only.include_stderr = false;
  EXPECT_EQ(join(read(out_only)), "abc\nlonger-line\ntail");
  LogOptions err_only;
  err_only.include_stdout = false;
  EXPECT_EQ(join(read(err_only)), "err\n");
}

TEST_F(CriLogTest, RotationKeepsAFewFilesAndTheReaderStitchesThem) {
  auto w = writer(CriLogLimits{.max_file_bytes = 200, .max_files = 3});
  ASSERT_TRUE(w.open().isOk());
  std::string expect;
  for (int i = 0; i < 40; ++i) {
    std::string line = "line " + std::to_string(i) + "\n";
    ASSERT_TRUE(w.write(LogStream::kStdout, line).isOk());
    expect += line;
  }
  EXPECT_TRUE(fs::exists(path_ + ".1"));
  EXPECT_TRUE(fs::exists(path_ + ".2"));
  EXPECT_FALSE(fs::exists(path_ + ".3"));
  auto files = criLogFiles(path_, 3);
  ASSERT_EQ(files.size(), 3u);
  EXPECT_EQ(files.back(), path_);
  std::string got = join(read({}));
  // Oldest records fell off; what is left is a contiguous suffix in order.
  EXPECT_FALSE(got.empty());
  EXPECT_EQ(expect.substr(expect.size() - got.size()), got);
  EXPECT_NE(got.find("line 39\n"), std::string::npos);
}

TEST_F(CriLogTest, TailSinceUntilAndGarbage) {
  auto w = writer();
  ASSERT_TRUE(w.open().isOk());
  for (int i = 0; i < 5; ++i) {
    ASSERT_TRUE(w.write(LogStream::kStdout, std::to_string(i) + "\n").isOk());
  }
  std::ofstream(path_, std::ios::app) << "this is not a record\n\n2027 x\n";
  ASSERT_TRUE(w.write(LogStream::kStdout, "5\n").isOk());

  EXPECT_EQ(join(read({})), "0\n1\n2\n3\n4\n5\n");
  LogOptions tail;
  tail.tail = 2;
  EXPECT_EQ(join(read(tail)), "4\n5\n");
  tail.tail = 0;
  EXPECT_EQ(join(read(tail)), "");
  LogOptions window;
  window.since = t0_ + 1s;
  window.until = t0_ + 3s;
  EXPECT_EQ(join(read(window)), "1\n2\n");
  // A sink that stops early.
  int n = 0;
  ASSERT_TRUE(readCriLogs(path_, 3, {}, [&](const LogEntry&) { return ++n < 2; }, {}).isOk());
  EXPECT_EQ(n, 2);
}

TEST_F(CriLogTest, FollowReturnsOnceFinishedAndEverythingIsDelivered) {
  auto w = writer();
  ASSERT_TRUE(w.open().isOk());
  ASSERT_TRUE(w.write(LogStream::kStdout, "first\n").isOk());
  LogOptions o;
  o.follow = true;
  std::string got;
  int calls = 0;
  CriReadControl control;
  control.poll_interval = 10ms;
  // The "container" writes one more line, then finishes, on the reader's first check.
  control.finished = [&] {
    if (++calls == 1) {
      EXPECT_TRUE(w.write(LogStream::kStdout, "second\n").isOk());
      return false;
    }
    return true;
  };
  ASSERT_TRUE(readCriLogs(
                  path_, 3, o,
                  [&](const LogEntry& e) {
                    got += e.data;
                    return true;
                  },
                  control)
                  .isOk());
  EXPECT_EQ(got, "first\nsecond\n");
}

TEST_F(CriLogTest, FollowSurvivesRotation) {
  auto w = writer(CriLogLimits{.max_file_bytes = 120, .max_files = 5});
  ASSERT_TRUE(w.open().isOk());
  LogOptions o;
  o.follow = true;
  std::string got, expect;
  int calls = 0;
  CriReadControl control;
  control.poll_interval = 10ms;
  control.finished = [&] {
    if (calls++ < 5) {
      std::string line = "after " + std::to_string(calls) + "\n";
      expect += line;
      EXPECT_TRUE(w.write(LogStream::kStdout, line).isOk());
      return false;
    }
    return true;
  };
  ASSERT_TRUE(readCriLogs(
                  path_, 5, o,
                  [&](const LogEntry& e) {
                    got += e.data;
                    return true;
                  },
                  control)
                  .isOk());
  EXPECT_EQ(got, expect);
  EXPECT_TRUE(fs::exists(path_ + ".1"));
}

}  // namespace
}  // namespace edge::runtime::light
