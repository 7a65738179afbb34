// DockerRuntime: ContainerRuntime over the Docker Engine API (see docker_runtime.h).
//
// Request shapes follow API v1.41 (what Debian's dockerd 20.10 speaks) and stay within
// what Podman's compatible API accepts. Each operation is one or two independent
// requests; no state is cached here, so the daemon stays the single source of truth.
#include "runtime-shim/docker/docker_runtime.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <set>

#include "common/log.h"
#include "runtime-shim/docker/docker_api.h"
#include "runtime-shim/docker/docker_events.h"
#include "runtime-shim/docker/docker_frames.h"
#include "runtime-shim/docker/docker_json.h"

namespace edge::runtime {
namespace {

using docker::ApiVersion;
using docker::DockerApi;
using docker::escapePath;
using docker::Json;
using std::chrono::milliseconds;

// Closes a file descriptor when the last copy goes (the body source is copied around).
struct FdCloser {
  explicit FdCloser(int f) : fd(f) {}
  FdCloser(const FdCloser&) = delete;
  FdCloser& operator=(const FdCloser&) = delete;
  ~FdCloser() { ::close(fd); }
  int fd;
};

class DockerRuntime final : public ContainerRuntime {
 public:
  DockerRuntime(std::shared_ptr<const DockerApi> api, ClockPtr clock)
      : api_(std::move(api)), clock_(std::move(clock)) {}

  std::string kind() const override { return "docker"; }
  Result<RuntimeInfo> info() override;

  Result<std::vector<ImageInfo>> loadImage(const std::string& tarball_path) override;
  Result<std::vector<ImageInfo>> listImages() override;
  Result<ImageInfo> inspectImage(const std::string& ref) override;
  Status removeImage(const std::string& ref, bool force) override;

  Result<std::string> createContainer(const ContainerSpec& spec) override;
  Status startContainer(const std::string& id) override;
  Status stopContainer(const std::string& id, std::optional<std::chrono::seconds> timeout) override;
  Status killContainer(const std::string& id, int signal) override;
  Status removeContainer(const std::string& id, bool force) override;
  Result<std::vector<ContainerInfo>> listContainers(const ListOptions& options) override;
  Result<ContainerInfo> inspectContainer(const std::string& id_or_name) override;
  Result<ExitStatus> waitContainer(const std::string& id, std::optional<Duration> timeout) override;
  Status readLogs(const std::string& id, const LogOptions& options, const LogSink& sink) override;
  Result<Stats> stats(const std::string& id) override;
  Result<SubscriptionPtr> subscribe(EventSink sink) override;

 private:
  static std::string containerPath(const std::string& id) {
    return "/containers/" + escapePath(id);
  }
  Result<Json> inspectContainerJson(const std::string& id, std::string_view what);

  std::shared_ptr<const DockerApi> api_;
  ClockPtr clock_;
};

Status requireRef(const std::string& ref, std::string_view what) {
  if (ref.empty()) return Status::invalidArgument(std::string(what) + ": no id or name given");
  return Status::ok();
}

Result<RuntimeInfo> DockerRuntime::info() {
  ASSIGN_OR_RETURN(Json j, api_->getJson("/info", "daemon info"));
  auto str = [&](const char* key) {
    return j.contains(key) && j[key].is_string() ? j[key].get<std::string>() : std::string();
  };
  auto num = [&](const char* key) {
    return j.contains(key) && j[key].is_number_integer() ? j[key].get<int>() : 0;
  };
  RuntimeInfo r;
  r.kind = "docker";
  r.version = str("ServerVersion");
  r.api_version = api_->version().toString();
  r.os = str("OSType");
  if (r.os.empty()) r.os = str("OperatingSystem");
  r.kernel = str("KernelVersion");
  r.cgroup_version = str("CgroupVersion");
  r.isolation = str("Isolation");
  if (r.isolation.empty()) {
    // Linux daemons leave Isolation empty; say what confines containers instead.
    r.isolation = "namespaces+cgroups";
    if (j.contains("SecurityOptions") && j["SecurityOptions"].is_array()) {
      for (const Json& opt : j["SecurityOptions"]) {
        if (!opt.is_string()) continue;
        std::string s = opt.get<std::string>();  // "name=seccomp,profile=default"
        if (!s.starts_with("name=")) continue;
        r.isolation += "+" + s.substr(5, s.find(',') == std::string::npos ? std::string::npos
                                                                          : s.find(',') - 5);
      }
    }
  }
  r.containers = num("Containers");
  r.containers_running = num("ContainersRunning");
  r.images = num("Images");
  return r;
}

Result<std::vector<ImageInfo>> DockerRuntime::loadImage(const std::string& tarball_path) {
  std::string what = "load image " + tarball_path;
  int fd = ::open(tarball_path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return Status::fromErrno(errno, what);
  auto file = std::make_shared<FdCloser>(fd);
  struct stat st {};
  if (::fstat(fd, &st) != 0) return Status::fromErrno(errno, what);
  if (!S_ISREG(st.st_mode)) return Status::invalidArgument(what + ": not a regular file");

  http::Request req = api_->request("POST", "/images/load?quiet=1");
  req.content_type = "application/x-tar";
  // Streamed in chunks straight from the file: images can be larger than our memory.
  req.body_source = [file, tarball_path](char* buf, size_t cap) -> Result<size_t> {
    ssize_t n;
    do {
      n = ::read(file->fd, buf, cap);
    } while (n < 0 && errno == EINTR);
    if (n < 0) return Status::fromErrno(errno, "reading " + tarball_path);
    return static_cast<size_t>(n);
  };
  // The daemon answers after unpacking every layer.
  req.read_timeout = std::chrono::minutes(10);
  ASSIGN_OR_RETURN(http::Response res, api_->send(req, what));
  if (!res.isSuccess()) return docker::statusFromHttp(res.status, res.body, what);
  Result<std::vector<std::string>> refs = docker::parseLoadReply(res.body);
  if (!refs.isOk()) return refs.status().withContext(what);

  std::vector<ImageInfo> out;
  std::set<std::string> ids;
  for (const std::string& ref : *refs) {
    ASSIGN_OR_RETURN(ImageInfo img, inspectImage(ref));
    if (ids.insert(img.id).second) out.push_back(std::move(img));
  }
  LOG_INFO("docker image loaded").kv("path", tarball_path).kv("images", out.size());
  return out;
}

Result<std::vector<ImageInfo>> DockerRuntime::listImages() {
  ASSIGN_OR_RETURN(Json list, api_->getJson("/images/json", "list images"));
  if (!list.is_array()) return Status::internal("list images: the daemon did not send an array");
  std::vector<ImageInfo> out;
  for (const Json& item : list) {
    if (!item.is_object() || !item.contains("Id") || !item["Id"].is_string()) continue;
    Result<ImageInfo> img = inspectImage(item["Id"].get<std::string>());
    if (img.status().code() == StatusCode::kNotFound) continue;  // removed meanwhile
    if (!img.isOk()) return img.status();
    out.push_back(std::move(img).value());
  }
  return out;
}

Result<ImageInfo> DockerRuntime::inspectImage(const std::string& ref) {
  std::string what = "inspect image " + ref;
  RETURN_IF_ERROR(requireRef(ref, what));
  ASSIGN_OR_RETURN(Json j, api_->getJson("/images/" + escapePath(ref) + "/json", what));
  Result<ImageInfo> img = docker::imageFromInspect(j);
  if (!img.isOk()) return Status::internal(what + ": " + img.status().message());
  return img;
}

Status DockerRuntime::removeImage(const std::string& ref, bool force) {
  std::string what = "remove image " + ref;
  RETURN_IF_ERROR(requireRef(ref, what));
  http::Request req =
      api_->request("DELETE", "/images/" + escapePath(ref) + (force ? "?force=1" : ""));
  return api_->sendExpectOk(req, what);
}

Result<std::string> DockerRuntime::createContainer(const ContainerSpec& spec) {
  std::string what = "create container" + (spec.name.empty() ? "" : " " + spec.name);
  RETURN_IF_ERROR(docker::validateSpec(spec));
  http::Request req =
      api_->request("POST", "/containers/create" +
                                (spec.name.empty() ? "" : "?name=" + http::urlEncode(spec.name)));
  docker::setJsonBody(&req, docker::createBody(spec, api_->version()));
  ASSIGN_OR_RETURN(Json reply, api_->sendForJson(req, what));
  Result<std::string> id = json::getString(reply, "Id", "create reply");
  if (!id.isOk()) return Status::internal(what + ": " + id.status().message());
  if (reply.contains("Warnings") && reply["Warnings"].is_array()) {
    for (const Json& w : reply["Warnings"]) {
      if (w.is_string())
        LOG_WARN("docker create warning").kv("id", *id).kv("warning", w.get<std::string>());
    }
  }
  return id;
}

Status DockerRuntime::startContainer(const std::string& id) {
  std::string what = "start container " + id;
  RETURN_IF_ERROR(requireRef(id, what));
  ASSIGN_OR_RETURN(http::Response res,
                   api_->send(api_->request("POST", containerPath(id) + "/start"), what));
  if (res.isSuccess()) return Status::ok();
  // 304: already running. The interface asks for kFailedPrecondition here.
  if (res.status == 304) return Status::failedPrecondition(what + ": it is already running");
  return docker::statusFromHttp(res.status, res.body, what);
}

Status DockerRuntime::stopContainer(const std::string& id,
                                    std::optional<std::chrono::seconds> timeout) {
  std::string what = "stop container " + id;
  RETURN_IF_ERROR(requireRef(id, what));
  if (timeout && timeout->count() < 0) return Status::invalidArgument(what + ": negative timeout");
  http::Request req =
      api_->request("POST", containerPath(id) + "/stop" +
                                (timeout ? "?t=" + std::to_string(timeout->count()) : ""));
  // The daemon answers after the grace period and the SIGKILL; without a timeout the
  // container's own StopTimeout applies, which we do not know here.
  req.read_timeout = timeout ? milliseconds(*timeout) + std::chrono::seconds(60)
                             : milliseconds(std::chrono::minutes(30));
  return api_->sendExpectOk(req, what, 304);  // 304: not running, which is fine
}

Status DockerRuntime::killContainer(const std::string& id, int signal) {
  std::string what = "kill container " + id;
  RETURN_IF_ERROR(requireRef(id, what));
  if (signal <= 0 || signal > 64) {
    return Status::invalidArgument(what + ": signal " + std::to_string(signal) +
                                   " is not in 1..64");
  }
  return api_->sendExpectOk(
      api_->request("POST", containerPath(id) + "/kill?signal=" + std::to_string(signal)), what);
}

Status DockerRuntime::removeContainer(const std::string& id, bool force) {
  std::string what = "remove container " + id;
  RETURN_IF_ERROR(requireRef(id, what));
  http::Request req = api_->request("DELETE", containerPath(id) + (force ? "?force=1" : ""));
  return api_->sendExpectOk(req, what);
}

Result<std::vector<ContainerInfo>> DockerRuntime::listContainers(const ListOptions& options) {
  std::string path = std::string("/containers/json?all=") + (options.all ? "1" : "0");
  if (!options.labels.empty()) {
    path += "&filters=" + http::urlEncode(docker::labelFilters(options.labels));
  }
  ASSIGN_OR_RETURN(Json list, api_->getJson(path, "list containers"));
  if (!list.is_array())
    return Status::internal("list containers: the daemon did not send an array");
  std::vector<ContainerInfo> out;
  for (const Json& item : list) {
    if (!item.is_object() || !item.contains("Id") || !item["Id"].is_string()) continue;
    Result<ContainerInfo> c = inspectContainer(item["Id"].get<std::string>());
    if (c.status().code() == StatusCode::kNotFound) continue;  // removed meanwhile
    if (!c.isOk()) return c.status();
    // Filter again: the daemon may not support a filter, and state may have moved on.
    bool match = true;
    for (const auto& [k, v] : options.labels) {
      auto it = c->labels.find(k);
      if (it == c->labels.end() || it->second != v) match = false;
    }
    if (match) out.push_back(std::move(c).value());
  }
  return out;
}

Result<Json> DockerRuntime::inspectContainerJson(const std::string& id, std::string_view what) {
  RETURN_IF_ERROR(requireRef(id, what));
  return api_->getJson(containerPath(id) + "/json", what);
}

Result<ContainerInfo> DockerRuntime::inspectContainer(const std::string& id_or_name) {
  std::string what = "inspect container " + id_or_name;
  ASSIGN_OR_RETURN(Json j, inspectContainerJson(id_or_name, what));
  Result<ContainerInfo> c = docker::containerFromInspect(j);
  if (!c.isOk()) return Status::internal(what + ": " + c.status().message());
  return c;
}

Result<ExitStatus> DockerRuntime::waitContainer(const std::string& id,
                                                std::optional<Duration> timeout) {
  std::string what = "wait for container " + id;
  RETURN_IF_ERROR(requireRef(id, what));
  auto deadlineError = [&] {
    return Status::deadlineExceeded(
        what + ": still running after " +
        std::to_string(std::chrono::duration_cast<milliseconds>(*timeout).count()) + " ms");
  };
  ExitStatus out;
  if (timeout && *timeout <= Duration::zero()) {
    // Nothing to wait for: answer from the current state.
    ASSIGN_OR_RETURN(ContainerInfo c, inspectContainer(id));
    if (c.state != ContainerState::kExited) return deadlineError();
    return ExitStatus{.exit_code = c.exit_code, .oom_killed = c.oom_killed, .finished = c.finished};
  }
  // "not-running" returns at once for a created or exited container (API >= 1.30;
  // before that it was the only behaviour).
  std::string path = containerPath(id) + "/wait";
  if (api_->version() >= ApiVersion{1, 30}) path += "?condition=not-running";
  http::Request req = api_->request("POST", path);
  // The reply's headers come at once and its body when the container stops, so the
  // per-read timeout bounds the wait; zero means unbounded.
  req.read_timeout = timeout ? std::max(milliseconds(1), std::chrono::ceil<milliseconds>(*timeout))
                             : milliseconds(0);
  auto started = std::chrono::steady_clock::now();
  Result<http::Response> res = api_->send(req, what);
  if (!res.isOk()) {
    StatusCode code = res.status().code();
    bool timed_out =
        timeout && std::chrono::steady_clock::now() - started + milliseconds(50) >= *timeout;
    if (timed_out && (code == StatusCode::kUnavailable || code == StatusCode::kDeadlineExceeded)) {
      return deadlineError();
    }
    return res.status();
  }
  if (!res->isSuccess()) return docker::statusFromHttp(res->status, res->body, what);
  Result<Json> j = json::parse(res->body, "wait reply");
  if (!j.isOk()) return Status::internal(what + ": " + j.status().message());
  Result<int64_t> code = json::getInt(*j, "StatusCode", "wait reply");
  if (!code.isOk()) return Status::internal(what + ": " + code.status().message());
  if (j->contains("Error") && (*j)["Error"].is_object()) {
    std::string msg = (*j)["Error"].value("Message", "");
    if (!msg.empty()) return Status::internal(what + ": the daemon says: " + msg);
  }
  out.exit_code = static_cast<int>(*code);
  // The reply has only the code; OOM and the finish time come from the container.
  Result<ContainerInfo> c = inspectContainer(id);
  if (c.isOk()) {
    out.oom_killed = c->oom_killed;
    out.finished = c->finished;
  }
  if (out.finished == WallTime{}) out.finished = clock_->wallNow();
  return out;
}

Status DockerRuntime::readLogs(const std::string& id, const LogOptions& options,
                               const LogSink& sink) {
  std::string what = "read logs of container " + id;
  ASSIGN_OR_RETURN(std::string query, docker::logsQuery(options, api_->version()));
  // Tty containers are not framed; the daemon does not say so in the logs reply.
  ASSIGN_OR_RETURN(Json j, inspectContainerJson(id, what));
  bool tty = j.contains("Config") && j["Config"].is_object() && j["Config"].value("Tty", false);
  std::string full_id = j.value("Id", id);

  // Drop entries outside [since, until): the daemon's until is inclusive, and older
  // daemons ignore it.
  LogSink filtered = [&](const LogEntry& e) {
    if (e.time != WallTime{}) {
      if (options.since && e.time < *options.since) return true;
      if (options.until && e.time >= *options.until) return true;
    }
    return sink(e);
  };
  docker::LogDecoder decoder({.framed = !tty, .timestamps = true});

  Status decode_error;
  http::Request req = api_->request("GET", containerPath(full_id) + "/logs?" + query);
  req.read_timeout = options.follow ? milliseconds(0) : docker::kDefaultReadTimeout;
  // Only a 2xx body reaches the sink; an error reply comes back in res->body.
  req.body_sink = [&](const char* data, size_t len) {
    decode_error = decoder.feed(std::string_view(data, len), filtered);
    return decode_error.isOk() && !decoder.stopped();
  };
  Result<http::Response> res = api_->send(req, what);
  if (!decode_error.isOk()) return decode_error.withContext(what);
  if (!res.isOk()) {
    if (decoder.stopped()) return Status::ok();  // the sink asked to stop
    return res.status();
  }
  if (!res->isSuccess()) return docker::statusFromHttp(res->status, res->body, what);
  return decoder.finish(filtered).withContext(what);
}

Result<Stats> DockerRuntime::stats(const std::string& id) {
  std::string what = "stats of container " + id;
  RETURN_IF_ERROR(requireRef(id, what));
  std::string path = containerPath(id) + "/stats?stream=false";
  // one-shot skips the second sample the daemon otherwise waits a second for.
  if (api_->version() >= ApiVersion{1, 41}) path += "&one-shot=1";
  ASSIGN_OR_RETURN(Json j, api_->getJson(path, what));
  Result<Stats> s = docker::statsFromJson(j, clock_->wallNow());
  if (!s.isOk()) return Status::internal(what + ": " + s.status().message());
  return s;
}

Result<SubscriptionPtr> DockerRuntime::subscribe(EventSink sink) {
  return docker::subscribeEvents(api_, std::move(sink));
}

// The daemon's API version from /_ping (HEAD, then GET), else from /version.
Result<std::string> serverApiVersion(const http::Client& client, milliseconds timeout) {
  http::Request ping{.method = "HEAD", .path = "/_ping"};
  ping.read_timeout = timeout;
  ASSIGN_OR_RETURN(http::Response res, client.send(ping));
  if (!res.isSuccess() || res.header("Api-Version").empty()) {
    ping.method = "GET";
    ASSIGN_OR_RETURN(res, client.send(ping));
  }
  if (!res.isSuccess()) {
    return Status::unavailable("/_ping answered HTTP " + std::to_string(res.status) +
                               "; is this a Docker-compatible daemon?");
  }
  if (std::string v = res.header("Api-Version"); !v.empty()) return v;
  http::Request version{.method = "GET", .path = "/version"};
  version.read_timeout = timeout;
  ASSIGN_OR_RETURN(res, client.send(version));
  Result<Json> j = json::parse(res.body, "/version reply");
  if (!res.isSuccess() || !j.isOk() || !j->is_object() || !(*j)["ApiVersion"].is_string()) {
    return Status::unavailable(
        "the daemon sent no Api-Version header and no usable /version; is this a "
        "Docker-compatible daemon?");
  }
  return (*j)["ApiVersion"].get<std::string>();
}

}  // namespace

Result<ContainerRuntimePtr> openDockerRuntime(const std::string& endpoint, ClockPtr clock) {
  ASSIGN_OR_RETURN(http::Endpoint ep, http::Endpoint::parse(endpoint));
  std::string where = "docker daemon at " + ep.toString();
  http::Client client(ep, http::ClientOptions{.connect_timeout = std::chrono::seconds(5)});
  Result<std::string> server = serverApiVersion(client, std::chrono::seconds(10));
  if (!server.isOk()) return server.status().withContext(where);
  Result<ApiVersion> version = docker::negotiateApiVersion(*server);
  if (!version.isOk()) return version.status().withContext(where);
  LOG_INFO("docker daemon connected")
      .kv("endpoint", ep.toString())
      .kv("server_api", *server)
      .kv("api", version->toString());
  auto api = std::make_shared<const DockerApi>(std::move(client), *version);
  if (!clock) clock = SystemClock::instance();
  return ContainerRuntimePtr(std::make_unique<DockerRuntime>(std::move(api), std::move(clock)));
}

bool dockerAnswers(const std::string& endpoint, std::chrono::milliseconds timeout) {
  Result<http::Endpoint> ep = http::Endpoint::parse(endpoint);
  if (!ep.isOk()) return false;
  http::Client client(*ep,
                      http::ClientOptions{.connect_timeout = timeout, .write_timeout = timeout});
  http::Request ping{.method = "GET", .path = "/_ping"};
  ping.read_timeout = std::max(timeout, milliseconds(1));
  Result<http::Response> res = client.send(ping);
  return res.isOk() && res->isSuccess();
}

}  // namespace edge::runtime
