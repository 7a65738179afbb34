#include "edged/subsystem.h"

#include <utility>

namespace edge::edged {
namespace {

class HookSubsystem final : public Subsystem {
 public:
  explicit HookSubsystem(SubsystemHooks hooks) : hooks_(std::move(hooks)) {}
  const std::string& name() const override { return hooks_.name; }
  Status start() override { return hooks_.start ? hooks_.start() : Status::ok(); }
  void leave() override {
    if (hooks_.leave) hooks_.leave();
  }
  void stop() override {
    if (hooks_.stop) hooks_.stop();
  }

 private:
  SubsystemHooks hooks_;
};

}  // namespace

SubsystemPtr makeSubsystem(SubsystemHooks hooks) {
  return std::make_unique<HookSubsystem>(std::move(hooks));
}

void Subsystems::add(SubsystemPtr subsystem) {
  list_.push_back(std::move(subsystem));
}

Status Subsystems::start() {
  for (const auto& s : list_) {
    started_++;  // a failed start is undone too
    Status st = s->start();
    if (!st.isOk()) {
      stop();
      return st.withContext(s->name());
    }
  }
  return Status::ok();
}

void Subsystems::stop() {
  for (size_t i = started_; i-- > 0;) list_[i]->leave();
  for (size_t i = started_; i-- > 0;) list_[i]->stop();
  started_ = 0;
}

}  // namespace edge::edged
