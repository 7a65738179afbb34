#include "runtime-shim/docker/docker_events.h"

#include <condition_variable>
#include <map>
#include <mutex>
#include <thread>

#include "common/log.h"

namespace edge::runtime::docker {
namespace {

using std::chrono::nanoseconds;

int64_t toNanos(WallTime t) {
  return std::chrono::duration_cast<nanoseconds>(t.time_since_epoch()).count();
}
WallTime fromNanos(int64_t ns) {
  return WallTime(std::chrono::duration_cast<WallTime::duration>(nanoseconds(ns)));
}

struct StopFlag {
  std::mutex mu;
  std::condition_variable cv;
  bool stop = false;

  bool stopped() {
    std::lock_guard<std::mutex> lock(mu);
    return stop;
  }
  // Waits up to `d`; true when stopped.
  bool waitFor(std::chrono::nanoseconds d) {
    std::unique_lock<std::mutex> lock(mu);
    return cv.wait_for(lock, d, [this] { return stop; });
  }
};

class EventPoller {
 public:
  EventPoller(std::shared_ptr<const DockerApi> api, EventSink sink, EventWindowOptions options,
              std::shared_ptr<StopFlag> flag, int64_t offset_ns, int64_t start_ns)
      : api_(std::move(api)),
        sink_(std::move(sink)),
        options_(options),
        flag_(std::move(flag)),
        offset_ns_(offset_ns),
        start_(start_ns) {}

  void run() {
    const int64_t start = start_;
    int64_t covered = start;  // every event stamped <= covered has been asked for
    const int64_t window = nanoseconds(options_.window).count();
    const int64_t overlap = nanoseconds(options_.overlap).count();
    bool failing = false;
    while (!flag_->stopped()) {
      int64_t since = std::max(start, covered - overlap);
      int64_t until = std::max(daemonNow(), covered) + window;
      Status s = pollWindow(since, until);
      if (flag_->stopped()) break;
      if (s.isOk()) {
        if (failing) LOG_INFO("docker events resumed").kv("endpoint", api_->endpoint().toString());
        failing = false;
        covered = until;
        forgetBefore(covered - overlap);
        // A daemon that returned early (clock step, ignored `until`) must not make us spin.
        int64_t ahead = until - daemonNow();
        if (ahead > 0 && flag_->waitFor(nanoseconds(ahead))) break;
      } else {
        if (!failing) {
          LOG_WARN("docker events unavailable, retrying")
              .kv("endpoint", api_->endpoint().toString())
              .kv("error", s.toString());
        }
        failing = true;
        if (flag_->waitFor(options_.retry)) break;
      }
    }
  }

 private:
  int64_t daemonNow() const { return toNanos(std::chrono::system_clock::now()) + offset_ns_; }

  Status pollWindow(int64_t since, int64_t until) {
    std::string filters = R"({"type":["container"]})";
    http::Request req = api_->request("GET", "/events?since=" + formatUnixNano(fromNanos(since)) +
                                                 "&until=" + formatUnixNano(fromNanos(until)) +
                                                 "&filters=" + http::urlEncode(filters));
    // The window closes the response; a daemon that ignores `until` is cut off after a
    // quiet spell so the subscription still notices a stop.
    req.read_timeout = options_.window + std::chrono::seconds(2);
    JsonStreamSplitter split;
    Status parse_error;
    req.body_sink = [&](const char* data, size_t len) {
      if (Status s = split.feed(std::string_view(data, len)); !s.isOk()) {
        parse_error = s;
        return false;
      }
      std::string value;
      while (split.next(&value)) {
        if (flag_->stopped()) return false;
        Result<Json> j = json::parse(value, "event");
        if (!j.isOk()) {
          parse_error = j.status();
          return false;
        }
        deliver(*j);
      }
      return !flag_->stopped();
    };
    Result<http::Response> res = api_->send(req, "watch events");
    if (!parse_error.isOk()) return parse_error.withContext("watch events");
    if (!res.isOk()) return res.status();
    if (!res->isSuccess()) return statusFromHttp(res->status, res->body, "watch events");
    return Status::ok();
  }

  void deliver(const Json& j) {
    Result<std::optional<Event>> ev = eventFromJson(j);
    if (!ev.isOk() || !ev->has_value()) return;
    const Event& e = **ev;
    std::string key = std::to_string(toNanos(e.time)) + "/" + e.container_id + "/" +
                      std::string(eventTypeName(e.type));
    if (!seen_.emplace(key, toNanos(e.time)).second) return;
    sink_(e);
  }

  void forgetBefore(int64_t t) {
    for (auto it = seen_.begin(); it != seen_.end();) {
      it = it->second < t ? seen_.erase(it) : std::next(it);
    }
  }

  std::shared_ptr<const DockerApi> api_;
  EventSink sink_;
  EventWindowOptions options_;
  std::shared_ptr<StopFlag> flag_;
  int64_t offset_ns_;
  int64_t start_;  // daemon time when subscribe() was called: nothing earlier is wanted
  std::map<std::string, int64_t> seen_;
};

class EventSubscription : public Subscription {
 public:
  EventSubscription(std::shared_ptr<StopFlag> flag, std::thread thread)
      : flag_(std::move(flag)), thread_(std::move(thread)) {}
  ~EventSubscription() override {
    {
      std::lock_guard<std::mutex> lock(flag_->mu);
      flag_->stop = true;
    }
    flag_->cv.notify_all();
    // Destroyed from inside the sink: the thread owns everything it touches, let it end.
    if (thread_.get_id() == std::this_thread::get_id()) {
      thread_.detach();
    } else {
      thread_.join();
    }
  }

 private:
  std::shared_ptr<StopFlag> flag_;
  std::thread thread_;
};

}  // namespace

Result<SubscriptionPtr> subscribeEvents(std::shared_ptr<const DockerApi> api, EventSink sink,
                                        EventWindowOptions options) {
  if (!sink) return Status::invalidArgument("subscribe: the event sink is empty");
  auto before = std::chrono::system_clock::now();
  ASSIGN_OR_RETURN(Json info, api->getJson("/info", "subscribe to events: daemon info"));
  auto after = std::chrono::system_clock::now();
  int64_t offset = 0;
  if (info.is_object() && info.contains("SystemTime") && info["SystemTime"].is_string()) {
    WallTime daemon_time;
    if (parseTimestamp(info["SystemTime"].get<std::string>(), &daemon_time)) {
      offset = toNanos(daemon_time) - (toNanos(before) + (toNanos(after) - toNanos(before)) / 2);
    }
  }
  // Events from the moment subscribe() was called count, even those that happen before
  // the thread's first request goes out.
  int64_t start = toNanos(before) + offset;
  auto flag = std::make_shared<StopFlag>();
  auto poller =
      std::make_shared<EventPoller>(std::move(api), std::move(sink), options, flag, offset, start);
  std::thread thread([poller] { poller->run(); });
  return SubscriptionPtr(std::make_unique<EventSubscription>(flag, std::move(thread)));
}

}  // namespace edge::runtime::docker
