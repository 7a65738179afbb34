// Small file-system helpers with Status errors, and an owning file descriptor.
#pragma once

#include <unistd.h>

#include <string>
#include <string_view>
#include <utility>

#include "common/status.h"

namespace edge::fs {

// Owns a file descriptor; closes it on destruction. Move-only.
class UniqueFd {
 public:
  UniqueFd() = default;
  explicit UniqueFd(int fd) : fd_(fd) {}
  ~UniqueFd() { reset(); }
  UniqueFd(UniqueFd&& o) noexcept : fd_(o.release()) {}
  UniqueFd& operator=(UniqueFd&& o) noexcept {
    if (this != &o) reset(o.release());
    return *this;
  }
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;

  int get() const { return fd_; }
  bool valid() const { return fd_ >= 0; }
  int release() { return std::exchange(fd_, -1); }
  void reset(int fd = -1) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = fd;
  }

 private:
  int fd_ = -1;
};

// Reads a whole (small) file. Refuses files larger than `max_bytes`.
Result<std::string> readFile(const std::string& path, size_t max_bytes = 64 << 20);

// Writes `data` to `path` atomically: temp file in the same directory, fsync, rename.
// A crash leaves either the old or the new content, never a torn file.
Status writeFileAtomic(const std::string& path, std::string_view data, int mode = 0644);

// mkdir -p. Existing directories are fine.
Status makeDirs(const std::string& path, int mode = 0755);

// rm -rf that does not cross mount points and does not follow symlinks.
Status removeAll(const std::string& path);

bool exists(const std::string& path);
bool isDirectory(const std::string& path);

// Writes all of `data` to `fd`, retrying on EINTR and short writes.
Status writeAll(int fd, std::string_view data);

}  // namespace edge::fs
