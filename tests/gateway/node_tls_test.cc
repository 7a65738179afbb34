// NodeTls: mutual TLS between two node keys over socketpairs and loopback TCP.
#include "gateway/node_tls.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <thread>

#include "common/fs.h"

namespace edge::gateway {
namespace {

using namespace std::chrono_literals;
using Kind = IoResult::Kind;

identity::NodeIdentity newIdentity() {
  auto id = identity::NodeIdentity::generate();
  EXPECT_TRUE(id.isOk()) << id.status().toString();
  return std::move(id).value();
}

std::unique_ptr<NodeTls> newTls(const identity::NodeIdentity& id, NodeTls::Options o = {}) {
  auto tls = NodeTls::create(id, std::move(o));
  EXPECT_TRUE(tls.isOk()) << tls.status().toString();
  return std::move(tls).value();
}

std::pair<int, int> socketPair(int buffer_bytes = 0) {
  int fds[2];
  EXPECT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds), 0);
  if (buffer_bytes > 0) {
    for (int fd : fds) {
      ::setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &buffer_bytes, sizeof buffer_bytes);
      ::setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &buffer_bytes, sizeof buffer_bytes);
    }
  }
  return {fds[0], fds[1]};
}

bool wanting(const IoResult& r) {
  return r.kind == Kind::kWantRead || r.kind == Kind::kWantWrite;
}

short eventsFor(const IoResult& r) {
  return r.kind == Kind::kWantWrite ? POLLOUT : POLLIN;
}

// Drives two non-blocking handshakes from one thread until neither waits any more (or
// nothing moves for 5 s: one side failed and the other waits for nothing).
std::pair<IoResult, IoResult> handshakeBoth(Transport& a, Transport& b) {
  IoResult ra = IoResult::wantRead(), rb = IoResult::wantRead();
  for (;;) {
    if (wanting(ra)) ra = a.handshake();
    if (wanting(rb)) rb = b.handshake();
    if (!wanting(ra) && !wanting(rb)) break;
    pollfd p[2] = {{a.fd(), wanting(ra) ? eventsFor(ra) : short(0), 0},
                   {b.fd(), wanting(rb) ? eventsFor(rb) : short(0), 0}};
    if (::poll(p, 2, 5000) == 0) break;
  }
  return {ra, rb};
}

struct Connected {
  TransportPtr server, client;
};

Connected connectPair(const NodeTls& server_tls, const NodeTls& client_tls, int buffer_bytes = 0) {
  auto [s, c] = socketPair(buffer_bytes);
  auto server = server_tls.server(s, "");
  auto client = client_tls.client(c, server_tls.nodeId());
  EXPECT_TRUE(server.isOk() && client.isOk());
  auto [rs, rc] = handshakeBoth(**server, **client);
  EXPECT_EQ(rs.kind, Kind::kOk) << rs.error;
  EXPECT_EQ(rc.kind, Kind::kOk) << rc.error;
  return {std::move(server).value(), std::move(client).value()};
}

// One end of a transfer: sends `out`, then (optionally) shutdownWrite(), collects `in`.
struct Side {
  Transport* t;
  std::string out;
  bool shut_when_sent = true;
  size_t sent = 0;
  std::string in;
  bool shut = false, closed = false;
  IoResult last_write = IoResult::ok(0), last_read = IoResult::ok(0);
  int write_waits = 0, partial_writes = 0;

  // One round of non-blocking work; true when something moved.
  bool step() {
    bool moved = false;
    while (sent < out.size()) {
      size_t n = std::min<size_t>(out.size() - sent, 256 << 10);
      last_write = t->write(out.data() + sent, n);
      if (last_write.kind != Kind::kOk) break;
      if (last_write.bytes < n) ++partial_writes;
      sent += last_write.bytes;
      moved = true;
    }
    if (wanting(last_write)) ++write_waits;
    EXPECT_NE(last_write.kind, Kind::kError) << last_write.error;
    if (sent == out.size() && shut_when_sent && !shut) {
      IoResult r = t->shutdownWrite();
      EXPECT_TRUE(r.kind == Kind::kOk || wanting(r)) << r.error;
      if (r.kind == Kind::kOk) shut = moved = true;
    }
    char buf[16 << 10];
    while (!closed) {
      last_read = t->read(buf, sizeof buf);
      if (last_read.kind == Kind::kOk) {
        in.append(buf, last_read.bytes);
        moved = true;
      } else {
        if (last_read.kind == Kind::kClosed) closed = moved = true;
        EXPECT_NE(last_read.kind, Kind::kError) << last_read.error;
        break;
      }
    }
    return moved;
  }
  bool done() const { return closed && sent == out.size() && (shut || !shut_when_sent); }
  bool failed() const { return last_write.kind == Kind::kError || last_read.kind == Kind::kError; }
  short events() const {
    short e = 0;
    if (!closed) e |= eventsFor(last_read);
    if (sent < out.size() && wanting(last_write)) e |= eventsFor(last_write);
    return e;
  }
};

// Both sides send their `out` and read until the other closes; fails on a stall.
void transfer(Side& a, Side& b) {
  while (!(a.done() && b.done())) {
    if (a.failed() || b.failed()) return;
    bool moved = a.step();
    moved = b.step() || moved;
    if (moved) continue;
    pollfd p[2] = {{a.t->fd(), a.events(), 0}, {b.t->fd(), b.events(), 0}};
    ASSERT_GT(::poll(p, 2, 5000), 0)
        << "transfer stalled: a sent " << a.sent << " got " << a.in.size() << ", b sent " << b.sent
        << " got " << b.in.size();
  }
}

std::string pattern(size_t n, unsigned seed) {
  std::string s(n, '\0');
  uint32_t x = seed * 2654435761u + 1;
  for (size_t i = 0; i < n; ++i) {
    x = x * 1103515245u + 12345u;
    s[i] = static_cast<char>(x >> 24);
  }
  return s;
}

// ---------------------------------------------------------------------------------------

TEST(NodeTlsTest, CertificateNamesTheNodeAndNothingElse) {
  auto id = newIdentity();
  auto tls = newTls(id);
  EXPECT_EQ(tls->nodeId(), id.id());
  const auto* p = reinterpret_cast<const unsigned char*>(tls->certificateDer().data());
  X509* cert = d2i_X509(nullptr, &p, static_cast<long>(tls->certificateDer().size()));
  ASSERT_NE(cert, nullptr);
  char cn[64] = {};
  X509_NAME_get_text_by_NID(X509_get_subject_name(cert), NID_commonName, cn, sizeof cn);
  EXPECT_EQ(std::string(cn), id.id());
  EXPECT_EQ(X509_NAME_cmp(X509_get_subject_name(cert), X509_get_issuer_name(cert)), 0);
  EXPECT_EQ(X509_get_ext_by_NID(cert, NID_subject_alt_name, -1), -1) << "no SAN on a link";
  EXPECT_EQ(X509_verify(cert, X509_get0_pubkey(cert)), 1);
  EXPECT_TRUE(EVP_PKEY_is_a(X509_get0_pubkey(cert), "ED25519"));
  EXPECT_LT(X509_cmp_current_time(X509_get0_notBefore(cert)), 0);
  EXPECT_GT(X509_cmp_current_time(X509_get0_notAfter(cert)), 0);
  X509_free(cert);

  // Re-made at each start: same node, new serial.
  auto again = newTls(id);
  EXPECT_NE(again->certificateDer(), tls->certificateDer());
}

TEST(NodeTlsTest, HandshakeBothWaysProvesBothNodeIds) {
  auto a = newIdentity(), b = newIdentity();
  auto ta = newTls(a), tb = newTls(b);
  for (int dir = 0; dir < 2; ++dir) {
    const NodeTls& srv = dir == 0 ? *ta : *tb;
    const NodeTls& cli = dir == 0 ? *tb : *ta;
    Connected c = connectPair(srv, cli);
    EXPECT_EQ(c.client->peerNodeId(), srv.nodeId());
    EXPECT_EQ(c.server->peerNodeId(), cli.nodeId());
    Side s{c.server.get(), "hello from the server"}, k{c.client.get(), "hello from the client"};
    transfer(s, k);
    EXPECT_EQ(s.in, "hello from the client");
    EXPECT_EQ(k.in, "hello from the server");
  }
}

TEST(NodeTlsTest, ClientExpectingAnotherNodeIsRefusedWithTheReason) {
  auto a = newIdentity(), b = newIdentity(), other = newIdentity();
  auto ta = newTls(a), tb = newTls(b);
  auto [s, c] = socketPair();
  auto server = ta->server(s, "");
  auto client = tb->client(c, other.id());
  ASSERT_TRUE(server.isOk() && client.isOk());
  auto [rs, rc] = handshakeBoth(**server, **client);
  ASSERT_EQ(rc.kind, Kind::kError);
  EXPECT_EQ(rc.error, "peer certificate belongs to node " + a.id() + ", expected " + other.id());
  ASSERT_EQ(rs.kind, Kind::kError);
  EXPECT_NE(rs.error.find("TLS handshake failed"), std::string::npos) << rs.error;
  EXPECT_EQ((*server)->peerNodeId(), "");
}

TEST(NodeTlsTest, ServerRefusesNodesItDoesNotAllow) {
  auto a = newIdentity(), b = newIdentity(), c = newIdentity();
  std::atomic<int> asked{0};
  NodeTls::Options o;
  o.allow_client = [&](const std::string& id) {
    ++asked;
    return id == c.id();
  };
  auto ta = newTls(a, o), tb = newTls(b), tc = newTls(c);

  auto [s, k] = socketPair();
  auto server = ta->server(s, "");
  auto client = tb->client(k, a.id());
  auto [rs, rc] = handshakeBoth(**server, **client);
  ASSERT_EQ(rs.kind, Kind::kError);
  EXPECT_EQ(rs.error, "node " + b.id() + " is not allowed to connect");
  // TLS 1.3 clients finish before the server has judged them; the refusal is the first
  // thing they read.
  if (rc.kind == Kind::kOk) {
    char buf[16];
    IoResult r = IoResult::wantRead();
    for (int i = 0; i < 100 && wanting(r); ++i) r = (*client)->read(buf, sizeof buf);
    rc = r;
  }
  ASSERT_EQ(rc.kind, Kind::kError);
  EXPECT_NE(rc.error.find("refused by the peer"), std::string::npos) << rc.error;

  Connected ok = connectPair(*ta, *tc);
  EXPECT_EQ(ok.server->peerNodeId(), c.id());
  EXPECT_EQ(asked.load(), 2);
}

// A TLS 1.3 client made with plain OpenSSL that presents no certificate.
TEST(NodeTlsTest, ClientWithoutCertificateIsRefused) {
  auto a = newIdentity();
  auto ta = newTls(a);
  auto [s, c] = socketPair();
  auto server = ta->server(s, "");
  ASSERT_TRUE(server.isOk());
  SSL_CTX* ctx = SSL_CTX_new(TLS_client_method());
  SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION);
  SSL* ssl = SSL_new(ctx);
  SSL_set_fd(ssl, c);
  SSL_set_connect_state(ssl);
  ASSERT_EQ(::fcntl(c, F_SETFL, O_NONBLOCK), 0);
  IoResult rs = IoResult::wantRead();
  for (int i = 0; i < 200 && wanting(rs); ++i) {
    SSL_do_handshake(ssl);
    char buf[16];
    SSL_read(ssl, buf, sizeof buf);  // after its handshake: takes in the server's alert
    ERR_clear_error();
    rs = (*server)->handshake();
  }
  ASSERT_EQ(rs.kind, Kind::kError);
  EXPECT_EQ(rs.error, "no peer certificate");
  SSL_free(ssl);
  SSL_CTX_free(ctx);
  ::close(c);
}

TEST(NodeTlsTest, Tls12ClientIsRefused) {
  auto a = newIdentity();
  auto ta = newTls(a);
  auto [s, c] = socketPair();
  auto server = ta->server(s, "");
  ASSERT_TRUE(server.isOk());
  SSL_CTX* ctx = SSL_CTX_new(TLS_client_method());
  SSL_CTX_set_max_proto_version(ctx, TLS1_2_VERSION);
  SSL* ssl = SSL_new(ctx);
  SSL_set_fd(ssl, c);
  SSL_set_connect_state(ssl);
  ASSERT_EQ(::fcntl(c, F_SETFL, O_NONBLOCK), 0);
  IoResult rs = IoResult::wantRead();
  for (int i = 0; i < 20 && wanting(rs); ++i) {
    SSL_do_handshake(ssl);
    ERR_clear_error();
    rs = (*server)->handshake();
  }
  ASSERT_EQ(rs.kind, Kind::kError);
  EXPECT_EQ(rs.error, "TLS handshake failed: not TLS 1.3 from a node (unsupported protocol)");
  SSL_free(ssl);
  SSL_CTX_free(ctx);
  ::close(c);
}

// A server whose certificate is a P-256 key (a web server's, say) is not a node.
TEST(NodeTlsTest, NonEd25519ServerCertificateIsRefused) {
  auto b = newIdentity();
  auto tb = newTls(b);
  EVP_PKEY* key = EVP_EC_gen("P-256");
  X509* cert = X509_new();
  ASN1_INTEGER_set(X509_get_serialNumber(cert), 1);
  X509_gmtime_adj(X509_getm_notBefore(cert), 0);
  X509_gmtime_adj(X509_getm_notAfter(cert), 3600);
  X509_set_pubkey(cert, key);
  X509_NAME_add_entry_by_txt(X509_get_subject_name(cert), "CN", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>("web"), -1, -1, 0);
  X509_set_issuer_name(cert, X509_get_subject_name(cert));
  X509_sign(cert, key, EVP_sha256());
  SSL_CTX* ctx = SSL_CTX_new(TLS_server_method());
  SSL_CTX_use_certificate(ctx, cert);
  SSL_CTX_use_PrivateKey(ctx, key);
  auto [s, c] = socketPair();
  SSL* ssl = SSL_new(ctx);
  SSL_set_fd(ssl, s);
  SSL_set_accept_state(ssl);
  ASSERT_EQ(::fcntl(s, F_SETFL, O_NONBLOCK), 0);
  auto client = tb->client(c, b.id());
  ASSERT_TRUE(client.isOk());
  IoResult rc = IoResult::wantRead();
  for (int i = 0; i < 200 && wanting(rc); ++i) {
    SSL_do_handshake(ssl);
    ERR_clear_error();
    rc = (*client)->handshake();
  }
  ASSERT_EQ(rc.kind, Kind::kError);
  EXPECT_EQ(rc.error, "peer certificate key is EC, only Ed25519 node keys are accepted");
  SSL_free(ssl);
  SSL_CTX_free(ctx);
  X509_free(cert);
  EVP_PKEY_free(key);
  ::close(s);
}

TEST(NodeTlsTest, GarbageInsteadOfClientHelloIsAnErrorNotACrash) {
  auto a = newIdentity();
  auto ta = newTls(a);
  const std::string inputs[] = {
      "GET / HTTP/1.1\r\nHost: x\r\n\r\n",
      std::string("\x16\x03\x01\xff\xff", 5) + std::string(400, 'A'),  // huge record length
      std::string("\x16\x03\x01\x00\x05\x01\x00\x00\x01\x00", 10),     // truncated hello
      pattern(4096, 7),
  };
  for (const std::string& garbage : inputs) {
    for (bool via_already_read : {true, false}) {
      auto [s, c] = socketPair();
      auto server = ta->server(s, via_already_read ? garbage : "");
      ASSERT_TRUE(server.isOk());
      if (!via_already_read) {
        ASSERT_EQ(::send(c, garbage.data(), garbage.size(), 0), ssize_t(garbage.size()));
      }
      ::shutdown(c, SHUT_WR);
      IoResult r = IoResult::wantRead();
      for (int i = 0; i < 10 && wanting(r); ++i) r = (*server)->handshake();
      ASSERT_EQ(r.kind, Kind::kError);
      EXPECT_EQ(r.error.rfind("TLS handshake failed: ", 0), 0u) << r.error;
      if (garbage.rfind("GET ", 0) == 0) {
        EXPECT_EQ(r.error, "TLS handshake failed: not TLS 1.3 from a node (http request)");
      }
      EXPECT_EQ(r.error.find('\n'), std::string::npos);
      ::close(c);
    }
  }
}

// The port 8083 demultiplexer takes some bytes of the ClientHello off the socket before it
// knows the connection is TLS: wherever it stops, the handshake must work.
TEST(NodeTlsTest, AlreadyReadSplitAtEveryByteOfTheClientHello) {
  auto a = newIdentity(), b = newIdentity();
  auto ta = newTls(a), tb = newTls(b);
  size_t hello_size = 0;
  for (size_t split = 0;; ++split) {
    auto [s, c] = socketPair();
    auto client = tb->client(c, a.id());
    ASSERT_TRUE(client.isOk());
    ASSERT_EQ((*client)->handshake().kind, Kind::kWantRead);  // the ClientHello is sent
    if (hello_size == 0) {
      char buf[4096];
      ssize_t n = ::recv(s, buf, sizeof buf, MSG_PEEK);
      ASSERT_GT(n, 100);
      hello_size = static_cast<size_t>(n);
    }
    if (split > hello_size) break;
    std::string first(split, '\0');
    if (split > 0) {
      ASSERT_EQ(::recv(s, first.data(), split, MSG_WAITALL), ssize_t(split));
    }
    auto server = ta->server(s, first);
    ASSERT_TRUE(server.isOk());
    auto [rs, rc] = handshakeBoth(**server, **client);
    ASSERT_EQ(rs.kind, Kind::kOk) << "split " << split << ": " << rs.error;
    ASSERT_EQ(rc.kind, Kind::kOk) << "split " << split << ": " << rc.error;
    ASSERT_EQ((*server)->peerNodeId(), b.id());
    EXPECT_FALSE((*server)->hasBufferedInput());
  }
  EXPECT_GT(hello_size, 100u);
}

TEST(NodeTlsTest, LargeTransfersBothWaysWithPartialWrites) {
  auto a = newIdentity(), b = newIdentity();
  auto ta = newTls(a), tb = newTls(b);
  Connected c = connectPair(*ta, *tb, 4096);
  Side s{c.server.get(), pattern(8 << 20, 1)}, k{c.client.get(), pattern(8 << 20, 2)};
  transfer(s, k);
  EXPECT_TRUE(s.in == k.out) << "server got " << s.in.size() << " bytes";
  EXPECT_TRUE(k.in == s.out) << "client got " << k.in.size() << " bytes";
  EXPECT_GT(s.write_waits + s.partial_writes, 0) << "small buffers must force partial writes";
  EXPECT_GT(k.write_waits + k.partial_writes, 0);
}

TEST(NodeTlsTest, ShutdownWriteIsSeenAsClosedAndTheOtherWayStaysOpen) {
  auto a = newIdentity(), b = newIdentity();
  auto ta = newTls(a), tb = newTls(b);
  Connected c = connectPair(*ta, *tb);
  // The client sends its request and half-closes; the server reads to the end, then
  // answers on the direction still open.
  Side k{c.client.get(), "request"}, s{c.server.get(), ""};
  s.shut_when_sent = false;
  while (!s.closed) {
    k.step();
    s.step();
    ASSERT_FALSE(k.failed() || s.failed());
  }
  EXPECT_EQ(s.in, "request");
  EXPECT_EQ(s.last_read.kind, Kind::kClosed);
  s.out = "response";
  s.shut_when_sent = true;
  transfer(s, k);
  EXPECT_EQ(k.in, "response");
  EXPECT_TRUE(k.closed);
  char buf[8];
  EXPECT_EQ(c.client->read(buf, sizeof buf).kind, Kind::kClosed);  // and stays closed
}

// Moves whatever is waiting on `from` to `to`, at most `limit` bytes; returns them.
std::string shuttle(int from, int to, size_t limit = SIZE_MAX) {
  std::string moved;
  char buf[4096];
  while (moved.size() < limit) {
    ssize_t n = ::recv(from, buf, std::min(sizeof buf, limit - moved.size()), MSG_DONTWAIT);
    if (n <= 0) break;
    moved.append(buf, static_cast<size_t>(n));
  }
  if (!moved.empty()) {
    EXPECT_EQ(::send(to, moved.data(), moved.size(), 0), ssize_t(moved.size()));
  }
  return moved;
}

// Read-ahead keeps whole records inside OpenSSL after the socket is empty: the transport
// must say so (an edge-triggered loop would never hear of them again), and must not claim
// input for half a record that needs the socket.
TEST(NodeTlsTest, HasBufferedInputTellsRecordsReadAheadFromHalfRecords) {
  auto a = newIdentity(), b = newIdentity();
  auto ta = newTls(a), tb = newTls(b);
  auto [c, x1] = socketPair();
  auto [x2, s] = socketPair();
  auto server = std::move(ta->server(s, "")).value();
  auto client = std::move(tb->client(c, a.id())).value();
  IoResult rs = IoResult::wantRead(), rc = IoResult::wantRead();
  for (int i = 0; i < 20 && (wanting(rs) || wanting(rc)); ++i) {
    if (wanting(rc)) rc = client->handshake();
    shuttle(x1, x2);
    if (wanting(rs)) rs = server->handshake();
    shuttle(x2, x1);
  }
  ASSERT_EQ(rs.kind, Kind::kOk) << rs.error;
  ASSERT_EQ(rc.kind, Kind::kOk) << rc.error;

  char buf[64];
  for (const char* record : {"aaaaa", "bbbbb", "ccccc"}) {
    ASSERT_EQ(client->write(record, 5).bytes, 5u);
  }
  shuttle(x1, x2);
  std::string got;
  IoResult r = server->read(buf, 5);  // one socket read takes all three records
  ASSERT_EQ(r.kind, Kind::kOk);
  got.append(buf, r.bytes);
  while (server->hasBufferedInput()) {
    r = server->read(buf, 5);
    ASSERT_EQ(r.kind, Kind::kOk) << "buffered input must be readable without the socket";
    got.append(buf, r.bytes);
  }
  EXPECT_EQ(got, "aaaaabbbbbccccc");
  EXPECT_EQ(server->read(buf, sizeof buf).kind, Kind::kWantRead);

  // Half a record on the socket: read() needs more, and nothing is "buffered".
  ASSERT_EQ(client->write("hello", 5).bytes, 5u);
  std::string record;
  char cbuf[4096];
  ssize_t n = ::recv(x1, cbuf, sizeof cbuf, MSG_DONTWAIT);
  ASSERT_GT(n, 10);
  record.assign(cbuf, static_cast<size_t>(n));
  ASSERT_EQ(::send(x2, record.data(), 8, 0), 8);
  EXPECT_EQ(server->read(buf, sizeof buf).kind, Kind::kWantRead);
  EXPECT_FALSE(server->hasBufferedInput());
  ASSERT_EQ(::send(x2, record.data() + 8, record.size() - 8, 0), ssize_t(record.size() - 8));
  r = server->read(buf, sizeof buf);
  ASSERT_EQ(r.kind, Kind::kOk);
  EXPECT_EQ(std::string(buf, r.bytes), "hello");
  EXPECT_FALSE(server->hasBufferedInput());
  ::close(x1);
  ::close(x2);
}

// A stream that ends without close_notify may have been cut by anyone on the path: an
// error, not an orderly end a proxy would pass on as a complete response.
TEST(NodeTlsTest, EndWithoutCloseNotifyIsAnError) {
  auto a = newIdentity(), b = newIdentity();
  auto ta = newTls(a), tb = newTls(b);
  Connected c = connectPair(*ta, *tb);
  ASSERT_EQ(c.server->write("partial", 7).bytes, 7u);
  ::shutdown(c.server->fd(), SHUT_WR);  // TCP FIN, no TLS close_notify
  std::string got;
  char buf[64];
  IoResult r = IoResult::wantRead();
  for (int i = 0; i < 10 && r.kind != Kind::kError && r.kind != Kind::kClosed; ++i) {
    r = c.client->read(buf, sizeof buf);
    if (r.kind == Kind::kOk) got.append(buf, r.bytes);
  }
  EXPECT_EQ(got, "partial");
  ASSERT_EQ(r.kind, Kind::kError);
  EXPECT_EQ(r.error, "TLS read failed: connection closed without TLS close_notify (truncated)");
}

TEST(NodeTlsTest, ArgumentsAreChecked) {
  auto a = newIdentity();
  auto ta = newTls(a);
  auto [s, c] = socketPair();
  auto bad = ta->client(c, "not-a-node-id");
  ASSERT_FALSE(bad.isOk());
  EXPECT_EQ(bad.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(bad.status().message().find("'not-a-node-id'"), std::string::npos);
  EXPECT_EQ(::fcntl(c, F_GETFD), -1) << "the fd is owned (closed) even on error";
  ::close(s);
  EXPECT_EQ(ta->server(-1, "").status().code(), StatusCode::kInvalidArgument);
  NodeTls::Options o;
  o.validity = std::chrono::hours(0);
  EXPECT_EQ(NodeTls::create(a, o).status().code(), StatusCode::kInvalidArgument);
}

// A loopback TCP listener whose accepted connections are served by `serve` on a thread.
class Listener {
 public:
  explicit Listener(std::function<void(int)> serve) {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    EXPECT_EQ(::bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
    EXPECT_EQ(::listen(fd_, 16), 0);
    socklen_t len = sizeof addr;
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len);
    port_ = ntohs(addr.sin_port);
    thread_ = std::thread([this, serve] {
      int c = ::accept(fd_, nullptr, nullptr);
      if (c >= 0) serve(c);
    });
  }
  ~Listener() {
    ::shutdown(fd_, SHUT_RDWR);
    thread_.join();
    ::close(fd_);
  }
  std::string endpoint() const { return "127.0.0.1:" + std::to_string(port_); }
  int port() const { return port_; }

 private:
  int fd_ = -1;
  int port_ = 0;
  std::thread thread_;
};

Status shutdownBlocking(Transport& t) {
  for (int i = 0; i < 1000; ++i) {
    IoResult r = t.shutdownWrite();
    if (r.kind == Kind::kOk) return Status::ok();
    if (r.kind == Kind::kError) return Status::unavailable(r.error);
    pollfd p{t.fd(), eventsFor(r), 0};
    ::poll(&p, 1, 1000);
  }
  return Status::deadlineExceeded("shutdownWrite");
}

// An echo-with-prefix server on one TLS connection, blocking helpers only.
void serveEcho(const NodeTls& tls, int fd, std::string* error) {
  auto t = tls.server(fd, "");
  if (!t.isOk()) return void(*error = t.status().toString());
  Status st = handshakeBlocking(**t, 5s);
  if (!st.isOk()) return void(*error = st.toString());
  auto got = readToEnd(**t, 1 << 20, 5s);
  if (!got.isOk()) return void(*error = got.status().toString());
  st = writeFully(**t, "echo from " + (*t)->peerNodeId() + ": " + *got, 5s);
  if (st.isOk()) st = shutdownBlocking(**t);
  if (!st.isOk()) *error = st.toString();
}

TEST(NodeTlsTest, ConnectOverLoopbackTcp) {
  auto a = newIdentity(), b = newIdentity();
  auto ta = newTls(a), tb = newTls(b);
  std::string server_error;
  Listener l([&](int fd) { serveEcho(*ta, fd, &server_error); });
  auto t = tb->connect(l.endpoint(), a.id(), 5s);
  ASSERT_TRUE(t.isOk()) << t.status().toString();
  EXPECT_EQ((*t)->peerNodeId(), a.id());
  ASSERT_TRUE(writeFully(**t, "ping", 5s).isOk());
  ASSERT_TRUE(shutdownBlocking(**t).isOk());
  auto reply = readToEnd(**t, 1 << 20, 5s);
  ASSERT_TRUE(reply.isOk()) << reply.status().toString();
  EXPECT_EQ(*reply, "echo from " + b.id() + ": ping");
  t->reset();
  EXPECT_EQ(server_error, "");
}

TEST(NodeTlsTest, ConnectToTheWrongNodeSaysWhichNodeAnswered) {
  auto a = newIdentity(), b = newIdentity(), other = newIdentity();
  auto ta = newTls(a), tb = newTls(b);
  std::string server_error;
  Listener l([&](int fd) { serveEcho(*ta, fd, &server_error); });
  auto t = tb->connect(l.endpoint(), other.id(), 5s);
  ASSERT_FALSE(t.isOk());
  EXPECT_EQ(t.status().code(), StatusCode::kUnavailable);
  EXPECT_EQ(t.status().message(), "TLS connect to " + l.endpoint() +
                                      ": peer certificate belongs to node " + a.id() +
                                      ", expected " + other.id());
}

// TLS over a byte stream that a third party forwards (a relay's BEP leg, a proxy node's
// spliced TCP): the forwarder sees every byte and none of the plaintext.
TEST(NodeTlsTest, ForwardingIntermediateSeesOnlyCiphertext) {
  auto a = newIdentity(), b = newIdentity();
  auto ta = newTls(a), tb = newTls(b);
  auto [client_fd, fwd_in] = socketPair();
  auto [fwd_out, server_fd] = socketPair();
  std::string recorded;
  std::thread forwarder([&, in = fwd_in, out = fwd_out] {
    bool open[2] = {true, true};  // in->out, out->in
    char buf[16 << 10];
    while (open[0] || open[1]) {
      pollfd p[2] = {{in, short(open[0] ? POLLIN : 0), 0}, {out, short(open[1] ? POLLIN : 0), 0}};
      if (::poll(p, 2, 10000) <= 0) break;
      for (int i = 0; i < 2; ++i) {
        if (!open[i] || !(p[i].revents & (POLLIN | POLLHUP))) continue;
        int from = i == 0 ? in : out, to = i == 0 ? out : in;
        ssize_t n = ::read(from, buf, sizeof buf);
        if (n <= 0) {
          ::shutdown(to, SHUT_WR);
          open[i] = false;
          continue;
        }
        recorded.append(buf, static_cast<size_t>(n));
        ASSERT_EQ(::send(to, buf, static_cast<size_t>(n), MSG_NOSIGNAL), n);
      }
    }
    ::close(in);
    ::close(out);
  });
  std::string server_error;
  std::thread server([&, fd = server_fd] { serveEcho(*ta, fd, &server_error); });

  const std::string secret = "account-token=s3cr3t-payload-for-node-" + a.id();
  auto t = tb->client(client_fd, a.id());
  ASSERT_TRUE(t.isOk());
  ASSERT_TRUE(handshakeBlocking(**t, 5s).isOk());
  ASSERT_TRUE(writeFully(**t, secret, 5s).isOk());
  ASSERT_TRUE(shutdownBlocking(**t).isOk());
  auto reply = readToEnd(**t, 1 << 20, 5s);
  t->reset();
  server.join();
  forwarder.join();
  ASSERT_TRUE(reply.isOk()) << reply.status().toString();
  EXPECT_EQ(*reply, "echo from " + b.id() + ": " + secret);
  EXPECT_EQ(server_error, "");
  EXPECT_GT(recorded.size(), secret.size() * 2);
  EXPECT_EQ(recorded.find("s3cr3t"), std::string::npos);
  EXPECT_EQ(recorded.find("echo from"), std::string::npos);
}

// ---------------------------------------------------------------------------------------
// The certificate kept between starts

class NodeTlsCertificateFileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = ::testing::TempDir() + "/node_tls_test_" +
           ::testing::UnitTest::GetInstance()->current_test_info()->name();
    ASSERT_TRUE(fs::removeAll(dir_).isOk());
    ASSERT_TRUE(fs::makeDirs(dir_ + "/a").isOk());
    ASSERT_TRUE(fs::makeDirs(dir_ + "/b").isOk());
  }
  void TearDown() override { (void)fs::removeAll(dir_); }

  identity::NodeIdentity load(const std::string& node) {
    auto id = identity::NodeIdentity::loadOrCreate(dir_ + "/" + node + "/node.key");
    EXPECT_TRUE(id.isOk()) << id.status().toString();
    return std::move(id).value();
  }
  std::string certFile(const std::string& node) { return dir_ + "/" + node + "/node.crt"; }
  // The DER of the PEM certificate in `path`, "" when there is none.
  static std::string derInFile(const std::string& path) {
    auto pem = fs::readFile(path);
    if (!pem.isOk()) return {};
    BIO* bio = BIO_new_mem_buf(pem->data(), static_cast<int>(pem->size()));
    X509* cert = PEM_read_bio_X509(bio, nullptr, nullptr, nullptr);
    BIO_free(bio);
    if (!cert) return {};
    unsigned char* der = nullptr;
    int len = i2d_X509(cert, &der);
    std::string out(reinterpret_cast<const char*>(der), static_cast<size_t>(len));
    OPENSSL_free(der);
    X509_free(cert);
    return out;
  }
  // A new certificate for `node` that is written to its file and proves its id in a
  // handshake with another node.
  void expectNewCertificateProvingTheNode(const identity::NodeIdentity& id, const std::string& node,
                                          const std::string& old_der) {
    auto tls = newTls(id);
    EXPECT_NE(tls->certificateDer(), old_der);
    EXPECT_EQ(derInFile(certFile(node)), tls->certificateDer());
    auto other = newTls(newIdentity());
    Connected c = connectPair(*tls, *other);
    EXPECT_EQ(c.client->peerNodeId(), id.id());
  }

  std::string dir_;
};

TEST_F(NodeTlsCertificateFileTest, KeptNextToTheKeyAndUsedAgainAtTheNextStart) {
  auto a = load("a");
  auto first = newTls(a);
  // Made on first use, not by create(): a node that never dials nor is dialled pays
  // nothing for it.
  EXPECT_TRUE(derInFile(certFile("a")).empty());
  const std::string first_der = first->certificateDer();
  ASSERT_FALSE(first_der.empty());
  EXPECT_EQ(derInFile(certFile("a")), first_der);
  auto again = newTls(load("a"));
  EXPECT_EQ(again->certificateDer(), first->certificateDer());
  // The reused certificate still proves the node, both ways.
  auto b = newTls(load("b"));
  Connected c1 = connectPair(*again, *b);
  EXPECT_EQ(c1.client->peerNodeId(), a.id());
  Connected c2 = connectPair(*b, *again);
  EXPECT_EQ(c2.server->peerNodeId(), a.id());
}

TEST_F(NodeTlsCertificateFileTest, CorruptedFilesAreReplaced) {
  auto a = load("a");
  std::string good_pem;
  {
    auto first = newTls(a);
    ASSERT_FALSE(first->certificateDer().empty());
    auto pem = fs::readFile(certFile("a"));
    ASSERT_TRUE(pem.isOk());
    good_pem = *pem;
  }
  std::string good_der = derInFile(certFile("a"));
  ASSERT_FALSE(good_der.empty());
  // The signature is the last 64 bytes of the DER: a flipped bit there still parses.
  std::string bad_signature = good_der;
  bad_signature[bad_signature.size() - 5] ^= 0x01;
  std::string bad_signature_pem;
  {
    const auto* p = reinterpret_cast<const unsigned char*>(bad_signature.data());
    X509* cert = d2i_X509(nullptr, &p, static_cast<long>(bad_signature.size()));
    ASSERT_NE(cert, nullptr);
    BIO* bio = BIO_new(BIO_s_mem());
    ASSERT_EQ(PEM_write_bio_X509(bio, cert), 1);
    char* data = nullptr;
    long len = BIO_get_mem_data(bio, &data);
    bad_signature_pem.assign(data, static_cast<size_t>(len));
    BIO_free(bio);
    X509_free(cert);
  }
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"garbage", "this is not a certificate\n"},
      {"empty", ""},
      {"truncated", good_pem.substr(0, good_pem.size() / 2)},
      {"bad signature", bad_signature_pem},
  };
  for (const auto& [name, content] : cases) {
    SCOPED_TRACE(name);
    ASSERT_TRUE(fs::writeFileAtomic(certFile("a"), content).isOk());
    expectNewCertificateProvingTheNode(a, "a", good_der);
  }
}

TEST_F(NodeTlsCertificateFileTest, AnotherNodesCertificateIsReplaced) {
  auto a = load("a");
  auto b = load("b");
  auto tb = newTls(b);
  ASSERT_FALSE(tb->certificateDer().empty());
  // b's certificate, valid and self-signed, in a's data dir.
  auto pem = fs::readFile(certFile("b"));
  ASSERT_TRUE(pem.isOk());
  ASSERT_TRUE(fs::writeFileAtomic(certFile("a"), *pem).isOk());
  expectNewCertificateProvingTheNode(a, "a", tb->certificateDer());
  auto ta = newTls(a);
  EXPECT_EQ(ta->nodeId(), a.id());
  EXPECT_NE(ta->certificateDer(), tb->certificateDer());
}

TEST_F(NodeTlsCertificateFileTest, CertificateOfTheRightKeyButNotEdgedsIsReplaced) {
  // Self-signed by a's key, CN = a's id, but with an extension edged does not add: made
  // by someone else, not used.
  auto a = load("a");
  std::string raw = a.privateKeyRaw();
  EVP_PKEY* key = EVP_PKEY_new_raw_private_key(
      EVP_PKEY_ED25519, nullptr, reinterpret_cast<const unsigned char*>(raw.data()), raw.size());
  ASSERT_NE(key, nullptr);
  X509* cert = X509_new();
  ASSERT_EQ(X509_set_version(cert, X509_VERSION_3), 1);
  ASN1_INTEGER_set(X509_get_serialNumber(cert), 7);
  X509_gmtime_adj(X509_getm_notBefore(cert), -3600);
  X509_gmtime_adj(X509_getm_notAfter(cert), 20 * 3600);
  X509_NAME* name = X509_get_subject_name(cert);
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>(a.id().c_str()), -1, -1, 0);
  X509_set_issuer_name(cert, name);
  X509_set_pubkey(cert, key);
  X509_EXTENSION* ext =
      X509V3_EXT_conf_nid(nullptr, nullptr, NID_subject_alt_name, "DNS:example.com");
  ASSERT_NE(ext, nullptr);
  X509_add_ext(cert, ext, -1);
  X509_EXTENSION_free(ext);
  ASSERT_GT(X509_sign(cert, key, nullptr), 0);
  BIO* bio = BIO_new(BIO_s_mem());
  PEM_write_bio_X509(bio, cert);
  char* data = nullptr;
  long len = BIO_get_mem_data(bio, &data);
  ASSERT_TRUE(
      fs::writeFileAtomic(certFile("a"), std::string(data, static_cast<size_t>(len))).isOk());
  BIO_free(bio);
  unsigned char* der = nullptr;
  int der_len = i2d_X509(cert, &der);
  std::string foreign_der(reinterpret_cast<const char*>(der), static_cast<size_t>(der_len));
  OPENSSL_free(der);
  X509_free(cert);
  EVP_PKEY_free(key);
  expectNewCertificateProvingTheNode(a, "a", foreign_der);
}

TEST_F(NodeTlsCertificateFileTest, CertificateOutsideTheValidityWindowIsReplaced) {
  auto a = load("a");
  NodeTls::Options two_hours;
  two_hours.validity = std::chrono::hours(2);
  std::string short_der = newTls(a, two_hours)->certificateDer();
  // 2 h left is less than half of 24 h: too old for the default options.
  auto day = newTls(a);
  EXPECT_NE(day->certificateDer(), short_der);
  EXPECT_EQ(derInFile(certFile("a")), day->certificateDer());
  // 24 h left is more than a 2 h validity allows: made with other options.
  auto shorter = newTls(a, two_hours);
  EXPECT_NE(shorter->certificateDer(), day->certificateDer());
  EXPECT_EQ(newTls(a, two_hours)->certificateDer(), shorter->certificateDer());
}

TEST_F(NodeTlsCertificateFileTest, ExplicitFileAndAnUnwritableOne) {
  auto a = load("a");
  NodeTls::Options o;
  o.certificate_file = dir_ + "/b/elsewhere.pem";
  std::string der = newTls(a, o)->certificateDer();
  EXPECT_EQ(derInFile(o.certificate_file), der);
  EXPECT_EQ(newTls(a, o)->certificateDer(), der);
  EXPECT_TRUE(derInFile(certFile("a")).empty());
  // A file that cannot be written is no error; the certificate is made each time.
  o.certificate_file = dir_ + "/missing/dir/node.crt";
  auto t1 = newTls(a, o);
  auto t2 = newTls(a, o);
  EXPECT_NE(t1->certificateDer(), t2->certificateDer());
}

}  // namespace
}  // namespace edge::gateway
