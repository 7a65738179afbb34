// edge-backend's /metrics text: every series documented and typed, counters named as
// Prometheus wants (promtool checks the live text in tests/integration/metrics_lint.sh).
#include "backend/backend_metrics.h"

#include <gtest/gtest.h>

#include <sstream>

namespace edge::backend {
namespace {

TEST(BackendMetricsTest, EverySampleHasHelpAndTypeAndCountersEndInTotal) {
  nlohmann::json stats = {{"instance", "b1"},         {"address", "198.18.0.1:8085"},
                          {"connections", 3},         {"sep_active", 2},
                          {"bep_active", 1},          {"bep_waiting", 0},
                          {"bytes_relayed", 4096},    {"tickets_refused", 5},
                          {"connections_refused", 0}, {"signals_forwarded", 7},
                          {"signals_failed", 1},      {"a_new_stat", 9}};
  std::string text = metricsText(stats, 42);
  std::istringstream lines(text);
  std::string typed, type;
  int samples = 0;
  for (std::string l; std::getline(lines, l);) {
    if (l.starts_with("# TYPE ")) {
      std::istringstream f(l.substr(7));
      f >> typed >> type;
      continue;
    }
    if (l.starts_with("#")) continue;
    std::string name = l.substr(0, l.find(' '));
    EXPECT_EQ(name, typed) << "sample without its own TYPE line: " << l;
    EXPECT_EQ(name.ends_with("_total"), type == "counter") << l;
    ++samples;
  }
  EXPECT_EQ(samples, 11);
  EXPECT_NE(text.find("edge_backend_relay_bytes_total 4096\n"), std::string::npos) << text;
  EXPECT_NE(text.find("edge_backend_store_revision 42\n"), std::string::npos) << text;
  EXPECT_EQ(text.find("a_new_stat"), std::string::npos) << "undocumented stats stay out";
}

TEST(BackendMetricsTest, StoreDownIsZeroWithoutARevision) {
  std::string text = metricsText(nlohmann::json::object(), std::nullopt);
  EXPECT_NE(text.find("edge_backend_store_up 0\n"), std::string::npos) << text;
  EXPECT_EQ(text.find("edge_backend_store_revision"), std::string::npos) << text;
}

}  // namespace
}  // namespace edge::backend
