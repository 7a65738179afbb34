// Session: one client connection and the requests it serves, one at a time: reading and
// parsing the head, routing, the exchange with upstreams (tries, retries, timeouts,
// streaming bodies both ways with back-pressure), local replies, the lingering close and
// the 101 tunnel. Getting an upstream connection is in upstream_pool.cc. Internals in
// proxy_internal.h; behaviour in proxy.h.
//
// Threading: a Session runs on its worker's loop thread only; Router decisions and dial
// results made elsewhere are posted back to that loop first.
#include <errno.h>
#include <sys/socket.h>

#include <algorithm>
#include <cstring>

#include "common/log.h"
#include "gateway/proxy_internal.h"

namespace edge::gateway::proxy_internal {

namespace {

std::string jsonEscape(std::string_view s) {
  std::string out;
  out.reserve(s.size() + 8);
  for (unsigned char c : s) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (c < 0x20 || c >= 0x7f) {
          // Non-ASCII is escaped byte-wise so the body is valid JSON whatever came in.
          static const char* kHex = "0123456789abcdef";
          out += "\\u00";
          out += kHex[c >> 4];
          out += kHex[c & 15];
        } else {
          out += static_cast<char>(c);
        }
    }
  }
  return out;
}

std::string millisText(Duration d) {
  return std::to_string(std::chrono::duration_cast<milliseconds>(d).count()) + " ms";
}

}  // namespace

std::string errorBody(std::string_view error, std::string_view upstream) {
  std::string body = "{\"error\":\"" + jsonEscape(error) + "\"";
  if (!upstream.empty()) body += ",\"upstream\":\"" + jsonEscape(upstream) + "\"";
  body += "}\n";
  return body;
}

void Session::closeNow(std::string_view why) {
  if (closed_) return;
  closed_ = true;
  timer_.cancel();
  try_timer_.cancel();
  if (up_ != nullptr) {
    Upstream* u = up_;
    up_ = nullptr;
    w_.destroyUpstream(u);
  }
  if (try_state_ == TryState::kWaitSlot) {
    Pool& p = w_.pool(pool_key_);
    auto it = std::find(p.waiters.begin(), p.waiters.end(), id_);
    if (it != p.waiters.end()) p.waiters.erase(it);
  }
  if (ex_) {
    info_.error = why.empty() ? "connection closed" : std::string(why);
    info_.duration = w_.loop_->now() - request_start_;
    ex_->finish(info_);
    ex_.reset();
  }
  w_.loop_->remove(t_->fd());
  w_.sessionClosed(this);
}

void Session::drive() {
  if (closed_) return;
  if (!handshake_done_) {
    IoResult r = t_->handshake();
    if (r.kind == IoResult::Kind::kOk) {
      handshake_done_ = true;
      if (!t_->peerNodeId().empty()) {
        caller_.kind = Caller::Kind::kNode;
        caller_.node_id = t_->peerNodeId();
      }
    } else if (r.kind == IoResult::Kind::kWantRead || r.kind == IoResult::Kind::kWantWrite) {
      return;
    } else {
      LOG_DEBUG("gateway: client handshake failed")
          .kv("remote", caller_.address)
          .kv("error", r.error);
      closeNow("TLS handshake failed: " + r.error);
      return;
    }
  }
  for (int round = 0; round < 64; ++round) {
    bool progress = readClient();
    if (closed_) return;
    switch (phase_) {
      case Phase::kHead:
        progress |= parseHead();
        break;
      case Phase::kRouting:
        if (decision_ready_) {
          decision_ready_ = false;
          handleDecision(std::move(pending_decision_));
          progress = true;
        }
        break;
      case Phase::kExchange:
        progress |= pumpExchange();
        break;
      case Phase::kTunnel:
        progress |= pumpTunnel();
        break;
      case Phase::kClosing:
        break;
    }
    if (closed_) return;
    progress |= flushClient();
    if (closed_) return;
    if (phase_ == Phase::kClosing && out_.empty()) {
      // Lingering close: a close with unread input would reset the connection and could
      // destroy the reply in flight, so end our side and read until the client does.
      if (!client_write_closed_) {
        t_->shutdownWrite();
        client_write_closed_ = true;
        timer_.armAfter(kLinger);
      }
      if (client_eof_) {
        closeNow("");
        return;
      }
    }
    if (!progress) return;
  }
  // Still progressing (a long pipeline): let other connections run, then continue; no
  // socket event would come back for bytes that are already buffered.
  Worker* w = &w_;
  uint64_t id = id_;
  w_.loop_->defer([w, id] {
    auto it = w->sessions_.find(id);
    if (it != w->sessions_.end()) it->second->drive();
  });
}

bool Session::readClient() {
  if (client_eof_ || !io_.readable) return false;
  size_t limit;
  switch (phase_) {
    case Phase::kHead:
      limit = o_.limits.max_head_bytes + 1024;
      break;
    case Phase::kRouting:
      limit = 0;
      break;  // the body waits in the socket
    case Phase::kExchange:
      // Body bytes wait while the upstream is not there to take them.
      limit = req_body_done_ ? 0 : o_.max_pending_bytes;
      break;
    case Phase::kTunnel:
      limit = o_.max_pending_bytes;
      break;
    case Phase::kClosing:
      limit = kReadChunk * 4;
      break;
    default:
      limit = 0;
  }
  bool progress = false;
  while (in_.size() < limit && io_.readable) {
    char* p = in_.prepare(kReadChunk);
    size_t room = in_.room();
    IoResult r = t_->read(p, room);
    if (r.kind == IoResult::Kind::kOk) {
      in_.commit(r.bytes);
      io_.afterRead(r.bytes, room);
      bump(w_.c_.bytes_in, r.bytes);
      progress = true;
      continue;
    }
    if (r.kind == IoResult::Kind::kClosed) {
      client_eof_ = true;
      return true;
    }
    if (r.kind == IoResult::Kind::kError) {
      client_eof_ = true;
      closeNow("client connection failed: " + r.error);
      return true;
    }
    io_.readBlocked(r);
  }
  if (phase_ == Phase::kClosing) in_.clear();  // lingering close: discard
  if (progress) touch();
  return progress;
}

bool Session::flushClient() {
  bool progress = false;
  while (!out_.empty() && io_.writable) {
    IoResult r = t_->write(out_.data(), out_.size());
    if (r.kind == IoResult::Kind::kOk) {
      out_.consume(r.bytes);
      bump(w_.c_.bytes_out, r.bytes);
      progress = true;
      if (r.bytes == 0) io_.writable = false;
      continue;
    }
    if (r.kind == IoResult::Kind::kError || r.kind == IoResult::Kind::kClosed) {
      closeNow("client connection failed: " + r.error);
      return true;
    }
    io_.writeBlocked(r);
  }
  if (progress) touch();
  return progress;
}

void Session::forwardToClient(const char* p, size_t n) {
  if (n == 0) return;
  if (out_.empty() && io_.writable) {
    IoResult r = t_->write(p, n);
    if (r.kind == IoResult::Kind::kOk) {
      bump(w_.c_.bytes_out, r.bytes);
      p += r.bytes;
      n -= r.bytes;
      if (n > 0) io_.writable = false;
    } else if (r.kind == IoResult::Kind::kWantRead || r.kind == IoResult::Kind::kWantWrite) {
      io_.writeBlocked(r);
    } else {
      out_.append(p, n);  // the error surfaces in flushClient()
      return;
    }
  }
  out_.append(p, n);
}

bool Session::parseHead() {
  // A client may send CRLF after a body (RFC 9112 §2.2): ignore it before a head.
  while (!head_started_ && !in_.empty() && (in_.data()[0] == '\r' || in_.data()[0] == '\n'))
    in_.consume(1);
  if (in_.empty()) {
    if (client_eof_ || w_.draining_ || !keep_alive_) {
      closeNow("");
      return true;
    }
    in_.trim();
    out_.trim();
    if (!timer_.armed()) timer_.armAfter(o_.idle_timeout);
    return false;
  }
  if (!head_started_) {
    head_started_ = true;
    request_start_ = w_.loop_->now();
  }
  HeadParser::State s = parser_.parseRequest(in_.view(), &head_);
  if (s == HeadParser::State::kNeedMore) {
    if (client_eof_) {
      closeNow("client closed in the middle of a request head");
      return false;
    }
    // Armed only for heads that do not arrive whole: a shorter deadline than the idle
    // one would queue a timer entry per request.
    if (!header_timer_) {
      header_timer_ = true;
      timer_.armAt(request_start_ + o_.header_timeout);
    }
    return false;
  }
  header_timer_ = false;
  bump(w_.c_.requests);
  if (s == HeadParser::State::kError) {
    bump(w_.c_.bad_requests);
    keep_alive_ = false;
    req_body_done_ = true;
    in_.clear();
    head_.method.clear();
    head_.version_minor = 1;
    errorReply(parser_.error().status, parser_.error().message);
    return true;
  }
  in_.consume(parser_.headBytes());
  // One pass over the headers says which of the slower checks below apply at all.
  bool has_framing = false, has_upgrade = false, has_expect = false;
  has_connection_ = false;
  for (const Header& h : head_.headers) {
    switch (h.name.size()) {
      case 6:
        has_expect |= equalsIgnoreCase(h.name, "expect");
        break;
      case 7:
        has_upgrade |= equalsIgnoreCase(h.name, "upgrade");
        break;
      case 10:
        has_connection_ |= equalsIgnoreCase(h.name, "connection");
        break;
      case 14:
        has_framing |= equalsIgnoreCase(h.name, "content-length");
        break;
      case 17:
        has_framing |= equalsIgnoreCase(h.name, "transfer-encoding");
        break;
      default:
        break;
    }
  }
  ParseError err;
  if (!has_framing) {
    req_framing_ = Framing{};
  } else if (!requestFraming(head_, &req_framing_, &err)) {
    bump(w_.c_.bad_requests);
    keep_alive_ = false;
    req_body_done_ = true;
    errorReply(err.status, err.message);
    return true;
  }
  req_left_ = req_framing_.length;
  req_chunks_.reset();
  req_body_done_ = req_framing_.kind == BodyKind::kNone;
  req_body_seen_ = 0;
  keep_alive_ = (has_connection_ ? wantsKeepAlive(head_.version_minor, head_.headers)
                                 : head_.version_minor == 1) &&
                !w_.draining_;
  if (o_.max_request_body > 0 && req_framing_.kind == BodyKind::kLength &&
      req_framing_.length > o_.max_request_body) {
    bump(w_.c_.bad_requests);
    keep_alive_ = false;
    errorReply(413, "request body of " + std::to_string(req_framing_.length) +
                        " bytes is larger than the " + std::to_string(o_.max_request_body) +
                        " allowed");
    return true;
  }
  upgrade_ = has_upgrade && has_connection_ && wantsUpgrade(head_);
  const std::string* expect = has_expect ? head_.find("expect") : nullptr;
  expect_continue_ =
      expect != nullptr && equalsIgnoreCase(*expect, "100-continue") && head_.version_minor == 1;
  startRouting();
  return true;
}

void Session::startRouting() {
  phase_ = Phase::kRouting;
  ++request_seq_;
  decision_ready_ = false;
  routing_inline_ = true;
  Worker* w = &w_;
  uint64_t token = routeToken();
  w_.server_.router_.route(head_, caller_, [w, token](Decision d) {
    if (w->loop_->inLoopThread()) {
      w->deliver(token, std::move(d));
      return;
    }
    auto shared = std::make_shared<Decision>(std::move(d));
    w->loop_->post([w, token, shared] { w->deliver(token, std::move(*shared)); });
  });
  routing_inline_ = false;
  if (closed_) return;
  if (decision_ready_) {
    decision_ready_ = false;
    handleDecision(std::move(pending_decision_));
    return;
  }
  timer_.armAt(request_start_ + o_.header_timeout);  // the router answers later
}

void Session::deliverDecision(uint64_t token, Decision d) {
  if (closed_ || phase_ != Phase::kRouting || token != routeToken()) return;
  if (routing_inline_) {
    pending_decision_ = std::move(d);
    decision_ready_ = true;
    return;
  }
  handleDecision(std::move(d));
  drive();
}

void Session::handleDecision(Decision d) {
  if (!d.exchange) {
    if (d.status == 0) {
      errorReply(500, "the router answered neither a status nor an exchange");
      return;
    }
    std::vector<Header> extra = std::move(d.headers);
    localReply(d.status, d.content_type, d.body, extra, "");
    return;
  }
  ex_ = std::move(d.exchange);
  info_ = FinishInfo{};
  attempt_ = 0;
  tries_ = 0;
  force_fresh_ = false;
  replay_.clear();
  replay_overflow_ = false;
  response_started_ = false;
  deadline_ = w_.loop_->now() + ex_->deadline();
  phase_ = Phase::kExchange;
  timer_.cancel();
  if (expect_continue_ && !req_body_done_) out_.append("HTTP/1.1 100 Continue\r\n\r\n");
  buildUpstreamHead();
  startTry();
}

void Session::buildUpstreamHead() {
  std::string& h = up_head_;
  h.clear();
  h.append(head_.method);
  h += ' ';
  h.append(head_.target);
  h.append(head_.version_minor == 0 ? " HTTP/1.0\r\n" : " HTTP/1.1\r\n");
  const std::vector<Header>& set = ex_->setHeaders();
  const std::string* xff = nullptr;
  const std::string* xfp = nullptr;
  const bool has_connection = has_connection_;
  for (const Header& hd : head_.headers) {
    if (isHopByHop(hd.name)) continue;
    if (has_connection && namedByConnection(head_.headers, hd.name)) continue;
    if (equalsIgnoreCase(hd.name, "x-forwarded-for")) {
      xff = &hd.value;
      continue;
    }
    if (equalsIgnoreCase(hd.name, "x-forwarded-proto")) {
      xfp = &hd.value;
      continue;
    }
    if (expect_continue_ && equalsIgnoreCase(hd.name, "expect")) continue;
    bool replaced = false;
    for (const Header& s : set)
      if (equalsIgnoreCase(s.name, hd.name)) replaced = true;
    if (replaced) continue;
    h.append(hd.name);
    h.append(": ");
    h.append(hd.value);
    h.append("\r\n");
  }
  if (!client_ip_.empty() || xff != nullptr) {
    h.append("X-Forwarded-For: ");
    if (xff != nullptr) {
      h.append(*xff);
      if (!client_ip_.empty()) h.append(", ");
    }
    h.append(client_ip_);
    h.append("\r\n");
  }
  h.append("X-Forwarded-Proto: ");
  h.append(caller_.kind == Caller::Kind::kNode && xfp != nullptr ? *xfp
                                                                 : (tls_ ? "https" : "http"));
  h.append("\r\nVia: 1.1 edge-gateway\r\n");
  for (const Header& s : set) {
    if (s.value.empty()) continue;
    h.append(s.name);
    h.append(": ");
    h.append(s.value);
    h.append("\r\n");
  }
  if (upgrade_) {
    h.append("Upgrade: ");
    h.append(*head_.find("upgrade"));
    h.append("\r\nConnection: upgrade\r\n");
  }
  h.append("\r\n");
}

void Session::startTry() {
  if (closed_) return;
  LoopTime now = w_.loop_->refreshNow();
  if (now >= deadline_) {
    tryFailed(TryEnd::kTimeout,
              "request deadline of " + millisText(ex_->deadline()) + " passed before a response");
    return;
  }
  std::optional<Target> t = ex_->nextTarget(attempt_);
  if (!t) {
    int status = ex_->rejectStatus();
    errorReply(status == 0 ? 503 : status, ex_->rejectReason());
    return;
  }
  target_ = std::move(*t);
  info_.upstream = target_.key;
  // A connection verified for one node must never carry a request meant for another.
  if (target_.tls_node_id.empty()) {
    pool_key_ = target_.key;
  } else {
    pool_key_ = target_.key + "\ntls:" + target_.tls_node_id;
  }
  try_start_ = now;
  ++tries_;
  info_.tries = tries_;
  try_bytes_ = 0;
  resp_head_done_ = false;
  resp_parser_.reset();
  LoopTime per_try = now + ex_->perTryTimeout();
  deadline_is_per_try_ = per_try < deadline_;
  try_timer_.armAt(std::min(per_try, deadline_));
  connectTarget();
}

bool Session::pumpExchange() {
  if (try_state_ != TryState::kActive || up_ == nullptr) {
    // Nothing to move to an upstream; a client that hangs up ends the request.
    if (client_eof_ && !req_body_done_) {
      closeNow("client closed before sending the whole request body");
      return true;
    }
    return false;
  }
  Upstream* u = up_;
  bool progress = false;
  if (u->connecting_) {
    if (!u->io_.writable) return false;
    int err = 0;
    socklen_t len = sizeof err;
    getsockopt(u->fd_, SOL_SOCKET, SO_ERROR, &err, &len);
    if (err != 0) {
      tryFailed(TryEnd::kConnectFailed,
                "connect to " + target_.address + " failed: " + std::strerror(err));
      return true;
    }
    u->connecting_ = false;
    u->io_.readable = true;
    progress = true;
  }
  if (!u->t_) {
    auto r = o_.tls_client ? o_.tls_client(u->fd_, u->tls_node_id_)
                           : Result<TransportPtr>(Status::failedPrecondition(
                                 "target wants TLS but the gateway has no TLS client"));
    if (!r.isOk()) {
      // The factory owns the fd only when it succeeds.
      tryFailed(TryEnd::kConnectFailed, r.status().message());
      return true;
    }
    u->t_ = std::move(r).value();
  }
  if (!u->handshake_done_) {
    IoResult r = u->t_->handshake();
    if (r.kind == IoResult::Kind::kOk) {
      u->handshake_done_ = true;
      progress = true;
    } else if (r.kind == IoResult::Kind::kWantRead || r.kind == IoResult::Kind::kWantWrite) {
      return progress;
    } else {
      tryFailed(TryEnd::kConnectFailed, "TLS to " + target_.key + ": " + r.error);
      return true;
    }
  }
  progress |= pumpRequestBody();
  if (up_ == nullptr || closed_) return true;
  progress |= flushUpstream();
  if (up_ == nullptr || closed_) return true;
  progress |= pumpResponse();
  return progress;
}

bool Session::pumpRequestBody() {
  bool progress = false;
  while (!req_body_done_ && !in_.empty() && up_->out_.size() < o_.max_pending_bytes) {
    size_t n;
    if (req_framing_.kind == BodyKind::kLength) {
      n = static_cast<size_t>(std::min<uint64_t>(req_left_, in_.size()));
      req_left_ -= n;
      if (req_left_ == 0) req_body_done_ = true;
    } else {
      n = req_chunks_.feed(in_.data(), in_.size());
      if (req_chunks_.failed()) {
        bump(w_.c_.bad_requests);
        keep_alive_ = false;
        std::string why = "malformed chunked request body: " + req_chunks_.error();
        releaseUpstream(false);
        try_timer_.cancel();
        if (response_started_) {
          closeNow(why);
        } else {
          req_body_done_ = true;
          errorReply(400, why);
        }
        return true;
      }
      if (req_chunks_.done()) req_body_done_ = true;
      req_body_seen_ += n;
      if (o_.max_request_body > 0 && req_body_seen_ > o_.max_request_body) {
        bump(w_.c_.bad_requests);
        keep_alive_ = false;
        std::string why = "chunked request body is larger than the " +
                          std::to_string(o_.max_request_body) + " bytes allowed";
        releaseUpstream(false);
        try_timer_.cancel();
        if (response_started_) {
          closeNow(why);
        } else {
          req_body_done_ = true;
          in_.clear();
          errorReply(413, why);
        }
        return true;
      }
    }
    up_->out_.append(in_.data(), n);
    if (!replay_overflow_) {
      if (replay_.size() + n <= o_.replay_buffer) {
        replay_.append(in_.data(), n);
      } else {
        replay_overflow_ = true;
        std::string().swap(replay_);
      }
    }
    info_.bytes_in += n;
    in_.consume(n);
    progress = true;
  }
  if (!req_body_done_ && client_eof_ && in_.empty()) {
    releaseUpstream(false);
    closeNow("client closed before sending the whole request body");
    return true;
  }
  return progress;
}

bool Session::flushUpstream() {
  Upstream* u = up_;
  bool progress = false;
  while (!u->out_.empty() && u->io_.writable) {
    IoResult r = u->t_->write(u->out_.data(), u->out_.size());
    if (r.kind == IoResult::Kind::kOk) {
      u->out_.consume(r.bytes);
      progress = true;
      if (r.bytes == 0) u->io_.writable = false;
      continue;
    }
    if (r.kind == IoResult::Kind::kError || r.kind == IoResult::Kind::kClosed) {
      // The upstream may have answered before closing (an early 413): read that first.
      u->eof_ = true;
      u->error_ = r.error.empty() ? "closed" : r.error;
      u->out_.clear();
      u->io_.readable = true;
      return true;
    }
    u->io_.writeBlocked(r);
  }
  if (progress && resp_head_done_) touch();
  return progress;
}

bool Session::readUpstream() {
  Upstream* u = up_;
  if (u->eof_ || !u->io_.readable) return false;
  // Back-pressure: stop reading while the client has not taken what we have.
  size_t limit = resp_head_done_ ? (out_.size() < o_.max_pending_bytes ? o_.max_pending_bytes : 0)
                                 : o_.max_response_head + 1024;
  bool progress = false;
  while (u->in_.size() < limit && u->io_.readable) {
    char* p = u->in_.prepare(kReadChunk);
    size_t room = u->in_.room();
    IoResult r = u->t_->read(p, room);
    if (r.kind == IoResult::Kind::kOk) {
      u->in_.commit(r.bytes);
      u->io_.afterRead(r.bytes, room);
      try_bytes_ += r.bytes;
      progress = true;
      if (resp_head_done_) break;  // forward before reading more
      continue;
    }
    if (r.kind == IoResult::Kind::kClosed || r.kind == IoResult::Kind::kError) {
      u->eof_ = true;
      if (r.kind == IoResult::Kind::kError) u->error_ = r.error;
      return true;
    }
    u->io_.readBlocked(r);
  }
  return progress;
}

bool Session::pumpResponse() {
  bool progress = false;
  for (int round = 0; round < 64; ++round) {
    bool moved = readUpstream();
    if (closed_ || up_ == nullptr) return true;
    Upstream* u = up_;
    if (!resp_head_done_) {
      if (u->in_.empty() && !u->eof_) return progress || moved;
      HeadParser::State s = u->in_.empty() ? HeadParser::State::kNeedMore
                                           : resp_parser_.parseResponse(u->in_.view(), &resp_);
      if (s == HeadParser::State::kNeedMore) {
        if (!u->eof_) return progress || moved;
        if (try_bytes_ == 0 && pooled_try_ && isIdempotent(head_.method) && canReplay()) {
          // The keep-alive race: the pooled connection was closed by the upstream just
          // as we reused it. Not the upstream's fault: a fresh connection, same attempt.
          bump(w_.c_.upstream_stale);
          releaseUpstream(false);
          force_fresh_ = true;
          try_state_ = TryState::kNone;
          connectTarget();
          return true;
        }
        std::string why = try_bytes_ == 0
                              ? "upstream closed the connection before a response" +
                                    (u->error_.empty() ? std::string() : " (" + u->error_ + ")")
                              : "upstream closed the connection in the middle of the response head";
        tryFailed(try_bytes_ == 0 ? TryEnd::kReset : TryEnd::kBadResponse, why);
        return true;
      }
      if (s == HeadParser::State::kError) {
        tryFailed(TryEnd::kBadResponse,
                  "bad response from upstream: " + resp_parser_.error().message);
        return true;
      }
      u->in_.consume(resp_parser_.headBytes());
      if (resp_.status >= 100 && resp_.status < 200 && resp_.status != 101) {
        // Interim responses: our own 100 was sent already (or not asked for); others
        // (102, 103) go to HTTP/1.1 clients.
        if (resp_.status != 100 && head_.version_minor == 1) {
          out_.append(serializeResponseHead(resp_));
        }
        resp_parser_.reset();
        progress = true;
        continue;
      }
      if (!onResponseHead()) return true;
      progress = true;
      continue;
    }
    // Body.
    size_t n = 0;
    bool done = false;
    switch (resp_framing_.kind) {
      case BodyKind::kNone:
        done = true;
        break;
      case BodyKind::kLength:
        n = static_cast<size_t>(std::min<uint64_t>(resp_left_, u->in_.size()));
        resp_left_ -= n;
        done = resp_left_ == 0;
        break;
      case BodyKind::kChunked:
        n = resp_chunks_.feed(u->in_.data(), u->in_.size());
        if (resp_chunks_.failed()) {
          bump(w_.c_.bad_responses);
          ex_->tryDone({TryEnd::kBadResponse, resp_.status, w_.loop_->now() - try_start_,
                        "malformed chunked response: " + resp_chunks_.error()},
                       false);
          closeNow("malformed chunked response from " + target_.key + ": " + resp_chunks_.error());
          return true;
        }
        done = resp_chunks_.done();
        break;
      case BodyKind::kUntilClose:
        n = u->in_.size();
        done = u->eof_ && n == u->in_.size();
        break;
      case BodyKind::kTunnel: {
        phase_ = Phase::kTunnel;
        bump(w_.c_.tunnels);
        timer_.armAfter(o_.idle_timeout);
        return true;
      }
    }
    if (n > 0) {
      forwardToClient(u->in_.data(), n);
      info_.bytes_out += n;
      u->in_.consume(n);
      moved = true;
    }
    if (done) {
      if (!u->in_.empty()) up_reusable_ = false;  // bytes after the response: not HTTP
      responseDone();
      return true;
    }
    if (u->eof_ && u->in_.empty()) {
      closeNow("upstream " + target_.key + " closed in the middle of the response body");
      return true;
    }
    if (!moved) return progress;
    progress = true;
  }
  return progress;
}

bool Session::onResponseHead() {
  Upstream* u = up_;
  resp_head_done_ = true;
  ParseError err;
  if (!responseFraming(resp_, head_.method, upgrade_, &resp_framing_, &err)) {
    tryFailed(TryEnd::kBadResponse, "bad response from upstream: " + err.message);
    return false;
  }
  TryResult r{TryEnd::kResponse, resp_.status, w_.loop_->now() - try_start_, ""};
  bool retry_possible = canReplay() && w_.loop_->now() < deadline_;
  try_timer_.cancel();
  std::optional<Duration> retry = ex_->tryDone(r, retry_possible);
  if (retry_possible && retry) {
    // The policy retries this status (502/503/504 ...): drop this response.
    bump(w_.c_.retries);
    releaseUpstream(false);
    ++attempt_;
    try_state_ = TryState::kBackoff;
    try_timer_.armAt(std::min(w_.loop_->now() + *retry, deadline_));
    return false;
  }
  resp_left_ = resp_framing_.length;
  resp_chunks_.reset();
  up_reusable_ = u->poolable_ && resp_framing_.kind != BodyKind::kUntilClose &&
                 resp_framing_.kind != BodyKind::kTunnel &&
                 wantsKeepAlive(resp_.version_minor, resp_.headers) && head_.version_minor == 1;
  if (resp_framing_.kind == BodyKind::kUntilClose) keep_alive_ = false;
  if (w_.draining_) keep_alive_ = false;

  // The head for the client, written straight into out_.
  out_.append(resp_.version_minor == 0 && head_.version_minor == 0 ? "HTTP/1.0 " : "HTTP/1.1 ");
  char code[4] = {static_cast<char>('0' + resp_.status / 100),
                  static_cast<char>('0' + resp_.status / 10 % 10),
                  static_cast<char>('0' + resp_.status % 10), ' '};
  out_.append(code, 4);
  if (resp_.reason.empty())
    out_.append(reasonPhrase(resp_.status));
  else
    out_.append(resp_.reason);
  out_.append("\r\n");
  bool has_connection = findHeader(resp_.headers, "connection") != nullptr;
  const bool tunnel = resp_framing_.kind == BodyKind::kTunnel;
  for (const Header& h : resp_.headers) {
    if (tunnel && equalsIgnoreCase(h.name, "upgrade")) {
      // The protocol switched to: the one hop-by-hop header a 101 must carry on.
    } else if (isHopByHop(h.name) || (has_connection && namedByConnection(resp_.headers, h.name))) {
      continue;
    }
    out_.append(h.name);
    out_.append(": ");
    out_.append(h.value);
    out_.append("\r\n");
  }
  if (resp_framing_.kind == BodyKind::kTunnel) {
    out_.append("Connection: upgrade\r\n");
  } else if (!keep_alive_) {
    out_.append("Connection: close\r\n");
  } else if (head_.version_minor == 0) {
    out_.append("Connection: keep-alive\r\n");
  }
  out_.append("\r\n");
  response_started_ = true;
  info_.status = resp_.status;
  timer_.armAfter(o_.idle_timeout);
  return true;
}

void Session::responseDone() {
  if (!req_body_done_) {
    // The upstream answered before reading the whole body (e.g. 413): neither
    // connection can carry another request.
    up_reusable_ = false;
    keep_alive_ = false;
  }
  releaseUpstream(up_reusable_ && up_->out_.empty());
  finishRequest();
}

void Session::finishRequest() {
  try_timer_.cancel();
  try_state_ = TryState::kNone;
  if (ex_) {
    info_.duration = w_.loop_->now() - request_start_;
    ex_->finish(info_);
    ex_.reset();
  }
  head_started_ = false;
  header_timer_ = false;
  parser_.reset();
  timer_.cancel();
  phase_ = keep_alive_ ? Phase::kHead : Phase::kClosing;
  if (phase_ == Phase::kClosing && in_.size() > 0) in_.clear();
}

void Session::releaseUpstream(bool reuse) {
  if (up_ == nullptr) return;
  Upstream* u = up_;
  up_ = nullptr;
  if (reuse && !u->eof_) {
    w_.returnToPool(u);
  } else {
    w_.destroyUpstream(u);
  }
}

void Session::tryFailed(TryEnd outcome, std::string error) {
  try_timer_.cancel();
  releaseUpstream(false);
  try_state_ = TryState::kNone;
  switch (outcome) {
    case TryEnd::kConnectFailed:
      bump(w_.c_.connect_failures);
      break;
    case TryEnd::kReset:
      bump(w_.c_.resets);
      break;
    case TryEnd::kTimeout:
      bump(w_.c_.timeouts);
      break;
    case TryEnd::kBadResponse:
      bump(w_.c_.bad_responses);
      break;
    case TryEnd::kResponse:
      break;
  }
  LoopTime now = w_.loop_->refreshNow();
  TryResult r{outcome, 0, now - try_start_, error};
  bool retry_possible = !response_started_ && canReplay() && now < deadline_;
  std::optional<Duration> retry = ex_->tryDone(r, retry_possible);
  if (retry_possible && retry && now + *retry < deadline_) {
    bump(w_.c_.retries);
    ++attempt_;
    try_state_ = TryState::kBackoff;
    try_timer_.armAt(now + *retry);
    return;
  }
  info_.error = error;
  if (response_started_) {
    closeNow(error);
    return;
  }
  if (!req_body_done_) keep_alive_ = false;
  int status = outcome == TryEnd::kTimeout ? 504 : 502;
  errorReply(status, error, target_.key);
}

bool Session::pumpTunnel() {
  bool progress = false;
  if (up_ == nullptr) {
    closeNow("");
    return true;
  }
  Upstream* u = up_;
  // client -> upstream
  if (!in_.empty() && u->out_.size() < o_.max_pending_bytes) {
    u->out_.append(in_.data(), in_.size());
    info_.bytes_in += in_.size();
    in_.consume(in_.size());
    progress = true;
  }
  progress |= flushUpstream();
  if (closed_ || up_ == nullptr) return true;
  if (client_eof_ && in_.empty() && u->out_.empty() && !up_write_closed_) {
    u->t_->shutdownWrite();
    up_write_closed_ = true;
    progress = true;
  }
  // upstream -> client
  while (!u->eof_ && u->io_.readable && out_.size() < o_.max_pending_bytes) {
    char* p = u->in_.prepare(kReadChunk);
    IoResult r = u->t_->read(p, u->in_.room());
    if (r.kind == IoResult::Kind::kOk) {
      u->in_.commit(r.bytes);
    } else if (r.kind == IoResult::Kind::kClosed || r.kind == IoResult::Kind::kError) {
      u->eof_ = true;
    } else {
      u->io_.readBlocked(r);
    }
    if (!u->in_.empty()) {
      forwardToClient(u->in_.data(), u->in_.size());
      info_.bytes_out += u->in_.size();
      u->in_.consume(u->in_.size());
    }
    progress = true;
  }
  if (!u->in_.empty() && out_.size() < o_.max_pending_bytes) {
    forwardToClient(u->in_.data(), u->in_.size());
    u->in_.consume(u->in_.size());
    progress = true;
  }
  if (u->eof_ && u->in_.empty() && out_.empty() && !client_write_closed_) {
    t_->shutdownWrite();
    client_write_closed_ = true;
    progress = true;
  }
  if (client_write_closed_ && up_write_closed_) {
    releaseUpstream(false);
    finishRequest();
    closeNow("");
    return true;
  }
  if (progress) touch();
  return progress;
}

bool Session::discardRequestBody() {
  if (req_body_done_) return true;
  if (req_framing_.kind == BodyKind::kLength) {
    if (in_.size() < req_left_) return false;
    in_.consume(static_cast<size_t>(req_left_));
    req_left_ = 0;
  } else {
    size_t n = req_chunks_.feed(in_.data(), in_.size());
    if (!req_chunks_.done()) return false;
    in_.consume(n);
  }
  req_body_done_ = true;
  return true;
}

void Session::localReply(int status, std::string_view content_type, std::string_view body,
                         const std::vector<Header>& extra, std::string error) {
  try_timer_.cancel();
  releaseUpstream(false);
  bump(w_.c_.local_replies);
  // A body we have not read keeps the connection from carrying another request.
  if (!discardRequestBody()) keep_alive_ = false;
  if (w_.draining_) keep_alive_ = false;
  out_.append(head_.version_minor == 0 ? "HTTP/1.0 " : "HTTP/1.1 ");
  out_.append(std::to_string(status));
  out_.append(" ");
  out_.append(reasonPhrase(status));
  out_.append("\r\n");
  bool has_type = false;
  for (const Header& h : extra) {
    if (equalsIgnoreCase(h.name, "content-length") || equalsIgnoreCase(h.name, "connection") ||
        equalsIgnoreCase(h.name, "transfer-encoding"))
      continue;
    if (equalsIgnoreCase(h.name, "content-type")) has_type = true;
    out_.append(h.name);
    out_.append(": ");
    out_.append(h.value);
    out_.append("\r\n");
  }
  if (!has_type && !body.empty()) {
    out_.append("Content-Type: ");
    out_.append(content_type);
    out_.append("\r\n");
  }
  out_.append("Content-Length: ");
  out_.append(std::to_string(body.size()));
  out_.append(keep_alive_
                  ? (head_.version_minor == 0 ? "\r\nConnection: keep-alive\r\n\r\n" : "\r\n\r\n")
                  : "\r\nConnection: close\r\n\r\n");
  if (head_.method != "HEAD") out_.append(body);
  info_.status = status;
  if (!error.empty()) info_.error = std::move(error);
  finishRequest();
}

void Session::onClientTimer() {
  if (closed_) return;
  switch (phase_) {
    case Phase::kHead:
      if (in_.empty() && !head_started_) {
        closeNow("");  // idle keep-alive connection
        return;
      }
      keep_alive_ = false;
      in_.clear();
      bump(w_.c_.bad_requests);
      errorReply(408, "request head not received within " + millisText(o_.header_timeout));
      break;
    case Phase::kRouting:
      keep_alive_ = false;
      ++request_seq_;  // a late decision is dropped
      errorReply(504, "no routing decision within " + millisText(o_.header_timeout));
      break;
    case Phase::kExchange:
      if (!resp_head_done_ && try_state_ != TryState::kActive) return;
      closeNow("no progress for " + millisText(o_.idle_timeout));
      return;
    case Phase::kTunnel:
    case Phase::kClosing:
      closeNow("idle for " + millisText(o_.idle_timeout));
      return;
  }
  drive();
}

void Session::onTryTimer() {
  if (closed_ || phase_ != Phase::kExchange) return;
  if (try_state_ == TryState::kBackoff) {
    try_state_ = TryState::kNone;
    startTry();
  } else if (!resp_head_done_) {
    if (try_state_ == TryState::kWaitSlot) {
      Pool& p = w_.pool(pool_key_);
      auto it = std::find(p.waiters.begin(), p.waiters.end(), id_);
      if (it != p.waiters.end()) p.waiters.erase(it);
    }
    try_state_ = TryState::kNone;
    tryFailed(TryEnd::kTimeout,
              deadline_is_per_try_
                  ? "no response head from " + target_.key + " within the per-try timeout of " +
                        millisText(ex_->perTryTimeout())
                  : "request deadline of " + millisText(ex_->deadline()) + " passed");
  }
  drive();
}

}  // namespace edge::gateway::proxy_internal
