// Raw mode for the host terminal while a guest owns the console, restored on
// every way out.
//
// While active, the terminal passes every key straight to the guest: no line
// editing, no echo (the guest echoes), no signals from Ctrl-C, Ctrl-Z or
// Ctrl-\ (they belong to the guest's shell; the console's escape, Ctrl-A x,
// quits tapvm), no XON/XOFF, no CR->NL translation, 8-bit clean.  That is
// cfmakeraw() for input.
//
// Output processing (OPOST, and with it the user's ONLCR) is deliberately
// kept as it was, as QEMU's stdio backend does: the guest's tty already sends
// "\r\n", which then reaches the screen as "\r\r\n" and looks the same, while
// tapvm's own log lines, written to the same terminal with a bare "\n",
// would otherwise staircase across the screen.
//
// Restoring: the destructor (normal exit); an atexit() hook (exit() from
// anywhere); a std::terminate handler (uncaught exceptions); and handlers
// for SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGABRT, SIGSEGV, SIGBUS, SIGFPE and
// SIGILL that restore the saved settings with tcsetattr() (async-signal-safe)
// and re-raise the signal with its default action, so the process still dies
// the way it would have (exit status, core dump).  Signal handlers are only
// installed where the disposition is the default: a signal that is ignored
// (nohup) or that the machine handles itself (a graceful SIGTERM, say) is
// left alone, and those paths end in the destructor anyway.  When the mode
// ends, handlers that are still ours go back to what they were.
//
// Only one TerminalMode may be active at a time (the saved settings are
// process-wide, as signal handlers must be).
#pragma once

namespace tapvm::console {

class TerminalMode {
public:
    // Switches the terminal on fd to raw mode if fd is a terminal; otherwise
    // (a pipe, a file, /dev/null) does nothing and active() is false.  Throws
    // Error if tcsetattr fails or another TerminalMode is active.
    explicit TerminalMode(int fd);
    ~TerminalMode();
    TerminalMode(const TerminalMode&) = delete;
    TerminalMode& operator=(const TerminalMode&) = delete;

    bool active() const { return active_; }
    // Restores the saved settings now (idempotent); the destructor then has
    // nothing left to do.
    void restore();

private:
    bool active_ = false;
};

}  // namespace tapvm::console
