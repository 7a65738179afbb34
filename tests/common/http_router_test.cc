// The router on its own: which route a method and path reach, what the placeholders
// capture, and the cases where it must agree with the regular expressions it replaced
// ("[^/]+" for {name}, ".+" for {name...}, "(/.*)?" for {*name}, "(?:/v[0-9]+\.[0-9]+)?"
// for the Docker prefix).
#include "common/http_router.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace edge::http {
namespace {

size_t mustAdd(Router& r, std::string_view method, std::string_view pattern, RouteOptions o = {}) {
  Result<size_t> id = r.add(method, pattern, o);
  EXPECT_TRUE(id.isOk()) << id.status().toString();
  return id.isOk() ? *id : Router::Match::kNone;
}

std::vector<std::string> captures(const Router::Match& m) {
  std::vector<std::string> out;
  for (size_t i = 0; i < m.params.size(); ++i) out.emplace_back(m.params[i]);
  return out;
}

TEST(HttpRouterTest, LiteralsAndSegmentsFirstMatchWins) {
  Router r;
  size_t list = mustAdd(r, "GET", "/containers/json");
  size_t inspect = mustAdd(r, "GET", "/containers/{id}/json");
  size_t logs = mustAdd(r, "GET", "/containers/{id}/logs");
  size_t any = mustAdd(r, "GET", "/containers/{id}");

  EXPECT_EQ(r.find("GET", "/containers/json").route, list);
  Router::Match m = r.find("GET", "/containers/abc/json");
  EXPECT_EQ(m.route, inspect);
  EXPECT_EQ(captures(m), std::vector<std::string>{"abc"});
  EXPECT_EQ(m.params.get("id"), "abc");
  EXPECT_EQ(m.params.get("nope"), "");
  EXPECT_EQ(r.find("GET", "/containers/abc/logs").route, logs);
  EXPECT_EQ(r.find("GET", "/containers/abc").route, any);
  // A segment is never empty and never holds '/'; nothing matches a partial path.
  EXPECT_FALSE(r.find("GET", "/containers//json").found());
  EXPECT_FALSE(r.find("GET", "/containers/").found());
  EXPECT_FALSE(r.find("GET", "/containers/a/b/c").found());
  EXPECT_FALSE(r.find("GET", "/containers/json/").found());
  EXPECT_FALSE(r.find("GET", "/container").found());
  // Literals are literal (a regular expression's '.' was not).
  mustAdd(r, "GET", "/.well-known/jwks.json");
  EXPECT_TRUE(r.find("GET", "/.well-known/jwks.json").found());
  EXPECT_FALSE(r.find("GET", "/.well-known/jwksxjson").found());
  // Segments may hold what a decoded path holds, line breaks included ("[^/]+").
  EXPECT_EQ(captures(r.find("GET", "/containers/a\nb")), std::vector<std::string>{"a\nb"});
}

TEST(HttpRouterTest, RestTakesSlashesAndEndsBeforeItsSuffix) {
  Router r;
  size_t inspect = mustAdd(r, "GET", "/images/{name...}/json");
  size_t remove = mustAdd(r, "DELETE", "/images/{name...}");

  Router::Match m = r.find("GET", "/images/registry:5000/team/app:1/json");
  EXPECT_EQ(m.route, inspect);
  EXPECT_EQ(captures(m), std::vector<std::string>{"registry:5000/team/app:1"});
  // Greedy, as "(.+)/json" was.
  EXPECT_EQ(captures(r.find("GET", "/images/a/json/json")), std::vector<std::string>{"a/json"});
  EXPECT_EQ(captures(r.find("GET", "/images///json")), std::vector<std::string>{"/"});
  EXPECT_FALSE(r.find("GET", "/images//json").found());  // empty name
  EXPECT_FALSE(r.find("GET", "/images/json").found());
  EXPECT_FALSE(r.find("GET", "/images/a\nb/json").found());  // '.' never took a line break
  EXPECT_EQ(captures(r.find("DELETE", "/images/busybox:latest")),
            std::vector<std::string>{"busybox:latest"});
  EXPECT_EQ(r.find("DELETE", "/images/a/b").route, remove);
  EXPECT_FALSE(r.find("DELETE", "/images/").found());
}

TEST(HttpRouterTest, TailIsEmptyOrStartsWithASlash) {
  Router r;
  size_t proxy = mustAdd(r, "GET", "/peers/{node}/proxy{*path}");
  EXPECT_EQ(captures(r.find("GET", "/peers/n1/proxy")), (std::vector<std::string>{"n1", ""}));
  EXPECT_EQ(captures(r.find("GET", "/peers/n1/proxy/")), (std::vector<std::string>{"n1", "/"}));
  Router::Match m = r.find("GET", "/peers/n1/proxy/api/v1/node");
  EXPECT_EQ(m.route, proxy);
  EXPECT_EQ(m.params.get("path"), "/api/v1/node");
  EXPECT_FALSE(r.find("GET", "/peers/n1/proxyx").found());
  EXPECT_FALSE(r.find("GET", "/peers/n1/proxy/a\rb").found());

  // A segment right before a tail: "/{section}(/.*)?".
  Router s;
  mustAdd(s, "GET", "/{section}{*rest}");
  EXPECT_EQ(captures(s.find("GET", "/networks")), (std::vector<std::string>{"networks", ""}));
  EXPECT_EQ(captures(s.find("GET", "/networks/x/y")),
            (std::vector<std::string>{"networks", "/x/y"}));
}

TEST(HttpRouterTest, WhereConstrainsAndTheSearchGoesOn) {
  Router r;
  size_t hex = mustAdd(r, "GET", "/peers/{node}");
  ASSERT_TRUE(r.where(hex, "node", [](std::string_view v) {
                 return v.size() == 16 && isLowerHex(v);
               }).isOk());
  size_t other = mustAdd(r, "GET", "/peers/{name}");
  EXPECT_EQ(r.find("GET", "/peers/0123456789abcdef").route, hex);
  EXPECT_EQ(r.find("GET", "/peers/0123456789ABCDEF").route, other);
  EXPECT_EQ(r.find("GET", "/peers/0123").route, other);
  Status bad = r.where(hex, "missing", isLowerHex);
  EXPECT_EQ(bad.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(bad.message().find("missing"), std::string::npos);
  EXPECT_FALSE(r.where(99, "node", isLowerHex).isOk());
}

TEST(HttpRouterTest, DockerVersionPrefixIsOptionalAndNotCaptured) {
  Router r;
  RouteOptions versioned{.version_prefix = true};
  size_t logs = mustAdd(r, "GET", "/containers/{id}/logs", versioned);
  size_t plain = mustAdd(r, "GET", "/api/v1/node");

  for (std::string_view path : {"/containers/c1/logs", "/v1.41/containers/c1/logs",
                                "/v1.24/containers/c1/logs", "/v10.100/containers/c1/logs"}) {
    Router::Match m = r.find("GET", path);
    EXPECT_EQ(m.route, logs) << path;
    EXPECT_EQ(captures(m), std::vector<std::string>{"c1"}) << path;
  }
  for (std::string_view path :
       {"/v1/containers/c1/logs", "/v1.x/containers/c1/logs", "/v1.41.2/containers/c1/logs",
        "/V1.41/containers/c1/logs", "/v1.41", "/v1.41/"}) {
    EXPECT_FALSE(r.find("GET", path).found()) << path;
  }
  // Routes without the option do not take the prefix.
  EXPECT_EQ(r.find("GET", "/api/v1/node").route, plain);
  EXPECT_FALSE(r.find("GET", "/v1.41/api/v1/node").found());

  EXPECT_EQ(apiVersionPrefixLength("/v1.41/containers/json"), 6u);
  EXPECT_EQ(apiVersionPrefixLength("/v1.41"), 6u);
  EXPECT_EQ(apiVersionPrefixLength("/v1.41x"), 0u);
  EXPECT_EQ(apiVersionPrefixLength("/containers/json"), 0u);
}

TEST(HttpRouterTest, MethodsAreApartAndTheOthersAreListedFor405) {
  Router r;
  mustAdd(r, "GET", "/api/v1/services/{name}");
  size_t del = mustAdd(r, "DELETE", "/api/v1/services/{name}");
  mustAdd(r, "POST", "/api/v1/services");

  EXPECT_EQ(r.find("DELETE", "/api/v1/services/web").route, del);
  Router::Match m = r.find("PUT", "/api/v1/services/web");
  EXPECT_FALSE(m.found());
  EXPECT_EQ(m.allowed, (std::vector<std::string>{"GET", "DELETE"}));
  EXPECT_EQ(m.params.size(), 0u);
  Router::Match none = r.find("GET", "/nowhere");
  EXPECT_FALSE(none.found());
  EXPECT_TRUE(none.allowed.empty());
  EXPECT_TRUE(r.hasMethod("POST"));
  EXPECT_FALSE(r.hasMethod("PATCH"));
}

TEST(HttpRouterTest, MalformedPatternsAreRefusedSayingWhy) {
  struct Case {
    const char* pattern;
    const char* says;
  };
  for (const Case& c : {
           Case{"containers/json", "start with '/'"},
           Case{"/containers/{id", "'{' without '}'"},
           Case{"/containers/id}", "'}' without '{'"},
           Case{"/containers/{}", "needs a name"},
           Case{"/containers/{a-b}", "needs a name"},
           Case{"/a/{x}/{x}", "twice"},
           Case{"/a/{x}.json", "must be followed by '/'"},
           Case{"/a/{x...}/{y}", "only literal text"},
           Case{"/a{*rest}/b", "must end the pattern"},
       }) {
    Router r;
    Result<size_t> id = r.add("GET", c.pattern);
    ASSERT_FALSE(id.isOk()) << c.pattern;
    EXPECT_EQ(id.status().code(), StatusCode::kInvalidArgument);
    EXPECT_NE(id.status().message().find(c.says), std::string::npos) << id.status().message();
  }
  Router r;
  EXPECT_FALSE(r.add("", "/x").isOk());
  EXPECT_EQ(r.size(), 0u);
}

}  // namespace
}  // namespace edge::http
