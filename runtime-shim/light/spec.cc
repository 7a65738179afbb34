#include "runtime-shim/light/spec.h"

#include <algorithm>
#include <charconv>

namespace edge::runtime::light {
namespace {

bool validName(const std::string& n) {
  auto ok = [](char c, bool first) {
    return std::isalnum(static_cast<unsigned char>(c)) ||
           (!first && (c == '_' || c == '.' || c == '-'));
  };
  if (n.empty() || n.size() > 128) return false;
  for (size_t i = 0; i < n.size(); ++i) {
    if (!ok(n[i], i == 0)) return false;
  }
  return true;
}

bool parseUint(std::string_view s, uint32_t* out) {
  if (s.empty()) return false;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), *out);
  return ec == std::errc() && p == s.data() + s.size();
}

std::vector<std::string_view> fields(std::string_view line) {
  std::vector<std::string_view> f;
  size_t start = 0;
  for (;;) {
    size_t c = line.find(':', start);
    f.push_back(
        line.substr(start, c == std::string_view::npos ? std::string_view::npos : c - start));
    if (c == std::string_view::npos) break;
    start = c + 1;
  }
  return f;
}

template <typename F>
void forEachLine(std::string_view text, F&& f) {
  size_t start = 0;
  while (start < text.size()) {
    size_t nl = text.find('\n', start);
    std::string_view line = text.substr(start, nl == std::string_view::npos ? nl : nl - start);
    if (!line.empty() && line[0] != '#') {
      if (!f(fields(line))) return;
    }
    if (nl == std::string_view::npos) break;
    start = nl + 1;
  }
}

std::string_view envKey(std::string_view kv) {
  return kv.substr(0, kv.find('='));
}

}  // namespace

Status validateSpec(const ContainerSpec& spec) {
  if (spec.image.empty()) return Status::invalidArgument("spec.image: must not be empty");
  if (!spec.name.empty() && !validName(spec.name)) {
    return Status::invalidArgument("spec.name: '" + spec.name +
                                   "' is not allowed; use [a-zA-Z0-9][a-zA-Z0-9_.-]*");
  }
  for (size_t i = 0; i < spec.env.size(); ++i) {
    if (spec.env[i].empty() || spec.env[i][0] == '=') {
      return Status::invalidArgument("spec.env[" + std::to_string(i) + "]: '" + spec.env[i] +
                                     "' needs the form KEY=value");
    }
  }
  for (size_t i = 0; i < spec.mounts.size(); ++i) {
    const BindMount& m = spec.mounts[i];
    std::string f = "spec.mounts[" + std::to_string(i) + "]";
    if (m.source.empty() || m.source[0] != '/') {
      return Status::invalidArgument(f + ".source: '" + m.source + "' must be an absolute path");
    }
    if (m.target.empty() || m.target[0] != '/') {
      return Status::invalidArgument(f + ".target: '" + m.target + "' must be an absolute path");
    }
    if (m.target == "/") {
      return Status::invalidArgument(f + ".target: cannot mount over the container's root");
    }
  }
  if (!spec.working_dir.empty() && spec.working_dir[0] != '/') {
    return Status::invalidArgument("spec.working_dir: '" + spec.working_dir +
                                   "' must be an absolute path");
  }
  const Resources& r = spec.resources;
  if (r.memory_bytes < 0)
    return Status::invalidArgument("spec.resources.memory_bytes: must not be negative");
  if (r.memory_bytes > 0 && r.memory_bytes < kMinMemoryBytes) {
    return Status::invalidArgument(
        "spec.resources.memory_bytes: " + std::to_string(r.memory_bytes) +
        " is below the minimum of 6 MiB (6291456)");
  }
  if (r.nano_cpus < 0)
    return Status::invalidArgument("spec.resources.nano_cpus: must not be negative");
  if (r.nano_cpus > 0 && r.nano_cpus < 10'000'000) {
    return Status::invalidArgument("spec.resources.nano_cpus: " + std::to_string(r.nano_cpus) +
                                   " is below the minimum of 0.01 CPU (10000000)");
  }
  if (r.pids_limit < 0)
    return Status::invalidArgument("spec.resources.pids_limit: must not be negative");
  if (spec.stop_timeout && spec.stop_timeout->count() < 0) {
    return Status::invalidArgument("spec.stop_timeout: must not be negative");
  }
  if (!spec.stop_signal.empty()) {
    auto sig = parseSignal(spec.stop_signal);
    if (!sig.isOk()) return sig.status().withContext("spec.stop_signal");
  }
  if (!spec.hostname.empty()) {
    if (spec.hostname.size() > 63 || !validName(spec.hostname)) {
      return Status::invalidArgument("spec.hostname: '" + spec.hostname +
                                     "' is not a valid host name (letters, digits, '-', '.'; "
                                     "at most 63 characters)");
    }
  }
  return Status::ok();
}

std::vector<std::string> mergeEnv(const std::vector<std::string>& base,
                                  const std::vector<std::string>& over) {
  std::vector<std::string> out = base;
  for (const std::string& kv : over) {
    auto it = std::find_if(out.begin(), out.end(),
                           [&](const std::string& e) { return envKey(e) == envKey(kv); });
    if (it != out.end()) {
      *it = kv;
    } else {
      out.push_back(kv);
    }
  }
  return out;
}

void mergeSpec(const ContainerSpec& spec, const ImageInfo& image, ContainerInfo* out) {
  if (spec.entrypoint) {
    out->entrypoint = *spec.entrypoint;
    out->cmd = spec.cmd ? *spec.cmd : std::vector<std::string>{};
  } else {
    out->entrypoint = image.entrypoint;
    out->cmd = spec.cmd ? *spec.cmd : image.cmd;
  }
  out->env = mergeEnv(image.env, spec.env);
  bool has_path = std::any_of(out->env.begin(), out->env.end(),
                              [](const std::string& e) { return envKey(e) == "PATH"; });
  if (!has_path) out->env.insert(out->env.begin(), kDefaultPath);
  out->working_dir = !spec.working_dir.empty()    ? spec.working_dir
                     : !image.working_dir.empty() ? image.working_dir
                                                  : "/";
  out->user = !spec.user.empty() ? spec.user : image.user;
  out->labels = image.labels;
  for (const auto& [k, v] : spec.labels) out->labels[k] = v;
  out->network = spec.network;
  out->mounts = spec.mounts;
  out->resources = spec.resources;
}

Result<std::vector<std::string>> containerArgv(const ContainerInfo& info) {
  std::vector<std::string> argv = info.entrypoint;
  argv.insert(argv.end(), info.cmd.begin(), info.cmd.end());
  if (argv.empty() || argv[0].empty()) {
    return Status::invalidArgument(
        "no command: the image has no Entrypoint or Cmd and the spec sets none");
  }
  return argv;
}

Result<UserIds> resolveUser(std::string_view user, std::string_view passwd,
                            std::string_view group) {
  UserIds ids;
  if (user.empty()) user = "0";
  size_t colon = user.find(':');
  std::string_view u = user.substr(0, colon);
  std::string_view g =
      colon == std::string_view::npos ? std::string_view() : user.substr(colon + 1);
  if (u.empty()) return Status::invalidArgument("user '" + std::string(user) + "': no user part");

  bool found = false;
  uint32_t numeric = 0;
  bool is_num = parseUint(u, &numeric);
  std::string user_name;
  forEachLine(passwd, [&](const std::vector<std::string_view>& f) {
    if (f.size() < 7) return true;
    uint32_t uid = 0, gid = 0;
    if (!parseUint(f[2], &uid) || !parseUint(f[3], &gid)) return true;
    if ((is_num && uid == numeric) || (!is_num && f[0] == u)) {
      ids.uid = uid;
      ids.gid = gid;
      ids.home = f[5].empty() ? "/" : std::string(f[5]);
      user_name = std::string(f[0]);
      found = true;
      return false;
    }
    return true;
  });
  if (!found) {
    if (!is_num) {
      return Status::invalidArgument("user '" + std::string(u) +
                                     "' is not in the container's /etc/passwd");
    }
    ids.uid = numeric;
    ids.gid = 0;  // as Docker: a uid missing from passwd runs with gid 0 unless given
  }
  if (!g.empty()) {
    uint32_t gnum = 0;
    bool g_is_num = parseUint(g, &gnum);
    bool gfound = false;
    forEachLine(group, [&](const std::vector<std::string_view>& f) {
      if (f.size() < 3) return true;
      uint32_t gid = 0;
      if (!parseUint(f[2], &gid)) return true;
      if ((g_is_num && gid == gnum) || (!g_is_num && f[0] == g)) {
        ids.gid = gid;
        gfound = true;
        return false;
      }
      return true;
    });
    if (!gfound) {
      if (!g_is_num) {
        return Status::invalidArgument("group '" + std::string(g) +
                                       "' is not in the container's /etc/group");
      }
      ids.gid = gnum;
    }
  }
  if (!user_name.empty()) {
    forEachLine(group, [&](const std::vector<std::string_view>& f) {
      if (f.size() < 4) return true;
      uint32_t gid = 0;
      if (!parseUint(f[2], &gid)) return true;
      std::string_view members = f[3];
      size_t start = 0;
      while (start <= members.size()) {
        size_t c = members.find(',', start);
        std::string_view m = members.substr(start, c == std::string_view::npos ? c : c - start);
        if (m == user_name && gid != ids.gid &&
            std::find(ids.groups.begin(), ids.groups.end(), gid) == ids.groups.end()) {
          ids.groups.push_back(gid);
        }
        if (c == std::string_view::npos) break;
        start = c + 1;
      }
      return true;
    });
  }
  return ids;
}

}  // namespace edge::runtime::light
