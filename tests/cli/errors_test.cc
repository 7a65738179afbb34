#include "cli/errors.h"

#include <gtest/gtest.h>

namespace edge::cli {
namespace {

http::Response answer(int status, std::string body) {
  http::Response r;
  r.status = status;
  r.body = std::move(body);
  return r;
}

TEST(ExitCodeTest, EveryDocumentedCase) {
  EXPECT_EQ(exitCodeFor(Status::ok()), 0);
  EXPECT_EQ(exitCodeFor(statusFromResponse(answer(500, R"({"message":"boom"})"))), 1);
  EXPECT_EQ(exitCodeFor(statusFromResponse(answer(503, R"({"message":"no runtime"})"))), 1);
  EXPECT_EQ(exitCodeFor(statusFromResponse(answer(404, R"({"message":"no such service"})"))), 3);
  EXPECT_EQ(exitCodeFor(statusFromResponse(answer(400, R"({"message":"bad"})"))), 4);
  EXPECT_EQ(exitCodeFor(statusFromResponse(answer(413, R"({"message":"too big"})"))), 4);
  EXPECT_EQ(exitCodeFor(statusFromResponse(answer(409, R"({"message":"in use"})"))), 6);
  EXPECT_EQ(exitCodeFor(statusFromResponse(answer(405, ""))), 1);
  EXPECT_EQ(exitCodeFor(Status::unavailable("cannot connect")), 5);
  EXPECT_EQ(exitCodeFor(Status::permissionDenied("socket")), 5);
  EXPECT_EQ(exitCodeFor(Status::deadlineExceeded("slow")), 5);
  EXPECT_EQ(exitCodeFor(Status::internal("bug")), 1);
  EXPECT_NE(exitCodeHelp().find("6  conflict"), std::string::npos);
}

TEST(NodeErrorTest, MessageThenEveryFieldErrorWithTheFileName) {
  Status s = statusFromResponse(
      answer(400, R"j({"message":"m.yaml is not a valid manifest (3 errors)","errors":[
        {"doc":1,"path":"spec.replicas","message":"expected an integer, got \"three\""},
        {"doc":2,"path":"metadata.name","message":"\"web\" is already used by doc 1"},
        {"doc":0,"path":"","message":"line 4, column 5: YAML syntax error"}]})j"),
      "m.yaml");
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(formatErrorForUser(s),
            "edgectl: m.yaml is not a valid manifest (3 errors)\n"
            "m.yaml: doc 1: spec.replicas: expected an integer, got \"three\"\n"
            "m.yaml: doc 2: metadata.name: \"web\" is already used by doc 1\n"
            "m.yaml: line 4, column 5: YAML syntax error\n");
}

TEST(NodeErrorTest, BodiesThatAreNotTheDocumentedJsonAreStillShown) {
  EXPECT_EQ(statusFromResponse(answer(502, "Bad Gateway\nmore")).message(),
            "the node answered HTTP 502: Bad Gateway");
  EXPECT_EQ(statusFromResponse(answer(404, "")).message(), "the node answered HTTP 404");
  EXPECT_EQ(statusFromResponse(answer(400, R"({"errors":"nope"})")).message(),
            "the node answered HTTP 400");
  std::string huge(5000, 'x');
  EXPECT_LT(statusFromResponse(answer(500, huge)).message().size(), 300u);
}

TEST(ReachErrorTest, NamesTheNodeAndWhatToCheck) {
  Status s = reachError(Status::unavailable("cannot connect to unix:///run/edged/edged.sock: the "
                                            "socket does not exist"),
                        "unix:///run/edged/edged.sock");
  EXPECT_EQ(s.message(),
            "cannot reach edged at unix:///run/edged/edged.sock: the socket does not exist (is "
            "edged running? see systemctl status edged)");
  EXPECT_EQ(exitCodeFor(s), 5);

  s = reachError(Status::unavailable("cannot connect to unix:///x.sock: connection refused (is "
                                     "the daemon running?)"),
                 "unix:///x.sock");
  EXPECT_EQ(s.message(),
            "cannot reach edged at unix:///x.sock: connection refused (is edged running? see "
            "systemctl status edged)");

  s = reachError(Status::permissionDenied("cannot connect to unix:///x.sock: permission denied on "
                                          "the socket"),
                 "unix:///x.sock");
  EXPECT_NE(s.message().find("permission denied on the socket (is your user in the group 'edge'"),
            std::string::npos);

  s = reachError(Status::unavailable("cannot connect to tcp://198.18.0.1:8083"),
                 "http://198.18.0.1:8083");
  EXPECT_EQ(
      s.message(),
      "cannot reach edged at http://198.18.0.1:8083: connection failed (is edged running? see "
      "systemctl status edged)");

  Status mid =
      Status::unavailable("connection to unix:///x.sock failed while reading the response");
  EXPECT_EQ(reachError(mid, "unix:///x.sock"), mid);
}

}  // namespace
}  // namespace edge::cli
