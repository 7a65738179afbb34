#include "runtime-shim/docker/docker_json.h"

#include <algorithm>
#include <cctype>
#include <charconv>

#include "common/http.h"

namespace edge::runtime::docker {
namespace {

std::string_view trim(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  return s;
}

const Json* field(const Json& obj, const char* key) {
  if (!obj.is_object()) return nullptr;
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return nullptr;
  return &*it;
}

// Lenient number access for counters: missing, null or non-numbers read as 0.
int64_t number(const Json& obj, std::initializer_list<const char*> path) {
  const Json* cur = &obj;
  for (const char* key : path) {
    cur = field(*cur, key);
    if (!cur) return 0;
  }
  if (cur->is_number_integer()) return cur->get<int64_t>();
  if (cur->is_number_unsigned()) {
    uint64_t u = cur->get<uint64_t>();
    return u > static_cast<uint64_t>(INT64_MAX) ? INT64_MAX : static_cast<int64_t>(u);
  }
  if (cur->is_number_float()) return static_cast<int64_t>(cur->get<double>());
  return 0;
}

std::string text(const Json& obj, const char* key) {
  const Json* v = field(obj, key);
  return v && v->is_string() ? v->get<std::string>() : std::string();
}

// Docker sends Cmd/Entrypoint as arrays; very old daemons and some Podman paths send a
// plain string. Anything else is a type error naming the field.
Result<std::vector<std::string>> stringList(const Json& obj, const char* key,
                                            std::string_view path) {
  const Json* v = field(obj, key);
  if (v && v->is_string()) return std::vector<std::string>{v->get<std::string>()};
  return json::getStringArray(obj, key, path);
}

bool validName(const std::string& name) {
  auto alnum = [](char c) { return std::isalnum(static_cast<unsigned char>(c)) != 0; };
  if (name.empty() || !alnum(name[0])) return false;
  return std::all_of(name.begin(), name.end(),
                     [&](char c) { return alnum(c) || c == '_' || c == '.' || c == '-'; });
}

std::optional<BindMount> parseBind(std::string_view bind) {
  size_t first = bind.find(':');
  if (first == std::string_view::npos) return std::nullopt;
  BindMount m;
  m.source = std::string(bind.substr(0, first));
  std::string_view rest = bind.substr(first + 1);
  size_t second = rest.find(':');
  m.target = std::string(rest.substr(0, second));
  if (second != std::string_view::npos) {
    std::string_view opts = rest.substr(second + 1);
    while (!opts.empty()) {
      size_t comma = opts.find(',');
      if (opts.substr(0, comma) == "ro") m.read_only = true;
      if (comma == std::string_view::npos) break;
      opts.remove_prefix(comma + 1);
    }
  }
  return m;
}

ContainerState stateFrom(const std::string& status, const Json& state) {
  if (status == "created" || status == "configured" || status == "initialized") {
    return ContainerState::kCreated;
  }
  // A paused or restarting container still holds its processes.
  if (status == "running" || status == "paused" || status == "restarting") {
    return ContainerState::kRunning;
  }
  if (status == "exited" || status == "dead" || status == "stopped") return ContainerState::kExited;
  // "removing" or something newer: go by the flags.
  const Json* running = field(state, "Running");
  if (running && running->is_boolean() && running->get<bool>()) return ContainerState::kRunning;
  if (parseDockerTime(text(state, "StartedAt")) == WallTime{}) return ContainerState::kCreated;
  return ContainerState::kExited;
}

}  // namespace

std::string daemonMessage(std::string_view body) {
  std::string_view t = trim(body);
  if (!t.empty() && t.front() == '{') {
    Result<Json> j = json::parse(t, "daemon reply");
    if (j.isOk()) {
      std::string m = text(*j, "message");
      if (m.empty()) m = text(*j, "error");
      if (!m.empty()) return m;
    }
  }
  if (t.size() > 300) return std::string(t.substr(0, 300)) + "...";
  return std::string(t);
}

Status statusFromHttp(int http_status, std::string_view body, std::string_view what) {
  std::string msg = daemonMessage(body);
  std::string where(what);
  std::string code = "HTTP " + std::to_string(http_status);
  std::string full = where + ": " + (msg.empty() ? code : msg);
  // Podman answers a name conflict with 500, not 409.
  if ((http_status == 409 || http_status >= 500) && msg.find("name") != std::string::npos &&
      msg.find("already in use") != std::string::npos) {
    return Status::alreadyExists(full);
  }
  switch (http_status) {
    case 304:
      return Status::failedPrecondition(where + ": already in that state");
    case 400:
      return Status::invalidArgument(full);
    case 401:
    case 403:
      return Status::permissionDenied(full);
    case 404:
      return Status::notFound(full);
    case 409:
      return Status::failedPrecondition(full);
    default:
      return Status::internal(where + ": daemon error (" + code + ")" +
                              (msg.empty() ? "" : ": " + msg));
  }
}

std::string formatUnixNano(WallTime t) {
  int64_t ns = std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
  if (ns < 0) ns = 0;
  std::string frac = std::to_string(ns % 1'000'000'000);
  return std::to_string(ns / 1'000'000'000) + "." + std::string(9 - frac.size(), '0') + frac;
}

std::string escapePath(std::string_view ref) {
  // Image references keep their '/', ':' and '@' (the CLI sends them unescaped).
  return http::urlEncode(ref, "/:@");
}

Result<std::string> logsQuery(const LogOptions& o, ApiVersion version) {
  if (!o.include_stdout && !o.include_stderr) {
    return Status::invalidArgument(
        "log options: include_stdout and include_stderr are both false; select at least one");
  }
  std::string q = std::string("stdout=") + (o.include_stdout ? "1" : "0") +
                  "&stderr=" + (o.include_stderr ? "1" : "0") + "&timestamps=1";
  if (o.follow) q += "&follow=1";
  q += "&tail=" + (o.tail ? std::to_string(*o.tail) : std::string("all"));
  if (o.since) q += "&since=" + formatUnixNano(*o.since);
  // Older daemons cannot bound the end; the driver filters locally then.
  if (o.until && version >= ApiVersion{1, 35}) q += "&until=" + formatUnixNano(*o.until);
  return q;
}

std::string labelFilters(const std::map<std::string, std::string>& labels) {
  Json list = Json::array();
  for (const auto& [k, v] : labels) list.push_back(k + "=" + v);
  Json f = Json::object();
  f["label"] = list;
  return json::dump(f);
}

Status validateSpec(const ContainerSpec& spec) {
  if (spec.image.empty()) return Status::invalidArgument("spec.image: required, got nothing");
  if (!spec.name.empty() && !validName(spec.name)) {
    return Status::invalidArgument("spec.name: '" + spec.name +
                                   "' is not allowed; use [a-zA-Z0-9][a-zA-Z0-9_.-]*");
  }
  for (size_t i = 0; i < spec.env.size(); ++i) {
    if (spec.env[i].empty() || spec.env[i].front() == '=') {
      return Status::invalidArgument("spec.env[" + std::to_string(i) + "]: '" + spec.env[i] +
                                     "' is not KEY=value");
    }
  }
  for (size_t i = 0; i < spec.mounts.size(); ++i) {
    const BindMount& m = spec.mounts[i];
    std::string where = "spec.mounts[" + std::to_string(i) + "]";
    for (const auto& [what, path] : {std::pair{"source", &m.source}, {"target", &m.target}}) {
      if (path->empty() || path->front() != '/') {
        return Status::invalidArgument(where + "." + what + ": '" + *path +
                                       "' must be an absolute path");
      }
      if (path->find_first_of(":,") != std::string::npos) {
        return Status::invalidArgument(where + "." + what + ": '" + *path +
                                       "' contains ':' or ',', which Docker binds cannot express");
      }
    }
  }
  const Resources& r = spec.resources;
  if (r.memory_bytes < 0 || r.nano_cpus < 0 || r.pids_limit < 0) {
    return Status::invalidArgument("spec.resources: limits must be >= 0 (0 = unlimited)");
  }
  if (r.memory_bytes > 0 && r.memory_bytes < 6 * 1024 * 1024) {
    return Status::invalidArgument(
        "spec.resources.memory_bytes: " + std::to_string(r.memory_bytes) +
        " is below Docker's minimum of 6 MiB");
  }
  if (!spec.stop_signal.empty()) {
    Result<int> sig = parseSignal(spec.stop_signal);
    if (!sig.isOk()) return sig.status().withContext("spec.stop_signal");
  }
  if (spec.stop_timeout && spec.stop_timeout->count() < 0) {
    return Status::invalidArgument("spec.stop_timeout: must be >= 0 seconds");
  }
  return Status::ok();
}

Json createBody(const ContainerSpec& spec, ApiVersion version) {
  Json b = Json::object();
  b["Image"] = spec.image;
  if (spec.entrypoint) b["Entrypoint"] = *spec.entrypoint;
  if (spec.cmd) b["Cmd"] = *spec.cmd;
  if (!spec.env.empty()) b["Env"] = spec.env;
  if (!spec.working_dir.empty()) b["WorkingDir"] = spec.working_dir;
  if (!spec.user.empty()) b["User"] = spec.user;
  if (!spec.hostname.empty()) b["Hostname"] = spec.hostname;
  Json labels = Json::object();
  for (const auto& [k, v] : spec.labels) labels[k] = v;
  b["Labels"] = labels;
  if (!spec.stop_signal.empty()) b["StopSignal"] = spec.stop_signal;
  if (spec.stop_timeout && version >= ApiVersion{1, 25}) {
    b["StopTimeout"] = spec.stop_timeout->count();
  }
  b["Tty"] = false;
  b["AttachStdout"] = false;
  b["AttachStderr"] = false;

  Json hc = Json::object();
  hc["NetworkMode"] = spec.network == NetworkMode::kHost ? "host" : "none";
  if (!spec.mounts.empty()) {
    Json binds = Json::array();
    for (const BindMount& m : spec.mounts) {
      binds.push_back(m.source + ":" + m.target + (m.read_only ? ":ro" : ""));
    }
    hc["Binds"] = binds;
  }
  const Resources& r = spec.resources;
  if (r.memory_bytes > 0) {
    hc["Memory"] = r.memory_bytes;
    hc["MemorySwap"] = r.memory_bytes;  // no swap beyond the limit
  }
  if (r.nano_cpus > 0) {
    if (version >= ApiVersion{1, 25}) {
      hc["NanoCpus"] = r.nano_cpus;
    } else {
      hc["CpuPeriod"] = 100000;
      hc["CpuQuota"] = std::max<int64_t>(1000, r.nano_cpus / 10000);
    }
  }
  if (r.pids_limit > 0) hc["PidsLimit"] = r.pids_limit;
  b["HostConfig"] = hc;
  return b;
}

Result<ContainerInfo> containerFromInspect(const Json& j) {
  if (!j.is_object()) return Status::invalidArgument("container inspect: expected an object");
  ContainerInfo c;
  ASSIGN_OR_RETURN(c.id, json::getString(j, "Id", "container"));
  c.name = text(j, "Name");
  if (c.name.starts_with('/')) c.name.erase(0, 1);
  c.image_id = text(j, "Image");
  c.created = parseDockerTime(text(j, "Created"));

  static const Json kEmpty = Json::object();
  const Json* state = field(j, "State");
  if (!state) state = &kEmpty;
  c.state = stateFrom(text(*state, "Status"), *state);
  c.pid = static_cast<int>(number(*state, {"Pid"}));
  c.exit_code = static_cast<int>(number(*state, {"ExitCode"}));
  const Json* oom = field(*state, "OOMKilled");
  c.oom_killed = oom && oom->is_boolean() && oom->get<bool>();
  c.error = text(*state, "Error");
  c.started = parseDockerTime(text(*state, "StartedAt"));
  c.finished = parseDockerTime(text(*state, "FinishedAt"));
  if (c.state != ContainerState::kRunning) c.pid = 0;
  // dockerd records StartedAt after the start call returns, so a process that exits at
  // once can show FinishedAt < StartedAt. The exit time is the accurate one.
  if (c.finished != WallTime{} && c.started > c.finished) c.started = c.finished;

  const Json* config = field(j, "Config");
  if (!config) config = &kEmpty;
  c.image = text(*config, "Image");
  ASSIGN_OR_RETURN(c.entrypoint, stringList(*config, "Entrypoint", ".Config"));
  ASSIGN_OR_RETURN(c.cmd, stringList(*config, "Cmd", ".Config"));
  ASSIGN_OR_RETURN(c.env, json::getStringArray(*config, "Env", ".Config"));
  c.working_dir = text(*config, "WorkingDir");
  c.user = text(*config, "User");
  ASSIGN_OR_RETURN(c.labels, json::getStringMap(*config, "Labels", ".Config"));

  const Json* host = field(j, "HostConfig");
  if (!host) host = &kEmpty;
  // "default"/"bridge"/"container:x" all mean a network namespace of its own.
  c.network = text(*host, "NetworkMode") == "host" ? NetworkMode::kHost : NetworkMode::kNone;
  ASSIGN_OR_RETURN(std::vector<std::string> binds,
                   json::getStringArray(*host, "Binds", ".HostConfig"));
  for (const std::string& b : binds) {
    if (auto m = parseBind(b)) c.mounts.push_back(*m);
  }
  if (binds.empty()) {
    // Podman reports binds only under Mounts.
    if (const Json* mounts = field(j, "Mounts"); mounts && mounts->is_array()) {
      for (const Json& m : *mounts) {
        if (text(m, "Type") != "bind") continue;
        const Json* rw = field(m, "RW");
        c.mounts.push_back({.source = text(m, "Source"),
                            .target = text(m, "Destination"),
                            .read_only = rw && rw->is_boolean() && !rw->get<bool>()});
      }
    }
  }
  c.resources.memory_bytes = std::max<int64_t>(0, number(*host, {"Memory"}));
  c.resources.nano_cpus = std::max<int64_t>(0, number(*host, {"NanoCpus"}));
  int64_t quota = number(*host, {"CpuQuota"});
  int64_t period = number(*host, {"CpuPeriod"});
  if (c.resources.nano_cpus == 0 && quota > 0 && period > 0) {
    c.resources.nano_cpus = quota * 1'000'000'000 / period;
  }
  c.resources.pids_limit = std::max<int64_t>(0, number(*host, {"PidsLimit"}));
  return c;
}

Result<ImageInfo> imageFromInspect(const Json& j) {
  if (!j.is_object()) return Status::invalidArgument("image inspect: expected an object");
  ImageInfo img;
  ASSIGN_OR_RETURN(img.id, json::getString(j, "Id", "image"));
  if (!img.id.starts_with("sha256:") && img.id.size() == 64) img.id = "sha256:" + img.id;
  ASSIGN_OR_RETURN(std::vector<std::string> tags, json::getStringArray(j, "RepoTags", "image"));
  for (const std::string& t : tags) {
    if (t == "<none>:<none>") continue;
    img.tags.push_back(normalizeImageRef(t));
  }
  if (const Json* rootfs = field(j, "RootFS")) {
    ASSIGN_OR_RETURN(img.layers, json::getStringArray(*rootfs, "Layers", ".RootFS"));
  }
  img.size_bytes = number(j, {"Size"});
  img.created = parseDockerTime(text(j, "Created"));
  img.os = text(j, "Os");
  img.architecture = text(j, "Architecture");
  if (const Json* config = field(j, "Config")) {
    ASSIGN_OR_RETURN(img.entrypoint, stringList(*config, "Entrypoint", ".Config"));
    ASSIGN_OR_RETURN(img.cmd, stringList(*config, "Cmd", ".Config"));
    ASSIGN_OR_RETURN(img.env, json::getStringArray(*config, "Env", ".Config"));
    img.working_dir = text(*config, "WorkingDir");
    img.user = text(*config, "User");
    img.stop_signal = text(*config, "StopSignal");
    ASSIGN_OR_RETURN(img.labels, json::getStringMap(*config, "Labels", ".Config"));
  }
  return img;
}

Result<Stats> statsFromJson(const Json& j, WallTime fallback_time) {
  if (!j.is_object()) return Status::invalidArgument("container stats: expected an object");
  Stats s;
  s.cpu_usage_ns = number(j, {"cpu_stats", "cpu_usage", "total_usage"});
  s.memory_usage_bytes = number(j, {"memory_stats", "usage"});
  s.memory_limit_bytes = number(j, {"memory_stats", "limit"});
  s.pids = number(j, {"pids_stats", "current"});
  s.read_at = parseDockerTime(text(j, "read"));
  if (s.read_at == WallTime{}) s.read_at = fallback_time;
  return s;
}

Result<std::optional<Event>> eventFromJson(const Json& j) {
  if (!j.is_object()) return Status::invalidArgument("event: expected an object");
  std::string type = text(j, "Type");
  if (!type.empty() && type != "container") return std::optional<Event>();
  std::string action = text(j, "Action");
  if (action.empty()) action = text(j, "status");
  Event e;
  if (action == "create") {
    e.type = Event::Type::kCreate;
  } else if (action == "start") {
    e.type = Event::Type::kStart;
  } else if (action == "die" || action == "died") {
    e.type = Event::Type::kExit;
  } else if (action == "oom") {
    e.type = Event::Type::kOom;
  } else if (action == "destroy" || action == "remove") {
    e.type = Event::Type::kDestroy;
  } else {
    return std::optional<Event>();
  }
  static const Json kEmpty = Json::object();
  const Json* actor = field(j, "Actor");
  if (!actor) actor = &kEmpty;
  e.container_id = text(*actor, "ID");
  if (e.container_id.empty()) e.container_id = text(j, "id");
  if (e.container_id.empty()) {
    return Status::invalidArgument("event '" + action + "': no Actor.ID or id");
  }
  if (const Json* attrs = field(*actor, "Attributes")) {
    std::string code = text(*attrs, "exitCode");
    int v = 0;
    if (!code.empty() &&
        std::from_chars(code.data(), code.data() + code.size(), v).ec == std::errc()) {
      e.exit_code = v;
    }
  }
  int64_t ns = number(j, {"timeNano"});
  if (ns == 0) ns = number(j, {"time"}) * 1'000'000'000;
  e.time = WallTime(std::chrono::duration_cast<WallTime::duration>(std::chrono::nanoseconds(ns)));
  return std::optional<Event>(e);
}

Result<std::vector<std::string>> parseLoadReply(std::string_view body) {
  JsonStreamSplitter split;
  if (!split.feed(body).isOk()) {
    return Status::internal("image load reply is not a JSON message stream: " +
                            daemonMessage(body));
  }
  std::vector<std::string> loaded;
  std::string value;
  while (split.next(&value)) {
    ASSIGN_OR_RETURN(Json msg, json::parse(value, "image load reply"));
    std::string err = text(msg, "error");
    if (const Json* detail = field(msg, "errorDetail"); err.empty() && detail) {
      err = text(*detail, "message");
    }
    if (!err.empty()) return Status::invalidArgument("the daemon could not load it: " + err);
    std::string stream = text(msg, "stream");
    std::string_view rest = stream;
    while (!rest.empty()) {
      size_t nl = rest.find('\n');
      std::string_view line = trim(rest.substr(0, nl));
      rest = nl == std::string_view::npos ? std::string_view() : rest.substr(nl + 1);
      static constexpr std::string_view kId = "Loaded image ID: ";
      if (line.starts_with(kId)) {
        loaded.emplace_back(trim(line.substr(kId.size())));
        continue;
      }
      // "Loaded image: a:b"; Podman says "Loaded image(s): a:b,c:d".
      if (!line.starts_with("Loaded image")) continue;
      size_t colon = line.find(": ");
      if (colon == std::string_view::npos) continue;
      std::string_view names = line.substr(colon + 2);
      while (!names.empty()) {
        size_t comma = names.find(',');
        std::string_view n = trim(names.substr(0, comma));
        if (!n.empty()) loaded.emplace_back(n);
        if (comma == std::string_view::npos) break;
        names.remove_prefix(comma + 1);
      }
    }
  }
  if (!split.empty()) return Status::internal("image load reply ends in the middle of a message");
  if (loaded.empty()) {
    return Status::internal("image load reply names no loaded image: " + daemonMessage(body));
  }
  return loaded;
}

Status JsonStreamSplitter::feed(std::string_view data) {
  for (char c : data) {
    if (depth_ == 0) {
      if (std::isspace(static_cast<unsigned char>(c))) continue;
      if (c != '{' && c != '[') {
        return Status::invalidArgument(std::string("JSON stream: expected '{' or '[', got '") + c +
                                       "'");
      }
    }
    partial_ += c;
    if (partial_.size() > max_value_) {
      return Status::invalidArgument("JSON stream: a message exceeds " +
                                     std::to_string(max_value_) + " bytes");
    }
    if (in_string_) {
      if (escape_) {
        escape_ = false;
      } else if (c == '\\') {
        escape_ = true;
      } else if (c == '"') {
        in_string_ = false;
      }
      continue;
    }
    if (c == '"') {
      in_string_ = true;
    } else if (c == '{' || c == '[') {
      ++depth_;
    } else if (c == '}' || c == ']') {
      if (--depth_ == 0) {
        ready_.push_back(std::move(partial_));
        partial_.clear();
      }
    }
  }
  return Status::ok();
}

bool JsonStreamSplitter::next(std::string* out) {
  if (ready_.empty()) return false;
  *out = std::move(ready_.front());
  ready_.pop_front();
  return true;
}

}  // namespace edge::runtime::docker
