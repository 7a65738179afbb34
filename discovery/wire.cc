#include "discovery/wire.h"

#include <arpa/inet.h>

#include <algorithm>
#include <cstring>
#include <iterator>
#include <limits>
#include <utility>
#include <vector>

#include "identity/identity.h"

namespace edge::discovery {
namespace {

using nlohmann::json;

// Profile field tags (docs/discovery.md). Never renumber or reuse one: a new field takes
// the next free tag below kSignature.
enum Tag : uint64_t {
  kPublicKey = 1,          // 32 raw bytes; required
  kName = 2,               // text; required
  kSeq = 3,                // uvarint; required
  kBootUuid = 4,           // 16 raw bytes: boot_id when it is a lower-case UUID
  kBootText = 5,           // text: any other boot_id
  kStartedAt = 6,          // uvarint; required
  kCpus = 7,               // uvarint
  kMemory = 8,             // uvarint
  kStorageFree = 9,        // uvarint
  kOs = 10,                // text
  kOsRelease = 11,         // text
  kArch = 12,              // text
  kRuntime = 13,           // text
  kPower = 14,             // uvarint 1 = battery (absent: mains)
  kNotPersistent = 15,     // empty (absent: persistent)
  kAddress = 16,           // repeated: uvarint length + interface, 4 bytes IPv4, 1 byte prefix
  kEndpoint = 17,          // 4 bytes IPv4 + 2 bytes port, big-endian; required
  kPublicV4 = 18,          // 4 bytes: public_address when it is IPv4
  kPublicText = 19,        // text: any other public_address
  kService = 20,           // repeated text
  kAccount = 21,           // text
  kLocation = 22,          // 2 x IEEE 754 binary64, big-endian: lat, lon
  kLabel = 23,             // repeated: uvarint length + key, then the value; keys ascending
  kAllocCpuMillis = 24,    // uvarint
  kAllocMemoryBytes = 25,  // uvarint
  kSignature = 127,        // 64 raw bytes; last, so today it signs exactly the bytes before it
};

constexpr size_t kMaxExtensions = 64;
constexpr size_t kMaxFields = 1024;  // 64 addresses + 256 services + 64 labels + the rest
constexpr uint64_t kInt64Max = static_cast<uint64_t>(std::numeric_limits<int64_t>::max());

bool isKnown(uint64_t tag) {
  return (tag >= kPublicKey && tag <= kAllocMemoryBytes) || tag == kSignature;
}

bool isRepeated(uint64_t tag) {
  return tag == kAddress || tag == kService || tag == kLabel;
}

const char* tagName(uint64_t tag) {
  switch (tag) {
    case kPublicKey:
      return "public_key";
    case kName:
      return "name";
    case kSeq:
      return "seq";
    case kBootUuid:
    case kBootText:
      return "boot_id";
    case kStartedAt:
      return "started_at";
    case kCpus:
      return "cpus";
    case kMemory:
      return "memory_bytes";
    case kStorageFree:
      return "storage_free_bytes";
    case kOs:
      return "os";
    case kOsRelease:
      return "os_release";
    case kArch:
      return "arch";
    case kRuntime:
      return "runtime";
    case kPower:
      return "power";
    case kNotPersistent:
      return "persistent";
    case kAddress:
      return "addresses";
    case kEndpoint:
      return "endpoint";
    case kPublicV4:
    case kPublicText:
      return "public_address";
    case kService:
      return "services";
    case kAccount:
      return "account_id";
    case kLocation:
      return "location";
    case kLabel:
      return "labels";
    case kAllocCpuMillis:
      return "allocatable_cpu_millis";
    case kAllocMemoryBytes:
      return "allocatable_memory_bytes";
    case kSignature:
      return "signature";
    default:
      return nullptr;
  }
}

// --- UTF-8 ----------------------------------------------------------------------------

// The length of the well-formed UTF-8 sequence at s[i] (RFC 3629: no overlong forms, no
// surrogates, nothing above U+10FFFF), 0 when there is none.
size_t utf8SequenceAt(std::string_view s, size_t i) {
  auto b = [&](size_t k) { return static_cast<unsigned char>(s[k]); };
  unsigned char c = b(i);
  if (c < 0x80) return 1;
  size_t n = 0;
  unsigned char lo = 0x80, hi = 0xbf;
  if (c >= 0xc2 && c <= 0xdf) {
    n = 2;
  } else if (c >= 0xe0 && c <= 0xef) {
    n = 3;
    if (c == 0xe0) lo = 0xa0;
    if (c == 0xed) hi = 0x9f;
  } else if (c >= 0xf0 && c <= 0xf4) {
    n = 4;
    if (c == 0xf0) lo = 0x90;
    if (c == 0xf4) hi = 0x8f;
  } else {
    return 0;
  }
  if (i + n > s.size()) return 0;
  if (b(i + 1) < lo || b(i + 1) > hi) return 0;
  for (size_t k = 2; k < n; ++k)
    if (b(i + k) < 0x80 || b(i + k) > 0xbf) return 0;
  return n;
}

// The offset of the first byte that is not well-formed UTF-8, npos when all are.
size_t firstBadUtf8(std::string_view s) {
  for (size_t i = 0; i < s.size();) {
    size_t n = utf8SequenceAt(s, i);
    if (n == 0) return i;
    i += n;
  }
  return std::string_view::npos;
}

std::string utf8Sanitized(std::string_view s) {
  if (firstBadUtf8(s) == std::string_view::npos) return std::string(s);
  std::string out;
  for (size_t i = 0; i < s.size();) {
    size_t n = utf8SequenceAt(s, i);
    if (n == 0) {
      out += "\xef\xbf\xbd";  // U+FFFD
      ++i;
    } else {
      out.append(s.substr(i, n));
      i += n;
    }
  }
  return out;
}

// --- Writing --------------------------------------------------------------------------

void putVarint(std::string* out, uint64_t v) {
  while (v >= 0x80) {
    out->push_back(static_cast<char>((v & 0x7f) | 0x80));
    v >>= 7;
  }
  out->push_back(static_cast<char>(v));
}

void putBigEndian(std::string* out, uint64_t v, int bytes) {
  for (int i = bytes - 1; i >= 0; --i) out->push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}

void putField(std::string* out, uint64_t tag, std::string_view value) {
  putVarint(out, tag);
  putVarint(out, value.size());
  out->append(value);
}

std::string varintBytes(uint64_t v) {
  std::string s;
  putVarint(&s, v);
  return s;
}

// Four raw bytes of a dotted IPv4 address; false when it is not one.
bool ipv4Bytes(const std::string& text, std::string* out) {
  in_addr a{};
  if (inet_pton(AF_INET, text.c_str(), &a) != 1) return false;
  out->assign(reinterpret_cast<const char*>(&a.s_addr), 4);  // network order
  return true;
}

std::string ipv4Text(std::string_view raw) {
  in_addr a{};
  std::memcpy(&a.s_addr, raw.data(), 4);
  char buf[INET_ADDRSTRLEN] = {};
  inet_ntop(AF_INET, &a, buf, sizeof buf);
  return buf;
}

// "198.18.0.2:8083" as 4 + 2 bytes; false when it is not IPv4:port (1..65535).
bool endpointBytes(const std::string& text, std::string* out) {
  size_t colon = text.rfind(':');
  if (colon == std::string::npos) return false;
  std::string addr;
  if (!ipv4Bytes(text.substr(0, colon), &addr)) return false;
  std::string port = text.substr(colon + 1);
  if (port.empty() || port.size() > 5) return false;
  uint32_t p = 0;
  for (char c : port) {
    if (c < '0' || c > '9') return false;
    p = p * 10 + static_cast<uint32_t>(c - '0');
  }
  if (p < 1 || p > 65535) return false;
  *out = addr;
  putBigEndian(out, p, 2);
  return true;
}

bool isLowerHexDigit(char c) {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
}

// "0c6f7a1e-2b3c-4d5e-8f90-112233445566" (the kernel's form) as 16 bytes.
bool uuidBytes(std::string_view text, std::string* out) {
  if (text.size() != 36) return false;
  std::string raw;
  for (size_t i = 0; i < 36;) {
    if (i == 8 || i == 13 || i == 18 || i == 23) {
      if (text[i] != '-') return false;
      ++i;
      continue;
    }
    if (!isLowerHexDigit(text[i]) || !isLowerHexDigit(text[i + 1])) return false;
    auto nibble = [](char c) { return c <= '9' ? c - '0' : c - 'a' + 10; };
    raw.push_back(static_cast<char>((nibble(text[i]) << 4) | nibble(text[i + 1])));
    i += 2;
  }
  *out = raw;
  return true;
}

std::string uuidText(std::string_view raw) {
  std::string hex = identity::toHex(raw);
  return hex.substr(0, 8) + "-" + hex.substr(8, 4) + "-" + hex.substr(12, 4) + "-" +
         hex.substr(16, 4) + "-" + hex.substr(20, 12);
}

uint64_t doubleBits(double d) {
  uint64_t u = 0;
  std::memcpy(&u, &d, sizeof u);
  return u;
}

std::string encode(const NodeProfile& p, bool with_signature) {
  // Known fields in tag order, then merged with the extensions by tag.
  std::vector<std::pair<uint64_t, std::string>> fields;
  auto text = [&](uint64_t tag, const std::string& s, bool always) {
    if (always || !s.empty()) fields.emplace_back(tag, utf8Sanitized(s));
  };
  auto number = [&](uint64_t tag, int64_t v, bool always) {
    if (always || v != 0) fields.emplace_back(tag, varintBytes(static_cast<uint64_t>(v)));
  };
  fields.emplace_back(kPublicKey, p.public_key);
  text(kName, p.name, true);
  number(kSeq, p.seq, true);
  std::string uuid;
  if (uuidBytes(p.boot_id, &uuid))
    fields.emplace_back(kBootUuid, uuid);
  else
    text(kBootText, p.boot_id, false);
  number(kStartedAt, p.started_at, true);
  number(kCpus, p.cpus, false);
  number(kMemory, p.memory_bytes, false);
  number(kStorageFree, p.storage_free_bytes, false);
  text(kOs, p.os, false);
  text(kOsRelease, p.os_release, false);
  text(kArch, p.arch, false);
  text(kRuntime, p.runtime, false);
  if (p.power == "battery") fields.emplace_back(kPower, varintBytes(1));
  if (!p.persistent) fields.emplace_back(kNotPersistent, "");
  for (const auto& a : p.addresses) {
    std::string v, addr;
    if (!ipv4Bytes(a.address, &addr)) continue;
    std::string iface = utf8Sanitized(a.interface);
    putVarint(&v, iface.size());
    v += iface;
    v += addr;
    v.push_back(static_cast<char>(static_cast<uint8_t>(a.prefix_len)));
    fields.emplace_back(kAddress, std::move(v));
  }
  std::string endpoint;
  if (endpointBytes(p.endpoint, &endpoint)) fields.emplace_back(kEndpoint, endpoint);
  std::string public_v4;
  if (ipv4Bytes(p.public_address, &public_v4))
    fields.emplace_back(kPublicV4, public_v4);
  else
    text(kPublicText, p.public_address, false);
  for (const auto& s : p.services) text(kService, s, true);
  text(kAccount, p.account_id, false);
  if (p.has_location) {
    std::string v;
    putBigEndian(&v, doubleBits(p.latitude), 8);
    putBigEndian(&v, doubleBits(p.longitude), 8);
    fields.emplace_back(kLocation, std::move(v));
  }
  for (const auto& [key, value] : p.labels) {
    std::string k = utf8Sanitized(key), v;
    putVarint(&v, k.size());
    v += k;
    v += utf8Sanitized(value);
    fields.emplace_back(kLabel, std::move(v));
  }
  number(kAllocCpuMillis, p.allocatable_cpu_millis, false);
  number(kAllocMemoryBytes, p.allocatable_memory_bytes, false);
  if (with_signature && !p.signature.empty()) fields.emplace_back(kSignature, p.signature);

  // Extensions are what decodeProfile kept: well-formed, unknown tags, in order. Anything
  // else (set by hand) is dropped rather than written malformed.
  std::vector<std::pair<uint64_t, std::string>> extensions;
  std::string_view ext = p.wire_extensions;
  while (!ext.empty()) {
    uint64_t tag = 0, len = 0;
    size_t used = 0;
    auto varint = [&](uint64_t* v) {
      *v = 0;
      for (int shift = 0; shift < 64 && used < ext.size(); shift += 7) {
        unsigned char c = static_cast<unsigned char>(ext[used++]);
        *v |= static_cast<uint64_t>(c & 0x7f) << shift;
        if (!(c & 0x80)) return true;
      }
      return false;
    };
    if (!varint(&tag) || !varint(&len) || len > ext.size() - used) break;
    if (tag != 0 && !isKnown(tag)) extensions.emplace_back(tag, std::string(ext.substr(used, len)));
    ext.remove_prefix(used + len);
  }
  std::vector<std::pair<uint64_t, std::string>> all;
  all.reserve(fields.size() + extensions.size());
  std::merge(fields.begin(), fields.end(), extensions.begin(), extensions.end(),
             std::back_inserter(all),
             [](const auto& a, const auto& b) { return a.first < b.first; });

  std::string out(1, static_cast<char>(kWireProfileVersion));
  for (const auto& [tag, value] : all) putField(&out, tag, value);
  return out;
}

// --- Reading --------------------------------------------------------------------------

// A bounded reader over bytes: every read checks what is left first.
class Cursor {
 public:
  explicit Cursor(std::string_view in) : in_(in) {}

  bool done() const { return pos_ == in_.size(); }
  size_t pos() const { return pos_; }
  size_t left() const { return in_.size() - pos_; }

  enum class VarintError { kNone, kTruncated, kOverlong, kTooBig };

  // A minimal unsigned LEB128 of at most 10 bytes that fits 64 bits.
  VarintError varint(uint64_t* out) {
    uint64_t v = 0;
    for (int i = 0; i < 10; ++i) {
      if (pos_ == in_.size()) return VarintError::kTruncated;
      unsigned char c = static_cast<unsigned char>(in_[pos_++]);
      if (i == 9 && c > 1) return VarintError::kTooBig;
      v |= static_cast<uint64_t>(c & 0x7f) << (7 * i);
      if (!(c & 0x80)) {
        if (c == 0 && i > 0) return VarintError::kOverlong;
        *out = v;
        return VarintError::kNone;
      }
    }
    return VarintError::kTooBig;
  }

  std::string_view take(size_t n) {
    std::string_view s = in_.substr(pos_, n);
    pos_ += s.size();
    return s;
  }

 private:
  std::string_view in_;
  size_t pos_ = 0;
};

std::string varintProblem(Cursor::VarintError e) {
  switch (e) {
    case Cursor::VarintError::kTruncated:
      return "truncated";
    case Cursor::VarintError::kOverlong:
      return "over-long (not the shortest form)";
    case Cursor::VarintError::kTooBig:
      return "more than 64 bits";
    case Cursor::VarintError::kNone:
      break;
  }
  return "";
}

class ProfileDecoder {
 public:
  // `body`: the bytes after the version byte.
  explicit ProfileDecoder(std::string_view body) : c_(body), raw_(body) {}

  Result<NodeProfile> run() {
    uint64_t last = 0;
    size_t fields = 0;
    while (!c_.done() && ok()) {
      size_t start = c_.pos();
      uint64_t tag = 0, len = 0;
      if (auto e = c_.varint(&tag); e != Cursor::VarintError::kNone) {
        return refuse("profile: the tag of the field at byte " + std::to_string(start + 1) +
                      " is " + varintProblem(e));
      }
      tag_ = tag;
      if (auto e = c_.varint(&len); e != Cursor::VarintError::kNone) {
        return refuse(where() + "the length is " + varintProblem(e));
      }
      if (len > c_.left())
        return refuse(where() + "length " + std::to_string(len) + " runs past the end (" +
                      std::to_string(c_.left()) + " bytes left)");
      std::string_view value = c_.take(static_cast<size_t>(len));
      if (tag == 0)
        return refuse("profile: tag 0 (at byte " + std::to_string(start + 1) + ") is reserved");
      if (++fields > kMaxFields)
        return refuse("profile: more than " + std::to_string(kMaxFields) + " fields");
      if (tag < last)
        return refuse(where() + "tag " + std::to_string(tag) + " after tag " +
                      std::to_string(last) + " (fields must come in tag order)");
      if (tag == last && isKnown(tag) && !isRepeated(tag)) return refuse(where() + "given twice");
      last = tag;
      if (!isKnown(tag)) {
        if (++extensions_ > kMaxExtensions)
          return refuse("profile: more than " + std::to_string(kMaxExtensions) +
                        " fields of a later version");
        p_.wire_extensions.append(body(start));
        continue;
      }
      field(tag, value);
    }
    if (!ok()) return status_;
    for (uint64_t tag : {kPublicKey, kName, kSeq, kStartedAt, kEndpoint})
      if (!seen(tag)) return refuse("profile." + std::string(tagName(tag)) + ": required, missing");
    p_.node_id = identity::nodeIdFromPublicKey(p_.public_key);
    Status s = validateProfile(p_);
    if (!s.isOk()) return s;
    return std::move(p_);
  }

 private:
  bool ok() const { return status_.isOk(); }
  void bad(const std::string& message) {
    if (ok()) status_ = Status::invalidArgument(message);
  }
  Status refuse(const std::string& message) {
    bad(message);
    return status_;
  }
  // The current field's name, built only for an error message.
  std::string where() const { return "profile." + fieldName(tag_) + ": "; }
  bool seen(uint64_t tag) const { return seen_[tag == kSignature ? 0 : tag]; }
  std::string body(size_t start) const { return std::string(raw_.substr(start, c_.pos() - start)); }

  std::string fieldName(uint64_t tag) const {
    if (const char* name = tagName(tag)) {
      if (tag == kAddress) return "addresses[" + std::to_string(p_.addresses.size()) + "]";
      if (tag == kService) return "services[" + std::to_string(p_.services.size()) + "]";
      return name;
    }
    return "<field " + std::to_string(tag) + ">";
  }

  // Text: UTF-8, and an optional field is absent rather than empty.
  bool text(std::string_view v, bool may_be_empty, std::string* out) {
    if (v.empty() && !may_be_empty) {
      bad(where() + "an empty value is written by leaving the field out (non-canonical)");
      return false;
    }
    size_t at = firstBadUtf8(v);
    if (at != std::string_view::npos) {
      bad(where() + "expected UTF-8 text, got a bad byte at offset " + std::to_string(at));
      return false;
    }
    out->assign(v);
    return true;
  }

  // An unsigned varint filling the value exactly, at most `max`; an optional field is
  // absent rather than 0.
  bool number(std::string_view v, bool required, uint64_t max, uint64_t* out) {
    Cursor c(v);
    auto e = c.varint(out);
    if (e != Cursor::VarintError::kNone) {
      bad(where() + "the value is " + varintProblem(e));
      return false;
    }
    if (!c.done()) {
      bad(where() + "expected one varint, got " + std::to_string(c.left()) + " bytes after it");
      return false;
    }
    if (*out == 0 && !required) {
      bad(where() + "0 is written by leaving the field out (non-canonical)");
      return false;
    }
    if (*out > max) {
      bad(where() + "expected at most " + std::to_string(max) + ", got " + std::to_string(*out));
      return false;
    }
    return true;
  }

  template <typename T>
  void integer(std::string_view v, bool required, T* out) {
    uint64_t n = 0;
    uint64_t max = std::min<uint64_t>(kInt64Max, std::numeric_limits<T>::max());
    if (number(v, required, max, &n)) *out = static_cast<T>(n);
  }

  bool size(std::string_view v, size_t expected) {
    if (v.size() == expected) return true;
    bad(where() + "expected " + std::to_string(expected) + " bytes, got " +
        std::to_string(v.size()));
    return false;
  }

  void field(uint64_t tag, std::string_view v) {
    seen_[tag == kSignature ? 0 : tag] = true;
    switch (tag) {
      case kPublicKey:
        if (size(v, identity::kPublicKeyBytes)) p_.public_key.assign(v);
        break;
      case kName:
        text(v, true, &p_.name);
        break;
      case kSeq:
        integer(v, true, &p_.seq);
        break;
      case kBootUuid:
        if (size(v, 16)) p_.boot_id = uuidText(v);
        break;
      case kBootText:
        if (seen(kBootUuid)) {
          bad(where() + "given twice (as a UUID and as text)");
        } else if (text(v, false, &p_.boot_id)) {
          std::string raw;
          if (uuidBytes(p_.boot_id, &raw))
            bad(where() +
                "a lower-case UUID is written as 16 bytes (field 4), not as text "
                "(non-canonical)");
        }
        break;
      case kStartedAt:
        integer(v, true, &p_.started_at);
        break;
      case kCpus:
        integer(v, false, &p_.cpus);
        break;
      case kMemory:
        integer(v, false, &p_.memory_bytes);
        break;
      case kStorageFree:
        integer(v, false, &p_.storage_free_bytes);
        break;
      case kOs:
        text(v, false, &p_.os);
        break;
      case kOsRelease:
        text(v, false, &p_.os_release);
        break;
      case kArch:
        text(v, false, &p_.arch);
        break;
      case kRuntime:
        text(v, false, &p_.runtime);
        break;
      case kPower: {
        uint64_t n = 0;
        if (number(v, false, std::numeric_limits<uint64_t>::max(), &n)) {
          if (n == 1)
            p_.power = "battery";
          else
            bad(where() + "expected 1 (battery; mains is written by leaving the field out), got " +
                std::to_string(n));
        }
        break;
      }
      case kNotPersistent:
        if (!v.empty())
          bad(where() + "expected an empty value (its presence means false), got " +
              std::to_string(v.size()) + " bytes");
        p_.persistent = false;
        break;
      case kAddress:
        address(v);
        break;
      case kEndpoint:
        if (size(v, 6)) {
          auto port = static_cast<unsigned>(static_cast<unsigned char>(v[4])) << 8 |
                      static_cast<unsigned char>(v[5]);
          p_.endpoint = ipv4Text(v.substr(0, 4)) + ":" + std::to_string(port);
        }
        break;
      case kPublicV4:
        if (size(v, 4)) p_.public_address = ipv4Text(v);
        break;
      case kPublicText:
        if (seen(kPublicV4)) {
          bad(where() + "given twice (as IPv4 and as text)");
        } else if (text(v, false, &p_.public_address)) {
          std::string raw;
          if (ipv4Bytes(p_.public_address, &raw))
            bad(where() +
                "an IPv4 address is written as 4 bytes (field 18), not as text "
                "(non-canonical)");
        }
        break;
      case kService: {
        std::string s;
        if (text(v, true, &s)) p_.services.push_back(std::move(s));
        break;
      }
      case kAccount:
        text(v, false, &p_.account_id);
        break;
      case kLocation:
        if (size(v, 16)) {
          auto readDouble = [](std::string_view b) {
            uint64_t u = 0;
            for (int i = 0; i < 8; ++i) u = u << 8 | static_cast<unsigned char>(b[i]);
            double d = 0;
            std::memcpy(&d, &u, sizeof d);
            return d;
          };
          p_.latitude = readDouble(v.substr(0, 8));
          p_.longitude = readDouble(v.substr(8, 8));
          p_.has_location = true;
        }
        break;
      case kLabel:
        label(v);
        break;
      case kAllocCpuMillis:
        integer(v, false, &p_.allocatable_cpu_millis);
        break;
      case kAllocMemoryBytes:
        integer(v, false, &p_.allocatable_memory_bytes);
        break;
      case kSignature:
        if (size(v, identity::kSignatureBytes)) p_.signature.assign(v);
        break;
      default:
        break;
    }
  }

  // A length-prefixed piece of a composite value.
  bool prefixed(Cursor* c, std::string_view what, std::string_view* out) {
    uint64_t len = 0;
    if (auto e = c->varint(&len); e != Cursor::VarintError::kNone) {
      bad(where() + "the length of the " + std::string(what) + " is " + varintProblem(e));
      return false;
    }
    if (len > c->left()) {
      bad(where() + "the " + std::string(what) + " (" + std::to_string(len) +
          " bytes) runs past the end of the field (" + std::to_string(c->left()) + " left)");
      return false;
    }
    *out = c->take(static_cast<size_t>(len));
    return true;
  }

  void address(std::string_view v) {
    if (p_.addresses.size() >= 64) {
      bad("profile.addresses: expected at most 64 entries, got more");
      return;
    }
    Cursor c(v);
    std::string_view iface;
    if (!prefixed(&c, "interface name", &iface)) return;
    if (c.left() != 5) {
      bad(where() +
          "expected the interface name, 4 bytes of IPv4 address and 1 byte of "
          "prefix length, got " +
          std::to_string(c.left()) + " bytes after the name");
      return;
    }
    InterfaceAddress a;
    if (!text(iface, true, &a.interface)) return;
    a.address = ipv4Text(c.take(4));
    a.prefix_len = static_cast<unsigned char>(c.take(1)[0]);
    p_.addresses.push_back(std::move(a));
  }

  void label(std::string_view v) {
    if (p_.labels.size() >= 64) {
      bad("profile.labels: expected at most 64 entries, got more");
      return;
    }
    Cursor c(v);
    std::string_view key_bytes;
    if (!prefixed(&c, "key", &key_bytes)) return;
    std::string key, value;
    if (!text(key_bytes, true, &key) || !text(c.take(c.left()), true, &value)) return;
    if (!p_.labels.empty() && key <= p_.labels.rbegin()->first) {
      bad(where() + "keys must come in ascending order, once each; got " +
          identity::toHex(key.substr(0, 40)) + " (hex) after " +
          identity::toHex(p_.labels.rbegin()->first.substr(0, 40)));
      return;
    }
    p_.labels.emplace_hint(p_.labels.end(), std::move(key), std::move(value));
  }

  Cursor c_;
  std::string_view raw_;
  NodeProfile p_;
  Status status_;
  uint64_t tag_ = 0;  // of the field being read
  bool seen_[kAllocMemoryBytes + 1] = {};
  size_t extensions_ = 0;
};

// --- MessagePack ----------------------------------------------------------------------

// Walks MessagePack without recursion: exactly one value, every length within the input,
// nesting at most kMaxWireDepth, text UTF-8. nlohmann's reader recurses and trusts
// lengths, so only bytes that pass this reach it.
Status scanMessagePack(std::string_view b) {
  uint64_t open[kMaxWireDepth + 1] = {};  // elements still to read in each open container
  int depth = 0;
  uint64_t top = 1;
  size_t pos = 0;
  auto fail = [&](const std::string& what) {
    return Status::invalidArgument("message: " + what + " at byte " + std::to_string(pos + 1));
  };
  auto need = [&](uint64_t n) { return n <= b.size() - pos; };
  auto be = [&](size_t at, int n) {
    uint64_t v = 0;
    for (int i = 0; i < n; ++i) v = v << 8 | static_cast<unsigned char>(b[at + i]);
    return v;
  };
  while (top > 0 || depth > 0) {
    if (pos >= b.size()) return fail("truncated: the input ends inside a value");
    // One element of the innermost open container (or the top-level value) is read now.
    if (depth > 0)
      --open[depth];
    else
      --top;
    unsigned char t = static_cast<unsigned char>(b[pos]);
    uint64_t payload = 0;   // bytes of data after the header
    uint64_t children = 0;  // elements of a container
    bool container = false, is_text = false;
    size_t header = 1;
    if (t <= 0x7f || t >= 0xe0 || t == 0xc0 || t == 0xc2 || t == 0xc3) {
      // fixint, nil, false, true
    } else if ((t & 0xf0) == 0x80) {
      container = true, children = 2 * uint64_t{t & 0x0fu};
    } else if ((t & 0xf0) == 0x90) {
      container = true, children = t & 0x0fu;
    } else if ((t & 0xe0) == 0xa0) {
      is_text = true, payload = t & 0x1fu;
    } else {
      int len_bytes = 0;
      switch (t) {
        case 0xcc:
        case 0xd0:
          payload = 1;
          break;
        case 0xcd:
        case 0xd1:
          payload = 2;
          break;
        case 0xca:
        case 0xce:
        case 0xd2:
          payload = 4;
          break;
        case 0xcb:
        case 0xcf:
        case 0xd3:
          payload = 8;
          break;
        case 0xd4:
          payload = 2;
          break;  // fixext 1: type + 1
        case 0xd5:
          payload = 3;
          break;
        case 0xd6:
          payload = 5;
          break;
        case 0xd7:
          payload = 9;
          break;
        case 0xd8:
          payload = 17;
          break;
        case 0xc4:
        case 0xd9:
          len_bytes = 1;
          break;
        case 0xc5:
        case 0xda:
          len_bytes = 2;
          break;
        case 0xc6:
        case 0xdb:
          len_bytes = 4;
          break;
        case 0xc7:
          len_bytes = 1;
          break;  // ext: length, type, data
        case 0xc8:
          len_bytes = 2;
          break;
        case 0xc9:
          len_bytes = 4;
          break;
        case 0xdc:
        case 0xde:
          len_bytes = 2;
          break;
        case 0xdd:
        case 0xdf:
          len_bytes = 4;
          break;
        default:
          return fail("byte 0xc1 is not MessagePack");
      }
      if (len_bytes > 0) {
        if (!need(1 + len_bytes)) return fail("truncated length");
        uint64_t n = be(pos + 1, len_bytes);
        header += len_bytes;
        if (t == 0xdc || t == 0xdd) {
          container = true, children = n;
        } else if (t == 0xde || t == 0xdf) {
          container = true, children = 2 * n;
        } else {
          payload = n + (t >= 0xc7 && t <= 0xc9 ? 1 : 0);
          is_text = t >= 0xd9 && t <= 0xdb;
        }
      }
    }
    if (!need(header + payload)) return fail("a value runs past the end of the input");
    if (is_text) {
      std::string_view s = b.substr(pos + header, payload);
      if (firstBadUtf8(s) != std::string_view::npos) return fail("text that is not UTF-8");
    }
    pos += header + payload;
    if (container) {
      if (depth == kMaxWireDepth)
        return fail("nesting deeper than " + std::to_string(kMaxWireDepth) + " levels");
      // Each element takes at least one byte: a count beyond what is left is a lie.
      if (children > b.size() - pos) return fail("a container larger than the input");
      if (children > 0) open[++depth] = children;
    }
    while (depth > 0 && open[depth] == 0) --depth;
  }
  if (pos != b.size())
    return Status::invalidArgument("message: " + std::to_string(b.size() - pos) +
                                   " bytes after the value");
  return Status::ok();
}

bool hasBadText(const json& j) {
  if (j.is_string()) return firstBadUtf8(j.get_ref<const std::string&>()) != std::string_view::npos;
  if (j.is_object()) {
    for (auto it = j.begin(); it != j.end(); ++it)
      if (firstBadUtf8(it.key()) != std::string_view::npos || hasBadText(*it)) return true;
    return false;
  }
  if (j.is_array())
    for (const auto& e : j)
      if (hasBadText(e)) return true;
  return false;
}

// `j` with U+FFFD for every byte of text that is not UTF-8, as edge::json::dump replaces
// it on the JSON wire.
json sanitizedText(const json& j) {
  if (j.is_string()) return utf8Sanitized(j.get_ref<const std::string&>());
  if (j.is_object()) {
    json out = json::object();
    for (auto it = j.begin(); it != j.end(); ++it)
      out[utf8Sanitized(it.key())] = sanitizedText(*it);
    return out;
  }
  if (j.is_array()) {
    json out = json::array();
    for (const auto& e : j) out.push_back(sanitizedText(e));
    return out;
  }
  return j;
}

}  // namespace

std::string encodeProfile(const NodeProfile& p) {
  return encode(p, true);
}

std::string profileSigningBytesV2(const NodeProfile& p) {
  return encode(p, false);
}

Result<NodeProfile> decodeProfile(std::string_view bytes) {
  if (bytes.size() > kMaxWireProfile)
    return Status::invalidArgument("profile: " + std::to_string(bytes.size()) +
                                   " bytes exceeds the limit of " +
                                   std::to_string(kMaxWireProfile));
  if (bytes.empty()) return Status::invalidArgument("profile: empty, expected a version byte");
  auto version = static_cast<unsigned char>(bytes[0]);
  if (version != kWireProfileVersion)
    return Status::invalidArgument("profile: version " + std::to_string(version) +
                                   " is not supported (this node reads version " +
                                   std::to_string(kWireProfileVersion) + ")");
  return ProfileDecoder(bytes.substr(1)).run();
}

std::string encodeMessage(const nlohmann::json& message) {
  std::string out(1, static_cast<char>(kWireMessageVersion));
  // Text is checked first and copied only when some of it is not UTF-8 (a local name),
  // which decodeMessage would refuse.
  if (hasBadText(message))
    json::to_msgpack(sanitizedText(message), nlohmann::detail::output_adapter<char>(out));
  else
    json::to_msgpack(message, nlohmann::detail::output_adapter<char>(out));
  return out;
}

Result<nlohmann::json> decodeMessage(std::string_view bytes) {
  if (bytes.size() > kMaxWireMessage)
    return Status::invalidArgument("message: " + std::to_string(bytes.size()) +
                                   " bytes exceeds the limit of " +
                                   std::to_string(kMaxWireMessage));
  if (bytes.empty()) return Status::invalidArgument("message: empty, expected a version byte");
  auto version = static_cast<unsigned char>(bytes[0]);
  if (version != kWireMessageVersion)
    return Status::invalidArgument("message: version " + std::to_string(version) +
                                   " is not supported (this node reads version " +
                                   std::to_string(kWireMessageVersion) + ")");
  std::string_view body = bytes.substr(1);
  Status s = scanMessagePack(body);
  if (!s.isOk()) return s;
  json j;
  try {
    j = json::from_msgpack(body.begin(), body.end(), /*strict=*/true, /*allow_exceptions=*/false);
  } catch (const json::exception& e) {
    // Not expected after the scan; kept so no input can take the node down.
    return Status::invalidArgument(std::string("message: unusable MessagePack: ") + e.what());
  }
  if (j.is_discarded())
    return Status::invalidArgument("message: not valid MessagePack (a map key that is not text?)");
  if (!j.is_object())
    return Status::invalidArgument(std::string("message: expected a map, got ") + j.type_name());
  return j;
}

nlohmann::json profileToWire(const NodeProfile& p) {
  std::string bytes = encodeProfile(p);
  return json::binary(std::vector<std::uint8_t>(bytes.begin(), bytes.end()));
}

Result<NodeProfile> profileFromWire(const nlohmann::json& j) {
  if (!j.is_binary())
    return Status::invalidArgument(
        std::string("profile: expected an encoded profile (a MessagePack binary), got ") +
        j.type_name());
  const auto& bin = j.get_binary();
  if (bin.has_subtype())
    return Status::invalidArgument("profile: expected a plain binary, got extension type " +
                                   std::to_string(bin.subtype()));
  return decodeProfile(std::string_view(reinterpret_cast<const char*>(bin.data()), bin.size()));
}

}  // namespace edge::discovery
