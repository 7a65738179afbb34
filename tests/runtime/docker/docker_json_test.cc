#include "runtime-shim/docker/docker_json.h"

#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

namespace edge::runtime::docker {
namespace {

// Replies captured from Debian's dockerd 20.10.24 (API 1.41) on this kind of host.
Json testdata(const std::string& name) {
  std::ifstream in(std::string(DOCKER_TESTDATA) + "/" + name);
  EXPECT_TRUE(in.good()) << name;
  std::stringstream ss;
  ss << in.rdbuf();
  Result<Json> j = json::parse(ss.str(), name);
  EXPECT_TRUE(j.isOk()) << j.status().toString();
  return j.valueOr(Json());
}

WallTime at(const std::string& text) {
  WallTime t;
  EXPECT_TRUE(parseTimestamp(text, &t)) << text;
  return t;
}

TEST(ApiVersionTest, Negotiates) {
  EXPECT_EQ(negotiateApiVersion("1.41")->toString(), "1.41");
  EXPECT_EQ(negotiateApiVersion("1.24")->toString(), "1.24");
  EXPECT_EQ(negotiateApiVersion("1.45")->toString(), "1.43");
  EXPECT_EQ(negotiateApiVersion("2.0")->toString(), "1.43");
  EXPECT_EQ(negotiateApiVersion(" 1.40\r")->toString(), "1.40");
  Result<ApiVersion> old = negotiateApiVersion("1.23");
  ASSERT_FALSE(old.isOk());
  EXPECT_EQ(old.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(old.status().message().find("at least 1.24"), std::string::npos);
  EXPECT_EQ(negotiateApiVersion("").status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(negotiateApiVersion("v1.41").status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(negotiateApiVersion("1.").status().code(), StatusCode::kInvalidArgument);
  EXPECT_LT((ApiVersion{1, 9}), (ApiVersion{1, 10}));
}

TEST(StatusFromHttpTest, MapsDaemonErrors) {
  Status s =
      statusFromHttp(404, R"({"message":"No such container: nope"})", "inspect container nope");
  EXPECT_EQ(s.code(), StatusCode::kNotFound);
  EXPECT_EQ(s.message(), "inspect container nope: No such container: nope");

  // Real replies: a name conflict and a removal refused while running.
  EXPECT_EQ(
      statusFromHttp(
          409,
          R"({"message":"Conflict. The container name \"/cap2\" is already in use by container \"19cd\". You have to remove (or rename) that container to be able to reuse that name."})",
          "create container cap2")
          .code(),
      StatusCode::kAlreadyExists);
  EXPECT_EQ(
      statusFromHttp(
          409,
          R"({"message":"You cannot remove a running container 19cd. Stop the container before attempting removal or force remove"})",
          "remove container x")
          .code(),
      StatusCode::kFailedPrecondition);
  // Podman 4.3's reply to the same conflict.
  EXPECT_EQ(
      statusFromHttp(
          500,
          R"({"cause":"that name is already in use","message":"container create: creating container storage: the container name \"pconf\" is already in use by 732f. You have to remove that container to be able to reuse that name: that name is already in use","response":500})",
          "create container pconf")
          .code(),
      StatusCode::kAlreadyExists);
  EXPECT_EQ(statusFromHttp(400, R"({"message":"bad"})", "x").code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(statusFromHttp(403, "", "x").code(), StatusCode::kPermissionDenied);
  EXPECT_EQ(statusFromHttp(304, "", "start container x").code(), StatusCode::kFailedPrecondition);

  Status internal =
      statusFromHttp(500, R"({"message":"strconv.ParseInt: parsing \"abc\""})", "logs");
  EXPECT_EQ(internal.code(), StatusCode::kInternal);
  EXPECT_EQ(internal.message(), "logs: daemon error (HTTP 500): strconv.ParseInt: parsing \"abc\"");
  // Non-JSON bodies (a proxy in between) are quoted, shortened.
  Status plain = statusFromHttp(502, std::string(1000, 'x'), "info");
  EXPECT_EQ(plain.code(), StatusCode::kInternal);
  EXPECT_LT(plain.message().size(), 400u);
  EXPECT_EQ(statusFromHttp(500, "", "info").message(), "info: daemon error (HTTP 500)");
}

TEST(TimeTest, ZeroTimeIsUnset) {
  EXPECT_EQ(parseDockerTime("0001-01-01T00:00:00Z"), WallTime{});
  EXPECT_EQ(parseDockerTime(""), WallTime{});
  EXPECT_EQ(parseDockerTime("garbage"), WallTime{});
  EXPECT_EQ(parseDockerTime("2026-11-27T11:37:12.078226925Z"),
            at("2026-11-27T11:37:12.078226925Z"));
}

TEST(TimeTest, UnixNanoForQueries) {
  WallTime t = WallTime(std::chrono::duration_cast<WallTime::duration>(
      std::chrono::nanoseconds(1'700'000'000'012'345'678)));
  EXPECT_EQ(formatUnixNano(t), "1700000000.012345678");
  EXPECT_EQ(formatUnixNano(WallTime{}), "0.000000000");
}

TEST(QueryTest, Logs) {
  ApiVersion v141{1, 41};
  EXPECT_EQ(*logsQuery({}, v141), "stdout=1&stderr=1&timestamps=1&tail=all");
  LogOptions o;
  o.include_stderr = false;
  o.follow = true;
  o.tail = 5;
  o.since = WallTime(std::chrono::seconds(1'700'000'000));
  o.until = WallTime(std::chrono::seconds(1'700'000'100)) + std::chrono::microseconds(5);
  EXPECT_EQ(*logsQuery(o, v141),
            "stdout=1&stderr=0&timestamps=1&follow=1&tail=5&since=1700000000.000000000"
            "&until=1700000100.000005000");
  // `until` arrived in API 1.35; older daemons are filtered locally instead.
  EXPECT_EQ(logsQuery(o, {1, 30})->find("until"), std::string::npos);
  o.tail = 0;
  EXPECT_NE(logsQuery(o, v141)->find("tail=0"), std::string::npos);
  o.include_stdout = false;
  EXPECT_EQ(logsQuery(o, v141).status().code(), StatusCode::kInvalidArgument);
}

TEST(QueryTest, FiltersAndPaths) {
  EXPECT_EQ(labelFilters({{"io.edgecloud.managed", "true"}, {"a", "b c"}}),
            R"({"label":["a=b c","io.edgecloud.managed=true"]})");
  EXPECT_EQ(escapePath("example/busybox:1"), "example/busybox:1");
  EXPECT_EQ(escapePath("busybox@sha256:ab"), "busybox@sha256:ab");
  EXPECT_EQ(escapePath("a b?c#d"), "a%20b%3Fc%23d");
}

ContainerSpec goodSpec() {
  ContainerSpec s;
  s.name = "web-1";
  s.image = "edgecloud/busybox:test";
  return s;
}

TEST(SpecTest, Validates) {
  EXPECT_TRUE(validateSpec(goodSpec()).isOk());
  auto bad = [](auto mutate, std::string_view field) {
    ContainerSpec s = goodSpec();
    mutate(s);
    Status st = validateSpec(s);
    EXPECT_EQ(st.code(), StatusCode::kInvalidArgument) << field;
    EXPECT_NE(st.message().find(field), std::string::npos) << st.message();
  };
  bad([](ContainerSpec& s) { s.image.clear(); }, "spec.image");
  bad([](ContainerSpec& s) { s.name = "-x"; }, "spec.name");
  bad([](ContainerSpec& s) { s.name = "a/b"; }, "spec.name");
  bad([](ContainerSpec& s) { s.env = {"=x"}; }, "spec.env[0]");
  bad([](ContainerSpec& s) { s.mounts = {{"rel", "/x", false}}; }, "spec.mounts[0].source");
  bad([](ContainerSpec& s) { s.mounts = {{"/a", "/b:c", false}}; }, "spec.mounts[0].target");
  bad([](ContainerSpec& s) { s.resources.memory_bytes = -1; }, "spec.resources");
  bad([](ContainerSpec& s) { s.resources.memory_bytes = 1024; }, "memory_bytes");
  bad([](ContainerSpec& s) { s.stop_signal = "SIGNOPE"; }, "spec.stop_signal");
  bad([](ContainerSpec& s) { s.stop_timeout = std::chrono::seconds(-1); }, "spec.stop_timeout");
}

TEST(SpecTest, CreateBody) {
  ContainerSpec s = goodSpec();
  s.entrypoint = std::vector<std::string>{};
  s.cmd = std::vector<std::string>{"sh", "-c", "echo hi"};
  s.env = {"FOO=bar"};
  s.working_dir = "/tmp";
  s.user = "1000:1000";
  s.hostname = "edge";
  s.labels = {{"app", "web"}};
  s.network = NetworkMode::kNone;
  s.mounts = {{"/srv", "/data", true}, {"/a", "/b", false}};
  s.resources = {.memory_bytes = 64 << 20, .nano_cpus = 500'000'000, .pids_limit = 50};
  s.stop_signal = "SIGINT";
  s.stop_timeout = std::chrono::seconds(3);
  Json b = createBody(s, {1, 41});
  EXPECT_EQ(b["Image"], "edgecloud/busybox:test");
  EXPECT_TRUE(b["Entrypoint"].is_array() && b["Entrypoint"].empty());  // override, not "unset"
  EXPECT_EQ(b["Cmd"], Json({"sh", "-c", "echo hi"}));
  EXPECT_EQ(b["Env"], Json({"FOO=bar"}));
  EXPECT_EQ(b["WorkingDir"], "/tmp");
  EXPECT_EQ(b["User"], "1000:1000");
  EXPECT_EQ(b["Hostname"], "edge");
  EXPECT_EQ(b["Labels"], Json({{"app", "web"}}));  // the runtime adds no label of its own
  EXPECT_EQ(b["StopSignal"], "SIGINT");
  EXPECT_EQ(b["StopTimeout"], 3);
  const Json& hc = b["HostConfig"];
  EXPECT_EQ(hc["NetworkMode"], "none");
  EXPECT_EQ(hc["Binds"], Json({"/srv:/data:ro", "/a:/b"}));
  EXPECT_EQ(hc["Memory"], 64 << 20);
  EXPECT_EQ(hc["MemorySwap"], 64 << 20);
  EXPECT_EQ(hc["NanoCpus"], 500'000'000);
  EXPECT_EQ(hc["PidsLimit"], 50);

  // Unset entrypoint/cmd are left out so the image's apply; host network by default.
  Json d = createBody(goodSpec(), {1, 41});
  EXPECT_FALSE(d.contains("Entrypoint"));
  EXPECT_FALSE(d.contains("Cmd"));
  EXPECT_EQ(d["HostConfig"]["NetworkMode"], "host");
  EXPECT_FALSE(d["HostConfig"].contains("Memory"));

  // API 1.24 has no NanoCpus or StopTimeout.
  Json old = createBody(s, {1, 24});
  EXPECT_FALSE(old["HostConfig"].contains("NanoCpus"));
  EXPECT_EQ(old["HostConfig"]["CpuPeriod"], 100000);
  EXPECT_EQ(old["HostConfig"]["CpuQuota"], 50000);
  EXPECT_FALSE(old.contains("StopTimeout"));
}

TEST(InspectTest, CreatedContainer) {
  Result<ContainerInfo> c = containerFromInspect(testdata("cap1_created.json"));
  ASSERT_TRUE(c.isOk()) << c.status().toString();
  EXPECT_EQ(c->id, "cb912e51ca3cb4acbfe196412d9c0e7f980b80164e1ced0d5748fedaa309763d");
  EXPECT_EQ(c->name, "cap1");
  EXPECT_EQ(c->image, "edgecloud/busybox:test");
  EXPECT_EQ(c->image_id, "sha256:4645fdcbc1d6ad367400ef6df401bb94196df21c9bac51b3420edc56b759b583");
  EXPECT_EQ(c->state, ContainerState::kCreated);
  EXPECT_EQ(c->pid, 0);
  EXPECT_EQ(c->started, WallTime{});
  EXPECT_EQ(c->finished, WallTime{});
  EXPECT_EQ(c->created, at("2026-11-27T11:37:11.708509128Z"));
  EXPECT_TRUE(c->entrypoint.empty());
  EXPECT_EQ(c->cmd, (std::vector<std::string>{"sh", "-c", "echo hi; exit 3"}));
  EXPECT_EQ(c->env, (std::vector<std::string>{"FOO=bar", "PATH=/bin"}));
  EXPECT_EQ(c->working_dir, "/tmp");
  EXPECT_EQ(c->user, "1000:1000");
  EXPECT_EQ(c->labels, (std::map<std::string, std::string>{{"a", "b"}}));
  EXPECT_EQ(c->network, NetworkMode::kNone);
  ASSERT_EQ(c->mounts.size(), 1u);
  EXPECT_EQ(c->mounts[0].source, "/tmp");
  EXPECT_EQ(c->mounts[0].target, "/data");
  EXPECT_TRUE(c->mounts[0].read_only);
  EXPECT_EQ(c->resources.memory_bytes, 64 << 20);
  EXPECT_EQ(c->resources.nano_cpus, 500'000'000);
  EXPECT_EQ(c->resources.pids_limit, 50);
}

TEST(InspectTest, ExitedAndRunningContainers) {
  Result<ContainerInfo> exited = containerFromInspect(testdata("cap1_exited.json"));
  ASSERT_TRUE(exited.isOk()) << exited.status().toString();
  EXPECT_EQ(exited->state, ContainerState::kExited);
  EXPECT_EQ(exited->exit_code, 3);
  EXPECT_FALSE(exited->oom_killed);
  EXPECT_EQ(exited->started, at("2026-11-27T11:37:12.078226925Z"));
  EXPECT_EQ(exited->finished, at("2026-11-27T11:37:12.079698098Z"));

  Result<ContainerInfo> running = containerFromInspect(testdata("cap2_running.json"));
  ASSERT_TRUE(running.isOk()) << running.status().toString();
  EXPECT_EQ(running->state, ContainerState::kRunning);
  EXPECT_GT(running->pid, 0);
  EXPECT_NE(running->started, WallTime{});
  EXPECT_EQ(running->finished, WallTime{});
  EXPECT_EQ(running->network, NetworkMode::kHost);
  EXPECT_EQ(running->cmd, (std::vector<std::string>{"sleep", "300"}));
  EXPECT_EQ(running->resources.memory_bytes, 0);
  EXPECT_EQ(running->resources.pids_limit, 0);
}

TEST(InspectTest, StatesFoldIntoThree) {
  Json base = testdata("cap2_running.json");
  auto stateOf = [&](const std::string& status, bool running, const std::string& started) {
    Json j = base;
    j["State"]["Status"] = status;
    j["State"]["Running"] = running;
    j["State"]["StartedAt"] = started;
    return containerFromInspect(j)->state;
  };
  std::string t = "2026-11-27T11:37:12Z", zero = "0001-01-01T00:00:00Z";
  EXPECT_EQ(stateOf("paused", true, t), ContainerState::kRunning);
  EXPECT_EQ(stateOf("restarting", true, t), ContainerState::kRunning);
  EXPECT_EQ(stateOf("dead", false, t), ContainerState::kExited);
  EXPECT_EQ(stateOf("removing", false, t), ContainerState::kExited);
  EXPECT_EQ(stateOf("removing", true, t), ContainerState::kRunning);
  EXPECT_EQ(stateOf("configured", false, zero), ContainerState::kCreated);  // Podman
  EXPECT_EQ(stateOf("something-new", false, zero), ContainerState::kCreated);
  EXPECT_EQ(containerFromInspect(base)->pid > 0, true);
  EXPECT_EQ(stateOf("exited", false, t), ContainerState::kExited);
}

TEST(InspectTest, PodmanShapes) {
  Json j = testdata("cap1_created.json");
  j["Config"]["Cmd"] = "sh";  // a string, not an array
  j["HostConfig"]["Binds"] = nullptr;
  j["HostConfig"]["PidsLimit"] = -1;
  j["HostConfig"]["NanoCpus"] = 0;
  j["HostConfig"]["CpuQuota"] = 50000;
  j["HostConfig"]["CpuPeriod"] = 100000;
  Result<ContainerInfo> c = containerFromInspect(j);
  ASSERT_TRUE(c.isOk()) << c.status().toString();
  EXPECT_EQ(c->cmd, (std::vector<std::string>{"sh"}));
  ASSERT_EQ(c->mounts.size(), 1u);  // from Mounts
  EXPECT_TRUE(c->mounts[0].read_only);
  EXPECT_EQ(c->resources.pids_limit, 0);
  EXPECT_EQ(c->resources.nano_cpus, 500'000'000);

  j["Config"]["Env"] = 5;
  EXPECT_FALSE(containerFromInspect(j).isOk());
  EXPECT_FALSE(containerFromInspect(Json::object()).isOk());
  EXPECT_FALSE(containerFromInspect(Json::array()).isOk());
}

TEST(InspectTest, Image) {
  Result<ImageInfo> img = imageFromInspect(testdata("image.json"));
  ASSERT_TRUE(img.isOk()) << img.status().toString();
  EXPECT_EQ(img->id, "sha256:4645fdcbc1d6ad367400ef6df401bb94196df21c9bac51b3420edc56b759b583");
  EXPECT_EQ(img->tags, (std::vector<std::string>{"edgecloud/busybox:test"}));
  EXPECT_EQ(img->layers,
            (std::vector<std::string>{
                "sha256:82e7577be028d8fbafc664921dff4827c50da1e2cdc85440e091152cb5ed52b8"}));
  EXPECT_EQ(img->size_bytes, 1982298);
  EXPECT_EQ(img->created, at("2026-11-27T11:37:05.274394739Z"));
  EXPECT_EQ(img->os, "linux");
  EXPECT_EQ(img->architecture, "amd64");
  EXPECT_EQ(img->cmd, (std::vector<std::string>{"sh"}));
  EXPECT_EQ(img->env, (std::vector<std::string>{"PATH=/bin"}));
  EXPECT_TRUE(img->entrypoint.empty());
  EXPECT_TRUE(img->labels.empty());

  Json podman = testdata("image.json");
  podman["RepoTags"] = Json({"docker.io/library/busybox:latest", "<none>:<none>"});
  podman["Id"] = "4645fdcbc1d6ad367400ef6df401bb94196df21c9bac51b3420edc56b759b583";
  img = imageFromInspect(podman);
  ASSERT_TRUE(img.isOk());
  EXPECT_EQ(img->tags, (std::vector<std::string>{"busybox:latest"}));
  EXPECT_TRUE(img->id.starts_with("sha256:"));
}

TEST(StatsTest, FromRealReply) {
  Result<Stats> s = statsFromJson(testdata("stats.json"), WallTime{});
  ASSERT_TRUE(s.isOk());
  EXPECT_EQ(s->cpu_usage_ns, 37404382);
  EXPECT_GT(s->memory_usage_bytes, 0);
  EXPECT_GT(s->memory_limit_bytes, 0);
  EXPECT_EQ(s->pids, 1);
  EXPECT_EQ(s->read_at, at("2026-11-27T11:37:12.142253391Z"));
  // A stopped container reports zeros and the zero time.
  WallTime now = at("2026-11-27T12:00:00Z");
  Result<Stats> empty = statsFromJson(Json::parse(R"({"read":"0001-01-01T00:00:00Z"})"), now);
  ASSERT_TRUE(empty.isOk());
  EXPECT_EQ(empty->read_at, now);
  EXPECT_EQ(empty->pids, 0);
}

TEST(EventTest, FromRealStream) {
  std::ifstream in(std::string(DOCKER_TESTDATA) + "/events.jsonl");
  std::vector<Event> events;
  std::string line;
  while (std::getline(in, line)) {
    Result<std::optional<Event>> e = eventFromJson(Json::parse(line));
    ASSERT_TRUE(e.isOk()) << e.status().toString();
    ASSERT_TRUE(e->has_value());
    events.push_back(**e);
  }
  ASSERT_EQ(events.size(), 4u);
  EXPECT_EQ(events[0].type, Event::Type::kCreate);
  EXPECT_EQ(events[1].type, Event::Type::kStart);
  EXPECT_EQ(events[2].type, Event::Type::kExit);
  EXPECT_EQ(events[2].exit_code, 7);
  EXPECT_EQ(events[3].type, Event::Type::kDestroy);
  for (const Event& e : events) {
    EXPECT_EQ(e.container_id, "1748327e295bb59395b2039b22fab4c5b526d626c243e3a54258fa58974ee2eb");
  }
  EXPECT_EQ(events[0].time, WallTime(std::chrono::duration_cast<WallTime::duration>(
                                std::chrono::nanoseconds(1795779755162224877))));
}

TEST(EventTest, OthersAreIgnored) {
  EXPECT_FALSE(eventFromJson(Json::parse(R"({"Type":"network","Action":"connect"})"))->has_value());
  EXPECT_FALSE(
      eventFromJson(Json::parse(R"({"Type":"container","Action":"attach","Actor":{"ID":"a"}})"))
          ->has_value());
  // Podman spells some actions its own way and may send only `time`.
  Result<std::optional<Event>> died = eventFromJson(Json::parse(
      R"({"Type":"container","Action":"died","Actor":{"ID":"abc","Attributes":{"exitCode":"137"}},"time":1700000000})"));
  ASSERT_TRUE(died.isOk() && died->has_value());
  EXPECT_EQ((*died)->type, Event::Type::kExit);
  EXPECT_EQ((*died)->exit_code, 137);
  EXPECT_EQ((*died)->time, WallTime(std::chrono::seconds(1700000000)));
  EXPECT_FALSE(eventFromJson(Json::parse(R"({"Type":"container","Action":"start"})")).isOk());
}

TEST(LoadReplyTest, Parses) {
  EXPECT_EQ(*parseLoadReply("{\"stream\":\"Loaded image: edgecloud/busybox:test\\n\"}\r\n"),
            (std::vector<std::string>{"edgecloud/busybox:test"}));
  EXPECT_EQ(
      *parseLoadReply("{\"stream\":\"Loaded image ID: sha256:abc\\n\"}\n"
                      "{\"stream\":\"Loaded image: a:1\\n\"}{\"stream\":\"Loaded image: b:2\\n\"}"),
      (std::vector<std::string>{"sha256:abc", "a:1", "b:2"}));
  // Podman lists several in one message.
  EXPECT_EQ(*parseLoadReply(R"({"stream":"Loaded image(s): localhost/a:1,docker.io/library/b:2"})"),
            (std::vector<std::string>{"localhost/a:1", "docker.io/library/b:2"}));
  // Noise lines are skipped.
  EXPECT_EQ(
      *parseLoadReply(
          R"({"stream":"The image a:1 already exists, renaming the old one with ID sha256:1 to empty string\n"}
{"stream":"Loaded image: a:1\n"})"),
      (std::vector<std::string>{"a:1"}));
}

TEST(LoadReplyTest, Errors) {
  // The real reply to a truncated tarball: HTTP 200 with an error message.
  Result<std::vector<std::string>> r = parseLoadReply(
      R"({"errorDetail":{"message":"Error processing tar file(exit status 1): unexpected EOF"},"error":"Error processing tar file(exit status 1): unexpected EOF"})");
  ASSERT_FALSE(r.isOk());
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(r.status().message().find("unexpected EOF"), std::string::npos);
  EXPECT_EQ(parseLoadReply(R"({"errorDetail":{"message":"only detail"}})").status().code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(parseLoadReply("").status().code(), StatusCode::kInternal);
  EXPECT_EQ(parseLoadReply("<html>").status().code(), StatusCode::kInternal);
  EXPECT_EQ(parseLoadReply(R"({"stream":"Loaded image: a)").status().code(), StatusCode::kInternal);
  EXPECT_EQ(parseLoadReply(R"({"stream":"nothing here"})").status().code(), StatusCode::kInternal);
}

TEST(JsonStreamSplitterTest, SplitsAnywhere) {
  std::string stream = R"({"a":"}{\"x"} [1,{"b":[]}]  {"c":"\\"})"
                       "\n";
  std::vector<std::string> want = {R"({"a":"}{\"x"})", R"([1,{"b":[]}])", R"({"c":"\\"})"};
  for (size_t i = 0; i <= stream.size(); ++i) {
    JsonStreamSplitter s;
    ASSERT_TRUE(s.feed(stream.substr(0, i)).isOk());
    ASSERT_TRUE(s.feed(stream.substr(i)).isOk());
    std::vector<std::string> got;
    std::string v;
    while (s.next(&v)) got.push_back(v);
    EXPECT_EQ(got, want) << "split at " << i;
    EXPECT_TRUE(s.empty());
  }
  JsonStreamSplitter bad;
  EXPECT_EQ(bad.feed("x").code(), StatusCode::kInvalidArgument);
  JsonStreamSplitter small(8);
  EXPECT_EQ(small.feed(R"({"aaaaaaaaaa":1})").code(), StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace edge::runtime::docker
