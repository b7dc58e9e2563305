// One checked ioctl for the KVM wrappers: a failing KVM ioctl during set-up
// is a host problem, reported as Error("<what>: <strerror>").
#pragma once

#include <sys/ioctl.h>

#include <cerrno>
#include <string_view>

#include "vmm/error.h"

namespace tapvm::kvm {

// Returns the ioctl's non-negative result (some KVM ioctls return a value,
// e.g. KVM_CHECK_EXTENSION or KVM_SET_MSRS).  Retries on EINTR, which a
// vCPU kick signal can cause even for ioctls other than KVM_RUN.
template <class Arg>
int checked_ioctl(int fd, unsigned long request, Arg arg, std::string_view what) {
    for (;;) {
        int r = ::ioctl(fd, request, arg);
        if (r >= 0) return r;
        if (errno != EINTR) throw_errno(std::string(what));
    }
}

}  // namespace tapvm::kvm
