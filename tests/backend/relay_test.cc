// The signaling API and the relay server end to end on loopback: what a node sees on the
// HTTP API and on the relay's sockets.
#include <arpa/inet.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "common/clock.h"
#include "tests/backend/relay_test_support.h"

namespace edge::backend {
namespace {

using nlohmann::json;
using testing::closedWithin;
using testing::dial;
using testing::handshake;
using testing::nodeToken;
using testing::readLine;
using testing::RelayBackend;
using testing::sendAll;

const std::string kA = "aaaaaaaaaaaaaaaa";
const std::string kB = "bbbbbbbbbbbbbbbb";
const std::string kC = "cccccccccccccccc";

json parse(const std::string& line) {
  return json::parse(line, nullptr, false);
}

class RelayTest : public ::testing::Test {
 protected:
  void SetUp() override {}
  void start() { be_.start(); }

  // Node `node` holds a SEP; returns its fd after "OK sep".
  int openSep(const std::string& node, const std::string& account = "acct1") {
    auto [status, body] = be_.post("/v1/relay/sep", nodeToken(node, account), json::object());
    EXPECT_EQ(status, 200) << body.dump();
    int fd = dial(body.value("address", ""));
    EXPECT_EQ(handshake(fd, body.value("ticket", "")), "OK sep");
    return fd;
  }

  // The caller asks to reach `target` and sends its connect line; returns its fd.
  int sendConnect(const std::string& caller, const std::string& target, std::string* signal_id,
                  const std::string& kind = "http") {
    auto [status, body] =
        be_.post("/v1/relay/connect", nodeToken(caller), {{"target", target}, {"kind", kind}});
    EXPECT_EQ(status, 200) << body.dump();
    if (signal_id) *signal_id = body.value("signal", "");
    int fd = dial(body.value("address", ""));
    EXPECT_EQ(handshake(fd, body.value("ticket", "")), "OK signal");
    sendAll(fd, json{{"type", "connect"}, {"kind", kind}, {"token", "caller-jwt"}}.dump() + "\n");
    return fd;
  }

  // A whole signal + BEP exchange between caller B and target A; returns the two
  // connected legs {target's, caller's} after their "OK bep".
  std::pair<int, int> openBepPair(json bep_extra = json::object()) {
    int sep = openSep(kA);
    std::string signal_id;
    int caller = sendConnect(kB, kA, &signal_id);
    json signal = parse(readLine(sep));
    EXPECT_EQ(signal.value("id", ""), signal_id);
    json req = {{"signal", signal_id}, {"caller", kB}};
    req.update(bep_extra);
    auto [status, bep] = be_.post("/v1/relay/bep", nodeToken(kA), req);
    EXPECT_EQ(status, 200) << bep.dump();
    int a_leg = dial(bep.value("address", ""));
    EXPECT_EQ(handshake(a_leg, bep.value("ticket", "")), "OK bep");
    sendAll(sep, json{{"type", "accept"},
                      {"id", signal_id},
                      {"bep", bep["address"]},
                      {"ticket", bep["caller_ticket"]}}
                         .dump() +
                     "\n");
    json answer = parse(readLine(caller));
    EXPECT_EQ(answer.value("type", ""), "accept") << answer.dump();
    int b_leg = dial(answer.value("bep", ""));
    EXPECT_EQ(handshake(b_leg, answer.value("ticket", "")), "OK bep");
    ::close(caller);
    ::close(sep);
    last_bep_ = bep;
    return {a_leg, b_leg};
  }

  RelayBackend be_;
  json last_bep_;
};

TEST_F(RelayTest, SepReceivesTheSignalAndTheBepCarriesBytesBothWays) {
  start();
  int sep = openSep(kA);
  std::string signal_id;
  int caller = sendConnect(kB, kA, &signal_id);

  json signal = parse(readLine(sep));
  EXPECT_EQ(signal["type"], "signal");
  EXPECT_EQ(signal["id"], signal_id);
  EXPECT_EQ(signal["from"], kB);
  EXPECT_EQ(signal["kind"], "http");
  EXPECT_EQ(signal["token"], "caller-jwt");

  auto [status, bep] = be_.post("/v1/relay/bep", nodeToken(kA), {{"signal", signal_id}});
  ASSERT_EQ(status, 200) << bep.dump();
  EXPECT_EQ(bep["address"], be_.relay->advertisedAddress());
  int a_leg = dial(bep["address"]);
  ASSERT_EQ(handshake(a_leg, bep["ticket"].get<std::string>()), "OK bep");
  sendAll(sep, json{{"type", "accept"},
                    {"id", signal_id},
                    {"bep", bep["address"]},
                    {"ticket", bep["caller_ticket"]}}
                       .dump() +
                   "\n");
  json answer = parse(readLine(caller));
  ASSERT_EQ(answer["type"], "accept") << answer.dump();
  int b_leg = dial(answer["bep"]);
  ASSERT_EQ(handshake(b_leg, answer["ticket"].get<std::string>()), "OK bep");

  sendAll(b_leg, "ECP1hello");
  char buf[16] = {};
  ASSERT_EQ(::recv(a_leg, buf, 9, MSG_WAITALL), 9);
  EXPECT_EQ(std::string(buf, 9), "ECP1hello");
  sendAll(a_leg, "world");
  ASSERT_EQ(::recv(b_leg, buf, 5, MSG_WAITALL), 5);
  EXPECT_EQ(std::string(buf, 5), "world");

  json stats = be_.relay->stats();
  EXPECT_EQ(stats["sep_active"], 1);
  EXPECT_EQ(stats["bep_active"], 1);
  EXPECT_EQ(stats["signals_forwarded"], 1);
  for (int fd : {sep, caller, a_leg, b_leg}) ::close(fd);
}

TEST_F(RelayTest, RefusalReachesTheCallerWithItsMessage) {
  start();
  int sep = openSep(kA);
  std::string signal_id;
  int caller = sendConnect(kB, kA, &signal_id);
  json signal = parse(readLine(sep));
  sendAll(sep,
          json{{"type", "refuse"}, {"id", signal_id}, {"message", "token expired"}}.dump() + "\n");
  json answer = parse(readLine(caller));
  EXPECT_EQ(answer["type"], "refuse");
  EXPECT_EQ(answer["message"], "token expired");
  EXPECT_TRUE(closedWithin(caller, 5000));
  ::close(sep);
  ::close(caller);
}

TEST_F(RelayTest, SepAnswersPingsAndANewSepReplacesTheOld) {
  start();
  int old_sep = openSep(kA);
  sendAll(old_sep, "{\"type\":\"ping\"}\n");
  EXPECT_EQ(parse(readLine(old_sep))["type"], "pong");
  int new_sep = openSep(kA);
  EXPECT_TRUE(closedWithin(old_sep, 5000));
  std::string signal_id;
  int caller = sendConnect(kB, kA, &signal_id);
  EXPECT_EQ(parse(readLine(new_sep))["id"], signal_id);
  for (int fd : {old_sep, new_sep, caller}) ::close(fd);
}

TEST_F(RelayTest, TargetThatDoesNotAnswerGivesTheCallerAnErrorInTime) {
  be_.relay_options.signal_timeout = std::chrono::milliseconds(300);
  start();
  int sep = openSep(kA);
  int caller = sendConnect(kB, kA, nullptr);
  json answer = parse(readLine(caller));
  EXPECT_EQ(answer["type"], "error");
  EXPECT_NE(answer.value("message", "").find("did not answer"), std::string::npos) << answer.dump();
  ::close(sep);
  ::close(caller);
}

TEST_F(RelayTest, SignalToANodeWhoseSepClosedIsAnErrorAndTheRecordGoes) {
  start();
  int sep = openSep(kA);
  auto [status, body] = be_.post("/v1/relay/connect", nodeToken(kB), {{"target", kA}});
  ASSERT_EQ(status, 200);
  ::close(sep);
  int caller = dial(body["address"]);
  ASSERT_EQ(handshake(caller, body["ticket"].get<std::string>()), "OK signal");
  sendAll(caller, "{\"type\":\"connect\",\"kind\":\"http\",\"token\":\"t\"}\n");
  json answer = parse(readLine(caller));
  EXPECT_EQ(answer["type"], "error");
  ::close(caller);
  // The relay forgets the closed SEP in the store: the next caller hears 404 at once.
  auto [again, err] = be_.post("/v1/relay/connect", nodeToken(kB), {{"target", kA}});
  EXPECT_EQ(again, 404) << err.dump();
  EXPECT_NE(err.value("message", "").find("has no SEP"), std::string::npos);
}

void fill(uint64_t seed, char* buf, size_t n, uint64_t* state) {
  if (*state == 0) *state = seed;
  for (size_t i = 0; i < n; i += 8) {
    uint64_t x = *state;
    x ^= x << 13, x ^= x >> 7, x ^= x << 17;
    *state = x;
    std::memcpy(buf + i, &x, std::min<size_t>(8, n - i));
  }
}

// Writes `total` pseudo-random bytes then half-closes.
void sendPattern(int fd, uint64_t seed, size_t total) {
  std::vector<char> buf(1 << 20);
  uint64_t st = 0;
  for (size_t sent = 0; sent < total;) {
    size_t n = std::min(buf.size(), total - sent);
    fill(seed, buf.data(), n, &st);
    if (!sendAll(fd, std::string_view(buf.data(), n))) return;
    sent += n;
  }
  ::shutdown(fd, SHUT_WR);
}

// Reads to EOF; true when exactly the pattern came.
bool receivePattern(int fd, uint64_t seed, size_t total) {
  std::vector<char> got(1 << 20), want(1 << 20);
  uint64_t st = 0;
  size_t received = 0;
  bool same = true;
  for (;;) {
    // Whole 1 MiB blocks (but the last) so the expected stream lines up with the reads.
    size_t need = std::min(got.size(), total - received);
    if (need == 0) break;
    ssize_t n = ::recv(fd, got.data(), need, MSG_WAITALL);
    if (n <= 0) return false;
    if (static_cast<size_t>(n) != need) return false;
    fill(seed, want.data(), need, &st);
    same = same && std::memcmp(got.data(), want.data(), need) == 0;
    received += need;
  }
  char c;
  return same && ::recv(fd, &c, 1, 0) == 0;  // and then the half-close
}

TEST_F(RelayTest, Bep64MiBBothWaysByteExactWithHalfClose) {
  start();
  auto [a, b] = openBepPair();
  constexpr size_t kTotal = 64 << 20;
  bool a_got = false, b_got = false;
  std::thread ta([&, a = a] { sendPattern(a, 1, kTotal); });
  std::thread tb([&, b = b] { sendPattern(b, 2, kTotal); });
  std::thread ra([&, a = a] { a_got = receivePattern(a, 2, kTotal); });
  std::thread rb([&, b = b] { b_got = receivePattern(b, 1, kTotal); });
  for (auto* t : {&ta, &tb, &ra, &rb}) t->join();
  EXPECT_TRUE(a_got);
  EXPECT_TRUE(b_got);
  ::close(a);
  ::close(b);
}

TEST_F(RelayTest, HalfCloseLetsTheOtherSideKeepTalking) {
  start();
  auto [a, b] = openBepPair();
  sendAll(b, "request");
  ::shutdown(b, SHUT_WR);
  char buf[16];
  ASSERT_EQ(::recv(a, buf, 7, MSG_WAITALL), 7);
  EXPECT_EQ(::recv(a, buf, 1, 0), 0);  // the caller's half-close, passed on
  sendAll(a, "response");
  ::shutdown(a, SHUT_WR);
  ASSERT_EQ(::recv(b, buf, 8, MSG_WAITALL), 8);
  EXPECT_EQ(std::string(buf, 8), "response");
  EXPECT_EQ(::recv(b, buf, 1, 0), 0);
  ::close(a);
  ::close(b);
}

TEST_F(RelayTest, BepTicketWorksOnce) {
  start();
  int sep = openSep(kA);
  std::string signal_id;
  int caller = sendConnect(kB, kA, &signal_id);
  readLine(sep);
  auto [status, bep] = be_.post("/v1/relay/bep", nodeToken(kA), {{"signal", signal_id}});
  ASSERT_EQ(status, 200);
  int first = dial(bep["address"]);
  EXPECT_EQ(handshake(first, bep["ticket"].get<std::string>()), "OK bep");
  int second = dial(bep["address"]);
  EXPECT_EQ(handshake(second, bep["ticket"].get<std::string>()),
            "ERR unknown or already used ticket");
  EXPECT_TRUE(closedWithin(second, 5000));
  // One BEP per signal, too.
  auto [again, err] = be_.post("/v1/relay/bep", nodeToken(kA), {{"signal", signal_id}});
  EXPECT_EQ(again, 404) << err.dump();
  EXPECT_GE(be_.relay->stats()["tickets_refused"].get<int>(), 1);
  for (int fd : {sep, caller, first, second}) ::close(fd);
}

TEST_F(RelayTest, ExpiredTicketIsRefused) {
  auto clock = std::make_shared<FakeClock>();
  be_.relay_options.clock = clock;
  be_.signaling_options.clock = clock;
  start();
  auto [status, body] = be_.post("/v1/relay/sep", nodeToken(kA), json::object());
  ASSERT_EQ(status, 200);
  clock->advance(std::chrono::seconds(61));
  int fd = dial(body["address"]);
  EXPECT_EQ(handshake(fd, body["ticket"].get<std::string>()), "ERR ticket expired 1 s ago");
  ::close(fd);
}

TEST_F(RelayTest, TicketsAreBoundToTheirNodeAndInstance) {
  start();
  int sep = openSep(kA);
  std::string signal_id;
  int caller = sendConnect(kB, kA, &signal_id);
  readLine(sep);
  // C may not take the BEP of a signal meant for A.
  auto [status, err] = be_.post("/v1/relay/bep", nodeToken(kC), {{"signal", signal_id}});
  EXPECT_EQ(status, 403) << err.dump();
  EXPECT_EQ(err["message"],
            "signal " + signal_id + " is addressed to node " + kA + ", not to you (" + kC + ")");
  // A ticket minted for another relay instance does not work here.
  Signaling::Options other = be_.signaling_options;
  other.instance_id = "r2";
  Signaling r2(*be_.store, be_.auth, other);
  Caller a;
  a.node_id = kA;
  a.account = "acct1";
  auto minted = r2.openSep(a, json::object());
  ASSERT_TRUE(minted.isOk());
  int fd = dial(be_.relay->advertisedAddress());
  EXPECT_EQ(handshake(fd, (*minted)["ticket"].get<std::string>()),
            "ERR ticket is for relay instance \"r2\", this is \"r1\"");
  for (int x : {sep, caller, fd}) ::close(x);
}

TEST_F(RelayTest, GarbageAndSlowClientsDoNotHurtTheRelay) {
  be_.relay_options.handshake_timeout = std::chrono::milliseconds(500);
  start();
  std::string addr = be_.relay->advertisedAddress();
  std::vector<int> slow;
  for (int i = 0; i < 20; ++i) slow.push_back(dial(addr));  // say nothing
  int dribble = dial(addr);
  sendAll(dribble, "EDGE-RE");  // a partial line, then nothing

  struct Case {
    std::string send;
    std::string expect;
  } cases[] = {
      {"GET / HTTP/1.1\r\n\r\n", "ERR expected \"EDGE-RELAY/1 <ticket>\" as the first line"},
      {"EDGE-RELAY/2 abc\n", "ERR unsupported protocol version; this relay speaks EDGE-RELAY/1"},
      {"EDGE-RELAY/1 short\n", "ERR malformed ticket (expected 43 base64url characters)"},
      {"EDGE-RELAY/1 " + std::string(43, 'A') + "\n", "ERR unknown or already used ticket"},
      {std::string(300, 'x'), "ERR first line longer than 256 bytes"},
      {std::string("\0\xff\n", 3), "ERR expected \"EDGE-RELAY/1 <ticket>\" as the first line"},
  };
  for (const auto& c : cases) {
    int fd = dial(addr);
    sendAll(fd, c.send);
    EXPECT_EQ(readLine(fd), c.expect) << c.send.substr(0, 40);
    EXPECT_TRUE(closedWithin(fd, 5000));
    ::close(fd);
  }
  // While the slow ones still hang on, a real node gets its SEP and its signals.
  int sep = openSep(kA);
  int caller = sendConnect(kB, kA, nullptr);
  EXPECT_EQ(parse(readLine(sep))["type"], "signal");
  // And the slow ones are cut off after the handshake timeout.
  for (int fd : slow) EXPECT_TRUE(closedWithin(fd, 5000));
  EXPECT_TRUE(closedWithin(dribble, 5000));
  // A SEP that sends garbage lines stays up; an endless line closes it.
  sendAll(sep, "not json\n{\"type\":42}\n[]\n");
  sendAll(sep, "{\"type\":\"ping\"}\n");
  EXPECT_EQ(parse(readLine(sep))["type"], "pong");
  sendAll(sep, std::string(20000, 'y'));
  EXPECT_TRUE(closedWithin(sep, 5000));
  for (int fd : slow) ::close(fd);
  for (int fd : {dribble, sep, caller}) ::close(fd);
}

TEST_F(RelayTest, ConnectionsBeyondTheCapAreTurnedAway) {
  be_.relay_options.max_connections = 3;
  start();
  std::string addr = be_.relay->advertisedAddress();
  std::vector<int> held;
  for (int i = 0; i < 3; ++i) held.push_back(dial(addr));  // silent: held for 5 s
  // The listener takes connections in order, so the fourth finds the cap reached.
  int extra = dial(addr);
  EXPECT_EQ(readLine(extra), "ERR relay busy");
  EXPECT_EQ(be_.relay->stats()["connections_refused"], 1);
  for (int fd : held) ::close(fd);
  ::close(extra);
}

TEST_F(RelayTest, IdleBepIsTornDown) {
  be_.relay_options.idle_timeout = std::chrono::milliseconds(300);
  start();
  auto [a, b] = openBepPair();
  sendAll(a, "x");
  char c;
  ASSERT_EQ(::recv(b, &c, 1, 0), 1);
  EXPECT_TRUE(closedWithin(a, 5000));
  EXPECT_TRUE(closedWithin(b, 5000));
  ::close(a);
  ::close(b);
}

TEST_F(RelayTest, BepEndsAtItsTtl) {
  auto clock = std::make_shared<FakeClock>();
  be_.relay_options.clock = clock;
  be_.signaling_options.clock = clock;
  start();
  auto [a, b] = openBepPair({{"ttl_seconds", 1}});
  // The ttl is counted from the pairing on the relay's own clock: one real second.
  EXPECT_TRUE(closedWithin(a, 5000));
  EXPECT_TRUE(closedWithin(b, 5000));
  ::close(a);
  ::close(b);
}

TEST_F(RelayTest, UnpairedLegIsClosedAfterThePairTimeout) {
  be_.relay_options.pair_timeout = std::chrono::milliseconds(300);
  start();
  int sep = openSep(kA);
  std::string signal_id;
  int caller = sendConnect(kB, kA, &signal_id);
  readLine(sep);
  auto [status, bep] = be_.post("/v1/relay/bep", nodeToken(kA), {{"signal", signal_id}});
  int leg = dial(bep["address"]);
  EXPECT_EQ(handshake(leg, bep["ticket"].get<std::string>()), "OK bep");
  EXPECT_TRUE(closedWithin(leg, 5000));
  for (int fd : {sep, caller, leg}) ::close(fd);
}

TEST_F(RelayTest, BepWithSeveralConnectionsPairsEachLeg) {
  start();
  auto [a, b] = openBepPair({{"max_connections", 2}, {"protocol", "http"}});
  ASSERT_EQ(last_bep_["tickets"].size(), 2u);
  ASSERT_EQ(last_bep_["caller_tickets"].size(), 2u);
  int a2 = dial(last_bep_["address"]);
  int b2 = dial(last_bep_["address"]);
  EXPECT_EQ(handshake(a2, last_bep_["tickets"][1].get<std::string>()), "OK bep");
  EXPECT_EQ(handshake(b2, last_bep_["caller_tickets"][1].get<std::string>()), "OK bep");
  sendAll(b2, "two");
  char buf[4];
  ASSERT_EQ(::recv(a2, buf, 3, MSG_WAITALL), 3);
  EXPECT_EQ(std::string(buf, 3), "two");
  sendAll(b, "one");
  ASSERT_EQ(::recv(a, buf, 3, MSG_WAITALL), 3);
  EXPECT_EQ(std::string(buf, 3), "one");
  EXPECT_EQ(be_.relay->stats()["bep_active"], 2);
  for (int fd : {a, b, a2, b2}) ::close(fd);
}

TEST_F(RelayTest, HttpApiRefusesWhatItMust) {
  start();
  int sep = openSep(kA, "acct1");
  struct Case {
    std::string path, token;
    json body;
    int status;
    std::string message;  // a substring
  } cases[] = {
      {"/v1/relay/connect",
       nodeToken(kB, "acct2"),
       {{"target", kA}},
       403,
       "node " + kA + " is not in your account (acct2)"},
      {"/v1/relay/connect", "", {{"target", kA}}, 401, "no bearer token"},
      {"/v1/relay/connect",
       "Bearer client:app:acct1",
       {{"target", kA}},
       403,
       "only a node may signal another node; this token's subject is \"client:app\""},
      {"/v1/relay/connect",
       "Bearer node:" + kB + ":acct1:relay:sep",
       {{"target", kA}},
       403,
       "needs the scope \"relay:connect\""},
      {"/v1/relay/connect",
       nodeToken(kB),
       {{"target", "Z"}},
       400,
       ".target: expected a node id (16 lower-case hex characters), got \"Z\""},
      {"/v1/relay/connect",
       nodeToken(kB),
       {{"target", kA}, {"kind", "udp"}},
       400,
       ".kind: must be \"http\" or \"stream\", got \"udp\""},
      {"/v1/relay/connect",
       nodeToken(kB),
       {{"target", kA}, {"trget", 1}},
       400,
       ".trget: unknown field (allowed: target, kind)"},
      {"/v1/relay/connect",
       nodeToken(kB),
       {{"target", kC}},
       404,
       "node " + kC + " has no SEP: it never registered one with the backend"},
      {"/v1/relay/connect", nodeToken(kA), {{"target", kA}}, 400, "is the caller itself"},
      {"/v1/relay/connect", nodeToken(kB), nullptr, 400, "expected a JSON object"},
      {"/v1/relay/sep",
       nodeToken(kB),
       {{"location", {{"lat", 91}, {"lon", 0}}}},
       400,
       ".location.lat"},
      {"/v1/relay/bep",
       nodeToken(kA),
       {{"signal", "0123456789abcdef"}, {"ttl_seconds", 5000}},
       400,
       ".ttl_seconds: must be between 1 and 3600, got 5000"},
      {"/v1/relay/bep",
       nodeToken(kA),
       {{"signal", "0123456789abcdef"}, {"max_connections", 17}},
       400,
       ".max_connections: must be between 1 and 16 (leg pairs), got 17"},
      {"/v1/relay/bep",
       nodeToken(kA),
       {{"signal", "0123456789abcdef"}, {"ttl_seconds", 1e300}},
       400,
       ".ttl_seconds: must be between 1 and 3600, got 1e+300"},
      {"/v1/relay/bep",
       nodeToken(kA),
       {{"signal", "0123456789abcdef"}, {"ttl_seconds", "60"}},
       400,
       ".ttl_seconds: expected an integer, got string"},
      {"/v1/relay/bep",
       nodeToken(kA),
       {{"signal", "0123456789abcdef"}},
       404,
       "signal 0123456789abcdef is unknown or expired"},
      {"/v1/relay/bep",
       nodeToken(kA),
       {{"signal", "nope"}},
       400,
       ".signal: expected the 16-hex-character id of a signal"},
  };
  for (const auto& c : cases) {
    auto [status, body] = be_.post(c.path, c.token, c.body);
    EXPECT_EQ(status, c.status) << c.path << " " << c.body.dump() << " -> " << body.dump();
    EXPECT_NE(body.value("message", "").find(c.message), std::string::npos)
        << c.path << " " << c.body.dump() << " -> " << body.dump();
  }
  // A BEP request that contradicts its signal.
  std::string signal_id;
  int caller = sendConnect(kB, kA, &signal_id, "stream");
  readLine(sep);
  auto [s1, b1] = be_.post("/v1/relay/bep", nodeToken(kA), {{"signal", signal_id}, {"caller", kC}});
  EXPECT_EQ(s1, 400);
  EXPECT_EQ(b1["message"],
            ".caller: signal " + signal_id + " came from node " + kB + ", not from \"" + kC + "\"");
  auto [s2, b2] =
      be_.post("/v1/relay/bep", nodeToken(kA), {{"signal", signal_id}, {"protocol", "http"}});
  EXPECT_EQ(s2, 400) << b2.dump();
  auto [s3, b3] = be_.post("/v1/relay/bep", nodeToken(kA), {{"signal", signal_id}});
  EXPECT_EQ(s3, 200) << b3.dump();
  ::close(caller);
  ::close(sep);
}

TEST_F(RelayTest, PlacesEndpointsOnTheNearestLiveInstance) {
  auto clock = std::make_shared<FakeClock>();
  be_.signaling_options.clock = clock;
  start();
  int64_t now =
      std::chrono::duration_cast<std::chrono::seconds>(clock->wallNow().time_since_epoch()).count();
  auto reg = [&](const std::string& id, double lat, double lon, int64_t updated) {
    json j = {{"id", id},
              {"relay_address", id + ".example:8085"},
              {"location", {{"lat", lat}, {"lon", lon}}},
              {"updated_at", updated}};
    ASSERT_TRUE(be_.store->put("registry/instances/" + id, j.dump()).isOk());
  };
  reg("paris", 48.85, 2.35, now);
  reg("tokyo", 35.68, 139.69, now);
  reg("berlin", 52.52, 13.40, now - 61);  // stale: not picked though nearest
  GeoPoint potsdam{52.39, 13.06};
  auto near_berlin = be_.signaling->pickInstance(potsdam);
  ASSERT_TRUE(near_berlin.isOk());
  EXPECT_EQ(near_berlin->first, "paris");
  EXPECT_EQ(near_berlin->second, "paris.example:8085");
  auto [status, body] =
      be_.post("/v1/relay/sep", nodeToken(kA), {{"location", {{"lat", 35.0}, {"lon", 135.0}}}});
  ASSERT_EQ(status, 200);
  EXPECT_EQ(body["instance"], "tokyo");
  // No live instance at all: this replica.
  clock->advance(std::chrono::seconds(120));
  auto self = be_.signaling->pickInstance(potsdam);
  ASSERT_TRUE(self.isOk());
  EXPECT_EQ(self->first, "r1");
  EXPECT_EQ(self->second, be_.relay->advertisedAddress());
}

TEST_F(RelayTest, SweepRemovesExpiredRecordsOnly) {
  auto clock = std::make_shared<FakeClock>();
  be_.signaling_options.clock = clock;
  start();
  ASSERT_EQ(be_.post("/v1/relay/sep", nodeToken(kA), json::object()).first, 200);
  ASSERT_EQ(be_.post("/v1/relay/connect", nodeToken(kB), {{"target", kA}}).first, 200);
  auto none = be_.signaling->sweepExpired();
  ASSERT_TRUE(none.isOk());
  EXPECT_EQ(*none, 0u);
  clock->advance(std::chrono::seconds(3601));
  auto swept = be_.signaling->sweepExpired();
  ASSERT_TRUE(swept.isOk());
  EXPECT_EQ(*swept, 3u);  // the sep ticket, the signal ticket, the signal
  EXPECT_TRUE(be_.store->list("relay/tickets/")->empty());
}

// Relay vs direct TCP on loopback, the same bytes one way. The real figure belongs to
// the benchmark; here only a floor a loaded CI machine still clears.
TEST_F(RelayTest, ThroughputIsCloseToDirectTcp) {
  start();
  constexpr size_t kTotal = 256 << 20;
  auto pump = [&](int from, int to) {
    std::vector<char> buf(1 << 20, 'x');
    auto t0 = std::chrono::steady_clock::now();
    std::thread reader([&] {
      std::vector<char> in(1 << 20);
      while (::recv(to, in.data(), in.size(), 0) > 0) {
      }
    });
    for (size_t sent = 0; sent < kTotal; sent += buf.size())
      sendAll(from, std::string_view(buf.data(), buf.size()));
    ::shutdown(from, SHUT_WR);
    reader.join();
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  };
  // Direct.
  int lfd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(lfd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  ASSERT_EQ(::listen(lfd, 1), 0);
  socklen_t len = sizeof addr;
  ::getsockname(lfd, reinterpret_cast<sockaddr*>(&addr), &len);
  int c = dial("127.0.0.1:" + std::to_string(ntohs(addr.sin_port)));
  int s = ::accept(lfd, nullptr, nullptr);
  double direct = pump(c, s);
  for (int fd : {lfd, c, s}) ::close(fd);
  // Relayed.
  auto [a, b] = openBepPair();
  double relayed = pump(b, a);
  ::close(a);
  ::close(b);
  double ratio = direct / relayed;
  std::printf("direct %.0f MiB/s, relayed %.0f MiB/s\nratio relay_vs_direct_throughput %.2f\n",
              kTotal / direct / (1 << 20), kTotal / relayed / (1 << 20), ratio);
  // The figure is the benchmark's (edge-backend-bench); here only a relay that is
  // pathologically slow (a copy loop gone wrong) fails, not a loaded CI machine, which
  // once dropped the ratio under 0.3 with other tests running beside it.
  EXPECT_GT(ratio, 0.05);
}

}  // namespace
}  // namespace edge::backend
