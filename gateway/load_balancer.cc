#include "gateway/load_balancer.h"

#include <vector>

namespace edge::gateway {
namespace {

constexpr std::memory_order kRelaxed = std::memory_order_relaxed;

// Endpoint indices; on the stack for any realistic route, on the heap past 32.
class Candidates {
 public:
  void push(uint32_t i) {
    if (n_ < inline_.size()) {
      inline_[n_] = i;
    } else {
      if (heap_.empty()) heap_.assign(inline_.begin(), inline_.end());
      heap_.push_back(i);
    }
    ++n_;
  }
  size_t size() const { return n_; }
  uint32_t operator[](size_t k) const { return n_ <= inline_.size() ? inline_[k] : heap_[k]; }
  void removeAt(size_t k) {
    if (n_ <= inline_.size()) {
      inline_[k] = inline_[n_ - 1];
    } else {
      heap_[k] = heap_[n_ - 1];
      heap_.pop_back();
      if (n_ - 1 <= inline_.size()) std::copy(heap_.begin(), heap_.end(), inline_.begin());
    }
    --n_;
  }
  void clear() {
    n_ = 0;
    heap_.clear();
  }

 private:
  std::array<uint32_t, 32> inline_{};
  std::vector<uint32_t> heap_;
  size_t n_ = 0;
};

// Power of two choices on tries in flight, then the breaker. Returns the acquired index or
// -1 when every candidate's breaker is full (each refusal counted on its upstream).
int64_t pickAndAcquire(const RouteEntry& route, Candidates& c, Rng& rng, bool* overflow) {
  while (c.size() > 0) {
    size_t k = 0;
    if (c.size() > 1) {
      size_t a = static_cast<size_t>(rng() % c.size());
      size_t b = static_cast<size_t>(rng() % (c.size() - 1));
      if (b >= a) ++b;
      const auto& ua = *route.endpoints[c[a]].upstream;
      const auto& ub = *route.endpoints[c[b]].upstream;
      k = ub.breaker().active() < ua.breaker().active() ? b : a;
    }
    Upstream& u = *route.endpoints[c[k]].upstream;
    if (u.breaker().tryAcquire()) return c[k];
    u.stats().breaker_rejections.fetch_add(1, kRelaxed);
    *overflow = true;
    c.removeAt(k);
  }
  return -1;
}

}  // namespace

bool TriedUpstreams::contains(const Upstream* u) const {
  size_t n = size();
  for (size_t i = 0; i < n; ++i) {
    if (items_[i] == u) return true;
  }
  return false;
}

void TriedUpstreams::add(const Upstream* u) {
  items_[count_ % kCapacity] = u;
  ++count_;
}

UpstreamLease::UpstreamLease(UpstreamLease&& other) noexcept
    : clock_(other.clock_),
      route_(other.route_),
      endpoint_(other.endpoint_),
      start_(other.start_),
      finished_(other.finished_) {
  other.endpoint_ = nullptr;
}

UpstreamLease& UpstreamLease::operator=(UpstreamLease&& other) noexcept {
  if (this != &other) {
    if (!finished()) finish(TryOutcome::kCancelled);
    clock_ = other.clock_;
    route_ = other.route_;
    endpoint_ = other.endpoint_;
    start_ = other.start_;
    finished_ = other.finished_;
    other.endpoint_ = nullptr;
  }
  return *this;
}

UpstreamLease::~UpstreamLease() {
  if (!finished()) finish(TryOutcome::kCancelled);
}

bool UpstreamLease::finish(TryOutcome outcome) {
  if (finished()) return false;
  finished_ = true;
  Upstream& u = *endpoint_->upstream;
  UpstreamStats& stats = u.stats();
  const SteadyTime now = clock_->now();
  u.breaker().release();
  stats.active.fetch_sub(1, kRelaxed);
  if (outcome == TryOutcome::kCancelled) return false;
  stats.latency.observe(now - start_);
  if (!isFailure(outcome)) {
    u.outlier().recordSuccess();
    return false;
  }
  ErrorKind kind;
  if (errorKindOf(outcome, &kind)) stats.addError(kind);
  if (!u.outlier().recordFailure(now)) return false;

  // The route's cap: never its last non-ejected upstream, never more than
  // max_ejection_percent of them (but one may always go when there are two or more).
  const size_t total = route_->endpoints.size();
  size_t ejected = 0;
  for (const auto& e : route_->endpoints) ejected += e.upstream->outlier().isEjected(now) ? 1 : 0;
  const size_t pct = static_cast<size_t>(std::max(0, u.outlier().options().max_ejection_percent));
  const size_t allowed = std::max<size_t>(1, total * pct / 100);
  if (total - ejected <= 1 || ejected + 1 > allowed) return false;

  SteadyTime until = u.outlier().eject(now);
  stats.ejected_until_ns.store(until.time_since_epoch().count(), kRelaxed);
  stats.ejections_total.fetch_add(1, kRelaxed);
  return true;
}

namespace {

// One selection pass (see the header for the order). Returns the endpoint index with its
// breaker acquired, or -1.
int64_t selectOnce(const RouteEntry& route, const TriedUpstreams& tried, bool skip_tried,
                   SteadyTime now, Rng& rng, bool* overflow) {
  const size_t n = route.endpoints.size();
  const size_t tier_end[3] = {route.local_count, route.local_count + route.peer_count, n};
  auto excluded = [&](const Upstream* u) { return skip_tried && tried.contains(u); };
  Candidates healthy;
  size_t begin = 0;
  for (size_t end : tier_end) {
    healthy.clear();
    for (size_t i = begin; i < end; ++i) {
      const Upstream* u = route.endpoints[i].upstream.get();
      if (!excluded(u) && !u->outlier().isEjected(now)) healthy.push(static_cast<uint32_t>(i));
    }
    begin = end;
    int64_t k = pickAndAcquire(route, healthy, rng, overflow);
    if (k >= 0) return k;
  }
  // Panic mode: only ejected (or full) candidates are left. Take the ejected one that
  // comes back soonest rather than refuse the request.
  Candidates full;
  auto isFull = [&full](size_t i) {
    for (size_t k = 0; k < full.size(); ++k) {
      if (full[k] == i) return true;
    }
    return false;
  };
  while (true) {
    int64_t best = -1;
    for (size_t i = 0; i < n; ++i) {
      Upstream& u = *route.endpoints[i].upstream;
      if (excluded(&u) || !u.outlier().isEjected(now) || isFull(i)) continue;
      if (best < 0 ||
          u.outlier().ejectedUntil() <
              route.endpoints[static_cast<size_t>(best)].upstream->outlier().ejectedUntil()) {
        best = static_cast<int64_t>(i);
      }
    }
    if (best < 0) return -1;
    Upstream& u = *route.endpoints[static_cast<size_t>(best)].upstream;
    if (u.breaker().tryAcquire()) return best;
    u.stats().breaker_rejections.fetch_add(1, kRelaxed);
    *overflow = true;
    full.push(static_cast<uint32_t>(best));
  }
}

}  // namespace

Result<UpstreamLease> LoadBalancer::pick(const RouteEntry& route, TriedUpstreams& tried,
                                         Rng& rng) const {
  const SteadyTime now = clock_->now();
  bool overflow = false;
  int64_t k = selectOnce(route, tried, /*skip_tried=*/true, now, rng, &overflow);
  // Every upstream was tried (or the untried ones are full): try one again rather than
  // give up, as Envoy does. A single restarting instance gets its retry after the back-off.
  if (k < 0 && tried.size() > 0) k = selectOnce(route, tried, false, now, rng, &overflow);
  if (k >= 0) {
    const Endpoint& e = route.endpoints[static_cast<size_t>(k)];
    e.upstream->stats().requests.fetch_add(1, kRelaxed);
    e.upstream->stats().active.fetch_add(1, kRelaxed);
    tried.add(e.upstream.get());
    return UpstreamLease(clock_.get(), &route, &e, now);
  }
  if (overflow) {
    return Status::resourceExhausted("route " + route.spec.service +
                                     ": every upstream is at its concurrency limit (" +
                                     std::to_string(route.endpoints.size()) + " configured)");
  }
  return Status::unavailable("route " + route.spec.service +
                             ": no instance anywhere (no local, peer or global upstream)");
}

}  // namespace edge::gateway
