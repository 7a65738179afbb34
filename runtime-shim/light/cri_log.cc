#include "runtime-shim/light/cri_log.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <deque>

namespace edge::runtime::light {

std::string formatCriRecord(WallTime t, LogStream stream, bool partial, std::string_view data) {
  std::string rec = formatRfc3339Nano(t);
  rec += stream == LogStream::kStderr ? " stderr " : " stdout ";
  rec += partial ? "P " : "F ";
  rec.append(data);
  rec += '\n';
  return rec;
}

bool parseCriRecord(std::string_view line, LogEntry* out) {
  size_t s1 = line.find(' ');
  if (s1 == std::string_view::npos) return false;
  size_t s2 = line.find(' ', s1 + 1);
  if (s2 == std::string_view::npos) return false;
  std::string_view stream = line.substr(s1 + 1, s2 - s1 - 1);
  if (stream == "stdout") {
    out->stream = LogStream::kStdout;
  } else if (stream == "stderr") {
    out->stream = LogStream::kStderr;
  } else {
    return false;
  }
  // The tag field may carry more flags after ':' in newer CRI versions; only P/F matter.
  if (s2 + 2 > line.size()) return false;
  char tag = line[s2 + 1];
  if (tag != 'P' && tag != 'F') return false;
  size_t content = s2 + 2;
  while (content < line.size() && line[content] != ' ') ++content;
  if (!parseTimestamp(std::string(line.substr(0, s1)), &out->time)) return false;
  out->data.assign(content < line.size() ? line.substr(content + 1) : std::string_view());
  if (tag == 'F') out->data += '\n';
  return true;
}

CriLogWriter::CriLogWriter(std::string path, CriLogLimits limits, std::function<WallTime()> now)
    : path_(std::move(path)), limits_(limits), now_(std::move(now)) {
  if (limits_.max_files < 1) limits_.max_files = 1;
  if (limits_.max_line < 1) limits_.max_line = 1;
}

Status CriLogWriter::open() {
  fd_.reset(::open(path_.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640));
  if (!fd_.valid()) return Status::fromErrno(errno, "open log " + path_);
  struct stat st {};
  size_ = ::fstat(fd_.get(), &st) == 0 ? st.st_size : 0;
  return Status::ok();
}

Status CriLogWriter::rotate() {
  fd_.reset();
  if (limits_.max_files == 1) {
    ::unlink(path_.c_str());
  } else {
    for (int i = limits_.max_files - 1; i >= 1; --i) {
      std::string from = i == 1 ? path_ : path_ + "." + std::to_string(i - 1);
      ::rename(from.c_str(), (path_ + "." + std::to_string(i)).c_str());
    }
  }
  size_ = 0;
  return open();
}

Status CriLogWriter::emit(LogStream stream, bool partial, std::string_view data) {
  std::string rec = formatCriRecord(now_(), stream, partial, data);
  if (size_ > 0 && size_ + static_cast<int64_t>(rec.size()) > limits_.max_file_bytes) {
    RETURN_IF_ERROR(rotate());
  }
  if (!fd_.valid()) return Status::failedPrecondition("log " + path_ + " is not open");
  RETURN_IF_ERROR(fs::writeAll(fd_.get(), rec));
  size_ += static_cast<int64_t>(rec.size());
  return Status::ok();
}

Status CriLogWriter::write(LogStream stream, std::string_view data) {
  std::string& pending = pending_[static_cast<int>(stream)];
  while (!data.empty()) {
    size_t nl = data.find('\n');
    std::string_view piece = nl == std::string_view::npos ? data : data.substr(0, nl);
    pending.append(piece);
    // Over-long lines leave as P records of max_line bytes.
    while (pending.size() > limits_.max_line ||
           (nl == std::string_view::npos && pending.size() == limits_.max_line)) {
      RETURN_IF_ERROR(emit(stream, true, std::string_view(pending).substr(0, limits_.max_line)));
      pending.erase(0, limits_.max_line);
    }
    if (nl == std::string_view::npos) break;
    RETURN_IF_ERROR(emit(stream, false, pending));
    pending.clear();
    data.remove_prefix(nl + 1);
  }
  return Status::ok();
}

Status CriLogWriter::flush(LogStream stream) {
  std::string& pending = pending_[static_cast<int>(stream)];
  if (pending.empty()) return Status::ok();
  Status s = emit(stream, true, pending);
  pending.clear();
  return s;
}

std::vector<std::string> criLogFiles(const std::string& path, int max_files) {
  std::vector<std::string> out;
  for (int i = std::max(1, max_files) + 2; i >= 1; --i) {
    std::string p = path + "." + std::to_string(i);
    if (::access(p.c_str(), F_OK) == 0) out.push_back(p);
  }
  if (::access(path.c_str(), F_OK) == 0) out.push_back(path);
  return out;
}

namespace {

// Incremental reader of one file: hands complete lines to `on_line`.
class LineReader {
 public:
  bool open(const std::string& path) {
    fd_.reset(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    buf_.clear();
    if (!fd_.valid()) return false;
    struct stat st {};
    ino_ = ::fstat(fd_.get(), &st) == 0 ? st.st_ino : 0;
    return true;
  }
  bool valid() const { return fd_.valid(); }
  ino_t inode() const { return ino_; }
  // Reads to EOF. Returns false when on_line asked to stop.
  template <typename F>
  bool drain(F&& on_line, bool* progressed) {
    char chunk[64 << 10];
    for (;;) {
      ssize_t n = ::read(fd_.get(), chunk, sizeof chunk);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return true;
      if (progressed) *progressed = true;
      buf_.append(chunk, static_cast<size_t>(n));
      size_t start = 0;
      for (;;) {
        size_t nl = buf_.find('\n', start);
        if (nl == std::string::npos) break;
        if (!on_line(std::string_view(buf_).substr(start, nl - start))) return false;
        start = nl + 1;
      }
      buf_.erase(0, start);
    }
  }

 private:
  fs::UniqueFd fd_;
  ino_t ino_ = 0;
  std::string buf_;
};

}  // namespace

Status readCriLogs(const std::string& path, int max_files, const LogOptions& options,
                   const LogSink& sink, const CriReadControl& control) {
  auto wanted = [&](const LogEntry& e) {
    if (e.stream == LogStream::kStdout && !options.include_stdout) return false;
    if (e.stream == LogStream::kStderr && !options.include_stderr) return false;
    if (options.since && e.time < *options.since) return false;
    if (options.until && e.time >= *options.until) return false;
    return true;
  };
  bool stopped = false;
  std::deque<LogEntry> tail;
  bool buffering = options.tail.has_value();
  auto deliver = [&](std::string_view line) {
    LogEntry e;
    if (!parseCriRecord(line, &e) || !wanted(e)) return true;  // garbage is skipped
    if (buffering) {
      if (*options.tail == 0) return true;
      tail.push_back(std::move(e));
      if (tail.size() > *options.tail) tail.pop_front();
      return true;
    }
    if (!sink(e)) {
      stopped = true;
      return false;
    }
    return true;
  };

  std::string dir = path.substr(0, path.rfind('/'));
  fs::UniqueFd ino;
  if (options.follow) {
    // Watch before the first read so no write between the two is missed.
    ino.reset(::inotify_init1(IN_CLOEXEC | IN_NONBLOCK));
    if (ino.valid()) {
      ::inotify_add_watch(ino.get(), dir.c_str(),
                          IN_MODIFY | IN_CREATE | IN_MOVED_TO | IN_CLOSE_WRITE | IN_ATTRIB);
    }
  }

  std::vector<std::string> files = criLogFiles(path, max_files);
  LineReader current;
  for (const std::string& f : files) {
    if (!current.open(f)) continue;
    if (!current.drain(deliver, nullptr)) return Status::ok();
  }
  if (buffering) {
    buffering = false;
    for (const LogEntry& e : tail) {
      if (!sink(e)) return Status::ok();
    }
    tail.clear();
  }
  if (!options.follow) return Status::ok();
  if (files.empty() || files.back() != path) current = LineReader();

  // Follow: at most one pass per wake-up; rotation is seen as a new inode at `path`.
  for (;;) {
    bool progressed = false;
    if (current.valid() && !current.drain(deliver, &progressed)) return Status::ok();
    struct stat st {};
    if (::stat(path.c_str(), &st) == 0 && (!current.valid() || st.st_ino != current.inode())) {
      if (current.valid() && !current.drain(deliver, &progressed)) return Status::ok();
      current.open(path);
      progressed = true;
      continue;
    }
    if (stopped) return Status::ok();
    if (!progressed) {
      if (control.finished && control.finished()) {
        // Everything the container wrote is on disk before it is marked finished; one
        // last pass picks up what arrived since the previous read.
        if (current.valid()) current.drain(deliver, nullptr);
        return Status::ok();
      }
      int ms = static_cast<int>(
          std::chrono::duration_cast<std::chrono::milliseconds>(control.poll_interval).count());
      if (ino.valid()) {
        pollfd p{ino.get(), POLLIN, 0};
        if (::poll(&p, 1, ms) > 0) {
          char evbuf[4096];
          while (::read(ino.get(), evbuf, sizeof evbuf) > 0) {
          }
        }
      } else {
        ::poll(nullptr, 0, ms);
      }
    }
  }
}

}  // namespace edge::runtime::light
