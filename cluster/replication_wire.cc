#include "cluster/replication_wire.h"

#include <algorithm>
#include <exception>

#include "cluster/replication.h"

namespace edge::cluster::replication_wire {

using nlohmann::json;
std::string control(MsgType t, const json& body) {
  std::string out;
  out.push_back(static_cast<char>(kVersion));
  out.push_back(static_cast<char>(t));
  out += body.dump(-1, ' ', false, json::error_handler_t::replace);
  return out;
}

namespace {

void putU32(std::string* out, uint32_t v) {
  for (int s = 24; s >= 0; s -= 8) out->push_back(static_cast<char>((v >> s) & 0xff));
}
void putU64(std::string* out, uint64_t v) {
  for (int s = 56; s >= 0; s -= 8) out->push_back(static_cast<char>((v >> s) & 0xff));
}
}  // namespace

uint64_t getBig(std::string_view b, size_t off, size_t n) {
  uint64_t v = 0;
  for (size_t i = 0; i < n; ++i) v = (v << 8) | static_cast<unsigned char>(b[off + i]);
  return v;
}

Result<EncodedPtr> encodeState(const ClusterState& state, uint64_t transfer) {
  std::string text;
  auto enc = std::make_shared<Encoded>();
  try {
    text = state.toJson().dump(-1, ' ', false, json::error_handler_t::replace);
    enc->digest = state.digest();
  } catch (const std::exception& e) {
    return Status::internal(std::string("cannot encode the cluster state: ") + e.what());
  }
  if (text.size() > kMaxStateBytes) {
    return Status::resourceExhausted("the cluster state is " + std::to_string(text.size()) +
                                     " bytes; at most " + std::to_string(kMaxStateBytes) +
                                     " are replicated");
  }
  size_t count = std::max<size_t>(1, (text.size() + kStatePartBytes - 1) / kStatePartBytes);
  for (size_t i = 0; i < count; ++i) {
    std::string m;
    m.reserve(kStateHeader + kStatePartBytes);
    m.push_back(static_cast<char>(kVersion));
    m.push_back(static_cast<char>(kState));
    putU64(&m, transfer);
    putU32(&m, static_cast<uint32_t>(i));
    putU32(&m, static_cast<uint32_t>(count));
    size_t off = i * kStatePartBytes;
    if (off < text.size()) m.append(text, off, kStatePartBytes);
    enc->parts.push_back(std::move(m));
  }
  return EncodedPtr(std::move(enc));
}

namespace {

// Refuses JSON nested deeper than max_depth before nlohmann's recursive parser sees it.
bool depthWithin(std::string_view text, int max_depth) {
  int depth = 0;
  bool in_string = false, escape = false;
  for (char c : text) {
    if (in_string) {
      if (escape) {
        escape = false;
      } else if (c == '\\') {
        escape = true;
      } else if (c == '"') {
        in_string = false;
      }
      continue;
    }
    if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      if (++depth > max_depth) return false;
    } else if (c == ']' || c == '}') {
      --depth;
    }
  }
  return true;
}

}  // namespace

Result<json> parseJson(std::string_view text, std::string_view what) {
  if (!depthWithin(text, kMaxDepth)) {
    return Status::invalidArgument(std::string(what) + ": nested deeper than " +
                                   std::to_string(kMaxDepth) + " levels");
  }
  json j = json::parse(text.begin(), text.end(), nullptr, false);
  if (j.is_discarded()) return Status::invalidArgument(std::string(what) + ": not JSON");
  return j;
}

bool isDigest(const json& j) {
  if (!j.is_string()) return false;
  const auto& s = j.get_ref<const std::string&>();
  return s.size() == 64 && std::all_of(s.begin(), s.end(), [](char c) {
           return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
         });
}

bool isKind(std::string_view s) {
  return !s.empty() && s.size() <= 64 && std::all_of(s.begin(), s.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-';
  });
}

std::set<Hlc> stampsOf(const ClusterState& s) {
  std::set<Hlc> out;
  if (!s.assignmentsHlc().isZero()) out.insert(s.assignmentsHlc());
  for (const auto& [name, e] : s.specs()) {
    out.insert(e.hlc);
    out.insert(e.replaced.begin(), e.replaced.end());
  }
  for (const auto& [id, c] : s.cordons()) out.insert(c.hlc);
  return out;
}

json statusJson(uint64_t id, const Result<json>& r) {
  if (r.isOk()) return {{"id", id}, {"ok", true}, {"body", *r}};
  std::string m = r.status().message().substr(0, kMaxMessageText);
  return {{"id", id},
          {"ok", false},
          {"code", static_cast<int>(r.status().code())},
          {"message", std::move(m)}};
}

}  // namespace edge::cluster::replication_wire
