// The text edge-backend serves on /metrics (Prometheus exposition format 0.0.4).
//
// Every series has HELP and TYPE, counters end in _total, and `promtool check metrics`
// finds nothing to say (tests/integration/metrics_lint.sh runs it on a live backend).
// Pure function; thread-safe.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

namespace edge::backend {

// `relay_stats`: RelayServer::stats(); keys it does not know are left out (a series
// without its HELP is worse than none). `store_revision`: the store's revision, nullopt
// when the store does not answer (then edge_backend_store_up is 0).
std::string metricsText(const nlohmann::json& relay_stats, std::optional<int64_t> store_revision);

}  // namespace edge::backend
