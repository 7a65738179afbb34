#include "runtime-shim/image/layer.h"

#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <memory>
#include <unordered_set>

#include "common/crypto.h"
#include "common/fs.h"
#include "runtime-shim/image/tree_util.h"

namespace edge::runtime::image {
namespace {

constexpr size_t kBlockSize = 64 * 1024;
constexpr char kWhiteoutPrefix[] = ".wh.";
constexpr char kOpaqueMarker[] = ".wh..wh..opq";
constexpr char kOverlayOpaqueXattr[] = "trusted.overlay.opaque";

struct ReadArchiveDeleter {
  void operator()(archive* a) const { archive_read_free(a); }
};
using ReadArchive = std::unique_ptr<archive, ReadArchiveDeleter>;

std::string archiveError(archive* a) {
  const char* e = archive_error_string(a);
  return e != nullptr ? e : "unknown archive error";
}

// The decompressed layer stream: a libarchive "raw" reader with every filter enabled
// (so gzip/zstd/xz/bzip2/none are detected from the bytes), hashed as the tar reader
// pulls it. One pass over the blob gives both the diff id and the unpacked tree.
struct HashingSource {
  archive* raw = nullptr;
  crypto::Sha256 sha;
  int64_t total = 0;
  int64_t max_total = 0;
  std::string error;

  static la_ssize_t read(archive* /*reader*/, void* client, const void** buf) {
    auto* self = static_cast<HashingSource*>(client);
    return self->next(buf);
  }

  la_ssize_t next(const void** buf) {
    size_t size = 0;
    la_int64_t offset = 0;
    int r = archive_read_data_block(raw, buf, &size, &offset);
    if (r == ARCHIVE_EOF) return 0;
    if (r < ARCHIVE_WARN) {
      error = "decompressing: " + archiveError(raw);
      return -1;
    }
    if (offset != total) {
      error = "decompressing: unexpected gap in stream";
      return -1;
    }
    total += static_cast<int64_t>(size);
    if (total > max_total) {
      error = "uncompressed layer exceeds " + std::to_string(max_total) + " bytes";
      return -1;
    }
    sha.update(*buf, size);
    return static_cast<la_ssize_t>(size);
  }
};

class Unpacker {
 public:
  Unpacker(int root_fd, WhiteoutMode mode, const LayerLimits& limits, std::string layer_name)
      : root_fd_(root_fd), mode_(mode), limits_(limits), layer_name_(std::move(layer_name)) {}

  Status entry(archive* a, archive_entry* e);
  Status finish();
  int64_t size() const { return size_; }

 private:
  Status bad(const std::string& path, const std::string& why) const {
    return Status::invalidArgument("layer " + layer_name_ + ": entry \"" + path + "\": " + why);
  }
  Status sysErr(const std::string& path, const std::string& what) const {
    return Status::fromErrno(errno, "layer " + layer_name_ + ": entry \"" + path + "\": " + what);
  }
  // Opens the directory holding `comps` minus the last component, creating missing
  // directories when `create`. Rejects symlinks and non-directories on the way.
  Result<int> parentFd(const std::string& path, const std::vector<std::string>& comps, bool create);
  // Forgets the cached parent. Its fd stays open (callers may still hold it as `dirfd`
  // for the entry in progress) until the cache is next filled and dropped again.
  void invalidateCache() {
    cached_parent_.clear();
    if (cached_fd_.valid()) stale_fd_ = std::move(cached_fd_);
  }
  Status makeRoom(int dirfd, const std::string& name, const std::string& path);
  Status setOwner(int dirfd, const std::string& name, archive_entry* e, const std::string& path);
  Status setXattrs(int fd, archive_entry* e, const std::string& path);
  Status whiteout(const std::string& path, const std::vector<std::string>& comps);
  Status clearLower(int dirfd, const std::string& dir_path, int depth);
  void markCreated(const std::string& path);
  bool created(const std::string& path) const { return created_.count(path) != 0; }
  Status writeFile(archive* a, archive_entry* e, int dirfd, const std::string& name,
                   const std::string& path);

  int root_fd_;
  WhiteoutMode mode_;
  LayerLimits limits_;
  std::string layer_name_;
  int64_t size_ = 0;
  std::string cached_parent_;
  fs::UniqueFd cached_fd_;
  fs::UniqueFd stale_fd_;
  // Every path this layer wrote plus its ancestors: what an opaque marker keeps.
  std::unordered_set<std::string> created_;
  // Overlay-mode whiteout devices made by this layer (a later directory entry of the
  // same name must become opaque instead).
  std::unordered_set<std::string> whiteouts_;
  struct DirTime {
    std::string path;
    timespec times[2];
  };
  std::vector<DirTime> dir_times_;
};

void Unpacker::markCreated(const std::string& path) {
  std::string p = path;
  while (!p.empty() && created_.insert(p).second) {
    size_t slash = p.rfind('/');
    if (slash == std::string::npos) break;
    p.resize(slash);
  }
}

Result<int> Unpacker::parentFd(const std::string& path, const std::vector<std::string>& comps,
                               bool create) {
  std::string parent;
  for (size_t i = 0; i + 1 < comps.size(); ++i) {
    if (i > 0) parent += '/';
    parent += comps[i];
  }
  if (parent.empty()) return root_fd_;
  if (cached_fd_.valid() && parent == cached_parent_) return cached_fd_.get();
  invalidateCache();
  fs::UniqueFd cur;
  int at = root_fd_;
  for (size_t i = 0; i + 1 < comps.size(); ++i) {
    fs::UniqueFd next = openDirAt(at, comps[i]);
    if (!next.valid() && errno == ENOENT && create) {
      if (::mkdirat(at, comps[i].c_str(), 0755) != 0 && errno != EEXIST) {
        return sysErr(path, "mkdir parent " + comps[i]);
      }
      next = openDirAt(at, comps[i]);
    }
    if (!next.valid()) {
      if (errno == ELOOP || errno == ENOTDIR) {
        return bad(path, "parent \"" + comps[i] + "\" is a symlink or not a directory");
      }
      if (errno == ENOENT) return bad(path, "parent directory \"" + comps[i] + "\" missing");
      return sysErr(path, "open parent " + comps[i]);
    }
    cur = std::move(next);
    at = cur.get();
  }
  cached_parent_ = parent;
  cached_fd_ = std::move(cur);
  return cached_fd_.get();
}

Status Unpacker::makeRoom(int dirfd, const std::string& name, const std::string& path) {
  struct stat st;
  if (::fstatat(dirfd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
    if (errno == ENOENT) return Status::ok();
    return sysErr(path, "stat");
  }
  if (S_ISDIR(st.st_mode)) invalidateCache();
  return removeAt(dirfd, name).withContext("layer " + layer_name_ + ": entry \"" + path + "\"");
}

Status Unpacker::setOwner(int dirfd, const std::string& name, archive_entry* e,
                          const std::string& path) {
  auto uid = static_cast<uid_t>(archive_entry_uid(e));
  auto gid = static_cast<gid_t>(archive_entry_gid(e));
  if (::fchownat(dirfd, name.c_str(), uid, gid, AT_SYMLINK_NOFOLLOW) != 0) {
    // Without root only our own ids are possible; keep going so unprivileged tests and
    // tools can unpack, as tar does.
    if (::geteuid() != 0 && (errno == EPERM || errno == EINVAL)) return Status::ok();
    return sysErr(path, "chown");
  }
  return Status::ok();
}

Status Unpacker::setXattrs(int fd, archive_entry* e, const std::string& path) {
  archive_entry_xattr_reset(e);
  const char* name = nullptr;
  const void* value = nullptr;
  size_t size = 0;
  while (archive_entry_xattr_next(e, &name, &value, &size) == ARCHIVE_OK) {
    // Overlay markers come only from our own whiteout conversion, never from a layer.
    if (std::strncmp(name, "trusted.overlay.", 16) == 0) continue;
    if (::fsetxattr(fd, name, value, size, 0) != 0) {
      if (errno == ENOTSUP || errno == EPERM) continue;
      return sysErr(path, std::string("set xattr ") + name);
    }
  }
  return Status::ok();
}

// Apply mode, opaque directory: deletes everything below `dirfd` that this layer did not
// write (and that is not an ancestor of something it wrote).
Status Unpacker::clearLower(int dirfd, const std::string& dir_path, int depth) {
  if (depth > 4096) return bad(dir_path, "directory tree too deep");
  fs::UniqueFd dup(::fcntl(dirfd, F_DUPFD_CLOEXEC, 0));
  if (!dup.valid()) return sysErr(dir_path, "dup");
  std::vector<std::string> names;
  {
    int raw = dup.release();
    DIR* dir = ::fdopendir(raw);
    if (dir == nullptr) {
      ::close(raw);
      return sysErr(dir_path, "opendir");
    }
    while (dirent* d = ::readdir(dir)) {
      std::string n = d->d_name;
      if (n != "." && n != "..") names.push_back(std::move(n));
    }
    ::closedir(dir);
  }
  for (const auto& n : names) {
    std::string child = dir_path.empty() ? n : dir_path + "/" + n;
    if (!created(child)) {
      invalidateCache();
      RETURN_IF_ERROR(removeAt(dirfd, n));
      continue;
    }
    fs::UniqueFd sub = openDirAt(dirfd, n);
    if (sub.valid()) RETURN_IF_ERROR(clearLower(sub.get(), child, depth + 1));
  }
  return Status::ok();
}

Status Unpacker::whiteout(const std::string& path, const std::vector<std::string>& comps) {
  const std::string& base = comps.back();
  std::string dir_path = path.substr(0, path.size() - base.size());
  if (!dir_path.empty()) dir_path.pop_back();
  ASSIGN_OR_RETURN(int dirfd, parentFd(path, comps, /*create=*/true));

  if (base == kOpaqueMarker) {
    if (mode_ == WhiteoutMode::kOverlay) {
      // dirfd may be the root fd or a cached O_RDONLY directory fd; both take xattrs.
      if (::fsetxattr(dirfd, kOverlayOpaqueXattr, "y", 1, 0) != 0) {
        return sysErr(path, "set opaque xattr");
      }
      return Status::ok();
    }
    return clearLower(dirfd, dir_path, 0);
  }
  if (base.starts_with(".wh..wh.")) return Status::ok();  // other AUFS meta files

  std::string name = base.substr(std::strlen(kWhiteoutPrefix));
  if (name.empty() || name == "." || name == ".." || name.size() > limits_.max_name_bytes) {
    return bad(path, "invalid whiteout name");
  }
  std::string target = dir_path.empty() ? name : dir_path + "/" + name;
  if (mode_ == WhiteoutMode::kApply) {
    if (!created(target)) {
      invalidateCache();
      return removeAt(dirfd, name).withContext("layer " + layer_name_ + ": entry \"" + path + "\"");
    }
    // This layer also wrote <name>: only the lower content under it is hidden.
    fs::UniqueFd sub = openDirAt(dirfd, name);
    return sub.valid() ? clearLower(sub.get(), target, 0) : Status::ok();
  }
  struct stat st;
  if (::fstatat(dirfd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0) {
    // The same layer has an entry of that name; it wins over the whiteout, but a
    // directory must still hide the lower one.
    if (S_ISDIR(st.st_mode)) {
      fs::UniqueFd sub = openDirAt(dirfd, name);
      if (!sub.valid() || ::fsetxattr(sub.get(), kOverlayOpaqueXattr, "y", 1, 0) != 0) {
        return sysErr(path, "set opaque xattr");
      }
    }
    return Status::ok();
  }
  if (::mknodat(dirfd, name.c_str(), S_IFCHR | 0, makedev(0, 0)) != 0) {
    return sysErr(path, "create whiteout device (needs root)");
  }
  whiteouts_.insert(target);
  return Status::ok();
}

Status Unpacker::writeFile(archive* a, archive_entry* e, int dirfd, const std::string& name,
                           const std::string& path) {
  int64_t declared = archive_entry_size_is_set(e) ? archive_entry_size(e) : 0;
  if (declared > limits_.max_entry_bytes) {
    return bad(path, "size " + std::to_string(declared) + " exceeds the per-entry limit of " +
                         std::to_string(limits_.max_entry_bytes) + " bytes");
  }
  if (size_ + declared > limits_.max_layer_bytes) {
    return bad(path, "layer exceeds the size limit of " + std::to_string(limits_.max_layer_bytes) +
                         " bytes");
  }
  RETURN_IF_ERROR(makeRoom(dirfd, name, path));
  fs::UniqueFd fd(
      ::openat(dirfd, name.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600));
  if (!fd.valid()) return sysErr(path, "create");
  int64_t written_end = 0;
  for (;;) {
    const void* buf = nullptr;
    size_t len = 0;
    la_int64_t offset = 0;
    int r = archive_read_data_block(a, &buf, &len, &offset);
    if (r == ARCHIVE_EOF) break;
    if (r < ARCHIVE_WARN) return bad(path, "reading data: " + archiveError(a));
    if (offset + static_cast<int64_t>(len) > limits_.max_entry_bytes) {
      return bad(path, "data exceeds the per-entry limit");
    }
    const char* p = static_cast<const char*>(buf);
    size_t left = len;
    while (left > 0) {
      ssize_t n = ::pwrite(fd.get(), p, left, offset);
      if (n < 0) {
        if (errno == EINTR) continue;
        return sysErr(path, "write");
      }
      p += n;
      left -= static_cast<size_t>(n);
      offset += n;
    }
    written_end = std::max<int64_t>(written_end, offset);
  }
  int64_t final_size = std::max(declared, written_end);
  if (final_size != written_end && ::ftruncate(fd.get(), final_size) != 0) {
    return sysErr(path, "truncate");
  }
  size_ += final_size;
  RETURN_IF_ERROR(setOwner(dirfd, name, e, path));
  if (::fchmod(fd.get(), archive_entry_perm(e)) != 0) return sysErr(path, "chmod");
  RETURN_IF_ERROR(setXattrs(fd.get(), e, path));
  timespec ts[2] = {{archive_entry_mtime(e), archive_entry_mtime_nsec(e)},
                    {archive_entry_mtime(e), archive_entry_mtime_nsec(e)}};
  if (::futimens(fd.get(), ts) != 0) return sysErr(path, "set times");
  return Status::ok();
}

Status Unpacker::entry(archive* a, archive_entry* e) {
  const char* raw_path = archive_entry_pathname(e);
  if (raw_path == nullptr) return bad("?", "entry without a name");
  Result<std::string> cleaned = cleanEntryPath(raw_path);
  if (!cleaned) return bad(raw_path, cleaned.status().message());
  const std::string& path = *cleaned;
  mode_t type = archive_entry_filetype(e);
  const char* hardlink = archive_entry_hardlink(e);
  if (path.empty()) {
    if (type == AE_IFDIR && hardlink == nullptr) return Status::ok();  // "./" itself
    return bad(raw_path, "entry names the layer root");
  }
  if (path.size() > limits_.max_path_bytes) return bad(path, "path too long");
  std::vector<std::string> comps = splitPath(path);
  for (const auto& c : comps) {
    if (c.size() > limits_.max_name_bytes) return bad(path, "name component too long");
  }
  const std::string& name = comps.back();
  if (name.starts_with(kWhiteoutPrefix)) return whiteout(path, comps);

  if (hardlink != nullptr) {
    Result<std::string> target = cleanEntryPath(hardlink);
    if (!target || target->empty()) {
      return bad(path, std::string("hard link target \"") + hardlink + "\" leaves the layer");
    }
    if (*target == path) return bad(path, "hard link to itself");
    std::vector<std::string> tcomps = splitPath(*target);
    // Resolve the target first: both parents may share the one cached fd.
    ASSIGN_OR_RETURN(int tdir_raw, parentFd(path, tcomps, /*create=*/false));
    fs::UniqueFd tdir(::fcntl(tdir_raw, F_DUPFD_CLOEXEC, 0));
    if (!tdir.valid()) return sysErr(path, "dup");
    struct stat st;
    if (::fstatat(tdir.get(), tcomps.back().c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
      return bad(path, "hard link target \"" + *target + "\" does not exist in the layer");
    }
    if (S_ISDIR(st.st_mode)) return bad(path, "hard link to a directory");
    if (S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode)) return bad(path, "hard link to a device");
    ASSIGN_OR_RETURN(int dirfd, parentFd(path, comps, /*create=*/true));
    RETURN_IF_ERROR(makeRoom(dirfd, name, path));
    if (::linkat(tdir.get(), tcomps.back().c_str(), dirfd, name.c_str(), 0) != 0) {
      return sysErr(path, "link");
    }
    markCreated(path);
    return Status::ok();
  }

  switch (type) {
    case AE_IFCHR:
    case AE_IFBLK:
      return bad(path, "device nodes are not allowed in image layers");
    case AE_IFSOCK:
      return Status::ok();
    default:
      break;
  }

  ASSIGN_OR_RETURN(int dirfd, parentFd(path, comps, /*create=*/true));
  timespec ts[2] = {{archive_entry_mtime(e), archive_entry_mtime_nsec(e)},
                    {archive_entry_mtime(e), archive_entry_mtime_nsec(e)}};
  switch (type) {
    case AE_IFDIR: {
      struct stat st;
      bool is_dir =
          ::fstatat(dirfd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISDIR(st.st_mode);
      if (!is_dir) {
        RETURN_IF_ERROR(makeRoom(dirfd, name, path));
        if (::mkdirat(dirfd, name.c_str(), 0700) != 0) return sysErr(path, "mkdir");
      }
      fs::UniqueFd d = openDirAt(dirfd, name);
      if (!d.valid()) return sysErr(path, "open directory");
      RETURN_IF_ERROR(setOwner(dirfd, name, e, path));
      if (::fchmod(d.get(), archive_entry_perm(e)) != 0) return sysErr(path, "chmod");
      RETURN_IF_ERROR(setXattrs(d.get(), e, path));
      if (whiteouts_.count(path) != 0 &&
          ::fsetxattr(d.get(), kOverlayOpaqueXattr, "y", 1, 0) != 0) {
        return sysErr(path, "set opaque xattr");
      }
      dir_times_.push_back({path, {ts[0], ts[1]}});
      break;
    }
    case AE_IFLNK: {
      const char* target = archive_entry_symlink(e);
      if (target == nullptr) return bad(path, "symlink without a target");
      RETURN_IF_ERROR(makeRoom(dirfd, name, path));
      if (::symlinkat(target, dirfd, name.c_str()) != 0) return sysErr(path, "symlink");
      RETURN_IF_ERROR(setOwner(dirfd, name, e, path));
      if (::utimensat(dirfd, name.c_str(), ts, AT_SYMLINK_NOFOLLOW) != 0) {
        return sysErr(path, "set times");
      }
      break;
    }
    case AE_IFIFO: {
      RETURN_IF_ERROR(makeRoom(dirfd, name, path));
      if (::mkfifoat(dirfd, name.c_str(), 0600) != 0) return sysErr(path, "mkfifo");
      RETURN_IF_ERROR(setOwner(dirfd, name, e, path));
      // We just made this fifo and hold the only reference to its directory.
      if (::fchmodat(dirfd, name.c_str(), archive_entry_perm(e), 0) != 0) {
        return sysErr(path, "chmod");
      }
      if (::utimensat(dirfd, name.c_str(), ts, AT_SYMLINK_NOFOLLOW) != 0) {
        return sysErr(path, "set times");
      }
      break;
    }
    default:
      RETURN_IF_ERROR(writeFile(a, e, dirfd, name, path));
      break;
  }
  markCreated(path);
  return Status::ok();
}

Status Unpacker::finish() {
  invalidateCache();
  // Children changed their directories' mtimes; restore them deepest first.
  for (auto it = dir_times_.rbegin(); it != dir_times_.rend(); ++it) {
    std::vector<std::string> comps = splitPath(it->path);
    Result<int> dirfd = parentFd(it->path, comps, /*create=*/false);
    if (!dirfd) continue;  // removed later by a whiteout of the same layer
    if (::utimensat(*dirfd, comps.back().c_str(), it->times, AT_SYMLINK_NOFOLLOW) != 0 &&
        errno != ENOENT) {
      return sysErr(it->path, "set times");
    }
  }
  invalidateCache();
  return Status::ok();
}

}  // namespace

Result<std::string> cleanEntryPath(const std::string& raw, bool allow_absolute) {
  if (!raw.empty() && raw[0] == '/' && !allow_absolute) {
    return Status::invalidArgument("absolute path");
  }
  std::string out;
  for (const auto& c : splitPath(raw)) {
    if (c == ".") continue;
    if (c == "..") return Status::invalidArgument("path contains a \"..\" component");
    if (!out.empty()) out += '/';
    out += c;
  }
  return out;
}

Result<LayerResult> unpackLayer(const std::string& layer_path, const std::string& dir,
                                WhiteoutMode mode, const LayerLimits& limits,
                                const std::string& layer_name) {
  fs::UniqueFd root(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!root.valid()) return Status::fromErrno(errno, "open " + dir);

  ReadArchive raw(archive_read_new());
  archive_read_support_filter_all(raw.get());
  archive_read_support_format_raw(raw.get());
  if (archive_read_open_filename(raw.get(), layer_path.c_str(), kBlockSize) != ARCHIVE_OK) {
    return Status::invalidArgument("layer " + layer_name + ": " + archiveError(raw.get()));
  }
  archive_entry* raw_entry = nullptr;
  if (archive_read_next_header(raw.get(), &raw_entry) != ARCHIVE_OK) {
    return Status::invalidArgument("layer " + layer_name + ": " + archiveError(raw.get()));
  }

  HashingSource src;
  src.raw = raw.get();
  // Tar headers and padding add little; a stream far beyond the layer limit is a bomb.
  src.max_total = limits.max_layer_bytes + limits.max_layer_bytes / 8 + (int64_t{64} << 20);
  ReadArchive tar(archive_read_new());
  archive_read_support_format_tar(tar.get());
  if (archive_read_open(tar.get(), &src, nullptr, &HashingSource::read, nullptr) != ARCHIVE_OK) {
    std::string why = src.error.empty() ? archiveError(tar.get()) : src.error;
    return Status::invalidArgument("layer " + layer_name + ": not a tar stream: " + why);
  }

  Unpacker unpacker(root.get(), mode, limits, layer_name);
  for (;;) {
    archive_entry* e = nullptr;
    int r = archive_read_next_header(tar.get(), &e);
    if (r == ARCHIVE_EOF) break;
    if (r < ARCHIVE_WARN) {
      std::string why = src.error.empty() ? archiveError(tar.get()) : src.error;
      return Status::invalidArgument("layer " + layer_name + ": " + why);
    }
    RETURN_IF_ERROR(unpacker.entry(tar.get(), e));
  }
  RETURN_IF_ERROR(unpacker.finish());
  // The diff id covers the whole uncompressed stream, including what follows the tar's
  // end-of-archive blocks.
  const void* buf = nullptr;
  for (;;) {
    la_ssize_t n = src.next(&buf);
    if (n == 0) break;
    if (n < 0) return Status::invalidArgument("layer " + layer_name + ": " + src.error);
  }
  LayerResult result;
  result.diff_id = "sha256:" + src.sha.finishHex();
  result.size_bytes = unpacker.size();
  return result;
}

}  // namespace edge::runtime::image
