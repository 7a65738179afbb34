// The Edgecloud REST API (docs/api.md) on the node API server.
//
// Handlers translate HTTP to NodeApi operations (node_api.h) and back; they hold no
// state of their own.
// Long requests (followed logs, event streams) run on their connection's thread and end
// when the client goes away or the server stops.
#pragma once

#include <string>

namespace edge::http {
class ApiServer;
}

namespace edge::edged {

class Node;
class NodeApi;

void registerRestApi(http::ApiServer& server, NodeApi& node);

// The Prometheus text of /metrics for a node (Node::metricsText()).
std::string metricsText(Node& node);

}  // namespace edge::edged
