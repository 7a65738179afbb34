// What `edgectl describe` says about a manifest's ports (issue 13: a dynamic port showed
// as "http ?/tcp").
#include <gtest/gtest.h>

#include "cli/commands.h"

namespace edge::cli {
namespace {

Json spec(const char* text) {
  return *json::parse(text, "spec");
}

TEST(ManifestPortsTest, StaticPortShowsItsNumber) {
  EXPECT_EQ(manifestPorts(spec(R"({"ports":[{"name":"http","containerPort":8080}]})")),
            "http 8080/tcp");
  EXPECT_EQ(manifestPorts(spec(R"({"ports":[{"containerPort":53,"protocol":"udp"}]})")), "53/udp");
}

TEST(ManifestPortsTest, DynamicPortSaysItIsOnePerInstanceAndWhereTheNumberIs) {
  EXPECT_EQ(manifestPorts(spec(R"({"ports":[{"name":"http"}]})")),
            "http dynamic/tcp (a host port per instance, in $PORT and $PORT_HTTP)");
  // Only the first port is $PORT; names map as the node maps them (docs/manifest.md).
  EXPECT_EQ(manifestPorts(spec(R"({"ports":[{"name":"web","containerPort":80},)"
                               R"({"name":"metrics-v2","protocol":"udp"}]})")),
            "web 80/tcp, metrics-v2 dynamic/udp (a host port per instance, in "
            "$PORT_METRICS_V2)");
}

TEST(ManifestPortsTest, NoPortsIsADash) {
  EXPECT_EQ(manifestPorts(spec(R"({"image":"x"})")), "-");
  EXPECT_EQ(manifestPorts(spec(R"({"ports":[]})")), "-");
}

}  // namespace
}  // namespace edge::cli
