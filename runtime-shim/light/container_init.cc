#include "runtime-shim/light/container_init.h"

#include <fcntl.h>
#include <grp.h>
#include <linux/capability.h>
#include <linux/filter.h>
#include <linux/openat2.h>
#include <linux/seccomp.h>
#include <net/if.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "common/fs.h"
#include "runtime-shim/light/spec.h"

namespace edge::runtime::light {
namespace {

// Docker's default capability set.
constexpr int kKeptCaps[] = {CAP_CHOWN,   CAP_DAC_OVERRIDE, CAP_FSETID,           CAP_FOWNER,
                             CAP_MKNOD,   CAP_NET_RAW,      CAP_SETGID,           CAP_SETUID,
                             CAP_SETFCAP, CAP_SETPCAP,      CAP_NET_BIND_SERVICE, CAP_SYS_CHROOT,
                             CAP_KILL,    CAP_AUDIT_WRITE};

[[noreturn]] void fail(const InitParams& p, const std::string& message) {
  (void)fs::writeAll(p.error_fd, message);
  _exit(127);
}

std::string errnoText(int err) {
  return std::strerror(err);
}

// Lower-cased strerror, as Go-based runtimes print it ("no such file or directory").
std::string lowerErr(int err) {
  std::string s = std::strerror(err);
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

// Opens `rel` (relative, no leading '/') with symlinks resolved inside `root`.
int openInRoot(int root, const std::string& rel, int flags, mode_t mode = 0) {
  struct open_how how {};
  how.flags = static_cast<uint64_t>(flags | O_CLOEXEC);
  how.mode = (flags & O_CREAT) ? mode : 0;
  how.resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS;
  const char* path = rel.empty() ? "." : rel.c_str();
  return static_cast<int>(::syscall(SYS_openat2, root, path, &how, sizeof how));
}

std::string trimSlashes(const std::string& p) {
  size_t a = p.find_first_not_of('/');
  if (a == std::string::npos) return "";
  size_t b = p.find_last_not_of('/');
  return p.substr(a, b - a + 1);
}

std::string fdPath(int fd) {
  return "/proc/self/fd/" + std::to_string(fd);
}

// mkdir -p of `rel` inside root without following symlinks out of it. Returns 0 or errno.
int ensureDir(int root, const std::string& rel) {
  std::string path = trimSlashes(rel);
  size_t pos = 0;
  while (pos <= path.size()) {
    size_t slash = path.find('/', pos);
    std::string prefix = path.substr(0, slash);
    int fd = openInRoot(root, prefix, O_PATH | O_DIRECTORY);
    if (fd >= 0) {
      ::close(fd);
    } else if (errno == ENOENT) {
      size_t cut = prefix.rfind('/');
      std::string parent = cut == std::string::npos ? "" : prefix.substr(0, cut);
      std::string name = cut == std::string::npos ? prefix : prefix.substr(cut + 1);
      fs::UniqueFd pfd(openInRoot(root, parent, O_PATH | O_DIRECTORY));
      if (!pfd.valid()) return errno;
      if (::mkdirat(pfd.get(), name.c_str(), 0755) != 0 && errno != EEXIST) return errno;
    } else {
      return errno;
    }
    if (slash == std::string::npos) break;
    pos = slash + 1;
  }
  return 0;
}

std::string parentOf(const std::string& rel) {
  size_t cut = rel.rfind('/');
  return cut == std::string::npos ? "" : rel.substr(0, cut);
}

// Creates (if needed) and opens O_PATH the mount target `rel` inside root.
int mountTarget(int root, const std::string& rel_in, bool dir) {
  std::string rel = trimSlashes(rel_in);
  if (dir) {
    if (int e = ensureDir(root, rel); e != 0) {
      errno = e;
      return -1;
    }
    return openInRoot(root, rel, O_PATH | O_DIRECTORY);
  }
  if (int e = ensureDir(root, parentOf(rel)); e != 0) {
    errno = e;
    return -1;
  }
  int fd = openInRoot(root, rel, O_PATH);
  if (fd >= 0) return fd;
  int c = openInRoot(root, rel, O_WRONLY | O_CREAT, 0644);
  if (c < 0) return -1;
  ::close(c);
  return openInRoot(root, rel, O_PATH);
}

void mountOn(const InitParams& p, int root, const std::string& rel, bool dir, const char* src,
             const char* type, unsigned long flags, const char* data) {
  fs::UniqueFd t(mountTarget(root, rel, dir));
  if (!t.valid()) fail(p, "create mount point /" + rel + ": " + errnoText(errno));
  if (::mount(src, fdPath(t.get()).c_str(), type, flags, data) != 0) {
    fail(p, std::string("mount ") + (type ? type : src) + " on /" + rel + ": " + errnoText(errno));
  }
}

// Bind-remounts the mount at `rel` read-only, keeping `extra` flags.
void remountReadOnly(const InitParams& p, int root, const std::string& rel, unsigned long extra) {
  fs::UniqueFd t(openInRoot(root, rel, O_PATH));
  if (!t.valid()) fail(p, "open /" + rel + ": " + errnoText(errno));
  if (::mount(nullptr, fdPath(t.get()).c_str(), nullptr, MS_BIND | MS_REMOUNT | MS_RDONLY | extra,
              nullptr) != 0) {
    fail(p, "remount /" + rel + " read-only: " + errnoText(errno));
  }
}

void writeInRoot(const InitParams& p, int root, const std::string& rel, const std::string& data) {
  if (int e = ensureDir(root, parentOf(rel)); e != 0)
    fail(p, "mkdir /" + parentOf(rel) + ": " + errnoText(e));
  fs::UniqueFd fd(openInRoot(root, rel, O_WRONLY | O_CREAT | O_TRUNC, 0644));
  if (!fd.valid()) fail(p, "write /" + rel + ": " + errnoText(errno));
  if (!fs::writeAll(fd.get(), data).isOk()) fail(p, "write /" + rel + ": " + errnoText(errno));
}

std::string readSmall(const char* path) {
  auto r = fs::readFile(path, 1 << 20);
  return r.isOk() ? *r : std::string();
}

struct EtcFile {
  const char* name;
  std::string data;
};

// Writes the /etc files into <run dir>/etc/etc: that dir is given to overlayfs as the
// topmost lower layer, so the container reads them as image files and a write copies
// them up as usual — without creating three files in the upper dir (and copying up /etc)
// on the data dir's filesystem at every start. The layer's /etc takes the mode and owner
// of the image's. Returns the layer, or "" when the image's /etc is not a directory (the
// files then go through the overlay).
std::string writeEtcLayer(const InitParams& p, const std::vector<EtcFile>& files) {
  const LaunchConfig& c = *p.config;
  struct stat est {};
  bool found = false;
  for (size_t i = c.layers.size(); i-- > 0 && !found;) {
    found = ::lstat((c.layers[i] + "/etc").c_str(), &est) == 0;
  }
  if (found && !S_ISDIR(est.st_mode)) return "";
  std::string layer = p.run_dir + "/etc";
  std::string etc = layer + "/etc";
  for (const std::string& d : {layer, etc}) {
    if (::mkdir(d.c_str(), 0755) != 0 && errno != EEXIST) {
      fail(p, "mkdir " + d + ": " + errnoText(errno));
    }
  }
  if (found && (::chmod(etc.c_str(), est.st_mode & 07777) != 0 ||
                ::lchown(etc.c_str(), est.st_uid, est.st_gid) != 0)) {
    fail(p, "set up " + etc + ": " + errnoText(errno));
  }
  std::string upper_etc = p.container_dir + "/upper/etc/";
  for (const EtcFile& f : files) {
    std::string path = etc + "/" + f.name;
    fs::UniqueFd fd(
        ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0644));
    if (!fd.valid() || !fs::writeAll(fd.get(), f.data).isOk()) {
      fail(p, "write " + path + ": " + errnoText(errno));
    }
    // A restart starts from fresh files, as when they were written through the overlay:
    // drop the previous run's copy-up (or whiteout) of each.
    (void)::unlink((upper_etc + f.name).c_str());
  }
  return layer;
}

// Mounts the root filesystem on `merged`; true when `etc` went into a layer of it.
bool mountRootfs(const InitParams& p, const std::string& merged, const std::vector<EtcFile>& etc) {
  const LaunchConfig& c = *p.config;
  if (c.rootfs_copy) {
    std::string src = p.container_dir + "/rootfs";
    if (::mount(src.c_str(), merged.c_str(), nullptr, MS_BIND | MS_REC, nullptr) != 0) {
      fail(p, "bind rootfs " + src + ": " + errnoText(errno));
    }
    return false;
  }
  if (c.layers.empty()) fail(p, "mount overlay: the image has no layers");
  std::vector<std::string> layers = c.layers;
  std::string etc_layer = writeEtcLayer(p, etc);
  if (p.trace) p.trace("etclayer");
  if (!etc_layer.empty()) layers.push_back(etc_layer);
  // "volatile": the upper layer is scratch space; without it every unmount (the end of
  // every container) syncs the whole upper filesystem. A volatile mount leaves a marker in
  // the work dir that refuses the next mount, so a restart starts from a clean work dir.
  std::string work = p.container_dir + "/work";
  struct stat wst {};
  if (::lstat((work + "/work").c_str(), &wst) == 0) (void)fs::removeAll(work + "/work");
  OverlayMountData d = overlayMountData(layers, p.container_dir + "/upper", work);
  if (!d.chdir_to.empty() && ::chdir(d.chdir_to.c_str()) != 0) {
    fail(p, "chdir " + d.chdir_to + ": " + errnoText(errno));
  }
  std::string fast = d.data + ",volatile";
  if (::mount("overlay", merged.c_str(), "overlay", 0, fast.c_str()) != 0) {
    // Kernels before 5.10 do not know "volatile".
    if (errno != EINVAL || ::mount("overlay", merged.c_str(), "overlay", 0, d.data.c_str()) != 0) {
      fail(p, "mount overlay: " + errnoText(errno));
    }
  }
  return !etc_layer.empty();
}

void setupDev(const InitParams& p, int root) {
  mountOn(p, root, "dev", true, "tmpfs", "tmpfs", MS_NOSUID | MS_STRICTATIME,
          "mode=755,size=65536k");
  fs::UniqueFd dev(openInRoot(root, "dev", O_PATH | O_DIRECTORY));
  if (!dev.valid()) fail(p, "open /dev: " + errnoText(errno));
  struct Node {
    const char* name;
    unsigned major, minor;
  };
  static constexpr Node kNodes[] = {{"null", 1, 3},   {"zero", 1, 5},    {"full", 1, 7},
                                    {"random", 1, 8}, {"urandom", 1, 9}, {"tty", 5, 0}};
  for (const Node& n : kNodes) {
    if (::mknodat(dev.get(), n.name, S_IFCHR | 0666, makedev(n.major, n.minor)) != 0) {
      fail(p, std::string("mknod /dev/") + n.name + ": " + errnoText(errno));
    }
  }
  mountOn(p, root, "dev/pts", true, "devpts", "devpts", MS_NOSUID | MS_NOEXEC,
          "newinstance,ptmxmode=0666,mode=0620");
  mountOn(p, root, "dev/shm", true, "shm", "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC,
          "mode=1777,size=65536k");
  static constexpr std::pair<const char*, const char*> kLinks[] = {{"pts/ptmx", "ptmx"},
                                                                   {"/proc/self/fd", "fd"},
                                                                   {"/proc/self/fd/0", "stdin"},
                                                                   {"/proc/self/fd/1", "stdout"},
                                                                   {"/proc/self/fd/2", "stderr"}};
  for (const auto& [target, name] : kLinks) {
    if (::symlinkat(target, dev.get(), name) != 0) {
      fail(p, std::string("symlink /dev/") + name + ": " + errnoText(errno));
    }
  }
}

void maskPaths(const InitParams& p, int root) {
  for (const char* f : {"proc/kcore", "proc/keys", "proc/timer_list", "proc/sched_debug"}) {
    fs::UniqueFd t(openInRoot(root, f, O_PATH));
    if (!t.valid()) continue;  // absent on this kernel
    if (::mount("/dev/null", fdPath(t.get()).c_str(), nullptr, MS_BIND, nullptr) != 0) {
      fail(p, std::string("mask /") + f + ": " + errnoText(errno));
    }
  }
  for (const char* d : {"sys/firmware", "proc/acpi", "proc/scsi"}) {
    fs::UniqueFd t(openInRoot(root, d, O_PATH | O_DIRECTORY));
    if (!t.valid()) continue;
    if (::mount("tmpfs", fdPath(t.get()).c_str(), "tmpfs", MS_RDONLY, "size=0") != 0) {
      fail(p, std::string("mask /") + d + ": " + errnoText(errno));
    }
  }
  for (const char* d : {"proc/bus", "proc/fs", "proc/irq", "proc/sys", "proc/sysrq-trigger"}) {
    {
      fs::UniqueFd t(openInRoot(root, d, O_PATH));
      if (!t.valid()) continue;
      std::string fp = fdPath(t.get());
      if (::mount(fp.c_str(), fp.c_str(), nullptr, MS_BIND | MS_REC, nullptr) != 0) {
        fail(p, std::string("bind /") + d + ": " + errnoText(errno));
      }
    }
    remountReadOnly(p, root, d, MS_NOSUID | MS_NODEV | MS_NOEXEC);
  }
}

void bringLoopbackUp(const InitParams& p) {
  fs::UniqueFd s(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  if (!s.valid()) fail(p, "socket for lo: " + errnoText(errno));
  struct ifreq ifr {};
  std::strncpy(ifr.ifr_name, "lo", IFNAMSIZ - 1);
  if (::ioctl(s.get(), SIOCGIFFLAGS, &ifr) != 0) fail(p, "get lo flags: " + errnoText(errno));
  ifr.ifr_flags = static_cast<short>(ifr.ifr_flags | IFF_UP | IFF_RUNNING);
  if (::ioctl(s.get(), SIOCSIFFLAGS, &ifr) != 0) fail(p, "bring lo up: " + errnoText(errno));
}

void dropCapabilities(const InitParams& p, const UserIds& ids) {
  uint64_t keep = 0;
  for (int c : kKeptCaps) keep |= uint64_t{1} << c;
  if (::prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0) != 0) fail(p, "keep caps: " + errnoText(errno));
  for (int c = 0; c < 64; ++c) {
    if (keep & (uint64_t{1} << c)) continue;
    if (::prctl(PR_CAPBSET_DROP, c, 0, 0, 0) != 0 && errno != EINVAL) {
      fail(p,
           "drop capability " + std::to_string(c) + " from the bounding set: " + errnoText(errno));
    }
  }
  std::vector<gid_t> groups(ids.groups.begin(), ids.groups.end());
  if (::setgroups(groups.size(), groups.data()) != 0) fail(p, "setgroups: " + errnoText(errno));
  if (::setresgid(ids.gid, ids.gid, ids.gid) != 0) fail(p, "setgid: " + errnoText(errno));
  if (::setresuid(ids.uid, ids.uid, ids.uid) != 0) fail(p, "setuid: " + errnoText(errno));
  if (::prctl(PR_SET_KEEPCAPS, 0, 0, 0, 0) != 0) fail(p, "clear keep caps: " + errnoText(errno));
  __user_cap_header_struct hdr{_LINUX_CAPABILITY_VERSION_3, 0};
  __user_cap_data_struct data[2] = {};
  data[0].effective = data[0].permitted = static_cast<uint32_t>(keep);
  data[1].effective = data[1].permitted = static_cast<uint32_t>(keep >> 32);
  if (::syscall(SYS_capset, &hdr, data) != 0) fail(p, "capset: " + errnoText(errno));
  if (::prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) != 0 && errno != EINVAL) {
    fail(p, "clear ambient capabilities: " + errnoText(errno));
  }
}

bool hasKey(const std::vector<std::string>& env, std::string_view key) {
  for (const std::string& e : env) {
    if (e.size() > key.size() && e.compare(0, key.size(), key) == 0 && e[key.size()] == '=') {
      return true;
    }
  }
  return false;
}

std::string envValue(const std::vector<std::string>& env, std::string_view key) {
  for (const std::string& e : env) {
    if (e.size() > key.size() && e.compare(0, key.size(), key) == 0 && e[key.size()] == '=') {
      return e.substr(key.size() + 1);
    }
  }
  return "";
}

}  // namespace

OverlayMountData overlayMountData(const std::vector<std::string>& layers, const std::string& upper,
                                  const std::string& work, size_t max_len) {
  auto build = [&](bool relative, const std::string& base) {
    std::string d = "lowerdir=";
    for (size_t i = layers.size(); i-- > 0;) {
      bool under = relative && layers[i].compare(0, base.size() + 1, base + "/") == 0;
      d += under ? layers[i].substr(base.size() + 1) : layers[i];
      if (i > 0) d += ':';
    }
    d += ",upperdir=" + upper + ",workdir=" + work;
    return d;
  };
  OverlayMountData out;
  out.data = build(false, "");
  if (out.data.size() <= max_len || layers.empty()) return out;
  std::string base = layers[0].substr(0, layers[0].rfind('/'));
  if (base.empty()) return out;
  out.chdir_to = base;
  out.data = build(true, base);
  return out;
}

void runContainerInit(const InitParams& p) {
  const LaunchConfig& c = *p.config;
  // Until exec, the setup dies with the shim; the running container does not.
  ::prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
  ::umask(0);
  if (::dup2(p.stdin_fd, 0) < 0 || ::dup2(p.stdout_fd, 1) < 0 || ::dup2(p.stderr_fd, 2) < 0) {
    fail(p, "set up stdio: " + errnoText(errno));
  }
  if (p.trace) p.trace("joined");
  ::setsid();
  if (c.info.network == NetworkMode::kNone) bringLoopbackUp(p);

  if (::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) {
    fail(p, "make / rprivate: " + errnoText(errno));
  }
  std::string hostname = c.hostname.empty() ? c.info.id.substr(0, 12) : c.hostname;
  std::string hosts =
      "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n127.0.1.1\t" + hostname +
      "\n";
  if (c.info.network == NetworkMode::kHost) hosts += readSmall("/etc/hosts");
  std::vector<EtcFile> etc = {
      {"hostname", hostname + "\n"},
      {"hosts", hosts},
      {"resolv.conf", c.info.network == NetworkMode::kHost ? readSmall("/etc/resolv.conf") : ""}};

  std::string merged = p.container_dir + "/merged";
  bool etc_in_layer = mountRootfs(p, merged, etc);
  if (p.trace) p.trace("rootfs");
  fs::UniqueFd root(::open(merged.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
  if (!root.valid()) fail(p, "open rootfs: " + errnoText(errno));
  if (!etc_in_layer) {
    for (const EtcFile& f : etc) writeInRoot(p, root.get(), std::string("etc/") + f.name, f.data);
  }
  if (p.trace) p.trace("etcfiles");

  for (const BindMount& m : c.info.mounts) {
    struct stat st {};
    if (::stat(m.source.c_str(), &st) != 0) {
      fail(p, "bind mount source " + m.source + ": " + errnoText(errno));
    }
    std::string rel = trimSlashes(m.target);
    mountOn(p, root.get(), rel, S_ISDIR(st.st_mode), m.source.c_str(), nullptr, MS_BIND | MS_REC,
            nullptr);
    if (m.read_only) remountReadOnly(p, root.get(), rel, MS_REC);
  }

  mountOn(p, root.get(), "proc", true, "proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, nullptr);
  if (p.trace) p.trace("proc");
  setupDev(p, root.get());
  if (p.trace) p.trace("dev");
  mountOn(p, root.get(), "sys", true, "sysfs", "sysfs",
          MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, nullptr);
  maskPaths(p, root.get());
  if (p.trace) p.trace("masked");

  if (::fchdir(root.get()) != 0) fail(p, "chdir rootfs: " + errnoText(errno));
  if (::syscall(SYS_pivot_root, ".", ".") != 0) fail(p, "pivot_root: " + errnoText(errno));
  if (::umount2(".", MNT_DETACH) != 0) fail(p, "detach old root: " + errnoText(errno));
  if (::chdir("/") != 0) fail(p, "chdir /: " + errnoText(errno));
  root.reset();
  if (p.trace) p.trace("pivoted");

  if (::sethostname(hostname.data(), hostname.size()) != 0) {
    fail(p, "sethostname: " + errnoText(errno));
  }
  auto ids = resolveUser(c.info.user, readSmall("/etc/passwd"), readSmall("/etc/group"));
  if (!ids.isOk()) fail(p, "resolve user: " + ids.status().message());

  std::string wd = c.info.working_dir.empty() ? "/" : c.info.working_dir;
  if (int e = ensureDir(AT_FDCWD, wd); e != 0)
    fail(p, "create working dir " + wd + ": " + errnoText(e));
  if (::chdir(wd.c_str()) != 0) fail(p, "chdir to working dir " + wd + ": " + errnoText(errno));

  std::vector<std::string> env = c.info.env;
  env.push_back("HOSTNAME=" + hostname);
  if (!hasKey(env, "HOME")) env.push_back("HOME=" + ids->home);
  auto argv = containerArgv(c.info);
  if (!argv.isOk()) fail(p, argv.status().message());
  std::string prog = (*argv)[0];
  if (prog.find('/') == std::string::npos) {
    std::string path = envValue(env, "PATH");
    std::string found;
    size_t start = 0;
    while (start <= path.size() && found.empty()) {
      size_t colon = path.find(':', start);
      std::string dir = path.substr(start, colon == std::string::npos ? colon : colon - start);
      std::string cand = (dir.empty() ? "." : dir) + "/" + prog;
      if (::access(cand.c_str(), X_OK) == 0) found = cand;
      if (colon == std::string::npos) break;
      start = colon + 1;
    }
    if (found.empty()) fail(p, "exec " + prog + ": executable file not found in $PATH");
    prog = found;
  }

  dropCapabilities(p, *ids);
  if (p.trace) p.trace("caps");
  if (::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) fail(p, "no_new_privs: " + errnoText(errno));

  // Signal dispositions and the mask are inherited through exec; give the command a clean
  // slate (the shim ignores SIGPIPE and SIGHUP).
  for (int sig = 1; sig < NSIG; ++sig) ::signal(sig, SIG_DFL);
  sigset_t none;
  sigemptyset(&none);
  ::sigprocmask(SIG_SETMASK, &none, nullptr);
  ::umask(022);

  std::vector<char*> cargv;
  for (std::string& a : *argv) cargv.push_back(a.data());
  cargv.push_back(nullptr);
  std::vector<char*> cenv;
  for (std::string& e : env) cenv.push_back(e.data());
  cenv.push_back(nullptr);

  if (!p.seccomp_bpf.empty()) {
    sock_fprog prog_bpf{};
    prog_bpf.len = static_cast<unsigned short>(p.seccomp_bpf.size() / sizeof(sock_filter));
    prog_bpf.filter = reinterpret_cast<sock_filter*>(const_cast<char*>(p.seccomp_bpf.data()));
    if (::prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog_bpf, 0, 0) != 0) {
      fail(p, "load seccomp filter: " + errnoText(errno));
    }
  }
  if (p.trace) p.trace("seccomp");
  char go = 0;
  while (::read(p.go_fd, &go, 1) < 0 && errno == EINTR) {
  }
  if (go != 1) _exit(127);  // the shim failed to place us in our cgroups; it reports why
  if (p.trace) p.trace("in_cgroups");
  ::prctl(PR_SET_PDEATHSIG, 0, 0, 0, 0);
  ::execve(prog.c_str(), cargv.data(), cenv.data());
  fail(p, "exec " + prog + ": " + lowerErr(errno));
}

}  // namespace edge::runtime::light
