#include "edged/node_gateway.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <thread>

#include "common/crypto.h"
#include "common/fs.h"
#include "common/http.h"
#include "common/log.h"
#include "common/net.h"
#include "edged/backend_link.h"
#include "gateway/gateway_metrics.h"
#include "gateway/node_tls.h"
#include "gateway/proxy.h"
#include "gateway/router.h"
#include "gateway/token_source.h"
#include "gateway/token_verifier.h"
#include "orchestrator/health.h"

namespace edge::edged {

namespace {

using namespace std::chrono_literals;

// How often the route table is rebuilt from the node's state (it is only swapped when it
// changed), and how often a starting on-demand service is probed.
constexpr auto kFeedInterval = 250ms;
constexpr auto kProbeInterval = 10ms;
// An on-demand start that takes longer than this fails the calls waiting for it.
constexpr auto kStartTimeout = 60s;

// The manifest's retry settings in the gateway's terms (both validated the same way).
gateway::RetryPolicy toGatewayPolicy(const orchestrator::RetryPolicy& r) {
  gateway::RetryPolicy p;
  std::string on;
  for (const auto& c : r.on) on += (on.empty() ? "" : ",") + c;
  auto bits = gateway::parseRetryOn(on);
  p.retry_on = bits.isOk() ? *bits : gateway::kRetryOnAll;
  p.attempts = r.attempts;
  p.per_try_timeout = r.per_try_timeout;
  p.timeout = r.timeout;
  p.backoff_base = std::max(r.backoff_base, orchestrator::Millis(1));
  p.backoff_max = std::max(r.backoff_max, p.backoff_base);
  p.retry_non_idempotent = r.non_idempotent;
  return p;
}

// The host port the gateway forwards to: the instance's first declared port.
std::optional<int> servicePort(const orchestrator::ServiceManifest& m,
                               const orchestrator::InstanceStatus& i) {
  if (m.ports.empty()) return std::nullopt;
  const orchestrator::PortSpec& p = m.ports.front();
  std::string key = p.name.empty() ? std::to_string(p.container_port) : p.name;
  auto it = i.ports.find(key);
  if (it == i.ports.end() || it->second <= 0) return std::nullopt;
  return it->second;
}

// Profiles hold services as strings of at most this many bytes (discovery/types.cc).
constexpr size_t kMaxAnnounced = 253;
// How long a node that left the member list may still open TLS to our gateway.
constexpr auto kMemberGrace = std::chrono::minutes(10);

std::vector<std::string> splitOn(const std::string& text, char sep) {
  std::vector<std::string> out;
  size_t start = 0;
  while (true) {
    size_t at = text.find(sep, start);
    out.push_back(text.substr(start, at == std::string::npos ? std::string::npos : at - start));
    if (at == std::string::npos) return out;
    start = at + 1;
  }
}

// The probe that releases calls waiting for an on-demand start: the service's HTTP health
// check when it has one, else a TCP connect to the port, each with a short timeout so the
// 10 ms probe loop stays responsive. The reconciler's own health checks use the same
// SystemProber.
bool probeInstance(const orchestrator::ServiceManifest& m, int port) {
  orchestrator::HealthCheck check;
  if (m.health_check && m.health_check->kind == orchestrator::HealthCheck::Kind::kHttp) {
    check.kind = orchestrator::HealthCheck::Kind::kHttp;
    check.http_path = m.health_check->http_path;
  } else {
    check.kind = orchestrator::HealthCheck::Kind::kTcp;
  }
  check.timeout = orchestrator::Millis(200);
  std::string detail;
  return orchestrator::SystemProber().probe(
      check, orchestrator::ProbeTarget{.pid = 0, .port = port}, &detail);
}

}  // namespace

struct NodeGateway::OnDemand {
  std::vector<std::function<void(Result<std::vector<std::string>>)>> waiters;
  SteadyTime start_deadline{};
  SteadyTime last_call{};
  int in_flight = 0;
  bool active = false;
  // The instances the last probe found up: calls arriving until the route table lists
  // them (the reconciler's min-ready time) go there without probing again.
  std::vector<std::string> ready;
  SteadyTime ready_at{};
};

namespace {
// How long a probe's answer is trusted for calls that arrive after it.
constexpr auto kReadyTrust = std::chrono::seconds(3);
}  // namespace

NodeGateway::NodeGateway(Options options, const identity::NodeIdentity& identity, Clock& clock,
                         orchestrator::Reconciler& reconciler, orchestrator::EventLog& events,
                         BackendLink& backend)
    : options_(std::move(options)),
      identity_(identity),
      clock_(clock),
      reconciler_(reconciler),
      events_(events),
      backend_(backend) {}

NodeGateway::~NodeGateway() {
  stop();
}

Status NodeGateway::start(discovery::Discovery* discovery) {
  discovery_ = discovery;
  // The clock is the node's; the gateway's shared-ownership APIs get a non-owning handle.
  ClockPtr clock(&clock_, [](Clock*) {});
  metrics_ = std::make_shared<gateway::GatewayMetrics>(clock);

  gateway::NodeTls::Options to;
  // Peer gateways of our clusters; with a backend, any node of our account may call
  // (its token is checked per request).
  to.allow_client = [this](const std::string& node_id) {
    if (backend_.configured()) return true;
    std::lock_guard<std::mutex> lock(mu_);
    auto it = known_members_.find(node_id);
    return it != known_members_.end() && clock_.now() - it->second < kMemberGrace;
  };
  ASSIGN_OR_RETURN(tls_, gateway::NodeTls::create(identity_, to));

  gateway::RouterOptions ro;
  ro.node_id = options_.node_id;
  ro.account = options_.account;
  if (!options_.account_key_file.empty()) {
    if (options_.account.empty())
      return Status::invalidArgument(
          "account_key_file " + options_.account_key_file +
          " needs account_id: the account whose nodes share the key (tokens name it)");
    gateway::LocalAccountSigner::Options so;
    so.key_file = options_.account_key_file;
    so.account = options_.account;
    so.node_id = options_.node_id;
    auto signer = gateway::LocalAccountSigner::open(so, clock_);
    if (!signer.isOk()) return signer.status().withContext("account_key_file");
    std::shared_ptr<gateway::LocalAccountSigner> s = std::move(*signer);
    ro.issuer = s->issuer();
    ro.verifier =
        std::make_shared<gateway::TokenVerifier>(gateway::JwksCache::fixed(s->keySet()), clock_);
    ro.tokens = s;
    ro.tokens_carry_route_scopes = true;
  } else if (backend_.configured()) {
    // The issuer and its keys come from the backend: learnt now, or by the feeder once
    // the backend answers (until then open routes take calls as they come and routes
    // with scopes refuse them).
    ro.account_of = [this] { return backend_.account(); };
    ro.tokens = std::make_shared<gateway::CachedTokenSource>(
        [this](const gateway::Scopes&) -> Result<gateway::IssuedToken> {
          ASSIGN_OR_RETURN(auto token, backend_.nodeToken());
          // The client caches the token; say it lives a minute so the source asks again
          // well before the client's copy expires.
          return gateway::IssuedToken{token, std::chrono::seconds(60)};
        },
        clock_);
    ro.tokens_carry_route_scopes = false;
  }
  tokens_ = ro.tokens;
  verifier_ = ro.verifier;

  gateway::RouterHooks hooks;
  hooks.activate = [this](const std::string& service,
                          std::function<void(Result<std::vector<std::string>>)> done) {
    activate(service, std::move(done));
  };
  hooks.call_started = [this](const std::string& s) { callStarted(s); };
  hooks.call_ended = [this](const std::string& s) { callEnded(s); };
  if (backend_.configured())
    hooks.dial_relay = [this](const std::string& node) { return backend_.dialRelay(node); };
  router_ =
      std::make_unique<gateway::ServiceRouter>(std::move(ro), std::move(hooks), clock, metrics_);

  gateway::ProxyOptions po;
  po.workers =
      options_.workers > 0 ? options_.workers : std::max(1u, std::thread::hardware_concurrency());
  if (!options_.unix_socket.empty()) {
    // Like the API socket's: the run dir may not exist yet on a fresh host (/run is a
    // tmpfs, emptied at boot).
    std::string parent = std::filesystem::path(options_.unix_socket).parent_path().string();
    if (!parent.empty()) RETURN_IF_ERROR(fs::makeDirs(parent, 0755));
    po.listen_unix.push_back(options_.unix_socket);
  }
  po.tls_server = [this](int fd, std::string already_read) {
    return tls_->server(fd, std::move(already_read));
  };
  po.tls_client = [this](int fd, const std::string& node_id) { return tls_->client(fd, node_id); };
  ASSIGN_OR_RETURN(proxy_, gateway::ProxyServer::create(std::move(po), *router_));
  RETURN_IF_ERROR(proxy_->start());
  rebuildRoutes();
  if (backend_.configured() && options_.account_key_file.empty()) {
    // A blocking fetch, retried until the backend answers, off the feeder's thread.
    issuer_thread_ = std::thread([this] {
      std::unique_lock<std::mutex> lock(mu_);
      while (!stopping_) {
        lock.unlock();
        learnIssuer();
        lock.lock();
        if (router_->hasVerifier()) return;
        cv_.wait_for(lock, std::chrono::seconds(10));
      }
    });
  }

  feeder_ = std::thread([this] { feederLoop(); });
  LOG_INFO("gateway.started")
      .kv("socket", options_.unix_socket)
      .kv("workers", options_.workers)
      .kv("tokens",
          tokens_ ? (options_.account_key_file.empty() ? "backend" : "account-key") : "none");
  return Status::ok();
}

void NodeGateway::stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopping_) return;
    stopping_ = true;
  }
  cv_.notify_all();
  if (feeder_.joinable()) feeder_.join();
  if (issuer_thread_.joinable()) issuer_thread_.join();
  if (proxy_) proxy_->stop();
  // Calls still waiting for an on-demand start get their answer.
  std::map<std::string, std::unique_ptr<OnDemand>> pending;
  {
    std::lock_guard<std::mutex> lock(mu_);
    pending.swap(on_demand_);
  }
  for (auto& [_, od] : pending)
    for (auto& w : od->waiters) w(Status::unavailable("edged is stopping"));
}

void NodeGateway::setServices(const std::vector<orchestrator::ServiceManifest>& services) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    services_ = services;
  }
  cv_.notify_all();
}

void NodeGateway::adopt(int fd, std::string already_read, bool tls) {
  if (!proxy_) {
    ::close(fd);
    return;
  }
  sockaddr_storage ss{};
  socklen_t len = sizeof(ss);
  std::string remote = "unknown";
  if (getpeername(fd, reinterpret_cast<sockaddr*>(&ss), &len) == 0 && ss.ss_family == AF_INET) {
    const auto* in = reinterpret_cast<const sockaddr_in*>(&ss);
    char buf[INET_ADDRSTRLEN] = {};
    inet_ntop(AF_INET, &in->sin_addr, buf, sizeof(buf));
    remote = std::string(buf) + ":" + std::to_string(ntohs(in->sin_port));
  }
  proxy_->adopt(fd, std::move(already_read), tls, remote);
}

std::vector<std::string> NodeGateway::announcedServices(
    const std::vector<orchestrator::ServiceManifest>& services) {
  std::vector<std::string> out;
  const orchestrator::RetryPolicy defaults;
  for (const auto& m : services) {
    std::string base = m.route.base_path.empty() ? "/" + m.name : m.route.base_path;
    std::string entry = base == "/" + m.name ? m.name : m.name + "=" + base;
    std::string extra;
    if (!m.route.scopes.empty()) {
      extra += ";scopes=";
      for (size_t i = 0; i < m.route.scopes.size(); ++i)
        extra += (i ? "," : "") + m.route.scopes[i];
    }
    const orchestrator::RetryPolicy& r = m.route.retry;
    if (r.attempts != defaults.attempts || r.per_try_timeout != defaults.per_try_timeout ||
        r.timeout != defaults.timeout || r.on != defaults.on ||
        r.non_idempotent != defaults.non_idempotent) {
      std::string on;
      for (const auto& c : r.on) on += (on.empty() ? "" : "+") + c;
      extra += ";retry=" + std::to_string(r.attempts) + "," +
               std::to_string(r.per_try_timeout.count()) + "," + std::to_string(r.timeout.count()) +
               "," + on + (r.non_idempotent ? ",ni" : "");
    }
    if (entry.size() + extra.size() <= kMaxAnnounced) entry += extra;
    out.push_back(std::move(entry));
  }
  return out;
}

NodeGateway::Announced NodeGateway::parseAnnounced(const std::string& entry) {
  Announced a;
  auto fields = splitOn(entry, ';');
  const std::string& head = fields[0];
  auto eq = head.find('=');
  a.service = head.substr(0, eq);
  a.base_path = eq == std::string::npos ? "/" + a.service : head.substr(eq + 1);
  for (size_t i = 1; i < fields.size(); ++i) {
    const std::string& f = fields[i];
    if (f.rfind("scopes=", 0) == 0) {
      for (auto& sc : splitOn(f.substr(7), ','))
        if (!sc.empty()) a.scopes.push_back(sc);
    } else if (f.rfind("retry=", 0) == 0) {
      auto parts = splitOn(f.substr(6), ',');
      if (parts.size() < 4) continue;
      orchestrator::RetryPolicy r;
      char* end = nullptr;
      long attempts = std::strtol(parts[0].c_str(), &end, 10);
      long per_try = std::strtol(parts[1].c_str(), nullptr, 10);
      long timeout = std::strtol(parts[2].c_str(), nullptr, 10);
      if (*end != 0 || attempts < 0 || attempts > 10 || per_try <= 0 || timeout < per_try) continue;
      r.attempts = static_cast<int>(attempts);
      r.per_try_timeout = orchestrator::Millis(per_try);
      r.timeout = orchestrator::Millis(timeout);
      r.on.clear();
      const auto& allowed = orchestrator::retryConditions();
      for (auto& c : splitOn(parts[3], '+'))
        if (std::find(allowed.begin(), allowed.end(), c) != allowed.end()) r.on.push_back(c);
      r.non_idempotent = parts.size() > 4 && parts[4] == "ni";
      a.retry = r;
    }
  }
  return a;
}

void NodeGateway::feederLoop() {
  std::unique_lock<std::mutex> lock(mu_);
  SteadyTime next_feed{};
  while (!stopping_) {
    bool starting = false;
    for (const auto& [_, od] : on_demand_) starting = starting || !od->waiters.empty();
    lock.unlock();
    SteadyTime now = clock_.now();
    if (now >= next_feed) {
      rebuildRoutes();
      next_feed = now + kFeedInterval;
    }

    serviceOnDemand(now);
    // A start shows in the reconciler's instance list only after a pass: while calls
    // wait, passes run back to back instead of on the reconciler's tick.
    if (starting) reconciler_.wake();
    lock.lock();
    cv_.wait_for(lock, starting ? std::chrono::milliseconds(kProbeInterval) : kFeedInterval);
  }
}

void NodeGateway::learnIssuer() {
  if (!backend_.configured() || !options_.account_key_file.empty() || router_->hasVerifier())
    return;
  auto issuer = backend_.issuer();
  auto verifier = backend_.tokenVerifier();
  if (!issuer.isOk() || !verifier.isOk()) {
    LOG_WARN("gateway.no_issuer")
        .kv("error", (issuer.isOk() ? verifier.status() : issuer.status()).message());
    return;
  }
  verifier_ = *verifier;
  router_->setVerifier(verifier_, *issuer);
  LOG_INFO("gateway.issuer").kv("issuer", *issuer);
}

void NodeGateway::rebuildRoutes() {
  std::vector<orchestrator::ServiceManifest> services;
  {
    std::lock_guard<std::mutex> lock(mu_);
    services = services_;
  }
  auto instances = reconciler_.instances();
  std::vector<gateway::RouteSpec> specs;
  std::set<std::string> hosted_on_demand;
  std::set<std::string> local_names;
  std::string global;
  if (!options_.global_gateway.empty()) {
    auto ep = http::Endpoint::parse(options_.global_gateway);
    if (ep.isOk() && ep->kind == http::Endpoint::Kind::kTcp)
      global = ep->host + ":" + std::to_string(ep->port);
  }
  for (const auto& m : services) {
    gateway::RouteSpec s;
    s.service = m.name;
    s.base_path = m.route.base_path.empty() ? "/" + m.name : m.route.base_path;
    s.scope = m.route.scope == orchestrator::Route::Scope::kGlobal ? gateway::RouteScope::kGlobal
                                                                   : gateway::RouteScope::kLocal;
    s.required_scopes = m.route.scopes;
    s.on_demand = m.lifecycle.mode == orchestrator::Lifecycle::Mode::kOnDemand;
    s.retry = toGatewayPolicy(m.route.retry);
    for (const auto& i : instances) {
      if (i.service != m.name || i.state != runtime::ContainerState::kRunning || !i.ready) continue;
      if (auto port = servicePort(m, i))
        s.local_instances.push_back("127.0.0.1:" + std::to_string(*port));
    }
    if (s.scope == gateway::RouteScope::kGlobal) s.global_upstream = global;
    if (s.on_demand) hosted_on_demand.insert(m.name);
    local_names.insert(m.name);
    specs.push_back(std::move(s));
  }
  // Peers: the members of our clusters announce the services they run.
  if (discovery_ != nullptr) {
    const discovery::ClusterSnapshot snapshot = discovery_->snapshot();
    {
      SteadyTime now = clock_.now();
      std::lock_guard<std::mutex> lock(mu_);
      for (const auto& c : snapshot.clusters)
        for (const auto& member : c.members) known_members_[member.profile.node_id] = now;
      for (auto it = known_members_.begin(); it != known_members_.end();)
        it = now - it->second >= kMemberGrace ? known_members_.erase(it) : std::next(it);
    }
    std::map<std::string, size_t> by_service;
    for (size_t i = 0; i < specs.size(); ++i) by_service[specs[i].service] = i;
    std::set<std::string> seen_peer;
    for (const auto& c : snapshot.clusters) {
      for (const auto& member : c.members) {
        const auto& p = member.profile;
        if (p.node_id == options_.node_id || p.endpoint.empty()) continue;
        if (!options_.account.empty() && !p.account_id.empty() && p.account_id != options_.account)
          continue;
        for (const auto& entry : p.services) {
          Announced a = parseAnnounced(entry);
          const std::string& name = a.service;
          if (!seen_peer.insert(p.node_id + "|" + name).second) continue;
          auto it = by_service.find(name);
          if (it == by_service.end()) {
            // A service only peers run: their announcement says how to call it.
            gateway::RouteSpec s;
            s.service = name;
            s.base_path = a.base_path;
            s.required_scopes = a.scopes;
            if (a.retry) s.retry = toGatewayPolicy(*a.retry);
            by_service[name] = specs.size();
            specs.push_back(std::move(s));
            it = by_service.find(name);
          }
          gateway::PeerInstance peer;
          peer.node_id = p.node_id;
          peer.endpoint = p.endpoint;
          specs[it->second].peers.push_back(std::move(peer));
        }
      }
    }
  }
  if (!global.empty()) {
    gateway::RouteSpec s;
    s.service = "global";
    s.base_path = "/";
    s.scope = gateway::RouteScope::kGlobal;
    s.global_upstream = global;
    specs.push_back(std::move(s));
  }
  // Swap only when something changed: a rebuild costs the workers nothing, but the log
  // line and the warnings should come once per change.
  std::string digest;
  for (const auto& s : specs) {
    digest += s.service + "|" + s.base_path + "|" + std::to_string(s.on_demand) + "|" +
              s.global_upstream + "|";
    for (const auto& l : s.local_instances) digest += l + ",";
    for (const auto& p : s.peers) digest += p.node_id + "@" + p.endpoint + ",";
    for (const auto& r : s.required_scopes) digest += r + " ";
    digest += gateway::formatRetryOn(s.retry.retry_on) + std::to_string(s.retry.attempts) + ";";
    digest += std::to_string(s.retry.per_try_timeout.count()) + "/" +
              std::to_string(s.retry.timeout.count()) + "\n";
  }
  if (digest == routes_digest_) return;
  routes_digest_ = digest;
  auto warnings = router_->setRoutes(specs, std::move(hosted_on_demand));
  for (const auto& w : warnings) LOG_WARN("gateway.route_conflict").kv("problem", w);
  LOG_INFO("gateway.routes").kv("routes", router_->routes()->routes().size());
}

void NodeGateway::activate(const std::string& service,
                           std::function<void(Result<std::vector<std::string>>)> done) {
  {
    std::unique_lock<std::mutex> lock(mu_);
    if (stopping_) {
      lock.unlock();
      done(Status::unavailable("edged is stopping"));
      return;
    }
    auto& od = on_demand_[service];
    if (!od) od = std::make_unique<OnDemand>();
    od->last_call = clock_.now();
    if (od->active && !od->ready.empty() && clock_.now() - od->ready_at < kReadyTrust) {
      std::vector<std::string> ready = od->ready;
      lock.unlock();
      done(std::move(ready));
      return;
    }
    if (od->waiters.empty()) od->start_deadline = clock_.now() + kStartTimeout;
    od->waiters.push_back(std::move(done));
    if (!od->active) {
      od->active = true;
      events_.append("service.activated", service, "", "started by a call (on-demand)");
      LOG_INFO("gateway.on_demand_start").kv("service", service);
    }
  }
  reconciler_.activate(service);
  cv_.notify_all();
}

void NodeGateway::callStarted(const std::string& service) {
  std::lock_guard<std::mutex> lock(mu_);
  auto& od = on_demand_[service];
  if (!od) od = std::make_unique<OnDemand>();
  od->in_flight++;
  od->last_call = clock_.now();
}

void NodeGateway::callEnded(const std::string& service) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = on_demand_.find(service);
  if (it == on_demand_.end()) return;
  it->second->in_flight = std::max(0, it->second->in_flight - 1);
  it->second->last_call = clock_.now();
}

void NodeGateway::serviceOnDemand(SteadyTime now) {
  std::vector<orchestrator::ServiceManifest> services;
  std::map<std::string, bool> starting;  // service -> has waiters
  {
    std::lock_guard<std::mutex> lock(mu_);
    services = services_;
    for (const auto& [name, od] : on_demand_) starting[name] = !od->waiters.empty();
  }
  std::vector<orchestrator::InstanceStatus> instances;
  bool have_instances = false;
  for (const auto& m : services) {
    if (m.lifecycle.mode != orchestrator::Lifecycle::Mode::kOnDemand) continue;
    auto st = starting.find(m.name);
    if (st != starting.end() && st->second) {
      // Probe the running instances: the first that answers releases the waiting calls.
      if (!have_instances) {
        instances = reconciler_.instances();
        have_instances = true;
      }
      std::vector<std::string> up;
      std::string why = "no instance running yet";
      for (const auto& i : instances) {
        if (i.service != m.name) continue;
        if (i.state != runtime::ContainerState::kRunning) {
          if (!i.message.empty()) why = i.message;
          continue;
        }
        auto port = servicePort(m, i);
        if (!port) {
          why = "the service declares no port to route to";
          continue;
        }
        if (probeInstance(m, *port)) up.push_back("127.0.0.1:" + std::to_string(*port));
      }
      std::vector<std::function<void(Result<std::vector<std::string>>)>> waiters;
      Status failure;
      {
        std::lock_guard<std::mutex> lock(mu_);
        auto& od = on_demand_[m.name];
        if (!od) continue;
        if (!up.empty()) {
          waiters.swap(od->waiters);
          od->ready = up;
          od->ready_at = clock_.now();
        } else if (clock_.now() >= od->start_deadline) {
          waiters.swap(od->waiters);
          failure = Status::deadlineExceeded("not ready within " +
                                             std::to_string(kStartTimeout.count()) + " s: " + why);
        }
      }
      for (auto& w : waiters) {
        if (failure.isOk())
          w(up);
        else
          w(failure);
      }
      if (!waiters.empty() && failure.isOk())
        LOG_INFO("gateway.on_demand_ready").kv("service", m.name).kv("instances", up.size());
      continue;
    }
    // Idle: stopped once no call ran for idle_timeout.
    bool stop_it = false;
    {
      std::lock_guard<std::mutex> lock(mu_);
      auto it = on_demand_.find(m.name);
      if (it == on_demand_.end() || !it->second->active) continue;
      OnDemand& od = *it->second;
      if (od.in_flight == 0 && od.waiters.empty() &&
          now - od.last_call >= m.lifecycle.idle_timeout) {
        od.active = false;
        od.ready.clear();
        stop_it = true;
      }
    }
    if (stop_it) {
      reconciler_.deactivate(m.name);
      events_.append("service.idle", m.name, "",
                     "stopped after " +
                         std::to_string(std::chrono::duration_cast<std::chrono::seconds>(
                                            m.lifecycle.idle_timeout)
                                            .count()) +
                         " s without calls (on-demand)");
      LOG_INFO("gateway.on_demand_stop").kv("service", m.name);
    }
  }
}

nlohmann::json NodeGateway::routesJson() const {
  nlohmann::json out = nlohmann::json::array();
  if (!router_) return out;
  auto table = router_->routes();
  if (!table) return out;
  for (const auto& r : table->routes()) {
    nlohmann::json ups = nlohmann::json::array();
    SteadyTime now = clock_.now();
    for (const auto& e : r.endpoints) {
      nlohmann::json u = {{"tier", std::string(gateway::tierName(e.tier))},
                          {"address", e.address},
                          {"ejected", e.upstream->outlier().isEjected(now)},
                          {"active", e.upstream->breaker().active()}};
      if (e.tier == gateway::Tier::kPeer) u["node"] = e.peer.node_id;
      ups.push_back(std::move(u));
    }
    const auto& p = r.spec.retry;
    out.push_back({{"path", r.spec.base_path},
                   {"service", r.spec.service},
                   {"scope", r.spec.scope == gateway::RouteScope::kGlobal ? "global" : "local"},
                   {"on_demand", r.spec.on_demand},
                   {"scopes", r.spec.required_scopes},
                   {"local", r.local_count},
                   {"peers", r.peer_count},
                   {"upstreams", ups},
                   {"retry",
                    {{"attempts", p.attempts},
                     {"on", gateway::formatRetryOn(p.retry_on)},
                     {"per_try_timeout_ms", p.per_try_timeout.count()},
                     {"timeout_ms", p.timeout.count()},
                     {"non_idempotent", p.retry_non_idempotent}}}});
  }
  return out;
}

void NodeGateway::renderMetrics(std::string& out) const {
  if (metrics_) metrics_->renderPrometheus(out);
}

}  // namespace edge::edged
