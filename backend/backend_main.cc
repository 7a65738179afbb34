// edge-backend: the central services of an Edgecloud deployment (identity and tokens,
// global discovery and registry, signaling with SEP/BEP relays). docs/backend.md.
#include <signal.h>

#include <CLI/CLI.hpp>
#include <iostream>

#include "backend/backend_server.h"
#include "common/log.h"

namespace {

volatile sig_atomic_t g_stop = 0;
void onSignal(int) {
  g_stop = 1;
}

}  // namespace

int main(int argc, char** argv) {
  edge::backend::BackendOptions o;
  std::string location, log_level = "info";
  int access_ttl = 300;
  CLI::App app{"edge-backend: identity, tokens, global discovery, registry and relays"};
  app.add_option("--listen", o.listen, "HTTP API address [0.0.0.0:8080]");
  app.add_option("--relay-listen", o.relay_listen, "SEP/BEP relay address [0.0.0.0:8085]");
  app.add_option("--relay-advertise", o.relay_advertise,
                 "host:port nodes reach the relay at [the relay-listen address]");
  app.add_option("--store", o.store,
                 "sqlite:<path> or etcd:http://host:port[,http://...] "
                 "[sqlite:<data-dir>/backend.db]");
  app.add_option("--data-dir", o.data_dir, "backend key, KEK, SQLite file [/var/lib/edge-backend]");
  app.add_option("--issuer", o.issuer, "the tokens' iss, the URL nodes use [http://<listen>]");
  app.add_option("--key-file", o.key_file,
                 "32-byte key that encrypts the signing keys in the store [<data-dir>/kek]");
  app.add_option("--admin-secret-file", o.admin_secret_file,
                 "secret of the bootstrap client \"admin\" [none: no admin]");
  app.add_option("--instance-id", o.instance_id, "this replica's id [the host name]");
  app.add_option("--location", location, "lat,lon of this replica (nearest relay choice)");
  app.add_option("--access-token-ttl", access_ttl, "access token lifetime in seconds [300]")
      ->check(CLI::Range(30, 86400));
  app.add_option("--log-level", log_level, "debug | info | warn | error | off [info]");
  CLI11_PARSE(app, argc, argv);

  edge::log::Level level;
  if (!edge::log::parseLevel(log_level, &level)) {
    std::cerr << "edge-backend: --log-level: \"" << log_level
              << "\" is not a level; use debug, info, warn, error or off\n";
    return 2;
  }
  edge::log::setLevel(level);
  if (!location.empty()) {
    auto p = edge::backend::parseGeoPointText(location, "--location");
    if (!p.isOk()) {
      std::cerr << "edge-backend: " << p.status().message() << "\n";
      return 2;
    }
    o.location = *p;
  }
  o.access_ttl = std::chrono::seconds(access_ttl);

  auto server = edge::backend::BackendServer::create(o);
  if (!server.isOk()) {
    std::cerr << "edge-backend: " << server.status().message() << "\n";
    return 1;
  }
  edge::Status st = (*server)->start();
  if (!st.isOk()) {
    std::cerr << "edge-backend: " << st.message() << "\n";
    return 1;
  }
  LOG_INFO("backend.started")
      .kv("http", (*server)->httpPort())
      .kv("relay", (*server)->relayPort())
      .kv("config", (*server)->describe());
  struct sigaction sa {};
  sa.sa_handler = onSignal;
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
  signal(SIGPIPE, SIG_IGN);
  while (!g_stop) pause();
  LOG_INFO("backend.stopping");
  (*server)->stop();
  return 0;
}
