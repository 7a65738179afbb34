// What only SqliteStore and openStore do: refusing files that are not ours (and leaving
// them as they were), file permissions, and the store URLs openStore accepts.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sqlite3.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include <string>

#include "backend/sqlite_store.h"
#include "backend/store.h"
#include "common/fs.h"

namespace edge::backend {
namespace {

using ::testing::HasSubstr;

void sql(const std::string& path, const std::string& statements) {
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
  char* err = nullptr;
  int rc = sqlite3_exec(db, statements.c_str(), nullptr, nullptr, &err);
  EXPECT_EQ(rc, SQLITE_OK) << (err != nullptr ? err : "") << " in " << statements;
  sqlite3_free(err);
  sqlite3_close(db);
}

class SqliteStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/edge-sqlite-store-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override { (void)fs::removeAll(dir_); }

  // Opening must refuse the file and leave every byte of it (and no -wal) behind.
  void expectRefusedUntouched(const std::string& path, const std::string& why) {
    auto before = fs::readFile(path);
    ASSERT_TRUE(before.isOk());
    auto s = openStore("sqlite:" + path);
    EXPECT_EQ(s.status().code(), StatusCode::kFailedPrecondition) << s.status().toString();
    EXPECT_THAT(s.status().message(), HasSubstr(path));
    EXPECT_THAT(s.status().message(), HasSubstr(why));
    EXPECT_THAT(s.status().message(), HasSubstr("left untouched"));
    EXPECT_EQ(*fs::readFile(path), *before);
    EXPECT_FALSE(fs::exists(path + "-wal"));
  }

  std::string dir_;
};

TEST_F(SqliteStoreTest, CreatesTheFileAndItsDirectoryForTheOwnerOnly) {
  std::string path = dir_ + "/a/b/backend.db";
  auto s = SqliteStore::open(path);
  ASSERT_TRUE(s.isOk()) << s.status().toString();
  EXPECT_EQ((*s)->describe(), "sqlite:" + path);
  EXPECT_EQ(*(*s)->revision(), 0);
  struct stat st {};
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  ASSERT_EQ(::stat((dir_ + "/a/b").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0700u);
}

TEST_F(SqliteStoreTest, RefusesAnotherProgramsDatabase) {
  std::string path = dir_ + "/other.db";
  sql(path, "CREATE TABLE notes (body TEXT); INSERT INTO notes VALUES ('keep me');");
  expectRefusedUntouched(path, "another program");
}

TEST_F(SqliteStoreTest, RefusesANodesStateStore) {
  std::string path = dir_ + "/state.db";
  sql(path, "PRAGMA application_id = 1164207955; CREATE TABLE services (name TEXT);");
  expectRefusedUntouched(path, "application_id 1164207955");
}

TEST_F(SqliteStoreTest, RefusesAFileThatIsNotSqlite) {
  std::string path = dir_ + "/config.yaml";
  ASSERT_TRUE(fs::writeFileAtomic(path, std::string(4096, 'y') + "\nlisten: 0.0.0.0\n").isOk());
  expectRefusedUntouched(path, "not an SQLite database");
}

TEST_F(SqliteStoreTest, RefusesANewerSchema) {
  std::string path = dir_ + "/backend.db";
  { ASSERT_TRUE(SqliteStore::open(path).isOk()); }
  sql(path, "PRAGMA user_version = 99;");
  auto s = SqliteStore::open(path);
  EXPECT_EQ(s.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_THAT(s.status().message(), HasSubstr("newer"));
}

TEST_F(SqliteStoreTest, ADirectoryIsNotAStorePath) {
  auto s = openStore("sqlite:" + dir_);
  EXPECT_EQ(s.status().code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(s.status().message(), HasSubstr("is a directory"));
}

TEST_F(SqliteStoreTest, TwoHandlesOnOneFileSeeEachOthersWrites) {
  std::string path = dir_ + "/backend.db";
  auto a = SqliteStore::open(path);
  auto b = SqliteStore::open(path);
  ASSERT_TRUE(a.isOk() && b.isOk());
  auto r1 = (*a)->put("k", "from a");
  ASSERT_TRUE(r1.isOk());
  // b's compare sees a's write: the revision is read from the file, not remembered.
  EXPECT_EQ((*b)->put("k", "from b", 0).status().code(), StatusCode::kAborted);
  auto r2 = (*b)->put("k", "from b", *r1);
  ASSERT_TRUE(r2.isOk()) << r2.status().toString();
  EXPECT_EQ(*r2, *r1 + 1);
  EXPECT_EQ((*a)->get("k")->value, "from b");
}

TEST(OpenStoreTest, SqliteUrls) {
  char tmpl[] = "/tmp/edge-open-store-XXXXXX";
  ASSERT_NE(::mkdtemp(tmpl), nullptr);
  std::string dir = tmpl;
  auto plain = openStore("sqlite:" + dir + "/one.db");
  ASSERT_TRUE(plain.isOk()) << plain.status().toString();
  EXPECT_EQ((*plain)->describe(), "sqlite:" + dir + "/one.db");
  auto triple = openStore("sqlite://" + dir + "/two.db");
  ASSERT_TRUE(triple.isOk()) << triple.status().toString();
  EXPECT_EQ((*triple)->describe(), "sqlite:" + dir + "/two.db");
  (void)fs::removeAll(dir);

  auto empty = openStore("sqlite:");
  EXPECT_EQ(empty.status().code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(empty.status().message(), HasSubstr("sqlite:<path>"));
  auto host = openStore("sqlite://host/x.db");
  EXPECT_EQ(host.status().code(), StatusCode::kInvalidArgument);
}

TEST(OpenStoreTest, UnknownSchemesSayWhatIsAllowed) {
  for (const char* url : {"", "postgres://db/edge", "/var/lib/backend.db", "SQLITE:/x.db"}) {
    auto s = openStore(url);
    EXPECT_EQ(s.status().code(), StatusCode::kInvalidArgument) << url;
    EXPECT_THAT(s.status().message(), HasSubstr("sqlite:<path>")) << url;
    EXPECT_THAT(s.status().message(), HasSubstr("etcd:http://host:port")) << url;
  }
}

TEST(OpenStoreTest, MalformedEtcdUrls) {
  struct Case {
    const char* url;
    const char* says;
  } cases[] = {
      {"etcd:", "empty entry"},
      {"etcd:http://127.0.0.1:2379,", "empty entry"},
      {"etcd:https://127.0.0.1:2379", "TLS is not supported"},
      {"etcd:127.0.0.1:2379", "not an http:// URL"},
      {"etcd:unix:///run/etcd.sock", "not an http:// URL"},
      {"etcd:http://127.0.0.1", "host:port"},
      {"etcd:http://127.0.0.1:99999", "1..65535"},
      {"etcd:http://127.0.0.1:2379/v3", "1..65535"},
  };
  for (const auto& c : cases) {
    auto s = openStore(c.url);
    EXPECT_EQ(s.status().code(), StatusCode::kInvalidArgument)
        << c.url << ": " << s.status().toString();
    EXPECT_THAT(s.status().message(), HasSubstr(c.says)) << c.url;
  }
}

// A loopback port nobody listens on: bound, never listened, so connects are refused.
class ClosedPort {
 public:
  ClosedPort() {
    fd_ = fs::UniqueFd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    EXPECT_EQ(::bind(fd_.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
    socklen_t len = sizeof addr;
    EXPECT_EQ(::getsockname(fd_.get(), reinterpret_cast<sockaddr*>(&addr), &len), 0);
    port_ = ntohs(addr.sin_port);
  }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }

 private:
  fs::UniqueFd fd_;
  int port_ = 0;
};

TEST(OpenStoreTest, EtcdThatDoesNotAnswerIsUnavailableNamingEachEndpoint) {
  ClosedPort a, b;
  auto s = openStore("etcd:" + a.url() + ", " + b.url());
  EXPECT_EQ(s.status().code(), StatusCode::kUnavailable) << s.status().toString();
  EXPECT_THAT(s.status().message(), HasSubstr(a.url().substr(7)));
  EXPECT_THAT(s.status().message(), HasSubstr(b.url().substr(7)));
}

}  // namespace
}  // namespace edge::backend
