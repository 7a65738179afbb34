#include "cli/output.h"

#include <gtest/gtest.h>
#include <yaml-cpp/yaml.h>

namespace edge::cli {
namespace {

using namespace std::chrono_literals;

TEST(TableTest, AlignsColumnsUnderUpperCaseHeaders) {
  Table t({"name", "gen", "state"});
  t.addRow({"web", "3", "running"});
  t.addRow({"thumbnailer", "12", "crashloop"});
  EXPECT_EQ(t.render(),
            "NAME          GEN   STATE\n"
            "web           3     running\n"
            "thumbnailer   12    crashloop\n");
}

TEST(TableTest, NoTrailingSpacesMissingCellsAndNoHeader) {
  Table t({"A", "B", "C"});
  t.addRow({"x"});
  t.addRow({"long", "", ""});
  EXPECT_EQ(t.render(), "A      B   C\nx\nlong\n");
  EXPECT_EQ(t.render(false), "x\nlong\n");
}

TEST(TableTest, CountsCharactersNotBytesAndKeepsRowsOnOneLine) {
  Table t({"N", "V"});
  t.addRow({"äöü", "1"});
  t.addRow({"abcd", "two\nlines"});
  EXPECT_EQ(t.render(), "N      V\näöü    1\nabcd   two lines\n");
}

TEST(AgeTest, WholeUnitsLikeKubectl) {
  EXPECT_EQ(formatAge(0s), "0s");
  EXPECT_EQ(formatAge(59s), "59s");
  EXPECT_EQ(formatAge(60s), "1m");
  EXPECT_EQ(formatAge(3min + 59s), "3m");
  EXPECT_EQ(formatAge(2h + 5min), "2h");
  EXPECT_EQ(formatAge(5 * 24h + 3h), "5d");
  EXPECT_EQ(formatAge(800 * 24h), "2y");
  EXPECT_EQ(formatAge(-5s), "0s");  // node clock ahead of ours
}

TEST(AgeTest, SinceTimestampUsesTheGivenNow) {
  WallTime now;
  ASSERT_TRUE(parseTimestamp("2026-11-27T14:00:00Z", &now));
  EXPECT_EQ(formatAgeSince("2026-11-27T13:57:00.123Z", now), "2m");
  EXPECT_EQ(formatAgeSince("2026-11-25T14:00:00Z", now), "2d");
  EXPECT_EQ(formatAgeSince("", now), "-");
  EXPECT_EQ(formatAgeSince("yesterday", now), "-");
}

TEST(BytesTest, BinaryUnits) {
  EXPECT_EQ(formatBytes(0), "0B");
  EXPECT_EQ(formatBytes(1023), "1023B");
  EXPECT_EQ(formatBytes(1536), "1.5KiB");
  EXPECT_EQ(formatBytes(20 << 20), "20.0MiB");
  EXPECT_EQ(formatBytes(-1), "0B");
}

TEST(FieldTest, AnyShapeRendersWithoutThrowing) {
  Json j = Json::parse(R"({"s":"x","n":3,"b":true,"z":null,"o":{"a":1},"l":[1]})");
  EXPECT_EQ(field(j, "s"), "x");
  EXPECT_EQ(field(j, "n"), "3");
  EXPECT_EQ(field(j, "b"), "true");
  EXPECT_EQ(field(j, "z", "-"), "-");
  EXPECT_EQ(field(j, "missing", "-"), "-");
  EXPECT_EQ(field(j, "o"), R"({"a":1})");
  EXPECT_EQ(field(Json::array(), "s", "?"), "?");
  EXPECT_EQ(intField(j, "n"), 3);
  EXPECT_EQ(intField(j, "s", -1), -1);
  EXPECT_EQ(at(j, "o.a"), 1);
  EXPECT_TRUE(at(j, "o.a.b").is_null());
  EXPECT_TRUE(at(j, "s.x").is_null());
}

TEST(OutputFormatTest, ParsesKnownAndExplainsUnknown) {
  EXPECT_EQ(*parseOutputFormat("json"), OutputFormat::kJson);
  EXPECT_EQ(*parseOutputFormat("yaml"), OutputFormat::kYaml);
  EXPECT_EQ(*parseOutputFormat("table"), OutputFormat::kTable);
  Result<OutputFormat> bad = parseOutputFormat("xml");
  ASSERT_FALSE(bad.isOk());
  EXPECT_NE(bad.status().message().find("use table, json or yaml"), std::string::npos);
}

TEST(RenderTest, JsonIsPrettyAndSorted) {
  Json j = Json::parse(R"({"b":1,"a":{"c":[true]}})");
  EXPECT_EQ(renderDocument(j, OutputFormat::kJson),
            "{\n  \"a\": {\n    \"c\": [\n      true\n    ]\n  },\n  \"b\": 1\n}\n");
}

TEST(RenderTest, YamlCarriesTheSameData) {
  Json j = Json::parse(R"({"name":"web","generation":3,"ready":true,"ratio":0.5,
    "version":"1.10","flag":"true","empty":"","none":null,"labels":{},"list":[],
    "ports":{"http":20001},"cmd":["sh","-c","echo a: b"],"text":"line1\nline2"})");
  std::string y = toYaml(j);
  EXPECT_NE(y.find("name: web\n"), std::string::npos) << y;
  EXPECT_NE(y.find("version: \"1.10\"\n"), std::string::npos) << y;
  EXPECT_NE(y.find("flag: \"true\"\n"), std::string::npos) << y;
  EXPECT_NE(y.find("generation: 3\n"), std::string::npos) << y;
  EXPECT_NE(y.find("ready: true\n"), std::string::npos) << y;
  EXPECT_NE(y.find("labels: {}\n"), std::string::npos) << y;
  EXPECT_NE(y.find("list: []\n"), std::string::npos) << y;

  YAML::Node n = YAML::Load(y);
  EXPECT_EQ(n["name"].as<std::string>(), "web");
  EXPECT_EQ(n["generation"].as<int>(), 3);
  EXPECT_TRUE(n["ready"].as<bool>());
  EXPECT_DOUBLE_EQ(n["ratio"].as<double>(), 0.5);
  EXPECT_EQ(n["empty"].as<std::string>(), "");
  EXPECT_TRUE(n["none"].IsNull());
  EXPECT_EQ(n["ports"]["http"].as<int>(), 20001);
  EXPECT_EQ(n["cmd"][2].as<std::string>(), "echo a: b");
  EXPECT_EQ(n["text"].as<std::string>(), "line1\nline2");
  // A quoted "true" stays a string for readers that resolve tags (YAML 1.1 and 1.2 alike).
  EXPECT_EQ(n["flag"].Tag(), "!");
  EXPECT_EQ(n["version"].Tag(), "!");
}

}  // namespace
}  // namespace edge::cli
