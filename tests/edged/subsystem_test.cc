// The order Node starts and stops its subsystems in (edged/subsystem.h): start in order,
// leave() then stop() each last-started first, a failed start undone with the error named.
#include "edged/subsystem.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace edge::edged {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;

class SubsystemsTest : public ::testing::Test {
 protected:
  // A subsystem that records each call; `fail` makes its start() fail.
  void add(const std::string& name, bool fail = false) {
    subsystems_.add(makeSubsystem({.name = name,
                                   .start =
                                       [this, name, fail] {
                                         calls_.push_back("start " + name);
                                         return fail ? Status::unavailable("address in use")
                                                     : Status::ok();
                                       },
                                   .leave = [this, name] { calls_.push_back("leave " + name); },
                                   .stop = [this, name] { calls_.push_back("stop " + name); }}));
  }

  Subsystems subsystems_;
  std::vector<std::string> calls_;
};

TEST_F(SubsystemsTest, StartInOrderLeaveThenStopEachLastStartedFirst) {
  add("discovery");
  add("api");
  add("gateway");
  ASSERT_TRUE(subsystems_.start().isOk());
  EXPECT_THAT(calls_, ElementsAre("start discovery", "start api", "start gateway"));
  calls_.clear();
  subsystems_.stop();
  EXPECT_THAT(calls_, ElementsAre("leave gateway", "leave api", "leave discovery", "stop gateway",
                                  "stop api", "stop discovery"));
  calls_.clear();
  subsystems_.stop();  // the node's destructor stops again
  EXPECT_THAT(calls_, IsEmpty());
}

TEST_F(SubsystemsTest, AFailedStartStopsItAndWhatStartedBeforeAndSaysWhichFailed) {
  add("discovery");
  add("api");
  add("gateway", /*fail=*/true);
  add("cluster port");
  Status st = subsystems_.start();
  EXPECT_EQ(st.code(), StatusCode::kUnavailable);
  EXPECT_EQ(st.message(), "gateway: address in use");
  // The failed one is stopped too (it may have started part of itself); the one after it
  // is never touched.
  EXPECT_THAT(calls_, ElementsAre("start discovery", "start api", "start gateway", "leave gateway",
                                  "leave api", "leave discovery", "stop gateway", "stop api",
                                  "stop discovery"));
  calls_.clear();
  subsystems_.stop();
  EXPECT_THAT(calls_, IsEmpty());
}

TEST_F(SubsystemsTest, StartsAgainAfterAStop) {
  add("api");
  ASSERT_TRUE(subsystems_.start().isOk());
  subsystems_.stop();
  calls_.clear();
  ASSERT_TRUE(subsystems_.start().isOk());
  subsystems_.stop();
  EXPECT_THAT(calls_, ElementsAre("start api", "leave api", "stop api"));
}

TEST_F(SubsystemsTest, UnsetHooksDoNothing) {
  subsystems_.add(makeSubsystem({.name = "nothing"}));
  add("api");
  EXPECT_EQ(subsystems_.size(), 2u);
  ASSERT_TRUE(subsystems_.start().isOk());
  subsystems_.stop();
  EXPECT_THAT(calls_, ElementsAre("start api", "leave api", "stop api"));
}

}  // namespace
}  // namespace edge::edged
