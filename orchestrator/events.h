// EventLog: the node's recent history ("instance web-0-3 exited with 137"), in memory.
//
// The reconciler, the API and the image code append; `edgectl events` and
// `GET /api/v1/events` read it, oldest first, and may wait for new ones. Only the last
// `capacity` events are kept: it is a window for people, not an audit log (the log file
// has every line).
//
// Thread-safety: every method may be called from any thread.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <mutex>
#include <string>
#include <vector>

#include "common/clock.h"

namespace edge::orchestrator {

struct NodeEvent {
  int64_t seq = 0;  // 1, 2, ... in the order appended
  WallTime time{};
  std::string type;  // "instance.started", ... (docs/api.md lists them)
  std::string service;
  std::string instance;
  std::string node;  // the node concerned by a cluster.* event; "" for the others
  std::string message;
};

class EventLog {
 public:
  explicit EventLog(Clock& clock, size_t capacity = 1000);

  // Appends and logs one line at info level. Returns the new event's seq.
  int64_t append(std::string type, std::string service, std::string instance, std::string message);
  // An event about another node (cluster.*): `node` is its node id.
  int64_t appendNode(std::string type, std::string node, std::string message);

  // Events with seq > `after`, oldest first, at most `limit`; only those of `service`
  // when it is not empty.
  std::vector<NodeEvent> since(int64_t after, const std::string& service = {},
                               size_t limit = SIZE_MAX) const;

  // Blocks until an event with seq > `after` exists, `timeout` passes or close() is
  // called. Returns true when there is something new.
  bool waitFor(int64_t after, std::chrono::milliseconds timeout) const;

  int64_t lastSeq() const;
  // Wakes every waiter for good (node shutdown).
  void close();

 private:
  int64_t add(NodeEvent e);

  Clock& clock_;
  const size_t capacity_;
  mutable std::mutex mu_;
  mutable std::condition_variable cv_;
  std::deque<NodeEvent> events_;
  int64_t last_seq_ = 0;
  bool closed_ = false;
};

}  // namespace edge::orchestrator
