// The Edgecloud REST API (docs/api.md) on the node API server.
//
// Handlers translate HTTP to Node operations and back; they hold no state of their own.
// Long requests (followed logs, event streams) run on their connection's thread and end
// when the client goes away or the server stops.
#pragma once

namespace edge::http {
class ApiServer;
}

namespace edge::orchestrator {

class Node;

void registerRestApi(http::ApiServer& server, Node& node);

}  // namespace edge::orchestrator
