// Store: the backend's one storage interface, a small transactional key-value store with
// a global revision, in the image of etcd v3 (which is one of its implementations).
//
// Every service of edge-backend (identity, tokens, global discovery, registry,
// signaling) keeps its state here and nowhere else, so several edge-backend replicas on
// one etcd cluster agree on it: a replica keeps no state a peer would need, and every
// read-modify-write goes through commit() with a revision compare, so two replicas
// racing on one key cannot both win (the loser gets kAborted, re-reads and retries).
//
// Keys are byte strings of 1 to kMaxKeyBytes, values up to kMaxValueBytes (JSON by
// convention; empty is allowed). Every commit that changes something advances the
// store's revision by one, and each key it wrote gets that revision, so revisions of
// one key only grow and a key's revision is never 0. A commit that changes nothing
// (checks only, deletes of absent keys) leaves the revision as it is.
//
// Implementations: SqliteStore (the default: one file, no setup) and EtcdStore (etcd v3
// through its JSON gateway, for a backend with several replicas). Both pass the same
// conformance tests (tests/backend/store_conformance_test.cc).
//
// Thread-safety: every method may be called from any thread at once.
//
// Errors: kInvalidArgument for an empty or oversized key, an oversized value or commit
// (checked before anything is sent); kAborted when a compare of commit() fails (nothing
// was written); kUnavailable when the store cannot be reached (etcd down; retrying may
// help); kInternal for a corrupt store or a reply that makes no sense.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace edge::backend {

struct KeyValue {
  std::string key;
  std::string value;
  int64_t revision = 0;  // the store revision of the key's last write
};

// One operation of a transaction. `expected_revision` is compared before anything is
// written: kAny skips the compare, 0 means "the key must not exist", N > 0 means "the
// key exists and was last written at revision N".
struct StoreOp {
  static constexpr int64_t kAny = -1;
  enum class Kind { kPut, kDelete, kCheck };  // kCheck: compare only, write nothing

  Kind kind = Kind::kPut;
  std::string key;
  std::string value;  // kPut
  int64_t expected_revision = kAny;

  static StoreOp put(std::string key, std::string value, int64_t expected = kAny) {
    return {Kind::kPut, std::move(key), std::move(value), expected};
  }
  static StoreOp remove(std::string key, int64_t expected = kAny) {
    return {Kind::kDelete, std::move(key), {}, expected};
  }
  static StoreOp check(std::string key, int64_t expected) {
    return {Kind::kCheck, std::move(key), {}, expected};
  }
};

class Store {
 public:
  static constexpr size_t kMaxKeyBytes = 1024;
  static constexpr size_t kMaxValueBytes = 1 << 20;
  static constexpr size_t kMaxOpsPerCommit = 64;  // etcd's default --max-txn-ops is 128
  // Keys and values of one commit together; etcd's default --max-request-bytes is 1.5 MiB.
  static constexpr size_t kMaxCommitBytes = (1 << 20) + (1 << 18);

  virtual ~Store() = default;

  // The key's value and revision; kNotFound when absent.
  virtual Result<KeyValue> get(std::string_view key) = 0;

  // Keys starting with `prefix`, in byte order, strictly after `start_after` when it is
  // not empty, at most `limit` of them (0 = no limit).
  virtual Result<std::vector<KeyValue>> list(std::string_view prefix, size_t limit = 0,
                                             std::string_view start_after = {}) = 0;

  // Applies every op or none: when any compare fails nothing is written and the result
  // is kAborted naming the key. Returns the store revision after the commit (the
  // revision every written key now has). A commit without writes returns the current
  // revision. Deleting an absent key (with kAny) is not an error. At most
  // kMaxOpsPerCommit ops, each key at most once.
  virtual Result<int64_t> commit(const std::vector<StoreOp>& ops) = 0;

  // Shorthands for one-op commits.
  Result<int64_t> put(std::string key, std::string value, int64_t expected = StoreOp::kAny) {
    return commit({StoreOp::put(std::move(key), std::move(value), expected)});
  }
  Result<int64_t> remove(std::string key, int64_t expected = StoreOp::kAny) {
    return commit({StoreOp::remove(std::move(key), expected)});
  }

  // The current store revision: SqliteStore starts at 0, etcd at 1, so compare it only
  // with revisions this store returned.
  virtual Result<int64_t> revision() = 0;

  // What this store is, for logs and /healthz: "sqlite:/var/lib/edge-backend/backend.db",
  // "etcd:http://198.18.0.1:2379".
  virtual std::string describe() const = 0;
};

using StorePtr = std::unique_ptr<Store>;

// Opens the store a URL names:
//   sqlite:<path>                       (a file, created with its directory)
//   etcd:http://host:port[,http://...]  (etcd v3 JSON gateway; several endpoints are
//                                        tried in turn)
// kInvalidArgument for an unknown scheme or a malformed URL; kUnavailable when etcd
// answers on none of its endpoints; kFailedPrecondition for a file that is not ours.
Result<StorePtr> openStore(const std::string& url);

}  // namespace edge::backend
