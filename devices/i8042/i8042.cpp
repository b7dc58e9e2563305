#include "devices/i8042/i8042.h"

#include <spdlog/spdlog.h>

#include "vmm/log_limiter.h"

namespace tapvm {

namespace {

// Controller commands written to port 0x64 (Linux i8042.h, IBM PS/2
// Technical Reference "Keyboard/Auxiliary Device Controller").
constexpr uint8_t kCmdReadCtr = 0x20;
constexpr uint8_t kCmdWriteCtr = 0x60;
constexpr uint8_t kCmdAuxDisable = 0xa7;
constexpr uint8_t kCmdAuxEnable = 0xa8;
constexpr uint8_t kCmdAuxTest = 0xa9;
constexpr uint8_t kCmdSelfTest = 0xaa;
constexpr uint8_t kCmdKbdTest = 0xab;
constexpr uint8_t kCmdKbdDisable = 0xad;
constexpr uint8_t kCmdKbdEnable = 0xae;
constexpr uint8_t kCmdReadOutputPort = 0xd0;
constexpr uint8_t kCmdWriteOutputPort = 0xd1;
constexpr uint8_t kCmdWriteKbdBuffer = 0xd2;  // echo as keyboard data
constexpr uint8_t kCmdWriteAuxBuffer = 0xd3;  // echo as AUX data (Linux: AUX_LOOP)
constexpr uint8_t kCmdWriteAuxDevice = 0xd4;
constexpr uint8_t kCmdPulseFirst = 0xf0;      // 0xF0-0xFF: pulse output-port bits 0-3

constexpr uint8_t kSelfTestPassed = 0x55;
constexpr uint8_t kInterfaceTestPassed = 0x00;
constexpr uint8_t kOutputPortReset = 0x01;  // active low: 0 resets the CPU
constexpr uint8_t kNoAuxDeviceReply = 0xfe;

// Adapts one of the controller's two ports to the bus.
class I8042Port : public BusDevice {
public:
    enum class Which { kData, kCommand };
    I8042Port(std::shared_ptr<I8042> controller, Which which)
        : controller_(std::move(controller)), which_(which) {}

    void read(uint64_t, std::span<uint8_t> data) override {
        if (data.empty()) return;
        // The bus range is one port wide, so every access is one byte.
        data[0] = which_ == Which::kData ? controller_->read_data() : controller_->read_status();
        for (size_t i = 1; i < data.size(); ++i) data[i] = 0xff;
    }
    void write(uint64_t, std::span<const uint8_t> data) override {
        if (data.empty()) return;
        if (which_ == Which::kData) controller_->write_data(data[0]);
        else controller_->write_command(data[0]);
    }

private:
    std::shared_ptr<I8042> controller_;
    Which which_;
};

}  // namespace

I8042::I8042(IrqLine* keyboard_irq, IrqLine* aux_irq, std::function<void()> on_reset)
    : keyboard_irq_(keyboard_irq), aux_irq_(aux_irq), on_reset_(std::move(on_reset)) {}

std::shared_ptr<BusDevice> I8042::data_port() {
    return std::make_shared<I8042Port>(shared_from_this(), I8042Port::Which::kData);
}

std::shared_ptr<BusDevice> I8042::command_port() {
    return std::make_shared<I8042Port>(shared_from_this(), I8042Port::Which::kCommand);
}

// --- Port operations --------------------------------------------------------

uint8_t I8042::read_status() {
    std::lock_guard lock(mutex_);
    // IBF never shows: every write is processed before the vCPU resumes.
    uint8_t status = kStrKeylock;
    if (ctr_ & kCtrSysFlag) status |= kStrSysFlag;
    if (last_write_was_command_) status |= kStrCmdDat;
    if (!output_.empty()) {
        status |= kStrObf;
        if (output_.front().from_aux) status |= kStrAuxData;
        if (output_.front().timeout) status |= kStrTimeout;
    }
    return status;
}

uint8_t I8042::read_data() {
    std::lock_guard lock(mutex_);
    // An empty output buffer still returns its last contents, as the
    // hardware latch does.
    if (output_.empty()) return last_read_;
    last_read_ = output_.front().value;
    output_.pop_front();
    update_irqs(/*new_head=*/!output_.empty());
    return last_read_;
}

void I8042::write_command(uint8_t command) {
    bool reset = false;
    {
        std::lock_guard lock(mutex_);
        last_write_was_command_ = true;
        awaiting_parameter_for_ = 0;  // a new command abandons a half-given one
        reset = run_command(command);
    }
    if (reset && on_reset_) on_reset_();
}

void I8042::write_data(uint8_t value) {
    bool reset = false;
    {
        std::lock_guard lock(mutex_);
        last_write_was_command_ = false;
        if (awaiting_parameter_for_ != 0) {
            uint8_t command = awaiting_parameter_for_;
            awaiting_parameter_for_ = 0;
            reset = run_parameter(command, value);
        } else {
            send_to_keyboard(value);
        }
    }
    if (reset && on_reset_) on_reset_();
}

// --- Commands -----------------------------------------------------------------

bool I8042::run_command(uint8_t command) {
    switch (command) {
        case kCmdReadCtr: queue_output(ctr_, false); return false;
        case kCmdWriteCtr:
        case kCmdWriteOutputPort:
        case kCmdWriteKbdBuffer:
        case kCmdWriteAuxBuffer:
        case kCmdWriteAuxDevice:
            awaiting_parameter_for_ = command;
            return false;
        case kCmdAuxDisable: ctr_ |= kCtrAuxDis; return false;
        case kCmdAuxEnable: ctr_ &= ~kCtrAuxDis; return false;
        case kCmdAuxTest: queue_output(kInterfaceTestPassed, false); return false;
        case kCmdSelfTest:
            ctr_ |= kCtrSysFlag;  // a passed self test sets the system flag
            queue_output(kSelfTestPassed, false);
            return false;
        case kCmdKbdTest: queue_output(kInterfaceTestPassed, false); return false;
        case kCmdKbdDisable: ctr_ |= kCtrKbdDis; return false;
        case kCmdKbdEnable: ctr_ &= ~kCtrKbdDis; return false;
        case kCmdReadOutputPort: queue_output(output_port_, false); return false;
        default: break;
    }
    if (command >= kCmdPulseFirst) {
        // Bits 0-3 of the command select the output-port bits to pulse low
        // (a 0 bit pulses).  Only bit 0, the CPU reset line, matters here.
        return (command & kOutputPortReset) == 0;
    }
    log_unknown(command);
    return false;
}

bool I8042::run_parameter(uint8_t command, uint8_t value) {
    switch (command) {
        case kCmdWriteCtr:
            ctr_ = value;
            update_irqs(false);  // KBDINT/AUXINT may have changed
            return false;
        case kCmdWriteOutputPort:
            output_port_ = value;
            return (value & kOutputPortReset) == 0;  // reset line driven low
        case kCmdWriteKbdBuffer: queue_output(value, false); return false;
        case kCmdWriteAuxBuffer: queue_output(value, true); return false;
        case kCmdWriteAuxDevice:
            // Nothing is attached to the AUX port: the controller gives up
            // waiting for the device's clock and reports a timeout.
            queue_output(kNoAuxDeviceReply, true, /*timeout=*/true);
            return false;
    }
    return false;
}

void I8042::send_to_keyboard(uint8_t value) {
    // Writing to the keyboard re-enables the keyboard interface (QEMU's
    // kbd_write_data does the same; the clock line must be released to send).
    ctr_ &= ~kCtrKbdDis;
    for (uint8_t reply : keyboard_.receive(value)) queue_output(reply, false);
}

void I8042::queue_output(uint8_t value, bool from_aux, bool timeout) {
    if (output_.size() >= kOutputQueueSize) {
        // The guest stopped reading; a real controller would lose bytes too.
        spdlog::debug("i8042: output queue full, dropping 0x{:02x}", value);
        return;
    }
    output_.push_back({value, from_aux, timeout});
    update_irqs(/*new_head=*/output_.size() == 1);
}

// --- Interrupts ---------------------------------------------------------------

void I8042::update_irqs(bool new_head) {
    bool keyboard = false;
    bool aux = false;
    if (!output_.empty()) {
        keyboard = !output_.front().from_aux && (ctr_ & kCtrKbdInt);
        aux = output_.front().from_aux && (ctr_ & kCtrAuxInt);
    }
    if (new_head) {
        // A byte that replaced the one just read must raise a new edge.
        set_line(keyboard_irq_, keyboard_irq_asserted_, false);
        set_line(aux_irq_, aux_irq_asserted_, false);
    }
    set_line(keyboard_irq_, keyboard_irq_asserted_, keyboard);
    set_line(aux_irq_, aux_irq_asserted_, aux);
}

void I8042::set_line(IrqLine* line, bool& asserted, bool level) {
    if (asserted == level) return;
    asserted = level;
    if (line) line->set_level(level);
}

void I8042::log_unknown(uint8_t command) {
    if (logged_unknown_.test(command)) return;
    logged_unknown_.set(command);
    log_limited(guest_log_, spdlog::level::warn, "i8042: guest sent unsupported controller command 0x{:02x}; ignored",
                command);
}

}  // namespace tapvm
