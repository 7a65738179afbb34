// The upload progress line `edgectl images load` draws on a terminal's stderr:
//   [##########----------]  10.0MiB / 20.0MiB   50%   8.0MiB/s
// Redrawn in place ("\r") at most every 100 ms of the injected clock, so a fast upload
// does not spend its time writing to the terminal.
//
// Thread-safety: one ProgressMeter per upload, used by one thread.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "common/clock.h"

namespace edge::cli {

// One line for `done` of `total` bytes (total <= 0: unknown, no bar or percentage)
// after `elapsed`. Pure, for tests.
std::string renderProgress(int64_t done, int64_t total, std::chrono::nanoseconds elapsed);

class ProgressMeter {
 public:
  ProgressMeter(int64_t total, ClockPtr clock);
  // Counts `n` more bytes; returns the text to write when the line is due for a redraw.
  std::optional<std::string> add(int64_t n);
  // The final state of the line and a newline.
  std::string finish() const;

 private:
  std::string line() const;

  int64_t total_;
  int64_t done_ = 0;
  ClockPtr clock_;
  SteadyTime start_;
  SteadyTime last_draw_;
  bool drawn_ = false;
};

}  // namespace edge::cli
