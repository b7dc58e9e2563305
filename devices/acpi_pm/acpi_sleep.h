// The sleep and reset registers of a hardware-reduced ACPI platform: three
// one-byte I/O ports that the FADT points at (SLEEP_CONTROL_REG,
// SLEEP_STATUS_REG, RESET_REG), at layout::kAcpiSleepControl,
// kAcpiSleepStatus and kAcpiResetReg, consecutive, so one bus range of
// kPortCount ports starting at kAcpiSleepControl covers them.
//
// Bit layouts (ACPI 6.5 §4.8.3.7 "Sleep Control and Status Registers",
// Tables 4.19 and 4.20; ACPICA's ACPI_X_* values in include/acpi/actbl.h):
//   control: bits 2-4 SLP_TYPx (mask 0x1C), bit 5 SLP_EN (0x20), others reserved
//   status:  bit 7 WAK_STS (0x80), others reserved
// Linux (ACPICA acpi_hw_extended_sleep(), hwesleep.c) first writes WAK_STS
// to the status register to clear it, then writes
// ((SLP_TYPa << 2) & 0x1C) | SLP_EN to the control register, then polls the
// status register until WAK_STS is set.
//
// SLP_EN with SLP_TYPx == layout::kAcpiS5SleepType (the DSDT's \_S5_ value)
// is a power-off: on_poweroff() runs.  Any other sleep type is a state tapvm
// does not implement; rather than leave ACPICA polling forever, the "machine"
// wakes up at once: WAK_STS becomes 1, which ends the poll and sends the
// guest down its resume path.  Writing layout::kAcpiResetValue to the reset
// register (ACPI 6.5 §4.8.3.6 "Reset Register") calls on_reset().
#pragma once

#include <cstdint>
#include <functional>
#include <mutex>
#include <span>

#include "vmm/bus.h"
#include "vmm/layout.h"
#include "vmm/log_limiter.h"

namespace tapvm {

class AcpiSleep : public BusDevice {
public:
    static constexpr uint64_t kPortCount = 3;
    static constexpr uint8_t kSlpTypShift = 2;
    static constexpr uint8_t kSlpTypMask = 0x1c;
    static constexpr uint8_t kSlpEn = 0x20;
    static constexpr uint8_t kWakSts = 0x80;

    // Both callbacks run on the vCPU thread that wrote the register, without
    // any lock of this device held.
    AcpiSleep(std::function<void()> on_poweroff, std::function<void()> on_reset);

    void read(uint64_t offset, std::span<uint8_t> data) override;
    void write(uint64_t offset, std::span<const uint8_t> data) override;

private:
    mutable LogLimiter guest_log_;  // lines the guest can trigger (vmm/log_limiter.h)
    enum class Request { kNone, kPoweroff, kReset };

    uint8_t read_register(uint64_t offset);
    Request write_register(uint64_t offset, uint8_t value);
    Request write_sleep_control(uint8_t value);
    void write_sleep_status(uint8_t value);
    Request write_reset(uint8_t value);

    const std::function<void()> on_poweroff_;
    const std::function<void()> on_reset_;

    std::mutex mutex_;
    uint8_t sleep_type_ = 0;  // last SLP_TYPx written, reads back
    bool wake_status_ = false;
};

// The three registers must stay consecutive for the single bus range.
static_assert(layout::kAcpiSleepStatus == layout::kAcpiSleepControl + 1);
static_assert(layout::kAcpiResetReg == layout::kAcpiSleepControl + 2);

}  // namespace tapvm
