#include "cli/errors.h"

#include "common/json.h"

namespace edge::cli {

std::string exitCodeHelp() {
  return "Exit codes:\n"
         "  0  success\n"
         "  1  the node reported an error (5xx), or an unexpected failure\n"
         "  2  usage error (unknown command or flag, bad flag value, unreadable file)\n"
         "  3  not found (no such service, instance or image)\n"
         "  4  invalid input (the node rejected the manifest or request: 400, 413)\n"
         "  5  cannot reach the node (no socket, connection refused, timed out)\n"
         "  6  conflict (409: name taken, image in use)\n";
}

int exitCodeFor(const Status& s) {
  switch (s.code()) {
    case StatusCode::kOk:
      return kExitOk;
    case StatusCode::kNotFound:
      return kExitNotFound;
    case StatusCode::kInvalidArgument:
    case StatusCode::kResourceExhausted:
      return kExitInvalid;
    case StatusCode::kUnavailable:
    case StatusCode::kPermissionDenied:
    case StatusCode::kDeadlineExceeded:
      return kExitUnreachable;
    case StatusCode::kAlreadyExists:
      return kExitConflict;
    default:
      return kExitError;
  }
}

std::string formatFieldError(std::string_view label, int64_t doc, std::string_view path,
                             std::string_view message) {
  std::string out(label);
  auto part = [&out](std::string_view p) {
    if (p.empty()) return;
    if (!out.empty()) out += ": ";
    out += p;
  };
  if (doc > 0) part("doc " + std::to_string(doc));
  part(path);
  part(message);
  return out;
}

namespace {

StatusCode codeForHttp(int status) {
  if (status == 400) return StatusCode::kInvalidArgument;
  if (status == 404) return StatusCode::kNotFound;
  if (status == 409) return StatusCode::kAlreadyExists;
  if (status == 413) return StatusCode::kResourceExhausted;
  if (status >= 500) return StatusCode::kInternal;
  return StatusCode::kFailedPrecondition;
}

std::string firstLine(std::string_view body) {
  std::string_view l = body.substr(0, body.find('\n'));
  if (l.size() > 200) return std::string(l.substr(0, 200)) + "...";
  return std::string(l);
}

}  // namespace

Status statusFromResponse(const http::Response& r, std::string_view label) {
  StatusCode code = codeForHttp(r.status);
  std::string fallback = "the node answered HTTP " + std::to_string(r.status);
  Result<json::Json> body = json::parse(r.body, "error body");
  if (!body.isOk() || !body->is_object()) {
    std::string snippet = firstLine(r.body);
    return Status(code, snippet.empty() ? fallback : fallback + ": " + snippet);
  }
  const json::Json& j = *body;
  std::string msg;
  if (auto it = j.find("message"); it != j.end() && it->is_string()) msg = it->get<std::string>();
  if (msg.empty()) msg = fallback;
  if (auto it = j.find("errors"); it != j.end() && it->is_array()) {
    for (const auto& e : *it) {
      if (!e.is_object()) continue;
      int64_t doc = 0;
      if (auto d = e.find("doc"); d != e.end() && d->is_number_integer()) doc = d->get<int64_t>();
      std::string path, text;
      if (auto p = e.find("path"); p != e.end() && p->is_string()) path = p->get<std::string>();
      if (auto m = e.find("message"); m != e.end() && m->is_string()) {
        text = m->get<std::string>();
      }
      msg += "\n" + formatFieldError(label, doc, path, text);
    }
  }
  return Status(code, msg);
}

Status reachError(const Status& transport, std::string_view where) {
  std::string why = transport.message();
  // common/http names the endpoint itself; say it once, in our own words. Failures after
  // the connection was made (peer closed, read timeout) already say what happened.
  if (why.starts_with("timed out connecting to ")) {
    why = "timed out connecting";
  } else if (why.starts_with("cannot connect to ")) {
    size_t colon = why.find(": ", 18);
    why = colon == std::string::npos ? "connection failed" : why.substr(colon + 2);
  } else {
    return transport;
  }
  // "connection refused (is the daemon running?)" carries a generic hint; ours is better.
  if (size_t p = why.find(" (is the daemon running?)"); p != std::string::npos) why.erase(p);
  std::string hint = transport.code() == StatusCode::kPermissionDenied
                         ? "is your user in the group 'edge'? try sudo"
                         : "is edged running? see systemctl status edged";
  return Status(transport.code(),
                "cannot reach edged at " + std::string(where) + ": " + why + " (" + hint + ")");
}

std::string formatErrorForUser(const Status& s) {
  return "edgectl: " + s.message() + "\n";
}

}  // namespace edge::cli
