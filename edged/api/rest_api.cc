#include "edged/api/rest_api.h"

#include <httplib.h>
#include <unistd.h>

#include <algorithm>
#include <condition_variable>
#include <cstdio>
#include <deque>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <thread>

#include "common/crypto.h"
#include "common/http_server.h"
#include "common/http_status.h"
#include "common/log.h"
#include "edged/node.h"

namespace edge::edged {
namespace {

using http::ApiServer;
using nlohmann::json;
using runtime::ContainerState;

void sendJson(httplib::Response& res, int status, const json& body) {
  res.status = status;
  res.set_content(body.dump(-1, ' ', false, json::error_handler_t::replace) + "\n",
                  "application/json");
}

void sendError(httplib::Response& res, const Status& s) {
  sendJson(res, http::nodeApiHttpStatusFor(s.code()), json{{"message", s.message()}});
}

std::string timeText(WallTime t) {
  if (t.time_since_epoch().count() <= 0) return "";
  return formatRfc3339Nano(t);
}

bool flag(const httplib::Request& req, const char* name) {
  if (!req.has_param(name)) return false;
  std::string v = req.get_param_value(name);
  return v.empty() || v == "1" || v == "true" || v == "yes";
}

json fieldErrorsJson(const std::vector<orchestrator::FieldError>& errors) {
  json arr = json::array();
  for (const auto& e : errors)
    arr.push_back(json{{"doc", e.doc}, {"path", e.path}, {"message", e.message}});
  return arr;
}

json instanceJson(const orchestrator::InstanceStatus& i) {
  json ports = json::object();
  for (const auto& [k, v] : i.ports) ports[k] = v;
  return json{{"id", i.id},
              {"name", i.name},
              {"service", i.service},
              {"replica", i.replica},
              {"generation", i.generation},
              {"managed", true},
              {"image", i.image},
              {"state", std::string(runtime::containerStateName(i.state))},
              {"health", std::string(orchestrator::healthName(i.health))},
              {"ready", i.ready},
              {"restarts", i.restarts},
              {"exit_code", i.exit_code},
              {"ports", ports},
              {"started_at", timeText(i.started)},
              {"finished_at", timeText(i.finished)},
              {"message", i.message},
              {"crashloop", i.crashloop},
              {"next_restart_at", i.next_restart ? json(timeText(*i.next_restart)) : json()}};
}

json unmanagedJson(const runtime::ContainerInfo& c) {
  return json{{"id", c.id},
              {"name", c.name},
              {"service", ""},
              {"replica", 0},
              {"generation", 0},
              {"managed", false},
              {"image", c.image},
              {"state", std::string(runtime::containerStateName(c.state))},
              {"health", "none"},
              {"ready", c.state == ContainerState::kRunning},
              {"restarts", 0},
              {"exit_code", c.exit_code},
              {"ports", json::object()},
              {"started_at", timeText(c.started)},
              {"finished_at", timeText(c.finished)},
              {"message", c.error},
              {"crashloop", false},
              {"next_restart_at", nullptr}};
}

json manifestJson(const orchestrator::ServiceRecord& r) {
  json doc = json::parse(r.manifest_json, nullptr, false);
  return doc.is_discarded() ? json(r.manifest_json) : doc;
}

json serviceJson(NodeApi& node, const orchestrator::ServiceRecord& r) {
  json out{{"name", r.name},
           {"generation", r.generation},
           {"applied_at", timeText(r.applied_at)},
           {"manifest", manifestJson(r)}};
  auto st = node.serviceStatus(r.name);
  if (st && st->generation == r.generation) {
    out["state"] = st->state;
    out["message"] = st->message;
    out["replicas"] = json{{"desired", st->desired},
                           {"ready", st->ready},
                           {"running", st->running},
                           {"updated", st->updated}};
  } else {
    out["state"] = "pending";
    out["message"] = "waiting for the reconciler";
    out["replicas"] = json{{"desired", r.manifest.replicas},
                           {"ready", st ? st->ready : 0},
                           {"running", st ? st->running : 0},
                           {"updated", 0}};
  }
  json inst = json::array();
  for (const auto& i : node.instances())
    if (i.service == r.name) inst.push_back(instanceJson(i));
  out["instances"] = inst;
  return out;
}

std::string escapeLabel(const std::string& v) {
  std::string out;
  for (char c : v) {
    if (c == '\\' || c == '"') out += '\\';
    if (c == '\n') {
      out += "\\n";
      continue;
    }
    out += c;
  }
  return out;
}

int64_t residentBytes() {
  std::ifstream f("/proc/self/statm");
  int64_t size = 0, resident = 0;
  f >> size >> resident;
  return resident * ::sysconf(_SC_PAGESIZE);
}

int64_t unixSeconds(WallTime t) {
  return std::chrono::duration_cast<std::chrono::seconds>(t.time_since_epoch()).count();
}

// One series per cluster (a host on two links is in two), labelled by cluster and link.
template <typename Header>
void clusterMetrics(const discovery::ClusterSnapshot& snap, Header&& header, std::string& out) {
  auto labels = [](const discovery::ClusterView& c) {
    return "cluster=\"" + escapeLabel(c.cluster_id) + "\",interface=\"" + escapeLabel(c.interface) +
           "\"";
  };
  auto series = [&](const char* name, const char* help, const char* type, auto value) {
    header(name, help, type);
    for (const auto& c : snap.clusters)
      out += std::string(name) + "{" + labels(c) + "} " + std::to_string(value(c)) + "\n";
  };
  using View = discovery::ClusterView;
  series("edged_cluster_members", "Members of each cluster this node is in, itself included.",
         "gauge", [](const View& c) { return c.members.size(); });
  series("edged_cluster_is_supernode", "1 when this node is the cluster's supernode.", "gauge",
         [&](const View& c) { return c.supernode_id == snap.node_id ? 1 : 0; });
  series("edged_cluster_version", "Membership version of each cluster.", "gauge",
         [](const View& c) { return c.version; });
  series("edged_discovery_packets_sent_total", "Discovery datagrams sent on each link.", "counter",
         [](const View& c) { return c.counters.packets_sent; });
  series("edged_discovery_packets_received_total", "Discovery datagrams received on each link.",
         "counter", [](const View& c) { return c.counters.packets_received; });
  header("edged_discovery_dropped_total",
         "Discovery packets dropped: malformed, forged (bad signature or id) or from a "
         "blacklisted node.",
         "counter");
  for (const auto& c : snap.clusters) {
    const std::pair<const char*, int64_t> reasons[] = {
        {"malformed", c.counters.dropped_malformed},
        {"forged", c.counters.dropped_forged},
        {"blacklisted", c.counters.dropped_blacklisted}};
    for (const auto& [reason, n] : reasons)
      out += "edged_discovery_dropped_total{" + labels(c) + ",reason=\"" + reason + "\"} " +
             std::to_string(n) + "\n";
  }
}

}  // namespace

std::string metricsText(Node& node) {
  std::string out;
  auto gauge = [&](const std::string& name, const std::string& help, const std::string& type) {
    out += "# HELP " + name + " " + help + "\n# TYPE " + name + " " + type + "\n";
  };
  auto services = node.reconciler().services();
  auto instances = node.reconciler().instances();
  gauge("edged_services", "Services in the desired state.", "gauge");
  out += "edged_services " + std::to_string(services.size()) + "\n";
  gauge("edged_service_replicas_desired", "Replicas each service should have.", "gauge");
  for (const auto& s : services)
    out += "edged_service_replicas_desired{service=\"" + escapeLabel(s.name) + "\"} " +
           std::to_string(s.desired) + "\n";
  gauge("edged_service_replicas_ready", "Replicas of each service that are ready.", "gauge");
  for (const auto& s : services)
    out += "edged_service_replicas_ready{service=\"" + escapeLabel(s.name) + "\"} " +
           std::to_string(s.ready) + "\n";
  gauge("edged_instances", "Managed instances by state.", "gauge");
  std::map<std::string, int> by_state{{"created", 0}, {"running", 0}, {"exited", 0}};
  for (const auto& i : instances) by_state[std::string(runtime::containerStateName(i.state))]++;
  for (const auto& [k, v] : by_state)
    out += "edged_instances{state=\"" + k + "\"} " + std::to_string(v) + "\n";
  gauge("edged_instance_restarts_total", "Instance restarts since edged started.", "counter");
  out +=
      "edged_instance_restarts_total " + std::to_string(node.reconciler().restartsTotal()) + "\n";
  gauge("edged_reconcile_passes_total", "Reconciler passes since edged started.", "counter");
  out += "edged_reconcile_passes_total " + std::to_string(node.reconciler().passes()) + "\n";
  gauge("edged_api_requests_total", "Node API requests served.", "counter");
  out += "edged_api_requests_total " + std::to_string(node.requests()) + "\n";
  gauge("edged_api_request_errors_total", "Node API requests answered 4xx/5xx.", "counter");
  out += "edged_api_request_errors_total " + std::to_string(node.requestErrors()) + "\n";
  // A gauge, as etcd exposes its revision: the number survives restarts (it is the
  // store's), which a counter, reset at process start by convention, does not.
  gauge("edged_store_revision", "Revision of the desired-state store (changes committed).",
        "gauge");
  out += "edged_store_revision " + std::to_string(node.store().revision()) + "\n";
  gauge("edged_events_total", "Node events recorded.", "counter");
  out += "edged_events_total " + std::to_string(node.events().lastSeq()) + "\n";
  clusterMetrics(node.clusterSnapshot(), gauge, out);
  gauge("process_resident_memory_bytes", "Resident memory of edged.", "gauge");
  out += "process_resident_memory_bytes " + std::to_string(residentBytes()) + "\n";
  gauge("edged_start_time_seconds", "When edged started, Unix time.", "gauge");
  out += "edged_start_time_seconds " +
         std::to_string(
             std::chrono::duration_cast<std::chrono::seconds>(node.startedAt().time_since_epoch())
                 .count()) +
         "\n";
  if (NodeGateway* g = node.gateway()) g->renderMetrics(out);
  return out;
}

namespace {

// Streams the logs of several containers into one response: one reader thread per
// container feeds a queue the connection's thread writes from.
struct LogFanIn {
  std::mutex mu;
  std::condition_variable cv;
  std::deque<std::string> lines;
  int readers_left = 0;
  bool cancelled = false;
  size_t queued_bytes = 0;
};

void streamLogs(ApiServer& server, NodeApi& node, const httplib::Request& req,
                httplib::Response& res,
                std::vector<std::pair<std::string, std::string>> targets /* id, name */) {
  runtime::LogOptions opts;
  opts.follow = flag(req, "follow");
  opts.include_stdout = !req.has_param("stdout") || flag(req, "stdout");
  opts.include_stderr = !req.has_param("stderr") || flag(req, "stderr");
  if (req.has_param("tail") && req.get_param_value("tail") != "all") {
    try {
      opts.tail = static_cast<size_t>(std::stoull(req.get_param_value("tail")));
    } catch (...) {
      sendJson(res, 400,
               json{{"message", "tail: expected a number of lines or \"all\", got \"" +
                                    req.get_param_value("tail") + "\""}});
      return;
    }
  }
  bool timestamps = flag(req, "timestamps");
  bool prefix = targets.size() > 1;
  auto fan = std::make_shared<LogFanIn>();
  fan->readers_left = static_cast<int>(targets.size());
  res.status = 200;
  res.set_chunked_content_provider(
      "text/plain; charset=utf-8",
      [&server, &node, fan, targets, opts, timestamps, prefix](size_t, httplib::DataSink& sink) {
        std::vector<std::thread> readers;
        for (const auto& [id, name] : targets) {
          readers.emplace_back([&node, fan, id = id, name = name, opts, timestamps, prefix] {
            Status s = node.runtime().readLogs(id, opts, [&](const runtime::LogEntry& e) {
              std::string line;
              if (prefix) line += name + " | ";
              if (timestamps) line += formatRfc3339Nano(e.time) + " ";
              line += e.data;
              std::unique_lock<std::mutex> lock(fan->mu);
              // Back-pressure: a slow client slows the readers instead of growing memory.
              fan->cv.wait(lock, [&] { return fan->cancelled || fan->queued_bytes < (1 << 20); });
              if (fan->cancelled) return false;
              fan->queued_bytes += line.size();
              fan->lines.push_back(std::move(line));
              fan->cv.notify_all();
              return true;
            });
            std::lock_guard<std::mutex> lock(fan->mu);
            if (!s.isOk() && s.code() != StatusCode::kCancelled)
              fan->lines.push_back("edged: logs of " + name + " ended: " + s.message() + "\n");
            fan->readers_left--;
            fan->cv.notify_all();
          });
        }
        for (;;) {
          std::deque<std::string> batch;
          {
            std::unique_lock<std::mutex> lock(fan->mu);
            fan->cv.wait_for(lock, std::chrono::milliseconds(500),
                             [&] { return !fan->lines.empty() || fan->readers_left == 0; });
            batch.swap(fan->lines);
            fan->queued_bytes = 0;
            fan->cv.notify_all();
            if (batch.empty() && fan->readers_left == 0) break;
          }
          bool ok = sink.is_writable() && !server.stopping() && !ApiServer::clientGone();
          for (const auto& l : batch)
            if (ok && !sink.write(l.data(), l.size())) ok = false;
          if (!ok) {
            std::lock_guard<std::mutex> lock(fan->mu);
            fan->cancelled = true;
            fan->cv.notify_all();
            break;
          }
        }
        // Readers blocked in a quiet follow end at their next line or the container's
        // exit; they only hold the shared queue, not the connection.
        for (auto& t : readers) t.detach();
        sink.done();
        return true;
      });
}

std::vector<std::pair<std::string, std::string>> serviceLogTargets(NodeApi& node,
                                                                   const std::string& name) {
  std::vector<std::pair<std::string, std::string>> out;
  for (const auto& i : node.instances())
    if (i.service == name) out.emplace_back(i.id, i.name);
  return out;
}

void registerNode(ApiServer& server, NodeApi& node) {
  auto& s = server;
  auto healthz = [&node](const httplib::Request&, httplib::Response& res) {
    auto rev = node.services();
    auto info = node.runtime().info();
    if (!rev.isOk() || !info.isOk()) {
      sendJson(res, 503,
               json{{"status", "degraded"},
                    {"message", !rev.isOk() ? "store: " + rev.status().message()
                                            : "runtime: " + info.status().message()}});
      return;
    }
    sendJson(res, 200, json{{"status", "ok"}});
  };
  s.get("/healthz", healthz);
  s.get("/api/v1/healthz", healthz);
  auto metrics = [&node](const httplib::Request&, httplib::Response& res) {
    res.set_content(node.metricsText(), "text/plain; version=0.0.4; charset=utf-8");
  };
  s.get("/metrics", metrics);
  s.get("/api/v1/metrics", metrics);
  s.get("/api/v1/node", [&node](const httplib::Request&, httplib::Response& res) {
    auto info = node.runtime().info();
    if (!info.isOk()) return sendError(res, info.status());
    auto services = node.services();
    int total = 0, running = 0;
    for (const auto& i : node.instances()) {
      total++;
      if (i.state == ContainerState::kRunning) running++;
    }
    auto images = node.runtime().listImages();
    auto now = node.clock().wallNow();
    sendJson(
        res, 200,
        json{{"name", node.name()},
             {"id", node.id()},
             {"version", EDGE_VERSION},
             {"runtime",
              {{"kind", info->kind},
               {"version", info->version},
               {"api_version", info->api_version},
               {"cgroup_version", info->cgroup_version},
               {"isolation", info->isolation}}},
             {"os", info->os},
             {"kernel", info->kernel},
             {"data_dir", node.dataDir()},
             {"api_socket", node.apiSocket()},
             {"started_at", timeText(node.startedAt())},
             {"uptime_s",
              std::chrono::duration_cast<std::chrono::seconds>(now - node.startedAt()).count()},
             {"services", services.isOk() ? services->size() : 0},
             {"instances", {{"total", total}, {"running", running}}},
             {"containers", {{"total", info->containers}, {"running", info->containers_running}}},
             {"images", images.isOk() ? images->size() : 0},
             {"store_revision", node.storeRevision()}});
  });
}

void registerServices(ApiServer& server, NodeApi& node) {
  auto& s = server;
  s.post("/api/v1/services", [&node](const httplib::Request& req, httplib::Response& res) {
    bool dry = flag(req, "dryRun");
    auto result = node.apply(req.body, req.get_header_value("X-Edge-Manifest-Dir"), dry);
    if (!result.isOk()) return sendError(res, result.status());
    if (!result->errors.empty()) {
      std::string msg = std::to_string(result->errors.size()) +
                        " problem(s) in the manifests; nothing was applied";
      return sendJson(res, 400,
                      json{{"message", msg}, {"errors", fieldErrorsJson(result->errors)}});
    }
    json services = json::array();
    for (const auto& o : result->outcomes)
      services.push_back(json{{"name", o.name},
                              {"generation", o.generation},
                              {"action", std::string(orchestrator::applyActionName(o.action))}});
    sendJson(res, 200,
             json{{"dryRun", dry}, {"services", services}, {"warnings", result->warnings}});
  });
  s.get("/api/v1/services", [&node](const httplib::Request&, httplib::Response& res) {
    auto records = node.services();
    if (!records.isOk()) return sendError(res, records.status());
    json arr = json::array();
    for (const auto& r : *records) arr.push_back(serviceJson(node, r));
    sendJson(res, 200, json{{"services", arr}});
  });
  s.get("/api/v1/services/{name}",
        [&node](const httplib::Request&, httplib::Response& res, const http::PathParams& p) {
          auto r = node.service(std::string(p[0]));
          if (!r.isOk()) return sendError(res, r.status());
          sendJson(res, 200, serviceJson(node, *r));
        });
  s.del("/api/v1/services/{name}",
        [&node](const httplib::Request& req, httplib::Response& res, const http::PathParams& p) {
          std::string name = std::string(p[0]);
          auto gen = node.remove(name, flag(req, "dryRun"));
          if (!gen.isOk()) return sendError(res, gen.status());
          sendJson(res, 200,
                   json{{"name", name},
                        {"deleted", true},
                        {"generation", *gen},
                        {"dryRun", flag(req, "dryRun")}});
        });
  s.post("/api/v1/services/{name}/restart",
         [&node](const httplib::Request&, httplib::Response& res, const http::PathParams& p) {
           std::string name = std::string(p[0]);
           auto n = node.restart(name);
           if (!n.isOk()) return sendError(res, n.status());
           sendJson(res, 202, json{{"name", name}, {"restarting", *n}});
         });
  s.post("/api/v1/services/{name}/rollback",
         [&node](const httplib::Request& req, httplib::Response& res, const http::PathParams& p) {
           std::string name = std::string(p[0]);
           std::optional<int64_t> to;
           if (req.has_param("to")) {
             try {
               size_t used = 0;
               std::string v = req.get_param_value("to");
               to = std::stoll(v, &used);
               if (used != v.size() || *to < 1) throw std::invalid_argument(v);
             } catch (...) {
               return sendJson(
                   res, 400,
                   json{{"message", "to: expected a generation number (1, 2, ...), got \"" +
                                        req.get_param_value("to") + "\""}});
             }
           }
           auto before = node.service(name);
           if (!before.isOk()) return sendError(res, before.status());
           auto rec = node.rollback(name, to);
           if (!rec.isOk()) return sendError(res, rec.status());
           auto hist = node.history(name);
           int64_t source = to.value_or(0);
           if (!to && hist.isOk() && hist->size() >= 3) source = (*hist)[2].generation;
           sendJson(res, 200,
                    json{{"name", name},
                         {"generation", rec->generation},
                         {"from", before->generation},
                         {"to", source}});
         });
  s.get("/api/v1/services/{name}/history",
        [&node](const httplib::Request&, httplib::Response& res, const http::PathParams& p) {
          std::string name = std::string(p[0]);
          auto hist = node.history(name);
          if (!hist.isOk()) return sendError(res, hist.status());
          auto cur = node.service(name);
          int64_t current = cur.isOk() ? cur->generation : 0;
          json gens = json::array();
          for (const auto& r : *hist)
            gens.push_back(json{{"generation", r.generation},
                                {"applied_at", timeText(r.applied_at)},
                                {"current", r.generation == current},
                                {"manifest", manifestJson(r)}});
          sendJson(res, 200, json{{"name", name}, {"generations", gens}});
        });
  s.get("/api/v1/services/{name}/logs", [&server, &node](const httplib::Request& req,
                                                         httplib::Response& res,
                                                         const http::PathParams& p) {
    std::string name = std::string(p[0]);
    auto r = node.service(name);
    if (!r.isOk()) return sendError(res, r.status());
    auto targets = serviceLogTargets(node, name);
    if (targets.empty())
      return sendJson(res, 404, json{{"message", "service " + name + " has no instances yet"}});
    streamLogs(server, node, req, res, targets);
  });
}

void registerInstances(ApiServer& server, NodeApi& node) {
  auto& s = server;
  s.get("/api/v1/instances", [&node](const httplib::Request& req, httplib::Response& res) {
    std::string service = req.has_param("service") ? req.get_param_value("service") : "";
    json arr = json::array();
    for (const auto& i : node.instances())
      if (service.empty() || i.service == service) arr.push_back(instanceJson(i));
    if (service.empty()) {
      runtime::ListOptions lo;
      lo.all = true;
      auto all = node.runtime().listContainers(lo);
      if (!all.isOk()) return sendError(res, all.status());
      for (const auto& c : *all)
        if (c.labels.count(runtime::kManagedLabel) == 0) arr.push_back(unmanagedJson(c));
    }
    sendJson(res, 200, json{{"instances", arr}});
  });
  s.get("/api/v1/instances/{id}/logs",
        [&server, &node](const httplib::Request& req, httplib::Response& res,
                         const http::PathParams& p) {
          auto info = node.runtime().inspectContainer(std::string(p[0]));
          if (!info.isOk()) return sendError(res, info.status());
          streamLogs(server, node, req, res, {{info->id, info->name}});
        });
}

json imageJson(const runtime::ImageInfo& i, bool in_use) {
  return json{{"id", i.id},
              {"tags", i.tags},
              {"size", i.size_bytes},
              {"created", timeText(i.created)},
              {"architecture", i.architecture},
              {"in_use", in_use}};
}

void registerImages(ApiServer& server, NodeApi& node) {
  auto& s = server;
  s.get("/api/v1/images", [&node](const httplib::Request&, httplib::Response& res) {
    auto images = node.runtime().listImages();
    if (!images.isOk()) return sendError(res, images.status());
    runtime::ListOptions lo;
    auto containers = node.runtime().listContainers(lo);
    std::set<std::string> used;
    if (containers.isOk())
      for (const auto& c : *containers) used.insert(c.image_id);
    json arr = json::array();
    for (const auto& i : *images) arr.push_back(imageJson(i, used.count(i.id) != 0));
    sendJson(res, 200, json{{"images", arr}});
  });
  s.routeStreamed(
      "POST", "/api/v1/images/load",
      [&node](const httplib::Request&, httplib::Response& res, const http::PathParams&,
              const httplib::ContentReader& reader) {
        std::string dir = node.dataDir() + "/tmp";
        std::error_code ec;
        std::filesystem::create_directories(dir, ec);
        std::string path = dir + "/upload-" + crypto::randomHex(8) + ".tar";
        FILE* f = std::fopen(path.c_str(), "wbx");
        if (f == nullptr) return sendError(res, Status::fromErrno(errno, "cannot create " + path));
        bool write_ok = true;
        int64_t total = 0;
        bool read_ok = reader([&](const char* data, size_t len) {
          total += static_cast<int64_t>(len);
          if (std::fwrite(data, 1, len, f) != len) write_ok = false;
          return write_ok;
        });
        if (std::fclose(f) != 0) write_ok = false;
        auto cleanup = [&] { std::filesystem::remove(path, ec); };
        if (!write_ok) {
          cleanup();
          return sendJson(res, 507,
                          json{{"message", "cannot store the upload in " + dir + " (disk full?)"}});
        }
        if (!read_ok) {
          cleanup();
          return sendJson(res, 400,
                          json{{"message", "the upload ended early after " + std::to_string(total) +
                                               " bytes"}});
        }
        auto loaded = node.runtime().loadImage(path);
        cleanup();
        if (!loaded.isOk()) return sendError(res, loaded.status());
        json arr = json::array();
        for (const auto& i : *loaded) {
          arr.push_back(imageJson(i, false));
          node.events().append("image.loaded", "", "", i.tags.empty() ? i.id : i.tags.front());
        }
        node.wakeReconciler();
        sendJson(res, 200, json{{"images", arr}});
      });
  s.del("/api/v1/images/{ref...}",
        [&node](const httplib::Request& req, httplib::Response& res, const http::PathParams& p) {
          std::string ref = std::string(p[0]);
          auto info = node.runtime().inspectImage(ref);
          if (!info.isOk()) return sendError(res, info.status());
          Status st = node.runtime().removeImage(ref, flag(req, "force"));
          if (!st.isOk()) return sendError(res, st);
          node.events().append("image.removed", "", "", ref);
          sendJson(res, 200, json{{"deleted", info->id}});
        });
}

json eventJson(const orchestrator::NodeEvent& e) {
  json j{{"seq", e.seq},         {"time", timeText(e.time)}, {"type", e.type},
         {"service", e.service}, {"instance", e.instance},   {"message", e.message}};
  if (!e.node.empty()) j["node"] = e.node;
  return j;
}

void registerEvents(ApiServer& server, NodeApi& node) {
  server.get("/api/v1/events",
             [&server, &node](const httplib::Request& req, httplib::Response& res) {
               int64_t since = 0;
               if (req.has_param("since")) {
                 try {
                   since = std::stoll(req.get_param_value("since"));
                 } catch (...) {
                   return sendJson(res, 400,
                                   json{{"message", "since: expected an event number, got \"" +
                                                        req.get_param_value("since") + "\""}});
                 }
               }
               std::string service = req.has_param("service") ? req.get_param_value("service") : "";
               if (!flag(req, "follow")) {
                 std::string body;
                 for (const auto& e : node.events().since(since, service))
                   body += eventJson(e).dump() + "\n";
                 res.set_content(body, "application/x-ndjson");
                 return;
               }
               res.set_chunked_content_provider(
                   "application/x-ndjson",
                   [&server, &node, since, service](size_t, httplib::DataSink& sink) mutable {
                     for (;;) {
                       // Every event up to `seen` is delivered (or filtered out) below; waiting for
                       // one after the last delivered (not after lastSeq() read afterwards) keeps
                       // an event appended in between from waiting out the 500 ms.
                       int64_t seen = node.events().lastSeq();
                       for (const auto& e : node.events().since(since, service)) {
                         std::string line = eventJson(e).dump() + "\n";
                         if (!sink.write(line.data(), line.size())) return false;
                         since = e.seq;
                       }
                       since = std::max(since, seen);
                       if (server.stopping() || !sink.is_writable()) break;
                       node.events().waitFor(since, std::chrono::milliseconds(500));
                     }
                     sink.done();
                     return true;
                   });
             });
}

void registerCluster(ApiServer& server, NodeApi& node) {
  auto& s = server;
  s.get("/api/v1/routes", [&node](const httplib::Request&, httplib::Response& res) {
    sendJson(res, 200, {{"node", node.id()}, {"routes", node.gatewayRoutes()}});
  });
  s.get("/api/v1/cluster", [&node](const httplib::Request&, httplib::Response& res) {
    json j = discovery::snapshotToJson(node.clusterSnapshot(), unixSeconds(node.clock().wallNow()));
    j["backend"] = node.backendState();
    sendJson(res, 200, j);
  });
  s.get("/api/v1/nodes", [&node](const httplib::Request& req, httplib::Response& res) {
    std::string scope = req.get_param_value("scope");
    // Beyond the links, the backend knows: account scope when one is configured (it sees
    // every network of the account), proximity always (only it holds locations).
    if (scope == "proximity" || (scope == "account" && node.backendConfigured())) {
      std::string query;
      for (const auto& [k, v] : req.params)
        query += (query.empty() ? "" : "&") + http::urlEncode(k) + "=" + http::urlEncode(v);
      auto answer = node.queryNodes(query);
      if (!answer.isOk()) return sendError(res, answer.status());
      return sendJson(res, 200, *answer);
    }
    discovery::NodesQuery q;
    if (req.has_param("scope")) q.scope = req.get_param_value("scope");
    if (req.has_param("interface")) q.interface = req.get_param_value("interface");
    if (req.has_param("account")) q.account = req.get_param_value("account");
    auto answer =
        discovery::nodesToJson(node.clusterSnapshot(), q, unixSeconds(node.clock().wallNow()));
    if (!answer.isOk()) return sendError(res, answer.status());
    sendJson(res, 200, *answer);
  });
}

}  // namespace

// Calls another node's API through a peer channel (docs/relay.md): directly when it is
// reachable, else through the backend's relays.
void registerPeers(ApiServer& server, NodeApi& node) {
  auto isNodeId = [](std::string_view v) { return v.size() == 16 && http::isLowerHex(v); };
  auto& s = server;
  s.get("/api/v1/peers/{node}", [&node](const httplib::Request&, httplib::Response& res,
                                        const http::PathParams& p) {
     auto r = node.peerRoute(std::string(p[0]));
     if (!r.isOk()) return sendError(res, r.status());
     sendJson(res, 200, *r);
   }).where("node", isNodeId);
  auto proxy = [&node](const httplib::Request& req, httplib::Response& res,
                       const http::PathParams& p) {
    http::Request out;
    out.method = req.method;
    out.path = p[1].empty() ? "/" : std::string(p[1]);
    std::string query;
    for (const auto& [k, v] : req.params)
      query += (query.empty() ? "?" : "&") + http::urlEncode(k) + "=" + http::urlEncode(v);
    out.path += query;
    out.body = req.body;
    out.content_type = req.get_header_value("Content-Type");
    auto r = node.callPeer(std::string(p[0]), out);
    if (!r.isOk()) return sendError(res, r.status());
    res.status = r->status;
    std::string path = r->header("X-Edge-Peer-Path");
    if (!path.empty()) res.set_header("X-Edge-Peer-Path", path);
    std::string type = r->header("Content-Type");
    res.set_content(r->body, type.empty() ? "application/octet-stream" : type);
  };
  for (const char* method : {"GET", "POST", "PUT", "DELETE"})
    s.route(method, "/api/v1/peers/{node}/proxy{*path}", proxy).where("node", isNodeId);
}

void registerRestApi(ApiServer& server, NodeApi& node) {
  server.allowStreamedBody([](const std::string& method, const std::string& path) {
    return method == "POST" && path == "/api/v1/images/load";
  });
  registerNode(server, node);
  registerServices(server, node);
  registerInstances(server, node);
  registerImages(server, node);
  registerEvents(server, node);
  registerCluster(server, node);
  registerPeers(server, node);
  server.raw().set_logger([&node](const httplib::Request& req, const httplib::Response& res) {
    node.countRequest(res.status >= 400);
    LOG_DEBUG("api request").kv("method", req.method).kv("path", req.path).kv("status", res.status);
  });
}

}  // namespace edge::edged
