// Builds image archives in memory for the image tests: layer tars (plain, gzip, zstd),
// image configs, and docker-save / OCI / Docker 25+ outer tarballs.
#pragma once

#include <archive.h>
#include <archive_entry.h>

#include <cstdint>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/crypto.h"

namespace edge::runtime::image::testing {

struct TarEntry {
  std::string path;
  char type = 'f';  // f file, d dir, l symlink, h hard link, c char dev, b block dev, p fifo
  std::string data;
  std::string link;  // symlink or hard link target
  int mode = 0644;
  int uid = 0;
  int gid = 0;
  int64_t mtime = 1'600'000'000;
  int64_t declared_size = -1;  // header size when different from data (truncation tests)
  std::map<std::string, std::string> xattrs;
};

inline TarEntry file(std::string path, std::string data, int mode = 0644) {
  TarEntry e;
  e.path = std::move(path);
  e.data = std::move(data);
  e.mode = mode;
  return e;
}
inline TarEntry dir(std::string path, int mode = 0755) {
  TarEntry e;
  e.path = std::move(path);
  e.type = 'd';
  e.mode = mode;
  return e;
}
inline TarEntry symlink(std::string path, std::string target) {
  TarEntry e;
  e.path = std::move(path);
  e.type = 'l';
  e.link = std::move(target);
  e.mode = 0777;
  return e;
}
inline TarEntry hardlink(std::string path, std::string target) {
  TarEntry e;
  e.path = std::move(path);
  e.type = 'h';
  e.link = std::move(target);
  return e;
}

inline la_ssize_t appendCb(archive*, void* client, const void* buf, size_t len) {
  static_cast<std::string*>(client)->append(static_cast<const char*>(buf), len);
  return static_cast<la_ssize_t>(len);
}

// compression: "none", "gzip" or "zstd".
inline std::string makeTar(const std::vector<TarEntry>& entries,
                           const std::string& compression = "none") {
  std::string out;
  archive* a = archive_write_new();
  archive_write_set_format_pax_restricted(a);
  if (compression == "gzip") archive_write_add_filter_gzip(a);
  if (compression == "zstd") archive_write_add_filter_zstd(a);
  archive_write_set_bytes_in_last_block(a, 1);
  archive_write_open(a, &out, nullptr, appendCb, nullptr);
  for (const auto& t : entries) {
    archive_entry* e = archive_entry_new();
    archive_entry_set_pathname(e, t.path.c_str());
    archive_entry_set_uid(e, t.uid);
    archive_entry_set_gid(e, t.gid);
    archive_entry_set_mtime(e, t.mtime, 0);
    archive_entry_set_perm(e, static_cast<mode_t>(t.mode));
    for (const auto& [k, v] : t.xattrs)
      archive_entry_xattr_add_entry(e, k.c_str(), v.data(), v.size());
    switch (t.type) {
      case 'd':
        archive_entry_set_filetype(e, AE_IFDIR);
        break;
      case 'l':
        archive_entry_set_filetype(e, AE_IFLNK);
        archive_entry_set_symlink(e, t.link.c_str());
        break;
      case 'h':
        archive_entry_set_filetype(e, AE_IFREG);
        archive_entry_set_hardlink(e, t.link.c_str());
        break;
      case 'c':
        archive_entry_set_filetype(e, AE_IFCHR);
        archive_entry_set_rdev(e, 0x0101);
        break;
      case 'b':
        archive_entry_set_filetype(e, AE_IFBLK);
        archive_entry_set_rdev(e, 0x0801);
        break;
      case 'p':
        archive_entry_set_filetype(e, AE_IFIFO);
        break;
      default:
        archive_entry_set_filetype(e, AE_IFREG);
        archive_entry_set_size(
            e, t.declared_size >= 0 ? t.declared_size : static_cast<int64_t>(t.data.size()));
    }
    archive_write_header(a, e);
    if (t.type == 'f' && !t.data.empty()) archive_write_data(a, t.data.data(), t.data.size());
    archive_entry_free(e);
  }
  archive_write_close(a);
  archive_write_free(a);
  return out;
}

inline std::string hex(const std::string& bytes) {
  return crypto::sha256Hex(bytes);
}

struct Layer {
  std::string blob;     // as stored in the archive (maybe compressed)
  std::string diff_id;  // "sha256:" of the uncompressed tar
};

inline Layer makeLayer(const std::vector<TarEntry>& entries,
                       const std::string& compression = "none") {
  return {makeTar(entries, compression), "sha256:" + hex(makeTar(entries))};
}

struct TestImage {
  std::vector<Layer> layers;
  std::vector<std::string> tags;  // as written in the archive
  std::string config;             // JSON text
  std::string arch = "amd64";
  std::string id() const { return "sha256:" + hex(config); }
};

inline TestImage makeImage(std::vector<Layer> layers, std::vector<std::string> tags,
                           const std::string& marker = "", const std::string& arch = "amd64") {
  nlohmann::json diff = nlohmann::json::array();
  for (const auto& l : layers) diff.push_back(l.diff_id);
  nlohmann::json cfg = {{"architecture", arch},
                        {"os", "linux"},
                        {"created", "2024-05-06T07:08:09Z"},
                        {"config",
                         {{"Cmd", {"sh"}},
                          {"Env", {"PATH=/bin"}},
                          {"WorkingDir", "/w"},
                          {"User", "65534"},
                          {"StopSignal", "SIGINT"},
                          {"Labels", {{"marker", marker}}}}},
                        {"rootfs", {{"type", "layers"}, {"diff_ids", diff}}}};
  TestImage img;
  img.layers = std::move(layers);
  img.tags = std::move(tags);
  img.config = cfg.dump();
  img.arch = arch;
  return img;
}

inline std::string layerMediaType(const std::string& blob) {
  if (blob.size() > 2 && static_cast<unsigned char>(blob[0]) == 0x1f) {
    return "application/vnd.oci.image.layer.v1.tar+gzip";
  }
  if (blob.size() > 2 && static_cast<unsigned char>(blob[0]) == 0x28) {
    return "application/vnd.oci.image.layer.v1.tar+zstd";
  }
  return "application/vnd.oci.image.layer.v1.tar";
}

inline std::string manifestFor(const TestImage& img) {
  nlohmann::json layers = nlohmann::json::array();
  for (const auto& l : img.layers) {
    layers.push_back({{"mediaType", layerMediaType(l.blob)},
                      {"digest", "sha256:" + hex(l.blob)},
                      {"size", l.blob.size()}});
  }
  return nlohmann::json{{"schemaVersion", 2},
                        {"mediaType", "application/vnd.oci.image.manifest.v1+json"},
                        {"config",
                         {{"mediaType", "application/vnd.oci.image.config.v1+json"},
                          {"digest", img.id()},
                          {"size", img.config.size()}}},
                        {"layers", layers}}
      .dump();
}

// Classic `docker save` (<id>.json, <n>/layer.tar, manifest.json).
inline std::string classicArchive(const std::vector<TestImage>& images) {
  std::vector<TarEntry> entries;
  nlohmann::json manifest = nlohmann::json::array();
  for (const auto& img : images) {
    std::string cfg = hex(img.config) + ".json";
    entries.push_back(file(cfg, img.config));
    nlohmann::json layers = nlohmann::json::array();
    for (const auto& l : img.layers) {
      std::string d = hex(l.blob);
      entries.push_back(dir(d));
      entries.push_back(file(d + "/layer.tar", l.blob));
      entries.push_back(file(d + "/VERSION", "1.0"));
      layers.push_back(d + "/layer.tar");
    }
    manifest.push_back({{"Config", cfg}, {"RepoTags", img.tags}, {"Layers", layers}});
  }
  entries.push_back(file("manifest.json", manifest.dump()));
  return makeTar(entries);
}

inline void addBlobs(const TestImage& img, std::vector<TarEntry>* entries) {
  entries->push_back(file("blobs/sha256/" + hex(img.config), img.config));
  for (const auto& l : img.layers) entries->push_back(file("blobs/sha256/" + hex(l.blob), l.blob));
  std::string m = manifestFor(img);
  entries->push_back(file("blobs/sha256/" + hex(m), m));
}

inline nlohmann::json descriptor(const std::string& manifest, const std::string& tag) {
  nlohmann::json d = {{"mediaType", "application/vnd.oci.image.manifest.v1+json"},
                      {"digest", "sha256:" + hex(manifest)},
                      {"size", manifest.size()}};
  if (!tag.empty()) {
    std::string t = tag.substr(tag.rfind(':') + 1);
    d["annotations"] = {{"io.containerd.image.name", tag},
                        {"org.opencontainers.image.ref.name", t}};
  }
  return d;
}

// Plain OCI image layout; `with_manifest_json` adds Docker 25+'s manifest.json.
inline std::string ociArchive(const std::vector<TestImage>& images,
                              bool with_manifest_json = false) {
  std::vector<TarEntry> entries;
  entries.push_back(file("oci-layout", R"({"imageLayoutVersion":"1.0.0"})"));
  nlohmann::json idx = {{"schemaVersion", 2},
                        {"mediaType", "application/vnd.oci.image.index.v1+json"},
                        {"manifests", nlohmann::json::array()}};
  nlohmann::json manifest = nlohmann::json::array();
  for (const auto& img : images) {
    addBlobs(img, &entries);
    std::string m = manifestFor(img);
    if (img.tags.empty()) idx["manifests"].push_back(descriptor(m, ""));
    for (const auto& t : img.tags) idx["manifests"].push_back(descriptor(m, t));
    nlohmann::json layers = nlohmann::json::array();
    for (const auto& l : img.layers) layers.push_back("blobs/sha256/" + hex(l.blob));
    manifest.push_back({{"Config", "blobs/sha256/" + hex(img.config)},
                        {"RepoTags", img.tags},
                        {"Layers", layers}});
  }
  entries.push_back(file("index.json", idx.dump()));
  if (with_manifest_json) entries.push_back(file("manifest.json", manifest.dump()));
  return makeTar(entries);
}

// An OCI layout whose index.json points at a nested multi-platform index tagged `tag`.
inline std::string multiPlatformArchive(const std::vector<TestImage>& per_arch,
                                        const std::string& tag) {
  std::vector<TarEntry> entries;
  entries.push_back(file("oci-layout", R"({"imageLayoutVersion":"1.0.0"})"));
  nlohmann::json nested = {{"schemaVersion", 2},
                           {"mediaType", "application/vnd.oci.image.index.v1+json"},
                           {"manifests", nlohmann::json::array()}};
  for (const auto& img : per_arch) {
    addBlobs(img, &entries);
    nlohmann::json d = descriptor(manifestFor(img), "");
    d["platform"] = {{"os", "linux"}, {"architecture", img.arch}};
    nested["manifests"].push_back(d);
  }
  std::string n = nested.dump();
  entries.push_back(file("blobs/sha256/" + hex(n), n));
  nlohmann::json top = {{"schemaVersion", 2},
                        {"manifests",
                         {{{"mediaType", "application/vnd.oci.image.index.v1+json"},
                           {"digest", "sha256:" + hex(n)},
                           {"size", n.size()},
                           {"annotations", {{"io.containerd.image.name", tag}}}}}}};
  entries.push_back(file("index.json", top.dump()));
  return makeTar(entries);
}

inline void writeBytes(const std::string& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary) << bytes;
}

}  // namespace edge::runtime::image::testing
