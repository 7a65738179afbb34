#include "common/fs.h"

#include <fcntl.h>
#include <sys/stat.h>

#include <atomic>
#include <cerrno>
#include <cstdint>
#include <filesystem>
#include <system_error>

namespace edge::fs {

Result<std::string> readFile(const std::string& path, size_t max_bytes) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) return Status::fromErrno(errno, "open " + path);
  std::string out;
  char buf[16384];
  while (true) {
    ssize_t n = ::read(fd.get(), buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR) continue;
      return Status::fromErrno(errno, "read " + path);
    }
    if (n == 0) break;
    if (out.size() + static_cast<size_t>(n) > max_bytes) {
      return Status::resourceExhausted(path + " is larger than the " + std::to_string(max_bytes) +
                                       " bytes allowed");
    }
    out.append(buf, static_cast<size_t>(n));
  }
  return out;
}

Status writeAll(int fd, std::string_view data) {
  while (!data.empty()) {
    ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return Status::fromErrno(errno, "write");
    }
    data.remove_prefix(static_cast<size_t>(n));
  }
  return Status::ok();
}

Status writeFileAtomic(const std::string& path, std::string_view data, int mode) {
  // Unique per call, so threads and processes writing the same path never share a temp.
  static std::atomic<uint64_t> counter{0};
  std::string tmp = path + ".tmp." + std::to_string(::getpid()) + "." +
                    std::to_string(counter.fetch_add(1, std::memory_order_relaxed));
  UniqueFd fd(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode));
  if (!fd.valid()) return Status::fromErrno(errno, "create " + tmp);
  Status s = writeAll(fd.get(), data);
  if (s.isOk() && ::fsync(fd.get()) != 0) s = Status::fromErrno(errno, "fsync " + tmp);
  fd.reset();
  if (s.isOk() && ::rename(tmp.c_str(), path.c_str()) != 0) {
    s = Status::fromErrno(errno, "rename " + tmp + " to " + path);
  }
  if (!s.isOk()) ::unlink(tmp.c_str());
  return s.withContext("writing " + path);
}

Status makeDirs(const std::string& path, int mode) {
  if (path.empty()) return Status::invalidArgument("makeDirs: empty path");
  std::string cur;
  size_t pos = 0;
  while (pos <= path.size()) {
    size_t next = path.find('/', pos);
    if (next == std::string::npos) next = path.size();
    cur = path.substr(0, next);
    pos = next + 1;
    if (cur.empty()) continue;
    if (::mkdir(cur.c_str(), static_cast<mode_t>(mode)) != 0 && errno != EEXIST) {
      return Status::fromErrno(errno, "mkdir " + cur);
    }
  }
  if (!isDirectory(path))
    return Status::failedPrecondition(path + " exists and is not a directory");
  return Status::ok();
}

Status removeAll(const std::string& path) {
  std::error_code ec;
  std::filesystem::remove_all(path, ec);
  if (ec) return Status::internal("remove " + path + ": " + ec.message());
  return Status::ok();
}

bool exists(const std::string& path) {
  struct stat st;
  return ::lstat(path.c_str(), &st) == 0;
}

bool isDirectory(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

}  // namespace edge::fs
