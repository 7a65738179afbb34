#include "backend/etcd_store.h"

#include <algorithm>
#include <atomic>
#include <thread>
#include <utility>

#include "backend/store_internal.h"
#include "common/json.h"

namespace edge::backend {

namespace {

using json::Json;

constexpr char kB64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

std::string b64encode(std::string_view in) {
  std::string out;
  out.reserve((in.size() + 2) / 3 * 4);
  size_t i = 0;
  for (; i + 2 < in.size(); i += 3) {
    uint32_t v = (static_cast<uint8_t>(in[i]) << 16) | (static_cast<uint8_t>(in[i + 1]) << 8) |
                 static_cast<uint8_t>(in[i + 2]);
    out += kB64[v >> 18];
    out += kB64[(v >> 12) & 63];
    out += kB64[(v >> 6) & 63];
    out += kB64[v & 63];
  }
  if (i < in.size()) {
    uint32_t v = static_cast<uint8_t>(in[i]) << 16;
    if (i + 1 < in.size()) v |= static_cast<uint8_t>(in[i + 1]) << 8;
    out += kB64[v >> 18];
    out += kB64[(v >> 12) & 63];
    out += i + 1 < in.size() ? kB64[(v >> 6) & 63] : '=';
    out += '=';
  }
  return out;
}

// Standard alphabet; padding optional. Returns false on anything else.
bool b64decode(std::string_view in, std::string* out) {
  out->clear();
  out->reserve(in.size() / 4 * 3);
  uint32_t acc = 0;
  int bits = 0;
  size_t pad = 0;
  for (char c : in) {
    int v;
    if (c >= 'A' && c <= 'Z') {
      v = c - 'A';
    } else if (c >= 'a' && c <= 'z') {
      v = c - 'a' + 26;
    } else if (c >= '0' && c <= '9') {
      v = c - '0' + 52;
    } else if (c == '+') {
      v = 62;
    } else if (c == '/') {
      v = 63;
    } else if (c == '=') {
      ++pad;
      continue;
    } else {
      return false;
    }
    if (pad > 0) return false;  // data after padding
    acc = (acc << 6) | static_cast<uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out->push_back(static_cast<char>((acc >> bits) & 0xff));
    }
  }
  return pad <= 2;
}

// The gateway writes int64 fields as strings and leaves out fields at their zero value.
Result<int64_t> int64Field(const Json& obj, const char* name) {
  auto it = obj.find(name);
  if (it == obj.end() || it->is_null()) return int64_t{0};
  if (it->is_number_integer()) return it->get<int64_t>();
  if (it->is_string()) {
    const std::string& s = it->get_ref<const std::string&>();
    int64_t v = 0;
    bool ok = !s.empty() && s.size() < 19;
    for (char c : s) {
      if (c < '0' || c > '9') ok = false;
      v = v * 10 + (c - '0');
    }
    if (ok) return v;
  }
  return Status::internal(std::string("field \"") + name +
                          "\" is not an integer: " + json::dump(*it));
}

Result<std::string> bytesField(const Json& obj, const char* name) {
  auto it = obj.find(name);
  if (it == obj.end() || it->is_null()) return std::string();
  std::string out;
  if (!it->is_string() || !b64decode(it->get_ref<const std::string&>(), &out)) {
    return Status::internal(std::string("field \"") + name +
                            "\" is not base64: " + json::dump(*it));
  }
  return out;
}

Result<int64_t> headerRevision(const Json& reply) {
  auto it = reply.find("header");
  if (it == reply.end() || !it->is_object()) return Status::internal("reply has no header");
  ASSIGN_OR_RETURN(int64_t rev, int64Field(*it, "revision"));
  if (rev <= 0) return Status::internal("reply's header has no revision");
  return rev;
}

Result<std::vector<KeyValue>> kvsField(const Json& reply) {
  std::vector<KeyValue> out;
  auto it = reply.find("kvs");
  if (it == reply.end() || it->is_null()) return out;
  if (!it->is_array()) return Status::internal("\"kvs\" is not an array");
  out.reserve(it->size());
  for (const Json& kv : *it) {
    if (!kv.is_object()) return Status::internal("an entry of \"kvs\" is not an object");
    KeyValue v;
    ASSIGN_OR_RETURN(v.key, bytesField(kv, "key"));
    ASSIGN_OR_RETURN(v.value, bytesField(kv, "value"));
    ASSIGN_OR_RETURN(v.revision, int64Field(kv, "mod_revision"));
    out.push_back(std::move(v));
  }
  return out;
}

// etcd's gRPC codes, as the gateway reports them.
Status fromGrpc(int64_t code, const std::string& msg) {
  switch (code) {
    case 1:
      return Status::cancelled(msg);
    case 3:
      return Status::invalidArgument(msg);
    case 4:
      return Status::deadlineExceeded(msg);
    case 5:
      return Status::notFound(msg);
    case 6:
      return Status::alreadyExists(msg);
    case 7:
    case 16:
      return Status::permissionDenied(msg);
    case 8:
      return Status::resourceExhausted(msg);
    case 9:
    case 11:  // "required revision has been compacted"
      return Status::failedPrecondition(msg);
    case 12:
      return Status::unimplemented(msg);
    case 10:  // etcd does not use it for compares (those are `succeeded: false`)
    case 14:
      return Status::unavailable(msg);
    default:
      return Status::internal(msg);
  }
}

// etcd messages meaning the request was refused before raft took it, so sending it
// again (here or to another member) cannot apply it twice.
bool notApplied(const std::string& etcd_error) {
  return etcd_error.find("no leader") != std::string::npos ||
         etcd_error.find("proposal dropped") != std::string::npos ||
         etcd_error.find("not capable") != std::string::npos;
}

// etcd messages meaning the member cannot serve right now but another may, or it may
// shortly (an election, a member catching up).
bool transient(int64_t code, const std::string& etcd_error) {
  return code == 14 || notApplied(etcd_error) ||
         etcd_error.find("leader changed") != std::string::npos;
}

// http::Client says "cannot connect to"/"timed out connecting to" when no byte of the
// request left; after that a lost reply may hide an applied write.
bool neverSent(const Status& s) {
  return s.message().starts_with("cannot connect to") ||
         s.message().starts_with("timed out connecting to");
}

enum class Mode { kRead, kWrite };

}  // namespace

struct EtcdStore::Impl {
  std::vector<http::Endpoint> endpoints;
  std::vector<http::Client> clients;
  std::vector<std::string> urls;  // "http://host:port", for messages
  EtcdOptions options;
  std::atomic<size_t> preferred{0};

  // One gateway call. Tries the endpoints in turn from the last good one; see the header
  // for when a call moves on and when it gives up.
  Result<Json> call(const char* path, const Json& body, Mode mode, bool single_pass = false) {
    http::Request req;
    req.method = "POST";
    req.path = path;
    req.content_type = "application/json";
    req.body = json::dump(body);
    req.read_timeout = options.request_timeout;

    const auto deadline = std::chrono::steady_clock::now() + options.retry_window;
    auto backoff = std::chrono::milliseconds(25);
    std::string tried;
    while (true) {
      const size_t start = preferred.load(std::memory_order_relaxed);
      for (size_t i = 0; i < clients.size(); ++i) {
        const size_t idx = (start + i) % clients.size();
        const std::string& where = urls[idx];
        auto resp = clients[idx].send(req);
        if (!resp.isOk()) {
          Status s = resp.status();
          bool movable =
              s.code() == StatusCode::kUnavailable || s.code() == StatusCode::kDeadlineExceeded;
          if (movable && (mode == Mode::kRead || neverSent(s))) {
            tried += (tried.empty() ? "" : "; ") + s.message();
            continue;
          }
          if (movable) {
            return Status::unavailable(
                "etcd " + where + ": " + s.message() +
                " after the commit was sent; it may or may not have been applied: re-read "
                "before retrying");
          }
          return s.withContext("etcd " + where);
        }
        auto reply = json::parse(resp->body, std::string("etcd reply to ") + path);
        if (resp->isSuccess()) {
          if (!reply.isOk() || !reply->is_object()) {
            return Status::internal(
                "etcd " + where + " answered " + path +
                " with something that is not a JSON object: " + resp->body.substr(0, 200));
          }
          preferred.store(idx, std::memory_order_relaxed);
          return std::move(reply).value();
        }
        // The gateway's error body: {"error": "...", "code": <grpc code>, "message": ...}.
        if (!reply.isOk() || !reply->is_object() || !reply->contains("code")) {
          return Status::internal(
              "etcd " + where + " answered HTTP " + std::to_string(resp->status) + " to POST " +
              path + ": " + resp->body.substr(0, 200) + " (is this an etcd v3.4+ client URL?)");
        }
        auto code = int64Field(*reply, "code");
        std::string msg;
        for (const char* field : {"message", "error"}) {
          auto it = reply->find(field);
          if (it != reply->end() && it->is_string()) msg = it->get<std::string>();
        }
        int64_t grpc = code.isOk() ? *code : 2;
        Status st = fromGrpc(grpc, "etcd " + where + ": " + msg);
        if (transient(grpc, msg) && (mode == Mode::kRead || notApplied(msg))) {
          tried += (tried.empty() ? "" : "; ") + st.message();
          continue;
        }
        if (transient(grpc, msg)) {
          return Status::unavailable(st.message() +
                                     "; the commit may or may not have been applied: re-read "
                                     "before retrying");
        }
        return st;
      }
      // Every endpoint failed in a way that may pass shortly (an election, a restart).
      if (single_pass || std::chrono::steady_clock::now() + backoff > deadline) break;
      std::this_thread::sleep_for(backoff);
      backoff = std::min(backoff * 2, std::chrono::milliseconds(500));
      tried.clear();
    }
    return Status::unavailable("etcd: no endpoint answered (" + tried + ")");
  }

  // Decodes a reply: any surprise in it is kInternal naming the endpoint's call.
  static Status badReply(const char* path, const Status& s) {
    return Status::internal("etcd reply to " + std::string(path) +
                            " makes no sense: " + s.message());
  }

  Result<int64_t> currentRevision(bool single_pass) {
    // A range of one key that nobody writes ("\0") carries the revision in its header.
    Json body = {{"key", b64encode(std::string(1, '\0'))}, {"count_only", true}};
    ASSIGN_OR_RETURN(Json reply, call("/v3/kv/range", body, Mode::kRead, single_pass));
    auto rev = headerRevision(reply);
    if (!rev.isOk()) return badReply("/v3/kv/range", rev.status());
    return rev;
  }
};

EtcdStore::EtcdStore(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
EtcdStore::~EtcdStore() = default;

Result<std::vector<http::Endpoint>> EtcdStore::parseEndpoints(std::string_view urls) {
  const std::string allowed = "; use etcd:http://host:port[,http://host:port...]";
  std::vector<http::Endpoint> out;
  size_t pos = 0;
  while (pos <= urls.size()) {
    size_t comma = urls.find(',', pos);
    std::string_view item =
        urls.substr(pos, comma == std::string_view::npos ? std::string_view::npos : comma - pos);
    while (!item.empty() && item.front() == ' ') item.remove_prefix(1);
    while (!item.empty() && item.back() == ' ') item.remove_suffix(1);
    std::string text(item);
    if (text.empty()) {
      return Status::invalidArgument("etcd endpoint list \"" + std::string(urls) +
                                     "\" has an empty entry" + allowed);
    }
    if (text.starts_with("https://")) {
      return Status::invalidArgument("etcd endpoint \"" + text +
                                     "\": TLS is not supported yet; use http:// (on loopback or "
                                     "a trusted network)");
    }
    if (!text.starts_with("http://")) {
      return Status::invalidArgument("etcd endpoint \"" + text + "\" is not an http:// URL" +
                                     allowed);
    }
    auto ep = http::Endpoint::parse(text);
    if (!ep.isOk()) return Status::invalidArgument(ep.status().message() + allowed);
    out.push_back(std::move(ep).value());
    if (comma == std::string_view::npos) break;
    pos = comma + 1;
  }
  return out;
}

Result<std::unique_ptr<EtcdStore>> EtcdStore::open(std::vector<http::Endpoint> endpoints,
                                                   EtcdOptions options) {
  if (endpoints.empty()) {
    return Status::invalidArgument("etcd store needs at least one endpoint (http://host:port)");
  }
  if (options.page_size == 0) {
    return Status::invalidArgument("etcd store: page_size must be at least 1");
  }
  auto impl = std::make_unique<Impl>();
  impl->options = options;
  http::ClientOptions copts;
  copts.connect_timeout = options.connect_timeout;
  copts.write_timeout = options.request_timeout;
  for (auto& ep : endpoints) {
    if (ep.kind != http::Endpoint::Kind::kTcp) {
      return Status::invalidArgument("etcd endpoint " + ep.toString() +
                                     " is not TCP; etcd listens on http://host:port");
    }
    impl->urls.push_back("http://" + ep.host + ":" + std::to_string(ep.port));
    impl->clients.emplace_back(ep, copts);
  }
  impl->endpoints = std::move(endpoints);
  RETURN_IF_ERROR(impl->currentRevision(/*single_pass=*/true).status());
  return std::unique_ptr<EtcdStore>(new EtcdStore(std::move(impl)));
}

Result<KeyValue> EtcdStore::get(std::string_view key) {
  RETURN_IF_ERROR(internal::validateKey(key, "key"));
  Json body = {{"key", b64encode(key)}};
  ASSIGN_OR_RETURN(Json reply, impl_->call("/v3/kv/range", body, Mode::kRead));
  auto kvs = kvsField(reply);
  if (!kvs.isOk()) return Impl::badReply("/v3/kv/range", kvs.status());
  if (kvs->empty()) return Status::notFound("key " + internal::quoteKey(key) + " does not exist");
  if (kvs->size() != 1 || (*kvs)[0].key != key) {
    return Status::internal("etcd answered a get of " + internal::quoteKey(key) +
                            " with another key or several");
  }
  return std::move((*kvs)[0]);
}

Result<std::vector<KeyValue>> EtcdStore::list(std::string_view prefix, size_t limit,
                                              std::string_view start_after) {
  RETURN_IF_ERROR(internal::validateList(prefix, start_after));
  const std::string end = internal::prefixEnd(prefix);
  // range_end "\0" is etcd's "every key from `key` on".
  const std::string range_end = b64encode(end.empty() ? std::string(1, '\0') : end);
  std::string from = internal::listStart(prefix, start_after);
  // etcd refuses an empty key; no key is empty, so "\0" starts at the same place.
  if (from.empty()) from.assign(1, '\0');
  std::vector<KeyValue> out;
  int64_t snapshot = 0;
  while (true) {
    size_t want = impl_->options.page_size;
    if (limit != 0) want = std::min(want, limit - out.size());
    // No sort_order: etcd returns a range in key order from its index, and asking for a
    // sort makes etcd 3.4 read the whole rest of the range for every page (quadratic).
    Json body = {
        {"key", b64encode(from)}, {"range_end", range_end}, {"limit", static_cast<int64_t>(want)}};
    if (snapshot != 0) body["revision"] = snapshot;
    ASSIGN_OR_RETURN(Json reply, impl_->call("/v3/kv/range", body, Mode::kRead));
    auto page = kvsField(reply);
    if (!page.isOk()) return Impl::badReply("/v3/kv/range", page.status());
    if (snapshot == 0) {
      auto rev = headerRevision(reply);
      if (!rev.isOk()) return Impl::badReply("/v3/kv/range", rev.status());
      snapshot = *rev;
    }
    for (auto& kv : *page) {
      bool in_range = kv.key >= from && (end.empty() || kv.key < end);
      bool ordered = out.empty() || out.back().key < kv.key;
      if (!in_range || !ordered) {
        return Status::internal("etcd's range reply is out of order or out of range at key " +
                                internal::quoteKey(kv.key));
      }
      out.push_back(std::move(kv));
    }
    auto more_field = reply.find("more");
    bool more = more_field != reply.end() && more_field->is_boolean() && more_field->get<bool>();
    if (!more || page->empty() || (limit != 0 && out.size() >= limit)) break;
    from = out.back().key + '\0';
  }
  return out;
}

Result<int64_t> EtcdStore::commit(const std::vector<StoreOp>& ops) {
  RETURN_IF_ERROR(internal::validateOps(ops));
  Json compare = Json::array();
  Json success = Json::array();
  Json failure = Json::array();
  std::vector<const StoreOp*> compared;
  for (const StoreOp& op : ops) {
    std::string key = b64encode(op.key);
    if (op.expected_revision == 0) {
      compare.push_back(
          {{"key", key}, {"target", "CREATE"}, {"result", "EQUAL"}, {"create_revision", "0"}});
    } else if (op.expected_revision > 0) {
      compare.push_back({{"key", key},
                         {"target", "MOD"},
                         {"result", "EQUAL"},
                         {"mod_revision", std::to_string(op.expected_revision)}});
    }
    if (op.expected_revision != StoreOp::kAny) {
      // When a compare fails, etcd runs these instead: the revisions they return, read
      // in the same transaction, say which key failed and why.
      failure.push_back({{"request_range", {{"key", key}, {"keys_only", true}}}});
      compared.push_back(&op);
    }
    if (op.kind == StoreOp::Kind::kPut) {
      success.push_back({{"request_put", {{"key", key}, {"value", b64encode(op.value)}}}});
    } else if (op.kind == StoreOp::Kind::kDelete) {
      success.push_back({{"request_delete_range", {{"key", key}}}});
    }
  }
  Json body = {{"compare", compare}, {"success", success}, {"failure", failure}};
  ASSIGN_OR_RETURN(Json reply, impl_->call("/v3/kv/txn", body, Mode::kWrite));
  auto rev = headerRevision(reply);
  if (!rev.isOk()) return Impl::badReply("/v3/kv/txn", rev.status());
  auto succeeded = reply.find("succeeded");
  if (succeeded != reply.end() && succeeded->is_boolean() && succeeded->get<bool>()) return *rev;

  auto responses = reply.find("responses");
  if (responses == reply.end() || !responses->is_array() || responses->size() != compared.size()) {
    return Status::internal("etcd's reply to a failed txn does not carry its " +
                            std::to_string(compared.size()) + " reads");
  }
  for (size_t i = 0; i < compared.size(); ++i) {
    const Json& r = (*responses)[i];
    auto range = r.find("response_range");
    if (range == r.end() || !range->is_object()) {
      return Status::internal("etcd's reply to a failed txn misses a range response");
    }
    auto kvs = kvsField(*range);
    if (!kvs.isOk()) return Impl::badReply("/v3/kv/txn", kvs.status());
    int64_t actual = kvs->empty() ? 0 : (*kvs)[0].revision;
    if (!internal::compareHolds(compared[i]->expected_revision, actual)) {
      return internal::compareFailed(*compared[i], actual);
    }
  }
  return Status::internal("etcd refused a txn but every compare holds in its own reads");
}

Result<int64_t> EtcdStore::revision() {
  return impl_->currentRevision(/*single_pass=*/false);
}

std::string EtcdStore::describe() const {
  std::string out = "etcd:";
  for (size_t i = 0; i < impl_->urls.size(); ++i) out += (i ? "," : "") + impl_->urls[i];
  return out;
}

}  // namespace edge::backend
