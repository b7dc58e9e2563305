// The thread that carries host keystrokes (stdin) to the guest's console.
//
// It waits in poll() on the input descriptor and on a stop eventfd, so stop()
// ends it at once even when nobody types.  Bytes go through the escape
// parser (escape_parser.h) when escapes are on, which by default means "the
// input is a terminal"; from a pipe or /dev/null (CI) bytes are forwarded
// verbatim, and end of input just ends this thread: the guest keeps running.
//
// Back-pressure without spinning: the sink (normally
// Uart16550::enqueue_input) returns how many bytes it took.  While some are
// left over the thread stops reading input and waits on a "space" eventfd
// that notify_space_available() signals (wire it to
// Uart16550::set_input_space_callback); a long poll timeout is only a safety
// net for sinks without such a callback.  Host input therefore stays in the
// host's own buffers (the tty, the pipe) until the guest reads its FIFO, and
// nothing is lost.
//
// Wiring, as the machine is expected to do it:
//     TerminalMode raw(STDIN_FILENO);
//     ConsoleInput input(STDIN_FILENO,
//                        [&](auto b) { return uart->enqueue_input(b); },
//                        [&] { machine.request_stop(); },
//                        ConsoleInput::default_options(STDIN_FILENO));
//     uart->set_input_space_callback([&] { input.notify_space_available(); });
#pragma once

#include <unistd.h>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <span>
#include <thread>
#include <vector>

#include "vmm/console/escape_parser.h"
#include "vmm/event_fd.h"

namespace tapvm::console {

class ConsoleInput {
public:
    // Takes what it can and returns how many bytes that was.
    using Sink = std::function<size_t(std::span<const uint8_t>)>;

    struct Options {
        bool escapes = false;  // interpret the escape character
        uint8_t escape_char = EscapeParser::kDefaultEscape;
        int help_fd = STDERR_FILENO;  // where Ctrl-A h writes its text
    };
    // Escapes on exactly when fd is a terminal.
    static Options default_options(int fd);

    // Starts the thread.  fd is not owned and must stay open until stop().
    // on_quit runs on the console thread after the quit escape; it must only
    // ask the machine to stop (it must not destroy this object), and the
    // thread reads nothing more afterwards.
    ConsoleInput(int fd, Sink sink, std::function<void()> on_quit, Options options);
    ~ConsoleInput();  // stop()
    ConsoleInput(const ConsoleInput&) = delete;
    ConsoleInput& operator=(const ConsoleInput&) = delete;

    // Thread-safe and cheap (one eventfd write); call it whenever the sink
    // may have room again.
    void notify_space_available();

    // Ends the thread and waits for it (idempotent).  Bytes not yet taken by
    // the sink are dropped.
    void stop();

    // True once the thread has ended by itself (end of input, read error, quit).
    bool finished() const { return finished_.load(); }

private:
    enum class Wake { kStop, kReady, kTimeout };

    void run();
    // One read() from the input; false when input has ended.
    bool read_input();
    // Hands pending bytes to the sink until it refuses; true when all went.
    bool deliver_pending();
    // Handles escape actions; false after quit.
    bool perform(const std::vector<ConsoleAction>& actions);
    void print_help();
    Wake wait_for(int fd, int timeout_ms);

    const int fd_;
    const Sink sink_;
    const std::function<void()> on_quit_;
    const Options options_;
    EscapeParser parser_;
    EventFd stop_event_;
    EventFd space_event_;
    std::vector<uint8_t> pending_;  // parsed bytes the sink has not taken yet
    std::atomic<bool> finished_{false};
    std::thread thread_;
};

}  // namespace tapvm::console
