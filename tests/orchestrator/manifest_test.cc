#include "orchestrator/manifest.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
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
  ASSERT_EQ(v.size(), 2u);
  EXPECT_EQ(v[0].name, "thumbnailer");
  EXPECT_EQ(v[1].name, "echo");
  EXPECT_TRUE(v[1].image_is_tarball);
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
            R"("spec":{"command":null,"entrypoint":null,"env":[],"healthCheck":null,)"
            R"("image":"./web.tar","lifecycle":{"idleTimeout":null,"mode":"always"},)"
            R"("placement":{"labels":{},"nodes":[]},"ports":[],"replicas":1,)"
            R"("resources":{"cpu":null,"memory":null,"pids":null},"restartPolicy":"always",)"
            R"("route":{"basePath":"/web","retry":{"attempts":2,"backoff":{"base":"25ms",)"
            R"("max":"250ms"},"nonIdempotent":false,"on":["502","503","504",)"
            R"("connect-failure","reset"],"perTryTimeout":"15s","timeout":"30s"},)"
            R"("scope":"local","scopes":[]}}})");
  auto back = parseOk(manifestToJson(v[0]));
  ASSERT_EQ(back.size(), 1u);
  EXPECT_EQ(back[0], v[0]);
}

TEST(ManifestJsonTest, DocumentedExampleRoundTrips) {
  auto v = parseOk(documentedExample());
  ASSERT_EQ(v.size(), 2u);
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
                             "8080/tcp: instances use the host's network, so each would bind "
                             "that same host port; declare the port without containerPort"));
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

// --- placement (not supported yet) ---

// A node runs what is applied to it: a manifest that pins itself is refused rather than
// run somewhere it did not ask for.
TEST(ManifestPlacementTest, PinnedManifestIsRefusedNamingTheField) {
  auto r = parseManifests(svc("  image: a\n  placement: {nodes: [edge-1]}"), "m.yaml");
  ASSERT_FALSE(r.isOk());
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(r.status().message(),
              HasSubstr("m.yaml: doc 1: spec.placement.nodes: placement is not supported yet: a "
                        "node runs the services applied to it"));
  EXPECT_THAT(parseError(svc("  image: a\n  placement: {labels: {gpu: \"true\"}}")),
              HasSubstr("doc 1: spec.placement.labels: placement is not supported yet"));
  auto p = parseManifestsDetailed(
      svc("  image: a\n  placement:\n    nodes: [edge-1, edge-2]\n    labels: {gpu: \"true\"}"),
      "m.yaml");
  ASSERT_EQ(p.errors.size(), 2u);
  EXPECT_EQ(p.errors[0].path, "spec.placement.nodes");
  EXPECT_EQ(p.errors[1].path, "spec.placement.labels");
  EXPECT_TRUE(p.services.empty());
}

TEST(ManifestPlacementTest, EmptyPlacementIsAccepted) {
  for (const char* placement : {"{}", "{nodes: [], labels: {}}", "~"}) {
    auto v = parseOk(svc(std::string("  image: a\n  placement: ") + placement));
    ASSERT_EQ(v.size(), 1u) << placement;
    EXPECT_TRUE(v[0].placement.nodes.empty());
    EXPECT_TRUE(v[0].placement.labels.empty());
  }
}

// A document stored by a build that accepted placement still reads (the store must not
// lose a service over a rule added later); applying it again meets the rule.
TEST(ManifestPlacementTest, StoredDocumentWithPlacementStillReads) {
  std::string text = svc("  image: a\n  placement: {nodes: [edge-1], labels: {\"x/y\": \"\"}}");
  auto stored = parseManifests(text, "stored manifest", ManifestOrigin::kStored);
  ASSERT_TRUE(stored.isOk()) << stored.status().toString();
  ASSERT_EQ(stored->size(), 1u);
  const ServiceManifest& m = (*stored)[0];
  EXPECT_EQ(m.placement.nodes, std::vector<std::string>{"edge-1"});
  EXPECT_EQ(m.placement.labels.at("x/y"), "");
  std::string json = manifestToJson(m);
  EXPECT_THAT(json, HasSubstr(R"("placement":{"labels":{"x/y":""},"nodes":["edge-1"]})"));
  auto back = parseManifests(json, "stored manifest", ManifestOrigin::kStored);
  ASSERT_TRUE(back.isOk()) << back.status().toString();
  EXPECT_EQ((*back)[0], m);
  EXPECT_THAT(parseError(json), HasSubstr("spec.placement.nodes: placement is not supported yet"));
  // Every other rule still holds for a stored document.
  EXPECT_FALSE(parseManifests(svc("  image: \"bad image\""), "s", ManifestOrigin::kStored).isOk());
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
