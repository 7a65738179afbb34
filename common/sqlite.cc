#include "common/sqlite.h"

#include <fcntl.h>
#include <sqlite3.h>
#include <unistd.h>

#include <cerrno>
#include <filesystem>
#include <utility>

#include "common/fs.h"
#include "common/log.h"

namespace edge::sqlite {

namespace {

struct DbCloser {
  void operator()(sqlite3* db) const { sqlite3_close_v2(db); }
};

std::string dbError(sqlite3* db) {
  return std::string(sqlite3_errmsg(db)) + " (sqlite code " +
         std::to_string(sqlite3_extended_errcode(db)) + ")";
}

}  // namespace

struct Db::Impl {
  Impl(std::string path, std::string what) : path(std::move(path)), prefix(std::move(what)) {
    prefix += " " + this->path;
  }

  // A failure with result `code` (extended or not). A lock held too long by another
  // process is worth a retry; anything else is not.
  Status failure(int code, const std::string& what) const {
    std::string msg = prefix + ": " + what;
    if ((code & 0xff) == SQLITE_BUSY || (code & 0xff) == SQLITE_LOCKED) {
      return Status::unavailable(msg + "; another process holds the file's lock");
    }
    return Status::internal(msg);
  }

  // The connection's last failure.
  Status error(std::string_view doing = {}) const {
    std::string what = doing.empty() ? std::string() : std::string(doing) + ": ";
    return failure(sqlite3_errcode(handle.get()), what + dbError(handle.get()));
  }

  Status exec(const std::string& sql) {
    char* err = nullptr;
    int rc = sqlite3_exec(handle.get(), sql.c_str(), nullptr, nullptr, &err);
    if (rc == SQLITE_OK) return Status::ok();
    std::string msg = err != nullptr ? err : dbError(handle.get());
    sqlite3_free(err);
    return failure(rc, msg);
  }

  // The first column of the first row (0 when there is none).
  Result<int64_t> queryInt(const char* sql) {
    Stmt s;
    RETURN_IF_ERROR(s.prepareOn(this, sql));
    Stmt::Use u(s);
    ASSIGN_OR_RETURN(bool row, u.step());
    return row ? u.int64(0) : 0;
  }

  Status checkAndCreate(const FileSpec& spec);

  const std::string path;
  std::string prefix;  // "<what> <path>"
  // Declared before the statements, which are finalised first.
  std::unique_ptr<sqlite3, DbCloser> handle;
  Stmt begin, commit, rollback;
};

// Reads only, until it is sure the file is ours or empty.
Status Db::Impl::checkAndCreate(const FileSpec& spec) {
  sqlite3* db = handle.get();
  auto app_id = queryInt("PRAGMA application_id");
  if (!app_id.isOk()) {
    if (sqlite3_errcode(db) != SQLITE_NOTADB) return app_id.status();
    return Status::failedPrecondition(path + " is not " + spec.kind + ": not an SQLite database (" +
                                      dbError(db) + "); it was left untouched: move it away or " +
                                      spec.not_ours_hint);
  }
  ASSIGN_OR_RETURN(int64_t version, queryInt("PRAGMA user_version"));
  ASSIGN_OR_RETURN(int64_t objects, queryInt("SELECT COUNT(*) FROM sqlite_schema"));
  bool empty = *app_id == 0 && version == 0 && objects == 0;
  if (!empty && *app_id != spec.application_id) {
    return Status::failedPrecondition(
        path + " is an SQLite database of another program (application_id " +
        std::to_string(*app_id) + ", " + std::to_string(objects) + " schema objects), not " +
        spec.kind + "; it was left untouched");
  }
  if (version > spec.schema_version) {
    return Status::failedPrecondition(
        path + " was written by a newer " + spec.program + " (store schema " +
        std::to_string(version) + "; this build knows up to " +
        std::to_string(spec.schema_version) + "); upgrade " + spec.program + spec.newer_hint);
  }
  {
    Stmt s;
    RETURN_IF_ERROR(s.prepareOn(this, "PRAGMA journal_mode = WAL"));
    Stmt::Use u(s);
    ASSIGN_OR_RETURN(bool row, u.step());
    std::string mode = row ? u.text(0) : std::string();
    if (mode != "wal") {
      LOG_WARN(spec.what + " cannot use WAL; falling back")
          .kv("path", path)
          .kv("journal_mode", mode);
    }
  }
  RETURN_IF_ERROR(exec("PRAGMA synchronous = FULL"));
  if (!spec.pragmas.empty()) RETURN_IF_ERROR(exec(spec.pragmas));
  // Every schema so far is version 1: a file that is not empty needs no migration.
  if (!empty) return Status::ok();
  RETURN_IF_ERROR(exec("BEGIN IMMEDIATE"));
  // Another process may have created the schema between our check and the lock.
  auto again = queryInt("SELECT COUNT(*) FROM sqlite_schema");
  Status st = again.isOk() ? Status::ok() : again.status();
  if (st.isOk() && *again == 0) {
    st = exec(spec.schema + "\nPRAGMA application_id = " + std::to_string(spec.application_id) +
              "; PRAGMA user_version = " + std::to_string(spec.schema_version) + ";");
  }
  if (!st.isOk()) {
    (void)exec("ROLLBACK");
    return st;
  }
  return exec("COMMIT");
}

Db::Db(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Db::Db(Db&&) noexcept = default;
Db& Db::operator=(Db&&) noexcept = default;
Db::~Db() = default;

const std::string& Db::path() const {
  return impl_->path;
}

Status Db::exec(const std::string& sql) {
  return impl_->exec(sql);
}

int64_t Db::changes() const {
  return sqlite3_changes64(impl_->handle.get());
}

Result<Db> Db::open(const std::string& path, const FileSpec& spec) {
  if (path.empty()) return Status::invalidArgument(spec.what + " path is empty");
  if (fs::isDirectory(path)) {
    return Status::invalidArgument(spec.what + " path " + path +
                                   " is a directory; give a file such as " + spec.example);
  }
  std::string parent = std::filesystem::path(path).parent_path().string();
  if (!parent.empty()) RETURN_IF_ERROR(fs::makeDirs(parent, spec.dir_mode));
  int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) return Status::fromErrno(errno, spec.what + ": open " + path);
  ::close(fd);

  auto impl = std::make_unique<Impl>(path, spec.what);
  sqlite3* raw = nullptr;
  int rc =
      sqlite3_open_v2(path.c_str(), &raw, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, nullptr);
  impl->handle.reset(raw);
  if (rc != SQLITE_OK) {
    return Status::internal(spec.what + ": cannot open " + path + ": " +
                            (raw != nullptr ? dbError(raw) : sqlite3_errstr(rc)));
  }
  sqlite3_extended_result_codes(raw, 1);
  sqlite3_busy_timeout(raw, spec.busy_timeout_ms);
  RETURN_IF_ERROR(impl->checkAndCreate(spec));
  Db db(std::move(impl));
  RETURN_IF_ERROR(db.impl_->begin.prepare(db, "BEGIN IMMEDIATE"));
  RETURN_IF_ERROR(db.impl_->commit.prepare(db, "COMMIT"));
  RETURN_IF_ERROR(db.impl_->rollback.prepare(db, "ROLLBACK"));
  return db;
}

Stmt::~Stmt() {
  sqlite3_finalize(stmt_);
}

Status Stmt::prepare(Db& db, const char* sql) {
  return prepareOn(db.impl_.get(), sql);
}

Status Stmt::prepareOn(Db::Impl* db, const char* sql) {
  db_ = db;
  if (sqlite3_prepare_v3(db_->handle.get(), sql, -1, SQLITE_PREPARE_PERSISTENT, &stmt_, nullptr) !=
      SQLITE_OK) {
    return db_->error(std::string("cannot prepare \"") + sql + "\"");
  }
  return Status::ok();
}

Stmt::Use::~Use() {
  sqlite3_reset(s_.stmt_);
  sqlite3_clear_bindings(s_.stmt_);
}

Stmt::Use& Stmt::Use::bind(int index, int64_t v) {
  if (bind_rc_ == SQLITE_OK) bind_rc_ = sqlite3_bind_int64(s_.stmt_, index, v);
  return *this;
}

Stmt::Use& Stmt::Use::bind(int index, std::string_view text) {
  if (bind_rc_ == SQLITE_OK) {
    bind_rc_ = sqlite3_bind_text64(s_.stmt_, index, text.empty() ? "" : text.data(), text.size(),
                                   SQLITE_TRANSIENT, SQLITE_UTF8);
  }
  return *this;
}

Stmt::Use& Stmt::Use::blob(int index, std::string_view bytes) {
  if (bind_rc_ == SQLITE_OK) {
    bind_rc_ = sqlite3_bind_blob64(s_.stmt_, index, bytes.empty() ? "" : bytes.data(), bytes.size(),
                                   SQLITE_TRANSIENT);
  }
  return *this;
}

Result<bool> Stmt::Use::step() {
  if (bind_rc_ != SQLITE_OK) return s_.db_->error("bind");
  int rc = sqlite3_step(s_.stmt_);
  if (rc == SQLITE_ROW) return true;
  if (rc == SQLITE_DONE) return false;
  return s_.db_->error();
}

Status Stmt::Use::run() {
  auto r = step();
  return r.isOk() ? Status::ok() : r.status();
}

bool Stmt::Use::isNull(int col) const {
  return sqlite3_column_type(s_.stmt_, col) == SQLITE_NULL;
}

int64_t Stmt::Use::int64(int col) const {
  return sqlite3_column_int64(s_.stmt_, col);
}

std::string Stmt::Use::text(int col) const {
  const auto* p = sqlite3_column_text(s_.stmt_, col);
  int n = sqlite3_column_bytes(s_.stmt_, col);
  return p == nullptr ? std::string() : std::string(reinterpret_cast<const char*>(p), n);
}

std::string Stmt::Use::bytes(int col) const {
  const void* p = sqlite3_column_blob(s_.stmt_, col);
  int n = sqlite3_column_bytes(s_.stmt_, col);
  return p == nullptr ? std::string() : std::string(static_cast<const char*>(p), n);
}

Transaction::~Transaction() {
  if (open_) (void)Stmt::Use(db_.impl_->rollback).run();
}

Status Transaction::begin() {
  RETURN_IF_ERROR(Stmt::Use(db_.impl_->begin).run());
  open_ = true;
  return Status::ok();
}

Status Transaction::commit() {
  RETURN_IF_ERROR(Stmt::Use(db_.impl_->commit).run());
  open_ = false;
  return Status::ok();
}

}  // namespace edge::sqlite
