#include "orchestrator/manifest.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <functional>
#include <map>
#include <sstream>
#include <string>

namespace edge::orchestrator {
namespace {

using ::testing::HasSubstr;

constexpr char kFull[] = R"(
apiVersion: edge/v1
kind: Service
metadata:
  name: thumbnailer
  labels:
    team: media
    io.edgecloud/tier: edge
spec:
  image: registry.local/thumbnailer:1.4
  entrypoint: ["/bin/thumb"]
  command: ["--workers", "4"]
  env:
    LOG_LEVEL: debug
    ALPHA: "1"
  ports:
    - name: http
    - name: dns
      protocol: udp
  resources:
    cpu: 500m
    memory: 128Mi
    pids: 64
  replicas: 3
  restartPolicy: on-failure
  healthCheck:
    http: {path: /healthz, port: http}
    interval: 5s
    timeout: 500ms
    startPeriod: 10s
    retries: 5
  lifecycle:
    mode: on-demand
    idleTimeout: 2m
  route:
    basePath: /thumbs
    scope: global
    retry: {attempts: 2, perTryTimeout: 1500ms}
    scopes: [media.read, media.write]
)";

std::vector<ServiceManifest> parseOk(std::string_view text) {
  auto r = parseManifests(text, "test.yaml");
  EXPECT_TRUE(r.isOk()) << r.status().toString();
  if (!r.isOk()) return {};
  return std::move(r).value();
}

std::string parseError(std::string_view text) {
  auto r = parseManifests(text, "test.yaml");
  EXPECT_FALSE(r.isOk());
  if (r.isOk()) return "";
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  return r.status().message();
}

TEST(ManifestTest, FullManifestSetsEveryField) {
  auto v = parseOk(kFull);
  ASSERT_EQ(v.size(), 1u);
  const ServiceManifest& m = v[0];
  EXPECT_EQ(m.name, "thumbnailer");
  EXPECT_EQ(m.labels.at("team"), "media");
  EXPECT_EQ(m.labels.at("io.edgecloud/tier"), "edge");
  EXPECT_EQ(m.image, "registry.local/thumbnailer:1.4");
  EXPECT_FALSE(m.image_is_tarball);
  EXPECT_EQ(m.entrypoint, std::vector<std::string>{"/bin/thumb"});
  EXPECT_EQ(m.command, (std::vector<std::string>{"--workers", "4"}));
  EXPECT_EQ(m.env, (std::vector<EnvVar>{{"LOG_LEVEL", "debug"}, {"ALPHA", "1"}}));
  ASSERT_EQ(m.ports.size(), 2u);
  EXPECT_TRUE(m.ports[0].isDynamic());
  EXPECT_EQ(m.ports[0].protocol, "tcp");
  EXPECT_EQ(m.ports[0].name, "http");
  EXPECT_TRUE(m.ports[1].isDynamic());
  EXPECT_EQ(m.ports[1].protocol, "udp");
  EXPECT_EQ(m.ports[1].name, "dns");
  EXPECT_EQ(m.resources.nano_cpus, 500'000'000);
  EXPECT_EQ(m.resources.memory_bytes, 128 << 20);
  EXPECT_EQ(m.resources.pids, 64);
  EXPECT_EQ(m.replicas, 3);
  EXPECT_EQ(m.restart_policy, RestartPolicy::kOnFailure);
  ASSERT_TRUE(m.health_check.has_value());
  EXPECT_EQ(m.health_check->kind, HealthCheck::Kind::kHttp);
  EXPECT_EQ(m.health_check->http_path, "/healthz");
  EXPECT_EQ(m.health_check->port, 0);
  EXPECT_EQ(m.health_check->port_name, "http");
  EXPECT_EQ(m.health_check->interval, Millis(5000));
  EXPECT_EQ(m.health_check->timeout, Millis(500));
  EXPECT_EQ(m.health_check->start_period, Millis(10000));
  EXPECT_EQ(m.health_check->retries, 5);
  EXPECT_EQ(m.lifecycle.mode, Lifecycle::Mode::kOnDemand);
  EXPECT_EQ(m.lifecycle.idle_timeout, Millis(120000));
  EXPECT_EQ(m.route.base_path, "/thumbs");
  EXPECT_EQ(m.route.scope, Route::Scope::kGlobal);
  EXPECT_EQ(m.route.retry.attempts, 2);
  EXPECT_EQ(m.route.retry.per_try_timeout, Millis(1500));
  EXPECT_EQ(m.route.scopes, (std::vector<std::string>{"media.read", "media.write"}));
  EXPECT_TRUE(m.placement.nodes.empty());
  EXPECT_TRUE(m.placement.labels.empty());
}

TEST(ManifestTest, MinimalManifestGetsDefaults) {
  auto v = parseOk(
      "apiVersion: edge/v1\nkind: Service\nmetadata: {name: web}\n"
      "spec: {image: ./web.tar}\n");
  ASSERT_EQ(v.size(), 1u);
  const ServiceManifest& m = v[0];
  EXPECT_TRUE(m.image_is_tarball);
  EXPECT_FALSE(m.entrypoint.has_value());
  EXPECT_FALSE(m.command.has_value());
  EXPECT_TRUE(m.env.empty());
  EXPECT_TRUE(m.ports.empty());
  EXPECT_EQ(m.resources.nano_cpus, 0);
  EXPECT_EQ(m.resources.memory_bytes, 0);
  EXPECT_EQ(m.resources.pids, 0);
  EXPECT_EQ(m.replicas, 1);
  EXPECT_EQ(m.restart_policy, RestartPolicy::kAlways);
  EXPECT_FALSE(m.health_check.has_value());
  EXPECT_EQ(m.lifecycle.mode, Lifecycle::Mode::kAlways);
  EXPECT_EQ(m.route.base_path, "/web");
  EXPECT_EQ(m.route.scope, Route::Scope::kLocal);
  EXPECT_EQ(m.route.retry.attempts, 2);
  EXPECT_EQ(m.route.retry.per_try_timeout, Millis(15000));
  EXPECT_EQ(m.route.retry.timeout, Millis(30000));
  EXPECT_EQ(m.route.retry.on,
            (std::vector<std::string>{"502", "503", "504", "connect-failure", "reset"}));
  EXPECT_FALSE(m.route.retry.non_idempotent);
  EXPECT_TRUE(m.route.scopes.empty());
  EXPECT_TRUE(m.placement.nodes.empty());
}

TEST(ManifestTest, HealthCheckDefaultsAndOtherProbes) {
  auto v = parseOk(R"(
apiVersion: edge/v1
kind: Service
metadata: {name: a}
spec:
  image: a:1
  healthCheck: {tcp: {port: 80}}
---
apiVersion: edge/v1
kind: Service
metadata: {name: b}
spec:
  image: b:1
  healthCheck: {exec: {command: [/bin/check, -q]}}
  resources: {cpu: "1.5", memory: "67108864"}
)");
  ASSERT_EQ(v.size(), 2u);
  EXPECT_EQ(v[0].health_check->kind, HealthCheck::Kind::kTcp);
  EXPECT_EQ(v[0].health_check->port, 80);
  EXPECT_EQ(v[0].health_check->interval, Millis(10000));
  EXPECT_EQ(v[0].health_check->timeout, Millis(2000));
  EXPECT_EQ(v[0].health_check->retries, 3);
  EXPECT_EQ(v[1].health_check->kind, HealthCheck::Kind::kExec);
  EXPECT_EQ(v[1].health_check->exec_command, (std::vector<std::string>{"/bin/check", "-q"}));
  EXPECT_EQ(v[1].resources.nano_cpus, 1'500'000'000);
  EXPECT_EQ(v[1].resources.memory_bytes, 64 << 20);
}

TEST(ManifestTest, NullFieldsCountAsNotGiven) {
  auto v = parseOk(
      "apiVersion: edge/v1\nkind: Service\nmetadata: {name: a, labels: ~}\n"
      "spec:\n  image: a\n  env:\n  replicas:\n  route: {basePath: null}\n");
  ASSERT_EQ(v.size(), 1u);
  EXPECT_TRUE(v[0].env.empty());
  EXPECT_EQ(v[0].replicas, 1);
  EXPECT_EQ(v[0].route.base_path, "/a");
  EXPECT_THAT(parseError("apiVersion: edge/v1\nkind: Service\nmetadata: {name: a}\n"
                         "spec: {image: ~}\n"),
              HasSubstr("doc 1: spec.image: missing required field"));
}

TEST(ManifestTest, JsonIsAccepted) {
  auto v = parseOk(R"({"apiVersion": "edge/v1", "kind": "Service",
    "metadata": {"name": "api", "labels": {"a": "b"}},
    "spec": {"image": "api:2", "replicas": 2,
             "env": [{"name": "B", "value": "2"}, {"name": "A", "value": "1"}],
             "ports": [{"name": "api"}]}})");
  ASSERT_EQ(v.size(), 1u);
  EXPECT_EQ(v[0].name, "api");
  EXPECT_EQ(v[0].replicas, 2);
  EXPECT_EQ(v[0].env, (std::vector<EnvVar>{{"B", "2"}, {"A", "1"}}));
  EXPECT_EQ(v[0].ports[0].container_port, 0);
  EXPECT_EQ(v[0].ports[0].name, "api");
}

TEST(ManifestTest, MultipleDocumentsSkipEmptyOnes) {
  auto v = parseOk(R"(---
apiVersion: edge/v1
kind: Service
metadata: {name: one}
spec: {image: one:1}
---
---
# only a comment
---
apiVersion: edge/v1
kind: Service
metadata: {name: two}
spec: {image: two:1}
)");
  ASSERT_EQ(v.size(), 2u);
  EXPECT_EQ(v[0].name, "one");
  EXPECT_EQ(v[1].name, "two");
}

struct BadCase {
  std::string spec;      // YAML lines under "spec:", indented by two
  std::string expected;  // substring of the error message
};

class BadManifestTest : public ::testing::TestWithParam<BadCase> {};

TEST_P(BadManifestTest, NamesTheField) {
  std::string text =
      "apiVersion: edge/v1\nkind: Service\nmetadata: {name: svc}\nspec:\n" + GetParam().spec + "\n";
  std::string msg = parseError(text);
  EXPECT_THAT(msg, HasSubstr(GetParam().expected)) << text;
  EXPECT_THAT(msg, HasSubstr("test.yaml: doc 1: "));
}

INSTANTIATE_TEST_SUITE_P(
    Fields, BadManifestTest,
    ::testing::Values(
        BadCase{"  image: a\n  resources: {memory: 64MB}",
                "doc 1: spec.resources.memory: \"64MB\" is not a quantity; use 64Mi, 1Gi, ..."},
        BadCase{"  image: a\n  resources: {memory: 1Mi}",
                "spec.resources.memory: \"1Mi\" is below the minimum of 6Mi"},
        BadCase{"  image: a\n  resources: {cpu: lots}",
                "spec.resources.cpu: \"lots\" is not a CPU"},
        BadCase{"  image: a\n  resources: {pids: 0}", "spec.resources.pids: \"0\" is out of range"},
        BadCase{"  image: a\n  replicas: three",
                "spec.replicas: expected an integer, got \"three\""},
        BadCase{"  image: a\n  replicas: 1001",
                "spec.replicas: \"1001\" is out of range; allowed 0..1000"},
        BadCase{"  image: a\n  replicas: [1]", "spec.replicas: expected an integer, got a list"},
        BadCase{"  image: a\n  restartPolicy: sometimes",
                "spec.restartPolicy: \"sometimes\" is not allowed; use one of: always, "
                "on-failure, never"},
        BadCase{"  replicas: 1", "spec.image: missing required field"},
        BadCase{"  image: \"bad image\"", "spec.image: \"bad image\" is not an image"},
        BadCase{"  image: a\n  command: echo hi", "spec.command: expected a list of strings"},
        BadCase{"  image: a\n  entrypoint: [[x]]", "spec.entrypoint[0]: expected a string"},
        BadCase{"  image: a\n  env: {1BAD: x}", "spec.env.1BAD: \"1BAD\" is not a variable name"},
        BadCase{"  image: a\n  env: [{name: A, value: x}, {name: A, value: y}]",
                "spec.env[1].name: \"A\" is set twice"},
        BadCase{"  image: a\n  env: [{value: x}]", "spec.env[0].name: missing required field"},
        BadCase{"  image: a\n  ports: [{containerPort: 70000}]",
                "spec.ports[0].containerPort: \"70000\" is out of range; allowed 1..65535"},
        BadCase{"  image: a\n  ports: [{containerPort: 80, protocol: sctp}]",
                "spec.ports[0].protocol: \"sctp\" is not allowed; use one of: tcp, udp"},
        BadCase{"  image: a\n  ports: [{containerPort: 80}, {containerPort: 80}]",
                "spec.ports[1]: port 80/tcp is listed twice"},
        BadCase{"  image: a\n  healthCheck: {tcp: {port: 1}, exec: {command: [x]}}",
                "spec.healthCheck: give exactly one of http, tcp, exec (got 2)"},
        BadCase{"  image: a\n  healthCheck: {interval: 1s}",
                "spec.healthCheck: give exactly one of http, tcp, exec (got 0)"},
        BadCase{"  image: a\n  healthCheck: {http: {path: healthz, port: 80}}",
                "spec.healthCheck.http.path: \"healthz\" must start with '/'"},
        BadCase{"  image: a\n  healthCheck: {tcp: {port: 80}, timeout: soon}",
                "spec.healthCheck.timeout: \"soon\" is not a duration"},
        BadCase{"  image: a\n  healthCheck: {tcp: {port: 80}, interval: 1s, timeout: 2s}",
                "spec.healthCheck.timeout: 2000ms is longer than the interval (1000ms)"},
        BadCase{"  image: a\n  healthCheck: {tcp: {port: 80}, retries: 0}",
                "spec.healthCheck.retries: \"0\" is out of range"},
        BadCase{"  image: a\n  healthCheck: {exec: {command: []}}",
                "spec.healthCheck.exec.command: must not be empty"},
        BadCase{"  image: a\n  lifecycle: {mode: lazy}",
                "spec.lifecycle.mode: \"lazy\" is not allowed"},
        BadCase{"  image: a\n  lifecycle: {idleTimeout: 5m}",
                "spec.lifecycle.idleTimeout: only allowed with mode: on-demand"},
        BadCase{"  image: a\n  route: {basePath: api}",
                "spec.route.basePath: \"api\" must start with '/'"},
        BadCase{"  image: a\n  route: {scope: planet}",
                "spec.route.scope: \"planet\" is not allowed"},
        BadCase{"  image: a\n  route: {retry: {attempts: 11}}",
                "spec.route.retry.attempts: \"11\" is out of range; allowed 0..10"},
        BadCase{"  image: a\n  route: {retry: {perTryTimeout: 0s}}",
                "spec.route.retry.perTryTimeout: \"0s\" must be longer than 0"},
        BadCase{"  image: a\n  route: {retry: {on: [reset, 500]}}",
                "spec.route.retry.on[1]: \"500\" is not a retry condition; allowed: "
                "connect-failure, reset, timeout, 502, 503, 504"},
        BadCase{"  image: a\n  route: {retry: {perTryTimeout: 40s}}",
                "spec.route.retry.perTryTimeout: 40000ms is longer than the call's timeout "
                "(30000ms); make it shorter or raise timeout"},
        BadCase{"  image: a\n  route: {retry: {nonIdempotent: maybe}}",
                "spec.route.retry.nonIdempotent: \"maybe\" is not allowed; use one of: true, "
                "false"},
        BadCase{"  image: a\n  route: {scopes: [\"a b\"]}",
                "spec.route.scopes[0]: \"a b\" is not a token scope"},
        BadCase{"  image: a\n  placement: {nodes: edge-1}",
                "spec.placement.nodes: expected a list"},
        BadCase{"  image: a\n  placement: {labels: {\"bad key\": x}}",
                "spec.placement.labels.bad key: bad label key"},
        BadCase{"  image: a\n  replica: 2", "spec.replica: unknown field; did you mean replicas?"},
        BadCase{"  image: a\n  image: b", "spec.image: field given twice"},
        BadCase{"  image: a\n  resources: {memroy: 1Gi}",
                "spec.resources.memroy: unknown field; did you mean memory?"}));

TEST(ManifestTest, TopLevelProblems) {
  EXPECT_THAT(parseError("apiVersion: v1\nkind: Service\nmetadata: {name: a}\nspec: {image: a}"),
              HasSubstr("doc 1: apiVersion: \"v1\" is not allowed; use one of: edge/v1"));
  EXPECT_THAT(parseError("apiVersion: edge/v1\nkind: Pod\nmetadata: {name: a}\nspec: {image: a}"),
              HasSubstr("doc 1: kind: \"Pod\" is not allowed; use one of: Service"));
  EXPECT_THAT(parseError("apiVersion: edge/v1\nkind: Service\nmetadata: {name: My_App}\n"
                         "spec: {image: a}"),
              HasSubstr("doc 1: metadata.name: \"My_App\" is not a valid name"));
  EXPECT_THAT(parseError("apiVersion: edge/v1\nkind: Service\nspec: {image: a}"),
              HasSubstr("doc 1: metadata: missing required field"));
  EXPECT_THAT(parseError("just a string"),
              HasSubstr("doc 1: expected a mapping with apiVersion, kind, metadata and spec"));
  EXPECT_THAT(parseError(""), HasSubstr("no Service documents"));
  EXPECT_THAT(parseError("apiVersion: edge/v1\nkind: Service\nmetadata: {name: a}\n"
                         "spec: {image: a}\nstatus: {}"),
              HasSubstr("doc 1: status: unknown field"));
}

TEST(ManifestTest, ReportsEveryErrorAtOnce) {
  auto p = parseManifestsDetailed(R"(
apiVersion: edge/v1
kind: Service
metadata: {name: svc}
spec:
  image: a
  replicas: three
  restartPolicy: sometimes
  resources: {memory: 64MB, cpu: x}
  ports: [{containerPort: 0}]
)",
                                  "m.yaml");
  EXPECT_TRUE(p.services.empty());
  std::vector<std::string> paths;
  for (const auto& e : p.errors) {
    EXPECT_EQ(e.doc, 1);
    paths.push_back(e.path);
  }
  EXPECT_THAT(paths, ::testing::UnorderedElementsAre("spec.replicas", "spec.restartPolicy",
                                                     "spec.resources.memory", "spec.resources.cpu",
                                                     "spec.ports[0].containerPort"));
  auto r = parseManifests(
      "apiVersion: edge/v1\nkind: Service\nmetadata: {name: svc}\n"
      "spec: {replicas: three, restartPolicy: x}\n",
      "m.yaml");
  ASSERT_FALSE(r.isOk());
  // One error per line, each prefixed with the file.
  EXPECT_EQ(r.status().message(),
            "m.yaml: doc 1: spec.image: missing required field\n"
            "m.yaml: doc 1: spec.replicas: expected an integer, got \"three\"\n"
            "m.yaml: doc 1: spec.restartPolicy: \"x\" is not allowed; use one of: always, "
            "on-failure, never");
}

TEST(ManifestTest, ErrorsInSeveralDocumentsNameTheDocument) {
  std::string msg = parseError(R"(apiVersion: edge/v1
kind: Service
metadata: {name: a}
spec: {image: a, replicas: -1}
---
apiVersion: edge/v1
kind: Service
metadata: {name: b}
spec: {image: b, restartPolicy: no}
)");
  EXPECT_THAT(msg, HasSubstr("doc 1: spec.replicas"));
  EXPECT_THAT(msg, HasSubstr("doc 2: spec.restartPolicy"));
}

TEST(ManifestTest, DuplicateNamesAcrossDocuments) {
  std::string msg = parseError(R"(apiVersion: edge/v1
kind: Service
metadata: {name: web}
spec: {image: a}
---
apiVersion: edge/v1
kind: Service
metadata: {name: web}
spec: {image: b}
)");
  EXPECT_THAT(msg, HasSubstr("doc 2: metadata.name: \"web\" is already used by doc 1"));
}

TEST(ManifestTest, SyntaxErrorGivesLineAndColumn) {
  std::string msg = parseError(
      "apiVersion: edge/v1\nkind: Service\nmetadata: {name: a\n"
      "spec: {image: a}\n");
  EXPECT_THAT(msg, HasSubstr("test.yaml: line "));
  EXPECT_THAT(msg, HasSubstr("YAML syntax error"));
  msg = parseError("apiVersion: edge/v1\nkind: Service\n  bad: indent\n");
  EXPECT_THAT(msg, HasSubstr("line 3"));
}

TEST(ManifestTest, HostileInputDoesNotCrash) {
  std::string binary;
  for (int i = 0; i < 4096; ++i) binary += static_cast<char>((i * 131 + 7) % 256);
  EXPECT_FALSE(parseManifests(binary, "bin").isOk());
  EXPECT_FALSE(parseManifests(std::string("\0\0\0", 3), "nul").isOk());
  EXPECT_FALSE(parseManifests("{{{{}}}}]]][[[:::---\n- - - &a *a", "junk").isOk());

  std::string deep_flow = std::string(100000, '[') + std::string(100000, ']');
  EXPECT_THAT(parseError(deep_flow), HasSubstr("nested too deeply"));
  std::string deep_block;
  for (int i = 0; i < 5000; ++i) deep_block += "- ";
  deep_block += "x\n";
  EXPECT_THAT(parseError(deep_block), HasSubstr("nested too deeply"));
  std::string deep_map;
  for (int i = 0; i < 400; ++i) deep_map += std::string(static_cast<size_t>(i), ' ') + "a:\n";
  EXPECT_THAT(parseError(deep_map), HasSubstr("nested too deeply"));

  // Many errors: the list is capped, and the last entry says how many were left out.
  std::string many = "apiVersion: edge/v1\nkind: Service\nmetadata: {name: a}\nspec:\n  image: a\n";
  for (int i = 0; i < 3000; ++i) many += "  k" + std::to_string(i) + ": v\n";
  auto p = parseManifestsDetailed(many, "many");
  ASSERT_EQ(p.errors.size(), 101u);
  EXPECT_EQ(p.errors.back().message, "2900 more errors not shown");

  std::string huge(kMaxManifestBytes + 1, '#');
  EXPECT_THAT(parseError(huge), HasSubstr("the limit is"));

  // Aliases, tags and odd keys where fields are expected.
  EXPECT_FALSE(parseManifests("apiVersion: &v edge/v1\nkind: Service\nmetadata: {name: *v}\n"
                              "spec: {? [a] : b, image: !!binary aGVsbG8=}\n",
                              "odd")
                   .isOk());
  // Nesting just under the limit reaches yaml-cpp and fails cleanly on our schema.
  EXPECT_THAT(parseError(std::string(64, '[') + std::string(64, ']')),
              HasSubstr("expected a mapping"));
  // Deterministic byte mutations of a valid manifest: each parses or fails cleanly.
  uint32_t seed = 12345;
  auto next = [&seed] { return seed = seed * 1664525u + 1013904223u; };
  for (int round = 0; round < 2000; ++round) {
    std::string m = kFull;
    for (int k = 0; k < 3; ++k)
      m[next() % m.size()] = static_cast<char>(" -:[]{}\"'#&*!|>x0\n"[next() % 20]);
    (void)parseManifests(m, "mutated");
  }
  // Every prefix of a valid manifest: parses or fails cleanly.
  std::string full = kFull;
  for (size_t n = 0; n < full.size(); n += 7) (void)parseManifests(full.substr(0, n), "prefix");
}

TEST(ManifestTest, NonUtf8IsRefusedWithItsLine) {
  EXPECT_THAT(parseError("apiVersion: edge/v1\nkind: Service\nmetadata: {name: \xff}\n"),
              HasSubstr("test.yaml: line 3: the file is not UTF-8 text"));
  EXPECT_THAT(parseError(std::string("a: b\0", 5)), HasSubstr("line 1: the file is not UTF-8"));
  auto v = parseOk(
      "apiVersion: edge/v1\nkind: Service\nmetadata: {name: a}\n"
      "spec: {image: a, env: {GREETING: \"h\xc3\xa9llo\"}}\n");
  ASSERT_EQ(v.size(), 1u);
  EXPECT_EQ(v[0].env[0].value, "h\xc3\xa9llo");
}

TEST(ManifestTest, DuplicateNameReportedAlongsideOtherErrors) {
  std::string msg = parseError(R"(apiVersion: edge/v1
kind: Service
metadata: {name: web}
spec: {image: a}
---
apiVersion: edge/v1
kind: Service
metadata: {name: web}
spec: {image: b, replicas: x}
)");
  EXPECT_THAT(msg, HasSubstr("doc 2: metadata.name: \"web\" is already used by doc 1"));
  EXPECT_THAT(msg, HasSubstr("doc 2: spec.replicas"));
}

// The YAML block under "## Complete example" in docs/manifest.md; empty if missing.
std::string documentedExample() {
  const char* root = std::getenv("EDGE_SOURCE_DIR");
  if (root == nullptr) root = EDGE_TEST_SOURCE_DIR;
  std::ifstream in(std::string(root) + "/docs/manifest.md");
  std::stringstream ss;
  ss << in.rdbuf();
  std::string doc = ss.str();
  size_t section = doc.find("## Complete example");
  if (section == std::string::npos) return "";
  size_t begin = doc.find("```yaml\n", section);
  if (begin == std::string::npos) return "";
  begin += 8;
  size_t end = doc.find("```", begin);
  if (end == std::string::npos) return "";
  return doc.substr(begin, end - begin);
}

// The published schema's example must stay valid.
TEST(ManifestTest, DocumentedExampleParses) {
  std::string example = documentedExample();
  ASSERT_FALSE(example.empty()) << "no example in docs/manifest.md";
  auto v = parseOk(example);
  ASSERT_EQ(v.size(), 3u);
  EXPECT_EQ(v[0].name, "thumbnailer");
  EXPECT_EQ(v[1].name, "echo");
  EXPECT_TRUE(v[1].image_is_tarball);
  EXPECT_EQ(v[2].name, "web");
  EXPECT_EQ(v[2].placement.scope, Placement::Scope::kCluster);
  EXPECT_EQ(v[2].placement.constraints.size(), 3u);
  EXPECT_EQ(v[2].replicas, 3);
}

TEST(ManifestTest, ToContainerSpec) {
  auto v = parseOk(kFull);
  ASSERT_EQ(v.size(), 1u);
  runtime::ContainerSpec spec = toContainerSpec(v[0], 2);
  EXPECT_EQ(spec.name, "thumbnailer-2");
  EXPECT_EQ(spec.image, "registry.local/thumbnailer:1.4");
  EXPECT_EQ(spec.entrypoint, std::vector<std::string>{"/bin/thumb"});
  EXPECT_EQ(spec.cmd, (std::vector<std::string>{"--workers", "4"}));
  EXPECT_EQ(spec.env, (std::vector<std::string>{"LOG_LEVEL=debug", "ALPHA=1"}));
  EXPECT_EQ(spec.labels.at(runtime::kManagedLabel), "true");
  EXPECT_EQ(spec.labels.at("io.edgecloud.service"), "thumbnailer");
  EXPECT_EQ(spec.labels.at("io.edgecloud.replica"), "2");
  EXPECT_EQ(spec.labels.at("team"), "media");
  EXPECT_EQ(spec.resources.memory_bytes, 128 << 20);
  EXPECT_EQ(spec.resources.nano_cpus, 500'000'000);
  EXPECT_EQ(spec.resources.pids_limit, 64);
}

std::string svc(std::string_view spec) {
  return "apiVersion: edge/v1\nkind: Service\nmetadata: {name: svc}\nspec:\n" + std::string(spec) +
         "\n";
}

// --- canonical JSON ---

TEST(ManifestJsonTest, DefaultsAreWrittenOutInFull) {
  auto v = parseOk(
      "apiVersion: edge/v1\nkind: Service\nmetadata: {name: web}\nspec: {image: ./web.tar}\n");
  ASSERT_EQ(v.size(), 1u);
  EXPECT_EQ(manifestToJson(v[0]),
            R"({"apiVersion":"edge/v1","kind":"Service","metadata":{"labels":{},"name":"web"},)"
            R"("spec":{"command":null,"disconnect":{"lostAfter":"0s","replace":true},)"
            R"("entrypoint":null,"env":[],"healthCheck":null,)"
            R"("image":"./web.tar","lifecycle":{"idleTimeout":null,"mode":"always"},)"
            R"("placement":{"affinity":[],"constraints":[],"labels":{},"mode":"replicas",)"
            R"("nodes":[],"scope":"node","strategy":"spread"},"ports":[],"replicas":1,)"
            R"("resources":{"cpu":null,"memory":null,"pids":null},"restartPolicy":"always",)"
            R"("route":{"basePath":"/web","retry":{"attempts":2,"backoff":{"base":"25ms",)"
            R"("max":"250ms"},"nonIdempotent":false,"on":["502","503","504",)"
            R"("connect-failure","reset"],"perTryTimeout":"15s","timeout":"30s"},)"
            R"("scope":"local","scopes":[]},"update":{"autoRevert":true,)"
            R"("healthyDeadline":"2m","maxParallel":1,"minHealthyTime":"5s"}}})");
  auto back = parseOk(manifestToJson(v[0]));
  ASSERT_EQ(back.size(), 1u);
  EXPECT_EQ(back[0], v[0]);
}

TEST(ManifestJsonTest, DocumentedExampleRoundTrips) {
  auto v = parseOk(documentedExample());
  ASSERT_EQ(v.size(), 3u);
  for (const auto& m : v) {
    std::string json = manifestToJson(m);
    auto back = parseOk(json);
    ASSERT_EQ(back.size(), 1u) << json;
    EXPECT_EQ(back[0], m) << json;
    EXPECT_EQ(manifestToJson(back[0]), json);
  }
  std::string json = manifestToJson(v[0]);
  EXPECT_THAT(json, HasSubstr(R"("interval":"5s")"));
  EXPECT_THAT(json, HasSubstr(R"("timeout":"500ms")"));
  EXPECT_THAT(json, HasSubstr(R"("idleTimeout":"2m")"));
  EXPECT_THAT(json, HasSubstr(R"("perTryTimeout":"1500ms")"));
  EXPECT_THAT(json, HasSubstr(R"("memory":"128Mi")"));
  EXPECT_THAT(json, HasSubstr(R"("cpu":"500m")"));
  EXPECT_THAT(json, HasSubstr(R"("port":"http")"));
}

TEST(ManifestJsonTest, AwkwardValuesRoundTrip) {
  auto v = parseOk(svc(R"(  image: registry.local:5000/team/app:1.4@sha256:)"
                       R"(0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef
  entrypoint: []
  command: ["sh", "-c", "echo \"hi\"\tthere\\n", ""]
  env:
    - {name: Z, value: "quote \" backslash \\ tab \t newline \n bell \x07"}
    - {name: A, value: "h\u00e9llo \u2603"}
    - {name: EMPTY}
  ports:
    - {containerPort: 8080, name: web}
    - {containerPort: 5353, protocol: udp}
  resources: {cpu: "0.3", memory: 100M, pids: 7}
  healthCheck:
    tcp: {port: web}
    interval: 90s
    timeout: 1.5s
    startPeriod: 0s
  route: {basePath: "/a/b", retry: {perTryTimeout: 1h, timeout: 2h}})"));
  ASSERT_EQ(v.size(), 1u);
  const ServiceManifest& m = v[0];
  EXPECT_EQ(m.health_check->port, 8080);
  EXPECT_EQ(m.health_check->port_name, "web");
  EXPECT_EQ(m.resources.nano_cpus, 300'000'000);
  std::string json = manifestToJson(m);
  auto back = parseOk(json);
  ASSERT_EQ(back.size(), 1u) << json;
  EXPECT_EQ(back[0], m) << json;
  EXPECT_THAT(json, HasSubstr(R"("entrypoint":[])"));
  EXPECT_THAT(json, HasSubstr(R"("interval":"90s")"));
  EXPECT_THAT(json, HasSubstr(R"("perTryTimeout":"1h")"));

  // Values no YAML text above produces: exact sub-millicore CPUs, odd byte counts.
  ServiceManifest odd = m;
  odd.resources.nano_cpus = 1'000'000'001;
  odd.resources.memory_bytes = (int64_t{1} << 40) * 3 + 7;
  auto odd_back = parseOk(manifestToJson(odd));
  ASSERT_EQ(odd_back.size(), 1u);
  EXPECT_EQ(odd_back[0].resources, odd.resources);
}

// --- ports on the host network ---

TEST(ManifestPortsTest, PortWithoutContainerPortIsDynamic) {
  auto v = parseOk(svc(R"(  image: a:1
  replicas: 3
  ports:
    - name: http
    - {name: metrics-v2, protocol: udp}
  healthCheck: {http: {path: /ready, port: http}})"));
  ASSERT_EQ(v.size(), 1u);
  ASSERT_EQ(v[0].ports.size(), 2u);
  EXPECT_TRUE(v[0].ports[0].isDynamic());
  EXPECT_EQ(v[0].ports[0].name, "http");
  EXPECT_EQ(v[0].ports[1].protocol, "udp");
  EXPECT_EQ(v[0].health_check->port, 0);
  EXPECT_EQ(v[0].health_check->port_name, "http");
  EXPECT_EQ(portEnvName("http"), "PORT_HTTP");
  EXPECT_EQ(portEnvName("metrics-v2"), "PORT_METRICS_V2");
  EXPECT_STREQ(kPortEnv, "PORT");
}

TEST(ManifestPortsTest, StaticPortsAllowOneReplica) {
  for (const char* replicas : {"0", "1"}) {
    auto v = parseOk(svc(std::string("  image: a\n  replicas: ") + replicas +
                         "\n  ports: [{containerPort: 8080}, {containerPort: 53, protocol: udp}]"));
    ASSERT_EQ(v.size(), 1u);
    EXPECT_EQ(v[0].ports[0].container_port, 8080);
  }
}

TEST(ManifestPortsTest, ReplicasWithStaticPortExplainsTheFix) {
  std::string msg = parseError(
      svc("  image: a\n  replicas: 2\n  ports: [{name: ok}, {containerPort: 8080, name: web}]"));
  EXPECT_THAT(msg, HasSubstr("doc 1: spec.replicas: 2 replicas cannot share the static port "
                             "8080/tcp on one node: instances use the host's network, so each "
                             "would bind that same host port; declare the port without "
                             "containerPort"));
  EXPECT_THAT(msg, HasSubstr("set placement.scope: cluster (each replica then runs on a "
                             "different node)"));
  EXPECT_THAT(msg, HasSubstr("or use replicas: 1"));
  // One error for the rule, not one per port.
  msg =
      parseError(svc("  image: a\n  replicas: 5\n  ports: [{containerPort: 1}, "
                     "{containerPort: 2, protocol: udp}]"));
  EXPECT_EQ(msg.find("spec.replicas"), msg.rfind("spec.replicas")) << msg;
  EXPECT_THAT(msg, HasSubstr("static port 1/tcp"));
}

TEST(ManifestPortsTest, HealthCheckPortByNumberOrName) {
  const std::string ports =
      "  ports: [{containerPort: 8080, name: web}, {containerPort: 9000}, {name: admin}, "
      "{name: dns, protocol: udp}]\n";
  auto v = parseOk(svc("  image: a\n" + ports + "  healthCheck: {tcp: {port: 9000}}"));
  ASSERT_EQ(v.size(), 1u);
  EXPECT_EQ(v[0].health_check->port, 9000);
  EXPECT_EQ(v[0].health_check->port_name, "");
  v = parseOk(svc("  image: a\n" + ports + "  healthCheck: {http: {port: web}}"));
  ASSERT_EQ(v.size(), 1u);
  EXPECT_EQ(v[0].health_check->port, 8080);
  EXPECT_EQ(v[0].health_check->port_name, "web");
  v = parseOk(svc("  image: a\n" + ports + "  healthCheck: {http: {port: admin}}"));
  ASSERT_EQ(v.size(), 1u);
  EXPECT_EQ(v[0].health_check->port, 0);
  EXPECT_EQ(v[0].health_check->port_name, "admin");

  EXPECT_THAT(parseError(svc("  image: a\n" + ports + "  healthCheck: {http: {port: 9090}}")),
              HasSubstr("doc 1: spec.healthCheck.http.port: port 9090 is not a declared static "
                        "tcp port (a dynamic port is checked by its name); allowed: 8080, web, "
                        "9000, admin"));
  EXPECT_THAT(parseError(svc("  image: a\n" + ports + "  healthCheck: {tcp: {port: api}}")),
              HasSubstr("spec.healthCheck.tcp.port: \"api\" is not a declared port; allowed: "
                        "8080, web, 9000, admin"));
  EXPECT_THAT(parseError(svc("  image: a\n" + ports + "  healthCheck: {tcp: {port: dns}}")),
              HasSubstr("spec.healthCheck.tcp.port: \"dns\" is a udp port; http and tcp checks "
                        "need a tcp port"));
  EXPECT_THAT(parseError(svc("  image: a\n  healthCheck: {tcp: {port: web}}")),
              HasSubstr("spec.healthCheck.tcp.port: \"web\" names no port: spec.ports declares "
                        "none"));
  EXPECT_THAT(parseError(svc("  image: a\n  healthCheck: {tcp: {port: \"80 x\"}}")),
              HasSubstr("spec.healthCheck.tcp.port: \"80 x\" is neither a port number"));
  EXPECT_THAT(parseError(svc("  image: a\n  healthCheck: {tcp: {port: 0}}")),
              HasSubstr("spec.healthCheck.tcp.port: \"0\" is out of range; allowed 1..65535"));
  // Without declared ports a number is taken as is (the image's own port).
  v = parseOk(svc("  image: a\n  healthCheck: {tcp: {port: 80}}"));
  ASSERT_EQ(v.size(), 1u);
  EXPECT_EQ(v[0].health_check->port, 80);
}

TEST(ManifestPortsTest, PortProblems) {
  EXPECT_THAT(parseError(svc("  image: a\n  ports: [{protocol: tcp}]")),
              HasSubstr("doc 1: spec.ports[0]: a port without containerPort is dynamic (the "
                        "node gives each instance a free host port, in $PORT_<NAME>) and needs "
                        "a name"));
  EXPECT_THAT(parseError(svc("  image: a\n  ports: [{name: http}, {name: http}]")),
              HasSubstr("spec.ports[1].name: \"http\" is used by another port"));
  EXPECT_THAT(parseError(svc("  image: a\n  ports: [{name: http}]\n  env: {PORT_HTTP: \"1\"}")),
              HasSubstr("spec.env: \"PORT_HTTP\" is set by the node (the host port of port "
                        "\"http\")"));
  EXPECT_THAT(parseError(svc("  image: a\n  ports: [{containerPort: 80}]\n  env: {PORT: \"1\"}")),
              HasSubstr("spec.env: \"PORT\" is set by the node"));
  // A broken port list is reported once, not again through the health check.
  auto p = parseManifestsDetailed(svc("  image: a\n  ports: [{containerPort: x, name: web}]\n"
                                      "  healthCheck: {tcp: {port: web}}"),
                                  "m.yaml");
  ASSERT_EQ(p.errors.size(), 1u);
  EXPECT_EQ(p.errors[0].path, "spec.ports[0].containerPort");
}

// --- placement, disconnect, update (issue 15) ---

constexpr char kCluster[] = R"(
apiVersion: edge/v1
kind: Service
metadata: {name: web}
spec:
  image: web:1
  replicas: 3
  ports: [{containerPort: 8080, name: http}]
  placement:
    scope: cluster
    mode: replicas
    nodes: [edge-1, edge-2]
    labels: {zone: a}
    constraints: ["arch == x86_64", "power == mains", "label.zone == a", "role == cache", "memory >= 1Gi", "name != edge-7"]
    strategy: binpack
    affinity: [{label: zone, value: a, weight: 50}, {label: disk, value: hdd, weight: -20}]
  disconnect: {replace: false, lostAfter: 30s}
  update: {maxParallel: 2, minHealthyTime: 10s, healthyDeadline: 3m, autoRevert: false}
)";

// The whole message of a file whose only problem is `spec` (under "spec:", indented by two).
std::string onlyError(std::string_view spec) {
  return parseError(svc(spec));
}

TEST(ManifestPlacementTest, ClusterPlacementSetsEveryField) {
  auto v = parseOk(kCluster);
  ASSERT_EQ(v.size(), 1u);
  const ServiceManifest& m = v[0];
  const Placement& p = m.placement;
  EXPECT_EQ(p.scope, Placement::Scope::kCluster);
  EXPECT_EQ(p.mode, Placement::Mode::kReplicas);
  EXPECT_EQ(p.nodes, (std::vector<std::string>{"edge-1", "edge-2"}));
  EXPECT_EQ(p.labels, (std::map<std::string, std::string>{{"zone", "a"}}));
  using Op = PlacementConstraint::Op;
  EXPECT_EQ(p.constraints, (std::vector<PlacementConstraint>{
                               {"arch", Op::kEq, "x86_64", 0, "arch == x86_64"},
                               {"power", Op::kEq, "mains", 0, "power == mains"},
                               {"label.zone", Op::kEq, "a", 0, "label.zone == a"},
                               {"role", Op::kEq, "cache", 0, "role == cache"},
                               {"memory", Op::kGe, "1Gi", int64_t{1} << 30, "memory >= 1Gi"},
                               {"name", Op::kNe, "edge-7", 0, "name != edge-7"}}));
  EXPECT_EQ(p.strategy, Placement::Strategy::kBinpack);
  EXPECT_EQ(p.affinity, (std::vector<PlacementAffinity>{{"zone", "a", 50}, {"disk", "hdd", -20}}));
  EXPECT_EQ(m.disconnect, (DisconnectPolicy{false, Millis(30'000)}));
  EXPECT_EQ(m.update, (UpdatePolicy{2, Millis(10'000), Millis(180'000), false}));
}

TEST(ManifestPlacementTest, DefaultsWhenNotGiven) {
  for (const char* spec :
       {"  image: a", "  image: a\n  placement: {}\n  disconnect: {}\n  update: {}",
        "  image: a\n  placement: ~\n  disconnect: ~\n  update: ~"}) {
    auto v = parseOk(svc(spec));
    ASSERT_EQ(v.size(), 1u) << spec;
    EXPECT_EQ(v[0].placement, Placement{}) << spec;
    EXPECT_EQ(v[0].placement.scope, Placement::Scope::kNode);
    EXPECT_EQ(v[0].placement.mode, Placement::Mode::kReplicas);
    EXPECT_EQ(v[0].placement.strategy, Placement::Strategy::kSpread);
    EXPECT_EQ(v[0].disconnect, (DisconnectPolicy{true, Millis(0)})) << spec;
    EXPECT_EQ(v[0].update, (UpdatePolicy{1, Millis(5'000), Millis(120'000), true})) << spec;
  }
  // An affinity's weight defaults to 50, as in Nomad.
  auto v = parseOk(
      svc("  image: a\n  placement: {scope: cluster, affinity: [{label: zone, value: b}]}"));
  ASSERT_EQ(v.size(), 1u);
  EXPECT_EQ(v[0].placement.affinity, (std::vector<PlacementAffinity>{{"zone", "b", 50}}));
}

TEST(ManifestPlacementTest, EveryNodeInTheCluster) {
  auto v = parseOk(svc("  image: a\n  placement: {scope: cluster, mode: every-node}"));
  ASSERT_EQ(v.size(), 1u);
  EXPECT_EQ(v[0].placement.mode, Placement::Mode::kEveryNode);
  EXPECT_EQ(v[0].replicas, 1);
  // replicas: 1 is the default written out: nothing to refuse.
  EXPECT_EQ(parseOk(svc("  image: a\n  replicas: 1\n  placement: {scope: cluster, mode: "
                        "every-node}"))
                .size(),
            1u);
  for (const char* n : {"0", "3"}) {
    EXPECT_EQ(onlyError(std::string("  image: a\n  replicas: ") + n +
                        "\n  placement: {scope: cluster, mode: every-node}"),
              std::string("test.yaml: doc 1: spec.replicas: ") + n +
                  " is not allowed with placement.mode: every-node, which runs one instance on "
                  "each eligible node (the nodes make the count); remove replicas, or use mode: "
                  "replicas");
  }
}

struct ConstraintCase {
  std::string text;
  std::string attribute;
  PlacementConstraint::Op op;
  std::string value;
  int64_t quantity;
};

class ConstraintGrammarTest : public ::testing::TestWithParam<ConstraintCase> {};

TEST_P(ConstraintGrammarTest, Parses) {
  const ConstraintCase& k = GetParam();
  auto v = parseOk(
      svc("  image: a\n  placement:\n    scope: cluster\n    constraints: ['" + k.text + "']"));
  ASSERT_EQ(v.size(), 1u);
  ASSERT_EQ(v[0].placement.constraints.size(), 1u);
  const PlacementConstraint& c = v[0].placement.constraints[0];
  EXPECT_EQ(c.attribute, k.attribute);
  EXPECT_EQ(c.op, k.op);
  EXPECT_EQ(c.value, k.value);
  EXPECT_EQ(c.quantity, k.quantity);
  EXPECT_EQ(c.text, k.text);  // as written, spaces and all
}

using Op = PlacementConstraint::Op;
INSTANTIATE_TEST_SUITE_P(
    Good, ConstraintGrammarTest,
    ::testing::Values(ConstraintCase{"arch == x86_64", "arch", Op::kEq, "x86_64", 0},
                      ConstraintCase{"arch==aarch64", "arch", Op::kEq, "aarch64", 0},
                      ConstraintCase{"os != windows", "os", Op::kNe, "windows", 0},
                      ConstraintCase{"runtime == light", "runtime", Op::kEq, "light", 0},
                      ConstraintCase{"power == battery", "power", Op::kEq, "battery", 0},
                      ConstraintCase{"power!=mains", "power", Op::kNe, "mains", 0},
                      ConstraintCase{"name != edge-7", "name", Op::kNe, "edge-7", 0},
                      ConstraintCase{"node == 3f9a0c", "node", Op::kEq, "3f9a0c", 0},
                      ConstraintCase{"role == cache", "role", Op::kEq, "cache", 0},
                      ConstraintCase{"label.zone == a", "label.zone", Op::kEq, "a", 0},
                      ConstraintCase{"label.io.edge/rack-2 != b 7", "label.io.edge/rack-2", Op::kNe,
                                     "b 7", 0},
                      ConstraintCase{"  cpu >= 500m  ", "cpu", Op::kGe, "500m", 500},
                      ConstraintCase{"cpu>2", "cpu", Op::kGt, "2", 2000},
                      ConstraintCase{"cpu <= 0.5", "cpu", Op::kLe, "0.5", 500},
                      ConstraintCase{"cpu < 1.25", "cpu", Op::kLt, "1.25", 1250},
                      ConstraintCase{"cpu == 0", "cpu", Op::kEq, "0", 0},
                      ConstraintCase{"memory >= 1Gi", "memory", Op::kGe, "1Gi", int64_t{1} << 30},
                      ConstraintCase{"memory\t<\t512Mi", "memory", Op::kLt, "512Mi", 512 << 20},
                      ConstraintCase{"memory > 100M", "memory", Op::kGt, "100M", 100'000'000}));

struct BadConstraintCase {
  std::string text;     // inside single quotes in YAML
  std::string problem;  // what follows "<quoted text>: "
};

// A text as error messages quote it: in double quotes, cut after 60 characters.
std::string shown(const std::string& s) {
  return "\"" + (s.size() > 60 ? s.substr(0, 60) + "..." : s) + "\"";
}

class BadConstraintTest : public ::testing::TestWithParam<BadConstraintCase> {};

TEST_P(BadConstraintTest, ExactMessage) {
  const BadConstraintCase& k = GetParam();
  std::string text =
      "  image: a\n  placement:\n    scope: cluster\n    constraints: [\"arch == "
      "x86_64\", '" +
      k.text + "']";
  auto p = parseManifestsDetailed(svc(text), "m.yaml");
  ASSERT_EQ(p.errors.size(), 1u) << text;
  EXPECT_EQ(p.errors[0].path, "spec.placement.constraints[1]");
  EXPECT_EQ(p.errors[0].message, shown(k.text) + ": " + k.problem);
}

INSTANTIATE_TEST_SUITE_P(
    Bad, BadConstraintTest,
    ::testing::Values(
        BadConstraintCase{"memory >> 1Gi", "unknown operator '>>'; use ==, !=, >=, >, <=, <"},
        BadConstraintCase{"arch = x86_64", "unknown operator '='; use ==, !=, >=, >, <=, <"},
        BadConstraintCase{"arch =< x86_64", "unknown operator '=<'; use ==, !=, >=, >, <=, <"},
        BadConstraintCase{"arch x86_64",
                          "no operator after \"arch\"; write <attribute> <op> <value>, e.g. "
                          "\"arch == x86_64\" or \"memory >= 1Gi\" (use ==, !=, >=, >, <=, <)"},
        BadConstraintCase{"== x86_64",
                          "the attribute is missing; write <attribute> <op> <value>, e.g. "
                          "\"arch == x86_64\" or \"memory >= 1Gi\""},
        BadConstraintCase{"  ",
                          "the constraint is empty; write <attribute> <op> <value>, e.g. "
                          "\"arch == x86_64\" or \"memory >= 1Gi\""},
        BadConstraintCase{"arch ==", "the value is missing after '=='"},
        BadConstraintCase{"Arch == x86_64",
                          "unknown attribute \"Arch\"; did you mean arch? (allowed: arch, os, "
                          "runtime, power, name, node, role, cpu, memory, label.<key>)"},
        BadConstraintCase{"zone == a",
                          "unknown attribute \"zone\"; did you mean node, or the node label "
                          "label.zone? (allowed: arch, os, runtime, power, name, node, role, cpu, "
                          "memory, label.<key>)"},
        BadConstraintCase{"camera == usb",
                          "unknown attribute \"camera\"; for a node label write label.camera "
                          "(allowed: arch, os, runtime, power, name, node, role, cpu, memory, "
                          "label.<key>)"},
        BadConstraintCase{"label == a",
                          "unknown attribute \"label\"; write label.<key>, e.g. label.zone "
                          "(allowed: arch, os, runtime, power, name, node, role, cpu, memory, "
                          "label.<key>)"},
        BadConstraintCase{"arch.x == a",
                          "unknown attribute \"arch.x\"; did you mean arch, or the node label "
                          "label.arch.x? (allowed: arch, os, runtime, power, name, node, role, "
                          "cpu, memory, label.<key>)"},
        BadConstraintCase{"label.== a",
                          "the label key \"\" is not a node label key; use 1-63 letters, "
                          "digits, '.', '_', '/' or '-'"},
        BadConstraintCase{"label." + std::string(64, 'k') + " == a",
                          "the label key \"" + std::string(60, 'k') +
                              "...\" is not a node label key; use 1-63 letters, digits, '.', "
                              "'_', '/' or '-'"},
        BadConstraintCase{"label.a:b == a",
                          "the label key \"a:b\" is not a node label key; use 1-63 letters, "
                          "digits, '.', '_', '/' or '-'"},
        BadConstraintCase{"arch >= x86_64",
                          "'>=' compares quantities: only cpu and memory; use == or != with arch"},
        BadConstraintCase{"label.zone < b",
                          "'<' compares quantities: only cpu and memory; use == or != with "
                          "label.zone"},
        BadConstraintCase{"power == solar",
                          "\"solar\" is not a power source; use mains or battery"},
        BadConstraintCase{"power >= mains",
                          "'>=' compares quantities: only cpu and memory; use == or != with power"},
        BadConstraintCase{"cpu >= lots", "\"lots\" is not a CPU quantity; use e.g. 500m, 0.5 or 2"},
        BadConstraintCase{"cpu >= -1", "\"-1\" is not a CPU quantity; use e.g. 500m, 0.5 or 2"},
        BadConstraintCase{"cpu >= 0.0005",
                          "\"0.0005\" is finer than a millicore; use e.g. 500m, 0.5 or 2"},
        BadConstraintCase{"memory >= 1GB",
                          "\"1GB\" is not a quantity of bytes; use e.g. 512Mi, 1Gi"},
        BadConstraintCase{"name == " + std::string(254, 'n'),
                          "the value is 254 characters long; at most 253"}));

TEST(ManifestPlacementTest, ConstraintValueWithControlCharacters) {
  auto p = parseManifestsDetailed(
      svc("  image: a\n  placement: {scope: cluster, constraints: [\"role == a\\x01b\"]}"),
      "m.yaml");
  ASSERT_EQ(p.errors.size(), 1u);
  EXPECT_EQ(p.errors[0].path, "spec.placement.constraints[0]");
  EXPECT_EQ(p.errors[0].message,
            "\"role == a\\x01b\": the value \"a\\x01b\" holds control characters");
  // A constraint must be a string.
  EXPECT_THAT(onlyError("  image: a\n  placement: {scope: cluster, constraints: [{arch: x}]}"),
              HasSubstr("doc 1: spec.placement.constraints[0]: expected a string, got a mapping"));
  EXPECT_THAT(onlyError("  image: a\n  placement: {scope: cluster, constraints: \"arch == x\"}"),
              HasSubstr("doc 1: spec.placement.constraints: expected a list of strings (write "
                        "<attribute> <op> <value>, e.g. \"arch == x86_64\" or \"memory >= "
                        "1Gi\"), got \"arch == x\""));
}

TEST(ManifestPlacementTest, EveryBadConstraintIsReported) {
  auto p = parseManifestsDetailed(svc("  image: a\n  placement:\n    scope: cluster\n"
                                      "    constraints: [\"a == 1\", \"arch == x\", \"cpu > x\"]"),
                                  "m.yaml");
  ASSERT_EQ(p.errors.size(), 2u);
  EXPECT_EQ(p.errors[0].path, "spec.placement.constraints[0]");
  EXPECT_EQ(p.errors[1].path, "spec.placement.constraints[2]");
}

std::string listOf(size_t n, const std::function<std::string(size_t)>& item) {
  std::string out = "[";
  for (size_t i = 0; i < n; ++i) out += (i ? ", " : "") + item(i);
  return out + "]";
}

TEST(ManifestPlacementTest, Limits) {
  auto constraint = [](size_t i) { return "\"label.k" + std::to_string(i) + " == v\""; };
  auto affinity = [](size_t i) {
    return "{label: k" + std::to_string(i) + ", value: v, weight: 1}";
  };
  auto node = [](size_t i) { return "edge-" + std::to_string(i); };
  auto v = parseOk(svc(
      "  image: a\n  placement:\n    scope: cluster\n    constraints: " + listOf(32, constraint) +
      "\n    affinity: " + listOf(16, affinity) + "\n    nodes: " + listOf(64, node)));
  ASSERT_EQ(v.size(), 1u);
  EXPECT_EQ(v[0].placement.constraints.size(), 32u);
  EXPECT_EQ(v[0].placement.affinity.size(), 16u);
  EXPECT_EQ(v[0].placement.nodes.size(), 64u);
  auto p = parseManifestsDetailed(
      svc("  image: a\n  placement:\n    scope: cluster\n    constraints: " +
          listOf(33, constraint) + "\n    affinity: " + listOf(17, affinity) +
          "\n    nodes: " + listOf(65, node)),
      "m.yaml");
  ASSERT_EQ(p.errors.size(), 3u);
  EXPECT_EQ(p.errors[0].toString(),
            "doc 1: spec.placement.nodes: at most 64 nodes are allowed, got 65");
  EXPECT_EQ(p.errors[1].toString(),
            "doc 1: spec.placement.constraints: at most 32 constraints are allowed, got 33");
  EXPECT_EQ(p.errors[2].toString(),
            "doc 1: spec.placement.affinity: at most 16 affinity entries are allowed, got 17");
}

TEST(ManifestPlacementTest, FieldProblems) {
  const std::string pre = "  image: a\n  placement: {scope: cluster, ";
  EXPECT_EQ(onlyError("  image: a\n  placement: {scope: planet}"),
            "test.yaml: doc 1: spec.placement.scope: \"planet\" is not allowed; use one of: "
            "node, cluster");
  struct Case {
    std::string placement;
    std::string error;
  };
  for (const Case& k : std::vector<Case>{
           {"mode: everywhere",
            "spec.placement.mode: \"everywhere\" is not allowed; use one of: replicas, "
            "every-node"},
           {"strategy: pack",
            "spec.placement.strategy: \"pack\" is not allowed; use one of: spread, binpack"},
           {"strategy: [spread]", "spec.placement.strategy: expected a string, got a list"},
           {"region: a",
            "spec.placement.region: unknown field (allowed: scope, mode, nodes, labels, "
            "constraints, strategy, affinity)"},
           {"constraint: [\"arch == x\"]",
            "spec.placement.constraint: unknown field; did you mean constraints? (allowed: "
            "scope, mode, nodes, labels, constraints, strategy, affinity)"},
           {"nodes: [\"edge 1\"]",
            "spec.placement.nodes[0]: \"edge 1\" is not a node name; use a non-empty word "
            "without spaces"},
           {"labels: {\"bad key\": x}",
            "spec.placement.labels.bad key: bad label key \"bad key\"; use letters, digits, "
            "'-', '_', '.', '/' (at most 253)"},
           {"affinity: {label: zone}",
            "spec.placement.affinity: expected a list of {label, value, weight}, got a "
            "mapping"},
           {"affinity: [{value: a, weight: 5}]",
            "spec.placement.affinity[0].label: missing required field (a node label key)"},
           {"affinity: [{label: zone, weight: 5}]",
            "spec.placement.affinity[0].value: missing required field (the label's value)"},
           {"affinity: [{label: zone, value: \"\"}]",
            "spec.placement.affinity[0].value: must not be empty"},
           {"affinity: [{label: \"a b\", value: a}]",
            "spec.placement.affinity[0].label: \"a b\" is not a node label key; use 1-63 "
            "letters, digits, '.', '_', '/' or '-'"},
           {"affinity: [{label: zone, value: a, weight: 0}]",
            "spec.placement.affinity[0].weight: 0 has no effect; use 1..100 to prefer the "
            "nodes with this label, -100..-1 to avoid them"},
           {"affinity: [{label: zone, value: a, weight: 101}]",
            "spec.placement.affinity[0].weight: \"101\" is out of range; allowed -100..100"},
           {"affinity: [{label: zone, value: a, weight: -101}]",
            "spec.placement.affinity[0].weight: \"-101\" is out of range; allowed -100..100"},
           {"affinity: [{label: zone, value: a, weight: high}]",
            "spec.placement.affinity[0].weight: expected an integer, got \"high\""},
           {"affinity: [{label: zone, value: a, wieght: 5}]",
            "spec.placement.affinity[0].wieght: unknown field; did you mean weight? (allowed: "
            "label, value, weight)"},
           {"affinity: [{label: zone, value: a}, {label: zone, value: a, weight: 5}]",
            "spec.placement.affinity[1]: label \"zone=a\" is listed twice; give it once, with "
            "the sum of the weights"},
       }) {
    EXPECT_EQ(onlyError(pre + k.placement + "}"), "test.yaml: doc 1: " + k.error) << k.placement;
  }
}

TEST(ManifestPlacementTest, DisconnectAndUpdate) {
  auto v =
      parseOk(svc("  image: a\n  disconnect: {replace: false, lostAfter: 24h}\n"
                  "  update: {maxParallel: 100, minHealthyTime: 0s, healthyDeadline: 1ms}"));
  ASSERT_EQ(v.size(), 1u);
  EXPECT_EQ(v[0].disconnect, (DisconnectPolicy{false, Millis(86'400'000)}));
  EXPECT_EQ(v[0].update, (UpdatePolicy{100, Millis(0), Millis(1), true}));
  struct Case {
    std::string spec;
    std::string error;
  };
  for (const Case& k : std::vector<Case>{
           {"disconnect: {replace: maybe}",
            "spec.disconnect.replace: \"maybe\" is not allowed; use one of: true, false"},
           {"disconnect: {lostAfter: soon}",
            "spec.disconnect.lostAfter: \"soon\" is not a duration; use e.g. 500ms, 2s, 1.5m, "
            "1h"},
           {"disconnect: {lostAfter: 25h}",
            "spec.disconnect.lostAfter: \"25h\" is out of range; allowed 0s up to 24h"},
           {"disconnect: {lostafter: 1s}",
            "spec.disconnect.lostafter: unknown field; did you mean lostAfter? (allowed: "
            "replace, lostAfter)"},
           {"disconnect: true", "spec.disconnect: expected a mapping, got \"true\""},
           {"update: {maxParallel: 0}",
            "spec.update.maxParallel: \"0\" is out of range; allowed 1..100"},
           {"update: {maxParallel: 101}",
            "spec.update.maxParallel: \"101\" is out of range; allowed 1..100"},
           {"update: {minHealthyTime: 2d}",
            "spec.update.minHealthyTime: \"2d\" is not a duration; use e.g. 500ms, 2s, 1.5m, "
            "1h"},
           {"update: {minHealthyTime: 25h}",
            "spec.update.minHealthyTime: \"25h\" is out of range; allowed 0s up to 24h"},
           {"update: {healthyDeadline: 0s}",
            "spec.update.healthyDeadline: \"0s\" must be longer than 0"},
           {"update: {healthyDeadline: 1441m}",
            "spec.update.healthyDeadline: \"1441m\" is out of range; allowed more than 0 up "
            "to 24h"},
           {"update: {healthyDeadline: 5s}",
            "spec.update.healthyDeadline: 5000ms is not longer than minHealthyTime (5000ms): a "
            "new instance must stay healthy for minHealthyTime before the deadline; make it "
            "longer"},
           {"update: {minHealthyTime: 3m}",
            "spec.update.healthyDeadline: 120000ms is not longer than minHealthyTime "
            "(180000ms): a new instance must stay healthy for minHealthyTime before the "
            "deadline; make it longer"},
           {"update: {autoRevert: yes}",
            "spec.update.autoRevert: \"yes\" is not allowed; use one of: true, false"},
       }) {
    EXPECT_EQ(onlyError("  image: a\n  " + k.spec), "test.yaml: doc 1: " + k.error) << k.spec;
  }
}

// scope: node (the default) runs the service where it is applied: a field that chooses
// nodes could never be met there, so it is refused, pointing to scope: cluster.
TEST(ManifestPlacementTest, ScopeNodeRefusesClusterFields) {
  const std::string why =
      "needs scope: cluster; with scope: node (the default) a service runs on the node it is "
      "applied to, whatever its placement says; set spec.placement.scope: cluster to have the "
      "cluster place it";
  auto r = parseManifests(svc("  image: a\n  placement: {nodes: [edge-1]}"), "m.yaml");
  ASSERT_FALSE(r.isOk());
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(r.status().message(), "m.yaml: doc 1: spec.placement.nodes: " + why);
  auto p = parseManifestsDetailed(svc(R"(  image: a
  placement:
    scope: node
    mode: every-node
    nodes: [edge-1, edge-2]
    labels: {gpu: "true"}
    constraints: ["arch == x86_64"]
    strategy: binpack
    affinity: [{label: zone, value: a, weight: 5}])"),
                                  "m.yaml");
  std::vector<std::string> lines;
  for (const auto& e : p.errors) lines.push_back(e.toString());
  EXPECT_THAT(lines, ::testing::ElementsAre("doc 1: spec.placement.nodes: " + why,
                                            "doc 1: spec.placement.labels: " + why,
                                            "doc 1: spec.placement.constraints: " + why,
                                            "doc 1: spec.placement.affinity: " + why,
                                            "doc 1: spec.placement.mode: \"every-node\" " + why,
                                            "doc 1: spec.placement.strategy: \"binpack\" " + why));
  EXPECT_TRUE(p.services.empty());
  // The defaults written out pin nothing.
  auto v =
      parseOk(svc("  image: a\n  placement: {scope: node, mode: replicas, strategy: spread, "
                  "nodes: [], labels: {}, constraints: [], affinity: []}"));
  ASSERT_EQ(v.size(), 1u);
  EXPECT_EQ(v[0].placement, Placement{});
}

TEST(ManifestPlacementTest, EmptyPlacementIsAccepted) {
  for (const char* placement : {"{}", "{nodes: [], labels: {}}", "~"}) {
    auto v = parseOk(svc(std::string("  image: a\n  placement: ") + placement));
    ASSERT_EQ(v.size(), 1u) << placement;
    EXPECT_TRUE(v[0].placement.nodes.empty());
    EXPECT_TRUE(v[0].placement.labels.empty());
  }
}

// Replicas of scope cluster land on different nodes (the scheduler counts each node's
// taken host ports), so a static port no longer limits them to one.
TEST(ManifestPlacementTest, StaticPortWithReplicasNeedsScopeCluster) {
  const std::string spec = "  image: a\n  replicas: 3\n  ports: [{containerPort: 8080}]\n";
  for (const char* placement : {"{scope: cluster}", "{scope: cluster, strategy: binpack}"}) {
    auto v = parseOk(svc(spec + "  placement: " + placement));
    ASSERT_EQ(v.size(), 1u) << placement;
    EXPECT_EQ(v[0].replicas, 3);
    EXPECT_EQ(v[0].ports[0].container_port, 8080);
  }
  EXPECT_EQ(onlyError(spec + "  placement: {scope: node}"),
            "test.yaml: doc 1: spec.replicas: 3 replicas cannot share the static port 8080/tcp "
            "on one node: instances use the host's network, so each would bind that same host "
            "port; declare the port without containerPort (a dynamic port: each instance gets "
            "its own, in $PORT_<NAME>), set placement.scope: cluster (each replica then runs "
            "on a different node), or use replicas: 1");
  // A broken placement says nothing of the scope: only its own error is reported.
  EXPECT_EQ(onlyError(spec + "  placement: {scope: clustr}"),
            "test.yaml: doc 1: spec.placement.scope: \"clustr\" is not allowed; use one of: "
            "node, cluster");
}

// The canonical JSON of every placement field, parsed back to the same manifest.
TEST(ManifestPlacementTest, CanonicalFormRoundTrips) {
  std::vector<std::string> corpus = {
      kCluster,
      svc("  image: a\n  placement: {scope: cluster, mode: every-node, constraints: "
          "[\"  power==battery \", 'label.a/b.c_d-e != \"x y\"', \"cpu<0.25\"]}"),
      svc("  image: a\n  replicas: 0\n  placement: {scope: cluster, affinity: [{label: z, "
          "value: \"h\\u00e9\", weight: -100}, {label: z, value: b, weight: 100}]}\n"
          "  disconnect: {lostAfter: 1500ms}\n  update: {minHealthyTime: 0s, healthyDeadline: "
          "90m}"),
      svc("  image: a\n  placement: {scope: cluster, nodes: [edge-2, edge-1, edge-2], "
          "constraints: [\"memory > 1.5Gi\", \"memory <= 1000000\"]}"),
  };
  for (const auto& text : corpus) {
    auto v = parseOk(text);
    ASSERT_EQ(v.size(), 1u) << text;
    std::string json = manifestToJson(v[0]);
    auto back = parseOk(json);
    ASSERT_EQ(back.size(), 1u) << json;
    EXPECT_EQ(back[0], v[0]) << json;
    EXPECT_EQ(manifestToJson(back[0]), json);
  }
  auto v = parseOk(kCluster);
  ASSERT_EQ(v.size(), 1u);
  std::string json = manifestToJson(v[0]);
  EXPECT_THAT(
      json,
      HasSubstr(R"("placement":{"affinity":[{"label":"zone","value":"a","weight":50},)"
                R"({"label":"disk","value":"hdd","weight":-20}],"constraints":["arch == x86_64",)"
                R"("power == mains","label.zone == a","role == cache","memory >= 1Gi",)"
                R"("name != edge-7"],"labels":{"zone":"a"},"mode":"replicas",)"
                R"("nodes":["edge-1","edge-2"],"scope":"cluster","strategy":"binpack"})"));
  EXPECT_THAT(json, HasSubstr(R"("disconnect":{"lostAfter":"30s","replace":false})"));
  EXPECT_THAT(json, HasSubstr(R"("update":{"autoRevert":false,"healthyDeadline":"3m",)"
                              R"("maxParallel":2,"minHealthyTime":"10s"})"));

  // A constraint built in code without its text is written from its parts.
  ServiceManifest m = v[0];
  m.placement.constraints = {{"cpu", PlacementConstraint::Op::kGe, "500m", 500, ""}};
  auto built = parseOk(manifestToJson(m));
  ASSERT_EQ(built.size(), 1u);
  ASSERT_EQ(built[0].placement.constraints.size(), 1u);
  EXPECT_EQ(built[0].placement.constraints[0].text, "cpu >= 500m");
  EXPECT_EQ(built[0].placement.constraints[0].quantity, 500);
}

// The canonical form an edged before issue 15 stored: no scope, mode, constraints,
// strategy, affinity, disconnect or update. It reads back with their defaults.
constexpr char kStoredBeforePlacement[] =
    R"({"apiVersion":"edge/v1","kind":"Service","metadata":{"labels":{},"name":"web"},)"
    R"("spec":{"command":null,"entrypoint":null,"env":[],"healthCheck":null,)"
    R"("image":"./web.tar","lifecycle":{"idleTimeout":null,"mode":"always"},)"
    R"("placement":{"labels":{},"nodes":[]},"ports":[{"containerPort":8080,"name":null,)"
    R"("protocol":"tcp"}],"replicas":1,)"
    R"("resources":{"cpu":null,"memory":null,"pids":null},"restartPolicy":"always",)"
    R"("route":{"basePath":"/web","retry":{"attempts":2,"backoff":{"base":"25ms",)"
    R"("max":"250ms"},"nonIdempotent":false,"on":["502","503","504",)"
    R"("connect-failure","reset"],"perTryTimeout":"15s","timeout":"30s"},)"
    R"("scope":"local","scopes":[]}}})";

TEST(ManifestPlacementTest, DocumentStoredBeforePlacementReadsWithDefaults) {
  for (auto origin : {ManifestOrigin::kStored, ManifestOrigin::kApply}) {
    auto r = parseManifests(kStoredBeforePlacement, "stored manifest", origin);
    ASSERT_TRUE(r.isOk()) << r.status().toString();
    ASSERT_EQ(r->size(), 1u);
    const ServiceManifest& m = (*r)[0];
    EXPECT_EQ(m.placement, Placement{});
    EXPECT_EQ(m.disconnect, DisconnectPolicy{});
    EXPECT_EQ(m.update, UpdatePolicy{});
    EXPECT_EQ(m.ports[0].container_port, 8080);
    // Written again, it gains the new keys, and reads back the same.
    auto back = parseOk(manifestToJson(m));
    ASSERT_EQ(back.size(), 1u);
    EXPECT_EQ(back[0], m);
  }
}

// A document stored by a build that accepted any placement still reads (the store must
// not lose a service over a rule added later); applying it again meets the rule.
TEST(ManifestPlacementTest, StoredDocumentWithPlacementStillReads) {
  std::string text = kStoredBeforePlacement;
  const std::string empty = R"("placement":{"labels":{},"nodes":[]})";
  text.replace(text.find(empty), empty.size(),
               R"("placement":{"labels":{"x/y":""},"nodes":["edge-1"]})");
  auto stored = parseManifests(text, "stored manifest", ManifestOrigin::kStored);
  ASSERT_TRUE(stored.isOk()) << stored.status().toString();
  ASSERT_EQ(stored->size(), 1u);
  const ServiceManifest& m = (*stored)[0];
  EXPECT_EQ(m.placement.scope, Placement::Scope::kNode);
  EXPECT_EQ(m.placement.nodes, std::vector<std::string>{"edge-1"});
  EXPECT_EQ(m.placement.labels.at("x/y"), "");
  std::string json = manifestToJson(m);
  EXPECT_THAT(json, HasSubstr(R"("labels":{"x/y":""},"mode":"replicas","nodes":["edge-1"],)"
                              R"("scope":"node")"));
  auto back = parseManifests(json, "stored manifest", ManifestOrigin::kStored);
  ASSERT_TRUE(back.isOk()) << back.status().toString();
  EXPECT_EQ((*back)[0], m);
  EXPECT_THAT(parseError(json), HasSubstr("spec.placement.nodes: needs scope: cluster"));
  // Every other rule still holds for a stored document.
  EXPECT_FALSE(parseManifests(svc("  image: \"bad image\""), "s", ManifestOrigin::kStored).isOk());
  EXPECT_FALSE(
      parseManifests(svc("  image: a\n  placement: {scope: planet}"), "s", ManifestOrigin::kStored)
          .isOk());
}

// --- image references ---

struct ImageCase {
  std::string image;
  std::string problem;  // empty = valid
};

class ImageReferenceTest : public ::testing::TestWithParam<ImageCase> {};

TEST_P(ImageReferenceTest, Grammar) {
  const ImageCase& c = GetParam();
  std::string text = svc("  image: \"" + c.image + "\"");
  if (c.problem.empty()) {
    auto v = parseOk(text);
    ASSERT_EQ(v.size(), 1u);
    EXPECT_EQ(v[0].image, c.image);
    return;
  }
  std::string msg = parseError(text);
  EXPECT_THAT(msg, HasSubstr("doc 1: spec.image: \"" + c.image.substr(0, 60)));
  EXPECT_THAT(msg, HasSubstr(c.problem));
  if (c.problem == "is not an image") return;  // spaces: refused before the grammar
  EXPECT_THAT(msg, HasSubstr("use e.g. busybox:1.36, registry.local:5000/team/app:1.4 or "
                             "app@sha256:<64 hex digits>, or a path ending in .tar"));
}

const std::string kDigest = "sha256:" + std::string(64, 'a');

INSTANTIATE_TEST_SUITE_P(
    Table, ImageReferenceTest,
    ::testing::Values(
        ImageCase{"busybox", ""}, ImageCase{"busybox:1.36", ""},
        ImageCase{"library/busybox:latest", ""}, ImageCase{"registry.local/thumbnailer:1.4", ""},
        ImageCase{"localhost:5000/a/b:c", ""}, ImageCase{"localhost/app", ""},
        ImageCase{"127.0.0.1:5000/x", ""}, ImageCase{"Registry.Example.com/team/app", ""},
        ImageCase{"app@" + kDigest, ""}, ImageCase{"reg.io:443/team/app:1.0@" + kDigest, ""},
        ImageCase{"team/a__b.c-d---e_f", ""}, ImageCase{"app:_V1.0-rc.1", ""},
        ImageCase{"app:" + std::string(128, 't'), ""},
        // Tarballs are paths, not references.
        ImageCase{"./Images/My App.v2.tar", "is not an image"}, ImageCase{"./Images/MyApp.tar", ""},
        ImageCase{"/srv/x.tar", ""},
        ImageCase{"Busybox", "the path component \"Busybox\" must be lower-case"},
        ImageCase{"team/App:1", "\"App\" must be lower-case"},
        ImageCase{"a_-b",
                  "the path component \"a_-b\" must be lower-case letters and digits "
                  "separated by '.', '_', '__' or '-'"},
        ImageCase{"a___b", "path component"}, ImageCase{"-a", "path component"},
        ImageCase{"a.", "path component"}, ImageCase{"a//b", "empty path component"},
        ImageCase{"/abs/app", "empty path component"},
        ImageCase{"busybox:", "the tag \"\" must be 1-128 letters"},
        ImageCase{"busybox:-x", "the tag \"-x\""}, ImageCase{"busybox:a+b", "the tag \"a+b\""},
        ImageCase{"app:" + std::string(129, 't'), "the tag"},
        ImageCase{"app@sha256:abc", "the digest after '@' must be sha256: and 64 lower-case hex"},
        ImageCase{"app@md5:" + std::string(64, 'a'), "the digest"},
        ImageCase{"app@sha256:" + std::string(64, 'A'), "the digest"},
        ImageCase{"reg.io:99999/app", "the registry \"reg.io:99999\" is not a host name"},
        ImageCase{"reg_io.local/app", "the registry"},
        ImageCase{":1", "the repository name is missing"},
        ImageCase{std::string(256, 'a'), "longer than 255"}));

// yaml-cpp 0.7's LoadAll never returns on this (upstream #1319); found by manifest_fuzz.
TEST(ManifestTest, AStrayCommaIsAnErrorNotAHang) {
  ManifestParse p = parseManifestsDetailed(",\n", "m.yaml");
  EXPECT_TRUE(p.services.empty());
  ASSERT_FALSE(p.errors.empty());
}

TEST(ManifestTest, DocumentsAreNumberedByTheirMarkersAndErrorsKeepFileLines) {
  const char* text =
      "# header comment\n"
      "---\n"
      "apiVersion: edge/v1\nkind: Service\nmetadata: {name: a}\nspec: {image: busybox}\n"
      "---\n"
      "---\n"
      "apiVersion: edge/v1\nkind: Service\nmetadata: {name: b}\nspec: {replicas: x}\n";
  ManifestParse p = parseManifestsDetailed(text, "m.yaml");
  ASSERT_FALSE(p.errors.empty());
  bool found = false;
  for (const auto& e : p.errors)
    if (e.doc == 3 && e.path == "spec.replicas") found = true;
  EXPECT_TRUE(found) << p.errors[0].toString();

  ManifestParse bad = parseManifestsDetailed("a: 1\n---\nb: [1,\n", "m.yaml");
  ASSERT_EQ(bad.errors.size(), 1u);
  EXPECT_THAT(bad.errors[0].message, HasSubstr("line 4"));
}

}  // namespace
}  // namespace edge::orchestrator
