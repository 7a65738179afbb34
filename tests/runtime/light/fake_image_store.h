// A fake ImageStore serving one image whose single layer is a hand-made busybox rootfs,
// so the light runtime runs real containers without the real store.
#pragma once

#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <string>
#include <vector>

#include "common/fs.h"
#include "runtime-shim/image/image_store.h"

namespace edge::runtime::light::testing {

inline constexpr char kFakeImageRef[] = "edgecloud/busybox:test";
inline constexpr char kFakeImageId[] =
    "sha256:1111111111111111111111111111111111111111111111111111111111111111";

inline bool copyFile(const std::string& from, const std::string& to, mode_t mode) {
  std::ifstream in(from, std::ios::binary);
  std::ofstream out(to, std::ios::binary);
  if (!in || !out) return false;
  out << in.rdbuf();
  out.close();
  return ::chmod(to.c_str(), mode) == 0;
}

// Builds <dir> as a minimal busybox root: /bin/busybox with applet links, /etc/passwd,
// /etc/group, and the test helpers (memhog, forkbomb) from the build dir when present.
inline Status makeBusyboxRootfs(const std::string& dir) {
  for (const char* d : {"/bin", "/usr/bin", "/etc", "/tmp", "/root", "/home/app"}) {
    RETURN_IF_ERROR(fs::makeDirs(dir + d));
  }
  if (!copyFile("/usr/bin/busybox", dir + "/bin/busybox", 0755)) {
    return Status::failedPrecondition("cannot copy /usr/bin/busybox (install busybox-static)");
  }
  for (const char* a : {"sh", "echo", "cat", "true", "false", "sleep", "grep", "hostname", "ls",
                        "ps", "id", "ip", "env", "pwd", "head", "wc", "seq", "mount", "kill"}) {
    std::string link = dir + "/bin/" + a;
    if (::symlink("busybox", link.c_str()) != 0) return Status::fromErrno(errno, link);
  }
  std::ofstream(dir + "/etc/passwd") << "root:x:0:0:root:/root:/bin/sh\n"
                                        "app:x:1000:1000:app:/home/app:/bin/sh\n"
                                        "nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n";
  std::ofstream(dir + "/etc/group") << "root:x:0:\napp:x:1000:\nextra:x:2000:app\n"
                                       "nogroup:x:65534:\n";
  const char* build = std::getenv("EDGE_BUILD_DIR");
  if (build) {
    for (const char* h : {"memhog", "forkbomb"}) {
      std::string src = std::string(build) + "/images/helpers/" + h;
      if (::access(src.c_str(), X_OK) == 0) copyFile(src, dir + "/usr/bin/" + h, 0755);
    }
  }
  return Status::ok();
}

class FakeImageStore : public ImageStore {
 public:
  explicit FakeImageStore(std::string layer_dir) : layer_(std::move(layer_dir)) {}

  Result<std::vector<ImageInfo>> load(const std::string&) override {
    return Status::unimplemented("fake store");
  }
  Result<std::vector<ImageInfo>> list() override {
    if (removed_) return std::vector<ImageInfo>{};
    return std::vector<ImageInfo>{image()};
  }
  Result<ImageInfo> inspect(const std::string& ref) override {
    if (!removed_ && (ref == kFakeImageRef || ref == kFakeImageId || ref == "busybox")) {
      return image();
    }
    return Status::notFound("no such image: " + ref);
  }
  Result<std::vector<std::string>> layerPaths(const std::string& ref) override {
    RETURN_IF_ERROR(inspect(ref).status());
    return std::vector<std::string>{layer_};
  }
  Status remove(const std::string& ref, bool force,
                const std::function<bool(const std::string&)>& in_use) override {
    RETURN_IF_ERROR(inspect(ref).status());
    if (!force && in_use(kFakeImageId)) {
      return Status::failedPrecondition("image is in use by a container");
    }
    removed_ = true;
    return Status::ok();
  }

  void setLimits(const image::LayerLimits&) override {}

  static ImageInfo image() {
    ImageInfo i;
    i.id = kFakeImageId;
    i.tags = {kFakeImageRef};
    i.os = "linux";
    i.architecture = "amd64";
    i.cmd = {"sh"};
    i.env = {"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "IMG=1"};
    return i;
  }

 private:
  std::string layer_;
  bool removed_ = false;
};

}  // namespace edge::runtime::light::testing
