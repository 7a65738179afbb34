// MemoryStore: the Store in a std::map, for hermetic unit tests of services built on it.
// Faithful to backend/store.h: a global revision, per-key revisions, all-or-nothing
// commits with revision compares (kAborted naming the key), the size limits. A test can
// make the next commits fail with kAborted (failNextCommits) to exercise retry loops, as a
// racing replica would.
//
// Thread-safety: every method may be called from any thread at once (one mutex).
#pragma once

#include <map>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "backend/store.h"

namespace edge::backend::testing {

class MemoryStore final : public Store {
 public:
  Result<KeyValue> get(std::string_view key) override {
    std::lock_guard<std::mutex> lock(mu_);
    RETURN_IF_ERROR(checkKey(key));
    auto it = data_.find(std::string(key));
    if (it == data_.end()) return Status::notFound("key " + std::string(key) + " not found");
    return it->second;
  }

  Result<std::vector<KeyValue>> list(std::string_view prefix, size_t limit = 0,
                                     std::string_view start_after = {}) override {
    std::lock_guard<std::mutex> lock(mu_);
    std::vector<KeyValue> out;
    auto it = start_after.empty() ? data_.lower_bound(std::string(prefix))
                                  : data_.upper_bound(std::string(start_after));
    for (; it != data_.end(); ++it) {
      if (it->first.compare(0, prefix.size(), prefix) != 0) {
        if (it->first > prefix) break;
        continue;
      }
      out.push_back(it->second);
      if (limit != 0 && out.size() == limit) break;
    }
    return out;
  }

  Result<int64_t> commit(const std::vector<StoreOp>& ops) override {
    std::lock_guard<std::mutex> lock(mu_);
    ++commits_;
    if (ops.size() > kMaxOpsPerCommit)
      return Status::invalidArgument("commit of " + std::to_string(ops.size()) + " ops; at most " +
                                     std::to_string(kMaxOpsPerCommit));
    std::set<std::string> seen;
    for (const auto& op : ops) {
      RETURN_IF_ERROR(checkKey(op.key));
      if (op.value.size() > kMaxValueBytes)
        return Status::invalidArgument("value of " + op.key + " is too large");
      if (!seen.insert(op.key).second)
        return Status::invalidArgument("key " + op.key + " appears twice in one commit");
    }
    if (fail_next_ > 0) {
      --fail_next_;
      return Status::aborted("injected: a concurrent writer won");
    }
    for (const auto& op : ops) {
      if (op.expected_revision == StoreOp::kAny) continue;
      auto it = data_.find(op.key);
      int64_t have = it == data_.end() ? 0 : it->second.revision;
      if (have != op.expected_revision)
        return Status::aborted("key " + op.key + " is at revision " + std::to_string(have) +
                               ", expected " + std::to_string(op.expected_revision));
    }
    bool changes = false;
    for (const auto& op : ops) {
      if (op.kind == StoreOp::Kind::kPut) changes = true;
      if (op.kind == StoreOp::Kind::kDelete && data_.count(op.key)) changes = true;
    }
    if (!changes) return revision_;
    ++revision_;
    for (const auto& op : ops) {
      if (op.kind == StoreOp::Kind::kPut)
        data_[op.key] = KeyValue{op.key, op.value, revision_};
      else if (op.kind == StoreOp::Kind::kDelete)
        data_.erase(op.key);
    }
    return revision_;
  }

  Result<int64_t> revision() override {
    std::lock_guard<std::mutex> lock(mu_);
    return revision_;
  }

  std::string describe() const override { return "memory:"; }

  // The next `n` commits fail with kAborted, as when another replica wins each race.
  void failNextCommits(int n) {
    std::lock_guard<std::mutex> lock(mu_);
    fail_next_ = n;
  }
  int commits() const {
    std::lock_guard<std::mutex> lock(mu_);
    return commits_;
  }

 private:
  static Status checkKey(std::string_view key) {
    if (key.empty()) return Status::invalidArgument("empty key");
    if (key.size() > kMaxKeyBytes) return Status::invalidArgument("key too long");
    return Status::ok();
  }

  mutable std::mutex mu_;
  std::map<std::string, KeyValue> data_;
  int64_t revision_ = 0;
  int fail_next_ = 0;
  int commits_ = 0;
};

}  // namespace edge::backend::testing
