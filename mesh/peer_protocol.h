// The messages inside a peer channel (docs/relay.md, "Peer channel"), shared by the
// client (peer_client.h) and the server (peer_server.h): sizes, the HTTP head's headers
// as JSON, and the open/error messages. Internal to gateway/.
//
// Thread-safety: pure functions. Errors: kInvalidArgument naming the field and what is
// allowed.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "common/http.h"
#include "common/status.h"

namespace edge::mesh {

// A body travels in messages of at most this many bytes, then an empty message.
inline constexpr size_t kPeerBodyChunkBytes = 256 << 10;
// A request body over this is refused (413) by the server and not sent by the client.
inline constexpr size_t kPeerMaxRequestBytes = 16 << 20;
// The server holds the node API's reply until it is complete (its head has to go first):
// a larger one is a 502. The client refuses larger ones too, unless they go to a sink.
inline constexpr size_t kPeerMaxResponseBytes = 16 << 20;

// Connection-level headers that describe one hop, not the message: never forwarded.
bool isHopByHopHeader(std::string_view name);

// {"name": "value"} or {"name": ["v1", "v2"]} for repeated headers; hop-by-hop and
// Content-Length are left out (the body's end is the empty message).
nlohmann::json headersToJson(const http::Headers& headers);
// The reverse; `where` names the message in errors ("request head").
Result<http::Headers> headersFromJson(const nlohmann::json& j, std::string_view where);

// {"type":"error","status":...,"message":...}
std::string errorMessage(int status, std::string_view message);
// A JSON body {"message": ...} for error replies.
std::string errorBody(std::string_view message);

}  // namespace edge::mesh
