// The default seccomp profile of light-runtime containers, modelled on Docker's: allow
// by default, EPERM for syscalls that reach across the container boundary (kernel
// modules, reboot, mount, namespaces, keyrings, clock setting, bpf, perf, ...).
// ptrace stays allowed, as Docker allows it on kernels >= 4.8; kcmp, process_vm_* and the
// NUMA policy calls are refused, as Docker does without CAP_SYS_PTRACE / CAP_SYS_NICE.
// personality() is not restricted (a default-allow classic filter cannot express
// Docker's allow-list of personas without also blocking the query value).
//
// Compiled once per runtime with libseccomp into a classic-BPF program that the shim
// installs with a single prctl() before exec, so containers pay no libseccomp cost.
#pragma once

#include <string>

#include "common/status.h"

namespace edge::runtime::light {

// The BPF program for the native architecture as raw `struct sock_filter` bytes.
Result<std::string> compileDefaultSeccompBpf();

}  // namespace edge::runtime::light
