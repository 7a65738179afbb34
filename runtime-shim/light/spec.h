// Pure container-spec logic of the light runtime: validation with messages that name the
// field, merging a spec with its image's defaults as Docker does, and resolution of a
// user spec against the container's /etc/passwd and /etc/group.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "runtime-shim/runtime.h"

namespace edge::runtime::light {

// Docker refuses memory limits below this; the container could not even start.
inline constexpr int64_t kMinMemoryBytes = 6 << 20;
// Docker's PATH when the image sets none.
inline constexpr char kDefaultPath[] =
    "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

// kInvalidArgument naming the field ("spec.mounts[1].source: ...") when `spec` is bad.
Status validateSpec(const ContainerSpec& spec);

// Env entries of `over` replace those of `base` with the same key (order kept: base's
// keys in place, new keys appended).
std::vector<std::string> mergeEnv(const std::vector<std::string>& base,
                                  const std::vector<std::string>& over);

// The effective configuration: entrypoint/cmd as Docker (an entrypoint given in the spec
// drops the image's cmd unless the spec gives a cmd too), env merged over the image's with
// PATH defaulted, working dir, user, labels (image's, then the spec's). Fills the
// ContainerInfo config fields; identity/state fields are left alone.
void mergeSpec(const ContainerSpec& spec, const ImageInfo& image, ContainerInfo* out);

// argv = entrypoint + cmd; kInvalidArgument when empty.
Result<std::vector<std::string>> containerArgv(const ContainerInfo& info);

struct UserIds {
  uint32_t uid = 0;
  uint32_t gid = 0;
  std::vector<uint32_t> groups;  // supplementary, from /etc/group membership
  std::string home = "/";
};

// Resolves "", "uid", "uid:gid", "name", "name:group", "uid:group", "name:gid".
// `passwd`/`group` are the file contents (may be empty when the image has none; numeric
// ids then still work). kInvalidArgument says which name is unknown.
Result<UserIds> resolveUser(std::string_view user, std::string_view passwd, std::string_view group);

}  // namespace edge::runtime::light
