#include "common/json.h"

#include <gtest/gtest.h>

namespace edge::json {
namespace {

TEST(JsonTest, TypedAccessNamesThePath) {
  Json j = *parse(R"({"a": "x", "n": 3, "arr": ["p", 2], "m": {"k": "v"}})", "doc");
  EXPECT_EQ(*getString(j, "a", ".cfg"), "x");
  EXPECT_EQ(*getInt(j, "n", ".cfg"), 3);
  EXPECT_EQ(*getString(j, "missing", ".cfg", "dflt"), "dflt");
  Result<std::string> wrong = getString(j, "n", ".cfg");
  ASSERT_FALSE(wrong.isOk());
  EXPECT_EQ(wrong.status().message(), ".cfg.n: expected a string, got number");
  Result<std::vector<std::string>> arr = getStringArray(j, "arr", "");
  ASSERT_FALSE(arr.isOk());
  EXPECT_EQ(arr.status().message(), ".arr[1]: expected a string, got number");
  EXPECT_EQ(getStringMap(j, "m", "")->at("k"), "v");
  EXPECT_FALSE(getInt(j, "missing", "").isOk());
}

TEST(JsonTest, ParseErrorIsInvalidArgument) {
  Result<Json> r = parse("{\"a\":", "body");
  ASSERT_FALSE(r.isOk());
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(r.status().message().rfind("body is not valid JSON", 0), 0u);
}

TEST(JsonTest, DumpSurvivesInvalidUtf8) {
  Json j = std::string(
      "a\xff"
      "b");
  EXPECT_NO_THROW(dump(j));
}

}  // namespace
}  // namespace edge::json

namespace edge::json {
namespace {
// nlohmann throws out_of_range, not parse_error, for a number beyond double's range.
TEST(JsonParseTest, AHugeNumberIsAnErrorNotACrash) {
  auto r = parse(R"({"Memory": 1e400})", "body");
  ASSERT_FALSE(r.isOk());
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
}
}  // namespace
}  // namespace edge::json
