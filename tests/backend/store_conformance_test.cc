// The Store contract (backend/store.h), one suite for every implementation. This file is
// built twice: store_sqlite_conformance_test (label unit) and, with
// EDGE_STORE_CONFORMANCE_ETCD, store_etcd_conformance_test (label integration, runs its
// own etcd).
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <functional>
#include <map>
#include <memory>
#include <ostream>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "backend/store.h"
#include "common/fs.h"

#ifdef EDGE_STORE_CONFORMANCE_ETCD
#include "tests/backend/etcd_harness.h"
#endif

namespace edge::backend {
namespace {

using ::testing::HasSubstr;

// Where the store under test lives, and how to bring it back after a restart.
class StoreEnv {
 public:
  virtual ~StoreEnv() = default;
  // An empty store for one test.
  virtual Status setUp() = 0;
  // A new handle on the same store (what openStore gives a service).
  virtual Result<StorePtr> open() = 0;
  // Takes the store down hard and brings it back: every handle must be closed before.
  virtual Status restart() = 0;
};

class SqliteEnv : public StoreEnv {
 public:
  ~SqliteEnv() override {
    if (!dir_.empty()) (void)fs::removeAll(dir_);
  }
  Status setUp() override {
    char tmpl[] = "/tmp/edge-backend-store-XXXXXX";
    if (::mkdtemp(tmpl) == nullptr) return Status::fromErrno(errno, "mkdtemp");
    dir_ = tmpl;
    return Status::ok();
  }
  Result<StorePtr> open() override { return openStore("sqlite:" + dir_ + "/db/backend.db"); }
  // The file is all there is: closing every handle and opening again is the restart.
  Status restart() override { return Status::ok(); }

 private:
  std::string dir_;
};

#ifdef EDGE_STORE_CONFORMANCE_ETCD
// One etcd for the whole suite (starting one per test would dominate its run time);
// each test starts with every key deleted. A failed start fails every test with its
// message (etcd missing: run scripts/install-deps.sh), it is never skipped.
class EtcdEnv : public StoreEnv {
 public:
  static testing::EtcdCluster* cluster() {
    if (!started_) {
      started_ = true;
      auto c = testing::EtcdCluster::start(1);
      start_status_ = c.status();
      if (c.isOk()) cluster_ = std::move(c).value();
    }
    return cluster_.get();
  }
  static Status startStatus() { return start_status_; }
  // Kills etcd and removes its data dir when the tests are done.
  class Teardown : public ::testing::Environment {
   public:
    void TearDown() override { cluster_.reset(); }
  };

  Status setUp() override {
    if (cluster() == nullptr) return startStatus();
    return cluster()->wipe();
  }
  Result<StorePtr> open() override { return openStore("etcd:" + cluster()->clientUrls()); }
  Status restart() override { return cluster()->restart(0); }

 private:
  static inline bool started_ = false;
  static inline Status start_status_;
  static inline std::unique_ptr<testing::EtcdCluster> cluster_;
};
::testing::Environment* const kEtcdTeardown =
    ::testing::AddGlobalTestEnvironment(new EtcdEnv::Teardown);
#endif

struct Backend {
  const char* name;
  std::function<std::unique_ptr<StoreEnv>()> make;
};
void PrintTo(const Backend& b, std::ostream* os) {
  *os << b.name;
}

class StoreConformance : public ::testing::TestWithParam<Backend> {
 protected:
  void SetUp() override {
    env_ = GetParam().make();
    Status st = env_->setUp();
    ASSERT_TRUE(st.isOk()) << st.toString();
    auto s = env_->open();
    ASSERT_TRUE(s.isOk()) << s.status().toString();
    store_ = std::move(s).value();
  }

  int64_t put(const std::string& key, const std::string& value) {
    auto r = store_->put(key, value);
    EXPECT_TRUE(r.isOk()) << key << ": " << r.status().toString();
    return r.valueOr(-1);
  }
  std::string valueOf(const std::string& key) {
    auto r = store_->get(key);
    return r.isOk() ? r->value : "<" + r.status().toString() + ">";
  }
  std::vector<std::string> keys(const std::vector<KeyValue>& kvs) {
    std::vector<std::string> out;
    for (const auto& kv : kvs) out.push_back(kv.key);
    return out;
  }
  std::vector<std::string> listKeys(std::string_view prefix, size_t limit = 0,
                                    std::string_view start_after = {}) {
    auto r = store_->list(prefix, limit, start_after);
    EXPECT_TRUE(r.isOk()) << r.status().toString();
    return r.isOk() ? keys(*r) : std::vector<std::string>{};
  }

  std::unique_ptr<StoreEnv> env_;
  StorePtr store_;
};

using Keys = std::vector<std::string>;

TEST_P(StoreConformance, PutThenGetReturnsTheValueAndTheRevisionOfTheWrite) {
  int64_t r1 = put("accounts/alice", R"({"name":"alice"})");
  ASSERT_GT(r1, 0);
  auto got = store_->get("accounts/alice");
  ASSERT_TRUE(got.isOk()) << got.status().toString();
  EXPECT_EQ(got->key, "accounts/alice");
  EXPECT_EQ(got->value, R"({"name":"alice"})");
  EXPECT_EQ(got->revision, r1);

  int64_t r2 = put("accounts/alice", R"({"name":"alice","admin":true})");
  EXPECT_GT(r2, r1);
  EXPECT_EQ(store_->get("accounts/alice")->revision, r2);
  EXPECT_EQ(valueOf("accounts/alice"), R"({"name":"alice","admin":true})");

  auto missing = store_->get("accounts/bob");
  EXPECT_EQ(missing.status().code(), StatusCode::kNotFound);
  EXPECT_THAT(missing.status().message(), HasSubstr("\"accounts/bob\""));
}

TEST_P(StoreConformance, KeysAndValuesAreBytes) {
  const std::string key("bin/\x00\x01\xff\x7f", 8);
  const std::string value("\x00{json}\xff\xfe\n", 10);
  put(key, value);
  put("bin/empty", "");
  EXPECT_EQ(valueOf(key), value);
  auto empty = store_->get("bin/empty");
  ASSERT_TRUE(empty.isOk()) << empty.status().toString();
  EXPECT_EQ(empty->value, "");
  EXPECT_EQ(listKeys("bin/"), (Keys{key, "bin/empty"}));
}

TEST_P(StoreConformance, ListReturnsThePrefixInByteOrderAndPages) {
  std::vector<std::string> ks = {"svc/b",  "svc/a", "svc/c/1", "svc/c", "svc/B",
                                 "svc/a0", "svc0",  "svb/z",   "svc",   "svd"};
  for (const auto& k : ks) put(k, "v");
  const Keys want = {"svc/B", "svc/a", "svc/a0", "svc/b", "svc/c", "svc/c/1"};
  EXPECT_EQ(listKeys("svc/"), want);
  EXPECT_EQ(listKeys("svc/", 2), (Keys{"svc/B", "svc/a"}));
  EXPECT_EQ(listKeys("svc/", 2, "svc/a"), (Keys{"svc/a0", "svc/b"}));
  EXPECT_EQ(listKeys("svc/", 0, "svc/c"), (Keys{"svc/c/1"}));
  EXPECT_EQ(listKeys("svc/", 0, "svc/c/1"), Keys{});
  // start_after need not exist, and may lie outside the prefix.
  EXPECT_EQ(listKeys("svc/", 0, "svc/a1"), (Keys{"svc/b", "svc/c", "svc/c/1"}));
  EXPECT_EQ(listKeys("svc/", 0, "a"), want);
  EXPECT_EQ(listKeys("svc/", 0, "zzz"), Keys{});
  EXPECT_EQ(listKeys("nothing/"), Keys{});

  // Paging with the last key seen gives the whole list, once.
  Keys paged;
  std::string after;
  for (int pages = 0; pages < 10; ++pages) {
    Keys page = listKeys("svc/", 4, after);
    if (page.empty()) break;
    paged.insert(paged.end(), page.begin(), page.end());
    after = page.back();
  }
  EXPECT_EQ(paged, want);

  auto kvs = store_->list("svc/c");
  ASSERT_TRUE(kvs.isOk());
  ASSERT_EQ(kvs->size(), 2u);
  EXPECT_EQ((*kvs)[0].value, "v");
  EXPECT_EQ((*kvs)[0].revision, store_->get("svc/c")->revision);
}

TEST_P(StoreConformance, PrefixEdgeCases) {
  const std::string ff("\xff", 1);
  Keys all = {"a",
              "a" + ff,
              "a" + ff + ff,
              "a" + ff + std::string("\x00", 1),
              "b",
              ff,
              ff + ff,
              ff + ff + "\x01",
              std::string("\x00", 1),
              "%",
              "_"};
  for (const auto& k : all) put(k, "v");
  Keys sorted = all;
  std::sort(sorted.begin(), sorted.end());

  // The empty prefix is every key.
  EXPECT_EQ(listKeys(""), sorted);
  EXPECT_EQ(listKeys("", 3), Keys(sorted.begin(), sorted.begin() + 3));
  // A prefix ending in 0xff has no simple successor ("a\xff" ends before "b").
  EXPECT_EQ(listKeys("a" + ff), (Keys{"a" + ff, "a" + ff + std::string("\x00", 1), "a" + ff + ff}));
  // A prefix of 0xff bytes only runs to the end of the key space.
  EXPECT_EQ(listKeys(ff), (Keys{ff, ff + ff, ff + ff + "\x01"}));
  EXPECT_EQ(listKeys(ff + ff), (Keys{ff + ff, ff + ff + "\x01"}));
  EXPECT_EQ(listKeys(ff + ff, 0, ff + ff), (Keys{ff + ff + "\x01"}));
  // SQL pattern characters are plain bytes.
  EXPECT_EQ(listKeys("%"), (Keys{"%"}));
  EXPECT_EQ(listKeys("_"), (Keys{"_"}));
  // A prefix equal to a key includes it.
  EXPECT_EQ(listKeys("b"), (Keys{"b"}));
}

TEST_P(StoreConformance, OneCommitGivesEveryKeyTheSameNewRevision) {
  ASSERT_TRUE(store_->revision().isOk());
  int64_t before = *store_->revision();
  put("k/old", "x");
  auto rev = store_->commit({StoreOp::put("k/1", "a"), StoreOp::put("k/2", "b"),
                             StoreOp::put("k/3", "c"), StoreOp::remove("k/old")});
  ASSERT_TRUE(rev.isOk()) << rev.status().toString();
  EXPECT_GT(*rev, before);
  EXPECT_EQ(*store_->revision(), *rev);
  for (const char* k : {"k/1", "k/2", "k/3"}) EXPECT_EQ(store_->get(k)->revision, *rev) << k;
  EXPECT_EQ(store_->get("k/old").status().code(), StatusCode::kNotFound);

  // Each changing commit is exactly one revision later.
  auto next = store_->put("k/1", "a2");
  ASSERT_TRUE(next.isOk());
  EXPECT_EQ(*next, *rev + 1);
  auto removed = store_->remove("k/2");
  ASSERT_TRUE(removed.isOk());
  EXPECT_EQ(*removed, *rev + 2);

  // A commit that changes nothing returns the current revision and does not advance it.
  auto none = store_->commit({});
  ASSERT_TRUE(none.isOk()) << none.status().toString();
  EXPECT_EQ(*none, *rev + 2);
  auto checks = store_->commit({StoreOp::check("k/1", *rev + 1), StoreOp::remove("k/absent")});
  ASSERT_TRUE(checks.isOk()) << checks.status().toString();
  EXPECT_EQ(*checks, *rev + 2);
  EXPECT_EQ(*store_->revision(), *rev + 2);
}

TEST_P(StoreConformance, ExpectedZeroMeansTheKeyMustNotExist) {
  auto created = store_->put("names/web", "owner-1", 0);
  ASSERT_TRUE(created.isOk()) << created.status().toString();
  auto again = store_->put("names/web", "owner-2", 0);
  EXPECT_EQ(again.status().code(), StatusCode::kAborted);
  EXPECT_THAT(again.status().message(), HasSubstr("\"names/web\""));
  EXPECT_THAT(again.status().message(), HasSubstr("expected to be absent"));
  EXPECT_EQ(valueOf("names/web"), "owner-1");

  // Once deleted it may be created again.
  ASSERT_TRUE(store_->remove("names/web").isOk());
  EXPECT_TRUE(store_->put("names/web", "owner-2", 0).isOk());
  EXPECT_EQ(valueOf("names/web"), "owner-2");
}

TEST_P(StoreConformance, ExpectedRevisionMustMatchTheKeysLastWrite) {
  int64_t r1 = put("counter", "1");
  int64_t r2 = put("other", "x");  // the store moved on; "counter" is still at r1
  ASSERT_GT(r2, r1);
  auto stale = store_->put("counter", "2", r2);
  EXPECT_EQ(stale.status().code(), StatusCode::kAborted);
  EXPECT_THAT(stale.status().message(), HasSubstr("at revision " + std::to_string(r2)));
  EXPECT_THAT(stale.status().message(), HasSubstr("at revision " + std::to_string(r1)));
  auto ok = store_->put("counter", "2", r1);
  ASSERT_TRUE(ok.isOk()) << ok.status().toString();
  EXPECT_EQ(valueOf("counter"), "2");
  // The old revision no longer matches.
  EXPECT_EQ(store_->put("counter", "3", r1).status().code(), StatusCode::kAborted);
  // A revision for a key that does not exist never matches.
  auto absent = store_->put("nobody", "x", r1);
  EXPECT_EQ(absent.status().code(), StatusCode::kAborted);
  EXPECT_THAT(absent.status().message(), HasSubstr("does not exist"));
  EXPECT_EQ(store_->get("nobody").status().code(), StatusCode::kNotFound);
}

TEST_P(StoreConformance, AFailedCompareWritesNothing) {
  put("t/a", "a1");
  put("t/b", "b1");
  int64_t c_rev = put("t/c", "c1");
  int64_t before = *store_->revision();
  auto r = store_->commit({StoreOp::put("t/a", "a2"), StoreOp::put("t/new", "n"),
                           StoreOp::remove("t/c", c_rev), StoreOp::put("t/b", "b2", 0)});
  EXPECT_EQ(r.status().code(), StatusCode::kAborted);
  EXPECT_THAT(r.status().message(), HasSubstr("\"t/b\""));
  EXPECT_THAT(r.status().message(), HasSubstr("nothing was written"));
  EXPECT_EQ(valueOf("t/a"), "a1");
  EXPECT_EQ(valueOf("t/b"), "b1");
  EXPECT_EQ(valueOf("t/c"), "c1");
  EXPECT_EQ(store_->get("t/new").status().code(), StatusCode::kNotFound);
  EXPECT_EQ(*store_->revision(), before);

  // The first failing compare is the one named.
  auto two = store_->commit({StoreOp::check("t/a", 0), StoreOp::check("t/b", 0)});
  EXPECT_EQ(two.status().code(), StatusCode::kAborted);
  EXPECT_THAT(two.status().message(), HasSubstr("\"t/a\""));
}

TEST_P(StoreConformance, DeletingAnAbsentKeyIsNotAnError) {
  int64_t rev = put("x", "1");
  auto r = store_->remove("absent");
  ASSERT_TRUE(r.isOk()) << r.status().toString();
  EXPECT_EQ(*r, rev);
  auto must_not_exist = store_->remove("absent", 0);
  ASSERT_TRUE(must_not_exist.isOk()) << must_not_exist.status().toString();
  EXPECT_EQ(*must_not_exist, rev);
  // Expecting a revision of an absent key is a failed compare.
  EXPECT_EQ(store_->remove("absent", rev).status().code(), StatusCode::kAborted);
  // Deleting with the right revision deletes; with a stale one it does not.
  int64_t rev2 = put("x", "2");
  EXPECT_EQ(store_->remove("x", rev).status().code(), StatusCode::kAborted);
  EXPECT_EQ(valueOf("x"), "2");
  ASSERT_TRUE(store_->remove("x", rev2).isOk());
  EXPECT_EQ(store_->get("x").status().code(), StatusCode::kNotFound);
}

TEST_P(StoreConformance, CheckGuardsOtherWritesWithoutWriting) {
  int64_t cfg = put("config", "v1");
  auto r = store_->commit({StoreOp::check("config", cfg), StoreOp::put("derived", "from v1")});
  ASSERT_TRUE(r.isOk()) << r.status().toString();
  EXPECT_EQ(store_->get("config")->revision, cfg);  // checked, not written
  EXPECT_EQ(store_->get("derived")->revision, *r);

  put("config", "v2");
  auto stale = store_->commit({StoreOp::check("config", cfg), StoreOp::put("derived", "again")});
  EXPECT_EQ(stale.status().code(), StatusCode::kAborted);
  EXPECT_THAT(stale.status().message(), HasSubstr("\"config\""));
  EXPECT_EQ(valueOf("derived"), "from v1");

  // A key is checked or written, not both: put with an expected revision does both.
  EXPECT_EQ(store_->commit({StoreOp::check("lock", 0), StoreOp::put("lock", "me")}).status().code(),
            StatusCode::kInvalidArgument);
  EXPECT_TRUE(store_->commit({StoreOp::check("nolock", 0), StoreOp::put("held", "me")}).isOk());
}

TEST_P(StoreConformance, BadArgumentsAreRefusedBeforeAnythingIsWritten) {
  auto expectInvalid = [](const Status& s, const std::string& fragment) {
    EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << s.toString();
    EXPECT_THAT(s.message(), HasSubstr(fragment));
  };
  int64_t before = *store_->revision();
  const std::string big_key(Store::kMaxKeyBytes + 1, 'k');
  const std::string max_key(Store::kMaxKeyBytes, 'k');

  expectInvalid(store_->put("", "v").status(), "empty");
  expectInvalid(store_->get("").status(), "empty");
  expectInvalid(store_->put(big_key, "v").status(), "at most 1024");
  expectInvalid(store_->get(big_key).status(), "at most 1024");
  expectInvalid(store_->list(big_key).status(), "prefix");
  expectInvalid(store_->list("p", 0, big_key).status(), "start_after");
  expectInvalid(store_->put("v", std::string(Store::kMaxValueBytes + 1, 'v')).status(),
                "at most 1048576");
  std::vector<StoreOp> many;
  for (size_t i = 0; i <= Store::kMaxOpsPerCommit; ++i)
    many.push_back(StoreOp::put("m" + std::to_string(i), "v"));
  expectInvalid(store_->commit(many).status(), "at most 64");
  expectInvalid(store_->commit({StoreOp::put("d", "1"), StoreOp::remove("d")}).status(),
                "appears twice");
  expectInvalid(store_->put("r", "v", -2).status(), "expected revision -2");
  expectInvalid(store_->commit({StoreOp::check("c", StoreOp::kAny)}).status(),
                "needs an expected revision");
  const std::string half(Store::kMaxValueBytes * 3 / 4, 'h');
  expectInvalid(store_->commit({StoreOp::put("h1", half), StoreOp::put("h2", half)}).status(),
                "in one commit");
  // A bad op anywhere refuses the whole commit.
  expectInvalid(store_->commit({StoreOp::put("fine", "v"), StoreOp::put("", "v")}).status(),
                "op 1");
  EXPECT_EQ(*store_->revision(), before);
  EXPECT_EQ(listKeys(""), Keys{});

  // The limits themselves are allowed.
  const std::string max_value(Store::kMaxValueBytes, 'x');
  EXPECT_TRUE(store_->put(max_key, max_value).isOk());
  EXPECT_EQ(valueOf(max_key), max_value);
  many.pop_back();
  auto full = store_->commit(many);
  ASSERT_TRUE(full.isOk()) << full.status().toString();
  EXPECT_EQ(listKeys("m").size(), Store::kMaxOpsPerCommit);
}

TEST_P(StoreConformance, ConcurrentCompareAndSwapLosesNoIncrement) {
  constexpr int kThreads = 8;
  constexpr int kIncrements = 40;
  put("counter", "0");
  std::atomic<int> aborted{0};
  std::vector<std::string> errors(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kIncrements; ++i) {
        while (true) {
          auto cur = store_->get("counter");
          if (!cur.isOk()) {
            errors[t] = cur.status().toString();
            return;
          }
          int n = std::stoi(cur->value);
          auto w = store_->put("counter", std::to_string(n + 1), cur->revision);
          if (w.isOk()) break;
          if (w.status().code() != StatusCode::kAborted) {
            errors[t] = w.status().toString();
            return;
          }
          ++aborted;
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  for (int t = 0; t < kThreads; ++t) EXPECT_EQ(errors[t], "") << "thread " << t;
  EXPECT_EQ(valueOf("counter"), std::to_string(kThreads * kIncrements))
      << aborted.load() << " compares lost and were retried";
}

TEST_P(StoreConformance, ARestartLosesNothing) {
  std::map<std::string, KeyValue> want;
  for (int i = 0; i < 50; ++i) put("keep/" + std::to_string(i), "value " + std::to_string(i));
  ASSERT_TRUE(store_
                  ->commit({StoreOp::put("keep/multi/1", "m1"), StoreOp::put("keep/multi/2", "m2"),
                            StoreOp::remove("keep/7")})
                  .isOk());
  auto before = store_->list("keep/");
  ASSERT_TRUE(before.isOk());
  int64_t rev = *store_->revision();

  store_.reset();
  Status st = env_->restart();
  ASSERT_TRUE(st.isOk()) << st.toString();
  auto reopened = env_->open();
  ASSERT_TRUE(reopened.isOk()) << reopened.status().toString();
  store_ = std::move(reopened).value();

  auto after = store_->list("keep/");
  ASSERT_TRUE(after.isOk()) << after.status().toString();
  ASSERT_EQ(after->size(), before->size());
  for (size_t i = 0; i < after->size(); ++i) {
    EXPECT_EQ((*after)[i].key, (*before)[i].key);
    EXPECT_EQ((*after)[i].value, (*before)[i].value);
    EXPECT_EQ((*after)[i].revision, (*before)[i].revision);
  }
  EXPECT_EQ(*store_->revision(), rev);
  EXPECT_EQ(store_->put("keep/next", "n").valueOr(-1), rev + 1);
}

TEST_P(StoreConformance, TenThousandKeysListInOrder) {
  constexpr int kKeys = 10000;
  std::vector<int> order(kKeys);
  for (int i = 0; i < kKeys; ++i) order[i] = i;
  std::shuffle(order.begin(), order.end(), std::mt19937(42));
  auto name = [](int i) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "many/%05d", i);
    return std::string(buf);
  };
  std::vector<StoreOp> batch;
  for (int i : order) {
    batch.push_back(StoreOp::put(name(i), "value of " + std::to_string(i)));
    if (batch.size() == Store::kMaxOpsPerCommit) {
      ASSERT_TRUE(store_->commit(batch).isOk());
      batch.clear();
    }
  }
  ASSERT_TRUE(store_->commit(batch).isOk());

  auto all = store_->list("many/");
  ASSERT_TRUE(all.isOk()) << all.status().toString();
  ASSERT_EQ(all->size(), static_cast<size_t>(kKeys));
  for (int i = 0; i < kKeys; ++i) {
    ASSERT_EQ((*all)[i].key, name(i));
    ASSERT_EQ((*all)[i].value, "value of " + std::to_string(i));
  }
  // Pages of 999 with start_after: all keys, once, in order.
  size_t seen = 0;
  std::string after;
  while (true) {
    auto page = store_->list("many/", 999, after);
    ASSERT_TRUE(page.isOk()) << page.status().toString();
    if (page->empty()) break;
    for (const auto& kv : *page) ASSERT_EQ(kv.key, name(static_cast<int>(seen++)));
    after = page->back().key;
  }
  EXPECT_EQ(seen, static_cast<size_t>(kKeys));
}

#ifdef EDGE_STORE_CONFORMANCE_ETCD
INSTANTIATE_TEST_SUITE_P(
    Etcd, StoreConformance,
    ::testing::Values(Backend{
        "etcd", [] { return std::unique_ptr<StoreEnv>(std::make_unique<EtcdEnv>()); }}),
    [](const auto& info) { return std::string(info.param.name); });
#else
INSTANTIATE_TEST_SUITE_P(
    Sqlite, StoreConformance,
    ::testing::Values(Backend{
        "sqlite", [] { return std::unique_ptr<StoreEnv>(std::make_unique<SqliteEnv>()); }}),
    [](const auto& info) { return std::string(info.param.name); });
#endif

}  // namespace
}  // namespace edge::backend
