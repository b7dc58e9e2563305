// The keyboard on the i8042's first port, reduced to its command protocol.
//
// tapvm has no keyboard input (the console is the serial port), but Linux's
// atkbd driver probes whatever sits on the port (GETID, SETLEDS, scan-code
// set, typematic rate, enable), and a keyboard that never answers costs a
// timeout per command.  So this answers every command the way an MF-II
// keyboard does (IBM PS/2 Hardware Interface Technical Reference, "Keyboard
// Commands"): ACK (0xFA) plus the command's own reply bytes, or RESEND
// (0xFE) for a byte that is no command.  It never sends scan codes.
//
// The replies are always untranslated (scan-code set 2 values).  The
// controller starts with translation off (see i8042.h), so Linux drives the
// keyboard directly and expects exactly these values.
#pragma once

#include <cstdint>
#include <vector>

namespace tapvm {

class Ps2Keyboard {
public:
    static constexpr uint8_t kAck = 0xfa;
    static constexpr uint8_t kResend = 0xfe;
    static constexpr uint8_t kSelfTestPassed = 0xaa;
    static constexpr uint8_t kEcho = 0xee;
    // MF-II keyboard identification, as returned by GETID.
    static constexpr uint8_t kId[2] = {0xab, 0x83};

    // One byte the host sent to the keyboard; returns the keyboard's reply
    // in the order it would send it (possibly several bytes).
    std::vector<uint8_t> receive(uint8_t byte);

    // Power-on state: scanning enabled, set 2, no command half-way.
    void reset();

    bool scanning_enabled() const { return scanning_; }
    uint8_t scan_code_set() const { return scan_code_set_; }

private:
    std::vector<uint8_t> command(uint8_t byte);
    std::vector<uint8_t> parameter(uint8_t command, uint8_t value);
    std::vector<uint8_t> reply(std::vector<uint8_t> bytes);

    uint8_t awaiting_parameter_for_ = 0;  // command waiting for its argument, 0 if none
    bool scanning_ = true;
    uint8_t scan_code_set_ = 2;
    uint8_t last_sent_ = kAck;  // for RESEND
};

}  // namespace tapvm
