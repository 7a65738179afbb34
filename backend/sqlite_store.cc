#include "backend/sqlite_store.h"

#include <fcntl.h>
#include <sqlite3.h>
#include <unistd.h>

#include <cerrno>
#include <filesystem>
#include <mutex>
#include <utility>

#include "backend/store_internal.h"
#include "common/fs.h"
#include "common/log.h"

namespace edge::backend {

namespace {

// "EdgB": a backend store. The node's state.db is "EdgS", so neither opens the other.
constexpr int32_t kApplicationId = 0x45646742;
// Bump with a migration when the schema changes.
constexpr int kSchemaVersion = 1;
// Another process (sqlite3 in a shell, a second backend by mistake) holds locks briefly.
constexpr int kBusyTimeoutMs = 5000;

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

struct DbCloser {
  void operator()(sqlite3* db) const { sqlite3_close_v2(db); }
};
using DbPtr = std::unique_ptr<sqlite3, DbCloser>;

std::string dbError(sqlite3* db) {
  return std::string(sqlite3_errmsg(db)) + " (sqlite code " +
         std::to_string(sqlite3_extended_errcode(db)) + ")";
}

// A lock held too long by another process is worth a retry; anything else is not.
Status dbStatus(sqlite3* db, const std::string& where) {
  int code = sqlite3_errcode(db);
  std::string msg = "backend store " + where + ": " + dbError(db);
  if (code == SQLITE_BUSY || code == SQLITE_LOCKED) {
    return Status::unavailable(msg + "; another process holds the file's lock");
  }
  return Status::internal(msg);
}

// One prepared statement for the life of the store; each Use binds, steps and resets
// it, so no statement keeps a read snapshot open after an early return.
class Stmt {
 public:
  Stmt() = default;
  Stmt(const Stmt&) = delete;
  Stmt& operator=(const Stmt&) = delete;
  ~Stmt() { sqlite3_finalize(stmt_); }

  Status prepare(sqlite3* db, const char* sql, const std::string& where) {
    db_ = db;
    where_ = &where;
    if (sqlite3_prepare_v3(db, sql, -1, SQLITE_PREPARE_PERSISTENT, &stmt_, nullptr) != SQLITE_OK) {
      return Status::internal("backend store " + where + ": cannot prepare \"" + sql +
                              "\": " + dbError(db));
    }
    return Status::ok();
  }

  class Use {
   public:
    explicit Use(Stmt& s) : s_(s) {}
    ~Use() {
      sqlite3_reset(s_.stmt_);
      sqlite3_clear_bindings(s_.stmt_);
    }
    Use(const Use&) = delete;
    Use& operator=(const Use&) = delete;

    Use& bind(int index, int64_t v) {
      if (rc_ == SQLITE_OK) rc_ = sqlite3_bind_int64(s_.stmt_, index, v);
      return *this;
    }
    // Keys and values are blobs, so they compare byte by byte; a zero-length blob needs
    // a non-null pointer or SQLite binds NULL.
    Use& blob(int index, std::string_view v) {
      if (rc_ == SQLITE_OK) {
        rc_ = sqlite3_bind_blob64(s_.stmt_, index, v.empty() ? "" : v.data(), v.size(),
                                  SQLITE_TRANSIENT);
      }
      return *this;
    }
    // true: a row is ready; false: done.
    Result<bool> step() {
      if (rc_ != SQLITE_OK) return dbStatus(s_.db_, *s_.where_);
      int rc = sqlite3_step(s_.stmt_);
      if (rc == SQLITE_ROW) return true;
      if (rc == SQLITE_DONE) return false;
      return dbStatus(s_.db_, *s_.where_);
    }
    Status run() {
      auto r = step();
      return r.isOk() ? Status::ok() : r.status();
    }
    int64_t int64(int col) const { return sqlite3_column_int64(s_.stmt_, col); }
    std::string bytes(int col) const {
      const void* p = sqlite3_column_blob(s_.stmt_, col);
      int n = sqlite3_column_bytes(s_.stmt_, col);
      return p == nullptr ? std::string() : std::string(static_cast<const char*>(p), n);
    }

   private:
    Stmt& s_;
    int rc_ = SQLITE_OK;
  };

 private:
  sqlite3* db_ = nullptr;
  const std::string* where_ = nullptr;
  sqlite3_stmt* stmt_ = nullptr;
};

Status exec(sqlite3* db, const std::string& sql, const std::string& where) {
  char* err = nullptr;
  if (sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &err) != SQLITE_OK) {
    std::string msg = err != nullptr ? err : dbError(db);
    sqlite3_free(err);
    return Status::internal("backend store " + where + ": " + msg);
  }
  return Status::ok();
}

Result<int64_t> queryInt(sqlite3* db, const char* sql, const std::string& where) {
  Stmt s;
  RETURN_IF_ERROR(s.prepare(db, sql, where));
  Stmt::Use u(s);
  ASSIGN_OR_RETURN(bool row, u.step());
  return row ? u.int64(0) : 0;
}

// Decides whether `path` holds a store we may use and creates the schema in an empty
// file. Reads only, until it is sure the file is ours or empty.
Status checkAndCreate(sqlite3* db, const std::string& path) {
  auto app_id = queryInt(db, "PRAGMA application_id", path);
  if (!app_id.isOk()) {
    if (sqlite3_errcode(db) != SQLITE_NOTADB) return app_id.status();
    return Status::failedPrecondition(path +
                                      " is not an SQLite database, so not an edge-backend store; "
                                      "it was left untouched: move it away or choose another path");
  }
  ASSIGN_OR_RETURN(int64_t version, queryInt(db, "PRAGMA user_version", path));
  ASSIGN_OR_RETURN(int64_t objects, queryInt(db, "SELECT COUNT(*) FROM sqlite_schema", path));
  bool empty = *app_id == 0 && version == 0 && objects == 0;
  if (!empty && *app_id != kApplicationId) {
    return Status::failedPrecondition(
        path + " is an SQLite database of another program (application_id " +
        std::to_string(*app_id) + ", " + std::to_string(objects) +
        " schema objects), not an edge-backend store; it was left untouched");
  }
  if (version > kSchemaVersion) {
    return Status::failedPrecondition(path + " was written by a newer edge-backend (store schema " +
                                      std::to_string(version) + "; this build knows up to " +
                                      std::to_string(kSchemaVersion) + "); upgrade edge-backend");
  }
  // WAL: reads never wait for a commit. FULL: a commit that returned survives a power
  // cut; accounts and signing keys must.
  {
    Stmt s;
    RETURN_IF_ERROR(s.prepare(db, "PRAGMA journal_mode = WAL", path));
    Stmt::Use u(s);
    ASSIGN_OR_RETURN(bool row, u.step());
    std::string mode = row ? u.bytes(0) : std::string();
    if (mode != "wal") {
      LOG_WARN("backend store cannot use WAL; falling back")
          .kv("path", path)
          .kv("journal_mode", mode);
    }
  }
  RETURN_IF_ERROR(exec(db, "PRAGMA synchronous = FULL", path));
  if (!empty) return Status::ok();
  RETURN_IF_ERROR(exec(db, "BEGIN IMMEDIATE", path));
  // Another process may have created the schema between our check and the lock.
  auto again = queryInt(db, "SELECT COUNT(*) FROM sqlite_schema", path);
  Status st = again.isOk() ? Status::ok() : again.status();
  if (st.isOk() && *again == 0) {
    st = exec(db,
              std::string(kSchema) + "PRAGMA application_id = " + std::to_string(kApplicationId) +
                  "; PRAGMA user_version = " + std::to_string(kSchemaVersion) + ";",
              path);
  }
  if (!st.isOk()) {
    (void)exec(db, "ROLLBACK", path);
    return st;
  }
  return exec(db, "COMMIT", path);
}

}  // namespace

struct SqliteStore::Impl {
  explicit Impl(std::string path) : path(std::move(path)) {}

  const std::string path;
  std::mutex mu;
  DbPtr db;  // declared before the statements: they are finalised first
  Stmt begin, commit, rollback, get, get_revision, list_bounded, list_open, put, remove,
      select_revision, set_revision;

  Status prepareAll() {
    std::pair<Stmt*, const char*> all[] = {
        {&begin, "BEGIN IMMEDIATE"},
        {&commit, "COMMIT"},
        {&rollback, "ROLLBACK"},
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
    for (auto& [stmt, sql] : all) RETURN_IF_ERROR(stmt->prepare(db.get(), sql, path));
    return Status::ok();
  }

  // Read from the file each time rather than cached: another process may have written.
  Result<int64_t> storeRevision() {
    Stmt::Use u(select_revision);
    ASSIGN_OR_RETURN(bool row, u.step());
    if (!row) return Status::internal("backend store " + path + " has lost its revision row");
    return u.int64(0);
  }

  Result<int64_t> keyRevision(std::string_view key) {
    Stmt::Use u(get_revision);
    ASSIGN_OR_RETURN(bool row, u.blob(1, key).step());
    return row ? u.int64(0) : 0;
  }

  // BEGIN IMMEDIATE takes the write lock up front, so the compares and the writes see
  // one state and no other writer slips in between. Rolls back unless committed.
  class Txn {
   public:
    explicit Txn(Impl& impl) : impl_(impl) {}
    ~Txn() {
      if (open_) (void)Stmt::Use(impl_.rollback).run();
    }
    Txn(const Txn&) = delete;
    Txn& operator=(const Txn&) = delete;
    Status begin() {
      RETURN_IF_ERROR(Stmt::Use(impl_.begin).run());
      open_ = true;
      return Status::ok();
    }
    Status commit() {
      RETURN_IF_ERROR(Stmt::Use(impl_.commit).run());
      open_ = false;
      return Status::ok();
    }

   private:
    Impl& impl_;
    bool open_ = false;
  };
};

SqliteStore::SqliteStore(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
SqliteStore::~SqliteStore() = default;

Result<std::unique_ptr<SqliteStore>> SqliteStore::open(const std::string& path) {
  if (path.empty()) return Status::invalidArgument("backend store path is empty");
  if (fs::isDirectory(path)) {
    return Status::invalidArgument("backend store path " + path +
                                   " is a directory; give a file such as <dir>/backend.db");
  }
  std::string parent = std::filesystem::path(path).parent_path().string();
  if (!parent.empty()) RETURN_IF_ERROR(fs::makeDirs(parent, 0700));
  // The store holds password hashes and signing keys: the file (and SQLite's -wal/-shm,
  // which copy its mode) is for its owner only.
  int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) return Status::fromErrno(errno, "backend store: open " + path);
  ::close(fd);

  sqlite3* raw = nullptr;
  int rc =
      sqlite3_open_v2(path.c_str(), &raw, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, nullptr);
  DbPtr db(raw);
  if (rc != SQLITE_OK) {
    return Status::internal("backend store: cannot open " + path + ": " +
                            (raw != nullptr ? dbError(raw) : sqlite3_errstr(rc)));
  }
  sqlite3_extended_result_codes(db.get(), 1);
  sqlite3_busy_timeout(db.get(), kBusyTimeoutMs);
  RETURN_IF_ERROR(checkAndCreate(db.get(), path));

  auto impl = std::make_unique<Impl>(path);
  impl->db = std::move(db);
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
  Impl::Txn txn(*impl_);
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
      changed = changed || sqlite3_changes(impl_->db.get()) > 0;
    }
  }
  if (!changed) return current;  // the Txn rolls back nothing
  RETURN_IF_ERROR(Stmt::Use(impl_->set_revision).bind(1, next).run());
  RETURN_IF_ERROR(txn.commit());
  return next;
}

Result<int64_t> SqliteStore::revision() {
  std::lock_guard<std::mutex> lock(impl_->mu);
  return impl_->storeRevision();
}

std::string SqliteStore::describe() const {
  return "sqlite:" + impl_->path;
}

}  // namespace edge::backend
