// `edgectl nodes` and `edgectl cluster` for people: the answers of GET /api/v1/nodes and
// GET /api/v1/cluster (docs/api.md) as tables.
//
// Pure and never throwing, like cli/output.h: fields with an unexpected shape render as
// "-" rather than failing; `now` comes in so tests fix it. The commands themselves are
// in cli/commands.h.
#pragma once

#include <string>

#include "cli/output.h"
#include "common/clock.h"

namespace edge::cli {

// One row per node: NODE ID, NAME, ENDPOINT, ROLES, SCORE, RUNTIME, UPTIME, CLUSTER (the
// ids of the clusters it is in, comma-separated).
Table nodesTable(const Json& nodes_answer);

// Every cluster of the snapshot: a header line ("cluster 198.18.0.0/24 on eth0 — this
// node: member, supernode <id> (node-b), version 12, 10 members"), the members (this
// node marked "*", the supernode first), the blacklist when not empty, and the
// traffic counters. "discovery is off on this node" when it is.
std::string renderCluster(const Json& snapshot, WallTime now);

// `edgectl routes`: one row per route of GET /api/v1/routes: PATH, SERVICE, LOCAL (ready
// local instances), PEERS (node ids, ejected ones marked "!"), GLOBAL, ON-DEMAND, SCOPES,
// RETRY ("2 on 502,503,504,connect-failure,reset").
Table routesTable(const Json& routes_answer);

}  // namespace edge::cli
