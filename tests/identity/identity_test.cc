#include "identity/identity.h"

#include <gtest/gtest.h>
#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include "common/fs.h"

namespace edge::identity {
namespace {

// Made with `openssl genpkey -algorithm ed25519`; its public key from `openssl pkey -pubout`.
constexpr char kOpensslEd25519Pem[] =
    "-----BEGIN PRIVATE KEY-----\n"
    "MC4CAQAwBQYDK2VwBCIEICkL8nwpTDyaLHubCZWRMI0Pu/U49g0YLFAagd+J6MsP\n"
    "-----END PRIVATE KEY-----\n";
constexpr char kOpensslEd25519PublicHex[] =
    "47fe163bf3fd985a64e41f9ce53418634c36d9361bff96495ff6e1a512660fd1";

constexpr char kX25519Pem[] =
    "-----BEGIN PRIVATE KEY-----\n"
    "MC4CAQAwBQYDK2VuBCIEIPh9N8BkBncBKF2/0vzqq3D/bzter7FdeZWokPfyICZy\n"
    "-----END PRIVATE KEY-----\n";

// `openssl genpkey -algorithm ed25519 -aes256 -pass pass:secret`
constexpr char kEncryptedPem[] =
    "-----BEGIN ENCRYPTED PRIVATE KEY-----\n"
    "MIGbMFcGCSqGSIb3DQEFDTBKMCkGCSqGSIb3DQEFDDAcBAjqMSWcjPD5KwICCAAw\n"
    "DAYIKoZIhvcNAgkFADAdBglghkgBZQMEASoEENFgjuJnLIRwpLBOkrmnypcEQEvw\n"
    "VMV0i6v8axkTfBPkgypbnhIylD28OezmfebFc6OyeIDpjzfpWyU2HU49+bzAuNpg\n"
    "+J3zDTsu7kD8B92baX8=\n"
    "-----END ENCRYPTED PRIVATE KEY-----\n";

class IdentityFileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = ::testing::TempDir() + "/identity_test_" +
           ::testing::UnitTest::GetInstance()->current_test_info()->name();
    ASSERT_TRUE(fs::removeAll(dir_).isOk());
    ASSERT_TRUE(fs::makeDirs(dir_).isOk());
  }
  void TearDown() override { (void)fs::removeAll(dir_); }

  std::string dir_;
};

TEST_F(IdentityFileTest, CreatesKeyWithMode0600AndLoadsTheSameIdentity) {
  std::string path = dir_ + "/node.key";
  auto created = NodeIdentity::loadOrCreate(path);
  ASSERT_TRUE(created.isOk()) << created.status().toString();

  struct stat st {};
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  auto pem = fs::readFile(path);
  ASSERT_TRUE(pem.isOk());
  EXPECT_EQ(pem->rfind("-----BEGIN PRIVATE KEY-----\n", 0), 0u) << *pem;

  auto loaded = NodeIdentity::loadOrCreate(path);
  ASSERT_TRUE(loaded.isOk()) << loaded.status().toString();
  EXPECT_EQ(loaded->id(), created->id());
  EXPECT_EQ(loaded->publicKey(), created->publicKey());
  // The loaded key is the private half too: its signatures verify under the first key.
  EXPECT_TRUE(verifySignature(created->publicKey(), "hello", loaded->sign("hello")));
  // No temp file left behind.
  std::vector<std::string> entries;
  for (const auto& e : std::filesystem::directory_iterator(dir_)) {
    entries.push_back(e.path().filename());
  }
  EXPECT_EQ(entries, std::vector<std::string>{"node.key"});
}

TEST_F(IdentityFileTest, ConcurrentCreatorsAllGetTheKeyOnDisk) {
  for (int round = 0; round < 10; ++round) {
    std::string path = dir_ + "/node" + std::to_string(round) + ".key";
    std::vector<std::string> ids(6);
    std::vector<std::thread> threads;
    for (size_t t = 0; t < ids.size(); ++t) {
      threads.emplace_back([&, t] {
        auto id = NodeIdentity::loadOrCreate(path);
        ids[t] = id.isOk() ? id->id() : id.status().toString();
      });
    }
    for (auto& th : threads) th.join();
    auto on_disk = NodeIdentity::loadOrCreate(path);
    ASSERT_TRUE(on_disk.isOk()) << on_disk.status().toString();
    for (const std::string& id : ids) EXPECT_EQ(id, on_disk->id());
  }
  size_t files = 0;
  for ([[maybe_unused]] const auto& e : std::filesystem::directory_iterator(dir_)) ++files;
  EXPECT_EQ(files, 10u);  // no temp file left behind
}

TEST_F(IdentityFileTest, LoadsAKeyMadeByTheOpensslTool) {
  std::string path = dir_ + "/node.key";
  ASSERT_TRUE(fs::writeFileAtomic(path, kOpensslEd25519Pem, 0600).isOk());
  auto id = NodeIdentity::loadOrCreate(path);
  ASSERT_TRUE(id.isOk()) << id.status().toString();
  EXPECT_EQ(toHex(id->publicKey()), kOpensslEd25519PublicHex);
  EXPECT_EQ(id->id(), nodeIdFromPublicKey(id->publicKey()));
}

// The key file is written and read without OpenSSL's generic encoder/decoder (see
// identity.cc); it must stay byte for byte what OpenSSL writes, and OpenSSL must read it.
TEST_F(IdentityFileTest, CreatedKeyFileIsWhatOpensslWritesForThatKey) {
  std::string path = dir_ + "/node.key";
  auto created = NodeIdentity::loadOrCreate(path);
  ASSERT_TRUE(created.isOk()) << created.status().toString();
  auto pem = fs::readFile(path);
  ASSERT_TRUE(pem.isOk());

  std::string raw = created->privateKeyRaw();
  ASSERT_EQ(raw.size(), 32u);
  EVP_PKEY* pkey = EVP_PKEY_new_raw_private_key(
      EVP_PKEY_ED25519, nullptr, reinterpret_cast<const unsigned char*>(raw.data()), raw.size());
  ASSERT_NE(pkey, nullptr);
  BIO* bio = BIO_new(BIO_s_mem());
  ASSERT_EQ(PEM_write_bio_PrivateKey(bio, pkey, nullptr, nullptr, 0, nullptr, nullptr), 1);
  char* data = nullptr;
  long len = BIO_get_mem_data(bio, &data);
  EXPECT_EQ(*pem, std::string(data, static_cast<size_t>(len)));
  BIO_free(bio);

  // The raw private key is the one behind the identity's public key.
  unsigned char pub[32];
  size_t pub_len = sizeof pub;
  ASSERT_EQ(EVP_PKEY_get_raw_public_key(pkey, pub, &pub_len), 1);
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(pub), pub_len), created->publicKey());
  EVP_PKEY_free(pkey);
}

TEST_F(IdentityFileTest, KeyFilesInOtherLayoutsLoadTheSameKey) {
  // CRLF line ends and a body folded at 16 chars: not the form edged writes, still PEM.
  std::string crlf = kOpensslEd25519Pem;
  for (size_t at = crlf.find('\n'); at != std::string::npos; at = crlf.find('\n', at + 2)) {
    crlf.insert(at, "\r");
  }
  std::string folded =
      "-----BEGIN PRIVATE KEY-----\n"
      "MC4CAQAwBQYDK2Vw\nBCIEICkL8nwpTDya\nLHubCZWRMI0Pu/U4\n9g0YLFAagd+J6MsP\n"
      "-----END PRIVATE KEY-----\n";
  std::string trailing = std::string(kOpensslEd25519Pem) + "\n";
  for (const std::string& text : {crlf, folded, trailing}) {
    std::string path = dir_ + "/node.key";
    ASSERT_TRUE(fs::writeFileAtomic(path, text, 0600).isOk());
    auto id = NodeIdentity::loadOrCreate(path);
    ASSERT_TRUE(id.isOk()) << id.status().toString() << "\n" << text;
    EXPECT_EQ(toHex(id->publicKey()), kOpensslEd25519PublicHex) << text;
  }
}

TEST_F(IdentityFileTest, DamagedKeyFileOfTheUsualShapeIsRefused) {
  // Same length and layout as a key edged writes, but the algorithm is Ed448 (OID
  // 1.3.101.113), whose keys are 57 bytes: not the fast path's, and the generic decoder
  // refuses it as before.
  std::string damaged = kOpensslEd25519Pem;
  size_t body = damaged.find('\n') + 1;
  ASSERT_EQ(damaged.substr(body, 16), "MC4CAQAwBQYDK2Vw");
  damaged.replace(body + 12, 4, "K2Vx");
  std::string path = dir_ + "/node.key";
  ASSERT_TRUE(fs::writeFileAtomic(path, damaged, 0600).isOk());
  auto id = NodeIdentity::loadOrCreate(path);
  ASSERT_FALSE(id.isOk());
  EXPECT_EQ(id.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(id.status().message().find(path), std::string::npos) << id.status().toString();
}

TEST_F(IdentityFileTest, GarbageFileIsRefusedNamingThePathAndLeftIntact) {
  std::string path = dir_ + "/node.key";
  const std::string garbage = "this is not a key\n";
  ASSERT_TRUE(fs::writeFileAtomic(path, garbage, 0644).isOk());
  auto id = NodeIdentity::loadOrCreate(path);
  ASSERT_FALSE(id.isOk());
  EXPECT_EQ(id.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(id.status().message().find(path), std::string::npos) << id.status().message();
  EXPECT_EQ(fs::readFile(path).valueOr(""), garbage);
}

TEST_F(IdentityFileTest, EmptyFileIsRefusedAndLeftIntact) {
  std::string path = dir_ + "/node.key";
  ASSERT_TRUE(fs::writeFileAtomic(path, "", 0600).isOk());
  auto id = NodeIdentity::loadOrCreate(path);
  ASSERT_FALSE(id.isOk());
  EXPECT_NE(id.status().message().find(path), std::string::npos);
  EXPECT_TRUE(fs::exists(path));
  EXPECT_EQ(fs::readFile(path).valueOr("x"), "");
}

TEST_F(IdentityFileTest, KeyOfAnotherTypeIsRefusedSayingWhichType) {
  std::string path = dir_ + "/node.key";
  ASSERT_TRUE(fs::writeFileAtomic(path, kX25519Pem, 0600).isOk());
  auto id = NodeIdentity::loadOrCreate(path);
  ASSERT_FALSE(id.isOk());
  EXPECT_EQ(id.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(id.status().message().find("X25519"), std::string::npos) << id.status().message();
  EXPECT_NE(id.status().message().find("Ed25519"), std::string::npos);
  EXPECT_EQ(fs::readFile(path).valueOr(""), kX25519Pem);
}

TEST_F(IdentityFileTest, EncryptedKeyIsRefusedWithoutPrompting) {
  std::string path = dir_ + "/node.key";
  ASSERT_TRUE(fs::writeFileAtomic(path, kEncryptedPem, 0600).isOk());
  auto id = NodeIdentity::loadOrCreate(path);
  ASSERT_FALSE(id.isOk());
  EXPECT_NE(id.status().message().find(path), std::string::npos);
  EXPECT_EQ(fs::readFile(path).valueOr(""), kEncryptedPem);
}

TEST_F(IdentityFileTest, MissingDirectoryIsAnErrorNamingThePath) {
  std::string path = dir_ + "/no/such/dir/node.key";
  auto id = NodeIdentity::loadOrCreate(path);
  ASSERT_FALSE(id.isOk());
  EXPECT_EQ(id.status().code(), StatusCode::kNotFound) << id.status().toString();
  EXPECT_NE(id.status().message().find(path), std::string::npos) << id.status().message();
}

TEST_F(IdentityFileTest, DirectoryInPlaceOfTheKeyIsAnError) {
  std::string path = dir_ + "/node.key";
  ASSERT_TRUE(fs::makeDirs(path).isOk());
  auto id = NodeIdentity::loadOrCreate(path);
  ASSERT_FALSE(id.isOk());
  EXPECT_NE(id.status().message().find(path), std::string::npos) << id.status().message();
  EXPECT_TRUE(fs::isDirectory(path));
}

TEST_F(IdentityFileTest, DanglingSymlinkIsAnErrorAndLeftAlone) {
  std::string path = dir_ + "/node.key";
  ASSERT_EQ(::symlink((dir_ + "/elsewhere.key").c_str(), path.c_str()), 0);
  auto id = NodeIdentity::loadOrCreate(path);
  ASSERT_FALSE(id.isOk());
  EXPECT_NE(id.status().message().find(path), std::string::npos) << id.status().message();
  EXPECT_FALSE(fs::exists(dir_ + "/elsewhere.key"));
}

TEST(IdentityTest, IdIsSixteenLowerHexCharsOfTheKeyHash) {
  auto id = NodeIdentity::generate();
  ASSERT_TRUE(id.isOk());
  EXPECT_EQ(id->publicKey().size(), kPublicKeyBytes);
  ASSERT_EQ(id->id().size(), 16u);
  EXPECT_EQ(id->id().find_first_not_of("0123456789abcdef"), std::string::npos) << id->id();
  EXPECT_EQ(id->id(), nodeIdFromPublicKey(id->publicKey()));
  // SHA-256 of 32 zero bytes is 66687aadf862bd77...
  EXPECT_EQ(nodeIdFromPublicKey(std::string(32, '\0')), "66687aadf862bd77");

  auto other = NodeIdentity::generate();
  ASSERT_TRUE(other.isOk());
  EXPECT_NE(other->id(), id->id());
}

TEST(IdentityTest, SignaturesVerifyOnlyForTheirKeyAndMessage) {
  auto a = NodeIdentity::generate();
  auto b = NodeIdentity::generate();
  ASSERT_TRUE(a.isOk() && b.isOk());
  std::string sig = a->sign("profile v1");
  ASSERT_EQ(sig.size(), kSignatureBytes);
  EXPECT_TRUE(verifySignature(a->publicKey(), "profile v1", sig));
  EXPECT_FALSE(verifySignature(a->publicKey(), "profile v2", sig));
  EXPECT_FALSE(verifySignature(b->publicKey(), "profile v1", sig));
  std::string flipped = sig;
  flipped[10] ^= 1;
  EXPECT_FALSE(verifySignature(a->publicKey(), "profile v1", flipped));
  // A copy is the same identity.
  NodeIdentity copy = *a;
  EXPECT_EQ(copy.id(), a->id());
  EXPECT_TRUE(verifySignature(a->publicKey(), "x", copy.sign("x")));
}

TEST(IdentityTest, RfcVectorVerifies) {
  // RFC 8032, section 7.1, test 1 (empty message).
  auto pub = fromHex("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a");
  auto sig = fromHex(
      "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e397"
      "01cf9b46bd25bf5f0595bbe24655141438e7a100b");
  ASSERT_TRUE(pub.isOk() && sig.isOk());
  EXPECT_TRUE(verifySignature(*pub, "", *sig));
  EXPECT_FALSE(verifySignature(*pub, "x", *sig));
}

TEST(IdentityTest, MalformedKeysAndSignaturesAreFalseNotCrashes) {
  auto a = NodeIdentity::generate();
  ASSERT_TRUE(a.isOk());
  std::string sig = a->sign("m");
  for (size_t n : {0, 1, 31, 33, 64}) {
    EXPECT_FALSE(verifySignature(std::string(n, 'k'), "m", sig)) << "key size " << n;
  }
  for (size_t n : {0, 1, 32, 63, 65, 128}) {
    EXPECT_FALSE(verifySignature(a->publicKey(), "m", std::string(n, 's'))) << "sig size " << n;
  }
  EXPECT_FALSE(verifySignature(std::string(32, '\0'), "m", sig));
  EXPECT_FALSE(verifySignature(std::string(32, '\xff'), "m", std::string(64, '\xff')));
  EXPECT_FALSE(verifySignature(a->publicKey(), "m", std::string(64, '\0')));
}

TEST(IdentityTest, SigningFromManyThreadsAtOnce) {
  auto a = NodeIdentity::generate();
  ASSERT_TRUE(a.isOk());
  const NodeIdentity& id = *a;
  std::vector<std::thread> threads;
  std::vector<int> ok(4, 0);
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 50; ++i) {
        std::string m = std::to_string(t) + ":" + std::to_string(i);
        ok[t] += verifySignature(id.publicKey(), m, id.sign(m)) ? 1 : 0;
      }
    });
  }
  for (auto& th : threads) th.join();
  for (int n : ok) EXPECT_EQ(n, 50);
}

TEST(HexTest, RoundTripAndClearErrors) {
  std::string all;
  for (int i = 0; i < 256; ++i) all.push_back(static_cast<char>(i));
  EXPECT_EQ(toHex(std::string("\x00\x0f\xa0\xff", 4)), "000fa0ff");
  auto back = fromHex(toHex(all));
  ASSERT_TRUE(back.isOk());
  EXPECT_EQ(*back, all);
  EXPECT_EQ(fromHex("ABcd").valueOr(""), "\xab\xcd");
  EXPECT_EQ(fromHex("").valueOr("x"), "");

  auto odd = fromHex("abc");
  ASSERT_FALSE(odd.isOk());
  EXPECT_EQ(odd.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(odd.status().message().find("odd length 3"), std::string::npos);

  auto bad = fromHex("00zz");
  ASSERT_FALSE(bad.isOk());
  EXPECT_NE(bad.status().message().find("'z' at position 2"), std::string::npos)
      << bad.status().message();
  auto ctrl = fromHex(std::string("0\n", 2));
  ASSERT_FALSE(ctrl.isOk());
  EXPECT_NE(ctrl.status().message().find("0x0a at position 1"), std::string::npos)
      << ctrl.status().message();
}

}  // namespace
}  // namespace edge::identity
