// MemoryStore: the Store in a std::map, for hermetic unit tests of services built on it.
// Faithful to backend/store.h: a global revision, per-key revisions, all-or-nothing
// commits with revision compares (kAborted naming the key), and the argument checks and
// messages of the real stores (it calls the same store_internal.h helpers, so a limit
// added to store.h, like kMaxCommitBytes, holds here too). A test can
// make the next commits fail with kAborted (failNextCommits) to exercise retry loops, as a
// racing replica would.
//
// Thread-safety: every method may be called from any thread at once (one mutex).
#pragma once

#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "backend/store.h"
#include "backend/store_internal.h"

namespace edge::backend::testing {

class MemoryStore final : public Store {
 public:
  Result<KeyValue> get(std::string_view key) override {
    RETURN_IF_ERROR(internal::validateKey(key, "key"));
    std::lock_guard<std::mutex> lock(mu_);
    auto it = data_.find(std::string(key));
    if (it == data_.end())
      return Status::notFound("key " + internal::quoteKey(key) + " does not exist");
    return it->second;
  }

  Result<std::vector<KeyValue>> list(std::string_view prefix, size_t limit = 0,
                                     std::string_view start_after = {}) override {
    RETURN_IF_ERROR(internal::validateList(prefix, start_after));
    const std::string end = internal::prefixEnd(prefix);  // empty: no upper end
    std::lock_guard<std::mutex> lock(mu_);
    std::vector<KeyValue> out;
    for (auto it = data_.lower_bound(internal::listStart(prefix, start_after));
         it != data_.end() && (end.empty() || it->first < end); ++it) {
      out.push_back(it->second);
      if (limit != 0 && out.size() == limit) break;
    }
    return out;
  }

  Result<int64_t> commit(const std::vector<StoreOp>& ops) override {
    std::lock_guard<std::mutex> lock(mu_);
    ++commits_;
    RETURN_IF_ERROR(internal::validateOps(ops));
    if (fail_next_ > 0) {
      --fail_next_;
      return Status::aborted("injected: a concurrent writer won");
    }
    for (const auto& op : ops) {
      auto it = data_.find(op.key);
      int64_t have = it == data_.end() ? 0 : it->second.revision;
      if (!internal::compareHolds(op.expected_revision, have))
        return internal::compareFailed(op, have);
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
  mutable std::mutex mu_;
  std::map<std::string, KeyValue> data_;
  int64_t revision_ = 0;
  int fail_next_ = 0;
  int commits_ = 0;
};

}  // namespace edge::backend::testing
