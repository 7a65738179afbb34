// Loads the images the build produces (examples/) into a store and into the real Docker.
#include <gtest/gtest.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>

#include "common/fs.h"
#include "runtime-shim/image/image_store.h"
#include "tests/test_env.h"

namespace edge::runtime {
namespace {

namespace stdfs = std::filesystem;

std::string buildDir() {
  const char* d = std::getenv("EDGE_BUILD_DIR");
  return d != nullptr ? d : "";
}

std::string readAll(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

std::set<std::string> listDir(const std::string& dir) {
  std::set<std::string> out;
  for (const auto& e : stdfs::directory_iterator(dir)) out.insert(e.path().filename().string());
  return out;
}

// Runs a shell command, returning its exit status and stdout.
int run(const std::string& cmd, std::string* out = nullptr) {
  FILE* p = ::popen((cmd + " 2>&1").c_str(), "r");
  if (p == nullptr) return -1;
  char buf[4096];
  std::string text;
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) text.append(buf, n);
  if (out != nullptr) *out = text;
  return ::pclose(p);
}

class ImageIntegrationTest : public ::testing::Test {
 protected:
  void SetUp() override {
    images_ = buildDir() + "/images";
    // The build makes it (this test depends on edge_test_images): missing is a failure.
    ASSERT_TRUE(stdfs::exists(images_ + "/busybox.tar"))
        << "no " << images_ << "/busybox.tar; build target edge_test_images";
    char tmpl[] = "/tmp/edge-image-it-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    auto s = ImageStore::open(dir_ + "/store");
    ASSERT_TRUE(s.isOk());
    store_ = std::move(*s);
  }
  void TearDown() override {
    if (!dir_.empty()) (void)fs::removeAll(dir_);
  }

  std::string images_;
  std::string dir_;
  std::unique_ptr<ImageStore> store_;
};

TEST_F(ImageIntegrationTest, BusyboxImageHasTheWhiteoutFixtures) {
  EDGE_SKIP_UNLESS_ROOT("overlay-form layers");
  auto loaded = store_->load(images_ + "/busybox.tar");
  ASSERT_TRUE(loaded.isOk()) << loaded.status().toString();
  auto info = store_->inspect("edgecloud/busybox:test");
  ASSERT_TRUE(info.isOk());
  EXPECT_EQ(info->cmd, std::vector<std::string>{"sh"});
  EXPECT_EQ(info->layers.size(), 2u);
  EXPECT_GT(info->size_bytes, 1'000'000);

  auto layers = store_->layerPaths("edgecloud/busybox:test");
  ASSERT_TRUE(layers.isOk());
  std::string rootfs = dir_ + "/rootfs";
  Status st = materializeRootfs(*layers, rootfs);
  ASSERT_TRUE(st.isOk()) << st.toString();
  EXPECT_EQ(listDir(rootfs + "/wh"), (std::set<std::string>{"keep.txt", "dir"}));
  EXPECT_EQ(listDir(rootfs + "/wh/dir"), std::set<std::string>{"new.txt"});
  EXPECT_EQ(stdfs::read_symlink(rootfs + "/bin/sh"), "/bin/busybox");
  struct stat s;
  ASSERT_EQ(::stat((rootfs + "/tmp").c_str(), &s), 0);
  EXPECT_EQ(s.st_mode & 07777, 01777u);
  ASSERT_EQ(::stat((rootfs + "/usr/bin/memhog").c_str(), &s), 0);
  EXPECT_EQ(s.st_mode & 0111, 0111u);
  EXPECT_NE(readAll(rootfs + "/etc/passwd").find("nobody:x:65534"), std::string::npos);

  // The OCI variant (zstd layers) unpacks to the same layers; hello shares the base.
  auto oci = store_->load(images_ + "/busybox-oci.tar");
  ASSERT_TRUE(oci.isOk()) << oci.status().toString();
  EXPECT_EQ(store_->layerPaths("edgecloud/busybox:oci").value(), *layers);
  auto hello = store_->load(images_ + "/hello.tar");
  ASSERT_TRUE(hello.isOk()) << hello.status().toString();
  auto hello_layers = store_->layerPaths("edgecloud/hello").value();
  EXPECT_EQ(hello_layers[0], (*layers)[0]);
  EXPECT_NE(readAll(hello_layers[1] + "/www/index.html").find("Hello from Edgecloud"),
            std::string::npos);
  auto cmd = store_->inspect("edgecloud/hello:latest").value().cmd;
  EXPECT_EQ(cmd, std::vector<std::string>{"/usr/bin/hello-httpd"});
  std::string start = readAll(hello_layers[1] + "/usr/bin/hello-httpd");
  EXPECT_NE(start.find("httpd -f -v -p \"${PORT:-18080}\""), std::string::npos) << start;
  EXPECT_NE(start.find("${GREETING:-}"), std::string::npos) << start;
}

TEST_F(ImageIntegrationTest, LayersStackAsOverlayLowerdirs) {
  EDGE_SKIP_UNLESS_ROOT("mounting overlayfs");
  auto loaded = store_->load(images_ + "/busybox.tar");
  ASSERT_TRUE(loaded.isOk()) << loaded.status().toString();
  auto layers = store_->layerPaths("edgecloud/busybox:test").value();
  std::string lower;  // overlayfs wants the top layer first
  for (auto it = layers.rbegin(); it != layers.rend(); ++it) {
    lower += (lower.empty() ? "" : ":") + *it;
  }
  std::string mnt = dir_ + "/mnt";
  ASSERT_TRUE(fs::makeDirs(mnt).isOk());
  if (::mount("overlay", mnt.c_str(), "overlay", MS_RDONLY, ("lowerdir=" + lower).c_str()) != 0) {
    EDGE_SETUP_FAILED("overlayfs cannot be mounted here: " << std::strerror(errno));
  }
  std::set<std::string> wh = listDir(mnt + "/wh");
  std::set<std::string> wh_dir = listDir(mnt + "/wh/dir");
  bool has_sh = stdfs::is_symlink(mnt + "/bin/sh");
  ::umount2(mnt.c_str(), MNT_DETACH);
  EXPECT_EQ(wh, (std::set<std::string>{"keep.txt", "dir"}));
  EXPECT_EQ(wh_dir, std::set<std::string>{"new.txt"});
  EXPECT_TRUE(has_sh);
}

TEST_F(ImageIntegrationTest, DockerLoadAcceptsTheImages) {
  if (run("docker info >/dev/null") != 0)
    EDGE_DOCKER_MISSING("no Docker Engine answers `docker info`");
  for (const char* name : {"busybox.tar", "hello.tar"}) {
    std::string out;
    int rc = run("docker load -i " + images_ + "/" + name, &out);
    EXPECT_EQ(rc, 0) << name << ": " << out;
    EXPECT_NE(out.find("Loaded image"), std::string::npos) << out;
  }
  std::string out;
  ASSERT_EQ(run("docker run --rm --network none edgecloud/busybox:test sh -c "
                "'ls /wh /wh/dir'",
                &out),
            0)
      << out;
  EXPECT_NE(out.find("keep.txt"), std::string::npos) << out;
  EXPECT_NE(out.find("new.txt"), std::string::npos) << out;
  EXPECT_EQ(out.find("gone.txt"), std::string::npos) << out;
  EXPECT_EQ(out.find("old.txt"), std::string::npos) << out;
}

}  // namespace
}  // namespace edge::runtime
