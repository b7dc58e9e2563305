#include "vmm/event_fd.h"

#include <sys/eventfd.h>
#include <unistd.h>

#include "vmm/error.h"

namespace tapvm {

EventFd::EventFd() : fd_(::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) {
    if (!fd_) throw_errno("eventfd");
}

void EventFd::signal() const {
    uint64_t one = 1;
    [[maybe_unused]] ssize_t r = ::write(fd_.get(), &one, sizeof one);
}

uint64_t EventFd::consume() const {
    uint64_t value = 0;
    if (::read(fd_.get(), &value, sizeof value) != sizeof value) return 0;
    return value;
}

}  // namespace tapvm
