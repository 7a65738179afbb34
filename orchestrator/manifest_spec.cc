// The canonical form of a manifest (manifestToJson: every field written out, keys sorted,
// values in forms the parser reads back) and the runtime spec of one replica
// (toContainerSpec).
//
// Thread-safety: pure functions on values.
#include <string>
#include <utility>

#include "common/json.h"
#include "orchestrator/manifest.h"

namespace edge::orchestrator {

namespace {

// The largest unit that writes `d` exactly, so "5s" stays "5s" and 1500 ms "1500ms".
std::string durationText(Millis d) {
  int64_t ms = d.count();
  if (ms == 0) return "0s";
  if (ms % 3'600'000 == 0) return std::to_string(ms / 3'600'000) + "h";
  if (ms % 60'000 == 0) return std::to_string(ms / 60'000) + "m";
  if (ms % 1'000 == 0) return std::to_string(ms / 1'000) + "s";
  return std::to_string(ms) + "ms";
}

// Binary units only: the parser reads quantities through a double, and a power-of-two
// multiplier keeps every value it produced exact.
std::string bytesText(int64_t bytes) {
  static const std::pair<const char*, int> kUnits[] = {
      {"Ti", 40}, {"Gi", 30}, {"Mi", 20}, {"Ki", 10}};
  for (const auto& [unit, shift] : kUnits) {
    if (bytes % (int64_t{1} << shift) == 0) return std::to_string(bytes >> shift) + unit;
  }
  return std::to_string(bytes);
}

std::string cpuText(int64_t nano) {
  if (nano % 1'000'000 == 0) return std::to_string(nano / 1'000'000) + "m";
  std::string frac = std::to_string(nano % 1'000'000'000);
  frac.insert(0, 9 - frac.size(), '0');
  while (frac.back() == '0') frac.pop_back();
  return std::to_string(nano / 1'000'000'000) + "." + frac;
}

json::Json optionalList(const std::optional<std::vector<std::string>>& l) {
  return l ? json::Json(*l) : json::Json(nullptr);
}

json::Json healthCheckJson(const HealthCheck& h) {
  json::Json port = h.port_name.empty() ? json::Json(h.port) : json::Json(h.port_name);
  json::Json out = {{"interval", durationText(h.interval)},
                    {"timeout", durationText(h.timeout)},
                    {"startPeriod", durationText(h.start_period)},
                    {"retries", h.retries}};
  switch (h.kind) {
    case HealthCheck::Kind::kHttp:
      out["http"] = {{"path", h.http_path}, {"port", port}};
      break;
    case HealthCheck::Kind::kTcp:
      out["tcp"] = {{"port", port}};
      break;
    case HealthCheck::Kind::kExec:
      out["exec"] = {{"command", h.exec_command}};
      break;
  }
  return out;
}

// A constraint as written; one built in code without its text is written from its parts.
std::string constraintText(const PlacementConstraint& c) {
  if (!c.text.empty()) return c.text;
  return c.attribute + " " + std::string(constraintOpName(c.op)) + " " + c.value;
}

json::Json placementJson(const Placement& p) {
  json::Json constraints = json::Json::array();
  for (const auto& c : p.constraints) constraints.push_back(constraintText(c));
  json::Json affinity = json::Json::array();
  for (const auto& a : p.affinity) {
    affinity.push_back({{"label", a.label}, {"value", a.value}, {"weight", a.weight}});
  }
  return {{"scope", p.scope == Placement::Scope::kCluster ? "cluster" : "node"},
          {"mode", p.mode == Placement::Mode::kEveryNode ? "every-node" : "replicas"},
          {"nodes", p.nodes},
          {"labels", p.labels},
          {"constraints", constraints},
          {"strategy", p.strategy == Placement::Strategy::kBinpack ? "binpack" : "spread"},
          {"affinity", affinity}};
}

}  // namespace

std::string manifestToJson(const ServiceManifest& m) {
  // nlohmann's default object is a std::map, so keys come out sorted.
  json::Json env = json::Json::array();
  for (const auto& e : m.env) env.push_back({{"name", e.name}, {"value", e.value}});
  json::Json ports = json::Json::array();
  for (const auto& p : m.ports) {
    ports.push_back(
        {{"containerPort", p.isDynamic() ? json::Json(nullptr) : json::Json(p.container_port)},
         {"name", p.name.empty() ? json::Json(nullptr) : json::Json(p.name)},
         {"protocol", p.protocol}});
  }
  auto orNull = [](int64_t v, std::string text) {
    return v == 0 ? json::Json(nullptr) : json::Json(std::move(text));
  };
  bool on_demand = m.lifecycle.mode == Lifecycle::Mode::kOnDemand;
  json::Json spec = {
      {"image", m.image},
      {"entrypoint", optionalList(m.entrypoint)},
      {"command", optionalList(m.command)},
      {"env", env},
      {"ports", ports},
      {"resources",
       {{"cpu", orNull(m.resources.nano_cpus, cpuText(m.resources.nano_cpus))},
        {"memory", orNull(m.resources.memory_bytes, bytesText(m.resources.memory_bytes))},
        {"pids", m.resources.pids == 0 ? json::Json(nullptr) : json::Json(m.resources.pids)}}},
      {"replicas", m.replicas},
      {"restartPolicy", std::string(restartPolicyName(m.restart_policy))},
      {"healthCheck", m.health_check ? healthCheckJson(*m.health_check) : json::Json(nullptr)},
      {"lifecycle",
       {{"mode", on_demand ? "on-demand" : "always"},
        {"idleTimeout",
         on_demand ? json::Json(durationText(m.lifecycle.idle_timeout)) : json::Json(nullptr)}}},
      {"route",
       {{"basePath", m.route.base_path},
        {"scope", m.route.scope == Route::Scope::kGlobal ? "global" : "local"},
        {"retry",
         {{"attempts", m.route.retry.attempts},
          {"perTryTimeout", durationText(m.route.retry.per_try_timeout)},
          {"timeout", durationText(m.route.retry.timeout)},
          {"on", m.route.retry.on},
          {"nonIdempotent", m.route.retry.non_idempotent},
          {"backoff",
           {{"base", durationText(m.route.retry.backoff_base)},
            {"max", durationText(m.route.retry.backoff_max)}}}}},
        {"scopes", m.route.scopes}}},
      {"placement", placementJson(m.placement)},
      {"disconnect",
       {{"replace", m.disconnect.replace}, {"lostAfter", durationText(m.disconnect.lost_after)}}},
      {"update",
       {{"maxParallel", m.update.max_parallel},
        {"minHealthyTime", durationText(m.update.min_healthy_time)},
        {"healthyDeadline", durationText(m.update.healthy_deadline)},
        {"autoRevert", m.update.auto_revert}}},
  };
  json::Json doc = {{"apiVersion", "edge/v1"},
                    {"kind", "Service"},
                    {"metadata", {{"name", m.name}, {"labels", m.labels}}},
                    {"spec", spec}};
  return json::dump(doc);
}

runtime::ContainerSpec toContainerSpec(const ServiceManifest& m, int replica) {
  runtime::ContainerSpec spec;
  spec.name = m.name + "-" + std::to_string(replica);
  spec.image = m.image;
  spec.entrypoint = m.entrypoint;
  spec.cmd = m.command;
  for (const auto& e : m.env) spec.env.push_back(e.name + "=" + e.value);
  spec.labels = m.labels;
  spec.labels[runtime::kManagedLabel] = "true";
  spec.labels["io.edgecloud.service"] = m.name;
  spec.labels["io.edgecloud.replica"] = std::to_string(replica);
  spec.resources.memory_bytes = m.resources.memory_bytes;
  spec.resources.nano_cpus = m.resources.nano_cpus;
  spec.resources.pids_limit = m.resources.pids;
  return spec;
}

}  // namespace edge::orchestrator
