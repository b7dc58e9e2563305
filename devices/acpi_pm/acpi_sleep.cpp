#include "devices/acpi_pm/acpi_sleep.h"

#include <spdlog/spdlog.h>

#include "vmm/log_limiter.h"

namespace tapvm {

namespace {

constexpr uint64_t kControlOffset = 0;
constexpr uint64_t kStatusOffset = layout::kAcpiSleepStatus - layout::kAcpiSleepControl;
constexpr uint64_t kResetOffset = layout::kAcpiResetReg - layout::kAcpiSleepControl;

}  // namespace

AcpiSleep::AcpiSleep(std::function<void()> on_poweroff, std::function<void()> on_reset)
    : on_poweroff_(std::move(on_poweroff)), on_reset_(std::move(on_reset)) {}

void AcpiSleep::read(uint64_t offset, std::span<uint8_t> data) {
    std::lock_guard lock(mutex_);
    for (size_t i = 0; i < data.size(); ++i) data[i] = read_register(offset + i);
}

void AcpiSleep::write(uint64_t offset, std::span<const uint8_t> data) {
    Request request = Request::kNone;
    {
        std::lock_guard lock(mutex_);
        // A wider access writes each register it covers, lowest port first.
        for (size_t i = 0; i < data.size(); ++i) {
            Request r = write_register(offset + i, data[i]);
            if (r != Request::kNone) request = r;
        }
    }
    if (request == Request::kPoweroff && on_poweroff_) on_poweroff_();
    if (request == Request::kReset && on_reset_) on_reset_();
}

uint8_t AcpiSleep::read_register(uint64_t offset) {
    switch (offset) {
        // SLP_EN is write-only and reads as 0 (ACPI 6.5 §4.8.3.7).
        case kControlOffset: return static_cast<uint8_t>(sleep_type_ << kSlpTypShift);
        case kStatusOffset: return wake_status_ ? kWakSts : 0;
        case kResetOffset: return 0;  // RESET_REG is write-only in effect
    }
    return 0xff;
}

AcpiSleep::Request AcpiSleep::write_register(uint64_t offset, uint8_t value) {
    switch (offset) {
        case kControlOffset: return write_sleep_control(value);
        case kStatusOffset: write_sleep_status(value); return Request::kNone;
        case kResetOffset: return write_reset(value);
    }
    return Request::kNone;
}

AcpiSleep::Request AcpiSleep::write_sleep_control(uint8_t value) {
    sleep_type_ = (value & kSlpTypMask) >> kSlpTypShift;
    if (!(value & kSlpEn)) return Request::kNone;  // only SLP_EN starts a transition
    if (sleep_type_ == layout::kAcpiS5SleepType) return Request::kPoweroff;
    // A sleep state the DSDT never offered: wake up at once instead of
    // leaving the guest polling WAK_STS forever (see acpi_sleep.h).
    log_limited(guest_log_, spdlog::level::warn, "acpi: guest asked for unsupported sleep type {}; waking it at once",
                sleep_type_);
    wake_status_ = true;
    return Request::kNone;
}

void AcpiSleep::write_sleep_status(uint8_t value) {
    // WAK_STS is write-1-to-clear (ACPI 6.5 §4.8.3.7).
    if (value & kWakSts) wake_status_ = false;
}

AcpiSleep::Request AcpiSleep::write_reset(uint8_t value) {
    if (value == layout::kAcpiResetValue) return Request::kReset;
    spdlog::debug("acpi: reset register written with 0x{:02x}, not the reset value; ignored", value);
    return Request::kNone;
}

}  // namespace tapvm
