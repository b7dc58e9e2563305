// The console's escape sequences, as a pure function of the input bytes, so
// that they can be tested without a terminal or a thread.
//
// Like QEMU's character multiplexer (chardev/char-mux.c): an escape
// character (Ctrl-A by default) followed by
//   x        quit tapvm
//   h or ?   print the help text
//   Ctrl-A   send one literal Ctrl-A to the guest
//   anything else: both bytes are swallowed.
// Every other byte is forwarded unchanged.  An escape character at the end
// of one read is remembered until the next one.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

namespace tapvm::console {

enum class ConsoleAction { kQuit, kHelp };

class EscapeParser {
public:
    static constexpr uint8_t kDefaultEscape = 0x01;  // Ctrl-A

    explicit EscapeParser(uint8_t escape = kDefaultEscape) : escape_(escape) {}

    struct Result {
        std::vector<uint8_t> forward;        // bytes for the guest, in order
        std::vector<ConsoleAction> actions;  // in the order they were typed
        // Input bytes used.  Parsing stops right after a quit command, so
        // this is less than the input size only when a quit cut it short.
        size_t consumed = 0;
    };

    Result feed(std::span<const uint8_t> input);

    // True after an escape character whose command has not arrived yet.
    bool escape_pending() const { return escape_pending_; }
    uint8_t escape_char() const { return escape_; }

    // The help text for this escape character ("\r\n" line ends, so it reads
    // well on a terminal in raw mode).
    std::string help_text() const;
    // How a user types the escape character, e.g. "Ctrl-A".
    std::string escape_name() const;

private:
    const uint8_t escape_;
    bool escape_pending_ = false;
};

}  // namespace tapvm::console
