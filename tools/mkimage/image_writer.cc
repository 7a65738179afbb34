#include "tools/mkimage/image_writer.h"

#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <memory>
#include <set>

#include <nlohmann/json.hpp>

#include "common/crypto.h"
#include "common/fs.h"
#include "common/platform.h"

namespace edge::tools {
namespace {

using Json = nlohmann::json;

constexpr size_t kChunk = 64 * 1024;
constexpr int kMaxDepth = 1024;

struct WriteArchiveDeleter {
  void operator()(archive* a) const { archive_write_free(a); }
};
using WriteArchive = std::unique_ptr<archive, WriteArchiveDeleter>;

std::string archiveError(archive* a) {
  const char* e = archive_error_string(a);
  return e != nullptr ? e : "unknown archive error";
}

// Last stage: bytes land in the blob file and are hashed (the blob digest).
struct BlobSink {
  int fd = -1;
  crypto::Sha256 sha;
  int64_t size = 0;
  std::string error;

  static la_ssize_t write(archive*, void* self, const void* buf, size_t len) {
    return static_cast<BlobSink*>(self)->put(buf, len);
  }
  la_ssize_t put(const void* buf, size_t len) {
    Status st = fs::writeAll(fd, std::string_view(static_cast<const char*>(buf), len));
    if (!st) {
      error = st.message();
      return -1;
    }
    sha.update(buf, len);
    size += static_cast<int64_t>(len);
    return static_cast<la_ssize_t>(len);
  }
};

// First stage's output: the uncompressed tar, hashed (the diff id), then compressed.
struct TarSink {
  crypto::Sha256 sha;
  archive* compressor = nullptr;  // null: straight to the blob
  BlobSink* blob = nullptr;
  std::string error;

  static la_ssize_t write(archive*, void* self, const void* buf, size_t len) {
    auto* s = static_cast<TarSink*>(self);
    s->sha.update(buf, len);
    if (s->compressor == nullptr) return s->blob->put(buf, len);
    la_ssize_t n = archive_write_data(s->compressor, buf, len);
    if (n < 0) s->error = archiveError(s->compressor);
    return n;
  }
};

struct BlobInfo {
  std::string path;  // temp file
  std::string digest;
  std::string diff_id;
  int64_t size = 0;
  std::string media_type;
};

class LayerPacker {
 public:
  LayerPacker(archive* tar, const ImageSpec& spec, std::string root)
      : tar_(tar), spec_(spec), root_(std::move(root)) {}

  Status packDir(const std::string& abs, const std::string& rel, int depth);

 private:
  Status packEntry(const std::string& abs, const std::string& rel, int depth);

  archive* tar_;
  const ImageSpec& spec_;
  std::string root_;
  std::map<std::pair<dev_t, ino_t>, std::string> links_;
};

Status LayerPacker::packDir(const std::string& abs, const std::string& rel, int depth) {
  if (depth > kMaxDepth) return Status::invalidArgument(abs + ": directory tree too deep");
  DIR* d = ::opendir(abs.c_str());
  if (d == nullptr) return Status::fromErrno(errno, "open directory " + abs);
  std::vector<std::string> names;
  while (dirent* e = ::readdir(d)) {
    std::string n = e->d_name;
    if (n != "." && n != "..") names.push_back(std::move(n));
  }
  ::closedir(d);
  std::sort(names.begin(), names.end());
  for (const auto& n : names) {
    RETURN_IF_ERROR(packEntry(abs + "/" + n, rel.empty() ? n : rel + "/" + n, depth));
  }
  return Status::ok();
}

Status LayerPacker::packEntry(const std::string& abs, const std::string& rel, int depth) {
  struct stat st;
  if (::lstat(abs.c_str(), &st) != 0) return Status::fromErrno(errno, "stat " + abs);
  std::unique_ptr<archive_entry, void (*)(archive_entry*)> e(archive_entry_new(),
                                                             archive_entry_free);
  archive_entry_set_pathname(e.get(), rel.c_str());
  archive_entry_set_perm(e.get(), st.st_mode & 07777);
  archive_entry_set_uid(e.get(), spec_.preserve_owner ? st.st_uid : 0);
  archive_entry_set_gid(e.get(), spec_.preserve_owner ? st.st_gid : 0);
  archive_entry_set_mtime(e.get(), spec_.preserve_mtime ? st.st_mtim.tv_sec : 0,
                          spec_.preserve_mtime ? st.st_mtim.tv_nsec : 0);
  bool with_data = false;
  if (S_ISDIR(st.st_mode)) {
    archive_entry_set_filetype(e.get(), AE_IFDIR);
  } else if (S_ISLNK(st.st_mode)) {
    std::string target(static_cast<size_t>(st.st_size) + 1, '\0');
    ssize_t n = ::readlink(abs.c_str(), target.data(), target.size());
    if (n < 0) return Status::fromErrno(errno, "readlink " + abs);
    target.resize(static_cast<size_t>(n));
    archive_entry_set_filetype(e.get(), AE_IFLNK);
    archive_entry_set_symlink(e.get(), target.c_str());
  } else if (S_ISREG(st.st_mode)) {
    archive_entry_set_filetype(e.get(), AE_IFREG);
    auto key = std::make_pair(st.st_dev, st.st_ino);
    auto it = st.st_nlink > 1 ? links_.find(key) : links_.end();
    if (it != links_.end()) {
      archive_entry_set_hardlink(e.get(), it->second.c_str());
      archive_entry_set_size(e.get(), 0);
    } else {
      if (st.st_nlink > 1) links_[key] = rel;
      archive_entry_set_size(e.get(), st.st_size);
      with_data = true;
    }
  } else if (S_ISFIFO(st.st_mode)) {
    archive_entry_set_filetype(e.get(), AE_IFIFO);
  } else {
    return Status::invalidArgument(abs +
                                   ": device nodes and sockets cannot go into an image layer");
  }
  if (archive_write_header(tar_, e.get()) < ARCHIVE_WARN) {
    return Status::internal("tar header for " + abs + ": " + archiveError(tar_));
  }
  if (with_data) {
    fs::UniqueFd fd(::open(abs.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC));
    if (!fd.valid()) return Status::fromErrno(errno, "open " + abs);
    std::string buf(kChunk, '\0');
    int64_t left = st.st_size;
    while (left > 0) {
      ssize_t n = ::read(fd.get(), buf.data(), buf.size());
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) return Status::fromErrno(errno, "read " + abs);
      if (n == 0 || n > left) return Status::failedPrecondition(abs + " changed while packing");
      if (archive_write_data(tar_, buf.data(), static_cast<size_t>(n)) < 0) {
        return Status::internal("write " + abs + " into layer: " + archiveError(tar_));
      }
      left -= n;
    }
  }
  if (S_ISDIR(st.st_mode)) return packDir(abs, rel, depth + 1);
  return Status::ok();
}

Result<BlobInfo> packLayer(const ImageSpec& spec, const LayerSpec& layer,
                           const std::string& blob_path) {
  if (!fs::isDirectory(layer.dir)) {
    return Status::invalidArgument("--layer " + layer.dir + ": no such directory");
  }
  fs::UniqueFd fd(::open(blob_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
  if (!fd.valid()) return Status::fromErrno(errno, "create " + blob_path);
  BlobSink blob;
  blob.fd = fd.get();
  TarSink sink;
  sink.blob = &blob;

  WriteArchive compressor;
  if (layer.compression != LayerCompression::kNone) {
    compressor.reset(archive_write_new());
    archive_write_set_format_raw(compressor.get());
    if (layer.compression == LayerCompression::kGzip) {
      archive_write_add_filter_gzip(compressor.get());
      // No timestamp in the gzip header: the same input gives the same blob.
      archive_write_set_options(compressor.get(), "gzip:!timestamp");
    } else {
      archive_write_add_filter_zstd(compressor.get());
    }
    archive_write_set_bytes_per_block(compressor.get(), kChunk);
    archive_write_set_bytes_in_last_block(compressor.get(), 1);
    if (archive_write_open(compressor.get(), &blob, nullptr, &BlobSink::write, nullptr) !=
        ARCHIVE_OK) {
      return Status::internal("compressor: " + archiveError(compressor.get()));
    }
    std::unique_ptr<archive_entry, void (*)(archive_entry*)> e(archive_entry_new(),
                                                               archive_entry_free);
    archive_entry_set_pathname(e.get(), "layer.tar");
    archive_entry_set_filetype(e.get(), AE_IFREG);
    if (archive_write_header(compressor.get(), e.get()) != ARCHIVE_OK) {
      return Status::internal("compressor: " + archiveError(compressor.get()));
    }
    sink.compressor = compressor.get();
  }

  WriteArchive tar(archive_write_new());
  archive_write_set_format_pax_restricted(tar.get());
  if (archive_write_open(tar.get(), &sink, nullptr, &TarSink::write, nullptr) != ARCHIVE_OK) {
    return Status::internal("tar writer: " + archiveError(tar.get()));
  }
  LayerPacker packer(tar.get(), spec, layer.dir);
  RETURN_IF_ERROR(packer.packDir(layer.dir, "", 0));
  if (archive_write_close(tar.get()) != ARCHIVE_OK) {
    return Status::internal("finishing layer " + layer.dir + ": " + archiveError(tar.get()) + " " +
                            sink.error + blob.error);
  }
  if (compressor && archive_write_close(compressor.get()) != ARCHIVE_OK) {
    return Status::internal("compressing layer " + layer.dir + ": " +
                            archiveError(compressor.get()) + " " + blob.error);
  }
  BlobInfo info;
  info.path = blob_path;
  info.diff_id = "sha256:" + sink.sha.finishHex();
  info.digest = "sha256:" + blob.sha.finishHex();
  info.size = blob.size;
  switch (layer.compression) {
    case LayerCompression::kNone:
      info.media_type = "application/vnd.oci.image.layer.v1.tar";
      break;
    case LayerCompression::kGzip:
      info.media_type = "application/vnd.oci.image.layer.v1.tar+gzip";
      break;
    case LayerCompression::kZstd:
      info.media_type = "application/vnd.oci.image.layer.v1.tar+zstd";
      break;
  }
  return info;
}

Result<std::string> completeTag(const std::string& tag) {
  if (tag.empty() ||
      std::any_of(tag.begin(), tag.end(), [](char c) { return c <= ' ' || c == 0x7f; })) {
    return Status::invalidArgument("--tag \"" + tag + "\": not an image reference");
  }
  std::string name = tag;
  size_t slash = tag.rfind('/');
  size_t colon = tag.rfind(':');
  if (colon == std::string::npos || (slash != std::string::npos && colon < slash)) {
    name += ":latest";
  }
  std::string repo = name.substr(0, name.rfind(':'));
  if (repo.empty() ||
      std::any_of(repo.begin(), repo.end(), [](char c) { return c >= 'A' && c <= 'Z'; })) {
    return Status::invalidArgument("--tag \"" + tag +
                                   "\": the repository must be non-empty and lower case");
  }
  return name;
}

// The outer tarball.
class OuterTar {
 public:
  Status open(const std::string& path) {
    a_.reset(archive_write_new());
    archive_write_set_format_pax_restricted(a_.get());
    if (archive_write_open_filename(a_.get(), path.c_str()) != ARCHIVE_OK) {
      return Status::internal("create " + path + ": " + archiveError(a_.get()));
    }
    return Status::ok();
  }
  Status dir(const std::string& name) { return header(name, AE_IFDIR, 0755, 0); }
  Status text(const std::string& name, const std::string& data) {
    RETURN_IF_ERROR(header(name, AE_IFREG, 0644, static_cast<int64_t>(data.size())));
    if (!data.empty() && archive_write_data(a_.get(), data.data(), data.size()) < 0) {
      return Status::internal("write " + name + ": " + archiveError(a_.get()));
    }
    return Status::ok();
  }
  Status copy(const std::string& name, const std::string& src, int64_t size) {
    RETURN_IF_ERROR(header(name, AE_IFREG, 0644, size));
    fs::UniqueFd fd(::open(src.c_str(), O_RDONLY | O_CLOEXEC));
    if (!fd.valid()) return Status::fromErrno(errno, "open " + src);
    std::string buf(kChunk, '\0');
    for (int64_t left = size; left > 0;) {
      ssize_t n = ::read(fd.get(), buf.data(), buf.size());
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return Status::internal("short read of " + src);
      if (archive_write_data(a_.get(), buf.data(), static_cast<size_t>(n)) < 0) {
        return Status::internal("write " + name + ": " + archiveError(a_.get()));
      }
      left -= n;
    }
    return Status::ok();
  }
  Status close() {
    if (archive_write_close(a_.get()) != ARCHIVE_OK) {
      return Status::internal("finish tarball: " + archiveError(a_.get()));
    }
    return Status::ok();
  }

 private:
  Status header(const std::string& name, unsigned type, int mode, int64_t size) {
    std::unique_ptr<archive_entry, void (*)(archive_entry*)> e(archive_entry_new(),
                                                               archive_entry_free);
    archive_entry_set_pathname(e.get(), name.c_str());
    archive_entry_set_filetype(e.get(), type);
    archive_entry_set_perm(e.get(), static_cast<mode_t>(mode));
    archive_entry_set_mtime(e.get(), 0, 0);
    if (type == AE_IFREG) archive_entry_set_size(e.get(), size);
    if (archive_write_header(a_.get(), e.get()) < ARCHIVE_WARN) {
      return Status::internal("tar header " + name + ": " + archiveError(a_.get()));
    }
    return Status::ok();
  }
  WriteArchive a_;
};

std::string hexOf(const std::string& digest) {
  return digest.substr(7);
}

}  // namespace

Result<std::string> writeImage(const ImageSpec& spec, const std::string& output) {
  if (spec.layers.empty()) return Status::invalidArgument("at least one --layer is required");
  std::vector<std::string> tags;
  for (const auto& t : spec.tags) {
    ASSIGN_OR_RETURN(std::string full, completeTag(t));
    if (std::find(tags.begin(), tags.end(), full) == tags.end()) tags.push_back(full);
  }
  for (const auto& kv : spec.env) {
    size_t eq = kv.find('=');
    if (eq == std::string::npos || eq == 0) {
      return Status::invalidArgument("--env \"" + kv + "\": expected KEY=value");
    }
  }
  for (const auto& l : spec.layers) {
    if (!fs::isDirectory(l.dir)) {
      return Status::invalidArgument("--layer " + l.dir + ": no such directory");
    }
  }

  std::string tmp_tmpl = output + ".tmp-XXXXXX";
  if (::mkdtemp(tmp_tmpl.data()) == nullptr) {
    return Status::fromErrno(errno, "create temp directory next to " + output);
  }
  std::string work = tmp_tmpl;
  struct Cleanup {
    std::string dir;
    ~Cleanup() { (void)fs::removeAll(dir); }
  } cleanup{work};

  std::vector<BlobInfo> layers;
  for (size_t i = 0; i < spec.layers.size(); ++i) {
    ASSIGN_OR_RETURN(BlobInfo b,
                     packLayer(spec, spec.layers[i], work + "/layer" + std::to_string(i)));
    layers.push_back(std::move(b));
  }

  Json cfg = Json::object();
  if (spec.entrypoint) cfg["Entrypoint"] = *spec.entrypoint;
  if (spec.cmd) cfg["Cmd"] = *spec.cmd;
  if (!spec.env.empty()) cfg["Env"] = spec.env;
  if (!spec.working_dir.empty()) cfg["WorkingDir"] = spec.working_dir;
  if (!spec.user.empty()) cfg["User"] = spec.user;
  if (!spec.labels.empty()) cfg["Labels"] = spec.labels;
  if (!spec.stop_signal.empty()) cfg["StopSignal"] = spec.stop_signal;
  Json diff_ids = Json::array();
  Json history = Json::array();
  for (size_t i = 0; i < layers.size(); ++i) {
    diff_ids.push_back(layers[i].diff_id);
    history.push_back(
        {{"created", spec.created}, {"created_by", "edge-mkimage layer " + std::to_string(i)}});
  }
  Json config = {
      {"architecture", spec.architecture.empty() ? hostArchitecture() : spec.architecture},
      {"os", "linux"},
      {"created", spec.created},
      {"config", cfg},
      {"rootfs", {{"type", "layers"}, {"diff_ids", diff_ids}}},
      {"history", history}};
  std::string config_text = config.dump();
  std::string config_digest = "sha256:" + crypto::sha256Hex(config_text);

  Json mlayers = Json::array();
  for (const auto& l : layers) {
    mlayers.push_back({{"mediaType", l.media_type}, {"digest", l.digest}, {"size", l.size}});
  }
  std::string manifest_text = Json{
      {"schemaVersion", 2},
      {"mediaType", "application/vnd.oci.image.manifest.v1+json"},
      {"config",
       {{"mediaType", "application/vnd.oci.image.config.v1+json"},
        {"digest", config_digest},
        {"size", config_text.size()}}},
      {"layers", mlayers}}.dump();
  std::string manifest_digest = "sha256:" + crypto::sha256Hex(manifest_text);

  std::string tmp_out = work + "/out.tar";
  OuterTar out;
  RETURN_IF_ERROR(out.open(tmp_out));
  bool oci = spec.format != OutputFormat::kDocker;
  if (oci) {
    RETURN_IF_ERROR(out.text("oci-layout", R"({"imageLayoutVersion":"1.0.0"})"));
    RETURN_IF_ERROR(out.dir("blobs"));
    RETURN_IF_ERROR(out.dir("blobs/sha256"));
    // Sorted by digest, each blob once (two layers may be identical).
    std::map<std::string, std::pair<std::string, int64_t>> files;  // digest -> (path, size)
    for (const auto& l : layers) files[l.digest] = {l.path, l.size};
    std::map<std::string, std::string> texts{{config_digest, config_text},
                                             {manifest_digest, manifest_text}};
    std::set<std::string> all;
    for (const auto& [d, f] : files) all.insert(d);
    for (const auto& [d, t] : texts) all.insert(d);
    for (const auto& d : all) {
      std::string name = "blobs/sha256/" + hexOf(d);
      if (texts.count(d) != 0) {
        RETURN_IF_ERROR(out.text(name, texts[d]));
      } else {
        RETURN_IF_ERROR(out.copy(name, files[d].first, files[d].second));
      }
    }
    Json descs = Json::array();
    Json base = {{"mediaType", "application/vnd.oci.image.manifest.v1+json"},
                 {"digest", manifest_digest},
                 {"size", manifest_text.size()}};
    for (const auto& t : tags) {
      Json d = base;
      d["annotations"] = {{"io.containerd.image.name", t},
                          {"org.opencontainers.image.ref.name", t.substr(t.rfind(':') + 1)}};
      descs.push_back(d);
    }
    if (tags.empty()) descs.push_back(base);
    RETURN_IF_ERROR(
        out.text("index.json", Json{{"schemaVersion", 2},
                                    {"mediaType", "application/vnd.oci.image.index.v1+json"},
                                    {"manifests", descs}}
                                   .dump()));
  }
  if (spec.format != OutputFormat::kOci) {
    Json layer_paths = Json::array();
    std::string config_path;
    if (spec.format == OutputFormat::kBoth) {
      config_path = "blobs/sha256/" + hexOf(config_digest);
      for (const auto& l : layers) layer_paths.push_back("blobs/sha256/" + hexOf(l.digest));
    } else {
      config_path = hexOf(config_digest) + ".json";
      RETURN_IF_ERROR(out.text(config_path, config_text));
      std::set<std::string> written;
      for (const auto& l : layers) {
        std::string d = hexOf(l.diff_id);
        layer_paths.push_back(d + "/layer.tar");
        if (!written.insert(d).second) continue;
        RETURN_IF_ERROR(out.dir(d));
        RETURN_IF_ERROR(out.text(d + "/VERSION", "1.0"));
        RETURN_IF_ERROR(out.copy(d + "/layer.tar", l.path, l.size));
      }
    }
    Json repo_tags = Json::array();
    for (const auto& t : tags) repo_tags.push_back(t);
    RETURN_IF_ERROR(out.text(
        "manifest.json",
        Json::array({{{"Config", config_path}, {"RepoTags", repo_tags}, {"Layers", layer_paths}}})
            .dump()));
  }
  RETURN_IF_ERROR(out.close());
  if (::rename(tmp_out.c_str(), output.c_str()) != 0) {
    return Status::fromErrno(errno, "rename to " + output);
  }
  return config_digest;
}

}  // namespace edge::tools
