// edge-mkimage as a user runs it: output formats load into the store, output is
// reproducible, bad input gives a clear error.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "common/fs.h"
#include "runtime-shim/image/image_store.h"

namespace edge::runtime {
namespace {

std::string readAll(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

void writeText(const std::string& path, const std::string& text) {
  std::ofstream(path, std::ios::binary) << text;
}

int run(const std::string& cmd, std::string* out = nullptr) {
  FILE* p = ::popen((cmd + " 2>&1").c_str(), "r");
  if (p == nullptr) return -1;
  char buf[4096];
  std::string text;
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) text.append(buf, n);
  if (out != nullptr) *out = text;
  int st = ::pclose(p);
  return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

class MkimageTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const char* b = std::getenv("EDGE_BUILD_DIR");
    tool_ = std::string(b != nullptr ? b : ".") + "/bin/edge-mkimage";
    // The test depends on edge-mkimage: the build makes it, so missing is a failure.
    ASSERT_TRUE(std::filesystem::exists(tool_)) << "no " << tool_ << "; build edge-mkimage";
    char tmpl[] = "/tmp/edge-mkimage-test-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    ASSERT_TRUE(fs::makeDirs(dir_ + "/l1/bin").isOk());
    ASSERT_TRUE(fs::makeDirs(dir_ + "/l2/etc").isOk());
    writeText(dir_ + "/l1/bin/tool", "#!/bin/sh\necho hi\n");
    ::chmod((dir_ + "/l1/bin/tool").c_str(), 04755);
    ::symlink("/bin/tool", (dir_ + "/l1/bin/alias").c_str());
    ::link((dir_ + "/l1/bin/tool").c_str(), (dir_ + "/l1/bin/tool2").c_str());
    writeText(dir_ + "/l2/etc/conf", "x=1\n");
    writeText(dir_ + "/l2/bin-whiteout-is-authored-as-a-file", "");
    ASSERT_TRUE(fs::makeDirs(dir_ + "/l2/bin").isOk());
    writeText(dir_ + "/l2/bin/.wh.tool2", "");
  }
  void TearDown() override {
    if (!dir_.empty()) (void)fs::removeAll(dir_);
  }

  int mk(const std::string& args, std::string* out = nullptr) {
    return run(tool_ + " " + args, out);
  }
  std::string layers() const { return "--layer " + dir_ + "/l1 --layer " + dir_ + "/l2"; }

  std::string tool_;
  std::string dir_;
};

TEST_F(MkimageTest, EveryFormatLoadsIntoTheStore) {
  auto store = ImageStore::open(dir_ + "/store");
  ASSERT_TRUE(store.isOk());
  int i = 0;
  for (const char* format : {"both", "docker", "oci"}) {
    for (const char* compress : {"none", "gzip", "zstd"}) {
      std::string out = dir_ + "/img" + std::to_string(i) + ".tar";
      std::string tag = std::string("mk/") + format + ":" + compress;
      std::string msg;
      ASSERT_EQ(mk("-o " + out + " -t " + tag + " " + layers() + " --format " + format +
                       " --compress " + compress +
                       " --entrypoint '[\"/bin/sh\",\"-c\"]' --cmd 'echo hi there' --env A=1"
                       " --env B=x=y --workdir /srv --user 65534:65534 --label k=v"
                       " --stop-signal SIGINT",
                   &msg),
                0)
          << msg;
      auto loaded = (*store)->load(out);
      ASSERT_TRUE(loaded.isOk()) << format << "/" << compress << ": " << loaded.status().toString();
      auto info = (*store)->inspect(tag);
      ASSERT_TRUE(info.isOk()) << tag;
      EXPECT_EQ(info->entrypoint, (std::vector<std::string>{"/bin/sh", "-c"}));
      EXPECT_EQ(info->cmd, (std::vector<std::string>{"echo", "hi", "there"}));
      EXPECT_EQ(info->env, (std::vector<std::string>{"A=1", "B=x=y"}));
      EXPECT_EQ(info->working_dir, "/srv");
      EXPECT_EQ(info->user, "65534:65534");
      EXPECT_EQ(info->stop_signal, "SIGINT");
      EXPECT_EQ(info->labels.at("k"), "v");
      auto paths = (*store)->layerPaths(tag).value();
      ASSERT_EQ(paths.size(), 2u);
      EXPECT_EQ(readAll(paths[0] + "/bin/tool"), "#!/bin/sh\necho hi\n");
      struct stat st;
      ASSERT_EQ(::lstat((paths[0] + "/bin/tool").c_str(), &st), 0);
      EXPECT_EQ(st.st_mode & 07777, 04755u);
      EXPECT_EQ(st.st_uid, 0u);
      EXPECT_EQ(st.st_nlink, 2u);
      EXPECT_EQ(std::filesystem::read_symlink(paths[0] + "/bin/alias"), "/bin/tool");
      ++i;
    }
  }
  // Same content whatever the format or compression: one image id.
  EXPECT_EQ((*store)->list().value().size(), 1u);
}

TEST_F(MkimageTest, OutputIsReproducible) {
  std::string a = dir_ + "/a.tar", b = dir_ + "/b.tar";
  ASSERT_EQ(mk("-o " + a + " -t r:1 " + layers() + " --compress gzip"), 0);
  // Touch the inputs: mtimes are not recorded unless asked.
  ::utimensat(AT_FDCWD, (dir_ + "/l2/etc/conf").c_str(), nullptr, 0);
  ASSERT_EQ(mk("-o " + b + " -t r:1 " + layers() + " --compress gzip"), 0);
  EXPECT_EQ(readAll(a), readAll(b));
}

TEST_F(MkimageTest, ClearErrorsForBadInput) {
  std::string out;
  EXPECT_EQ(mk("-o " + dir_ + "/x.tar -t x --layer " + dir_ + "/missing", &out), 2);
  EXPECT_NE(out.find("missing: no such directory"), std::string::npos) << out;
  EXPECT_EQ(mk("-o " + dir_ + "/x.tar -t x " + layers() + " --env NOVALUE", &out), 2);
  EXPECT_NE(out.find("--env \"NOVALUE\""), std::string::npos) << out;
  EXPECT_EQ(mk("-o " + dir_ + "/x.tar -t x " + layers() + " --cmd '[\"sh\",'", &out), 2);
  EXPECT_NE(out.find("not a JSON array"), std::string::npos) << out;
  EXPECT_EQ(mk("-o " + dir_ + "/x.tar -t x " + layers() + " --compress lz4", &out), 2);
  EXPECT_NE(out.find("none, gzip or zstd"), std::string::npos) << out;
  EXPECT_EQ(mk("-o " + dir_ + "/x.tar -t 'Bad Tag' " + layers(), &out), 2);
  EXPECT_FALSE(std::filesystem::exists(dir_ + "/x.tar"));
}

}  // namespace
}  // namespace edge::runtime
