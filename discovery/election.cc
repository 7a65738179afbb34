#include "discovery/election.h"

#include <algorithm>

namespace edge::discovery {
namespace {

constexpr int64_t kGiB = int64_t{1} << 30;

int scaled(int64_t value, int64_t cap, int points) {
  if (value <= 0) return 0;
  if (value >= cap) return points;
  return static_cast<int>(value * points / cap);
}

}  // namespace

int meritScore(const NodeProfile& p, int64_t now_unix) {
  int score = 0;
  if (p.power == "mains") score += 30;
  if (p.persistent) score += 25;
  score += scaled(p.cpus, 8, 8);
  score += scaled(p.memory_bytes / (kGiB / 16), 16 * 16, 8);  // 1/16 GiB steps up to 16 GiB
  score += scaled(p.storage_free_bytes / kGiB, 256, 4);
  if (!p.public_address.empty()) score += 10;
  if (!p.endpoint.empty()) score += 5;
  int64_t uptime = p.started_at > 0 ? now_unix - p.started_at : 0;
  if (uptime >= 24 * 3600) {
    score += 10;
  } else if (uptime >= 3600) {
    score += 5;
  }
  return std::clamp(score, 0, 100);
}

bool ranksBefore(int score_a, const std::string& id_a, int score_b, const std::string& id_b) {
  if (score_a != score_b) return score_a > score_b;
  return id_a < id_b;
}

std::string successor(const std::vector<Member>& members,
                      const std::vector<std::string>& excluded) {
  const Member* best = nullptr;
  for (const auto& m : members) {
    if (std::find(excluded.begin(), excluded.end(), m.profile.node_id) != excluded.end()) continue;
    if (!best || ranksBefore(m.score, m.profile.node_id, best->score, best->profile.node_id))
      best = &m;
  }
  return best ? best->profile.node_id : std::string();
}

int connectivityScore(const NodeProfile& p) {
  int score = static_cast<int>(std::min<size_t>(p.addresses.size(), 8));
  if (!p.endpoint.empty()) score += 10;
  if (!p.public_address.empty()) score += 20;
  return score;
}

std::map<std::string, std::vector<std::string>> assignRoles(const std::vector<Member>& members,
                                                            const std::string& supernode_id) {
  std::map<std::string, std::vector<std::string>> roles;
  for (const auto& m : members) roles[m.profile.node_id];
  if (members.empty()) return roles;
  if (roles.count(supernode_id)) roles[supernode_id].push_back(kRoleSupernode);

  const Member* proxy = nullptr;
  const Member* cache = nullptr;
  for (const auto& m : members) {
    const auto& id = m.profile.node_id;
    if (!proxy || ranksBefore(connectivityScore(m.profile), id, connectivityScore(proxy->profile),
                              proxy->profile.node_id))
      proxy = &m;
    if (!cache || m.profile.storage_free_bytes > cache->profile.storage_free_bytes ||
        (m.profile.storage_free_bytes == cache->profile.storage_free_bytes &&
         id < cache->profile.node_id))
      cache = &m;
  }
  roles[proxy->profile.node_id].push_back(kRoleProxy);
  roles[cache->profile.node_id].push_back(kRoleCache);
  return roles;
}

}  // namespace edge::discovery
