// LoadBalancer: picks the upstream for one try of a request, and UpstreamLease, the RAII
// handle of that try which releases the circuit breaker and records the outcome into
// outlier detection and stats however the try ends.
//
// Order: local instances while any is healthy (not ejected); else peers; else the global
// upstream. Within a tier: power of two choices on tries in flight. Upstreams already
// tried for this request are skipped while an untried one is left (then a tried one is
// picked again, as Envoy does: a single restarting instance still gets its retry), and so
// are those whose breaker is full. When every candidate is ejected, the one coming back
// soonest is used anyway (Envoy's panic mode: ejection steers traffic, it never turns a
// request away on its own).
//
// Ejection cap: a route never has more than max_ejection_percent of its upstreams ejected
// (at least one may be when it has two or more), and its last non-ejected upstream is
// never ejected; a failure past the threshold that the cap refuses leaves the upstream in
// rotation with its failure count kept, so it is ejected as soon as the cap allows.
//
// Thread-safety: LoadBalancer is stateless apart from its clock; call pick() from any
// worker. An UpstreamLease and a TriedUpstreams belong to one request (one thread at a
// time). The RouteEntry passed to pick() must outlive the lease (hold the snapshot).
//
// Errors (pick): Unavailable "route <name>: no instance anywhere (...)" when the route has
// no upstream at all (an on-demand service not started yet, a service with no instance);
// ResourceExhausted "route <name>: every upstream is at its concurrency limit (<n>
// configured)" when only full breakers remain. The router answers 503 for both and counts
// them as no_upstream and overflow.
#pragma once

#include <array>

#include "common/clock.h"
#include "common/status.h"
#include "gateway/resilience.h"
#include "gateway/route_table.h"

namespace edge::gateway {

// The upstreams a request has tried, without allocating (attempts are at most 10 retries).
class TriedUpstreams {
 public:
  static constexpr size_t kCapacity = 16;
  bool contains(const Upstream* u) const;
  // Past kCapacity the oldest entries are forgotten (they may then be picked again).
  void add(const Upstream* u);
  size_t size() const { return count_ < kCapacity ? count_ : kCapacity; }

 private:
  std::array<const Upstream*, kCapacity> items_{};
  size_t count_ = 0;
};

class UpstreamLease {
 public:
  UpstreamLease(UpstreamLease&& other) noexcept;
  UpstreamLease& operator=(UpstreamLease&& other) noexcept;
  UpstreamLease(const UpstreamLease&) = delete;
  UpstreamLease& operator=(const UpstreamLease&) = delete;
  // A lease never finished counts as kCancelled: breaker released, no outlier effect.
  ~UpstreamLease();

  const Endpoint& endpoint() const { return *endpoint_; }
  Upstream& upstream() const { return *endpoint_->upstream; }

  // Records how the try ended (latency = now - pick time) and releases the breaker.
  // Returns true when this outcome ejected the upstream. Later calls do nothing.
  bool finish(TryOutcome outcome);
  bool finished() const { return endpoint_ == nullptr || finished_; }

 private:
  friend class LoadBalancer;
  UpstreamLease(const Clock* clock, const RouteEntry* route, const Endpoint* endpoint,
                SteadyTime start)
      : clock_(clock), route_(route), endpoint_(endpoint), start_(start) {}

  const Clock* clock_ = nullptr;
  const RouteEntry* route_ = nullptr;
  const Endpoint* endpoint_ = nullptr;  // null once moved from
  SteadyTime start_;
  bool finished_ = false;
};

class LoadBalancer {
 public:
  explicit LoadBalancer(ClockPtr clock) : clock_(std::move(clock)) {}

  // Picks the upstream for the next try and adds it to `tried`. See the header comment.
  Result<UpstreamLease> pick(const RouteEntry& route, TriedUpstreams& tried, Rng& rng) const;

 private:
  ClockPtr clock_;
};

}  // namespace edge::gateway
