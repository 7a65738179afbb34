// BackendServer: one edge-backend replica — the Store, the identity and token services,
// global discovery and the registry, signaling and this replica's relay — wired onto
// one HTTP listener and one relay listener, plus the housekeeping every replica does
// (publishing itself in the registry, expiring records, rotating signing keys).
//
// Replicas share nothing but the Store, so any number may run on one etcd; with the
// SQLite default there is one.
//
// Thread-safety: start() and stop() from one thread.
//
// Errors: create() returns the Store's errors (kUnavailable for an etcd that does not
// answer, kFailedPrecondition for a file that is not ours), kInvalidArgument for bad
// options (each names the option), and the file errors of the key files.
#pragma once

#include <chrono>
#include <memory>
#include <optional>
#include <string>

#include "backend/discovery_service.h"
#include "common/json.h"
#include "common/status.h"

namespace edge::backend {

struct BackendOptions {
  std::string listen = "0.0.0.0:8080";        // HTTP: OAuth, discovery, registry, signaling
  std::string relay_listen = "0.0.0.0:8085";  // SEP/BEP relay
  std::string relay_advertise;  // "host:port" nodes reach the relay at; "" = relay_listen
                                // when it names an address, else required
  std::string store;            // "" = sqlite:<data_dir>/backend.db
  std::string data_dir = "/var/lib/edge-backend";
  std::string issuer;             // "" = http://<listen>
  std::string key_file;           // key-encryption key; "" = <data_dir>/kek
  std::string admin_secret_file;  // the bootstrap admin's secret; "" = no admin
  std::string instance_id;        // "" = the host name
  std::optional<GeoPoint> location;
  std::chrono::seconds access_ttl{300};
  std::chrono::seconds housekeeping_interval{20};
};

class BackendServer {
 public:
  static Result<std::unique_ptr<BackendServer>> create(BackendOptions options);
  ~BackendServer();  // stop()s
  BackendServer(const BackendServer&) = delete;
  BackendServer& operator=(const BackendServer&) = delete;

  // Binds both listeners and starts the housekeeping thread.
  Status start();
  void stop();

  int httpPort() const;
  int relayPort() const;
  std::string describe() const;  // for the start-up log line

 private:
  struct Impl;
  explicit BackendServer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace edge::backend
