#include "edged/node_config.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "common/log.h"

namespace edge::edged {
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

bool parseBool(const std::string& v, bool* out) {
  if (v == "true" || v == "yes" || v == "on") {
    *out = true;
    return true;
  }
  if (v == "false" || v == "no" || v == "off") {
    *out = false;
    return true;
  }
  return false;
}

bool parseInt(const std::string& v, int lo, int hi, int* out) {
  if (v.empty() || v.size() > 9 || v.find_first_not_of("0123456789") != std::string::npos)
    return false;
  int x = std::stoi(v);
  if (x < lo || x > hi) return false;
  *out = x;
  return true;
}

}  // namespace

std::vector<std::string> splitList(const std::string& v) {
  std::vector<std::string> out;
  std::string cur;
  for (char c : v + ",") {
    if (c == ',' || c == ' ') {
      if (!cur.empty()) out.push_back(cur);
      cur.clear();
    } else {
      cur.push_back(c);
    }
  }
  return out;
}

// "lat,lon" in degrees; "" clears it.
static Status parseLocation(const std::string& value, NodeConfig* n) {
  n->has_location = false;
  if (value.empty()) return Status::ok();
  auto comma = value.find(',');
  char* end = nullptr;
  double lat = std::strtod(value.c_str(), &end);
  bool ok = comma != std::string::npos && end == value.c_str() + comma;
  double lon = 0;
  if (ok) {
    const char* start = value.c_str() + comma + 1;
    lon = std::strtod(start, &end);
    ok = end != start && *end == '\0';
  }
  if (!ok || !(lat >= -90 && lat <= 90 && lon >= -180 && lon <= 180))
    return Status::invalidArgument("location: \"" + value +
                                   "\" is not \"lat,lon\" in degrees (lat -90..90, lon "
                                   "-180..180), e.g. 48.8566,2.3522");
  n->has_location = true;
  n->latitude = lat;
  n->longitude = lon;
  return Status::ok();
}

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
      bool printable = std::all_of(value.begin(), value.end(), [](char c) {
        return static_cast<unsigned char>(c) >= 0x20 && c != 0x7f;
      });
      if (value.size() > 253 || !printable)
        errors.push_back("node_name: at most 253 printable characters (peers refuse others)");
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
      n.listen = value;
    } else if (key == "discovery") {
      if (!parseBool(value, &n.discovery))
        errors.push_back("discovery: \"" + value + "\" is not true or false");
    } else if (key == "discovery_interfaces") {
      n.discovery_interfaces = splitList(value);
    } else if (key == "discovery_group") {
      n.discovery_group = value;
    } else if (key == "advertise") {
      n.advertise = value;
    } else if (key == "power") {
      if (value != "mains" && value != "battery")
        errors.push_back("power: \"" + value + "\" is not a power source; use mains or battery");
      n.power = value;
    } else if (key == "persistent") {
      if (!parseBool(value, &n.persistent))
        errors.push_back("persistent: \"" + value + "\" is not true or false");
    } else if (key == "account_id") {
      n.account_id = value;
    } else if (key == "public_address") {
      n.public_address = value;
    } else if (key == "cluster_key_file") {
      n.cluster_key_file = value;
    } else if (key == "blacklist_seconds") {
      if (!parseInt(value, 1, 86400 * 30, &n.blacklist_seconds))
        errors.push_back("blacklist_seconds: \"" + value +
                         "\" is not a number of seconds in 1..2592000");
    } else if (key == "beacon_interval_ms") {
      if (!parseInt(value, 50, 5000, &n.beacon_interval_ms))
        errors.push_back("beacon_interval_ms: \"" + value + "\" is not in 50..5000");
    } else if (key == "supernode_timeout_ms") {
      if (!parseInt(value, 200, 60000, &n.supernode_timeout_ms))
        errors.push_back("supernode_timeout_ms: \"" + value + "\" is not in 200..60000");
    } else if (key == "backend") {
      if (!value.empty() && value.rfind("http://", 0) != 0)
        errors.push_back("backend: \"" + value +
                         "\" is not an http://host:port URL of edge-backend");
      n.backend = value;
    } else if (key == "backend_join_token_file") {
      n.backend_join_token_file = value;
    } else if (key == "location") {
      Status s = parseLocation(value, &n);
      if (!s.isOk()) errors.push_back(s.message());
    } else if (key == "gateway_socket") {
      n.gateway_socket = value;
    } else if (key == "gateway_workers") {
      if (!parseInt(value, 0, 64, &n.gateway_workers))
        errors.push_back("gateway_workers: \"" + value + "\" is not in 0..64 (0 = one per CPU)");
    } else if (key == "global_gateway") {
      if (!value.empty() && value.rfind("http://", 0) != 0)
        errors.push_back("global_gateway: \"" + value +
                         "\" is not an http://host:port URL of the central gateway");
      n.global_gateway = value;
    } else if (key == "account_key_file") {
      n.account_key_file = value;
    } else if (key == "port_range") {
      Status s = parsePortRange(value, &n);
      if (!s.isOk()) errors.push_back(s.message());
    } else {
      errors.push_back(key +
                       ": unknown setting; known: node_name, data_dir, run_dir, api_socket, "
                       "api_socket_group, runtime, docker_endpoint, log_level, listen, "
                       "port_range, discovery, discovery_interfaces, discovery_group, "
                       "advertise, power, persistent, account_id, public_address, "
                       "cluster_key_file, blacklist_seconds, beacon_interval_ms, "
                       "supernode_timeout_ms, backend, backend_join_token_file, location, "
                       "gateway_socket, gateway_workers, global_gateway, account_key_file");
    }
  }
  if (n.supernode_timeout_ms < 2 * n.beacon_interval_ms)
    errors.push_back("supernode_timeout_ms (" + std::to_string(n.supernode_timeout_ms) +
                     ") must be at least two beacon intervals (" +
                     std::to_string(2 * n.beacon_interval_ms) + ")");
  for (const auto* p : {&n.data_dir, &n.run_dir, &n.api_socket, &n.gateway_socket})
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

}  // namespace edge::edged
