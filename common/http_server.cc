#include "common/http_server.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstring>
#include <fstream>
#include <optional>
#include <system_error>

#include "common/fs.h"
#include "common/json.h"
#include "common/log.h"

namespace edge::http {

// httplib parses and routes; we own the sockets. httplib's own listen() would give us
// one listener per Server and no handle on the connection's socket, and we need both
// listeners on one route table and the socket to notice clients that went away.
class ApiServer::Engine final : public httplib::Server {
 public:
  bool serveRequest(httplib::Stream& strm, bool close_connection, bool& connection_closed,
                    const std::function<void(httplib::Request&)>& setup) {
    return process_request(strm, close_connection, connection_closed, setup);
  }
  // httplib streams chunked replies only while it believes it is listening.
  void setServing(int fd) { svr_sock_ = fd; }
};

// Per-connection state, reachable from handlers through a thread-local pointer (one
// thread serves one connection).
struct ApiServer::Connection {
  int fd = -1;
  bool in_body = false;
  size_t budget = 0;  // bytes httplib may still read in this phase; SIZE_MAX = no limit
  bool too_large = false;
  bool headers_too_large = false;
  bool broken = false;  // the byte stream is out of step: close after this reply
  bool gone = false;    // the client closed its side
  std::chrono::steady_clock::time_point started;
};

namespace {

// The socket's group, looked up in /etc/group itself (or given as a number). getgrnam()
// would load the NSS modules into edged for good, about a megabyte of resident memory
// on Debian (libnss_systemd), for a group the package creates locally anyway.
std::optional<gid_t> localGroupId(const std::string& name) {
  if (!name.empty() && std::all_of(name.begin(), name.end(), ::isdigit))
    return static_cast<gid_t>(std::stoul(name));
  std::ifstream in("/etc/group");
  std::string line;
  while (std::getline(in, line)) {
    // name:password:gid:members
    size_t a = line.find(':');
    if (a == std::string::npos || line.compare(0, a, name) != 0 || a != name.size()) continue;
    size_t b = line.find(':', a + 1);
    if (b == std::string::npos) continue;
    size_t c = line.find(':', b + 1);
    std::string gid = line.substr(b + 1, c == std::string::npos ? std::string::npos : c - b - 1);
    if (gid.empty() || !std::all_of(gid.begin(), gid.end(), ::isdigit)) return std::nullopt;
    return static_cast<gid_t>(std::stoul(gid));
  }
  return std::nullopt;
}

thread_local ApiServer::Connection* t_conn = nullptr;

int toMillis(std::chrono::milliseconds d) {
  return static_cast<int>(std::min<int64_t>(d.count(), INT_MAX));
}

// Waits for `events` on `fd`; false on timeout or error. Retries on EINTR.
bool pollFor(int fd, short events, int timeout_ms, short* revents = nullptr) {
  pollfd p{fd, events, 0};
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  for (;;) {
    int r = ::poll(&p, 1, timeout_ms);
    if (r > 0) {
      if (revents) *revents = p.revents;
      return true;
    }
    if (r == 0 || errno != EINTR) return false;
    timeout_ms =
        static_cast<int>(std::max<int64_t>(0, std::chrono::duration_cast<std::chrono::milliseconds>(
                                                  deadline - std::chrono::steady_clock::now())
                                                  .count()));
  }
}

void addressOf(int fd, bool peer, std::string& ip, int& port) {
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  int r = peer ? ::getpeername(fd, reinterpret_cast<sockaddr*>(&ss), &len)
               : ::getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len);
  ip.clear();
  port = 0;
  if (r != 0) return;
  char buf[INET6_ADDRSTRLEN] = {};
  if (ss.ss_family == AF_INET) {
    auto* a = reinterpret_cast<sockaddr_in*>(&ss);
    ::inet_ntop(AF_INET, &a->sin_addr, buf, sizeof buf);
    port = ntohs(a->sin_port);
    ip = buf;
  } else if (ss.ss_family == AF_INET6) {
    auto* a = reinterpret_cast<sockaddr_in6*>(&ss);
    ::inet_ntop(AF_INET6, &a->sin6_addr, buf, sizeof buf);
    port = ntohs(a->sin6_port);
    ip = buf;
  }
}

// The connection as httplib sees it: buffered reads (httplib reads request lines a byte
// at a time), every read and write bounded by a timeout, and the byte budgets of the
// current request enforced.
class ConnStream final : public httplib::Stream {
 public:
  ConnStream(ApiServer::Connection& conn, const ApiServer::Options& o)
      : conn_(conn),
        read_ms_(toMillis(o.read_timeout)),
        write_ms_(toMillis(o.write_timeout)),
        max_header_(o.max_header_bytes) {}

  bool is_readable() const override { return pos_ < len_ || pollFor(conn_.fd, POLLIN, read_ms_); }
  bool is_writable() const override {
    short ev = 0;
    if (!pollFor(conn_.fd, POLLOUT, write_ms_, &ev)) return false;
    return (ev & (POLLERR | POLLHUP)) == 0;
  }

  ssize_t read(char* ptr, size_t size) override {
    if (conn_.budget == 0) {
      (conn_.in_body ? conn_.too_large : conn_.headers_too_large) = true;
      conn_.broken = true;
      return -1;
    }
    if (conn_.budget != SIZE_MAX) size = std::min(size, conn_.budget);
    ssize_t n = 0;
    if (pos_ < len_) {
      n = static_cast<ssize_t>(std::min(size, len_ - pos_));
      std::memcpy(ptr, buf_ + pos_, static_cast<size_t>(n));
      pos_ += static_cast<size_t>(n);
    } else {
      if (!pollFor(conn_.fd, POLLIN, read_ms_)) {
        conn_.broken = true;
        return -1;
      }
      bool direct = size >= sizeof buf_;
      do {
        n = ::recv(conn_.fd, direct ? ptr : buf_, direct ? size : sizeof buf_, 0);
      } while (n < 0 && errno == EINTR);
      if (n <= 0) {
        if (n == 0) conn_.gone = true;
        conn_.broken = true;
        return n;
      }
      if (!direct) {
        len_ = static_cast<size_t>(n);
        pos_ = 0;
        n = static_cast<ssize_t>(std::min(size, len_));
        std::memcpy(ptr, buf_, static_cast<size_t>(n));
        pos_ = static_cast<size_t>(n);
      }
    }
    if (conn_.budget != SIZE_MAX) conn_.budget -= static_cast<size_t>(n);
    return n;
  }

  ssize_t write(const char* ptr, size_t size) override {
    for (;;) {
      ssize_t n = ::send(conn_.fd, ptr, size, MSG_NOSIGNAL | MSG_DONTWAIT);
      if (n >= 0) return n;
      if (errno == EINTR) continue;
      if (errno != EAGAIN && errno != EWOULDBLOCK) break;
      short ev = 0;
      if (!pollFor(conn_.fd, POLLOUT, write_ms_, &ev) || (ev & (POLLERR | POLLHUP))) break;
    }
    conn_.gone = true;
    conn_.broken = true;
    return -1;
  }

  void get_remote_ip_and_port(std::string& ip, int& port) const override {
    addressOf(conn_.fd, true, ip, port);
  }
  void get_local_ip_and_port(std::string& ip, int& port) const override {
    addressOf(conn_.fd, false, ip, port);
  }
  socket_t socket() const override { return conn_.fd; }

  bool hasBuffered() const { return pos_ < len_; }
  void beginRequest() {
    conn_.in_body = false;
    conn_.budget = max_header_;
    conn_.too_large = conn_.headers_too_large = false;
    conn_.started = std::chrono::steady_clock::now();
  }

 private:
  ApiServer::Connection& conn_;
  int read_ms_;
  int write_ms_;
  size_t max_header_;
  char buf_[16 * 1024];
  size_t pos_ = 0;
  size_t len_ = 0;
};

std::string jsonMessage(const std::string& message) {
  json::Json j = json::Json::object();
  j["message"] = message;
  return json::dump(j);
}

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) ==
                  std::tolower(static_cast<unsigned char>(y));
         });
}

// Splits "host:port" / "[v6]:port"; port may be 0.
Status parseHostPort(const std::string& text, std::string* host, std::string* port) {
  size_t colon = text.rfind(':');
  auto bad = [&](const std::string& why) {
    return Status::invalidArgument("TCP listen address '" + text + "': " + why +
                                   "; use host:port, e.g. 127.0.0.1:8083 or [::1]:0");
  };
  if (colon == std::string::npos) return bad("no port");
  *host = text.substr(0, colon);
  *port = text.substr(colon + 1);
  if (host->size() >= 2 && host->front() == '[' && host->back() == ']') {
    *host = host->substr(1, host->size() - 2);
  }
  if (port->empty() || port->size() > 5 ||
      port->find_first_not_of("0123456789") != std::string::npos || std::stoi(*port) > 65535) {
    return bad("port '" + *port + "' is not a number in 0..65535");
  }
  return Status::ok();
}

}  // namespace

ApiServer::ApiServer(Options options)
    : options_(std::move(options)), engine_(std::make_unique<Engine>()) {
  engine_->set_error_handler(httplib::Server::HandlerWithResponse(
      [this](const httplib::Request& req, httplib::Response& res) {
        if (!res.body.empty()) return httplib::Server::HandlerResponse::Unhandled;
        Connection* c = t_conn;
        std::string msg;
        if (c && c->too_large) {
          res.status = 413;
          // The limit is in the answer so a client can tell its user what fits.
          size_t limit = options_.max_body_bytes;
          msg = "request body is larger than this endpoint accepts: the limit is " +
                std::to_string(limit) + " bytes";
          if (limit % (1 << 20) == 0) msg += " (" + std::to_string(limit >> 20) + " MiB)";
        } else if (c && c->headers_too_large) {
          res.status = 431;
          msg = "request line and headers are too large";
        } else if (res.status == 404) {
          msg = req.method + " " + req.path +
                ": no such endpoint on this Edgecloud node (its REST API is under /api/v1/; "
                "the Docker Engine API subset it serves is listed in docs/api.md)";
        } else if (res.status == 400) {
          msg =
              "malformed request: the request line, headers or body could not be read "
              "(bad chunked encoding, a body shorter than its Content-Length, or a timeout)";
          if (c) c->broken = true;
        } else if (res.status == 414) {
          msg = "request URI too long";
        } else {
          msg = "HTTP " + std::to_string(res.status);
        }
        if (c && c->too_large) c->broken = true;
        res.set_content(jsonMessage(msg), "application/json");
        return httplib::Server::HandlerResponse::Handled;
      }));
  engine_->set_exception_handler([](const httplib::Request& req, httplib::Response& res,
                                    std::exception_ptr ep) {
    std::string what = "unknown exception";
    try {
      if (ep) std::rethrow_exception(ep);
    } catch (const std::exception& e) {
      what = e.what();
    } catch (...) {
    }
    LOG_ERROR("api handler threw").kv("method", req.method).kv("path", req.path).kv("error", what);
    res.status = 500;
    res.set_content(jsonMessage("internal error: " + what), "application/json");
  });
  engine_->set_logger([](const httplib::Request& req, const httplib::Response& res) {
    if (log::level() > log::Level::kDebug) return;
    int64_t ms = 0;
    if (Connection* c = t_conn) {
      ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() -
                                                                 c->started)
               .count();
    }
    LOG_DEBUG("api request")
        .kv("method", req.method)
        .kv("path", req.path)
        .kv("status", res.status)
        .kv("ms", ms)
        .kv("remote", req.remote_addr.empty() ? std::string("unix") : req.remote_addr);
  });
}

ApiServer::~ApiServer() {
  stop();
}

httplib::Server& ApiServer::raw() {
  return *engine_;
}

ApiServer::RouteRef& ApiServer::RouteRef::where(std::string_view name, Router::Accept accept) {
  Status s = router_.where(id_, name, accept);
  if (!s.isOk()) {
    LOG_ERROR("api route registration is wrong").kv("error", s.message());
    std::abort();
  }
  return *this;
}

ApiServer::RouteRef ApiServer::addRoute(std::string_view method, std::string_view pattern,
                                        RouteOptions options, RouteEntry entry) {
  Result<size_t> id = router_.add(method, pattern, options);
  if (!id.isOk()) {
    LOG_ERROR("api route registration is wrong").kv("error", id.status().message());
    std::abort();
  }
  routes_.push_back(std::move(entry));
  return RouteRef(router_, *id);
}

ApiServer::RouteRef ApiServer::route(std::string_view method, std::string_view pattern,
                                     Handler handler, RouteOptions options) {
  return addRoute(method, pattern, options, {.handler = std::move(handler), .streaming = {}});
}

ApiServer::RouteRef ApiServer::routeStreamed(std::string_view method, std::string_view pattern,
                                             StreamingHandler handler, RouteOptions options) {
  if (method != "POST" && method != "PUT" && method != "PATCH" && method != "DELETE") {
    LOG_ERROR("api route registration is wrong: only methods with a body can stream it")
        .kv("method", method)
        .kv("pattern", pattern);
    std::abort();
  }
  return addRoute(method, pattern, options, {.handler = {}, .streaming = std::move(handler)});
}

namespace {

// What httplib's routing does with a body before it calls a handler without a
// ContentReader (Server::read_content, cpp-httplib 0.11): read it into req.body, or into
// req.files for multipart forms, then merge a url-encoded form into req.params, which
// is refused beyond 8 KiB. On false the reply's status says why (set by httplib: 400,
// 413, 415) and no handler runs.
bool readBodyAsHttplibDoes(httplib::Request& req, httplib::Response& res,
                           const httplib::ContentReader& reader) {
  bool ok;
  if (req.is_multipart_form_data()) {
    httplib::MultipartFormDataMap::iterator cur;
    ok = reader(
        [&](const httplib::MultipartFormData& file) {
          cur = req.files.emplace(file.name, file);
          return true;
        },
        [&](const char* buf, size_t n) {
          std::string& content = cur->second.content;
          if (content.size() + n > content.max_size()) return false;
          content.append(buf, n);
          return true;
        });
  } else {
    ok = reader([&](const char* buf, size_t n) {
      if (req.body.size() + n > req.body.max_size()) return false;
      req.body.append(buf, n);
      return true;
    });
  }
  if (!ok) return false;
  if (req.get_header_value("Content-Type").starts_with("application/x-www-form-urlencoded")) {
    if (req.body.size() > CPPHTTPLIB_FORM_URL_ENCODED_PAYLOAD_MAX_LENGTH) {
      res.status = 413;
      return false;
    }
    httplib::detail::parse_query_text(req.body, req.params);
  }
  return true;
}

}  // namespace

void ApiServer::dispatch(const Request& req, Response& res, const httplib::ContentReader* reader) {
  // The request is httplib's own mutable object (process_request's local); handlers
  // get it const, the body is read into it here as httplib's routing would.
  Request& mreq = const_cast<Request&>(req);
  Router::Match m = router_.find(req.method == "HEAD" ? "GET" : req.method, req.path);
  const RouteEntry* e = m.found() ? &routes_[m.route] : nullptr;
  if (e && e->streaming) {
    if (reader) return e->streaming(req, res, m.params, *reader);
    // httplib read the body already (see installRouter()): hand it over as a stream.
    httplib::ContentReader from_body(
        [&](httplib::ContentReceiver r) {
          return req.body.empty() || r(req.body.data(), req.body.size());
        },
        [](httplib::MultipartContentHeader, httplib::ContentReceiver) { return false; });
    return e->streaming(req, res, m.params, from_body);
  }
  if (reader && !readBodyAsHttplibDoes(mreq, res, *reader)) return;
  if (!e) {
    // No route (405 cases included, as httplib answered); the error handler words it.
    res.status = 404;
    return;
  }
  e->handler(req, res, m.params);
}

// httplib sends every request to these catch-all handlers, and dispatch() routes them.
// Methods with a body come through the ContentReader variants (httplib tries those
// first for POST, PUT, PATCH and DELETE), so a streamed route gets the reader and the
// others get the body read as before. Installed at start(), after any route added on
// raw(), so those keep precedence.
void ApiServer::installRouter() {
  if (router_installed_ || router_.size() == 0) return;
  router_installed_ = true;
  // Every path, '\r' and '\n' included ('.' alone misses them). Written without a
  // bracket expression: "[\s\S]*" costs libstdc++ ~40 times more to compile.
  static const std::string kAnyPath = "(?:.|\n|\r)*";
  auto plain = [this](const Request& req, Response& res) { dispatch(req, res, nullptr); };
  auto with_body = [this](const Request& req, Response& res, const httplib::ContentReader& reader) {
    dispatch(req, res, &reader);
  };
  // Only methods with routes: for the others httplib's own answer (404 after reading the
  // body) is already ours.
  if (router_.hasMethod("GET")) engine_->Get(kAnyPath, plain);
  if (router_.hasMethod("OPTIONS")) engine_->Options(kAnyPath, plain);
  using Register = httplib::Server& (httplib::Server::*)(const std::string&,
                                                         httplib::Server::HandlerWithContentReader);
  using RegisterPlain =
      httplib::Server& (httplib::Server::*)(const std::string&, httplib::Server::Handler);
  struct BodyMethod {
    const char* name;
    Register with_body;
    RegisterPlain plain;
  };
  static const BodyMethod kBodyMethods[] = {
      {"POST", &httplib::Server::Post, &httplib::Server::Post},
      {"PUT", &httplib::Server::Put, &httplib::Server::Put},
      {"PATCH", &httplib::Server::Patch, &httplib::Server::Patch},
      {"DELETE", &httplib::Server::Delete, &httplib::Server::Delete},
  };
  for (const BodyMethod& m : kBodyMethods) {
    if (!router_.hasMethod(m.name)) continue;
    (engine_.get()->*m.with_body)(kAnyPath, with_body);
    // Not reached while httplib reads the body of every request of these methods through
    // the handler above (0.11 does); here so an update that stops doing so still routes.
    (engine_.get()->*m.plain)(kAnyPath, plain);
  }
}

void ApiServer::allowStreamedBody(
    std::function<bool(const std::string& method, const std::string& path)> match) {
  streamed_.push_back(std::move(match));
}

bool ApiServer::bodyIsStreamed(const std::string& method, const std::string& path) const {
  for (const auto& m : streamed_) {
    if (m(method, path)) return true;
  }
  return false;
}

size_t ApiServer::activeConnections() const {
  std::lock_guard lk(mu_);
  return connections_.size();
}

Status ApiServer::start() {
  if (started_) return Status::failedPrecondition("API server already started");
  if (options_.unix_socket.empty() && options_.tcp_address.empty()) {
    return Status::invalidArgument("API server: neither a unix socket nor a TCP address given");
  }
  if (options_.max_connections == 0 || options_.keep_alive_max_requests == 0) {
    return Status::invalidArgument(
        "API server: max_connections and keep_alive_max_requests must be > 0");
  }
  stop_fd_ = ::eventfd(0, EFD_CLOEXEC);
  if (stop_fd_ < 0) return Status::fromErrno(errno, "API server: eventfd");
  Status s;
  if (!options_.unix_socket.empty()) s = listenUnix();
  if (s.isOk() && !options_.tcp_address.empty()) s = listenTcp();
  if (!s.isOk()) {
    if (unix_fd_ >= 0) {
      ::close(unix_fd_);
      ::unlink(options_.unix_socket.c_str());
      unix_fd_ = -1;
    }
    ::close(stop_fd_);
    stop_fd_ = -1;
    return s;
  }
  installRouter();
  // httplib writes these into each reply's Keep-Alive header.
  engine_->set_keep_alive_timeout(static_cast<time_t>(options_.keep_alive_timeout.count()));
  engine_->set_keep_alive_max_count(options_.keep_alive_max_requests);
  engine_->setServing(unix_fd_ >= 0 ? unix_fd_ : tcp_fd_);
  started_ = true;
  acceptor_ = std::thread([this] { acceptLoop(); });
  LOG_INFO("api server listening")
      .kv("socket", options_.unix_socket)
      .kv("tcp", options_.tcp_address.empty()
                     ? std::string()
                     : options_.tcp_address.substr(0, options_.tcp_address.rfind(':')) + ":" +
                           std::to_string(tcp_port_));
  return Status::ok();
}

Status ApiServer::listenUnix() {
  const std::string& path = options_.unix_socket;
  std::string tmp = path + ".new-" + std::to_string(::getpid());
  sockaddr_un addr{};
  if (path.empty() || path.front() != '/') {
    return Status::invalidArgument("API socket '" + path + "' must be an absolute path");
  }
  if (tmp.size() >= sizeof addr.sun_path) {
    return Status::invalidArgument(
        "API socket path '" + path + "' is too long (at most " +
        std::to_string(sizeof addr.sun_path - 1 - (tmp.size() - path.size())) + " bytes)");
  }
  std::string parent = path.substr(0, path.rfind('/'));
  if (!parent.empty()) RETURN_IF_ERROR(fs::makeDirs(parent, 0755));

  addr.sun_family = AF_UNIX;
  struct stat st {};
  if (::lstat(path.c_str(), &st) == 0) {
    if (!S_ISSOCK(st.st_mode)) {
      return Status::failedPrecondition("API socket path " + path +
                                        " exists and is not a socket; refusing to replace it");
    }
    // Only a socket nobody answers on is stale.
    std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
    fs::UniqueFd probe(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (!probe.valid()) return Status::fromErrno(errno, "API server: socket");
    if (::connect(probe.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0) {
      return Status::alreadyExists("another process is serving on " + path +
                                   "; stop it or choose another API socket path");
    }
    if (errno == EACCES || errno == EPERM) {
      return Status::permissionDenied("cannot check whether " + path +
                                      " is in use: permission denied");
    }
    if (::unlink(path.c_str()) != 0 && errno != ENOENT) {
      return Status::fromErrno(errno, "removing stale API socket " + path);
    }
    LOG_INFO("removed stale api socket").kv("path", path);
  }

  // Bind under a temporary name, set mode and group, then rename into place: the socket
  // never exists at its public path with looser permissions.
  std::memset(addr.sun_path, 0, sizeof addr.sun_path);
  std::memcpy(addr.sun_path, tmp.c_str(), tmp.size() + 1);
  ::unlink(tmp.c_str());
  fs::UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd.valid()) return Status::fromErrno(errno, "API server: socket");
  if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    return Status::fromErrno(errno, "binding API socket " + path);
  }
  auto fail = [&](int err, const std::string& what) {
    ::unlink(tmp.c_str());
    return Status::fromErrno(err, what);
  };
  if (::chmod(tmp.c_str(), 0660) != 0) return fail(errno, "chmod API socket " + path);
  if (!options_.socket_group.empty()) {
    std::optional<gid_t> gid = localGroupId(options_.socket_group);
    if (!gid) {
      LOG_WARN("api socket group not found in /etc/group; the socket keeps the process's group")
          .kv("group", options_.socket_group)
          .kv("path", path);
    } else if (::chown(tmp.c_str(), static_cast<uid_t>(-1), *gid) != 0) {
      LOG_WARN("cannot give the api socket to its group")
          .kv("group", options_.socket_group)
          .kv("error", std::strerror(errno));
    }
  }
  if (::listen(fd.get(), 128) != 0) return fail(errno, "listen on API socket " + path);
  if (::rename(tmp.c_str(), path.c_str()) != 0) return fail(errno, "placing API socket " + path);
  if (::stat(path.c_str(), &st) == 0) {
    socket_dev_ = st.st_dev;
    socket_ino_ = st.st_ino;
  }
  unix_fd_ = fd.release();
  return Status::ok();
}

Status ApiServer::listenTcp() {
  std::string host, port;
  RETURN_IF_ERROR(parseHostPort(options_.tcp_address, &host, &port));
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  addrinfo* res = nullptr;
  int rc = ::getaddrinfo(host.empty() ? nullptr : host.c_str(), port.c_str(), &hints, &res);
  if (rc != 0) {
    return Status::invalidArgument("TCP listen address '" + options_.tcp_address +
                                   "': " + ::gai_strerror(rc));
  }
  std::unique_ptr<addrinfo, decltype(&::freeaddrinfo)> guard(res, ::freeaddrinfo);
  Status last = Status::internal("no usable address for " + options_.tcp_address);
  for (addrinfo* ai = res; ai; ai = ai->ai_next) {
    fs::UniqueFd fd(::socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol));
    if (!fd.valid()) {
      last = Status::fromErrno(errno, "API server: socket");
      continue;
    }
    int one = 1;
    ::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (::bind(fd.get(), ai->ai_addr, ai->ai_addrlen) != 0 || ::listen(fd.get(), 128) != 0) {
      last = Status::fromErrno(errno, "listening on " + options_.tcp_address);
      continue;
    }
    std::string ip;
    addressOf(fd.get(), false, ip, tcp_port_);
    tcp_fd_ = fd.release();
    return Status::ok();
  }
  return last;
}

void ApiServer::acceptLoop() {
  std::vector<pollfd> fds;
  fds.push_back({stop_fd_, POLLIN, 0});
  if (unix_fd_ >= 0) fds.push_back({unix_fd_, POLLIN, 0});
  if (tcp_fd_ >= 0) fds.push_back({tcp_fd_, POLLIN, 0});
  for (;;) {
    for (pollfd& p : fds) p.revents = 0;
    if (::poll(fds.data(), fds.size(), -1) < 0) {
      if (errno == EINTR) continue;
      LOG_ERROR("api server poll failed").kv("error", std::strerror(errno));
      return;
    }
    if (fds[0].revents) return;
    for (size_t i = 1; i < fds.size(); ++i) {
      if (!fds[i].revents) continue;
      int c = ::accept4(fds[i].fd, nullptr, nullptr, SOCK_CLOEXEC);
      if (c < 0) {
        if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
          // Out of descriptors: back off instead of spinning on a listener that stays
          // readable.
          LOG_WARN("api server cannot accept").kv("error", std::strerror(errno));
          pollFor(stop_fd_, POLLIN, 100);
        }
        continue;
      }
      if (fds[i].fd == tcp_fd_) {
        // httplib sends a reply's head and body in two writes: with Nagle on, a
        // keep-alive client waits for its delayed ACK (~40 ms) before the body comes.
        int one = 1;
        ::setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
      }
      bool taken = false;
      {
        std::lock_guard lk(mu_);
        if (connections_.size() < options_.max_connections) {
          connections_.insert(c);
          taken = true;
        }
      }
      if (!taken) {
        rejectBusy(c);
        continue;
      }
      try {
        std::thread([this, c] { serve(c); }).detach();
      } catch (const std::system_error& e) {
        LOG_WARN("api server cannot start a connection thread").kv("error", e.what());
        std::lock_guard lk(mu_);
        connections_.erase(c);
        ::close(c);
        idle_cv_.notify_all();
      }
    }
  }
}

void ApiServer::rejectBusy(int fd) {
  static const std::string kBody =
      R"({"message":"too many connections to this Edgecloud node's API; retry later"})";
  std::string reply =
      "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
      "Connection: close\r\nContent-Length: " +
      std::to_string(kBody.size()) + "\r\n\r\n" + kBody;
  (void)!::send(fd, reply.data(), reply.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
  ::close(fd);
  LOG_WARN("api connection refused: too many connections").kv("max", options_.max_connections);
}

void ApiServer::serve(int fd) {
  Connection conn;
  conn.fd = fd;
  t_conn = &conn;
  ConnStream strm(conn, options_);
  auto setup = [&](httplib::Request& req) {
    conn.in_body = true;
    bool streamed = bodyIsStreamed(req.method, versionlessPath(req.path));
    conn.budget = streamed ? SIZE_MAX : options_.max_body_bytes;
    bool has_length = req.has_header("Content-Length");
    bool has_te = req.has_header("Transfer-Encoding");
    if (has_te && !iequals(req.get_header_value("Transfer-Encoding"), "chunked")) {
      // Only chunked is understood; anything else would make httplib read to EOF.
      req.headers.erase("Transfer-Encoding");
      has_te = false;
      conn.broken = true;
      conn.budget = 0;
    }
    if (!has_length && !has_te) {
      // A request without either has no body (RFC 9112 6.3); httplib would wait for EOF.
      req.set_header("Content-Length", "0");
    } else if (has_length && !streamed) {
      const std::string v = req.get_header_value("Content-Length");
      if (v.size() > 19 || std::strtoull(v.c_str(), nullptr, 10) > options_.max_body_bytes) {
        conn.budget = 0;  // the first body read fails: 413 without reading it
      }
    }
  };
  int idle_ms = toMillis(options_.keep_alive_timeout);
  for (size_t n = 0; n < options_.keep_alive_max_requests && !stopping_; ++n) {
    if (!strm.hasBuffered()) {
      pollfd p[2] = {{fd, POLLIN, 0}, {stop_fd_, POLLIN, 0}};
      int r;
      do {
        r = ::poll(p, 2, idle_ms);
      } while (r < 0 && errno == EINTR);
      if (r <= 0 || p[1].revents || !(p[0].revents & POLLIN)) break;
    }
    strm.beginRequest();
    bool last = n + 1 == options_.keep_alive_max_requests || stopping_;
    bool closed = false;
    bool ok = engine_->serveRequest(strm, last, closed, setup);
    if (!ok || closed || conn.broken) break;
  }
  t_conn = nullptr;
  std::lock_guard lk(mu_);
  connections_.erase(fd);
  ::close(fd);
  // Notified under the lock: once it is released stop() may return and `this` go away.
  idle_cv_.notify_all();
}

void ApiServer::stop() {
  if (!started_) return;
  started_ = false;
  stopping_ = true;
  uint64_t one = 1;
  (void)!::write(stop_fd_, &one, sizeof one);
  if (acceptor_.joinable()) acceptor_.join();
  engine_->setServing(-1);
  for (int* fd : {&unix_fd_, &tcp_fd_}) {
    if (*fd >= 0) ::close(*fd);
    *fd = -1;
  }
  struct stat st {};
  if (!options_.unix_socket.empty() && ::stat(options_.unix_socket.c_str(), &st) == 0 &&
      st.st_dev == socket_dev_ && st.st_ino == socket_ino_) {
    ::unlink(options_.unix_socket.c_str());
  }
  {
    std::unique_lock lk(mu_);
    if (!idle_cv_.wait_for(lk, options_.stop_grace, [&] { return connections_.empty(); })) {
      LOG_WARN("api server stopping: closing connections still busy")
          .kv("connections", connections_.size());
      for (int fd : connections_) ::shutdown(fd, SHUT_RDWR);
      idle_cv_.wait(lk, [&] { return connections_.empty(); });
    }
  }
  ::close(stop_fd_);
  stop_fd_ = -1;
  LOG_INFO("api server stopped").kv("socket", options_.unix_socket);
}

bool ApiServer::waitFor(std::chrono::milliseconds d) const {
  if (stopping_) return false;
  pollfd p[2] = {{stop_fd_, POLLIN, 0}, {-1, 0, 0}};
  nfds_t n = 1;
  Connection* c = t_conn;
  if (c) {
    if (c->gone) return false;
    // Only hang-ups: pipelined bytes from the client must not end the wait.
    p[1] = {c->fd, POLLRDHUP, 0};
    n = 2;
  }
  auto deadline = std::chrono::steady_clock::now() + d;
  for (;;) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return true;
    int r = ::poll(p, n, toMillis(left));
    if (r == 0) return true;
    if (r < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    if (p[0].revents) return false;
    if (n == 2 && (p[1].revents & (POLLRDHUP | POLLHUP | POLLERR | POLLNVAL))) {
      c->gone = true;
      return false;
    }
  }
}

bool ApiServer::clientGone() {
  Connection* c = t_conn;
  if (!c) return false;
  if (c->gone) return true;
  short ev = 0;
  if (pollFor(c->fd, POLLRDHUP, 0, &ev) && (ev & (POLLRDHUP | POLLHUP | POLLERR | POLLNVAL))) {
    c->gone = true;
  }
  return c->gone;
}

void ApiServer::closeAfterReply(httplib::Response& res) {
  if (Connection* c = t_conn) c->broken = true;
  res.set_header("Connection", "close");
}

std::string ApiServer::versionlessPath(std::string_view path) {
  size_t n = apiVersionPrefixLength(path);
  if (n == 0) return std::string(path);
  std::string rest(path.substr(n));
  return rest.empty() ? "/" : rest;
}

std::string ApiServer::pathApiVersion(std::string_view path) {
  size_t n = apiVersionPrefixLength(path);
  return n == 0 ? std::string() : std::string(path.substr(2, n - 2));
}

}  // namespace edge::http
