#include "devices/serial/uart16550.h"

#include <algorithm>

#include "devices/serial/uart_registers.h"

namespace tapvm {

using namespace uart;

namespace {

// What the host end of the "cable" shows the guest outside loopback: carrier,
// data set ready and clear to send, all permanently on (QEMU's serial_reset
// does the same), so a tty without CLOCAL opens and never waits for CTS.
constexpr uint8_t kHostModemLines = kMsrDcd | kMsrDsr | kMsrCts;

// Receive trigger levels selected by FCR bits 6-7 (PC16550D Table III).
constexpr size_t kTriggerLevels[4] = {1, 4, 8, 14};

}  // namespace

Uart16550::Uart16550(IrqLine* irq, OutputSink output, FlushPolicy policy)
    : irq_(irq), output_(std::move(output)), policy_(policy) {}

// --- Bus side ---------------------------------------------------------------

void Uart16550::read(uint64_t offset, std::span<uint8_t> data) {
    Deferred deferred;
    {
        std::lock_guard lock(mutex_);
        for (size_t i = 0; i < data.size(); ++i) {
            uint64_t reg = offset + i;
            data[i] = reg < kPortCount ? read_register(static_cast<uint8_t>(reg), deferred) : 0xff;
        }
    }
    run_deferred(deferred);
}

void Uart16550::write(uint64_t offset, std::span<const uint8_t> data) {
    Deferred deferred;
    {
        std::lock_guard output_lock(output_mutex_);
        std::vector<uint8_t> outgoing;
        {
            std::lock_guard lock(mutex_);
            for (size_t i = 0; i < data.size(); ++i) {
                uint64_t reg = offset + i;
                if (reg < kPortCount) write_register(static_cast<uint8_t>(reg), data[i], deferred);
            }
            if (policy_ == FlushPolicy::kEveryAccess || pending_output_.size() >= kMaxPendingOutput)
                outgoing.swap(pending_output_);
        }
        if (!outgoing.empty() && output_) output_(outgoing);
    }
    run_deferred(deferred);
}

void Uart16550::flush_output() {
    std::lock_guard output_lock(output_mutex_);
    std::vector<uint8_t> outgoing = take_output();
    if (!outgoing.empty() && output_) output_(outgoing);
}

std::vector<uint8_t> Uart16550::take_output() {
    std::lock_guard lock(mutex_);
    std::vector<uint8_t> outgoing;
    outgoing.swap(pending_output_);
    return outgoing;
}

uint8_t Uart16550::read_register(uint8_t reg, Deferred& deferred) {
    switch (reg) {
        case kRbr: return dlab() ? dll_ : read_rbr(deferred);
        case kIer: return dlab() ? dlm_ : ier_;
        case kIir: return read_iir();
        case kLcr: return lcr_;
        case kMcr: return mcr_;
        case kLsr: return read_lsr();
        case kMsr: return read_msr();
        case kScr: return scr_;
    }
    return 0xff;
}

void Uart16550::write_register(uint8_t reg, uint8_t value, Deferred& deferred) {
    switch (reg) {
        case kThr:
            if (dlab()) dll_ = value;
            else write_thr(value);
            return;
        case kIer:
            if (dlab()) dlm_ = value;
            else write_ier(value);
            return;
        case kFcr: write_fcr(value, deferred); return;
        case kLcr: lcr_ = value; return;  // DLAB only changes decoding: no IRQ effect
        case kMcr: write_mcr(value, deferred); return;
        case kLsr: return;  // LSR is read-only in practice (factory test only)
        case kMsr: return;  // read-only
        case kScr: scr_ = value; return;
    }
}

// --- Registers -------------------------------------------------------------

uint8_t Uart16550::read_rbr(Deferred& deferred) {
    if (rx_fifo_.empty()) return 0;
    uint8_t byte = rx_fifo_.front();
    rx_fifo_.pop_front();
    update_irq();
    check_input_space(deferred);
    return byte;
}

uint8_t Uart16550::read_iir() {
    uint8_t id = pending_interrupt();
    // Reading IIR while it reports THRE is what acknowledges that interrupt
    // (PC16550D Table IV, "Reading the IIR register (if source of
    // interrupt)").  Linux's THRE test in serial8250_do_startup() depends on
    // it, and so does its interrupt handler not being re-entered forever.
    if (id == kIirThri) {
        thr_interrupt_ = false;
        update_irq();
    }
    return id | (fifo_enabled() ? kIirFifoEnabled : 0);
}

uint8_t Uart16550::read_lsr() {
    uint8_t value = kLsrThre | kLsrTemt | lsr_errors_;
    if (!rx_fifo_.empty()) value |= kLsrDr;
    // The error bits report an event once: reading LSR clears them and the
    // line-status interrupt with them (PC16550D Table IV).
    if (lsr_errors_ != 0) {
        lsr_errors_ = 0;
        update_irq();
    }
    return value;
}

uint8_t Uart16550::read_msr() {
    uint8_t value = modem_inputs() | msr_deltas_;
    if (msr_deltas_ != 0) {
        msr_deltas_ = 0;  // reading MSR acknowledges the modem-status interrupt
        update_irq();
    }
    return value;
}

void Uart16550::write_thr(uint8_t value) {
    thr_interrupt_ = false;  // writing THR clears the THRE interrupt...
    transmit(value);
    thr_interrupt_ = true;   // ...and the byte has already left: THR is empty again
    update_irq();
}

void Uart16550::write_ier(uint8_t value) {
    uint8_t changed = (ier_ ^ value) & kIerMask;
    ier_ = value & kIerMask;
    // Enabling ETBEI while THR is empty raises THRE even if an earlier IIR
    // read had acknowledged it; Linux's UART_BUG_THRE test toggles IER to
    // check exactly this, and QEMU and Bochs behave the same.  Disabling it
    // forgets the pending THRE, so the next enable starts afresh.
    if (changed & kIerThri) thr_interrupt_ = (ier_ & kIerThri) != 0;
    update_irq();
}

void Uart16550::write_fcr(uint8_t value, Deferred& deferred) {
    bool clear_rx = (value & kFcrClearRcvr) != 0;
    bool clear_tx = (value & kFcrClearXmit) != 0;
    // Switching the FIFOs on or off empties both (PC16550D FCR bit 0).
    if (((value ^ fcr_) & kFcrEnable) != 0) clear_rx = clear_tx = true;
    // "FCR0 must be 1 when other FCR bits are written to or they will not be
    // programmed" (PC16550D FCR description).
    fcr_ = (value & kFcrEnable) ? (value & kFcrStoredMask) : 0;
    if (clear_rx) rx_fifo_.clear();
    // The transmit FIFO is always empty (output is immediate); clearing it
    // still counts as THR becoming empty, as in QEMU.
    if (clear_tx) thr_interrupt_ = true;
    update_irq();
    check_input_space(deferred);
}

void Uart16550::write_mcr(uint8_t value, Deferred& deferred) {
    uint8_t before = modem_inputs();
    mcr_ = value & kMcrMask;
    note_modem_change(before, modem_inputs());
    update_irq();
    check_input_space(deferred);  // leaving loopback reconnects the receiver
}

// --- Data paths -------------------------------------------------------------

void Uart16550::transmit(uint8_t byte) {
    if (loopback()) {
        receive_in_loopback(byte);
        return;
    }
    pending_output_.push_back(byte);
}

void Uart16550::receive_in_loopback(uint8_t byte) {
    // The transmitter feeds the receiver internally (PC16550D "Loopback").
    // No host flow control applies here: a full FIFO overruns, and the
    // character is lost (the FIFO contents are kept; PC16550D LSR bit 1).
    if (rx_fifo_.size() >= rx_capacity()) {
        lsr_errors_ |= kLsrOe;
        return;
    }
    rx_fifo_.push_back(byte);
}

size_t Uart16550::enqueue_input(std::span<const uint8_t> bytes) {
    if (bytes.empty()) return 0;
    std::lock_guard lock(mutex_);
    size_t accepted = 0;
    if (!loopback()) {
        size_t room = rx_capacity() - std::min(rx_capacity(), rx_fifo_.size());
        accepted = std::min(room, bytes.size());
        rx_fifo_.insert(rx_fifo_.end(), bytes.begin(), bytes.begin() + accepted);
    }
    if (accepted < bytes.size()) input_waiting_ = true;
    if (accepted > 0) update_irq();
    return accepted;
}

void Uart16550::set_input_space_callback(std::function<void()> callback) {
    std::lock_guard lock(mutex_);
    input_space_callback_ = std::move(callback);
}

void Uart16550::check_input_space(Deferred& deferred) {
    if (input_waiting_ && !loopback() && rx_fifo_.size() < rx_capacity()) {
        input_waiting_ = false;
        deferred.notify_input_space = true;
    }
}

void Uart16550::run_deferred(const Deferred& deferred) {
    if (!deferred.notify_input_space) return;
    std::function<void()> callback;
    {
        std::lock_guard lock(mutex_);
        callback = input_space_callback_;
    }
    if (callback) callback();
}

// --- State helpers ----------------------------------------------------------

bool Uart16550::dlab() const { return (lcr_ & kLcrDlab) != 0; }
bool Uart16550::fifo_enabled() const { return (fcr_ & kFcrEnable) != 0; }
bool Uart16550::loopback() const { return (mcr_ & kMcrLoop) != 0; }

size_t Uart16550::rx_capacity() const { return fifo_enabled() ? kFifoSize : 1; }

size_t Uart16550::rx_trigger_level() const { return kTriggerLevels[(fcr_ & kFcrTriggerMask) >> 6]; }

uint8_t Uart16550::modem_inputs() const {
    if (!loopback()) return kHostModemLines;
    // PC16550D "Loopback": RTS->CTS, DTR->DSR, OUT1->RI, OUT2->DCD.
    uint8_t lines = 0;
    if (mcr_ & kMcrRts) lines |= kMsrCts;
    if (mcr_ & kMcrDtr) lines |= kMsrDsr;
    if (mcr_ & kMcrOut1) lines |= kMsrRi;
    if (mcr_ & kMcrOut2) lines |= kMsrDcd;
    return lines;
}

void Uart16550::note_modem_change(uint8_t before, uint8_t after) {
    uint8_t changed = before ^ after;
    if (changed & kMsrCts) msr_deltas_ |= kMsrDcts;
    if (changed & kMsrDsr) msr_deltas_ |= kMsrDdsr;
    if (changed & kMsrDcd) msr_deltas_ |= kMsrDdcd;
    if ((before & kMsrRi) && !(after & kMsrRi)) msr_deltas_ |= kMsrTeri;  // trailing edge only
}

uint8_t Uart16550::pending_interrupt() const {
    // Priorities from PC16550D Table IV, highest first.
    if ((ier_ & kIerRlsi) && lsr_errors_ != 0) return kIirRlsi;
    if ((ier_ & kIerRdi) && !rx_fifo_.empty()) {
        // Below the trigger level a real 16550A interrupts only after four
        // idle character times, as a "character timeout".  Nothing more will
        // arrive sooner here than later, so the timeout counts as expired.
        if (fifo_enabled() && rx_fifo_.size() < rx_trigger_level()) return kIirTimeout;
        return kIirRdi;
    }
    if ((ier_ & kIerThri) && thr_interrupt_) return kIirThri;
    if ((ier_ & kIerMsi) && msr_deltas_ != 0) return kIirMsi;
    return kIirNoInt;
}

void Uart16550::update_irq() {
    bool level = pending_interrupt() != kIirNoInt && (mcr_ & kMcrOut2) != 0 && !loopback();
    if (level == irq_asserted_) return;  // each change is an ioctl with KVM
    irq_asserted_ = level;
    if (irq_) irq_->set_level(level);
}

}  // namespace tapvm
