#include "common/status.h"

#include <gtest/gtest.h>

#include <cerrno>

namespace edge {
namespace {

Result<int> half(int x) {
  if (x % 2) return Status::invalidArgument("odd: " + std::to_string(x));
  return x / 2;
}

Result<int> quarter(int x) {
  ASSIGN_OR_RETURN(int h, half(x));
  ASSIGN_OR_RETURN(int q, half(h));
  return q;
}

Status checkEven(int x) {
  RETURN_IF_ERROR(half(x).status());
  return Status::ok();
}

TEST(StatusTest, OkAndErrors) {
  EXPECT_TRUE(Status::ok().isOk());
  Status s = Status::notFound("no such image x");
  EXPECT_FALSE(s.isOk());
  EXPECT_EQ(s.code(), StatusCode::kNotFound);
  EXPECT_EQ(s.toString(), "NotFound: no such image x");
  EXPECT_EQ(s.withContext("load").message(), "load: no such image x");
  EXPECT_TRUE(Status::ok().withContext("x").isOk());
}

TEST(StatusTest, FromErrnoMapsCodes) {
  EXPECT_EQ(Status::fromErrno(ENOENT, "open a").code(), StatusCode::kNotFound);
  EXPECT_EQ(Status::fromErrno(EACCES, "open a").code(), StatusCode::kPermissionDenied);
  EXPECT_EQ(Status::fromErrno(ECONNREFUSED, "c").code(), StatusCode::kUnavailable);
  EXPECT_NE(Status::fromErrno(ENOENT, "open a").message().find("open a: "), std::string::npos);
}

TEST(StatusTest, ResultPropagates) {
  EXPECT_EQ(*quarter(8), 2);
  Result<int> r = quarter(6);
  ASSERT_FALSE(r.isOk());
  EXPECT_EQ(r.status().message(), "odd: 3");
  EXPECT_EQ(r.valueOr(-1), -1);
  EXPECT_TRUE(checkEven(4).isOk());
  EXPECT_FALSE(checkEven(5).isOk());
}

TEST(StatusTest, ResultFromOkStatusIsAnError) {
  Result<int> r{Status::ok()};
  EXPECT_FALSE(r.isOk());
  EXPECT_EQ(r.status().code(), StatusCode::kInternal);
}

}  // namespace
}  // namespace edge
