// Subsystem: a part of edged that starts and stops with the node — discovery, health
// checks, the reconciler, the node API, the backend link, the gateway, the cluster port.
// Node::create() lists them in start order; adding one (cluster scheduling comes next) is
// writing the class and adding it to that list.
//
// Subsystems start in order. Stopping takes two passes, each last-started first: leave()
// on every started subsystem, then stop(). leave() ends what other nodes see (the cluster
// port, sessions with peers, cluster membership), so they learn the node is going before
// the local teardown, which can wait up to 15 s for instance removals; stop() ends the
// rest. When a start() fails, that subsystem and the ones started before it are stopped
// the same way and the error comes back prefixed with the failed one's name.
//
// Threading: start(), leave() and stop() are called from the thread that owns the node,
// leave() and stop() once after each start() — also after a failed one, so they must
// undo a partial start and do nothing when there is nothing to undo.
#pragma once

#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "common/status.h"

namespace edge::edged {

class Subsystem {
 public:
  virtual ~Subsystem() = default;
  // Names it in errors: "gateway", "node API on /run/edged/edged.sock".
  virtual const std::string& name() const = 0;
  virtual Status start() = 0;
  // Ends what other nodes see of it. Default: nothing.
  virtual void leave() {}
  // Ends the rest. Default: nothing.
  virtual void stop() {}
};
using SubsystemPtr = std::unique_ptr<Subsystem>;

// A subsystem made of functions, for a component that has a start and a stop of its own.
// An unset function does nothing (start: succeeds).
struct SubsystemHooks {
  std::string name;
  std::function<Status()> start;
  std::function<void()> leave;
  std::function<void()> stop;
};
SubsystemPtr makeSubsystem(SubsystemHooks hooks);

// The ordered list Node starts and stops, by the rules above.
class Subsystems {
 public:
  // Before start().
  void add(SubsystemPtr subsystem);
  // Starts each in the order added. On a failure, stops what it started (see above) and
  // returns the error with the failed subsystem's name as context.
  Status start();
  // Stops what start() started; nothing when nothing is started (a second call).
  void stop();
  size_t size() const { return list_.size(); }

 private:
  std::vector<SubsystemPtr> list_;
  size_t started_ = 0;  // list_[0, started_) had start() called and are not stopped yet
};

}  // namespace edge::edged
