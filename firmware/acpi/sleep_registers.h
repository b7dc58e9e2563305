// The hardware-reduced ACPI sleep and reset registers, as tapvm's FADT
// describes them.  The register devices (devices/) and the tables
// (firmware/acpi/) both follow this file.
//
// With HW_REDUCED_ACPI set in the FADT there are no PM1 blocks; the OS
// enters a sleep state through SLEEP_CONTROL_REG and SLEEP_STATUS_REG
// (ACPI 6.5 §4.8.3.7 "Sleep Control and Status Registers", FADT §5.2.9).
// Linux does this in ACPICA's acpi_hw_extended_sleep() (hwesleep.c), which
// acpi_enter_sleep_state() uses whenever the FADT is hardware-reduced:
//
//   1. write WAK_STS (0x80) to SLEEP_STATUS_REG        (clear wake status)
//   2. write ((SLP_TYP << 2) & 0x1c) | SLP_EN (0x20)    to SLEEP_CONTROL_REG,
//      where SLP_TYP is the first element of the \_Sx package
//   3. poll SLEEP_STATUS_REG until bit 7 (WAK_STS) reads as 1
//
// Both registers are 8 bits wide, in port I/O space, accessed as bytes:
//   SLEEP_CONTROL_REG  port layout::kAcpiSleepControl (0x600), write-only
//       bits 1:0 reserved, bits 4:2 SLP_TYPx, bit 5 SLP_EN, bits 7:6 reserved
//   SLEEP_STATUS_REG   port layout::kAcpiSleepStatus (0x601)
//       bit 7 WAK_STS (write 1 to clear), bits 6:0 reserved
//
// Power-off: tapvm's DSDT has \_S5_ = Package {layout::kAcpiS5SleepType
// (5), 0, 0, 0}, so `poweroff` makes Linux write kPowerOffValue (0x34) to
// port 0x600.  A device should decode the fields rather than compare the
// whole byte: SLP_EN set and SLP_TYP == kAcpiS5SleepType means "power off".
// If nothing stops the guest, Linux spins in step 3 forever, so the device
// must end the machine (or at least the vCPU) on that write.
//
// Reset: RESET_REG is the byte at port layout::kAcpiResetReg (0x602) with
// RESET_VALUE layout::kAcpiResetValue (1), RESET_REG_SUP set in the FADT
// (§4.8.3.6).  x86 Linux reboots through it first (reboot_type BOOT_ACPI,
// acpi_reboot()), then falls back to the i8042 and triple fault.
#pragma once

#include <cstdint>

#include "vmm/layout.h"

namespace tapvm::acpi {

inline constexpr uint8_t kSleepTypeShift = 2;
inline constexpr uint8_t kSleepTypeMask = 0x1c;
inline constexpr uint8_t kSleepEnable = 0x20;
inline constexpr uint8_t kWakeStatus = 0x80;

// What the OS writes to SLEEP_CONTROL_REG to enter the state whose \_Sx
// package starts with `sleep_type`.
constexpr uint8_t sleep_control_value(uint8_t sleep_type) {
    return static_cast<uint8_t>(((sleep_type << kSleepTypeShift) & kSleepTypeMask) | kSleepEnable);
}
// The SLP_TYP field of a value written to SLEEP_CONTROL_REG.
constexpr uint8_t sleep_type_of(uint8_t control_value) {
    return static_cast<uint8_t>((control_value & kSleepTypeMask) >> kSleepTypeShift);
}
// True when a write to SLEEP_CONTROL_REG asks for S5 (soft off).
constexpr bool is_power_off_request(uint8_t control_value) {
    return (control_value & kSleepEnable) && sleep_type_of(control_value) == layout::kAcpiS5SleepType;
}

inline constexpr uint8_t kPowerOffValue = sleep_control_value(layout::kAcpiS5SleepType);
static_assert(layout::kAcpiS5SleepType <= 7, "SLP_TYP is a 3-bit field");
static_assert(kPowerOffValue == 0x34);
static_assert(is_power_off_request(kPowerOffValue));

}  // namespace tapvm::acpi
