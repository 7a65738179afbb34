#include "orchestrator/events.h"

#include "common/log.h"

namespace edge::orchestrator {

EventLog::EventLog(Clock& clock, size_t capacity) : clock_(clock), capacity_(capacity) {}

int64_t EventLog::append(std::string type, std::string service, std::string instance,
                         std::string message) {
  LOG_INFO("event")
      .kv("type", type)
      .kv("service", service)
      .kv("instance", instance)
      .kv("detail", message);
  return add(NodeEvent{.type = std::move(type),
                       .service = std::move(service),
                       .instance = std::move(instance),
                       .message = std::move(message)});
}

int64_t EventLog::appendNode(std::string type, std::string node, std::string message) {
  LOG_INFO("event").kv("type", type).kv("node", node).kv("detail", message);
  return add(
      NodeEvent{.type = std::move(type), .node = std::move(node), .message = std::move(message)});
}

int64_t EventLog::add(NodeEvent e) {
  int64_t seq;
  {
    std::lock_guard<std::mutex> lock(mu_);
    seq = ++last_seq_;
    e.seq = seq;
    e.time = clock_.wallNow();
    events_.push_back(std::move(e));
    while (events_.size() > capacity_) events_.pop_front();
  }
  cv_.notify_all();
  return seq;
}

std::vector<NodeEvent> EventLog::since(int64_t after, const std::string& service,
                                       size_t limit) const {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<NodeEvent> out;
  for (const auto& e : events_) {
    if (out.size() >= limit) break;
    if (e.seq <= after) continue;
    if (!service.empty() && e.service != service) continue;
    out.push_back(e);
  }
  return out;
}

bool EventLog::waitFor(int64_t after, std::chrono::milliseconds timeout) const {
  std::unique_lock<std::mutex> lock(mu_);
  // Real time on purpose: API streams wait on the wall, whatever clock the node uses.
  cv_.wait_for(lock, timeout, [&] { return closed_ || last_seq_ > after; });
  return last_seq_ > after;
}

int64_t EventLog::lastSeq() const {
  std::lock_guard<std::mutex> lock(mu_);
  return last_seq_;
}

void EventLog::close() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    closed_ = true;
  }
  cv_.notify_all();
}

}  // namespace edge::orchestrator
