// docker_create_fuzz: the body of `POST /containers/create` comes from any client of
// the node's Docker API socket. parseCreateRequest must turn every body into a spec or
// a kInvalidArgument, never crash, leak or hang.
//
// Input: "<name>\0<body>" when the input holds a NUL byte (the `name` query parameter,
// also client-controlled, then the body); otherwise the whole input is the body and
// there is no name. The name is cut at 8 KiB: it arrives in the request line, which
// cpp-httplib refuses beyond CPPHTTPLIB_REQUEST_URI_MAX_LENGTH (8192), and a longer one
// would only find the recursion depth of std::regex (a stack overflow near 60 KB under
// ASan), a limit no client can reach.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "common/status.h"
#include "edged/api/docker_api.h"
#include "tests/fuzz/fuzz_check.h"

namespace {
constexpr size_t kMaxName = 8192;
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  std::string name;
  std::string_view body = in;
  if (size_t nul = in.find('\0'); nul != std::string_view::npos) {
    name = std::string(in.substr(0, std::min<size_t>(nul, kMaxName)));
    body = in.substr(nul + 1);
  }
  edge::Result<edge::edged::api::CreateRequest> r =
      edge::edged::api::parseCreateRequest(body, name);
  if (!r.isOk()) {
    FUZZ_CHECK(r.status().code() == edge::StatusCode::kInvalidArgument,
               "refused with another code than kInvalidArgument: " + r.status().toString());
    FUZZ_CHECK(!r.status().message().empty(), "refused without a message");
    return 0;
  }
  FUZZ_CHECK(!r->spec.image.empty(), "accepted a body without an image");
  FUZZ_CHECK(r->spec.resources.memory_bytes >= 0 && r->spec.resources.nano_cpus >= 0 &&
                 r->spec.resources.pids_limit >= 0,
             "accepted negative resources");
  return 0;
}
