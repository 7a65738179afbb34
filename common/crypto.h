// Hashing and randomness on OpenSSL.
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "common/status.h"

namespace edge::crypto {

// Streaming SHA-256. Not thread-safe; one per stream.
class Sha256 {
 public:
  Sha256();
  ~Sha256();
  Sha256(const Sha256&) = delete;
  Sha256& operator=(const Sha256&) = delete;

  void update(const void* data, size_t len);
  void update(std::string_view s) { update(s.data(), s.size()); }
  // Lower-case hex digest (64 chars). The hasher must not be updated afterwards.
  std::string finishHex();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

std::string sha256Hex(std::string_view data);

// Hash of a whole file, streamed. Returns the hex digest.
Result<std::string> sha256File(const std::string& path);

// `n_bytes` random bytes from the kernel CSPRNG, hex-encoded (2 * n_bytes chars).
std::string randomHex(size_t n_bytes);

}  // namespace edge::crypto
