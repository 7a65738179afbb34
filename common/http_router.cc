#include "common/http_router.h"

#include <algorithm>
#include <cctype>
#include <utility>

namespace edge::http {

namespace {

enum class PieceKind { kLiteral, kSegment, kRest, kTail };

struct Piece {
  PieceKind kind;
  std::string text;  // the literal, or the placeholder's name
  Router::Accept accept = nullptr;
};

bool hasLineBreak(std::string_view s) {
  return s.find_first_of("\r\n") != std::string_view::npos;
}

bool validName(std::string_view name) {
  return !name.empty() && std::all_of(name.begin(), name.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '_';
  });
}

}  // namespace

struct Router::Route {
  std::string pattern;
  RouteOptions options;
  std::vector<Piece> pieces;
  std::vector<std::string> names;  // placeholder names in order
  std::string suffix;              // the literal text after a {name...}

  bool matchFrom(std::string_view path, std::vector<std::string_view>& out) const;
  bool match(std::string_view path, std::vector<std::string_view>& out) const {
    if (options.version_prefix) {
      size_t n = apiVersionPrefixLength(path);
      if (n > 0 && matchFrom(path.substr(n), out)) return true;
    }
    return matchFrom(path, out);
  }
};

bool Router::Route::matchFrom(std::string_view path, std::vector<std::string_view>& out) const {
  out.clear();
  size_t pos = 0;
  for (const Piece& p : pieces) {
    std::string_view rest = path.substr(pos);
    switch (p.kind) {
      case PieceKind::kLiteral:
        if (!rest.starts_with(p.text)) return false;
        pos += p.text.size();
        break;
      case PieceKind::kSegment: {
        size_t end = rest.find('/');
        std::string_view v = rest.substr(0, end);
        if (v.empty() || (p.accept && !p.accept(v))) return false;
        out.push_back(v);
        pos += v.size();
        break;
      }
      case PieceKind::kRest: {
        // Only literal text follows (checked by add()): the value is what lies between
        // here and that suffix at the end of the path.
        if (rest.size() <= suffix.size() || !rest.ends_with(suffix)) return false;
        std::string_view v = rest.substr(0, rest.size() - suffix.size());
        if (hasLineBreak(v) || (p.accept && !p.accept(v))) return false;
        out.push_back(v);
        return true;
      }
      case PieceKind::kTail:
        if (!rest.empty() && (rest.front() != '/' || hasLineBreak(rest))) return false;
        if (p.accept && !p.accept(rest)) return false;
        out.push_back(rest);
        return true;
    }
  }
  return pos == path.size();
}

std::string_view PathParams::get(std::string_view name) const {
  if (names_ == nullptr) return {};
  for (size_t i = 0; i < names_->size() && i < values_.size(); ++i) {
    if ((*names_)[i] == name) return values_[i];
  }
  return {};
}

Router::Router() = default;
Router::~Router() = default;
Router::Router(Router&&) noexcept = default;
Router& Router::operator=(Router&&) noexcept = default;

size_t Router::size() const {
  return routes_.size();
}

bool Router::hasMethod(std::string_view method) const {
  return std::any_of(by_method_.begin(), by_method_.end(),
                     [&](const auto& e) { return e.first == method; });
}

Result<size_t> Router::add(std::string_view method, std::string_view pattern,
                           RouteOptions options) {
  auto bad = [&](const std::string& why) {
    return Status::invalidArgument("route pattern '" + std::string(pattern) + "': " + why +
                                   "; placeholders are {name}, {name...} and a final {*name}");
  };
  if (method.empty()) return bad("no method");
  if (!pattern.starts_with("/")) return bad("must start with '/'");
  Route r;
  r.pattern = std::string(pattern);
  r.options = options;
  size_t i = 0;
  while (i < pattern.size()) {
    size_t open = pattern.find('{', i);
    size_t close_stray = pattern.find('}', i);
    if (close_stray < open) return bad("'}' without '{'");
    if (open != i) {
      r.pieces.push_back({PieceKind::kLiteral, std::string(pattern.substr(i, open - i))});
      if (open == std::string_view::npos) break;
    }
    size_t close = pattern.find('}', open);
    if (close == std::string_view::npos) return bad("'{' without '}'");
    std::string_view inner = pattern.substr(open + 1, close - open - 1);
    Piece piece{PieceKind::kSegment, ""};
    if (inner.starts_with("*")) {
      piece.kind = PieceKind::kTail;
      inner.remove_prefix(1);
    } else if (inner.ends_with("...")) {
      piece.kind = PieceKind::kRest;
      inner.remove_suffix(3);
    }
    if (!validName(inner)) {
      return bad("placeholder '{" + std::string(pattern.substr(open + 1, close - open - 1)) +
                 "}' needs a name of letters, digits and '_'");
    }
    if (std::find(r.names.begin(), r.names.end(), inner) != r.names.end()) {
      return bad("placeholder '" + std::string(inner) + "' appears twice");
    }
    piece.text = std::string(inner);
    r.names.push_back(piece.text);
    r.pieces.push_back(std::move(piece));
    i = close + 1;
  }
  // Where each kind of placeholder may stand, so matching never has to backtrack.
  bool seen_rest = false;
  for (size_t k = 0; k < r.pieces.size(); ++k) {
    const Piece& p = r.pieces[k];
    const Piece* next = k + 1 < r.pieces.size() ? &r.pieces[k + 1] : nullptr;
    if (seen_rest && p.kind != PieceKind::kLiteral) {
      return bad("only literal text may follow a {name...}");
    }
    switch (p.kind) {
      case PieceKind::kLiteral:
        if (seen_rest) r.suffix += p.text;
        break;
      case PieceKind::kSegment:
        if (next != nullptr && next->kind != PieceKind::kTail &&
            !(next->kind == PieceKind::kLiteral && next->text.front() == '/')) {
          return bad("{" + p.text + "} must be followed by '/', a {*tail} or the end");
        }
        break;
      case PieceKind::kRest:
        seen_rest = true;
        break;
      case PieceKind::kTail:
        if (next != nullptr) return bad("{*" + p.text + "} must end the pattern");
        break;
    }
  }

  size_t id = routes_.size();
  routes_.push_back(std::move(r));
  auto it = std::find_if(by_method_.begin(), by_method_.end(),
                         [&](const auto& e) { return e.first == method; });
  if (it == by_method_.end()) {
    by_method_.emplace_back(std::string(method), std::vector<size_t>{});
    it = std::prev(by_method_.end());
  }
  it->second.push_back(id);
  return id;
}

Status Router::where(size_t id, std::string_view name, Accept accept) {
  if (id >= routes_.size()) return Status::invalidArgument("no route " + std::to_string(id));
  for (Piece& p : routes_[id].pieces) {
    if (p.kind != PieceKind::kLiteral && p.text == name) {
      p.accept = accept;
      return Status::ok();
    }
  }
  return Status::invalidArgument("route pattern '" + routes_[id].pattern +
                                 "' has no placeholder '" + std::string(name) + "'");
}

Router::Match Router::find(std::string_view method, std::string_view path) const {
  Match m;
  for (const auto& [verb, ids] : by_method_) {
    if (verb != method) continue;
    for (size_t id : ids) {
      if (routes_[id].match(path, m.params.values_)) {
        m.route = id;
        m.params.names_ = &routes_[id].names;
        return m;
      }
    }
  }
  m.params.values_.clear();
  std::vector<std::string_view> scratch;
  for (const auto& [verb, ids] : by_method_) {
    if (verb == method) continue;
    for (size_t id : ids) {
      if (routes_[id].match(path, scratch)) {
        m.allowed.push_back(verb);
        break;
      }
    }
  }
  return m;
}

bool isLowerHex(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) {
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
  });
}

size_t apiVersionPrefixLength(std::string_view path) {
  if (!path.starts_with("/v")) return 0;
  size_t i = 2;
  auto digits = [&] {
    size_t start = i;
    while (i < path.size() && std::isdigit(static_cast<unsigned char>(path[i]))) ++i;
    return i > start;
  };
  if (!digits() || i >= path.size() || path[i] != '.') return 0;
  ++i;
  if (!digits()) return 0;
  if (i < path.size() && path[i] != '/') return 0;
  return i;
}

}  // namespace edge::http
