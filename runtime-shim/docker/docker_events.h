// Container events from the daemon's `GET /events`, delivered on a runtime-owned thread.
//
// Why windows: a plain `/events` request streams forever and only ends when an event
// arrives or the connection drops, so a subscription could not be torn down promptly
// while the host is quiet (common/http cannot abort a blocked read from another
// thread). Instead each request asks for a bounded window, `since=S&until=U` with U
// about `window` past the daemon's "now": the daemon replays buffered events in
// [S, U], streams live ones and closes the response when U passes. The destructor
// therefore waits at most one window (plus the request round trip).
//
// No gaps: windows overlap. Each new window starts `overlap` before the previous
// window's end, so an event stamped just before U but published after the daemon's
// timer fired is replayed by the next window; after a failed request the next window
// starts from the last window that succeeded, so a short outage replays what was
// missed (as far as the daemon's event buffer reaches). No duplicates: events already
// delivered are remembered by (timeNano, id, action) until they fall out of the
// overlap.
//
// The daemon's clock decides S and U, so its offset from ours is measured once at
// subscribe time from `/info`'s SystemTime (the endpoint may be a remote TCP daemon).
//
// Thread-safety: the sink runs on the subscription's thread, one event at a time.
#pragma once

#include <chrono>
#include <memory>

#include "runtime-shim/docker/docker_api.h"
#include "runtime-shim/runtime.h"

namespace edge::runtime::docker {

struct EventWindowOptions {
  std::chrono::milliseconds window{500};
  std::chrono::milliseconds overlap{1000};
  std::chrono::milliseconds retry{1000};  // pause after a failed window
};

// Starts the event thread. Fails (kUnavailable, ...) when the daemon does not answer.
Result<SubscriptionPtr> subscribeEvents(std::shared_ptr<const DockerApi> api, EventSink sink,
                                        EventWindowOptions options = {});

}  // namespace edge::runtime::docker
