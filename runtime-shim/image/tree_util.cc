#include "runtime-shim/image/tree_util.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>

#include <cerrno>

namespace edge::runtime::image {

fs::UniqueFd openDirAt(int dirfd, const std::string& name) {
  return fs::UniqueFd(
      ::openat(dirfd, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
}

std::vector<std::string> splitPath(const std::string& path) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start <= path.size()) {
    size_t slash = path.find('/', start);
    if (slash == std::string::npos) slash = path.size();
    if (slash > start) out.push_back(path.substr(start, slash - start));
    start = slash + 1;
  }
  return out;
}

Status removeChildren(int dirfd, int max_depth) {
  if (max_depth <= 0) return Status::internal("directory tree too deep to remove");
  int dup_fd = ::fcntl(dirfd, F_DUPFD_CLOEXEC, 0);
  if (dup_fd < 0) return Status::fromErrno(errno, "dup");
  DIR* dir = ::fdopendir(dup_fd);
  if (dir == nullptr) {
    int err = errno;
    ::close(dup_fd);
    return Status::fromErrno(err, "fdopendir");
  }
  std::vector<std::string> names;
  while (dirent* d = ::readdir(dir)) {
    std::string n = d->d_name;
    if (n != "." && n != "..") names.push_back(std::move(n));
  }
  ::closedir(dir);
  for (const auto& n : names) RETURN_IF_ERROR(removeAt(dirfd, n, max_depth - 1));
  return Status::ok();
}

Status removeAt(int dirfd, const std::string& name, int max_depth) {
  struct stat st;
  if (::fstatat(dirfd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
    if (errno == ENOENT) return Status::ok();
    return Status::fromErrno(errno, "stat " + name);
  }
  if (S_ISDIR(st.st_mode)) {
    fs::UniqueFd sub = openDirAt(dirfd, name);
    if (!sub.valid()) return Status::fromErrno(errno, "open " + name);
    RETURN_IF_ERROR(removeChildren(sub.get(), max_depth).withContext(name));
    if (::unlinkat(dirfd, name.c_str(), AT_REMOVEDIR) != 0 && errno != ENOENT) {
      return Status::fromErrno(errno, "rmdir " + name);
    }
    return Status::ok();
  }
  if (::unlinkat(dirfd, name.c_str(), 0) != 0 && errno != ENOENT) {
    return Status::fromErrno(errno, "unlink " + name);
  }
  return Status::ok();
}

}  // namespace edge::runtime::image
