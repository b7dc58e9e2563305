#include "vmm/console/console_output.h"

#include <poll.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <spdlog/spdlog.h>

namespace tapvm::console {

ConsoleOutput::ConsoleOutput(int fd) : fd_(fd) {}

void ConsoleOutput::write(std::span<const uint8_t> bytes) {
    if (bytes.empty()) return;
    std::lock_guard lock(mutex_);
    if (broken_ || !write_all(bytes)) {
        broken_ = true;
        dropped_ += bytes.size();  // an approximation: part may have been written
    }
}

uint64_t ConsoleOutput::dropped() const {
    std::lock_guard lock(mutex_);
    return dropped_;
}

bool ConsoleOutput::write_all(std::span<const uint8_t> bytes) {
    while (!bytes.empty()) {
        ssize_t n = ::write(fd_, bytes.data(), bytes.size());
        if (n > 0) {
            bytes = bytes.subspan(static_cast<size_t>(n));
            continue;
        }
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            if (wait_writable()) continue;
        }
        spdlog::warn("console: output to fd {} failed ({}); further guest console output is discarded", fd_,
                     n < 0 ? std::strerror(errno) : "wrote nothing");
        return false;
    }
    return true;
}

bool ConsoleOutput::wait_writable() {
    struct pollfd pfd {fd_, POLLOUT, 0};
    for (;;) {
        int r = ::poll(&pfd, 1, -1);
        if (r > 0) return (pfd.revents & (POLLERR | POLLNVAL)) == 0;
        if (r < 0 && errno != EINTR) return false;
    }
}

}  // namespace tapvm::console
