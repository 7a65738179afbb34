// The edgectl commands, one function each, apart from argument parsing (main.cc) so the
// output they produce is what tests drive.
//
// Each returns the process exit code (cli/errors.h) and writes results to `out`, errors
// and progress to `err`, both flushed as they go (logs and events stream). Nothing
// throws. Thread-safety: a Context and the commands using it belong to one thread.
#pragma once

#include <cstdint>
#include <iosfwd>
#include <optional>
#include <string>
#include <vector>

#include "cli/node_client.h"
#include "cli/output.h"
#include "common/clock.h"

namespace edge::cli {

struct Context {
  const NodeClient* node = nullptr;
  OutputFormat format = OutputFormat::kTable;
  bool quiet = false;       // -q: no progress, no confirmations; listings print names only
  bool stderr_tty = false;  // draw the upload progress line
  std::ostream* out = nullptr;
  std::ostream* err = nullptr;
  std::istream* in = nullptr;  // for `-f -`
  ClockPtr clock;

  // Prints the error the edgectl way and returns its exit code.
  int fail(const Status& s) const;
  // A usage problem found after parsing (unreadable file, unknown resource type): exit 2.
  int usage(const std::string& message) const;
};

struct ApplyArgs {
  std::vector<std::string> files;  // "-" is stdin
  bool dry_run = false;
};

struct LogsArgs {
  std::string name;
  bool follow = false;
  int64_t tail = -1;  // -1: all
  bool timestamps = false;
};

struct NodesArgs {
  std::string scope;  // "" = network, or account when `account` is given
  std::string account;
  std::string interface;
  std::string network;  // a cluster id (backend scopes)
  std::string near;     // "lat,lon" (proximity)
  double radius_km = 0;
  std::string box;  // "south,west,north,east" (proximity)
};

struct CallArgs {
  std::string node;
  std::string path;
  std::string method = "GET";
  std::string data;  // request body; "@FILE" reads it from a file, "@-" from stdin
};

int cmdStatus(const Context& ctx);
int cmdVersion(const Context& ctx, bool client_only);
int cmdApply(const Context& ctx, const ApplyArgs& args);
// `type`: services|service|svc, instances|instance|inst, images|image|img.
int cmdGet(const Context& ctx, const std::string& type, const std::string& name);
int cmdDescribe(const Context& ctx, const std::string& name);
int cmdLogs(const Context& ctx, const LogsArgs& args);
int cmdDelete(const Context& ctx, const std::string& name, bool dry_run);
int cmdRestart(const Context& ctx, const std::string& name);
int cmdRollback(const Context& ctx, const std::string& name, std::optional<int64_t> to);
int cmdImagesLoad(const Context& ctx, const std::string& file);
int cmdImagesRm(const Context& ctx, const std::string& ref, bool force);
int cmdEvents(const Context& ctx, bool follow, const std::string& service);
// The nodes of this node's clusters (GET /api/v1/nodes); -q prints their ids.
int cmdNodes(const Context& ctx, const NodesArgs& args);
// Calls another node's API through this node (a peer channel, direct or relayed).
int cmdCall(const Context& ctx, const CallArgs& args);
// This node's clusters, members and blacklist (GET /api/v1/cluster); -q prints cluster ids.
int cmdCluster(const Context& ctx);
// GET /api/v1/routes: the gateway's route table.
int cmdRoutes(const Context& ctx);

// The Ports line of `describe` for a manifest's spec: "http 8080/tcp" for a static port;
// a dynamic one (no containerPort) says the node gives each instance its own host port and
// in which variables: "http dynamic/tcp (a host port per instance, in $PORT and
// $PORT_HTTP)". "-" when there are none.
std::string manifestPorts(const json::Json& spec);

// The client's version ("0.1.0").
const char* clientVersion();

}  // namespace edge::cli
