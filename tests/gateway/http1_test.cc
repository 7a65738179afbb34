#include "gateway/http1.h"

#include <gtest/gtest.h>

#include <string>

namespace edge::gateway {
namespace {

using State = HeadParser::State;

// Feeds `text` one byte at a time, as a slow client would send it.
State parseRequestBytewise(std::string_view text, RequestHead* head, HeadParser* p) {
  State s = State::kNeedMore;
  for (size_t i = 1; i <= text.size() && s == State::kNeedMore; ++i)
    s = p->parseRequest(text.substr(0, i), head);
  return s;
}

TEST(Http1RequestTest, ParsesAHeadDeliveredInPieces) {
  const std::string text =
      "POST /api/items?x=1 HTTP/1.1\r\nHost: example\r\nContent-Length: 3\r\n"
      "X-Empty:\r\nX-Pad:   v  \r\n\r\nabc";
  HeadParser p;
  RequestHead head;
  ASSERT_EQ(parseRequestBytewise(text, &head, &p), State::kDone) << p.error().message;
  EXPECT_EQ(p.headBytes(), text.size() - 3);
  EXPECT_EQ(head.method, "POST");
  EXPECT_EQ(head.target, "/api/items?x=1");
  EXPECT_EQ(head.path(), "/api/items");
  EXPECT_EQ(head.version_minor, 1);
  ASSERT_EQ(head.headers.size(), 4u);
  ASSERT_NE(head.find("content-length"), nullptr);
  EXPECT_EQ(*head.find("CONTENT-LENGTH"), "3");
  EXPECT_EQ(*head.find("x-empty"), "");
  EXPECT_EQ(*head.find("x-pad"), "v");
  EXPECT_EQ(head.find("missing"), nullptr);
  Framing f;
  ParseError err;
  ASSERT_TRUE(requestFraming(head, &f, &err));
  EXPECT_EQ(f.kind, BodyKind::kLength);
  EXPECT_EQ(f.length, 3u);
}

TEST(Http1RequestTest, ToleratesBareLfAndReusesTheHead) {
  HeadParser p;
  RequestHead head;
  ASSERT_EQ(p.parseRequest("GET / HTTP/1.0\nA: 1\nB: 2\n\n", &head), State::kDone);
  EXPECT_EQ(head.version_minor, 0);
  EXPECT_EQ(head.headers.size(), 2u);
  p.reset();
  ASSERT_EQ(p.parseRequest("GET /b HTTP/1.1\r\nHost: h\r\n\r\n", &head), State::kDone);
  EXPECT_EQ(head.target, "/b");
  ASSERT_EQ(head.headers.size(), 1u);
  EXPECT_EQ(head.headers[0].name, "Host");
}

struct BadRequest {
  std::string text;
  int status;
  std::string message_part;
};

class Http1BadRequestTest : public testing::TestWithParam<BadRequest> {};

TEST_P(Http1BadRequestTest, IsRefusedWithAClearError) {
  const BadRequest& c = GetParam();
  HeadParser p(ParseLimits{1024, 5, 100});
  RequestHead head;
  State s = p.parseRequest(c.text, &head);
  if (s == State::kDone) {
    Framing f;
    ParseError err;
    ASSERT_FALSE(requestFraming(head, &f, &err)) << c.text;
    EXPECT_EQ(err.status, c.status);
    EXPECT_NE(err.message.find(c.message_part), std::string::npos) << err.message;
    return;
  }
  ASSERT_EQ(s, State::kError) << c.text;
  EXPECT_EQ(p.error().status, c.status) << p.error().message;
  EXPECT_NE(p.error().message.find(c.message_part), std::string::npos) << p.error().message;
}

INSTANTIATE_TEST_SUITE_P(
    Cases, Http1BadRequestTest,
    testing::Values(
        BadRequest{"GET  / HTTP/1.1\r\nHost: h\r\n\r\n", 400, "single spaces"},
        BadRequest{"GET http://x/ HTTP/1.1\r\nHost: h\r\n\r\n", 400, "origin-form"},
        BadRequest{"CONNECT x:443 HTTP/1.1\r\nHost: h\r\n\r\n", 400, "origin-form"},
        BadRequest{"GET / HTTP/2.0\r\nHost: h\r\n\r\n", 505, "not supported"},
        BadRequest{"GET / HTTX/1.1\r\nHost: h\r\n\r\n", 400, "malformed HTTP version"},
        BadRequest{"G(T / HTTP/1.1\r\nHost: h\r\n\r\n", 400, "not a token"},
        BadRequest{"GET / HTTP/1.1\r\n\r\n", 400, "without Host"},
        BadRequest{"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400, "more than one Host"},
        BadRequest{"GET / HTTP/1.1\r\nHost : h\r\n\r\n", 400, "not a token"},
        BadRequest{"GET / HTTP/1.1\r\nHost: h\r\nNoColon\r\n\r\n", 400, "has no ':'"},
        BadRequest{"GET / HTTP/1.1\r\nHost: h\r\nA: b\r\n folded\r\n\r\n", 400, "folding"},
        BadRequest{"GET / HTTP/1.1\r\nHost: h\rX: y\r\n\r\n", 400, "bare CR"},
        BadRequest{std::string("GET / HTTP/1.1\r\nHost: h\r\nA: \x01\r\n\r\n"), 400,
                   "control character"},
        BadRequest{"GET /" + std::string(200, 'a') + " HTTP/1.1\r\nHost: h\r\n\r\n", 414,
                   "at most 100"},
        BadRequest{"GET / HTTP/1.1\r\nHost: h\r\nA: 1\r\nB: 1\r\nC: 1\r\nD: 1\r\nE: 1\r\n\r\n", 431,
                   "at most 5"},
        BadRequest{"GET / HTTP/1.1\r\nHost: h\r\nA: " + std::string(1100, 'x') + "\r\n\r\n", 431,
                   "1024"},
        BadRequest{"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n",
                   400, "differ"},
        BadRequest{"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3, 4\r\n\r\n", 400, "differ"},
        BadRequest{"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: -1\r\n\r\n", 400, "decimal"},
        BadRequest{"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 99999999999999999999\r\n\r\n",
                   400, "19 digits"},
        BadRequest{"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n"
                   "Content-Length: 3\r\n\r\n",
                   400, "smuggling"},
        BadRequest{"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip\r\n\r\n", 400,
                   "does not end with chunked"},
        BadRequest{"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked, chunked\r\n\r\n", 400,
                   "more than once"},
        BadRequest{"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", 400, "HTTP/1.0"}));

TEST(Http1RequestTest, LongRequestLineIsA414BeforeItEnds) {
  HeadParser p(ParseLimits{64 * 1024, 100, 100});
  RequestHead head;
  EXPECT_EQ(p.parseRequest("GET /" + std::string(300, 'a'), &head), State::kError);
  EXPECT_EQ(p.error().status, 414);
}

TEST(Http1RequestTest, EndlessHeadIsA431) {
  HeadParser p(ParseLimits{1000, 100, 100});
  RequestHead head;
  std::string text = "GET / HTTP/1.1\r\nHost: h\r\n";
  while (text.size() < 1001) text += "X-A: 1234567890\r\n";
  EXPECT_EQ(p.parseRequest(text, &head), State::kError);
  EXPECT_EQ(p.error().status, 431);
}

TEST(Http1FramingTest, ChunkedAndUpgradeRequests) {
  HeadParser p;
  RequestHead head;
  ASSERT_EQ(p.parseRequest("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip, Chunked\r\n"
                           "Connection: keep-alive, Upgrade\r\nUpgrade: websocket\r\n\r\n",
                           &head),
            State::kDone);
  Framing f;
  ParseError err;
  ASSERT_TRUE(requestFraming(head, &f, &err)) << err.message;
  EXPECT_EQ(f.kind, BodyKind::kChunked);
  EXPECT_TRUE(wantsUpgrade(head));
  EXPECT_TRUE(namedByConnection(head.headers, "keep-alive"));
  EXPECT_TRUE(wantsKeepAlive(1, head.headers));
}

TEST(Http1FramingTest, KeepAliveSemantics) {
  EXPECT_TRUE(wantsKeepAlive(1, {}));
  EXPECT_FALSE(wantsKeepAlive(0, {}));
  EXPECT_TRUE(wantsKeepAlive(0, {{"Connection", "Keep-Alive"}}));
  EXPECT_FALSE(wantsKeepAlive(1, {{"Connection", "foo, close"}}));
}

ResponseHead parseResponseOk(std::string_view text) {
  HeadParser p;
  ResponseHead head;
  EXPECT_EQ(p.parseResponse(text, &head), State::kDone) << p.error().message;
  return head;
}

TEST(Http1ResponseTest, FramingFollowsRfc9112) {
  Framing f;
  ParseError err;
  ResponseHead h = parseResponseOk("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n");
  ASSERT_TRUE(responseFraming(h, "GET", false, &f, &err));
  EXPECT_EQ(f.kind, BodyKind::kLength);
  EXPECT_EQ(f.length, 10u);
  ASSERT_TRUE(responseFraming(h, "HEAD", false, &f, &err));
  EXPECT_EQ(f.kind, BodyKind::kNone);

  h = parseResponseOk("HTTP/1.1 204 No Content\r\n\r\n");
  ASSERT_TRUE(responseFraming(h, "GET", false, &f, &err));
  EXPECT_EQ(f.kind, BodyKind::kNone);
  h = parseResponseOk("HTTP/1.1 304 Not Modified\r\nContent-Length: 5\r\n\r\n");
  ASSERT_TRUE(responseFraming(h, "GET", false, &f, &err));
  EXPECT_EQ(f.kind, BodyKind::kNone);
  h = parseResponseOk("HTTP/1.1 100 Continue\r\n\r\n");
  ASSERT_TRUE(responseFraming(h, "POST", false, &f, &err));
  EXPECT_EQ(f.kind, BodyKind::kNone);

  h = parseResponseOk("HTTP/1.0 200 OK\r\nServer: x\r\n\r\n");
  EXPECT_EQ(h.version_minor, 0);
  ASSERT_TRUE(responseFraming(h, "GET", false, &f, &err));
  EXPECT_EQ(f.kind, BodyKind::kUntilClose);

  h = parseResponseOk("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n");
  ASSERT_TRUE(responseFraming(h, "GET", false, &f, &err));
  EXPECT_EQ(f.kind, BodyKind::kChunked);

  h = parseResponseOk("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n");
  ASSERT_TRUE(responseFraming(h, "GET", true, &f, &err));
  EXPECT_EQ(f.kind, BodyKind::kTunnel);
  EXPECT_FALSE(responseFraming(h, "GET", false, &f, &err));
  EXPECT_EQ(err.status, 502);

  h = parseResponseOk("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n");
  EXPECT_FALSE(responseFraming(h, "GET", false, &f, &err));
  EXPECT_NE(err.message.find("both"), std::string::npos);
}

TEST(Http1ResponseTest, ObsFoldIsUnfoldedAndReasonMayBeEmpty) {
  ResponseHead h = parseResponseOk("HTTP/1.1 200 OK\r\nX-A: one\r\n  two\r\nX-B: 3\r\n\r\n");
  EXPECT_EQ(*h.find("x-a"), "one two");
  EXPECT_EQ(*h.find("x-b"), "3");
  h = parseResponseOk("HTTP/1.1 404\r\n\r\n");
  EXPECT_EQ(h.status, 404);
  EXPECT_EQ(h.reason, "");
}

TEST(Http1ResponseTest, GarbageIsABadResponse) {
  for (std::string_view text :
       {"garbage garbage\r\n\r\n", "HTTP/1.1 2x0 OK\r\n\r\n", "HTTP/1.1 999 Big\r\n\r\n",
        "HTTP/3.0 200 OK\r\n\r\n", "SSH-2.0-OpenSSH_9.2\r\n\r\n"}) {
    HeadParser p;
    ResponseHead h;
    EXPECT_EQ(p.parseResponse(text, &h), State::kError) << text;
    EXPECT_EQ(p.error().status, 502) << text;
  }
}

size_t feedBytewise(ChunkedTracker* t, std::string_view body) {
  size_t used = 0;
  for (size_t i = 0; i < body.size() && !t->done() && !t->failed(); ++i)
    used += t->feed(body.data() + i, 1);
  return used;
}

TEST(Http1ChunkedTest, FindsTheEndWithExtensionsAndTrailers) {
  const std::string body =
      "5;name=\"v\"\r\nhello\r\n1A\r\nabcdefghijklmnopqrstuvwxyz\r\n0\r\nX-Sum: 1\r\n\r\n";
  for (bool bytewise : {false, true}) {
    ChunkedTracker t;
    std::string input = body + "GET / HTTP/1.1\r\n";
    size_t used = bytewise ? feedBytewise(&t, input) : t.feed(input.data(), input.size());
    EXPECT_TRUE(t.done()) << t.error();
    EXPECT_EQ(used, body.size());
  }
}

TEST(Http1ChunkedTest, RefusesMalformedBodies) {
  for (std::string_view body : {"x\r\n", "5\r\nhelloXX", "5\nhello\r\n", "5\r\nhello\n",
                                "12345678901234567\r\n", "0\r\nX: a\nb\r\n\r\n", "3;\x01\r\n"}) {
    ChunkedTracker t;
    t.feed(body.data(), body.size());
    EXPECT_TRUE(t.failed()) << body;
    EXPECT_FALSE(t.error().empty());
  }
  ChunkedTracker::Limits limits;
  limits.max_trailer_bytes = 10;
  ChunkedTracker t(limits);
  std::string body = "0\r\nX-Long: 12345678901234\r\n\r\n";
  t.feed(body.data(), body.size());
  EXPECT_TRUE(t.failed());
  EXPECT_NE(t.error().find("trailers"), std::string::npos);
}

TEST(Http1HelpersTest, HopByHopAndSerialisation) {
  EXPECT_TRUE(isHopByHop("Keep-Alive"));
  EXPECT_TRUE(isHopByHop("TE"));
  EXPECT_TRUE(isHopByHop("proxy-authorization"));
  EXPECT_FALSE(isHopByHop("Transfer-Encoding"));
  EXPECT_FALSE(isHopByHop("Host"));
  EXPECT_TRUE(hasToken(" close , x", "close"));
  EXPECT_FALSE(hasToken("closed", "close"));
  EXPECT_TRUE(isIdempotent("PUT"));
  EXPECT_FALSE(isIdempotent("POST"));
  RequestHead r{"GET", "/a", 1, {{"Host", "h"}, {"X", "1"}}};
  EXPECT_EQ(serializeRequestHead(r), "GET /a HTTP/1.1\r\nHost: h\r\nX: 1\r\n\r\n");
  ResponseHead s{1, 502, "", {{"Content-Length", "0"}}};
  EXPECT_EQ(serializeResponseHead(s), "HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n");
}

}  // namespace
}  // namespace edge::gateway
