// edge-packet-flood: sends malformed and forged discovery datagrams to a link's
// multicast group, to check that nodes drop and count them and stay healthy
// (tests/integration/cluster_e2e.sh, scenario 7).
//
//   edge-packet-flood --interface-address 198.18.0.250 [--group 239.255.83.83:8083]
//                     [--count 20000] [--seconds 10] [--capture-seconds 2] [--seed N]
//
// The mix, one kind after the other: random bytes of random length (0..1500); truncated
// headers; wrong magic, type or reserved byte; body lengths that do not match; a valid
// header around a body that is not JSON; JSON of the wrong types, with huge numbers, or
// nested thousands deep (signed by a key whose id matches, so only parsing can reject
// them); beacons whose id is not their key's; beacons signed by another key; beacons
// with a valid signature and garbage fields; deltas with random sealed bytes; oversized
// datagrams; and, when one was heard during --capture-seconds, replays of a real beacon
// as it was and with one byte flipped. Stops after --count datagrams or --seconds,
// whichever comes first, then prints what it sent per kind. Exit status: 0, or 2 for a
// bad argument or a socket that cannot be set up.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <array>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "common/status.h"
#include "identity/identity.h"

namespace edge::flood {
namespace {

using identity::NodeIdentity;
using identity::toHex;
using json = nlohmann::json;

constexpr char kMagic[] = "ECD1";
constexpr uint8_t kProbe = 1, kBeacon = 2, kDelta = 3;

struct Options {
  std::string group = "239.255.83.83:8083";
  std::string interface_address;
  int64_t count = 20000;
  double seconds = 10;
  double capture_seconds = 2;
  uint64_t seed = 0;
};

Result<sockaddr_in> parseAddrPort(const std::string& s, const char* what) {
  auto colon = s.rfind(':');
  sockaddr_in a{};
  a.sin_family = AF_INET;
  int port = 0;
  try {
    port = colon == std::string::npos ? -1 : std::stoi(s.substr(colon + 1));
  } catch (const std::exception&) {
    port = -1;
  }
  if (colon == std::string::npos || port < 1 || port > 65535 ||
      inet_pton(AF_INET, s.substr(0, colon).c_str(), &a.sin_addr) != 1) {
    return Status::invalidArgument(std::string(what) + ": '" + s +
                                   "' is not an IPv4 address:port (port 1..65535)");
  }
  a.sin_port = htons(static_cast<uint16_t>(port));
  return a;
}

std::string frame(uint8_t type, const std::string& body, uint8_t reserved = 0) {
  std::string out(kMagic, 4);
  out.push_back(static_cast<char>(type));
  out.push_back(static_cast<char>(reserved));
  out.push_back(static_cast<char>((body.size() >> 8) & 0xff));
  out.push_back(static_cast<char>(body.size() & 0xff));
  return out + body;
}

std::string signedDatagram(uint8_t type, const std::string& body, const NodeIdentity& key) {
  std::string f = frame(type, body);
  return f + key.sign(f);
}

class Flood {
 public:
  Flood(const Options& o, int sock, sockaddr_in group, std::vector<NodeIdentity> keys)
      : o_(o), sock_(sock), group_(group), keys_(std::move(keys)), rng_(o.seed) {}

  void setCaptured(std::string beacon) { captured_ = std::move(beacon); }

  void run() {
    const auto start = std::chrono::steady_clock::now();
    const auto limit = std::chrono::duration<double>(o_.seconds);
    size_t kind = 0;
    for (int64_t n = 0; n < o_.count; ++n) {
      if (std::chrono::steady_clock::now() - start >= limit) break;
      const auto& [name, make] = kinds_[kind++ % kinds_.size()];
      std::optional<std::string> d = (this->*make)();
      if (!d) continue;  // e.g. no beacon captured to replay
      if (sendto(sock_, d->data(), d->size(), 0, reinterpret_cast<const sockaddr*>(&group_),
                 sizeof(group_)) < 0) {
        ++failed_[name];
      } else {
        ++sent_[name];
      }
    }
    const double took =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    int64_t total = 0;
    for (const auto& [name, n] : sent_) {
      std::printf("sent %-22s %8lld\n", name.c_str(), static_cast<long long>(n));
      total += n;
    }
    for (const auto& [name, n] : failed_) {
      std::printf("send-failed %-15s %8lld\n", name.c_str(), static_cast<long long>(n));
    }
    std::printf("total %lld datagrams in %.2f s%s\n", static_cast<long long>(total), took,
                captured_.empty() ? " (no beacon heard: no replays)" : "");
  }

 private:
  using Maker = std::optional<std::string> (Flood::*)();

  size_t uniform(size_t lo, size_t hi) {
    return std::uniform_int_distribution<size_t>(lo, hi)(rng_);
  }
  std::string randomBytes(size_t n) {
    std::string s(n, '\0');
    for (auto& c : s) c = static_cast<char>(uniform(0, 255));
    return s;
  }
  const NodeIdentity& key() { return keys_[uniform(0, keys_.size() - 1)]; }

  // A beacon as a real node would send it (the fields of the contract), for `key`.
  json beaconOf(const NodeIdentity& k) {
    return {{"id", k.id()},
            {"pub", toHex(k.publicKey())},
            {"cluster", "198.18.0.0/24"},
            {"score", 1},
            {"members", 1},
            {"version", 1},
            {"endpoint", "198.18.0.250:8083"},
            {"boot", toHex(randomBytes(8))},
            {"seq", static_cast<int64_t>(uniform(1, 1000))}};
  }

  std::optional<std::string> randomDatagram() { return randomBytes(uniform(0, 1500)); }

  std::optional<std::string> truncatedHeader() {
    std::string f = frame(kBeacon, "{}");
    return f.substr(0, uniform(0, 7));
  }

  std::optional<std::string> badMagicTypeReserved() {
    std::string d = signedDatagram(kBeacon, beaconOf(key()).dump(), key());
    switch (uniform(0, 2)) {
      case 0:
        d[uniform(0, 3)] ^= static_cast<char>(uniform(1, 255));
        break;
      case 1:
        d[4] = static_cast<char>(uniform(4, 255));
        break;
      default:
        d[5] = static_cast<char>(uniform(1, 255));
        break;
    }
    return d;
  }

  std::optional<std::string> badLength() {
    std::string body = beaconOf(key()).dump();
    std::string d = signedDatagram(kBeacon, body, key());
    uint16_t len = 0;
    switch (uniform(0, 3)) {
      case 0:
        len = 0xffff;
        break;
      case 1:
        len = static_cast<uint16_t>(body.size() + uniform(1, 200));
        break;
      case 2:
        len = static_cast<uint16_t>(uniform(0, body.size() - 1));
        break;
      default:
        len = 0;
        break;
    }
    d[6] = static_cast<char>(len >> 8);
    d[7] = static_cast<char>(len & 0xff);
    if (uniform(0, 1)) d.resize(uniform(8, d.size()));  // and cut short, sometimes
    return d;
  }

  std::optional<std::string> notJson() {
    static const std::array<const char*, 6> kBodies = {
        "not json at all",  "{\"id\":", "{{{{",
        "\xff\xfe\x00\x01", "[1,2,3",   "{\"id\":\"a\"} trailing"};
    std::string body =
        uniform(0, 1) ? kBodies[uniform(0, kBodies.size() - 1)] : randomBytes(uniform(1, 600));
    return signedDatagram(static_cast<uint8_t>(uniform(kProbe, kBeacon)), body, key());
  }

  std::optional<std::string> wrongTypes() {
    const NodeIdentity& k = key();
    json b = beaconOf(k);
    static const std::array<const char*, 7> kFields = {"score",    "members", "version", "cluster",
                                                       "endpoint", "seq",     "boot"};
    static const std::array<json (*)(), 6> kValues = {[] { return json("a string"); },
                                                      [] {
                                                        return json::array({1, 2});
                                                      },
                                                      [] {
                                                        return json::object({{"x", 1}});
                                                      },
                                                      [] { return json(nullptr); },
                                                      [] { return json(true); },
                                                      [] { return json(-1.5); }};
    for (size_t i = uniform(1, 3); i > 0; --i) {
      b[kFields[uniform(0, kFields.size() - 1)]] = kValues[uniform(0, kValues.size() - 1)]();
    }
    if (uniform(0, 4) == 0) b.erase("cluster");
    return signedDatagram(kBeacon, b.dump(), k);
  }

  std::optional<std::string> hugeNumbers() {
    const NodeIdentity& k = key();
    std::string body = beaconOf(k).dump();
    static const std::array<const char*, 6> kNumbers = {"1e400",
                                                        "-1e400",
                                                        "18446744073709551616",
                                                        "-9223372036854775809",
                                                        "99999999999999999999999999999999999999",
                                                        "9223372036854775807"};
    // Splice raw number text in: nlohmann would not emit these.
    std::string field = uniform(0, 1) ? "\"score\":1" : "\"version\":1";
    auto at = body.find(field);
    if (at != std::string::npos) {
      body.replace(at + field.size() - 1, 1, kNumbers[uniform(0, kNumbers.size() - 1)]);
    }
    return signedDatagram(kBeacon, body, k);
  }

  std::optional<std::string> deepNesting() {
    const NodeIdentity& k = key();
    size_t depth = uniform(100, 600);
    std::string nest = std::string(depth, '[') + "1" + std::string(depth, ']');
    if (uniform(0, 1)) nest = std::string(depth, '[');  // and unterminated
    std::string body = "{\"id\":\"" + k.id() + "\",\"pub\":\"" + toHex(k.publicKey()) +
                       "\",\"cluster\":" + nest + "}";
    if (body.size() > 1300) body.resize(1300);
    return signedDatagram(kBeacon, body, k);
  }

  // The id of one key, the public key and signature of another.
  std::optional<std::string> idNotOfKey() {
    const NodeIdentity& a = keys_[0];
    const NodeIdentity& b = keys_[1 + uniform(0, keys_.size() - 2)];
    json beacon = beaconOf(b);
    beacon["id"] = a.id();
    return signedDatagram(kBeacon, beacon.dump(), b);
  }

  // Claims to be key a (id and pub match) but is signed by key b.
  std::optional<std::string> signedByOther() {
    const NodeIdentity& a = keys_[0];
    const NodeIdentity& b = keys_[1 + uniform(0, keys_.size() - 2)];
    std::string f = frame(kBeacon, beaconOf(a).dump());
    return f + (uniform(0, 3) ? b.sign(f) : randomBytes(64));
  }

  // Signature and id are right; the fields are not values any node could have.
  std::optional<std::string> garbageFields() {
    const NodeIdentity& k = key();
    json b = beaconOf(k);
    switch (uniform(0, 5)) {
      case 0:
        b["endpoint"] = "999.18.0.1:99999";
        break;
      case 1:
        b["cluster"] = "not a prefix";
        break;
      case 2:
        b["score"] = -7;
        break;
      case 3:
        b["members"] = -1;
        break;
      case 4:
        b["boot"] = "zz-not-hex";
        break;
      default:
        b["id"] = "0123";
        break;  // wrong length: cannot derive from any key
    }
    if (uniform(0, 1)) b["extra"] = std::string(uniform(1, 500), 'x');
    return signedDatagram(static_cast<uint8_t>(uniform(kProbe, kBeacon)), b.dump(), k);
  }

  std::optional<std::string> randomDelta() {
    std::string body = randomBytes(16) + randomBytes(4) + randomBytes(uniform(0, 900));
    return signedDatagram(kDelta, body, key());
  }

  std::optional<std::string> oversized() {
    std::string body = beaconOf(key()).dump();
    body.append(uniform(1400, 1430) - body.size(), ' ');
    return signedDatagram(kBeacon, body, key());
  }

  std::optional<std::string> replay() {
    if (captured_.empty()) return std::nullopt;
    std::string d = captured_;
    if (uniform(0, 1)) d[uniform(8, d.size() - 1)] ^= static_cast<char>(uniform(1, 255));
    return d;
  }

  const Options& o_;
  int sock_;
  sockaddr_in group_;
  std::vector<NodeIdentity> keys_;
  std::mt19937_64 rng_;
  std::string captured_;
  std::map<std::string, int64_t> sent_, failed_;
  const std::vector<std::pair<std::string, Maker>> kinds_ = {
      {"random-bytes", &Flood::randomDatagram},
      {"truncated-header", &Flood::truncatedHeader},
      {"bad-magic-type", &Flood::badMagicTypeReserved},
      {"bad-length", &Flood::badLength},
      {"not-json", &Flood::notJson},
      {"wrong-types", &Flood::wrongTypes},
      {"huge-numbers", &Flood::hugeNumbers},
      {"deep-nesting", &Flood::deepNesting},
      {"id-not-of-key", &Flood::idNotOfKey},
      {"signed-by-other", &Flood::signedByOther},
      {"garbage-fields", &Flood::garbageFields},
      {"random-delta", &Flood::randomDelta},
      {"oversized", &Flood::oversized},
      {"replay", &Flood::replay}};
};

// Joins the group on the interface with `local` and waits up to `seconds` for a beacon
// from someone else; returns it, or "" when none came.
std::string captureBeacon(const sockaddr_in& group, const in_addr& local, double seconds) {
  if (seconds <= 0) return {};
  int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (s < 0) return {};
  int one = 1;
  setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  sockaddr_in bind_to{};
  bind_to.sin_family = AF_INET;
  bind_to.sin_port = group.sin_port;
  bind_to.sin_addr = group.sin_addr;
  ip_mreq m{};
  m.imr_multiaddr = group.sin_addr;
  m.imr_interface = local;
  std::string found;
  if (bind(s, reinterpret_cast<sockaddr*>(&bind_to), sizeof(bind_to)) == 0 &&
      setsockopt(s, IPPROTO_IP, IP_ADD_MEMBERSHIP, &m, sizeof(m)) == 0) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
    std::string buf(2048, '\0');
    while (found.empty()) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) break;
      pollfd p{s, POLLIN, 0};
      if (poll(&p, 1, static_cast<int>(left.count())) <= 0) break;
      sockaddr_in from{};
      socklen_t fl = sizeof(from);
      ssize_t n = recvfrom(s, buf.data(), buf.size(), 0, reinterpret_cast<sockaddr*>(&from), &fl);
      if (n > 8 && buf.compare(0, 4, kMagic) == 0 && static_cast<uint8_t>(buf[4]) == kBeacon &&
          from.sin_addr.s_addr != local.s_addr) {
        found.assign(buf.data(), static_cast<size_t>(n));
      }
    }
  }
  close(s);
  return found;
}

int run(int argc, char** argv) {
  Options o;
  CLI::App app{"Sends malformed and forged discovery datagrams to a multicast group"};
  app.add_option("--group", o.group, "multicast group address:port")->capture_default_str();
  app.add_option("--interface-address", o.interface_address,
                 "IPv4 address of the interface to send from")
      ->required();
  app.add_option("--count", o.count, "datagrams to send at most")
      ->check(CLI::Range(int64_t{1}, int64_t{10000000}))
      ->capture_default_str();
  app.add_option("--seconds", o.seconds, "seconds to send for at most")
      ->check(CLI::Range(0.0, 3600.0))
      ->capture_default_str();
  app.add_option("--capture-seconds", o.capture_seconds,
                 "seconds to listen for a real beacon to replay first (0 = no replays)")
      ->check(CLI::Range(0.0, 60.0))
      ->capture_default_str();
  app.add_option("--seed", o.seed, "random seed (0 = from the clock)");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 2;
  }
  if (o.seed == 0)
    o.seed = static_cast<uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count());

  auto group = parseAddrPort(o.group, "--group");
  if (!group) {
    std::fprintf(stderr, "edge-packet-flood: %s\n", group.status().message().c_str());
    return 2;
  }
  if (!IN_MULTICAST(ntohl(group->sin_addr.s_addr))) {
    std::fprintf(stderr,
                 "edge-packet-flood: --group: '%s' is not a multicast address (224.0.0.0/4)\n",
                 o.group.c_str());
    return 2;
  }
  in_addr local{};
  if (inet_pton(AF_INET, o.interface_address.c_str(), &local) != 1) {
    std::fprintf(stderr, "edge-packet-flood: --interface-address: '%s' is not an IPv4 address\n",
                 o.interface_address.c_str());
    return 2;
  }

  std::vector<NodeIdentity> keys;
  for (int i = 0; i < 4; ++i) {
    auto k = NodeIdentity::generate();
    if (!k) {
      std::fprintf(stderr, "edge-packet-flood: key generation: %s\n",
                   k.status().toString().c_str());
      return 2;
    }
    keys.push_back(std::move(*k));
  }

  std::string captured = captureBeacon(*group, local, o.capture_seconds);

  int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  sockaddr_in src{};
  src.sin_family = AF_INET;
  src.sin_addr = local;
  unsigned char ttl = 1, loop = 0;
  if (s < 0 || bind(s, reinterpret_cast<sockaddr*>(&src), sizeof(src)) != 0 ||
      setsockopt(s, IPPROTO_IP, IP_MULTICAST_IF, &local, sizeof(local)) != 0 ||
      setsockopt(s, IPPROTO_IP, IP_MULTICAST_TTL, &ttl, sizeof(ttl)) != 0 ||
      setsockopt(s, IPPROTO_IP, IP_MULTICAST_LOOP, &loop, sizeof(loop)) != 0) {
    std::fprintf(stderr, "edge-packet-flood: cannot send from %s: %s\n",
                 o.interface_address.c_str(), Status::fromErrno(errno, "socket").message().c_str());
    if (s >= 0) close(s);
    return 2;
  }
  Flood f(o, s, *group, std::move(keys));
  f.setCaptured(std::move(captured));
  f.run();
  close(s);
  return 0;
}

}  // namespace
}  // namespace edge::flood

int main(int argc, char** argv) {
  return edge::flood::run(argc, argv);
}
