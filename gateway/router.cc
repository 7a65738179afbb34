#include "gateway/router.h"

#include <nlohmann/json.hpp>

#include "common/log.h"

namespace edge::gateway {

namespace {

// A request path is at most this long in a log line.
constexpr size_t kMaxLoggedPath = 200;

TryOutcome outcomeOf(const TryResult& r) {
  switch (r.outcome) {
    case TryEnd::kResponse:
      return outcomeForStatus(r.status);
    case TryEnd::kConnectFailed:
      return TryOutcome::kConnectFailure;
    case TryEnd::kTimeout:
      return TryOutcome::kTimeout;
    case TryEnd::kReset:
    case TryEnd::kBadResponse:
      return TryOutcome::kReset;
  }
  return TryOutcome::kReset;
}

std::string callerKindName(Caller::Kind k) {
  switch (k) {
    case Caller::Kind::kLocal:
      return "local";
    case Caller::Kind::kNetwork:
      return "network";
    case Caller::Kind::kNode:
      return "node";
  }
  return "?";
}

}  // namespace

Decision errorDecision(int status, const std::string& message, std::vector<Header> headers) {
  Decision d;
  d.status = status;
  d.body = nlohmann::json({{"error", message}}).dump() + "\n";
  d.headers = std::move(headers);
  return d;
}

// One request forwarded: the snapshot it matched, the tries' leases, the retry state.
class ServiceRouter::ServiceExchange : public Exchange {
 public:
  ServiceExchange(ServiceRouter& router, RouteTableSnapshot table, const RouteEntry* entry,
                  const RequestHead& head, const Caller& caller, std::vector<std::string> activated,
                  std::vector<Header> set_headers)
      : router_(router),
        table_(std::move(table)),
        entry_(entry),
        method_(head.method),
        path_(head.target.substr(0, kMaxLoggedPath)),
        caller_(caller),
        activated_(std::move(activated)),
        set_headers_(std::move(set_headers)),
        start_(router.clock_->now()) {
    entry_->state->requestStarted();
    if (entry_->spec.on_demand && router_.hooks_.call_started)
      router_.hooks_.call_started(entry_->spec.service);
  }

  ~ServiceExchange() override {
    if (entry_->spec.on_demand && router_.hooks_.call_ended)
      router_.hooks_.call_ended(entry_->spec.service);
  }

  std::optional<Target> nextTarget(int /*attempt*/) override {
    // A peer whose direct connection failed is tried once more through the relays.
    if (!relay_next_.empty()) {
      Target t;
      t.key = "relay:" + relay_next_;
      t.tls_node_id = relay_next_;
      std::string node = relay_next_;
      auto dial = router_.hooks_.dial_relay;
      t.dial = [dial, node] { return dial(node); };
      relay_tried_.insert(relay_next_);
      current_peer_.clear();
      relay_next_.clear();
      via_ = "relay";
      return t;
    }
    // Instances an on-demand start just brought up (the table learns them a moment later).
    if (!activated_.empty()) {
      if (activated_next_ >= activated_.size()) {
        reject_ = "every started instance of " + entry_->spec.service + " failed";
        return std::nullopt;
      }
      Target t;
      t.address = activated_[activated_next_++];
      t.key = "local:" + t.address;
      via_ = "local";
      return t;
    }
    auto lease = router_.balancer_.pick(*entry_, tried_, threadRng());
    if (!lease.isOk()) {
      reject_status_ = 503;
      reject_ = lease.status().message();
      return std::nullopt;
    }
    const Endpoint& e = lease->endpoint();
    if (caller_.kind == Caller::Kind::kNode && e.tier != Tier::kLocal) {
      // One hop at most: a peer gateway asked us because we host the service.
      reject_status_ = 503;
      reject_ = "service " + entry_->spec.service + " has no ready instance on node " +
                router_.options_.node_id;
      lease->finish(TryOutcome::kCancelled);
      return std::nullopt;
    }
    Target t;
    t.key = e.upstream->label();
    t.address = e.address;
    current_peer_.clear();
    via_ = std::string(tierName(e.tier));
    if (e.tier == Tier::kPeer) {
      t.tls_node_id = e.peer.node_id;
      current_peer_ = e.peer.node_id;
      if (e.peer.via == PeerInstance::Via::kRelay && router_.hooks_.dial_relay) {
        std::string node = e.peer.node_id;
        auto dial = router_.hooks_.dial_relay;
        t.dial = [dial, node] { return dial(node); };
        relay_tried_.insert(node);
        current_peer_.clear();
        via_ = "relay";
      }
    }
    lease_.emplace(std::move(*lease));
    return t;
  }

  std::optional<Duration> tryDone(const TryResult& r, bool retry_possible) override {
    TryOutcome outcome = outcomeOf(r);
    if (lease_) {
      lease_->finish(outcome);
      lease_.reset();
    }
    ++tries_;
    last_error_ = r.error;
    if (!retry_possible) return std::nullopt;
    const RetryPolicy& policy = entry_->spec.retry;
    // A direct connection to a peer that failed is worth one relayed try of the same peer
    // (the peer may sit behind a NAT), whatever the retry policy: nothing was sent.
    if (outcome == TryOutcome::kConnectFailure && !current_peer_.empty() &&
        router_.hooks_.dial_relay && relay_tried_.count(current_peer_) == 0) {
      relay_next_ = current_peer_;
      return Duration::zero();
    }
    if (!policy.shouldRetry(outcome, method_, retries_)) return std::nullopt;
    Duration left = policy.tryTimeout(start_, router_.clock_->now());
    if (left <= Duration::zero()) return std::nullopt;
    if (!entry_->state->tryRetry()) return std::nullopt;
    Duration wait = policy.backoff(retries_, threadRng());
    ++retries_;
    return std::min(wait, left);
  }

  int rejectStatus() const override { return reject_status_; }
  std::string rejectReason() const override {
    if (tries_ > 0 && !last_error_.empty()) return reject_ + " (last try: " + last_error_ + ")";
    return reject_;
  }

  Duration perTryTimeout() const override {
    Duration t = entry_->spec.retry.tryTimeout(start_, router_.clock_->now());
    return t > Duration::zero() ? t : std::chrono::milliseconds(1);
  }
  Duration deadline() const override { return entry_->spec.retry.timeout; }
  const std::vector<Header>& setHeaders() const override { return set_headers_; }

  void finish(const FinishInfo& info) override {
    if (lease_) {
      lease_->finish(TryOutcome::kCancelled);
      lease_.reset();
    }
    ErrorKind kind{};
    bool failed = false;
    if (info.status == 502) {
      kind = ErrorKind::kStatus502;
      failed = true;
    } else if (info.status == 503) {
      kind = tries_ == 0 ? ErrorKind::kNoUpstream : ErrorKind::kStatus503;
      failed = true;
    } else if (info.status == 504) {
      kind = ErrorKind::kTimeout;
      failed = true;
    } else if (info.status == 0) {
      kind = ErrorKind::kReset;
      failed = true;
    }
    entry_->state->requestFinished(failed ? &kind : nullptr, info.duration);
    if (router_.options_.access_log && router_.sampler_.shouldLog()) {
      LOG_INFO("gateway.request")
          .kv("caller", callerKindName(caller_.kind))
          .kv("from", caller_.kind == Caller::Kind::kNode ? caller_.node_id : caller_.address)
          .kv("method", method_)
          .kv("path", path_)
          .kv("route", entry_->spec.service)
          .kv("status", info.status)
          .kv("tries", info.tries)
          .kv("via", via_)
          .kv("upstream", info.upstream)
          .kv("ms", std::chrono::duration_cast<std::chrono::milliseconds>(info.duration).count())
          .kv("error", info.error);
    }
  }

 private:
  ServiceRouter& router_;
  RouteTableSnapshot table_;  // keeps entry_ alive
  const RouteEntry* entry_;
  std::string method_;
  std::string path_;
  Caller caller_;
  std::vector<std::string> activated_;
  size_t activated_next_ = 0;
  std::vector<Header> set_headers_;
  SteadyTime start_;
  TriedUpstreams tried_;
  std::optional<UpstreamLease> lease_;
  std::string current_peer_;  // the peer of the try in flight, when dialled directly
  std::string relay_next_;
  std::set<std::string> relay_tried_;
  std::string via_;
  int retries_ = 0;
  int tries_ = 0;
  int reject_status_ = 503;
  std::string reject_ = "no upstream available";
  std::string last_error_;
};

ServiceRouter::ServiceRouter(RouterOptions options, RouterHooks hooks, ClockPtr clock,
                             std::shared_ptr<GatewayMetrics> metrics)
    : options_(std::move(options)),
      hooks_(std::move(hooks)),
      clock_(clock),
      metrics_(metrics),
      registry_(clock, metrics),
      balancer_(clock),
      sampler_(clock) {
  if (options_.verifier) setVerifier(options_.verifier, options_.issuer);
}

void ServiceRouter::setVerifier(TokenVerifierPtr verifier, std::string issuer) {
  if (!verifier) {
    verifier_.store(nullptr);
    return;
  }
  verifier_.store(
      std::make_shared<const VerifierState>(VerifierState{std::move(verifier), std::move(issuer)}));
}

ServiceRouter::~ServiceRouter() = default;

std::vector<std::string> ServiceRouter::setRoutes(const std::vector<RouteSpec>& specs,
                                                  std::set<std::string> hosted_on_demand) {
  auto built = RouteTable::build(specs, registry_);
  {
    std::lock_guard<std::mutex> lock(mu_);
    hosted_on_demand_ = std::move(hosted_on_demand);
  }
  table_.update(built.table);
  return built.warnings;
}

bool ServiceRouter::hostsOnDemand(const std::string& service) const {
  std::lock_guard<std::mutex> lock(mu_);
  return hosted_on_demand_.count(service) != 0;
}

void ServiceRouter::route(const RequestHead& head, const Caller& caller,
                          std::function<void(Decision)> done) {
  RouteTableSnapshot table = table_.current();
  const RouteEntry* entry = table ? table->match(head.path()) : nullptr;
  if (entry == nullptr) {
    done(errorDecision(404, "no route for " + std::string(head.path().substr(0, kMaxLoggedPath)) +
                                " on node " + options_.node_id + " (edgectl routes lists them)"));
    return;
  }
  const std::string* auth = head.find("Authorization");
  std::string authorization = auth != nullptr ? *auth : std::string();
  const auto& scopes = entry->spec.required_scopes;
  // A local app without a token is the sidecar's own workload: nothing to check here,
  // the node's token goes with the call. Everyone else shows a token when there is an
  // issuer to check it against, and always when the route asks for scopes.
  bool trusted_local = caller.kind == Caller::Kind::kLocal && auth == nullptr;
  std::shared_ptr<const VerifierState> vs = verifier_.load();
  bool must_check = !trusted_local && (vs != nullptr || !scopes.empty());
  if (!must_check) {
    forward(head, caller, std::move(table), entry, std::move(done));
    return;
  }
  if (vs == nullptr) {
    done(errorDecision(503, "route " + entry->spec.base_path + " requires token scopes, but node " +
                                options_.node_id +
                                " has no token issuer to check them against (configure backend "
                                "or account_key_file)"));
    return;
  }
  Requirement req;
  req.issuer = vs->issuer;
  req.account = options_.account;
  if (req.account.empty() && options_.account_of) req.account = options_.account_of();
  req.scopes = scopes;
  if (caller.kind == Caller::Kind::kNode) {
    // A node token must be the calling node's own (a token stolen from another node is
    // refused); a user's or application's token the peer passes on has no node claim.
    req.node = caller.node_id;
    req.node_optional = true;
  }
  // The shared pointers keep what the deferred answer needs; `head` does not outlive
  // this call, so the parts needed later are copied.
  auto head_copy = std::make_shared<RequestHead>(head);
  auto shared_done = std::make_shared<std::function<void(Decision)>>(std::move(done));
  vs->verifier->check(
      authorization, req, [this, head_copy, caller, table, entry, shared_done](TokenCheck check) {
        if (!check.ok()) {
          std::vector<Header> headers;
          if (!check.www_authenticate.empty())
            headers.push_back({"WWW-Authenticate", check.www_authenticate});
          (*shared_done)(errorDecision(check.status, check.reason, std::move(headers)));
          return;
        }
        forward(*head_copy, caller, table, entry, std::move(*shared_done));
      });
}

void ServiceRouter::forward(const RequestHead& head, const Caller& caller, RouteTableSnapshot table,
                            const RouteEntry* entry, std::function<void(Decision)> done) {
  bool start_here = entry->spec.on_demand && entry->local_count == 0 &&
                    hostsOnDemand(entry->spec.service) && hooks_.activate;
  if (!start_here) {
    forwardWithToken(head, caller, std::move(table), entry, {}, std::move(done));
    return;
  }
  auto head_copy = std::make_shared<RequestHead>(head);
  auto shared_done = std::make_shared<std::function<void(Decision)>>(std::move(done));
  std::string service = entry->spec.service;
  hooks_.activate(service, [this, head_copy, caller, table, entry, service,
                            shared_done](RouterHooks::Endpoints endpoints) {
    if (!endpoints.isOk() || endpoints->empty()) {
      std::string why = endpoints.isOk() ? "no instance came up" : endpoints.status().message();
      (*shared_done)(errorDecision(503, "on-demand service " + service + " did not start: " + why));
      return;
    }
    forwardWithToken(*head_copy, caller, table, entry, std::move(*endpoints),
                     std::move(*shared_done));
  });
}

void ServiceRouter::forwardWithToken(const RequestHead& head, const Caller& caller,
                                     RouteTableSnapshot table, const RouteEntry* entry,
                                     std::vector<std::string> activated,
                                     std::function<void(Decision)> done) {
  std::vector<Header> set_headers;
  set_headers.push_back({"X-Edge-Route", entry->spec.service});
  bool attach = caller.kind == Caller::Kind::kLocal && head.find("Authorization") == nullptr &&
                options_.tokens != nullptr;
  if (!attach) {
    Decision d;
    d.exchange = std::make_unique<ServiceExchange>(*this, std::move(table), entry, head, caller,
                                                   std::move(activated), std::move(set_headers));
    done(std::move(d));
    return;
  }
  Scopes scopes;
  if (options_.tokens_carry_route_scopes) scopes = entry->spec.required_scopes;
  if (auto token = options_.tokens->cached(scopes)) {
    set_headers.push_back({"Authorization", "Bearer " + *token});
    Decision d;
    d.exchange = std::make_unique<ServiceExchange>(*this, std::move(table), entry, head, caller,
                                                   std::move(activated), std::move(set_headers));
    done(std::move(d));
    return;
  }
  auto head_copy = std::make_shared<RequestHead>(head);
  auto shared_done = std::make_shared<std::function<void(Decision)>>(std::move(done));
  auto shared_headers = std::make_shared<std::vector<Header>>(std::move(set_headers));
  auto shared_activated = std::make_shared<std::vector<std::string>>(std::move(activated));
  options_.tokens->token(scopes, [this, head_copy, caller, table, entry, shared_done,
                                  shared_headers, shared_activated](Result<std::string> token) {
    if (!token.isOk()) {
      (*shared_done)(errorDecision(
          503, "node " + options_.node_id +
                   " could not get a token for the call: " + token.status().message()));
      return;
    }
    shared_headers->push_back({"Authorization", "Bearer " + *token});
    Decision d;
    d.exchange =
        std::make_unique<ServiceExchange>(*this, table, entry, *head_copy, caller,
                                          std::move(*shared_activated), std::move(*shared_headers));
    (*shared_done)(std::move(d));
  });
}

}  // namespace edge::gateway
