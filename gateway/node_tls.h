// NodeTls: mutual TLS 1.3 between gateways, where a certificate proves a node id and
// nothing else (no CA, no domain names on a link).
//
// Each node has a self-signed X.509 certificate of its Ed25519 node key (CN = node id,
// random serial, a short validity that is not enforced: edge hosts often boot with a
// wrong clock, and the key, not the date, is the identity). It is kept in a file between
// starts (Options::certificate_file) and reused while it is one create() would make now:
// self-signed by this node's key, CN = this node id, no extensions, valid from before
// now for at least half of Options::validity and at most the whole of it. Any other file
// (unreadable, corrupted, another node's, expired, outlived) is replaced by a new one. Both sides
// must present one; a peer's certificate is accepted when it is self-signed with an Ed25519 key,
// and its node id is the id derived from that key (identity::nodeIdFromPublicKey). The binding is
// the caller's: a client names the node it dials and the handshake fails when the server's key
// derives to another id; a server learns the client's id (Transport::peerNodeId()) and may refuse
// it with Options::allow_client.
//
// TLS runs over any byte stream: through a relay's BEP leg or a proxy node's spliced TCP
// the intermediate only ever sees ciphertext for the target node.
//
// Thread-safety: a NodeTls is immutable once created; server(), client() and connect()
// may be called from any thread at once (allow_client is called on the thread that
// drives the handshake, so it must be thread-safe). The Transports it makes follow
// transport.h (one loop thread each) and stay valid after the NodeTls is destroyed.
//
// The certificate and the TLS context are made by the first server(), client() or
// certificateDer(), not by create(): a fresh node that never dials nor is dialled pays
// nothing for them (a third of an edged start on a new data dir).
//
// Errors: create() returns kInternal when OpenSSL cannot load the key.
// server()/client() return kInvalidArgument for a bad fd or a malformed expected node id,
// kInternal when OpenSSL cannot make the certificate or the TLS context (a certificate
// file that cannot be read or used is replaced, not an error).
// Handshake, read and write failures are IoResult kError with one line: "peer certificate belongs
// to node 1f.., expected 9a..", "no peer certificate", "node 1f.. is not allowed to connect", "TLS
// handshake failed: <reason>".
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <string>

#include "common/status.h"
#include "gateway/transport.h"
#include "identity/identity.h"

namespace edge::gateway {

// Declared outside NodeTls so `Options options = {}` can be a default argument.
struct NodeTlsOptions {
  // Server side: called once per handshake with the client's proven node id; false
  // refuses the handshake. Empty: every node with a valid self-signed key is accepted
  // (the gateway still binds tokens to peerNodeId()). Runs on the thread driving the
  // handshake, an epoll worker: it must be quick and must not block (a set lookup).
  std::function<bool(const std::string& node_id)> allow_client;
  // The certificate's notBefore/notAfter window around now (informational, see above).
  std::chrono::hours validity{24};
  // Where our certificate is kept between starts (PEM). Empty: next to the key file the
  // identity was loaded from ("<dir>/node.key" -> "<dir>/node.crt"), and for an identity
  // without a file (NodeIdentity::generate()) a new certificate at every create(). Failing
  // to write the file is not an error: the certificate is then made again next time.
  std::string certificate_file;
};

class NodeTls {
 public:
  using Options = NodeTlsOptions;

  static Result<std::unique_ptr<NodeTls>> create(const identity::NodeIdentity& identity,
                                                 Options options = {});
  ~NodeTls();
  NodeTls(const NodeTls&) = delete;
  NodeTls& operator=(const NodeTls&) = delete;

  // Our node id (the CN of our certificate).
  const std::string& nodeId() const;
  // Our certificate, DER (diagnostics, tests); made now if not yet, "" when it cannot be.
  const std::string& certificateDer() const;

  // Transports read ahead: several records may sit inside OpenSSL after one socket read
  // (the first request can arrive with the client's last handshake message). After
  // handshake() returns kOk and after every read(), a loop must call read() while
  // hasBufferedInput() is true before it waits for EPOLLIN.
  //
  // The transports' write() follows OpenSSL's retry rule: after kWantWrite (or kOk with
  // fewer bytes than asked) the next write() must begin with the bytes not yet accepted
  // (more may follow), as any caller that keeps an output buffer does anyway.
  //
  // A TLS server transport on `fd` (made non-blocking), taking ownership of it in every
  // case (closed on error). `already_read` are the bytes the port 8083 demultiplexer took
  // off the socket to sniff the ClientHello; OpenSSL reads them before the socket. The
  // handshake runs in Transport::handshake().
  Result<TransportPtr> server(int fd, std::string already_read = {}) const;
  // A TLS client transport on `fd` (made non-blocking, owned in every case) that only
  // completes its handshake with the node `expected_node_id` (16 lower-case hex chars).
  Result<TransportPtr> client(int fd, const std::string& expected_node_id) const;

  // Blocking convenience for tests and the control plane: dials "a.b.c.d:port" and
  // completes the handshake with `node_id` within `timeout`. The transport returned is
  // connected and non-blocking (see the blocking helpers below). kDeadlineExceeded,
  // kUnavailable (connect or handshake failure, with the one-line reason).
  Result<TransportPtr> connect(const std::string& endpoint, const std::string& node_id,
                               std::chrono::milliseconds timeout) const;

 private:
  struct Impl;
  explicit NodeTls(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// Blocking helpers over a non-blocking Transport (poll() on its fd): for tests and the
// control plane, never for an epoll worker.
// Runs handshake() to completion. kUnavailable with the reason, kDeadlineExceeded.
Status handshakeBlocking(Transport& t, std::chrono::milliseconds timeout);
// Writes all of `data`. kUnavailable on a transport error or close.
Status writeFully(Transport& t, std::string_view data, std::chrono::milliseconds timeout);
// Reads at most `max` bytes, waiting for at least one; "" means the peer closed its
// sending side (kClosed). kUnavailable on error, kDeadlineExceeded.
Result<std::string> readSome(Transport& t, size_t max, std::chrono::milliseconds timeout);
// Reads until the peer closes its sending side, at most `limit` bytes (kResourceExhausted
// beyond).
Result<std::string> readToEnd(Transport& t, size_t limit, std::chrono::milliseconds timeout);

}  // namespace edge::gateway
