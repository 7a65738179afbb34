// What SqliteStore and EtcdStore share: argument checks, compare semantics and the
// messages a caller sees, so both implementations refuse and abort alike. Not for
// services (they see only store.h).
//
// Thread-safety: pure functions.
// Errors: kInvalidArgument (validate*), kAborted (compareFailed).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "backend/store.h"

namespace edge::backend::internal {

// A key for messages: printable ASCII as is, other bytes as \xNN, quoted, long keys cut.
std::string quoteKey(std::string_view key);

// An empty key or one over Store::kMaxKeyBytes; `what` names it ("key", "prefix").
Status validateKey(std::string_view key, std::string_view what);

// Everything commit() refuses before touching the store: too many ops, bad keys or
// values, a key given twice, a revision below kAny, a check without a revision.
Status validateOps(const std::vector<StoreOp>& ops);

// A prefix or start_after over Store::kMaxKeyBytes (both may be empty).
Status validateList(std::string_view prefix, std::string_view start_after);

// The smallest key above every key that starts with `prefix`; empty when there is none
// (an empty prefix, or one of 0xff bytes only): the range then has no upper end.
std::string prefixEnd(std::string_view prefix);

// The lowest key a list may return: `prefix`, or just above `start_after` when that is
// higher.
std::string listStart(std::string_view prefix, std::string_view start_after);

// Whether a key now at `actual` (0 = absent) meets `expected` (kAny, 0 or N).
inline bool compareHolds(int64_t expected, int64_t actual) {
  return expected == StoreOp::kAny || expected == actual;
}

// kAborted naming the key, what was expected and what was found.
Status compareFailed(const StoreOp& op, int64_t actual);

}  // namespace edge::backend::internal
