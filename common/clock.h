// Clock: the one way Edgecloud code asks for time, so timers, back-off and expiry are
// unit-tested with FakeClock instead of sleeping.
//
// Thread-safety: SystemClock is stateless; FakeClock is internally locked.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>

namespace edge {

using SteadyTime = std::chrono::steady_clock::time_point;
using WallTime = std::chrono::system_clock::time_point;
using Duration = std::chrono::nanoseconds;

class Clock {
 public:
  virtual ~Clock() = default;
  // Monotonic time for timeouts and intervals.
  virtual SteadyTime now() const = 0;
  // Wall-clock time for timestamps shown to people and written to logs.
  virtual WallTime wallNow() const = 0;
  // Blocks the caller for `d` of this clock's time.
  virtual void sleepFor(Duration d) = 0;
};
using ClockPtr = std::shared_ptr<Clock>;

class SystemClock : public Clock {
 public:
  SteadyTime now() const override { return std::chrono::steady_clock::now(); }
  WallTime wallNow() const override { return std::chrono::system_clock::now(); }
  void sleepFor(Duration d) override;
  // A shared instance for code that has no clock injected.
  static ClockPtr instance();
};

// Time moves only when advance() is called; sleepFor() blocks until another thread
// advances past the deadline.
class FakeClock : public Clock {
 public:
  explicit FakeClock(WallTime wall_start = WallTime(std::chrono::seconds(1'800'000'000)));
  SteadyTime now() const override;
  WallTime wallNow() const override;
  void sleepFor(Duration d) override;
  void advance(Duration d);
  // Threads currently inside sleepFor(), so a test can advance only once they wait.
  int sleepers() const;

 private:
  mutable std::mutex mu_;
  std::condition_variable cv_;
  Duration elapsed_{0};
  int sleepers_ = 0;
  WallTime wall_start_;
};

// RFC 3339 with nanoseconds, UTC: "2026-11-27T11:23:13.123456789Z".
std::string formatRfc3339Nano(WallTime t);
// Parses RFC 3339 (fractional seconds and offsets accepted) or Unix seconds with an
// optional fraction ("1700000000.5"). Returns false on malformed input.
bool parseTimestamp(const std::string& text, WallTime* out);

}  // namespace edge
