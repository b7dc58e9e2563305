#include "devices/i8042/ps2_keyboard.h"

namespace tapvm {

namespace {

// Keyboard commands (IBM PS/2 Technical Reference; Linux atkbd.c names).
constexpr uint8_t kSetLeds = 0xed;
constexpr uint8_t kEchoCmd = 0xee;
constexpr uint8_t kScanCodeSet = 0xf0;
constexpr uint8_t kGetId = 0xf2;
constexpr uint8_t kSetTypematic = 0xf3;
constexpr uint8_t kEnable = 0xf4;
constexpr uint8_t kDisable = 0xf5;   // disable scanning, restore defaults
constexpr uint8_t kDefaults = 0xf6;  // restore defaults, keep scanning
constexpr uint8_t kResendCmd = 0xfe;
constexpr uint8_t kReset = 0xff;

}  // namespace

void Ps2Keyboard::reset() {
    awaiting_parameter_for_ = 0;
    scanning_ = true;
    scan_code_set_ = 2;
}

std::vector<uint8_t> Ps2Keyboard::receive(uint8_t byte) {
    if (awaiting_parameter_for_ != 0) {
        uint8_t cmd = awaiting_parameter_for_;
        awaiting_parameter_for_ = 0;
        return parameter(cmd, byte);
    }
    return command(byte);
}

std::vector<uint8_t> Ps2Keyboard::command(uint8_t byte) {
    switch (byte) {
        case kSetLeds:
        case kScanCodeSet:
        case kSetTypematic:
            awaiting_parameter_for_ = byte;
            return reply({kAck});
        case kEchoCmd:
            return reply({kEcho});
        case kGetId:
            return reply({kAck, kId[0], kId[1]});
        case kEnable:
            scanning_ = true;
            return reply({kAck});
        case kDisable:
            scanning_ = false;
            scan_code_set_ = 2;
            return reply({kAck});
        case kDefaults:
            scan_code_set_ = 2;
            return reply({kAck});
        case kResendCmd:
            return {last_sent_};
        case kReset:
            reset();
            // ACK, then the result of the basic assurance test.
            return reply({kAck, kSelfTestPassed});
        default:
            // 0xF7..0xFD are scan-code-set-3 key attribute commands: accepted
            // and ignored, since no key is ever reported.
            if (byte >= 0xf7 && byte <= 0xfd) return reply({kAck});
            return reply({kResend});  // not a command: ask the host to resend
    }
}

std::vector<uint8_t> Ps2Keyboard::parameter(uint8_t cmd, uint8_t value) {
    if (cmd == kScanCodeSet) {
        if (value == 0) return reply({kAck, scan_code_set_});  // 0 = "which set?"
        if (value > 3) return reply({kResend});
        scan_code_set_ = value;
    }
    // LED state and typematic rate have no effect without keys.
    return reply({kAck});
}

std::vector<uint8_t> Ps2Keyboard::reply(std::vector<uint8_t> bytes) {
    if (!bytes.empty()) last_sent_ = bytes.back();
    return bytes;
}

}  // namespace tapvm
