#include "runtime-shim/runtime.h"

#include <gtest/gtest.h>

#include <csignal>

namespace edge::runtime {
namespace {

TEST(RuntimeTest, NormalizeImageRef) {
  EXPECT_EQ(normalizeImageRef("busybox"), "busybox:latest");
  EXPECT_EQ(normalizeImageRef("docker.io/library/busybox:1"), "busybox:1");
  EXPECT_EQ(normalizeImageRef("example/busybox:1"), "example/busybox:1");
  EXPECT_EQ(normalizeImageRef("registry:5000/x"), "registry:5000/x:latest");
  EXPECT_EQ(normalizeImageRef("x@sha256:abc"), "x@sha256:abc");
}

TEST(RuntimeTest, ParseSignal) {
  EXPECT_EQ(*parseSignal("SIGTERM"), SIGTERM);
  EXPECT_EQ(*parseSignal("int"), SIGINT);
  EXPECT_EQ(*parseSignal("9"), SIGKILL);
  EXPECT_FALSE(parseSignal("SIGNOPE").isOk());
  EXPECT_FALSE(parseSignal("0").isOk());
  EXPECT_FALSE(parseSignal("").isOk());
}

}  // namespace
}  // namespace edge::runtime
