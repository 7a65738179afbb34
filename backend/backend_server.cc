#include "backend/backend_server.h"

#include <unistd.h>

#include <atomic>
#include <condition_variable>
#include <mutex>
#include <thread>

#include "backend/backend_metrics.h"
#include "backend/http_util.h"
#include "backend/identity.h"
#include "backend/identity_api.h"
#include "backend/rate_limit.h"
#include "backend/relay_server.h"
#include "backend/signaling.h"
#include "backend/tokens.h"
#include "common/fs.h"
#include "common/http_server.h"
#include "common/log.h"
#include "common/net.h"
#include "identity/identity.h"
#include "mesh/peer_channel.h"

namespace edge::backend {

using nlohmann::json;

namespace {

std::string trimmed(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r' || s.back() == ' ')) s.pop_back();
  return s;
}

}  // namespace

struct BackendServer::Impl {
  BackendOptions options;
  ClockPtr clock = SystemClock::instance();
  StorePtr store;
  std::optional<identity::NodeIdentity> identity;  // for call-backs to nodes
  std::unique_ptr<IdentityService> ids;
  std::unique_ptr<TokenService> tokens;
  std::unique_ptr<RateLimiter> limiter;
  std::unique_ptr<DiscoveryService> disc;
  std::unique_ptr<Signaling> signaling;
  std::unique_ptr<RelayServer> relay;
  std::unique_ptr<http::ApiServer> api;
  std::string relay_address;

  std::thread housekeeper;
  std::mutex mu;
  std::condition_variable cv;
  bool stopping = false;
  bool started = false;

  // Calls a node back on its endpoint: a peer-channel handshake proves the node holds
  // the key of `node_id`, which an open port alone would not.
  Status callBack(const std::string& endpoint, const std::string& node_id) {
    ASSIGN_OR_RETURN(int fd, net::dialTcp(endpoint, std::chrono::milliseconds(2000)));
    auto ch = mesh::PeerChannel::connect(fd, *identity, node_id, std::chrono::milliseconds(3000));
    if (!ch.isOk()) return ch.status();
    ch->close();
    return Status::ok();
  }

  void publishInstance() {
    json rec = {{"id", options.instance_id},
                {"relay_address", relay_address},
                {"api", options.issuer},
                {"updated_at", std::chrono::duration_cast<std::chrono::seconds>(
                                   clock->wallNow().time_since_epoch())
                                   .count()}};
    if (options.location)
      rec["location"] = {{"lat", options.location->lat}, {"lon", options.location->lon}};
    auto r = store->put("registry/instances/" + options.instance_id, rec.dump());
    if (!r.isOk())
      LOG_WARN("backend.registry")
          .kv("instance", options.instance_id)
          .kv("error", r.status().message());
  }

  void housekeeping() {
    auto last_sweep = std::chrono::steady_clock::now() - std::chrono::hours(1);
    std::unique_lock<std::mutex> lock(mu);
    while (!stopping) {
      lock.unlock();
      publishInstance();
      if (std::chrono::steady_clock::now() - last_sweep > std::chrono::seconds(60)) {
        last_sweep = std::chrono::steady_clock::now();
        auto a = disc->expire();
        auto b = signaling->sweepExpired();
        if (a.isOk() && b.isOk() && (*a + *b) > 0)
          LOG_INFO("backend.expired").kv("records", *a + *b);
      }
      lock.lock();
      cv.wait_for(lock, options.housekeeping_interval, [&] { return stopping; });
    }
  }
};

Result<std::unique_ptr<BackendServer>> BackendServer::create(BackendOptions o) {
  auto impl = std::make_unique<Impl>();
  if (o.instance_id.empty()) {
    char host[256] = {};
    ::gethostname(host, sizeof(host) - 1);
    o.instance_id = host[0] ? host : "edge-backend";
  }
  if (o.store.empty()) o.store = "sqlite:" + o.data_dir + "/backend.db";
  if (o.issuer.empty()) {
    std::string host;
    int port = 0;
    if (!net::splitHostPort(o.listen, &host, &port))
      return Status::invalidArgument("--listen: \"" + o.listen + "\" is not host:port");
    if (host == "0.0.0.0" || host.empty()) host = "127.0.0.1";
    o.issuer = "http://" + host + ":" + std::to_string(port);
  }
  RETURN_IF_ERROR(fs::makeDirs(o.data_dir, 0700));
  if (o.key_file.empty()) o.key_file = o.data_dir + "/kek";
  std::string admin_secret;
  if (!o.admin_secret_file.empty()) {
    ASSIGN_OR_RETURN(auto text, fs::readFile(o.admin_secret_file, 4096));
    admin_secret = trimmed(text);
    if (admin_secret.size() < 16)
      return Status::invalidArgument("--admin-secret-file " + o.admin_secret_file +
                                     ": the admin secret needs at least 16 characters");
  }
  ASSIGN_OR_RETURN(impl->store, openStore(o.store));
  ASSIGN_OR_RETURN(auto node_identity,
                   identity::NodeIdentity::loadOrCreate(o.data_dir + "/backend.key"));
  impl->identity = node_identity;
  ASSIGN_OR_RETURN(auto kek, loadOrCreateKek(o.key_file));

  IdentityOptions io;
  io.admin_secret = admin_secret;
  impl->ids = std::make_unique<IdentityService>(*impl->store, io, impl->clock);
  TokenOptions to;
  to.issuer = o.issuer;
  to.kek = kek;
  to.access_ttl = o.access_ttl;
  ASSIGN_OR_RETURN(impl->tokens, TokenService::create(*impl->store, *impl->ids, to, impl->clock));
  impl->limiter = std::make_unique<RateLimiter>(RateLimiter::Options{}, impl->clock);

  DiscoveryService::Options dopt;
  Impl* raw = impl.get();
  dopt.call_back = [raw](const std::string& endpoint, const std::string& node_id) {
    return raw->callBack(endpoint, node_id);
  };
  impl->disc = std::make_unique<DiscoveryService>(*impl->store, *impl->tokens, *impl->clock, dopt);

  // The relay binds first so a port-0 listen has a real address to advertise.
  RelayServer::Options ro;
  ro.listen = o.relay_listen;
  ro.advertise = o.relay_advertise;
  ro.instance_id = o.instance_id;
  impl->relay = std::make_unique<RelayServer>(*impl->store, ro);

  http::ApiServer::Options ao;
  ao.tcp_address = o.listen;
  ao.max_connections = 512;
  impl->api = std::make_unique<http::ApiServer>(ao);
  impl->options = std::move(o);
  return std::unique_ptr<BackendServer>(new BackendServer(std::move(impl)));
}

BackendServer::BackendServer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

BackendServer::~BackendServer() {
  stop();
}

Status BackendServer::start() {
  Impl& m = *impl_;
  RETURN_IF_ERROR(m.relay->start());
  m.relay_address = m.relay->advertisedAddress();
  if (m.relay_address.empty() || m.relay_address.rfind("0.0.0.0:", 0) == 0) {
    m.relay->stop();
    return Status::invalidArgument("--relay-advertise: the relay listens on " +
                                   m.options.relay_listen +
                                   "; say at which address nodes reach it (host:port)");
  }
  Signaling::Options so;
  so.instance_id = m.options.instance_id;
  so.relay_address = m.relay_address;
  so.clock = m.clock;
  m.signaling = std::make_unique<Signaling>(*m.store, *m.tokens, so);

  registerIdentityApi(*m.api, *m.ids, *m.tokens, *m.limiter);
  m.disc->registerRoutes(*m.api);
  registerSignalingApi(*m.api, *m.signaling);
  Impl* self = &m;
  m.api->get("/healthz", [self](const httplib::Request&, httplib::Response& res) {
    auto rev = self->store->revision();
    if (!rev.isOk())
      return replyJson(res, 503,
                       {{"status", "unavailable"},
                        {"store", self->store->describe()},
                        {"message", rev.status().message()}});
    replyJson(res, 200,
              {{"status", "ok"},
               {"instance", self->options.instance_id},
               {"store", self->store->describe()},
               {"revision", *rev}});
  });
  m.api->get("/metrics", [self](const httplib::Request&, httplib::Response& res) {
    auto rev = self->store->revision();
    res.set_content(
        metricsText(self->relay->stats(), rev.isOk() ? std::optional<int64_t>(*rev) : std::nullopt),
        "text/plain; version=0.0.4");
  });
  Status st = m.api->start();
  if (!st.isOk()) {
    m.relay->stop();
    return st;
  }
  m.tokens->startMaintenance();
  m.publishInstance();
  {
    std::lock_guard<std::mutex> lock(m.mu);
    m.stopping = false;
  }
  m.housekeeper = std::thread([self] { self->housekeeping(); });
  m.started = true;
  return Status::ok();
}

void BackendServer::stop() {
  Impl& m = *impl_;
  if (!m.started) return;
  {
    std::lock_guard<std::mutex> lock(m.mu);
    m.stopping = true;
  }
  m.cv.notify_all();
  if (m.housekeeper.joinable()) m.housekeeper.join();
  m.api->stop();
  m.relay->stop();
  m.tokens->stopMaintenance();
  m.started = false;
}

int BackendServer::httpPort() const {
  return impl_->api->boundTcpPort();
}
int BackendServer::relayPort() const {
  return impl_->relay->boundPort();
}

std::string BackendServer::describe() const {
  const Impl& m = *impl_;
  return "instance=" + m.options.instance_id + " store=" + m.store->describe() +
         " issuer=" + m.options.issuer + " relay=" + m.relay_address;
}

}  // namespace edge::backend
