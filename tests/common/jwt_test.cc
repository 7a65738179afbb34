#include "common/jwt.h"

#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>

#include <chrono>

namespace edge::jwt {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;

constexpr int64_t kNow = 1'800'000'000;
const WallTime kNowTime{std::chrono::seconds(kNow)};

json claimsAt(int64_t now, int64_t ttl = 300) {
  return {{"iss", "https://backend.test"},
          {"sub", "node:0123456789abcdef"},
          {"aud", "edge-backend"},
          {"iat", now},
          {"exp", now + ttl},
          {"scope", "discovery:read"}};
}

VerifyOptions options(std::string audience = "edge-backend") {
  VerifyOptions o;
  o.issuer = "https://backend.test";
  o.audience = std::move(audience);
  o.now = kNowTime;
  return o;
}

class JwtTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto k = SigningKey::generate();
    ASSERT_TRUE(k.isOk()) << k.status().toString();
    key_ = std::make_unique<SigningKey>(*k);
    keys_.add(*key_);
  }
  std::string sign(const json& claims, json header = {{"typ", "at+jwt"}}) {
    auto t = key_->sign(header, claims);
    EXPECT_TRUE(t.isOk()) << t.status().toString();
    return t.valueOr("");
  }
  // A token with an arbitrary header and payload, signed by nothing in particular.
  static std::string forge(const json& header, const json& claims, std::string_view sig) {
    return base64UrlEncode(header.dump()) + "." + base64UrlEncode(claims.dump()) + "." +
           base64UrlEncode(sig);
  }
  void expectDenied(const std::string& token, const std::string& fragment,
                    const VerifyOptions& o = options()) {
    auto r = verify(token, keys_, o);
    ASSERT_FALSE(r.isOk()) << "accepted: " << token;
    EXPECT_EQ(r.status().code(), StatusCode::kPermissionDenied) << r.status().toString();
    EXPECT_NE(r.status().message().find(fragment), std::string::npos)
        << "message: " << r.status().message() << "\nexpected to contain: " << fragment;
  }

  std::unique_ptr<SigningKey> key_;
  KeySet keys_;
};

TEST(Base64Url, RoundTripsEveryLength) {
  std::string bytes;
  for (int i = 0; i < 70; ++i) {
    auto enc = base64UrlEncode(bytes);
    EXPECT_EQ(enc.find('='), std::string::npos);
    auto dec = base64UrlDecode(enc);
    ASSERT_TRUE(dec.isOk()) << dec.status().toString();
    EXPECT_EQ(*dec, bytes);
    bytes += static_cast<char>(i * 37 + 250);
  }
  EXPECT_EQ(base64UrlEncode("\xfb\xff"), "-_8");
}

TEST(Base64Url, RefusesBadInputWithWhereItIs) {
  auto r = base64UrlDecode("ab+c");
  ASSERT_FALSE(r.isOk());
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(r.status().message().find("'+' at offset 2"), std::string::npos)
      << r.status().message();
  EXPECT_FALSE(base64UrlDecode("abcde").isOk());  // impossible length
  EXPECT_FALSE(base64UrlDecode("QQ==").isOk());   // padding is not base64url
  EXPECT_FALSE(base64UrlDecode("QR").isOk());     // non-canonical trailing bits
}

TEST(Base64, DecodesBasicCredentials) {
  auto r = base64Decode("Y2xpZW50OnNlY3JldA==");
  ASSERT_TRUE(r.isOk());
  EXPECT_EQ(*r, "client:secret");
  EXPECT_FALSE(base64Decode("Y2xpZW50OnNlY3JldA=").isOk());
}

TEST_F(JwtTest, SignVerifyRoundTrip) {
  std::string token = sign(claimsAt(kNow));
  auto claims = verify(token, keys_, options());
  ASSERT_TRUE(claims.isOk()) << claims.status().toString();
  EXPECT_EQ((*claims)["sub"], "node:0123456789abcdef");
  EXPECT_EQ((*claims)["scope"], "discovery:read");

  // The header carries alg and kid whatever the caller passed.
  auto dot = token.find('.');
  auto header = json::parse(*base64UrlDecode(token.substr(0, dot)));
  EXPECT_EQ(header["alg"], "ES256");
  EXPECT_EQ(header["kid"], key_->kid());
  EXPECT_EQ(header["typ"], "at+jwt");
  // JOSE raw r||s: 64 bytes, 86 base64url chars.
  EXPECT_EQ(token.size() - token.rfind('.') - 1, 86u);
}

TEST_F(JwtTest, AudienceArrayAndApplicationTyp) {
  json c = claimsAt(kNow);
  c["aud"] = json::array({"edge-backend", "edge-node"});
  std::string token = sign(c, {{"typ", "application/AT+JWT"}});
  EXPECT_TRUE(verify(token, keys_, options("edge-node")).isOk());
  EXPECT_TRUE(verify(token, keys_, options("edge-backend")).isOk());
}

TEST_F(JwtTest, PemRoundTripKeepsKid) {
  std::string pem = key_->toPem();
  EXPECT_NE(pem.find("BEGIN PRIVATE KEY"), std::string::npos);
  auto back = SigningKey::fromPem(pem);
  ASSERT_TRUE(back.isOk()) << back.status().toString();
  EXPECT_EQ(back->kid(), key_->kid());
  // The reloaded key signs tokens the original's public key verifies.
  auto token = back->sign({{"typ", "at+jwt"}}, claimsAt(kNow));
  ASSERT_TRUE(token.isOk());
  EXPECT_TRUE(verify(*token, keys_, options()).isOk());
}

TEST_F(JwtTest, PemRefusesOtherKeys) {
  auto r = SigningKey::fromPem("not a pem");
  ASSERT_FALSE(r.isOk());
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);

  EVP_PKEY* ed = EVP_PKEY_Q_keygen(nullptr, nullptr, "ED25519");
  ASSERT_NE(ed, nullptr);
  BIO* bio = BIO_new(BIO_s_mem());
  PEM_write_bio_PrivateKey(bio, ed, nullptr, nullptr, 0, nullptr, nullptr);
  char* data = nullptr;
  long len = BIO_get_mem_data(bio, &data);
  std::string pem(data, static_cast<size_t>(len));
  BIO_free(bio);
  EVP_PKEY_free(ed);
  r = SigningKey::fromPem(pem);
  ASSERT_FALSE(r.isOk());
  EXPECT_NE(r.status().message().find("ED25519"), std::string::npos) << r.status().message();

  EVP_PKEY* p384 = EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-384");
  bio = BIO_new(BIO_s_mem());
  PEM_write_bio_PrivateKey(bio, p384, nullptr, nullptr, 0, nullptr, nullptr);
  len = BIO_get_mem_data(bio, &data);
  pem.assign(data, static_cast<size_t>(len));
  BIO_free(bio);
  EVP_PKEY_free(p384);
  r = SigningKey::fromPem(pem);
  ASSERT_FALSE(r.isOk());
  EXPECT_NE(r.status().message().find("secp384r1"), std::string::npos) << r.status().message();
}

TEST_F(JwtTest, KidIsTheRfc7638Thumbprint) {
  // RFC 7638 section 3.1 computes the thumbprint over the required members only, in
  // lexicographic order; check against an independent computation.
  json jwk = key_->publicJwk();
  std::string canonical =
      json({{"crv", jwk["crv"]}, {"kty", jwk["kty"]}, {"x", jwk["x"]}, {"y", jwk["y"]}}).dump();
  unsigned char md[32];
  unsigned int n = 0;
  EVP_Digest(canonical.data(), canonical.size(), md, &n, EVP_sha256(), nullptr);
  EXPECT_EQ(key_->kid(), base64UrlEncode(std::string(reinterpret_cast<char*>(md), n)));
  EXPECT_EQ(key_->kid().size(), 43u);
  EXPECT_EQ(jwk["kid"], key_->kid());
  EXPECT_FALSE(jwk.contains("d"));
}

TEST_F(JwtTest, JwksRoundTripSkipsForeignKeysAndRefusesMalformed) {
  json jwks = {{"keys",
                {key_->publicJwk(),
                 {{"kty", "RSA"}, {"kid", "rsa1"}, {"n", "AQAB"}, {"e", "AQAB"}},
                 {{"kty", "EC"}, {"crv", "P-384"}, {"kid", "p384"}, {"x", "AA"}, {"y", "AA"}},
                 {{"kty", "EC"}, {"crv", "P-256"}, {"alg", "ECDH-ES"}, {"kid", "enc"}}}}};
  auto set = KeySet::fromJwks(jwks);
  ASSERT_TRUE(set.isOk()) << set.status().toString();
  EXPECT_EQ(set->size(), 1u);
  EXPECT_TRUE(set->contains(key_->kid()));
  EXPECT_TRUE(verify(sign(claimsAt(kNow)), *set, options()).isOk());

  json bad = key_->publicJwk();
  bad["x"] = base64UrlEncode(std::string(31, 'a'));
  auto r = KeySet::fromJwks({{"keys", {bad}}});
  ASSERT_FALSE(r.isOk());
  EXPECT_EQ(r.status().message(), "jwks: .keys[0].x: expected 32 bytes, got 31");

  bad = key_->publicJwk();
  bad["y"] = bad["x"];  // (x, x) is (almost surely) not on the curve
  r = KeySet::fromJwks({{"keys", {bad}}});
  ASSERT_FALSE(r.isOk());
  EXPECT_NE(r.status().message().find("not a point on P-256"), std::string::npos)
      << r.status().message();

  bad = key_->publicJwk();
  bad.erase("kid");
  r = KeySet::fromJwks({{"keys", {bad}}});
  ASSERT_FALSE(r.isOk());
  EXPECT_NE(r.status().message().find(".keys[0].kid"), std::string::npos);

  r = KeySet::fromJwks({{"keys", {key_->publicJwk(), key_->publicJwk()}}});
  ASSERT_FALSE(r.isOk());
  EXPECT_NE(r.status().message().find("duplicate key id"), std::string::npos);

  EXPECT_FALSE(KeySet::fromJwksText("{").isOk());
  EXPECT_FALSE(KeySet::fromJwksText("{\"keys\": 3}").isOk());
}

TEST_F(JwtTest, Expired) {
  expectDenied(sign(claimsAt(kNow - 342)), "token expired 42 s ago");
  // Within the 30 s leeway it still passes.
  EXPECT_TRUE(verify(sign(claimsAt(kNow - 320)), keys_, options()).isOk());
}

TEST_F(JwtTest, ExpRequired) {
  json c = claimsAt(kNow);
  c.erase("exp");
  expectDenied(sign(c), "token has no exp");
  c["exp"] = "tomorrow";
  expectDenied(sign(c), "exp is not a number");
}

TEST_F(JwtTest, NotYetValid) {
  json c = claimsAt(kNow);
  c["nbf"] = kNow + 100;
  expectDenied(sign(c), "not valid yet (nbf is 100 s in the future)");
  c = claimsAt(kNow + 100);
  expectDenied(sign(c), "issued 100 s in the future");
}

TEST_F(JwtTest, WrongAudience) {
  expectDenied(sign(claimsAt(kNow)), "audience edge-node not in [edge-backend]",
               options("edge-node"));
  json c = claimsAt(kNow);
  c.erase("aud");
  expectDenied(sign(c), "token has no aud");
}

TEST_F(JwtTest, WrongIssuer) {
  json c = claimsAt(kNow);
  c["iss"] = "https://evil.test";
  expectDenied(sign(c), "token issuer https://evil.test is not https://backend.test");
}

TEST_F(JwtTest, WrongKeyWithSameKid) {
  // A token signed by another key that claims our kid.
  auto other = SigningKey::generate();
  ASSERT_TRUE(other.isOk());
  std::string token = *other->sign({{"typ", "at+jwt"}}, claimsAt(kNow));
  std::string header = json({{"alg", "ES256"}, {"typ", "at+jwt"}, {"kid", key_->kid()}}).dump();
  std::string rest = token.substr(token.find('.'));
  std::string forged = base64UrlEncode(header) + rest;
  expectDenied(forged, "token signature does not verify with key " + key_->kid());
}

TEST_F(JwtTest, UnknownKid) {
  auto other = SigningKey::generate();
  ASSERT_TRUE(other.isOk());
  std::string token = *other->sign({{"typ", "at+jwt"}}, claimsAt(kNow));
  expectDenied(token, "unknown key id " + other->kid() + " (known: " + key_->kid() + ")");
  expectDenied(forge({{"alg", "ES256"}, {"typ", "at+jwt"}}, claimsAt(kNow), std::string(64, 'x')),
               "token header has no kid");
}

TEST_F(JwtTest, AlgNone) {
  expectDenied(
      forge({{"alg", "none"}, {"typ", "at+jwt"}, {"kid", key_->kid()}}, claimsAt(kNow), ""),
      "alg none is not allowed");
  // Unsigned tokens are often sent with an empty third part and a trailing dot.
  std::string t = base64UrlEncode(json({{"alg", "none"}}).dump()) + "." +
                  base64UrlEncode(claimsAt(kNow).dump()) + ".";
  expectDenied(t, "alg none is not allowed");
}

TEST_F(JwtTest, AlgHs256WithPublicKeyAsSecret) {
  // The classic confusion attack: HMAC keyed with the verifier's public key.
  std::string secret = key_->publicJwk().dump();
  std::string input =
      base64UrlEncode(json({{"alg", "HS256"}, {"typ", "at+jwt"}, {"kid", key_->kid()}}).dump()) +
      "." + base64UrlEncode(claimsAt(kNow).dump());
  unsigned char mac[32];
  unsigned int len = 0;
  HMAC(EVP_sha256(), secret.data(), static_cast<int>(secret.size()),
       reinterpret_cast<const unsigned char*>(input.data()), input.size(), mac, &len);
  std::string token = input + "." + base64UrlEncode(std::string(reinterpret_cast<char*>(mac), len));
  expectDenied(token, "alg HS256 is not allowed (only ES256 is)");
  expectDenied(forge({{"alg", "RS256"}, {"kid", key_->kid()}}, claimsAt(kNow), "x"),
               "alg RS256 is not allowed");
}

TEST_F(JwtTest, TamperedPayload) {
  std::string token = sign(claimsAt(kNow));
  json c = claimsAt(kNow);
  c["scope"] = "admin";
  size_t d1 = token.find('.'), d2 = token.rfind('.');
  std::string tampered = token.substr(0, d1 + 1) + base64UrlEncode(c.dump()) + token.substr(d2);
  expectDenied(tampered, "token signature does not verify");
}

TEST_F(JwtTest, TamperedHeader) {
  std::string token = sign(claimsAt(kNow));
  // Same fields, different bytes (an extra member): the signature covers the bytes sent.
  std::string header = json({{"alg", "ES256"},
                             {"typ", "at+jwt"},
                             {"kid", key_->kid()},
                             {"x5u", "https://evil.test/key"}})
                           .dump();
  std::string tampered = base64UrlEncode(header) + token.substr(token.find('.'));
  expectDenied(tampered, "token signature does not verify");
}

TEST_F(JwtTest, BadBase64) {
  std::string token = sign(claimsAt(kNow));
  expectDenied("*" + token.substr(1), "token header is not valid base64url");
  size_t d1 = token.find('.');
  std::string t = token;
  t[d1 + 1] = '!';
  expectDenied(t, "token signature does not verify");  // the signature covers it first
  t = token;
  t.back() = '$';
  expectDenied(t, "token signature is not valid base64url");
  expectDenied("a.b", "expected 3 dot-separated parts, got 2");
  expectDenied("a.b.c.d.e", "got 5");
  expectDenied("", "token is empty");
  expectDenied(base64UrlEncode("[1]") + ".e30.", "token header is not a JSON object");
}

TEST_F(JwtTest, Oversized) {
  json c = claimsAt(kNow);
  c["pad"] = std::string(9000, 'a');
  expectDenied(sign(c), "bytes; at most 8192 are accepted");
}

TEST_F(JwtTest, TypMissingOrWrong) {
  expectDenied(sign(claimsAt(kNow), json::object()), "token typ is missing; expected at+jwt");
  expectDenied(sign(claimsAt(kNow), {{"typ", "JWT"}}), "token typ JWT is not at+jwt");
}

TEST_F(JwtTest, CritIsRefused) {
  expectDenied(sign(claimsAt(kNow), {{"typ", "at+jwt"}, {"crit", {"exp"}}}),
               "no critical extension is understood");
}

TEST_F(JwtTest, SignatureOfWrongLength) {
  std::string token = sign(claimsAt(kNow));
  std::string t = token.substr(0, token.rfind('.') + 1) + base64UrlEncode(std::string(63, 'a'));
  expectDenied(t, "token signature is 63 bytes; ES256 signatures are 64");
}

TEST_F(JwtTest, OptionsMustNameIssuerAndAudience) {
  VerifyOptions o = options();
  o.audience.clear();
  auto r = verify(sign(claimsAt(kNow)), keys_, o);
  ASSERT_FALSE(r.isOk());
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
}

TEST(ScopesTest, SplitSkipsRunsOfSpacesAndJoinPutsOneBetween) {
  EXPECT_EQ(splitScopes(""), std::vector<std::string>{});
  EXPECT_EQ(splitScopes("  "), std::vector<std::string>{});
  EXPECT_EQ(splitScopes(" node:call  read "), (std::vector<std::string>{"node:call", "read"}));
  EXPECT_EQ(joinScopes({"node:call", "read"}), "node:call read");
  EXPECT_EQ(joinScopes({}), "");
}

TEST(ScopesTest, HasScopeReadsAStringOrAnArray) {
  EXPECT_TRUE(hasScope(json{{"scope", "read  node:call"}}, "node:call"));
  EXPECT_FALSE(hasScope(json{{"scope", "node:callx read"}}, "node:call"));
  EXPECT_TRUE(hasScope(json{{"scope", {"read", "node:call"}}}, "node:call"));
  EXPECT_FALSE(hasScope(json{{"scope", {"read", 7}}}, "node:call"));
  EXPECT_FALSE(hasScope(json{{"scope", 7}}, "node:call"));
  EXPECT_FALSE(hasScope(json::object(), "node:call"));
}

}  // namespace
}  // namespace edge::jwt
