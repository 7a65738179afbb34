// What both ends of the Docker Engine API agree on, apart from the JSON shapes: API
// versions and their negotiation, and how times are written. The driver
// (docker_json.h, the client side) and the node's Docker API server
// (edged/api/docker_codec.h, the server side) both build on it; neither reaches
// into the other.
//
// Library edge_docker_wire: depends on edge_common only.
// Thread-safety: pure functions and constants.
#pragma once

#include <string>
#include <string_view>

#include "common/clock.h"
#include "common/status.h"

namespace edge::runtime::docker {

struct ApiVersion {
  int major = 1;
  int minor = 0;
  std::string toString() const;
  auto operator<=>(const ApiVersion&) const = default;
};
inline constexpr ApiVersion kMaxApiVersion{1, 43};  // newest we speak (and serve)
inline constexpr ApiVersion kMinApiVersion{1, 24};  // oldest we accept (and serve)

// "1.41" -> {1, 41}; kInvalidArgument otherwise.
Result<ApiVersion> parseApiVersion(std::string_view text);
// min(server, kMaxApiVersion); kFailedPrecondition when the server is older than
// kMinApiVersion, kInvalidArgument when `server_text` is not a version.
Result<ApiVersion> negotiateApiVersion(std::string_view server_text);

// Docker's zero time "0001-01-01T00:00:00Z" and "" are unset (WallTime{}); an
// unreadable time is unset too.
WallTime parseDockerTime(const std::string& text);
// The other way: RFC 3339 with nanoseconds, and the zero time for an unset one.
std::string formatDockerTime(WallTime t);

}  // namespace edge::runtime::docker
