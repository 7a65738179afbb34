// Small *at() helpers shared by layer unpacking and rootfs materialisation. None of them
// follows a symlink: every path step is opened relative to a directory fd with
// O_NOFOLLOW, so a tree built from untrusted layers cannot redirect them elsewhere.
#pragma once

#include <string>
#include <vector>

#include "common/fs.h"
#include "common/status.h"

namespace edge::runtime::image {

// Removes `name` in `dirfd` (a file, a symlink or a whole directory tree). A missing
// name is fine. `max_depth` bounds the recursion.
Status removeAt(int dirfd, const std::string& name, int max_depth = 4096);

// Removes every child of the directory `dirfd`.
Status removeChildren(int dirfd, int max_depth = 4096);

// Opens directory `name` inside `dirfd` without following a symlink. Returns an invalid
// fd and sets errno on failure (ELOOP/ENOTDIR when `name` is not a real directory).
fs::UniqueFd openDirAt(int dirfd, const std::string& name);

// Splits a clean relative path ("a/b/c") into its components.
std::vector<std::string> splitPath(const std::string& path);

}  // namespace edge::runtime::image
