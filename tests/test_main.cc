// main() of every test executable (edge_add_test): gtest's, except that a run in which a
// test skipped and none failed exits 77. CTest (SKIP_RETURN_CODE 77) then reports the
// executable as skipped instead of passed, so a skip is seen (tests/test_env.h says when
// a test may skip at all). A failure still exits 1, whatever else skipped.
#include <gtest/gtest.h>

namespace {
constexpr int kSkipped = 77;
}

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  int rc = RUN_ALL_TESTS();
  if (rc == 0 && ::testing::UnitTest::GetInstance()->skipped_test_count() > 0) return kSkipped;
  return rc;
}
