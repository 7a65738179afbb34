// edge-gateway: the gateway's data path on its own, with a static route table. The
// benchmark (bench/) drives it against nginx; edged runs the same engine with the
// control plane's router instead.
//
//   edge-gateway --listen 127.0.0.1:8090 --workers 2 --route /=127.0.0.1:8080
#include <signal.h>

#include <CLI/CLI.hpp>
#include <iostream>

#include "common/log.h"
#include "gateway/proxy.h"
#include "gateway/static_router.h"

int main(int argc, char** argv) {
  using namespace edge::gateway;
  std::vector<std::string> listen, unix_paths, routes;
  int workers = 2;
  int per_try_ms = 10'000, deadline_ms = 30'000;
  std::string log_level = "info";
  CLI::App app{"edge-gateway: HTTP/1.1 reverse proxy (the Edgecloud gateway's data path)",
               "edge-gateway"};
  app.add_option("--listen", listen, "TCP address to listen on, host:port (repeatable)");
  app.add_option("--unix", unix_paths, "unix socket path to listen on (repeatable)");
  app.add_option("--workers", workers, "worker threads, one epoll loop each [2]")
      ->check(CLI::Range(1, 256));
  app.add_option("--route", routes,
                 "PREFIX=HOST:PORT[,HOST:PORT...]; longest prefix wins (repeatable)")
      ->required();
  app.add_option("--per-try-timeout-ms", per_try_ms, "connect + response head, per try [10000]")
      ->check(CLI::Range(1, 3'600'000));
  app.add_option("--deadline-ms", deadline_ms, "all tries of one request [30000]")
      ->check(CLI::Range(1, 3'600'000));
  app.add_option("--log-level", log_level, "debug | info | warn | error | off [info]");
  CLI11_PARSE(app, argc, argv);

  edge::log::Level level;
  if (!edge::log::parseLevel(log_level, &level)) {
    std::cerr << "edge-gateway: --log-level: \"" << log_level
              << "\" is not a level; use debug, info, warn, error or off\n";
    return 2;
  }
  edge::log::setLevel(level);
  if (listen.empty() && unix_paths.empty()) {
    std::cerr << "edge-gateway: give at least one --listen or --unix\n";
    return 2;
  }
  std::vector<StaticRoute> table;
  for (const std::string& text : routes) {
    auto r = StaticRouter::parseRoute(text);
    if (!r.isOk()) {
      std::cerr << "edge-gateway: --route: " << r.status().message() << "\n";
      return 2;
    }
    table.push_back(std::move(r).value());
  }
  StaticRouterOptions ro;
  ro.per_try_timeout = std::chrono::milliseconds(per_try_ms);
  ro.deadline = std::chrono::milliseconds(deadline_ms);
  auto router = StaticRouter::create(std::move(table), ro);
  if (!router.isOk()) {
    std::cerr << "edge-gateway: " << router.status().message() << "\n";
    return 2;
  }
  ProxyOptions o;
  o.workers = workers;
  o.listen_tcp = listen;
  o.listen_unix = unix_paths;
  auto server = ProxyServer::create(o, **router);
  if (!server.isOk()) {
    std::cerr << "edge-gateway: " << server.status().message() << "\n";
    return 2;
  }
  // Workers inherit the mask: only this thread takes SIGTERM/SIGINT.
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  signal(SIGPIPE, SIG_IGN);
  if (edge::Status s = (*server)->start(); !s.isOk()) {
    std::cerr << "edge-gateway: " << s.message() << "\n";
    return 1;
  }
  std::string ports;
  for (uint16_t p : (*server)->tcpPorts()) ports += (ports.empty() ? "" : ",") + std::to_string(p);
  LOG_INFO("edge-gateway started").kv("workers", workers).kv("ports", ports);
  int sig = 0;
  sigwait(&set, &sig);
  LOG_INFO("edge-gateway stopping").kv("signal", sig);
  (*server)->stop();
  return 0;
}
