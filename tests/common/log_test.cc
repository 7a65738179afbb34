#include "common/log.h"

#include <gtest/gtest.h>

namespace edge::log {
namespace {

TEST(LogTest, KeyValueLineAndLevels) {
  std::vector<std::string> lines;
  setSink([&](std::string_view l) { lines.emplace_back(l); });
  setLevel(Level::kInfo);
  LOG_INFO("container started").kv("id", "ab12").kv("pid", 42).kv("note", "two words");
  LOG_DEBUG("hidden").kv("x", 1);
  setSink(nullptr);
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_NE(
      lines[0].find("level=info msg=\"container started\" id=ab12 pid=42 note=\"two words\"\n"),
      std::string::npos)
      << lines[0];
  EXPECT_EQ(lines[0].rfind("ts=", 0), 0u);
}

TEST(LogTest, QuoteEscapes) {
  EXPECT_EQ(quote("plain"), "plain");
  EXPECT_EQ(quote(""), "\"\"");
  EXPECT_EQ(quote("a=\"b\"\n"), "\"a=\\\"b\\\"\\n\"");
}

}  // namespace
}  // namespace edge::log
