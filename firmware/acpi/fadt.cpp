#include "firmware/acpi/fadt.h"

#include "firmware/acpi/sdt.h"
#include "vmm/error.h"
#include "vmm/layout.h"

namespace tapvm::acpi {

namespace {

constexpr uint32_t kFlags =
    // WBINVD works (required of every ACPI 2.0+ x86 platform); no fixed
    // power or sleep button; reset through RESET_REG; hardware-reduced.
    kFadtWbinvd | kFadtPowerButtonNotFixed | kFadtSleepButtonNotFixed | kFadtResetRegSupported |
    kFadtHwReducedAcpi;

uint16_t boot_arch_flags(const FadtConfig& config) {
    // COM1 is an ISA-style device; no VGA; the OS must leave ASPM alone;
    // there is no CMOS RTC at ports 0x70/0x71 (the guest gets wall-clock
    // time from kvmclock).  MSI is supported: virtio devices rely on MSI-X.
    uint16_t flags = kBootArchLegacyDevices | kBootArchVgaNotPresent | kBootArchPcieAspmControls |
                     kBootArchCmosRtcNotPresent;
    if (config.i8042_present) flags |= kBootArch8042;
    return flags;
}

void put_zeros(Bytes& out, size_t n) { out.insert(out.end(), n, 0); }

void check_offset(const Bytes& t, size_t expected) {
    if (t.size() != expected) throw Error("acpi: FADT field layout is broken at offset " + std::to_string(expected));
}

}  // namespace

Bytes build_fadt(const FadtConfig& config) {
    Bytes t = start_table("FACP", kFadtRevision);
    put_u32(t, 0);  // FIRMWARE_CTRL: no FACS (allowed when hardware-reduced)
    put_u32(t, 0);  // DSDT: 0, X_DSDT holds the address (§5.2.9: use one)
    put_u8(t, 0);   // Reserved (was INT_MODEL)
    put_u8(t, 0);   // Preferred_PM_Profile: unspecified
    check_offset(t, kFadtSciIntOffset);
    // SCI_INT: unused by a hardware-reduced OS, kept for anything that reads it.
    put_u16(t, layout::kSciIrq);
    put_u32(t, 0);  // SMI_CMD: no SMM, ACPI is always enabled
    put_u8(t, 0);   // ACPI_ENABLE
    put_u8(t, 0);   // ACPI_DISABLE
    put_u8(t, 0);   // S4BIOS_REQ
    put_u8(t, 0);   // PSTATE_CNT
    // PM1a/b_EVT_BLK, PM1a/b_CNT_BLK, PM2_CNT_BLK, PM_TMR_BLK, GPE0/1_BLK
    // (8 x 4 bytes), their lengths and GPE1_BASE, CST_CNT (8 bytes), the
    // C-state latencies, cache flush fields (4 x 2 bytes), duty cycle and
    // RTC alarm fields (5 bytes): all absent on a hardware-reduced platform.
    put_zeros(t, 8 * 4 + 8 + 4 * 2 + 5);
    check_offset(t, kFadtIapcBootArchOffset);
    put_u16(t, boot_arch_flags(config));
    put_u8(t, 0);  // Reserved
    check_offset(t, kFadtFlagsOffset);
    put_u32(t, kFlags);
    put_gas(t, io_byte_register(layout::kAcpiResetReg));  // RESET_REG
    put_u8(t, layout::kAcpiResetValue);                  // RESET_VALUE
    put_u16(t, 0);  // ARM_BOOT_ARCH
    check_offset(t, kFadtMinorVersionOffset);
    put_u8(t, kFadtMinorRevision);
    put_u64(t, 0);  // X_FIRMWARE_CTRL: no FACS
    check_offset(t, kFadtXDsdtOffset);
    put_u64(t, config.dsdt_address);
    // X_PM1a/b_EVT_BLK, X_PM1a/b_CNT_BLK, X_PM2_CNT_BLK, X_PM_TMR_BLK,
    // X_GPE0/1_BLK: absent.
    put_zeros(t, 8 * kGenericAddressSize);
    check_offset(t, kFadtSleepControlOffset);
    put_gas(t, io_byte_register(layout::kAcpiSleepControl));
    put_gas(t, io_byte_register(layout::kAcpiSleepStatus));
    check_offset(t, kFadtHypervisorIdOffset);
    put_chars(t, "TAPVM", 8, '\0');  // Hypervisor Vendor Identity
    check_offset(t, kFadtSize);
    finish_table(t);
    return t;
}

}  // namespace tapvm::acpi
