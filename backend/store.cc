#include "backend/store.h"

#include <cstdio>
#include <set>

#include "backend/etcd_store.h"
#include "backend/sqlite_store.h"
#include "backend/store_internal.h"

namespace edge::backend {

namespace internal {

std::string quoteKey(std::string_view key) {
  constexpr size_t kShown = 80;
  std::string out = "\"";
  for (size_t i = 0; i < key.size() && i < kShown; ++i) {
    auto c = static_cast<unsigned char>(key[i]);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c >= 0x20 && c < 0x7f) {
      out += static_cast<char>(c);
    } else {
      char buf[5];
      std::snprintf(buf, sizeof buf, "\\x%02x", c);
      out += buf;
    }
  }
  out += '"';
  if (key.size() > kShown) out += "... (" + std::to_string(key.size()) + " bytes)";
  return out;
}

Status validateKey(std::string_view key, std::string_view what) {
  if (key.empty())
    return Status::invalidArgument(std::string(what) + " is empty; keys need 1 byte or more");
  if (key.size() > Store::kMaxKeyBytes) {
    return Status::invalidArgument(std::string(what) + " " + quoteKey(key) + " is " +
                                   std::to_string(key.size()) + " bytes; at most " +
                                   std::to_string(Store::kMaxKeyBytes) + " are allowed");
  }
  return Status::ok();
}

Status validateOps(const std::vector<StoreOp>& ops) {
  if (ops.size() > Store::kMaxOpsPerCommit) {
    return Status::invalidArgument("a commit of " + std::to_string(ops.size()) + " ops; at most " +
                                   std::to_string(Store::kMaxOpsPerCommit) +
                                   " are allowed (split it, or batch fewer keys)");
  }
  std::set<std::string_view> seen;
  size_t bytes = 0;
  for (size_t i = 0; i < ops.size(); ++i) {
    const StoreOp& op = ops[i];
    std::string where = "op " + std::to_string(i);
    RETURN_IF_ERROR(validateKey(op.key, where + ": key"));
    if (!seen.insert(op.key).second) {
      return Status::invalidArgument(where + ": key " + quoteKey(op.key) +
                                     " appears twice in one commit; each key at most once");
    }
    if (op.expected_revision < StoreOp::kAny) {
      return Status::invalidArgument(
          where + " on " + quoteKey(op.key) + ": expected revision " +
          std::to_string(op.expected_revision) +
          " is not allowed; use StoreOp::kAny (-1), 0 (must not exist) or a revision > 0");
    }
    switch (op.kind) {
      case StoreOp::Kind::kPut:
        if (op.value.size() > Store::kMaxValueBytes) {
          return Status::invalidArgument(where + ": value of " + quoteKey(op.key) + " is " +
                                         std::to_string(op.value.size()) + " bytes; at most " +
                                         std::to_string(Store::kMaxValueBytes) + " are allowed");
        }
        break;
      case StoreOp::Kind::kCheck:
        if (op.expected_revision == StoreOp::kAny) {
          return Status::invalidArgument(where + ": a check of " + quoteKey(op.key) +
                                         " needs an expected revision (0 = must not exist, or "
                                         "a revision > 0), not kAny");
        }
        break;
      case StoreOp::Kind::kDelete:
        if (!op.value.empty()) {
          return Status::invalidArgument(where + ": a delete of " + quoteKey(op.key) +
                                         " carries a value; only puts do");
        }
        break;
      default:
        return Status::invalidArgument(where + ": unknown op kind " +
                                       std::to_string(static_cast<int>(op.kind)));
    }
    bytes += op.key.size() + op.value.size();
  }
  if (bytes > Store::kMaxCommitBytes) {
    return Status::invalidArgument(
        "a commit of " + std::to_string(bytes) + " bytes of keys and values; at most " +
        std::to_string(Store::kMaxCommitBytes) + " are allowed in one commit (split it)");
  }
  return Status::ok();
}

Status validateList(std::string_view prefix, std::string_view start_after) {
  if (!prefix.empty()) RETURN_IF_ERROR(validateKey(prefix, "prefix"));
  if (!start_after.empty()) RETURN_IF_ERROR(validateKey(start_after, "start_after"));
  return Status::ok();
}

std::string prefixEnd(std::string_view prefix) {
  std::string end(prefix);
  while (!end.empty() && static_cast<unsigned char>(end.back()) == 0xff) end.pop_back();
  if (!end.empty()) end.back() = static_cast<char>(static_cast<unsigned char>(end.back()) + 1);
  return end;
}

std::string listStart(std::string_view prefix, std::string_view start_after) {
  if (start_after.empty()) return std::string(prefix);
  // The next key after start_after in byte order is start_after + '\0'.
  std::string after = std::string(start_after) + '\0';
  return after > prefix ? after : std::string(prefix);
}

Status compareFailed(const StoreOp& op, int64_t actual) {
  std::string expected = op.expected_revision == 0
                             ? "to be absent"
                             : "at revision " + std::to_string(op.expected_revision);
  std::string found =
      actual == 0 ? "it does not exist" : "it is at revision " + std::to_string(actual);
  return Status::aborted("key " + quoteKey(op.key) + " was expected " + expected + " but " + found +
                         "; nothing was written (re-read and retry)");
}

}  // namespace internal

namespace {

Result<StorePtr> openSqlite(std::string_view rest, const std::string& url) {
  // sqlite:///abs/path is accepted as well as sqlite:/abs/path and sqlite:rel/path.
  if (rest.starts_with("///")) rest.remove_prefix(2);
  if (rest.starts_with("//")) {
    return Status::invalidArgument("store URL \"" + url +
                                   "\": sqlite takes a file path, as sqlite:/var/lib/"
                                   "edge-backend/backend.db or sqlite:backend.db");
  }
  if (rest.empty()) {
    return Status::invalidArgument("store URL \"" + url +
                                   "\" names no file; use sqlite:<path>, e.g. "
                                   "sqlite:/var/lib/edge-backend/backend.db");
  }
  ASSIGN_OR_RETURN(auto store, SqliteStore::open(std::string(rest)));
  return StorePtr(std::move(store));
}

Result<StorePtr> openEtcd(std::string_view rest) {
  ASSIGN_OR_RETURN(auto endpoints, EtcdStore::parseEndpoints(rest));
  ASSIGN_OR_RETURN(auto store, EtcdStore::open(std::move(endpoints)));
  return StorePtr(std::move(store));
}

}  // namespace

Result<StorePtr> openStore(const std::string& url) {
  std::string_view u(url);
  if (u.starts_with("sqlite:")) return openSqlite(u.substr(7), url);
  if (u.starts_with("etcd:")) return openEtcd(u.substr(5));
  return Status::invalidArgument(
      "store URL \"" + url +
      "\" is not understood; use sqlite:<path> (one file, e.g. "
      "sqlite:/var/lib/edge-backend/backend.db) or etcd:http://host:port[,http://host:port...]");
}

}  // namespace edge::backend
