#include "edged/node.h"

#include "common/fs.h"

#include <unistd.h>

#include <filesystem>

#include "common/crypto.h"
#include "common/http_server.h"
#include "common/log.h"
#include "edged/api/docker_api.h"
#include "edged/api/rest_api.h"
#include "runtime-shim/factory.h"

namespace edge::edged {
namespace {

constexpr char kRestartMetaPrefix[] = "restart/";

std::string hostName() {
  char buf[256] = {};
  if (::gethostname(buf, sizeof buf - 1) != 0 || buf[0] == '\0') return "edge-node";
  return buf;
}

}  // namespace

Node::Node(const NodeConfig& config)
    : config_(config),
      name_(config.node_name.empty() ? hostName() : config.node_name),
      clock_(SystemClock::instance()),
      events_(*clock_) {}

Node::~Node() {
  stop();
}

Result<std::unique_ptr<Node>> Node::create(const NodeConfig& config) {
  std::unique_ptr<Node> node(new Node(config));
  std::error_code ec;
  std::filesystem::create_directories(config.data_dir, ec);
  if (ec)
    return Status::failedPrecondition("cannot create the data dir " + config.data_dir + ": " +
                                      ec.message());
  auto store = orchestrator::StateStore::open(config.data_dir + "/state.db", *node->clock_);
  if (!store.isOk()) return store.status().withContext("desired-state store");
  node->store_ = std::move(*store);

  runtime::RuntimeOptions ro;
  ro.kind = config.runtime;
  ro.docker_endpoint = config.docker_endpoint;
  ro.data_dir = config.data_dir;
  ro.run_dir = config.run_dir;
  ro.clock = node->clock_;
  auto rt = runtime::createRuntime(ro);
  if (!rt.isOk()) return rt.status().withContext("container runtime");
  node->runtime_ = std::move(*rt);

  // The node's id derives from its key, so it is the same everywhere it is shown and
  // no other node can claim it. Instances are labelled with the id the store holds: a
  // data dir from before node keys keeps its old label id, so its instances stay adopted.
  auto identity = identity::NodeIdentity::loadOrCreate(config.data_dir + "/node.key");
  if (!identity.isOk()) return identity.status().withContext("node key");
  node->identity_ = std::move(*identity);
  node->id_ = node->identity_->id();
  auto stored = node->store_->getMeta("node_id");
  if (!stored.isOk()) return stored.status().withContext("desired-state store");
  std::string label_id = node->id_;
  if (stored->has_value()) {
    label_id = **stored;
    if (label_id != node->id_)
      LOG_INFO("instances keep the node id this data dir had before node keys")
          .kv("label_id", label_id)
          .kv("node_id", node->id_);
  } else {
    RETURN_IF_ERROR(node->store_->putMeta("node_id", node->id_));
  }

  node->image_loader_ =
      std::make_unique<orchestrator::ImageLoader>(*node->runtime_, node->events_, node->name_);
  node->health_ = std::make_unique<orchestrator::HealthMonitor>(*node->clock_, node->prober_);
  orchestrator::ReconcilerOptions opts;
  opts.node_id = label_id;
  opts.port_range_first = config.port_range_first;
  opts.port_range_last = config.port_range_last;
  node->reconciler_ = std::make_unique<orchestrator::Reconciler>(
      *node->runtime_, *node->clock_, *node->health_, node->events_, opts);
  node->health_->setOnChange(
      [r = node->reconciler_.get()](const std::string&, orchestrator::Health) { r->wake(); });
  node->addSubsystems();
  return node;
}

// Started in this order and stopped in two passes, each in reverse (subsystem.h): leave()
// takes the node off the cluster (the cluster port, the gateway, the backend link,
// discovery), then stop() ends the API, the reconciler and health checks.
void Node::addSubsystems() {
  // First: discovery_ is set before any API request can read it, and the reconciler's
  // first refreshDesired() puts the services in the profile.
  subsystems_.add(makeSubsystem({.name = "discovery",
                                 .start = [this] { return startDiscovery(); },
                                 .leave =
                                     [this] {
                                       // Members are told, a supernode hands over.
                                       if (discovery_) discovery_->stop();
                                     }}));
  subsystems_.add(makeSubsystem({.name = "health checks",
                                 .start =
                                     [this] {
                                       health_->start();
                                       return Status::ok();
                                     },
                                 .stop = [this] { health_->stop(); }}));
  subsystems_.add(makeSubsystem({.name = "reconciler",
                                 .start = [this] { return startReconciler(); },
                                 .stop = [this] { stopReconciler(); }}));
  subsystems_.add(makeSubsystem({.name = "node API on " + config_.api_socket,
                                 .start = [this] { return startApi(); },
                                 .stop =
                                     [this] {
                                       if (api_) api_->stop();
                                     }}));
  subsystems_.add(makeSubsystem({.name = "backend",
                                 .start = [this] { return backend_->start(discovery_.get()); },
                                 .leave = [this] { backend_->stop(); }}));
  subsystems_.add(makeSubsystem({.name = "gateway",
                                 .start = [this] { return gateway_->start(discovery_.get()); },
                                 .leave = [this] { gateway_->stop(); }}));
  // Last: it accepts once the gateway has started; connections wait in its backlog until
  // then. It stops first: no connection is handed to what stops after it.
  subsystems_.add(makeSubsystem({.name = "cluster port " + config_.listen,
                                 .start = [this] { return port_->start(); },
                                 .leave = [this] { port_->stop(); }}));
}

discovery::ClusterSnapshot Node::clusterSnapshot() const {
  if (discovery_) return discovery_->snapshot();
  discovery::ClusterSnapshot s;
  s.node_id = id_;
  s.node_name = name_;
  return s;
}

Status Node::startDiscovery() {
  if (!config_.discovery) return Status::ok();
  discovery::DiscoveryOptions o;
  o.interfaces = config_.discovery_interfaces;
  o.group = config_.discovery_group;
  o.listen = config_.listen;  // the advertised port; port_ listens on it
  o.port = port_.get();
  o.advertise = config_.advertise;
  if (!config_.cluster_key_file.empty()) {
    auto key = fs::readFile(config_.cluster_key_file);
    if (!key.isOk()) return key.status().withContext("cluster_key_file");
    if (key->size() < 16)
      return Status::invalidArgument("cluster_key_file " + config_.cluster_key_file +
                                     ": a cluster key needs at least 16 random bytes (e.g. head "
                                     "-c 32 /dev/urandom > FILE)");
    o.cluster_key = *key;
  }
  o.profile.node_name = name_;
  o.profile.runtime_kind = runtime_->kind();
  o.profile.data_dir = config_.data_dir;
  o.profile.power = config_.power;
  o.profile.persistent = config_.persistent;
  o.profile.account_id = config_.account_id;
  o.profile.public_address = config_.public_address;
  o.profile.has_location = config_.has_location;
  o.profile.latitude = config_.latitude;
  o.profile.longitude = config_.longitude;
  o.beacon_interval = std::chrono::milliseconds(config_.beacon_interval_ms);
  o.supernode_timeout = std::chrono::milliseconds(config_.supernode_timeout_ms);
  o.member_timeout = std::max(std::chrono::milliseconds(4000), 4 * o.supernode_timeout);
  o.blacklist_period = std::chrono::seconds(config_.blacklist_seconds);
  auto d = discovery::Discovery::create(
      o, *identity_, *clock_,
      [this](const std::string& type, const std::string& node, const std::string& message) {
        events_.appendNode(type, node, message);
      });
  if (!d.isOk()) return d.status();  // named "discovery" by its subsystem
  discovery_ = std::move(*d);
  return discovery_->start();
}

Status Node::refreshDesired() {
  auto records = store_->list();
  if (!records.isOk()) return records.status();
  std::vector<orchestrator::DesiredService> desired;
  std::vector<orchestrator::ServiceManifest> manifests;
  for (auto& r : *records) {
    manifests.push_back(r.manifest);
    orchestrator::DesiredService d{.manifest = std::move(r.manifest), .generation = r.generation};
    auto meta = store_->getMeta(kRestartMetaPrefix + r.name);
    if (meta.isOk() && meta->has_value()) {
      WallTime t;
      if (parseTimestamp(**meta, &t)) d.restart_requested = t;
    }
    desired.push_back(std::move(d));
  }
  reconciler_->setDesired(std::move(desired));
  // The services (and their routes) are part of this node's profile.
  if (discovery_) discovery_->setServices(NodeGateway::announcedServices(manifests));
  if (gateway_) gateway_->setServices(manifests);
  return Status::ok();
}

Status Node::start() {
  started_at_ = clock_->wallNow();
  BackendLink::Options bo;
  bo.backend = config_.backend;
  bo.join_token_file = config_.backend_join_token_file;
  bo.data_dir = config_.data_dir;
  bo.local_api = config_.api_socket;
  bo.endpoint = config_.advertise;
  backend_ = std::make_unique<BackendLink>(bo, *identity_, *clock_);
  NodeGateway::Options go;
  go.node_id = id_;
  go.account = config_.account_id;
  go.unix_socket = config_.gateway_socket;
  go.workers = config_.gateway_workers;
  go.global_gateway = config_.global_gateway;
  go.account_key_file = config_.account_key_file;
  gateway_ =
      std::make_unique<NodeGateway>(go, *identity_, *clock_, *reconciler_, events_, *backend_);
  // One listener on the cluster port, discovery on or off: it classifies each connection
  // and hands it over once it accepts (its subsystem, the last to start). A taken port
  // fails here.
  auto port = net::ClusterPort::listen(config_.listen, {});
  if (!port.isOk()) return port.status().withContext(config_.discovery ? "discovery" : "gateway");
  port_ = std::move(*port);
  port_->handle(net::PortClass::kPeerChannel, [this](int fd, std::string already_read) {
    backend_->servePeerChannel(fd, std::move(already_read));
  });
  port_->handle(net::PortClass::kTls, [this](int fd, std::string already_read) {
    gateway_->adopt(fd, std::move(already_read), /*tls=*/true);
  });
  port_->handle(net::PortClass::kHttp, [this](int fd, std::string already_read) {
    gateway_->adopt(fd, std::move(already_read), /*tls=*/false);
  });
  backend_->setClusterPort(port_.get());
  RETURN_IF_ERROR(subsystems_.start());
  // The gateway learns the services (the store was read a moment ago: a failure now is
  // retried by the next change).
  Status fed = refreshDesired();
  if (!fed.isOk()) LOG_WARN("gateway.services").kv("error", fed.message());
  events_.append("node.started", "", "",
                 "runtime " + runtime_->kind() + ", API on " + config_.api_socket +
                     (discovery_ ? ", discovery on" : ", discovery off"));
  return Status::ok();
}

Status Node::startReconciler() {
  // The desired state before the first pass, or that pass removes every instance.
  RETURN_IF_ERROR(refreshDesired());
  reconciler_->start();
  return Status::ok();
}

void Node::stopReconciler() {
  reconciler_->stop();
  // A deletion in progress finishes rather than leave a stopped container behind
  // (stops wait for the stop timeout, 10 s by default).
  if (!reconciler_->waitForRemovals(std::chrono::seconds(15)))
    LOG_WARN("stopping with instance removals still running; the next start finishes them");
}

Status Node::startApi() {
  http::ApiServer::Options ao;
  ao.unix_socket = config_.api_socket;
  ao.socket_group = config_.api_socket_group;
  api_ = std::make_unique<http::ApiServer>(ao);
  registerRestApi(*api_, *this);
  DockerApiOptions dopts;
  dopts.node_name = name_;
  dopts.version = EDGE_VERSION;
  dopts.data_dir = config_.data_dir;
  dopts.temp_dir = config_.data_dir + "/tmp";
  dopts.on_change = [this] { reconciler_->wake(); };
  registerDockerApi(*api_, *runtime_, dopts);
  return api_->start();
}

void Node::stop() {
  subsystems_.stop();
  events_.close();
}

Result<ApplyResult> Node::apply(std::string_view text, const std::string& manifest_dir,
                                bool dry_run) {
  std::lock_guard<std::mutex> lock(apply_mu_);
  ApplyResult result;
  result.dry_run = dry_run;
  orchestrator::ManifestParse parsed = orchestrator::parseManifestsDetailed(text, "request");
  if (!parsed.errors.empty()) {
    result.errors = std::move(parsed.errors);
    return result;
  }
  if (parsed.services.empty()) {
    result.errors.push_back(
        orchestrator::FieldError{.doc = 0, .path = "", .message = "no documents to apply"});
    return result;
  }
  // The manifest layer accepts scope cluster; this node does not act on it yet. Refused
  // here, all or nothing, rather than run on this node alone as if it were scope node.
  for (size_t i = 0; i < parsed.services.size(); ++i) {
    if (parsed.services[i].placement.scope == orchestrator::Placement::Scope::kCluster) {
      result.errors.push_back(orchestrator::FieldError{
          .doc = static_cast<int>(i) + 1,
          .path = "spec.placement.scope",
          .message = "scope cluster is not available on this node yet: it runs the services "
                     "applied to it (scope node, the default); remove spec.placement.scope"});
    }
  }
  if (!result.errors.empty()) return result;
  std::vector<orchestrator::ServiceManifest> services = std::move(parsed.services);
  orchestrator::ImageLoad images = image_loader_->load(services, manifest_dir, dry_run);
  result.warnings = std::move(images.warnings);
  result.errors = std::move(images.errors);
  if (!result.errors.empty()) return result;

  auto outcomes = store_->apply(services, dry_run);
  if (!outcomes.isOk()) return outcomes.status();
  result.outcomes = std::move(*outcomes);
  if (dry_run) return result;
  RETURN_IF_ERROR(refreshDesired());
  for (const auto& o : result.outcomes)
    if (o.action != orchestrator::ApplyOutcome::Action::kUnchanged)
      events_.append("service.applied", o.name, "",
                     std::string(orchestrator::applyActionName(o.action)) + ", generation " +
                         std::to_string(o.generation));
  return result;
}

Result<int64_t> Node::remove(const std::string& name, bool dry_run) {
  std::lock_guard<std::mutex> lock(apply_mu_);
  auto gen = store_->remove(name, dry_run);
  if (!gen.isOk() || dry_run) return gen;
  RETURN_IF_ERROR(refreshDesired());
  events_.append("service.deleted", name, "", "generation " + std::to_string(*gen));
  return gen;
}

Result<orchestrator::ServiceRecord> Node::rollback(const std::string& name,
                                                   std::optional<int64_t> to) {
  std::lock_guard<std::mutex> lock(apply_mu_);
  auto rec = store_->rollback(name, to);
  if (!rec.isOk()) return rec;
  RETURN_IF_ERROR(refreshDesired());
  events_.append("service.rolledback", name, "",
                 "now generation " + std::to_string(rec->generation));
  return rec;
}

Result<int> Node::restart(const std::string& name) {
  std::lock_guard<std::mutex> lock(apply_mu_);
  auto rec = store_->get(name);
  if (!rec.isOk()) return rec.status();
  RETURN_IF_ERROR(store_->putMeta(kRestartMetaPrefix + name, formatRfc3339Nano(clock_->wallNow())));
  RETURN_IF_ERROR(refreshDesired());
  int n = 0;
  for (const auto& i : reconciler_->instances())
    if (i.service == name && i.state == runtime::ContainerState::kRunning) n++;
  events_.append("service.restarting", name, "", std::to_string(n) + " instances, one by one");
  return n;
}

void Node::countRequest(bool error) {
  requests_.fetch_add(1);
  if (error) request_errors_.fetch_add(1);
}

nlohmann::json Node::gatewayRoutes() {
  NodeGateway* g = gateway();
  return g ? g->routesJson() : nlohmann::json::array();
}

std::string Node::metricsText() {
  return edged::metricsText(*this);
}

}  // namespace edge::edged
