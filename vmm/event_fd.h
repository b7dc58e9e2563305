// An eventfd: the currency of ioeventfd (guest notifies us) and irqfd (we
// interrupt the guest) — both directions skip the vCPU thread entirely.
#pragma once

#include <cstdint>

#include "vmm/unique_fd.h"

namespace tapvm {

class EventFd {
public:
    // Non-blocking, close-on-exec.
    EventFd();
    int fd() const { return fd_.get(); }
    // Adds 1 to the counter; never blocks (an overflowing counter is already
    // signalled, so EAGAIN is harmless and ignored).
    void signal() const;
    // Reads and clears the counter; returns 0 when it was not signalled.
    uint64_t consume() const;

private:
    UniqueFd fd_;
};

// For an eventfd another process handed over (a vhost-user frontend's kick,
// call and error fds): true when `fd` is an eventfd, in which case it is
// also made non-blocking, so that neither signalling it nor draining it can
// ever block the thread that does (the flag belongs to the open file,
// which the other process shares; eventfd users expect it anyway).
bool adopt_foreign_eventfd(int fd);

}  // namespace tapvm
