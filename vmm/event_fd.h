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

}  // namespace tapvm
