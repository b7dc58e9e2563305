#include "vmm/console/escape_parser.h"

#include <fmt/format.h>

namespace tapvm::console {

EscapeParser::Result EscapeParser::feed(std::span<const uint8_t> input) {
    Result result;
    result.forward.reserve(input.size());
    for (uint8_t byte : input) {
        ++result.consumed;
        if (!escape_pending_) {
            if (byte == escape_) escape_pending_ = true;
            else result.forward.push_back(byte);
            continue;
        }
        escape_pending_ = false;
        if (byte == escape_) {
            result.forward.push_back(byte);  // doubled: one literal escape character
        } else if (byte == 'x' || byte == 'X') {
            result.actions.push_back(ConsoleAction::kQuit);
            break;  // nothing typed after "quit" is meant for the guest
        } else if (byte == 'h' || byte == 'H' || byte == '?') {
            result.actions.push_back(ConsoleAction::kHelp);
        }
        // Any other command byte is swallowed with its escape, as in QEMU.
    }
    return result;
}

std::string EscapeParser::escape_name() const {
    // Control characters 0x01-0x1f are typed as Ctrl-A .. Ctrl-_ ('@' + code).
    if (escape_ >= 0x01 && escape_ <= 0x1f) return std::string("Ctrl-") + static_cast<char>('@' + escape_);
    return fmt::format("byte 0x{:02x}", escape_);
}

std::string EscapeParser::help_text() const {
    const std::string esc = escape_name();
    return "\r\ntapvm console escapes:\r\n"
           "  " + esc + " x       quit tapvm (the guest is stopped)\r\n"
           "  " + esc + " h       this help\r\n"
           "  " + esc + " " + esc + "  send " + esc + " to the guest\r\n";
}

}  // namespace tapvm::console
