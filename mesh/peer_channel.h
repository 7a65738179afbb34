// PeerChannel: the end-to-end encrypted message stream between two nodes (docs/relay.md,
// "Peer channel"), over a connected blocking byte stream: a direct TCP connection to the
// target's cluster port or a BEP relay leg. The caller writes "ECP1", then both run a
// identity::SecureSession handshake (caller = initiator, no cluster key); each side
// then knows the other's node id from its key, so a relay in between sees only
// ciphertext and cannot pose as either end.
//
// Messages are at most kPeerMaxMessageBytes; the empty message is the protocol's end
// marker (end of a body, half-close of a stream), so it is a valid message to send and
// to receive.
//
// Thread-safety: one thread may send() while another receive()s (a stream pumps both
// directions at once); two concurrent senders are serialised, as are two receivers.
// shutdown() may be called from any thread and wakes both. close(), moving and
// destroying need every other user to be done.
//
// Errors: connect()/accept() return kDeadlineExceeded when the handshake does not finish
// within the timeout, kUnavailable when the peer closes or the socket fails,
// kInvalidArgument for bytes that are not a peer channel (no "ECP1", a malformed
// handshake), kPermissionDenied when a signature/MAC does not verify or the responder is
// not the node the caller meant. The fd is closed on any failure. send()/receive():
// kDeadlineExceeded when the socket makes no progress within the timeout (receive: no
// complete message within it; the channel stays usable), kUnavailable when the peer
// closed or the socket failed, kInvalidArgument/kPermissionDenied for frames that are
// malformed or do not authenticate (final: later calls return the same error; send()
// returns kFailedPrecondition with its message), kFailedPrecondition after close().
#pragma once

#include <chrono>
#include <cstddef>
#include <memory>
#include <string>
#include <string_view>

#include "common/status.h"
#include "identity/identity.h"

namespace edge::mesh {

// The 4 bytes a peer channel starts with (a discovery session starts with 0x00).
inline constexpr std::string_view kPeerMagic = "ECP1";
// SecureSession's message limit.
inline constexpr size_t kPeerMaxMessageBytes = 1 << 20;

class PeerChannel {
 public:
  // Runs the caller's side on `fd` (connected, blocking; owned from now on, even on
  // failure): "ECP1", the handshake, then checks the responder is `expected_peer_id`.
  // `timeout` bounds the whole handshake and becomes the channel's I/O timeout.
  static Result<PeerChannel> connect(int fd, const identity::NodeIdentity& self,
                                     std::string_view expected_peer_id,
                                     std::chrono::milliseconds timeout);
  // Runs the target's side on `fd` (owned from now on). `already_read` holds the bytes
  // a demultiplexer read before handing the connection over (part of "ECP1" and maybe
  // of the handshake); they are consumed first.
  static Result<PeerChannel> accept(int fd, const identity::NodeIdentity& self,
                                    std::string_view already_read,
                                    std::chrono::milliseconds timeout);

  PeerChannel(PeerChannel&&) noexcept;
  PeerChannel& operator=(PeerChannel&&) noexcept;
  PeerChannel(const PeerChannel&) = delete;
  PeerChannel& operator=(const PeerChannel&) = delete;
  ~PeerChannel();  // close()s

  // Seals and writes one message ("" = the end marker). InvalidArgument over
  // kPeerMaxMessageBytes (nothing is written then). Blocks while the socket is full, at
  // most the I/O timeout without progress.
  Status send(std::string_view message);
  // The next message, waiting at most `timeout` for it to complete (0 = only what can
  // be read without waiting).
  Result<std::string> receive(std::chrono::milliseconds timeout);
  // Whether a complete message is already decrypted and waiting, so receive() returns
  // at once (poll() on fd() would not say so).
  bool hasPending() const;

  // The other end's node id (16 hex chars).
  const std::string& peerId() const;
  // The socket, for poll(); -1 after close().
  int fd() const;
  // How long send() may wait without progress (default: the handshake timeout).
  void setIoTimeout(std::chrono::milliseconds timeout);

  // Shuts the socket down both ways (the peer sees the connection end, blocked calls
  // here return kUnavailable); the fd stays open until close().
  void shutdown();
  // Closes the socket. Idempotent.
  void close();

 private:
  struct Impl;
  explicit PeerChannel(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace edge::mesh
