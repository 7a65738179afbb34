// The discovery listener's demultiplexer on a real TCP socket: connections whose first
// byte is not 0x00 (a peer channel's "ECP1") leave discovery through
// DiscoveryOptions::on_foreign_connection; discovery sessions stay. Runs in a network
// namespace of its own (root), where only loopback exists, so nothing is announced on
// the host's links and port 8083 is free.
#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <net/if.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <condition_variable>
#include <cstring>
#include <mutex>
#include <vector>

#include "common/clock.h"
#include "discovery/discovery.h"
#include "identity/identity.h"
#include "identity/secure.h"
#include "tests/test_env.h"

namespace edge::discovery {
namespace {

constexpr int kPort = 8083;

bool enterPrivateNetwork() {
  if (::geteuid() != 0 || ::unshare(CLONE_NEWNET) != 0) return false;
  int s = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  ifreq ifr{};
  std::strncpy(ifr.ifr_name, "lo", IFNAMSIZ - 1);
  bool ok = ::ioctl(s, SIOCGIFFLAGS, &ifr) == 0;
  ifr.ifr_flags |= IFF_UP;
  ok = ok && ::ioctl(s, SIOCSIFFLAGS, &ifr) == 0;
  ::close(s);
  return ok;
}

int connectLoopback() {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(kPort);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

// The bytes that arrive within `ms`, up to `want`; stops early at EOF (*eof = true).
std::string readFor(int fd, size_t want, int ms, bool* eof) {
  std::string out;
  *eof = false;
  while (out.size() < want) {
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, ms) <= 0) break;
    char buf[4096];
    ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n <= 0) {
      *eof = true;
      break;
    }
    out.append(buf, static_cast<size_t>(n));
  }
  return out;
}

class DemuxTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { in_netns_ = enterPrivateNetwork(); }

  void SetUp() override {
    if (!in_netns_) EDGE_SETUP_FAILED("cannot make a network namespace with lo up (needs root)");
  }
  void TearDown() override {
    if (discovery_) discovery_->stop();
    std::lock_guard<std::mutex> lock(mu_);
    for (auto& h : handed_) ::close(h.first);
  }

  // Discovery listens from create() on; start() runs its loop.
  void create(bool with_callback) {
    DiscoveryOptions o;
    o.listen = "127.0.0.1:" + std::to_string(kPort);
    o.profile.node_name = "demux-test";
    if (with_callback) {
      o.on_foreign_connection = [this](int fd, std::string already_read) {
        std::lock_guard<std::mutex> lock(mu_);
        handed_.emplace_back(fd, std::move(already_read));
        cv_.notify_all();
      };
    }
    auto d = Discovery::create(o, identity_, clock_, [](auto&, auto&, auto&) {});
    ASSERT_TRUE(d.isOk()) << d.status().toString();
    discovery_ = std::move(*d);
  }
  void start(bool with_callback) {
    create(with_callback);
    ASSERT_TRUE(discovery_->start().isOk());
  }

  bool waitHanded(size_t n) {
    std::unique_lock<std::mutex> lock(mu_);
    return cv_.wait_for(lock, std::chrono::seconds(5), [&] { return handed_.size() >= n; });
  }

  static bool in_netns_;
  identity::NodeIdentity identity_ = *identity::NodeIdentity::generate();
  SystemClock clock_;
  std::unique_ptr<Discovery> discovery_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<std::pair<int, std::string>> handed_;
};
bool DemuxTest::in_netns_ = false;

TEST_F(DemuxTest, PeerChannelConnectionsAreHandedOverBlockingWithTheirFirstBytes) {
  start(true);
  int fd = connectLoopback();
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::send(fd, "ECP1hello", 9, MSG_NOSIGNAL), 9);
  ASSERT_TRUE(waitHanded(1));
  int handed;
  {
    std::lock_guard<std::mutex> lock(mu_);
    handed = handed_[0].first;
    EXPECT_EQ(handed_[0].second, "ECP1hello");
  }
  EXPECT_EQ(::fcntl(handed, F_GETFL) & O_NONBLOCK, 0);
  // The connection is the receiver's now: discovery neither answers nor closes it.
  ASSERT_EQ(::send(handed, "yours", 5, MSG_NOSIGNAL), 5);
  bool eof = false;
  EXPECT_EQ(readFor(fd, 5, 2000, &eof), "yours");
  EXPECT_FALSE(eof);
  ::close(fd);
}

TEST_F(DemuxTest, DiscoverySessionsStayWithDiscoveryWhateverWasHandedOver) {
  start(true);
  // More held foreign connections from this address than the per-address handshake cap
  // (8): once handed over they no longer count against it.
  std::vector<int> foreign;
  for (size_t i = 0; i < 12; ++i) {
    int fd = connectLoopback();
    ASSERT_GE(fd, 0);
    ASSERT_EQ(::send(fd, "ECP1", 4, MSG_NOSIGNAL), 4);
    foreign.push_back(fd);
    ASSERT_TRUE(waitHanded(i + 1));
  }
  auto caller = *identity::NodeIdentity::generate();
  identity::SecureSession s(identity::SecureSession::Role::kInitiator, caller, "");
  std::string hello = s.takeOutput();
  ASSERT_EQ(hello[0], '\0');
  int fd = connectLoopback();
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::send(fd, hello.data(), hello.size(), MSG_NOSIGNAL),
            static_cast<ssize_t>(hello.size()));
  bool eof = false;
  std::string reply = readFor(fd, 4, 2000, &eof);
  ASSERT_GE(reply.size(), 4u) << "discovery did not answer the handshake";
  std::vector<std::string> messages;
  EXPECT_TRUE(s.feed(reply + readFor(fd, 4096, 200, &eof), &messages).isOk());
  EXPECT_TRUE(s.established());
  EXPECT_EQ(s.peerId(), identity_.id());
  {
    std::lock_guard<std::mutex> lock(mu_);
    EXPECT_EQ(handed_.size(), 12u);
  }
  ::close(fd);
  for (int f : foreign) ::close(f);
}

TEST_F(DemuxTest, ABurstOfPeerChannelsFromOneAddressIsNotCappedLikeHandshakes) {
  create(true);
  // All of them are waiting, first bytes sent, when the loop first accepts.
  std::vector<int> foreign;
  for (int i = 0; i < 20; ++i) {
    int fd = connectLoopback();
    ASSERT_GE(fd, 0);
    ASSERT_EQ(::send(fd, "ECP1", 4, MSG_NOSIGNAL), 4);
    foreign.push_back(fd);
  }
  ASSERT_TRUE(discovery_->start().isOk());
  EXPECT_TRUE(waitHanded(20));
  for (int f : foreign) ::close(f);
}

TEST_F(DemuxTest, WithoutAReceiverForeignConnectionsAreClosed) {
  start(false);
  int fd = connectLoopback();
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::send(fd, "ECP1hello", 9, MSG_NOSIGNAL), 9);
  bool eof = false;
  readFor(fd, 1, 3000, &eof);
  EXPECT_TRUE(eof);
  ::close(fd);
}

}  // namespace
}  // namespace edge::discovery
