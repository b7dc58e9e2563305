#include "vmm/console/terminal_mode.h"

#include <termios.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <mutex>

#include <spdlog/spdlog.h>

#include "vmm/error.h"

namespace tapvm::console {

namespace {

// Signals whose default action ends the process (with or without a core).
constexpr int kFatalSignals[] = {SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGABRT,
                                 SIGSEGV, SIGBUS, SIGFPE, SIGILL};

// Process-wide state: a signal handler can reach nothing else.  Written only
// by the thread that creates or ends the TerminalMode (under g_mutex), read
// by the handlers; g_saved_valid is set last and cleared first.
volatile sig_atomic_t g_saved_valid = 0;
int g_fd = -1;
struct termios g_saved;
struct sigaction g_previous_action[NSIG];
bool g_handler_installed[NSIG];
std::terminate_handler g_previous_terminate = nullptr;
bool g_atexit_registered = false;
std::mutex g_mutex;

// Async-signal-safe: tcsetattr() is on the POSIX list (signal-safety(7)).
// TCSANOW, not TCSADRAIN: waiting for output to drain could hang forever on
// a terminal stopped with flow control.
void restore_saved_terminal() noexcept {
    if (g_saved_valid) ::tcsetattr(g_fd, TCSANOW, &g_saved);
}

extern "C" void restore_and_reraise(int sig) {
    int saved_errno = errno;
    restore_saved_terminal();
    // Put back the default action we replaced and send the signal again.  It
    // is blocked while this handler runs, so it is delivered the moment the
    // handler returns, and the process ends exactly as it would have.
    ::sigaction(sig, &g_previous_action[sig], nullptr);
    ::raise(sig);
    errno = saved_errno;
}

void restore_at_exit() {
    restore_saved_terminal();
    g_saved_valid = 0;
}

[[noreturn]] void restore_on_terminate() {
    restore_saved_terminal();
    if (g_previous_terminate) g_previous_terminate();
    std::abort();
}

void install_signal_handlers() {
    for (int sig : kFatalSignals) {
        struct sigaction current {};
        if (::sigaction(sig, nullptr, &current) != 0) continue;
        // Ignored signals stay ignored; handlers someone else installed stay
        // theirs (their path ends in the destructor).
        if ((current.sa_flags & SA_SIGINFO) || current.sa_handler != SIG_DFL) continue;
        struct sigaction ours {};
        ours.sa_handler = restore_and_reraise;
        sigemptyset(&ours.sa_mask);
        g_previous_action[sig] = current;
        if (::sigaction(sig, &ours, nullptr) == 0) g_handler_installed[sig] = true;
    }
}

void uninstall_signal_handlers() {
    for (int sig : kFatalSignals) {
        if (!g_handler_installed[sig]) continue;
        g_handler_installed[sig] = false;
        struct sigaction current {};
        if (::sigaction(sig, nullptr, &current) != 0) continue;
        // Someone replaced ours since: theirs stays.
        if (!(current.sa_flags & SA_SIGINFO) && current.sa_handler == restore_and_reraise)
            ::sigaction(sig, &g_previous_action[sig], nullptr);
    }
}

void install_hooks() {
    install_signal_handlers();
    if (!g_atexit_registered && std::atexit(restore_at_exit) == 0) g_atexit_registered = true;
    g_previous_terminate = std::set_terminate(restore_on_terminate);
}

void uninstall_hooks() {
    g_saved_valid = 0;
    uninstall_signal_handlers();
    // The atexit hook cannot be removed; with g_saved_valid clear it does nothing.
    if (std::get_terminate() == restore_on_terminate) std::set_terminate(g_previous_terminate);
    g_previous_terminate = nullptr;
}

// cfmakeraw() for input; output processing as the user had it (see header).
struct termios raw_settings(const struct termios& saved) {
    struct termios raw = saved;
    ::cfmakeraw(&raw);
    raw.c_oflag = saved.c_oflag;
    raw.c_cc[VMIN] = 1;  // read() returns as soon as one byte is there
    raw.c_cc[VTIME] = 0;
    return raw;
}

}  // namespace

TerminalMode::TerminalMode(int fd) {
    if (!::isatty(fd)) return;
    std::lock_guard lock(g_mutex);
    if (g_saved_valid) throw Error("console: another TerminalMode is already active");
    struct termios saved {};
    if (::tcgetattr(fd, &saved) != 0) throw_errno("console: tcgetattr");
    struct termios raw = raw_settings(saved);

    // Every restore path exists before the terminal leaves its normal mode.
    g_fd = fd;
    g_saved = saved;
    std::atomic_signal_fence(std::memory_order_seq_cst);  // handlers see g_saved complete
    g_saved_valid = 1;
    install_hooks();

    if (::tcsetattr(fd, TCSANOW, &raw) != 0) {
        int err = errno;
        uninstall_hooks();
        throw_errno("console: tcsetattr (raw mode)", err);
    }
    active_ = true;
}

TerminalMode::~TerminalMode() { restore(); }

void TerminalMode::restore() {
    if (!active_) return;
    active_ = false;
    std::lock_guard lock(g_mutex);
    if (::tcsetattr(g_fd, TCSANOW, &g_saved) != 0)
        spdlog::warn("console: could not restore the terminal settings: {}", std::strerror(errno));
    uninstall_hooks();
}

}  // namespace tapvm::console
