#include "backend/sqlite_store.h"

#include <mutex>
#include <utility>

#include "backend/store_internal.h"
#include "common/sqlite.h"

namespace edge::backend {

namespace {

using sqlite::Stmt;

// "EdgB": a backend store. The node's state.db is "EdgS", so neither opens the other.
constexpr int32_t kApplicationId = 0x45646742;
// Bump with a migration when the schema changes.
constexpr int kSchemaVersion = 1;

// WITHOUT ROWID: the primary key index is the table, so a prefix list is one range scan
// of it with values in place.
constexpr const char* kSchema = R"sql(
CREATE TABLE kv (
  key BLOB NOT NULL PRIMARY KEY,
  value BLOB NOT NULL,
  revision INTEGER NOT NULL CHECK (revision > 0)
) WITHOUT ROWID;
CREATE TABLE meta (
  id INTEGER PRIMARY KEY CHECK (id = 1),
  revision INTEGER NOT NULL CHECK (revision >= 0)
);
INSERT INTO meta (id, revision) VALUES (1, 0);
)sql";

sqlite::FileSpec fileSpec() {
  sqlite::FileSpec spec;
  spec.what = "backend store";
  spec.kind = "an edge-backend store";
  spec.program = "edge-backend";
  spec.example = "<dir>/backend.db";
  spec.application_id = kApplicationId;
  spec.schema_version = kSchemaVersion;
  spec.schema = kSchema;
  // The store holds password hashes and signing keys: its directory is for its owner.
  spec.dir_mode = 0700;
  return spec;
}

}  // namespace

struct SqliteStore::Impl {
  explicit Impl(sqlite::Db db) : db(std::move(db)) {}

  std::mutex mu;
  sqlite::Db db;  // declared before the statements: they are finalised first
  Stmt get, get_revision, list_bounded, list_open, put, remove, select_revision, set_revision;

  Status prepareAll() {
    std::pair<Stmt*, const char*> all[] = {
        {&get, "SELECT value, revision FROM kv WHERE key = ?1"},
        {&get_revision, "SELECT revision FROM kv WHERE key = ?1"},
        // Range scans of the primary key: no LIKE (it would scan, and treats % and _ in
        // keys as patterns).
        {&list_bounded,
         "SELECT key, value, revision FROM kv WHERE key >= ?1 AND key < ?2 ORDER BY key "
         "LIMIT ?3"},
        {&list_open, "SELECT key, value, revision FROM kv WHERE key >= ?1 ORDER BY key LIMIT ?2"},
        {&put,
         "INSERT INTO kv (key, value, revision) VALUES (?1, ?2, ?3) ON CONFLICT (key) DO "
         "UPDATE SET value = excluded.value, revision = excluded.revision"},
        {&remove, "DELETE FROM kv WHERE key = ?1"},
        {&select_revision, "SELECT revision FROM meta WHERE id = 1"},
        {&set_revision, "UPDATE meta SET revision = ?1 WHERE id = 1"},
    };
    for (auto& [stmt, sql] : all) RETURN_IF_ERROR(stmt->prepare(db, sql));
    return Status::ok();
  }

  // Read from the file each time rather than cached: another process may have written.
  Result<int64_t> storeRevision() {
    Stmt::Use u(select_revision);
    ASSIGN_OR_RETURN(bool row, u.step());
    if (!row) return Status::internal("backend store " + db.path() + " has lost its revision row");
    return u.int64(0);
  }

  Result<int64_t> keyRevision(std::string_view key) {
    Stmt::Use u(get_revision);
    ASSIGN_OR_RETURN(bool row, u.blob(1, key).step());
    return row ? u.int64(0) : 0;
  }
};

SqliteStore::SqliteStore(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
SqliteStore::~SqliteStore() = default;

Result<std::unique_ptr<SqliteStore>> SqliteStore::open(const std::string& path) {
  ASSIGN_OR_RETURN(sqlite::Db db, sqlite::Db::open(path, fileSpec()));
  auto impl = std::make_unique<Impl>(std::move(db));
  RETURN_IF_ERROR(impl->prepareAll());
  RETURN_IF_ERROR(impl->storeRevision().status());
  return std::unique_ptr<SqliteStore>(new SqliteStore(std::move(impl)));
}

Result<KeyValue> SqliteStore::get(std::string_view key) {
  RETURN_IF_ERROR(internal::validateKey(key, "key"));
  std::lock_guard<std::mutex> lock(impl_->mu);
  Stmt::Use u(impl_->get);
  ASSIGN_OR_RETURN(bool row, u.blob(1, key).step());
  if (!row) return Status::notFound("key " + internal::quoteKey(key) + " does not exist");
  return KeyValue{std::string(key), u.bytes(0), u.int64(1)};
}

Result<std::vector<KeyValue>> SqliteStore::list(std::string_view prefix, size_t limit,
                                                std::string_view start_after) {
  RETURN_IF_ERROR(internal::validateList(prefix, start_after));
  std::string from = internal::listStart(prefix, start_after);
  std::string end = internal::prefixEnd(prefix);
  // SQLite's LIMIT -1 is "no limit".
  int64_t n = limit == 0 ? -1 : static_cast<int64_t>(limit);
  std::vector<KeyValue> out;
  std::lock_guard<std::mutex> lock(impl_->mu);
  Stmt& stmt = end.empty() ? impl_->list_open : impl_->list_bounded;
  Stmt::Use u(stmt);
  if (end.empty()) {
    u.blob(1, from).bind(2, n);
  } else {
    u.blob(1, from).blob(2, end).bind(3, n);
  }
  while (true) {
    ASSIGN_OR_RETURN(bool row, u.step());
    if (!row) break;
    out.push_back(KeyValue{u.bytes(0), u.bytes(1), u.int64(2)});
  }
  return out;
}

Result<int64_t> SqliteStore::commit(const std::vector<StoreOp>& ops) {
  RETURN_IF_ERROR(internal::validateOps(ops));
  std::lock_guard<std::mutex> lock(impl_->mu);
  sqlite::Transaction txn(impl_->db);
  RETURN_IF_ERROR(txn.begin());
  for (const StoreOp& op : ops) {
    if (op.expected_revision == StoreOp::kAny) continue;
    ASSIGN_OR_RETURN(int64_t actual, impl_->keyRevision(op.key));
    if (!internal::compareHolds(op.expected_revision, actual)) {
      return internal::compareFailed(op, actual);
    }
  }
  ASSIGN_OR_RETURN(int64_t current, impl_->storeRevision());
  const int64_t next = current + 1;
  bool changed = false;
  for (const StoreOp& op : ops) {
    if (op.kind == StoreOp::Kind::kPut) {
      RETURN_IF_ERROR(Stmt::Use(impl_->put).blob(1, op.key).blob(2, op.value).bind(3, next).run());
      changed = true;
    } else if (op.kind == StoreOp::Kind::kDelete) {
      RETURN_IF_ERROR(Stmt::Use(impl_->remove).blob(1, op.key).run());
      changed = changed || impl_->db.changes() > 0;
    }
  }
  if (!changed) return current;  // the Transaction rolls back nothing
  RETURN_IF_ERROR(Stmt::Use(impl_->set_revision).bind(1, next).run());
  RETURN_IF_ERROR(txn.commit());
  return next;
}

Result<int64_t> SqliteStore::revision() {
  std::lock_guard<std::mutex> lock(impl_->mu);
  return impl_->storeRevision();
}

std::string SqliteStore::describe() const {
  return "sqlite:" + impl_->db.path();
}

}  // namespace edge::backend
