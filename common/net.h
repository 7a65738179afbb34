// Small socket helpers shared by the node and the backend.
#pragma once

#include <chrono>
#include <string>

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

}  // namespace edge::net
