#include "mesh/peer_protocol.h"

#include <strings.h>

#include <array>

#include "common/json.h"

namespace edge::mesh {

bool isHopByHopHeader(std::string_view name) {
  static constexpr std::array<std::string_view, 10> kHopByHop = {"connection",
                                                                 "keep-alive",
                                                                 "proxy-authenticate",
                                                                 "proxy-authorization",
                                                                 "te",
                                                                 "trailer",
                                                                 "transfer-encoding",
                                                                 "upgrade",
                                                                 "content-length",
                                                                 "host"};
  for (auto h : kHopByHop)
    if (name.size() == h.size() && ::strncasecmp(name.data(), h.data(), h.size()) == 0) return true;
  return false;
}

nlohmann::json headersToJson(const http::Headers& headers) {
  nlohmann::json j = nlohmann::json::object();
  for (const auto& [name, value] : headers) {
    if (isHopByHopHeader(name)) continue;
    auto it = j.find(name);
    if (it == j.end()) {
      j[name] = value;
    } else if (it->is_array()) {
      it->push_back(value);
    } else {
      *it = nlohmann::json::array({*it, value});
    }
  }
  return j;
}

Result<http::Headers> headersFromJson(const nlohmann::json& j, std::string_view where) {
  http::Headers out;
  if (j.is_null()) return out;
  if (!j.is_object()) {
    return Status::invalidArgument(
        std::string(where) + ": .headers must be an object of strings, got a " + json::typeName(j));
  }
  auto valid = [](std::string_view s, bool name) {
    if (name && s.empty()) return false;
    for (unsigned char c : s) {
      if (c == '\r' || c == '\n' || c == 0) return false;
      if (name && (c <= ' ' || c == ':' || c >= 0x7f)) return false;
    }
    return true;
  };
  for (const auto& [name, value] : j.items()) {
    if (!valid(name, true)) {
      return Status::invalidArgument(std::string(where) + ": header name " + json::dump(name) +
                                     " is not a valid HTTP token (no spaces, colons or "
                                     "control characters)");
    }
    std::vector<const nlohmann::json*> values;
    if (value.is_array()) {
      for (const auto& v : value) values.push_back(&v);
    } else {
      values.push_back(&value);
    }
    for (const auto* v : values) {
      if (!v->is_string() || !valid(v->get_ref<const std::string&>(), false)) {
        return Status::invalidArgument(std::string(where) + ": .headers." + name +
                                       " must be a string (or an array of strings) without "
                                       "line breaks");
      }
      if (!isHopByHopHeader(name)) out.emplace(name, v->get<std::string>());
    }
  }
  return out;
}

std::string errorMessage(int status, std::string_view message) {
  return json::dump({{"type", "error"}, {"status", status}, {"message", message}});
}

std::string errorBody(std::string_view message) {
  return json::dump({{"message", message}});
}

}  // namespace edge::mesh
