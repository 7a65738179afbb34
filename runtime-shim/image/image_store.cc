#include "runtime-shim/image/image_store.h"

#include <archive.h>
#include <archive_entry.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <filesystem>
#include <map>
#include <mutex>
#include <set>

#include "common/clock.h"
#include "common/crypto.h"
#include "common/fs.h"
#include "common/json.h"
#include "common/log.h"
#include "common/platform.h"
#include "runtime-shim/image/layer.h"
#include "runtime-shim/image/manifest.h"
#include "runtime-shim/image/tree_util.h"

namespace edge::runtime {
namespace {

using image::LayerLimits;
using json::Json;

constexpr size_t kBlockSize = 64 * 1024;
constexpr size_t kMaxJsonBytes = 64 << 20;

bool isLowerHex(char c) {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
}

bool isHex64(std::string_view s) {
  return s.size() == 64 && std::all_of(s.begin(), s.end(), isLowerHex);
}

bool isHex(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), isLowerHex);
}

std::string stripSha(const std::string& digest) {
  return digest.starts_with("sha256:") ? digest.substr(7) : digest;
}

struct ReadArchiveDeleter {
  void operator()(archive* a) const { archive_read_free(a); }
};

// ---- index (images.json) ----

struct StoredImage {
  ImageInfo info;
  std::string config_hex;
  std::vector<std::string> manifest_hexes;
  std::string config_source;  // archive path while loading; not stored
};

Json toJson(const StoredImage& s) {
  const ImageInfo& i = s.info;
  return Json{{"id", i.id},
              {"tags", i.tags},
              {"layers", i.layers},
              {"size", i.size_bytes},
              {"created", formatRfc3339Nano(i.created)},
              {"os", i.os},
              {"architecture", i.architecture},
              {"entrypoint", i.entrypoint},
              {"cmd", i.cmd},
              {"env", i.env},
              {"working_dir", i.working_dir},
              {"user", i.user},
              {"stop_signal", i.stop_signal},
              {"labels", i.labels},
              {"config_blob", s.config_hex},
              {"manifest_blobs", s.manifest_hexes}};
}

Result<StoredImage> fromJson(const Json& j) {
  StoredImage s;
  ImageInfo& i = s.info;
  ASSIGN_OR_RETURN(i.id, json::getString(j, "id", ".images[]"));
  ASSIGN_OR_RETURN(i.tags, json::getStringArray(j, "tags", ".images[]"));
  ASSIGN_OR_RETURN(i.layers, json::getStringArray(j, "layers", ".images[]"));
  ASSIGN_OR_RETURN(i.size_bytes, json::getInt(j, "size", ".images[]", 0));
  ASSIGN_OR_RETURN(std::string created, json::getString(j, "created", ".images[]", ""));
  parseTimestamp(created, &i.created);
  ASSIGN_OR_RETURN(i.os, json::getString(j, "os", ".images[]", ""));
  ASSIGN_OR_RETURN(i.architecture, json::getString(j, "architecture", ".images[]", ""));
  ASSIGN_OR_RETURN(i.entrypoint, json::getStringArray(j, "entrypoint", ".images[]"));
  ASSIGN_OR_RETURN(i.cmd, json::getStringArray(j, "cmd", ".images[]"));
  ASSIGN_OR_RETURN(i.env, json::getStringArray(j, "env", ".images[]"));
  ASSIGN_OR_RETURN(i.working_dir, json::getString(j, "working_dir", ".images[]", ""));
  ASSIGN_OR_RETURN(i.user, json::getString(j, "user", ".images[]", ""));
  ASSIGN_OR_RETURN(i.stop_signal, json::getString(j, "stop_signal", ".images[]", ""));
  ASSIGN_OR_RETURN(i.labels, json::getStringMap(j, "labels", ".images[]"));
  ASSIGN_OR_RETURN(s.config_hex, json::getString(j, "config_blob", ".images[]", ""));
  ASSIGN_OR_RETURN(s.manifest_hexes, json::getStringArray(j, "manifest_blobs", ".images[]"));
  return s;
}

using Index = std::map<std::string, StoredImage>;  // by id

// ---- a staged archive: every regular file of the outer tarball, on disk ----

class Staging {
 public:
  explicit Staging(std::string dir) : dir_(std::move(dir)) {}
  const std::string& dir() const { return dir_; }

  Status extract(const std::string& tarball);
  // Resolves an archive path (following the archive's own symlinks and hard links, inside
  // the archive only) to a staged file. kInvalidArgument when it is not there.
  Result<std::string> file(const std::string& archive_path) const;
  bool has(const std::string& archive_path) const { return file(archive_path).isOk(); }

 private:
  Status extractFile(archive* a, const std::string& path);

  std::string dir_;
  std::set<std::string> files_;
  std::map<std::string, std::string> aliases_;
  mutable std::set<std::string> verified_;  // linked blobs whose digest was checked
};

Status Staging::extract(const std::string& tarball) {
  std::unique_ptr<archive, ReadArchiveDeleter> a(archive_read_new());
  archive_read_support_filter_all(a.get());
  archive_read_support_format_tar(a.get());
  if (archive_read_open_filename(a.get(), tarball.c_str(), kBlockSize) != ARCHIVE_OK) {
    const char* e = archive_error_string(a.get());
    return Status(
        archive_errno(a.get()) == ENOENT ? StatusCode::kNotFound : StatusCode::kInvalidArgument,
        tarball + ": " + (e ? e : "cannot open"));
  }
  for (;;) {
    archive_entry* e = nullptr;
    int r = archive_read_next_header(a.get(), &e);
    if (r == ARCHIVE_EOF) break;
    if (r < ARCHIVE_WARN) {
      const char* msg = archive_error_string(a.get());
      return Status::invalidArgument(tarball + ": " + (msg ? msg : "unreadable archive"));
    }
    const char* raw = archive_entry_pathname(e);
    if (raw == nullptr) return Status::invalidArgument(tarball + ": entry without a name");
    Result<std::string> path = image::cleanEntryPath(raw);
    if (!path) {
      return Status::invalidArgument(tarball + ": entry \"" + raw +
                                     "\": " + path.status().message());
    }
    if (path->empty() || path->size() > 4095) continue;
    if (const char* link = archive_entry_hardlink(e)) {
      Result<std::string> target = image::cleanEntryPath(link);
      if (target && !target->empty()) aliases_[*path] = *target;
      continue;
    }
    switch (archive_entry_filetype(e)) {
      case AE_IFREG:
        RETURN_IF_ERROR(extractFile(a.get(), *path).withContext(tarball));
        break;
      case AE_IFLNK: {
        const char* t = archive_entry_symlink(e);
        if (t == nullptr || t[0] == '/') break;
        size_t slash = path->rfind('/');
        std::string base = slash == std::string::npos ? "" : path->substr(0, slash + 1);
        // ".." is allowed here as long as it stays inside the archive ("../blobs/...").
        std::vector<std::string> out;
        bool escapes = false;
        for (const auto& c : image::splitPath(base + t)) {
          if (c == ".") continue;
          if (c == "..") {
            if (out.empty()) {
              escapes = true;
              break;
            }
            out.pop_back();
            continue;
          }
          out.push_back(c);
        }
        if (escapes || out.empty()) break;
        std::string joined;
        for (const auto& c : out) joined += (joined.empty() ? "" : "/") + c;
        aliases_[*path] = joined;
        break;
      }
      default:
        break;  // directories are implied; anything else is not ours to read
    }
  }
  return Status::ok();
}

Status Staging::extractFile(archive* a, const std::string& path) {
  std::string dst = dir_ + "/" + path;
  RETURN_IF_ERROR(fs::makeDirs(dst.substr(0, dst.rfind('/'))));
  ::unlink(dst.c_str());
  fs::UniqueFd fd(::open(dst.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600));
  if (!fd.valid()) return Status::fromErrno(errno, "stage " + path);
  // Blobs are named by their digest; check it while the bytes go by.
  std::string expected;
  if (path.starts_with("blobs/sha256/")) expected = path.substr(13);
  crypto::Sha256 sha;
  for (;;) {
    const void* buf = nullptr;
    size_t len = 0;
    la_int64_t offset = 0;
    int r = archive_read_data_block(a, &buf, &len, &offset);
    if (r == ARCHIVE_EOF) break;
    if (r < ARCHIVE_WARN) {
      const char* msg = archive_error_string(a);
      return Status::invalidArgument("entry \"" + path + "\": " + (msg ? msg : "read error"));
    }
    if (::lseek(fd.get(), offset, SEEK_SET) < 0) return Status::fromErrno(errno, "seek");
    if (!expected.empty()) sha.update(buf, len);
    RETURN_IF_ERROR(fs::writeAll(fd.get(), std::string_view(static_cast<const char*>(buf), len)));
  }
  if (!expected.empty()) {
    std::string got = sha.finishHex();
    if (got != expected) {
      return Status::invalidArgument(
          "blob \"" + path + "\" does not match its digest (content is sha256:" + got + ")");
    }
  }
  files_.insert(path);
  return Status::ok();
}

Result<std::string> Staging::file(const std::string& archive_path) const {
  Result<std::string> p = image::cleanEntryPath(archive_path);
  if (!p || p->empty()) {
    return Status::invalidArgument("bad path \"" + archive_path + "\" in the archive");
  }
  std::string cur = *p;
  for (int i = 0; i < 16; ++i) {
    if (files_.count(cur) != 0) {
      std::string staged = dir_ + "/" + cur;
      // A blob reached through a link was not hashed under its name while staging.
      if (cur != *p && p->starts_with("blobs/sha256/") && verified_.count(*p) == 0) {
        ASSIGN_OR_RETURN(std::string got, crypto::sha256File(staged));
        if (got != p->substr(13)) {
          return Status::invalidArgument("blob \"" + *p + "\" does not match its digest");
        }
        verified_.insert(*p);
      }
      return staged;
    }
    auto it = aliases_.find(cur);
    if (it == aliases_.end()) break;
    cur = it->second;
  }
  return Status::invalidArgument("\"" + archive_path + "\" is missing from the archive");
}

// ---- the store ----

class ImageStoreImpl : public ImageStore {
 public:
  explicit ImageStoreImpl(std::string root) : root_(std::move(root)) {}

  Status init();
  void removeStaleLeftovers();
  Result<std::vector<ImageInfo>> load(const std::string& tarball_path) override;
  Result<std::vector<ImageInfo>> list() override;
  Result<ImageInfo> inspect(const std::string& ref) override;
  Result<std::vector<std::string>> layerPaths(const std::string& ref) override;
  Status remove(const std::string& ref, bool force,
                const std::function<bool(const std::string& image_id)>& in_use) override;
  void setLimits(const LayerLimits& limits) override {
    std::lock_guard lock(mu_);
    limits_ = limits;
  }

 private:
  // Holds the in-process mutex and the cross-process lock file.
  class Lock {
   public:
    explicit Lock(ImageStoreImpl* s) : guard_(s->mu_) {
      fd_ = fs::UniqueFd(::open((s->root_ + "/lock").c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600));
      if (fd_.valid()) {
        while (::flock(fd_.get(), LOCK_EX) != 0 && errno == EINTR) {
        }
      }
    }

   private:
    std::lock_guard<std::mutex> guard_;
    fs::UniqueFd fd_;
  };

  std::string layerDir(const std::string& hex) const { return root_ + "/layers/" + hex; }
  std::string layerInfo(const std::string& hex) const { return root_ + "/layerinfo/" + hex; }
  std::string blobPath(const std::string& hex) const { return root_ + "/blobs/sha256/" + hex; }

  Result<Index> readIndex() const;  // caller holds the lock
  Status writeIndex(const Index& index) const;
  Result<const StoredImage*> resolve(const Index& index, const std::string& ref,
                                     bool* by_tag) const;
  Result<int64_t> ensureLayer(const std::string& diff_id, const std::string& blob,
                              const LayerLimits& limits, std::vector<std::string>* created);
  Result<StoredImage> prepareImage(const Staging& staging, const image::ImageCandidate& c,
                                   const LayerLimits& limits, std::vector<std::string>* created,
                                   std::vector<std::string>* pinned);
  Status commit(const Staging& staging, std::vector<StoredImage>& images,
                std::vector<ImageInfo>* out);
  void unpin(const std::vector<std::string>& hexes);
  // Deletes layers and blobs no image in `index` refers to (caller holds the lock).
  void collectGarbage(const Index& index, const std::vector<std::string>& layer_hexes,
                      const std::vector<std::string>& blob_hexes);

  std::string root_;
  std::mutex mu_;
  LayerLimits limits_;
  std::map<std::string, int> pinned_;  // layer hex -> loads in flight using it
  // One unpack per layer at a time: a second load of the same layer waits for the first
  // instead of unpacking it again.
  std::map<std::string, std::weak_ptr<std::mutex>> unpacking_;
};

Status ImageStoreImpl::init() {
  for (const char* d : {"", "/blobs/sha256", "/layers", "/layerinfo", "/tmp"}) {
    RETURN_IF_ERROR(fs::makeDirs(root_ + d, 0700));
  }
  removeStaleLeftovers();
  return Status::ok();
}

// A crash mid-load leaves staging directories and half-unpacked layers. Only old ones
// are removed: another process may be loading into the same store right now.
void ImageStoreImpl::removeStaleLeftovers() {
  constexpr std::chrono::hours kStaleAfter{6};
  const auto now = std::chrono::system_clock::now();
  for (const auto& [dir, marker] : {std::pair<std::string, std::string>{root_ + "/tmp", ""},
                                    {root_ + "/layers", ".tmp-"},
                                    {root_ + "/layerinfo", ".tmp-"}}) {
    std::error_code ec;
    for (const auto& e : std::filesystem::directory_iterator(dir, ec)) {
      std::string name = e.path().filename().string();
      if (!marker.empty() && name.find(marker) == std::string::npos) continue;
      struct stat st;
      if (::lstat(e.path().c_str(), &st) != 0) continue;
      auto mtime = std::chrono::system_clock::from_time_t(st.st_mtime);
      if (now - mtime < kStaleAfter) continue;
      LOG_INFO("removing stale image store leftover").kv("path", e.path().string());
      (void)fs::removeAll(e.path().string());
    }
  }
}

Result<Index> ImageStoreImpl::readIndex() const {
  Index index;
  std::string path = root_ + "/images.json";
  if (!fs::exists(path)) return index;
  ASSIGN_OR_RETURN(std::string text, fs::readFile(path));
  ASSIGN_OR_RETURN(Json j, json::parse(text, path));
  if (!j.is_object() || !j.contains("images") || !j["images"].is_array()) {
    return Status::internal(path + ": .images must be an array");
  }
  for (const auto& item : j["images"]) {
    Result<StoredImage> s = fromJson(item);
    if (!s) return s.status().withContext(path);
    index[s->info.id] = std::move(*s);
  }
  return index;
}

Status ImageStoreImpl::writeIndex(const Index& index) const {
  Json images = Json::array();
  for (const auto& [id, s] : index) images.push_back(toJson(s));
  Json j{{"version", 1}, {"images", images}};
  return fs::writeFileAtomic(root_ + "/images.json", json::dump(j, 1), 0600);
}

Result<const StoredImage*> ImageStoreImpl::resolve(const Index& index, const std::string& ref,
                                                   bool* by_tag) const {
  *by_tag = false;
  if (ref.empty()) return Status::invalidArgument("empty image reference");
  std::string tag = normalizeImageRef(ref);
  for (const auto& [id, s] : index) {
    if (std::find(s.info.tags.begin(), s.info.tags.end(), tag) != s.info.tags.end()) {
      *by_tag = true;
      return &s;
    }
  }
  std::string hex = stripSha(ref);
  if (isHex(hex) && hex.size() <= 64) {
    const StoredImage* found = nullptr;
    for (const auto& [id, s] : index) {
      if (stripSha(id).starts_with(hex)) {
        if (found != nullptr) {
          return Status::invalidArgument("image id prefix " + ref + " is ambiguous");
        }
        found = &s;
      }
    }
    if (found != nullptr) return found;
  }
  return Status::notFound("no such image: " + ref);
}

Result<std::vector<ImageInfo>> ImageStoreImpl::list() {
  Lock lock(this);
  ASSIGN_OR_RETURN(Index index, readIndex());
  std::vector<ImageInfo> out;
  for (auto& [id, s] : index) out.push_back(std::move(s.info));
  return out;
}

Result<ImageInfo> ImageStoreImpl::inspect(const std::string& ref) {
  Lock lock(this);
  ASSIGN_OR_RETURN(Index index, readIndex());
  bool by_tag = false;
  ASSIGN_OR_RETURN(const StoredImage* s, resolve(index, ref, &by_tag));
  return s->info;
}

Result<std::vector<std::string>> ImageStoreImpl::layerPaths(const std::string& ref) {
  Lock lock(this);
  ASSIGN_OR_RETURN(Index index, readIndex());
  bool by_tag = false;
  ASSIGN_OR_RETURN(const StoredImage* s, resolve(index, ref, &by_tag));
  // An image may list the same layer twice (identical RUN steps). overlayfs refuses a
  // lowerdir given twice, and keeping only the highest occurrence gives the same tree: a
  // layer only touches the paths it names, and the higher copy re-applies all of them.
  std::vector<std::string> out;
  std::set<std::string> seen;
  for (auto it = s->info.layers.rbegin(); it != s->info.layers.rend(); ++it) {
    if (seen.insert(*it).second) out.push_back(layerDir(stripSha(*it)));
  }
  std::reverse(out.begin(), out.end());
  return out;
}

void ImageStoreImpl::unpin(const std::vector<std::string>& hexes) {
  for (const auto& h : hexes) {
    auto it = pinned_.find(h);
    if (it != pinned_.end() && --it->second <= 0) pinned_.erase(it);
  }
}

Result<int64_t> ImageStoreImpl::ensureLayer(const std::string& diff_id, const std::string& blob,
                                            const LayerLimits& limits,
                                            std::vector<std::string>* created) {
  std::string hex = stripSha(diff_id);
  std::shared_ptr<std::mutex> layer_mu;
  {
    std::lock_guard lock(mu_);
    std::erase_if(unpacking_, [](const auto& kv) { return kv.second.expired(); });
    layer_mu = unpacking_[hex].lock();
    if (!layer_mu) {
      layer_mu = std::make_shared<std::mutex>();
      unpacking_[hex] = layer_mu;
    }
  }
  std::lock_guard layer_lock(*layer_mu);
  if (fs::exists(layerDir(hex))) {
    Result<std::string> size = fs::readFile(layerInfo(hex), 64);
    if (size) return std::strtoll(size->c_str(), nullptr, 10);
  }
  std::string tmp = layerDir(hex) + ".tmp-" + crypto::randomHex(8);
  RETURN_IF_ERROR(fs::makeDirs(tmp, 0755));
  Result<image::LayerResult> r =
      image::unpackLayer(blob, tmp, image::WhiteoutMode::kOverlay, limits, diff_id);
  if (r && r->diff_id != diff_id) {
    r = Status::invalidArgument("layer " + diff_id + ": content has diff id " + r->diff_id +
                                ", which the image config does not list");
  }
  if (!r) {
    (void)fs::removeAll(tmp);
    return r.status();
  }
  // The size file lands before the layer directory: a layer that exists has a size.
  // (writeFileAtomic's temp name is per process, so concurrent loads use their own.)
  std::string info_tmp = layerInfo(hex) + ".tmp-" + crypto::randomHex(8);
  Status st = fs::writeFileAtomic(info_tmp, std::to_string(r->size_bytes), 0600);
  if (st && ::rename(info_tmp.c_str(), layerInfo(hex).c_str()) != 0) {
    st = Status::fromErrno(errno, "rename " + info_tmp);
  }
  if (!st) {
    ::unlink(info_tmp.c_str());
    (void)fs::removeAll(tmp);
    return st;
  }
  if (::rename(tmp.c_str(), layerDir(hex).c_str()) != 0) {
    int err = errno;
    (void)fs::removeAll(tmp);
    // Another load of the same layer won the race; its copy is as good as ours.
    if (err != EEXIST && err != ENOTEMPTY) return Status::fromErrno(err, "rename layer " + hex);
  } else {
    created->push_back(hex);
  }
  return r->size_bytes;
}

Result<StoredImage> ImageStoreImpl::prepareImage(const Staging& staging,
                                                 const image::ImageCandidate& c,
                                                 const LayerLimits& limits,
                                                 std::vector<std::string>* created,
                                                 std::vector<std::string>* pinned) {
  ASSIGN_OR_RETURN(std::string config_file, staging.file(c.config_path));
  ASSIGN_OR_RETURN(std::string config_text, fs::readFile(config_file, kMaxJsonBytes));
  std::string config_hex = crypto::sha256Hex(config_text);
  if (!c.config_digest.empty() && stripSha(c.config_digest) != config_hex) {
    return Status::invalidArgument("image config " + c.config_path + " has digest sha256:" +
                                   config_hex + ", expected " + c.config_digest);
  }
  ASSIGN_OR_RETURN(image::ParsedConfig config, image::parseConfig(config_text, c.config_path));
  if (config.diff_ids.size() != c.layer_paths.size()) {
    return Status::invalidArgument(
        "image config " + c.config_path + " lists " + std::to_string(config.diff_ids.size()) +
        " diff ids but the manifest has " + std::to_string(c.layer_paths.size()) + " layers");
  }
  StoredImage s;
  s.info = std::move(config.info);
  s.info.id = "sha256:" + config_hex;
  s.info.tags = c.tags;
  s.config_hex = config_hex;
  s.config_source = c.config_path;
  for (const auto& m : c.manifest_digests) s.manifest_hexes.push_back(stripSha(m));
  {
    std::lock_guard lock(mu_);
    for (const auto& d : config.diff_ids) {
      if (!isHex64(stripSha(d)) || !d.starts_with("sha256:")) {
        return Status::invalidArgument("image config " + c.config_path + ": bad diff id \"" + d +
                                       "\"");
      }
    }
    for (const auto& d : config.diff_ids) {
      ++pinned_[stripSha(d)];
      pinned->push_back(stripSha(d));
    }
  }
  std::set<std::string> counted;
  for (size_t i = 0; i < c.layer_paths.size(); ++i) {
    ASSIGN_OR_RETURN(std::string blob, staging.file(c.layer_paths[i]));
    ASSIGN_OR_RETURN(int64_t size, ensureLayer(config.diff_ids[i], blob, limits, created));
    if (counted.insert(config.diff_ids[i]).second) s.info.size_bytes += size;
  }
  s.info.layers = std::move(config.diff_ids);
  return s;
}

Result<std::vector<ImageInfo>> ImageStoreImpl::load(const std::string& tarball_path) {
  LayerLimits limits;
  {
    std::lock_guard lock(mu_);
    limits = limits_;
  }
  Staging staging(root_ + "/tmp/load-" + crypto::randomHex(8));
  RETURN_IF_ERROR(fs::makeDirs(staging.dir(), 0700));
  std::vector<std::string> pinned;
  std::vector<std::string> created;  // layer hexes this load unpacked
  auto cleanup = [&](const Status& why) -> Status {
    (void)fs::removeAll(staging.dir());
    Lock lock(this);
    unpin(pinned);
    Result<Index> index = readIndex();
    if (index) collectGarbage(*index, created, {});
    LOG_WARN("image load failed").kv("tarball", tarball_path).kv("error", why.message());
    return why;
  };

  Status st = staging.extract(tarball_path);
  if (!st) return cleanup(st);
  Result<std::vector<image::ImageCandidate>> candidates = image::findImages(
      [&](const std::string& p) -> Result<std::string> {
        ASSIGN_OR_RETURN(std::string f, staging.file(p));
        return fs::readFile(f, kMaxJsonBytes);
      },
      [&](const std::string& p) { return staging.has(p); }, hostArchitecture());
  if (!candidates) return cleanup(candidates.status().withContext(tarball_path));

  std::vector<StoredImage> images;
  for (const auto& c : *candidates) {
    Result<StoredImage> s = prepareImage(staging, c, limits, &created, &pinned);
    if (!s) return cleanup(s.status().withContext(tarball_path));
    images.push_back(std::move(*s));
  }
  std::vector<ImageInfo> out;
  st = commit(staging, images, &out);
  if (!st) return cleanup(st.withContext(tarball_path));
  {
    std::lock_guard lock(mu_);
    unpin(pinned);
  }
  (void)fs::removeAll(staging.dir());
  for (const auto& i : out) {
    std::string tags;
    for (const auto& t : i.tags) tags += (tags.empty() ? "" : ",") + t;
    LOG_INFO("image loaded").kv("id", i.id).kv("tags", tags).kv("layers", i.layers.size());
  }
  return out;
}

Status ImageStoreImpl::commit(const Staging& staging, std::vector<StoredImage>& images,
                              std::vector<ImageInfo>* out) {
  Lock lock(this);
  ASSIGN_OR_RETURN(Index index, readIndex());
  for (const auto& s : images) {
    for (const auto& l : s.info.layers) {
      if (!fs::exists(layerDir(stripSha(l)))) {
        return Status::unavailable("layer " + l + " was removed while loading; retry");
      }
    }
  }
  for (auto& s : images) {
    std::vector<std::pair<std::string, std::string>> blobs{{s.config_hex, s.config_source}};
    for (const auto& m : s.manifest_hexes) blobs.emplace_back(m, "blobs/sha256/" + m);
    for (const auto& [hex, source] : blobs) {
      if (fs::exists(blobPath(hex))) continue;
      ASSIGN_OR_RETURN(std::string src, staging.file(source));
      if (::link(src.c_str(), blobPath(hex).c_str()) != 0 && errno != EEXIST) {
        return Status::fromErrno(errno, "store blob " + hex);
      }
    }
    // Tags move to the image just loaded, as `docker load` does.
    for (auto& [id, other] : index) {
      if (id == s.info.id) continue;
      std::erase_if(other.info.tags, [&](const std::string& t) {
        return std::find(s.info.tags.begin(), s.info.tags.end(), t) != s.info.tags.end();
      });
    }
    auto it = index.find(s.info.id);
    if (it != index.end()) {
      for (const auto& t : it->second.info.tags) {
        if (std::find(s.info.tags.begin(), s.info.tags.end(), t) == s.info.tags.end()) {
          s.info.tags.push_back(t);
        }
      }
      for (const auto& m : it->second.manifest_hexes) {
        if (std::find(s.manifest_hexes.begin(), s.manifest_hexes.end(), m) ==
            s.manifest_hexes.end()) {
          s.manifest_hexes.push_back(m);
        }
      }
    }
    index[s.info.id] = s;
  }
  RETURN_IF_ERROR(writeIndex(index));
  for (const auto& s : images) out->push_back(index[s.info.id].info);
  return Status::ok();
}

Status ImageStoreImpl::remove(const std::string& ref, bool force,
                              const std::function<bool(const std::string& image_id)>& in_use) {
  std::string id;
  {
    Lock lock(this);
    ASSIGN_OR_RETURN(Index index, readIndex());
    bool by_tag = false;
    ASSIGN_OR_RETURN(const StoredImage* s, resolve(index, ref, &by_tag));
    id = s->info.id;
  }
  // Asked without the lock: the callback may well call back into the store.
  bool busy = !force && in_use && in_use(id);

  Lock lock(this);
  ASSIGN_OR_RETURN(Index index, readIndex());
  bool by_tag = false;
  ASSIGN_OR_RETURN(const StoredImage* found, resolve(index, ref, &by_tag));
  if (found->info.id != id) return Status::unavailable("image " + ref + " changed; retry");
  StoredImage s = *found;
  if (by_tag && s.info.tags.size() > 1) {
    std::string tag = normalizeImageRef(ref);
    std::erase(index[id].info.tags, tag);
    RETURN_IF_ERROR(writeIndex(index));
    LOG_INFO("image untagged").kv("id", id).kv("tag", tag);
    return Status::ok();
  }
  if (!by_tag && s.info.tags.size() > 1 && !force) {
    return Status::failedPrecondition("image " + id + " has " + std::to_string(s.info.tags.size()) +
                                      " tags; remove them one by one or use force");
  }
  if (busy) {
    return Status::failedPrecondition("image " + ref + " (" + id +
                                      ") is used by a container; remove it first or use force");
  }
  index.erase(id);
  RETURN_IF_ERROR(writeIndex(index));
  std::vector<std::string> layers;
  for (const auto& l : s.info.layers) layers.push_back(stripSha(l));
  std::vector<std::string> blobs{s.config_hex};
  blobs.insert(blobs.end(), s.manifest_hexes.begin(), s.manifest_hexes.end());
  collectGarbage(index, layers, blobs);
  LOG_INFO("image removed").kv("id", id);
  return Status::ok();
}

void ImageStoreImpl::collectGarbage(const Index& index, const std::vector<std::string>& layers,
                                    const std::vector<std::string>& blobs) {
  std::set<std::string> used_layers;
  std::set<std::string> used_blobs;
  for (const auto& [id, s] : index) {
    for (const auto& l : s.info.layers) used_layers.insert(stripSha(l));
    used_blobs.insert(s.config_hex);
    used_blobs.insert(s.manifest_hexes.begin(), s.manifest_hexes.end());
  }
  for (const auto& hex : layers) {
    if (used_layers.count(hex) != 0 || pinned_.count(hex) != 0) continue;
    // Renamed away first so a crash never leaves a half-deleted layer under its name.
    std::string trash = root_ + "/tmp/del-" + hex + "-" + crypto::randomHex(4);
    if (::rename(layerDir(hex).c_str(), trash.c_str()) == 0) {
      ::unlink(layerInfo(hex).c_str());
      Status st = fs::removeAll(trash);
      if (!st) LOG_WARN("cannot delete layer").kv("layer", hex).kv("error", st.message());
    }
  }
  for (const auto& hex : blobs) {
    if (used_blobs.count(hex) == 0) ::unlink(blobPath(hex).c_str());
  }
}

}  // namespace

Result<std::unique_ptr<ImageStore>> ImageStore::open(const std::string& root) {
  auto store = std::make_unique<ImageStoreImpl>(root);
  RETURN_IF_ERROR(store->init());
  return std::unique_ptr<ImageStore>(std::move(store));
}

}  // namespace edge::runtime
