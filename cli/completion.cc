#include "cli/completion.h"

#include <CLI/CLI.hpp>

#include <functional>
#include <set>
#include <string_view>
#include <vector>

namespace edge::cli {

namespace {

struct Node {
  std::string path;  // "" for the root, "images load" below it
  std::vector<std::string> subcommands;
  std::set<std::string> flags;
  std::set<std::string> value_flags;     // those that take a value
  std::vector<std::string> positionals;  // names in order
};

void collect(const CLI::App& app, const std::string& path, const Node& inherited,
             std::map<std::string, std::string>* flag_kinds, std::vector<Node>* out) {
  Node n{.path = path, .flags = inherited.flags, .value_flags = inherited.value_flags};
  for (const CLI::Option* o : app.get_options()) {
    if (o->get_positional() && !o->nonpositional()) {
      n.positionals.push_back(o->get_single_name());
      continue;
    }
    std::vector<std::string> names;
    for (const auto& s : o->get_snames()) names.push_back("-" + s);
    for (const auto& l : o->get_lnames()) names.push_back("--" + l);
    for (const auto& name : names) {
      n.flags.insert(name);
      if (o->get_expected_max() > 0) {
        n.value_flags.insert(name);
        (*flag_kinds)[name] = o->get_lnames().empty() ? name : "--" + o->get_lnames().front();
      }
    }
  }
  // Global flags may follow any subcommand (the root falls through), so they are offered
  // everywhere; a subcommand's own --help is its own.
  Node below = path.empty() ? n : inherited;
  for (const CLI::App* sub : app.get_subcommands({})) {
    n.subcommands.push_back(sub->get_name());
    for (const auto& a : sub->get_aliases()) n.subcommands.push_back(a);
  }
  out->push_back(n);
  for (const CLI::App* sub : app.get_subcommands({})) {
    std::string p = path.empty() ? sub->get_name() : path + " " + sub->get_name();
    collect(*sub, p, below, flag_kinds, out);
    for (const auto& a : sub->get_aliases()) {
      collect(*sub, path.empty() ? a : path + " " + a, below, flag_kinds, out);
    }
  }
}

std::string join(const auto& items) {
  std::string s;
  for (const auto& i : items) s += (s.empty() ? "" : " ") + i;
  return s;
}

// The fixed part of the script; _PROG stands for the function prefix, PROG for the program.
constexpr std::string_view kServicesFunction = R"sh(_PROG_services() {
  local i host=()
  for ((i = 1; i < ${#COMP_WORDS[@]}; i++)); do
    if [[ ${COMP_WORDS[i]} == --host ]]; then host=(--host "${COMP_WORDS[i+1]}"); fi
  done
  # Pretty JSON from -o json is stable: a service's own fields sit at six spaces.
  "${COMP_WORDS[0]}" "${host[@]}" --timeout 3s get services -o json 2>/dev/null |
    sed -n 's/^      "name": "\([^"]*\)",\{0,1\}$/\1/p'
}

)sh";

constexpr std::string_view kMainFunction = R"sh(_PROG_complete_kind() {
  case "$1" in
    SERVICE | NAME | --service) COMPREPLY=($(compgen -W "$(_PROG_services)" -- "$2")) ;;
    FILE | --filename)
      compopt -o filenames 2>/dev/null
      COMPREPLY=($(compgen -f -- "$2"))
      ;;
    *) COMPREPLY=($(compgen -W "$(_PROG_values "$1")" -- "$2")) ;;
  esac
}

_PROG() {
  local cur="${COMP_WORDS[COMP_CWORD]}" path="" npos=0 i w pending=""
  for ((i = 1; i < COMP_CWORD; i++)); do
    w="${COMP_WORDS[i]}"
    if [[ -n $pending ]]; then pending=""; continue; fi
    if [[ $w == -* ]]; then
      [[ $w != *=* && $(_PROG_value_flags "$path") == *" $w "* ]] && pending="$w"
      continue
    fi
    if [[ " $(_PROG_subcommands "$path") " == *" $w "* ]]; then
      path="${path:+$path }$w"
      npos=0
    else
      npos=$((npos + 1))
    fi
  done
  if [[ -n $pending ]]; then
    _PROG_complete_kind "$(_PROG_flag_kind "$pending")" "$cur"
    return 0
  fi
  if [[ $cur == -* ]]; then
    COMPREPLY=($(compgen -W "$(_PROG_flags "$path")" -- "$cur"))
    return 0
  fi
  local subs
  subs="$(_PROG_subcommands "$path")"
  if [[ -n $subs && $npos -eq 0 ]]; then
    COMPREPLY=($(compgen -W "$subs" -- "$cur"))
    return 0
  fi
  local positionals=($(_PROG_positionals "$path"))
  if [[ $npos -lt ${#positionals[@]} ]]; then
    _PROG_complete_kind "${positionals[npos]}" "$cur"
  fi
  return 0
}

complete -F _PROG PROG
)sh";

std::string fill(std::string_view text, const std::string& prog) {
  std::string t(text);
  for (size_t p; (p = t.find("_PROG")) != std::string::npos;) t.replace(p, 5, "_" + prog);
  for (size_t p; (p = t.find("PROG")) != std::string::npos;) t.replace(p, 4, prog);
  return t;
}

// One bash function answering a `case` over command paths.
std::string caseFunction(const std::string& name, const std::vector<Node>& nodes,
                         const std::function<std::string(const Node&)>& value) {
  std::string s = name + "() {\n  case \"$1\" in\n";
  for (const auto& n : nodes) {
    std::string v = value(n);
    if (!v.empty()) s += "    \"" + n.path + "\") echo \"" + v + "\" ;;\n";
  }
  return s + "  esac\n}\n\n";
}

}  // namespace

std::string bashCompletion(const CLI::App& app, const std::map<std::string, std::string>& words) {
  std::vector<Node> nodes;
  // Any spelling of a value-taking flag -> its long name (what its value completes as).
  std::map<std::string, std::string> flag_kinds;
  collect(app, "", Node{}, &flag_kinds, &nodes);
  const std::string prog = app.get_name();
  const std::string fn = "_" + prog;

  std::string s = "# bash completion for " + prog + ", generated by `" + prog +
                  " completion bash`.\n# Install: /usr/share/bash-completion/completions/" + prog +
                  ", or `source <(" + prog + " completion bash)` in ~/.bashrc.\n\n";
  s += fill(kServicesFunction, prog);
  s += caseFunction(fn + "_subcommands", nodes, [](const Node& n) { return join(n.subcommands); });
  s += caseFunction(fn + "_flags", nodes, [](const Node& n) { return join(n.flags); });
  // Padded with spaces so `== *" -o "*` matches whole words.
  s += caseFunction(fn + "_value_flags", nodes,
                    [](const Node& n) { return " " + join(n.value_flags) + " "; });
  s += caseFunction(fn + "_positionals", nodes, [](const Node& n) { return join(n.positionals); });
  s += fn + "_flag_kind() {\n  case \"$1\" in\n";
  for (const auto& [spelling, long_name] : flag_kinds) {
    s += "    " + spelling + ") echo " + long_name + " ;;\n";
  }
  s += "  esac\n}\n\n";
  s += fn + "_values() {\n  case \"$1\" in\n";
  for (const auto& [name, list] : words) s += "    " + name + ") echo \"" + list + "\" ;;\n";
  s += "  esac\n}\n\n";
  s += fill(kMainFunction, prog);
  return s;
}

}  // namespace edge::cli
