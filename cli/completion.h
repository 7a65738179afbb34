// `edgectl completion bash`: a bash completion script generated from the command tree
// itself, so every command, alias and flag edgectl accepts is offered and nothing else.
//
// Positionals are completed by their name: SERVICE and NAME with the node's service
// names (from `edgectl get services -o json`, run quietly with the same --host), FILE
// with file names, and any name listed in `words` with those words. Flags that take a
// value are completed from `words` too (by their long name), or with files for FILE.
// Pure: builds a string.
#pragma once

#include <map>
#include <string>

namespace CLI {
class App;
}

namespace edge::cli {

std::string bashCompletion(const CLI::App& app, const std::map<std::string, std::string>& words);

}  // namespace edge::cli
