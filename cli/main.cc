// edgectl: the operator's command line for an Edgecloud node. It talks to edged's REST
// API (docs/api.md) on the node's unix socket or over TCP; docs/edgectl.md is its manual.
#include <signal.h>
#include <unistd.h>

#include <CLI/CLI.hpp>

#include <iostream>

#include "cli/commands.h"
#include "cli/completion.h"
#include "cli/errors.h"
#include "common/config.h"

namespace edge::cli {
namespace {

constexpr const char* kDefaultHost = "unix:///run/edged/edged.sock";

int run(int argc, char** argv) {
  CLI::App app{"edgectl: operate an Edgecloud node (edged) through its API.", "edgectl"};
  app.footer(exitCodeHelp() +
             "\nEnvironment:\n  EDGE_HOST  the node to talk to, like --host\n\n"
             "Manual: /usr/share/doc/edgecloud/edgectl.md");
  app.set_version_flag("--version", std::string("edgectl ") + clientVersion());
  app.require_subcommand(1);
  // Global flags may also follow the subcommand: `edgectl get svc -o json`.
  app.fallthrough();

  std::string output = "table";
  std::string host = kDefaultHost;
  std::string timeout_text = "30s";
  bool quiet = false;
  app.add_option("-o,--output", output, "Output format: table, json (the API's JSON) or yaml")
      ->check(CLI::IsMember({"table", "json", "yaml"}))
      ->capture_default_str();
  app.add_option("--host", host, "The node: a unix socket path, unix:///path or http://host:port")
      ->envname("EDGE_HOST")
      ->type_name("ADDRESS")
      ->capture_default_str();
  CLI::Option* timeout_opt =
      app.add_option("--timeout", timeout_text,
                     "How long to wait for the node (500ms, 10s, 2m); streams and image loads "
                     "wait without limit unless this is given")
          ->type_name("DURATION")
          ->capture_default_str();
  app.add_flag("-q,--quiet", quiet,
               "No confirmations or progress; listings print names only; errors still go to "
               "stderr");

  CLI::App* status = app.add_subcommand("status", "Show the node: runtime, counts, uptime");

  CLI::App* version = app.add_subcommand("version", "Show the client's and the node's versions");
  bool client_only = false;
  version->add_flag("--client", client_only, "Only the client's version (no node needed)");

  CLI::App* apply = app.add_subcommand("apply", "Create or update services from manifest files");
  ApplyArgs apply_args;
  apply->add_option("-f,--filename", apply_args.files, "Manifest file (YAML or JSON); - is stdin")
      ->required()
      ->type_name("FILE");
  apply->add_flag("--dry-run", apply_args.dry_run, "Validate and show what would change");

  CLI::App* get = app.add_subcommand("get", "List services, instances or images");
  std::string get_type, get_name;
  get->add_option("TYPE", get_type, "services (svc), instances (inst) or images (img)")->required();
  get->add_option("NAME", get_name,
                  "One service; one instance (by name or id) or the instances of a service; "
                  "one image (by tag or id)");

  CLI::App* describe = app.add_subcommand(
      "describe", "Show a service in detail: manifest, instances, history, recent events");
  std::string describe_name;
  describe->add_option("NAME", describe_name, "A service (or an instance)")->required();

  CLI::App* logs = app.add_subcommand("logs", "Print the logs of a service or an instance");
  LogsArgs logs_args;
  logs->add_option("NAME", logs_args.name, "A service or an instance")->required();
  logs->add_flag("-f,--follow", logs_args.follow, "Keep printing new lines until interrupted");
  logs->add_option("--tail", logs_args.tail, "Only the last N lines of each instance")
      ->check(CLI::NonNegativeNumber)
      ->type_name("N");
  logs->add_flag("--timestamps", logs_args.timestamps, "Start each line with its time");

  CLI::App* del = app.add_subcommand("delete", "Delete a service and its instances");
  std::string delete_name;
  bool delete_dry = false;
  del->add_option("SERVICE", delete_name, "The service")->required();
  del->add_flag("--dry-run", delete_dry, "Check the service exists, change nothing");

  CLI::App* restart = app.add_subcommand("restart", "Replace a service's instances one by one");
  std::string restart_name;
  restart->add_option("SERVICE", restart_name, "The service")->required();

  CLI::App* rollback =
      app.add_subcommand("rollback", "Apply an earlier generation of a service again");
  std::string rollback_name;
  int64_t rollback_to = 0;
  rollback->add_option("SERVICE", rollback_name, "The service")->required();
  CLI::Option* rollback_to_opt =
      rollback->add_option("--to", rollback_to, "The generation (default: the previous one)")
          ->check(CLI::PositiveNumber)
          ->type_name("GEN");

  CLI::App* images = app.add_subcommand("images", "Load, list and remove images on the node");
  images->require_subcommand(0, 1);
  CLI::App* images_ls = images->add_subcommand("ls", "List images (also: edgectl get images)");
  CLI::App* images_load =
      images->add_subcommand("load", "Load an image tarball (docker save or OCI layout)");
  std::string load_file;
  images_load->add_option("FILE", load_file, "The tarball; - is stdin")->required();
  CLI::App* images_rm = images->add_subcommand("rm", "Remove an image");
  std::string rm_ref;
  bool rm_force = false;
  images_rm->add_option("REF", rm_ref, "Tag or id")->required();
  images_rm->add_flag("--force", rm_force, "Remove it even while tagged more than once");

  CLI::App* events = app.add_subcommand("events", "Print the node's events (-f: as they happen)");
  bool events_follow = false;
  std::string events_service;
  events->add_flag("-f,--follow", events_follow, "Keep printing new events until interrupted");
  events->add_option("--service", events_service, "Only the events of this service")
      ->type_name("SERVICE");

  CLI::App* nodes =
      app.add_subcommand("nodes", "List the nodes of this node's clusters (discovery)");
  NodesArgs nodes_args;
  nodes
      ->add_option("--scope", nodes_args.scope,
                   "network (the clusters of this node's links) or account (the nodes of one "
                   "account); default network, or account with --account")
      ->check(CLI::IsMember({"network", "account", "proximity"}))
      ->type_name("SCOPE");
  nodes
      ->add_option("--account", nodes_args.account,
                   "The account of --scope account (default: this node's own)")
      ->type_name("ID");
  nodes->add_option("--interface", nodes_args.interface, "Only the cluster on this interface")
      ->type_name("NAME");
  nodes->add_option("--network", nodes_args.network, "Only nodes of this cluster id (backend)")
      ->type_name("CLUSTER");
  nodes->add_option("--near", nodes_args.near, "--scope proximity: the centre, lat,lon")
      ->type_name("LAT,LON");
  nodes->add_option("--radius-km", nodes_args.radius_km, "--scope proximity: the radius")
      ->type_name("KM");
  nodes->add_option("--box", nodes_args.box, "--scope proximity: a box instead of a radius")
      ->type_name("S,W,N,E");

  CLI::App* call = app.add_subcommand(
      "call", "Call another node's API through this node (direct or through the relays)");
  CallArgs call_args;
  call->add_option("NODE", call_args.node, "the target's node id")->required();
  call->add_option("PATH", call_args.path, "the path on the target, e.g. /api/v1/node")->required();
  call->add_option("-X,--method", call_args.method, "GET, POST, PUT or DELETE [GET]")
      ->check(CLI::IsMember({"GET", "POST", "PUT", "DELETE"}));
  call->add_option("-d,--data", call_args.data, "request body; @FILE or @- to read it");

  CLI::App* cluster = app.add_subcommand(
      "cluster", "Show this node's clusters: supernode, members, roles, blacklist");

  CLI::App* routes = app.add_subcommand(
      "routes", "Show the gateway's route table: where each service path goes, retry policy");

  CLI::App* completion = app.add_subcommand("completion", "Print a shell completion script");
  std::string shell;
  completion->add_option("SHELL", shell, "bash")->required()->check(CLI::IsMember({"bash"}));

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int code = app.exit(e);
    return code == 0 ? kExitOk : kExitUsage;
  }

  if (*completion) {
    std::cout << bashCompletion(app, {{"TYPE", "services svc instances inst images img"},
                                      {"SHELL", "bash"},
                                      {"--output", "table json yaml"},
                                      {"--service", ""},
                                      {"--scope", "network account"},
                                      {"--account", ""},
                                      {"--interface", ""}})
              << std::flush;
    return kExitOk;
  }

  Context ctx;
  ctx.format = *parseOutputFormat(output);
  ctx.quiet = quiet;
  ctx.stderr_tty = ::isatty(STDERR_FILENO) == 1;
  ctx.out = &std::cout;
  ctx.err = &std::cerr;
  ctx.in = &std::cin;
  ctx.clock = SystemClock::instance();

  NodeOptions options;
  Result<std::chrono::milliseconds> timeout = parseDuration(timeout_text);
  if (!timeout.isOk() || timeout->count() <= 0) {
    return ctx.usage("--timeout '" + timeout_text +
                     "' is not a positive duration; use e.g. 500ms, 10s, 2m");
  }
  options.timeout = *timeout;
  options.timeout_given = timeout_opt->count() > 0;
  Result<NodeClient> node = NodeClient::open(host, options);
  if (!node.isOk()) return ctx.usage("--host: " + node.status().message());
  ctx.node = &*node;

  if (*status) return cmdStatus(ctx);
  if (*version) return cmdVersion(ctx, client_only);
  if (*apply) return cmdApply(ctx, apply_args);
  if (*get) return cmdGet(ctx, get_type, get_name);
  if (*describe) return cmdDescribe(ctx, describe_name);
  if (*logs) return cmdLogs(ctx, logs_args);
  if (*del) return cmdDelete(ctx, delete_name, delete_dry);
  if (*restart) return cmdRestart(ctx, restart_name);
  if (*rollback) {
    return cmdRollback(
        ctx, rollback_name,
        rollback_to_opt->count() ? std::optional<int64_t>(rollback_to) : std::nullopt);
  }
  if (*images_load) return cmdImagesLoad(ctx, load_file);
  if (*images_rm) return cmdImagesRm(ctx, rm_ref, rm_force);
  if (*images || *images_ls) return cmdGet(ctx, "images", "");
  if (*events) return cmdEvents(ctx, events_follow, events_service);
  if (*nodes) return cmdNodes(ctx, nodes_args);
  if (*call) return cmdCall(ctx, call_args);
  if (*cluster) return cmdCluster(ctx);
  if (*routes) return cmdRoutes(ctx);
  return kExitUsage;
}

}  // namespace
}  // namespace edge::cli

int main(int argc, char** argv) {
  // A closed stdout (`edgectl logs -f x | head`) or a node that stops reading a body it
  // refuses is an error to report, not a reason to die silently with status 141.
  ::signal(SIGPIPE, SIG_IGN);
  try {
    return edge::cli::run(argc, argv);
  } catch (const std::exception& e) {
    // Nothing below throws by design; this is the last line of defence for a bug.
    std::cerr << "edgectl: internal error: " << e.what() << "\n";
    return edge::cli::kExitError;
  }
}
