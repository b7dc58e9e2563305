#include "vmm/console/console_input.h"

#include <poll.h>

#include <cerrno>
#include <cstring>
#include <exception>

#include <spdlog/spdlog.h>

namespace tapvm::console {

namespace {

constexpr size_t kReadChunk = 256;
// While the sink is full and nobody says it has room, look again this often.
// Only sinks without a space callback ever rely on it.
constexpr int kSpaceRetryMs = 200;

}  // namespace

ConsoleInput::Options ConsoleInput::default_options(int fd) {
    Options options;
    options.escapes = ::isatty(fd) == 1;
    return options;
}

ConsoleInput::ConsoleInput(int fd, Sink sink, std::function<void()> on_quit, Options options)
    : fd_(fd),
      sink_(std::move(sink)),
      on_quit_(std::move(on_quit)),
      options_(options),
      parser_(options.escape_char),
      thread_([this] { run(); }) {}

ConsoleInput::~ConsoleInput() { stop(); }

void ConsoleInput::notify_space_available() { space_event_.signal(); }

void ConsoleInput::stop() {
    stop_event_.signal();
    if (thread_.joinable()) thread_.join();
}

void ConsoleInput::run() {
    try {
        for (;;) {
            if (!pending_.empty()) {
                if (deliver_pending()) continue;
                // The sink is full: wait for room (or stop), not for input.
                if (wait_for(space_event_.fd(), kSpaceRetryMs) == Wake::kStop) break;
                continue;
            }
            Wake wake = wait_for(fd_, -1);
            if (wake == Wake::kStop) break;
            if (wake == Wake::kReady && !read_input()) break;
        }
    } catch (const std::exception& e) {
        // Losing the console input must never take the machine down with it.
        spdlog::error("console: input thread stopped: {}", e.what());
    }
    finished_ = true;
}

bool ConsoleInput::read_input() {
    uint8_t buffer[kReadChunk];
    ssize_t n = ::read(fd_, buffer, sizeof buffer);
    if (n < 0) {
        if (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK) return true;
        spdlog::warn("console: reading input failed: {}; console input is off", std::strerror(errno));
        return false;
    }
    if (n == 0) {
        spdlog::debug("console: end of input; the guest keeps running without console input");
        return false;
    }
    std::span<const uint8_t> bytes(buffer, static_cast<size_t>(n));
    if (!options_.escapes) {
        pending_.insert(pending_.end(), bytes.begin(), bytes.end());
        return true;
    }
    EscapeParser::Result parsed = parser_.feed(bytes);
    pending_.insert(pending_.end(), parsed.forward.begin(), parsed.forward.end());
    return perform(parsed.actions);
}

bool ConsoleInput::deliver_pending() {
    // Clear the space signal before offering bytes: a signal raised after
    // this point (the guest reading its FIFO right after the sink refused)
    // stays set, so the wait below cannot miss it.
    space_event_.consume();
    size_t taken = sink_(pending_);
    if (taken > pending_.size()) taken = pending_.size();  // a confused sink takes at most all
    pending_.erase(pending_.begin(), pending_.begin() + static_cast<std::ptrdiff_t>(taken));
    return pending_.empty();
}

bool ConsoleInput::perform(const std::vector<ConsoleAction>& actions) {
    for (ConsoleAction action : actions) {
        switch (action) {
            case ConsoleAction::kHelp: print_help(); break;
            case ConsoleAction::kQuit:
                spdlog::info("console: quit requested ({} x)", parser_.escape_name());
                pending_.clear();
                if (on_quit_) on_quit_();
                return false;
        }
    }
    return true;
}

void ConsoleInput::print_help() {
    std::string text = parser_.help_text();
    const char* p = text.data();
    size_t left = text.size();
    while (left > 0) {
        ssize_t n = ::write(options_.help_fd, p, left);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return;  // nowhere to print help: not worth more
        p += n;
        left -= static_cast<size_t>(n);
    }
}

ConsoleInput::Wake ConsoleInput::wait_for(int fd, int timeout_ms) {
    struct pollfd fds[2] = {{stop_event_.fd(), POLLIN, 0}, {fd, POLLIN, 0}};
    for (;;) {
        int r = ::poll(fds, 2, timeout_ms);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) {
            spdlog::warn("console: poll failed: {}", std::strerror(errno));
            return Wake::kStop;
        }
        if (r == 0) return Wake::kTimeout;
        if (fds[0].revents) return Wake::kStop;
        // POLLHUP/POLLERR also count as "ready": the read() that follows
        // reports end of input or the error.  POLLNVAL: the fd was closed.
        if (fds[1].revents & POLLNVAL) {
            spdlog::warn("console: input descriptor {} is not open; console input is off", fd);
            return Wake::kStop;
        }
        return Wake::kReady;
    }
}

}  // namespace tapvm::console
