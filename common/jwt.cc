#include "common/jwt.h"

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/pem.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <cmath>
#include <cstring>

namespace edge::jwt {

namespace {

constexpr size_t kCoordBytes = 32;  // P-256
constexpr size_t kSignatureBytes = 2 * kCoordBytes;
constexpr char kCurveName[] = "prime256v1";
constexpr char kAlphabetUrl[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
constexpr char kAlphabetStd[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

struct PkeyFree {
  void operator()(EVP_PKEY* p) const { EVP_PKEY_free(p); }
};
using PkeyPtr = std::unique_ptr<EVP_PKEY, PkeyFree>;
struct BioFree {
  void operator()(BIO* b) const { BIO_free(b); }
};
using BioPtr = std::unique_ptr<BIO, BioFree>;
struct BnFree {
  void operator()(BIGNUM* b) const { BN_free(b); }
};
using BnPtr = std::unique_ptr<BIGNUM, BnFree>;
struct MdCtxFree {
  void operator()(EVP_MD_CTX* c) const { EVP_MD_CTX_free(c); }
};
using MdCtxPtr = std::unique_ptr<EVP_MD_CTX, MdCtxFree>;
struct PkeyCtxFree {
  void operator()(EVP_PKEY_CTX* c) const { EVP_PKEY_CTX_free(c); }
};
using PkeyCtxPtr = std::unique_ptr<EVP_PKEY_CTX, PkeyCtxFree>;
struct SigFree {
  void operator()(ECDSA_SIG* s) const { ECDSA_SIG_free(s); }
};
using SigPtr = std::unique_ptr<ECDSA_SIG, SigFree>;

std::string opensslError() {
  unsigned long e = ERR_get_error();
  ERR_clear_error();
  if (e == 0) return "unknown OpenSSL error";
  char buf[256];
  ERR_error_string_n(e, buf, sizeof buf);
  return buf;
}

std::string base64Encode(std::string_view in, const char* alphabet, bool pad) {
  std::string out;
  out.reserve((in.size() + 2) / 3 * 4);
  size_t i = 0;
  auto byte = [&](size_t k) { return static_cast<unsigned char>(in[k]); };
  for (; i + 3 <= in.size(); i += 3) {
    uint32_t v = (byte(i) << 16) | (byte(i + 1) << 8) | byte(i + 2);
    out += alphabet[(v >> 18) & 63];
    out += alphabet[(v >> 12) & 63];
    out += alphabet[(v >> 6) & 63];
    out += alphabet[v & 63];
  }
  size_t rest = in.size() - i;
  if (rest == 1) {
    uint32_t v = byte(i) << 16;
    out += alphabet[(v >> 18) & 63];
    out += alphabet[(v >> 12) & 63];
    if (pad) out += "==";
  } else if (rest == 2) {
    uint32_t v = (byte(i) << 16) | (byte(i + 1) << 8);
    out += alphabet[(v >> 18) & 63];
    out += alphabet[(v >> 12) & 63];
    out += alphabet[(v >> 6) & 63];
    if (pad) out += '=';
  }
  return out;
}

// Decodes unpadded text over `alphabet`. Trailing bits must be zero so that every byte
// string has exactly one encoding (a token cannot be altered without changing its text).
Result<std::string> base64DecodeRaw(std::string_view in, const char* alphabet,
                                    std::string_view what) {
  std::array<int8_t, 256> table;
  table.fill(-1);
  for (int k = 0; k < 64; ++k) table[static_cast<unsigned char>(alphabet[k])] = int8_t(k);
  if (in.size() % 4 == 1)
    return Status::invalidArgument(std::string(what) + ": length " + std::to_string(in.size()) +
                                   " is impossible for base64");
  std::string out;
  out.reserve(in.size() * 3 / 4);
  uint32_t acc = 0;
  int bits = 0;
  for (size_t k = 0; k < in.size(); ++k) {
    int8_t v = table[static_cast<unsigned char>(in[k])];
    if (v < 0) {
      std::string shown = std::isprint(static_cast<unsigned char>(in[k]))
                              ? std::string("'") + in[k] + "'"
                              : "byte " + std::to_string(static_cast<unsigned char>(in[k]));
      return Status::invalidArgument(std::string(what) + ": " + shown + " at offset " +
                                     std::to_string(k) + " is not a base64 character");
    }
    acc = (acc << 6) | uint32_t(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out += static_cast<char>((acc >> bits) & 0xff);
    }
  }
  if (bits > 0 && (acc & ((1u << bits) - 1)) != 0)
    return Status::invalidArgument(std::string(what) + ": non-canonical base64 (trailing bits)");
  return out;
}

std::string sha256(std::string_view data) {
  unsigned char md[32];
  unsigned int len = 0;
  EVP_Digest(data.data(), data.size(), md, &len, EVP_sha256(), nullptr);
  return std::string(reinterpret_cast<char*>(md), len);
}

std::string thumbprint(const std::string& x_b64, const std::string& y_b64) {
  // RFC 7638: the required members only, in lexicographic order, no whitespace.
  std::string canonical =
      R"({"crv":"P-256","kty":"EC","x":")" + x_b64 + R"(","y":")" + y_b64 + R"("})";
  return base64UrlEncode(sha256(canonical));
}

Result<std::string> coordinate(EVP_PKEY* pkey, const char* param) {
  BIGNUM* raw = nullptr;
  if (EVP_PKEY_get_bn_param(pkey, param, &raw) != 1)
    return Status::internal("reading the EC public key: " + opensslError());
  BnPtr bn(raw);
  std::string out(kCoordBytes, '\0');
  if (BN_bn2binpad(bn.get(), reinterpret_cast<unsigned char*>(out.data()), kCoordBytes) !=
      int(kCoordBytes))
    return Status::internal("EC coordinate does not fit 32 bytes");
  return out;
}

Result<std::string> groupName(EVP_PKEY* pkey) {
  char name[80] = {};
  size_t len = 0;
  if (EVP_PKEY_get_utf8_string_param(pkey, OSSL_PKEY_PARAM_GROUP_NAME, name, sizeof name, &len) !=
      1)
    return Status::invalidArgument("the EC key names no curve");
  return std::string(name, len);
}

Result<PkeyPtr> publicKeyFromCoordinates(const std::string& x, const std::string& y) {
  std::string point = "\x04" + x + y;  // SEC1 uncompressed
  std::unique_ptr<OSSL_PARAM_BLD, decltype(&OSSL_PARAM_BLD_free)> bld(OSSL_PARAM_BLD_new(),
                                                                      OSSL_PARAM_BLD_free);
  if (!bld ||
      OSSL_PARAM_BLD_push_utf8_string(bld.get(), OSSL_PKEY_PARAM_GROUP_NAME, kCurveName, 0) != 1 ||
      OSSL_PARAM_BLD_push_octet_string(bld.get(), OSSL_PKEY_PARAM_PUB_KEY, point.data(),
                                       point.size()) != 1)
    return Status::internal("building EC key parameters: " + opensslError());
  std::unique_ptr<OSSL_PARAM, decltype(&OSSL_PARAM_free)> params(OSSL_PARAM_BLD_to_param(bld.get()),
                                                                 OSSL_PARAM_free);
  PkeyCtxPtr ctx(EVP_PKEY_CTX_new_from_name(nullptr, "EC", nullptr));
  EVP_PKEY* raw = nullptr;
  if (!params || !ctx || EVP_PKEY_fromdata_init(ctx.get()) != 1 ||
      EVP_PKEY_fromdata(ctx.get(), &raw, EVP_PKEY_PUBLIC_KEY, params.get()) != 1) {
    ERR_clear_error();
    return Status::invalidArgument("x and y are not a point on P-256");
  }
  PkeyPtr pkey(raw);
  // fromdata decodes the point; the explicit check also refuses the point at infinity and
  // points outside the group, whatever the provider does on import.
  PkeyCtxPtr check(EVP_PKEY_CTX_new_from_pkey(nullptr, pkey.get(), nullptr));
  if (!check || EVP_PKEY_public_check(check.get()) != 1) {
    ERR_clear_error();
    return Status::invalidArgument("x and y are not a valid P-256 public key");
  }
  return pkey;
}

// OpenSSL would prompt on the terminal for an encrypted PEM; we never want that.
int noPassword(char*, int, int, void*) {
  return 0;
}

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

std::string joinKids(const std::vector<std::string>& kids) {
  std::string out;
  for (const auto& k : kids) out += (out.empty() ? "" : ", ") + k;
  return out.empty() ? "none" : out;
}

Status denied(std::string message) {
  return Status::permissionDenied(std::move(message));
}

Result<nlohmann::json> decodeJsonPart(std::string_view part, std::string_view what) {
  auto bytes = base64UrlDecode(part);
  if (!bytes.isOk())
    return denied("token " + std::string(what) + " is not valid base64url (" +
                  bytes.status().message() + ")");
  nlohmann::json j = nlohmann::json::parse(*bytes, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object())
    return denied("token " + std::string(what) + " is not a JSON object");
  return j;
}

// A NumericDate claim as whole seconds; fractions are allowed by RFC 7519 and truncated.
Result<std::optional<int64_t>> numericDate(const nlohmann::json& claims, const char* name) {
  auto it = claims.find(name);
  if (it == claims.end()) return std::optional<int64_t>();
  if (!it->is_number()) return denied(std::string("token claim ") + name + " is not a number");
  double v = it->get<double>();
  if (!std::isfinite(v) || std::fabs(v) > 1e15)
    return denied(std::string("token claim ") + name + " is out of range");
  return std::optional<int64_t>(static_cast<int64_t>(std::floor(v)));
}

}  // namespace

std::string base64UrlEncode(std::string_view bytes) {
  return base64Encode(bytes, kAlphabetUrl, /*pad=*/false);
}

Result<std::string> base64UrlDecode(std::string_view text) {
  return base64DecodeRaw(text, kAlphabetUrl, "base64url");
}

Result<std::string> base64Decode(std::string_view text) {
  if (text.size() % 4 != 0)
    return Status::invalidArgument("base64: length " + std::to_string(text.size()) +
                                   " is not a multiple of 4");
  size_t pad = 0;
  while (pad < 2 && pad < text.size() && text[text.size() - 1 - pad] == '=') ++pad;
  return base64DecodeRaw(text.substr(0, text.size() - pad), kAlphabetStd, "base64");
}

// --- SigningKey ---

struct SigningKey::Impl {
  PkeyPtr pkey;
  std::string x_b64, y_b64;
};

SigningKey::SigningKey(std::shared_ptr<const Impl> impl)
    : impl_(std::move(impl)), kid_(thumbprint(impl_->x_b64, impl_->y_b64)) {}

namespace {
Result<std::shared_ptr<const SigningKey::Impl>> makeImpl(PkeyPtr pkey) {
  ASSIGN_OR_RETURN(std::string x, coordinate(pkey.get(), OSSL_PKEY_PARAM_EC_PUB_X));
  ASSIGN_OR_RETURN(std::string y, coordinate(pkey.get(), OSSL_PKEY_PARAM_EC_PUB_Y));
  auto impl = std::make_shared<SigningKey::Impl>();
  impl->pkey = std::move(pkey);
  impl->x_b64 = base64UrlEncode(x);
  impl->y_b64 = base64UrlEncode(y);
  return std::shared_ptr<const SigningKey::Impl>(std::move(impl));
}
}  // namespace

Result<SigningKey> SigningKey::generate() {
  PkeyPtr pkey(EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256"));
  if (!pkey) return Status::internal("generating a P-256 key: " + opensslError());
  ASSIGN_OR_RETURN(auto impl, makeImpl(std::move(pkey)));
  return SigningKey(std::move(impl));
}

Result<SigningKey> SigningKey::fromPem(std::string_view pem) {
  BioPtr bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  if (!bio) return Status::internal("BIO_new_mem_buf: " + opensslError());
  PkeyPtr pkey(PEM_read_bio_PrivateKey(bio.get(), nullptr, noPassword, nullptr));
  if (!pkey) {
    ERR_clear_error();
    return Status::invalidArgument(
        "signing key: not a PEM private key (expected an unencrypted PKCS#8 P-256 key)");
  }
  if (!EVP_PKEY_is_a(pkey.get(), "EC"))
    return Status::invalidArgument(std::string("signing key: a ") +
                                   EVP_PKEY_get0_type_name(pkey.get()) +
                                   " key; ES256 needs an EC P-256 key");
  ASSIGN_OR_RETURN(std::string curve, groupName(pkey.get()));
  if (curve != kCurveName)
    return Status::invalidArgument("signing key: curve " + curve + "; ES256 needs P-256");
  ASSIGN_OR_RETURN(auto impl, makeImpl(std::move(pkey)));
  return SigningKey(std::move(impl));
}

std::string SigningKey::toPem() const {
  BioPtr bio(BIO_new(BIO_s_mem()));
  if (!bio || PEM_write_bio_PrivateKey(bio.get(), impl_->pkey.get(), nullptr, nullptr, 0, nullptr,
                                       nullptr) != 1)
    return {};
  char* data = nullptr;
  long len = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<size_t>(len));
}

nlohmann::json SigningKey::publicJwk() const {
  return {{"kty", "EC"}, {"crv", "P-256"},    {"x", impl_->x_b64}, {"y", impl_->y_b64},
          {"kid", kid_}, {"alg", kAlgorithm}, {"use", "sig"}};
}

Result<std::string> SigningKey::sign(const nlohmann::json& header_fields,
                                     const nlohmann::json& claims) const {
  if (!header_fields.is_object() || !claims.is_object())
    return Status::invalidArgument("JWT header fields and claims must be JSON objects");
  nlohmann::json header = header_fields;
  header["alg"] = kAlgorithm;
  header["kid"] = kid_;
  std::string input =
      base64UrlEncode(header.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace)) + "." +
      base64UrlEncode(claims.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
  MdCtxPtr ctx(EVP_MD_CTX_new());
  size_t der_len = 0;
  if (!ctx ||
      EVP_DigestSignInit(ctx.get(), nullptr, EVP_sha256(), nullptr, impl_->pkey.get()) != 1 ||
      EVP_DigestSign(ctx.get(), nullptr, &der_len,
                     reinterpret_cast<const unsigned char*>(input.data()), input.size()) != 1)
    return Status::internal("ES256 sign: " + opensslError());
  std::string der(der_len, '\0');
  if (EVP_DigestSign(ctx.get(), reinterpret_cast<unsigned char*>(der.data()), &der_len,
                     reinterpret_cast<const unsigned char*>(input.data()), input.size()) != 1)
    return Status::internal("ES256 sign: " + opensslError());
  // JOSE wants r || s, each 32 bytes big-endian, not the DER SEQUENCE OpenSSL produces.
  const unsigned char* p = reinterpret_cast<const unsigned char*>(der.data());
  SigPtr sig(d2i_ECDSA_SIG(nullptr, &p, static_cast<long>(der_len)));
  if (!sig) return Status::internal("ES256 sign: unreadable DER signature");
  const BIGNUM* r = nullptr;
  const BIGNUM* s = nullptr;
  ECDSA_SIG_get0(sig.get(), &r, &s);
  std::string raw(kSignatureBytes, '\0');
  auto* out = reinterpret_cast<unsigned char*>(raw.data());
  if (BN_bn2binpad(r, out, kCoordBytes) != int(kCoordBytes) ||
      BN_bn2binpad(s, out + kCoordBytes, kCoordBytes) != int(kCoordBytes))
    return Status::internal("ES256 sign: r or s does not fit 32 bytes");
  return input + "." + base64UrlEncode(raw);
}

// --- KeySet ---

struct KeySet::PublicKey {
  PkeyPtr pkey;
};

KeySet::KeySet() = default;

void KeySet::add(const SigningKey& key) {
  // The public half, on its own, so a verifier never holds the private scalar.
  nlohmann::json jwk = key.publicJwk();
  auto x = base64UrlDecode(jwk["x"].get<std::string>());
  auto y = base64UrlDecode(jwk["y"].get<std::string>());
  if (!x.isOk() || !y.isOk()) return;
  auto pkey = publicKeyFromCoordinates(*x, *y);
  if (!pkey.isOk()) return;
  auto pub = std::make_shared<PublicKey>();
  pub->pkey = std::move(pkey).value();
  keys_[key.kid()] = std::move(pub);
}

Result<KeySet> KeySet::fromJwks(const nlohmann::json& jwks) {
  if (!jwks.is_object()) return Status::invalidArgument("jwks: expected a JSON object");
  auto it = jwks.find("keys");
  if (it == jwks.end() || !it->is_array())
    return Status::invalidArgument("jwks: .keys: expected an array of JWKs");
  KeySet set;
  for (size_t i = 0; i < it->size(); ++i) {
    const auto& k = (*it)[i];
    std::string where = "jwks: .keys[" + std::to_string(i) + "]";
    if (!k.is_object()) return Status::invalidArgument(where + ": expected an object");
    auto str = [&](const char* name) -> std::optional<std::string> {
      auto f = k.find(name);
      if (f == k.end() || !f->is_string()) return std::nullopt;
      return f->get<std::string>();
    };
    if (str("kty") != "EC") continue;
    if (auto alg = str("alg"); k.contains("alg") && alg != std::string(kAlgorithm)) continue;
    if (auto use = str("use"); k.contains("use") && use != "sig") continue;
    if (str("crv") != "P-256") continue;
    auto kid = str("kid");
    if (!kid || kid->empty())
      return Status::invalidArgument(where + ".kid: missing or not a string");
    if (set.keys_.count(*kid))
      return Status::invalidArgument(where + ".kid: duplicate key id " + *kid);
    std::string coords[2];
    const char* names[2] = {"x", "y"};
    for (int c = 0; c < 2; ++c) {
      auto text = str(names[c]);
      if (!text)
        return Status::invalidArgument(where + "." + names[c] + ": missing or not a string");
      auto bytes = base64UrlDecode(*text);
      if (!bytes.isOk())
        return Status::invalidArgument(where + "." + names[c] + ": " + bytes.status().message());
      if (bytes->size() != kCoordBytes)
        return Status::invalidArgument(where + "." + names[c] + ": expected 32 bytes, got " +
                                       std::to_string(bytes->size()));
      coords[c] = std::move(bytes).value();
    }
    if (k.contains("d"))
      return Status::invalidArgument(where +
                                     ": holds a private key (d); a JWKS publishes "
                                     "public keys only");
    auto pkey = publicKeyFromCoordinates(coords[0], coords[1]);
    if (!pkey.isOk()) return Status::invalidArgument(where + ": " + pkey.status().message());
    auto pub = std::make_shared<PublicKey>();
    pub->pkey = std::move(pkey).value();
    set.keys_[*kid] = std::move(pub);
  }
  return set;
}

Result<KeySet> KeySet::fromJwksText(std::string_view text) {
  nlohmann::json j = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return Status::invalidArgument("jwks: not valid JSON");
  return fromJwks(j);
}

bool KeySet::contains(std::string_view kid) const {
  return keys_.find(kid) != keys_.end();
}

std::vector<std::string> KeySet::kids() const {
  std::vector<std::string> out;
  for (const auto& [kid, _] : keys_) out.push_back(kid);
  return out;
}

std::shared_ptr<const KeySet::PublicKey> KeySet::find(std::string_view kid) const {
  auto it = keys_.find(kid);
  return it == keys_.end() ? nullptr : it->second;
}

// --- verify ---

Result<nlohmann::json> verify(std::string_view token, const KeySet& keys,
                              const VerifyOptions& options) {
  if (options.issuer.empty() || options.audience.empty())
    return Status::invalidArgument(
        "jwt::VerifyOptions: issuer and audience are required (a token must be checked "
        "against who issued it and whom it is for)");
  if (token.size() > kMaxTokenBytes)
    return denied("token is " + std::to_string(token.size()) + " bytes; at most " +
                  std::to_string(kMaxTokenBytes) + " are accepted");
  if (token.empty()) return denied("token is empty");
  size_t dot1 = token.find('.');
  size_t dot2 = dot1 == std::string_view::npos ? dot1 : token.find('.', dot1 + 1);
  if (dot2 == std::string_view::npos || token.find('.', dot2 + 1) != std::string_view::npos) {
    size_t parts = 1;
    for (char c : token) parts += c == '.';
    return denied("token is not a compact JWS (expected 3 dot-separated parts, got " +
                  std::to_string(parts) + ")");
  }
  std::string_view header_part = token.substr(0, dot1);
  std::string_view payload_part = token.substr(dot1 + 1, dot2 - dot1 - 1);
  std::string_view signature_part = token.substr(dot2 + 1);

  ASSIGN_OR_RETURN(nlohmann::json header, decodeJsonPart(header_part, "header"));
  auto alg = header.find("alg");
  if (alg == header.end() || !alg->is_string()) return denied("token header has no alg");
  if (alg->get<std::string>() != kAlgorithm)
    return denied("alg " + alg->get<std::string>() + " is not allowed (only " +
                  std::string(kAlgorithm) + " is)");
  if (header.contains("crit"))
    return denied("token header has crit " + header["crit"].dump() +
                  ": no critical extension is understood");
  if (!options.typ.empty()) {
    auto typ = header.find("typ");
    if (typ == header.end() || !typ->is_string())
      return denied("token typ is missing; expected " + options.typ);
    std::string got = lower(typ->get<std::string>());
    std::string want = lower(options.typ);
    if (got != want && got != "application/" + want)
      return denied("token typ " + typ->get<std::string>() + " is not " + options.typ);
  }
  auto kid = header.find("kid");
  if (kid == header.end() || !kid->is_string()) return denied("token header has no kid");
  std::string kid_text = kid->get<std::string>();
  auto key = keys.find(kid_text);
  if (!key) return denied("unknown key id " + kid_text + " (known: " + joinKids(keys.kids()) + ")");

  auto sig_raw = base64UrlDecode(signature_part);
  if (!sig_raw.isOk())
    return denied("token signature is not valid base64url (" + sig_raw.status().message() + ")");
  if (sig_raw->size() != kSignatureBytes)
    return denied("token signature is " + std::to_string(sig_raw->size()) +
                  " bytes; ES256 signatures are 64");
  const auto* sb = reinterpret_cast<const unsigned char*>(sig_raw->data());
  BnPtr r(BN_bin2bn(sb, kCoordBytes, nullptr));
  BnPtr s(BN_bin2bn(sb + kCoordBytes, kCoordBytes, nullptr));
  SigPtr sig(ECDSA_SIG_new());
  if (!r || !s || !sig || ECDSA_SIG_set0(sig.get(), r.get(), s.get()) != 1)
    return Status::internal("ES256 verify: " + opensslError());
  r.release();  // owned by sig now
  s.release();
  unsigned char* der = nullptr;
  int der_len = i2d_ECDSA_SIG(sig.get(), &der);
  if (der_len <= 0) return Status::internal("ES256 verify: " + opensslError());
  std::unique_ptr<unsigned char, void (*)(unsigned char*)> der_owner(
      der, [](unsigned char* p) { OPENSSL_free(p); });
  std::string_view signed_bytes = token.substr(0, dot2);  // exactly as received
  MdCtxPtr ctx(EVP_MD_CTX_new());
  if (!ctx || EVP_DigestVerifyInit(ctx.get(), nullptr, EVP_sha256(), nullptr, key->pkey.get()) != 1)
    return Status::internal("ES256 verify: " + opensslError());
  int ok = EVP_DigestVerify(ctx.get(), der, static_cast<size_t>(der_len),
                            reinterpret_cast<const unsigned char*>(signed_bytes.data()),
                            signed_bytes.size());
  ERR_clear_error();
  if (ok != 1) return denied("token signature does not verify with key " + kid_text);

  ASSIGN_OR_RETURN(nlohmann::json claims, decodeJsonPart(payload_part, "payload"));

  auto iss = claims.find("iss");
  if (iss == claims.end() || !iss->is_string()) return denied("token has no iss");
  if (iss->get<std::string>() != options.issuer)
    return denied("token issuer " + iss->get<std::string>() + " is not " + options.issuer);

  auto aud = claims.find("aud");
  if (aud == claims.end()) return denied("token has no aud");
  std::vector<std::string> audiences;
  if (aud->is_string()) {
    audiences.push_back(aud->get<std::string>());
  } else if (aud->is_array()) {
    for (const auto& a : *aud) {
      if (!a.is_string()) return denied("token aud holds a non-string");
      audiences.push_back(a.get<std::string>());
    }
  } else {
    return denied("token aud is neither a string nor an array");
  }
  if (std::find(audiences.begin(), audiences.end(), options.audience) == audiences.end()) {
    std::string list;
    for (const auto& a : audiences) list += (list.empty() ? "" : ", ") + a;
    return denied("audience " + options.audience + " not in [" + list + "]");
  }

  int64_t now = std::chrono::duration_cast<std::chrono::seconds>(
                    options.now.value_or(std::chrono::system_clock::now()).time_since_epoch())
                    .count();
  int64_t leeway = options.leeway.count();
  ASSIGN_OR_RETURN(auto exp, numericDate(claims, "exp"));
  if (!exp) return denied("token has no exp");
  if (now >= *exp + leeway) return denied("token expired " + std::to_string(now - *exp) + " s ago");
  ASSIGN_OR_RETURN(auto nbf, numericDate(claims, "nbf"));
  if (nbf && *nbf > now + leeway)
    return denied("token is not valid yet (nbf is " + std::to_string(*nbf - now) +
                  " s in the future)");
  ASSIGN_OR_RETURN(auto iat, numericDate(claims, "iat"));
  if (iat && *iat > now + leeway)
    return denied("token was issued " + std::to_string(*iat - now) + " s in the future (iat)");
  return claims;
}

std::vector<std::string> splitScopes(std::string_view scopes) {
  std::vector<std::string> out;
  size_t i = 0;
  while (i < scopes.size()) {
    size_t j = scopes.find(' ', i);
    if (j == std::string_view::npos) j = scopes.size();
    if (j > i) out.emplace_back(scopes.substr(i, j - i));
    i = j + 1;
  }
  return out;
}

std::string joinScopes(const std::vector<std::string>& scopes) {
  std::string out;
  for (const auto& s : scopes) {
    if (!out.empty()) out += ' ';
    out += s;
  }
  return out;
}

bool hasScope(const nlohmann::json& claims, std::string_view scope) {
  auto it = claims.find("scope");
  if (it == claims.end()) return false;
  if (it->is_string()) {
    std::string_view s = it->get_ref<const std::string&>();
    size_t i = 0;
    while (i < s.size()) {
      size_t j = s.find(' ', i);
      if (j == std::string_view::npos) j = s.size();
      if (s.substr(i, j - i) == scope) return true;
      i = j + 1;
    }
    return false;
  }
  if (it->is_array()) {
    for (const auto& v : *it)
      if (v.is_string() && v.get_ref<const std::string&>() == scope) return true;
  }
  return false;
}

}  // namespace edge::jwt
