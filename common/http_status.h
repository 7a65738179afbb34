// The HTTP status each Status code answers with, in every API Edgecloud serves: the node's
// REST API (edged/api/rest_api.cc), its Docker API subset (docker_api.cc) and
// edge-backend (backend/http_util.cc). One table, so a code means the same answer
// everywhere, and two documented departures from it for clients that read statuses
// their own way.
//
// Pure functions; no HTTP library involved.
#pragma once

#include "common/status.h"

namespace edge::http {

// The table: OK 200, InvalidArgument 400, PermissionDenied 403, NotFound 404,
// AlreadyExists / FailedPrecondition / Aborted 409 (the request conflicts with the
// current state; not 412, which HTTP keeps for failed If-Match style headers),
// ResourceExhausted 429, Unimplemented 501, Unavailable 503, DeadlineExceeded 504,
// Cancelled and Internal 500.
int httpStatusFor(StatusCode code);
inline int httpStatusFor(const Status& s) {
  return httpStatusFor(s.code());
}

// The node's REST API: the table, except ResourceExhausted is 413. There it means a
// request or a file it names is over a size limit, and edgectl reads 413 as "invalid
// input" (exit code 4, cli/errors.h).
int nodeApiHttpStatusFor(StatusCode code);

// The Docker Engine API subset: dockerd answers only 400, 404, 409, 500 and 503, and the
// Docker CLI and SDKs only tell those apart; so the table for InvalidArgument, NotFound,
// AlreadyExists, FailedPrecondition and Unavailable, 500 for every other code.
int dockerApiHttpStatusFor(StatusCode code);

}  // namespace edge::http
