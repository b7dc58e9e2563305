// The PS/2 keyboard controller (8042) at ports 0x60 (data) and 0x64
// (status/command): enough of it for Linux's i8042 driver
// (drivers/input/serio/i8042.c) to probe it without a single timeout, and for
// `reboot=k` to reset the machine.
//
// Modelled:
// - the status register (OBF, SYS, CMD/DATA, keylock "not inhibited", AUX
//   data, timeout) and the controller's output queue (16 bytes, the depth
//   Linux's i8042_flush() allows for);
// - controller commands 0x20/0x60 (read/write the command byte, "CTR"),
//   0xA7/0xA8 (AUX port off/on, reflected in CTR bit 5 as i8042_toggle_aux()
//   checks), 0xA9 (AUX interface test: 0x00), 0xAA (self test: 0x55),
//   0xAB (keyboard interface test: 0x00), 0xAD/0xAE (keyboard port off/on),
//   0xD0/0xD1 (read/write output port; bit 0 low = reset), 0xD2/0xD3 (echo a
//   byte as if from the keyboard / the AUX device, which is how Linux's
//   AUX_LOOP test and MUX probe work), 0xD4 (write to the AUX device), and
//   0xF0-0xFF (pulse output-port bits; a pulse on bit 0, e.g. 0xFE, is the
//   reset that `reboot=k` uses, arch/x86/kernel/reboot.c);
// - a keyboard that answers commands (ps2_keyboard.h) but never types;
// - nothing on the AUX port: bytes sent to it come back as 0xFE with the
//   timeout bit set, the answer of a controller whose mouse does not
//   respond, which makes Linux's psmouse give up at once.
//
// The command byte starts as KBDINT|SYS|AUXDIS with translation off, so Linux
// talks to the keyboard in its native set 2 (i8042_direct) and nothing needs
// translating.
//
// IRQs (level, mirrored exactly): IRQ 1 while a keyboard or controller byte
// waits in the output buffer and CTR.KBDINT is set; IRQ 12 likewise for AUX
// bytes with CTR.AUXINT.  Each newly exposed byte makes a fresh rising edge
// (ISA IRQs are edge-triggered).  The AUX line is optional: without it Linux's
// AUX IRQ test waits 250 ms and decides there is no AUX port.
//
// Bus wiring: the ports are two separate 1-byte ranges (0x61-0x63 belong to
// other devices), so the controller hands out two BusDevice adapters that
// share it:
//     auto kbc = std::make_shared<I8042>(kbd_irq, aux_irq, on_reset);
//     pio.insert(layout::kI8042Data, 1, kbc->data_port());
//     pio.insert(layout::kI8042Command, 1, kbc->command_port());
// (the controller must be owned by a shared_ptr: the adapters keep it alive).
#pragma once

#include <bitset>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>

#include "devices/i8042/ps2_keyboard.h"
#include "vmm/bus.h"
#include "vmm/irq.h"
#include "vmm/log_limiter.h"

namespace tapvm {

class I8042 : public std::enable_shared_from_this<I8042> {
public:
    // Status register bits (Linux drivers/input/serio/i8042.h names).
    static constexpr uint8_t kStrObf = 0x01;
    static constexpr uint8_t kStrIbf = 0x02;
    static constexpr uint8_t kStrSysFlag = 0x04;
    static constexpr uint8_t kStrCmdDat = 0x08;  // last write went to 0x64
    static constexpr uint8_t kStrKeylock = 0x10; // set = keyboard not inhibited
    static constexpr uint8_t kStrAuxData = 0x20;
    static constexpr uint8_t kStrTimeout = 0x40;

    // Command byte ("controller configuration") bits.
    static constexpr uint8_t kCtrKbdInt = 0x01;
    static constexpr uint8_t kCtrAuxInt = 0x02;
    static constexpr uint8_t kCtrSysFlag = 0x04;
    static constexpr uint8_t kCtrKbdDis = 0x10;
    static constexpr uint8_t kCtrAuxDis = 0x20;
    static constexpr uint8_t kCtrXlate = 0x40;
    static constexpr uint8_t kInitialCtr = kCtrKbdInt | kCtrSysFlag | kCtrAuxDis;

    static constexpr size_t kOutputQueueSize = 16;

    // keyboard_irq (IRQ 1) and aux_irq (IRQ 12) may be null.  on_reset is
    // called (from a vCPU thread, without the controller's lock) when the
    // guest pulses the reset line; the machine treats it as a reboot request.
    I8042(IrqLine* keyboard_irq, IrqLine* aux_irq, std::function<void()> on_reset);

    // Bus adapters for layout::kI8042Data and layout::kI8042Command (1 port
    // each).  Require ownership by a shared_ptr.
    std::shared_ptr<BusDevice> data_port();
    std::shared_ptr<BusDevice> command_port();

    // The four port operations; the adapters call these.
    uint8_t read_data();
    void write_data(uint8_t value);
    uint8_t read_status();
    void write_command(uint8_t command);

private:
    mutable LogLimiter guest_log_;  // lines the guest can trigger (vmm/log_limiter.h)
    struct OutputByte {
        uint8_t value;
        bool from_aux;
        bool timeout;
    };

    // Returns true when the guest asked for a reset.
    bool run_command(uint8_t command);
    bool run_parameter(uint8_t command, uint8_t value);
    void send_to_keyboard(uint8_t value);
    void queue_output(uint8_t value, bool from_aux, bool timeout = false);
    // Recomputes both IRQ levels; a new byte at the head of the queue gets a
    // fresh rising edge.
    void update_irqs(bool new_head);
    void set_line(IrqLine* line, bool& asserted, bool level);
    void log_unknown(uint8_t command);

    IrqLine* const keyboard_irq_;
    IrqLine* const aux_irq_;
    const std::function<void()> on_reset_;

    std::mutex mutex_;  // everything below
    uint8_t ctr_ = kInitialCtr;
    uint8_t output_port_ = 0x03;  // bit 0: reset line (high = running), bit 1: A20 enabled
    bool last_write_was_command_ = false;
    uint8_t awaiting_parameter_for_ = 0;  // controller command needing a data byte, 0 if none
    std::deque<OutputByte> output_;
    uint8_t last_read_ = 0;  // what the data port returns when nothing is queued
    Ps2Keyboard keyboard_;
    bool keyboard_irq_asserted_ = false;
    bool aux_irq_asserted_ = false;
    std::bitset<256> logged_unknown_;
};

}  // namespace tapvm
