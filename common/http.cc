#include "common/http.h"

#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include <httplib.h>

#include <algorithm>
#include <cerrno>

namespace edge::http {

Result<Endpoint> Endpoint::parse(std::string_view text) {
  Endpoint ep;
  auto takeUnix = [&](std::string_view p) -> Result<Endpoint> {
    if (p.empty() || p.front() != '/') {
      return Status::invalidArgument(
          "unix socket endpoint '" + std::string(text) +
          "' must name an absolute path, e.g. unix:///run/edged/edged.sock");
    }
    ep.kind = Kind::kUnix;
    ep.path = std::string(p);
    return ep;
  };
  if (text.starts_with("unix://")) return takeUnix(text.substr(7));
  if (text.starts_with("/")) return takeUnix(text);
  std::string_view rest;
  if (text.starts_with("tcp://")) {
    rest = text.substr(6);
  } else if (text.starts_with("http://")) {
    rest = text.substr(7);
  } else {
    return Status::invalidArgument("endpoint '" + std::string(text) +
                                   "' is not understood; use unix:///path, /path, "
                                   "tcp://host:port or http://host:port");
  }
  if (!rest.empty() && rest.back() == '/') rest.remove_suffix(1);
  size_t colon = rest.rfind(':');
  if (colon == std::string_view::npos || colon == 0 || colon + 1 == rest.size()) {
    return Status::invalidArgument("endpoint '" + std::string(text) + "' needs host:port");
  }
  std::string port_text(rest.substr(colon + 1));
  int port = 0;
  for (char c : port_text) {
    if (c < '0' || c > '9' || port > 65535) {
      return Status::invalidArgument("endpoint '" + std::string(text) + "': port '" + port_text +
                                     "' is not a number in 1..65535");
    }
    port = port * 10 + (c - '0');
  }
  if (port < 1 || port > 65535) {
    return Status::invalidArgument("endpoint '" + std::string(text) + "': port '" + port_text +
                                   "' is not a number in 1..65535");
  }
  ep.kind = Kind::kTcp;
  ep.host = std::string(rest.substr(0, colon));
  if (ep.host.size() > 2 && ep.host.front() == '[' && ep.host.back() == ']') {
    ep.host = ep.host.substr(1, ep.host.size() - 2);
  }
  ep.port = port;
  return ep;
}

std::string Endpoint::toString() const {
  if (kind == Kind::kUnix) return "unix://" + path;
  return "tcp://" + host + ":" + std::to_string(port);
}

bool CaseInsensitiveLess::operator()(const std::string& a, const std::string& b) const {
  return ::strcasecmp(a.c_str(), b.c_str()) < 0;
}

std::string Response::header(const std::string& name) const {
  auto it = headers.find(name);
  return it == headers.end() ? std::string() : it->second;
}

Client::Client(Endpoint endpoint, ClientOptions options)
    : endpoint_(std::move(endpoint)), options_(std::move(options)) {}

namespace {

void setTimeout(httplib::Client& c, void (httplib::Client::*setter)(time_t, time_t),
                std::chrono::milliseconds d) {
  auto ms = d.count();
  (c.*setter)(static_cast<time_t>(ms / 1000), static_cast<time_t>((ms % 1000) * 1000));
}

Status transportError(const Endpoint& ep, httplib::Error err, int saved_errno) {
  std::string where = ep.toString();
  switch (err) {
    case httplib::Error::Connection:
      if (ep.kind == Endpoint::Kind::kUnix) {
        if (::access(ep.path.c_str(), F_OK) != 0) {
          return Status::unavailable("cannot connect to " + where + ": the socket does not exist");
        }
        if (saved_errno == EACCES || saved_errno == EPERM ||
            ::access(ep.path.c_str(), R_OK | W_OK) != 0) {
          return Status::permissionDenied("cannot connect to " + where +
                                          ": permission denied on the socket");
        }
        return Status::unavailable("cannot connect to " + where +
                                   ": connection refused (is the daemon running?)");
      }
      return Status::unavailable("cannot connect to " + where);
    case httplib::Error::ConnectionTimeout:
      return Status::deadlineExceeded("timed out connecting to " + where);
    case httplib::Error::Read:
      return Status::unavailable("connection to " + where +
                                 " failed while reading the response (peer closed or timed out)");
    case httplib::Error::Write:
      return Status::unavailable("connection to " + where + " failed while sending the request");
    case httplib::Error::Canceled:
      return Status::cancelled("request to " + where + " was cancelled");
    default:
      return Status::unavailable("request to " + where + " failed: " + httplib::to_string(err));
  }
}

}  // namespace

Result<Response> Client::send(const Request& request) const {
  std::unique_ptr<httplib::Client> cli;
  if (endpoint_.kind == Endpoint::Kind::kUnix) {
    cli = std::make_unique<httplib::Client>(endpoint_.path);
    cli->set_address_family(AF_UNIX);
  } else {
    cli = std::make_unique<httplib::Client>(endpoint_.host, endpoint_.port);
  }
  cli->set_keep_alive(false);
  setTimeout(*cli, &httplib::Client::set_connection_timeout, options_.connect_timeout);
  setTimeout(*cli, &httplib::Client::set_write_timeout, options_.write_timeout);
  // httplib has no "infinite" read timeout; a day is as good and still bounded.
  auto read_timeout = request.read_timeout.count() == 0
                          ? std::chrono::milliseconds(std::chrono::hours(24))
                          : request.read_timeout;
  setTimeout(*cli, &httplib::Client::set_read_timeout, read_timeout);

  httplib::Request req;
  req.method = request.method;
  req.path = request.path;
  for (const auto& [k, v] : request.headers) req.headers.emplace(k, v);
  if (!req.has_header("Host")) {
    req.set_header("Host",
                   endpoint_.kind == Endpoint::Kind::kUnix ? options_.host_header : endpoint_.host);
  }
  if (!request.content_type.empty()) req.set_header("Content-Type", request.content_type);

  Status source_error;
  if (request.body_source) {
    auto source = request.body_source;
    req.is_chunked_content_provider_ = true;
    req.set_header("Transfer-Encoding", "chunked");
    req.content_provider_ = [source, &source_error](size_t, size_t, httplib::DataSink& sink) {
      char buf[64 * 1024];
      Result<size_t> n = source(buf, sizeof buf);
      if (!n.isOk()) {
        source_error = n.status();
        return false;
      }
      if (*n == 0) {
        sink.done();
        return true;
      }
      return sink.write(buf, *n);
    };
  } else {
    req.body = request.body;
  }

  // The status arrives before the body: only a 2xx body goes to the caller's sink, an
  // error body is kept for the caller to read.
  int status = 0;
  std::string error_body;
  bool sink_stopped = false;
  // httplib's read timeout is per read; remember when bytes last arrived to tell a
  // timeout from a peer that closed.
  auto last_activity = std::chrono::steady_clock::now();
  if (request.body_sink) {
    auto sink = request.body_sink;
    req.response_handler = [&status, &last_activity](const httplib::Response& r) {
      status = r.status;
      last_activity = std::chrono::steady_clock::now();
      return true;
    };
    req.content_receiver = [sink, &sink_stopped, &status, &error_body, &last_activity](
                               const char* data, size_t len, uint64_t, uint64_t) {
      last_activity = std::chrono::steady_clock::now();
      if (status < 200 || status >= 300) {
        constexpr size_t kMaxErrorBody = 1 << 20;
        error_body.append(
            data, std::min(len, kMaxErrorBody - std::min(kMaxErrorBody, error_body.size())));
        return true;
      }
      if (!sink(data, len)) {
        sink_stopped = true;
        return false;
      }
      return true;
    };
  }

  httplib::Response res;
  httplib::Error err = httplib::Error::Success;
  errno = 0;
  last_activity = std::chrono::steady_clock::now();
  bool ok = cli->send(req, res, err);
  int saved_errno = errno;
  if (!source_error.isOk()) return source_error.withContext("request body");
  if (!ok) {
    if (sink_stopped) return Status::cancelled("response reading stopped by the receiver");
    // httplib reports a read timeout as a read error; the clock tells them apart.
    if (err == httplib::Error::Read &&
        std::chrono::steady_clock::now() - last_activity >= read_timeout) {
      return Status::deadlineExceeded("no response from " + endpoint_.toString() + " within " +
                                      std::to_string(read_timeout.count()) + " ms");
    }
    return transportError(endpoint_, err, saved_errno);
  }
  Response out;
  out.status = res.status;
  for (const auto& [k, v] : res.headers) out.headers.emplace(k, v);
  out.body = request.body_sink ? std::move(error_body) : std::move(res.body);
  return out;
}

std::string urlEncode(std::string_view s, std::string_view keep) {
  static const char kHex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(s.size());
  for (unsigned char c : s) {
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
        c == '_' || c == '.' || c == '~' || keep.find(static_cast<char>(c)) != keep.npos) {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += kHex[c >> 4];
      out += kHex[c & 15];
    }
  }
  return out;
}

}  // namespace edge::http
