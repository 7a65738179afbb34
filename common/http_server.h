// ApiServer: the HTTP/1.1 server of the node API and the backend, on a unix socket and optionally a
// TCP address. cpp-httplib parses requests and writes replies; routing is ours
// (common/http_router.h): route(), get(), post()... take patterns such as
// "/containers/{id}/logs", and a path no route takes gets a 404 (also when another
// method has a route for it, as httplib's routing answered).
//
// httplib appears in this header so route modules (edged/api/, backend/) can
// name its Request and Response; keep this header out of every other public header.
//
// Connections: one thread per connection, at most Options::max_connections at once; a
// connection beyond the cap gets a 503 and is closed, so a flood of idle connections
// cannot exhaust the process. Long requests (a Docker `wait`, `logs?follow=1`, event
// streams) keep their thread; they must end when the server stops or their client goes
// away, which waitFor() and clientGone() tell them.
//
// Bodies: a request body (sized or chunked) is limited to Options::max_body_bytes (413
// beyond), except for requests allowStreamedBody() accepts, whose routes are added with
// routeStreamed(): their handlers read the body with httplib's ContentReader and must
// store it somewhere other than memory. A POST
// without Content-Length or Transfer-Encoding has no body (httplib would otherwise read
// until the client closes).
//
// Errors: every 4xx/5xx reply a handler leaves without a body gets a JSON body
// {"message": "..."}; unknown routes get 404 with such a message, exceptions 500.
//
// Thread-safety: register routes and streamed-body rules before start(); call start()
// and stop() from one thread. stopping(), waitFor(), clientGone() and boundTcpPort()
// may be called from any thread (the last two mean "the current request's client" and
// must be called on a handler's thread).
//
// start() errors: kAlreadyExists when another process answers on the socket path,
// kFailedPrecondition when the path exists and is not a socket, kInvalidArgument for a
// bad path or address, kPermissionDenied / kInternal from the operating system.
#pragma once

#include <sys/types.h>

#include <httplib.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <string_view>
#include <thread>
#include <type_traits>
#include <vector>

#include "common/http_router.h"
#include "common/status.h"

namespace edge::http {

class ApiServer {
 public:
  using Request = httplib::Request;
  using Response = httplib::Response;
  // A route's handler: the request, the reply to fill, the pattern's captures (valid
  // during the call).
  using Handler = std::function<void(const Request&, Response&, const PathParams&)>;
  // A route whose body the handler reads itself (see allowStreamedBody()).
  using StreamingHandler = std::function<void(const Request&, Response&, const PathParams&,
                                              const httplib::ContentReader&)>;

  struct Options {
    std::string unix_socket;   // e.g. /run/edged/edged.sock; "" = none
    std::string socket_group;  // chgrp the socket to it ("edge"); missing = warning
    std::string tcp_address;   // "host:port" ("127.0.0.1:0" picks a port); "" = none
    size_t max_connections = 256;
    std::chrono::seconds keep_alive_timeout{30};  // idle time before closing
    size_t keep_alive_max_requests = 1000;
    std::chrono::seconds read_timeout{60};   // per read while receiving a request
    std::chrono::seconds write_timeout{60};  // per write while sending a reply
    size_t max_body_bytes = 4 << 20;         // non-streamed bodies
    size_t max_header_bytes = 64 << 10;      // request line + headers
    // How long stop() lets requests finish before it shuts their sockets down.
    std::chrono::milliseconds stop_grace{3000};
  };

  explicit ApiServer(Options options);
  ~ApiServer();  // stop()s
  ApiServer(const ApiServer&) = delete;
  ApiServer& operator=(const ApiServer&) = delete;

  // A handle on a route just added, to constrain its placeholders.
  class RouteRef {
   public:
    // See Router::where(). A name the pattern lacks is a bug in the caller: it aborts.
    RouteRef& where(std::string_view name, Router::Accept accept);

   private:
    friend class ApiServer;
    RouteRef(Router& r, size_t id) : router_(r), id_(id) {}
    Router& router_;
    size_t id_;
  };

  // Registers a route (patterns: common/http_router.h; matched against the decoded path;
  // HEAD requests use the GET routes). Routes are tried in the order they were added,
  // the first match wins. A malformed pattern is a bug in the caller: it aborts, naming
  // the pattern, so the first test that builds the server finds it.
  RouteRef route(std::string_view method, std::string_view pattern, Handler handler,
                 RouteOptions options = {});
  // For POST/PUT/PATCH/DELETE routes declared with allowStreamedBody().
  RouteRef routeStreamed(std::string_view method, std::string_view pattern,
                         StreamingHandler handler, RouteOptions options = {});
  // Shorthands; `f` takes (request, response, params) or just (request, response).
  template <class F>
  RouteRef get(std::string_view pattern, F&& f, RouteOptions o = {}) {
    return route("GET", pattern, toHandler(std::forward<F>(f)), o);
  }
  template <class F>
  RouteRef post(std::string_view pattern, F&& f, RouteOptions o = {}) {
    return route("POST", pattern, toHandler(std::forward<F>(f)), o);
  }
  template <class F>
  RouteRef put(std::string_view pattern, F&& f, RouteOptions o = {}) {
    return route("PUT", pattern, toHandler(std::forward<F>(f)), o);
  }
  template <class F>
  RouteRef del(std::string_view pattern, F&& f, RouteOptions o = {}) {
    return route("DELETE", pattern, toHandler(std::forward<F>(f)), o);
  }

  // The httplib server underneath, for its settings (logger). Routes added on it
  // directly are matched before route()'s, with httplib's regular expressions; tests
  // use that, new code should not.
  httplib::Server& raw();

  // Requests for which `match(method, path)` is true may send bodies of any size; the
  // handler must stream them (ContentReader) instead of relying on req.body.
  void allowStreamedBody(std::function<bool(const std::string& method, const std::string& path)>);

  // Binds the socket(s) and starts accepting. The unix socket's parent directory is
  // created; a stale socket file is replaced, a live one is refused. Mode 0660.
  Status start();
  // Stops accepting, tells handlers to finish (stopping() turns true, waitFor()
  // returns), waits Options::stop_grace for them, then shuts their connections down and
  // returns once no handler runs. The socket file is removed. Idempotent.
  void stop();

  bool stopping() const { return stopping_.load(); }
  // The TCP port actually bound (useful with port 0); 0 when there is no TCP listener.
  int boundTcpPort() const { return tcp_port_; }
  const Options& options() const { return options_; }
  // Connections being served right now.
  size_t activeConnections() const;

  // On a handler's thread: blocks up to `d`; returns false at once when the server
  // stops or the client of the current request closes its connection, true when `d`
  // passed. Off a handler's thread it only watches for stop.
  bool waitFor(std::chrono::milliseconds d) const;
  // On a handler's thread: true when the current request's client has closed its
  // connection (or it failed). False off a handler's thread.
  static bool clientGone();

  // On a handler's thread: closes the connection once this reply is sent. For handlers
  // that stopped reading a body midway (the rest of the stream is not a next request).
  static void closeAfterReply(httplib::Response& res);

  // "/v1.41/containers/json" -> "/containers/json"; other paths unchanged.
  static std::string versionlessPath(std::string_view path);
  // The "1.41" of a "/v1.41/..." path, "" when there is no prefix.
  static std::string pathApiVersion(std::string_view path);

  struct Connection;  // per-connection state, defined in the .cc

 private:
  class Engine;
  struct RouteEntry {
    Handler handler;
    StreamingHandler streaming;
  };

  template <class F>
  static Handler toHandler(F&& f) {
    if constexpr (std::is_invocable_v<F&, const Request&, Response&, const PathParams&>) {
      return Handler(std::forward<F>(f));
    } else {
      return [f = std::forward<F>(f)](const Request& req, Response& res, const PathParams&) {
        f(req, res);
      };
    }
  }
  RouteRef addRoute(std::string_view method, std::string_view pattern, RouteOptions options,
                    RouteEntry entry);
  // Sends a request to its route; `reader` is set for methods that carry a body.
  void dispatch(const Request& req, Response& res, const httplib::ContentReader* reader);
  void installRouter();

  Status listenUnix();
  Status listenTcp();
  void acceptLoop();
  void serve(int fd);
  void rejectBusy(int fd);
  bool bodyIsStreamed(const std::string& method, const std::string& path) const;

  Options options_;
  std::unique_ptr<Engine> engine_;
  std::vector<std::function<bool(const std::string&, const std::string&)>> streamed_;
  Router router_;
  std::vector<RouteEntry> routes_;  // by Router id
  bool router_installed_ = false;

  int unix_fd_ = -1;
  int tcp_fd_ = -1;
  int tcp_port_ = 0;
  int stop_fd_ = -1;  // eventfd, readable once stop() began: wakes every poll()
  dev_t socket_dev_ = 0;
  ino_t socket_ino_ = 0;  // so stop() removes the socket file only while it is ours
  std::thread acceptor_;
  bool started_ = false;
  std::atomic<bool> stopping_{false};

  mutable std::mutex mu_;
  std::condition_variable idle_cv_;
  std::set<int> connections_;  // fds being served; under mu_
};

}  // namespace edge::http
