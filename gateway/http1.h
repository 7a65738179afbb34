// HTTP/1.1 message heads and framing (RFC 9112) for the gateway's data path.
//
// Pure functions and small state machines, no I/O: the proxy (proxy.h) feeds them the
// bytes it has buffered, in whatever pieces the sockets delivered them.
//
//  - HeadParser finds the end of a request or response head in a growing buffer without
//    rescanning what it already scanned, then parses it whole into RequestHead or
//    ResponseHead. Line endings: CRLF, and a bare LF is tolerated (RFC 9112 §2.2); the
//    proxy re-serialises every head it forwards, so the next hop never sees the bare LF.
//    A bare CR anywhere is an error. obs-fold (a line starting with SP/HTAB): a request
//    gets 400 (§5.2 allows it); a response's fold is replaced by one SP.
//  - requestFraming()/responseFraming() decide how the body ends (§6.3): none, a
//    Content-Length, chunked, until close, or a tunnel (101). Request smuggling shapes
//    are refused: Transfer-Encoding with Content-Length, differing Content-Lengths,
//    a request Transfer-Encoding whose last coding is not chunked.
//  - ChunkedTracker walks a chunked body to find where it ends without decoding it, so
//    the proxy forwards the bytes verbatim and streaming. It is strict (CRLF required
//    after sizes and data) because the next hop parses the same bytes again and both
//    must agree on where the body ends.
//
// Errors: a ParseError with the HTTP status to answer (400, 414, 431, 501, 505 for
// requests; 502 for responses, "bad response") and a message naming what was wrong,
// the value seen and what is allowed.
//
// Thread-safety: values and single-owner state machines; no shared state.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace edge::gateway {

struct Header {
  std::string name, value;
};

// Case-insensitive ASCII comparison of header names and tokens (inline: the data path
// calls it for every header of every message).
inline bool equalsIgnoreCase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    char x = a[i], y = b[i];
    if (x == y) continue;
    if ((x | 0x20) != (y | 0x20) || (x | 0x20) < 'a' || (x | 0x20) > 'z') return false;
  }
  return true;
}
// First header named `name` (case-insensitive), or nullptr.
const std::string* findHeader(const std::vector<Header>& headers, std::string_view name);

struct RequestHead {  // as received
  std::string method;
  std::string target;  // origin-form "/path?query"
  int version_minor = 1;
  std::vector<Header> headers;

  std::string_view path() const;  // target up to '?'
  const std::string* find(std::string_view name) const { return findHeader(headers, name); }
};

struct ResponseHead {
  int version_minor = 1;
  int status = 0;
  std::string reason;
  std::vector<Header> headers;

  const std::string* find(std::string_view name) const { return findHeader(headers, name); }
};

struct ParseLimits {
  size_t max_head_bytes = 64 * 1024;  // request line/status line + headers + blank line
  size_t max_headers = 100;
  size_t max_target = 8 * 1024;  // request-target length (longer: 414)
};

struct ParseError {
  int status = 0;  // what to answer: 400/414/431/501/505 (requests), 502 (responses)
  std::string message;
};

// Finds and parses one head at the start of a buffer that grows between calls.
class HeadParser {
 public:
  enum class State { kNeedMore, kDone, kError };

  explicit HeadParser(ParseLimits limits = {}) : limits_(limits) {}

  // `buffered` starts at the head's first byte and holds everything received so far
  // (the same prefix on every call, possibly longer). kDone: the head ends at
  // headBytes() and is parsed into *out; the bytes after it are the body or the next
  // message. kError: error() says why. Call reset() before the next head.
  State parseRequest(std::string_view buffered, RequestHead* out);
  State parseResponse(std::string_view buffered, ResponseHead* out);

  size_t headBytes() const { return head_bytes_; }
  const ParseError& error() const { return error_; }
  void reset();

 private:
  // kDone when the blank line ending the head is in `buffered`.
  State findEnd(std::string_view buffered, bool request);
  State fail(int status, std::string message);

  ParseLimits limits_;
  size_t scanned_ = 0;  // bytes already searched for the end of the head
  size_t lines_ = 0;    // complete lines seen so far (header count limit)
  size_t head_bytes_ = 0;
  ParseError error_;
};

enum class BodyKind { kNone, kLength, kChunked, kUntilClose, kTunnel };

struct Framing {
  BodyKind kind = BodyKind::kNone;
  uint64_t length = 0;  // kLength only
};

// How a request's body is framed. kInvalidArgument-style errors become *err (400, or
// 501 for a Transfer-Encoding the proxy cannot frame); returns false then.
bool requestFraming(const RequestHead& head, Framing* out, ParseError* err);
// How a response to `request_method` is framed. A 101 is kTunnel only when the request
// asked to upgrade (`upgrade_requested`), else a bad response.
bool responseFraming(const ResponseHead& head, std::string_view request_method,
                     bool upgrade_requested, Framing* out, ParseError* err);

// Tracks a chunked body (RFC 9112 §7.1) without decoding it.
class ChunkedTracker {
 public:
  struct Limits {
    size_t max_line = 4096;            // chunk-size line with extensions, or one trailer line
    size_t max_trailer_bytes = 65536;  // all trailer lines together
  };
  ChunkedTracker() = default;
  explicit ChunkedTracker(Limits limits) : limits_(limits) {}

  // Consumes body bytes from `data`; returns how many belong to the body (all of them
  // until the end, then the rest is the next message). After an error, returns 0 and
  // failed() is true.
  size_t feed(const char* data, size_t len);
  bool done() const { return state_ == State::kDone; }
  bool failed() const { return state_ == State::kError; }
  const std::string& error() const { return error_; }
  void reset();

 private:
  enum class State {
    kSize,     // hex digits of the chunk size
    kExt,      // chunk extensions up to CR
    kSizeLf,   // LF after the size line's CR
    kData,     // chunk data
    kDataCr,   // CR after the data
    kDataLf,   // LF after the data
    kTrailer,  // start of a trailer line (or the final CRLF)
    kTrailerLine,
    kTrailerLf,  // LF of a trailer line
    kLastLf,     // LF of the final empty line
    kDone,
    kError,
  };
  size_t fail(std::string why);

  Limits limits_;
  State state_ = State::kSize;
  uint64_t size_ = 0;  // current chunk's size, then its remaining bytes
  size_t digits_ = 0;
  size_t line_ = 0;     // bytes of the current size or trailer line
  size_t trailer_ = 0;  // trailer bytes so far
  std::string error_;
};

// The value `value` of a comma-separated header (Connection, Transfer-Encoding) contains
// `token` as one of its elements (case-insensitive, OWS around elements ignored).
bool hasToken(std::string_view value, std::string_view token);
// True for headers a proxy must not forward (RFC 9110 §7.6.1): Connection, Keep-Alive,
// Proxy-Connection, Proxy-Authenticate, Proxy-Authorization, TE, Trailer, Upgrade.
// Transfer-Encoding is framing and is kept by the caller when it forwards chunked bytes
// verbatim; the headers a Connection header names are checked with namedByConnection().
bool isHopByHop(std::string_view name);
// `name` is one of the comma-separated names in the message's Connection headers.
bool namedByConnection(const std::vector<Header>& headers, std::string_view name);
// The request asks to switch protocols: "Connection: upgrade" and an Upgrade header.
bool wantsUpgrade(const RequestHead& head);
// Keep-alive semantics of a message (§9.3): HTTP/1.1 unless "close"; HTTP/1.0 only
// with "keep-alive".
bool wantsKeepAlive(int version_minor, const std::vector<Header>& headers);
// Idempotent methods (RFC 9110 §9.2.2): retried freely when a pooled connection dies.
bool isIdempotent(std::string_view method);

// Appends "Name: value\r\n" for each header.
void appendHeaders(std::string* out, const std::vector<Header>& headers);
// Serialises a head back to bytes (CRLF, ending with the blank line).
std::string serializeRequestHead(const RequestHead& head);
std::string serializeResponseHead(const ResponseHead& head);
// Standard reason phrase ("Bad Gateway"), "Unknown" for others.
std::string_view reasonPhrase(int status);

}  // namespace edge::gateway
