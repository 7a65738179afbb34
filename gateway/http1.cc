#include "gateway/http1.h"

#include <cstring>

namespace edge::gateway {
namespace {

constexpr std::string_view kOws = " \t";

bool isTokenChar(unsigned char c) {
  if (c >= 'a' && c <= 'z') return true;
  if (c >= 'A' && c <= 'Z') return true;
  if (c >= '0' && c <= '9') return true;
  return std::strchr("!#$%&'*+-.^_`|~", c) != nullptr && c != 0;
}

bool isToken(std::string_view s) {
  if (s.empty()) return false;
  for (unsigned char c : s)
    if (!isTokenChar(c)) return false;
  return true;
}

// Field values: visible characters, SP, HTAB and obs-text; no other control character.
bool isFieldValueChar(unsigned char c) {
  return c == '\t' || (c >= 0x20 && c != 0x7f);
}

std::string_view trimOws(std::string_view s) {
  size_t b = s.find_first_not_of(kOws);
  if (b == std::string_view::npos) return {};
  size_t e = s.find_last_not_of(kOws);
  return s.substr(b, e - b + 1);
}

// Printable excerpt of untrusted input for an error message.
std::string excerpt(std::string_view s, size_t max = 40) {
  std::string out;
  for (size_t i = 0; i < s.size() && i < max; ++i) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    if (c >= 0x20 && c < 0x7f && c != '"' && c != '\\') {
      out += static_cast<char>(c);
    } else {
      static const char* kHex = "0123456789abcdef";
      out += "\\x";
      out += kHex[c >> 4];
      out += kHex[c & 15];
    }
  }
  if (s.size() > max) out += "...";
  return out;
}

// Splits the head into lines (without their CRLF/LF). The head is known to end with an
// empty line; bare CRs were rejected while searching for it.
template <typename Fn>
void forEachLine(std::string_view head, Fn&& fn) {
  size_t pos = 0;
  while (pos < head.size()) {
    size_t nl = head.find('\n', pos);
    if (nl == std::string_view::npos) nl = head.size();
    size_t end = nl;
    if (end > pos && head[end - 1] == '\r') --end;
    if (!fn(head.substr(pos, end - pos))) return;
    pos = nl + 1;
  }
}

// Parses "HTTP/1.x"; 505 for another well-formed version, 400 otherwise.
bool parseVersion(std::string_view v, int* minor, ParseError* err, int bad_status) {
  if (v.size() == 8 && v.substr(0, 5) == "HTTP/" && v[6] == '.' && v[5] >= '0' && v[5] <= '9' &&
      v[7] >= '0' && v[7] <= '9') {
    if (v[5] == '1' && (v[7] == '0' || v[7] == '1')) {
      *minor = v[7] - '0';
      return true;
    }
    err->status = bad_status == 400 ? 505 : bad_status;
    err->message =
        "HTTP version \"" + excerpt(v) + "\" is not supported; HTTP/1.0 and HTTP/1.1 are";
    return false;
  }
  err->status = bad_status;
  err->message = "malformed HTTP version \"" + excerpt(v) + "\"; expected HTTP/1.0 or HTTP/1.1";
  return false;
}

// One "name: value" line into *out; obs-fold is handled by the caller.
bool parseHeaderLine(std::string_view line, std::vector<Header>* out, size_t index, ParseError* err,
                     int bad_status) {
  size_t colon = line.find(':');
  if (colon == std::string_view::npos) {
    err->status = bad_status;
    err->message = "header line " + std::to_string(index) + " \"" + excerpt(line) +
                   "\" has no ':'; expected \"Name: value\"";
    return false;
  }
  std::string_view name = line.substr(0, colon);
  if (!isToken(name)) {
    err->status = bad_status;
    err->message = "header name \"" + excerpt(name) +
                   "\" is not a token (letters, digits, !#$%&'*+-.^_`|~; no space before ':')";
    return false;
  }
  std::string_view value = trimOws(line.substr(colon + 1));
  for (unsigned char c : value) {
    if (!isFieldValueChar(c)) {
      err->status = bad_status;
      err->message = "header " + std::string(name) + " has a control character in its value \"" +
                     excerpt(value) + "\"";
      return false;
    }
  }
  if (out->size() <= index) out->resize(index + 1);
  Header& h = (*out)[index];
  h.name.assign(name);
  h.value.assign(value);
  return true;
}

// Content-Length: every element of every Content-Length header is 1*DIGIT and they are all
// equal. Returns 0 = none, 1 = ok, -1 = error.
int contentLength(const std::vector<Header>& headers, uint64_t* out, std::string* why) {
  bool seen = false;
  uint64_t value = 0;
  for (const Header& h : headers) {
    if (!equalsIgnoreCase(h.name, "content-length")) continue;
    std::string_view rest = h.value;
    while (true) {
      size_t comma = rest.find(',');
      std::string_view el = trimOws(rest.substr(0, comma));
      if (el.empty() || el.size() > 19) {
        *why = "Content-Length \"" + excerpt(h.value) + "\" is not a number of at most 19 digits";
        return -1;
      }
      uint64_t v = 0;
      for (char c : el) {
        if (c < '0' || c > '9') {
          *why = "Content-Length \"" + excerpt(h.value) + "\" is not a decimal number";
          return -1;
        }
        v = v * 10 + static_cast<uint64_t>(c - '0');
      }
      if (seen && v != value) {
        *why = "Content-Length values differ (" + std::to_string(value) + " and " +
               std::to_string(v) + ")";
        return -1;
      }
      seen = true;
      value = v;
      if (comma == std::string_view::npos) break;
      rest = rest.substr(comma + 1);
    }
  }
  *out = value;
  return seen ? 1 : 0;
}

// Transfer-Encoding codings: 0 = none, 1 = ends with chunked (once), 2 = does not end with
// chunked, -1 = malformed.
int transferCoding(const std::vector<Header>& headers, std::string* why) {
  bool any = false, chunked_last = false;
  int chunked_count = 0;
  for (const Header& h : headers) {
    if (!equalsIgnoreCase(h.name, "transfer-encoding")) continue;
    std::string_view rest = h.value;
    while (true) {
      size_t comma = rest.find(',');
      std::string_view el = trimOws(rest.substr(0, comma));
      // Parameters (";q=...") are not allowed on transfer codings we frame by.
      if (!el.empty()) {
        std::string_view name = trimOws(el.substr(0, el.find(';')));
        if (!isToken(name)) {
          *why = "Transfer-Encoding \"" + excerpt(h.value) + "\" has a malformed coding";
          return -1;
        }
        any = true;
        chunked_last = equalsIgnoreCase(el, "chunked");
        if (equalsIgnoreCase(name, "chunked")) ++chunked_count;
      }
      if (comma == std::string_view::npos) break;
      rest = rest.substr(comma + 1);
    }
  }
  if (!any) {
    // An empty Transfer-Encoding header still announces a coding we cannot frame.
    for (const Header& h : headers)
      if (equalsIgnoreCase(h.name, "transfer-encoding")) {
        *why = "Transfer-Encoding is empty";
        return -1;
      }
    return 0;
  }
  if (chunked_count > 1 || (chunked_count == 1 && !chunked_last)) {
    *why = "Transfer-Encoding applies chunked more than once or not last";
    return -1;
  }
  return chunked_last ? 1 : 2;
}

// "METHOD /path HTTP/1.x" into *out.
bool parseRequestLine(std::string_view line, const ParseLimits& limits, RequestHead* out,
                      ParseError* err) {
  size_t sp1 = line.find(' ');
  size_t sp2 = sp1 == std::string_view::npos ? sp1 : line.find(' ', sp1 + 1);
  if (sp2 == std::string_view::npos || line.find(' ', sp2 + 1) != std::string_view::npos) {
    *err = {400, "malformed request line \"" + excerpt(line) +
                     "\"; expected \"METHOD /path HTTP/1.1\" with single spaces"};
    return false;
  }
  std::string_view method = line.substr(0, sp1);
  std::string_view target = line.substr(sp1 + 1, sp2 - sp1 - 1);
  if (!isToken(method)) {
    *err = {400, "method \"" + excerpt(method) + "\" is not a token"};
    return false;
  }
  if (target.size() > limits.max_target) {
    *err = {414, "request-target is " + std::to_string(target.size()) + " bytes; at most " +
                     std::to_string(limits.max_target) + " are allowed"};
    return false;
  }
  if (target.empty() || target[0] != '/') {
    *err = {400, "request-target \"" + excerpt(target) +
                     "\" is not origin-form; only \"/path?query\" is accepted (no absolute "
                     "URLs, authority-form or '*')"};
    return false;
  }
  for (unsigned char c : target) {
    if (c <= 0x20 || c >= 0x7f) {
      *err = {400, "request-target \"" + excerpt(target) +
                       "\" has a byte that is not visible ASCII; percent-encode it"};
      return false;
    }
  }
  if (!parseVersion(line.substr(sp2 + 1), &out->version_minor, err, 400)) return false;
  out->method.assign(method);
  out->target.assign(target);
  return true;
}

// "HTTP/1.x 200 Reason" into *out.
bool parseStatusLine(std::string_view line, ResponseHead* out, ParseError* err) {
  if (line.size() < 12 || line[8] != ' ' || (line.size() > 12 && line[12] != ' ')) {
    *err = {502,
            "malformed status line \"" + excerpt(line) + "\"; expected \"HTTP/1.1 200 Reason\""};
    return false;
  }
  if (!parseVersion(line.substr(0, 8), &out->version_minor, err, 502)) return false;
  int status = 0;
  for (size_t i = 9; i < 12; ++i) {
    if (line[i] < '0' || line[i] > '9') {
      *err = {502, "status code \"" + excerpt(line.substr(9, 3)) + "\" is not 3 digits"};
      return false;
    }
    status = status * 10 + (line[i] - '0');
  }
  if (status < 100 || status > 599) {
    *err = {502, "status code " + std::to_string(status) + " is outside 100..599"};
    return false;
  }
  out->status = status;
  std::string_view reason = line.size() > 13 ? line.substr(13) : std::string_view();
  for (unsigned char c : reason) {
    if (!isFieldValueChar(c)) {
      *err = {502, "status line reason has a control character"};
      return false;
    }
  }
  out->reason.assign(reason);
  return true;
}

// The lines of a complete head (findEnd() found its end): the first one goes to
// `first_line` (parseRequestLine or parseStatusLine), the rest are header fields, parsed
// into *headers in place (their strings are reused from the previous head). Requests and
// responses differ only in the first line, the status of an error (400 or 502) and
// obs-fold: a request's is refused, a response's joins the previous value with one SP.
template <typename FirstLine>
bool parseHeadLines(std::string_view head, bool request, FirstLine&& first_line,
                    std::vector<Header>* headers, ParseError* err) {
  const int bad_status = request ? 400 : 502;
  size_t index = 0;  // 0: the first line, then headers 1..n
  bool ok = true;
  forEachLine(head, [&](std::string_view line) {
    if (line.empty()) return false;
    if (index == 0) {
      if (!first_line(line, err)) return ok = false;
      ++index;
      return true;
    }
    if (line[0] == ' ' || line[0] == '\t') {
      if (request) {
        *err = {400, "obsolete line folding in header line " + std::to_string(index) +
                         "; put each header on one line"};
        return ok = false;
      }
      // obs-fold in a response: replace it with one SP (RFC 9112 §5.2).
      if (index == 1) {
        *err = {502, "a header line starts with whitespace before any header"};
        return ok = false;
      }
      std::string_view more = trimOws(line);
      for (unsigned char c : more) {
        if (!isFieldValueChar(c)) {
          *err = {502, "folded header line has a control character"};
          return ok = false;
        }
      }
      std::string& v = (*headers)[index - 2].value;
      if (!more.empty()) {
        if (!v.empty()) v += ' ';  // values never start with whitespace
        v.append(more);
      }
      return true;
    }
    if (!parseHeaderLine(line, headers, index - 1, err, bad_status)) return ok = false;
    ++index;
    return true;
  });
  if (ok) headers->resize(index == 0 ? 0 : index - 1);
  return ok;
}

}  // namespace

const std::string* findHeader(const std::vector<Header>& headers, std::string_view name) {
  for (const Header& h : headers)
    if (equalsIgnoreCase(h.name, name)) return &h.value;
  return nullptr;
}

std::string_view RequestHead::path() const {
  std::string_view t = target;
  return t.substr(0, t.find('?'));
}

void HeadParser::reset() {
  scanned_ = 0;
  lines_ = 0;
  head_bytes_ = 0;
  error_ = {};
}

HeadParser::State HeadParser::fail(int status, std::string message) {
  error_.status = status;
  error_.message = std::move(message);
  return State::kError;
}

HeadParser::State HeadParser::findEnd(std::string_view b, bool request) {
  const int too_big = request ? 431 : 502;
  size_t pos = scanned_;
  // scanned_ always stops at a line start, so each loop iteration sees whole lines.
  while (pos < b.size()) {
    const char* p = static_cast<const char*>(std::memchr(b.data() + pos, '\n', b.size() - pos));
    if (p == nullptr) break;
    size_t nl = static_cast<size_t>(p - b.data());
    size_t end = nl;
    if (end > pos && b[end - 1] == '\r') --end;
    if (const void* cr = std::memchr(b.data() + pos, '\r', end - pos)) {
      (void)cr;
      return fail(request ? 400 : 502, "bare CR inside line " + std::to_string(lines_ + 1) +
                                           " of the head; lines end with CRLF");
    }
    if (end == pos) {
      if (lines_ == 0) {
        return fail(request ? 400 : 502, request ? "empty request line" : "empty status line");
      }
      head_bytes_ = nl + 1;
      if (head_bytes_ > limits_.max_head_bytes) {
        return fail(too_big, std::string(request ? "request" : "response") + " head is " +
                                 std::to_string(head_bytes_) + " bytes; at most " +
                                 std::to_string(limits_.max_head_bytes) + " are allowed");
      }
      return State::kDone;
    }
    ++lines_;
    if (lines_ > limits_.max_headers + 1) {
      return fail(too_big, "more than " + std::to_string(limits_.max_headers) +
                               " header fields; at most " + std::to_string(limits_.max_headers) +
                               " are allowed");
    }
    pos = nl + 1;
    scanned_ = pos;
  }
  if (request && lines_ == 0 && b.size() > limits_.max_target + 32) {
    size_t sp = b.find(' ');
    if (sp != std::string_view::npos && sp < 32) {
      return fail(414, "request-target is longer than " + std::to_string(limits_.max_target) +
                           " bytes, the most allowed");
    }
  }
  if (b.size() > limits_.max_head_bytes) {
    return fail(too_big, std::string(request ? "request" : "response") + " head is larger than " +
                             std::to_string(limits_.max_head_bytes) + " bytes, the most allowed");
  }
  return State::kNeedMore;
}

HeadParser::State HeadParser::parseRequest(std::string_view buffered, RequestHead* out) {
  if (error_.status != 0) return State::kError;
  State s = findEnd(buffered, true);
  if (s != State::kDone) return s;
  ParseError err;
  auto request_line = [&](std::string_view line, ParseError* e) {
    return parseRequestLine(line, limits_, out, e);
  };
  if (!parseHeadLines(buffered.substr(0, head_bytes_), true, request_line, &out->headers, &err))
    return fail(err.status, std::move(err.message));
  // RFC 9112 §3.2: exactly one Host in HTTP/1.1.
  int hosts = 0;
  for (const Header& h : out->headers)
    if (equalsIgnoreCase(h.name, "host")) ++hosts;
  if (hosts > 1) return fail(400, "more than one Host header");
  if (hosts == 0 && out->version_minor == 1) return fail(400, "HTTP/1.1 request without Host");
  return State::kDone;
}

HeadParser::State HeadParser::parseResponse(std::string_view buffered, ResponseHead* out) {
  if (error_.status != 0) return State::kError;
  State s = findEnd(buffered, false);
  if (s != State::kDone) return s;
  ParseError err;
  auto status_line = [&](std::string_view line, ParseError* e) {
    return parseStatusLine(line, out, e);
  };
  if (!parseHeadLines(buffered.substr(0, head_bytes_), false, status_line, &out->headers, &err))
    return fail(err.status, std::move(err.message));
  return State::kDone;
}

bool requestFraming(const RequestHead& head, Framing* out, ParseError* err) {
  std::string why;
  int te = transferCoding(head.headers, &why);
  if (te < 0) {
    *err = {400, why};
    return false;
  }
  uint64_t length = 0;
  int cl = contentLength(head.headers, &length, &why);
  if (cl < 0) {
    *err = {400, why};
    return false;
  }
  if (te > 0) {
    if (cl > 0) {
      *err = {400,
              "both Transfer-Encoding and Content-Length (a request smuggling shape); send one"};
      return false;
    }
    if (head.version_minor == 0) {
      *err = {400, "Transfer-Encoding in an HTTP/1.0 request"};
      return false;
    }
    if (te == 2) {
      *err = {400, "Transfer-Encoding does not end with chunked; the body length is unknown"};
      return false;
    }
    *out = {BodyKind::kChunked, 0};
    return true;
  }
  if (cl > 0 && length > 0) {
    *out = {BodyKind::kLength, length};
  } else {
    *out = {BodyKind::kNone, 0};
  }
  return true;
}

bool responseFraming(const ResponseHead& head, std::string_view request_method,
                     bool upgrade_requested, Framing* out, ParseError* err) {
  if (head.status == 101) {
    if (!upgrade_requested) {
      *err = {502, "101 Switching Protocols to a request that did not ask to upgrade"};
      return false;
    }
    *out = {BodyKind::kTunnel, 0};
    return true;
  }
  if (head.status < 200 || head.status == 204 || head.status == 304 || request_method == "HEAD") {
    *out = {BodyKind::kNone, 0};
    return true;
  }
  std::string why;
  int te = transferCoding(head.headers, &why);
  if (te < 0) {
    *err = {502, why};
    return false;
  }
  uint64_t length = 0;
  int cl = contentLength(head.headers, &length, &why);
  if (cl < 0) {
    *err = {502, why};
    return false;
  }
  if (te > 0) {
    if (cl > 0) {
      *err = {502, "both Transfer-Encoding and Content-Length in the response"};
      return false;
    }
    *out = {te == 1 ? BodyKind::kChunked : BodyKind::kUntilClose, 0};
    return true;
  }
  if (cl > 0) {
    *out = {length > 0 ? BodyKind::kLength : BodyKind::kNone, length};
    return true;
  }
  *out = {BodyKind::kUntilClose, 0};
  return true;
}

void ChunkedTracker::reset() {
  state_ = State::kSize;
  size_ = 0;
  digits_ = 0;
  line_ = 0;
  trailer_ = 0;
  error_.clear();
}

size_t ChunkedTracker::fail(std::string why) {
  state_ = State::kError;
  error_ = std::move(why);
  return 0;
}

size_t ChunkedTracker::feed(const char* data, size_t len) {
  size_t i = 0;
  while (i < len) {
    const unsigned char c = static_cast<unsigned char>(data[i]);
    switch (state_) {
      case State::kSize: {
        int v = -1;
        if (c >= '0' && c <= '9')
          v = c - '0';
        else if (c >= 'a' && c <= 'f')
          v = c - 'a' + 10;
        else if (c >= 'A' && c <= 'F')
          v = c - 'A' + 10;
        if (v >= 0) {
          if (++digits_ > 16) return fail("chunk size has more than 16 hex digits");
          size_ = size_ * 16 + static_cast<uint64_t>(v);
          ++i;
          break;
        }
        if (digits_ == 0) return fail("chunk size is not a hex number");
        if (c == ';' || c == ' ' || c == '\t') {
          state_ = State::kExt;
          line_ = digits_;
          break;  // kExt consumes this byte
        }
        if (c == '\r') {
          state_ = State::kSizeLf;
          ++i;
          break;
        }
        return fail("unexpected byte after a chunk size; expected ';' or CRLF");
      }
      case State::kExt:
        if (c == '\r') {
          state_ = State::kSizeLf;
        } else if (c != '\t' && (c < 0x20 || c == 0x7f)) {
          return fail("control character in a chunk extension");
        } else if (++line_ > limits_.max_line) {
          return fail("chunk size line is longer than " + std::to_string(limits_.max_line) +
                      " bytes");
        }
        ++i;
        break;
      case State::kSizeLf:
        if (c != '\n') return fail("chunk size line does not end with CRLF");
        ++i;
        state_ = size_ == 0 ? State::kTrailer : State::kData;
        break;
      case State::kData: {
        uint64_t n = std::min<uint64_t>(size_, len - i);
        i += static_cast<size_t>(n);
        size_ -= n;
        if (size_ == 0) state_ = State::kDataCr;
        break;
      }
      case State::kDataCr:
        if (c != '\r') return fail("chunk data is longer than its size (no CRLF after it)");
        ++i;
        state_ = State::kDataLf;
        break;
      case State::kDataLf:
        if (c != '\n') return fail("chunk data is not followed by CRLF");
        ++i;
        state_ = State::kSize;
        digits_ = 0;
        size_ = 0;
        line_ = 0;
        break;
      case State::kTrailer:
        if (c == '\r') {
          state_ = State::kLastLf;
          ++i;
          break;
        }
        state_ = State::kTrailerLine;
        line_ = 0;
        break;
      case State::kTrailerLine:
        if (c == '\r') {
          state_ = State::kTrailerLf;
        } else if (c != '\t' && (c < 0x20 || c == 0x7f)) {
          return fail("control character in a trailer line");
        } else if (++line_ > limits_.max_line) {
          return fail("trailer line is longer than " + std::to_string(limits_.max_line) + " bytes");
        }
        if (++trailer_ > limits_.max_trailer_bytes) {
          return fail("trailers are larger than " + std::to_string(limits_.max_trailer_bytes) +
                      " bytes");
        }
        ++i;
        break;
      case State::kTrailerLf:
        if (c != '\n') return fail("trailer line does not end with CRLF");
        ++i;
        state_ = State::kTrailer;
        break;
      case State::kLastLf:
        if (c != '\n') return fail("chunked body does not end with CRLF");
        ++i;
        state_ = State::kDone;
        return i;
      case State::kDone:
        return i;
      case State::kError:
        return 0;
    }
  }
  return i;
}

bool hasToken(std::string_view value, std::string_view token) {
  while (true) {
    size_t comma = value.find(',');
    if (equalsIgnoreCase(trimOws(value.substr(0, comma)), token)) return true;
    if (comma == std::string_view::npos) return false;
    value = value.substr(comma + 1);
  }
}

bool isHopByHop(std::string_view name) {
  // By length first: most names match none, and this runs for every forwarded header.
  switch (name.size()) {
    case 2:
      return equalsIgnoreCase(name, "te");
    case 7:
      return equalsIgnoreCase(name, "trailer") || equalsIgnoreCase(name, "upgrade");
    case 10:
      return equalsIgnoreCase(name, "connection") || equalsIgnoreCase(name, "keep-alive");
    case 16:
      return equalsIgnoreCase(name, "proxy-connection");
    case 18:
      return equalsIgnoreCase(name, "proxy-authenticate");
    case 19:
      return equalsIgnoreCase(name, "proxy-authorization");
    default:
      return false;
  }
}

bool namedByConnection(const std::vector<Header>& headers, std::string_view name) {
  for (const Header& h : headers)
    if (equalsIgnoreCase(h.name, "connection") && hasToken(h.value, name)) return true;
  return false;
}

bool wantsUpgrade(const RequestHead& head) {
  return head.find("upgrade") != nullptr && namedByConnection(head.headers, "upgrade");
}

bool wantsKeepAlive(int version_minor, const std::vector<Header>& headers) {
  bool keep = version_minor >= 1;
  for (const Header& h : headers) {
    if (!equalsIgnoreCase(h.name, "connection")) continue;
    if (hasToken(h.value, "close")) return false;
    if (hasToken(h.value, "keep-alive")) keep = true;
  }
  return keep;
}

bool isIdempotent(std::string_view m) {
  return m == "GET" || m == "HEAD" || m == "OPTIONS" || m == "TRACE" || m == "PUT" || m == "DELETE";
}

void appendHeaders(std::string* out, const std::vector<Header>& headers) {
  for (const Header& h : headers) {
    out->append(h.name);
    out->append(": ", 2);
    out->append(h.value);
    out->append("\r\n", 2);
  }
}

std::string serializeRequestHead(const RequestHead& head) {
  std::string out;
  out.reserve(256);
  out.append(head.method);
  out += ' ';
  out.append(head.target);
  out.append(head.version_minor == 0 ? " HTTP/1.0\r\n" : " HTTP/1.1\r\n");
  appendHeaders(&out, head.headers);
  out.append("\r\n");
  return out;
}

std::string serializeResponseHead(const ResponseHead& head) {
  std::string out;
  out.reserve(256);
  out.append(head.version_minor == 0 ? "HTTP/1.0 " : "HTTP/1.1 ");
  out.append(std::to_string(head.status));
  out += ' ';
  out.append(head.reason.empty() ? std::string(reasonPhrase(head.status)) : head.reason);
  out.append("\r\n");
  appendHeaders(&out, head.headers);
  out.append("\r\n");
  return out;
}

std::string_view reasonPhrase(int status) {
  switch (status) {
    case 100:
      return "Continue";
    case 101:
      return "Switching Protocols";
    case 200:
      return "OK";
    case 201:
      return "Created";
    case 202:
      return "Accepted";
    case 204:
      return "No Content";
    case 206:
      return "Partial Content";
    case 301:
      return "Moved Permanently";
    case 302:
      return "Found";
    case 304:
      return "Not Modified";
    case 400:
      return "Bad Request";
    case 401:
      return "Unauthorized";
    case 403:
      return "Forbidden";
    case 404:
      return "Not Found";
    case 405:
      return "Method Not Allowed";
    case 408:
      return "Request Timeout";
    case 413:
      return "Content Too Large";
    case 414:
      return "URI Too Long";
    case 429:
      return "Too Many Requests";
    case 431:
      return "Request Header Fields Too Large";
    case 500:
      return "Internal Server Error";
    case 501:
      return "Not Implemented";
    case 502:
      return "Bad Gateway";
    case 503:
      return "Service Unavailable";
    case 504:
      return "Gateway Timeout";
    case 505:
      return "HTTP Version Not Supported";
    default:
      return "Unknown";
  }
}

}  // namespace edge::gateway
