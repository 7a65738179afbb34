// The caller's side of peer channels (docs/relay.md, "Peer channel"): one HTTP request
// to another node's API, or a stream to one of its services, over a connection the
// caller has already made — a direct TCP connection to the target's cluster port, or a
// BEP relay leg (mesh/relay_client.h). The channel checks that the other end holds
// the key of `target_id`, so the path does not have to be trusted.
//
// Thread-safety: free functions; each call owns its connection.
//
// Errors (the fd is closed in every case): those of PeerChannel::connect (wrong target:
// kPermissionDenied; timeout: kDeadlineExceeded; ...); kInvalidArgument for a request
// the protocol cannot carry (a body over kPeerMaxRequestBytes, a target that is not a
// node id) or a reply that breaks the protocol; kResourceExhausted for a reply body over
// kPeerMaxResponseBytes with no sink. callPeer() returns the target's refusal of the
// token (401/403) as an http::Response, like any other HTTP status; openStream() turns
// it into kPermissionDenied (401, 403), kNotFound (404) or kUnavailable (others), the
// message being the target's.
#pragma once

#include <chrono>
#include <string_view>

#include "common/http.h"
#include "common/status.h"
#include "identity/identity.h"
#include "mesh/peer_channel.h"

namespace edge::mesh {

// Sends `request` (method, path with query, headers, content_type, and body or
// body_source) to the target's API and returns its reply. A 2xx reply body goes to
// request.body_sink when set (no size limit then), else into Response::body.
// `timeout` bounds the handshake and every wait for the next message (as
// http::Request::read_timeout does), not the whole call. request.read_timeout is not
// used.
Result<http::Response> callPeer(int connected_fd, const identity::NodeIdentity& self,
                                std::string_view target_id, std::string_view token,
                                const http::Request& request, std::chrono::milliseconds timeout);

// Opens a stream to `service` on the target's 127.0.0.1:`port` (kind stream). After it
// returns, every message is a chunk of the stream, both ways; an empty message is a
// half-close. `timeout` bounds the opening and becomes the channel's send timeout.
Result<PeerChannel> openStream(int connected_fd, const identity::NodeIdentity& self,
                               std::string_view target_id, std::string_view token,
                               std::string_view service, int port,
                               std::chrono::milliseconds timeout);

}  // namespace edge::mesh
