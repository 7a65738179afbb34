// The one Status -> HTTP table and its two departures (node REST, Docker subset).
#include "common/http_status.h"

#include <gtest/gtest.h>

namespace edge::http {
namespace {

TEST(HttpStatusTest, OneTableForEveryApi) {
  EXPECT_EQ(httpStatusFor(StatusCode::kOk), 200);
  EXPECT_EQ(httpStatusFor(StatusCode::kInvalidArgument), 400);
  EXPECT_EQ(httpStatusFor(StatusCode::kPermissionDenied), 403);
  EXPECT_EQ(httpStatusFor(StatusCode::kNotFound), 404);
  EXPECT_EQ(httpStatusFor(StatusCode::kAlreadyExists), 409);
  EXPECT_EQ(httpStatusFor(StatusCode::kFailedPrecondition), 409);
  EXPECT_EQ(httpStatusFor(StatusCode::kAborted), 409);
  EXPECT_EQ(httpStatusFor(StatusCode::kResourceExhausted), 429);
  EXPECT_EQ(httpStatusFor(StatusCode::kUnimplemented), 501);
  EXPECT_EQ(httpStatusFor(StatusCode::kUnavailable), 503);
  EXPECT_EQ(httpStatusFor(StatusCode::kDeadlineExceeded), 504);
  EXPECT_EQ(httpStatusFor(StatusCode::kCancelled), 500);
  EXPECT_EQ(httpStatusFor(StatusCode::kInternal), 500);
  EXPECT_EQ(httpStatusFor(Status::failedPrecondition("x")), 409);
}

TEST(HttpStatusTest, TheNodeApiAnswers413ForLimits) {
  EXPECT_EQ(nodeApiHttpStatusFor(StatusCode::kResourceExhausted), 413);
  for (StatusCode c :
       {StatusCode::kInvalidArgument, StatusCode::kNotFound, StatusCode::kFailedPrecondition,
        StatusCode::kPermissionDenied, StatusCode::kUnavailable, StatusCode::kDeadlineExceeded,
        StatusCode::kInternal}) {
    EXPECT_EQ(nodeApiHttpStatusFor(c), httpStatusFor(c)) << statusCodeName(c);
  }
}

TEST(HttpStatusTest, DockerKeepsToTheStatusesDockerdUses) {
  EXPECT_EQ(dockerApiHttpStatusFor(StatusCode::kInvalidArgument), 400);
  EXPECT_EQ(dockerApiHttpStatusFor(StatusCode::kNotFound), 404);
  EXPECT_EQ(dockerApiHttpStatusFor(StatusCode::kAlreadyExists), 409);
  EXPECT_EQ(dockerApiHttpStatusFor(StatusCode::kFailedPrecondition), 409);
  EXPECT_EQ(dockerApiHttpStatusFor(StatusCode::kUnavailable), 503);
  for (StatusCode c :
       {StatusCode::kPermissionDenied, StatusCode::kAborted, StatusCode::kResourceExhausted,
        StatusCode::kUnimplemented, StatusCode::kDeadlineExceeded, StatusCode::kCancelled,
        StatusCode::kInternal}) {
    EXPECT_EQ(dockerApiHttpStatusFor(c), 500) << statusCodeName(c);
  }
}

}  // namespace
}  // namespace edge::http
