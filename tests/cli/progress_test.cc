#include "cli/progress.h"

#include <gtest/gtest.h>

namespace edge::cli {
namespace {

using namespace std::chrono_literals;

TEST(ProgressTest, BarBytesPercentAndRate) {
  EXPECT_EQ(renderProgress(10 << 20, 20 << 20, 2s),
            "[##########----------]  10.0MiB / 20.0MiB   50%   5.0MiB/s");
  EXPECT_EQ(renderProgress(20 << 20, 20 << 20, 4s),
            "[####################]  20.0MiB / 20.0MiB   100%   5.0MiB/s");
  EXPECT_EQ(renderProgress(0, 1000, 0s), "[--------------------]  0B / 1000B   0%   -");
  // Unknown size (stdin): no bar, no percentage.
  EXPECT_EQ(renderProgress(3 << 20, 0, 1s), "3.0MiB   3.0MiB/s");
}

TEST(ProgressTest, RedrawsAtMostEveryTenthOfASecond) {
  auto clock = std::make_shared<FakeClock>();
  ProgressMeter m(1000, clock);
  auto first = m.add(100);
  ASSERT_TRUE(first.has_value());
  EXPECT_EQ(first->front(), '\r');
  EXPECT_NE(first->find("100B / 1000B   10%"), std::string::npos);
  clock->advance(50ms);
  EXPECT_FALSE(m.add(100).has_value());
  clock->advance(50ms);
  auto third = m.add(100);
  ASSERT_TRUE(third.has_value());
  EXPECT_NE(third->find("300B / 1000B   30%"), std::string::npos);
  std::string last = m.finish();
  EXPECT_EQ(last.back(), '\n');
  EXPECT_NE(last.find("300B / 1000B"), std::string::npos);
}

}  // namespace
}  // namespace edge::cli
