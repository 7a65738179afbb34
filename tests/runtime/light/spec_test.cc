#include "runtime-shim/light/spec.h"

#include <gtest/gtest.h>

namespace edge::runtime::light {
namespace {

ContainerSpec base() {
  ContainerSpec s;
  s.image = "busybox";
  return s;
}

void expectInvalid(const ContainerSpec& s, const std::string& field) {
  Status st = validateSpec(s);
  EXPECT_EQ(st.code(), StatusCode::kInvalidArgument) << field;
  EXPECT_NE(st.message().find(field), std::string::npos) << st.message();
}

TEST(SpecValidationTest, MessagesNameTheField) {
  EXPECT_TRUE(validateSpec(base()).isOk());
  ContainerSpec s = base();
  s.image = "";
  expectInvalid(s, "spec.image");
  s = base();
  s.name = "-bad";
  expectInvalid(s, "spec.name");
  s = base();
  s.mounts = {{"/ok", "/ok"}, {"relative", "/t"}};
  expectInvalid(s, "spec.mounts[1].source");
  s = base();
  s.mounts = {{"/src", "rel"}};
  expectInvalid(s, "spec.mounts[0].target");
  s = base();
  s.resources.memory_bytes = -1;
  expectInvalid(s, "spec.resources.memory_bytes");
  s.resources.memory_bytes = 4 << 20;
  expectInvalid(s, "6 MiB");
  s = base();
  s.resources.nano_cpus = -5;
  expectInvalid(s, "spec.resources.nano_cpus");
  s = base();
  s.resources.pids_limit = -1;
  expectInvalid(s, "spec.resources.pids_limit");
  s = base();
  s.working_dir = "relative";
  expectInvalid(s, "spec.working_dir");
  s = base();
  s.stop_signal = "SIGNOPE";
  expectInvalid(s, "spec.stop_signal");
  s = base();
  s.env = {"=x"};
  expectInvalid(s, "spec.env[0]");
  s = base();
  s.hostname = "bad host";
  expectInvalid(s, "spec.hostname");
}

TEST(SpecMergeTest, EnvMergesByKey) {
  auto env = mergeEnv({"A=1", "PATH=/bin", "B=2"}, {"B=3", "C=4", "A=0"});
  EXPECT_EQ(env, (std::vector<std::string>{"A=0", "PATH=/bin", "B=3", "C=4"}));
}

TEST(SpecMergeTest, EntrypointAndCmdFollowDocker) {
  ImageInfo img;
  img.entrypoint = {"/entry"};
  img.cmd = {"default"};
  img.env = {"X=1"};
  img.working_dir = "/app";
  img.user = "app";
  img.labels = {{"a", "img"}, {"b", "img"}};

  ContainerInfo c;
  mergeSpec(base(), img, &c);
  EXPECT_EQ(c.entrypoint, std::vector<std::string>{"/entry"});
  EXPECT_EQ(c.cmd, std::vector<std::string>{"default"});
  EXPECT_EQ(c.working_dir, "/app");
  EXPECT_EQ(c.user, "app");
  // No PATH in the image: Docker's default goes first.
  EXPECT_EQ(c.env, (std::vector<std::string>{kDefaultPath, "X=1"}));

  ContainerSpec s = base();
  s.cmd = std::vector<std::string>{"other"};
  s.labels = {{"b", "spec"}};
  mergeSpec(s, img, &c);
  EXPECT_EQ(c.entrypoint, std::vector<std::string>{"/entry"});
  EXPECT_EQ(c.cmd, std::vector<std::string>{"other"});
  EXPECT_EQ(c.labels, (std::map<std::string, std::string>{{"a", "img"}, {"b", "spec"}}));

  // A new entrypoint drops the image's cmd.
  s = base();
  s.entrypoint = std::vector<std::string>{"/bin/sh"};
  mergeSpec(s, img, &c);
  EXPECT_EQ(c.entrypoint, std::vector<std::string>{"/bin/sh"});
  EXPECT_TRUE(c.cmd.empty());
  // An empty entrypoint set explicitly clears it; cmd then runs alone.
  s = base();
  s.entrypoint = std::vector<std::string>{};
  s.cmd = std::vector<std::string>{"echo", "hi"};
  s.working_dir = "/w";
  s.user = "0";
  mergeSpec(s, img, &c);
  EXPECT_TRUE(c.entrypoint.empty());
  EXPECT_EQ(*containerArgv(c), (std::vector<std::string>{"echo", "hi"}));
  EXPECT_EQ(c.working_dir, "/w");
  EXPECT_EQ(c.user, "0");

  ImageInfo bare;
  ContainerInfo none;
  mergeSpec(base(), bare, &none);
  EXPECT_EQ(none.working_dir, "/");
  EXPECT_EQ(containerArgv(none).status().code(), StatusCode::kInvalidArgument);
}

constexpr char kPasswd[] =
    "root:x:0:0:root:/root:/bin/sh\n"
    "# comment\n"
    "broken line\n"
    "app:x:1000:1001:App:/home/app:/bin/sh\n"
    "www:x:33:33::/var/www:/bin/false\n";
constexpr char kGroup[] =
    "root:x:0:\n"
    "app:x:1001:\n"
    "www:x:33:app\n"
    "extra:x:2000:www,app\n";

TEST(ResolveUserTest, NamesNumbersAndGroups) {
  auto r = resolveUser("", kPasswd, kGroup);
  ASSERT_TRUE(r.isOk());
  EXPECT_EQ(r->uid, 0u);
  EXPECT_EQ(r->home, "/root");

  r = resolveUser("app", kPasswd, kGroup);
  ASSERT_TRUE(r.isOk());
  EXPECT_EQ(r->uid, 1000u);
  EXPECT_EQ(r->gid, 1001u);
  EXPECT_EQ(r->home, "/home/app");
  EXPECT_EQ(r->groups, (std::vector<uint32_t>{33, 2000}));

  r = resolveUser("1000", kPasswd, kGroup);
  ASSERT_TRUE(r.isOk());
  EXPECT_EQ(r->gid, 1001u);

  r = resolveUser("app:www", kPasswd, kGroup);
  ASSERT_TRUE(r.isOk());
  EXPECT_EQ(r->gid, 33u);

  r = resolveUser("4242:4343", kPasswd, kGroup);
  ASSERT_TRUE(r.isOk());
  EXPECT_EQ(r->uid, 4242u);
  EXPECT_EQ(r->gid, 4343u);
  EXPECT_EQ(r->home, "/");

  r = resolveUser("4242", "", "");
  ASSERT_TRUE(r.isOk());
  EXPECT_EQ(r->gid, 0u);

  EXPECT_NE(resolveUser("ghost", kPasswd, kGroup).status().message().find("'ghost'"),
            std::string::npos);
  EXPECT_NE(resolveUser("app:nogroup", kPasswd, kGroup).status().message().find("'nogroup'"),
            std::string::npos);
  EXPECT_EQ(resolveUser(":1", kPasswd, kGroup).status().code(), StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace edge::runtime::light
