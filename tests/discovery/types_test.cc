// The JSON forms of discovery: profiles as peers send them (strict validation, errors
// naming the field) and the snapshot the node API answers.
#include "discovery/types.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <functional>
#include <limits>
#include <random>

namespace edge::discovery {
namespace {

using nlohmann::json;
using ::testing::HasSubstr;
using ::testing::Not;

NodeProfile sampleProfile() {
  NodeProfile p;
  p.node_id = "3f2a9c01d4e5b6a7";
  p.public_key = std::string(32, '\x11');
  p.name = "node-b";
  p.seq = 7;
  p.boot_id = "0c6f7a1e-2b3c-4d5e-8f90-112233445566";
  p.started_at = 1'800'000'000;
  p.cpus = 4;
  p.memory_bytes = int64_t{8} << 30;
  p.storage_free_bytes = int64_t{100} << 30;
  p.os = "linux";
  p.os_release = "Debian GNU/Linux 12 (bookworm)";
  p.arch = "x86_64";
  p.runtime = "light";
  p.power = "battery";
  p.persistent = false;
  p.addresses = {{"eth0", "198.18.0.12", 24}, {"eth1", "198.19.1.12", 16}};
  p.endpoint = "198.18.0.12:8083";
  p.public_address = "198.18.200.1";
  p.services = {"hello", "web"};
  p.account_id = "acme";
  p.signature = std::string(64, '\xab');
  return p;
}

// The error message of profileFromJson(j), "" when it parses.
std::string errorOf(const json& j) {
  auto r = profileFromJson(j);
  return r.isOk() ? "" : r.status().message();
}

json sampleJson() {
  return profileToJson(sampleProfile());
}

TEST(ProfileJsonTest, RoundTripKeepsEveryField) {
  NodeProfile p = sampleProfile();
  json j = profileToJson(p);
  EXPECT_EQ(j["public_key"], std::string(64, '1'));
  EXPECT_EQ(j["signature"].get<std::string>(), [] {
    std::string s;
    for (int i = 0; i < 64; ++i) s += "ab";
    return s;
  }());
  EXPECT_EQ(j["addresses"][1],
            (json{{"interface", "eth1"}, {"address", "198.19.1.12"}, {"prefix_len", 16}}));
  auto back = profileFromJson(json::parse(j.dump()));
  ASSERT_TRUE(back.isOk()) << back.status().toString();
  EXPECT_EQ(profileToJson(*back), j);
  EXPECT_EQ(back->public_key, p.public_key);
  EXPECT_EQ(back->signature, p.signature);
  EXPECT_EQ(back->addresses.size(), 2u);
  EXPECT_EQ(back->addresses[1].prefix_len, 16);
  EXPECT_EQ(back->power, "battery");
  EXPECT_FALSE(back->persistent);
  EXPECT_EQ(back->services, p.services);
}

TEST(ProfileJsonTest, KeysAreTheStructMemberNames) {
  json j = sampleJson();
  std::vector<std::string> keys;
  for (auto it = j.begin(); it != j.end(); ++it) keys.push_back(it.key());
  EXPECT_EQ(keys,
            (std::vector<std::string>{
                "account_id",        "addresses",    "arch",     "boot_id",        "cpus",
                "endpoint",          "memory_bytes", "name",     "node_id",        "os",
                "os_release",        "persistent",   "power",    "public_address", "public_key",
                "runtime",           "seq",          "services", "signature",      "started_at",
                "storage_free_bytes"}));
}

// The placement fields (issue 15) are signed and announced like the rest, and appear only
// when set, so a profile that does not use them keeps the JSON it had before them.
TEST(ProfileJsonTest, PlacementFieldsRoundTripAndAppearOnlyWhenSet) {
  NodeProfile p = sampleProfile();
  std::string before = profileSigningBytes(p);
  EXPECT_FALSE(profileToJson(p).contains("labels"));
  EXPECT_FALSE(profileToJson(p).contains("allocatable_cpu_millis"));
  EXPECT_FALSE(profileToJson(p).contains("allocatable_memory_bytes"));
  p.labels = {{"zone", "eu-west/2"}, {"gpu", ""}, {"example.com/tier", "edge"}};
  p.allocatable_cpu_millis = 3500;
  p.allocatable_memory_bytes = int64_t{6} << 30;
  json j = profileToJson(p);
  EXPECT_EQ(j["labels"], (json{{"zone", "eu-west/2"}, {"gpu", ""}, {"example.com/tier", "edge"}}));
  EXPECT_EQ(j["allocatable_cpu_millis"], 3500);
  EXPECT_EQ(j["allocatable_memory_bytes"], int64_t{6} << 30);
  auto back = profileFromJson(json::parse(j.dump()));
  ASSERT_TRUE(back.isOk()) << back.status().toString();
  EXPECT_EQ(back->labels, p.labels);
  EXPECT_EQ(back->allocatable_cpu_millis, 3500);
  EXPECT_EQ(back->allocatable_memory_bytes, int64_t{6} << 30);
  EXPECT_EQ(profileToJson(*back), j);
  // Signed: changing a label changes the signing bytes.
  std::string with = profileSigningBytes(p);
  EXPECT_NE(with, before);
  p.labels["zone"] = "eu-west/3";
  EXPECT_NE(profileSigningBytes(p), with);
  // 64 labels and the largest values are allowed.
  p.labels.clear();
  for (int i = 0; i < 64; ++i) p.labels["k" + std::to_string(i)] = std::string(253, 'v');
  p.labels[std::string(63, 'K')] = "";
  p.labels.erase("k0");
  p.allocatable_cpu_millis = 4'096'000;
  p.allocatable_memory_bytes = std::numeric_limits<int64_t>::max();
  EXPECT_TRUE(profileFromJson(profileToJson(p)).isOk());
  EXPECT_TRUE(validateProfile(p).isOk());
}

TEST(ProfileJsonTest, ValidateProfileChecksTheStructItself) {
  NodeProfile p = sampleProfile();
  EXPECT_TRUE(validateProfile(p).isOk()) << validateProfile(p).toString();
  p.public_key = "short";
  EXPECT_THAT(validateProfile(p).message(),
              HasSubstr("profile.public_key: expected 32 bytes, got 5"));
  p = sampleProfile();
  p.signature = "x";
  EXPECT_THAT(validateProfile(p).message(),
              HasSubstr("profile.signature: expected 64 bytes or none, got 1"));
  p = sampleProfile();
  p.cpus = -1;
  p.name = std::string(300, 'n');
  // The first field in order wins.
  EXPECT_THAT(validateProfile(p).message(), HasSubstr("profile.name: expected at most 253"));
  p = sampleProfile();
  p.addresses[1].prefix_len = 33;
  EXPECT_THAT(validateProfile(p).message(),
              HasSubstr("profile.addresses[1].prefix_len: expected 0..32, got 33"));
}

TEST(ProfileJsonTest, UnsignedProfileHasNoSignatureAndReadsBack) {
  NodeProfile p = sampleProfile();
  p.signature.clear();
  json j = profileToJson(p);
  EXPECT_FALSE(j.contains("signature"));
  auto back = profileFromJson(j);
  ASSERT_TRUE(back.isOk()) << back.status().toString();
  EXPECT_TRUE(back->signature.empty());
  j["signature"] = "";
  EXPECT_TRUE(profileFromJson(j).isOk());
  j["signature"] = nullptr;
  EXPECT_TRUE(profileFromJson(j).isOk());
}

TEST(ProfileJsonTest, MissingOptionalFieldsTakeDefaultsAndUnknownKeysAreIgnored) {
  json j{{"node_id", "0123456789abcdef"},
         {"public_key", std::string(64, 'f')},
         {"name", "n1"},
         {"seq", 1},
         {"started_at", 5},
         {"endpoint", "198.18.0.11:8083"},
         {"future_field", {{"anything", [] {
                              return json::array({1, 2});
                            }()}}}};
  auto p = profileFromJson(j);
  ASSERT_TRUE(p.isOk()) << p.status().toString();
  EXPECT_EQ(p->power, "mains");
  EXPECT_TRUE(p->persistent);
  EXPECT_EQ(p->cpus, 0);
  EXPECT_TRUE(p->addresses.empty());
}

TEST(ProfileJsonTest, SigningBytesAreCanonicalAndExcludeTheSignature) {
  NodeProfile p = sampleProfile();
  std::string bytes = profileSigningBytes(p);
  EXPECT_THAT(bytes, Not(HasSubstr("signature")));
  EXPECT_EQ(bytes.front(), '{');
  EXPECT_THAT(bytes, HasSubstr("\"cpus\":4,\"endpoint\":"));  // compact, keys sorted
  // The same profile however it was built, and whatever its signature.
  p.signature = "other";
  EXPECT_EQ(profileSigningBytes(p), bytes);
  auto back = profileFromJson(json::parse(profileToJson(p).dump(2)));
  ASSERT_FALSE(back.isOk());  // "other" is not 64 bytes of signature
  p.signature.clear();
  auto again = profileFromJson(json::parse(profileToJson(p).dump(4)));
  ASSERT_TRUE(again.isOk());
  EXPECT_EQ(profileSigningBytes(*again), bytes);
  // Any change of a signed field changes the bytes.
  p.cpus = 5;
  EXPECT_NE(profileSigningBytes(p), bytes);
}

TEST(ProfileJsonTest, SigningBytesSurviveInvalidUtf8InALocalName) {
  NodeProfile p = sampleProfile();
  p.name = "bad\xff";
  std::string bytes;
  EXPECT_NO_THROW(bytes = profileSigningBytes(p));
  EXPECT_THAT(bytes, HasSubstr("bad"));
}

struct BadCase {
  std::string what;
  std::function<void(json&)> mutate;
  std::string message;
};

TEST(ProfileJsonTest, EveryValidationErrorNamesTheFieldAndWhatIsAllowed) {
  std::string big(2000, 'x');
  std::vector<BadCase> cases = {
      {"node_id missing", [](json& j) { j.erase("node_id"); }, "profile.node_id: required"},
      {"node_id short", [](json& j) { j["node_id"] = "abc"; },
       "profile.node_id: expected 16 lower-case hex characters, got \"abc\" (3 characters)"},
      {"node_id upper", [](json& j) { j["node_id"] = "3F2A9C01D4E5B6A7"; },
       "profile.node_id: expected 16 lower-case hex"},
      {"node_id type", [](json& j) { j["node_id"] = 12; },
       "profile.node_id: expected a string, got number"},
      {"public_key missing", [](json& j) { j.erase("public_key"); },
       "profile.public_key: required"},
      {"public_key short", [](json& j) { j["public_key"] = "abcd"; },
       "profile.public_key: expected 64 lower-case hex characters"},
      {"public_key non-hex", [](json& j) { j["public_key"] = std::string(64, 'g'); },
       "profile.public_key: expected 64 lower-case hex"},
      {"signature short", [](json& j) { j["signature"] = "ab"; },
       "profile.signature: expected 128 lower-case hex characters"},
      {"signature type", [](json& j) { j["signature"] = json::array(); },
       "profile.signature: expected a string, got array"},
      {"name missing", [](json& j) { j.erase("name"); }, "profile.name: required"},
      {"name long", [](json& j) { j["name"] = std::string(254, 'n'); },
       "profile.name: expected at most 253 bytes, got 254"},
      {"name escape", [](json& j) { j["name"] = "evil\x1b[2J"; },
       "profile.name: control characters are not allowed, got \"evil?[2J\""},
      {"seq negative", [](json& j) { j["seq"] = -1; }, "profile.seq: expected 0.., got -1"},
      {"seq float", [](json& j) { j["seq"] = 1.5; }, "profile.seq: expected an integer, got 1.5"},
      {"seq string", [](json& j) { j["seq"] = "7"; },
       "profile.seq: expected an integer, got string"},
      {"seq huge", [](json& j) { j["seq"] = uint64_t{18446744073709551615u}; },
       "profile.seq: expected 0.., got 18446744073709551615"},
      {"started_at missing", [](json& j) { j.erase("started_at"); },
       "profile.started_at: required"},
      {"started_at bool", [](json& j) { j["started_at"] = true; },
       "profile.started_at: expected an integer, got boolean"},
      {"cpus big", [](json& j) { j["cpus"] = 4097; }, "profile.cpus: expected 0..4096, got 4097"},
      {"cpus negative", [](json& j) { j["cpus"] = -2; }, "profile.cpus: expected 0..4096, got -2"},
      {"memory negative", [](json& j) { j["memory_bytes"] = -5; },
       "profile.memory_bytes: expected 0.., got -5"},
      {"storage object", [](json& j) { j["storage_free_bytes"] = json::object(); },
       "profile.storage_free_bytes: expected an integer, got object"},
      {"boot_id long", [big](json& j) { j["boot_id"] = big; },
       "profile.boot_id: expected at most 1024 bytes, got 2000"},
      {"os type", [](json& j) { j["os"] = false; }, "profile.os: expected a string, got boolean"},
      {"os_release newline", [](json& j) { j["os_release"] = "a\nb"; },
       "profile.os_release: control characters are not allowed"},
      {"arch long", [big](json& j) { j["arch"] = big; }, "profile.arch: expected at most 1024"},
      {"runtime type", [](json& j) { j["runtime"] = 1; },
       "profile.runtime: expected a string, got number"},
      {"power", [](json& j) { j["power"] = "solar"; },
       "profile.power: expected \"mains\" or \"battery\", got \"solar\""},
      {"persistent", [](json& j) { j["persistent"] = "yes"; },
       "profile.persistent: expected true or false, got string"},
      {"addresses type", [](json& j) { j["addresses"] = "eth0"; },
       "profile.addresses: expected an array, got string"},
      {"addresses too many",
       [](json& j) {
         j["addresses"] = json::array();
         for (int i = 0; i < 65; ++i)
           j["addresses"].push_back(
               json{{"interface", "eth0"}, {"address", "198.18.0.1"}, {"prefix_len", 24}});
       },
       "profile.addresses: expected at most 64 entries, got 65"},
      {"address entry type", [](json& j) { j["addresses"][1] = 5; },
       "profile.addresses[1]: expected an object, got number"},
      {"address prefix", [](json& j) { j["addresses"][1]["prefix_len"] = 40; },
       "profile.addresses[1].prefix_len: expected 0..32, got 40"},
      {"address prefix missing", [](json& j) { j["addresses"][0].erase("prefix_len"); },
       "profile.addresses[0].prefix_len: required"},
      {"address not ipv4", [](json& j) { j["addresses"][0]["address"] = "fe80::1"; },
       "profile.addresses[0].address: expected an IPv4 address, got \"fe80::1\""},
      {"address interface empty", [](json& j) { j["addresses"][0]["interface"] = ""; },
       "profile.addresses[0].interface: must not be empty"},
      {"address interface long",
       [](json& j) { j["addresses"][0]["interface"] = "a-very-long-interface"; },
       "profile.addresses[0].interface: expected at most 15 bytes, got 21"},
      {"endpoint missing", [](json& j) { j.erase("endpoint"); }, "profile.endpoint: required"},
      {"endpoint no port", [](json& j) { j["endpoint"] = "198.18.0.12"; },
       "profile.endpoint: expected an IPv4 address and a port 1..65535"},
      {"endpoint port 0", [](json& j) { j["endpoint"] = "198.18.0.12:0"; },
       "profile.endpoint: expected an IPv4 address and a port"},
      {"endpoint port big", [](json& j) { j["endpoint"] = "198.18.0.12:65536"; },
       "profile.endpoint: expected an IPv4 address and a port"},
      {"endpoint name", [](json& j) { j["endpoint"] = "node-b:8083"; },
       "profile.endpoint: expected an IPv4 address and a port 1..65535 (\"198.18.0.2:8083\"), "
       "got \"node-b:8083\""},
      {"public_address", [](json& j) { j["public_address"] = "not an address!"; },
       "profile.public_address: expected an IP address or a host name"},
      {"services type", [](json& j) { j["services"] = json::object(); },
       "profile.services: expected an array, got object"},
      {"services too many",
       [](json& j) {
         j["services"] = json::array();
         for (int i = 0; i < 257; ++i) j["services"].push_back("s" + std::to_string(i));
       },
       "profile.services: expected at most 256 entries, got 257"},
      {"service type", [](json& j) { j["services"][1] = 3; },
       "profile.services[1]: expected a string, got number"},
      {"service long", [](json& j) { j["services"][0] = std::string(254, 's'); },
       "profile.services[0]: expected a service name of 1..253 printable bytes"},
      {"service empty", [](json& j) { j["services"][0] = ""; },
       "profile.services[0]: expected a service name of 1..253"},
      {"account type", [](json& j) { j["account_id"] = 5; },
       "profile.account_id: expected a string, got number"},
      {"labels type", [](json& j) { j["labels"] = json::array(); },
       "profile.labels: expected an object of strings, got array"},
      {"labels too many",
       [](json& j) {
         for (int i = 0; i < 65; ++i) j["labels"]["k" + std::to_string(i)] = "v";
       },
       "profile.labels: expected at most 64 entries, got 65"},
      {"label value type",
       [](json& j) {
         j["labels"] = json{{"zone", 3}};
       },
       "profile.labels[\"zone\"]: expected a string, got number"},
      {"label key charset",
       [](json& j) {
         j["labels"] = json{{"bad key", "v"}};
       },
       "profile.labels[\"bad key\"]: expected a key of 1..63 characters from a-z A-Z 0-9 . _ / "
       "-, got \"bad key\" (7 bytes)"},
      {"label key empty",
       [](json& j) {
         j["labels"] = json{{"", "v"}};
       },
       "profile.labels[\"\"]: expected a key of 1..63"},
      {"label key long",
       [](json& j) {
         j["labels"] = json{{std::string(64, 'k'), "v"}};
       },
       "expected a key of 1..63 characters"},
      {"label value long",
       [](json& j) {
         j["labels"] = json{{"zone", std::string(254, 'v')}};
       },
       "profile.labels[\"zone\"]: expected a value of at most 253 printable bytes"},
      {"label value control",
       [](json& j) {
         j["labels"] = json{{"zone", "a\tb"}};
       },
       "profile.labels[\"zone\"]: expected a value of at most 253 printable bytes, got \"a?b\""},
      {"cpu millis big", [](json& j) { j["allocatable_cpu_millis"] = 4'096'001; },
       "profile.allocatable_cpu_millis: expected 0..4096000, got 4096001"},
      {"cpu millis negative", [](json& j) { j["allocatable_cpu_millis"] = -1; },
       "profile.allocatable_cpu_millis: expected 0..4096000, got -1"},
      {"allocatable memory type", [](json& j) { j["allocatable_memory_bytes"] = "1G"; },
       "profile.allocatable_memory_bytes: expected an integer, got string"},
      {"allocatable memory negative", [](json& j) { j["allocatable_memory_bytes"] = -1; },
       "profile.allocatable_memory_bytes: expected 0.., got -1"},
      {"location range",
       [](json& j) {
         j["location"] = json{{"lat", 91}, {"lon", 0}};
       },
       "profile.location: lat must lie in -90..90 and lon in -180..180"},
  };
  for (const auto& c : cases) {
    json j = sampleJson();
    c.mutate(j);
    std::string err;
    ASSERT_NO_THROW(err = errorOf(j)) << c.what;
    EXPECT_THAT(err, HasSubstr(c.message)) << c.what;
    auto r = profileFromJson(j);
    ASSERT_FALSE(r.isOk()) << c.what;
    EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument) << c.what;
  }
}

TEST(ProfileJsonTest, NonObjectsAreRefused) {
  for (const json& j : {json(nullptr), json(5), json("x"), json::array({1}), json(true)}) {
    EXPECT_THAT(errorOf(j), HasSubstr("profile: expected an object, got ")) << j.dump();
  }
}

// Every field replaced by every kind of value, and random JSON: never a throw, never OK
// for a wrong type.
TEST(ProfileJsonTest, HostileJsonNeverThrows) {
  std::vector<json> values = {nullptr,
                              true,
                              -1,
                              uint64_t{18446744073709551615u},
                              int64_t{-9223372036854775807 - 1},
                              1e308,
                              -0.0,
                              "",
                              std::string(100000, 'z'),
                              json::array(),
                              json::array({json::array({json::array()})}),
                              json::object({{"a", json::object()}})};
  json huge = json::array();
  for (int i = 0; i < 20000; ++i) huge.push_back(i);
  values.push_back(huge);
  json base = sampleJson();
  for (auto it = base.begin(); it != base.end(); ++it) {
    for (const auto& v : values) {
      json j = base;
      j[it.key()] = v;
      EXPECT_NO_THROW((void)profileFromJson(j)) << it.key() << " = " << v.dump().substr(0, 80);
    }
  }
  for (const auto& v : values) {
    json j = base;
    j["addresses"] = json::array({v});
    EXPECT_NO_THROW((void)profileFromJson(j));
    j["addresses"] = json::array({json{{"interface", v}, {"address", v}, {"prefix_len", v}}});
    EXPECT_FALSE(profileFromJson(j).isOk());
    j = base;
    j["services"] = json::array({v});
    EXPECT_NO_THROW((void)profileFromJson(j));
  }
  std::mt19937 rng(42);
  for (int round = 0; round < 300; ++round) {
    json j = base;
    for (auto it = base.begin(); it != base.end(); ++it)
      if (rng() % 3 == 0) j[it.key()] = values[rng() % values.size()];
    EXPECT_NO_THROW((void)profileFromJson(j));
  }
}

Member sampleMember() {
  Member m;
  m.profile = sampleProfile();
  m.roles = {kRoleSupernode, kRoleProxy};
  m.score = 87;
  m.joined_at = 1'800'000'010;
  return m;
}

TEST(SnapshotJsonTest, MemberCarriesProfileWithoutSignatureAndUptime) {
  json j = memberToJson(sampleMember(), 1'800'000'100);
  EXPECT_EQ(j["node_id"], "3f2a9c01d4e5b6a7");
  EXPECT_EQ(j["name"], "node-b");
  EXPECT_EQ(j["endpoint"], "198.18.0.12:8083");
  EXPECT_EQ(j["roles"], json::array({"supernode", "proxy"}));
  EXPECT_EQ(j["score"], 87);
  EXPECT_EQ(j["joined_at"], 1'800'000'010);
  EXPECT_EQ(j["uptime_seconds"], 100);
  EXPECT_FALSE(j["profile"].contains("signature"));
  EXPECT_EQ(j["profile"]["cpus"], 4);
  // A clock behind the node's start reads as 0, not negative.
  EXPECT_EQ(memberToJson(sampleMember(), 5)["uptime_seconds"], 0);
}

TEST(SnapshotJsonTest, SnapshotHasClustersMembersBlacklistAndCounters) {
  ClusterSnapshot s;
  s.node_id = "3f2a9c01d4e5b6a7";
  s.node_name = "node-b";
  s.enabled = true;
  ClusterView c;
  c.interface = "eth0";
  c.cluster_id = "198.18.0.0/24";
  c.state = "supernode";
  c.supernode_id = "3f2a9c01d4e5b6a7";
  c.version = 12;
  c.supernode_since = 1'800'000'020;
  c.members = {sampleMember()};
  c.blacklist = {{"00000000000000ff", "198.18.0.15", "endpoint 198.18.0.15:9 does not answer",
                  1'800'000'050, 1'800'000'650}};
  c.counters.packets_sent = 1;
  c.counters.packets_received = 2;
  c.counters.bytes_sent = 3;
  c.counters.bytes_received = 4;
  c.counters.messages_sent = 5;
  c.counters.messages_received = 6;
  c.counters.dropped_malformed = 7;
  c.counters.dropped_forged = 8;
  c.counters.dropped_blacklisted = 9;
  s.clusters = {c};
  json j = snapshotToJson(s, 1'800'000'100);
  EXPECT_EQ(j["node_id"], "3f2a9c01d4e5b6a7");
  EXPECT_EQ(j["node_name"], "node-b");
  EXPECT_EQ(j["enabled"], true);
  ASSERT_EQ(j["clusters"].size(), 1u);
  const json& cj = j["clusters"][0];
  EXPECT_EQ(cj["interface"], "eth0");
  EXPECT_EQ(cj["cluster_id"], "198.18.0.0/24");
  EXPECT_EQ(cj["state"], "supernode");
  EXPECT_EQ(cj["supernode_id"], "3f2a9c01d4e5b6a7");
  EXPECT_EQ(cj["version"], 12);
  EXPECT_EQ(cj["supernode_since"], 1'800'000'020);
  EXPECT_EQ(cj["members"][0]["uptime_seconds"], 100);
  EXPECT_EQ(cj["blacklist"][0], (json{{"node_id", "00000000000000ff"},
                                      {"address", "198.18.0.15"},
                                      {"reason", "endpoint 198.18.0.15:9 does not answer"},
                                      {"since", 1'800'000'050},
                                      {"until", 1'800'000'650}}));
  EXPECT_EQ(cj["counters"], (json{{"packets_sent", 1},
                                  {"packets_received", 2},
                                  {"bytes_sent", 3},
                                  {"bytes_received", 4},
                                  {"messages_sent", 5},
                                  {"messages_received", 6},
                                  {"dropped_malformed", 7},
                                  {"dropped_forged", 8},
                                  {"dropped_blacklisted", 9}}));
}

TEST(SnapshotJsonTest, DisabledDiscoveryHasNoClusters) {
  json j = snapshotToJson(ClusterSnapshot{});
  EXPECT_EQ(
      j,
      (json{{"node_id", ""}, {"node_name", ""}, {"enabled", false}, {"clusters", json::array()}}));
}

// Two clusters (a host on two links); node-b is in both, node-c only on eth1.
ClusterSnapshot twoClusters() {
  auto member = [](std::string id, std::string name, std::string account) {
    Member m = sampleMember();
    m.profile.node_id = std::move(id);
    m.profile.name = std::move(name);
    m.profile.account_id = std::move(account);
    m.roles = {};
    return m;
  };
  ClusterSnapshot s;
  s.node_id = "000000000000000a";
  s.node_name = "node-a";
  s.enabled = true;
  ClusterView eth0;
  eth0.interface = "eth0";
  eth0.cluster_id = "198.18.0.0/24";
  eth0.members = {member("000000000000000b", "node-b", "acme"),
                  member("000000000000000a", "node-a", "acme")};
  ClusterView eth1;
  eth1.interface = "eth1";
  eth1.cluster_id = "198.19.0.0/24";
  eth1.members = {member("000000000000000c", "node-c", "other"),
                  member("000000000000000b", "node-b", "acme"),
                  member("000000000000000a", "node-a", "acme")};
  s.clusters = {eth0, eth1};
  return s;
}

std::vector<std::string> namesOf(const json& answer) {
  std::vector<std::string> out;
  for (const auto& n : answer["nodes"]) out.push_back(n["name"]);
  return out;
}

TEST(NodesJsonTest, NetworkScopeListsEachNodeOnceWithItsClusters) {
  auto r = nodesToJson(twoClusters(), {}, 1'800'000'100);
  ASSERT_TRUE(r.isOk()) << r.status().toString();
  EXPECT_EQ((*r)["scope"], "network");
  EXPECT_EQ(namesOf(*r), (std::vector<std::string>{"node-a", "node-b", "node-c"}));
  EXPECT_EQ((*r)["nodes"][1]["clusters"], json::array({"198.18.0.0/24", "198.19.0.0/24"}));
  EXPECT_EQ((*r)["nodes"][2]["clusters"], json::array({"198.19.0.0/24"}));
  EXPECT_EQ((*r)["nodes"][0]["uptime_seconds"], 100);
  EXPECT_FALSE((*r)["nodes"][0]["profile"].contains("signature"));
}

TEST(NodesJsonTest, InterfaceNarrowsToOneCluster) {
  auto r = nodesToJson(twoClusters(), {.interface = "eth0"}, 0);
  ASSERT_TRUE(r.isOk());
  EXPECT_EQ(namesOf(*r), (std::vector<std::string>{"node-a", "node-b"}));
  EXPECT_EQ((*r)["nodes"][1]["clusters"], json::array({"198.18.0.0/24"}));
  auto missing = nodesToJson(twoClusters(), {.interface = "wlan0"}, 0);
  EXPECT_EQ(missing.status().code(), StatusCode::kNotFound);
  EXPECT_EQ(missing.status().message(),
            "no cluster on interface \"wlan0\" (clusters on: eth0, eth1)");
}

TEST(NodesJsonTest, AccountScopeDefaultsToThisNodesAccount) {
  auto r = nodesToJson(twoClusters(), {.scope = "account"}, 0);
  ASSERT_TRUE(r.isOk()) << r.status().toString();
  EXPECT_EQ((*r)["account"], "acme");
  EXPECT_EQ(namesOf(*r), (std::vector<std::string>{"node-a", "node-b"}));
  auto other = nodesToJson(twoClusters(), {.scope = "account", .account = "other"}, 0);
  ASSERT_TRUE(other.isOk());
  EXPECT_EQ(namesOf(*other), (std::vector<std::string>{"node-c"}));
}

TEST(NodesJsonTest, AccountScopeWithoutAnyAccountIsA400) {
  ClusterSnapshot s = twoClusters();
  for (auto& c : s.clusters)
    for (auto& m : c.members) m.profile.account_id.clear();
  auto r = nodesToJson(s, {.scope = "account"}, 0);
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(r.status().message(),
            "scope=account needs an account id: configure account_id or pass account=");
}

TEST(NodesJsonTest, UnknownAndUnsupportedScopes) {
  auto r = nodesToJson(twoClusters(), {.scope = "planet"}, 0);
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(r.status().message(), "scope: expected one of network, account; got \"planet\"");
  auto p = nodesToJson(twoClusters(), {.scope = "proximity"}, 0);
  EXPECT_EQ(p.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(p.status().message(), "scope=proximity is not supported: nodes report no location yet");
}

TEST(NodesJsonTest, DisabledDiscoveryListsNoNodes) {
  auto r = nodesToJson(ClusterSnapshot{}, {}, 0);
  ASSERT_TRUE(r.isOk());
  EXPECT_EQ(*r, (json{{"scope", "network"}, {"enabled", false}, {"nodes", json::array()}}));
}

}  // namespace
}  // namespace edge::discovery
