// http1_fuzz: the gateway's HTTP/1.1 parsers (gateway/http1.h) on untrusted bytes, as
// clients and upstreams send them. Properties, beyond not crashing:
//  - a head delivered in two pieces (split at a point the input chooses) parses exactly
//    like the head delivered whole: same state, same length, same error status;
//  - a parsed request or response head, serialised and parsed again, is the same head
//    (what the proxy forwards is what it understood);
//  - errors carry an allowed status and a message;
//  - the chunked tracker ends at the same byte whether fed whole or one byte at a time.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "gateway/http1.h"
#include "tests/fuzz/fuzz_check.h"

namespace {

using namespace edge::gateway;
using State = HeadParser::State;

bool sameHeaders(const std::vector<Header>& a, const std::vector<Header>& b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i)
    if (a[i].name != b[i].name || a[i].value != b[i].value) return false;
  return true;
}

void checkRequest(std::string_view in, size_t split) {
  ParseLimits limits{4096, 50, 1024};
  HeadParser whole(limits);
  RequestHead a;
  State sa = whole.parseRequest(in, &a);
  HeadParser pieces(limits);
  RequestHead b;
  State sb = pieces.parseRequest(in.substr(0, split), &b);
  if (sb == State::kNeedMore) sb = pieces.parseRequest(in, &b);
  FUZZ_CHECK(sa == sb, "request state differs when split at " + std::to_string(split));
  if (sa == State::kError) {
    int st = whole.error().status;
    FUZZ_CHECK(st == 400 || st == 414 || st == 431 || st == 505, std::to_string(st));
    FUZZ_CHECK(!whole.error().message.empty(), "empty error message");
    FUZZ_CHECK(pieces.error().status == st,
               whole.error().message + " vs " + pieces.error().message);
    return;
  }
  if (sa != State::kDone) return;
  FUZZ_CHECK(whole.headBytes() == pieces.headBytes() && whole.headBytes() <= in.size(),
             "head length differs");
  FUZZ_CHECK(a.method == b.method && a.target == b.target && sameHeaders(a.headers, b.headers),
             "request head differs when split");
  FUZZ_CHECK(!a.target.empty() && a.target[0] == '/', a.target);
  std::string again = serializeRequestHead(a);
  HeadParser p2(ParseLimits{1 << 20, 1000, 1 << 20});
  RequestHead c;
  FUZZ_CHECK(p2.parseRequest(again, &c) == State::kDone, p2.error().message + "\n" + again);
  FUZZ_CHECK(p2.headBytes() == again.size(), again);
  FUZZ_CHECK(c.method == a.method && c.target == a.target && c.version_minor == a.version_minor &&
                 sameHeaders(c.headers, a.headers),
             "request head changed through serialisation:\n" + again);
  Framing f;
  ParseError err;
  if (!requestFraming(a, &f, &err))
    FUZZ_CHECK(err.status == 400 && !err.message.empty(), err.message);
  wantsUpgrade(a);
  wantsKeepAlive(a.version_minor, a.headers);
}

void checkResponse(std::string_view in, size_t split) {
  ParseLimits limits{4096, 50, 4096};
  HeadParser whole(limits);
  ResponseHead a;
  State sa = whole.parseResponse(in, &a);
  HeadParser pieces(limits);
  ResponseHead b;
  State sb = pieces.parseResponse(in.substr(0, split), &b);
  if (sb == State::kNeedMore) sb = pieces.parseResponse(in, &b);
  FUZZ_CHECK(sa == sb, "response state differs when split at " + std::to_string(split));
  if (sa == State::kError) {
    FUZZ_CHECK(whole.error().status == 502, whole.error().message);
    return;
  }
  if (sa != State::kDone) return;
  FUZZ_CHECK(a.status >= 100 && a.status <= 599, std::to_string(a.status));
  FUZZ_CHECK(a.reason == b.reason && sameHeaders(a.headers, b.headers), "response differs");
  std::string again = serializeResponseHead(a);
  HeadParser p2(ParseLimits{1 << 20, 1000, 1 << 20});
  ResponseHead c;
  FUZZ_CHECK(p2.parseResponse(again, &c) == State::kDone, p2.error().message + "\n" + again);
  FUZZ_CHECK(c.status == a.status && sameHeaders(c.headers, a.headers),
             "response head changed through serialisation:\n" + again);
  Framing f;
  ParseError err;
  for (std::string_view method : {"GET", "HEAD"})
    if (!responseFraming(a, method, true, &f, &err)) FUZZ_CHECK(err.status == 502, err.message);
}

void checkChunked(std::string_view in) {
  ChunkedTracker::Limits limits{64, 256};
  ChunkedTracker whole(limits);
  size_t used_whole = whole.feed(in.data(), in.size());
  ChunkedTracker bytes(limits);
  size_t used_bytes = 0;
  for (size_t i = 0; i < in.size() && !bytes.done() && !bytes.failed(); ++i)
    used_bytes += bytes.feed(in.data() + i, 1);
  FUZZ_CHECK(whole.done() == bytes.done() && whole.failed() == bytes.failed(),
             "chunked state differs when fed byte by byte");
  if (whole.done()) FUZZ_CHECK(used_whole == used_bytes, "chunked end differs");
  if (whole.failed()) FUZZ_CHECK(!whole.error().empty(), "empty chunked error");
  FUZZ_CHECK(used_whole <= in.size(), "consumed more than given");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  // First byte: which parser; second: where to split.
  std::string_view in(reinterpret_cast<const char*>(data) + 2, size - 2);
  size_t split = in.empty() ? 0 : data[1] % (in.size() + 1);
  switch (data[0] % 3) {
    case 0:
      checkRequest(in, split);
      break;
    case 1:
      checkResponse(in, split);
      break;
    default:
      checkChunked(in);
      break;
  }
  return 0;
}
