#include "vmm/event_fd.h"

#include <fcntl.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <string>
#include <string_view>

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

bool adopt_foreign_eventfd(int fd) {
    // An eventfd is an anonymous inode; its link in /proc names the kind.
    char target[64] = {};
    const std::string link = "/proc/self/fd/" + std::to_string(fd);
    const ssize_t n = ::readlink(link.c_str(), target, sizeof target - 1);
    if (n <= 0 || std::string_view(target, static_cast<size_t>(n)) != "anon_inode:[eventfd]") return false;
    const int flags = ::fcntl(fd, F_GETFL);
    return flags >= 0 && ::fcntl(fd, F_SETFL, flags | O_NONBLOCK) == 0;
}

}  // namespace tapvm
