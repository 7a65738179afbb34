// SQLite files that belong to one program (the node's desired-state store, the backend's
// store): one way to open them, prepared statements, and write transactions.
//
// Db::open() creates the file for its owner only (0600; SQLite's -wal and -shm copy the
// mode) and refuses, leaving every byte of it untouched, a file that is not SQLite, one
// that another program's application_id (or any schema without ours) marks, and one a
// newer build wrote (user_version above FileSpec::schema_version). It then turns on WAL
// (readers never wait for a commit) and synchronous=FULL (a commit that returned
// survives a power cut), and creates the schema in an empty file under the write lock.
//
// Errors: messages start with FileSpec::what and the path. A lock held by another
// process for longer than the busy timeout (FileSpec, 5 s) is kUnavailable; any other SQLite
// failure is kInternal; refusing a file is kFailedPrecondition.
//
// Thread-safety: none. A Db and its statements are used by one thread at a time (the
// stores hold a mutex around every use); the connection is opened without SQLite's own.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "common/status.h"

struct sqlite3_stmt;

namespace edge::sqlite {

// What a store file is, for checking it and for messages.
struct FileSpec {
  std::string what;     // starts every message: "state store"
  std::string kind;     // what a refused file is not: "an Edgecloud state store"
  std::string program;  // that writes it, for a newer schema: "edged"
  std::string example;  // a file to give when the path is a directory: "<data-dir>/state.db"
  int32_t application_id = 0;
  int schema_version = 1;
  std::string schema;   // creates the tables of an empty file
  std::string pragmas;  // run on every open after the journal settings, e.g. foreign keys
  int dir_mode = 0755;  // for parent directories that do not exist
  // How long a statement waits for another process's lock (sqlite3 in a shell, a second
  // daemon by mistake: held briefly) before it fails.
  int busy_timeout_ms = 5000;
  std::string not_ours_hint = "choose another path";  // after "move it away or "
  std::string newer_hint;  // after "upgrade <program>", e.g. ", or move the file away"
};

class Db {
 public:
  // Opens (creating when missing) the store at `path`; see the file comment.
  // kInvalidArgument for an empty path or a directory.
  static Result<Db> open(const std::string& path, const FileSpec& spec);

  Db(Db&&) noexcept;
  Db& operator=(Db&&) noexcept;
  ~Db();

  const std::string& path() const;
  // Runs `sql` (one or more statements that return no rows).
  Status exec(const std::string& sql);
  // Rows the last INSERT, UPDATE or DELETE changed.
  int64_t changes() const;

  struct Impl;

 private:
  friend class Stmt;
  friend class Transaction;
  explicit Db(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// One prepared statement for the life of its Db (which must outlive it); each Use binds,
// steps and resets it, so no statement keeps a read snapshot open after an early return.
class Stmt {
 public:
  Stmt() = default;
  ~Stmt();
  Stmt(const Stmt&) = delete;
  Stmt& operator=(const Stmt&) = delete;

  Status prepare(Db& db, const char* sql);

  class Use {
   public:
    explicit Use(Stmt& s) : s_(s) {}
    ~Use();  // resets the statement and clears its bindings
    Use(const Use&) = delete;
    Use& operator=(const Use&) = delete;

    // Parameters count from 1. A failed bind is reported by the next step().
    Use& bind(int index, int64_t v);
    Use& bind(int index, std::string_view text);  // as TEXT
    // As a BLOB, so it compares byte by byte (an empty one is a blob, not NULL).
    Use& blob(int index, std::string_view bytes);

    // true: a row is ready; false: done.
    Result<bool> step();
    // Runs a statement that returns no rows.
    Status run();

    // Columns count from 0.
    bool isNull(int col) const;
    int64_t int64(int col) const;
    std::string text(int col) const;
    std::string bytes(int col) const;

   private:
    Stmt& s_;
    int bind_rc_ = 0;  // SQLITE_OK
  };

 private:
  friend struct Db::Impl;
  Status prepareOn(Db::Impl* db, const char* sql);

  Db::Impl* db_ = nullptr;
  sqlite3_stmt* stmt_ = nullptr;
};

// A write transaction: BEGIN IMMEDIATE takes the write lock up front, so the reads and
// writes inside see one state and never fail half-way because another writer came in.
// Rolls back on destruction unless committed.
class Transaction {
 public:
  explicit Transaction(Db& db) : db_(db) {}
  ~Transaction();
  Transaction(const Transaction&) = delete;
  Transaction& operator=(const Transaction&) = delete;

  Status begin();
  Status commit();

 private:
  Db& db_;
  bool open_ = false;
};

}  // namespace edge::sqlite
