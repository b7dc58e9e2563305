// Fixed ACPI Description Table (FADT), ACPI 6.5 §5.2.9, revision 6.
//
// tapvm is a hardware-reduced ACPI platform (§4.1): no PM1 event/control
// blocks, no PM timer, no GPE blocks, no FACS, no SMI command port.  Sleep
// and power-off go through the sleep control/status registers and reboot
// through the reset register (their format: sleep_registers.h).  On x86 Linux, the
// HW_REDUCED_ACPI flag also makes the kernel skip the legacy PIC and PIT
// set-up (acpi_reduced_hw_init() in arch/x86/kernel/acpi/boot.c): timers
// come from the local APIC and kvmclock, interrupts from the IOAPIC.
#pragma once

#include <cstdint>

#include "firmware/acpi/bytes.h"

namespace tapvm::acpi {

inline constexpr uint8_t kFadtRevision = 6;
inline constexpr uint8_t kFadtMinorRevision = 5;  // ACPI 6.5
inline constexpr size_t kFadtSize = 276;

// Field offsets (§5.2.9, Table 5.9).
inline constexpr size_t kFadtSciIntOffset = 46;
inline constexpr size_t kFadtIapcBootArchOffset = 109;
inline constexpr size_t kFadtFlagsOffset = 112;
inline constexpr size_t kFadtResetRegOffset = 116;
inline constexpr size_t kFadtResetValueOffset = 128;
inline constexpr size_t kFadtMinorVersionOffset = 131;
inline constexpr size_t kFadtXDsdtOffset = 140;
inline constexpr size_t kFadtSleepControlOffset = 244;
inline constexpr size_t kFadtSleepStatusOffset = 256;
inline constexpr size_t kFadtHypervisorIdOffset = 268;

// Fixed Feature Flags (Table 5.10).
inline constexpr uint32_t kFadtWbinvd = 1u << 0;
inline constexpr uint32_t kFadtPowerButtonNotFixed = 1u << 4;  // PWR_BUTTON
inline constexpr uint32_t kFadtSleepButtonNotFixed = 1u << 5;  // SLP_BUTTON
inline constexpr uint32_t kFadtResetRegSupported = 1u << 10;   // RESET_REG_SUP
inline constexpr uint32_t kFadtHwReducedAcpi = 1u << 20;       // HW_REDUCED_ACPI

// IA-PC Boot Architecture Flags (Table 5.11).
inline constexpr uint16_t kBootArchLegacyDevices = 1u << 0;
inline constexpr uint16_t kBootArch8042 = 1u << 1;
inline constexpr uint16_t kBootArchVgaNotPresent = 1u << 2;
inline constexpr uint16_t kBootArchMsiNotSupported = 1u << 3;
inline constexpr uint16_t kBootArchPcieAspmControls = 1u << 4;
inline constexpr uint16_t kBootArchCmosRtcNotPresent = 1u << 5;

struct FadtConfig {
    uint64_t dsdt_address = 0;
    // Sets the 8042 boot-architecture flag.  Without it Linux marks the
    // i8042 "firmware absent" and its driver does not probe the ports
    // (unless a PNP0303 device or i8042.nopnp says otherwise).
    bool i8042_present = true;
};

Bytes build_fadt(const FadtConfig& config);

}  // namespace tapvm::acpi
