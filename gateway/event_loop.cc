#include "gateway/event_loop.h"

#include <errno.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

namespace edge::gateway {
namespace {

constexpr int kMaxEvents = 256;

// The wake-up eventfd's handler: epoll data for it is this sentinel, not an IoHandler.
IoHandler* const kWakeSentinel = nullptr;

}  // namespace

Result<std::unique_ptr<EventLoop>> EventLoop::create() {
  int epfd = epoll_create1(EPOLL_CLOEXEC);
  if (epfd < 0) return Status::fromErrno(errno, "epoll_create1");
  int wakefd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (wakefd < 0) {
    int err = errno;
    close(epfd);
    return Status::fromErrno(err, "eventfd");
  }
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.ptr = kWakeSentinel;
  if (epoll_ctl(epfd, EPOLL_CTL_ADD, wakefd, &ev) != 0) {
    int err = errno;
    close(epfd);
    close(wakefd);
    return Status::fromErrno(err, "epoll_ctl(eventfd)");
  }
  return std::unique_ptr<EventLoop>(new EventLoop(epfd, wakefd));
}

EventLoop::EventLoop(int epfd, int wakefd)
    : epfd_(epfd),
      wakefd_(wakefd),
      thread_id_(std::this_thread::get_id()),
      now_(std::chrono::steady_clock::now()) {}

EventLoop::~EventLoop() {
  close(epfd_);
  close(wakefd_);
}

Status EventLoop::add(int fd, uint32_t events, IoHandler* handler) {
  epoll_event ev{};
  ev.events = events;
  ev.data.ptr = handler;
  if (epoll_ctl(epfd_, EPOLL_CTL_ADD, fd, &ev) != 0) return Status::fromErrno(errno, "epoll add");
  return Status::ok();
}

Status EventLoop::modify(int fd, uint32_t events, IoHandler* handler) {
  epoll_event ev{};
  ev.events = events;
  ev.data.ptr = handler;
  if (epoll_ctl(epfd_, EPOLL_CTL_MOD, fd, &ev) != 0) return Status::fromErrno(errno, "epoll mod");
  return Status::ok();
}

void EventLoop::remove(int fd) {
  epoll_ctl(epfd_, EPOLL_CTL_DEL, fd, nullptr);
}

void EventLoop::stop() {
  stop_.store(true, std::memory_order_release);
  uint64_t one = 1;
  ssize_t n = write(wakefd_, &one, sizeof one);
  (void)n;  // a full counter already wakes the loop
}

void EventLoop::post(std::function<void()> fn) {
  {
    std::lock_guard<std::mutex> lock(post_mu_);
    if (ended_) return;
    posted_.push_back(std::move(fn));
  }
  uint64_t one = 1;
  ssize_t n = write(wakefd_, &one, sizeof one);
  (void)n;
}

void EventLoop::defer(std::function<void()> fn) {
  deferred_.push_back(std::move(fn));
}

void EventLoop::runDeferred() {
  while (!deferred_.empty()) {
    std::vector<std::function<void()>> batch;
    batch.swap(deferred_);
    for (auto& fn : batch) fn();
  }
}

LoopTime EventLoop::refreshNow() {
  now_ = std::chrono::steady_clock::now();
  return now_;
}

EventLoop::TimerId EventLoop::createTimer(std::function<void()> callback) {
  uint32_t id;
  if (!free_slots_.empty()) {
    id = free_slots_.back();
    free_slots_.pop_back();
  } else {
    id = static_cast<uint32_t>(slots_.size());
    slots_.emplace_back();
  }
  Slot& s = slots_[id];
  s.callback = std::move(callback);
  s.armed = false;
  s.in_use = true;
  s.queued = LoopTime::max();
  return id;
}

void EventLoop::armTimer(TimerId id, LoopTime deadline) {
  Slot& s = slots_[id];
  s.deadline = deadline;
  s.armed = true;
  // A live entry at or before the new deadline will re-queue the slot when it pops.
  if (s.queued <= deadline) return;
  s.queued = deadline;
  heap_.push_back({deadline, id, s.generation});
  std::push_heap(heap_.begin(), heap_.end(), std::greater<Entry>());
}

void EventLoop::disarmTimer(TimerId id) {
  slots_[id].armed = false;
}

void EventLoop::destroyTimer(TimerId id) {
  Slot& s = slots_[id];
  s.callback = nullptr;
  s.armed = false;
  s.in_use = false;
  s.queued = LoopTime::max();
  ++s.generation;  // heap entries of the old owner are now stale
  free_slots_.push_back(id);
}

void EventLoop::runTimers() {
  while (!heap_.empty() && heap_.front().deadline <= now_) {
    Entry e = heap_.front();
    std::pop_heap(heap_.begin(), heap_.end(), std::greater<Entry>());
    heap_.pop_back();
    Slot& s = slots_[e.slot];
    if (s.generation != e.generation || s.queued != e.deadline) continue;  // stale entry
    s.queued = LoopTime::max();
    if (!s.armed) continue;
    if (s.deadline > now_) {
      s.queued = s.deadline;
      heap_.push_back({s.deadline, e.slot, s.generation});
      std::push_heap(heap_.begin(), heap_.end(), std::greater<Entry>());
      continue;
    }
    s.armed = false;
    // The callback may destroy this timer or create others (slots_ may reallocate), so
    // it runs from a copy; timers fire rarely (timeouts), re-arming is the frequent case.
    std::function<void()> cb = s.callback;
    cb();
  }
}

int EventLoop::waitMillis() const {
  if (!deferred_.empty()) return 0;
  if (heap_.empty()) return -1;
  auto d = heap_.front().deadline - std::chrono::steady_clock::now();
  if (d <= std::chrono::nanoseconds(0)) return 0;
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(d).count() + 1;
  return static_cast<int>(std::min<int64_t>(ms, 60'000));
}

void EventLoop::drainPosted() {
  std::vector<std::function<void()>> batch;
  {
    std::lock_guard<std::mutex> lock(post_mu_);
    batch.swap(posted_);
  }
  for (auto& fn : batch) fn();
}

void EventLoop::run() {
  thread_id_ = std::this_thread::get_id();
  epoll_event events[kMaxEvents];
  while (!stop_.load(std::memory_order_acquire)) {
    int n = epoll_wait(epfd_, events, kMaxEvents, waitMillis());
    now_ = std::chrono::steady_clock::now();
    if (n < 0 && errno != EINTR) break;
    bool woken = false;
    for (int i = 0; i < n; ++i) {
      auto* h = static_cast<IoHandler*>(events[i].data.ptr);
      if (h == kWakeSentinel) {
        woken = true;
        continue;
      }
      h->onEvents(events[i].events);
    }
    if (woken) {
      uint64_t v;
      ssize_t r = read(wakefd_, &v, sizeof v);
      (void)r;
      drainPosted();
    }
    runTimers();
    runDeferred();
  }
  {
    std::lock_guard<std::mutex> lock(post_mu_);
    ended_ = true;
    posted_.clear();
  }
}

}  // namespace edge::gateway
