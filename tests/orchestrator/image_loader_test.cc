// The images of an apply (orchestrator/image_loader.h) on the in-memory runtime, with a
// load that answers per tarball path: path resolution, missing files, load failures, dry
// runs, the manifests rewritten to the loaded references, and the same messages edgectl
// shows. The real tarball loads run in the edged and edgectl integration tests.
#include "orchestrator/image_loader.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <stdlib.h>

#include <map>

#include "common/fs.h"
#include "common/log.h"
#include "fake_runtime.h"

namespace edge::orchestrator {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;

// FakeRuntime whose loadImage answers what the test set for the path.
class TarballRuntime : public testing::FakeRuntime {
 public:
  using FakeRuntime::FakeRuntime;
  void answer(const std::string& path, Result<std::vector<runtime::ImageInfo>> r) {
    answers_.insert_or_assign(path, std::move(r));
  }
  Result<std::vector<runtime::ImageInfo>> loadImage(const std::string& path) override {
    loads.push_back(path);
    auto it = answers_.find(path);
    if (it == answers_.end()) return Status::invalidArgument("not an image archive");
    if (it->second.isOk())
      for (const auto& img : *it->second)
        for (const auto& tag : img.tags) addImage(tag);
    return it->second;
  }
  std::vector<std::string> loads;

 private:
  std::map<std::string, Result<std::vector<runtime::ImageInfo>>> answers_;
};

runtime::ImageInfo image(std::string id, std::vector<std::string> tags) {
  runtime::ImageInfo i;
  i.id = std::move(id);
  i.tags = std::move(tags);
  return i;
}

ServiceManifest manifest(const std::string& name, const std::string& image) {
  auto parsed = parseManifests("apiVersion: edge/v1\nkind: Service\nmetadata: {name: " + name +
                                   "}\nspec:\n  image: " + image + "\n",
                               "test.yaml");
  EXPECT_TRUE(parsed.isOk()) << parsed.status().toString();
  return parsed.isOk() ? parsed->front() : ServiceManifest{};
}

std::vector<std::string> messages(const ImageLoad& r) {
  std::vector<std::string> out;
  for (const auto& e : r.errors) out.push_back(e.toString());
  return out;
}

class ImageLoaderTest : public ::testing::Test {
 protected:
  ImageLoaderTest() : runtime_(clock_), events_(clock_), loader_(runtime_, events_, "edge-1") {
    log::setLevel(log::Level::kWarn);  // every event is also a log line
  }
  void SetUp() override {
    char tmpl[] = "/tmp/edge-image-loader-test-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    ASSERT_TRUE(fs::writeFileAtomic(dir_ + "/hello.tar", "not read by the fake").isOk());
    ASSERT_TRUE(fs::writeFileAtomic(dir_ + "/other.tar", "not read by the fake").isOk());
  }
  void TearDown() override { (void)fs::removeAll(dir_); }

  std::vector<NodeEvent> events() const { return events_.since(0); }

  FakeClock clock_;
  TarballRuntime runtime_;
  EventLog events_;
  ImageLoader loader_;
  std::string dir_;
};

TEST_F(ImageLoaderTest, AReferenceIsLeftAsItIsAndWarnedAboutWhenTheRuntimeLacksIt) {
  runtime_.addImage("hello:1");
  std::vector<ServiceManifest> ms = {manifest("web", "hello:1"), manifest("api", "api:2")};
  ImageLoad r = loader_.load(ms, "", /*dry_run=*/false);
  EXPECT_THAT(r.errors, IsEmpty());
  EXPECT_THAT(r.warnings, ElementsAre("api: image api:2 is not on this node yet; instances start "
                                      "once it is loaded (edgectl images load FILE)"));
  EXPECT_EQ(ms[0].image, "hello:1");
  EXPECT_EQ(ms[1].image, "api:2");
  EXPECT_THAT(runtime_.loads, IsEmpty());
  EXPECT_THAT(events(), IsEmpty());
}

TEST_F(ImageLoaderTest, ARelativeTarballIsFoundBesideTheManifestLoadedAndNamedByItsTag) {
  runtime_.answer(dir_ + "/hello.tar", std::vector{image("sha256:aa", {"hello:1", "hello:2"})});
  std::vector<ServiceManifest> ms = {manifest("web", "./sub/../hello.tar")};
  ASSERT_TRUE(ms[0].image_is_tarball);
  ImageLoad r = loader_.load(ms, dir_, false);
  EXPECT_THAT(messages(r), IsEmpty());
  EXPECT_THAT(r.warnings, IsEmpty());
  EXPECT_THAT(runtime_.loads, ElementsAre(dir_ + "/hello.tar"));
  EXPECT_EQ(ms[0].image, "hello:1");
  EXPECT_FALSE(ms[0].image_is_tarball);
  auto ev = events();
  ASSERT_EQ(ev.size(), 1u);
  EXPECT_EQ(ev[0].type, "image.loaded");
  EXPECT_EQ(ev[0].service, "web");
  EXPECT_EQ(ev[0].message, "hello:1 from " + dir_ + "/hello.tar");
}

TEST_F(ImageLoaderTest, AnUntaggedImageIsNamedByItsId) {
  runtime_.answer(dir_ + "/hello.tar", std::vector{image("sha256:bb", {})});
  std::vector<ServiceManifest> ms = {manifest("web", dir_ + "/hello.tar")};
  ImageLoad r = loader_.load(ms, "", false);  // absolute: no manifest dir needed
  EXPECT_THAT(messages(r), IsEmpty());
  EXPECT_EQ(ms[0].image, "sha256:bb");
  EXPECT_FALSE(ms[0].image_is_tarball);
}

TEST_F(ImageLoaderTest, ARelativeTarballNeedsAnAbsoluteManifestDir) {
  for (const std::string dir : {"", "relative/dir"}) {
    std::vector<ServiceManifest> ms = {manifest("web", "hello.tar")};
    ImageLoad r = loader_.load(ms, dir, false);
    EXPECT_THAT(messages(r),
                ElementsAre("doc 1: spec.image: \"hello.tar\" is a relative tarball path and the "
                            "request did not say where the manifest lives; use an absolute "
                            "path, or apply the file with edgectl"))
        << "manifest dir \"" << dir << "\"";
    EXPECT_EQ(ms[0].image, "hello.tar");
    EXPECT_TRUE(ms[0].image_is_tarball);
  }
  EXPECT_THAT(runtime_.loads, IsEmpty());
}

TEST_F(ImageLoaderTest, EveryDocumentsErrorIsReportedWithItsDocumentAndThisNodesName) {
  runtime_.answer(dir_ + "/hello.tar", std::vector{image("sha256:aa", {"hello:1"})});
  runtime_.answer(dir_ + "/other.tar", std::vector<runtime::ImageInfo>{});
  std::vector<ServiceManifest> ms = {manifest("web", "hello.tar"), manifest("db", "missing.tar"),
                                     manifest("api", "other.tar"), manifest("dir", "sub.tar")};
  ASSERT_TRUE(fs::makeDirs(dir_ + "/sub.tar").isOk());  // not a regular file
  ImageLoad r = loader_.load(ms, dir_, false);
  EXPECT_THAT(messages(r), ElementsAre("doc 2: spec.image: \"missing.tar\": no such file " + dir_ +
                                           "/missing.tar on node edge-1",
                                       "doc 3: spec.image: cannot load " + dir_ +
                                           "/other.tar: the archive holds no image",
                                       "doc 4: spec.image: \"sub.tar\": no such file " + dir_ +
                                           "/sub.tar on node edge-1"));
  // The first document's image was loaded before the others failed; it stays loaded.
  EXPECT_EQ(ms[0].image, "hello:1");
  EXPECT_TRUE(runtime_.inspectImage("hello:1").isOk());
}

TEST_F(ImageLoaderTest, ALoadFailureSaysWhatTheRuntimeSaid) {
  std::vector<ServiceManifest> ms = {manifest("web", dir_ + "/hello.tar")};
  ImageLoad r = loader_.load(ms, "", false);  // the fake refuses paths it was not told
  EXPECT_THAT(messages(r), ElementsAre("doc 1: spec.image: cannot load " + dir_ +
                                       "/hello.tar: not an image archive"));
  EXPECT_EQ(ms[0].image, dir_ + "/hello.tar");
  EXPECT_TRUE(ms[0].image_is_tarball);
  EXPECT_THAT(events(), IsEmpty());
}

TEST_F(ImageLoaderTest, ADryRunChecksThePathsAndLoadsNothing) {
  runtime_.answer(dir_ + "/hello.tar", std::vector{image("sha256:aa", {"hello:1"})});
  std::vector<ServiceManifest> ms = {manifest("web", "hello.tar")};
  ImageLoad r = loader_.load(ms, dir_, /*dry_run=*/true);
  EXPECT_THAT(messages(r), IsEmpty());
  EXPECT_THAT(runtime_.loads, IsEmpty());
  EXPECT_EQ(ms[0].image, "hello.tar");
  EXPECT_TRUE(ms[0].image_is_tarball);

  std::vector<ServiceManifest> missing = {manifest("web", "missing.tar")};
  r = loader_.load(missing, dir_, true);
  EXPECT_THAT(messages(r), ElementsAre("doc 1: spec.image: \"missing.tar\": no such file " + dir_ +
                                       "/missing.tar on node edge-1"));
  EXPECT_THAT(events(), IsEmpty());
}

}  // namespace
}  // namespace edge::orchestrator
