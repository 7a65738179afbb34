#include "orchestrator/store.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sqlite3.h>
#include <sys/stat.h>

#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "common/fs.h"

namespace edge::orchestrator {
namespace {

using ::testing::HasSubstr;
using Action = ApplyOutcome::Action;

ServiceManifest manifest(const std::string& name, const std::string& image, int replicas = 1) {
  auto r = parseManifests("apiVersion: edge/v1\nkind: Service\nmetadata: {name: " + name +
                              "}\nspec: {image: \"" + image +
                              "\", replicas: " + std::to_string(replicas) + "}\n",
                          "test.yaml");
  EXPECT_TRUE(r.isOk()) << r.status().toString();
  return r.isOk() ? (*r)[0] : ServiceManifest{};
}

std::string readAll(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Runs SQL on the store's file through a second connection, as an operator with the
// sqlite3 shell (or a fault) would.
void sql(const std::string& path, const std::string& statements) {
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
  char* err = nullptr;
  int rc = sqlite3_exec(db, statements.c_str(), nullptr, nullptr, &err);
  EXPECT_EQ(rc, SQLITE_OK) << (err != nullptr ? err : "") << " in " << statements;
  sqlite3_free(err);
  sqlite3_close(db);
}

class StoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/edge-store-test-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    path_ = dir_ + "/data/state.db";  // the parent does not exist yet
    reopen();
  }
  void TearDown() override {
    store_.reset();
    (void)fs::removeAll(dir_);
  }
  void reopen() {
    store_.reset();
    auto s = StateStore::open(path_, clock_);
    ASSERT_TRUE(s.isOk()) << s.status().toString();
    store_ = std::move(s).value();
  }
  std::vector<ApplyOutcome> applyOk(const std::vector<ServiceManifest>& ms, bool dry_run = false) {
    auto r = store_->apply(ms, dry_run);
    EXPECT_TRUE(r.isOk()) << r.status().toString();
    return r.isOk() ? *r : std::vector<ApplyOutcome>{};
  }
  std::vector<int64_t> generations(const std::string& name) {
    std::vector<int64_t> out;
    auto h = store_->history(name);
    EXPECT_TRUE(h.isOk()) << h.status().toString();
    if (h.isOk())
      for (const auto& r : *h) out.push_back(r.generation);
    return out;
  }
  std::string image(const std::string& name) {
    auto r = store_->get(name);
    EXPECT_TRUE(r.isOk()) << r.status().toString();
    return r.isOk() ? r->manifest.image : "";
  }

  FakeClock clock_;
  std::string dir_, path_;
  StateStorePtr store_;
};

TEST_F(StoreTest, CreatedUpdatedUnchanged) {
  EXPECT_EQ(store_->revision(), 0);
  auto out = applyOk({manifest("web", "web:1"), manifest("api", "api:1")});
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(out[0].name, "web");
  EXPECT_EQ(out[0].generation, 1);
  EXPECT_EQ(out[0].action, Action::kCreated);
  EXPECT_EQ(out[1].action, Action::kCreated);
  EXPECT_EQ(store_->revision(), 1);

  out = applyOk({manifest("web", "web:1"), manifest("api", "api:2")});
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(out[0].action, Action::kUnchanged);
  EXPECT_EQ(out[0].generation, 1);
  EXPECT_EQ(out[1].action, Action::kUpdated);
  EXPECT_EQ(out[1].generation, 2);
  EXPECT_EQ(store_->revision(), 2);

  // Nothing new: no revision either.
  out = applyOk({manifest("web", "web:1")});
  EXPECT_EQ(out[0].action, Action::kUnchanged);
  EXPECT_EQ(store_->revision(), 2);

  auto list = store_->list();
  ASSERT_TRUE(list.isOk()) << list.status().toString();
  ASSERT_EQ(list->size(), 2u);
  EXPECT_EQ((*list)[0].name, "api");  // sorted by name
  EXPECT_EQ((*list)[0].generation, 2);
  EXPECT_EQ((*list)[0].manifest.image, "api:2");
  EXPECT_EQ((*list)[0].manifest_json, manifestToJson((*list)[0].manifest));
  EXPECT_EQ((*list)[1].name, "web");
  EXPECT_EQ((*list)[1].applied_at, clock_.wallNow());

  EXPECT_EQ(applyActionName(Action::kCreated), "created");
  EXPECT_EQ(applyActionName(Action::kUpdated), "updated");
  EXPECT_EQ(applyActionName(Action::kUnchanged), "unchanged");
}

TEST_F(StoreTest, DryRunWritesNothing) {
  auto out = applyOk({manifest("web", "web:1")}, /*dry_run=*/true);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].action, Action::kCreated);
  EXPECT_EQ(out[0].generation, 1);
  EXPECT_TRUE(store_->list()->empty());
  EXPECT_EQ(store_->revision(), 0);
  EXPECT_EQ(store_->get("web").status().code(), StatusCode::kNotFound);

  applyOk({manifest("web", "web:1")});
  out = applyOk({manifest("web", "web:2")}, true);
  EXPECT_EQ(out[0].action, Action::kUpdated);
  EXPECT_EQ(out[0].generation, 2);
  EXPECT_EQ(image("web"), "web:1");
  EXPECT_EQ(generations("web"), std::vector<int64_t>{1});

  auto gen = store_->remove("web", /*dry_run=*/true);
  ASSERT_TRUE(gen.isOk());
  EXPECT_EQ(*gen, 1);
  EXPECT_EQ(image("web"), "web:1");
  EXPECT_EQ(store_->revision(), 1);
}

TEST_F(StoreTest, FailingApplyLeavesThePreviousGeneration) {
  applyOk({manifest("web", "web:1")});
  // A fault in the middle of the transaction: the second insert fails after the first
  // one has been written.
  sql(path_,
      "CREATE TRIGGER fail_boom BEFORE INSERT ON generations WHEN NEW.name = 'boom' "
      "BEGIN SELECT RAISE(ABORT, 'injected fault'); END;");
  auto r = store_->apply({manifest("web", "web:2"), manifest("boom", "boom:1")}, false);
  ASSERT_FALSE(r.isOk());
  EXPECT_EQ(r.status().code(), StatusCode::kInternal);
  EXPECT_THAT(r.status().message(), HasSubstr("injected fault"));
  EXPECT_EQ(image("web"), "web:1");
  EXPECT_EQ(generations("web"), std::vector<int64_t>{1});
  EXPECT_EQ(store_->get("boom").status().code(), StatusCode::kNotFound);
  EXPECT_EQ(store_->revision(), 1);
  // The store keeps working after the failure.
  sql(path_, "DROP TRIGGER fail_boom;");
  auto out = applyOk({manifest("web", "web:2"), manifest("boom", "boom:1")});
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(out[0].generation, 2);
  EXPECT_EQ(store_->revision(), 2);
}

TEST_F(StoreTest, BadInputIsRefusedBeforeWriting) {
  auto r = store_->apply({manifest("web", "web:1"), manifest("web", "web:2")}, false);
  ASSERT_FALSE(r.isOk());
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(r.status().message(), HasSubstr("service \"web\" is given twice"));

  ServiceManifest bad = manifest("web", "web:1");
  bad.name = "Not_A_Name";
  r = store_->apply({manifest("ok", "ok:1"), bad}, false);
  ASSERT_FALSE(r.isOk());
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(r.status().message(), HasSubstr("metadata.name: \"Not_A_Name\" is not a valid"));
  EXPECT_TRUE(store_->list()->empty());
  EXPECT_EQ(store_->revision(), 0);

  EXPECT_TRUE(applyOk({}).empty());
}

TEST_F(StoreTest, HistoryIsNewestFirst) {
  WallTime t1 = clock_.wallNow();
  applyOk({manifest("web", "web:1")});
  clock_.advance(std::chrono::seconds(10));
  applyOk({manifest("web", "web:2")});
  clock_.advance(std::chrono::seconds(10));
  applyOk({manifest("web", "web:3", 2)});
  auto h = store_->history("web");
  ASSERT_TRUE(h.isOk()) << h.status().toString();
  ASSERT_EQ(h->size(), 3u);
  EXPECT_EQ((*h)[0].generation, 3);
  EXPECT_EQ((*h)[0].manifest.replicas, 2);
  EXPECT_EQ((*h)[1].manifest.image, "web:2");
  EXPECT_EQ((*h)[2].generation, 1);
  EXPECT_EQ((*h)[2].applied_at, t1);
  EXPECT_EQ((*h)[0].applied_at, t1 + std::chrono::seconds(20));
  auto missing = store_->history("nope");
  EXPECT_EQ(missing.status().code(), StatusCode::kNotFound);
  EXPECT_THAT(missing.status().message(), HasSubstr("no service \"nope\""));
}

TEST_F(StoreTest, Rollback) {
  applyOk({manifest("web", "web:1")});
  auto first = store_->rollback("web", std::nullopt);
  EXPECT_EQ(first.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_THAT(first.status().message(), HasSubstr("no generation before 1"));

  applyOk({manifest("web", "web:2")});
  applyOk({manifest("web", "web:3")});
  // Default: the generation before the current one, applied as a new generation.
  auto r = store_->rollback("web", std::nullopt);
  ASSERT_TRUE(r.isOk()) << r.status().toString();
  EXPECT_EQ(r->generation, 4);
  EXPECT_EQ(r->manifest.image, "web:2");
  EXPECT_EQ(image("web"), "web:2");
  EXPECT_EQ(store_->revision(), 4);

  r = store_->rollback("web", 1);
  ASSERT_TRUE(r.isOk()) << r.status().toString();
  EXPECT_EQ(r->generation, 5);
  EXPECT_EQ(image("web"), "web:1");
  EXPECT_EQ(generations("web"), (std::vector<int64_t>{5, 4, 3, 2, 1}));

  // To what already runs: nothing changes.
  r = store_->rollback("web", 1);
  ASSERT_TRUE(r.isOk()) << r.status().toString();
  EXPECT_EQ(r->generation, 5);
  EXPECT_EQ(store_->revision(), 5);

  auto bad = store_->rollback("web", 99);
  EXPECT_EQ(bad.status().code(), StatusCode::kNotFound);
  EXPECT_THAT(bad.status().message(),
              HasSubstr("service \"web\" has no generation 99 (it has 1..5)"));
  bad = store_->rollback("web", 0);
  EXPECT_EQ(bad.status().code(), StatusCode::kInvalidArgument);
  bad = store_->rollback("nope", std::nullopt);
  EXPECT_EQ(bad.status().code(), StatusCode::kNotFound);
  EXPECT_EQ(generations("web").size(), 5u);
}

TEST_F(StoreTest, RemoveThenApplyContinuesTheNumbering) {
  applyOk({manifest("web", "web:1")});
  applyOk({manifest("web", "web:2")});
  auto gen = store_->remove("web", false);
  ASSERT_TRUE(gen.isOk()) << gen.status().toString();
  EXPECT_EQ(*gen, 2);
  EXPECT_EQ(store_->revision(), 3);
  EXPECT_TRUE(store_->list()->empty());
  auto g = store_->get("web");
  EXPECT_EQ(g.status().code(), StatusCode::kNotFound);
  EXPECT_THAT(g.status().message(), HasSubstr("was removed"));
  EXPECT_EQ(store_->remove("web", false).status().code(), StatusCode::kNotFound);
  EXPECT_EQ(store_->rollback("web", 1).status().code(), StatusCode::kNotFound);
  EXPECT_EQ(generations("web"), (std::vector<int64_t>{2, 1}));  // history kept

  // Applying the same manifest again brings it back as a new generation.
  auto out = applyOk({manifest("web", "web:2")});
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].action, Action::kCreated);
  EXPECT_EQ(out[0].generation, 3);
  EXPECT_EQ(generations("web"), (std::vector<int64_t>{3, 2, 1}));
  EXPECT_EQ(store_->remove("nope", false).status().code(), StatusCode::kNotFound);
}

TEST_F(StoreTest, ReopenKeepsEverything) {
  applyOk({manifest("web", "web:1"), manifest("api", "api:1")});
  applyOk({manifest("web", "web:2")});
  ASSERT_TRUE(store_->remove("api", false).isOk());
  ASSERT_TRUE(store_->putMeta("node.name", "edge-1").isOk());
  auto before = store_->list();
  ASSERT_TRUE(before.isOk());
  int64_t revision = store_->revision();

  reopen();
  EXPECT_EQ(store_->revision(), revision);
  auto after = store_->list();
  ASSERT_TRUE(after.isOk()) << after.status().toString();
  ASSERT_EQ(after->size(), 1u);
  EXPECT_EQ((*after)[0].manifest_json, (*before)[0].manifest_json);
  EXPECT_EQ((*after)[0].manifest, (*before)[0].manifest);
  EXPECT_EQ((*after)[0].applied_at, (*before)[0].applied_at);
  EXPECT_EQ(generations("web"), (std::vector<int64_t>{2, 1}));
  EXPECT_EQ(generations("api"), (std::vector<int64_t>{1}));
  EXPECT_EQ(**store_->getMeta("node.name"), "edge-1");
  applyOk({manifest("web", "web:3")});
  EXPECT_EQ(store_->revision(), revision + 1);
}

TEST_F(StoreTest, FileIsPrivateAndInWalMode) {
  struct stat st {};
  ASSERT_EQ(::stat(path_.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(path_.c_str(), &db), SQLITE_OK);
  sqlite3_stmt* s = nullptr;
  ASSERT_EQ(sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &s, nullptr), SQLITE_OK);
  ASSERT_EQ(sqlite3_step(s), SQLITE_ROW);
  EXPECT_STREQ(reinterpret_cast<const char*>(sqlite3_column_text(s, 0)), "wal");
  sqlite3_finalize(s);
  sqlite3_close(db);
}

TEST_F(StoreTest, MetaSurvivesAndDoesNotMoveTheRevision) {
  auto none = store_->getMeta("ports.web-0");
  ASSERT_TRUE(none.isOk());
  EXPECT_FALSE(none->has_value());
  ASSERT_TRUE(store_->putMeta("ports.web-0", "http=20001").isOk());
  ASSERT_TRUE(store_->putMeta("ports.web-0", "http=20002").isOk());
  EXPECT_EQ(**store_->getMeta("ports.web-0"), "http=20002");
  EXPECT_EQ(store_->revision(), 0);
  EXPECT_EQ(store_->putMeta("", "x").code(), StatusCode::kInvalidArgument);
}

TEST_F(StoreTest, GarbageFileIsRefusedAndLeftUntouched) {
  std::string garbage = dir_ + "/garbage.db";
  std::string bytes;
  for (int i = 0; i < 8192; ++i) bytes += static_cast<char>((i * 131 + 7) % 256);
  { std::ofstream(garbage, std::ios::binary) << bytes; }
  auto r = StateStore::open(garbage, clock_);
  ASSERT_FALSE(r.isOk());
  EXPECT_EQ(r.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_THAT(r.status().message(), HasSubstr(garbage + " is not an Edgecloud state store"));
  EXPECT_THAT(r.status().message(), HasSubstr("left untouched"));
  EXPECT_EQ(readAll(garbage), bytes);
  EXPECT_FALSE(fs::exists(garbage + "-wal"));
  EXPECT_FALSE(fs::exists(garbage + "-journal"));
}

TEST_F(StoreTest, OtherProgramsDatabaseIsRefused) {
  std::string other = dir_ + "/other.db";
  sql(other, "CREATE TABLE accounts (id INTEGER PRIMARY KEY, owner TEXT);");
  std::string bytes = readAll(other);
  auto r = StateStore::open(other, clock_);
  ASSERT_FALSE(r.isOk());
  EXPECT_EQ(r.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_THAT(r.status().message(), HasSubstr("an SQLite database of another program"));
  EXPECT_EQ(readAll(other), bytes);
}

TEST_F(StoreTest, NewerSchemaIsRefused) {
  applyOk({manifest("web", "web:1")});
  store_.reset();
  sql(path_, "PRAGMA user_version = 99;");
  auto r = StateStore::open(path_, clock_);
  ASSERT_FALSE(r.isOk());
  EXPECT_EQ(r.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_THAT(r.status().message(), HasSubstr("was written by a newer edged (store schema 99"));
}

TEST_F(StoreTest, BadPaths) {
  auto r = StateStore::open(dir_, clock_);
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(r.status().message(), HasSubstr("is a directory"));
  EXPECT_EQ(StateStore::open("", clock_).status().code(), StatusCode::kInvalidArgument);
  std::string blocked = dir_ + "/file";
  { std::ofstream(blocked) << "x"; }
  EXPECT_FALSE(StateStore::open(blocked + "/state.db", clock_).isOk());
}

TEST_F(StoreTest, StoredRowThatNoLongerParsesIsAnInternalError) {
  applyOk({manifest("web", "web:1"), manifest("api", "api:1")});
  store_.reset();
  sql(path_,
      "UPDATE generations SET manifest_json = '{\"apiVersion\": \"edge/v1\"}' "
      "WHERE name = 'web';");
  reopen();
  auto list = store_->list();
  ASSERT_FALSE(list.isOk());
  EXPECT_EQ(list.status().code(), StatusCode::kInternal);
  EXPECT_THAT(list.status().message(),
              HasSubstr("the stored manifest of service \"web\" generation 1 no longer parses"));
  EXPECT_EQ(store_->get("web").status().code(), StatusCode::kInternal);
  EXPECT_TRUE(store_->get("api").isOk());
  // Applying the service again is the way out.
  auto out = applyOk({manifest("web", "web:1")});
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].action, Action::kUpdated);
  EXPECT_EQ(out[0].generation, 2);
  EXPECT_TRUE(store_->list().isOk());
}

// A build before placement was refused stored services pinned to nodes without a scope;
// they still read after the upgrade (the node keeps running them), while a new apply of
// the same document is refused: pinning needs scope: cluster now.
TEST_F(StoreTest, StoredManifestWithPlacementStillReads) {
  applyOk({manifest("web", "web:1")});
  ServiceManifest pinned = manifest("web", "web:1");
  pinned.placement.nodes = {"edge-1"};
  std::string json = manifestToJson(pinned);
  ASSERT_EQ(json.find('\''), std::string::npos);
  store_.reset();
  sql(path_, "UPDATE generations SET manifest_json = '" + json + "' WHERE name = 'web';");
  reopen();
  auto list = store_->list();
  ASSERT_TRUE(list.isOk()) << list.status().toString();
  ASSERT_EQ(list->size(), 1u);
  EXPECT_EQ((*list)[0].manifest.placement.nodes, std::vector<std::string>{"edge-1"});
  auto r = store_->apply({pinned}, false);
  ASSERT_FALSE(r.isOk());
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(r.status().message(), HasSubstr("spec.placement.nodes: needs scope: cluster"));
  // Without the placement it is an update of the stored document.
  auto out = applyOk({manifest("web", "web:1")});
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].action, Action::kUpdated);
}

// A node upgraded past issue 15 holds documents stored without placement's scope, mode,
// constraints, strategy and affinity, and without disconnect and update. They read with the
// defaults, and applying the same service again is no change: a new generation would
// replace its running instances for nothing.
TEST_F(StoreTest, DocumentStoredBeforeClusterPlacementIsUnchangedOnReapply) {
  applyOk({manifest("web", "web:1", 2)});
  const std::string old_json =
      R"({"apiVersion":"edge/v1","kind":"Service","metadata":{"labels":{},"name":"web"},)"
      R"("spec":{"command":null,"entrypoint":null,"env":[],"healthCheck":null,)"
      R"("image":"web:1","lifecycle":{"idleTimeout":null,"mode":"always"},)"
      R"("placement":{"labels":{},"nodes":[]},"ports":[],"replicas":2,)"
      R"("resources":{"cpu":null,"memory":null,"pids":null},"restartPolicy":"always",)"
      R"("route":{"basePath":"/web","retry":{"attempts":2,"backoff":{"base":"25ms",)"
      R"("max":"250ms"},"nonIdempotent":false,"on":["502","503","504",)"
      R"("connect-failure","reset"],"perTryTimeout":"15s","timeout":"30s"},)"
      R"("scope":"local","scopes":[]}}})";
  store_.reset();
  sql(path_, "UPDATE generations SET manifest_json = '" + old_json + "' WHERE name = 'web';");
  reopen();
  auto list = store_->list();
  ASSERT_TRUE(list.isOk()) << list.status().toString();
  ASSERT_EQ(list->size(), 1u);
  EXPECT_EQ((*list)[0].manifest, manifest("web", "web:1", 2));
  EXPECT_EQ((*list)[0].manifest.placement.scope, Placement::Scope::kNode);
  auto out = applyOk({manifest("web", "web:1", 2)});
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].action, Action::kUnchanged);
  EXPECT_EQ(out[0].generation, 1);
  // A real change still is one.
  ServiceManifest cluster = manifest("web", "web:1", 2);
  cluster.placement.scope = Placement::Scope::kCluster;
  out = applyOk({cluster});
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].action, Action::kUpdated);
  EXPECT_EQ(out[0].generation, 2);
}

TEST_F(StoreTest, ConcurrentApplyAndList) {
  constexpr int kThreads = 4;
  constexpr int kRounds = 20;
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      std::string name = "svc" + std::to_string(t);
      for (int i = 1; i <= kRounds; ++i) {
        auto a = store_->apply({manifest(name, name + ":" + std::to_string(i))}, false);
        if (!a.isOk() || (*a)[0].generation != i) ++failures;
        auto l = store_->list();
        if (!l.isOk() || l->empty()) ++failures;
        auto g = store_->get(name);
        if (!g.isOk() || g->generation < i) ++failures;
        (void)store_->revision();
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(failures.load(), 0);
  EXPECT_EQ(store_->revision(), kThreads * kRounds);
  auto list = store_->list();
  ASSERT_TRUE(list.isOk());
  ASSERT_EQ(list->size(), static_cast<size_t>(kThreads));
  for (const auto& r : *list) {
    EXPECT_EQ(r.generation, kRounds);
    EXPECT_EQ(r.manifest.image, r.name + ":" + std::to_string(kRounds));
  }
}

}  // namespace
}  // namespace edge::orchestrator
