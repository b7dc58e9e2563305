// The guest-physical and port map of a tapvm machine (x86-64).  One place, so
// that e820, ACPI tables, the PCI host bridge and device placement agree.
#pragma once

#include <cstdint>

namespace tapvm::layout {

// --- Low memory, used by the boot path -------------------------------------
inline constexpr uint64_t kGdtAddr = 0x500;          // boot GDT
inline constexpr uint64_t kZeroPageAddr = 0x7000;    // struct boot_params
inline constexpr uint64_t kPageTablesAddr = 0x9000;  // PML4, PDPT, PDs (identity map)
inline constexpr uint64_t kCmdlineAddr = 0x20000;
inline constexpr uint64_t kCmdlineMax = 0x10000;     // 64 KiB, > any COMMAND_LINE_SIZE
inline constexpr uint64_t kEbdaStart = 0x9fc00;      // top of conventional RAM
inline constexpr uint64_t kBiosAreaStart = 0xa0000;  // VGA + BIOS area: not RAM in e820
// ACPI tables live in the BIOS read-only area so that the legacy RSDP scan
// (0xE0000-0xFFFFF) finds them too; boot_params.acpi_rsdp_addr also points there.
inline constexpr uint64_t kAcpiStart = 0xe0000;
inline constexpr uint64_t kAcpiEnd = 0x100000;
inline constexpr uint64_t kHighMemStart = 0x100000;  // 1 MiB: kernel, initrd, RAM

// --- The 32-bit PCI hole: [3 GiB, 4 GiB) is never RAM ---------------------
inline constexpr uint64_t kPciHoleStart = 0xc0000000;
inline constexpr uint64_t kPciHoleEnd = 0x100000000;
// Window the VMM assigns 32-bit BARs from (and the guest may move them in).
inline constexpr uint64_t kPciMmio32Start = 0xc0000000;
inline constexpr uint64_t kPciMmio32Size = 0x20000000;  // 512 MiB
// PCI Express enhanced configuration (ECAM), bus 0 only: 1 MiB.
inline constexpr uint64_t kEcamStart = 0xe0000000;
inline constexpr uint64_t kEcamSize = 0x100000;
inline constexpr uint8_t kPciBusCount = 1;
inline constexpr uint64_t kIoapicAddr = 0xfec00000;
inline constexpr uint64_t kLapicAddr = 0xfee00000;

// --- Port I/O ----------------------------------------------------------------
inline constexpr uint16_t kI8042Data = 0x60;
inline constexpr uint16_t kI8042Command = 0x64;
inline constexpr uint16_t kCom1Base = 0x3f8;
inline constexpr uint8_t kCom1Irq = 4;
inline constexpr uint8_t kI8042Irq = 1;
inline constexpr uint8_t kI8042AuxIrq = 12;  // the (empty) mouse port
inline constexpr uint16_t kPciConfigAddress = 0xcf8;  // mechanism #1, 8 bytes
// Hardware-reduced ACPI: sleep control (write SLP_TYPx|SLP_EN) and status.
inline constexpr uint16_t kAcpiSleepControl = 0x600;
inline constexpr uint16_t kAcpiSleepStatus = 0x601;
inline constexpr uint16_t kAcpiResetReg = 0x602;     // FADT RESET_REG
inline constexpr uint8_t kAcpiResetValue = 0x1;
inline constexpr uint8_t kAcpiS5SleepType = 5;       // \_S5 package value
// pvpanic (ACPI "QEMU0001"): the guest kernel writes here when it panics.
inline constexpr uint16_t kPvpanicPort = 0x505;
// PCI port I/O window for I/O BARs (legacy virtio).
inline constexpr uint16_t kPciIoStart = 0x1000;
inline constexpr uint16_t kPciIoSize = 0x1000;

// --- Interrupts ---------------------------------------------------------------
inline constexpr uint32_t kIoapicPins = 24;
inline constexpr uint8_t kSciIrq = 9;
// PCI INTx routing: pins INTA..INTD of device `slot` share GSIs 16..23 with
// the usual swizzle.  The DSDT's _PRT and the config-space Interrupt Line
// both come from this function.
inline constexpr uint32_t pci_intx_gsi(uint32_t slot, uint32_t pin /*0=INTA*/) {
    return 16 + ((slot + pin) % 8);
}

}  // namespace tapvm::layout
