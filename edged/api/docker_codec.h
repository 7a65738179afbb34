// The node's Docker API server's side of the Docker Engine API wire format: request
// bodies and query values in, runtime types out (parseCreateRequest, filters), and
// runtime types in, Docker's JSON documents out (inspect, list entries). Pure functions,
// no I/O: the routes are in docker_api.cc, the fuzzer (tests/fuzz/docker_create_fuzz.cc)
// drives parseCreateRequest directly. Versions and times come from
// runtime-shim/docker/docker_wire.h, which the Docker driver shares; nothing here
// depends on the driver.
//
// Errors: kInvalidArgument naming the field ("HostConfig.Memory: expected an integer,
// got a string") and what is allowed.
// Thread-safety: free functions.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "common/clock.h"
#include "common/json.h"
#include "common/status.h"
#include "runtime-shim/runtime.h"

namespace edge::edged::api {

struct CreateRequest {
  runtime::ContainerSpec spec;
  std::vector<std::string> warnings;  // the 201 reply's Warnings
};

// Maps a `POST /containers/create` body and its `name` query parameter to a spec.
// kInvalidArgument names the field for malformed input and for set features the
// runtime cannot honour (Privileged, CapAdd, Devices, Tty, ...); features that can be
// dropped without surprising the user become warnings.
Result<CreateRequest> parseCreateRequest(std::string_view body, const std::string& name);

// The `GET /containers/{id}/json` document for a container.
json::Json containerInspectJson(const runtime::ContainerInfo& c, WallTime now);
// One entry of `GET /containers/json`.
json::Json containerSummaryJson(const runtime::ContainerInfo& c, WallTime now);

// A parsed `filters` query value of `GET /containers/json`: label, name, id, status,
// ancestor. kInvalidArgument for malformed JSON or an unsupported filter.
struct ContainerFilters {
  std::vector<std::string> labels;  // "k" or "k=v"
  std::vector<std::string> names;   // regular expressions, as Docker does
  std::vector<std::string> ids;     // prefixes
  std::vector<std::string> statuses;
  std::vector<std::string> ancestors;
};
Result<ContainerFilters> parseContainerFilters(std::string_view text);
// True when `c` passes every filter kind given (values of one kind are alternatives).
// `image_tags` are the tags of c's image, for `ancestor`.
bool matchesFilters(const runtime::ContainerInfo& c, const ContainerFilters& f,
                    const std::vector<std::string>& image_tags);

// One entry of `GET /images/json`, and the `GET /images/{name}/json` document.
json::Json imageSummaryJson(const runtime::ImageInfo& img);
json::Json imageInspectJson(const runtime::ImageInfo& img);

}  // namespace edge::edged::api
