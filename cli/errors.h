// How edgectl turns what went wrong into what a script sees: an exit code and a message.
//
// Exit codes (also in `edgectl --help` and docs/edgectl.md):
//   0 ok, 1 node error (5xx) or unexpected, 2 usage, 3 not found (404), 4 invalid input
//   (400, 413), 5 cannot reach the node, 6 conflict (409).
//
// Node answers become Status values with a code that says which exit code applies
// (statusFromResponse); transport failures from common/http keep theirs (kUnavailable,
// kPermissionDenied, kDeadlineExceeded) and get a hint (reachError). Pure functions.
#pragma once

#include <string>
#include <string_view>

#include "common/http.h"
#include "common/status.h"

namespace edge::cli {

enum ExitCode : int {
  kExitOk = 0,
  kExitError = 1,
  kExitUsage = 2,
  kExitNotFound = 3,
  kExitInvalid = 4,
  kExitUnreachable = 5,
  kExitConflict = 6,
};

// The exit-code table as help text (the footer of `edgectl --help`).
std::string exitCodeHelp();

// kNotFound -> 3; kInvalidArgument, kResourceExhausted -> 4; kUnavailable,
// kPermissionDenied, kDeadlineExceeded -> 5; kAlreadyExists -> 6; everything else -> 1.
int exitCodeFor(const Status& s);

// A non-2xx answer of the node as a Status: 400 -> kInvalidArgument, 404 -> kNotFound,
// 409 -> kAlreadyExists, 413 -> kResourceExhausted, 5xx -> kInternal, other ->
// kFailedPrecondition. The message is the node's "message"; each entry of its "errors"
// list follows on its own line as "<label>: doc N: <path>: <message>" (the label, usually
// the manifest file name, is left out when empty). A body that is not the documented
// JSON is quoted (first line, shortened) so the user still sees what came back.
Status statusFromResponse(const http::Response& r, std::string_view label = {});

// One `errors` entry ({"doc","path","message"}) as a line; doc 0 / empty path (file-wide
// problems) are left out.
std::string formatFieldError(std::string_view label, int64_t doc, std::string_view path,
                             std::string_view message);

// A transport failure reaching `where` (as the user should read it, e.g.
// "unix:///run/edged/edged.sock") as "cannot reach edged at <where>: <why> (<hint>)".
// The code is kept, so exitCodeFor gives 5. Failures after connecting come back unchanged.
Status reachError(const Status& transport, std::string_view where);

// How an error is shown: "edgectl: " before the first line; the following lines (field
// errors) as they are, so `file.yaml: doc 1: ...` lines can be read by editors.
std::string formatErrorForUser(const Status& s);

}  // namespace edge::cli
