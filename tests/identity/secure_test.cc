#include "identity/secure.h"

#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

#include "identity/identity.h"

namespace edge::identity {
namespace {

using Role = SecureSession::Role;

NodeIdentity makeIdentity() {
  auto id = NodeIdentity::generate();
  EXPECT_TRUE(id.isOk());
  return std::move(id).value();
}

// Moves bytes between two sessions until neither has anything to say; stops at the
// first error.
Status pump(SecureSession& a, SecureSession& b, std::vector<std::string>* to_a = nullptr,
            std::vector<std::string>* to_b = nullptr) {
  std::vector<std::string> sink_a, sink_b;
  if (!to_a) to_a = &sink_a;
  if (!to_b) to_b = &sink_b;
  for (int round = 0; round < 10 && (a.hasOutput() || b.hasOutput()); ++round) {
    if (a.hasOutput()) RETURN_IF_ERROR(b.feed(a.takeOutput(), to_b));
    if (b.hasOutput()) RETURN_IF_ERROR(a.feed(b.takeOutput(), to_a));
  }
  return Status::ok();
}

// A 4-byte big-endian length prefix followed by `payload`.
std::string framed(std::string_view payload) {
  std::string f(4, '\0');
  auto n = static_cast<uint32_t>(payload.size());
  f[0] = static_cast<char>(n >> 24);
  f[1] = static_cast<char>(n >> 16);
  f[2] = static_cast<char>(n >> 8);
  f[3] = static_cast<char>(n);
  return f.append(payload);
}

class SecureSessionTest : public ::testing::Test {
 protected:
  NodeIdentity alice_ = makeIdentity();
  NodeIdentity bob_ = makeIdentity();
};

TEST_F(SecureSessionTest, EstablishesAndExchangesMessagesBothWays) {
  SecureSession a(Role::kInitiator, alice_, "");
  SecureSession b(Role::kResponder, bob_, "");
  EXPECT_FALSE(a.established());
  EXPECT_TRUE(a.hasOutput());  // the initiator speaks first
  EXPECT_FALSE(b.hasOutput());
  ASSERT_TRUE(pump(a, b).isOk());
  ASSERT_TRUE(a.established());
  ASSERT_TRUE(b.established());
  EXPECT_EQ(a.peerId(), bob_.id());
  EXPECT_EQ(a.peerPublicKey(), bob_.publicKey());
  EXPECT_EQ(b.peerId(), alice_.id());
  EXPECT_EQ(b.peerPublicKey(), alice_.publicKey());

  std::string big(SecureSession::kMaxMessageBytes, 'x');
  ASSERT_TRUE(a.send("register").isOk());
  ASSERT_TRUE(a.send("").isOk());
  ASSERT_TRUE(a.send(big).isOk());
  ASSERT_TRUE(b.send("members v7").isOk());
  std::vector<std::string> at_a, at_b;
  ASSERT_TRUE(pump(a, b, &at_a, &at_b).isOk());
  EXPECT_EQ(at_b, (std::vector<std::string>{"register", "", big}));
  EXPECT_EQ(at_a, std::vector<std::string>{"members v7"});
}

TEST_F(SecureSessionTest, PeerIdsAreEmptyUntilEstablished) {
  SecureSession a(Role::kInitiator, alice_, "");
  SecureSession b(Role::kResponder, bob_, "");
  std::vector<std::string> msgs;
  ASSERT_TRUE(b.feed(a.takeOutput(), &msgs).isOk());
  // The responder has seen a HELLO but no proof yet.
  EXPECT_FALSE(b.established());
  EXPECT_EQ(b.peerId(), "");
  EXPECT_EQ(b.peerPublicKey(), "");
}

TEST_F(SecureSessionTest, BytesFedOneAtATimeWork) {
  SecureSession a(Role::kInitiator, alice_, "");
  SecureSession b(Role::kResponder, bob_, "");
  std::vector<std::string> at_a, at_b;
  auto trickle = [](SecureSession& from, SecureSession& to, std::vector<std::string>* msgs) {
    std::string bytes = from.takeOutput();
    for (char c : bytes) ASSERT_TRUE(to.feed(std::string_view(&c, 1), msgs).isOk());
  };
  trickle(a, b, &at_b);
  trickle(b, a, &at_a);
  ASSERT_TRUE(a.established());
  ASSERT_TRUE(a.send("one").isOk());
  ASSERT_TRUE(a.send("two").isOk());
  // FINISH and the first frames arrive together, byte by byte.
  trickle(a, b, &at_b);
  ASSERT_TRUE(b.established());
  EXPECT_EQ(at_b, (std::vector<std::string>{"one", "two"}));
  ASSERT_TRUE(b.send("three").isOk());
  trickle(b, a, &at_a);
  EXPECT_EQ(at_a, std::vector<std::string>{"three"});
}

TEST_F(SecureSessionTest, AppendOutputAddsToTheCallersBuffer) {
  SecureSession a(Role::kInitiator, alice_, "");
  SecureSession b(Role::kResponder, bob_, "");
  ASSERT_TRUE(pump(a, b).isOk());
  ASSERT_TRUE(a.send("m1").isOk());
  std::string wire = "already queued:";
  a.appendOutput(&wire);
  EXPECT_FALSE(a.hasOutput());
  ASSERT_TRUE(a.send("m2").isOk());
  a.appendOutput(&wire);
  std::vector<std::string> msgs;
  ASSERT_TRUE(b.feed(std::string_view(wire).substr(15), &msgs).isOk());
  EXPECT_EQ(msgs, (std::vector<std::string>{"m1", "m2"}));
}

TEST_F(SecureSessionTest, SendBeforeHandshakeIsRefused) {
  SecureSession a(Role::kInitiator, alice_, "");
  Status s = a.send("too early");
  EXPECT_EQ(s.code(), StatusCode::kFailedPrecondition) << s.toString();
  SecureSession b(Role::kResponder, bob_, "");
  EXPECT_EQ(b.send("too early").code(), StatusCode::kFailedPrecondition);
}

TEST_F(SecureSessionTest, OversizedMessageIsRefusedAndNothingQueued) {
  SecureSession a(Role::kInitiator, alice_, "");
  SecureSession b(Role::kResponder, bob_, "");
  ASSERT_TRUE(pump(a, b).isOk());
  Status s = a.send(std::string(SecureSession::kMaxMessageBytes + 1, 'x'));
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("1048576"), std::string::npos) << s.message();
  EXPECT_FALSE(a.hasOutput());
  // The session is still usable.
  ASSERT_TRUE(a.send("fine").isOk());
  std::vector<std::string> msgs;
  ASSERT_TRUE(b.feed(a.takeOutput(), &msgs).isOk());
  EXPECT_EQ(msgs, std::vector<std::string>{"fine"});
}

TEST_F(SecureSessionTest, OversizedFrameHeaderIsRefusedBeforeItsBody) {
  SecureSession a(Role::kInitiator, alice_, "");
  SecureSession b(Role::kResponder, bob_, "");
  ASSERT_TRUE(pump(a, b).isOk());
  std::vector<std::string> msgs;
  // Just the header announcing 1 MiB + 17 bytes: refused without waiting for the body.
  uint32_t n = SecureSession::kMaxMessageBytes + 17;
  std::string header{static_cast<char>(n >> 24), static_cast<char>(n >> 16),
                     static_cast<char>(n >> 8), static_cast<char>(n)};
  Status s = b.feed(header, &msgs);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << s.toString();
  EXPECT_NE(s.message().find("exceeds"), std::string::npos) << s.message();
}

TEST_F(SecureSessionTest, OversizedHandshakeMessageIsRefused) {
  SecureSession b(Role::kResponder, bob_, "");
  std::vector<std::string> msgs;
  Status s = b.feed(std::string("\x00\x00\x10\x01", 4), &msgs);  // 4097 bytes announced
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << s.toString();
  EXPECT_NE(s.message().find("handshake message of 4097 bytes"), std::string::npos) << s.message();
}

TEST_F(SecureSessionTest, AnotherProtocolVersionIsNamedInTheError) {
  SecureSession a(Role::kInitiator, alice_, "");
  SecureSession b(Role::kResponder, bob_, "");
  std::string hello = a.takeOutput();
  hello[4] = 2;  // version byte
  std::vector<std::string> msgs;
  Status s = b.feed(hello, &msgs);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("version 2; this node speaks 1"), std::string::npos) << s.message();
}

TEST_F(SecureSessionTest, HelloReflectedToItsSenderIsRefused) {
  SecureSession a(Role::kInitiator, alice_, "");
  std::vector<std::string> msgs;
  Status s = a.feed(a.takeOutput(), &msgs);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << s.toString();
  EXPECT_FALSE(a.established());
}

TEST_F(SecureSessionTest, LowOrderEphemeralKeyIsRefused) {
  SecureSession a(Role::kInitiator, alice_, "");
  SecureSession b(Role::kResponder, bob_, "");
  std::string hello = a.takeOutput();
  // An all-zero X25519 key is a low-order point: the shared secret would be zero.
  std::fill(hello.begin() + 6, hello.begin() + 6 + 32, '\0');
  std::vector<std::string> msgs;
  Status s = b.feed(hello, &msgs);
  EXPECT_FALSE(s.isOk());
  EXPECT_NE(s.message().find("ephemeral"), std::string::npos) << s.message();
  EXPECT_FALSE(b.hasOutput());
}

// Every byte of every handshake message matters: flipping any one of them stops both
// sides from completing the handshake with each other.
TEST_F(SecureSessionTest, AnyTamperedHandshakeByteFailsTheHandshake) {
  for (int msg = 0; msg < 3; ++msg) {
    size_t size = 0;
    for (size_t pos = 0;; ++pos) {
      SecureSession a(Role::kInitiator, alice_, "");
      SecureSession b(Role::kResponder, bob_, "");
      std::vector<std::string> msgs;
      std::string m1 = a.takeOutput();
      if (msg == 0) {
        size = m1.size();
        if (pos >= size) break;
        m1[pos] ^= 0x01;
      }
      Status s1 = b.feed(m1, &msgs);
      Status s2, s3;
      if (s1.isOk() && b.hasOutput()) {
        std::string m2 = b.takeOutput();
        if (msg == 1) {
          size = m2.size();
          if (pos >= size) break;
          m2[pos] ^= 0x01;
        }
        s2 = a.feed(m2, &msgs);
        if (s2.isOk() && a.hasOutput()) {
          std::string m3 = a.takeOutput();
          if (msg == 2) {
            size = m3.size();
            if (pos >= size) break;
            m3[pos] ^= 0x01;
          }
          s3 = b.feed(m3, &msgs);
        }
      }
      bool all_ok = s1.isOk() && s2.isOk() && s3.isOk();
      EXPECT_FALSE(a.established() && b.established()) << "message " << msg << " byte " << pos;
      EXPECT_FALSE(b.established()) << "message " << msg << " byte " << pos;
      // Past the length prefix, a flipped byte is an error, not a silent stall.
      if (pos >= 4) {
        EXPECT_FALSE(all_ok) << "message " << msg << " byte " << pos;
      }
    }
    EXPECT_GT(size, 4u);
  }
}

TEST_F(SecureSessionTest, TamperedFrameFailsAndKillsTheSession) {
  SecureSession a(Role::kInitiator, alice_, "");
  SecureSession b(Role::kResponder, bob_, "");
  ASSERT_TRUE(pump(a, b).isOk());
  ASSERT_TRUE(a.send("membership delta").isOk());
  std::string frame = a.takeOutput();
  for (size_t pos = 4; pos < frame.size(); ++pos) {
    SecureSession a2(Role::kInitiator, alice_, "");
    SecureSession b2(Role::kResponder, bob_, "");
    ASSERT_TRUE(pump(a2, b2).isOk());
    ASSERT_TRUE(a2.send("membership delta").isOk());
    std::string f = a2.takeOutput();
    f[pos] ^= 0x80;
    std::vector<std::string> msgs;
    Status s = b2.feed(f, &msgs);
    EXPECT_EQ(s.code(), StatusCode::kPermissionDenied) << "byte " << pos << ": " << s.toString();
    EXPECT_TRUE(msgs.empty());
    // Dead for good: even a genuine frame is refused now.
    ASSERT_TRUE(a2.send("genuine").isOk());
    EXPECT_FALSE(b2.feed(a2.takeOutput(), &msgs).isOk());
    EXPECT_TRUE(msgs.empty());
  }
  std::vector<std::string> msgs;
  ASSERT_TRUE(b.feed(frame, &msgs).isOk());
  EXPECT_EQ(msgs, std::vector<std::string>{"membership delta"});
}

TEST_F(SecureSessionTest, ReplayedFrameFails) {
  SecureSession a(Role::kInitiator, alice_, "");
  SecureSession b(Role::kResponder, bob_, "");
  ASSERT_TRUE(pump(a, b).isOk());
  ASSERT_TRUE(a.send("leave").isOk());
  std::string frame = a.takeOutput();
  std::vector<std::string> msgs;
  ASSERT_TRUE(b.feed(frame, &msgs).isOk());
  Status s = b.feed(frame, &msgs);
  EXPECT_EQ(s.code(), StatusCode::kPermissionDenied) << s.toString();
  EXPECT_NE(s.message().find("replayed"), std::string::npos);
  EXPECT_EQ(msgs, std::vector<std::string>{"leave"});
}

TEST_F(SecureSessionTest, ReorderedOrDroppedFrameFails) {
  for (bool drop : {false, true}) {
    SecureSession a(Role::kInitiator, alice_, "");
    SecureSession b(Role::kResponder, bob_, "");
    ASSERT_TRUE(pump(a, b).isOk());
    ASSERT_TRUE(a.send("first").isOk());
    std::string first = a.takeOutput();
    ASSERT_TRUE(a.send("second").isOk());
    std::string second = a.takeOutput();
    std::vector<std::string> msgs;
    Status s = b.feed(second, &msgs);  // "first" dropped, or about to arrive late
    EXPECT_EQ(s.code(), StatusCode::kPermissionDenied) << s.toString();
    if (!drop) {
      EXPECT_FALSE(b.feed(first, &msgs).isOk());
    }
    EXPECT_TRUE(msgs.empty());
  }
}

TEST_F(SecureSessionTest, FrameFromAnotherSessionFails) {
  SecureSession a1(Role::kInitiator, alice_, "");
  SecureSession b1(Role::kResponder, bob_, "");
  SecureSession a2(Role::kInitiator, alice_, "");
  SecureSession b2(Role::kResponder, bob_, "");
  ASSERT_TRUE(pump(a1, b1).isOk());
  ASSERT_TRUE(pump(a2, b2).isOk());
  ASSERT_TRUE(a1.send("for session 1").isOk());
  std::vector<std::string> msgs;
  EXPECT_EQ(b2.feed(a1.takeOutput(), &msgs).code(), StatusCode::kPermissionDenied);
  EXPECT_TRUE(msgs.empty());
}

TEST_F(SecureSessionTest, ClusterKeyOnBothSidesWorks) {
  std::string key = randomBytes(32);
  SecureSession a(Role::kInitiator, alice_, key);
  SecureSession b(Role::kResponder, bob_, key);
  ASSERT_TRUE(pump(a, b).isOk());
  ASSERT_TRUE(a.established() && b.established());
  ASSERT_TRUE(b.send("welcome").isOk());
  std::vector<std::string> at_a;
  ASSERT_TRUE(pump(a, b, &at_a).isOk());
  EXPECT_EQ(at_a, std::vector<std::string>{"welcome"});
}

TEST_F(SecureSessionTest, ClusterKeyMismatchFailsTheHandshakeSayingSo) {
  struct Case {
    std::string initiator_key, responder_key;
  };
  std::string k1 = randomBytes(32), k2 = randomBytes(32);
  for (const Case& c : {Case{k1, ""}, Case{"", k1}, Case{k1, k2}}) {
    SecureSession a(Role::kInitiator, alice_, c.initiator_key);
    SecureSession b(Role::kResponder, bob_, c.responder_key);
    Status s = pump(a, b);
    EXPECT_EQ(s.code(), StatusCode::kPermissionDenied) << s.toString();
    EXPECT_NE(s.message().find("cluster key mismatch"), std::string::npos) << s.message();
    EXPECT_NE(s.message().find(bob_.id()), std::string::npos) << s.message();
    EXPECT_FALSE(a.established());
    EXPECT_FALSE(b.established());
  }
}

TEST_F(SecureSessionTest, RandomGarbageInChunksOfEverySizeNeverCrashes) {
  std::mt19937 rng(4);
  std::string garbage(3000, '\0');
  for (char& c : garbage) c = static_cast<char>(rng());
  // A small first length so that both the "wait for more" and "parse" paths run.
  garbage[0] = garbage[1] = garbage[2] = 0;
  for (size_t chunk = 1; chunk <= garbage.size(); chunk += (chunk < 64 ? 1 : 37)) {
    for (Role role : {Role::kInitiator, Role::kResponder}) {
      SecureSession s(role, alice_, "");
      (void)s.takeOutput();
      std::vector<std::string> msgs;
      for (size_t pos = 0; pos < garbage.size(); pos += chunk) {
        if (!s.feed(std::string_view(garbage).substr(pos, chunk), &msgs).isOk()) break;
      }
      EXPECT_FALSE(s.established());
      EXPECT_TRUE(msgs.empty());
    }
  }
  // And garbage after an established handshake.
  SecureSession a(Role::kInitiator, alice_, "");
  SecureSession b(Role::kResponder, bob_, "");
  ASSERT_TRUE(pump(a, b).isOk());
  std::vector<std::string> msgs;
  Status s = b.feed(garbage, &msgs);
  EXPECT_FALSE(s.isOk());
  EXPECT_TRUE(msgs.empty());
  Status s2 = b.feed(framed("short"), &msgs);
  EXPECT_FALSE(s2.isOk());
}

TEST_F(SecureSessionTest, FrameShorterThanItsTagIsMalformed) {
  SecureSession a(Role::kInitiator, alice_, "");
  SecureSession b(Role::kResponder, bob_, "");
  ASSERT_TRUE(pump(a, b).isOk());
  std::vector<std::string> msgs;
  Status s = b.feed(framed("0123456789"), &msgs);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << s.toString();
  EXPECT_NE(s.message().find("shorter than its 16-byte tag"), std::string::npos);
}

TEST(GroupSealTest, RoundTrip) {
  std::string key = randomBytes(kGroupKeyBytes);
  std::string sealed = sealGroup(key, "beacon|198.18.0.0/24", "supernode=abc");
  ASSERT_EQ(sealed.size(), kGroupNonceBytes + 13 + kGroupTagBytes);
  auto opened = openGroup(key, "beacon|198.18.0.0/24", sealed);
  ASSERT_TRUE(opened.isOk()) << opened.status().toString();
  EXPECT_EQ(*opened, "supernode=abc");
  // A fresh nonce every time: equal plaintexts do not give equal packets.
  EXPECT_NE(sealGroup(key, "a", "same"), sealGroup(key, "a", "same"));
  auto empty = openGroup(key, "", sealGroup(key, "", ""));
  ASSERT_TRUE(empty.isOk());
  EXPECT_EQ(*empty, "");
}

TEST(GroupSealTest, WrongKeyWrongAadOrAnyTamperedByteFails) {
  std::string key = randomBytes(kGroupKeyBytes);
  std::string sealed = sealGroup(key, "aad", "payload");
  auto wrong_key = openGroup(randomBytes(kGroupKeyBytes), "aad", sealed);
  EXPECT_EQ(wrong_key.status().code(), StatusCode::kPermissionDenied);
  auto wrong_aad = openGroup(key, "aae", sealed);
  EXPECT_EQ(wrong_aad.status().code(), StatusCode::kPermissionDenied);
  for (size_t pos = 0; pos < sealed.size(); ++pos) {
    std::string t = sealed;
    t[pos] ^= 0x04;
    EXPECT_EQ(openGroup(key, "aad", t).status().code(), StatusCode::kPermissionDenied)
        << "byte " << pos;
  }
  EXPECT_FALSE(openGroup(key, "aad", sealed + "x").isOk());
  EXPECT_FALSE(openGroup(key, "aad", sealed.substr(0, sealed.size() - 1)).isOk());
}

TEST(GroupSealTest, MalformedInputIsAClearError) {
  std::string key = randomBytes(kGroupKeyBytes);
  for (size_t n : {0, 1, 27}) {
    auto r = openGroup(key, "", std::string(n, 'x'));
    EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument) << n;
    EXPECT_NE(r.status().message().find("at least 28"), std::string::npos);
  }
  auto short_key = openGroup("short", "", std::string(40, 'x'));
  EXPECT_EQ(short_key.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(short_key.status().message().find("group key of 5 bytes; 32 expected"),
            std::string::npos);
  EXPECT_EQ(sealGroup("short", "", "x"), "");
}

TEST(RandomBytesTest, SizesAndFreshness) {
  EXPECT_EQ(randomBytes(0), "");
  EXPECT_EQ(randomBytes(32).size(), 32u);
  EXPECT_NE(randomBytes(16), randomBytes(16));
}

}  // namespace
}  // namespace edge::identity
