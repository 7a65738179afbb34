#include "cli/commands.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <iterator>
#include <sstream>

#include "cli/cluster.h"
#include "cli/errors.h"
#include "cli/progress.h"
#include "common/fs.h"

#ifndef EDGE_VERSION
#define EDGE_VERSION "0.0.0"
#endif

namespace edge::cli {

const char* clientVersion() {
  return EDGE_VERSION;
}

int Context::fail(const Status& s) const {
  *err << formatErrorForUser(s) << std::flush;
  return exitCodeFor(s);
}

int Context::usage(const std::string& message) const {
  *err << "edgectl: " << message << "\n" << std::flush;
  return kExitUsage;
}

namespace {

using json::Json;

const Json& listOf(const Json& answer, std::string_view key) {
  static const Json kEmpty = Json::array();
  const Json& l = at(answer, key);
  return l.is_array() ? l : kEmpty;
}

std::string seg(const std::string& s) {
  return http::urlEncode(s);
}

// Prints a document in -o json|yaml; returns false in table mode (the caller renders).
bool printDocument(const Context& ctx, const Json& j) {
  if (ctx.format == OutputFormat::kTable) return false;
  *ctx.out << renderDocument(j, ctx.format) << std::flush;
  return true;
}

void printTable(const Context& ctx, const Table& t) {
  *ctx.out << t.render() << std::flush;
}

// "2026-11-27T14:03:07.123Z" -> "2026-11-27T14:03:07Z": the fraction is noise on screen.
std::string shortTime(const std::string& t) {
  size_t dot = t.find('.');
  if (dot == std::string::npos) return t.empty() ? "-" : t;
  size_t end = t.find_first_not_of("0123456789", dot + 1);
  return t.substr(0, dot) + (end == std::string::npos ? "" : t.substr(end));
}

std::string dash(std::string s) {
  return s.empty() ? "-" : s;
}

// Stream splitter for NDJSON answers: chunks in, whole lines out.
class Lines {
 public:
  template <typename F>
  void feed(std::string_view chunk, F&& each) {
    buf_.append(chunk);
    size_t start = 0;
    for (size_t nl; (nl = buf_.find('\n', start)) != std::string::npos; start = nl + 1) {
      std::string_view line(buf_.data() + start, nl - start);
      if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
      if (!line.empty()) each(line);
    }
    buf_.erase(0, start);
  }
  template <typename F>
  void finish(F&& each) {
    if (!buf_.empty()) each(std::string_view(buf_));
    buf_.clear();
  }

 private:
  std::string buf_;
};

// ---- services -------------------------------------------------------------------------

std::string readyText(const Json& svc) {
  const Json& r = at(svc, "replicas");
  return std::to_string(intField(r, "ready")) + "/" + std::to_string(intField(r, "desired"));
}

Table serviceTable(const Context& ctx, const std::vector<const Json*>& services) {
  Table t({"NAME", "GEN", "STATE", "READY", "AGE", "IMAGE"});
  WallTime now = ctx.clock->wallNow();
  for (const Json* s : services) {
    t.addRow({field(*s, "name"), field(*s, "generation", "-"), dash(field(*s, "state")),
              readyText(*s), formatAgeSince(field(*s, "applied_at"), now),
              dash(field(at(*s, "manifest.spec"), "image"))});
  }
  return t;
}

std::string instanceState(const Json& i) {
  std::string state = dash(field(i, "state"));
  if (state == "exited" && at(i, "exit_code").is_number_integer()) {
    state += " (" + std::to_string(intField(i, "exit_code")) + ")";
  }
  return state;
}

std::string portsText(const Json& i) {
  const Json& p = at(i, "ports");
  if (!p.is_object() || p.empty()) return "-";
  std::string out;
  for (auto it = p.begin(); it != p.end(); ++it) {
    if (!out.empty()) out += ",";
    out += it.key() + ":" + (it->is_string() ? it->get<std::string>() : json::dump(*it));
  }
  return out;
}

Table instanceTable(const Context& ctx, const std::vector<const Json*>& instances,
                    bool with_service) {
  std::vector<std::string> h = {"NAME",     "SERVICE", "STATE", "READY", "HEALTH",
                                "RESTARTS", "AGE",     "IMAGE", "PORTS"};
  if (!with_service) h.erase(h.begin() + 1);
  Table t(h);
  WallTime now = ctx.clock->wallNow();
  for (const Json* i : instances) {
    std::string ready =
        at(*i, "ready").is_boolean() ? (at(*i, "ready").get<bool>() ? "yes" : "no") : "-";
    std::vector<std::string> row = {field(*i, "name"),
                                    dash(field(*i, "service")),
                                    instanceState(*i),
                                    ready,
                                    dash(field(*i, "health")),
                                    field(*i, "restarts", "0"),
                                    formatAgeSince(field(*i, "started_at"), now),
                                    dash(field(*i, "image")),
                                    portsText(*i)};
    if (!with_service) row.erase(row.begin() + 1);
    t.addRow(std::move(row));
  }
  return t;
}

std::string shortId(std::string id) {
  if (id.starts_with("sha256:")) id = id.substr(7);
  return id.substr(0, 12);
}

Table imageTable(const Context& ctx, const std::vector<const Json*>& images) {
  Table t({"IMAGE", "ID", "SIZE", "AGE", "IN USE"});
  WallTime now = ctx.clock->wallNow();
  for (const Json* i : images) {
    std::vector<std::string> tags;
    for (const auto& tag : listOf(*i, "tags")) {
      if (tag.is_string()) tags.push_back(tag.get<std::string>());
    }
    if (tags.empty()) tags.push_back("<none>");
    const Json& in_use = at(*i, "in_use");
    for (const auto& tag : tags) {
      t.addRow({tag, shortId(field(*i, "id")), formatBytes(intField(*i, "size")),
                formatAgeSince(field(*i, "created"), now),
                in_use.is_boolean() ? (in_use.get<bool>() ? "yes" : "no") : "-"});
    }
  }
  return t;
}

std::vector<const Json*> pointers(const Json& list) {
  std::vector<const Json*> out;
  for (const auto& e : list) out.push_back(&e);
  return out;
}

// Names one per line (-q listings; also handy in shell loops).
int printNames(const Context& ctx, const std::vector<const Json*>& items, bool images) {
  for (const Json* i : items) {
    if (!images) {
      *ctx.out << field(*i, "name") << "\n";
      continue;
    }
    bool any = false;
    for (const auto& tag : listOf(*i, "tags")) {
      if (!tag.is_string()) continue;
      *ctx.out << tag.get<std::string>() << "\n";
      any = true;
    }
    if (!any) *ctx.out << field(*i, "id") << "\n";
  }
  *ctx.out << std::flush;
  return kExitOk;
}

bool matchesImage(const Json& img, const std::string& ref) {
  for (const auto& tag : listOf(img, "tags")) {
    if (!tag.is_string()) continue;
    const auto& t = tag.get_ref<const std::string&>();
    if (t == ref || t == ref + ":latest") return true;
  }
  std::string id = field(img, "id");
  std::string want = ref.starts_with("sha256:") ? ref : "sha256:" + ref;
  if (!id.starts_with("sha256:")) id = "sha256:" + id;
  // An id prefix as `docker` accepts it; 4 hex digits is already rarely ambiguous.
  return ref.size() >= 4 && id.starts_with(want);
}

int getServices(const Context& ctx, const std::string& name) {
  if (!name.empty()) {
    Result<Json> s = ctx.node->get("/api/v1/services/" + seg(name));
    if (!s.isOk()) return ctx.fail(s.status());
    if (printDocument(ctx, *s)) return kExitOk;
    if (ctx.quiet) return printNames(ctx, {&*s}, false);
    printTable(ctx, serviceTable(ctx, {&*s}));
    return kExitOk;
  }
  Result<Json> l = ctx.node->get("/api/v1/services");
  if (!l.isOk()) return ctx.fail(l.status());
  if (printDocument(ctx, *l)) return kExitOk;
  auto items = pointers(listOf(*l, "services"));
  if (ctx.quiet) return printNames(ctx, items, false);
  if (items.empty()) {
    *ctx.err << "No services.\n" << std::flush;
    return kExitOk;
  }
  printTable(ctx, serviceTable(ctx, items));
  return kExitOk;
}

int getInstances(const Context& ctx, const std::string& name) {
  Result<Json> l = ctx.node->get("/api/v1/instances");
  if (!l.isOk()) return ctx.fail(l.status());
  const Json& all = listOf(*l, "instances");
  if (name.empty()) {
    if (printDocument(ctx, *l)) return kExitOk;
    auto items = pointers(all);
    if (ctx.quiet) return printNames(ctx, items, false);
    if (items.empty()) {
      *ctx.err << "No instances.\n" << std::flush;
      return kExitOk;
    }
    printTable(ctx, instanceTable(ctx, items, true));
    return kExitOk;
  }
  // One instance by name or id; failing that, the instances of the service so named.
  for (const auto& i : all) {
    if (field(i, "name") == name || field(i, "id") == name) {
      if (printDocument(ctx, i)) return kExitOk;
      if (ctx.quiet) return printNames(ctx, {&i}, false);
      printTable(ctx, instanceTable(ctx, {&i}, true));
      return kExitOk;
    }
  }
  Json matched = Json::array();
  for (const auto& i : all) {
    if (field(i, "service") == name) matched.push_back(i);
  }
  if (matched.empty()) {
    return ctx.fail(Status::notFound("no instance or service named '" + name + "'"));
  }
  if (printDocument(ctx, Json{{"instances", matched}})) return kExitOk;
  if (ctx.quiet) return printNames(ctx, pointers(matched), false);
  printTable(ctx, instanceTable(ctx, pointers(matched), true));
  return kExitOk;
}

int getImages(const Context& ctx, const std::string& ref) {
  Result<Json> l = ctx.node->get("/api/v1/images");
  if (!l.isOk()) return ctx.fail(l.status());
  const Json& all = listOf(*l, "images");
  if (ref.empty()) {
    if (printDocument(ctx, *l)) return kExitOk;
    auto items = pointers(all);
    if (ctx.quiet) return printNames(ctx, items, true);
    if (items.empty()) {
      *ctx.err << "No images.\n" << std::flush;
      return kExitOk;
    }
    printTable(ctx, imageTable(ctx, items));
    return kExitOk;
  }
  for (const auto& i : all) {
    if (!matchesImage(i, ref)) continue;
    if (printDocument(ctx, i)) return kExitOk;
    if (ctx.quiet) return printNames(ctx, {&i}, true);
    printTable(ctx, imageTable(ctx, {&i}));
    return kExitOk;
  }
  return ctx.fail(Status::notFound("no image '" + ref + "' on the node"));
}

// ---- apply ----------------------------------------------------------------------------

struct Manifest {
  std::string label;  // how errors name the file
  std::string dir;    // absolute, for relative image paths
  std::string text;
};

Result<Manifest> readManifest(const Context& ctx, const std::string& file) {
  Manifest m;
  std::error_code ec;
  if (file == "-") {
    m.label = "<stdin>";
    m.text.assign(std::istreambuf_iterator<char>(*ctx.in), std::istreambuf_iterator<char>());
    m.dir = std::filesystem::current_path(ec).string();
  } else {
    m.label = file;
    if (fs::isDirectory(file)) {
      return Status::invalidArgument("cannot read manifest " + file +
                                     ": it is a directory; give the file(s) with -f");
    }
    // The node refuses manifests over 1 MiB; reading a bit more lets it say so.
    Result<std::string> text = fs::readFile(file, 8 << 20);
    if (!text.isOk()) {
      return Status::invalidArgument("cannot read manifest " + file + ": " +
                                     text.status().message());
    }
    m.text = std::move(*text);
    m.dir = std::filesystem::absolute(file, ec).parent_path().lexically_normal().string();
  }
  if (ec) return Status::invalidArgument("cannot resolve the directory of " + file);
  if (m.dir.size() > 1 && m.dir.back() == '/') m.dir.pop_back();
  return m;
}

Result<Json> postManifest(const Context& ctx, const Manifest& m, bool dry_run) {
  size_t first = m.text.find_first_not_of(" \t\r\n");
  bool is_json = first != std::string::npos && (m.text[first] == '{' || m.text[first] == '[');
  Call c{.method = "POST",
         .path = std::string("/api/v1/services") + (dry_run ? "?dryRun=1" : ""),
         .body = m.text,
         .content_type = is_json ? "application/json" : "application/yaml",
         .error_label = m.label};
  c.headers.emplace("X-Edge-Manifest-Dir", m.dir);
  Result<Json> r = ctx.node->call(c);
  if (!r.isOk() && r.status().code() == StatusCode::kResourceExhausted) {
    // The node's message names its limit; the file and its size are ours to add.
    return Status(r.status().code(), "manifest " + m.label + " is too large for the node (" +
                                         formatBytes(static_cast<int64_t>(m.text.size())) +
                                         "): " + r.status().message());
  }
  return r;
}

}  // namespace

int cmdApply(const Context& ctx, const ApplyArgs& args) {
  if (args.files.empty()) return ctx.usage("apply needs at least one -f FILE");
  std::vector<Manifest> manifests;
  for (const auto& f : args.files) {
    Result<Manifest> m = readManifest(ctx, f);
    if (!m.isOk()) return ctx.usage(m.status().message());
    manifests.push_back(std::move(*m));
  }
  // Several files: check them all first, so one bad file leaves the node untouched (the
  // node's own all-or-nothing covers one request only).
  if (manifests.size() > 1 && !args.dry_run) {
    int code = kExitOk;
    for (const auto& m : manifests) {
      Result<Json> r = postManifest(ctx, m, true);
      if (!r.isOk()) {
        int c = ctx.fail(r.status());
        if (code == kExitOk) code = c;
      }
    }
    if (code != kExitOk) return code;
  }
  Json all = Json::array();
  bool dry = args.dry_run;
  for (const auto& m : manifests) {
    Result<Json> r = postManifest(ctx, m, args.dry_run);
    if (!r.isOk()) return ctx.fail(r.status());
    if (at(*r, "dryRun").is_boolean()) dry = at(*r, "dryRun").get<bool>();
    for (const auto& s : listOf(*r, "services")) all.push_back(s);
  }
  if (printDocument(ctx, Json{{"dryRun", dry}, {"services", all}})) return kExitOk;
  if (ctx.quiet) return kExitOk;
  for (const auto& s : all) {
    *ctx.out << "service/" << field(s, "name") << " " << dash(field(s, "action")) << " (generation "
             << field(s, "generation", "?") << ")" << (dry ? " (dry run)" : "") << "\n";
  }
  *ctx.out << std::flush;
  return kExitOk;
}

int cmdGet(const Context& ctx, const std::string& type, const std::string& name) {
  if (type == "services" || type == "service" || type == "svc") return getServices(ctx, name);
  if (type == "instances" || type == "instance" || type == "inst") {
    return getInstances(ctx, name);
  }
  if (type == "images" || type == "image" || type == "img") return getImages(ctx, name);
  return ctx.usage("get: unknown resource type '" + type +
                   "'; use services (svc), instances (inst) or images (img)");
}

// ---- status / version -----------------------------------------------------------------

int cmdStatus(const Context& ctx) {
  Result<Json> n = ctx.node->get("/api/v1/node");
  if (!n.isOk()) return ctx.fail(n.status());
  if (printDocument(ctx, *n)) return kExitOk;
  const Json& rt = at(*n, "runtime");
  std::string runtime = dash(field(rt, "kind"));
  std::vector<std::string> details;
  if (!field(rt, "version").empty()) runtime += " " + field(rt, "version");
  if (!field(rt, "api_version").empty()) details.push_back("API " + field(rt, "api_version"));
  if (!field(rt, "cgroup_version").empty()) {
    details.push_back("cgroup v" + field(rt, "cgroup_version"));
  }
  if (!field(rt, "isolation").empty()) details.push_back(field(rt, "isolation"));
  for (size_t i = 0; i < details.size(); ++i) runtime += (i ? ", " : " (") + details[i];
  if (!details.empty()) runtime += ")";
  const Json& inst = at(*n, "instances");
  std::string started = field(*n, "started_at");
  Table t({"", ""});
  t.addRow({"Node:", dash(field(*n, "name"))});
  t.addRow({"Version:", dash(field(*n, "version"))});
  t.addRow({"Runtime:", runtime});
  t.addRow({"Data dir:", dash(field(*n, "data_dir"))});
  t.addRow({"API socket:", dash(field(*n, "api_socket"))});
  t.addRow({"Started:",
            shortTime(started) + " (up " + formatAgeSince(started, ctx.clock->wallNow()) + ")"});
  t.addRow({"Services:", field(*n, "services", "0")});
  t.addRow(
      {"Instances:", field(inst, "total", "0") + " (" + field(inst, "running", "0") + " running)"});
  t.addRow({"Images:", field(*n, "images", "0")});
  *ctx.out << t.render(false) << std::flush;
  return kExitOk;
}

int cmdVersion(const Context& ctx, bool client_only) {
  Json out{{"client", {{"version", clientVersion()}}}};
  Status node_error;
  if (!client_only) {
    Result<Json> n = ctx.node->get("/api/v1/node");
    if (n.isOk()) {
      out["node"] = {{"version", at(*n, "version")}, {"name", at(*n, "name")}};
    } else {
      node_error = n.status();
    }
  }
  if (!printDocument(ctx, out)) {
    *ctx.out << "Client: edgectl " << clientVersion() << "\n";
    if (out.contains("node")) {
      *ctx.out << "Node:   edged " << field(out["node"], "version", "?") << " ("
               << field(out["node"], "name", "?") << ")\n";
    }
    *ctx.out << std::flush;
  }
  return node_error.isOk() ? kExitOk : ctx.fail(node_error);
}

// ---- describe -------------------------------------------------------------------------

std::string manifestPorts(const json::Json& spec) {
  std::string out;
  bool first = true;
  for (const auto& p : listOf(spec, "ports")) {
    if (!out.empty()) out += ", ";
    std::string name = field(p, "name");
    std::string protocol = field(p, "protocol", "tcp");
    if (!field(p, "containerPort").empty()) {
      out += (name.empty() ? "" : name + " ") + field(p, "containerPort") + "/" + protocol;
    } else {
      // Dynamic (docs/manifest.md): each instance gets its own free host port, told in
      // $PORT (the first port) and $PORT_<NAME>; the instances table shows which.
      std::string vars = first ? "$PORT" : "";
      if (!name.empty()) {
        std::string env = "PORT_";
        for (char c : name) env += c == '-' ? '_' : static_cast<char>(std::toupper(c));
        vars += (vars.empty() ? "$" : " and $") + env;
      }
      out += (name.empty() ? "" : name + " ") + "dynamic/" + protocol +
             " (a host port per instance" + (vars.empty() ? "" : ", in " + vars) + ")";
    }
    first = false;
  }
  return dash(out);
}

namespace {

std::string joinStrings(const Json& list, const std::string& sep = " ") {
  std::string out;
  if (!list.is_array()) return out;
  for (const auto& v : list) {
    if (!out.empty()) out += sep;
    out += v.is_string() ? v.get<std::string>() : json::dump(v);
  }
  return out;
}

std::string manifestResources(const Json& spec) {
  const Json& r = at(spec, "resources");
  std::vector<std::string> parts;
  if (!field(r, "cpu").empty()) parts.push_back("cpu " + field(r, "cpu"));
  if (!field(r, "memory").empty()) parts.push_back("memory " + field(r, "memory"));
  if (!field(r, "pids").empty()) parts.push_back("pids " + field(r, "pids"));
  std::string out;
  for (const auto& p : parts) out += (out.empty() ? "" : ", ") + p;
  return out.empty() ? "unlimited" : out;
}

std::string healthText(const Json& spec) {
  const Json& h = at(spec, "healthCheck");
  if (!h.is_object()) return "none";
  if (h.contains("http")) {
    return "http GET :" + field(at(h, "http"), "port", "?") + field(at(h, "http"), "path", "/");
  }
  if (h.contains("tcp")) return "tcp :" + field(at(h, "tcp"), "port", "?");
  if (h.contains("exec")) return "exec " + joinStrings(at(h, "exec.command"));
  return "none";
}

Json readEvents(const Context& ctx, const std::string& service, Status* error) {
  Json events = Json::array();
  Lines lines;
  auto each = [&](std::string_view l) {
    Result<Json> e = json::parse(l, "event");
    if (e.isOk()) events.push_back(std::move(*e));
  };
  *error = ctx.node->stream("/api/v1/events?service=" + seg(service), false,
                            [&](std::string_view chunk) {
                              lines.feed(chunk, each);
                              return true;
                            });
  lines.finish(each);
  return events;
}

int describeInstance(const Context& ctx, const Json& i) {
  if (printDocument(ctx, i)) return kExitOk;
  WallTime now = ctx.clock->wallNow();
  Table t({"", ""});
  t.addRow({"Name:", field(i, "name")});
  t.addRow({"ID:", dash(field(i, "id"))});
  t.addRow({"Service:", dash(field(i, "service")) +
                            (at(i, "managed").is_boolean() && !at(i, "managed").get<bool>()
                                 ? " (not managed by edged)"
                                 : "")});
  t.addRow(
      {"Replica:", field(i, "replica", "-") + " (generation " + field(i, "generation", "-") + ")"});
  t.addRow({"Image:", dash(field(i, "image"))});
  t.addRow({"State:", instanceState(i)});
  t.addRow({"Health:", dash(field(i, "health"))});
  t.addRow({"Ready:", field(i, "ready", "-")});
  t.addRow({"Restarts:", field(i, "restarts", "0")});
  t.addRow({"Ports:", portsText(i)});
  t.addRow({"Started:", shortTime(field(i, "started_at")) + " (" +
                            formatAgeSince(field(i, "started_at"), now) + " ago)"});
  if (!field(i, "finished_at").empty()) t.addRow({"Finished:", shortTime(field(i, "finished_at"))});
  if (!field(i, "next_restart_at").empty()) {
    t.addRow({"Next restart:", shortTime(field(i, "next_restart_at"))});
  }
  if (!field(i, "message").empty()) t.addRow({"Message:", field(i, "message")});
  *ctx.out << t.render(false) << std::flush;
  return kExitOk;
}

}  // namespace

int cmdDescribe(const Context& ctx, const std::string& name) {
  Result<Json> svc = ctx.node->get("/api/v1/services/" + seg(name));
  if (!svc.isOk() && svc.status().code() == StatusCode::kNotFound) {
    Result<Json> l = ctx.node->get("/api/v1/instances");
    if (!l.isOk()) return ctx.fail(l.status());
    for (const auto& i : listOf(*l, "instances")) {
      if (field(i, "name") == name || field(i, "id") == name) return describeInstance(ctx, i);
    }
    return ctx.fail(Status::notFound("no service or instance named '" + name + "'"));
  }
  if (!svc.isOk()) return ctx.fail(svc.status());
  // History and events complete the picture; without them the service is still shown.
  Result<Json> history = ctx.node->get("/api/v1/services/" + seg(name) + "/history");
  Status events_error;
  Json events = readEvents(ctx, name, &events_error);
  constexpr size_t kRecentEvents = 10;
  if (events.size() > kRecentEvents) {
    events.erase(events.begin(), events.end() - kRecentEvents);
  }
  if (ctx.format != OutputFormat::kTable) {
    Json doc{{"service", *svc},
             {"history", history.isOk() ? listOf(*history, "generations") : Json()},
             {"events", events}};
    return printDocument(ctx, doc) ? kExitOk : kExitError;
  }
  const Json& s = *svc;
  const Json& spec = at(s, "manifest.spec");
  WallTime now = ctx.clock->wallNow();
  const Json& rep = at(s, "replicas");
  Table t({"", ""});
  t.addRow({"Name:", field(s, "name")});
  t.addRow({"Generation:", field(s, "generation", "-")});
  t.addRow({"Applied:", shortTime(field(s, "applied_at")) + " (" +
                            formatAgeSince(field(s, "applied_at"), now) + " ago)"});
  t.addRow({"State:", dash(field(s, "state"))});
  if (!field(s, "message").empty()) t.addRow({"Message:", field(s, "message")});
  t.addRow({"Replicas:", field(rep, "desired", "0") + " desired, " + field(rep, "ready", "0") +
                             " ready, " + field(rep, "running", "0") + " running, " +
                             field(rep, "updated", "0") + " updated"});
  t.addRow({"Image:", dash(field(spec, "image"))});
  std::string cmd = joinStrings(at(spec, "entrypoint"));
  std::string args = joinStrings(at(spec, "command"));
  if (!args.empty()) cmd += (cmd.empty() ? "" : " ") + args;
  t.addRow({"Command:", cmd.empty() ? "(the image's)" : cmd});
  t.addRow({"Ports:", manifestPorts(spec)});
  t.addRow({"Resources:", manifestResources(spec)});
  t.addRow({"Restart policy:", field(spec, "restartPolicy", "always")});
  t.addRow({"Health check:", healthText(spec)});
  t.addRow({"Lifecycle:", field(at(spec, "lifecycle"), "mode", "always")});
  const Json& route = at(spec, "route");
  t.addRow({"Route:", field(route, "basePath", "/" + field(s, "name")) + " (" +
                          field(route, "scope", "local") + ")"});
  *ctx.out << t.render(false) << "\nInstances:\n";
  auto instances = pointers(listOf(s, "instances"));
  if (instances.empty()) {
    *ctx.out << "  (none)\n";
  } else {
    std::istringstream rows(instanceTable(ctx, instances, false).render());
    for (std::string l; std::getline(rows, l);) *ctx.out << "  " << l << "\n";
  }
  *ctx.out << "\nHistory:\n";
  if (!history.isOk()) {
    *ctx.out << "  (unavailable: " << history.status().message() << ")\n";
  } else {
    Table h({"GEN", "APPLIED", "IMAGE", "CURRENT"});
    for (const auto& g : listOf(*history, "generations")) {
      bool current = at(g, "current").is_boolean() && at(g, "current").get<bool>();
      h.addRow({field(g, "generation", "-"), formatAgeSince(field(g, "applied_at"), now) + " ago",
                dash(field(at(g, "manifest.spec"), "image")), current ? "*" : ""});
    }
    std::istringstream rows(h.render());
    for (std::string l; std::getline(rows, l);) *ctx.out << "  " << l << "\n";
  }
  *ctx.out << "\nEvents:\n";
  if (!events_error.isOk()) {
    *ctx.out << "  (unavailable: " << events_error.message() << ")\n";
  } else if (events.empty()) {
    *ctx.out << "  (none)\n";
  } else {
    Table e({"AGE", "TYPE", "INSTANCE", "MESSAGE"});
    for (const auto& ev : events) {
      e.addRow({formatAgeSince(field(ev, "time"), now), field(ev, "type"),
                dash(field(ev, "instance")), field(ev, "message")});
    }
    std::istringstream rows(e.render());
    for (std::string l; std::getline(rows, l);) *ctx.out << "  " << l << "\n";
  }
  *ctx.out << std::flush;
  return kExitOk;
}

// ---- logs / events --------------------------------------------------------------------

int cmdLogs(const Context& ctx, const LogsArgs& args) {
  std::string query = "?stdout=1&stderr=1";
  if (args.follow) query += "&follow=1";
  if (args.tail >= 0) query += "&tail=" + std::to_string(args.tail);
  if (args.timestamps) query += "&timestamps=1";
  auto sink = [&](std::string_view chunk) {
    ctx.out->write(chunk.data(), static_cast<std::streamsize>(chunk.size()));
    ctx.out->flush();
    // A closed stdout (`edgectl logs -f x | head`) ends the stream quietly.
    return ctx.out->good();
  };
  Status s =
      ctx.node->stream("/api/v1/services/" + seg(args.name) + "/logs" + query, args.follow, sink);
  if (s.code() == StatusCode::kNotFound) {
    s = ctx.node->stream("/api/v1/instances/" + seg(args.name) + "/logs" + query, args.follow,
                         sink);
    if (s.code() == StatusCode::kNotFound) {
      s = Status::notFound("no service or instance named '" + args.name + "'");
    }
  }
  return s.isOk() ? kExitOk : ctx.fail(s);
}

namespace {

// Column widths for a followed event stream, where the widest cell is not known ahead.
constexpr size_t kEventWidths[] = {20, 19, 14, 18};

void printEventRow(const Context& ctx, const std::vector<std::string>& cells) {
  std::string l;
  for (size_t i = 0; i < cells.size(); ++i) {
    l += cells[i];
    if (i + 1 < cells.size()) {
      size_t w = i < std::size(kEventWidths) ? kEventWidths[i] : 0;
      l.append(cells[i].size() < w ? w - cells[i].size() + 3 : 3, ' ');
    }
  }
  while (!l.empty() && l.back() == ' ') l.pop_back();
  *ctx.out << l << "\n" << std::flush;
}

std::vector<std::string> eventCells(const Json& e) {
  // Cluster events concern another node, named after the message so the columns stay.
  std::string message = field(e, "message");
  if (!field(e, "node").empty()) message += " (node " + field(e, "node") + ")";
  return {shortTime(field(e, "time")), field(e, "type"), dash(field(e, "service")),
          dash(field(e, "instance")), message};
}

}  // namespace

int cmdEvents(const Context& ctx, bool follow, const std::string& service) {
  std::string query;
  if (follow) query += "follow=1";
  if (!service.empty())
    query += (query.empty() ? "" : "&") + std::string("service=") + seg(service);
  Table table({"TIME", "TYPE", "SERVICE", "INSTANCE", "MESSAGE"});
  bool header_done = false;
  Lines lines;
  auto each = [&](std::string_view line) {
    Result<Json> e = json::parse(line, "event");
    if (ctx.format == OutputFormat::kJson) {
      // One event per line (NDJSON) even here: a stream is read line by line.
      *ctx.out << (e.isOk() ? json::dump(*e) : std::string(line)) << "\n" << std::flush;
      return;
    }
    if (!e.isOk()) return;
    if (ctx.format == OutputFormat::kYaml) {
      *ctx.out << "---\n" << toYaml(*e) << std::flush;
      return;
    }
    if (!follow) {
      table.addRow(eventCells(*e));
      return;
    }
    if (!header_done && !ctx.quiet)
      printEventRow(ctx, {"TIME", "TYPE", "SERVICE", "INSTANCE", "MESSAGE"});
    header_done = true;
    printEventRow(ctx, eventCells(*e));
  };
  Status s = ctx.node->stream("/api/v1/events" + (query.empty() ? "" : "?" + query), follow,
                              [&](std::string_view chunk) {
                                lines.feed(chunk, each);
                                return ctx.out->good();
                              });
  lines.finish(each);
  if (!s.isOk()) return ctx.fail(s);
  if (ctx.format == OutputFormat::kTable && !follow && table.rows() > 0) {
    *ctx.out << table.render(!ctx.quiet) << std::flush;
  }
  return kExitOk;
}

// ---- mutations ------------------------------------------------------------------------

int cmdDelete(const Context& ctx, const std::string& name, bool dry_run) {
  Result<Json> r = ctx.node->call(
      {.method = "DELETE", .path = "/api/v1/services/" + seg(name) + (dry_run ? "?dryRun=1" : "")});
  if (!r.isOk()) return ctx.fail(r.status());
  if (printDocument(ctx, *r) || ctx.quiet) return kExitOk;
  *ctx.out << "service/" << field(*r, "name", name) << " deleted (generation "
           << field(*r, "generation", "?") << ")" << (dry_run ? " (dry run)" : "") << "\n"
           << std::flush;
  return kExitOk;
}

int cmdRestart(const Context& ctx, const std::string& name) {
  Result<Json> r =
      ctx.node->call({.method = "POST", .path = "/api/v1/services/" + seg(name) + "/restart"});
  if (!r.isOk()) return ctx.fail(r.status());
  if (printDocument(ctx, *r) || ctx.quiet) return kExitOk;
  int64_t n = intField(*r, "restarting");
  *ctx.out << "service/" << field(*r, "name", name) << " restarting (" << n
           << (n == 1 ? " instance" : " instances") << ")\n"
           << std::flush;
  return kExitOk;
}

int cmdRollback(const Context& ctx, const std::string& name, std::optional<int64_t> to) {
  std::string path = "/api/v1/services/" + seg(name) + "/rollback";
  if (to) path += "?to=" + std::to_string(*to);
  Result<Json> r = ctx.node->call({.method = "POST", .path = path});
  if (!r.isOk()) return ctx.fail(r.status());
  if (printDocument(ctx, *r) || ctx.quiet) return kExitOk;
  *ctx.out << "service/" << field(*r, "name", name) << " rolled back to generation "
           << field(*r, "to", "?") << " (now generation " << field(*r, "generation", "?") << ")\n"
           << std::flush;
  return kExitOk;
}

int cmdImagesLoad(const Context& ctx, const std::string& file) {
  fs::UniqueFd fd;
  int64_t total = 0;
  if (file == "-") {
    fd.reset(::dup(STDIN_FILENO));
  } else {
    fd.reset(::open(file.c_str(), O_RDONLY | O_CLOEXEC));
    if (!fd.valid()) {
      return ctx.usage("cannot read image " + file + ": " + std::strerror(errno));
    }
  }
  struct stat st {};
  if (::fstat(fd.get(), &st) == 0) {
    if (S_ISDIR(st.st_mode)) {
      return ctx.usage("cannot read image " + file + ": it is a directory; give a .tar file");
    }
    if (S_ISREG(st.st_mode)) total = st.st_size;
  }
  std::optional<ProgressMeter> meter;
  if (ctx.stderr_tty && !ctx.quiet) meter.emplace(total, ctx.clock);
  auto source = [&](char* buf, size_t cap) -> Result<size_t> {
    for (;;) {
      ssize_t n = ::read(fd.get(), buf, cap);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) return Status::fromErrno(errno, "reading " + file);
      if (meter) {
        if (auto l = meter->add(n)) *ctx.err << *l << std::flush;
      }
      return static_cast<size_t>(n);
    }
  };
  Result<Json> r = ctx.node->upload("/api/v1/images/load", "application/x-tar", source);
  if (meter) *ctx.err << meter->finish() << std::flush;
  if (!r.isOk() && r.status().code() == StatusCode::kResourceExhausted) {
    return ctx.fail(Status(r.status().code(), "image " + file + " is too large for the node: " +
                                                  r.status().message()));
  }
  if (!r.isOk()) return ctx.fail(r.status());
  if (printDocument(ctx, *r) || ctx.quiet) return kExitOk;
  for (const auto& img : listOf(*r, "images")) {
    bool tagged = false;
    for (const auto& t : listOf(img, "tags")) {
      if (!t.is_string()) continue;
      *ctx.out << "Loaded image: " << t.get<std::string>() << "\n";
      tagged = true;
    }
    if (!tagged) *ctx.out << "Loaded image ID: " << field(img, "id") << "\n";
  }
  *ctx.out << std::flush;
  return kExitOk;
}

int cmdImagesRm(const Context& ctx, const std::string& ref, bool force) {
  Result<Json> r = ctx.node->call(
      {.method = "DELETE",
       .path = "/api/v1/images/" + http::urlEncode(ref, ":/@") + (force ? "?force=1" : "")});
  if (!r.isOk()) return ctx.fail(r.status());
  if (printDocument(ctx, *r) || ctx.quiet) return kExitOk;
  *ctx.out << "Deleted: " << field(*r, "deleted", ref) << "\n" << std::flush;
  return kExitOk;
}

// ---- discovery ------------------------------------------------------------------------

int cmdCall(const Context& ctx, const CallArgs& args) {
  if (args.path.empty() || args.path[0] != '/')
    return ctx.usage("PATH must start with '/', e.g. /api/v1/node");
  http::Request req;
  req.method = args.method;
  req.path = "/api/v1/peers/" + seg(args.node) + "/proxy" + args.path;
  if (!args.data.empty()) {
    if (args.data == "@-") {
      std::ostringstream in;
      in << std::cin.rdbuf();
      req.body = in.str();
    } else if (args.data[0] == '@') {
      auto text = fs::readFile(args.data.substr(1));
      if (!text.isOk()) return ctx.fail(text.status());
      req.body = *text;
    } else {
      req.body = args.data;
    }
    req.content_type = "application/json";
  }
  auto r = ctx.node->send(req);
  if (!r.isOk()) return ctx.fail(r.status());
  std::string via = r->header("X-Edge-Peer-Path");
  if (!r->isSuccess()) {
    std::string msg = r->body;
    auto j = json::parse(r->body, "answer");
    if (j.isOk() && j->is_object() && j->contains("message")) msg = field(*j, "message");
    if (r->status == 413) {
      // This node or the target refused the body for its size; either way it is the input.
      *ctx.err << "edgectl: the request body ("
               << formatBytes(static_cast<int64_t>(req.body.size())) << ") is too large: " << msg
               << "\n"
               << std::flush;
      return kExitInvalid;
    }
    *ctx.err << "edgectl: node " << args.node << " answered " << r->status << ": " << msg << "\n"
             << std::flush;
    return r->status == 404 ? kExitNotFound : kExitError;
  }
  if (!ctx.quiet && !via.empty()) *ctx.err << "(via " << via << ")\n";
  *ctx.out << r->body;
  if (!r->body.empty() && r->body.back() != '\n') *ctx.out << "\n";
  *ctx.out << std::flush;
  return kExitOk;
}

int cmdNodes(const Context& ctx, const NodesArgs& args) {
  std::string scope =
      args.scope.empty() ? (args.account.empty() ? "network" : "account") : args.scope;
  if (scope != "account" && !args.account.empty()) {
    return ctx.usage("--account applies to --scope account, not --scope " + scope);
  }
  if (scope == "proximity" && args.box.empty() && (args.near.empty() || args.radius_km <= 0))
    return ctx.usage(
        "--scope proximity needs --near LAT,LON with --radius-km KM, or --box "
        "SOUTH,WEST,NORTH,EAST");
  if (scope != "proximity" && (!args.near.empty() || !args.box.empty()))
    return ctx.usage("--near and --box apply to --scope proximity, not --scope " + scope);
  std::string path = "/api/v1/nodes?scope=" + seg(scope);
  if (!args.account.empty()) path += "&account=" + seg(args.account);
  if (!args.interface.empty()) path += "&interface=" + seg(args.interface);
  if (!args.network.empty()) path += "&network=" + seg(args.network);
  if (!args.near.empty()) path += "&near=" + seg(args.near);
  if (args.radius_km > 0) path += "&radius_km=" + std::to_string(args.radius_km);
  if (!args.box.empty()) path += "&box=" + seg(args.box);
  Result<Json> r = ctx.node->get(path);
  if (!r.isOk()) return ctx.fail(r.status());
  if (printDocument(ctx, *r)) return kExitOk;
  const Json& nodes = listOf(*r, "nodes");
  if (ctx.quiet) {
    for (const auto& n : nodes) *ctx.out << field(n, "node_id") << "\n";
    *ctx.out << std::flush;
    return kExitOk;
  }
  const Json& enabled = at(*r, "enabled");
  if (enabled.is_boolean() && !enabled.get<bool>()) {
    *ctx.err << "discovery is off on this node: it knows no other nodes.\n" << std::flush;
    return kExitOk;
  }
  if (nodes.empty()) {
    *ctx.err << "No nodes.\n" << std::flush;
    return kExitOk;
  }
  printTable(ctx, nodesTable(*r));
  return kExitOk;
}

int cmdCluster(const Context& ctx) {
  Result<Json> r = ctx.node->get("/api/v1/cluster");
  if (!r.isOk()) return ctx.fail(r.status());
  if (printDocument(ctx, *r)) return kExitOk;
  if (ctx.quiet) {
    for (const auto& c : listOf(*r, "clusters")) *ctx.out << field(c, "cluster_id") << "\n";
    *ctx.out << std::flush;
    return kExitOk;
  }
  *ctx.out << renderCluster(*r, ctx.clock->wallNow()) << std::flush;
  return kExitOk;
}

int cmdRoutes(const Context& ctx) {
  Result<Json> r = ctx.node->get("/api/v1/routes");
  if (!r.isOk()) return ctx.fail(r.status());
  if (printDocument(ctx, *r)) return kExitOk;
  if (ctx.quiet) {
    for (const auto& route : listOf(*r, "routes")) *ctx.out << field(route, "path") << "\n";
    *ctx.out << std::flush;
    return kExitOk;
  }
  Table t = routesTable(*r);
  if (t.rows() == 0) {
    *ctx.out << "no routes: deploy a service (edgectl apply -f FILE) or join a cluster\n"
             << std::flush;
    return kExitOk;
  }
  *ctx.out << t.render() << std::flush;
  return kExitOk;
}

}  // namespace edge::cli
