#include "common/http.h"

#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include <httplib.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <optional>

#include "common/fs.h"

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

// A peer that refuses a request body (413 at its size limit, 400 on a bad image) answers
// and closes without reading the rest, so the next write fails with EPIPE. That write
// must neither kill the process (SIGPIPE; httplib sends without MSG_NOSIGNAL) nor hide
// the answer. SIGPIPE is blocked on this thread for the call and a pending one is
// consumed before the old mask returns, so callers need not ignore it process-wide.
class SigpipeBlock {
 public:
  SigpipeBlock() {
    sigemptyset(&pipe_);
    sigaddset(&pipe_, SIGPIPE);
    ::pthread_sigmask(SIG_BLOCK, &pipe_, &old_);
    sigset_t pending;
    sigemptyset(&pending);
    ::sigpending(&pending);
    was_pending_ = sigismember(&pending, SIGPIPE) == 1;
  }
  ~SigpipeBlock() {
    if (!was_pending_) {
      sigset_t pending;
      sigemptyset(&pending);
      ::sigpending(&pending);
      if (sigismember(&pending, SIGPIPE) == 1) {
        timespec zero{};
        while (::sigtimedwait(&pipe_, nullptr, &zero) < 0 && errno == EINTR) {
        }
      }
    }
    ::pthread_sigmask(SIG_SETMASK, &old_, nullptr);
  }
  SigpipeBlock(const SigpipeBlock&) = delete;
  SigpipeBlock& operator=(const SigpipeBlock&) = delete;

 private:
  sigset_t pipe_;
  sigset_t old_;
  bool was_pending_ = false;
};

// Reads what the peer sent before it closed, on a duplicate of the request's socket
// (httplib has closed its own): at most `cap` bytes, until EOF or `budget` passes.
std::string drainAnswer(int fd, size_t cap, std::chrono::milliseconds budget) {
  std::string raw;
  auto deadline = std::chrono::steady_clock::now() + budget;
  char buf[16 * 1024];
  while (raw.size() < cap) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) break;
    pollfd p{fd, POLLIN, 0};
    int r = ::poll(&p, 1, static_cast<int>(left.count()));
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) break;
    ssize_t n = ::recv(fd, buf, std::min(sizeof buf, cap - raw.size()), MSG_DONTWAIT);
    if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
    if (n <= 0) break;  // EOF, or the reset that followed the answer
    raw.append(buf, static_cast<size_t>(n));
  }
  return raw;
}

// The status line, headers and (Content-Length bounded) body of a raw HTTP/1 answer;
// nullopt when the head is incomplete or not HTTP.
std::optional<Response> parseResponseHead(std::string_view raw) {
  size_t head_end = raw.find("\r\n\r\n");
  if (head_end == std::string_view::npos || !raw.starts_with("HTTP/1.")) return std::nullopt;
  std::string_view head = raw.substr(0, head_end);
  size_t eol = head.find("\r\n");
  std::string_view status_line = head.substr(0, eol);
  size_t sp = status_line.find(' ');
  if (sp == std::string_view::npos || status_line.size() < sp + 4) return std::nullopt;
  int code = 0;
  for (char c : status_line.substr(sp + 1, 3)) {
    if (c < '0' || c > '9') return std::nullopt;
    code = code * 10 + (c - '0');
  }
  Response out;
  out.status = code;
  while (eol != std::string_view::npos) {
    size_t start = eol + 2;
    eol = head.find("\r\n", start);
    std::string_view line = head.substr(start, eol == std::string_view::npos ? eol : eol - start);
    size_t colon = line.find(':');
    if (colon == std::string_view::npos) continue;
    std::string_view value = line.substr(colon + 1);
    while (!value.empty() && (value.front() == ' ' || value.front() == '\t')) {
      value.remove_prefix(1);
    }
    while (!value.empty() && (value.back() == ' ' || value.back() == '\t')) value.remove_suffix(1);
    out.headers.emplace(std::string(line.substr(0, colon)), std::string(value));
  }
  std::string_view body = raw.substr(head_end + 4);
  std::string length = out.header("Content-Length");
  if (!length.empty() && length.find_first_not_of("0123456789") == std::string::npos &&
      length.size() < 19) {
    body =
        body.substr(0, std::min<size_t>(body.size(), std::strtoull(length.c_str(), nullptr, 10)));
  }
  out.body = std::string(body);
  return out;
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

  // With a body to send, keep a duplicate of the socket: if the peer answers and closes
  // before taking the whole body, httplib reports a write error and closes its socket,
  // but the answer is still in the receive queue of the duplicate.
  const bool has_body = request.body_source || !request.body.empty();
  fs::UniqueFd spare;
  if (has_body) {
    cli->set_socket_options(
        [&spare](socket_t sock) { spare.reset(::fcntl(sock, F_DUPFD_CLOEXEC, 0)); });
  }

  httplib::Response res;
  httplib::Error err = httplib::Error::Success;
  bool ok = false;
  int saved_errno = 0;
  {
    SigpipeBlock no_sigpipe;
    errno = 0;
    last_activity = std::chrono::steady_clock::now();
    ok = cli->send(req, res, err);
    saved_errno = errno;
  }
  // A failed write of a chunked body is reported as a cancelled content provider.
  bool body_write_failed = err == httplib::Error::Write || (err == httplib::Error::Canceled &&
                                                            request.body_source && !sink_stopped);
  if (!ok && body_write_failed && spare.valid() && source_error.isOk()) {
    // An answer the peer sent before closing is its reason; an error body is what the
    // caller reads either way, so it is returned whole as for any other non-2xx answer.
    constexpr size_t kMaxAnswer = 1 << 20;
    std::string raw = drainAnswer(spare.get(), kMaxAnswer, std::chrono::milliseconds(2000));
    if (std::optional<Response> answer = parseResponseHead(raw)) {
      if (request.body_sink && answer->isSuccess()) {
        request.body_sink(answer->body.data(), answer->body.size());
        answer->body.clear();
      }
      return std::move(*answer);
    }
    return Status::unavailable("connection to " + endpoint_.toString() +
                               " failed while sending the request body (the peer closed it or "
                               "stopped reading) and no answer came");
  }
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
