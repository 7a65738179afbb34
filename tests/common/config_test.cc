#include "common/config.h"

#include <gtest/gtest.h>

#include "common/fs.h"

namespace edge {
namespace {

TEST(ConfigTest, DefaultsFileAndOverrides) {
  Config c({{"runtime.kind", "auto"}, {"log.level", "info"}, {"stop.timeout", "10s"}});
  std::string path = ::testing::TempDir() + "/cfg.json";
  ASSERT_TRUE(
      fs::writeFileAtomic(path, R"({"runtime": {"kind": "light"}, "stop": {"timeout": "2s"}})")
          .isOk());
  ASSERT_TRUE(c.loadFile(path).isOk());
  EXPECT_EQ(c.getString("runtime.kind"), "light");
  EXPECT_EQ(c.getDuration("stop.timeout")->count(), 2000);
  ASSERT_TRUE(c.set("log.level", "debug").isOk());
  EXPECT_EQ(c.getString("log.level"), "debug");
}

TEST(ConfigTest, UnknownKeyInFileChangesNothing) {
  Config c(std::map<std::string, std::string>{{"runtime.kind", "auto"}});
  std::string path = ::testing::TempDir() + "/cfg2.json";
  ASSERT_TRUE(fs::writeFileAtomic(path, R"({"runtime": {"kind": "light", "knd": "x"}})").isOk());
  Status s = c.loadFile(path);
  ASSERT_FALSE(s.isOk());
  EXPECT_NE(s.message().find("runtime.knd"), std::string::npos) << s.message();
  EXPECT_NE(s.message().find(path), std::string::npos);
  EXPECT_EQ(c.getString("runtime.kind"), "auto");
}

TEST(ConfigTest, MalformedJsonNamesTheFile) {
  Config c(std::map<std::string, std::string>{{"a", "1"}});
  std::string path = ::testing::TempDir() + "/cfg3.json";
  ASSERT_TRUE(fs::writeFileAtomic(path, "{\"a\": ").isOk());
  Status s = c.loadFile(path);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("cfg3.json"), std::string::npos);
}

TEST(ParseTest, Bytes) {
  EXPECT_EQ(*parseBytes("64Mi"), 64 << 20);
  EXPECT_EQ(*parseBytes("64m"), 64 << 20);
  EXPECT_EQ(*parseBytes("1Gi"), int64_t{1} << 30);
  EXPECT_EQ(*parseBytes("100M"), 100'000'000);
  EXPECT_EQ(*parseBytes("4096"), 4096);
  Result<int64_t> bad = parseBytes("64MB");
  ASSERT_FALSE(bad.isOk());
  EXPECT_NE(bad.status().message().find("64Mi"), std::string::npos);
  EXPECT_FALSE(parseBytes("").isOk());
  EXPECT_FALSE(parseBytes("-1").isOk());
  EXPECT_FALSE(parseBytes("1e400").isOk());
}

TEST(ParseTest, Durations) {
  EXPECT_EQ(parseDuration("500ms")->count(), 500);
  EXPECT_EQ(parseDuration("1.5m")->count(), 90'000);
  EXPECT_EQ(parseDuration("3")->count(), 3000);
  EXPECT_FALSE(parseDuration("3 days").isOk());
  EXPECT_FALSE(parseDuration("s").isOk());
}

}  // namespace
}  // namespace edge
