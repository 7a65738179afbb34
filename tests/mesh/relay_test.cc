// The node's relay client against a real relay backend on loopback: holding a SEP,
// answering signals with BEP legs, dialling through them, and the errors a node's
// operator would read.
#include "mesh/relay_client.h"

#include <sys/socket.h>
#include <unistd.h>

#include <condition_variable>
#include <mutex>

#include <gtest/gtest.h>

#include "tests/backend/relay_test_support.h"

namespace edge::mesh {
namespace {

using backend::testing::closedWithin;
using backend::testing::dial;
using backend::testing::handshake;
using backend::testing::nodeToken;
using backend::testing::RelayBackend;
using backend::testing::sendAll;
using nlohmann::json;

const std::string kA = "aaaaaaaaaaaaaaaa";
const std::string kB = "bbbbbbbbbbbbbbbb";
const std::string kC = "cccccccccccccccc";

// The BEP legs the target's peer server would get.
struct Inbox {
  std::mutex mu;
  std::condition_variable cv;
  std::vector<std::pair<int, std::string>> legs;

  void put(int fd, const std::string& caller) {
    std::lock_guard lock(mu);
    legs.emplace_back(fd, caller);
    cv.notify_all();
  }
  std::pair<int, std::string> take() {
    std::unique_lock lock(mu);
    if (!cv.wait_for(lock, std::chrono::seconds(10), [&] { return !legs.empty(); }))
      return {-1, ""};
    auto leg = legs.front();
    legs.erase(legs.begin());
    return leg;
  }
};

class RelayClientTest : public ::testing::Test {
 protected:
  void SetUp() override { be_.start(); }

  RelayClient::Options options(const std::string& node) {
    RelayClient::Options o;
    o.backend_url = be_.url();
    o.node_id = node;
    // The fake authenticator reads "node:<id>:<account>" as that node's token.
    o.access_token = [node]() -> Result<std::string> { return "node:" + node + ":acct1"; };
    o.node_token = [node](const std::string& target) -> Result<std::string> {
      return "jwt-from-" + node + "-for-" + target;
    };
    o.backoff_initial = std::chrono::milliseconds(20);
    o.backoff_max = std::chrono::milliseconds(200);
    return o;
  }

  // Node A holds a SEP and accepts calls whose token was made for it.
  std::unique_ptr<RelayClient> holdSep(const std::string& node = kA) {
    auto client = std::make_unique<RelayClient>(options(node));
    Status s = client->startSep(
        [node](const Signal& sig) -> Status {
          if (sig.token != "jwt-from-" + sig.from + "-for-" + node)
            return Status::permissionDenied("the token is not for " + node);
          return Status::ok();
        },
        [this](int fd, const std::string& caller) { inbox_.put(fd, caller); });
    EXPECT_TRUE(s.isOk()) << s.toString();
    EXPECT_TRUE(client->waitConnected(std::chrono::seconds(10)));
    return client;
  }

  RelayBackend be_;
  Inbox inbox_;
};

TEST_F(RelayClientTest, DialReachesTheTargetThroughItsSepAndABep) {
  auto target = holdSep();
  json st = target->state()["sep"];
  EXPECT_EQ(st["connected"], true);
  EXPECT_EQ(st["address"], be_.relay->advertisedAddress());
  EXPECT_EQ(st["reconnects"], 0);
  EXPECT_TRUE(st.contains("connected_since"));

  RelayClient caller(options(kB));
  auto fd = caller.dial(kA, "http");
  ASSERT_TRUE(fd.isOk()) << fd.status().toString();
  auto [leg, from] = inbox_.take();
  ASSERT_GE(leg, 0);
  EXPECT_EQ(from, kB);

  ASSERT_TRUE(sendAll(*fd, "ECP1hello"));
  char buf[16];
  ASSERT_EQ(::recv(leg, buf, 9, MSG_WAITALL), 9);
  EXPECT_EQ(std::string(buf, 9), "ECP1hello");
  ASSERT_TRUE(sendAll(leg, "back"));
  ASSERT_EQ(::recv(*fd, buf, 4, MSG_WAITALL), 4);
  EXPECT_EQ(std::string(buf, 4), "back");
  ::close(*fd);
  EXPECT_TRUE(closedWithin(leg, 5000));
  ::close(leg);

  // A second call gets a BEP of its own.
  auto again = caller.dial(kA, "stream");
  ASSERT_TRUE(again.isOk()) << again.status().toString();
  auto [leg2, from2] = inbox_.take();
  EXPECT_GE(leg2, 0);
  ::close(*again);
  ::close(leg2);
}

TEST_F(RelayClientTest, RefusalByTheTargetIsReportedWithItsReason) {
  auto target = holdSep();
  auto o = options(kB);
  o.node_token = [](const std::string&) -> Result<std::string> { return std::string("forged"); };
  RelayClient caller(o);
  auto fd = caller.dial(kA);
  ASSERT_FALSE(fd.isOk());
  EXPECT_EQ(fd.status().code(), StatusCode::kPermissionDenied);
  EXPECT_EQ(fd.status().message(), "refused by the target " + kA + ": the token is not for " + kA);
}

TEST_F(RelayClientTest, ClearErrorsForWhatCannotWork) {
  RelayClient caller(options(kB));
  auto no_sep = caller.dial(kC);
  ASSERT_FALSE(no_sep.isOk());
  EXPECT_EQ(no_sep.status().code(), StatusCode::kNotFound);
  EXPECT_NE(no_sep.status().message().find("target " + kC +
                                           " has no SEP: it never registered with the backend"),
            std::string::npos)
      << no_sep.status().message();

  auto bad = caller.dial("not-a-node");
  EXPECT_EQ(bad.status().code(), StatusCode::kInvalidArgument);
  auto bad_kind = caller.dial(kA, "udp");
  EXPECT_EQ(bad_kind.status().code(), StatusCode::kInvalidArgument);

  auto target = holdSep();
  auto o = options(kB);
  o.access_token = []() -> Result<std::string> { return "node:" + kB + ":acct2"; };
  RelayClient stranger(o);
  auto cross = stranger.dial(kA);
  EXPECT_EQ(cross.status().code(), StatusCode::kPermissionDenied);
  EXPECT_NE(cross.status().message().find("is not in your account"), std::string::npos)
      << cross.status().message();

  // A backend nobody answers at.
  int s = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(s, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  socklen_t len = sizeof addr;
  ::getsockname(s, reinterpret_cast<sockaddr*>(&addr), &len);
  ::close(s);  // the port is free now: connections are refused
  o = options(kB);
  o.backend_url = "http://127.0.0.1:" + std::to_string(ntohs(addr.sin_port));
  RelayClient lost(o);
  auto down = lost.dial(kA);
  EXPECT_EQ(down.status().code(), StatusCode::kUnavailable);
  EXPECT_NE(down.status().message().find("backend " + o.backend_url + " unreachable"),
            std::string::npos)
      << down.status().message();
}

TEST_F(RelayClientTest, TargetThatCannotBeReachedOnItsSepTimesOut) {
  be_.relay_options.signal_timeout = std::chrono::milliseconds(200);
  // Restart the relay with the short timeout; Signaling keeps pointing at it.
  be_.api->stop();
  be_.relay->stop();
  be_.start();
  // A SEP held by hand that never answers.
  auto [status, grant] = be_.post("/v1/relay/sep", nodeToken(kA), json::object());
  ASSERT_EQ(status, 200);
  int sep = dial(grant["address"]);
  ASSERT_EQ(handshake(sep, grant["ticket"].get<std::string>()), "OK sep");
  RelayClient caller(options(kB));
  auto fd = caller.dial(kA);
  EXPECT_EQ(fd.status().code(), StatusCode::kUnavailable);
  EXPECT_NE(fd.status().message().find("did not answer within"), std::string::npos)
      << fd.status().message();
  ::close(sep);
}

TEST_F(RelayClientTest, LostSepIsReestablished) {
  auto target = holdSep();
  // Another SEP for the same node replaces the client's (as a relay restart would drop it).
  auto [status, grant] = be_.post("/v1/relay/sep", nodeToken(kA), json::object());
  ASSERT_EQ(status, 200);
  int intruder = dial(grant["address"]);
  ASSERT_EQ(handshake(intruder, grant["ticket"].get<std::string>()), "OK sep");
  // The client notices, backs off briefly and takes its SEP back.
  EXPECT_TRUE(closedWithin(intruder, 10000));
  ::close(intruder);
  EXPECT_TRUE(target->waitConnected(std::chrono::seconds(10)));
  EXPECT_EQ(target->state()["sep"]["reconnects"], 1);
  RelayClient caller(options(kB));
  auto fd = caller.dial(kA);
  ASSERT_TRUE(fd.isOk()) << fd.status().toString();
  auto [leg, from] = inbox_.take();
  EXPECT_GE(leg, 0);
  ::close(*fd);
  ::close(leg);
}

TEST_F(RelayClientTest, StartSepChecksItsInputs) {
  auto o = options(kA);
  o.backend_url = "ftp://x";
  RelayClient bad(o);
  EXPECT_EQ(bad.startSep([](const Signal&) { return Status::ok(); }, [](int, const std::string&) {})
                .code(),
            StatusCode::kInvalidArgument);
  RelayClient no_cb(options(kA));
  EXPECT_EQ(no_cb.startSep(nullptr, nullptr).code(), StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace edge::mesh
