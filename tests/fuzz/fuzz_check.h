// FUZZ_CHECK: the assertion of the fuzz targets. A property that fails is a bug like a
// crash, so it aborts and libFuzzer saves the input as crash-<sha1> with the message.
//
// Thread-safety: any thread. Errors: none; it aborts the process.
#pragma once

#include <cstdio>
#include <cstdlib>
#include <string>

namespace edge::fuzz {

[[noreturn]] inline void fail(const char* cond, const std::string& detail, const char* file,
                              int line) {
  std::fprintf(stderr, "%s:%d: fuzz property failed: %s\n%s\n", file, line, cond, detail.c_str());
  std::abort();
}

}  // namespace edge::fuzz

// `detail` is only evaluated when the check fails, so it may be costly to build.
#define FUZZ_CHECK(cond, detail)                                          \
  do {                                                                    \
    if (!(cond)) ::edge::fuzz::fail(#cond, (detail), __FILE__, __LINE__); \
  } while (0)
