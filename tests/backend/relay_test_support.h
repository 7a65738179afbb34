// Test support for the relays: a fake Authenticator, a whole relay backend on loopback
// (a SQLite Store in a temp dir, a RelayServer, Signaling on an ApiServer, all on port
// 0) and small blocking socket helpers. Shared by the backend's relay tests and the
// gateway's relay client tests.
//
// Thread-safety: the socket helpers are free functions on caller-owned fds; a
// RelayBackend is built and torn down by one thread.
#pragma once

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include <filesystem>
#include <memory>
#include <string>
#include <string_view>

#include <gtest/gtest.h>

#include "backend/auth.h"
#include "backend/relay_server.h"
#include "backend/signaling.h"
#include "backend/store.h"
#include "common/http.h"
#include "common/http_server.h"
#include "common/net.h"

namespace edge::backend::testing {

// "Bearer node:<id>:<account>[:<scope>,<scope>...]" is a node of that account;
// "Bearer client:<id>:<account>[:scopes]" a non-node client. Without scopes every relay
// scope is granted. Anything else is refused as a bad token.
class FakeAuthenticator : public Authenticator {
 public:
  Result<Caller> authenticate(std::string_view authorization, std::string_view) override {
    constexpr std::string_view kBearer = "Bearer ";
    if (!authorization.starts_with(kBearer))
      return Status::permissionDenied("no bearer token in the Authorization header");
    std::string rest(authorization.substr(kBearer.size()));
    std::vector<std::string> parts;
    size_t start = 0;
    for (int i = 0; i < 3; ++i) {
      size_t colon = rest.find(':', start);
      if (colon == std::string::npos) break;
      parts.push_back(rest.substr(start, colon - start));
      start = colon + 1;
    }
    parts.push_back(rest.substr(start));
    if (parts.size() < 3 || (parts[0] != "node" && parts[0] != "client"))
      return Status::permissionDenied("malformed token");
    Caller c;
    c.subject = parts[0] + ":" + parts[1];
    c.client_id = parts[1];
    c.account = parts[2];
    if (parts[0] == "node") c.node_id = parts[1];
    if (parts.size() == 4) {
      std::string scopes = parts[3];
      size_t s = 0;
      while (s <= scopes.size()) {
        size_t comma = scopes.find(',', s);
        if (comma == std::string::npos) comma = scopes.size();
        if (comma > s) c.scopes.push_back(scopes.substr(s, comma - s));
        s = comma + 1;
      }
    } else {
      c.scopes = {"relay:sep", "relay:connect", "relay:bep"};
    }
    c.expires_at = 4'000'000'000;
    return c;
  }
};

inline std::string nodeToken(std::string_view node, std::string_view account = "acct1") {
  return "Bearer node:" + std::string(node) + ":" + std::string(account);
}

// A relay backend on 127.0.0.1: Store, RelayServer (instance "r1"), Signaling and its
// HTTP API. Options can be adjusted before start().
struct RelayBackend {
  std::string dir;
  StorePtr store;
  FakeAuthenticator auth;
  RelayServer::Options relay_options;
  Signaling::Options signaling_options;
  std::unique_ptr<RelayServer> relay;
  std::unique_ptr<Signaling> signaling;
  std::unique_ptr<http::ApiServer> api;

  RelayBackend() {
    char tmpl[] = "/tmp/edge-relay-test-XXXXXX";
    dir = ::mkdtemp(tmpl);
    auto s = openStore("sqlite:" + dir + "/backend.db");
    EXPECT_TRUE(s.isOk()) << s.status().toString();
    if (s.isOk()) store = std::move(*s);
    relay_options.listen = "127.0.0.1:0";
    relay_options.instance_id = "r1";
    signaling_options.instance_id = "r1";
  }
  ~RelayBackend() {
    if (api) api->stop();
    if (relay) relay->stop();
    std::error_code ec;
    std::filesystem::remove_all(dir, ec);
  }

  void start() {
    relay = std::make_unique<RelayServer>(*store, relay_options);
    ASSERT_TRUE(relay->start().isOk());
    signaling_options.relay_address = relay->advertisedAddress();
    signaling = std::make_unique<Signaling>(*store, auth, signaling_options);
    http::ApiServer::Options ao;
    ao.tcp_address = "127.0.0.1:0";
    api = std::make_unique<http::ApiServer>(ao);
    registerSignalingApi(*api, *signaling);
    ASSERT_TRUE(api->start().isOk());
  }

  std::string url() const { return "http://127.0.0.1:" + std::to_string(api->boundTcpPort()); }

  // POSTs `body` with `authorization`; returns {status, parsed body}.
  std::pair<int, nlohmann::json> post(const std::string& path, const std::string& authorization,
                                      const nlohmann::json& body) const {
    http::Client client(*http::Endpoint::parse(url()));
    http::Request req;
    req.method = "POST";
    req.path = path;
    if (!authorization.empty()) req.headers.emplace("Authorization", authorization);
    req.body = body.is_null() ? "" : body.dump();
    req.content_type = "application/json";
    auto res = client.send(req);
    if (!res.isOk()) return {0, nlohmann::json{{"transport", res.status().toString()}}};
    auto j = nlohmann::json::parse(res->body, nullptr, false);
    return {res->status, j};
  }
};

// A blocking loopback connection with 10 s receive/send timeouts, so a broken relay fails
// the test instead of hanging it.
inline int dial(const std::string& address) {
  auto fd = net::dialTcp(address, std::chrono::seconds(5));
  EXPECT_TRUE(fd.isOk()) << fd.status().toString();
  if (!fd.isOk()) return -1;
  timeval tv{10, 0};
  ::setsockopt(*fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  ::setsockopt(*fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  return *fd;
}

inline bool sendAll(int fd, std::string_view data) {
  while (!data.empty()) {
    ssize_t n = ::send(fd, data.data(), data.size(), MSG_NOSIGNAL);
    if (n <= 0) return false;
    data.remove_prefix(static_cast<size_t>(n));
  }
  return true;
}

// One line without its '\n', read byte by byte so nothing after it is consumed. "" on
// close or timeout (a relay line is never empty).
inline std::string readLine(int fd) {
  std::string line;
  char c;
  while (::recv(fd, &c, 1, 0) == 1) {
    if (c == '\n') return line;
    line += c;
  }
  return "";
}

// True when the peer closed (EOF or reset) within `ms`, with nothing more to read.
inline bool closedWithin(int fd, int ms) {
  pollfd p{fd, POLLIN, 0};
  if (::poll(&p, 1, ms) != 1) return false;
  char c;
  ssize_t n = ::recv(fd, &c, 1, MSG_DONTWAIT);
  return n == 0 || (n < 0 && errno == ECONNRESET);
}

inline std::string handshake(int fd, std::string_view ticket) {
  sendAll(fd, "EDGE-RELAY/1 " + std::string(ticket) + "\n");
  return readLine(fd);
}

}  // namespace edge::backend::testing
