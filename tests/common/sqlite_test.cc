#include "common/sqlite.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/stat.h>

#include <string>

#include "common/fs.h"

namespace edge::sqlite {
namespace {

using ::testing::HasSubstr;

constexpr int32_t kAppId = 0x45646754;  // "EdgT"

FileSpec spec() {
  FileSpec s;
  s.what = "test store";
  s.kind = "a test store";
  s.program = "sqlite_test";
  s.example = "<dir>/test.db";
  s.application_id = kAppId;
  s.schema_version = 2;
  s.schema = "CREATE TABLE t (k TEXT PRIMARY KEY, v BLOB, n INTEGER);";
  s.pragmas = "PRAGMA foreign_keys = ON";
  s.dir_mode = 0700;
  return s;
}

class SqliteTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/edge-sqlite-test-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override { (void)fs::removeAll(dir_); }

  static int64_t queryInt(Db& db, const char* sql) {
    Stmt s;
    EXPECT_TRUE(s.prepare(db, sql).isOk()) << sql;
    Stmt::Use u(s);
    auto row = u.step();
    EXPECT_TRUE(row.isOk() && *row) << sql;
    return u.int64(0);
  }

  // Makes a store at `path` as `writer` would, and closes it.
  static void create(const std::string& path, const FileSpec& writer) {
    auto db = Db::open(path, writer);
    ASSERT_TRUE(db.isOk()) << db.status().toString();
  }

  // The file is refused with kFailedPrecondition naming it and `why`, and left as it was.
  void expectRefusedUntouched(const std::string& path, const std::string& why) {
    auto before = fs::readFile(path);
    ASSERT_TRUE(before.isOk());
    auto db = Db::open(path, spec());
    ASSERT_FALSE(db.isOk());
    EXPECT_EQ(db.status().code(), StatusCode::kFailedPrecondition) << db.status().toString();
    EXPECT_THAT(db.status().message(), HasSubstr(path));
    EXPECT_THAT(db.status().message(), HasSubstr(why));
    EXPECT_EQ(*fs::readFile(path), *before);
    EXPECT_FALSE(fs::exists(path + "-wal"));
  }

  std::string dir_;
};

TEST_F(SqliteTest, CreatesTheFileForItsOwnerWithTheSchemaAndMarks) {
  std::string path = dir_ + "/a/b/test.db";
  auto db = Db::open(path, spec());
  ASSERT_TRUE(db.isOk()) << db.status().toString();
  EXPECT_EQ(db->path(), path);
  struct stat st {};
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  ASSERT_EQ(::stat((dir_ + "/a/b").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0700u);
  EXPECT_EQ(queryInt(*db, "PRAGMA application_id"), kAppId);
  EXPECT_EQ(queryInt(*db, "PRAGMA user_version"), 2);
  EXPECT_EQ(queryInt(*db, "PRAGMA foreign_keys"), 1);
  EXPECT_EQ(queryInt(*db, "PRAGMA synchronous"), 2);  // FULL
  EXPECT_EQ(queryInt(*db, "SELECT COUNT(*) FROM t"), 0);
}

TEST_F(SqliteTest, StatementsBindReadAndResetEachUse) {
  auto db = Db::open(dir_ + "/test.db", spec());
  ASSERT_TRUE(db.isOk()) << db.status().toString();
  Stmt put, get;
  ASSERT_TRUE(put.prepare(*db, "INSERT INTO t (k, v, n) VALUES (?1, ?2, ?3)").isOk());
  ASSERT_TRUE(get.prepare(*db, "SELECT v, n, typeof(v) FROM t WHERE k = ?1").isOk());
  std::string bytes("a\0b", 3);
  ASSERT_TRUE(Stmt::Use(put).bind(1, "x").blob(2, bytes).bind(3, int64_t{42}).run().isOk());
  EXPECT_EQ(db->changes(), 1);
  ASSERT_TRUE(Stmt::Use(put).bind(1, "empty").blob(2, "").run().isOk());
  {
    Stmt::Use u(get);
    ASSERT_TRUE(*u.bind(1, "x").step());
    EXPECT_EQ(u.bytes(0), bytes);
    EXPECT_EQ(u.int64(1), 42);
    EXPECT_FALSE(*u.step());
  }
  {
    // An empty blob is a blob, not NULL; an unbound parameter is NULL.
    Stmt::Use u(get);
    ASSERT_TRUE(*u.bind(1, "empty").step());
    EXPECT_EQ(u.text(2), "blob");
    EXPECT_TRUE(u.isNull(1));
  }
  // A duplicate key fails with the path and SQLite's reason, and the statement is usable
  // again afterwards.
  Status dup = Stmt::Use(put).bind(1, "x").run();
  EXPECT_EQ(dup.code(), StatusCode::kInternal);
  EXPECT_THAT(dup.message(), HasSubstr("test store " + db->path() + ": UNIQUE constraint"));
  EXPECT_TRUE(Stmt::Use(put).bind(1, "y").run().isOk());
  // A bind out of range is reported by the step, not ignored.
  Status bad = Stmt::Use(get).bind(7, int64_t{1}).run();
  EXPECT_EQ(bad.code(), StatusCode::kInternal);
  EXPECT_THAT(bad.message(), HasSubstr("bind"));
}

TEST_F(SqliteTest, TransactionRollsBackUnlessCommitted) {
  auto db = Db::open(dir_ + "/test.db", spec());
  ASSERT_TRUE(db.isOk());
  Stmt put;
  ASSERT_TRUE(put.prepare(*db, "INSERT INTO t (k) VALUES (?1)").isOk());
  {
    Transaction txn(*db);
    ASSERT_TRUE(txn.begin().isOk());
    ASSERT_TRUE(Stmt::Use(put).bind(1, "dropped").run().isOk());
  }
  EXPECT_EQ(queryInt(*db, "SELECT COUNT(*) FROM t"), 0);
  {
    Transaction txn(*db);
    ASSERT_TRUE(txn.begin().isOk());
    ASSERT_TRUE(Stmt::Use(put).bind(1, "kept").run().isOk());
    ASSERT_TRUE(txn.commit().isOk());
  }
  EXPECT_EQ(queryInt(*db, "SELECT COUNT(*) FROM t"), 1);
}

TEST_F(SqliteTest, ALockHeldPastTheBusyTimeoutIsUnavailable) {
  FileSpec quick = spec();
  quick.busy_timeout_ms = 50;
  auto a = Db::open(dir_ + "/test.db", quick);
  auto b = Db::open(dir_ + "/test.db", quick);
  ASSERT_TRUE(a.isOk() && b.isOk());
  Transaction holder(*a);
  ASSERT_TRUE(holder.begin().isOk());
  Transaction waiter(*b);
  Status s = waiter.begin();
  EXPECT_EQ(s.code(), StatusCode::kUnavailable) << s.toString();
  EXPECT_THAT(s.message(), HasSubstr("another process holds the file's lock"));
  ASSERT_TRUE(holder.commit().isOk());
  EXPECT_TRUE(waiter.begin().isOk());
}

TEST_F(SqliteTest, ReopensItsOwnFile) {
  std::string path = dir_ + "/test.db";
  {
    auto db = Db::open(path, spec());
    ASSERT_TRUE(db.isOk());
    ASSERT_TRUE(db->exec("INSERT INTO t (k) VALUES ('a')").isOk());
  }
  auto db = Db::open(path, spec());
  ASSERT_TRUE(db.isOk()) << db.status().toString();
  EXPECT_EQ(queryInt(*db, "SELECT COUNT(*) FROM t"), 1);
}

TEST_F(SqliteTest, RefusesAFileThatIsNotSqlite) {
  std::string path = dir_ + "/config.yaml";
  ASSERT_TRUE(fs::writeFileAtomic(path, std::string(4096, 'y') + "\nlisten: 0\n").isOk());
  expectRefusedUntouched(path, "is not a test store: not an SQLite database");
}

TEST_F(SqliteTest, RefusesAnotherProgramsDatabase) {
  FileSpec other = spec();
  other.application_id = 7;
  create(dir_ + "/other.db", other);
  expectRefusedUntouched(dir_ + "/other.db", "application_id 7");
}

TEST_F(SqliteTest, RefusesANewerSchema) {
  FileSpec newer = spec();
  newer.schema_version = 3;
  create(dir_ + "/test.db", newer);
  expectRefusedUntouched(dir_ + "/test.db", "written by a newer sqlite_test (store schema 3");
}

TEST_F(SqliteTest, BadPaths) {
  auto empty = Db::open("", spec());
  EXPECT_EQ(empty.status().code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(empty.status().message(), HasSubstr("test store path is empty"));
  auto dir = Db::open(dir_, spec());
  EXPECT_EQ(dir.status().code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(dir.status().message(),
              HasSubstr("is a directory; give a file such as <dir>/test.db"));
}

}  // namespace
}  // namespace edge::sqlite
