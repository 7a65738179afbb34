// The discovery loop: one thread, poll(2) over the multicast socket, the TCP listener
// and every session; link agents (agent.h) do the thinking.
#include "discovery/discovery.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <net/if.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <map>
#include <mutex>
#include <thread>

#include "common/cluster_port.h"
#include "common/json.h"
#include "common/log.h"
#include "discovery/agent.h"
#include "discovery/profile.h"
#include "discovery/wire.h"
#include "identity/identity.h"
#include "identity/secure.h"

namespace edge::discovery {
namespace {

using nlohmann::json;

constexpr auto kTick = std::chrono::milliseconds(25);
constexpr auto kHandshakeTimeout = std::chrono::seconds(2);
constexpr auto kCheckTimeout = std::chrono::seconds(1);
constexpr auto kRescanEvery = std::chrono::seconds(5);
constexpr size_t kMaxSessions = 1024;
constexpr size_t kMaxHandshakesPerAddress = 8;
constexpr size_t kMaxPendingOutput = 4 << 20;
// Re-announcing the profile: free storage is read again this often, and the links hear
// at most one new profile per interval (a burst of service changes becomes one).
constexpr auto kRefreshEvery = std::chrono::seconds(30);
constexpr auto kMinAnnounceInterval = std::chrono::seconds(2);

bool parseHostPort(const std::string& text, sockaddr_in* out) {
  auto colon = text.rfind(':');
  if (colon == std::string::npos) return false;
  std::string host = text.substr(0, colon);
  std::string port = text.substr(colon + 1);
  if (port.empty() || port.size() > 5 || port.find_first_not_of("0123456789") != std::string::npos)
    return false;
  int p = std::stoi(port);
  if (p < 1 || p > 65535) return false;
  std::memset(out, 0, sizeof(*out));
  out->sin_family = AF_INET;
  out->sin_port = htons(static_cast<uint16_t>(p));
  if (host.empty() || host == "*") {
    out->sin_addr.s_addr = htonl(INADDR_ANY);
    return true;
  }
  return inet_pton(AF_INET, host.c_str(), &out->sin_addr) == 1;
}

std::string errnoText(int e) {
  return std::strerror(e);
}

class DiscoveryImpl;

// One link: its interface, its agent, and the LinkIo the agent talks through.
struct Link final : LinkIo {
  DiscoveryImpl* owner = nullptr;
  std::string interface;
  int ifindex = 0;
  in_addr address{};
  std::unique_ptr<LinkAgent> agent;

  void multicast(const std::string& datagram) override;
  SessionId connect(const std::string& endpoint) override;
  void send(SessionId session, const json& message) override;
  void close(SessionId session) override;
  void checkEndpoint(const std::string& endpoint, const std::string& node_id) override;
  std::string peerAddress(SessionId session) const override;
};

struct Conn {
  SessionId id = 0;
  int fd = -1;
  bool outbound = false;
  bool connecting = false;
  bool closing = false;     // flush, then close; the agent is not told
  bool check_only = false;  // an endpoint check: handshake, compare, close
  std::string expected_id;  // for checks
  Link* link = nullptr;     // owner; inbound sessions get one with their first message
  std::unique_ptr<identity::SecureSession> sec;
  std::string out;
  SteadyTime deadline{};   // handshake (or check) must finish by then
  bool announced = false;  // onSessionUp() was called
  uint32_t peer_addr = 0;  // inbound: the remote address (network order)
};

class DiscoveryImpl final : public Discovery {
 public:
  DiscoveryImpl(const DiscoveryOptions& options, const identity::NodeIdentity& identity,
                Clock& clock, EventSink events)
      : options_(options), identity_(identity), clock_(clock), events_(std::move(events)) {}

  ~DiscoveryImpl() override {
    stop();
    // stop() does nothing when start() never ran (create() failed half way).
    if (udp_ >= 0) ::close(udp_);
  }

  Status init() {
    if (!parseHostPort(options_.listen, &listen_addr_))
      return Status::invalidArgument("listen: \"" + options_.listen +
                                     "\" is not an IPv4 address and port (e.g. 0.0.0.0:8083)");
    if (!parseHostPort(options_.group, &group_) || (ntohl(group_.sin_addr.s_addr) >> 28) != 0xe)
      return Status::invalidArgument("discovery_group: \"" + options_.group +
                                     "\" is not an IPv4 multicast address (224.0.0.0/4) and "
                                     "port (e.g. 239.255.83.83:8083)");
    if (!options_.advertise.empty()) {
      sockaddr_in a;
      if (!parseHostPort(options_.advertise, &a) || a.sin_addr.s_addr == htonl(INADDR_ANY))
        return Status::invalidArgument("advertise: \"" + options_.advertise +
                                       "\" is not an IPv4 address and port peers can reach");
    }
    RETURN_IF_ERROR(openSockets());
    auto found = linkInterfaces(!options_.interfaces.empty());
    if (!options_.interfaces.empty()) {
      for (const auto& name : options_.interfaces) {
        auto it = std::find_if(found.begin(), found.end(),
                               [&](const InterfaceAddress& a) { return a.interface == name; });
        if (it == found.end()) {
          std::string have;
          for (const auto& a : found) have += (have.empty() ? "" : ", ") + a.interface;
          return Status::invalidArgument(
              "discovery_interfaces: " + name +
              " is not an up, multicast-capable interface with an IPv4 address; usable here: " +
              (have.empty() ? "none" : have));
        }
      }
    }
    return Status::ok();
  }

  Status start() override {
    started_at_ = clock_.wallNow();
    next_refresh_ = clock_.now() + kRefreshEvery;
    {
      std::lock_guard<std::mutex> lock(mu_);
      addLinks();
      if (links_.empty()) LOG_WARN("discovery: no usable interface yet; rescanning every 5 s");
    }
    running_ = true;
    thread_ = std::thread([this] { loop(); });
    if (own_port_) return own_port_->start();
    return Status::ok();
  }

  void stop() override {
    if (!running_.exchange(false)) return;
    if (own_port_) own_port_->stop();
    if (thread_.joinable()) thread_.join();
    {
      std::lock_guard<std::mutex> lock(mu_);
      for (auto& l : links_) l->agent->leave();
      settle();
    }
    // Give the goodbyes a moment to leave the host.
    SteadyTime until = clock_.now() + std::chrono::milliseconds(200);
    while (clock_.now() < until) {
      {
        std::lock_guard<std::mutex> lock(mu_);
        if (!anyOutput()) break;
      }
      pollOnce(std::chrono::milliseconds(20));
    }
    std::lock_guard<std::mutex> lock(mu_);
    for (auto& [id, c] : conns_) ::close(c.fd);
    conns_.clear();
    if (udp_ >= 0) ::close(udp_);
    udp_ = -1;
  }

  ClusterSnapshot snapshot() const override {
    std::lock_guard<std::mutex> lock(mu_);
    ClusterSnapshot s;
    s.node_id = identity_.id();
    s.node_name = base_profile_.name;
    s.enabled = true;
    for (const auto& l : links_) s.clusters.push_back(l->agent->view());
    return s;
  }

  void setServices(std::vector<std::string> services) override {
    std::lock_guard<std::mutex> lock(mu_);
    std::sort(services.begin(), services.end());
    services.erase(std::unique(services.begin(), services.end()), services.end());
    if (services == services_) return;
    services_ = std::move(services);
    announce_pending_ = true;
    maybeAnnounce(clock_.now());
  }

  void reportRefusal(const std::string& node_id, const std::string& what) override {
    std::lock_guard<std::mutex> lock(mu_);
    for (auto& l : links_) l->agent->reportRefusal(node_id, what);
  }

  // LinkIo, for Link (called with mu_ held, on the loop thread or in stop()).
  void multicast(Link& link, const std::string& datagram) {
    ip_mreqn m{};
    m.imr_ifindex = link.ifindex;
    m.imr_address = link.address;
    setsockopt(udp_, IPPROTO_IP, IP_MULTICAST_IF, &m, sizeof(m));
    ssize_t n = sendto(udp_, datagram.data(), datagram.size(), 0,
                       reinterpret_cast<const sockaddr*>(&group_), sizeof(group_));
    if (n < 0) {
      LOG_DEBUG("discovery: multicast send failed")
          .kv("interface", link.interface)
          .kv("error", errnoText(errno));
      return;
    }
    auto& c = link.agent->counters();
    ++c.packets_sent;
    c.bytes_sent += n;
  }

  SessionId connect(Link& link, const std::string& endpoint, bool check_only,
                    const std::string& expected_id) {
    SessionId id = next_id_++;
    sockaddr_in to;
    if (!parseHostPort(endpoint, &to)) {
      failed_.push_back({&link, id, check_only, expected_id, Status::unavailable("bad endpoint")});
      return id;
    }
    if (conns_.size() >= kMaxSessions) {
      failed_.push_back({&link, id, check_only, expected_id,
                         Status::resourceExhausted("too many sessions on this node")});
      return id;
    }
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
      failed_.push_back({&link, id, check_only, expected_id,
                         Status::resourceExhausted("socket: " + errnoText(errno))});
      return id;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    // Leave through this link's interface, whatever the routing table says.
    setsockopt(fd, SOL_SOCKET, SO_BINDTODEVICE, link.interface.c_str(),
               static_cast<socklen_t>(link.interface.size()));
    int r = ::connect(fd, reinterpret_cast<sockaddr*>(&to), sizeof(to));
    if (r < 0 && errno != EINPROGRESS) {
      int e = errno;
      ::close(fd);
      failed_.push_back({&link, id, check_only, expected_id, Status::unavailable(errnoText(e))});
      return id;
    }
    Conn c;
    c.id = id;
    c.fd = fd;
    c.outbound = true;
    c.connecting = true;
    c.check_only = check_only;
    c.expected_id = expected_id;
    c.link = &link;
    c.sec = std::make_unique<identity::SecureSession>(identity::SecureSession::Role::kInitiator,
                                                      identity_, options_.cluster_key);
    c.deadline = clock_.now() + (check_only ? kCheckTimeout : kHandshakeTimeout);
    conns_.emplace(id, std::move(c));
    return id;
  }

  void send(SessionId id, const json& message) {
    auto it = conns_.find(id);
    if (it == conns_.end() || it->second.closing) return;
    Conn& c = it->second;
    if (!c.sec->established()) return;
    if (!c.sec->send(encodeMessage(message)).isOk()) return;
    c.sec->appendOutput(&c.out);
    if (c.link) ++c.link->agent->counters().messages_sent;
    if (c.out.size() > kMaxPendingOutput) {
      // A peer that does not read is dropped rather than allowed to grow our memory.
      c.out.clear();
      c.closing = true;
      closing_now_.push_back(id);
      if (c.link)
        failed_.push_back({c.link, id, false, "", Status::unavailable("peer does not read")});
    }
  }

  std::string peerAddress(SessionId id) const {
    auto it = conns_.find(id);
    if (it == conns_.end() || it->second.peer_addr == 0) return {};
    char buf[INET_ADDRSTRLEN] = {};
    in_addr a{};
    a.s_addr = it->second.peer_addr;
    inet_ntop(AF_INET, &a, buf, sizeof(buf));
    return buf;
  }

  void close(SessionId id) {
    auto it = conns_.find(id);
    if (it == conns_.end()) return;
    it->second.closing = true;
    if (it->second.out.empty()) closing_now_.push_back(id);
  }

 private:
  struct Failure {
    Link* link;
    SessionId id;
    bool check_only;
    std::string expected_id;
    Status why;
  };

  Status openSockets() {
    udp_ = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (udp_ < 0) return Status::internal("discovery: socket: " + errnoText(errno));
    int one = 1, zero = 0, ttl = 1;
    setsockopt(udp_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    setsockopt(udp_, IPPROTO_IP, IP_PKTINFO, &one, sizeof(one));
    setsockopt(udp_, IPPROTO_IP, IP_MULTICAST_LOOP, &zero, sizeof(zero));
    setsockopt(udp_, IPPROTO_IP, IP_MULTICAST_TTL, &ttl, sizeof(ttl));
    // Only the groups this socket joined, on the interfaces it joined them on.
    setsockopt(udp_, IPPROTO_IP, IP_MULTICAST_ALL, &zero, sizeof(zero));
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_ANY);
    a.sin_port = group_.sin_port;
    if (bind(udp_, reinterpret_cast<sockaddr*>(&a), sizeof(a)) < 0)
      return Status::failedPrecondition("discovery: cannot bind UDP port " +
                                        std::to_string(ntohs(group_.sin_port)) + ": " +
                                        errnoText(errno));
    // The TCP side comes from the cluster port: the owner's, or one of our own that hands
    // what is not a discovery session to on_foreign_connection.
    net::ClusterPort* port = options_.port;
    if (!port) {
      auto own = net::ClusterPort::listen(options_.listen, {});
      if (!own.isOk())
        return Status::failedPrecondition("listen " + options_.listen + ": " +
                                          own.status().message());
      own_port_ = std::move(*own);
      port = own_port_.get();
      for (auto c : {net::PortClass::kPeerChannel, net::PortClass::kTls, net::PortClass::kHttp})
        if (options_.on_foreign_connection) port->handle(c, options_.on_foreign_connection);
    }
    port->handle(net::PortClass::kDiscovery, [this](int fd, std::string already_read) {
      adoptSession(fd, std::move(already_read));
    });
    return Status::ok();
  }

  NodeProfile profileFor(const Link& link) {
    NodeProfile p = base_profile_;
    p.services = services_;
    if (!options_.advertise.empty()) {
      p.endpoint = options_.advertise;
    } else {
      char buf[INET_ADDRSTRLEN] = {};
      inet_ntop(AF_INET, &link.address, buf, sizeof(buf));
      p.endpoint = std::string(buf) + ":" + std::to_string(ntohs(listen_addr_.sin_port));
    }
    return p;
  }

  // Adds a link for every usable interface not yet covered (mu_ held).
  void addLinks() {
    if (base_profile_.name.empty()) {
      ProfileInputs in = options_.profile;
      in.interfaces = options_.interfaces;
      base_profile_ = collectProfile(in, started_at_);
    }
    last_scan_ = clock_.now();
    for (const auto& a : linkInterfaces(!options_.interfaces.empty())) {
      if (!options_.interfaces.empty() &&
          std::find(options_.interfaces.begin(), options_.interfaces.end(), a.interface) ==
              options_.interfaces.end())
        continue;
      bool have = false;
      for (const auto& l : links_) have = have || l->interface == a.interface;
      if (have) continue;
      auto link = std::make_unique<Link>();
      link->owner = this;
      link->interface = a.interface;
      link->ifindex = static_cast<int>(if_nametoindex(a.interface.c_str()));
      if (link->ifindex == 0 || inet_pton(AF_INET, a.address.c_str(), &link->address) != 1)
        continue;
      ip_mreqn m{};
      m.imr_multiaddr = group_.sin_addr;
      m.imr_address = link->address;
      m.imr_ifindex = link->ifindex;
      if (setsockopt(udp_, IPPROTO_IP, IP_ADD_MEMBERSHIP, &m, sizeof(m)) < 0) {
        LOG_WARN("discovery: cannot join the multicast group")
            .kv("interface", a.interface)
            .kv("error", errnoText(errno));
        continue;
      }
      AgentOptions ao;
      ao.interface = a.interface;
      ao.cluster_id = networkOf(a);
      if (!options_.profile.public_address.empty())
        ao.cluster_id += "@" + options_.profile.public_address;
      ao.beacon_interval = options_.beacon_interval;
      ao.supernode_timeout = options_.supernode_timeout;
      ao.join_timeout = std::max(std::chrono::milliseconds(1000), options_.supernode_timeout);
      ao.member_timeout = options_.member_timeout;
      ao.blacklist_period = options_.blacklist_period;
      ao.cluster_key = options_.cluster_key;
      link->agent = std::make_unique<LinkAgent>(ao, identity_, clock_, *link, events_);
      LOG_INFO("discovery: joining the link")
          .kv("interface", a.interface)
          .kv("address", a.address)
          .kv("cluster", ao.cluster_id);
      Link* raw = link.get();
      links_.push_back(std::move(link));
      raw->agent->start(profileFor(*raw));
    }
  }

  // What changes while the node runs (free storage; services come through setServices)
  // is read again now and then and announced when it moved enough (mu_ held).
  void refreshProfile(SteadyTime now) {
    next_refresh_ = now + kRefreshEvery;
    int64_t free = freeStorageBytes(options_.profile.data_dir);
    if (free > 0 && storageChangedMuch(base_profile_.storage_free_bytes, free)) {
      base_profile_.storage_free_bytes = free;
      announce_pending_ = true;
    }
  }

  // Sends a pending profile change to every link, at most once per kMinAnnounceInterval
  // (mu_ held).
  void maybeAnnounce(SteadyTime now) {
    if (!announce_pending_ || now < last_announce_ + kMinAnnounceInterval) return;
    announce_pending_ = false;
    last_announce_ = now;
    for (auto& l : links_) l->agent->updateProfile(profileFor(*l));
    settle();
  }

  Link* linkByIndex(int ifindex) {
    for (auto& l : links_)
      if (l->ifindex == ifindex) return l.get();
    return nullptr;
  }

  Link* linkByCluster(const std::string& cluster) {
    for (auto& l : links_)
      if (l->agent->clusterId() == cluster) return l.get();
    return nullptr;
  }

  bool anyOutput() const {
    for (const auto& [id, c] : conns_)
      if (!c.out.empty()) return true;
    return false;
  }

  void loop() {
    while (running_) {
      pollOnce(kTick);
      std::lock_guard<std::mutex> lock(mu_);
      SteadyTime now = clock_.now();
      if (options_.interfaces.empty() && now - last_scan_ > kRescanEvery) addLinks();
      if (now >= next_refresh_) refreshProfile(now);
      maybeAnnounce(now);
      for (auto& l : links_) l->agent->tick();
      expireConns(now);
      settle();
    }
  }

  // Delivers failures and closes queued by agent calls (never re-entering an agent from
  // inside one of its own calls).
  void settle() {
    while (!failed_.empty() || !closing_now_.empty()) {
      auto failed = std::move(failed_);
      failed_.clear();
      for (auto& f : failed) {
        if (f.check_only) {
          f.link->agent->onEndpointChecked(f.expected_id, f.why);
        } else {
          f.link->agent->onSessionDown(f.id);
        }
      }
      auto closing = std::move(closing_now_);
      closing_now_.clear();
      for (SessionId id : closing) {
        auto it = conns_.find(id);
        if (it != conns_.end() && it->second.out.empty()) {
          ::close(it->second.fd);
          conns_.erase(it);
        }
      }
    }
  }

  void expireConns(SteadyTime now) {
    std::vector<SessionId> late;
    for (auto& [id, c] : conns_)
      if (!c.announced && !c.closing && now > c.deadline) late.push_back(id);
    for (SessionId id : late) failConn(id, Status::deadlineExceeded("no answer in time"));
  }

  // The connection failed: tell its agent (unless it asked to close it) and drop it.
  void failConn(SessionId id, const Status& why) {
    auto it = conns_.find(id);
    if (it == conns_.end()) return;
    Conn c = std::move(it->second);
    conns_.erase(it);
    ::close(c.fd);
    if (c.closing || !c.link) return;
    if (c.check_only) {
      c.link->agent->onEndpointChecked(c.expected_id, why);
    } else if (c.outbound || c.announced || c.link->agent->ownsSession(id)) {
      c.link->agent->onSessionDown(id);
    }
  }

  void pollOnce(std::chrono::milliseconds timeout) {
    std::vector<pollfd> fds;
    std::vector<SessionId> ids;
    {
      std::lock_guard<std::mutex> lock(mu_);
      fds.push_back({udp_, POLLIN, 0});
      for (auto& [id, c] : conns_) {
        short ev = POLLIN;
        if (c.connecting || !c.out.empty()) ev |= POLLOUT;
        fds.push_back({c.fd, ev, 0});
        ids.push_back(id);
      }
    }
    int n = ::poll(fds.data(), fds.size(), static_cast<int>(timeout.count()));
    if (n <= 0) return;
    std::lock_guard<std::mutex> lock(mu_);
    if (fds[0].revents & POLLIN) readDatagrams();
    for (size_t i = 1; i < fds.size(); ++i) {
      if (!fds[i].revents) continue;
      SessionId id = ids[i - 1];
      if (fds[i].revents & POLLOUT) writeConn(id);
      if (fds[i].revents & (POLLIN | POLLHUP | POLLERR)) readConn(id);
      settle();
    }
    settle();
  }

  void readDatagrams() {
    char buf[2048];
    char ctrl[256];
    for (int i = 0; i < 256; ++i) {  // bounded per round so sessions are not starved
      iovec iov{buf, sizeof(buf)};
      msghdr msg{};
      msg.msg_iov = &iov;
      msg.msg_iovlen = 1;
      msg.msg_control = ctrl;
      msg.msg_controllen = sizeof(ctrl);
      ssize_t n = recvmsg(udp_, &msg, 0);
      if (n < 0) return;
      int ifindex = 0;
      for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c))
        if (c->cmsg_level == IPPROTO_IP && c->cmsg_type == IP_PKTINFO)
          ifindex = reinterpret_cast<in_pktinfo*>(CMSG_DATA(c))->ipi_ifindex;
      Link* link = linkByIndex(ifindex);
      if (!link) continue;
      if (msg.msg_flags & MSG_TRUNC) {
        ++link->agent->counters().dropped_malformed;
        continue;
      }
      link->agent->onDatagram(std::string_view(buf, static_cast<size_t>(n)));
      settle();
    }
  }

  // A discovery session from the cluster port (blocking, its first bytes read): it joins
  // the loop's sessions, its first bytes are fed as if the loop had read them.
  void adoptSession(int fd, std::string already_read) {
    sockaddr_in from{};
    socklen_t len = sizeof(from);
    if (getpeername(fd, reinterpret_cast<sockaddr*>(&from), &len) != 0) from = {};
    std::lock_guard<std::mutex> lock(mu_);
    if (!running_) {
      ::close(fd);
      return;
    }
    // One address cannot hold more than a few handshakes open at once, so a peer that
    // opens connections and says nothing cannot lock members out.
    size_t unauthenticated = 0;
    for (const auto& [id, c] : conns_)
      if (!c.outbound && !c.sec->established() && c.peer_addr == from.sin_addr.s_addr)
        ++unauthenticated;
    if (conns_.size() >= kMaxSessions || unauthenticated >= kMaxHandshakesPerAddress) {
      ::close(fd);
      return;
    }
    int flags = fcntl(fd, F_GETFL);
    if (flags >= 0) fcntl(fd, F_SETFL, flags | O_NONBLOCK);
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    Conn c;
    c.id = next_id_++;
    c.fd = fd;
    c.sec = std::make_unique<identity::SecureSession>(identity::SecureSession::Role::kResponder,
                                                      identity_, options_.cluster_key);
    c.deadline = clock_.now() + kHandshakeTimeout;
    c.peer_addr = from.sin_addr.s_addr;
    SessionId id = c.id;
    conns_.emplace(id, std::move(c));
    consume(id, already_read);
    settle();
  }

  void writeConn(SessionId id) {
    auto it = conns_.find(id);
    if (it == conns_.end()) return;
    Conn& c = it->second;
    if (c.connecting) {
      int err = 0;
      socklen_t len = sizeof(err);
      getsockopt(c.fd, SOL_SOCKET, SO_ERROR, &err, &len);
      if (err != 0) {
        failConn(id, Status::unavailable(errnoText(err)));
        return;
      }
      c.connecting = false;
      c.sec->appendOutput(&c.out);  // the initiator's hello
    }
    while (!c.out.empty()) {
      ssize_t n = ::send(c.fd, c.out.data(), c.out.size(), MSG_NOSIGNAL);
      if (n < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK) return;
        failConn(id, Status::unavailable(errnoText(errno)));
        return;
      }
      c.out.erase(0, static_cast<size_t>(n));
    }
    if (c.closing) closing_now_.push_back(id);
  }

  void readConn(SessionId id) {
    char buf[65536];
    for (int round = 0; round < 16; ++round) {
      auto it = conns_.find(id);
      if (it == conns_.end()) return;
      Conn& c = it->second;
      if (c.connecting) return;
      ssize_t n = ::recv(c.fd, buf, sizeof(buf), 0);
      if (n == 0) {
        failConn(id, Status::aborted("closed by the peer"));
        return;
      }
      if (n < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK) return;
        failConn(id, Status::unavailable(errnoText(errno)));
        return;
      }
      if (!consume(id, std::string_view(buf, static_cast<size_t>(n)))) return;
      if (static_cast<size_t>(n) < sizeof(buf)) return;
    }
  }

  // Feeds bytes read from session `id`; false when the session is gone or closing.
  bool consume(SessionId id, std::string_view data) {
    {
      auto it = conns_.find(id);
      if (it == conns_.end()) return false;
      Conn& c = it->second;
      bool was_established = c.sec->established();
      std::vector<std::string> messages;
      Status s = c.sec->feed(data, &messages);
      c.sec->appendOutput(&c.out);
      if (!s.isOk()) {
        if (c.link) {
          auto& counters = c.link->agent->counters();
          if (s.code() == StatusCode::kPermissionDenied) {
            ++counters.dropped_forged;
          } else {
            ++counters.dropped_malformed;
          }
        }
        LOG_DEBUG("discovery: session dropped").kv("error", s.message());
        failConn(id, s);
        return false;
      }
      if (!was_established && c.sec->established()) {
        if (c.check_only) {
          bool ok = c.sec->peerId() == c.expected_id;
          std::string got = c.sec->peerId();
          Link* link = c.link;
          std::string expected = c.expected_id;
          c.closing = true;
          closing_now_.push_back(id);
          // The check needs the responder's proof only: the FINISH is not sent.
          c.out.clear();
          link->agent->onEndpointChecked(
              expected, ok ? Status::ok() : Status::permissionDenied("it answered as node " + got));
          return false;
        }
        if (c.outbound) {
          c.announced = true;
          if (!c.out.empty()) writeConn(id);
          c.link->agent->onSessionUp(id, c.sec->peerId());
          if (!conns_.count(id)) return false;
        } else {
          c.announced = true;
        }
      }
      for (auto& text : messages) {
        auto cit = conns_.find(id);
        if (cit == conns_.end() || cit->second.closing) return false;
        Conn& cc = cit->second;
        auto j = decodeMessage(text);
        if (!j.isOk() || !j->is_object()) {
          if (cc.link) ++cc.link->agent->counters().dropped_malformed;
          failConn(id, Status::invalidArgument("a session message that does not decode"));
          return false;
        }
        if (!cc.link) {
          auto cluster = j->find("cluster");
          Link* link = cluster != j->end() && cluster->is_string()
                           ? linkByCluster(cluster->get<std::string>())
                           : nullptr;
          if (!link) {
            // Not a cluster of ours: say so, then hang up.
            json r{{"t", "reject"}, {"reason", "this node is in no cluster by that id"}};
            if (cc.sec->send(encodeMessage(r)).isOk()) cc.sec->appendOutput(&cc.out);
            cc.closing = true;
            writeConn(id);
            return false;
          }
          cc.link = link;
        }
        Link* link = cc.link;
        std::string peer = cc.sec->peerId();
        link->agent->onMessage(id, peer, *j);
        settle();
      }
      if (auto again = conns_.find(id); again != conns_.end() && !again->second.out.empty())
        writeConn(id);
    }
    return conns_.count(id) > 0 && !conns_.at(id).closing;
  }

  DiscoveryOptions options_;
  const identity::NodeIdentity& identity_;
  Clock& clock_;
  EventSink events_;
  WallTime started_at_{};

  mutable std::mutex mu_;
  std::atomic<bool> running_{false};
  std::thread thread_;
  int udp_ = -1;
  std::unique_ptr<net::ClusterPort> own_port_;  // when options_.port is not given
  sockaddr_in listen_addr_{};
  sockaddr_in group_{};
  NodeProfile base_profile_;
  std::vector<std::string> services_;
  std::vector<std::unique_ptr<Link>> links_;
  std::map<SessionId, Conn> conns_;
  SessionId next_id_ = 1;
  std::vector<Failure> failed_;
  std::vector<SessionId> closing_now_;
  SteadyTime last_scan_{};
  SteadyTime next_refresh_{};
  SteadyTime last_announce_{};
  bool announce_pending_ = false;
};

void Link::multicast(const std::string& datagram) {
  owner->multicast(*this, datagram);
}
SessionId Link::connect(const std::string& endpoint) {
  return owner->connect(*this, endpoint, false, "");
}
void Link::send(SessionId session, const json& message) {
  owner->send(session, message);
}
void Link::close(SessionId session) {
  owner->close(session);
}
void Link::checkEndpoint(const std::string& endpoint, const std::string& node_id) {
  owner->connect(*this, endpoint, true, node_id);
}
std::string Link::peerAddress(SessionId session) const {
  return owner->peerAddress(session);
}

}  // namespace

Result<std::unique_ptr<Discovery>> Discovery::create(const DiscoveryOptions& options,
                                                     const identity::NodeIdentity& identity,
                                                     Clock& clock, EventSink events) {
  auto d = std::make_unique<DiscoveryImpl>(options, identity, clock, std::move(events));
  RETURN_IF_ERROR(d->init());
  return std::unique_ptr<Discovery>(std::move(d));
}

}  // namespace edge::discovery
