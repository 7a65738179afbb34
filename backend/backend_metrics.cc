#include "backend/backend_metrics.h"

#include <string_view>

namespace edge::backend {
namespace {

struct Series {
  std::string_view stat;  // key in RelayServer::stats()
  std::string_view name;
  std::string_view type;
  std::string_view help;
};

constexpr Series kRelaySeries[] = {
    {"connections", "edge_backend_relay_connections", "gauge",
     "Relay connections open: SEPs, BEP legs and connections not yet identified."},
    {"sep_active", "edge_backend_relay_sep_active", "gauge",
     "Nodes holding a signaling endpoint (SEP) on this relay."},
    {"bep_active", "edge_backend_relay_bep_active", "gauge", "BEP pairs relaying now."},
    {"bep_waiting", "edge_backend_relay_bep_waiting", "gauge",
     "BEP legs waiting for their other leg."},
    {"bytes_relayed", "edge_backend_relay_bytes_total", "counter",
     "Bytes moved between the legs of BEP pairs."},
    {"tickets_refused", "edge_backend_relay_tickets_refused_total", "counter",
     "Relay handshakes refused: a bad, used or expired ticket, or a BEP at its connection "
     "limit."},
    {"connections_refused", "edge_backend_relay_connections_refused_total", "counter",
     "Relay connections refused because the relay held its maximum."},
    {"signals_forwarded", "edge_backend_relay_signals_forwarded_total", "counter",
     "Signals forwarded to a node over its SEP."},
    {"signals_failed", "edge_backend_relay_signals_failed_total", "counter",
     "Signals not delivered, not answered in time or not accepted by the target."},
};

void header(std::string& out, std::string_view name, std::string_view type, std::string_view help) {
  out.append("# HELP ").append(name).append(" ").append(help).append("\n");
  out.append("# TYPE ").append(name).append(" ").append(type).append("\n");
}

}  // namespace

std::string metricsText(const nlohmann::json& relay_stats, std::optional<int64_t> store_revision) {
  std::string out;
  for (const Series& s : kRelaySeries) {
    auto it = relay_stats.find(s.stat);
    if (it == relay_stats.end() || !it->is_number()) continue;
    header(out, s.name, s.type, s.help);
    out.append(s.name).append(" ").append(it->dump()).append("\n");
  }
  header(out, "edge_backend_store_up", "gauge", "1 when the store answers, else 0.");
  out.append("edge_backend_store_up ").append(store_revision ? "1" : "0").append("\n");
  if (store_revision) {
    // The store's current revision, as etcd exposes its own: it survives restarts,
    // which a counter (reset at process start) would not.
    header(out, "edge_backend_store_revision", "gauge", "Revision of the store.");
    out.append("edge_backend_store_revision ").append(std::to_string(*store_revision)).append("\n");
  }
  return out;
}

}  // namespace edge::backend
