// Router: finds the route for a request's method and path by comparing path pieces, with
// no regular expressions. It replaces cpp-httplib's routing, which compiles a std::regex
// for every route (a third of edged's start-up instructions) and tries them one by one.
//
// Patterns are literal text with placeholders:
//   {name}     one path segment: one or more characters, no '/'. It must be followed by
//              '/', a {*tail} or the end of the pattern.
//   {name...}  one or more characters, '/' included (image names such as
//              "registry:5000/team/app:1"); only literal text may follow it.
//   {*name}    at the very end: nothing, or '/' and anything after it; the value keeps
//              its leading '/' ("/containers{*rest}" matches "/containers" and
//              "/containers/x/y", rest = "" and "/x/y").
// '{...}' and '{*...}' values never contain '\r' or '\n' (they stand where the regular
// expressions before them had '.'). A placeholder may be constrained with where(): a
// value the predicate refuses makes the route not match, and the search goes on.
//
// Routes with RouteOptions::version_prefix also match behind Docker's "/v<major>.<minor>"
// ("/v1.43/containers/json"); the prefix is not a capture.
//
// Lookup: the routes of the request's method, in the order they were added; the first
// that matches wins. When none does, find() says which other methods have a route for
// the path, so a server can answer 405 with Allow instead of 404.
//
// Thread-safety: add() and where() before the first find(); find() is const and may run
// on any number of threads at once.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace edge::http {

// The values a matched pattern captured, in the order the pattern names them. They view
// the path given to Router::find(): valid while that string is.
class PathParams {
 public:
  size_t size() const { return values_.size(); }
  // "" beyond size().
  std::string_view operator[](size_t i) const {
    return i < values_.size() ? values_[i] : std::string_view();
  }
  // "" when the pattern has no placeholder of that name.
  std::string_view get(std::string_view name) const;

 private:
  friend class Router;
  const std::vector<std::string>* names_ = nullptr;
  std::vector<std::string_view> values_;
};

struct RouteOptions {
  bool version_prefix = false;  // also match behind "/v<major>.<minor>"
};

class Router {
 public:
  using Accept = bool (*)(std::string_view value);

  struct Match {
    static constexpr size_t kNone = static_cast<size_t>(-1);
    size_t route = kNone;  // the id add() returned; kNone when no route of the method matched
    PathParams params;
    // When route is kNone: the methods that do have a route for this path, in the order
    // they were first added (empty: answer 404; otherwise 405 with these in Allow).
    std::vector<std::string> allowed;
    bool found() const { return route != kNone; }
  };

  Router();
  ~Router();
  Router(Router&&) noexcept;
  Router& operator=(Router&&) noexcept;

  // Adds a route and returns its id (0, 1, 2, ... in the order of adding).
  // kInvalidArgument for a malformed pattern, saying what is wrong with it.
  Result<size_t> add(std::string_view method, std::string_view pattern, RouteOptions options = {});
  // Only values `accept` takes match the placeholder `name` of route `id`.
  // kInvalidArgument when the route has no such placeholder.
  Status where(size_t id, std::string_view name, Accept accept);

  Match find(std::string_view method, std::string_view path) const;

  size_t size() const;
  bool hasMethod(std::string_view method) const;

 private:
  struct Route;
  std::vector<Route> routes_;
  // Route ids per method, in the order of adding.
  std::vector<std::pair<std::string, std::vector<size_t>>> by_method_;
};

// Predicates for where().
bool isLowerHex(std::string_view s);  // one or more of 0-9a-f

// "/v1.41/containers/json" -> 6 (the length of "/v1.41"); 0 when the path does not start
// with "/v<digits>.<digits>" followed by '/' or the end.
size_t apiVersionPrefixLength(std::string_view path);

}  // namespace edge::http
