#include "mesh/peer_client.h"

#include <unistd.h>

#include "common/json.h"
#include "mesh/peer_protocol.h"

namespace edge::mesh {

namespace {

using std::chrono::milliseconds;

// Connects, sends the open message and reads the answer. On a refusal returns the
// target's status and message in *refused_status / *refused_message and no channel.
Result<PeerChannel> openChannel(int fd, const identity::NodeIdentity& self,
                                std::string_view target_id, const nlohmann::json& open,
                                milliseconds timeout, int* refused_status,
                                std::string* refused_message) {
  if (!identity::isNodeId(target_id)) {
    ::close(fd);
    return Status::invalidArgument("peer call: target \"" + std::string(target_id) +
                                   "\" is not a node id (16 lower-case hex characters)");
  }
  ASSIGN_OR_RETURN(PeerChannel ch, PeerChannel::connect(fd, self, target_id, timeout));
  RETURN_IF_ERROR(ch.send(json::dump(open)));
  ASSIGN_OR_RETURN(std::string text, ch.receive(timeout));
  std::string where = "node " + std::string(target_id) + "'s answer to open";
  ASSIGN_OR_RETURN(nlohmann::json answer, json::parse(text, where));
  if (!answer.is_object())
    return Status::invalidArgument(where + ": expected a JSON object, got " +
                                   json::typeName(answer));
  ASSIGN_OR_RETURN(std::string type, json::getString(answer, "type", where));
  if (type == "opened") {
    *refused_status = 0;
    return ch;
  }
  if (type != "error")
    return Status::invalidArgument(where + ": type \"" + type + "\" is neither opened nor error");
  ASSIGN_OR_RETURN(int64_t status, json::getInt(answer, "status", where, 502));
  ASSIGN_OR_RETURN(std::string message, json::getString(answer, "message", where, ""));
  *refused_status = status >= 400 && status <= 599 ? static_cast<int>(status) : 502;
  *refused_message = message;
  return Status::permissionDenied(message);  // replaced by the caller
}

// Sends the request body in chunks, then the end marker.
Status sendBody(PeerChannel& ch, const http::Request& request) {
  if (request.body_source) {
    std::string buf(kPeerBodyChunkBytes, '\0');
    size_t total = 0;
    for (;;) {
      ASSIGN_OR_RETURN(size_t n, request.body_source(buf.data(), buf.size()));
      if (n == 0) break;
      total += n;
      if (total > kPeerMaxRequestBytes)
        return Status::invalidArgument("peer call: the request body is over the limit of " +
                                       std::to_string(kPeerMaxRequestBytes >> 20) + " MiB");
      RETURN_IF_ERROR(ch.send(std::string_view(buf.data(), n)));
    }
  } else {
    std::string_view body = request.body;
    for (size_t off = 0; off < body.size(); off += kPeerBodyChunkBytes)
      RETURN_IF_ERROR(ch.send(body.substr(off, kPeerBodyChunkBytes)));
  }
  return ch.send("");
}

}  // namespace

Result<http::Response> callPeer(int connected_fd, const identity::NodeIdentity& self,
                                std::string_view target_id, std::string_view token,
                                const http::Request& request, milliseconds timeout) {
  if (!request.body_source && request.body.size() > kPeerMaxRequestBytes) {
    ::close(connected_fd);
    return Status::invalidArgument(
        "peer call: the request body (" + std::to_string(request.body.size()) +
        " bytes) is over the limit of " + std::to_string(kPeerMaxRequestBytes >> 20) + " MiB");
  }
  int refused = 0;
  std::string refused_message;
  nlohmann::json open{{"type", "open"}, {"token", token}, {"kind", "http"}};
  auto ch = openChannel(connected_fd, self, target_id, open, timeout, &refused, &refused_message);
  if (refused != 0) {
    http::Response r;
    r.status = refused;
    r.headers.emplace("Content-Type", "application/json");
    r.body = errorBody(refused_message);
    return r;
  }
  if (!ch.isOk()) return ch.status();

  http::Headers headers = request.headers;
  if (!request.content_type.empty()) {
    headers.erase("Content-Type");
    headers.emplace("Content-Type", request.content_type);
  }
  nlohmann::json head{
      {"method", request.method}, {"path", request.path}, {"headers", headersToJson(headers)}};
  RETURN_IF_ERROR(ch->send(json::dump(head)));
  RETURN_IF_ERROR(sendBody(*ch, request));

  std::string where = "node " + std::string(target_id) + "'s response head";
  ASSIGN_OR_RETURN(std::string head_text, ch->receive(timeout));
  ASSIGN_OR_RETURN(nlohmann::json rhead, json::parse(head_text, where));
  if (!rhead.is_object())
    return Status::invalidArgument(where + ": expected a JSON object, got " +
                                   json::typeName(rhead));
  ASSIGN_OR_RETURN(int64_t status, json::getInt(rhead, "status", where));
  if (status < 100 || status > 599)
    return Status::invalidArgument(where + ": status " + std::to_string(status) +
                                   " is not an HTTP status (100..599)");
  http::Response out;
  out.status = static_cast<int>(status);
  if (rhead.contains("headers")) {
    ASSIGN_OR_RETURN(out.headers, headersFromJson(rhead["headers"], where));
  }
  bool to_sink = request.body_sink && out.isSuccess();
  for (;;) {
    ASSIGN_OR_RETURN(std::string chunk, ch->receive(timeout));
    if (chunk.empty()) break;
    if (to_sink) {
      if (!request.body_sink(chunk.data(), chunk.size()))
        return Status::cancelled("peer call: response reading stopped by the receiver");
      continue;
    }
    if (out.body.size() + chunk.size() > kPeerMaxResponseBytes)
      return Status::resourceExhausted(
          "peer call: node " + std::string(target_id) + "'s response body is over the limit of " +
          std::to_string(kPeerMaxResponseBytes >> 20) + " MiB (give the request a body_sink)");
    out.body += chunk;
  }
  return out;
}

Result<PeerChannel> openStream(int connected_fd, const identity::NodeIdentity& self,
                               std::string_view target_id, std::string_view token,
                               std::string_view service, int port, milliseconds timeout) {
  int refused = 0;
  std::string message;
  nlohmann::json open{
      {"type", "open"}, {"token", token}, {"kind", "stream"}, {"service", service}, {"port", port}};
  auto ch = openChannel(connected_fd, self, target_id, open, timeout, &refused, &message);
  if (refused == 0) return ch;
  std::string text = "node " + std::string(target_id) + " refused the stream to " +
                     std::string(service) + " (" + std::to_string(refused) + "): " + message;
  if (refused == 401 || refused == 403) return Status::permissionDenied(text);
  if (refused == 404) return Status::notFound(text);
  if (refused == 400) return Status::invalidArgument(text);
  return Status::unavailable(text);
}

}  // namespace edge::mesh
