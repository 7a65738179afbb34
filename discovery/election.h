// Merit: who should hold a cluster's knowledge (the supernode) and who serves as its
// link-local proxy and cache. Pure functions, so every node computes the same answer
// from the same member list.
//
// The score (0..100) rewards what makes a good holder of cluster knowledge, in this
// order: staying up (mains power 30, configured persistent 25), resources (CPUs up to 8,
// memory up to 16 GiB, free storage up to 256 GiB: 20 together), connectivity (a public
// address 10, an advertised endpoint 5) and a proven uptime (1 h: 5, 24 h: 10). Uptime
// counts in steps, not continuously, so two nodes computing a score a few seconds apart
// agree.
//
// Order: a higher score wins; equal scores go to the lower node id. A member takes over
// from a sitting supernode only when it is clearly better (kTakeoverMargin points), so
// small differences (another GiB of memory, an hour of uptime) never move the role back
// and forth. Two supernodes that meet (a healed partition, two nodes started at once)
// have no incumbent: the strict order decides and the other one yields.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "discovery/types.h"

namespace edge::discovery {

inline constexpr int kTakeoverMargin = 10;

int meritScore(const NodeProfile& p, int64_t now_unix);

// True when (score_a, id_a) ranks before (score_b, id_b).
bool ranksBefore(int score_a, const std::string& id_a, int score_b, const std::string& id_b);

// True when a challenger should replace the sitting supernode.
inline bool clearlyBetter(int challenger, int incumbent) {
  return challenger >= incumbent + kTakeoverMargin;
}

// The member that takes over when the supernode is gone: the best-ranked by the scores
// in the list (which every member received from the supernode), skipping `excluded`.
// "" when none is left.
std::string successor(const std::vector<Member>& members, const std::vector<std::string>& excluded);

// Connectivity used for the proxy role: a public address, an endpoint, more addresses.
int connectivityScore(const NodeProfile& p);

// Roles of every member: the supernode; the proxy (best connectivity); the cache (most
// free storage). Ties go to the lower id. A node may hold several roles.
std::map<std::string, std::vector<std::string>> assignRoles(const std::vector<Member>& members,
                                                            const std::string& supernode_id);

}  // namespace edge::discovery
