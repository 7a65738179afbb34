// The node API server and its Docker API subset, through real HTTP on a unix socket in a
// temp dir, over an in-memory runtime: what a docker client sends, what it gets back.
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <condition_variable>
#include <fstream>
#include <future>
#include <map>
#include <mutex>
#include <thread>

#include "common/fs.h"
#include "common/http.h"
#include "common/http_server.h"
#include "common/json.h"
#include "edged/api/docker_api.h"
#include "runtime-shim/docker/docker_frames.h"

namespace edge::edged::api {
namespace {

using http::ApiServer;
using json::Json;
using runtime::ContainerInfo;
using runtime::ContainerState;
using namespace std::chrono_literals;

// An in-memory runtime with blocking waits, logs and image loads from small text files
// ("IMAGE <ref>").
class MemRuntime : public runtime::ContainerRuntime {
 public:
  MemRuntime() { addImage("edgecloud/busybox:test"); }

  void addImage(const std::string& ref) {
    std::lock_guard l(mu_);
    runtime::ImageInfo img;
    img.tags = {runtime::normalizeImageRef(ref)};
    img.id = "sha256:" + std::string(64 - std::min<size_t>(64, ref.size()), '0') +
             ref.substr(0, std::min<size_t>(64, ref.size()));
    img.os = "linux";
    img.architecture = "amd64";
    img.cmd = {"sh"};
    img.layers = {"sha256:layer"};
    images_[img.tags[0]] = img;
  }
  void exit(const std::string& ref, int code) {
    std::lock_guard l(mu_);
    ContainerInfo* c = find(ref);
    if (!c || c->state != ContainerState::kRunning) return;
    c->state = ContainerState::kExited;
    c->exit_code = code;
    c->finished = std::chrono::system_clock::now();
    cv_.notify_all();
  }
  void log(const std::string& ref, runtime::LogStream s, const std::string& line) {
    std::lock_guard l(mu_);
    ContainerInfo* c = find(ref);
    logs_[c->id].push_back({s, std::chrono::system_clock::now(), line});
  }
  runtime::ContainerSpec lastSpec() {
    std::lock_guard l(mu_);
    return last_spec_;
  }
  std::vector<std::string> loadedFiles() {
    std::lock_guard l(mu_);
    return loaded_files_;
  }

  std::string kind() const override { return "mem"; }
  Result<runtime::RuntimeInfo> info() override {
    std::lock_guard l(mu_);
    runtime::RuntimeInfo i;
    i.kind = "mem";
    i.cgroup_version = "2";
    i.isolation = "namespaces+cgroups+seccomp";
    i.images = static_cast<int>(images_.size());
    return i;
  }
  Result<std::vector<runtime::ImageInfo>> loadImage(const std::string& path) override {
    Result<std::string> text = fs::readFile(path);
    if (!text.isOk()) return text.status();
    std::lock_guard l(mu_);
    loaded_files_.push_back(path);
    if (!text->starts_with("IMAGE ")) {
      return Status::invalidArgument("load image: not an image tarball (" +
                                     std::to_string(text->size()) + " bytes)");
    }
    std::string ref = text->substr(6, text->find('\n') - 6);
    mu_.unlock();
    addImage(ref);
    mu_.lock();
    return std::vector<runtime::ImageInfo>{images_[runtime::normalizeImageRef(ref)]};
  }
  Result<std::vector<runtime::ImageInfo>> listImages() override {
    std::lock_guard l(mu_);
    std::vector<runtime::ImageInfo> out;
    for (auto& [_, i] : images_) out.push_back(i);
    return out;
  }
  Result<runtime::ImageInfo> inspectImage(const std::string& ref) override {
    std::lock_guard l(mu_);
    for (auto& [tag, i] : images_) {
      if (tag == runtime::normalizeImageRef(ref) || i.id == ref) return i;
    }
    return Status::notFound("no such image: " + ref);
  }
  Status removeImage(const std::string& ref, bool force) override {
    std::lock_guard l(mu_);
    auto it = images_.find(runtime::normalizeImageRef(ref));
    if (it == images_.end()) return Status::notFound("no such image: " + ref);
    for (auto& [_, c] : containers_) {
      if (c.image_id == it->second.id && !force) {
        return Status::failedPrecondition("image is used by container " + c.id);
      }
    }
    images_.erase(it);
    return Status::ok();
  }
  Result<std::string> createContainer(const runtime::ContainerSpec& spec) override {
    std::lock_guard l(mu_);
    last_spec_ = spec;
    auto img = images_.find(runtime::normalizeImageRef(spec.image));
    if (img == images_.end()) return Status::notFound("no such image: " + spec.image);
    for (auto& [_, c] : containers_) {
      if (!spec.name.empty() && c.name == spec.name) {
        return Status::alreadyExists("name " + spec.name + " is in use by " + c.id);
      }
    }
    ContainerInfo c;
    char buf[65];
    std::snprintf(buf, sizeof buf, "%064d", ++next_id_);
    c.id = buf;
    c.name = spec.name.empty() ? "auto_" + std::to_string(next_id_) : spec.name;
    c.image = spec.image;
    c.image_id = img->second.id;
    c.labels = spec.labels;
    c.env = spec.env;
    c.cmd = spec.cmd.value_or(img->second.cmd);
    c.entrypoint = spec.entrypoint.value_or(std::vector<std::string>{});
    c.working_dir = spec.working_dir;
    c.user = spec.user;
    c.network = spec.network;
    c.mounts = spec.mounts;
    c.resources = spec.resources;
    c.created = std::chrono::system_clock::now();
    containers_[c.id] = c;
    return c.id;
  }
  Status startContainer(const std::string& id) override {
    std::lock_guard l(mu_);
    ContainerInfo* c = find(id);
    if (!c) return Status::notFound("no such container: " + id);
    if (c->state == ContainerState::kRunning) return Status::failedPrecondition("running");
    c->state = ContainerState::kRunning;
    c->started = std::chrono::system_clock::now();
    c->pid = 4242;
    return Status::ok();
  }
  Status stopContainer(const std::string& id, std::optional<std::chrono::seconds> t) override {
    {
      std::lock_guard l(mu_);
      last_stop_timeout_ = t;
    }
    exit(id, 143);
    return Status::ok();
  }
  Status killContainer(const std::string& id, int sig) override {
    exit(id, 128 + sig);
    return Status::ok();
  }
  Status removeContainer(const std::string& id, bool force) override {
    std::lock_guard l(mu_);
    ContainerInfo* c = find(id);
    if (!c) return Status::notFound("no such container: " + id);
    if (c->state == ContainerState::kRunning && !force)
      return Status::failedPrecondition("running");
    containers_.erase(c->id);
    cv_.notify_all();
    return Status::ok();
  }
  Result<std::vector<ContainerInfo>> listContainers(const runtime::ListOptions& o) override {
    std::lock_guard l(mu_);
    std::vector<ContainerInfo> out;
    for (auto& [_, c] : containers_) {
      if (o.all || c.state == ContainerState::kRunning) out.push_back(c);
    }
    return out;
  }
  Result<ContainerInfo> inspectContainer(const std::string& ref) override {
    std::lock_guard l(mu_);
    ContainerInfo* c = find(ref);
    if (!c) return Status::notFound("no such container: " + ref);
    return *c;
  }
  Result<runtime::ExitStatus> waitContainer(const std::string& ref,
                                            std::optional<Duration> timeout) override {
    std::unique_lock l(mu_);
    auto done = [&] {
      ContainerInfo* c = find(ref);
      return !c || c->state != ContainerState::kRunning;
    };
    if (!cv_.wait_for(l, timeout.value_or(std::chrono::hours(1)), done)) {
      return Status::deadlineExceeded("still running");
    }
    ContainerInfo* c = find(ref);
    if (!c) return Status::notFound("no such container: " + ref);
    return runtime::ExitStatus{c->exit_code, false, c->finished};
  }
  Status readLogs(const std::string& ref, const runtime::LogOptions& o,
                  const runtime::LogSink& sink) override {
    std::vector<runtime::LogEntry> out;
    {
      std::lock_guard l(mu_);
      ContainerInfo* c = find(ref);
      if (!c) return Status::notFound("no such container: " + ref);
      for (const auto& e : logs_[c->id]) {
        if (e.stream == runtime::LogStream::kStdout && !o.include_stdout) continue;
        if (e.stream == runtime::LogStream::kStderr && !o.include_stderr) continue;
        if (o.since && e.time < *o.since) continue;
        if (o.until && e.time >= *o.until) continue;
        out.push_back(e);
      }
    }
    if (o.tail && out.size() > *o.tail) out.erase(out.begin(), out.end() - *o.tail);
    for (const auto& e : out) {
      if (!sink(e)) break;
    }
    return Status::ok();
  }
  Result<runtime::Stats> stats(const std::string&) override { return runtime::Stats{}; }
  Result<runtime::SubscriptionPtr> subscribe(runtime::EventSink) override {
    return Status::unimplemented("no events in this fake");
  }

  std::optional<std::chrono::seconds> last_stop_timeout_;

 private:
  ContainerInfo* find(const std::string& ref) {
    for (auto& [id, c] : containers_) {
      if (id == ref || c.name == ref || (ref.size() >= 4 && id.starts_with(ref))) return &c;
    }
    return nullptr;
  }

  std::mutex mu_;
  std::condition_variable cv_;
  std::map<std::string, runtime::ImageInfo> images_;
  std::map<std::string, ContainerInfo> containers_;
  std::map<std::string, std::vector<runtime::LogEntry>> logs_;
  std::vector<std::string> loaded_files_;
  runtime::ContainerSpec last_spec_;
  int next_id_ = 0;
};

std::string tempDir() {
  char tmpl[] = "/tmp/edge-dockerapi-test-XXXXXX";
  const char* d = ::mkdtemp(tmpl);
  return d ? d : "/tmp";
}

// A raw connection, for what http::Client will not send (bad chunks, half requests) and
// to watch replies arrive piece by piece.
class RawConn {
 public:
  explicit RawConn(const std::string& path) {
    fd_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    std::snprintf(a.sun_path, sizeof a.sun_path, "%s", path.c_str());
    connected_ = ::connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
  }
  ~RawConn() { close(); }
  void close() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }
  bool connected() const { return connected_; }
  bool send(std::string_view data) {
    return ::send(fd_, data.data(), data.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(data.size());
  }
  // Reads until `marker` has arrived (or EOF / 10 s without data); returns all read.
  std::string readUntil(std::string_view marker) {
    while (buf_.find(marker) == std::string::npos) {
      if (!readSome()) break;
    }
    return buf_;
  }
  std::string readAll() {
    while (readSome()) {
    }
    return buf_;
  }

 private:
  bool readSome() {
    pollfd p{fd_, POLLIN, 0};
    if (::poll(&p, 1, 10000) <= 0) return false;
    char tmp[4096];
    ssize_t n = ::recv(fd_, tmp, sizeof tmp, 0);
    if (n <= 0) return false;
    buf_.append(tmp, static_cast<size_t>(n));
    return true;
  }
  int fd_ = -1;
  bool connected_ = false;
  std::string buf_;
};

class DockerApiTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = tempDir();
    ApiServer::Options o;
    o.unix_socket = dir_ + "/run/api.sock";
    o.max_body_bytes = 1 << 20;
    o.stop_grace = 2s;
    server_ = std::make_unique<ApiServer>(o);
    DockerApiOptions d;
    d.node_name = "node-a";
    d.version = "9.9.9";
    d.data_dir = dir_;
    d.temp_dir = dir_ + "/uploads";
    d.on_change = [this] { ++changes_; };
    registerDockerApi(*server_, rt_, d);
    ASSERT_TRUE(server_->start().isOk());
    auto ep = http::Endpoint::parse(o.unix_socket);
    client_ = std::make_unique<http::Client>(*ep);
  }
  void TearDown() override {
    server_.reset();
    (void)fs::removeAll(dir_);
  }

  http::Response call(const std::string& method, const std::string& path,
                      const std::string& body = "") {
    http::Request r{.method = method, .path = path, .body = body};
    if (!body.empty()) r.content_type = "application/json";
    Result<http::Response> res = client_->send(r);
    EXPECT_TRUE(res.isOk()) << res.status().toString();
    return res.isOk() ? *res : http::Response{};
  }
  Json callJson(const std::string& method, const std::string& path, int want_status,
                const std::string& body = "") {
    http::Response res = call(method, path, body);
    EXPECT_EQ(res.status, want_status) << method << " " << path << ": " << res.body;
    Result<Json> j = json::parse(res.body, "reply");
    EXPECT_TRUE(j.isOk()) << res.body;
    return j.isOk() ? *j : Json();
  }
  std::string create(const std::string& name, const std::string& body) {
    Json j = callJson("POST", "/v1.41/containers/create?name=" + name, 201, body);
    return j.value("Id", "");
  }

  std::string dir_;
  MemRuntime rt_;
  std::unique_ptr<ApiServer> server_;
  std::unique_ptr<http::Client> client_;
  std::atomic<int> changes_{0};
};

constexpr char kRunBody[] = R"({
  "Image": "edgecloud/busybox:test", "Cmd": ["sh", "-c", "echo hi; sleep 30"],
  "Entrypoint": null, "Env": ["A=b"], "WorkingDir": "/tmp", "User": "1000:1000",
  "Hostname": "h1", "Labels": {"app": "web"}, "Tty": false, "OpenStdin": false,
  "ExposedPorts": {"80/tcp": {}}, "StopSignal": "SIGINT", "StopTimeout": 7,
  "SomethingNew": {"x": 1},
  "HostConfig": {"Memory": 67108864, "MemorySwap": 0, "NanoCpus": 500000000,
    "PidsLimit": 64, "Binds": ["/srv/data:/data:ro"], "NetworkMode": "default",
    "RestartPolicy": {"Name": "no", "MaximumRetryCount": 0}, "AutoRemove": false,
    "Privileged": false, "CapAdd": null, "Devices": [], "IpcMode": "", "PidMode": ""}})";

TEST_F(DockerApiTest, PingAnswersWithTheHeadersTheCliNegotiatesWith) {
  for (const char* method : {"HEAD", "GET"}) {
    http::Response res = call(method, "/_ping");
    EXPECT_EQ(res.status, 200);
    EXPECT_EQ(res.header("Api-Version"), "1.43");
    EXPECT_EQ(res.header("Ostype"), "linux");
    EXPECT_EQ(res.header("Docker-Experimental"), "false");
    EXPECT_NE(res.header("Cache-Control").find("no-cache"), std::string::npos);
    EXPECT_EQ(res.body, std::string(method) == "GET" ? "OK" : "");
  }
  EXPECT_EQ(call("GET", "/v1.24/_ping").status, 200);
}

TEST_F(DockerApiTest, ClientVersionsOutsideTheRangeAreRefusedClearly) {
  Json j = callJson("GET", "/v1.12/version", 400);
  EXPECT_NE(j["message"].get<std::string>().find("too old"), std::string::npos);
  j = callJson("GET", "/v1.99/version", 400);
  EXPECT_NE(j["message"].get<std::string>().find("too new"), std::string::npos);
}

TEST_F(DockerApiTest, VersionAndInfoCarryWhatTheCliPrints) {
  Json v = callJson("GET", "/v1.41/version", 200);
  EXPECT_EQ(v["Version"], "9.9.9");
  EXPECT_EQ(v["ApiVersion"], "1.43");
  EXPECT_EQ(v["MinAPIVersion"], "1.24");
  EXPECT_EQ(v["Os"], "linux");
  Json i = callJson("GET", "/v1.41/info", 200);
  EXPECT_EQ(i["Name"], "node-a");
  EXPECT_EQ(i["ServerVersion"], "9.9.9");
  EXPECT_EQ(i["OSType"], "linux");
  EXPECT_EQ(i["CgroupVersion"], "2");
  EXPECT_EQ(i["DefaultRuntime"], "mem");
  EXPECT_EQ(i["Images"], 1);
  EXPECT_EQ(i["DockerRootDir"], dir_);
  for (const char* f :
       {"ID", "Containers", "ContainersRunning", "ContainersPaused", "ContainersStopped", "Driver",
        "OperatingSystem", "Architecture", "NCPU", "MemTotal", "KernelVersion", "CgroupDriver",
        "SecurityOptions", "Runtimes"}) {
    EXPECT_TRUE(i.contains(f)) << f;
  }
}

TEST_F(DockerApiTest, CreateMapsTheCliBodyToASpec) {
  int before = changes_;
  Json j = callJson("POST", "/v1.41/containers/create?name=x", 201, kRunBody);
  ASSERT_EQ(j["Id"].get<std::string>().size(), 64u);
  EXPECT_GT(changes_, before);
  // The default network became host, and the user is told.
  ASSERT_EQ(j["Warnings"].size(), 1u);
  EXPECT_NE(j["Warnings"][0].get<std::string>().find("host network"), std::string::npos);
  runtime::ContainerSpec s = rt_.lastSpec();
  EXPECT_EQ(s.name, "x");
  EXPECT_EQ(s.image, "edgecloud/busybox:test");
  EXPECT_EQ(s.cmd, (std::vector<std::string>{"sh", "-c", "echo hi; sleep 30"}));
  EXPECT_FALSE(s.entrypoint.has_value());
  EXPECT_EQ(s.env, std::vector<std::string>{"A=b"});
  EXPECT_EQ(s.working_dir, "/tmp");
  EXPECT_EQ(s.user, "1000:1000");
  EXPECT_EQ(s.hostname, "h1");
  EXPECT_EQ(s.labels, (std::map<std::string, std::string>{{"app", "web"}}));
  EXPECT_EQ(s.labels.count(runtime::kManagedLabel), 0u);
  EXPECT_EQ(s.resources.memory_bytes, 64 << 20);
  EXPECT_EQ(s.resources.nano_cpus, 500'000'000);
  EXPECT_EQ(s.resources.pids_limit, 64);
  ASSERT_EQ(s.mounts.size(), 1u);
  EXPECT_EQ(s.mounts[0].source, "/srv/data");
  EXPECT_EQ(s.mounts[0].target, "/data");
  EXPECT_TRUE(s.mounts[0].read_only);
  EXPECT_EQ(s.network, runtime::NetworkMode::kHost);
  EXPECT_EQ(s.stop_signal, "SIGINT");
  EXPECT_EQ(s.stop_timeout, std::chrono::seconds(7));
}

TEST_F(DockerApiTest, CreateConvertsCpuQuotaAndHonoursNoneNetwork) {
  create("q", R"({"Image":"edgecloud/busybox:test","HostConfig":{"CpuQuota":50000,
      "CpuPeriod":100000,"NetworkMode":"none","PidsLimit":-1}})");
  runtime::ContainerSpec s = rt_.lastSpec();
  EXPECT_EQ(s.resources.nano_cpus, 500'000'000);
  EXPECT_EQ(s.resources.pids_limit, 0);
  EXPECT_EQ(s.network, runtime::NetworkMode::kNone);
}

TEST_F(DockerApiTest, CreateWarnsAboutWhatItDrops) {
  Json j = callJson("POST", "/containers/create", 201, R"({"Image":"edgecloud/busybox:test",
      "HostConfig":{"NetworkMode":"host","RestartPolicy":{"Name":"always"},
      "PortBindings":{"80/tcp":[{"HostIp":"","HostPort":"18099"}]}}})");
  std::string all = j["Warnings"].dump();
  EXPECT_NE(all.find("restart policy 'always'"), std::string::npos) << all;
  EXPECT_NE(all.find("published ports are ignored"), std::string::npos) << all;
}

TEST_F(DockerApiTest, CreateRefusesBadBodiesNamingTheField) {
  struct Case {
    const char* body;
    const char* says;
  } cases[] = {
      {"", "empty"},
      {"{not json", "not valid JSON"},
      {"[1,2]", "expected a JSON object"},
      {R"({"Cmd":["x"]})", "Image: required"},
      {R"({"Image":"edgecloud/busybox:test","HostConfig":{"Memory":"64m"}})",
       "HostConfig.Memory: expected an integer, got string"},
      {R"({"Image":"edgecloud/busybox:test","Env":["A=b",3]})", "Env[1]: expected a string"},
      {R"({"Image":"edgecloud/busybox:test","HostConfig":{"Privileged":true}})",
       "HostConfig.Privileged: privileged"},
      {R"({"Image":"edgecloud/busybox:test","HostConfig":{"CapAdd":["NET_ADMIN"]}})",
       "HostConfig.CapAdd"},
      {R"({"Image":"edgecloud/busybox:test","Tty":true})", "Tty: terminals"},
      {R"({"Image":"edgecloud/busybox:test","HostConfig":{"AutoRemove":true}})", "--rm"},
      {R"({"Image":"edgecloud/busybox:test","HostConfig":{"NetworkMode":"mynet"}})",
       "use host or none"},
      {R"({"Image":"edgecloud/busybox:test","HostConfig":{"Binds":["vol:/data"]}})",
       "named volume"},
      {R"({"Image":"edgecloud/busybox:test","HostConfig":{"Memory":1024}})", "6 MiB"},
      {R"({"Image":"edgecloud/busybox:test","StopSignal":"SIGNOPE"})", "StopSignal"},
      {R"({"Image":"edgecloud/busybox:test","HostConfig":{"NanoCpus":1,"CpuQuota":5000}})",
       "conflicting"},
  };
  for (const Case& c : cases) {
    Json j = callJson("POST", "/v1.41/containers/create", 400, c.body);
    EXPECT_NE(j.value("message", "").find(c.says), std::string::npos)
        << c.body << " -> " << j.dump();
  }
  Json j = callJson("POST", "/containers/create?name=-bad", 400, R"({"Image":"x"})");
  EXPECT_NE(j.value("message", "").find("Invalid container name"), std::string::npos);
}

TEST_F(DockerApiTest, CreateOfAMissingImageIsNoSuchImage) {
  Json j = callJson("POST", "/v1.41/containers/create", 404, R"({"Image":"nothere"})");
  EXPECT_EQ(j["message"], "No such image: nothere:latest");
  // The CLI then tries a pull, which says what to do instead.
  j = callJson("POST", "/v1.41/images/create?fromImage=nothere&tag=latest", 404);
  EXPECT_NE(j["message"].get<std::string>().find("docker load"), std::string::npos);
}

TEST_F(DockerApiTest, NameConflictIs409) {
  create("dup", R"({"Image":"edgecloud/busybox:test","HostConfig":{"NetworkMode":"host"}})");
  Json j =
      callJson("POST", "/containers/create?name=dup", 409, R"({"Image":"edgecloud/busybox:test"})");
  EXPECT_NE(j["message"].get<std::string>().find("already in use"), std::string::npos);
}

TEST_F(DockerApiTest, LifecycleAnswersAsDockerd) {
  std::string id = create("life", kRunBody);
  EXPECT_EQ(call("POST", "/v1.41/containers/life/start").status, 204);
  EXPECT_EQ(call("POST", "/v1.41/containers/life/start").status, 304);
  Json ins = callJson("GET", "/v1.41/containers/life/json", 200);
  EXPECT_EQ(ins["Id"], id);
  EXPECT_EQ(ins["Name"], "/life");
  EXPECT_EQ(ins["State"]["Status"], "running");
  EXPECT_EQ(ins["State"]["Running"], true);
  EXPECT_EQ(ins["State"]["Pid"], 4242);
  EXPECT_EQ(ins["Path"], "sh");
  EXPECT_EQ(ins["Args"], Json::array({"-c", "echo hi; sleep 30"}));
  EXPECT_EQ(ins["Config"]["Tty"], false);
  EXPECT_EQ(ins["Config"]["Image"], "edgecloud/busybox:test");
  EXPECT_EQ(ins["Config"]["Env"], Json::array({"A=b"}));
  EXPECT_EQ(ins["HostConfig"]["Memory"], 64 << 20);
  EXPECT_EQ(ins["HostConfig"]["NetworkMode"], "host");
  EXPECT_EQ(ins["HostConfig"]["RestartPolicy"]["Name"], "no");
  EXPECT_EQ(ins["Mounts"][0]["Destination"], "/data");
  EXPECT_EQ(ins["State"]["FinishedAt"], "0001-01-01T00:00:00Z");

  Json kill = callJson("POST", "/containers/life/kill?signal=NOPE", 400);
  EXPECT_NE(kill["message"].get<std::string>().find("signal"), std::string::npos);
  Json rm = callJson("DELETE", "/v1.41/containers/life", 409);
  EXPECT_NE(rm["message"].get<std::string>().find("Stop the container"), std::string::npos);
  EXPECT_EQ(call("POST", "/v1.41/containers/life/stop?t=1").status, 204);
  EXPECT_EQ(rt_.last_stop_timeout_, std::chrono::seconds(1));
  EXPECT_EQ(call("POST", "/v1.41/containers/life/stop?t=1").status, 304);
  Json bad_t = callJson("POST", "/v1.41/containers/life/stop?t=soon", 400);
  EXPECT_NE(bad_t["message"].get<std::string>().find("t='soon'"), std::string::npos);
  ins = callJson("GET", "/v1.41/containers/life/json", 200);
  EXPECT_EQ(ins["State"]["Status"], "exited");
  EXPECT_EQ(ins["State"]["ExitCode"], 143);
  EXPECT_EQ(callJson("POST", "/containers/life/kill", 409)["message"].get<std::string>().find(
                "is not running") != std::string::npos,
            true);
  EXPECT_EQ(call("POST", "/v1.41/containers/life/restart?t=0").status, 204);
  EXPECT_EQ(callJson("GET", "/containers/life/json", 200)["State"]["Running"], true);
  EXPECT_EQ(call("DELETE", "/v1.41/containers/life?force=1").status, 204);
  Json gone = callJson("GET", "/v1.41/containers/life/json", 404);
  EXPECT_EQ(gone["message"], "No such container: life");
  EXPECT_EQ(callJson("POST", "/containers/life/start", 404)["message"], "No such container: life");
}

TEST_F(DockerApiTest, ListShowsRunningByDefaultAndFilters) {
  create("a", R"({"Image":"edgecloud/busybox:test","Labels":{"tier":"web"}})");
  create("b", R"({"Image":"edgecloud/busybox:test","Labels":{"tier":"db"}})");
  ASSERT_EQ(call("POST", "/containers/a/start").status, 204);
  Json running = callJson("GET", "/v1.41/containers/json", 200);
  ASSERT_EQ(running.size(), 1u);
  EXPECT_EQ(running[0]["Names"][0], "/a");
  EXPECT_EQ(running[0]["State"], "running");
  EXPECT_EQ(running[0]["Status"].get<std::string>().rfind("Up ", 0), 0u);
  EXPECT_EQ(running[0]["Command"], "sh");
  Json all = callJson("GET", "/v1.41/containers/json?all=1", 200);
  EXPECT_EQ(all.size(), 2u);
  auto names = [&](const std::string& filters) {
    Json j = callJson("GET", "/containers/json?all=1&filters=" + http::urlEncode(filters), 200);
    std::vector<std::string> out;
    for (const Json& c : j) out.push_back(c["Names"][0]);
    std::sort(out.begin(), out.end());
    return out;
  };
  EXPECT_EQ(names(R"({"label":["tier=db"]})"), std::vector<std::string>{"/b"});
  EXPECT_EQ(names(R"({"label":["tier"]})"), (std::vector<std::string>{"/a", "/b"}));
  EXPECT_EQ(names(R"({"name":["^a$"]})"), std::vector<std::string>{"/a"});
  EXPECT_EQ(names(R"({"status":["created"]})"), std::vector<std::string>{"/b"});
  EXPECT_EQ(names(R"({"status":{"running":true}})"), std::vector<std::string>{"/a"});
  EXPECT_EQ(names(R"({"id":["0000"]})"), (std::vector<std::string>{"/a", "/b"}));
  EXPECT_EQ(names(R"({"ancestor":["edgecloud/busybox:test"]})"),
            (std::vector<std::string>{"/a", "/b"}));
  Json bad =
      callJson("GET", "/containers/json?filters=" + http::urlEncode(R"({"colour":["x"]})"), 400);
  EXPECT_NE(bad["message"].get<std::string>().find("invalid filter 'colour'"), std::string::npos);
  callJson("GET", "/containers/json?filters=" + http::urlEncode("{oops"), 400);
  callJson("GET", "/containers/json?filters=" + http::urlEncode(R"({"status":["sleepy"]})"), 400);
}

// Sends `wait` on a raw connection and returns it once the reply's headers arrived.
std::unique_ptr<RawConn> startWait(const std::string& sock, const std::string& path) {
  auto c = std::make_unique<RawConn>(sock);
  EXPECT_TRUE(c->connected());
  c->send("POST " + path + " HTTP/1.1\r\nHost: docker\r\nContent-Length: 0\r\n\r\n");
  std::string head = c->readUntil("\r\n\r\n");
  EXPECT_NE(head.find("HTTP/1.1 200"), std::string::npos) << head;
  EXPECT_NE(head.find("Transfer-Encoding: chunked"), std::string::npos) << head;
  return c;
}

TEST_F(DockerApiTest, WaitNextExitSentBeforeStartReportsTheExit) {
  create("w", R"({"Image":"edgecloud/busybox:test"})");
  // The CLI's order: wait (headers come back at once), then start, then the exit.
  auto wait =
      startWait(server_->options().unix_socket, "/v1.41/containers/w/wait?condition=next-exit");
  ASSERT_EQ(call("POST", "/v1.41/containers/w/start").status, 204);
  rt_.exit("w", 3);
  std::string all = wait->readUntil("}");
  EXPECT_NE(all.find(R"({"Error":null,"StatusCode":3})"), std::string::npos) << all;
}

TEST_F(DockerApiTest, WaitNotRunningAndRemoved) {
  create("n", R"({"Image":"edgecloud/busybox:test"})");
  // not-running on a created container answers at once.
  http::Response r = call("POST", "/containers/n/wait");
  EXPECT_NE(r.body.find(R"("StatusCode":0)"), std::string::npos) << r.body;
  ASSERT_EQ(call("POST", "/containers/n/start").status, 204);
  auto removed = startWait(server_->options().unix_socket, "/containers/n/wait?condition=removed");
  rt_.exit("n", 7);
  ASSERT_EQ(call("DELETE", "/containers/n").status, 204);
  std::string all = removed->readUntil("}");
  EXPECT_NE(all.find(R"("StatusCode":7)"), std::string::npos) << all;
  Json bad = callJson("POST", "/containers/x/wait?condition=whenever", 400);
  EXPECT_NE(bad["message"].get<std::string>().find("not-running"), std::string::npos);
}

std::vector<runtime::LogEntry> decodeLogs(const std::string& body, bool timestamps) {
  std::vector<runtime::LogEntry> out;
  runtime::docker::LogDecoder dec({.framed = true, .timestamps = timestamps});
  auto sink = [&](const runtime::LogEntry& e) {
    out.push_back(e);
    return true;
  };
  EXPECT_TRUE(dec.feed(body, sink).isOk());
  EXPECT_TRUE(dec.finish(sink).isOk());
  return out;
}

TEST_F(DockerApiTest, LogsAreFramedPerStream) {
  create("l", R"({"Image":"edgecloud/busybox:test"})");
  rt_.log("l", runtime::LogStream::kStdout, "one\n");
  rt_.log("l", runtime::LogStream::kStderr, "two\n");
  rt_.log("l", runtime::LogStream::kStdout, "three\n");
  http::Response r = call("GET", "/v1.41/containers/l/logs?stdout=1&stderr=1&tail=all");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.header("Content-Type"), "application/vnd.docker.raw-stream");
  auto entries = decodeLogs(r.body, false);
  ASSERT_EQ(entries.size(), 3u);
  EXPECT_EQ(entries[0].data, "one\n");
  EXPECT_EQ(entries[1].stream, runtime::LogStream::kStderr);
  EXPECT_EQ(entries[2].data, "three\n");

  r = call("GET", "/v1.43/containers/l/logs?stdout=1&tail=1&timestamps=1");
  EXPECT_EQ(r.header("Content-Type"), "application/vnd.docker.multiplexed-stream");
  entries = decodeLogs(r.body, true);
  ASSERT_EQ(entries.size(), 1u);
  EXPECT_EQ(entries[0].data, "three\n");
  EXPECT_NE(entries[0].time, WallTime{});

  Json none = callJson("GET", "/containers/l/logs", 400);
  EXPECT_NE(none["message"].get<std::string>().find("at least one stream"), std::string::npos);
  callJson("GET", "/containers/l/logs?stdout=1&since=yesterday", 400);
  EXPECT_EQ(callJson("GET", "/containers/nope/logs?stdout=1", 404)["message"],
            "No such container: nope");
}

TEST_F(DockerApiTest, FollowedLogsEndWhenTheContainerExits) {
  create("f", R"({"Image":"edgecloud/busybox:test"})");
  ASSERT_EQ(call("POST", "/containers/f/start").status, 204);
  rt_.log("f", runtime::LogStream::kStdout, "before\n");
  RawConn c(server_->options().unix_socket);
  c.send("GET /v1.41/containers/f/logs?stdout=1&follow=1 HTTP/1.1\r\nHost: d\r\n\r\n");
  c.readUntil("before\n");
  rt_.log("f", runtime::LogStream::kStdout, "after\n");
  c.readUntil("after\n");
  rt_.exit("f", 0);
  std::string all = c.readUntil("0\r\n\r\n");
  EXPECT_NE(all.find("before\n"), std::string::npos);
  EXPECT_EQ(all.find("before\n"), all.rfind("before\n")) << "sent twice: " << all;
  EXPECT_NE(all.find("after\n"), std::string::npos);
  EXPECT_NE(all.find("\r\n0\r\n\r\n"), std::string::npos) << "the stream did not end";
}

TEST_F(DockerApiTest, ImagesListInspectLoadRemove) {
  Json list = callJson("GET", "/v1.41/images/json", 200);
  ASSERT_EQ(list.size(), 1u);
  EXPECT_EQ(list[0]["RepoTags"], Json::array({"edgecloud/busybox:test"}));
  // The CLI sends names with '/' and ':' unescaped.
  Json img = callJson("GET", "/v1.41/images/edgecloud/busybox:test/json", 200);
  EXPECT_EQ(img["RootFS"]["Layers"], Json::array({"sha256:layer"}));
  EXPECT_EQ(img["Os"], "linux");
  EXPECT_EQ(callJson("GET", "/images/nope:1/json", 404)["message"], "No such image: nope:1");

  // A chunked upload, bigger than any non-streamed body may be.
  std::string tar = "IMAGE edgecloud/hello:latest\n" + std::string(3 << 20, 'x');
  size_t sent = 0;
  http::Request load{.method = "POST", .path = "/v1.41/images/load?quiet=1"};
  load.content_type = "application/x-tar";
  load.body_source = [&](char* buf, size_t cap) -> Result<size_t> {
    size_t n = std::min(cap, tar.size() - sent);
    std::memcpy(buf, tar.data() + sent, n);
    sent += n;
    return n;
  };
  Result<http::Response> res = client_->send(load);
  ASSERT_TRUE(res.isOk()) << res.status().toString();
  EXPECT_EQ(res->status, 200) << res->body;
  EXPECT_EQ(res->body, "{\"stream\":\"Loaded image: edgecloud/hello:latest\\n\"}\n");
  ASSERT_EQ(rt_.loadedFiles().size(), 1u);
  EXPECT_EQ(rt_.loadedFiles()[0].rfind(dir_ + "/uploads/", 0), 0u);
  EXPECT_FALSE(fs::exists(rt_.loadedFiles()[0])) << "the upload was left behind";

  Json bad = callJson("POST", "/images/load", 400, "this is not a tarball");
  EXPECT_NE(bad["message"].get<std::string>().find("not an image tarball"), std::string::npos);
  Json empty = callJson("POST", "/images/load", 400);
  EXPECT_NE(empty["message"].get<std::string>().find("empty request body"), std::string::npos);

  create("user", R"({"Image":"edgecloud/hello:latest"})");
  Json busy = callJson("DELETE", "/v1.41/images/edgecloud/hello:latest", 409);
  EXPECT_NE(busy["message"].get<std::string>().find("unable to remove"), std::string::npos);
  Json del = callJson("DELETE", "/v1.41/images/edgecloud/hello:latest?force=1", 200);
  EXPECT_EQ(del[0]["Untagged"], "edgecloud/hello:latest");
  EXPECT_TRUE(del[1].contains("Deleted"));
  callJson("DELETE", "/v1.41/images/edgecloud/hello:latest", 404);
}

TEST_F(DockerApiTest, UnsupportedEndpointsSaySo) {
  std::string id = create("u", R"({"Image":"edgecloud/busybox:test"})");
  Json j = callJson("POST", "/v1.41/containers/u/attach?stream=1&stdout=1", 404);
  EXPECT_NE(j["message"].get<std::string>().find("docker run -d"), std::string::npos);
  j = callJson("GET", "/v1.41/networks", 404);
  EXPECT_NE(j["message"].get<std::string>().find("not supported by Edgecloud"), std::string::npos);
  j = callJson("GET", "/no/such/thing", 404);
  EXPECT_NE(j["message"].get<std::string>().find("no such endpoint"), std::string::npos);
}

// --- hostile input ------------------------------------------------------------------------

TEST_F(DockerApiTest, HostileRequestsGetErrorsAndTheServerKeepsServing) {
  const std::string& sock = server_->options().unix_socket;
  {
    // A body over the limit: refused without reading it.
    RawConn c(sock);
    c.send(
        "POST /containers/create HTTP/1.1\r\nHost: d\r\nContent-Type: application/json\r\n"
        "Content-Length: 999999999\r\n\r\n{");
    std::string r = c.readAll();
    EXPECT_NE(r.find("HTTP/1.1 413"), std::string::npos) << r;
    EXPECT_NE(r.find("\"message\""), std::string::npos) << r;
  }
  {
    // The same, chunked: counted as it arrives.
    RawConn c(sock);
    c.send("POST /containers/create HTTP/1.1\r\nHost: d\r\nTransfer-Encoding: chunked\r\n\r\n");
    std::string chunk = "100000\r\n" + std::string(0x100000, 'a') + "\r\n";
    c.send(chunk);
    c.send(chunk);
    std::string r = c.readAll();
    EXPECT_NE(r.find("HTTP/1.1 413"), std::string::npos) << r.substr(0, 200);
  }
  {
    RawConn c(sock);
    c.send(
        "POST /containers/create HTTP/1.1\r\nHost: d\r\nTransfer-Encoding: chunked\r\n\r\n"
        "zz\r\nhello\r\n0\r\n\r\n");
    std::string r = c.readAll();
    EXPECT_NE(r.find("HTTP/1.1 400"), std::string::npos) << r;
    EXPECT_NE(r.find("chunked"), std::string::npos) << r;
  }
  {
    // A POST without a length has no body; it must not wait for one.
    RawConn c(sock);
    c.send("POST /containers/nope/start HTTP/1.1\r\nHost: d\r\n\r\n");
    std::string r = c.readUntil("}");
    EXPECT_NE(r.find("HTTP/1.1 404"), std::string::npos) << r;
  }
  {
    RawConn c(sock);
    c.send("GET /_ping HTTP/1.1\r\nHost: d\r\n");
    std::string big(2000, 'h');
    for (int i = 0; i < 100; ++i) c.send("X-" + std::to_string(i) + ": " + big + "\r\n");
    c.send("\r\n");
    std::string r = c.readAll();
    EXPECT_NE(r.find("HTTP/1.1 431"), std::string::npos) << r.substr(0, 200);
  }
  {
    RawConn c(sock);
    c.send("\x16\x03\x01garbage that is not HTTP\r\n\r\n");
    c.readAll();
  }
  EXPECT_EQ(call("GET", "/_ping").status, 200);
}

// --- the server itself --------------------------------------------------------------------

class ApiServerTest : public ::testing::Test {
 protected:
  void SetUp() override { dir_ = tempDir(); }
  void TearDown() override { (void)fs::removeAll(dir_); }
  std::string dir_;
};

TEST_F(ApiServerTest, PathHelpers) {
  EXPECT_EQ(ApiServer::versionlessPath("/v1.41/containers/json"), "/containers/json");
  EXPECT_EQ(ApiServer::versionlessPath("/v1.41"), "/");
  EXPECT_EQ(ApiServer::versionlessPath("/containers/json"), "/containers/json");
  EXPECT_EQ(ApiServer::versionlessPath("/v1x/containers"), "/v1x/containers");
  EXPECT_EQ(ApiServer::versionlessPath("/volumes"), "/volumes");
  EXPECT_EQ(ApiServer::pathApiVersion("/v1.24/info"), "1.24");
  EXPECT_EQ(ApiServer::pathApiVersion("/info"), "");
}

TEST_F(ApiServerTest, SocketIsPrivateAndAStaleOneIsReplacedButALiveOneIsNot) {
  ApiServer::Options o;
  o.unix_socket = dir_ + "/sub/dir/api.sock";
  o.socket_group = "no-such-group-here";  // a warning, not an error
  {
    ApiServer a(o);
    ASSERT_TRUE(a.start().isOk());
    struct stat st {};
    ASSERT_EQ(::stat(o.unix_socket.c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 0777, 0660u);
    ApiServer b(o);
    Status s = b.start();
    EXPECT_EQ(s.code(), StatusCode::kAlreadyExists) << s.toString();
    EXPECT_TRUE(fs::exists(o.unix_socket)) << "the live socket was removed";
  }
  EXPECT_FALSE(fs::exists(o.unix_socket));
  // A stale socket file (its server died without cleaning up).
  {
    int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    std::snprintf(a.sun_path, sizeof a.sun_path, "%s", o.unix_socket.c_str());
    ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
    ::close(fd);
  }
  ApiServer c(o);
  EXPECT_TRUE(c.start().isOk());
  c.stop();
  ASSERT_TRUE(fs::writeFileAtomic(o.unix_socket, "precious").isOk());
  ApiServer d(o);
  EXPECT_EQ(d.start().code(), StatusCode::kFailedPrecondition);
  EXPECT_TRUE(fs::exists(o.unix_socket));
}

TEST_F(ApiServerTest, TcpPortZeroReportsTheBoundPort) {
  ApiServer::Options o;
  o.tcp_address = "127.0.0.1:0";
  ApiServer s(o);
  s.raw().Get("/hello", [](const httplib::Request&, httplib::Response& r) {
    r.set_content("hi", "text/plain");
  });
  ASSERT_TRUE(s.start().isOk());
  ASSERT_GT(s.boundTcpPort(), 0);
  http::Client c(*http::Endpoint::parse("tcp://127.0.0.1:" + std::to_string(s.boundTcpPort())));
  Result<http::Response> r = c.send({.path = "/hello"});
  ASSERT_TRUE(r.isOk()) << r.status().toString();
  EXPECT_EQ(r->body, "hi");
  ApiServer bad({.tcp_address = "127.0.0.1:http"});
  EXPECT_EQ(bad.start().code(), StatusCode::kInvalidArgument);
}

TEST_F(ApiServerTest, LongRequestsEndWhenTheClientLeavesOrTheServerStops) {
  ApiServer::Options o;
  o.unix_socket = dir_ + "/api.sock";
  o.stop_grace = 30s;  // stop() must not need it: handlers notice on their own
  ApiServer s(o);
  std::promise<void> entered[2];
  std::promise<bool> kept[2];
  std::atomic<int> calls{0};
  s.raw().Get("/hold", [&](const httplib::Request&, httplib::Response& r) {
    int n = calls++;
    entered[n].set_value();
    kept[n].set_value(s.waitFor(60s));
    r.set_content("late", "text/plain");
  });
  ASSERT_TRUE(s.start().isOk());
  {
    // The request arrives with the client's hang-up right behind it.
    RawConn c(o.unix_socket);
    c.send("GET /hold HTTP/1.1\r\nHost: d\r\n\r\n");
  }
  auto f = kept[0].get_future();
  ASSERT_EQ(f.wait_for(10s), std::future_status::ready);
  EXPECT_FALSE(f.get());

  RawConn c2(o.unix_socket);
  c2.send("GET /hold HTTP/1.1\r\nHost: d\r\n\r\n");
  entered[1].get_future().wait();
  auto t0 = std::chrono::steady_clock::now();
  s.stop();
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 10s);
  auto f2 = kept[1].get_future();
  ASSERT_EQ(f2.wait_for(0s), std::future_status::ready);
  EXPECT_FALSE(f2.get());
  EXPECT_EQ(s.activeConnections(), 0u);
}

TEST_F(ApiServerTest, ConnectionsBeyondTheCapAreTurnedAway) {
  ApiServer::Options o;
  o.unix_socket = dir_ + "/api.sock";
  o.max_connections = 2;
  ApiServer s(o);
  ASSERT_TRUE(s.start().isOk());
  // Accepted in order: a and b hold the two places when c arrives.
  RawConn a(o.unix_socket), b(o.unix_socket);
  RawConn c(o.unix_socket);
  std::string r = c.readAll();
  EXPECT_NE(r.find("503"), std::string::npos) << r;
  EXPECT_NE(r.find("too many connections"), std::string::npos) << r;
  a.close();
  b.close();
}

}  // namespace
}  // namespace edge::edged::api
