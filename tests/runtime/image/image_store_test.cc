#include "runtime-shim/image/image_store.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <thread>

#include "common/fs.h"
#include "tests/runtime/image/test_archive.h"

namespace edge::runtime {
namespace {

using namespace image::testing;  // NOLINT

std::string readAll(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

size_t countEntries(const std::string& dir) {
  if (!std::filesystem::exists(dir)) return 0;
  size_t n = 0;
  for ([[maybe_unused]] const auto& e : std::filesystem::directory_iterator(dir)) ++n;
  return n;
}

class ImageStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/edge-image-test-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    auto s = ImageStore::open(dir_ + "/store");
    ASSERT_TRUE(s.isOk()) << s.status().toString();
    store_ = std::move(*s);
  }
  void TearDown() override { (void)fs::removeAll(dir_); }

  std::string write(const std::string& name, const std::string& bytes) {
    std::string p = dir_ + "/" + name;
    writeBytes(p, bytes);
    return p;
  }
  std::string store() const { return dir_ + "/store"; }

  std::string dir_;
  std::unique_ptr<ImageStore> store_;
};

TestImage simpleImage(const std::string& marker, const std::string& compression = "none") {
  Layer base = makeLayer(
      {dir("bin"), file("bin/hello", "hello " + marker, 0755), symlink("bin/sh", "/bin/busybox")},
      compression);
  Layer top = makeLayer({dir("etc"), file("etc/marker", marker)}, compression);
  return makeImage({base, top}, {"example/app:" + marker}, marker);
}

TEST_F(ImageStoreTest, LoadsClassicDockerSave) {
  TestImage img = simpleImage("one");
  auto loaded = store_->load(write("a.tar", classicArchive({img})));
  ASSERT_TRUE(loaded.isOk()) << loaded.status().toString();
  ASSERT_EQ(loaded->size(), 1u);
  EXPECT_EQ((*loaded)[0].id, img.id());

  auto info = store_->inspect("example/app:one");
  ASSERT_TRUE(info.isOk()) << info.status().toString();
  EXPECT_EQ(info->tags, std::vector<std::string>{"example/app:one"});
  EXPECT_EQ(info->layers.size(), 2u);
  EXPECT_EQ(info->cmd, std::vector<std::string>{"sh"});
  EXPECT_EQ(info->working_dir, "/w");
  EXPECT_EQ(info->user, "65534");
  EXPECT_EQ(info->stop_signal, "SIGINT");
  EXPECT_EQ(info->architecture, "amd64");
  EXPECT_EQ(info->os, "linux");
  EXPECT_EQ(info->labels.at("marker"), "one");
  EXPECT_EQ(info->size_bytes, static_cast<int64_t>(std::string("hello one").size() + 3));
  EXPECT_GT(info->created.time_since_epoch().count(), 0);

  auto paths = store_->layerPaths("example/app:one");
  ASSERT_TRUE(paths.isOk());
  ASSERT_EQ(paths->size(), 2u);
  EXPECT_EQ(readAll((*paths)[0] + "/bin/hello"), "hello one");
  EXPECT_EQ(readAll((*paths)[1] + "/etc/marker"), "one");
  struct stat st;
  ASSERT_EQ(::lstat(((*paths)[0] + "/bin/sh").c_str(), &st), 0);
  EXPECT_TRUE(S_ISLNK(st.st_mode));
  EXPECT_EQ(std::filesystem::read_symlink((*paths)[0] + "/bin/sh"), "/bin/busybox");
  ASSERT_EQ(::stat(((*paths)[0] + "/bin/hello").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0755u);
  EXPECT_EQ(st.st_mtime, 1'600'000'000);

  // By id, id prefix with and without "sha256:".
  EXPECT_TRUE(store_->inspect(img.id()).isOk());
  EXPECT_TRUE(store_->inspect(img.id().substr(7, 12)).isOk());
  EXPECT_TRUE(store_->inspect(img.id().substr(0, 19)).isOk());
  EXPECT_EQ(store_->inspect("nope").status().code(), StatusCode::kNotFound);

  auto list = store_->list();
  ASSERT_TRUE(list.isOk());
  EXPECT_EQ(list->size(), 1u);
  // Staging data is gone.
  EXPECT_EQ(countEntries(store() + "/tmp"), 0u);
}

TEST_F(ImageStoreTest, IndexSurvivesReopen) {
  TestImage img = simpleImage("one");
  ASSERT_TRUE(store_->load(write("a.tar", classicArchive({img}))).isOk());
  auto reopened = ImageStore::open(store());
  ASSERT_TRUE(reopened.isOk());
  auto info = (*reopened)->inspect("example/app:one");
  ASSERT_TRUE(info.isOk());
  EXPECT_EQ(info->id, img.id());
}

TEST_F(ImageStoreTest, LoadsOciLayoutWithGzipAndZstdLayers) {
  for (const char* c : {"none", "gzip", "zstd"}) {
    TestImage img = simpleImage(std::string("oci-") + c, c);
    auto loaded = store_->load(write(std::string(c) + ".tar", ociArchive({img})));
    ASSERT_TRUE(loaded.isOk()) << c << ": " << loaded.status().toString();
    auto info = store_->inspect(std::string("example/app:oci-") + c);
    ASSERT_TRUE(info.isOk()) << c;
    EXPECT_EQ(info->id, img.id());
    auto paths = store_->layerPaths(info->id);
    ASSERT_TRUE(paths.isOk());
    EXPECT_EQ(readAll((*paths)[1] + "/etc/marker"), std::string("oci-") + c);
  }
}

TEST_F(ImageStoreTest, LoadsDocker25CombinedLayout) {
  TestImage img = simpleImage("combo", "gzip");
  auto loaded = store_->load(write("c.tar", ociArchive({img}, /*with_manifest_json=*/true)));
  ASSERT_TRUE(loaded.isOk()) << loaded.status().toString();
  EXPECT_EQ((*loaded)[0].tags, std::vector<std::string>{"example/app:combo"});
}

TEST_F(ImageStoreTest, NormalisesTags) {
  Layer l = makeLayer({file("a", "a")});
  TestImage img = makeImage({l}, {"docker.io/library/busybox:1", "docker.io/library/busybox"});
  auto loaded = store_->load(write("n.tar", ociArchive({img})));
  ASSERT_TRUE(loaded.isOk()) << loaded.status().toString();
  auto info = store_->inspect("busybox");
  ASSERT_TRUE(info.isOk());
  EXPECT_EQ(info->tags, (std::vector<std::string>{"busybox:1", "busybox:latest"}));
  EXPECT_TRUE(store_->inspect("docker.io/library/busybox:1").isOk());
}

TEST_F(ImageStoreTest, PicksHostPlatformFromNestedIndex) {
  Layer amd = makeLayer({file("arch", "amd64")});
  Layer arm = makeLayer({file("arch", "arm64")});
  TestImage a = makeImage({amd}, {}, "amd", "amd64");
  TestImage b = makeImage({arm}, {}, "arm", "arm64");
  auto loaded = store_->load(write("m.tar", multiPlatformArchive({b, a}, "multi:1")));
  ASSERT_TRUE(loaded.isOk()) << loaded.status().toString();
  ASSERT_EQ(loaded->size(), 1u);
#if defined(__x86_64__)
  EXPECT_EQ((*loaded)[0].id, a.id());
  EXPECT_EQ((*loaded)[0].tags, std::vector<std::string>{"multi:1"});
#endif
  // An index without our platform is refused.
  TestImage c = makeImage({arm}, {}, "s390", "s390x");
  TestImage d = makeImage({arm}, {}, "ppc", "ppc64le");
  auto none = store_->load(write("n.tar", multiPlatformArchive({c, d}, "multi:2")));
  EXPECT_EQ(none.status().code(), StatusCode::kNotFound) << none.status().toString();
}

TEST_F(ImageStoreTest, TagsMoveToNewlyLoadedImage) {
  Layer l1 = makeLayer({file("v", "1")});
  Layer l2 = makeLayer({file("v", "2")});
  TestImage v1 = makeImage({l1}, {"app:latest", "app:1"}, "1");
  TestImage v2 = makeImage({l2}, {"app:latest"}, "2");
  ASSERT_TRUE(store_->load(write("1.tar", classicArchive({v1}))).isOk());
  ASSERT_TRUE(store_->load(write("2.tar", classicArchive({v2}))).isOk());
  EXPECT_EQ(store_->inspect("app").value().id, v2.id());
  auto old = store_->inspect(v1.id());
  ASSERT_TRUE(old.isOk());
  EXPECT_EQ(old->tags, std::vector<std::string>{"app:1"});
  // Loading the same image again keeps its tags and registers nothing new.
  ASSERT_TRUE(store_->load(write("1b.tar", classicArchive({v1}))).isOk());
  EXPECT_EQ(store_->list().value().size(), 2u);
  EXPECT_EQ(store_->inspect("app").value().id, v1.id());
}

TEST_F(ImageStoreTest, SharedLayersSurviveRemovalOfOneImage) {
  Layer shared = makeLayer({file("shared", "s")});
  Layer a_only = makeLayer({file("a", "a")});
  TestImage a = makeImage({shared, a_only}, {"a:1"}, "a");
  TestImage b = makeImage({shared}, {"b:1"}, "b");
  ASSERT_TRUE(store_->load(write("ab.tar", classicArchive({a, b}))).isOk());
  EXPECT_EQ(countEntries(store() + "/layers"), 2u);
  auto b_paths = store_->layerPaths("b:1").value();

  ASSERT_TRUE(store_->remove("a:1", false, nullptr).isOk());
  EXPECT_EQ(store_->inspect("a:1").status().code(), StatusCode::kNotFound);
  EXPECT_EQ(countEntries(store() + "/layers"), 1u);
  EXPECT_EQ(readAll(b_paths[0] + "/shared"), "s");

  ASSERT_TRUE(store_->remove("b:1", false, nullptr).isOk());
  EXPECT_EQ(countEntries(store() + "/layers"), 0u);
  EXPECT_EQ(countEntries(store() + "/blobs/sha256"), 0u);
}

TEST_F(ImageStoreTest, RemoveUntagsAndRespectsInUse) {
  Layer l = makeLayer({file("x", "x")});
  TestImage img = makeImage({l}, {"x:1", "x:2"});
  ASSERT_TRUE(store_->load(write("x.tar", classicArchive({img}))).isOk());
  auto busy = [&](const std::string& id) { return id == img.id(); };
  // Removing one of two tags is an untag, allowed while in use.
  ASSERT_TRUE(store_->remove("x:1", false, busy).isOk());
  EXPECT_EQ(store_->inspect(img.id()).value().tags, std::vector<std::string>{"x:2"});
  EXPECT_EQ(store_->remove("x:2", false, busy).code(), StatusCode::kFailedPrecondition);
  EXPECT_TRUE(store_->inspect("x:2").isOk());
  ASSERT_TRUE(store_->remove("x:2", true, busy).isOk());
  EXPECT_EQ(store_->list().value().size(), 0u);
}

TEST_F(ImageStoreTest, RemoveByIdWithSeveralTagsNeedsForce) {
  Layer l = makeLayer({file("x", "x")});
  TestImage img = makeImage({l}, {"x:1", "x:2"});
  ASSERT_TRUE(store_->load(write("x.tar", classicArchive({img}))).isOk());
  EXPECT_EQ(store_->remove(img.id(), false, nullptr).code(), StatusCode::kFailedPrecondition);
  EXPECT_TRUE(store_->remove(img.id(), true, nullptr).isOk());
  EXPECT_EQ(store_->list().value().size(), 0u);
}

TEST_F(ImageStoreTest, RejectsBlobDigestMismatch) {
  TestImage img = simpleImage("bad");
  std::string archive = ociArchive({img});
  // Corrupt one byte of the config blob's content inside the tar.
  size_t pos = archive.find("\"marker\":\"bad\"");
  ASSERT_NE(pos, std::string::npos);
  archive[pos + 10] = 'X';
  auto r = store_->load(write("bad.tar", archive));
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(r.status().message().find("digest"), std::string::npos) << r.status().toString();
  EXPECT_EQ(store_->list().value().size(), 0u);
  EXPECT_EQ(countEntries(store() + "/layers"), 0u);
  EXPECT_EQ(countEntries(store() + "/tmp"), 0u);
}

TEST_F(ImageStoreTest, RejectsDiffIdMismatch) {
  Layer real = makeLayer({file("a", "a")});
  Layer other = makeLayer({file("b", "b")});
  TestImage img = makeImage({Layer{real.blob, other.diff_id}}, {"bad:1"});
  auto r = store_->load(write("bad.tar", classicArchive({img})));
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(r.status().message().find("diff id"), std::string::npos) << r.status().toString();
  EXPECT_EQ(countEntries(store() + "/layers"), 0u);
  EXPECT_EQ(store_->list().value().size(), 0u);
}

TEST_F(ImageStoreTest, RejectsTruncatedArchive) {
  std::string archive = classicArchive({simpleImage("t")});
  auto r = store_->load(write("t.tar", archive.substr(0, archive.size() / 2)));
  EXPECT_FALSE(r.isOk());
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument) << r.status().toString();
  EXPECT_EQ(store_->list().value().size(), 0u);
  EXPECT_EQ(countEntries(store() + "/tmp"), 0u);
  EXPECT_EQ(store_->load(dir_ + "/missing.tar").status().code(), StatusCode::kNotFound);
}

TEST_F(ImageStoreTest, FailedImageRegistersNothingFromTheSameArchive) {
  TestImage good = simpleImage("good");
  Layer evil = makeLayer({file("../escape", "x")});
  TestImage bad = makeImage({evil}, {"bad:1"}, "bad");
  auto r = store_->load(write("gb.tar", classicArchive({good, bad})));
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(r.status().message().find("../escape"), std::string::npos) << r.status().toString();
  EXPECT_EQ(store_->list().value().size(), 0u);
  EXPECT_EQ(countEntries(store() + "/layers"), 0u);
  EXPECT_FALSE(std::filesystem::exists(store() + "/layers/escape"));
}

TEST_F(ImageStoreTest, EnforcesSizeLimits) {
  image::LayerLimits limits;
  limits.max_entry_bytes = 100;
  limits.max_layer_bytes = 150;
  store_->setLimits(limits);
  Layer big = makeLayer({file("big", std::string(101, 'x'))});
  auto r = store_->load(write("big.tar", classicArchive({makeImage({big}, {"big:1"})})));
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(r.status().message().find("\"big\""), std::string::npos) << r.status().toString();
  Layer many = makeLayer({file("a", std::string(80, 'x')), file("b", std::string(80, 'x'))});
  r = store_->load(write("many.tar", classicArchive({makeImage({many}, {"many:1"})})));
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(r.status().message().find("\"b\""), std::string::npos) << r.status().toString();
  EXPECT_EQ(countEntries(store() + "/layers"), 0u);
}

TEST_F(ImageStoreTest, ConcurrentLoadsOfTheSameImage) {
  TestImage img = simpleImage("conc", "gzip");
  std::string path = write("c.tar", ociArchive({img}, true));
  std::vector<std::thread> threads;
  std::vector<Status> results(4);
  for (size_t i = 0; i < results.size(); ++i) {
    threads.emplace_back([&, i] { results[i] = store_->load(path).status(); });
  }
  for (auto& t : threads) t.join();
  for (const auto& s : results) EXPECT_TRUE(s.isOk()) << s.toString();
  auto list = store_->list().value();
  ASSERT_EQ(list.size(), 1u);
  EXPECT_EQ(list[0].tags, std::vector<std::string>{"example/app:conc"});
  EXPECT_EQ(countEntries(store() + "/layers"), 2u);
  EXPECT_EQ(countEntries(store() + "/tmp"), 0u);
  auto paths = store_->layerPaths("example/app:conc").value();
  EXPECT_EQ(readAll(paths[0] + "/bin/hello"), "hello conc");
}

TEST_F(ImageStoreTest, RejectsArchivesThatAreNotImages) {
  auto r = store_->load(write("x.tar", makeTar({file("hello.txt", "hi")})));
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  r = store_->load(write("y.tar", makeTar({file("manifest.json", "{not json")})));
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(r.status().message().find("manifest.json"), std::string::npos);
}

TEST_F(ImageStoreTest, LoadsCompressedOuterTarball) {
  TestImage img = simpleImage("gz");
  const TestImage& same = img;
  std::vector<TarEntry> es;
  es.push_back(file(hex(same.config) + ".json", same.config));
  nlohmann::json layers = nlohmann::json::array();
  for (const auto& l : same.layers) {
    es.push_back(file(hex(l.blob) + "/layer.tar", l.blob));
    layers.push_back(hex(l.blob) + "/layer.tar");
  }
  es.push_back(file("manifest.json", nlohmann::json::array({{{"Config", hex(same.config) + ".json"},
                                                             {"RepoTags", same.tags},
                                                             {"Layers", layers}}})
                                         .dump()));
  auto loaded = store_->load(write("gz.tar.gz", makeTar(es, "gzip")));
  ASSERT_TRUE(loaded.isOk()) << loaded.status().toString();
  EXPECT_EQ((*loaded)[0].id, img.id());
}

TEST_F(ImageStoreTest, FollowsSymlinksInsideTheArchiveOnly) {
  // Docker 25+ keeps legacy "<id>/layer.tar" paths as symlinks into blobs/.
  TestImage img = simpleImage("links");
  std::vector<TarEntry> es;
  addBlobs(img, &es);
  nlohmann::json layers = nlohmann::json::array();
  for (size_t i = 0; i < img.layers.size(); ++i) {
    std::string d = "legacy" + std::to_string(i);
    es.push_back(dir(d));
    es.push_back(symlink(d + "/layer.tar", "../blobs/sha256/" + hex(img.layers[i].blob)));
    layers.push_back(d + "/layer.tar");
  }
  es.push_back(symlink("config.json", "blobs/sha256/" + hex(img.config)));
  es.push_back(file("manifest.json",
                    nlohmann::json::array(
                        {{{"Config", "config.json"}, {"RepoTags", img.tags}, {"Layers", layers}}})
                        .dump()));
  auto loaded = store_->load(write("links.tar", makeTar(es)));
  ASSERT_TRUE(loaded.isOk()) << loaded.status().toString();
  EXPECT_EQ((*loaded)[0].id, img.id());

  // A symlink leaving the archive is not followed.
  std::vector<TarEntry> evil = {symlink("manifest.json", "../../../etc/hostname")};
  auto r = store_->load(write("evil.tar", makeTar(evil)));
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument) << r.status().toString();
}

TEST_F(ImageStoreTest, LoadsSeveralImagesFromOneArchive) {
  TestImage a = simpleImage("a");
  TestImage b = simpleImage("b");
  TestImage untagged = makeImage({makeLayer({file("u", "u")})}, {}, "u");
  auto loaded = store_->load(write("ab.tar", ociArchive({a, b, untagged})));
  ASSERT_TRUE(loaded.isOk()) << loaded.status().toString();
  EXPECT_EQ(loaded->size(), 3u);
  EXPECT_EQ(store_->inspect("example/app:a").value().id, a.id());
  EXPECT_EQ(store_->inspect("example/app:b").value().id, b.id());
  EXPECT_TRUE(store_->inspect(untagged.id()).value().tags.empty());
}

TEST_F(ImageStoreTest, VerifiesBlobsReachedThroughLinks) {
  // Some tools store blobs/sha256/<hex> as symlinks to friendlier names.
  TestImage img = simpleImage("linked-blobs");
  std::string m = manifestFor(img);
  std::vector<TarEntry> es = {file("oci-layout", R"({"imageLayoutVersion":"1.0.0"})"),
                              file("image-config.json", img.config), file("image-manifest.json", m),
                              symlink("blobs/sha256/" + hex(img.config), "../../image-config.json"),
                              symlink("blobs/sha256/" + hex(m), "../../image-manifest.json")};
  for (const auto& l : img.layers) es.push_back(file("blobs/sha256/" + hex(l.blob), l.blob));
  nlohmann::json idx = {{"schemaVersion", 2}, {"manifests", {descriptor(m, "linked:1")}}};
  es.push_back(file("index.json", idx.dump()));
  auto loaded = store_->load(write("linked.tar", makeTar(es)));
  ASSERT_TRUE(loaded.isOk()) << loaded.status().toString();
  EXPECT_EQ(store_->inspect("linked:1").value().id, img.id());

  // The same with a manifest whose content does not match the name it is linked under.
  es[2] = file("image-manifest.json", m + " ");
  es.pop_back();
  es.push_back(file("index.json", idx.dump()));
  auto bad = store_->load(write("linked-bad.tar", makeTar(es)));
  EXPECT_EQ(bad.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(bad.status().message().find("does not match its digest"), std::string::npos)
      << bad.status().toString();
}

TEST_F(ImageStoreTest, HostileLayersLeaveNothingBehind) {
  TarEntry dev;
  dev.path = "dev/null";
  dev.type = 'c';
  std::vector<std::pair<std::vector<TarEntry>, std::string>> cases = {
      {{file("ok", "ok"), file("/etc/evil", "x")}, "/etc/evil"},
      {{file("ok", "ok"), symlink("l", "/etc"), file("l/evil", "x")}, "l/evil"},
      {{file("ok", "ok"), hardlink("h", "../../../etc/passwd")}, "\"h\""},
      {{file("ok", "ok"), dir("dev"), dev}, "dev/null"},
  };
  int i = 0;
  for (const auto& [entries, name] : cases) {
    TestImage img = makeImage({makeLayer({file("base", "b")}), makeLayer(entries)},
                              {"hostile:" + std::to_string(i)});
    auto r = store_->load(write("h" + std::to_string(i++) + ".tar", classicArchive({img})));
    EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument) << name;
    EXPECT_NE(r.status().message().find(name), std::string::npos) << r.status().toString();
    EXPECT_EQ(countEntries(store() + "/layers"), 0u) << name;
    EXPECT_EQ(countEntries(store() + "/layerinfo"), 0u) << name;
    EXPECT_EQ(countEntries(store() + "/tmp"), 0u) << name;
    EXPECT_EQ(countEntries(store() + "/blobs/sha256"), 0u) << name;
    EXPECT_TRUE(store_->list().value().empty());
  }
  // Outer archive entries are checked too.
  auto r = store_->load(write("outer.tar", makeTar({file("../manifest.json", "[]")})));
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(r.status().message().find("../manifest.json"), std::string::npos);
}

TEST_F(ImageStoreTest, SkipsAttestationsAndReadsOciRefNames) {
  // BuildKit adds "unknown/unknown" attestation manifests next to the real platforms.
  TestImage amd = makeImage({makeLayer({file("arch", "amd64")})}, {}, "amd", "amd64");
  TestImage att = makeImage({makeLayer({file("att", "att")})}, {}, "att", "unknown");
  std::vector<TarEntry> es = {file("oci-layout", R"({"imageLayoutVersion":"1.0.0"})")};
  addBlobs(amd, &es);
  addBlobs(att, &es);
  nlohmann::json d_amd = descriptor(manifestFor(amd), "");
  d_amd["platform"] = {{"os", "linux"}, {"architecture", "amd64"}};
  d_amd["annotations"] = {{"org.opencontainers.image.ref.name", "registry.local:5000/x/y:2"}};
  nlohmann::json d_att = descriptor(manifestFor(att), "");
  d_att["platform"] = {{"os", "unknown"}, {"architecture", "unknown"}};
  d_att["annotations"] = {{"vnd.docker.reference.type", "attestation-manifest"}};
  nlohmann::json idx = {{"schemaVersion", 2}, {"manifests", {d_amd, d_att}}};
  es.push_back(file("index.json", idx.dump()));
  auto loaded = store_->load(write("att.tar", makeTar(es)));
  ASSERT_TRUE(loaded.isOk()) << loaded.status().toString();
  ASSERT_EQ(loaded->size(), 1u);
  EXPECT_EQ((*loaded)[0].id, amd.id());
  EXPECT_EQ((*loaded)[0].tags, std::vector<std::string>{"registry.local:5000/x/y:2"});
}

TEST_F(ImageStoreTest, RepeatedLayerIsStackedOnceAtItsHighestPosition) {
  Layer x = makeLayer({file("x", "x")});
  Layer y = makeLayer({file("y", "y")});
  TestImage img = makeImage({x, y, x}, {"rep:1"});
  auto loaded = store_->load(write("rep.tar", classicArchive({img})));
  ASSERT_TRUE(loaded.isOk()) << loaded.status().toString();
  EXPECT_EQ((*loaded)[0].layers.size(), 3u);
  EXPECT_EQ((*loaded)[0].size_bytes, 2);
  auto paths = store_->layerPaths("rep:1").value();
  ASSERT_EQ(paths.size(), 2u);
  EXPECT_EQ(paths[0], store() + "/layers/" + y.diff_id.substr(7));
  EXPECT_EQ(paths[1], store() + "/layers/" + x.diff_id.substr(7));
}

}  // namespace
}  // namespace edge::runtime
