// EventLoop: one epoll loop, run by one thread (the gateway runs one per worker).
//
// File descriptors are registered with an IoHandler (no allocation per event); timers
// are cheap to re-arm, because per-connection timeouts move on every read (a binary heap
// keyed by deadline with lazy deletion: re-arming to a later deadline touches no heap
// entry, the stale entry is re-queued when it comes up); post() hands a function to the
// loop from any thread through an eventfd; defer() runs a function after the current batch
// of events, which is how handlers delete themselves safely while other events for them
// may still be queued in the same batch.
//
// Threading: run() on one thread. post(), stop() and inLoopThread() are thread-safe;
// everything else is for the loop's own thread (or before run()).
// Errors: create() fails with kInternal when epoll or eventfd cannot be made (fd limit);
// add() with the errno of epoll_ctl.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "common/status.h"

namespace edge::gateway {

class IoHandler {
 public:
  virtual ~IoHandler() = default;
  // `events` is the epoll mask (EPOLLIN, EPOLLOUT, EPOLLERR, EPOLLHUP, EPOLLRDHUP).
  virtual void onEvents(uint32_t events) = 0;
};

using LoopTime = std::chrono::steady_clock::time_point;

class EventLoop {
 public:
  static Result<std::unique_ptr<EventLoop>> create();
  ~EventLoop();
  EventLoop(const EventLoop&) = delete;
  EventLoop& operator=(const EventLoop&) = delete;

  // Registers `fd` for `events` (the epoll mask; EPOLLET for edge-triggered).
  Status add(int fd, uint32_t events, IoHandler* handler);
  Status modify(int fd, uint32_t events, IoHandler* handler);
  // Unregisters; closing the fd afterwards is the caller's business.
  void remove(int fd);

  // Runs until stop(). Returns at once if stop() was already called.
  void run();
  void stop();
  bool stopping() const { return stop_.load(std::memory_order_acquire); }
  // Thread-safe; `fn` runs on the loop thread, in order. Dropped if the loop has ended.
  void post(std::function<void()> fn);
  // Runs `fn` after the events of the current batch are handled.
  void defer(std::function<void()> fn);
  // Runs what defer() queued now (owners call it once the loop has ended).
  void runDeferred();
  bool inLoopThread() const { return std::this_thread::get_id() == thread_id_; }

  // The time at the start of the current batch (cheap; updated once per wake-up).
  LoopTime now() const { return now_; }
  LoopTime refreshNow();

  // Timers. A timer is created disarmed; arm() sets (or moves) its deadline; the callback
  // runs once per arming, on the loop thread. Ids are reused after destroyTimer().
  using TimerId = uint32_t;
  TimerId createTimer(std::function<void()> callback);
  void armTimer(TimerId id, LoopTime deadline);
  void disarmTimer(TimerId id);
  void destroyTimer(TimerId id);
  bool timerArmed(TimerId id) const { return slots_[id].armed; }

 private:
  EventLoop(int epfd, int wakefd);
  void runTimers();
  int waitMillis() const;
  void drainPosted();

  struct Slot {
    std::function<void()> callback;
    LoopTime deadline{};
    LoopTime queued = LoopTime::max();  // deadline of this slot's live heap entry
    uint32_t generation = 0;
    bool armed = false;
    bool in_use = false;
  };
  struct Entry {
    LoopTime deadline;
    uint32_t slot;
    uint32_t generation;
    bool operator>(const Entry& o) const { return deadline > o.deadline; }
  };

  int epfd_;
  int wakefd_;
  std::atomic<bool> stop_{false};
  std::thread::id thread_id_;
  LoopTime now_;
  std::vector<Slot> slots_;
  std::vector<uint32_t> free_slots_;
  std::vector<Entry> heap_;  // min-heap by deadline (std::push_heap with greater)
  std::vector<std::function<void()>> deferred_;
  std::mutex post_mu_;
  std::vector<std::function<void()>> posted_;
  bool ended_ = false;  // guarded by post_mu_
};

// A timer owned by one object: created on construction, destroyed with it.
class Timer {
 public:
  Timer(EventLoop& loop, std::function<void()> callback)
      : loop_(loop), id_(loop.createTimer(std::move(callback))) {}
  ~Timer() { loop_.destroyTimer(id_); }
  Timer(const Timer&) = delete;
  Timer& operator=(const Timer&) = delete;

  void armAt(LoopTime deadline) { loop_.armTimer(id_, deadline); }
  template <typename Rep, typename Period>
  void armAfter(std::chrono::duration<Rep, Period> d) {
    loop_.armTimer(id_, loop_.now() + std::chrono::duration_cast<std::chrono::nanoseconds>(d));
  }
  void cancel() { loop_.disarmTimer(id_); }
  bool armed() const { return loop_.timerArmed(id_); }

 private:
  EventLoop& loop_;
  EventLoop::TimerId id_;
};

}  // namespace edge::gateway
