// SqliteStore: the Store in one SQLite file, for a backend that runs as one replica (the
// default: nothing to set up). WAL and synchronous=FULL, so a commit that returned has
// reached the disk and readers never wait for a writer.
//
// The file holds one table kv(key BLOB PRIMARY KEY, value BLOB, revision INTEGER) and a
// meta row with the store revision; SQLite's application_id marks the file as ours, so a
// file of another program (or a node's state.db) is refused and left untouched.
//
// Thread-safety: every method may be called from any thread at once (one connection
// behind a mutex). Other processes may open the same file; they are serialised by
// SQLite's locks.
//
// Errors: as Store, plus, from open(): kFailedPrecondition for a file that is not a
// backend store or was written by a newer schema; kInvalidArgument for an empty path or a
// directory. kUnavailable when another process holds the file's write lock too long.
#pragma once

#include <memory>
#include <string>

#include "backend/store.h"

namespace edge::backend {

class SqliteStore final : public Store {
 public:
  // Opens (creating it and its directory when missing, mode 0600: the store holds
  // secrets) the store at `path`.
  static Result<std::unique_ptr<SqliteStore>> open(const std::string& path);
  ~SqliteStore() override;

  Result<KeyValue> get(std::string_view key) override;
  Result<std::vector<KeyValue>> list(std::string_view prefix, size_t limit = 0,
                                     std::string_view start_after = {}) override;
  Result<int64_t> commit(const std::vector<StoreOp>& ops) override;
  Result<int64_t> revision() override;
  std::string describe() const override;

 private:
  struct Impl;
  explicit SqliteStore(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace edge::backend
