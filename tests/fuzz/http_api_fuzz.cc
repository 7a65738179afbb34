// http_api_fuzz: raw bytes from a client of the node API socket. One ApiServer with the
// Docker API subset registered listens on a unix socket in a temp dir for the whole run;
// each input is written on a fresh connection, the write side is shut down, and the
// reply is read until the server closes. The server must answer or close within 4 s
// (less than libFuzzer's -timeout), never crash, and leave no connection behind.
//
// The REST routes (/api/v1, edged/api/rest_api.h) are not registered: they need
// a Node, which opens a real runtime and store and cannot be made hermetic here. Their
// bodies go through the parsers fuzzed by manifest_fuzz; their routing and the server's
// request handling are shared with the Docker routes fuzzed here.
//
// The runtime behind the routes is a stateless stub (one image, one running container,
// every change accepted and forgotten), so an input's outcome does not depend on the
// inputs before it.
#include <poll.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <string>
#include <thread>

#include "common/http_server.h"
#include "common/log.h"
#include "edged/api/docker_api.h"
#include "tests/fuzz/fuzz_check.h"

namespace {

using namespace edge;
using namespace std::chrono_literals;

constexpr char kImage[] = "busybox:latest";
constexpr char kImageId[] =
    "sha256:1111111111111111111111111111111111111111111111111111111111111111";
constexpr char kContainerId[] = "2222222222222222222222222222222222222222222222222222222222222222";

class StubRuntime : public runtime::ContainerRuntime {
 public:
  std::string kind() const override { return "light"; }
  Result<runtime::RuntimeInfo> info() override {
    return runtime::RuntimeInfo{.kind = "light", .version = "0", .containers = 1, .images = 1};
  }
  Result<std::vector<runtime::ImageInfo>> loadImage(const std::string&) override {
    return Status::invalidArgument("not an image tarball");
  }
  Result<std::vector<runtime::ImageInfo>> listImages() override { return {{image()}}; }
  Result<runtime::ImageInfo> inspectImage(const std::string& ref) override {
    if (runtime::normalizeImageRef(ref) != kImage && ref != kImageId)
      return Status::notFound("no such image: " + ref);
    return image();
  }
  Status removeImage(const std::string&, bool) override {
    return Status::failedPrecondition("image in use");
  }
  Result<std::string> createContainer(const runtime::ContainerSpec&) override {
    return std::string(kContainerId);
  }
  Status startContainer(const std::string& id) override { return known(id); }
  Status stopContainer(const std::string& id, std::optional<std::chrono::seconds>) override {
    return known(id);
  }
  Status killContainer(const std::string& id, int) override { return known(id); }
  Status removeContainer(const std::string& id, bool) override { return known(id); }
  Result<std::vector<runtime::ContainerInfo>> listContainers(const runtime::ListOptions&) override {
    return {{container()}};
  }
  Result<runtime::ContainerInfo> inspectContainer(const std::string& id) override {
    RETURN_IF_ERROR(known(id));
    return container();
  }
  Result<runtime::ExitStatus> waitContainer(const std::string& id,
                                            std::optional<Duration>) override {
    RETURN_IF_ERROR(known(id));
    return runtime::ExitStatus{.exit_code = 0};
  }
  Status readLogs(const std::string& id, const runtime::LogOptions&,
                  const runtime::LogSink& sink) override {
    RETURN_IF_ERROR(known(id));
    if (sink({.stream = runtime::LogStream::kStdout, .data = "out\n"}))
      sink({.stream = runtime::LogStream::kStderr, .data = "err"});
    return Status::ok();
  }
  Result<runtime::Stats> stats(const std::string& id) override {
    RETURN_IF_ERROR(known(id));
    return runtime::Stats{.cpu_usage_ns = 1, .memory_usage_bytes = 4096, .pids = 1};
  }
  Result<runtime::SubscriptionPtr> subscribe(runtime::EventSink) override {
    return runtime::SubscriptionPtr(new runtime::Subscription());
  }

 private:
  static Status known(const std::string& id) {
    if (id == "c1" || (!id.empty() && std::string_view(kContainerId).starts_with(id)))
      return Status::ok();
    return Status::notFound("no such container: " + id);
  }
  static runtime::ImageInfo image() {
    return {.id = kImageId, .tags = {kImage}, .os = "linux", .architecture = "amd64"};
  }
  static runtime::ContainerInfo container() {
    return {.id = kContainerId,
            .name = "c1",
            .image = kImage,
            .image_id = kImageId,
            .state = runtime::ContainerState::kRunning,
            .pid = 1,
            .labels = {{"a", "b"}}};
  }
};

struct Harness {
  std::string dir;
  std::string socket;
  StubRuntime runtime;
  std::unique_ptr<http::ApiServer> server;
};

Harness* harness = nullptr;

void shutDown() {
  if (harness == nullptr) return;
  harness->server->stop();
  std::error_code ec;
  std::filesystem::remove_all(harness->dir, ec);
  delete harness;
  harness = nullptr;
}

Harness& start() {
  if (harness != nullptr) return *harness;
  char tmpl[] = "/tmp/edge-http-fuzz-XXXXXX";
  if (mkdtemp(tmpl) == nullptr)
    edge::fuzz::fail("mkdtemp", "cannot create a temp dir", __FILE__, __LINE__);
  // One info line per created container would bury libFuzzer's own output.
  log::setLevel(log::Level::kOff);
  harness = new Harness;
  harness->dir = tmpl;
  harness->socket = harness->dir + "/api.sock";
  http::ApiServer::Options o;
  o.unix_socket = harness->socket;
  // Short enough that a stalled read ends well within the 4 s answer budget.
  o.read_timeout = 1s;
  o.write_timeout = 1s;
  o.keep_alive_timeout = 1s;
  o.max_body_bytes = 1 << 20;
  o.stop_grace = 100ms;
  harness->server = std::make_unique<http::ApiServer>(o);
  edged::registerDockerApi(*harness->server, harness->runtime,
                           {.node_name = "fuzz",
                            .version = "0.0.0",
                            .data_dir = harness->dir,
                            .temp_dir = harness->dir + "/uploads"});
  Status s = harness->server->start();
  FUZZ_CHECK(s.isOk(), "server did not start: " + s.toString());
  std::atexit(shutDown);
  return *harness;
}

int connectTo(const std::string& path) {
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  FUZZ_CHECK(fd >= 0, "socket() failed");
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  path.copy(addr.sun_path, sizeof(addr.sun_path) - 1);
  FUZZ_CHECK(::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0,
             "cannot connect to " + path);
  return fd;
}

// Reads until the server closes; false if it has not within `budget`.
bool readUntilClosed(int fd, std::chrono::milliseconds budget) {
  auto deadline = std::chrono::steady_clock::now() + budget;
  char buf[16384];
  for (;;) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left <= 0ms) return false;
    pollfd p{fd, POLLIN, 0};
    int r = ::poll(&p, 1, static_cast<int>(left.count()));
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return false;
    ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return true;  // EOF, or ECONNRESET from a server that closed early
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  Harness& h = start();
  int fd = connectTo(h.socket);
  // The server may close before reading everything (a 400 on a bad request line): a
  // failed send is an answer, not a bug.
  size_t sent = 0;
  while (sent < size) {
    ssize_t n = ::send(fd, data + sent, size - sent, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    sent += static_cast<size_t>(n);
  }
  ::shutdown(fd, SHUT_WR);
  bool closed = readUntilClosed(fd, 4s);
  ::close(fd);
  FUZZ_CHECK(closed, "the server neither answered nor closed the connection within 4 s");
  // Wait for the connection's thread to finish so its work counts for this input only.
  for (int i = 0; i < 4000 && h.server->activeConnections() > 0; ++i)
    std::this_thread::sleep_for(1ms);
  FUZZ_CHECK(h.server->activeConnections() == 0,
             "a connection is still being served 4 s after its client closed");
  return 0;
}
