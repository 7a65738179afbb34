#include "runtime-shim/docker/docker_wire.h"

#include <algorithm>
#include <cctype>
#include <charconv>

namespace edge::runtime::docker {

std::string ApiVersion::toString() const {
  return std::to_string(major) + "." + std::to_string(minor);
}

Result<ApiVersion> parseApiVersion(std::string_view s) {
  std::string_view t = s;
  while (!t.empty() && std::isspace(static_cast<unsigned char>(t.front()))) t.remove_prefix(1);
  while (!t.empty() && std::isspace(static_cast<unsigned char>(t.back()))) t.remove_suffix(1);
  ApiVersion v;
  const char* end = t.data() + t.size();
  auto [p1, e1] = std::from_chars(t.data(), end, v.major);
  if (e1 != std::errc() || p1 == end || *p1 != '.') {
    return Status::invalidArgument("API version '" + std::string(s) +
                                   "' is not of the form <major>.<minor>");
  }
  auto [p2, e2] = std::from_chars(p1 + 1, end, v.minor);
  if (e2 != std::errc() || (p2 != end && *p2 != '.') || v.major < 0 || v.minor < 0) {
    return Status::invalidArgument("API version '" + std::string(s) +
                                   "' is not of the form <major>.<minor>");
  }
  return v;
}

Result<ApiVersion> negotiateApiVersion(std::string_view server_text) {
  ASSIGN_OR_RETURN(ApiVersion server, parseApiVersion(server_text));
  if (server < kMinApiVersion) {
    return Status::failedPrecondition("the daemon speaks Docker API " + server.toString() +
                                      " but Edgecloud needs at least " + kMinApiVersion.toString() +
                                      " (Docker 1.12 or newer)");
  }
  return std::min(server, kMaxApiVersion);
}

WallTime parseDockerTime(const std::string& s) {
  if (s.empty() || s.starts_with("0001-01-01")) return WallTime{};
  WallTime t;
  if (!parseTimestamp(s, &t)) return WallTime{};
  return t;
}

std::string formatDockerTime(WallTime t) {
  if (t == WallTime{}) return "0001-01-01T00:00:00Z";
  return formatRfc3339Nano(t);
}

}  // namespace edge::runtime::docker
