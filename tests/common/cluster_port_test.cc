// The cluster port's classifier and dispatcher (common/cluster_port.h): connections are
// socketpairs handed in with adopt(), plus one real loopback listener; every wait is for
// an event (a handler call, an EOF), never a sleep.
#include "common/cluster_port.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <condition_variable>
#include <mutex>
#include <string>
#include <vector>

namespace edge::net {
namespace {

using namespace std::chrono_literals;

TEST(ClassifyFirstBytes, TheFirstByteSaysWhoItIs) {
  EXPECT_EQ(classifyFirstBytes(std::string("\0\0\0\x20", 4)), PortClass::kDiscovery);
  EXPECT_EQ(classifyFirstBytes(std::string("\x01\0\0\x20", 4)), PortClass::kClusterState);
  EXPECT_EQ(classifyFirstBytes(std::string("\x02\0\0\x20", 4)), PortClass::kClusterImages);
  EXPECT_EQ(classifyFirstBytes("ECP1"), PortClass::kPeerChannel);
  EXPECT_EQ(classifyFirstBytes("\x16\x03\x01"), PortClass::kTls);
  EXPECT_EQ(classifyFirstBytes("GET / HTTP/1.1\r\n"), PortClass::kHttp);
  EXPECT_EQ(classifyFirstBytes("POST /x HTTP/1.1\r\n"), PortClass::kHttp);
  EXPECT_STREQ(portClassName(PortClass::kPeerChannel), "peer-channel");
}

// True when `fd` reaches EOF (or an error) within `ms`.
bool closedWithin(int fd, int ms) {
  pollfd p{fd, POLLIN, 0};
  if (::poll(&p, 1, ms) != 1) return false;
  char c;
  return ::recv(fd, &c, 1, 0) <= 0;
}

class ClusterPortTest : public ::testing::Test {
 protected:
  struct Handed {
    PortClass cls;
    int fd;
    std::string bytes;
  };

  void SetUp() override { makePort(ClusterPort::unbound(options_)); }
  void TearDown() override {
    if (port_) port_->stop();
    for (auto& h : handed_) ::close(h.fd);
    for (int fd : ours_) ::close(fd);
  }

  void makePort(std::unique_ptr<ClusterPort> port, bool all_classes = true) {
    if (port_) port_->stop();
    port_ = std::move(port);
    for (auto c : {PortClass::kDiscovery, PortClass::kClusterState, PortClass::kClusterImages,
                   PortClass::kPeerChannel, PortClass::kTls, PortClass::kHttp}) {
      if (!all_classes && c == PortClass::kTls) continue;
      port_->handle(c, [this, c](int fd, std::string bytes) {
        std::lock_guard<std::mutex> lock(mu_);
        handed_.push_back({c, fd, std::move(bytes)});
        cv_.notify_all();
      });
    }
    ASSERT_TRUE(port_->start().isOk());
  }

  // A connection: ours is returned, the other end goes to the port.
  int adopted(bool allow_discovery = true) {
    int sv[2];
    EXPECT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    ours_.push_back(sv[0]);
    port_->adopt(sv[1], allow_discovery);
    return sv[0];
  }

  bool waitHanded(size_t n) {
    std::unique_lock<std::mutex> lock(mu_);
    return cv_.wait_for(lock, 5s, [&] { return handed_.size() >= n; });
  }

  ClusterPort::Options options_;
  std::unique_ptr<ClusterPort> port_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<Handed> handed_;
  std::vector<int> ours_;
};

TEST_F(ClusterPortTest, EachClassGoesToItsHandlerWithTheBytesAlreadyReadOnABlockingFd) {
  const std::vector<std::pair<std::string, PortClass>> cases = {
      {std::string("\0\0\0\x05hello", 9), PortClass::kDiscovery},
      {std::string("\x01\0\0\x05hello", 9), PortClass::kClusterState},
      {std::string("\x02\0\0\x05hello", 9), PortClass::kClusterImages},
      {"ECP1hello", PortClass::kPeerChannel},
      {"\x16\x03\x01\x02\x00", PortClass::kTls},
      {"GET /x HTTP/1.1\r\n\r\n", PortClass::kHttp},
  };
  for (size_t i = 0; i < cases.size(); ++i) {
    int fd = adopted();
    ASSERT_EQ(::send(fd, cases[i].first.data(), cases[i].first.size(), MSG_NOSIGNAL),
              static_cast<ssize_t>(cases[i].first.size()));
    ASSERT_TRUE(waitHanded(i + 1)) << i;
    std::lock_guard<std::mutex> lock(mu_);
    EXPECT_EQ(handed_[i].cls, cases[i].second) << i;
    EXPECT_EQ(handed_[i].bytes, cases[i].first) << i;
    EXPECT_EQ(::fcntl(handed_[i].fd, F_GETFL) & O_NONBLOCK, 0) << i;
  }
  // The connection is the handler's: the port neither answers nor closes it.
  int handed;
  {
    std::lock_guard<std::mutex> lock(mu_);
    handed = handed_[3].fd;
  }
  ASSERT_EQ(::send(handed, "yours", 5, MSG_NOSIGNAL), 5);
  char buf[8] = {};
  ASSERT_EQ(::recv(ours_[3], buf, sizeof buf, 0), 5);
  EXPECT_EQ(std::string(buf, 5), "yours");
}

TEST_F(ClusterPortTest, ASilentClientDoesNotHoldUpTheOthers) {
  int silent = adopted();
  int talker = adopted();
  ASSERT_EQ(::send(talker, "ECP1", 4, MSG_NOSIGNAL), 4);
  ASSERT_TRUE(waitHanded(1));
  std::lock_guard<std::mutex> lock(mu_);
  EXPECT_EQ(handed_[0].cls, PortClass::kPeerChannel);
  // The silent one is still waiting (its deadline is 10 s away), not closed.
  pollfd p{silent, POLLIN, 0};
  EXPECT_EQ(::poll(&p, 1, 0), 0);
}

TEST_F(ClusterPortTest, AClientSilentPastTheDeadlineIsClosed) {
  options_.first_bytes_timeout = 50ms;
  makePort(ClusterPort::unbound(options_));
  int silent = adopted();
  EXPECT_TRUE(closedWithin(silent, 5000));
  std::lock_guard<std::mutex> lock(mu_);
  EXPECT_TRUE(handed_.empty());
}

TEST_F(ClusterPortTest, AClientThatHangsUpFirstIsClosedWithoutAHandler) {
  int fd = adopted();
  ::shutdown(fd, SHUT_WR);
  EXPECT_TRUE(closedWithin(fd, 5000));
  std::lock_guard<std::mutex> lock(mu_);
  EXPECT_TRUE(handed_.empty());
}

TEST_F(ClusterPortTest, AClassWithoutAHandlerIsClosed) {
  makePort(ClusterPort::unbound(options_), /*all_classes=*/false);
  int fd = adopted();
  ASSERT_EQ(::send(fd, "\x16\x03\x01", 3, MSG_NOSIGNAL), 3);
  EXPECT_TRUE(closedWithin(fd, 5000));
  std::lock_guard<std::mutex> lock(mu_);
  EXPECT_TRUE(handed_.empty());
}

TEST_F(ClusterPortTest, ARelayLegThatSpeaksDiscoveryIsClosed) {
  int fd = adopted(/*allow_discovery=*/false);
  ASSERT_EQ(::send(fd, "\0\0\0\x01x", 5, MSG_NOSIGNAL), 5);
  EXPECT_TRUE(closedWithin(fd, 5000));
  int leg = adopted(/*allow_discovery=*/false);
  ASSERT_EQ(::send(leg, "GET / HTTP/1.1\r\n", 16, MSG_NOSIGNAL), 16);
  ASSERT_TRUE(waitHanded(1));
  std::lock_guard<std::mutex> lock(mu_);
  EXPECT_EQ(handed_.size(), 1u);
  EXPECT_EQ(handed_[0].cls, PortClass::kHttp);
}

TEST_F(ClusterPortTest, MoreThanMaxPendingAreClosed) {
  options_.max_pending = 2;
  makePort(ClusterPort::unbound(options_));
  adopted();
  adopted();
  int third = adopted();
  EXPECT_TRUE(closedWithin(third, 5000));
}

TEST_F(ClusterPortTest, TheListenerAcceptsAndClassifies) {
  auto port = ClusterPort::listen("127.0.0.1:0", options_);
  ASSERT_TRUE(port.isOk()) << port.status().toString();
  makePort(std::move(*port));
  ASSERT_GT(port_->boundPort(), 0);
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ours_.push_back(fd);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port_->boundPort()));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  ASSERT_EQ(::send(fd, "\x16\x03\x01", 3, MSG_NOSIGNAL), 3);
  ASSERT_TRUE(waitHanded(1));
  std::lock_guard<std::mutex> lock(mu_);
  EXPECT_EQ(handed_[0].cls, PortClass::kTls);
  EXPECT_EQ(handed_[0].bytes, "\x16\x03\x01");
}

TEST_F(ClusterPortTest, OneAddressCannotHoldMoreThanItsShareOfSilentConnections) {
  options_.max_pending_per_address = 2;
  auto port = ClusterPort::listen("127.0.0.1:0", options_);
  ASSERT_TRUE(port.isOk()) << port.status().toString();
  makePort(std::move(*port));
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port_->boundPort()));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  std::vector<int> fds;
  for (int i = 0; i < 3; ++i) {
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ours_.push_back(fd);
    ASSERT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
    fds.push_back(fd);
  }
  EXPECT_TRUE(closedWithin(fds[2], 5000));
  // The first two still wait for their first bytes, and are served when they come.
  ASSERT_EQ(::send(fds[0], "ECP1", 4, MSG_NOSIGNAL), 4);
  ASSERT_TRUE(waitHanded(1));
  pollfd p{fds[1], POLLIN, 0};
  EXPECT_EQ(::poll(&p, 1, 0), 0);
}

TEST_F(ClusterPortTest, ATakenPortFailsAtListen) {
  auto first = ClusterPort::listen("127.0.0.1:0", options_);
  ASSERT_TRUE(first.isOk());
  auto second = ClusterPort::listen("127.0.0.1:" + std::to_string((*first)->boundPort()), options_);
  EXPECT_FALSE(second.isOk());
}

}  // namespace
}  // namespace edge::net
