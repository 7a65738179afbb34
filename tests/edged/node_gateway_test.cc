// How a node announces its routes to its cluster and reads its peers' announcements:
// the compact profile entries must carry base path, scopes and retry policy through.
#include "edged/node_gateway.h"

#include <gtest/gtest.h>

namespace edge::edged {
namespace {

orchestrator::ServiceManifest parse(const std::string& spec) {
  auto m = orchestrator::parseManifests(
      "apiVersion: edge/v1\nkind: Service\nmetadata: {name: orders}\nspec:\n"
      "  image: a\n" +
          spec,
      "test.yaml");
  EXPECT_TRUE(m.isOk()) << m.status().toString();
  return m.isOk() ? m->front() : orchestrator::ServiceManifest{};
}

TEST(NodeGatewayAnnounceTest, DefaultsAnnounceTheNameAlone) {
  auto entries = NodeGateway::announcedServices({parse("")});
  ASSERT_EQ(entries.size(), 1u);
  EXPECT_EQ(entries[0], "orders");
  auto a = NodeGateway::parseAnnounced(entries[0]);
  EXPECT_EQ(a.service, "orders");
  EXPECT_EQ(a.base_path, "/orders");
  EXPECT_TRUE(a.scopes.empty());
  EXPECT_FALSE(a.retry.has_value());
}

TEST(NodeGatewayAnnounceTest, BasePathScopesAndRetryPolicyTravel) {
  orchestrator::ServiceManifest m = parse(
      "  route:\n    basePath: /api/orders\n    scopes: [orders.write, orders.read]\n"
      "    retry: {attempts: 3, perTryTimeout: 2s, timeout: 10s, on: [connect-failure, reset, "
      "\"503\"], nonIdempotent: true}\n");
  auto entries = NodeGateway::announcedServices({m});
  ASSERT_EQ(entries.size(), 1u);
  EXPECT_EQ(entries[0],
            "orders=/api/orders;scopes=orders.write,orders.read;retry=3,2000,10000,"
            "503+connect-failure+reset,ni");
  auto a = NodeGateway::parseAnnounced(entries[0]);
  EXPECT_EQ(a.service, "orders");
  EXPECT_EQ(a.base_path, "/api/orders");
  EXPECT_EQ(a.scopes, (std::vector<std::string>{"orders.write", "orders.read"}));
  ASSERT_TRUE(a.retry.has_value());
  EXPECT_EQ(*a.retry, m.route.retry);
}

TEST(NodeGatewayAnnounceTest, AnEntryTooLongForAProfileKeepsOnlyItsRoute) {
  std::string scopes;
  for (int i = 0; i < 30; ++i)
    scopes += std::string(i ? ", " : "") + "scope-number-" + std::to_string(i);
  auto entries = NodeGateway::announcedServices({parse("  route: {scopes: [" + scopes + "]}\n")});
  ASSERT_EQ(entries.size(), 1u);
  EXPECT_EQ(entries[0], "orders");
}

TEST(NodeGatewayAnnounceTest, MalformedFieldsFromAPeerAreIgnored) {
  auto a = NodeGateway::parseAnnounced("orders=/o;retry=x,1,2;scopes=;junk");
  EXPECT_EQ(a.base_path, "/o");
  EXPECT_TRUE(a.scopes.empty());
  EXPECT_FALSE(a.retry.has_value());
  auto b = NodeGateway::parseAnnounced("orders;retry=99,1000,2000,reset");
  EXPECT_FALSE(b.retry.has_value());  // attempts out of range
}

}  // namespace
}  // namespace edge::edged
