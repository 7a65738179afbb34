#include "common/clock.h"

#include <cstdio>
#include <ctime>
#include <thread>

namespace edge {

void SystemClock::sleepFor(Duration d) {
  std::this_thread::sleep_for(d);
}

ClockPtr SystemClock::instance() {
  static ClockPtr clock = std::make_shared<SystemClock>();
  return clock;
}

FakeClock::FakeClock(WallTime wall_start) : wall_start_(wall_start) {}

SteadyTime FakeClock::now() const {
  std::lock_guard<std::mutex> lock(mu_);
  return SteadyTime(std::chrono::duration_cast<SteadyTime::duration>(elapsed_));
}

WallTime FakeClock::wallNow() const {
  std::lock_guard<std::mutex> lock(mu_);
  return wall_start_ + std::chrono::duration_cast<WallTime::duration>(elapsed_);
}

void FakeClock::sleepFor(Duration d) {
  std::unique_lock<std::mutex> lock(mu_);
  Duration deadline = elapsed_ + d;
  ++sleepers_;
  cv_.wait(lock, [&] { return elapsed_ >= deadline; });
  --sleepers_;
}

int FakeClock::sleepers() const {
  std::lock_guard<std::mutex> lock(mu_);
  return sleepers_;
}

void FakeClock::advance(Duration d) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    elapsed_ += d;
  }
  cv_.notify_all();
}

std::string formatRfc3339Nano(WallTime t) {
  auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
  std::time_t secs = static_cast<std::time_t>(ns / 1'000'000'000);
  long frac = static_cast<long>(ns % 1'000'000'000);
  if (frac < 0) {
    frac += 1'000'000'000;
    secs -= 1;
  }
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[96];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%09ldZ", tm.tm_year + 1900,
                tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, frac);
  return buf;
}

bool parseTimestamp(const std::string& text, WallTime* out) {
  if (text.empty()) return false;
  // Unix seconds, optionally with a fraction (what `docker logs --since` sends).
  bool numeric = true;
  for (char c : text) numeric = numeric && ((c >= '0' && c <= '9') || c == '.');
  if (numeric) {
    size_t dot = text.find('.');
    std::string whole = text.substr(0, dot);
    if (whole.empty() || whole.size() > 12) return false;
    long long secs = std::stoll(whole);
    long long nanos = 0;
    if (dot != std::string::npos) {
      std::string frac = text.substr(dot + 1);
      if (frac.find('.') != std::string::npos || frac.size() > 9) return false;
      frac.resize(9, '0');
      nanos = std::stoll(frac);
    }
    *out = WallTime(std::chrono::duration_cast<WallTime::duration>(
        std::chrono::seconds(secs) + std::chrono::nanoseconds(nanos)));
    return true;
  }
  int y, mo, d, h, mi, s;
  int consumed = 0;
  if (std::sscanf(text.c_str(), "%4d-%2d-%2dT%2d:%2d:%2d%n", &y, &mo, &d, &h, &mi, &s, &consumed) !=
          6 ||
      consumed != 19) {
    return false;
  }
  if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || s > 60) return false;
  size_t pos = 19;
  long long nanos = 0;
  if (pos < text.size() && text[pos] == '.') {
    ++pos;
    std::string frac;
    while (pos < text.size() && text[pos] >= '0' && text[pos] <= '9') frac += text[pos++];
    if (frac.empty()) return false;
    frac.resize(9, '0');
    nanos = std::stoll(frac.substr(0, 9));
  }
  long offset = 0;
  if (pos < text.size() && (text[pos] == 'Z' || text[pos] == 'z')) {
    ++pos;
  } else if (pos < text.size() && (text[pos] == '+' || text[pos] == '-')) {
    int oh, om;
    if (pos + 6 > text.size() || std::sscanf(text.c_str() + pos + 1, "%2d:%2d", &oh, &om) != 2) {
      return false;
    }
    offset = (text[pos] == '+' ? 1 : -1) * (oh * 3600L + om * 60L);
    pos += 6;
  } else {
    return false;
  }
  if (pos != text.size()) return false;
  std::tm tm{};
  tm.tm_year = y - 1900;
  tm.tm_mon = mo - 1;
  tm.tm_mday = d;
  tm.tm_hour = h;
  tm.tm_min = mi;
  tm.tm_sec = s;
  std::time_t secs = timegm(&tm);
  *out = WallTime(std::chrono::duration_cast<WallTime::duration>(
      std::chrono::seconds(secs - offset) + std::chrono::nanoseconds(nanos)));
  return true;
}

}  // namespace edge
