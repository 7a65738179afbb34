// HTTP client over TCP or a unix socket, on cpp-httplib (kept out of this header).
//
// Each request opens its own connection, so one HttpClient may be shared by threads and
// a long-lived request (a Docker `wait`, a `logs?follow=1`) never blocks another call.
// Transport failures (no socket, refused, permission, peer died mid-response, timeout)
// come back as a Status naming the endpoint, never as a hang or an exception. A peer that
// answers before it has read the whole request body (a 413 at its size limit) and closes
// is an answer, not a transport failure: send() returns it. No call raises SIGPIPE.
#pragma once

#include <chrono>
#include <cstddef>
#include <functional>
#include <map>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/status.h"

namespace edge::http {

// Where a server listens: "unix:///run/x.sock", "/run/x.sock", "tcp://host:port",
// "http://host:port".
struct Endpoint {
  enum class Kind { kUnix, kTcp };
  Kind kind = Kind::kUnix;
  std::string path;  // kUnix
  std::string host;  // kTcp
  int port = 0;      // kTcp

  static Result<Endpoint> parse(std::string_view text);
  std::string toString() const;
};

// Header names compare case-insensitively, as HTTP says.
struct CaseInsensitiveLess {
  bool operator()(const std::string& a, const std::string& b) const;
};
using Headers = std::multimap<std::string, std::string, CaseInsensitiveLess>;

struct Response {
  int status = 0;
  Headers headers;
  std::string body;  // empty when the body was streamed to a sink

  std::string header(const std::string& name) const;  // "" when absent
  bool isSuccess() const { return status >= 200 && status < 300; }
};

struct Request {
  std::string method = "GET";
  std::string path = "/";  // with the query string, already escaped
  Headers headers;
  std::string body;
  std::string content_type;

  // When set, the body is streamed with chunked transfer encoding: called repeatedly
  // with a buffer; returns bytes written (0 = end of body) or an error.
  std::function<Result<size_t>(char* buf, size_t cap)> body_source;

  // When set, a 2xx response body is passed to it chunk by chunk instead of being
  // collected; return false to stop reading (the call then returns kCancelled). A non-2xx
  // body never reaches the sink: it is collected into Response::body (up to 1 MiB), so
  // the caller can read the error.
  std::function<bool(const char* data, size_t len)> body_sink;

  // Zero means "no limit" (for waits and follows; the connection still fails fast when
  // the peer goes away). When no byte arrives for this long the call returns
  // kDeadlineExceeded.
  std::chrono::milliseconds read_timeout{std::chrono::seconds(60)};
};

struct ClientOptions {
  std::chrono::milliseconds connect_timeout{std::chrono::seconds(5)};
  std::chrono::milliseconds write_timeout{std::chrono::seconds(60)};
  std::string host_header = "localhost";  // Host: for unix sockets
};

class Client {
 public:
  explicit Client(Endpoint endpoint, ClientOptions options = {});

  // Performs the request. A non-2xx status is a successful Result: the caller decides
  // what the status means. Transport errors return kUnavailable (cannot connect, peer
  // closed), kPermissionDenied (socket not accessible), kDeadlineExceeded (timeout).
  // A read that times out returns kDeadlineExceeded.
  Result<Response> send(const Request& request) const;

  const Endpoint& endpoint() const { return endpoint_; }

 private:
  Endpoint endpoint_;
  ClientOptions options_;
};

// Percent-encodes a query value or path segment: everything but unreserved characters
// (A-Z a-z 0-9 - _ . ~) and those listed in `keep`.
std::string urlEncode(std::string_view s, std::string_view keep = {});

}  // namespace edge::http
