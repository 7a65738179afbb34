#include "cli/progress.h"

#include <algorithm>

#include "cli/output.h"

namespace edge::cli {

std::string renderProgress(int64_t done, int64_t total, std::chrono::nanoseconds elapsed) {
  constexpr int kBarWidth = 20;
  std::string out;
  double secs = std::chrono::duration<double>(elapsed).count();
  std::string rate = secs > 0 ? formatBytes(static_cast<int64_t>(done / secs)) + "/s" : "-";
  if (total > 0) {
    int64_t shown = std::min(done, total);
    int filled = static_cast<int>(shown * kBarWidth / total);
    out = "[" + std::string(filled, '#') + std::string(kBarWidth - filled, '-') + "]  " +
          formatBytes(done) + " / " + formatBytes(total) + "   " +
          std::to_string(shown * 100 / total) + "%   " + rate;
  } else {
    out = formatBytes(done) + "   " + rate;
  }
  return out;
}

ProgressMeter::ProgressMeter(int64_t total, ClockPtr clock)
    : total_(total), clock_(std::move(clock)), start_(clock_->now()), last_draw_(start_) {}

std::string ProgressMeter::line() const {
  // Padding wipes what a longer previous line left behind.
  std::string l = renderProgress(done_, total_, clock_->now() - start_);
  if (l.size() < 72) l.append(72 - l.size(), ' ');
  return "\r" + l;
}

std::optional<std::string> ProgressMeter::add(int64_t n) {
  done_ += n;
  SteadyTime now = clock_->now();
  if (drawn_ && now - last_draw_ < std::chrono::milliseconds(100)) return std::nullopt;
  drawn_ = true;
  last_draw_ = now;
  return line();
}

std::string ProgressMeter::finish() const {
  return line() + "\n";
}

}  // namespace edge::cli
