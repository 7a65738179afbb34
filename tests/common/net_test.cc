#include "common/net.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <string>
#include <thread>

#include "common/fs.h"

namespace edge::net {
namespace {

using ::testing::HasSubstr;
using namespace std::chrono_literals;
using Steady = std::chrono::steady_clock;

class WriteAllTest : public ::testing::Test {
 protected:
  void SetUp() override {
    int sv[2];
    ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    a_.reset(sv[0]);
    b_.reset(sv[1]);
    // A small send buffer, so a few hundred KiB fill it.
    int size = 16 * 1024;
    ::setsockopt(a_.get(), SOL_SOCKET, SO_SNDBUF, &size, sizeof size);
  }

  fs::UniqueFd a_, b_;
  const std::string big_ = std::string(4 << 20, 'x');
};

TEST_F(WriteAllTest, WritesEverythingToAReaderThatKeepsUp) {
  std::string got;
  std::thread reader([&] {
    char buf[64 * 1024];
    while (got.size() < big_.size()) {
      ssize_t n = ::read(b_.get(), buf, sizeof buf);
      if (n <= 0) break;
      got.append(buf, static_cast<size_t>(n));
    }
  });
  Status s = writeAll(a_.get(), big_, {.idle = 10s});
  reader.join();
  EXPECT_TRUE(s.isOk()) << s.toString();
  EXPECT_EQ(got.size(), big_.size());
}

TEST_F(WriteAllTest, AReaderThatStopsReadingTimesOutAfterTheIdleLimit) {
  auto start = Steady::now();
  Status s = writeAll(a_.get(), big_, {.idle = 50ms});
  EXPECT_EQ(s.code(), StatusCode::kDeadlineExceeded) << s.toString();
  EXPECT_THAT(s.message(), HasSubstr("the peer did not read for 50 ms"));
  EXPECT_GE(Steady::now() - start, 50ms);
}

TEST_F(WriteAllTest, TheDeadlineBoundsTheWholeWrite) {
  Status s = writeAll(a_.get(), big_, {.deadline = Steady::now() + 50ms});
  EXPECT_EQ(s.code(), StatusCode::kDeadlineExceeded) << s.toString();
  EXPECT_THAT(s.message(), HasSubstr("the peer did not read in time"));
}

TEST_F(WriteAllTest, AReadableStopFdCancels) {
  int stop[2];
  ASSERT_EQ(::pipe(stop), 0);
  fs::UniqueFd r(stop[0]), w(stop[1]);
  ASSERT_EQ(::write(w.get(), "x", 1), 1);
  Status s = writeAll(a_.get(), big_, {.idle = 10s, .stop_fd = r.get()});
  EXPECT_EQ(s.code(), StatusCode::kCancelled) << s.toString();
}

TEST_F(WriteAllTest, AClosedPeerIsUnavailableWithoutSigpipe) {
  b_.reset();
  Status s = writeAll(a_.get(), "hello", {.idle = 1s});
  EXPECT_EQ(s.code(), StatusCode::kUnavailable) << s.toString();
  EXPECT_THAT(s.message(), HasSubstr("write failed: "));
}

}  // namespace
}  // namespace edge::net
