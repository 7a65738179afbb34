#include "common/fs.h"

#include <gtest/gtest.h>

#include "common/crypto.h"

namespace edge::fs {
namespace {

TEST(FsTest, AtomicWriteAndRead) {
  std::string dir = ::testing::TempDir() + "/fs_test/a/b";
  ASSERT_TRUE(makeDirs(dir).isOk());
  ASSERT_TRUE(makeDirs(dir).isOk());
  std::string file = dir + "/f";
  ASSERT_TRUE(writeFileAtomic(file, "hello").isOk());
  ASSERT_TRUE(writeFileAtomic(file, "world").isOk());
  EXPECT_EQ(*readFile(file), "world");
  EXPECT_EQ(readFile(file, 2).status().code(), StatusCode::kResourceExhausted);
  EXPECT_EQ(readFile(dir + "/nope").status().code(), StatusCode::kNotFound);
  EXPECT_EQ(crypto::sha256File(file).value(), crypto::sha256Hex("world"));
  ASSERT_TRUE(removeAll(::testing::TempDir() + "/fs_test").isOk());
  EXPECT_FALSE(exists(file));
}

TEST(CryptoTest, KnownDigest) {
  EXPECT_EQ(crypto::sha256Hex("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(crypto::randomHex(16).size(), 32u);
  EXPECT_NE(crypto::randomHex(16), crypto::randomHex(16));
}

}  // namespace
}  // namespace edge::fs
