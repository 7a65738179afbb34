// edged: the node agent. Runs the desired state of this host's services on the local
// container runtime and serves the node API (docs/api.md) on its unix socket.
//
// Signals: SIGTERM/SIGINT stop edged cleanly and leave every workload running (a
// restarted edged adopts them); SIGHUP re-reads the config file and applies what can
// change live (the log level) and says which changes need a restart.
#include <fcntl.h>
#include <malloc.h>
#include <signal.h>
#include <sys/file.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <iostream>

#include "common/log.h"
#include "edged/node.h"
#include "edged/node_config.h"

namespace {

using edge::edged::EdgedConfig;

struct Flags {
  std::string config_path = edge::edged::kDefaultConfigPath;
  std::optional<std::string> data_dir, run_dir, api_socket, api_socket_group, runtime,
      docker_endpoint, log_level, node_name, listen, discovery_interfaces, backend,
      backend_join_token_file, gateway_socket, global_gateway, account_key_file;
  std::optional<int> gateway_workers;
  bool no_discovery = false;
};

void applyFlags(const Flags& f, EdgedConfig* c) {
  if (f.data_dir) c->node.data_dir = *f.data_dir;
  if (f.run_dir) c->node.run_dir = *f.run_dir;
  if (f.api_socket) c->node.api_socket = *f.api_socket;
  if (f.api_socket_group) c->node.api_socket_group = *f.api_socket_group;
  if (f.runtime) c->node.runtime = *f.runtime;
  if (f.docker_endpoint) c->node.docker_endpoint = *f.docker_endpoint;
  if (f.log_level) c->log_level = *f.log_level;
  if (f.node_name) c->node.node_name = *f.node_name;
  if (f.listen) c->node.listen = *f.listen;
  if (f.no_discovery) c->node.discovery = false;
  if (f.discovery_interfaces)
    c->node.discovery_interfaces = edge::edged::splitList(*f.discovery_interfaces);
  if (f.backend) c->node.backend = *f.backend;
  if (f.backend_join_token_file) c->node.backend_join_token_file = *f.backend_join_token_file;
  if (f.gateway_socket) c->node.gateway_socket = *f.gateway_socket;
  if (f.gateway_workers) c->node.gateway_workers = *f.gateway_workers;
  if (f.global_gateway) c->node.global_gateway = *f.global_gateway;
  if (f.account_key_file) c->node.account_key_file = *f.account_key_file;
}

edge::Status loadConfig(const Flags& f, bool config_given, EdgedConfig* out) {
  EdgedConfig c;
  RETURN_IF_ERROR(edge::edged::loadConfigFile(f.config_path, !config_given, &c));
  applyFlags(f, &c);
  edge::log::Level level;
  if (!edge::log::parseLevel(c.log_level, &level))
    return edge::Status::invalidArgument("--log-level: \"" + c.log_level +
                                         "\" is not a level; use debug, info, warn, error or off");
  if (c.node.runtime != "auto" && c.node.runtime != "docker" && c.node.runtime != "light")
    return edge::Status::invalidArgument("--runtime: \"" + c.node.runtime +
                                         "\" is not a runtime; use auto, docker or light");
  if (!c.node.backend.empty() && c.node.backend.rfind("http://", 0) != 0)
    return edge::Status::invalidArgument("--backend: \"" + c.node.backend +
                                         "\" is not an http://host:port URL of edge-backend");
  *out = c;
  return edge::Status::ok();
}

}  // namespace

int main(int argc, char** argv) {
  // edged allocates little and from few threads; one malloc arena keeps its resident
  // memory small (an arena per thread costs megabytes for nothing here).
  ::mallopt(M_ARENA_MAX, 1);

  CLI::App app{
      "edged: the Edgecloud node agent. Runs this host's services from their "
      "manifests and serves the node API (edgectl, docker -H) on a unix socket.",
      "edged"};
  Flags f;
  app.set_version_flag("--version", std::string("edged ") + EDGE_VERSION);
  auto* cfg_opt = app.add_option("-c,--config", f.config_path,
                                 "config file (YAML); missing is fine for the default path")
                      ->capture_default_str();
  app.add_option("--data-dir", f.data_dir, "desired state, images, containers [/var/lib/edged]");
  app.add_option("--run-dir", f.run_dir, "volatile state (a tmpfs) [/run/edged]");
  app.add_option("--api-socket", f.api_socket, "node API unix socket [/run/edged/edged.sock]");
  app.add_option("--api-socket-group", f.api_socket_group,
                 "group owning the socket, mode 0660 [edge]");
  app.add_option("--runtime", f.runtime, "auto | docker | light [auto]");
  app.add_option("--docker-endpoint", f.docker_endpoint,
                 "Docker Engine socket [unix:///var/run/docker.sock]");
  app.add_option("--log-level", f.log_level, "debug | info | warn | error | off [info]");
  app.add_option("--node-name", f.node_name, "this node's name [the host name]");
  app.add_option("--listen", f.listen, "cluster-facing address [0.0.0.0:8083]");
  app.add_flag("--no-discovery", f.no_discovery,
               "join no cluster: no multicast, no cluster sessions (config: discovery: false)");
  app.add_option("--discovery-interfaces", f.discovery_interfaces,
                 "interfaces whose links to join, comma-separated [every link interface]");
  app.add_option("--backend", f.backend, "edge-backend URL, http://host:port [none]");
  app.add_option("--backend-join-token-file", f.backend_join_token_file,
                 "an account's join token for the first registration with the backend");
  app.add_option("--gateway-socket", f.gateway_socket,
                 "the gateway's unix socket for local apps [/run/edged/gateway.sock]");
  app.add_option("--gateway-workers", f.gateway_workers,
                 "gateway worker threads, 0 = one per CPU [0]")
      ->check(CLI::Range(0, 64));
  app.add_option("--global-gateway", f.global_gateway,
                 "the central gateway for routes not in the cluster, http://host:port [none]");
  app.add_option("--account-key-file", f.account_key_file,
                 "ES256 key shared by the account's nodes: the gateway signs and checks "
                 "tokens with it when there is no backend [none]");
  CLI11_PARSE(app, argc, argv);
  bool config_given = cfg_opt->count() > 0;

  EdgedConfig config;
  edge::Status st = loadConfig(f, config_given, &config);
  if (!st.isOk()) {
    std::fprintf(stderr, "edged: %s\n", st.message().c_str());
    return 2;
  }
  edge::log::Level level;
  edge::log::parseLevel(config.log_level, &level);
  edge::log::setLevel(level);

  // Signals are taken synchronously by this thread; every other thread inherits the mask.
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  ::signal(SIGPIPE, SIG_IGN);

  std::error_code ec;
  std::filesystem::create_directories(config.node.data_dir, ec);
  std::string lock_path = config.node.data_dir + "/edged.lock";
  int lock_fd = ::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (lock_fd < 0 || ::flock(lock_fd, LOCK_EX | LOCK_NB) != 0) {
    std::fprintf(stderr, "edged: another edged already runs on data dir %s (lock %s held)\n",
                 config.node.data_dir.c_str(), lock_path.c_str());
    return 1;
  }

  auto node = edge::edged::Node::create(config.node);
  if (!node.isOk()) {
    std::fprintf(stderr, "edged: %s\n", node.status().message().c_str());
    return 1;
  }
  st = (*node)->start();
  if (!st.isOk()) {
    std::fprintf(stderr, "edged: %s\n", st.message().c_str());
    return 1;
  }
  LOG_INFO("edged started")
      .kv("version", EDGE_VERSION)
      .kv("node", (*node)->name())
      .kv("runtime", (*node)->runtime().kind())
      .kv("data_dir", config.node.data_dir)
      .kv("api_socket", config.node.api_socket);

  for (;;) {
    int sig = 0;
    if (sigwait(&set, &sig) != 0) continue;
    if (sig == SIGHUP) {
      EdgedConfig fresh;
      edge::Status r = loadConfig(f, config_given, &fresh);
      if (!r.isOk()) {
        LOG_ERROR("config reload failed; keeping the running config").kv("error", r.message());
        continue;
      }
      edge::log::parseLevel(fresh.log_level, &level);
      edge::log::setLevel(level);
      bool restart_needed = fresh.node.data_dir != config.node.data_dir ||
                            fresh.node.api_socket != config.node.api_socket ||
                            fresh.node.runtime != config.node.runtime ||
                            fresh.node.docker_endpoint != config.node.docker_endpoint ||
                            fresh.node.run_dir != config.node.run_dir ||
                            fresh.node.listen != config.node.listen ||
                            fresh.node.discovery != config.node.discovery;
      LOG_INFO("config reloaded")
          .kv("log_level", fresh.log_level)
          .kv("restart_needed_for_other_changes", restart_needed);
      config.log_level = fresh.log_level;
      continue;
    }
    LOG_INFO("edged stopping; workloads keep running").kv("signal", sig);
    (*node)->stop();
    LOG_INFO("edged stopped");
    // Every commit is already durable (WAL, synchronous=FULL) and the API is closed.
    // Exit without destroying the node: a log reader blocked on a quiet container may
    // still hold it, and waiting for it could take until that container writes a line.
    std::_Exit(0);
  }
}
