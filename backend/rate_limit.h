// RateLimiter: token buckets for the token endpoint, one per client id and one per source
// address, so one client cannot hammer its own secret and one address cannot hammer many.
//
// A bucket holds up to `burst` tokens and refills at `rate` per second; a request takes
// one. Memory is bounded: at most `max_buckets` per kind, the least recently used bucket
// evicted first (a bucket idle long enough to be full again is the same as no bucket,
// so evicting it forgets nothing).
//
// Thread-safety: every method may be called from any thread at once (one mutex).
//
// Errors: none; admit() answers with a Decision that says which limit was hit and how
// long until a token is back (for Retry-After).
#pragma once

#include <chrono>
#include <cstddef>
#include <list>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>

#include "common/clock.h"
#include "common/status.h"

namespace edge::backend {

class RateLimiter {
 public:
  struct Options {
    double client_rate = 20;  // per second
    double client_burst = 40;
    double address_rate = 50;
    double address_burst = 100;
    size_t max_buckets = 10'000;  // per kind
  };

  struct Decision {
    bool allowed = true;
    std::chrono::seconds retry_after{0};  // whole seconds, at least 1 when refused
    std::string message;                  // what was limited, when refused
  };

  RateLimiter(Options options, ClockPtr clock);

  // Takes a token from the address's bucket, and from the client's when `client_id` is
  // not empty. A refused request takes nothing from either.
  Decision admit(std::string_view address, std::string_view client_id);

  size_t bucketCount() const;

 private:
  struct Bucket {
    double tokens;
    SteadyTime updated;
    std::list<std::string>::iterator lru;
  };
  struct Table {
    std::unordered_map<std::string, Bucket> buckets;
    std::list<std::string> lru;  // most recent first
  };

  Bucket& bucket(Table& t, std::string_view key, double burst, SteadyTime now);
  static void refill(Bucket& b, double rate, double burst, SteadyTime now);
  static std::chrono::seconds wait(const Bucket& b, double rate);

  Options options_;
  ClockPtr clock_;
  mutable std::mutex mu_;
  Table clients_;
  Table addresses_;
};

}  // namespace edge::backend
