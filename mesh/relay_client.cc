#include "mesh/relay_client.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <random>

#include "common/http.h"
#include "common/log.h"
#include "common/net.h"
#include "identity/identity.h"

namespace edge::mesh {
namespace {

using nlohmann::json;
using std::chrono::milliseconds;
using Steady = std::chrono::steady_clock;

constexpr size_t kMaxLine = 16 << 10;

std::string secondsText(milliseconds d) {
  auto s = d.count() / 1000.0;
  char buf[32];
  std::snprintf(buf, sizeof buf, s == static_cast<int64_t>(s) ? "%.0f s" : "%.1f s", s);
  return buf;
}

// 1 = readable, 0 = deadline, -1 = stop_fd fired (or poll failed).
int waitReadable(int fd, int stop_fd, Steady::time_point deadline) {
  for (;;) {
    auto left = std::chrono::duration_cast<milliseconds>(deadline - Steady::now()).count();
    if (left <= 0) return 0;
    pollfd p[2] = {{fd, POLLIN, 0}, {stop_fd, POLLIN, 0}};
    int n = ::poll(p, stop_fd >= 0 ? 2 : 1, static_cast<int>(std::min<int64_t>(left, 1 << 30)));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 || (stop_fd >= 0 && (p[1].revents & POLLIN))) return -1;
    if (n > 0) return 1;
  }
}

bool sendAll(int fd, std::string_view data) {
  while (!data.empty()) {
    ssize_t n = ::send(fd, data.data(), data.size(), MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    data.remove_prefix(static_cast<size_t>(n));
  }
  return true;
}

// One line, byte by byte: what follows the relay's "OK bep" is the peer's stream.
Result<std::string> readLine(int fd, Steady::time_point deadline, const std::string& relay) {
  std::string line;
  for (;;) {
    int w = waitReadable(fd, -1, deadline);
    if (w == 0) return Status::deadlineExceeded("relay " + relay + " did not answer in time");
    if (w < 0) return Status::unavailable("relay " + relay + ": poll failed");
    char c;
    ssize_t n = ::recv(fd, &c, 1, 0);
    if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
    if (n <= 0) return Status::unavailable("relay " + relay + " closed the connection");
    if (c == '\n') return line;
    if (line.size() >= kMaxLine)
      return Status::unavailable("relay " + relay + " sent a line longer than 16 KiB");
    line += c;
  }
}

std::string dumpLine(const json& j) {
  return j.dump(-1, ' ', false, json::error_handler_t::replace) + "\n";
}

std::string str(const json& j, const char* key) {
  auto it = j.find(key);
  return it != j.end() && it->is_string() ? it->get<std::string>() : std::string();
}

}  // namespace

// The SEP socket, shared by the SEP thread and the signal threads answering on it; the
// last one closes it, so an answer never lands on a reused fd.
struct RelayClient::SepConn {
  int fd = -1;
  std::mutex write_mu;  // lines from several threads must not interleave
  ~SepConn() {
    if (fd >= 0) ::close(fd);
  }
  bool writeLine(const std::string& line) {
    std::lock_guard lock(write_mu);
    return sendAll(fd, line);
  }
};

RelayClient::RelayClient(Options options) : options_(std::move(options)) {}

RelayClient::~RelayClient() {
  stop();
}

Status RelayClient::startSep(SignalHandler on_signal, BepHandler on_bep) {
  if (started_) return Status::failedPrecondition("relay client: the SEP is already held");
  RETURN_IF_ERROR(http::Endpoint::parse(options_.backend_url).status().withContext("backend_url"));
  if (!on_signal || !on_bep || !options_.access_token)
    return Status::invalidArgument(
        "relay client: startSep needs on_signal, on_bep and an access_token source");
  if (!identity::isNodeId(options_.node_id))
    return Status::invalidArgument("relay client: node_id \"" + options_.node_id +
                                   "\" is not a node id");
  stop_fd_ = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (stop_fd_ < 0) return Status::fromErrno(errno, "eventfd");
  on_signal_ = std::move(on_signal);
  on_bep_ = std::move(on_bep);
  started_ = true;
  sep_thread_ = std::thread([this] { sepLoop(); });
  return Status::ok();
}

void RelayClient::stop() {
  if (!started_) return;
  {
    std::lock_guard lock(mu_);
    if (stopping_) return;
    stopping_ = true;
    cv_.notify_all();
  }
  uint64_t one = 1;
  (void)!::write(stop_fd_, &one, sizeof one);
  if (sep_thread_.joinable()) sep_thread_.join();
  std::unique_lock lock(mu_);
  cv_.wait(lock, [this] { return threads_ == 0; });
  lock.unlock();
  ::close(stop_fd_);
  stop_fd_ = -1;
}

bool RelayClient::waitConnected(milliseconds timeout) const {
  std::unique_lock lock(mu_);
  return cv_.wait_for(lock, timeout, [this] { return connected_; });
}

json RelayClient::state() const {
  std::lock_guard lock(mu_);
  json sep = {{"connected", connected_}, {"reconnects", reconnects_}};
  if (!sep_address_.empty()) sep["address"] = sep_address_;
  if (!sep_instance_.empty()) sep["instance"] = sep_instance_;
  if (connected_) sep["connected_since"] = formatRfc3339Nano(connected_since_);
  if (!last_error_.empty()) sep["last_error"] = last_error_;
  return {{"sep", sep}};
}

void RelayClient::sepLoop() {
  std::mt19937 rng{std::random_device{}()};
  int failures = 0;
  for (;;) {
    auto began = Steady::now();
    Status why = runSep();
    bool lasted = Steady::now() - began >= options_.ping_interval;
    {
      std::lock_guard lock(mu_);
      bool was = connected_;
      connected_ = false;
      if (stopping_) return;
      last_error_ = why.message();
      if (was) ++reconnects_;
    }
    LOG_WARN("relay sep lost").kv("reason", why.message());
    failures = lasted ? 1 : failures + 1;
    // Jittered exponential back-off, so a relay restart is not met by every node at once.
    auto cap = options_.backoff_initial * (1LL << std::min(failures - 1, 16));
    cap = std::min<milliseconds>(cap, options_.backoff_max);
    auto wait = milliseconds(std::uniform_int_distribution<int64_t>(
        cap.count() / 2, std::max<int64_t>(1, cap.count()))(rng));
    std::unique_lock lock(mu_);
    if (cv_.wait_for(lock, wait, [this] { return stopping_; })) return;
  }
}

Status RelayClient::runSep() {
  json body = json::object();
  if (options_.location)
    body["location"] = {{"lat", options_.location->lat}, {"lon", options_.location->lon}};
  ASSIGN_OR_RETURN(json grant, post("/v1/relay/sep", body, "a SEP"));
  std::string address = str(grant, "address");
  auto leg = connectLeg(address, str(grant, "ticket"), "sep");
  if (!leg.isOk()) return leg.status();
  auto conn = std::make_shared<SepConn>();
  conn->fd = *leg;
  // A relay that stops reading must not hang the pinger or an answer forever.
  timeval tv{static_cast<time_t>(options_.step_timeout.count() / 1000),
             static_cast<suseconds_t>(options_.step_timeout.count() % 1000 * 1000)};
  ::setsockopt(conn->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  {
    std::lock_guard lock(mu_);
    connected_ = true;
    connected_since_ = SystemClock::instance()->wallNow();
    sep_address_ = address;
    sep_instance_ = str(grant, "instance");
    last_error_.clear();
    cv_.notify_all();
  }
  LOG_INFO("relay sep held").kv("relay", address);

  std::string buf;
  auto last_heard = Steady::now();
  auto next_ping = Steady::now() + options_.ping_interval;
  for (;;) {
    auto silence_deadline = last_heard + options_.relay_silence;
    int w = waitReadable(conn->fd, stop_fd_, std::min(next_ping, silence_deadline));
    if (w < 0) {
      ::shutdown(conn->fd, SHUT_RDWR);
      return Status::cancelled("stopping");
    }
    auto now = Steady::now();
    if (w == 0) {
      if (now >= silence_deadline)
        return Status::unavailable("relay " + address + " silent for " +
                                   secondsText(options_.relay_silence));
      if (!conn->writeLine("{\"type\":\"ping\"}\n"))
        return Status::unavailable("relay " + address + ": the SEP connection broke");
      next_ping = now + options_.ping_interval;
      continue;
    }
    char tmp[4096];
    ssize_t n = ::recv(conn->fd, tmp, sizeof tmp, 0);
    if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
    if (n <= 0) return Status::unavailable("relay " + address + " closed the SEP");
    last_heard = now;
    buf.append(tmp, static_cast<size_t>(n));
    for (size_t nl; (nl = buf.find('\n')) != std::string::npos;) {
      json line = json::parse(std::string_view(buf).substr(0, nl), nullptr, false);
      buf.erase(0, nl + 1);
      if (line.is_object() && str(line, "type") == "signal") onSignalLine(conn, line);
    }
    if (buf.size() > kMaxLine)
      return Status::unavailable("relay " + address + " sent a line longer than 16 KiB");
  }
}

void RelayClient::onSignalLine(const std::shared_ptr<SepConn>& conn, const json& line) {
  Signal s{str(line, "id"), str(line, "from"), str(line, "kind"), str(line, "token")};
  if (s.id.empty()) return;  // nothing to answer to
  {
    std::lock_guard lock(mu_);
    if (in_flight_ < options_.max_signals_in_flight && !stopping_) {
      ++in_flight_;
      ++threads_;
      std::thread([this, conn, s = std::move(s)]() mutable {
        answerSignal(std::move(conn), std::move(s));
        std::lock_guard lock(mu_);
        --threads_;
        cv_.notify_all();  // under the lock: stop() may return as soon as it sees 0
      }).detach();
      return;
    }
  }
  conn->writeLine(dumpLine({{"type", "refuse"},
                            {"id", s.id},
                            {"message", "node " + options_.node_id + " is busy; retry later"}}));
}

void RelayClient::answerSignal(std::shared_ptr<SepConn> conn, Signal signal) {
  auto done = [this] {
    std::lock_guard lock(mu_);
    --in_flight_;
  };
  auto refuse = [&](const std::string& message) {
    LOG_INFO("relay signal refused").kv("from", signal.from).kv("reason", message);
    conn->writeLine(dumpLine({{"type", "refuse"}, {"id", signal.id}, {"message", message}}));
    done();
  };
  if (!identity::isNodeId(signal.from) || (signal.kind != "http" && signal.kind != "stream"))
    return refuse("malformed signal");
  Status verdict = Status::internal("signal handler threw");
  try {
    verdict = on_signal_(signal);
  } catch (...) {
  }
  if (!verdict.isOk()) return refuse(verdict.message());
  auto bep = post("/v1/relay/bep",
                  {{"signal", signal.id},
                   {"caller", signal.from},
                   {"protocol", signal.kind},
                   {"ttl_seconds", options_.bep_ttl_seconds}},
                  "a BEP");
  if (!bep.isOk())
    return refuse("node " + options_.node_id + " got no BEP: " + bep.status().message());
  std::string address = str(*bep, "address");
  auto leg = connectLeg(address, str(*bep, "ticket"), "bep");
  if (!leg.isOk()) return refuse(leg.status().message());
  bool sent = conn->writeLine(dumpLine({{"type", "accept"},
                                        {"id", signal.id},
                                        {"bep", address},
                                        {"ticket", str(*bep, "caller_ticket")}}));
  done();
  conn.reset();
  if (!sent) {
    ::close(*leg);
    return;
  }
  LOG_INFO("relay signal accepted").kv("from", signal.from).kv("bep", address);
  try {
    on_bep_(*leg, signal.from);
  } catch (...) {
    LOG_ERROR("relay on_bep threw").kv("from", signal.from);
  }
}

Result<json> RelayClient::post(const std::string& path, const json& body, std::string_view what) {
  ASSIGN_OR_RETURN(auto endpoint, http::Endpoint::parse(options_.backend_url));
  if (!options_.access_token)
    return Status::invalidArgument("relay client: no access_token source configured");
  auto token = options_.access_token();
  if (!token.isOk()) return token.status().withContext("no access token for the backend");
  http::ClientOptions co;
  co.connect_timeout = options_.step_timeout;
  co.write_timeout = options_.step_timeout;
  http::Client client(endpoint, co);
  http::Request req;
  req.method = "POST";
  req.path = path;
  req.headers.emplace("Authorization", "Bearer " + *token);
  req.content_type = "application/json";
  req.body = body.dump();
  req.read_timeout = options_.step_timeout;
  auto res = client.send(req);
  if (!res.isOk())
    return Status(res.status().code(),
                  "backend " + options_.backend_url + " unreachable: " + res.status().message());
  json reply = json::parse(res->body, nullptr, false);
  std::string message = reply.is_object() ? str(reply, "message") : std::string();
  if (message.empty()) message = res->body.substr(0, 200);
  if (res->status == 401 || res->status == 403)
    return Status::permissionDenied("the backend refused " + std::string(what) + " (" +
                                    std::to_string(res->status) + "): " + message);
  if (res->status == 404) return Status::notFound(message);
  if (res->status == 400) return Status::invalidArgument(message);
  if (!res->isSuccess() || !reply.is_object())
    return Status::unavailable("the backend answered " + std::to_string(res->status) + " for " +
                               std::string(what) + ": " + message);
  return reply;
}

Result<int> RelayClient::connectLeg(const std::string& address, const std::string& ticket,
                                    std::string_view kind) {
  auto fd = net::dialTcp(address, options_.step_timeout);
  if (!fd.isOk()) {
    if (fd.status().code() == StatusCode::kDeadlineExceeded)
      return Status::deadlineExceeded("relay " + address + " did not answer in " +
                                      secondsText(options_.step_timeout));
    return Status(fd.status().code(),
                  "relay " + address + " cannot be reached: " + fd.status().message());
  }
  if (!sendAll(*fd, "EDGE-RELAY/1 " + ticket + "\n")) {
    ::close(*fd);
    return Status::unavailable("relay " + address + " closed the connection");
  }
  auto line = readLine(*fd, Steady::now() + options_.step_timeout, address);
  if (!line.isOk()) {
    ::close(*fd);
    return line.status();
  }
  if (*line != "OK " + std::string(kind)) {
    ::close(*fd);
    std::string reason = line->starts_with("ERR ") ? line->substr(4) : *line;
    return Status::permissionDenied("relay " + address + " refused the " + std::string(kind) +
                                    " ticket: " + reason);
  }
  return *fd;
}

Result<int> RelayClient::dial(const std::string& target, std::string_view kind) {
  if (!identity::isNodeId(target))
    return Status::invalidArgument("target \"" + target.substr(0, 64) +
                                   "\" is not a node id (16 lower-case hex characters)");
  if (kind != "http" && kind != "stream")
    return Status::invalidArgument("kind \"" + std::string(kind) +
                                   "\": a relay carries \"http\" or \"stream\"");
  if (!options_.node_token)
    return Status::invalidArgument("relay client: no node_token source configured for dial()");
  auto grant = post("/v1/relay/connect", {{"target", target}, {"kind", kind}}, "the connect");
  if (!grant.isOk()) {
    if (grant.status().code() == StatusCode::kNotFound)
      return Status::notFound("target " + target +
                              " has no SEP: it never registered with the backend, or its SEP "
                              "closed (" +
                              grant.status().message() + ")");
    return grant.status().withContext("target " + target);
  }
  std::string sep = str(*grant, "address");
  auto token = options_.node_token(target);
  if (!token.isOk()) return token.status().withContext("no token to call " + target);
  ASSIGN_OR_RETURN(int fd, connectLeg(sep, str(*grant, "ticket"), "signal"));
  if (!sendAll(fd, dumpLine({{"type", "connect"}, {"kind", kind}, {"token", *token}}))) {
    ::close(fd);
    return Status::unavailable("relay " + sep + " closed the connection");
  }
  auto wait = options_.step_timeout + options_.step_timeout / 2;
  auto line = readLine(fd, Steady::now() + wait, sep);
  ::close(fd);
  if (!line.isOk()) {
    if (line.status().code() == StatusCode::kDeadlineExceeded)
      return Status::deadlineExceeded("relay " + sep + " did not answer in " + secondsText(wait) +
                                      " for target " + target);
    return line.status().withContext("target " + target);
  }
  json answer = json::parse(*line, nullptr, false);
  std::string type = answer.is_object() ? str(answer, "type") : "";
  if (type == "refuse")
    return Status::permissionDenied("refused by the target " + target + ": " +
                                    str(answer, "message"));
  if (type == "error")
    return Status::unavailable("relay " + sep + " could not reach " + target + ": " +
                               str(answer, "message"));
  if (type != "accept" || str(answer, "bep").empty())
    return Status::unavailable("relay " + sep + " answered nonsense for target " + target);
  auto leg = connectLeg(str(answer, "bep"), str(answer, "ticket"), "bep");
  if (!leg.isOk()) return leg.status().withContext("target " + target);
  return *leg;
}

}  // namespace edge::mesh
