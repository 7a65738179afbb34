// Small socket helpers shared by the node and the backend.
#pragma once

#include <chrono>
#include <string>
#include <string_view>

#include "common/status.h"

namespace edge::net {

// Splits "host:port"; false when there is no ':' or the port is not 0..65535.
bool splitHostPort(const std::string& text, std::string* host, int* port);

// A connected, blocking TCP socket (TCP_NODELAY, close-on-exec) to "a.b.c.d:port", within
// `timeout`. kInvalidArgument for a malformed endpoint, kDeadlineExceeded when nothing
// answers in time, kUnavailable when the connection is refused or unroutable; every
// message names the endpoint.
Result<int> dialTcp(const std::string& endpoint, std::chrono::milliseconds timeout);

// A listening TCP socket (SO_REUSEADDR, close-on-exec, backlog 1024) on "a.b.c.d:port".
// kInvalidArgument for a malformed address; the bind error otherwise, naming the address.
Result<int> listenTcp(const std::string& address);

// How long writeAll() waits for a reader that does not keep up.
struct WriteLimits {
  // The longest wait without progress; max() = no such limit.
  std::chrono::milliseconds idle = std::chrono::milliseconds::max();
  // When the whole write must be done; max() = none.
  std::chrono::steady_clock::time_point deadline = std::chrono::steady_clock::time_point::max();
  // When this fd becomes readable (a stop pipe), the write gives up; -1 = none.
  int stop_fd = -1;
};

// Writes all of `data` to a socket, blocking or not, waiting with poll() while the peer
// does not read; never raises SIGPIPE. kDeadlineExceeded ("the peer did not read for N
// ms", or "... in time" at the deadline), kCancelled when stop_fd became readable,
// kUnavailable when the connection failed (with errno's text). Callers add what the
// peer is with withContext(). Files and pipes: fs::writeAll().
Status writeAll(int fd, std::string_view data, const WriteLimits& limits);

}  // namespace edge::net
