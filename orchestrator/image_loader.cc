#include "orchestrator/image_loader.h"

#include <filesystem>
#include <system_error>
#include <utility>

namespace edge::orchestrator {

ImageLoader::ImageLoader(runtime::ContainerRuntime& runtime, EventLog& events,
                         std::string node_name)
    : runtime_(runtime), events_(events), node_name_(std::move(node_name)) {}

ImageLoad ImageLoader::load(std::vector<ServiceManifest>& services, const std::string& manifest_dir,
                            bool dry_run) {
  ImageLoad result;
  for (size_t i = 0; i < services.size(); ++i) {
    ServiceManifest& m = services[i];
    int doc = static_cast<int>(i) + 1;
    if (!m.image_is_tarball) {
      auto img = runtime_.inspectImage(m.image);
      if (!img.isOk() && img.status().code() == StatusCode::kNotFound)
        result.warnings.push_back(m.name + ": image " + m.image +
                                  " is not on this node yet; instances start once it is "
                                  "loaded (edgectl images load FILE)");
      continue;
    }
    std::filesystem::path path(m.image);
    if (path.is_relative()) {
      if (manifest_dir.empty() || std::filesystem::path(manifest_dir).is_relative()) {
        result.errors.push_back(FieldError{
            .doc = doc,
            .path = "spec.image",
            .message = "\"" + m.image +
                       "\" is a relative tarball path and the request did not say where the "
                       "manifest lives; use an absolute path, or apply the file with edgectl"});
        continue;
      }
      path = std::filesystem::path(manifest_dir) / path;
    }
    path = path.lexically_normal();
    std::error_code ec;
    if (!std::filesystem::is_regular_file(path, ec)) {
      result.errors.push_back(FieldError{.doc = doc,
                                         .path = "spec.image",
                                         .message = "\"" + m.image + "\": no such file " +
                                                    path.string() + " on node " + node_name_});
      continue;
    }
    if (dry_run) continue;
    auto loaded = runtime_.loadImage(path.string());
    if (!loaded.isOk() || loaded->empty()) {
      result.errors.push_back(FieldError{
          .doc = doc,
          .path = "spec.image",
          .message = "cannot load " + path.string() + ": " +
                     (loaded.isOk() ? "the archive holds no image" : loaded.status().message())});
      continue;
    }
    const auto& img = loaded->front();
    m.image = img.tags.empty() ? img.id : img.tags.front();
    m.image_is_tarball = false;
    events_.append("image.loaded", m.name, "", m.image + " from " + path.string());
  }
  return result;
}

}  // namespace edge::orchestrator
