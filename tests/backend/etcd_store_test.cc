// What only EtcdStore does: several endpoints, a cluster that loses a member, and etcd's
// own answers. Runs real etcd processes (label integration).
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>

#include "backend/etcd_store.h"
#include "backend/store.h"
#include "tests/backend/etcd_harness.h"

namespace edge::backend {
namespace {

using testing::EtcdCluster;
using ::testing::HasSubstr;

std::unique_ptr<EtcdCluster> startCluster(int members) {
  auto c = EtcdCluster::start(members);
  EXPECT_TRUE(c.isOk()) << c.status().toString();
  return c.isOk() ? std::move(c).value() : nullptr;
}

TEST(EtcdStoreTest, AThreeMemberClusterKeepsServingWhenItsLeaderDies) {
  auto cluster = startCluster(3);
  ASSERT_NE(cluster, nullptr);
  auto leader = cluster->leader();
  ASSERT_TRUE(leader.isOk()) << leader.status().toString();
  // The leader's endpoint first: the store talks to it until it dies, so the test covers
  // both a dead endpoint and an election.
  std::string urls = cluster->clientUrl(*leader);
  for (int i = 0; i < 3; ++i) {
    if (i != *leader) urls += "," + cluster->clientUrl(i);
  }
  auto opened = openStore("etcd:" + urls);
  ASSERT_TRUE(opened.isOk()) << opened.status().toString();
  StorePtr store = std::move(opened).value();
  EXPECT_EQ(store->describe(), "etcd:" + urls);
  auto r = store->put("cluster/counter", "0");
  ASSERT_TRUE(r.isOk()) << r.status().toString();

  cluster->kill(*leader);
  for (int i = 1; i <= 20; ++i) {
    auto cur = store->get("cluster/counter");
    ASSERT_TRUE(cur.isOk()) << "step " << i << ": " << cur.status().toString();
    auto w = store->put("cluster/counter", std::to_string(i), cur->revision);
    ASSERT_TRUE(w.isOk()) << "step " << i << ": " << w.status().toString();
  }
  auto list = store->list("cluster/");
  ASSERT_TRUE(list.isOk()) << list.status().toString();
  ASSERT_EQ(list->size(), 1u);
  EXPECT_EQ((*list)[0].value, "20");
  auto now = cluster->leader();
  ASSERT_TRUE(now.isOk()) << now.status().toString();
  EXPECT_NE(*now, *leader);

  // A new handle, with the dead member still first in its list, opens and works.
  auto again = openStore("etcd:" + urls);
  ASSERT_TRUE(again.isOk()) << again.status().toString();
  EXPECT_EQ((*again)->get("cluster/counter")->value, "20");

  // The member comes back and catches up; the store works through it alone.
  Status st = cluster->restart(*leader);
  ASSERT_TRUE(st.isOk()) << st.toString();
  auto alone = openStore("etcd:" + cluster->clientUrl(*leader));
  ASSERT_TRUE(alone.isOk()) << alone.status().toString();
  EXPECT_EQ((*alone)->get("cluster/counter")->value, "20");
}

TEST(EtcdStoreTest, AStoppedEtcdIsUnavailableAndTheStoreRecoversWhenItIsBack) {
  auto cluster = startCluster(1);
  ASSERT_NE(cluster, nullptr);
  auto eps = EtcdStore::parseEndpoints(cluster->clientUrls());
  ASSERT_TRUE(eps.isOk());
  EtcdOptions options;
  options.retry_window = std::chrono::milliseconds(200);
  auto store = EtcdStore::open(*eps, options);
  ASSERT_TRUE(store.isOk()) << store.status().toString();
  ASSERT_TRUE((*store)->put("k", "v").isOk());

  cluster->kill(0);
  auto get = (*store)->get("k");
  EXPECT_EQ(get.status().code(), StatusCode::kUnavailable);
  EXPECT_THAT(get.status().message(), HasSubstr(cluster->clientUrl(0).substr(7)));
  // Nothing was sent, so the commit knows it was not applied.
  auto put = (*store)->put("k", "w");
  EXPECT_EQ(put.status().code(), StatusCode::kUnavailable);
  EXPECT_THAT(put.status().message(), HasSubstr("no endpoint answered"));

  ASSERT_TRUE(cluster->restart(0).isOk());
  auto back = (*store)->get("k");
  ASSERT_TRUE(back.isOk()) << back.status().toString();
  EXPECT_EQ(back->value, "v");
}

TEST(EtcdStoreTest, ListsPageThroughOneSnapshot) {
  auto cluster = startCluster(1);
  ASSERT_NE(cluster, nullptr);
  auto eps = EtcdStore::parseEndpoints(cluster->clientUrls());
  ASSERT_TRUE(eps.isOk());
  EtcdOptions options;
  options.page_size = 3;  // many pages for few keys
  auto store = EtcdStore::open(*eps, options);
  ASSERT_TRUE(store.isOk()) << store.status().toString();
  for (int i = 0; i < 10; ++i) ASSERT_TRUE((*store)->put("p/" + std::to_string(i), "v").isOk());
  auto all = (*store)->list("p/");
  ASSERT_TRUE(all.isOk()) << all.status().toString();
  ASSERT_EQ(all->size(), 10u);
  auto some = (*store)->list("p/", 7, "p/1");
  ASSERT_TRUE(some.isOk());
  ASSERT_EQ(some->size(), 7u);
  EXPECT_EQ(some->front().key, "p/2");
  EXPECT_EQ(some->back().key, "p/8");
}

}  // namespace
}  // namespace edge::backend
