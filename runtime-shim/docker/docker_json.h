// The Docker Engine API's JSON and query shapes, mapped to and from the runtime types, as
// the driver (the client side) needs them. Versions and times: docker_wire.h.
//
// Pure functions (no I/O) so each mapping is unit-tested against replies captured from
// a real dockerd. Fields Podman's compatible API leaves out or spells differently get
// fallbacks here, not in the driver.
//
// Thread-safety: free functions; JsonStreamSplitter has no internal locking.
#pragma once

#include <cstdint>
#include <deque>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/json.h"
#include "common/status.h"
#include "runtime-shim/docker/docker_wire.h"
#include "runtime-shim/runtime.h"

namespace edge::runtime::docker {

using json::Json;

// --- errors --------------------------------------------------------------------------

// The daemon's error text: `{"message": "..."}`, else the body itself (shortened).
std::string daemonMessage(std::string_view body);

// Maps a non-2xx reply to a Status whose message is "<what>: <daemon message>":
// 404 -> kNotFound; 409 -> kAlreadyExists for a name in use (Podman: 500), else
// kFailedPrecondition;
// 400 -> kInvalidArgument; 401/403 -> kPermissionDenied; 304 -> kFailedPrecondition;
// 5xx and anything else -> kInternal.
Status statusFromHttp(int http_status, std::string_view body, std::string_view what);

// --- times and queries ---------------------------------------------------------------

// "1700000000.123456789": the form `since`/`until` query parameters take.
std::string formatUnixNano(WallTime t);
// Percent-encodes an id, name or image reference for a path; keeps '/', ':' and '@'
// (the daemon routes "busybox:1" and "library/busybox@sha256:..." as path text).
std::string escapePath(std::string_view ref);
// The query string of a logs request (no leading '?'). Always asks for timestamps so
// LogEntry::time can be filled. kInvalidArgument when no stream is selected.
Result<std::string> logsQuery(const LogOptions& options, ApiVersion version);
// `filters` query value: {"label":["k=v",...]} for the given labels (sorted).
std::string labelFilters(const std::map<std::string, std::string>& labels);

// --- request bodies ------------------------------------------------------------------

// Checks a spec the way the daemon would, with messages naming the field.
Status validateSpec(const ContainerSpec& spec);
// The `POST /containers/create` body. Older API versions get
// CpuPeriod/CpuQuota instead of NanoCpus and no StopTimeout.
Json createBody(const ContainerSpec& spec, ApiVersion version);

// --- replies -------------------------------------------------------------------------

// `GET /containers/{id}/json` -> ContainerInfo (State.Status created/running/paused/
// restarting/removing/exited/dead folded into the three states we have).
Result<ContainerInfo> containerFromInspect(const Json& j);
// `GET /images/{ref}/json` -> ImageInfo.
Result<ImageInfo> imageFromInspect(const Json& j);
// `GET /containers/{id}/stats?stream=false` -> Stats. `fallback_time` when "read" is unset.
Result<Stats> statsFromJson(const Json& j, WallTime fallback_time);
// One `/events` message -> Event; nullopt for messages that are not container
// create/start/die/oom/destroy. kInvalidArgument for a message without an actor id.
Result<std::optional<Event>> eventFromJson(const Json& j);

// What `POST /images/load` says it loaded: references ("edgecloud/busybox:test") and
// ids ("sha256:..."), in order. An `error` message in the stream becomes
// kInvalidArgument carrying the daemon's text; a reply naming nothing is kInternal.
Result<std::vector<std::string>> parseLoadReply(std::string_view body);

// Splits a stream of concatenated JSON values (the daemon writes one per line, but
// chunk boundaries fall anywhere) into complete values.
class JsonStreamSplitter {
 public:
  explicit JsonStreamSplitter(size_t max_value = 1 << 20) : max_value_(max_value) {}
  // Appends data; kInvalidArgument when a single value grows past `max_value`.
  Status feed(std::string_view data);
  // Moves the next complete value's text into `out`; false when none is complete.
  bool next(std::string* out);
  // True when nothing but whitespace is buffered.
  bool empty() const { return ready_.empty() && partial_.empty(); }

 private:
  std::deque<std::string> ready_;
  std::string partial_;  // the value being scanned
  int depth_ = 0;
  bool in_string_ = false;
  bool escape_ = false;
  size_t max_value_;
};

}  // namespace edge::runtime::docker
