#include "runtime-shim/light/seccomp_profile.h"

#include <sched.h>
#include <seccomp.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <memory>

#include "common/fs.h"

namespace edge::runtime::light {
namespace {

constexpr const char* kBlocked[] = {
    "acct",
    "add_key",
    "adjtimex",
    "bpf",
    "clock_adjtime",
    "clock_settime",
    "create_module",
    "delete_module",
    "finit_module",
    "fsconfig",
    "fsmount",
    "fsopen",
    "fspick",
    "get_kernel_syms",
    "get_mempolicy",
    "init_module",
    "ioperm",
    "iopl",
    "kcmp",
    "kexec_file_load",
    "kexec_load",
    "keyctl",
    "lookup_dcookie",
    "mbind",
    "mount",
    "mount_setattr",
    "move_mount",
    "move_pages",
    "name_to_handle_at",
    "nfsservctl",
    "open_by_handle_at",
    "open_tree",
    "perf_event_open",
    "pivot_root",
    "process_vm_readv",
    "process_vm_writev",
    "query_module",
    "quotactl",
    "quotactl_fd",
    "reboot",
    "request_key",
    "set_mempolicy",
    "setns",
    "settimeofday",
    "stime",
    "swapoff",
    "swapon",
    "sysfs",
    "syslog",
    "_sysctl",
    "umount",
    "umount2",
    "unshare",
    "uselib",
    "userfaultfd",
    "ustat",
    "vm86",
    "vm86old",
};

constexpr uint64_t kNamespaceFlags[] = {CLONE_NEWNS,  CLONE_NEWUTS, CLONE_NEWIPC,   CLONE_NEWUSER,
                                        CLONE_NEWPID, CLONE_NEWNET, CLONE_NEWCGROUP};

struct CtxDeleter {
  void operator()(void* ctx) const { seccomp_release(ctx); }
};

}  // namespace

Result<std::string> compileDefaultSeccompBpf() {
  std::unique_ptr<void, CtxDeleter> ctx(seccomp_init(SCMP_ACT_ALLOW));
  if (!ctx) return Status::internal("seccomp_init failed");
  const uint32_t eperm = SCMP_ACT_ERRNO(EPERM);
  for (const char* name : kBlocked) {
    int nr = seccomp_syscall_resolve_name(name);
    if (nr == __NR_SCMP_ERROR) continue;  // not on this architecture
    int rc = seccomp_rule_add(ctx.get(), eperm, nr, 0);
    if (rc < 0 && rc != -EEXIST) return Status::fromErrno(-rc, std::string("seccomp rule ") + name);
  }
  // clone with any namespace flag; clone3 gets ENOSYS so libc falls back to clone,
  // whose flags a classic filter can inspect.
  for (uint64_t flag : kNamespaceFlags) {
    int rc = seccomp_rule_add(ctx.get(), eperm, SCMP_SYS(clone), 1,
                              SCMP_A0(SCMP_CMP_MASKED_EQ, flag, flag));
    if (rc < 0) return Status::fromErrno(-rc, "seccomp rule clone");
  }
  int rc = seccomp_rule_add(ctx.get(), SCMP_ACT_ERRNO(ENOSYS), SCMP_SYS(clone3), 0);
  if (rc < 0) return Status::fromErrno(-rc, "seccomp rule clone3");
  seccomp_attr_set(ctx.get(), SCMP_FLTATR_CTL_NNP, 0);

  fs::UniqueFd mem(::memfd_create("edge-seccomp", MFD_CLOEXEC));
  if (!mem.valid()) return Status::fromErrno(errno, "memfd_create");
  rc = seccomp_export_bpf(ctx.get(), mem.get());
  if (rc < 0) return Status::fromErrno(-rc, "seccomp_export_bpf");
  off_t size = ::lseek(mem.get(), 0, SEEK_END);
  std::string out(static_cast<size_t>(size), '\0');
  if (::pread(mem.get(), out.data(), out.size(), 0) != size) {
    return Status::fromErrno(errno, "read seccomp program");
  }
  return out;
}

}  // namespace edge::runtime::light
