// The binary wire of discovery: profiles as canonical tagged fields (round trips, the
// shared validation, truncation, fields of a later version, signing bytes) and messages
// as MessagePack (caps on size and depth, UTF-8, profiles as binary values).
#include "discovery/wire.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <functional>
#include <iostream>
#include <limits>
#include <random>
#include <utility>
#include <vector>

#include "discovery/profile.h"
#include "identity/identity.h"

namespace edge::discovery {
namespace {

using nlohmann::json;
using ::testing::HasSubstr;
using Fields = std::vector<std::pair<uint64_t, std::string>>;

const identity::NodeIdentity& key() {
  static const identity::NodeIdentity k = *identity::NodeIdentity::generate();
  return k;
}

void sign(NodeProfile* p) {
  p->signature = key().sign(profileSigningBytesV2(*p));
}

// Every field set, none at its default.
NodeProfile fullProfile() {
  NodeProfile p;
  p.public_key = key().publicKey();
  p.node_id = key().id();
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
  p.services = {"hello", "web=/w"};
  p.account_id = "acme";
  p.has_location = true;
  p.latitude = 48.8566;
  p.longitude = -2.3522;
  p.labels = {{"zone", "eu-west/2"}, {"gpu", ""}, {"example.com/tier", "édge"}};
  p.allocatable_cpu_millis = 3500;
  p.allocatable_memory_bytes = int64_t{6} << 30;
  sign(&p);
  return p;
}

// Only what is required.
NodeProfile minimalProfile() {
  NodeProfile p;
  p.public_key = key().publicKey();
  p.node_id = key().id();
  p.endpoint = "198.18.0.2:1";
  return p;
}

// Every field compared: the JSON form (all struct fields but the extensions) and the rest.
void expectSame(const NodeProfile& a, const NodeProfile& b) {
  EXPECT_EQ(profileToJson(a), profileToJson(b));
  EXPECT_EQ(a.wire_extensions, b.wire_extensions);
  EXPECT_EQ(a.has_location, b.has_location);
}

std::string varint(uint64_t v) {
  std::string s;
  while (v >= 0x80) {
    s += static_cast<char>((v & 0x7f) | 0x80);
    v >>= 7;
  }
  s += static_cast<char>(v);
  return s;
}

std::string field(uint64_t tag, std::string_view value) {
  return varint(tag) + varint(value.size()) + std::string(value);
}

// The test's own reading of the format (docs/discovery.md), independent of wire.cc.
Fields split(std::string_view bytes) {
  Fields out;
  size_t i = 1;
  auto read = [&] {
    uint64_t v = 0;
    for (int shift = 0;; shift += 7) {
      unsigned char c = static_cast<unsigned char>(bytes.at(i++));
      v |= uint64_t{c & 0x7fu} << shift;
      if (!(c & 0x80)) return v;
    }
  };
  while (i < bytes.size()) {
    uint64_t tag = read();
    uint64_t len = read();
    out.emplace_back(tag, std::string(bytes.substr(i, len)));
    i += len;
  }
  return out;
}

std::string join(const Fields& fields) {
  std::string out(1, '\x01');
  for (const auto& [tag, value] : fields) out += field(tag, value);
  return out;
}

std::string errorOf(std::string_view bytes) {
  auto r = decodeProfile(bytes);
  return r.isOk() ? "" : r.status().message();
}

// The fields of `p` with `tag`'s value replaced (or added in tag order when absent).
std::string withField(const NodeProfile& p, uint64_t tag, const std::string& value) {
  Fields f = split(encodeProfile(p));
  bool done = false;
  for (auto& [t, v] : f)
    if (t == tag && !done) v = value, done = true;
  if (!done) {
    auto at = f.begin();
    while (at != f.end() && at->first < tag) ++at;
    f.insert(at, {tag, value});
  }
  return join(f);
}

std::string withoutField(const NodeProfile& p, uint64_t tag) {
  Fields f = split(encodeProfile(p));
  Fields out;
  for (auto& e : f)
    if (e.first != tag) out.push_back(e);
  return join(out);
}

TEST(WireProfileTest, RoundTripKeepsEveryField) {
  NodeProfile p = fullProfile();
  std::string bytes = encodeProfile(p);
  EXPECT_EQ(bytes[0], '\x01');
  auto back = decodeProfile(bytes);
  ASSERT_TRUE(back.isOk()) << back.status().toString();
  expectSame(*back, p);
  EXPECT_EQ(back->node_id, key().id());  // derived: node_id is not sent
  EXPECT_EQ(back->labels, p.labels);
  EXPECT_EQ(back->latitude, 48.8566);
  EXPECT_EQ(back->longitude, -2.3522);
  EXPECT_EQ(back->boot_id, p.boot_id);
  EXPECT_EQ(encodeProfile(*back), bytes);
  EXPECT_TRUE(
      identity::verifySignature(back->public_key, profileSigningBytesV2(*back), back->signature));
  // Binary where JSON has hex or text: the key, the signature, the boot id, addresses.
  Fields f = split(bytes);
  std::map<uint64_t, size_t> sizes;
  for (const auto& [tag, value] : f) sizes[tag] = value.size();
  EXPECT_EQ(sizes[1], 32u);    // public key
  EXPECT_EQ(sizes[4], 16u);    // boot id as a UUID
  EXPECT_EQ(sizes[17], 6u);    // endpoint: IPv4 + port
  EXPECT_EQ(sizes[18], 4u);    // public address: IPv4
  EXPECT_EQ(sizes[127], 64u);  // signature, last
  EXPECT_EQ(f.back().first, 127u);
}

TEST(WireProfileTest, MinimalProfileHasOnlyTheRequiredFieldsAndDefaultsReadBack) {
  NodeProfile p = minimalProfile();
  std::string bytes = encodeProfile(p);
  Fields f = split(bytes);
  std::vector<uint64_t> tags;
  for (const auto& e : f) tags.push_back(e.first);
  EXPECT_EQ(tags, (std::vector<uint64_t>{1, 2, 3, 6, 17}));
  auto back = decodeProfile(bytes);
  ASSERT_TRUE(back.isOk()) << back.status().toString();
  expectSame(*back, p);
  EXPECT_EQ(back->power, "mains");
  EXPECT_TRUE(back->persistent);
  EXPECT_FALSE(back->has_location);
  EXPECT_TRUE(back->signature.empty());
  EXPECT_EQ(encodeProfile(*back), bytes);
}

TEST(WireProfileTest, TextFormsWhereBinaryDoesNotFit) {
  NodeProfile p = fullProfile();
  p.boot_id = "not-a-uuid";
  p.public_address = "edge.example.com";
  sign(&p);
  auto back = decodeProfile(encodeProfile(p));
  ASSERT_TRUE(back.isOk()) << back.status().toString();
  EXPECT_EQ(back->boot_id, "not-a-uuid");
  EXPECT_EQ(back->public_address, "edge.example.com");
  p.boot_id = "0C6F7A1E-2B3C-4D5E-8F90-112233445566";  // upper case: kept as text, exactly
  p.public_address = "2001:db8::1";
  back = decodeProfile(encodeProfile(p));
  ASSERT_TRUE(back.isOk()) << back.status().toString();
  EXPECT_EQ(back->boot_id, p.boot_id);
  EXPECT_EQ(back->public_address, "2001:db8::1");
}

TEST(WireProfileTest, LargestValuesRoundTripWithinTheCap) {
  NodeProfile p = fullProfile();
  p.name = std::string(253, 'n');
  p.seq = std::numeric_limits<int64_t>::max();
  p.started_at = std::numeric_limits<int64_t>::max();
  p.cpus = 4096;
  p.memory_bytes = std::numeric_limits<int64_t>::max();
  p.storage_free_bytes = std::numeric_limits<int64_t>::max();
  p.boot_id = std::string(1024, 'b');
  p.os = p.os_release = p.arch = p.runtime = p.account_id = std::string(1024, 'x');
  p.addresses.clear();
  for (int i = 0; i < 64; ++i) p.addresses.push_back({std::string(15, 'i'), "255.255.255.255", 32});
  p.endpoint = "255.255.255.255:65535";
  p.public_address = std::string(253, 'h');
  p.services.clear();
  for (int i = 0; i < 256; ++i) p.services.push_back(std::to_string(i) + std::string(250, 's'));
  p.labels.clear();
  for (int i = 0; i < 64; ++i)
    p.labels[std::to_string(100 + i) + std::string(60, 'k')] = std::string(253, 'v');
  p.latitude = -90;
  p.longitude = 180;
  p.allocatable_cpu_millis = 4'096'000;
  p.allocatable_memory_bytes = std::numeric_limits<int64_t>::max();
  sign(&p);
  std::string bytes = encodeProfile(p);
  EXPECT_LE(bytes.size(), kMaxWireProfile);
  EXPECT_GT(bytes.size(), kMaxWireProfile / 2);  // the cap leaves room, not much more
  std::cout << "a profile at every limit: " << bytes.size() << " bytes\n";
  auto back = decodeProfile(bytes);
  ASSERT_TRUE(back.isOk()) << back.status().toString();
  expectSame(*back, p);
  EXPECT_EQ(encodeProfile(*back), bytes);
}

TEST(WireProfileTest, SigningBytesExcludeTheSignatureAndAreStable) {
  NodeProfile p = fullProfile();
  std::string signing = profileSigningBytesV2(p);
  // The encoding is the signing bytes plus the signature field.
  EXPECT_EQ(encodeProfile(p), signing + field(127, p.signature));
  p.signature = std::string(64, '\x01');
  EXPECT_EQ(profileSigningBytesV2(p), signing);
  p.signature.clear();
  EXPECT_EQ(profileSigningBytesV2(p), signing);
  EXPECT_EQ(encodeProfile(p), signing);
  // Known bytes for a fixed profile: the format must not drift by accident.
  NodeProfile fixed;
  fixed.public_key = std::string(32, '\x11');
  fixed.name = "a";
  fixed.seq = 300;
  fixed.started_at = 1;
  fixed.endpoint = "198.18.0.2:8083";
  fixed.labels = {{"k", "v"}};
  EXPECT_EQ(profileSigningBytesV2(fixed), std::string("\x01\x01\x20", 3) + std::string(32, '\x11') +
                                              std::string("\x02\x01"
                                                          "a"
                                                          "\x03\x02\xac\x02"
                                                          "\x06\x01\x01"
                                                          "\x11\x06\xc6\x12\x00\x02\x1f\x93"
                                                          "\x17\x03\x01"
                                                          "kv",
                                                          23));
  // Any signed field changes them.
  NodeProfile q = fullProfile();
  q.labels["zone"] = "eu-west/3";
  EXPECT_NE(profileSigningBytesV2(q), signing);
}

// A byte changed anywhere either makes the profile undecodable or changes what the
// signature covers: a tampered profile never verifies.
TEST(WireProfileTest, ATamperedByteNeverVerifies) {
  NodeProfile p = fullProfile();
  std::string bytes = encodeProfile(p);
  std::string signing = profileSigningBytesV2(p);
  size_t decoded = 0;
  for (size_t i = 0; i < bytes.size(); ++i) {
    for (unsigned char bit : {0x01, 0x80}) {
      std::string t = bytes;
      t[i] = static_cast<char>(t[i] ^ bit);
      auto r = decodeProfile(t);
      if (!r.isOk()) continue;
      ++decoded;
      if (i < signing.size()) {
        EXPECT_NE(profileSigningBytesV2(*r), signing) << "byte " << i;
      }
      EXPECT_FALSE(
          identity::verifySignature(r->public_key, profileSigningBytesV2(*r), r->signature))
          << "byte " << i;
    }
  }
  EXPECT_GT(decoded, 0u);  // the loop did reach decodable variants
}

// Every prefix of an encoding: never a crash, and whatever decodes is canonical (a prefix
// that ends between fields can be a valid unsigned profile).
TEST(WireProfileTest, EveryTruncationIsSafe) {
  std::string bytes = encodeProfile(fullProfile());
  size_t accepted = 0;
  for (size_t n = 0; n < bytes.size(); ++n) {
    std::string_view cut(bytes.data(), n);
    auto r = decodeProfile(cut);
    if (r.isOk()) {
      ++accepted;
      EXPECT_EQ(encodeProfile(*r), cut) << n;
    } else {
      EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
      EXPECT_FALSE(r.status().message().empty());
    }
  }
  EXPECT_LT(accepted, bytes.size() / 4);
  EXPECT_THAT(errorOf(bytes.substr(0, 4)), HasSubstr("profile.public_key: length 32 runs past "
                                                     "the end (1 bytes left)"));
}

// What a node of a later release adds (a new tag) is skipped by this one, kept, and written
// back: the profile still verifies here and when relayed to a newer node.
TEST(WireProfileTest, FieldsOfALaterVersionAreSkippedKeptAndStillVerify) {
  NodeProfile p = fullProfile();
  p.signature.clear();
  // A newer sender: tags 26 and 40 after the known fields, 300 after the signature. It
  // signs every field but its signature.
  Fields unsigned_fields = split(encodeProfile(p));
  unsigned_fields.emplace_back(26, "future");
  unsigned_fields.emplace_back(40, std::string("\x00\xff", 2));
  unsigned_fields.emplace_back(40, "");  // repeated: allowed for tags this node does not know
  unsigned_fields.emplace_back(300, "after");
  Fields f = unsigned_fields;
  f.insert(f.end() - 1, {127, key().sign(join(unsigned_fields))});
  std::string bytes = join(f);

  auto r = decodeProfile(bytes);
  ASSERT_TRUE(r.isOk()) << r.status().toString();
  EXPECT_EQ(r->name, "node-b");
  EXPECT_EQ(r->wire_extensions, field(26, "future") + field(40, std::string("\x00\xff", 2)) +
                                    field(40, "") + field(300, "after"));
  EXPECT_EQ(encodeProfile(*r), bytes);  // relayed whole
  EXPECT_EQ(profileSigningBytesV2(*r), join(unsigned_fields));
  EXPECT_TRUE(identity::verifySignature(r->public_key, profileSigningBytesV2(*r), r->signature));
  // A change of a field this node does not know still breaks the signature.
  std::string other = bytes;
  other.replace(other.find("future"), 6, "fUture");
  auto t = decodeProfile(other);
  ASSERT_TRUE(t.isOk());
  EXPECT_FALSE(identity::verifySignature(t->public_key, profileSigningBytesV2(*t), t->signature));
  // Out of order is refused, even for unknown tags.
  Fields bad = f;
  std::swap(bad[bad.size() - 2], bad[bad.size() - 1]);
  EXPECT_THAT(errorOf(join(bad)),
              HasSubstr("tag 127 after tag 300 (fields must come in tag order)"));
  // At most 64 of them.
  Fields many = split(encodeProfile(minimalProfile()));
  for (int i = 0; i < 65; ++i) many.emplace_back(50, "x");
  EXPECT_THAT(errorOf(join(many)), HasSubstr("more than 64 fields of a later version"));
}

TEST(WireProfileTest, InvalidUtf8IsReplacedOnTheWayOut) {
  NodeProfile p = fullProfile();
  p.name = "bad\xff";
  sign(&p);
  auto r = decodeProfile(encodeProfile(p));
  ASSERT_TRUE(r.isOk()) << r.status().toString();
  EXPECT_EQ(r->name, "bad\xef\xbf\xbd");
  // The sender signed the same bytes the receiver computes.
  EXPECT_TRUE(identity::verifySignature(r->public_key, profileSigningBytesV2(*r), r->signature));
}

struct BadCase {
  std::string what;
  std::function<std::string()> bytes;
  std::string message;
};

TEST(WireProfileTest, EveryValidationErrorNamesTheField) {
  const NodeProfile p = fullProfile();
  auto text = [&](uint64_t tag, const std::string& v) { return withField(p, tag, v); };
  const std::string ip("\xc6\x12\x00\x01", 4);
  auto address = [](std::string iface, std::string ip4, uint8_t prefix) {
    return varint(iface.size()) + iface + ip4 + std::string(1, static_cast<char>(prefix));
  };
  std::vector<BadCase> cases = {
      {"empty", [] { return std::string(); }, "profile: empty, expected a version byte"},
      {"version", [&] { return "\x02" + encodeProfile(p).substr(1); },
       "profile: version 2 is not supported (this node reads version 1)"},
      {"too big", [] { return std::string(kMaxWireProfile + 1, '\x01'); },
       "profile: 131073 bytes exceeds the limit of 131072"},
      {"tag 0", [&] { return encodeProfile(p) + field(0, "x"); }, "profile: tag 0"},
      {"tag varint over 64 bits", [&] { return encodeProfile(p) + std::string(11, '\xff'); },
       "is more than 64 bits"},
      {"tag overlong", [&] { return encodeProfile(p) + std::string("\x80\x00\x00", 3); },
       "over-long (not the shortest form)"},
      {"length past the end", [&] { return encodeProfile(p) + std::string("\x7e\x05xx", 4); },
       "profile.<field 126>: length 5 runs past the end (2 bytes left)"},
      {"out of order",
       [&] {
         return join({{2, "a"}, {1, key().publicKey()}});
       },
       "profile.public_key: tag 1 after tag 2 (fields must come in tag order)"},
      {"twice",
       [&] {
         return join({{1, key().publicKey()}, {1, key().publicKey()}});
       },
       "profile.public_key: given twice"},
      {"public_key missing", [&] { return withoutField(p, 1); }, "profile.public_key: required"},
      {"name missing", [&] { return withoutField(p, 2); }, "profile.name: required, missing"},
      {"seq missing", [&] { return withoutField(p, 3); }, "profile.seq: required, missing"},
      {"started_at missing", [&] { return withoutField(p, 6); }, "profile.started_at: required"},
      {"endpoint missing", [&] { return withoutField(p, 17); }, "profile.endpoint: required"},
      {"public_key short", [&] { return text(1, "abc"); },
       "profile.public_key: expected 32 bytes, got 3"},
      {"signature short", [&] { return text(127, "abc"); },
       "profile.signature: expected 64 bytes, got 3"},
      {"name long", [&] { return text(2, std::string(254, 'n')); },
       "profile.name: expected at most 253 bytes, got 254"},
      {"name escape", [&] { return text(2, "evil\x1b[2J"); },
       "profile.name: control characters are not allowed, got \"evil?[2J\""},
      {"name not utf-8", [&] { return text(2, "ab\xc3"); },
       "profile.name: expected UTF-8 text, got a bad byte at offset 2"},
      {"name surrogate", [&] { return text(2, "\xed\xa0\x80"); },
       "profile.name: expected UTF-8 text"},
      {"seq two varints", [&] { return text(3, "\x01\x01"); },
       "profile.seq: expected one varint, got 1 bytes after it"},
      {"seq over int64", [&] { return text(3, varint(uint64_t{1} << 63)); },
       "profile.seq: expected at most 9223372036854775807, got 9223372036854775808"},
      {"seq overlong", [&] { return text(3, std::string("\x87\x00", 2)); },
       "profile.seq: the value is over-long"},
      {"cpus big", [&] { return text(7, varint(4097)); },
       "profile.cpus: expected 0..4096, got 4097"},
      {"cpus over int", [&] { return text(7, varint(uint64_t{1} << 40)); },
       "profile.cpus: expected at most 2147483647"},
      {"cpus zero", [&] { return text(7, varint(0)); },
       "profile.cpus: 0 is written by leaving the field out (non-canonical)"},
      {"os empty", [&] { return text(10, ""); },
       "profile.os: an empty value is written by leaving the field out"},
      {"os_release newline", [&] { return text(11, "a\nb"); },
       "profile.os_release: control characters are not allowed"},
      {"arch long", [&] { return text(12, std::string(1025, 'a')); },
       "profile.arch: expected at most 1024 bytes"},
      {"boot_id uuid short", [&] { return text(4, "abc"); },
       "profile.boot_id: expected 16 bytes, got 3"},
      {"boot_id twice", [&] { return text(5, "other"); },
       "profile.boot_id: given twice (as a UUID and as text)"},
      {"boot_id uuid as text",
       [&] {
         NodeProfile q = p;
         q.boot_id = "x";
         return withField(q, 5, "0c6f7a1e-2b3c-4d5e-8f90-112233445566");
       },
       "profile.boot_id: a lower-case UUID is written as 16 bytes"},
      {"power", [&] { return text(14, varint(2)); },
       "profile.power: expected 1 (battery; mains is written by leaving the field out), got 2"},
      {"persistent value", [&] { return text(15, "\x01"); },
       "profile.persistent: expected an empty value (its presence means false), got 1 bytes"},
      {"address prefix", [&] { return text(16, address("eth0", ip, 33)); },
       "profile.addresses[0].prefix_len: expected 0..32, got 33"},
      {"address interface empty", [&] { return text(16, address("", ip, 24)); },
       "profile.addresses[0].interface: must not be empty"},
      {"address interface long", [&] { return text(16, address("a-very-long-interface", ip, 24)); },
       "profile.addresses[0].interface: expected at most 15 bytes, got 21"},
      {"address short", [&] { return text(16, varint(4) + "eth0" + "\xc6\x12"); },
       "profile.addresses[0]: expected the interface name, 4 bytes of IPv4 address and 1 byte "
       "of prefix length, got 2 bytes after the name"},
      {"address name past end", [&] { return text(16, varint(40) + "eth0"); },
       "profile.addresses[0]: the interface name (40 bytes) runs past the end of the field"},
      {"addresses too many",
       [&] {
         Fields f = split(encodeProfile(p));
         Fields out;
         for (auto& e : f) {
           if (e.first == 16) continue;
           if (e.first == 17)
             for (int i = 0; i < 65; ++i)
               out.emplace_back(16, address("eth0", "\x01\x02\x03\x04", 8));
           out.push_back(e);
         }
         return join(out);
       },
       "profile.addresses: expected at most 64 entries"},
      {"endpoint short", [&] { return text(17, "\x01\x02\x03\x04\x05"); },
       "profile.endpoint: expected 6 bytes, got 5"},
      {"endpoint port 0", [&] { return text(17, std::string("\xc6\x12\x00\x02\x00\x00", 6)); },
       "profile.endpoint: expected an IPv4 address and a port 1..65535 (\"198.18.0.2:8083\"), got "
       "\"198.18.0.2:0\""},
      {"public_address v4 short", [&] { return text(18, "\x01"); },
       "profile.public_address: expected 4 bytes, got 1"},
      {"public_address twice", [&] { return text(19, "example.com"); },
       "profile.public_address: given twice (as IPv4 and as text)"},
      {"public_address ipv4 as text",
       [&] {
         Fields f = split(encodeProfile(p));
         for (auto& e : f)
           if (e.first == 18) e = {19, "198.18.200.1"};
         return join(f);
       },
       "profile.public_address: an IPv4 address is written as 4 bytes"},
      {"public_address junk",
       [&] {
         Fields f = split(encodeProfile(p));
         for (auto& e : f)
           if (e.first == 18) e = {19, "not an address!"};
         return join(f);
       },
       "profile.public_address: expected an IP address or a host name"},
      {"service empty", [&] { return text(20, ""); },
       "profile.services[0]: expected a service name of 1..253"},
      {"service long", [&] { return text(20, std::string(254, 's')); },
       "profile.services[0]: expected a service name of 1..253 printable bytes"},
      {"services too many",
       [&] {
         Fields f = split(encodeProfile(minimalProfile()));
         for (int i = 0; i < 257; ++i) f.emplace_back(20, "s");
         return join(f);
       },
       "profile.services: expected at most 256 entries, got 257"},
      {"account control", [&] { return text(21, "a\tb"); },
       "profile.account_id: control characters are not allowed"},
      {"location short", [&] { return text(22, std::string(15, '\0')); },
       "profile.location: expected 16 bytes, got 15"},
      {"location range",
       [&] {
         return text(22, std::string("\x40\x5f\x00\x00\x00\x00\x00\x00", 8) + std::string(8, '\0'));
       },
       "profile.location: lat must lie in -90..90 and lon in -180..180"},
      {"location NaN", [&] { return text(22, std::string(16, '\xff')); },
       "profile.location: lat must lie in -90..90"},
      {"label key charset", [&] { return text(23, varint(7) + "bad key" + "v"); },
       "profile.labels[\"bad key\"]: expected a key of 1..63 characters"},
      {"label value control", [&] { return text(23, varint(1) + "a" + "a\x01"); },
       "profile.labels[\"a\"]: expected a value of at most 253 printable bytes"},
      {"label key past end", [&] { return text(23, varint(9) + "k"); },
       "profile.labels: the key (9 bytes) runs past the end of the field (1 left)"},
      {"labels out of order",
       [&] {
         Fields f = split(encodeProfile(minimalProfile()));
         f.emplace_back(23, varint(1) + "b");
         f.emplace_back(23, varint(1) + "a");
         return join(f);
       },
       "profile.labels: keys must come in ascending order, once each"},
      {"labels twice",
       [&] {
         Fields f = split(encodeProfile(minimalProfile()));
         f.emplace_back(23, varint(1) + "a" + "1");
         f.emplace_back(23, varint(1) + "a" + "2");
         return join(f);
       },
       "profile.labels: keys must come in ascending order, once each"},
      {"labels too many",
       [&] {
         Fields f = split(encodeProfile(minimalProfile()));
         for (int i = 0; i < 65; ++i) f.emplace_back(23, varint(3) + std::to_string(100 + i));
         return join(f);
       },
       "profile.labels: expected at most 64 entries"},
      {"cpu millis big", [&] { return text(24, varint(4'096'001)); },
       "profile.allocatable_cpu_millis: expected 0..4096000, got 4096001"},
      {"allocatable memory over int64", [&] { return text(25, varint(~uint64_t{0})); },
       "profile.allocatable_memory_bytes: expected at most 9223372036854775807"},
  };
  for (const auto& c : cases) {
    std::string bytes = c.bytes();
    auto r = decodeProfile(bytes);
    ASSERT_FALSE(r.isOk()) << c.what;
    EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument) << c.what;
    EXPECT_THAT(r.status().message(), HasSubstr(c.message)) << c.what;
  }
}

// Both forms share validateProfile: a profile the binary form can carry is refused by
// both decoders with the same message, or accepted by both.
TEST(WireProfileTest, BinaryAndJsonRefuseTheSameProfiles) {
  std::vector<std::pair<std::string, std::function<void(NodeProfile&)>>> mutations = {
      {"name long", [](NodeProfile& p) { p.name = std::string(254, 'n'); }},
      {"name escape", [](NodeProfile& p) { p.name = "evil\x1b[2J"; }},
      {"boot_id long", [](NodeProfile& p) { p.boot_id = std::string(1025, 'b'); }},
      {"cpus", [](NodeProfile& p) { p.cpus = 4097; }},
      {"os newline", [](NodeProfile& p) { p.os = "a\nb"; }},
      {"runtime long", [](NodeProfile& p) { p.runtime = std::string(1025, 'r'); }},
      {"interface empty", [](NodeProfile& p) { p.addresses[1].interface = ""; }},
      {"interface long", [](NodeProfile& p) { p.addresses[0].interface = std::string(16, 'i'); }},
      {"prefix", [](NodeProfile& p) { p.addresses[1].prefix_len = 40; }},
      {"public_address", [](NodeProfile& p) { p.public_address = "not an address!"; }},
      {"service empty", [](NodeProfile& p) { p.services.push_back(""); }},
      {"services", [](NodeProfile& p) { p.services.assign(257, "s"); }},
      {"account", [](NodeProfile& p) { p.account_id = "a\x7f"; }},
      {"location", [](NodeProfile& p) { p.longitude = 181; }},
      {"label key", [](NodeProfile& p) { p.labels["a b"] = "v"; }},
      {"label value", [](NodeProfile& p) { p.labels["zone"] = std::string(254, 'v'); }},
      {"cpu millis", [](NodeProfile& p) { p.allocatable_cpu_millis = 4'096'001; }},
      {"valid: empty name", [](NodeProfile& p) { p.name = ""; }},
      {"valid: upper-case boot id", [](NodeProfile& p) { p.boot_id = "ABC"; }},
  };
  for (const auto& [what, mutate] : mutations) {
    NodeProfile p = fullProfile();
    mutate(p);
    auto from_json = profileFromJson(profileToJson(p));
    auto from_wire = decodeProfile(encodeProfile(p));
    EXPECT_EQ(from_json.isOk(), from_wire.isOk()) << what;
    EXPECT_EQ(from_json.status(), from_wire.status()) << what;
    EXPECT_EQ(from_wire.status(), validateProfile(p)) << what;
    EXPECT_EQ(what.rfind("valid: ", 0) == 0, from_wire.isOk())
        << what << ": " << from_wire.status().toString();
  }
}

// Random bytes and random mutations of a real encoding: never a crash, and what decodes
// is canonical.
TEST(WireProfileTest, HostileBytesNeverCrash) {
  std::mt19937 rng(42);
  std::string base = encodeProfile(fullProfile());
  for (int round = 0; round < 20000; ++round) {
    std::string b = base;
    int edits = 1 + static_cast<int>(rng() % 4);
    for (int e = 0; e < edits; ++e) {
      size_t at = rng() % b.size();
      switch (rng() % 3) {
        case 0:
          b[at] = static_cast<char>(rng());
          break;
        case 1:
          b.erase(at, 1 + rng() % 8);
          break;
        case 2:
          b.insert(at, std::string(1 + rng() % 4, static_cast<char>(rng())));
          break;
      }
      if (b.empty()) b = "\x01";
    }
    auto r = decodeProfile(b);
    if (r.isOk()) {
      EXPECT_EQ(encodeProfile(*r), b);
    }
  }
}

TEST(WireMessageTest, RoundTripWithProfilesAsBinary) {
  NodeProfile p = fullProfile();
  json welcome{{"t", "welcome"},
               {"cluster", "198.18.0.0/24"},
               {"version", 12},
               {"members", json::array({json{{"profile", profileToWire(p)},
                                             {"roles", {"supernode"}},
                                             {"score", -3},
                                             {"joined_at", 1'800'000'000}}})},
               {"ratio", 0.5},
               {"ok", true},
               {"none", nullptr}};
  std::string bytes = encodeMessage(welcome);
  EXPECT_EQ(bytes[0], '\x01');
  auto back = decodeMessage(bytes);
  ASSERT_TRUE(back.isOk()) << back.status().toString();
  EXPECT_EQ(*back, welcome);
  auto q = profileFromWire((*back)["members"][0]["profile"]);
  ASSERT_TRUE(q.isOk()) << q.status().toString();
  expectSame(*q, p);
}

TEST(WireMessageTest, TextThatIsNotUtf8IsReplacedOnTheWayOut) {
  json m{{"t", "profile"}, {"name", "bad\xff"}, {"k\xfe", json::array({"ok", "x\xc3"})}};
  auto back = decodeMessage(encodeMessage(m));
  ASSERT_TRUE(back.isOk()) << back.status().toString();
  EXPECT_EQ(*back, (json{{"t", "profile"},
                         {"name", "bad\xef\xbf\xbd"},
                         {"k\xef\xbf\xbd", json::array({"ok", "x\xef\xbf\xbd"})}}));
}

TEST(WireMessageTest, ProfileFromWireWantsABinary) {
  EXPECT_THAT(profileFromWire(profileToJson(fullProfile())).status().message(),
              HasSubstr("profile: expected an encoded profile (a MessagePack binary), got object"));
  std::string bytes = encodeProfile(fullProfile());
  json typed = json::binary(std::vector<std::uint8_t>(bytes.begin(), bytes.end()), 7);
  EXPECT_THAT(profileFromWire(typed).status().message(),
              HasSubstr("expected a plain binary, got extension type 7"));
  json broken = json::binary(std::vector<std::uint8_t>{1, 2, 3});
  EXPECT_FALSE(profileFromWire(broken).isOk());
}

std::string nested(int depth) {
  // depth maps {"a": {"a": ... {}}}
  std::string s;
  for (int i = 0; i < depth - 1; ++i) s += "\x81\xa1\x61";
  s += "\x80";
  return s;
}

TEST(WireMessageTest, RefusalsSayWhy) {
  struct Case {
    std::string what, bytes, message;
  };
  std::string ok = encodeMessage(json{{"t", "ping"}});
  std::vector<Case> cases = {
      {"empty", "", "message: empty, expected a version byte"},
      {"version", "\x02" + ok.substr(1), "message: version 2 is not supported"},
      {"too big", std::string(kMaxWireMessage + 1, '\x01'),
       "message: 1048577 bytes exceeds the limit of 1048576"},
      {"not a map", encodeMessage(json::array({1, 2})), "message: expected a map, got array"},
      {"nothing after the version", "\x01", "message: truncated"},
      {"trailing", ok + "\xc0", "message: 1 bytes after the value"},
      {"0xc1", "\x01\xc1", "message: byte 0xc1 is not MessagePack at byte 1"},
      {"string past end", std::string("\x01\x81\xa1t\xa5pi", 7), "a value runs past the end"},
      {"str32 huge", std::string("\x01\xdb\xff\xff\xff\xff", 6), "a value runs past the end"},
      {"array32 huge", std::string("\x01\xdd\xff\xff\xff\xff", 6), "a container larger than"},
      {"map truncated length", std::string("\x01\xde\x01", 3), "truncated length"},
      {"bad utf-8", std::string("\x01\x81\xa1t\xa2\xc3\x28", 7), "text that is not UTF-8"},
      {"key not text", std::string("\x01\x81\x01\x02", 4), "message: not valid MessagePack"},
      {"too deep", "\x01" + nested(9), "nesting deeper than 8 levels"},
      {"much too deep", "\x01" + std::string(500000, '\x91') + "\xc0", "nesting deeper than 8"},
  };
  for (const auto& c : cases) {
    Result<json> r = json();
    ASSERT_NO_THROW(r = decodeMessage(c.bytes)) << c.what;
    ASSERT_FALSE(r.isOk()) << c.what;
    EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument) << c.what;
    EXPECT_THAT(r.status().message(), HasSubstr(c.message)) << c.what;
  }
  auto eight = decodeMessage("\x01" + nested(8));
  EXPECT_TRUE(eight.isOk()) << eight.status().toString();
}

TEST(WireMessageTest, EveryTruncationAndMutationIsSafe) {
  json m{{"t", "delta"},
         {"joined", json::array({json{{"profile", profileToWire(fullProfile())}}})},
         {"n", -5},
         {"f", 1.25},
         {"big", uint64_t{1} << 60}};
  std::string bytes = encodeMessage(m);
  for (size_t n = 0; n < bytes.size(); ++n) {
    Result<json> r = json();
    ASSERT_NO_THROW(r = decodeMessage(bytes.substr(0, n))) << n;
    EXPECT_FALSE(r.isOk()) << n;
  }
  std::mt19937 rng(7);
  for (int round = 0; round < 20000; ++round) {
    std::string b = bytes;
    b[1 + rng() % (b.size() - 1)] = static_cast<char>(rng());
    Result<json> r = json();
    ASSERT_NO_THROW(r = decodeMessage(b));
    if (r.isOk()) {
      EXPECT_NO_THROW((void)r->dump());  // UTF-8 throughout
    }
  }
}

// The figures for issue 14: a profile of this host, and a welcome of N members, as JSON
// (today's wire) and encoded.
TEST(WireSizeTest, EncodedIsSmallerThanJson) {
  ProfileInputs in;
  in.node_name = "node-a";
  in.runtime_kind = "light";
  in.data_dir = std::filesystem::temp_directory_path().string();
  in.endpoint = "198.18.0.2:8083";
  in.services = {"web"};
  NodeProfile p = collectProfile(in, WallTime{std::chrono::seconds(1'800'000'000)});
  p.public_key = key().publicKey();
  p.node_id = key().id();
  p.seq = 3;
  if (p.addresses.empty()) p.addresses = {{"eth0", "198.18.0.2", 24}};
  p.signature = key().sign(profileSigningBytes(p));
  size_t as_json = profileToJson(p).dump().size();
  p.signature = key().sign(profileSigningBytesV2(p));
  size_t encoded = encodeProfile(p).size();
  ASSERT_TRUE(decodeProfile(encodeProfile(p)).isOk())
      << decodeProfile(encodeProfile(p)).status().toString();
  std::cout << "profile of this host: JSON " << as_json << " bytes, encoded " << encoded
            << " bytes (" << (100 * encoded / as_json) << "%)\n";
  EXPECT_LT(encoded * 2, as_json);
  // A member's register message, and a beacon body (the agent's fields; in the binary
  // form the key is 32 bytes and the id, derived from it, is left out).
  {
    json reg{{"t", "register"}, {"cluster", "198.18.0.0/24"}};
    json a = reg, b = reg;
    a["profile"] = profileToJson(p);
    b["profile"] = profileToWire(p);
    size_t j = a.dump().size(), w = encodeMessage(b).size();
    std::cout << "register: JSON " << j << " bytes, encoded " << w << " bytes\n";
    EXPECT_LT(w * 2, j);
    json beacon{{"t", "beacon"},
                {"cluster", "198.18.0.0/24"},
                {"score", 87},
                {"members", 5},
                {"version", 12},
                {"endpoint", "198.18.0.2:8083"},
                {"boot", "9f2c4e1a77d0b3e5"},
                {"seq", 1234}};
    json ja = beacon, jb = beacon;
    ja["id"] = key().id();
    ja["pub"] = identity::toHex(key().publicKey());
    jb["pub"] =
        json::binary(std::vector<std::uint8_t>(key().publicKey().begin(), key().publicKey().end()));
    j = ja.dump().size(), w = encodeMessage(jb).size();
    std::cout << "beacon body: JSON " << j << " bytes, encoded " << w << " bytes\n";
    EXPECT_LT(w, j);
  }
  for (int n : {5, 100}) {
    json members_json = json::array(), members_wire = json::array();
    for (int i = 0; i < n; ++i) {
      members_json.push_back(json{{"profile", profileToJson(p)},
                                  {"roles", json::array({"proxy"})},
                                  {"score", 80},
                                  {"joined_at", 1'800'000'000}});
      members_wire.push_back(json{{"profile", profileToWire(p)},
                                  {"roles", json::array({"proxy"})},
                                  {"score", 80},
                                  {"joined_at", 1'800'000'000}});
    }
    json welcome{{"t", "welcome"}, {"cluster", "198.18.0.0/24"}, {"version", 9}};
    json a = welcome, b = welcome;
    a["members"] = members_json;
    b["members"] = members_wire;
    size_t j = a.dump().size(), w = encodeMessage(b).size();
    std::cout << "welcome of " << n << " members: JSON " << j << " bytes, encoded " << w
              << " bytes (" << (100 * w / j) << "%)\n";
    EXPECT_LT(w * 2, j);
  }
}

}  // namespace
}  // namespace edge::discovery
