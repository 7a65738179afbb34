#include "orchestrator/node_config.h"

#include <yaml-cpp/yaml.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "common/log.h"

namespace edge::orchestrator {
namespace {

Status parsePortRange(const std::string& text, NodeConfig* node) {
  int first = 0, last = 0;
  char dash = 0;
  std::istringstream in(text);
  if (!(in >> first >> dash >> last) || dash != '-' || !in.eof() || first < 1024 || last > 65535 ||
      first > last)
    return Status::invalidArgument("port_range: \"" + text +
                                   "\" is not a range of unprivileged ports; use e.g. "
                                   "20000-29999");
  node->port_range_first = first;
  node->port_range_last = last;
  return Status::ok();
}

}  // namespace

Status applyConfigText(const std::string& text, const std::string& source, EdgedConfig* config) {
  YAML::Node root;
  try {
    root = YAML::Load(text);
  } catch (const YAML::Exception& e) {
    return Status::invalidArgument(source + ": not valid YAML at line " +
                                   std::to_string(e.mark.line + 1) + ": " + e.msg);
  }
  if (root.IsNull()) return Status::ok();
  if (!root.IsMap())
    return Status::invalidArgument(source + ": expected a mapping of settings (key: value)");
  NodeConfig& n = config->node;
  std::vector<std::string> errors;
  for (const auto& kv : root) {
    std::string key = kv.first.as<std::string>("");
    const YAML::Node& v = kv.second;
    if (!v.IsScalar() && !v.IsNull()) {
      errors.push_back(key + ": expected a single value");
      continue;
    }
    std::string value = v.IsNull() ? "" : v.as<std::string>("");
    if (key == "node_name") {
      n.node_name = value;
    } else if (key == "data_dir") {
      n.data_dir = value;
    } else if (key == "run_dir") {
      n.run_dir = value;
    } else if (key == "api_socket") {
      n.api_socket = value;
    } else if (key == "api_socket_group") {
      n.api_socket_group = value;
    } else if (key == "runtime") {
      if (value != "auto" && value != "docker" && value != "light")
        errors.push_back("runtime: \"" + value + "\" is not a runtime; use auto, docker or light");
      n.runtime = value;
    } else if (key == "docker_endpoint") {
      n.docker_endpoint = value;
    } else if (key == "log_level") {
      log::Level l;
      if (!log::parseLevel(value, &l))
        errors.push_back("log_level: \"" + value +
                         "\" is not a level; use debug, info, warn, error or off");
      config->log_level = value;
    } else if (key == "listen") {
      config->listen = value;
    } else if (key == "port_range") {
      Status s = parsePortRange(value, &n);
      if (!s.isOk()) errors.push_back(s.message());
    } else {
      errors.push_back(key +
                       ": unknown setting; known: node_name, data_dir, run_dir, api_socket, "
                       "api_socket_group, runtime, docker_endpoint, log_level, listen, "
                       "port_range");
    }
  }
  for (const auto* p : {&n.data_dir, &n.run_dir, &n.api_socket})
    if (!p->empty() && (*p)[0] != '/') errors.push_back("\"" + *p + "\" must be an absolute path");
  if (!errors.empty()) {
    std::string msg;
    for (const auto& e : errors) msg += (msg.empty() ? "" : "\n") + source + ": " + e;
    return Status::invalidArgument(msg);
  }
  return Status::ok();
}

Status loadConfigFile(const std::string& path, bool optional, EdgedConfig* config) {
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) {
    if (optional) return Status::ok();
    return Status::notFound("config file " + path + " does not exist");
  }
  std::ifstream in(path);
  if (!in) return Status::fromErrno(errno, "cannot read config file " + path);
  std::stringstream ss;
  ss << in.rdbuf();
  if (ss.str().size() > (1 << 20))
    return Status::invalidArgument(path + ": larger than 1 MiB; is it the right file?");
  return applyConfigText(ss.str(), path, config);
}

}  // namespace edge::orchestrator
