// materializeRootfs: copies overlay-form layers into one plain tree, lowest first, with
// overlayfs' rules: a 0/0 char device deletes, an opaque directory replaces the lower
// directory's content, a directory over a directory merges, anything else replaces.
#include <dirent.h>
#include <fcntl.h>
#include <sys/sendfile.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <map>
#include <utility>

#include "common/fs.h"
#include "runtime-shim/image/image_store.h"
#include "runtime-shim/image/tree_util.h"

namespace edge::runtime {
namespace {

using image::openDirAt;
using image::removeAt;
using image::removeChildren;

constexpr int kMaxDepth = 2048;

class Materializer {
 public:
  explicit Materializer(std::string layer) : layer_(std::move(layer)) {}

  // Merges the directory `src` (in the layer) into `dst` (in the target).
  Status mergeDir(int src, int dst, const std::string& rel, int depth);

 private:
  Status err(const std::string& rel, const std::string& what) const {
    return Status::fromErrno(errno, "materialize " + layer_ + ": " + rel + ": " + what);
  }
  Status copyEntry(int src, int dst, const std::string& name, const std::string& rel, int depth);
  Status copyMeta(int src, int dst, const std::string& name, const struct stat& st,
                  const std::string& rel, int fd);

  std::string layer_;
  // Hard links inside one layer stay hard links: (dev, ino) -> first copy's path.
  std::map<std::pair<dev_t, ino_t>, std::string> links_;
  int dst_root_ = -1;

 public:
  void setDstRoot(int fd) { dst_root_ = fd; }
};

Status copyXattrs(int src_fd, int dst_fd) {
  char names[64 * 1024];
  ssize_t len = ::flistxattr(src_fd, names, sizeof names);
  if (len <= 0) return Status::ok();
  for (ssize_t off = 0; off < len;) {
    const char* name = names + off;
    off += static_cast<ssize_t>(std::strlen(name)) + 1;
    if (std::strncmp(name, "trusted.overlay.", 16) == 0) continue;
    char value[64 * 1024];
    ssize_t vlen = ::fgetxattr(src_fd, name, value, sizeof value);
    if (vlen < 0) continue;
    if (::fsetxattr(dst_fd, name, value, static_cast<size_t>(vlen), 0) != 0 && errno != ENOTSUP &&
        errno != EPERM) {
      return Status::fromErrno(errno, std::string("set xattr ") + name);
    }
  }
  return Status::ok();
}

Status Materializer::copyMeta(int /*src*/, int dst, const std::string& name, const struct stat& st,
                              const std::string& rel, int fd) {
  if (::fchownat(dst, name.c_str(), st.st_uid, st.st_gid, AT_SYMLINK_NOFOLLOW) != 0 &&
      !(::geteuid() != 0 && errno == EPERM)) {
    return err(rel, "chown");
  }
  if (!S_ISLNK(st.st_mode)) {
    int r = fd >= 0 ? ::fchmod(fd, st.st_mode & 07777)
                    : ::fchmodat(dst, name.c_str(), st.st_mode & 07777, 0);
    if (r != 0) return err(rel, "chmod");
  }
  timespec ts[2] = {st.st_atim, st.st_mtim};
  if (::utimensat(dst, name.c_str(), ts, AT_SYMLINK_NOFOLLOW) != 0) return err(rel, "times");
  return Status::ok();
}

Status Materializer::copyEntry(int src, int dst, const std::string& name, const std::string& rel,
                               int depth) {
  struct stat st;
  if (::fstatat(src, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) return err(rel, "stat");
  if (S_ISCHR(st.st_mode) && st.st_rdev == makedev(0, 0)) {
    return removeAt(dst, name).withContext(rel);  // whiteout
  }
  if (S_ISDIR(st.st_mode)) {
    fs::UniqueFd s = openDirAt(src, name);
    if (!s.valid()) return err(rel, "open");
    char opaque = 0;
    bool is_opaque =
        ::fgetxattr(s.get(), "trusted.overlay.opaque", &opaque, 1) == 1 && opaque == 'y';
    struct stat dst_st;
    bool dst_dir =
        ::fstatat(dst, name.c_str(), &dst_st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISDIR(dst_st.st_mode);
    if (!dst_dir) {
      RETURN_IF_ERROR(removeAt(dst, name).withContext(rel));
      if (::mkdirat(dst, name.c_str(), 0700) != 0) return err(rel, "mkdir");
    }
    fs::UniqueFd d = openDirAt(dst, name);
    if (!d.valid()) return err(rel, "open target");
    if (dst_dir && is_opaque) RETURN_IF_ERROR(removeChildren(d.get()).withContext(rel));
    RETURN_IF_ERROR(mergeDir(s.get(), d.get(), rel, depth + 1));
    RETURN_IF_ERROR(copyXattrs(s.get(), d.get()).withContext(rel));
    return copyMeta(src, dst, name, st, rel, d.get());
  }
  RETURN_IF_ERROR(removeAt(dst, name).withContext(rel));
  if (S_ISREG(st.st_mode) && st.st_nlink > 1) {
    auto key = std::make_pair(st.st_dev, st.st_ino);
    auto it = links_.find(key);
    if (it != links_.end() && ::linkat(dst_root_, it->second.c_str(), dst, name.c_str(), 0) == 0) {
      return Status::ok();
    }
    links_[key] = rel;
  }
  if (S_ISLNK(st.st_mode)) {
    std::string target(static_cast<size_t>(st.st_size) + 1, '\0');
    ssize_t n = ::readlinkat(src, name.c_str(), target.data(), target.size());
    if (n < 0) return err(rel, "readlink");
    target.resize(static_cast<size_t>(n));
    if (::symlinkat(target.c_str(), dst, name.c_str()) != 0) return err(rel, "symlink");
    return copyMeta(src, dst, name, st, rel, -1);
  }
  if (S_ISFIFO(st.st_mode)) {
    if (::mkfifoat(dst, name.c_str(), 0600) != 0) return err(rel, "mkfifo");
    return copyMeta(src, dst, name, st, rel, -1);
  }
  if (!S_ISREG(st.st_mode)) return Status::ok();  // devices and sockets are not copied
  fs::UniqueFd in(::openat(src, name.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC));
  if (!in.valid()) return err(rel, "open");
  fs::UniqueFd out(
      ::openat(dst, name.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600));
  if (!out.valid()) return err(rel, "create");
  off_t left = st.st_size;
  while (left > 0) {
    ssize_t n =
        ::copy_file_range(in.get(), nullptr, out.get(), nullptr, static_cast<size_t>(left), 0);
    if (n < 0 && (errno == EXDEV || errno == ENOSYS || errno == EINVAL)) {
      n = ::sendfile(out.get(), in.get(), nullptr, static_cast<size_t>(left));
    }
    if (n < 0) {
      if (errno == EINTR) continue;
      return err(rel, "copy");
    }
    if (n == 0) break;  // the file shrank underneath us
    left -= n;
  }
  RETURN_IF_ERROR(copyXattrs(in.get(), out.get()).withContext(rel));
  return copyMeta(src, dst, name, st, rel, out.get());
}

Status Materializer::mergeDir(int src, int dst, const std::string& rel, int depth) {
  if (depth > kMaxDepth) return Status::invalidArgument(rel + ": directory tree too deep");
  int dup = ::fcntl(src, F_DUPFD_CLOEXEC, 0);
  if (dup < 0) return err(rel, "dup");
  DIR* dir = ::fdopendir(dup);
  if (dir == nullptr) {
    ::close(dup);
    return err(rel, "opendir");
  }
  std::vector<std::string> names;
  while (dirent* d = ::readdir(dir)) {
    std::string n = d->d_name;
    if (n != "." && n != "..") names.push_back(std::move(n));
  }
  ::closedir(dir);
  for (const auto& n : names) {
    RETURN_IF_ERROR(copyEntry(src, dst, n, rel.empty() ? n : rel + "/" + n, depth));
  }
  return Status::ok();
}

}  // namespace

Status materializeRootfs(const std::vector<std::string>& layer_dirs, const std::string& target) {
  RETURN_IF_ERROR(fs::makeDirs(target));
  fs::UniqueFd dst(::open(target.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!dst.valid()) return Status::fromErrno(errno, "open " + target);
  {
    DIR* d = ::opendir(target.c_str());
    if (d == nullptr) return Status::fromErrno(errno, "open " + target);
    int entries = 0;
    while (dirent* e = ::readdir(d)) {
      if (std::strcmp(e->d_name, ".") != 0 && std::strcmp(e->d_name, "..") != 0) ++entries;
    }
    ::closedir(d);
    if (entries > 0) {
      return Status::failedPrecondition("materialize rootfs: target " + target + " is not empty");
    }
  }
  for (const auto& layer : layer_dirs) {
    fs::UniqueFd src(::open(layer.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!src.valid()) return Status::fromErrno(errno, "open layer " + layer);
    Materializer m(layer);
    m.setDstRoot(dst.get());
    RETURN_IF_ERROR(m.mergeDir(src.get(), dst.get(), "", 0));
  }
  return Status::ok();
}

}  // namespace edge::runtime
