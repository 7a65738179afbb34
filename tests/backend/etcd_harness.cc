#include "tests/backend/etcd_harness.h"

#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <set>
#include <thread>

#include "common/fs.h"
#include "common/http.h"
#include "common/json.h"

namespace edge::backend::testing {

namespace {

// A port nobody listens on right now (it may be taken again before etcd binds it).
Result<int> freePort() {
  fs::UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd.valid()) return Status::fromErrno(errno, "socket");
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    return Status::fromErrno(errno, "bind 127.0.0.1:0");
  }
  socklen_t len = sizeof addr;
  if (::getsockname(fd.get(), reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    return Status::fromErrno(errno, "getsockname");
  }
  return static_cast<int>(ntohs(addr.sin_port));
}

std::string url(int port) {
  return "http://127.0.0.1:" + std::to_string(port);
}

bool exited(pid_t pid) {
  int status = 0;
  return ::waitpid(pid, &status, WNOHANG) == pid;
}

}  // namespace

Result<std::unique_ptr<EtcdCluster>> EtcdCluster::start(int members) {
  const char* env = std::getenv("EDGE_ETCD_BIN");
  std::string binary = env != nullptr && *env != '\0' ? env : "/usr/bin/etcd";
  if (::access(binary.c_str(), X_OK) != 0) {
    return Status::failedPrecondition(
        binary +
        " is missing: the etcd store tests run a real etcd; run scripts/install-deps.sh "
        "(it installs Debian's etcd-server)");
  }
  constexpr int kAttempts = 5;
  Status last;
  for (int attempt = 0; attempt < kAttempts; ++attempt) {
    std::unique_ptr<EtcdCluster> c(new EtcdCluster());
    c->binary_ = binary;
    char tmpl[] = "/tmp/edge-etcd-XXXXXX";
    if (::mkdtemp(tmpl) == nullptr) return Status::fromErrno(errno, "mkdtemp");
    c->dir_ = tmpl;
    std::set<int> taken;  // the kernel may hand a released port out again at once
    auto pick = [&]() -> Result<int> {
      while (true) {
        ASSIGN_OR_RETURN(int port, freePort());
        if (taken.insert(port).second) return port;
      }
    };
    for (int i = 0; i < members; ++i) {
      Member m;
      m.name = "m" + std::to_string(i);
      m.data_dir = c->dir_ + "/" + m.name + ".etcd";
      m.log_path = c->dir_ + "/" + m.name + ".log";
      ASSIGN_OR_RETURN(m.client_port, pick());
      ASSIGN_OR_RETURN(m.peer_port, pick());
      c->initial_cluster_ += (i ? "," : "") + m.name + "=" + url(m.peer_port);
      c->members_.push_back(m);
    }
    Status st;
    for (int i = 0; i < members && st.isOk(); ++i) st = c->spawn(i, true);
    for (int i = 0; i < members && st.isOk(); ++i) st = c->waitReady(i);
    if (st.isOk()) return c;
    last = st;
    if (st.message().find("address already in use") == std::string::npos) return st;
  }
  return last;
}

EtcdCluster::~EtcdCluster() {
  for (int i = 0; i < size(); ++i) kill(i);
  if (!dir_.empty() && std::getenv("EDGE_KEEP_ETCD") == nullptr) (void)fs::removeAll(dir_);
}

std::string EtcdCluster::clientUrl(int i) const {
  return url(members_[i].client_port);
}

std::string EtcdCluster::clientUrls() const {
  std::string out;
  for (int i = 0; i < size(); ++i) out += (i ? "," : "") + clientUrl(i);
  return out;
}

Status EtcdCluster::spawn(int i, bool new_cluster) {
  Member& m = members_[i];
  std::vector<std::string> args = {
      binary_,
      "--name=" + m.name,
      "--data-dir=" + m.data_dir,
      "--listen-client-urls=" + url(m.client_port),
      "--advertise-client-urls=" + url(m.client_port),
      "--listen-peer-urls=" + url(m.peer_port),
      "--initial-advertise-peer-urls=" + url(m.peer_port),
      "--initial-cluster=" + initial_cluster_,
      "--initial-cluster-state=" + std::string(new_cluster ? "new" : "existing"),
      "--initial-cluster-token=" + dir_,
      // Elections in half a second, so a test that kills a leader does not wait long.
      "--heartbeat-interval=50",
      "--election-timeout=500",
      "--logger=zap",
      "--log-outputs=stderr",
      "--log-level=warn",
  };
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  int log = ::open(m.log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (log < 0) return Status::fromErrno(errno, "open " + m.log_path);
  pid_t pid = ::fork();
  if (pid < 0) {
    ::close(log);
    return Status::fromErrno(errno, "fork");
  }
  if (pid == 0) {
    // A test that crashes takes its etcd with it.
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    ::dup2(log, 1);
    ::dup2(log, 2);
    ::execv(argv[0], argv.data());
    ::_exit(127);
  }
  ::close(log);
  m.pid = pid;
  return Status::ok();
}

Status EtcdCluster::waitReady(int i) {
  Member& m = members_[i];
  http::Client client(*http::Endpoint::parse(clientUrl(i)),
                      http::ClientOptions{std::chrono::milliseconds(500),
                                          std::chrono::milliseconds(2000), "localhost"});
  http::Request req;
  req.method = "GET";
  req.path = "/health";
  req.read_timeout = std::chrono::seconds(2);
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (std::chrono::steady_clock::now() < deadline) {
    if (exited(m.pid)) {
      m.pid = -1;
      return Status::unavailable("etcd member " + m.name + " exited while starting: " + logTail(i));
    }
    auto r = client.send(req);
    if (r.isOk() && r->status == 200 && r->body.find("true") != std::string::npos) {
      return Status::ok();
    }
    // An integration harness polling a real process: there is no event to wait on.
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return Status::unavailable("etcd member " + m.name +
                             " did not become healthy in 30 s: " + logTail(i));
}

void EtcdCluster::kill(int i) {
  Member& m = members_[i];
  if (m.pid <= 0) return;
  ::kill(m.pid, SIGKILL);
  int status = 0;
  ::waitpid(m.pid, &status, 0);
  m.pid = -1;
}

Status EtcdCluster::restart(int i) {
  kill(i);
  RETURN_IF_ERROR(spawn(i, false));
  return waitReady(i);
}

Status EtcdCluster::wipe() {
  for (int i = 0; i < size(); ++i) {
    if (members_[i].pid <= 0) continue;
    http::Client client(*http::Endpoint::parse(clientUrl(i)));
    http::Request req;
    req.method = "POST";
    req.path = "/v3/kv/deleterange";
    req.content_type = "application/json";
    req.body = R"({"key":"AA==","range_end":"AA=="})";  // "\0".."\0": every key
    ASSIGN_OR_RETURN(auto r, client.send(req));
    if (!r.isSuccess()) {
      return Status::internal("etcd deleterange: HTTP " + std::to_string(r.status) + " " + r.body);
    }
    return Status::ok();
  }
  return Status::unavailable("no etcd member is running");
}

Result<int> EtcdCluster::leader() const {
  // Each member's status names itself (header.member_id) and the leader it follows.
  std::string leader_id;
  std::vector<std::string> ids(members_.size());
  for (int i = 0; i < size(); ++i) {
    if (members_[i].pid <= 0) continue;
    http::Client client(*http::Endpoint::parse(clientUrl(i)));
    http::Request req;
    req.method = "POST";
    req.path = "/v3/maintenance/status";
    req.content_type = "application/json";
    req.body = "{}";
    auto r = client.send(req);
    if (!r.isOk() || !r->isSuccess()) continue;
    auto j = json::parse(r->body, "etcd status");
    if (!j.isOk() || !j->is_object()) continue;
    ids[i] = j->value("header", json::Json::object()).value("member_id", "");
    std::string l = j->value("leader", "");
    if (!l.empty() && l != "0") leader_id = l;
  }
  for (int i = 0; i < size(); ++i) {
    if (!leader_id.empty() && ids[i] == leader_id) return i;
  }
  return Status::unavailable("no running etcd member knows a leader among the running ones");
}

std::string EtcdCluster::logTail(int i) const {
  auto text = fs::readFile(members_[i].log_path);
  if (!text.isOk()) return "(no log: " + text.status().message() + ")";
  constexpr size_t kTail = 2000;
  return text->size() > kTail ? "..." + text->substr(text->size() - kTail) : *text;
}

}  // namespace edge::backend::testing
