#include "cluster/cluster_state.h"

#include <algorithm>
#include <charconv>
#include <chrono>
#include <utility>

#include "common/crypto.h"
#include "identity/identity.h"

namespace edge::cluster {

namespace {

using nlohmann::json;

bool isHexId(std::string_view s) {
  if (s.empty() || s.size() > 64) return false;
  return std::all_of(s.begin(), s.end(),
                     [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); });
}

// A DNS label, as service names are (orchestrator/manifest.h).
bool isServiceName(std::string_view s) {
  if (s.empty() || s.size() > 63 || s.front() == '-' || s.back() == '-') return false;
  return std::all_of(s.begin(), s.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-';
  });
}

// Reads the fields of one JSON object; the first problem wins and names its path.
class Reader {
 public:
  Reader(const json& j, std::string path) : j_(j), path_(std::move(path)) {
    if (!j_.is_object()) fail("", "expected an object");
  }
  const Status& status() const { return status_; }
  bool ok() const { return status_.isOk(); }

  const json* field(const char* key, bool required = true) {
    if (!ok()) return nullptr;
    auto it = j_.find(key);
    if (it == j_.end()) {
      if (required) fail(key, "missing");
      return nullptr;
    }
    return &*it;
  }
  std::string str(const char* key, size_t max, bool required = true) {
    const json* v = field(key, required);
    if (!v) return {};
    if (!v->is_string()) return fail(key, "expected a string"), std::string();
    const auto& s = v->get_ref<const std::string&>();
    if (s.size() > max) {
      return fail(key, "longer than " + std::to_string(max) + " bytes"), std::string();
    }
    return s;
  }
  bool boolean(const char* key) {
    const json* v = field(key, false);
    if (!v) return false;
    if (!v->is_boolean()) return fail(key, "expected true or false"), false;
    return v->get<bool>();
  }
  Hlc hlc(const char* key) {
    std::string text = str(key, 128);
    if (!ok()) return {};
    Result<Hlc> h = Hlc::parse(text);
    if (!h.isOk()) return fail(key, h.status().message()), Hlc{};
    return *h;
  }
  const json* array(const char* key, size_t max, bool required = true) {
    const json* v = field(key, required);
    if (!v) return nullptr;
    if (!v->is_array()) return fail(key, "expected a list"), nullptr;
    if (v->size() > max) {
      return fail(key, "more than " + std::to_string(max) + " entries"), nullptr;
    }
    return v;
  }
  void fail(std::string_view key, std::string_view what) {
    if (!ok()) return;
    std::string where = path_;
    if (!key.empty()) where += "." + std::string(key);
    status_ = Status::invalidArgument(where + ": " + std::string(what));
  }
  const std::string& path() const { return path_; }

 private:
  const json& j_;
  std::string path_;
  Status status_;
};

json hlcList(const std::vector<Hlc>& list) {
  json out = json::array();
  for (const Hlc& h : list) out.push_back(h.toString());
  return out;
}

bool contains(const std::vector<Hlc>& list, const Hlc& h) {
  return std::find(list.begin(), list.end(), h) != list.end();
}

}  // namespace

// ---------------------------------------------------------------- Hlc

std::string Hlc::toString() const {
  if (isZero()) return "0";
  return std::to_string(wall_ms) + "." + std::to_string(logical) + "@" + node_id;
}

Result<Hlc> Hlc::parse(std::string_view text) {
  auto bad = [&](std::string_view why) {
    return Status::invalidArgument("\"" + std::string(text.substr(0, 80)) +
                                   "\" is not a clock stamp (" + std::string(why) +
                                   "); expected <milliseconds>.<counter>@<node id>");
  };
  if (text == "0") return Hlc{};
  size_t dot = text.find('.');
  size_t at = text.find('@');
  if (dot == std::string_view::npos || at == std::string_view::npos || at < dot) {
    return bad("missing '.' or '@'");
  }
  Hlc h;
  auto [p1, e1] = std::from_chars(text.data(), text.data() + dot, h.wall_ms);
  if (e1 != std::errc() || p1 != text.data() + dot || h.wall_ms <= 0) {
    return bad("milliseconds");
  }
  auto [p2, e2] = std::from_chars(text.data() + dot + 1, text.data() + at, h.logical);
  if (e2 != std::errc() || p2 != text.data() + at) return bad("counter");
  h.node_id = std::string(text.substr(at + 1));
  if (!isHexId(h.node_id)) return bad("node id: lower-case hex, 1..64 characters");
  return h;
}

// ---------------------------------------------------------------- HlcClock

HlcClock::HlcClock(const Clock& clock, std::string node_id)
    : clock_(clock), node_id_(std::move(node_id)) {}

namespace {
int64_t wallMs(const Clock& clock) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(clock.wallNow().time_since_epoch())
      .count();
}
}  // namespace

Hlc HlcClock::now() {
  int64_t wall = wallMs(clock_);
  std::lock_guard<std::mutex> lock(mu_);
  if (wall > wall_ms_) {
    wall_ms_ = wall;
    logical_ = 0;
  } else {
    ++logical_;
  }
  return Hlc{wall_ms_, logical_, node_id_};
}

Status HlcClock::observe(const Hlc& seen) {
  if (seen.isZero()) return Status::ok();
  int64_t wall = wallMs(clock_);
  if (seen.wall_ms > wall + kMaxAheadMs) {
    return Status::failedPrecondition("clock stamp " + seen.toString() + " is " +
                                      std::to_string((seen.wall_ms - wall) / 1000) +
                                      " s ahead of this node's clock (at most " +
                                      std::to_string(kMaxAheadMs / 1000) + " s is taken in)");
  }
  std::lock_guard<std::mutex> lock(mu_);
  if (seen.wall_ms > wall_ms_) {
    wall_ms_ = seen.wall_ms;
    logical_ = seen.logical;
  } else if (seen.wall_ms == wall_ms_ && seen.logical > logical_) {
    logical_ = seen.logical;
  }
  return Status::ok();
}

// ---------------------------------------------------------------- entries

std::string SpecEntry::signingBytes() const {
  json j = {{"name", name},
            {"hlc", hlc.toString()},
            {"deleted", deleted},
            {"manifest", manifest_json},
            {"author", author}};
  return "edge-cluster-spec-v1\n" + j.dump();
}

// ---------------------------------------------------------------- ClusterState

bool ClusterState::put(SpecEntry e) {
  auto it = specs_.find(e.name);
  if (it == specs_.end()) {
    std::string name = e.name;
    specs_.emplace(std::move(name), std::move(e));
    return true;
  }
  SpecEntry& cur = it->second;
  if (!(cur.hlc < e.hlc)) return false;
  // e replaces cur: its history is cur's stamp, then cur's history (what e.replaced
  // said already is kept when it came with the entry: a peer's newer version).
  std::vector<Hlc> history = e.replaced;
  if (!contains(history, cur.hlc)) history.insert(history.begin(), cur.hlc);
  for (const Hlc& h : cur.replaced) {
    if (!contains(history, h)) history.push_back(h);
  }
  std::sort(history.begin(), history.end(), std::greater<>());
  if (history.size() > kHistoryDepth) history.resize(kHistoryDepth);
  e.replaced = std::move(history);
  cur = std::move(e);
  return true;
}

bool ClusterState::putCordon(CordonEntry e) {
  auto it = cordons_.find(e.node_id);
  if (it != cordons_.end() && !(it->second.hlc < e.hlc)) return false;
  std::string id = e.node_id;
  cordons_.insert_or_assign(std::move(id), std::move(e));
  return true;
}

const SpecEntry* ClusterState::spec(std::string_view name) const {
  auto it = specs_.find(name);
  return it == specs_.end() ? nullptr : &it->second;
}

bool ClusterState::cordoned(std::string_view node_id) const {
  auto it = cordons_.find(node_id);
  return it != cordons_.end() && (it->second.cordoned || it->second.draining);
}

void ClusterState::setAssignments(std::vector<Assignment> list, Hlc hlc) {
  std::sort(list.begin(), list.end());
  list.erase(std::unique(list.begin(), list.end()), list.end());
  assignments_ = std::move(list);
  assignments_hlc_ = std::move(hlc);
}

std::vector<Assignment> ClusterState::assignmentsOf(std::string_view node_id) const {
  std::vector<Assignment> out;
  for (const Assignment& a : assignments_) {
    if (a.node_id == node_id) out.push_back(a);
  }
  return out;
}

std::vector<Conflict> ClusterState::merge(const ClusterState& other) {
  std::vector<Conflict> conflicts;
  for (const auto& [name, theirs] : other.specs_) {
    const SpecEntry* mine = spec(name);
    if (mine && mine->hlc != theirs.hlc && !contains(theirs.replaced, mine->hlc) &&
        !contains(mine->replaced, theirs.hlc)) {
      // Neither replaced the other: both sides changed it since they parted (or the
      // history is too short to tell, which counts as the same).
      bool theirs_wins = mine->hlc < theirs.hlc;
      conflicts.push_back(
          {name, theirs_wins ? theirs.hlc : mine->hlc, theirs_wins ? mine->hlc : theirs.hlc});
    }
    if (!mine) {
      put(theirs);
      continue;
    }
    // The winner's history takes in the loser's stamp and history, whichever side won,
    // so both sides end with the same register (and a third copy that still holds the
    // loser does not raise the same conflict again).
    std::vector<Hlc> history = mine->replaced;
    for (const Hlc& h : theirs.replaced) {
      if (!contains(history, h)) history.push_back(h);
    }
    const Hlc& loser = mine->hlc < theirs.hlc ? mine->hlc : theirs.hlc;
    if (mine->hlc != theirs.hlc && !contains(history, loser)) history.push_back(loser);
    std::sort(history.begin(), history.end(), std::greater<>());
    if (history.size() > kHistoryDepth) history.resize(kHistoryDepth);
    SpecEntry& cur = specs_.find(name)->second;
    if (cur.hlc < theirs.hlc) cur = theirs;
    cur.replaced = std::move(history);
  }
  for (const auto& [id, c] : other.cordons_) putCordon(c);
  std::vector<Assignment> all = assignments_;
  all.insert(all.end(), other.assignments_.begin(), other.assignments_.end());
  setAssignments(std::move(all), std::max(assignments_hlc_, other.assignments_hlc_));
  std::sort(conflicts.begin(), conflicts.end(),
            [](const Conflict& a, const Conflict& b) { return a.service < b.service; });
  return conflicts;
}

Hlc ClusterState::maxHlc() const {
  Hlc m = assignments_hlc_;
  for (const auto& [name, e] : specs_) m = std::max(m, e.hlc);
  for (const auto& [id, c] : cordons_) m = std::max(m, c.hlc);
  return m;
}

std::string ClusterState::digest() const {
  return crypto::sha256Hex(toJson().dump());
}

json ClusterState::toJson() const {
  json specs = json::array();
  for (const auto& [name, e] : specs_) {
    json j = {{"name", e.name},
              {"hlc", e.hlc.toString()},
              {"replaced", hlcList(e.replaced)},
              {"author", e.author},
              {"signature", identity::toHex(e.signature)}};
    if (e.deleted) {
      j["deleted"] = true;
    } else {
      j["manifest"] = e.manifest_json;
    }
    specs.push_back(std::move(j));
  }
  json cordons = json::array();
  for (const auto& [id, c] : cordons_) {
    cordons.push_back({{"node_id", c.node_id},
                       {"hlc", c.hlc.toString()},
                       {"cordoned", c.cordoned},
                       {"draining", c.draining}});
  }
  json assignments = json::array();
  for (const Assignment& a : assignments_) {
    assignments.push_back(json::array({a.service, a.slot, a.node_id}));
  }
  return {{"specs", std::move(specs)},
          {"cordons", std::move(cordons)},
          {"assignments", std::move(assignments)},
          {"assignments_hlc", assignments_hlc_.toString()}};
}

Result<ClusterState> ClusterState::fromJson(const json& j) {
  ClusterState s;
  Reader top(j, "clusterState");
  const json* specs = top.array("specs", kMaxServices);
  const json* cordons = top.array("cordons", kMaxNodes);
  const json* assignments = top.array("assignments", kMaxAssignments);
  s.assignments_hlc_ = top.hlc("assignments_hlc");
  if (!top.ok()) return top.status();

  for (size_t i = 0; i < specs->size(); ++i) {
    Reader r((*specs)[i], "clusterState.specs[" + std::to_string(i) + "]");
    SpecEntry e;
    e.name = r.str("name", 63);
    if (r.ok() && !isServiceName(e.name)) {
      r.fail("name", "\"" + e.name + "\" is not a service name (a DNS label)");
    }
    e.hlc = r.hlc("hlc");
    if (r.ok() && e.hlc.isZero()) r.fail("hlc", "a version needs a stamp");
    if (const json* rep = r.array("replaced", kHistoryDepth)) {
      for (size_t k = 0; k < rep->size() && r.ok(); ++k) {
        const json& h = (*rep)[k];
        Result<Hlc> parsed =
            h.is_string() ? Hlc::parse(h.get_ref<const std::string&>())
                          : Result<Hlc>(Status::invalidArgument("expected a clock stamp string"));
        if (!parsed.isOk()) {
          r.fail("replaced[" + std::to_string(k) + "]", parsed.status().message());
        } else if (!(*parsed < e.hlc)) {
          r.fail("replaced[" + std::to_string(k) + "]", "not older than the version's stamp");
        } else {
          e.replaced.push_back(*parsed);
        }
      }
    }
    e.author = r.str("author", 64);
    std::string sig_hex = r.str("signature", 256);
    if (r.ok()) {
      Result<std::string> sig = identity::fromHex(sig_hex);
      if (!sig.isOk()) {
        r.fail("signature", sig.status().message());
      } else {
        e.signature = std::move(sig).value();
      }
    }
    e.deleted = r.boolean("deleted");
    e.manifest_json = r.str("manifest", 256 << 10, !e.deleted);
    if (r.ok() && e.deleted && !e.manifest_json.empty()) {
      r.fail("manifest", "a deleted service carries no manifest");
    }
    if (!r.ok()) return r.status();
    if (s.specs_.count(e.name)) {
      return Status::invalidArgument(r.path() + ".name: service \"" + e.name + "\" appears twice");
    }
    std::sort(e.replaced.begin(), e.replaced.end(), std::greater<>());
    std::string name = e.name;
    s.specs_.emplace(std::move(name), std::move(e));
  }

  for (size_t i = 0; i < cordons->size(); ++i) {
    Reader r((*cordons)[i], "clusterState.cordons[" + std::to_string(i) + "]");
    CordonEntry c;
    c.node_id = r.str("node_id", 64);
    if (r.ok() && !isHexId(c.node_id)) r.fail("node_id", "expected a node id (hex)");
    c.hlc = r.hlc("hlc");
    c.cordoned = r.boolean("cordoned");
    c.draining = r.boolean("draining");
    if (!r.ok()) return r.status();
    if (s.cordons_.count(c.node_id)) {
      return Status::invalidArgument(r.path() + ".node_id: node " + c.node_id + " appears twice");
    }
    std::string id = c.node_id;
    s.cordons_.emplace(std::move(id), std::move(c));
  }

  std::vector<Assignment> list;
  list.reserve(assignments->size());
  for (size_t i = 0; i < assignments->size(); ++i) {
    const json& a = (*assignments)[i];
    std::string where = "clusterState.assignments[" + std::to_string(i) + "]";
    if (!a.is_array() || a.size() != 3 || !a[0].is_string() || !a[1].is_number_integer() ||
        !a[2].is_string()) {
      return Status::invalidArgument(where + ": expected [service, slot, node id]");
    }
    Assignment as{a[0].get<std::string>(), 0, a[2].get<std::string>()};
    int64_t slot = a[1].get<int64_t>();
    if (!isServiceName(as.service)) {
      return Status::invalidArgument(where + ": \"" + as.service + "\" is not a service name");
    }
    if (slot < 0 || slot >= 1000) {
      return Status::invalidArgument(where + ": slot " + std::to_string(slot) + " outside 0..999");
    }
    as.slot = static_cast<int>(slot);
    if (!isHexId(as.node_id)) {
      return Status::invalidArgument(where + ": expected a node id (hex)");
    }
    if (!list.empty() && !(list.back() < as)) {
      return Status::invalidArgument(where + ": assignments must be sorted and unique");
    }
    list.push_back(std::move(as));
  }
  s.assignments_ = std::move(list);
  return s;
}

std::vector<Assignment> resolveSlots(std::vector<Assignment> list,
                                     const std::set<std::string>& every_node) {
  std::sort(list.begin(), list.end());
  list.erase(std::unique(list.begin(), list.end()), list.end());
  std::vector<Assignment> out;
  out.reserve(list.size());
  for (Assignment& a : list) {
    // Sorted by (service, slot, node): the first of a (service, slot) has the smallest
    // node id.
    if (!every_node.count(a.service) && !out.empty() && out.back().service == a.service &&
        out.back().slot == a.slot) {
      continue;
    }
    out.push_back(std::move(a));
  }
  return out;
}

}  // namespace edge::cluster
