// FakeRuntime: an in-memory ContainerRuntime for unit tests of the logic that drives a
// runtime (the reconciler). Containers "run" until the test crashes or stops them; time
// comes from the clock given. Not a substitute for the integration tests, which use the
// real runtimes.
#pragma once

#include <algorithm>
#include <map>
#include <mutex>
#include <set>
#include <string>

#include "common/clock.h"
#include "runtime-shim/runtime.h"

namespace edge::testing {

class FakeRuntime : public runtime::ContainerRuntime {
 public:
  explicit FakeRuntime(Clock& clock) : clock_(clock) {}

  void addImage(const std::string& ref) {
    std::lock_guard<std::mutex> l(mu_);
    images_.insert(runtime::normalizeImageRef(ref));
  }
  // The container's process exits with `code` now.
  void exitContainer(const std::string& id_or_name, int code) {
    std::lock_guard<std::mutex> l(mu_);
    auto* c = findLocked(id_or_name);
    if (c == nullptr || c->state != runtime::ContainerState::kRunning) return;
    c->state = runtime::ContainerState::kExited;
    c->exit_code = code;
    c->finished = clock_.wallNow();
    c->pid = 0;
  }
  // Make the next `n` startContainer calls fail.
  void failStarts(int n) {
    std::lock_guard<std::mutex> l(mu_);
    fail_starts_ = n;
  }
  std::vector<runtime::ContainerInfo> all() {
    std::lock_guard<std::mutex> l(mu_);
    std::vector<runtime::ContainerInfo> out;
    for (auto& [_, c] : containers_) out.push_back(c);
    std::sort(out.begin(), out.end(), [](auto& a, auto& b) { return a.name < b.name; });
    return out;
  }
  std::vector<std::string> runningNames() {
    std::vector<std::string> out;
    for (auto& c : all())
      if (c.state == runtime::ContainerState::kRunning) out.push_back(c.name);
    return out;
  }
  int creates() const { return creates_; }
  int starts() const { return starts_; }

  std::string kind() const override { return "fake"; }
  Result<runtime::RuntimeInfo> info() override {
    runtime::RuntimeInfo i;
    i.kind = "fake";
    return i;
  }
  Result<std::vector<runtime::ImageInfo>> loadImage(const std::string&) override {
    return Status::unimplemented("fake");
  }
  Result<std::vector<runtime::ImageInfo>> listImages() override {
    std::lock_guard<std::mutex> l(mu_);
    std::vector<runtime::ImageInfo> out;
    for (auto& ref : images_) {
      runtime::ImageInfo i;
      i.id = "sha256:" + ref;
      i.tags = {ref};
      out.push_back(i);
    }
    return out;
  }
  Result<runtime::ImageInfo> inspectImage(const std::string& ref) override {
    std::lock_guard<std::mutex> l(mu_);
    if (images_.count(runtime::normalizeImageRef(ref)) == 0)
      return Status::notFound("no such image: " + ref);
    runtime::ImageInfo i;
    i.tags = {runtime::normalizeImageRef(ref)};
    return i;
  }
  Status removeImage(const std::string&, bool) override { return Status::ok(); }

  Result<std::string> createContainer(const runtime::ContainerSpec& spec) override {
    std::lock_guard<std::mutex> l(mu_);
    if (images_.count(runtime::normalizeImageRef(spec.image)) == 0)
      return Status::notFound("no such image: " + spec.image);
    for (auto& [_, c] : containers_)
      if (!spec.name.empty() && c.name == spec.name)
        return Status::alreadyExists("name in use: " + spec.name);
    runtime::ContainerInfo c;
    char buf[65];
    std::snprintf(buf, sizeof buf, "%064d", ++next_id_);
    c.id = buf;
    c.name = spec.name;
    c.image = spec.image;
    c.labels = spec.labels;
    c.env = spec.env;
    c.resources = spec.resources;
    c.created = clock_.wallNow() + std::chrono::microseconds(next_id_);  // strictly ordered
    c.state = runtime::ContainerState::kCreated;
    containers_[c.id] = c;
    creates_++;
    return c.id;
  }
  Status startContainer(const std::string& id) override {
    std::lock_guard<std::mutex> l(mu_);
    auto* c = findLocked(id);
    if (c == nullptr) return Status::notFound("no such container: " + id);
    if (c->state == runtime::ContainerState::kRunning)
      return Status::failedPrecondition("already running");
    if (fail_starts_ > 0) {
      fail_starts_--;
      return Status::internal("injected start failure");
    }
    c->state = runtime::ContainerState::kRunning;
    c->started = clock_.wallNow();
    c->pid = 1000 + next_id_;
    starts_++;
    return Status::ok();
  }
  Status stopContainer(const std::string& id, std::optional<std::chrono::seconds>) override {
    std::lock_guard<std::mutex> l(mu_);
    auto* c = findLocked(id);
    if (c == nullptr) return Status::notFound("no such container: " + id);
    if (c->state == runtime::ContainerState::kRunning) {
      c->state = runtime::ContainerState::kExited;
      c->exit_code = 143;
      c->finished = clock_.wallNow();
    }
    return Status::ok();
  }
  Status killContainer(const std::string& id, int) override {
    return stopContainer(id, std::nullopt);
  }
  Status removeContainer(const std::string& id, bool force) override {
    std::lock_guard<std::mutex> l(mu_);
    auto* c = findLocked(id);
    if (c == nullptr) return Status::notFound("no such container: " + id);
    if (c->state == runtime::ContainerState::kRunning && !force)
      return Status::failedPrecondition("running");
    containers_.erase(c->id);
    return Status::ok();
  }
  Result<std::vector<runtime::ContainerInfo>> listContainers(
      const runtime::ListOptions& o) override {
    std::lock_guard<std::mutex> l(mu_);
    std::vector<runtime::ContainerInfo> out;
    for (auto& [_, c] : containers_) {
      if (!o.all && c.state != runtime::ContainerState::kRunning) continue;
      bool match = true;
      for (auto& [k, v] : o.labels) {
        auto it = c.labels.find(k);
        if (it == c.labels.end() || it->second != v) match = false;
      }
      if (match) out.push_back(c);
    }
    return out;
  }
  Result<runtime::ContainerInfo> inspectContainer(const std::string& id) override {
    std::lock_guard<std::mutex> l(mu_);
    auto* c = findLocked(id);
    if (c == nullptr) return Status::notFound("no such container: " + id);
    return *c;
  }
  Result<runtime::ExitStatus> waitContainer(const std::string&, std::optional<Duration>) override {
    return Status::unimplemented("fake");
  }
  Status readLogs(const std::string&, const runtime::LogOptions&,
                  const runtime::LogSink&) override {
    return Status::ok();
  }
  Result<runtime::Stats> stats(const std::string&) override {
    return Status::unimplemented("fake");
  }
  Result<runtime::SubscriptionPtr> subscribe(runtime::EventSink) override {
    return runtime::SubscriptionPtr(new runtime::Subscription());
  }

 private:
  runtime::ContainerInfo* findLocked(const std::string& id_or_name) {
    for (auto& [id, c] : containers_)
      if (id == id_or_name || c.name == id_or_name) return &c;
    return nullptr;
  }
  Clock& clock_;
  std::mutex mu_;
  std::set<std::string> images_;
  std::map<std::string, runtime::ContainerInfo> containers_;
  int next_id_ = 0;
  int fail_starts_ = 0;
  int creates_ = 0;
  int starts_ = 0;
};

}  // namespace edge::testing
