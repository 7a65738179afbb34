// edge-dockerapi-harness: serves the Docker Engine API subset over a chosen runtime on a
// chosen socket, so the stock `docker` CLI can be tested against it before (and
// independently of) edged.
//
//   edge-dockerapi-harness --runtime light --socket /tmp/x/docker.sock --data-dir /tmp/x/data
//   docker -H unix:///tmp/x/docker.sock ps -a
//
// Prints "ready <socket>" on stdout once it accepts connections; stops on SIGINT/SIGTERM.
#include <signal.h>

#include <CLI/CLI.hpp>

#include <cstdio>
#include <iostream>

#include "common/http_server.h"
#include "common/log.h"
#include "edged/api/docker_api.h"
#include "runtime-shim/factory.h"

int main(int argc, char** argv) {
  using namespace edge;
  CLI::App app{"Serves the Docker API subset over an Edgecloud runtime (a test harness)"};
  runtime::RuntimeOptions ro;
  http::ApiServer::Options so;
  std::string level = "info";
  app.add_option("--runtime", ro.kind, "auto | docker | light")->capture_default_str();
  app.add_option("--docker-endpoint", ro.docker_endpoint)->capture_default_str();
  app.add_option("--data-dir", ro.data_dir, "the light runtime's state")->capture_default_str();
  app.add_option("--shim", ro.shim_path, "edge-shim binary (default: next to this one)");
  app.add_option("--socket", so.unix_socket, "unix socket to serve on")->required();
  app.add_option("--group", so.socket_group, "group to give the socket to");
  app.add_option("--tcp", so.tcp_address, "also serve on host:port");
  app.add_option("--log-level", level, "debug | info | warn | error")->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  log::Level lv;
  if (!log::parseLevel(level, &lv)) {
    std::cerr << "--log-level: '" << level << "' is not debug, info, warn or error\n";
    return 2;
  }
  log::setLevel(lv);

  // Signals are taken with sigwait below, so block them before any thread starts.
  sigset_t sigs;
  sigemptyset(&sigs);
  sigaddset(&sigs, SIGINT);
  sigaddset(&sigs, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &sigs, nullptr);

  Result<runtime::ContainerRuntimePtr> rt = runtime::createRuntime(ro);
  if (!rt.isOk()) {
    std::cerr << "cannot open the runtime: " << rt.status().toString() << "\n";
    return 1;
  }
  {
    http::ApiServer server(so);
    edged::DockerApiOptions o;
    o.node_name = "harness";
    o.version = "0.0.0-harness";
    o.data_dir = ro.data_dir;
    o.temp_dir = ro.data_dir + "/tmp";
    registerDockerApi(server, **rt, o);
    Status s = server.start();
    if (!s.isOk()) {
      std::cerr << "cannot serve: " << s.toString() << "\n";
      return 1;
    }
    std::cout << "ready " << so.unix_socket;
    if (server.boundTcpPort() != 0) std::cout << " tcp-port " << server.boundTcpPort();
    std::cout << std::endl;
    int sig = 0;
    sigwait(&sigs, &sig);
    server.stop();
  }
  return 0;
}
