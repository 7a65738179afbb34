#include "common/json.h"

#include <gtest/gtest.h>

#include <limits>

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

// Numbers an int64_t cannot hold are refused with the range, not cast (undefined
// behaviour for a double, a silent wrap to a negative number for a large unsigned).
TEST(JsonTest, GetIntRefusesNumbersOutOfRange) {
  Json j = *parse(R"({"big": 1e300, "neg": -1e19, "u": 18446744073709551615,
                      "max": 9223372036854775807, "min": -9223372036854775808,
                      "f": 42.0, "two63": 9223372036854775808.0, "half": 2.5})",
                  "doc");
  const std::string allowed =
      " is out of range; allowed: integers from -9223372036854775808 to 9223372036854775807";
  Result<int64_t> r = getInt(j, "big", ".cfg");
  ASSERT_FALSE(r.isOk());
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(r.status().message(), ".cfg.big: 1e+300" + allowed);
  EXPECT_EQ(getInt(j, "neg", ".cfg").status().message(), ".cfg.neg: -1e+19" + allowed);
  EXPECT_EQ(getInt(j, "u", ".cfg").status().message(), ".cfg.u: 18446744073709551615" + allowed);
  EXPECT_EQ(getInt(j, "two63", ".cfg").status().message(),
            ".cfg.two63: 9.223372036854776e+18" + allowed);
  EXPECT_EQ(getInt(j, "half", ".cfg").status().message(),
            ".cfg.half: expected an integer, got 2.5");
  EXPECT_EQ(*getInt(j, "max", ".cfg"), std::numeric_limits<int64_t>::max());
  EXPECT_EQ(*getInt(j, "min", ".cfg"), std::numeric_limits<int64_t>::min());
  EXPECT_EQ(*getInt(j, "f", ".cfg"), 42);
  // Not from a parse, but a caller may build one.
  Json nan = {{"x", std::numeric_limits<double>::quiet_NaN()}};
  EXPECT_EQ(getInt(nan, "x", "").status().code(), StatusCode::kInvalidArgument);
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
