#include "runtime-shim/image/layer.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <set>

#include "common/fs.h"
#include "runtime-shim/image/image_store.h"
#include "tests/runtime/image/test_archive.h"
#include "tests/test_env.h"

namespace edge::runtime::image {
namespace {

using namespace testing;  // NOLINT
namespace stdfs = std::filesystem;

std::string readAll(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// Every path under `root` (relative), with "/" after directories.
std::set<std::string> tree(const std::string& root) {
  std::set<std::string> out;
  for (auto it = stdfs::recursive_directory_iterator(root); it != stdfs::end(it); ++it) {
    std::string rel = stdfs::relative(it->path(), root).string();
    out.insert(it->is_directory() && !it->is_symlink() ? rel + "/" : rel);
  }
  return out;
}

bool isWhiteout(const std::string& path) {
  struct stat st;
  return ::lstat(path.c_str(), &st) == 0 && S_ISCHR(st.st_mode) && st.st_rdev == makedev(0, 0);
}

bool isOpaque(const std::string& path) {
  char v = 0;
  return ::lgetxattr(path.c_str(), "trusted.overlay.opaque", &v, 1) == 1 && v == 'y';
}

class LayerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/edge-layer-test-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    ASSERT_TRUE(fs::makeDirs(dir_ + "/root").isOk());
    ASSERT_TRUE(fs::makeDirs(dir_ + "/outside").isOk());
  }
  void TearDown() override { (void)fs::removeAll(dir_); }

  Result<LayerResult> apply(const std::vector<TarEntry>& entries, WhiteoutMode mode,
                            const std::string& target, const std::string& compression = "none",
                            LayerLimits limits = {}) {
    std::string path = dir_ + "/layer-" + std::to_string(counter_++) + ".tar";
    writeBytes(path, makeTar(entries, compression));
    return unpackLayer(path, target, mode, limits, "test-layer");
  }
  std::string root() const { return dir_ + "/root"; }
  std::string newDir(const std::string& name) {
    std::string p = dir_ + "/" + name;
    EXPECT_TRUE(fs::makeDirs(p).isOk());
    return p;
  }

  std::string dir_;
  int counter_ = 0;
};

const std::vector<TarEntry> kLower = {
    dir("a"),           file("a/gone", "g"), file("a/keep", "k"),  dir("d"),
    file("d/old", "o"), dir("d/sub"),        file("d/sub/x", "x"), file("top", "t")};
const std::vector<TarEntry> kUpper = {
    dir("a"),           file("a/.wh.gone", ""),     dir("d"),           file("d/.wh..wh..opq", ""),
    file("d/new", "n"), file("a/.wh..wh.plnk", ""), file(".wh.top", "")};
const std::set<std::string> kMerged = {"a/", "a/keep", "d/", "d/new"};

TEST_F(LayerTest, DiffIdIsTheSameForPlainGzipAndZstd) {
  std::vector<TarEntry> entries = {dir("x"), file("x/f", "data")};
  std::string expected = "sha256:" + hex(makeTar(entries));
  for (const char* c : {"none", "gzip", "zstd"}) {
    auto r = apply(entries, WhiteoutMode::kApply, newDir(c), c);
    ASSERT_TRUE(r.isOk()) << c << ": " << r.status().toString();
    EXPECT_EQ(r->diff_id, expected) << c;
    EXPECT_EQ(r->size_bytes, 4);
    EXPECT_EQ(readAll(dir_ + "/" + c + "/x/f"), "data");
  }
}

TEST_F(LayerTest, ApplyModeWhiteoutsDeleteAndOpaqueClearsLowerContent) {
  ASSERT_TRUE(apply(kLower, WhiteoutMode::kApply, root()).isOk());
  auto r = apply(kUpper, WhiteoutMode::kApply, root());
  ASSERT_TRUE(r.isOk()) << r.status().toString();
  EXPECT_EQ(tree(root()), kMerged);
}

TEST_F(LayerTest, ApplyModeOpaqueKeepsEntriesOfTheSameLayerWhateverTheOrder) {
  ASSERT_TRUE(apply(kLower, WhiteoutMode::kApply, root()).isOk());
  // new.txt comes before the opaque marker, and a child dir is re-created.
  auto r = apply({dir("d"), file("d/new", "n"), dir("d/sub"), file("d/sub/y", "y"),
                  file("d/.wh..wh..opq", "")},
                 WhiteoutMode::kApply, root());
  ASSERT_TRUE(r.isOk()) << r.status().toString();
  std::set<std::string> want = {"a/",    "a/gone", "a/keep",  "d/",
                                "d/new", "d/sub/", "d/sub/y", "top"};
  EXPECT_EQ(tree(root()), want);
}

TEST_F(LayerTest, ApplyModeReplacesFilesAndDirectories) {
  ASSERT_TRUE(apply(kLower, WhiteoutMode::kApply, root()).isOk());
  auto r = apply({file("d", "now a file"), dir("top"), file("top/in", "i")}, WhiteoutMode::kApply,
                 root());
  ASSERT_TRUE(r.isOk()) << r.status().toString();
  EXPECT_EQ(readAll(root() + "/d"), "now a file");
  EXPECT_EQ(readAll(root() + "/top/in"), "i");
}

TEST_F(LayerTest, OverlayFormAndMaterializeMatchDirectApply) {
  EDGE_SKIP_UNLESS_ROOT("mknod and trusted.* xattrs");
  std::string l1 = newDir("l1"), l2 = newDir("l2");
  ASSERT_TRUE(apply(kLower, WhiteoutMode::kOverlay, l1).isOk());
  auto r = apply(kUpper, WhiteoutMode::kOverlay, l2);
  ASSERT_TRUE(r.isOk()) << r.status().toString();
  EXPECT_TRUE(isWhiteout(l2 + "/a/gone"));
  EXPECT_TRUE(isWhiteout(l2 + "/top"));
  EXPECT_TRUE(isOpaque(l2 + "/d"));
  EXPECT_FALSE(isOpaque(l2 + "/a"));
  EXPECT_FALSE(stdfs::exists(l2 + "/a/.wh..wh.plnk"));
  EXPECT_EQ(readAll(l2 + "/d/new"), "n");

  std::string merged = dir_ + "/merged";
  Status st = materializeRootfs({l1, l2}, merged);
  ASSERT_TRUE(st.isOk()) << st.toString();
  EXPECT_EQ(tree(merged), kMerged);
  EXPECT_FALSE(isOpaque(merged + "/d"));
}

TEST_F(LayerTest, OverlayWhiteoutThenSameNameDirectoryBecomesOpaque) {
  EDGE_SKIP_UNLESS_ROOT("mknod and trusted.* xattrs");
  std::string l1 = newDir("l1"), l2 = newDir("l2");
  ASSERT_TRUE(apply(kLower, WhiteoutMode::kOverlay, l1).isOk());
  auto r = apply({file("d/.wh.sub", ""), dir("d/sub"), file("d/sub/z", "z")},
                 WhiteoutMode::kOverlay, l2);
  ASSERT_TRUE(r.isOk()) << r.status().toString();
  EXPECT_TRUE(isOpaque(l2 + "/d/sub"));
  std::string merged = dir_ + "/merged";
  ASSERT_TRUE(materializeRootfs({l1, l2}, merged).isOk());
  EXPECT_FALSE(stdfs::exists(merged + "/d/sub/x"));
  EXPECT_EQ(readAll(merged + "/d/sub/z"), "z");
  EXPECT_EQ(readAll(merged + "/d/old"), "o");
}

TEST_F(LayerTest, KeepsOwnersModesTimesSymlinksHardlinksAndXattrs) {
  EDGE_SKIP_UNLESS_ROOT("chown");
  TarEntry suid = file("bin/su", "su", 04755);
  suid.uid = 1234;
  suid.gid = 5678;
  TarEntry x = file("etc/x", "x");
  x.xattrs["user.edge"] = "yes";
  TarEntry ln = symlink("bin/sh", "/bin/busybox");
  ln.uid = 42;
  std::vector<TarEntry> entries = {
      dir("bin"), suid, ln, dir("etc"), x, hardlink("etc/x2", "etc/x"), dir("tmp", 01777)};
  std::string l1 = newDir("l1");
  auto r = apply(entries, WhiteoutMode::kOverlay, l1);
  ASSERT_TRUE(r.isOk()) << r.status().toString();

  std::string merged = dir_ + "/merged";
  ASSERT_TRUE(materializeRootfs({l1}, merged).isOk());
  for (const std::string& base : {l1, merged}) {
    struct stat st;
    ASSERT_EQ(::lstat((base + "/bin/su").c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 07777, 04755u) << base;
    EXPECT_EQ(st.st_uid, 1234u);
    EXPECT_EQ(st.st_gid, 5678u);
    EXPECT_EQ(st.st_mtime, 1'600'000'000);
    ASSERT_EQ(::lstat((base + "/bin/sh").c_str(), &st), 0);
    EXPECT_TRUE(S_ISLNK(st.st_mode));
    EXPECT_EQ(st.st_uid, 42u);
    EXPECT_EQ(stdfs::read_symlink(base + "/bin/sh"), "/bin/busybox");
    ASSERT_EQ(::lstat((base + "/tmp").c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 07777, 01777u);
    EXPECT_EQ(st.st_mtime, 1'600'000'000) << base;
    struct stat a, b;
    ASSERT_EQ(::lstat((base + "/etc/x").c_str(), &a), 0);
    ASSERT_EQ(::lstat((base + "/etc/x2").c_str(), &b), 0);
    EXPECT_EQ(a.st_ino, b.st_ino) << base;
    char v[8] = {};
    EXPECT_EQ(::lgetxattr((base + "/etc/x").c_str(), "user.edge", v, sizeof v), 3) << base;
    EXPECT_EQ(std::string(v, 3), "yes");
  }
}

TEST_F(LayerTest, MaterializeRefusesNonEmptyTarget) {
  std::string t = newDir("t");
  writeBytes(t + "/x", "x");
  EXPECT_EQ(materializeRootfs({}, t).code(), StatusCode::kFailedPrecondition);
}

struct Hostile {
  const char* name;
  std::vector<TarEntry> entries;
  const char* entry;  // the entry the message must name
};

std::vector<Hostile> hostileCases() {
  TarEntry chr;
  chr.path = "dev/null";
  chr.type = 'c';
  TarEntry blk;
  blk.path = "dev/sda";
  blk.type = 'b';
  return {
      {"dotdot", {file("../outside/evil", "x")}, "../outside/evil"},
      {"nested dotdot", {dir("a"), file("a/../../outside/evil", "x")}, "a/../../outside/evil"},
      {"absolute", {file("/tmp/evil-edge-test", "x")}, "/tmp/evil-edge-test"},
      {"through symlink", {symlink("link", "../outside"), file("link/evil", "x")}, "link/evil"},
      {"through absolute symlink",
       {symlink("etc", "/etc"), file("etc/evil-edge-test", "x")},
       "etc/evil-edge-test"},
      {"dir through symlink", {symlink("link", "../outside"), dir("link/sub")}, "link/sub"},
      {"hardlink dotdot", {hardlink("h", "../outside/target")}, "h"},
      {"hardlink absolute", {hardlink("h", "/etc/passwd")}, "h"},
      {"hardlink through symlink",
       {symlink("link", "../outside"), hardlink("h", "link/target")},
       "h"},
      {"char device", {dir("dev"), chr}, "dev/null"},
      {"block device", {dir("dev"), blk}, "dev/sda"},
      {"long name", {file(std::string(300, 'n'), "x")}, "nnnnnnnn"},
      {"bad whiteout", {file(".wh..", "")}, ".wh.."},
  };
}

TEST_F(LayerTest, RefusesHostileEntriesInBothModes) {
  writeBytes(dir_ + "/outside/target", "secret");
  for (WhiteoutMode mode : {WhiteoutMode::kApply, WhiteoutMode::kOverlay}) {
    for (const auto& c : hostileCases()) {
      std::string target = newDir(std::string("t-") + std::to_string(counter_));
      auto r = apply(c.entries, mode, target);
      ASSERT_FALSE(r.isOk()) << c.name;
      EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument)
          << c.name << ": " << r.status().toString();
      EXPECT_NE(r.status().message().find(c.entry), std::string::npos)
          << c.name << ": " << r.status().toString();
      EXPECT_NE(r.status().message().find("test-layer"), std::string::npos) << c.name;
      EXPECT_EQ(tree(dir_ + "/outside"), std::set<std::string>{"target"}) << c.name;
      EXPECT_EQ(readAll(dir_ + "/outside/target"), "secret") << c.name;
    }
  }
  EXPECT_FALSE(stdfs::exists("/etc/evil-edge-test"));
  EXPECT_FALSE(stdfs::exists("/tmp/evil-edge-test"));
}

TEST_F(LayerTest, ApplyModeRefusesWritingThroughALowerSymlink) {
  ASSERT_TRUE(
      apply({symlink("etc", "/etc"), symlink("up", "../outside")}, WhiteoutMode::kApply, root())
          .isOk());
  auto r = apply({file("up/evil", "x")}, WhiteoutMode::kApply, root());
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument) << r.status().toString();
  EXPECT_NE(r.status().message().find("up/evil"), std::string::npos);
  // A whiteout through a symlinked parent must not delete outside either.
  r = apply({file("up/.wh.target", "")}, WhiteoutMode::kApply, root());
  EXPECT_FALSE(r.isOk());
  writeBytes(dir_ + "/outside/target", "secret");
  EXPECT_EQ(readAll(dir_ + "/outside/target"), "secret");
  // Replacing the symlink itself is fine.
  r = apply({dir("up"), file("up/ok", "ok")}, WhiteoutMode::kApply, root());
  ASSERT_TRUE(r.isOk()) << r.status().toString();
  EXPECT_EQ(readAll(root() + "/up/ok"), "ok");
  EXPECT_EQ(tree(dir_ + "/outside"), std::set<std::string>{"target"});
}

TEST_F(LayerTest, EnforcesEntryAndLayerLimits) {
  LayerLimits limits;
  limits.max_entry_bytes = 10;
  limits.max_layer_bytes = 15;
  auto r =
      apply({file("big", std::string(11, 'b'))}, WhiteoutMode::kApply, newDir("a"), "none", limits);
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(r.status().message().find("\"big\""), std::string::npos) << r.status().toString();
  r = apply({file("one", std::string(8, 'b')), file("two", std::string(8, 'b'))},
            WhiteoutMode::kApply, newDir("b"), "none", limits);
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(r.status().message().find("\"two\""), std::string::npos) << r.status().toString();
}

TEST_F(LayerTest, RefusesTruncatedAndGarbageLayers) {
  std::string full = makeTar({file("f", std::string(4000, 'f'))}, "gzip");
  writeBytes(dir_ + "/trunc.tar.gz", full.substr(0, full.size() / 2));
  auto r = unpackLayer(dir_ + "/trunc.tar.gz", newDir("t"), WhiteoutMode::kApply, {}, "trunc");
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument) << r.status().toString();
  writeBytes(dir_ + "/garbage", std::string(2000, 'z'));
  r = unpackLayer(dir_ + "/garbage", newDir("g"), WhiteoutMode::kApply, {}, "garbage");
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument) << r.status().toString();
}

TEST(CleanEntryPath, Normalises) {
  EXPECT_EQ(cleanEntryPath("./a//b/./c/").value(), "a/b/c");
  EXPECT_EQ(cleanEntryPath("./").value(), "");
  EXPECT_FALSE(cleanEntryPath("a/../b").isOk());
  EXPECT_FALSE(cleanEntryPath("/a").isOk());
}

}  // namespace
}  // namespace edge::runtime::image
