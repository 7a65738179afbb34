// Signaling: the HTTP side of the relays (docs/relay.md). It mints the tickets that let a
// node hold a SEP, signal another node through that node's SEP, and open the two legs of
// a BEP; it places SEPs and BEPs on the nearest live relay instance of the registry.
//
// Everything it knows is in the Store (tickets only as SHA-256, SEP records, signals,
// BEP records), so any replica's RelayServer can redeem a ticket any replica minted,
// and a replica restart loses nothing but open relay connections.
//
// Keys (values JSON):
//   relay/tickets/<sha256 hex>  {kind: sep|signal|bep, node, peer, account, instance,
//                                signal, bep_id, protocol, max_connections, expires_at}
//   relay/sep/<node>            {instance, address, account, since, session, location?}
//   relay/signals/<id>          {node (caller), peer (target), account, kind, expires_at}
//   relay/bep/<id>              {id, instance, address, caller, target, account, protocol,
//                                max_connections, ttl_seconds, created_at, expires_at}
//   registry/instances/<id>     {id, relay_address, location?, updated_at} (read only here:
//                                the server wiring registers the replicas)
//
// Thread-safety: every method may be called from any thread at once (state lives in the
// Store; read-modify-writes use revision compares).
//
// Errors (the HTTP status in brackets): kInvalidArgument [400] naming the field, what
// was wrong and what is allowed; kPermissionDenied [403] when the caller is not a node,
// the target is in another account, or the signal is not addressed to the caller;
// kNotFound [404] for a target without SEP or an unknown/expired signal; kAborted [409]
// when a signal already got its BEP; kUnavailable [503] from the Store.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "backend/auth.h"
#include "backend/geo.h"
#include "backend/store.h"
#include "common/clock.h"
#include "common/status.h"

namespace edge::http {
class ApiServer;
}

namespace edge::backend {

inline constexpr std::string_view kRelayTicketPrefix = "relay/tickets/";
inline constexpr std::string_view kRelaySepPrefix = "relay/sep/";
inline constexpr std::string_view kRelaySignalPrefix = "relay/signals/";
inline constexpr std::string_view kRelayBepPrefix = "relay/bep/";
inline constexpr std::string_view kRegistryInstancePrefix = "registry/instances/";

// A ticket's stored record, as the relay reads it back.
struct TicketRecord {
  std::string kind;  // "sep" | "signal" | "bep"
  std::string node;  // the node the ticket was minted for
  std::string peer;  // signal: the target; bep: the other leg's node
  std::string account;
  std::string instance;     // the relay instance that must redeem it
  std::string signal;       // signal: the signal id
  std::string bep_id;       // bep
  std::string protocol;     // signal/bep: "http" | "stream"
  int max_connections = 1;  // bep: leg pairs the BEP may carry at once
  int64_t expires_at = 0;   // unix seconds
  std::string session;      // sep: identifies this SEP in relay/sep/<node>
};

// The 43-character base64url form of 32 random bytes; anything else is not a ticket.
bool looksLikeTicket(std::string_view text);

// Redeems a ticket on relay instance `instance` at wall time `now`: every ticket is
// single-use, so a successful redeem deletes it (with a revision compare, so two relays
// racing on one ticket cannot both win). kPermissionDenied with the reason a relay
// sends back: unknown or already used, expired, minted for another instance; kAborted
// when another redeem won the race; kUnavailable from the Store.
Result<TicketRecord> redeemTicket(Store& store, std::string_view ticket, std::string_view instance,
                                  WallTime now);

class Signaling {
 public:
  struct Options {
    std::string instance_id;                  // this replica (the fallback relay instance)
    std::string relay_address;                // this replica's relay, "host:port" as nodes reach it
    ClockPtr clock;                           // null = SystemClock
    std::chrono::seconds sep_ticket_ttl{60};  // time to connect to the SEP
    std::chrono::seconds signal_ticket_ttl{30};  // time for the caller to connect
    std::chrono::seconds signal_ttl{60};         // time for the target to ask for a BEP
    std::chrono::seconds instance_liveness{60};  // registry entries older than this are dead
  };

  static constexpr int kDefaultTtlSeconds = 300;
  static constexpr int kMaxTtlSeconds = 3600;
  static constexpr int kMaxBepConnections = 16;

  Signaling(Store& store, Authenticator& auth, Options options);

  Authenticator& authenticator() { return auth_; }

  // POST /v1/relay/sep, body {} or {"location": {"lat", "lon"}}:
  // {"address", "instance", "ticket", "expires_at"}.
  Result<nlohmann::json> openSep(const Caller& caller, const nlohmann::json& body);
  // POST /v1/relay/connect, body {"target": "<node id>", "kind": "http"|"stream"}:
  // {"address" (the target's SEP), "instance", "ticket", "signal", "expires_at"}.
  Result<nlohmann::json> connect(const Caller& caller, const nlohmann::json& body);
  // POST /v1/relay/bep, body {"signal", "caller"?, "ttl_seconds"?, "max_connections"?,
  // "protocol"?, "location"?}: {"bep_id", "address", "instance", "expires_at",
  // "ticket" (the target's first leg), "caller_ticket" (the caller's first leg),
  // "tickets", "caller_tickets" (all max_connections legs of each side)}.
  Result<nlohmann::json> openBep(const Caller& caller, const nlohmann::json& body);

  // Deletes expired tickets, signals and BEP records; returns how many. The server
  // wiring calls it now and then (a minute is plenty): nothing depends on it but space.
  Result<size_t> sweepExpired();

  // The relay instance nearest to `near` among those the registry shows alive, else
  // any live one, else this replica. Returns {instance id, relay address}.
  Result<std::pair<std::string, std::string>> pickInstance(const std::optional<GeoPoint>& near);

 private:
  int64_t nowUnix() const;

  Store& store_;
  Authenticator& auth_;
  Options options_;
};

// Registers POST /v1/relay/sep, /v1/relay/connect and /v1/relay/bep. `signaling` must
// outlive the server.
void registerSignalingApi(http::ApiServer& server, Signaling& signaling);

}  // namespace edge::backend
