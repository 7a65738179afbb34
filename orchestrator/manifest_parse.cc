// YAML nodes -> ServiceManifest: one parse* function per part of a spec, each reading its
// fields through the document's Checker (which reports type and range errors with the
// field path) and applying that part's own rules; cross-field rules are in
// manifest_check.cc. The entry points are in manifest.cc.
//
// Thread-safety: free functions; the Checker and the manifest are the caller's.
#include <algorithm>
#include <charconv>
#include <cmath>
#include <string>
#include <vector>

#include "orchestrator/manifest_internal.h"

namespace edge::orchestrator {

const std::vector<std::string>& retryConditions() {
  static const std::vector<std::string> kConditions = {"502",   "503",    "504", "connect-failure",
                                                       "reset", "timeout"};
  return kConditions;
}

namespace manifest_internal {

std::optional<int64_t> parseCpu(std::string_view s) {
  bool milli = !s.empty() && s.back() == 'm';
  if (milli) s.remove_suffix(1);
  if (s.empty() || s.size() > 32) return std::nullopt;
  if (!std::all_of(s.begin(), s.end(), [](char c) { return (c >= '0' && c <= '9') || c == '.'; }))
    return std::nullopt;
  double v = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || end != s.data() + s.size() || !std::isfinite(v)) return std::nullopt;
  double nano = milli ? v * 1e6 : v * 1e9;
  if (nano > 1e13) return std::nullopt;  // 10000 CPUs
  return static_cast<int64_t>(std::llround(nano));
}

namespace {

constexpr int64_t kMinMemory = 6 << 20;

void parseResources(Checker& c, const YAML::Node& n, const std::string& path, ResourceLimits* r) {
  auto f = c.object(n, path, {"cpu", "memory", "pids"});
  if (!f) return;
  if (auto v = f->get("cpu")) {
    std::string p = path + ".cpu";
    if (auto s = c.string(*v, p)) {
      auto nano = parseCpu(*s);
      if (!nano) {
        c.error(p, quote(*s) + " is not a CPU quantity; use e.g. 0.5, 2 or 500m");
      } else if (*nano <= 0) {
        c.error(p, quote(*s) + " must be more than 0");
      } else {
        r->nano_cpus = *nano;
      }
    }
  }
  if (auto v = f->get("memory")) {
    std::string p = path + ".memory";
    if (auto s = c.string(*v, p)) {
      auto bytes = parseBytes(*s);
      if (!bytes.isOk()) {
        c.error(p, quote(*s) + " is not a quantity; use 64Mi, 1Gi, ...");
      } else if (*bytes < kMinMemory) {
        c.error(p, quote(*s) + " is below the minimum of 6Mi");
      } else {
        r->memory_bytes = *bytes;
      }
    }
  }
  if (auto v = f->get("pids")) {
    if (auto i = c.integer(*v, path + ".pids", 1, 4'194'304)) r->pids = *i;
  }
}

void parseEnv(Checker& c, const YAML::Node& n, const std::string& path, std::vector<EnvVar>* env) {
  std::set<std::string> seen;
  auto add = [&](const std::string& p, const std::string& name, const std::string& value) {
    if (!isEnvName(name)) {
      c.error(p, quote(name) + " is not a variable name; use letters, digits and '_'");
    } else if (!seen.insert(name).second) {
      c.error(p, quote(name) + " is set twice");
    } else {
      env->push_back({name, value});
    }
  };
  if (n.IsMap()) {
    for (const auto& kv : n) {
      if (!kv.first.IsScalar()) {
        c.error(path, "keys must be strings, got " + describe(kv.first));
        continue;
      }
      std::string p = Checker::join(path, kv.first.Scalar());
      if (auto v = c.string(kv.second, p)) add(p, kv.first.Scalar(), *v);
    }
  } else if (n.IsSequence()) {
    size_t i = 0;
    for (const auto& item : n) {
      std::string p = Checker::index(path, i++);
      auto f = c.object(item, p, {"name", "value"});
      if (!f) continue;
      auto name = f->get("name");
      if (!name) {
        c.error(p + ".name", "missing required field");
        continue;
      }
      auto ns = c.string(*name, p + ".name");
      std::optional<std::string> vs = "";
      if (auto v = f->get("value")) vs = c.string(*v, p + ".value");
      if (ns && vs) add(p + ".name", *ns, *vs);
    }
  } else {
    c.error(path, "expected a mapping or a list of {name, value}, got " + describe(n));
  }
}

void parsePorts(Checker& c, const YAML::Node& n, const std::string& path,
                std::vector<PortSpec>* ports) {
  if (!n.IsSequence()) {
    c.error(path, "expected a list of ports, got " + describe(n));
    return;
  }
  std::set<std::pair<int, std::string>> seen;
  std::set<std::string> names;
  size_t i = 0;
  for (const auto& item : n) {
    std::string p = Checker::index(path, i++);
    auto f = c.object(item, p, {"containerPort", "protocol", "name"});
    if (!f) continue;
    PortSpec port;
    bool ok = true;
    if (auto v = f->get("containerPort")) {
      auto cp = c.integer(*v, p + ".containerPort", 1, 65535);
      ok = ok && cp.has_value();
      if (cp) port.container_port = static_cast<int>(*cp);
    }
    if (auto v = f->get("protocol")) {
      auto proto = c.oneOf(*v, p + ".protocol", {"tcp", "udp"});
      ok = ok && proto.has_value();
      if (proto) port.protocol = *proto;
    }
    if (auto v = f->get("name")) {
      auto name = c.string(*v, p + ".name");
      if (name && !isDnsLabel(*name)) {
        c.error(p + ".name", quote(*name) + " is not a valid port name; use [a-z0-9-]");
        name.reset();
      } else if (name && !names.insert(*name).second) {
        c.error(p + ".name", quote(*name) + " is used by another port");
        name.reset();
      }
      ok = ok && name.has_value();
      if (name) port.name = *name;
    }
    if (!ok) continue;
    if (port.isDynamic() && port.name.empty()) {
      c.error(p,
              "a port without containerPort is dynamic (the node gives each instance a free "
              "host port, in $PORT_<NAME>) and needs a name; add one, or set containerPort "
              "for a fixed port");
      continue;
    }
    if (!port.isDynamic() && !seen.emplace(port.container_port, port.protocol).second) {
      c.error(p, "port " + std::to_string(port.container_port) + "/" + port.protocol +
                     " is listed twice");
      continue;
    }
    ports->push_back(port);
  }
}

std::optional<HealthCheck> parseHealthCheck(Checker& c, const YAML::Node& n,
                                            const std::string& path) {
  auto f =
      c.object(n, path, {"http", "tcp", "exec", "interval", "timeout", "startPeriod", "retries"});
  if (!f) return std::nullopt;
  HealthCheck h;
  int probes = 0;
  // http and tcp probes both need a port: a number, or the name of a declared port
  // (checked against spec.ports in checkPortReferences).
  auto readPort = [&](const auto& g, const std::string& p) {
    auto po = g->get("port");
    if (!po) {
      c.error(p + ".port", "missing required field");
    } else if (!po->IsScalar()) {
      c.error(p + ".port", "expected a port number or a port name, got " + describe(*po));
    } else if (isDigits(po->Scalar())) {
      if (auto i = c.integer(*po, p + ".port", 1, 65535)) h.port = static_cast<int>(*i);
    } else if (isDnsLabel(po->Scalar())) {
      h.port_name = po->Scalar();
    } else {
      c.error(p + ".port", quote(po->Scalar()) +
                               " is neither a port number (1..65535) nor a port name ([a-z0-9-])");
    }
  };
  if (auto v = f->get("http")) {
    ++probes;
    h.kind = HealthCheck::Kind::kHttp;
    std::string p = path + ".http";
    if (auto g = c.object(*v, p, {"path", "port"})) {
      if (auto pa = g->get("path")) {
        if (auto s = c.string(*pa, p + ".path")) {
          if (s->empty() || s->front() != '/') {
            c.error(p + ".path", quote(*s) + " must start with '/'");
          } else {
            h.http_path = *s;
          }
        }
      } else {
        h.http_path = "/";
      }
      readPort(g, p);
    }
  }
  if (auto v = f->get("tcp")) {
    ++probes;
    h.kind = HealthCheck::Kind::kTcp;
    std::string p = path + ".tcp";
    if (auto g = c.object(*v, p, {"port"})) {
      readPort(g, p);
    }
  }
  if (auto v = f->get("exec")) {
    ++probes;
    h.kind = HealthCheck::Kind::kExec;
    std::string p = path + ".exec";
    if (auto g = c.object(*v, p, {"command"})) {
      if (auto cmd = g->get("command")) {
        if (auto l = c.stringList(*cmd, p + ".command")) {
          if (l->empty()) {
            c.error(p + ".command", "must not be empty");
          } else {
            h.exec_command = *l;
          }
        }
      } else {
        c.error(p + ".command", "missing required field");
      }
    }
  }
  if (probes != 1) {
    c.error(path, "give exactly one of http, tcp, exec (got " + std::to_string(probes) + ")");
  }
  if (auto v = f->get("interval")) {
    if (auto d = c.duration(*v, path + ".interval", false)) h.interval = *d;
  }
  if (auto v = f->get("timeout")) {
    if (auto d = c.duration(*v, path + ".timeout", false)) h.timeout = *d;
  }
  if (auto v = f->get("startPeriod")) {
    if (auto d = c.duration(*v, path + ".startPeriod", true)) h.start_period = *d;
  }
  if (auto v = f->get("retries")) {
    if (auto i = c.integer(*v, path + ".retries", 1, 100)) h.retries = static_cast<int>(*i);
  }
  if (h.timeout > h.interval) {
    c.error(path + ".timeout", std::to_string(h.timeout.count()) +
                                   "ms is longer than the interval (" +
                                   std::to_string(h.interval.count()) + "ms); make it shorter");
  }
  return h;
}

void parseLifecycle(Checker& c, const YAML::Node& n, const std::string& path, Lifecycle* l) {
  auto f = c.object(n, path, {"mode", "idleTimeout"});
  if (!f) return;
  if (auto v = f->get("mode")) {
    if (auto m = c.oneOf(*v, path + ".mode", {"always", "on-demand"})) {
      l->mode = *m == "on-demand" ? Lifecycle::Mode::kOnDemand : Lifecycle::Mode::kAlways;
    }
  }
  if (auto v = f->get("idleTimeout")) {
    if (l->mode != Lifecycle::Mode::kOnDemand) {
      c.error(path + ".idleTimeout", "only allowed with mode: on-demand");
    } else if (auto d = c.duration(*v, path + ".idleTimeout", false)) {
      l->idle_timeout = *d;
    }
  }
}

void parseRoute(Checker& c, const YAML::Node& n, const std::string& path, Route* r) {
  auto f = c.object(n, path, {"basePath", "scope", "retry", "scopes"});
  if (!f) return;
  if (auto v = f->get("basePath")) {
    if (auto s = c.string(*v, path + ".basePath")) {
      if (s->empty() || s->front() != '/' || hasControlOrSpace(*s)) {
        c.error(path + ".basePath", quote(*s) + " must start with '/' and contain no spaces");
      } else {
        r->base_path = *s;
      }
    }
  }
  if (auto v = f->get("scope")) {
    if (auto s = c.oneOf(*v, path + ".scope", {"local", "global"})) {
      r->scope = *s == "global" ? Route::Scope::kGlobal : Route::Scope::kLocal;
    }
  }
  if (auto v = f->get("retry")) {
    std::string p = path + ".retry";
    if (auto g = c.object(
            *v, p, {"attempts", "perTryTimeout", "timeout", "on", "nonIdempotent", "backoff"})) {
      if (auto a = g->get("attempts")) {
        if (auto i = c.integer(*a, p + ".attempts", 0, 10))
          r->retry.attempts = static_cast<int>(*i);
      }
      if (auto t = g->get("perTryTimeout")) {
        if (auto d = c.duration(*t, p + ".perTryTimeout", false)) r->retry.per_try_timeout = *d;
      }
      if (auto t = g->get("timeout")) {
        if (auto d = c.duration(*t, p + ".timeout", false)) r->retry.timeout = *d;
      }
      if (auto o = g->get("on")) {
        if (auto l = c.stringList(*o, p + ".on")) {
          std::vector<std::string> on;
          for (size_t i = 0; i < l->size(); ++i) {
            const auto& allowed = retryConditions();
            if (std::find(allowed.begin(), allowed.end(), (*l)[i]) == allowed.end()) {
              c.error(Checker::index(p + ".on", i),
                      quote((*l)[i]) +
                          " is not a retry condition; allowed: connect-failure, "
                          "reset, timeout, 502, 503, 504");
            } else if (std::find(on.begin(), on.end(), (*l)[i]) == on.end()) {
              on.push_back((*l)[i]);
            }
          }
          std::sort(on.begin(), on.end());
          r->retry.on = std::move(on);
        }
      }
      if (auto b = g->get("nonIdempotent")) {
        if (auto m = c.oneOf(*b, p + ".nonIdempotent", {"true", "false"}))
          r->retry.non_idempotent = *m == "true";
      }
      if (auto b = g->get("backoff")) {
        std::string bp = p + ".backoff";
        if (auto h = c.object(*b, bp, {"base", "max"})) {
          if (auto t = h->get("base")) {
            if (auto d = c.duration(*t, bp + ".base", true)) r->retry.backoff_base = *d;
          }
          if (auto t = h->get("max")) {
            if (auto d = c.duration(*t, bp + ".max", true)) r->retry.backoff_max = *d;
          }
        }
      }
      if (r->retry.per_try_timeout > r->retry.timeout) {
        c.error(p + ".perTryTimeout", std::to_string(r->retry.per_try_timeout.count()) +
                                          "ms is longer than the call's timeout (" +
                                          std::to_string(r->retry.timeout.count()) +
                                          "ms); make it shorter or raise timeout");
      }
      if (r->retry.backoff_base > r->retry.backoff_max) {
        c.error(p + ".backoff.base", "is longer than backoff.max; make it shorter");
      }
    }
  }
  if (auto v = f->get("scopes")) {
    if (auto l = c.stringList(*v, path + ".scopes")) {
      for (size_t i = 0; i < l->size(); ++i) {
        if ((*l)[i].empty() || hasControlOrSpace((*l)[i])) {
          c.error(Checker::index(path + ".scopes", i),
                  quote((*l)[i]) + " is not a token scope; use a non-empty word without spaces");
        } else {
          r->scopes.push_back((*l)[i]);
        }
      }
    }
  }
}

void parseSpec(Checker& c, const YAML::Node& n, ServiceManifest* m) {
  const std::string path = "spec";
  auto f = c.object(
      n, path,
      {"image", "entrypoint", "command", "env", "ports", "resources", "replicas", "restartPolicy",
       "healthCheck", "lifecycle", "route", "placement", "disconnect", "update"});
  if (!f) return;
  if (auto v = f->get("image")) {
    if (auto s = c.string(*v, "spec.image")) {
      if (s->empty() || s->size() > 1024 || hasControlOrSpace(*s)) {
        c.error("spec.image", quote(*s) +
                                  " is not an image; use a reference (busybox:1) or a path to "
                                  "a .tar file, without spaces");
      } else {
        m->image = *s;
        m->image_is_tarball = s->size() > 4 && s->ends_with(".tar");
        if (!m->image_is_tarball) {
          if (auto problem = imageReferenceProblem(*s)) {
            c.error("spec.image", quote(*s) + " is not a valid image reference: " + *problem +
                                      "; use e.g. busybox:1.36, registry.local:5000/team/app:1.4 "
                                      "or app@sha256:<64 hex digits>, or a path ending in .tar");
          }
        }
      }
    }
  } else {
    c.error("spec.image", "missing required field");
  }
  if (auto v = f->get("entrypoint")) m->entrypoint = c.stringList(*v, "spec.entrypoint");
  if (auto v = f->get("command")) m->command = c.stringList(*v, "spec.command");
  if (auto v = f->get("env")) parseEnv(c, *v, "spec.env", &m->env);
  size_t before_ports = c.errorCount();
  if (auto v = f->get("ports")) parsePorts(c, *v, "spec.ports", &m->ports);
  bool ports_ok = c.errorCount() == before_ports;
  if (auto v = f->get("resources")) parseResources(c, *v, "spec.resources", &m->resources);
  if (auto v = f->get("replicas")) {
    if (auto i = c.integer(*v, "spec.replicas", 0, 1000)) m->replicas = static_cast<int>(*i);
  }
  if (auto v = f->get("restartPolicy")) {
    if (auto s = c.oneOf(*v, "spec.restartPolicy", {"always", "on-failure", "never"})) {
      m->restart_policy = *s == "never"        ? RestartPolicy::kNever
                          : *s == "on-failure" ? RestartPolicy::kOnFailure
                                               : RestartPolicy::kAlways;
    }
  }
  if (auto v = f->get("healthCheck")) m->health_check = parseHealthCheck(c, *v, "spec.healthCheck");
  if (auto v = f->get("lifecycle")) parseLifecycle(c, *v, "spec.lifecycle", &m->lifecycle);
  if (auto v = f->get("route")) parseRoute(c, *v, "spec.route", &m->route);
  size_t before_placement = c.errorCount();
  if (auto v = f->get("placement")) parsePlacement(c, *v, "spec.placement", &m->placement);
  bool placement_ok = c.errorCount() == before_placement;
  if (auto v = f->get("disconnect")) parseDisconnect(c, *v, "spec.disconnect", &m->disconnect);
  if (auto v = f->get("update")) parseUpdate(c, *v, "spec.update", &m->update);
  // With a broken port list, reference errors would only repeat the same mistake.
  if (ports_ok) checkPortReferences(c, m, placement_ok);
}

}  // namespace

std::optional<ServiceManifest> parseDocument(Checker& c, const YAML::Node& doc) {
  if (!doc.IsMap()) {
    c.error("",
            "expected a mapping with apiVersion, kind, metadata and spec, got " + describe(doc));
    return std::nullopt;
  }
  auto f = c.object(doc, "", {"apiVersion", "kind", "metadata", "spec"});
  if (!f) return std::nullopt;
  ServiceManifest m;
  if (auto v = f->get("apiVersion")) {
    c.oneOf(*v, "apiVersion", {"edge/v1"});
  } else {
    c.error("apiVersion", "missing required field; use edge/v1");
  }
  if (auto v = f->get("kind")) {
    c.oneOf(*v, "kind", {"Service"});
  } else {
    c.error("kind", "missing required field; use Service");
  }
  if (auto v = f->get("metadata")) {
    if (auto md = c.object(*v, "metadata", {"name", "labels"})) {
      if (auto n = md->get("name")) {
        if (auto s = c.string(*n, "metadata.name")) {
          if (!isDnsLabel(*s)) {
            c.error("metadata.name",
                    quote(*s) +
                        " is not a valid name; use 1-63 lower-case letters, digits and '-', "
                        "starting and ending with a letter or digit");
          } else {
            m.name = *s;
          }
        }
      } else {
        c.error("metadata.name", "missing required field");
      }
      if (auto l = md->get("labels")) m.labels = c.labels(*l, "metadata.labels");
    }
  } else {
    c.error("metadata", "missing required field");
  }
  if (auto v = f->get("spec")) {
    parseSpec(c, *v, &m);
  } else {
    c.error("spec", "missing required field");
  }
  if (m.route.base_path.empty() && !m.name.empty()) m.route.base_path = "/" + m.name;
  return m;
}

}  // namespace manifest_internal
}  // namespace edge::orchestrator
