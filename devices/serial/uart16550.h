// A 16550A UART (COM1 of a PC), written for Linux's 8250 driver running in
// interrupt mode, not only for a polling early console.
//
// What it models, and how:
// - Transmission is instantaneous.  A byte written to THR goes to the output
//   sink at once, so THR and the shift register are empty again before the
//   guest can look: LSR always shows THRE|TEMT, and the THRE interrupt is
//   raised again right after the write, as on real hardware once the byte
//   has left (PC16550D "THRE interrupt"; QEMU hw/char/serial.c does the same).
// - THRE interrupt rules, which Linux's serial8250_do_startup() tests
//   explicitly (UART_BUG_THRE): setting IER.ETBEI while THR is empty raises
//   it; reading IIR while it reports THRE clears it; writing THR clears it
//   and, the byte being gone at once, raises it again.
// - Reception goes through a 16-byte FIFO (1 byte while FCR has the FIFOs
//   off, like a 16450).  The console thread fills it with enqueue_input(),
//   which accepts only what fits and reports how much that was; when space
//   appears again the "input space" callback tells the console to retry.
//   Nothing is ever dropped on the host side, so receive overruns only
//   happen in loopback mode.
// - Interrupt identification in the 16550's priority order (PC16550D Table
//   IV): line status > received data (reported as a character timeout while
//   a FIFO is below its trigger level, as it would be once the timeout
//   expired) > THR empty > modem status.
// - The IRQ line is level: asserted while an enabled interrupt is pending
//   AND MCR.OUT2 is set AND the UART is not in loopback.  On a PC the OUT2
//   pin gates the 8250's interrupt onto the ISA bus (Linux sets OUT2 in
//   serial8250_do_startup), and loopback forces the output pins, OUT2
//   included, inactive (PC16550D "Loopback").  Reflecting the level exactly
//   also gives an edge-triggered IOAPIC pin one rising edge per new
//   condition, because Linux's handler loops until IIR reports nothing.
// - Loopback (MCR bit 4), as Linux's autoconfig() probes it: transmitted
//   bytes come back into the receive FIFO instead of leaving, and MSR shows
//   the MCR outputs (RTS->CTS, DTR->DSR, OUT1->RI, OUT2->DCD), with change
//   bits.  Outside loopback the host side holds DCD, DSR and CTS on, so a
//   guest tty without CLOCAL still sees a carrier.
// - Not modelled: baud timing, word length/parity/stop bits (stored, never
//   applied: there is no BIOS to program LCR, and Linux's earlycon without a
//   baud rate keeps whatever LCR it finds), breaks, DMA mode, scratch-pad
//   side effects.
//
// Threads: vCPU threads call read()/write(); the console thread calls
// enqueue_input().  One mutex guards the registers; the IRQ line is set under
// it so that levels reach the interrupt controller in the order they were
// computed.  The output sink and the input-space callback are called without
// that mutex held (the sink under a separate mutex that keeps output in
// order), so a slow terminal never blocks input.
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <span>
#include <vector>

#include "vmm/bus.h"
#include "vmm/irq.h"

namespace tapvm {

class Uart16550 : public BusDevice {
public:
    // Size of the port range (at layout::kCom1Base).
    static constexpr uint64_t kPortCount = 8;
    // Receive FIFO depth of a 16550A.
    static constexpr size_t kFifoSize = 16;

    // Receives the guest's output, in order.  Called from vCPU threads.
    using OutputSink = std::function<void(std::span<const uint8_t>)>;

    // When transmitted bytes reach the sink.
    enum class FlushPolicy {
        // At the end of every bus access that transmitted something.
        kEveryAccess,
        // Only when flush_output() is called, or when kMaxPendingOutput bytes
        // have piled up.  For a vCPU loop that calls flush_output() after
        // each exit: a string I/O exit (`rep outsb`) then becomes one write.
        kCaller,
    };
    static constexpr size_t kMaxPendingOutput = 4096;

    // irq may be null (no interrupts, e.g. a polled console).
    Uart16550(IrqLine* irq, OutputSink output, FlushPolicy policy = FlushPolicy::kEveryAccess);

    // BusDevice: offsets 0..7.  Wider accesses are split into byte accesses
    // at consecutive offsets, as the ISA bus does for an 8-bit device.
    void read(uint64_t offset, std::span<uint8_t> data) override;
    void write(uint64_t offset, std::span<const uint8_t> data) override;

    // Host input for the guest (console thread).  Appends as many bytes as
    // the receive FIFO has room for and returns that count; when it is less
    // than bytes.size(), the input-space callback fires once room appears.
    // Input is refused (0) during loopback, when the receiver is not
    // connected to the line.
    size_t enqueue_input(std::span<const uint8_t> bytes);

    // Called (from a vCPU thread, without the UART's lock) after an
    // enqueue_input() that could not take everything, as soon as the guest
    // has made room.  Replaces any previous callback.
    void set_input_space_callback(std::function<void()> callback);

    // Hands any transmitted bytes not yet given to the sink to it.
    void flush_output();

private:
    // What must happen after the register lock is released.
    struct Deferred {
        bool notify_input_space = false;
    };

    uint8_t read_register(uint8_t reg, Deferred& deferred);
    void write_register(uint8_t reg, uint8_t value, Deferred& deferred);

    uint8_t read_rbr(Deferred& deferred);
    uint8_t read_iir();
    uint8_t read_lsr();
    uint8_t read_msr();
    void write_thr(uint8_t value);
    void write_ier(uint8_t value);
    void write_fcr(uint8_t value, Deferred& deferred);
    void write_mcr(uint8_t value, Deferred& deferred);

    void transmit(uint8_t byte);
    void receive_in_loopback(uint8_t byte);

    bool dlab() const;
    bool fifo_enabled() const;
    bool loopback() const;
    size_t rx_capacity() const;
    size_t rx_trigger_level() const;
    // Modem input lines as MSR bits 4-7: from MCR in loopback, else the host's.
    uint8_t modem_inputs() const;
    // Records MSR change bits between two modem_inputs() values.
    void note_modem_change(uint8_t before, uint8_t after);

    // Highest-priority pending interrupt (IIR bits 0-3), kIirNoInt if none.
    uint8_t pending_interrupt() const;
    void update_irq();
    void check_input_space(Deferred& deferred);
    void run_deferred(const Deferred& deferred);
    // Takes pending output (under mutex_) for the sink.
    std::vector<uint8_t> take_output();

    IrqLine* const irq_;
    const OutputSink output_;
    const FlushPolicy policy_;

    // Serialises calls into output_, so bytes leave in THR-write order even
    // when several vCPUs write; always taken before mutex_.
    std::mutex output_mutex_;

    mutable std::mutex mutex_;  // everything below
    uint8_t ier_ = 0;
    uint8_t lcr_ = 0;
    uint8_t mcr_ = 0;
    uint8_t fcr_ = 0;
    uint8_t scr_ = 0;
    uint8_t dll_ = 0x0c;  // 9600 baud from the 1.8432 MHz PC clock
    uint8_t dlm_ = 0;
    uint8_t lsr_errors_ = 0;  // latched kLsrErrorBits, cleared by reading LSR
    uint8_t msr_deltas_ = 0;  // latched MSR bits 0-3, cleared by reading MSR
    bool thr_interrupt_ = false;  // the THRE interrupt is pending
    std::deque<uint8_t> rx_fifo_;
    bool input_waiting_ = false;  // enqueue_input() was short of room
    bool irq_asserted_ = false;
    std::vector<uint8_t> pending_output_;
    std::function<void()> input_space_callback_;
};

}  // namespace tapvm
