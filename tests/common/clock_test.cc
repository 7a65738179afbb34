#include "common/clock.h"

#include <gtest/gtest.h>

#include <thread>

namespace edge {
namespace {

TEST(ClockTest, FakeClockSleepsUntilAdvanced) {
  FakeClock clock;
  SteadyTime start = clock.now();
  std::thread sleeper([&] { clock.sleepFor(std::chrono::seconds(5)); });
  while (clock.sleepers() == 0) std::this_thread::yield();
  clock.advance(std::chrono::seconds(2));
  clock.advance(std::chrono::seconds(3));
  sleeper.join();
  EXPECT_EQ(clock.now() - start, std::chrono::seconds(5));
}

TEST(ClockTest, Rfc3339RoundTrip) {
  WallTime t(std::chrono::seconds(1'700'000'000) + std::chrono::microseconds(123456));
  std::string s = formatRfc3339Nano(t);
  EXPECT_EQ(s, "2023-11-14T22:13:20.123456000Z");
  WallTime back;
  ASSERT_TRUE(parseTimestamp(s, &back));
  EXPECT_EQ(back, t);
}

TEST(ClockTest, ParsesUnixSecondsAndOffsets) {
  WallTime t;
  ASSERT_TRUE(parseTimestamp("1700000000.5", &t));
  EXPECT_EQ(std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count(),
            1'700'000'000'500);
  ASSERT_TRUE(parseTimestamp("2023-11-14T23:13:20+01:00", &t));
  EXPECT_EQ(std::chrono::duration_cast<std::chrono::seconds>(t.time_since_epoch()).count(),
            1'700'000'000);
  EXPECT_FALSE(parseTimestamp("yesterday", &t));
  EXPECT_FALSE(parseTimestamp("2023-13-14T23:13:20Z", &t));
  EXPECT_FALSE(parseTimestamp("2023-11-14T23:13:20", &t));
  EXPECT_FALSE(parseTimestamp("1.2.3", &t));
}

}  // namespace
}  // namespace edge
