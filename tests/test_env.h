#pragma once
// What a test may ask of the machine it runs on, and when a missing piece is a skip or a
// failure. CI runs as root with EDGE_REQUIRE_DOCKER=1 (scripts/test.sh); there nothing
// may skip. A developer's machine (not root, no dockerd) skips, and the skip shows:
// tests/test_main.cc exits 77 when a test skipped, which CTest reports as "Skipped"
// and scripts/test.sh counts as not passed.
//
//   EDGE_SKIP_UNLESS_ROOT(why)      skips when not root
//   EDGE_SETUP_FAILED(why)          a set-up step (unshare, a mount, a netns) failed:
//                                   fails as root, skips otherwise
//   EDGE_DOCKER_MISSING(why)        no Docker Engine: fails when dockerRequired(), else
//                                   skips
// Each returns from the calling function (a void one: a TEST body, SetUp) as
// GTEST_SKIP() and FAIL() do.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <string_view>

// EDGE_TEST_UNDER_ASAN: 1 in an AddressSanitizer build, whichever compiler (GCC defines
// __SANITIZE_ADDRESS__, clang 14 only answers __has_feature). Memory bounds (peak RSS) do
// not hold there: the shadow memory and the quarantine come on top.
#if defined(__SANITIZE_ADDRESS__)
#define EDGE_TEST_UNDER_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define EDGE_TEST_UNDER_ASAN 1
#endif
#endif
#ifndef EDGE_TEST_UNDER_ASAN
#define EDGE_TEST_UNDER_ASAN 0
#endif

namespace edge::testenv {

// EDGE_REQUIRE_DOCKER=1: a missing Docker Engine is a failure. Any other value (or none)
// is not, so EDGE_REQUIRE_DOCKER=0 means what it says.
inline bool dockerRequired() {
  const char* v = std::getenv("EDGE_REQUIRE_DOCKER");
  return v != nullptr && std::string_view(v) == "1";
}

inline bool isRoot() {
  return ::geteuid() == 0;
}

}  // namespace edge::testenv

#define EDGE_SKIP_UNLESS_ROOT(why)                                         \
  do {                                                                     \
    if (!::edge::testenv::isRoot()) GTEST_SKIP() << "needs root: " << why; \
  } while (0)

#define EDGE_SETUP_FAILED(why)                                                       \
  do {                                                                               \
    if (::edge::testenv::isRoot()) FAIL() << why << " (running as root: a failure)"; \
    GTEST_SKIP() << why;                                                             \
  } while (0)

#define EDGE_DOCKER_MISSING(why)                                                        \
  do {                                                                                  \
    if (::edge::testenv::dockerRequired()) FAIL() << why << " (EDGE_REQUIRE_DOCKER=1)"; \
    GTEST_SKIP() << why << " (EDGE_REQUIRE_DOCKER=1 makes this a failure)";             \
  } while (0)
