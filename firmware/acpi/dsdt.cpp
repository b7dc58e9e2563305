#include "firmware/acpi/dsdt.h"

#include "firmware/acpi/aml.h"
#include "firmware/acpi/aml_resources.h"
#include "firmware/acpi/sdt.h"
#include "vmm/layout.h"

namespace tapvm::acpi {

namespace {

using namespace aml;
namespace L = layout;

// Ports 0xCF8-0xCFF: PCI configuration mechanism #1, decoded by the host
// bridge itself.  No I/O window may include them.
constexpr uint16_t kConfigPortsFirst = L::kPciConfigAddress;
constexpr uint16_t kConfigPortsLast = L::kPciConfigAddress + 7;
constexpr uint32_t kPciIoEnd = uint32_t{L::kPciIoStart} + L::kPciIoSize;  // exclusive

static_assert(L::kPciIoStart > kConfigPortsLast && kPciIoEnd <= 0x10000,
              "the BAR I/O window must lie above the config ports and inside 64 KiB");
static_assert(L::kPciMmio32Start + L::kPciMmio32Size <= L::kEcamStart ||
                  L::kEcamStart + L::kEcamSize <= L::kPciMmio32Start,
              "ECAM must not overlap the 32-bit MMIO window");
static_assert(L::kPciMmio32Start + L::kPciMmio32Size <= 0x100000000ull);
static_assert(L::kAcpiSleepStatus == L::kAcpiSleepControl + 1 && L::kAcpiResetReg == L::kAcpiSleepControl + 2,
              "MBRD reserves the sleep and reset registers as one 3-port range");

// The I/O space below the root bridge is every port except the config
// ports, as QEMU and Cloud Hypervisor declare it, so legacy devices (COM1,
// i8042, the ACPI registers) sit under the bridge.  The range above the
// config ports is split around the BAR window so that window is an entry of
// its own; together the entries cover 0x0000-0xCF7 and 0x0D00-0xFFFF.
std::vector<Bytes> io_windows() {
    return {
        word_io(0x0000, kConfigPortsFirst - 1),
        word_io(kConfigPortsLast + 1, L::kPciIoStart - 1),
        word_io(L::kPciIoStart, static_cast<uint16_t>(kPciIoEnd - 1)),
        word_io(static_cast<uint16_t>(kPciIoEnd), 0xffff),
    };
}

Bytes pci0_resources() {
    std::vector<Bytes> r;
    r.push_back(word_bus_number(0, L::kPciBusCount - 1));
    // The config ports are consumed by the bridge (Linux drops this entry
    // from the windows it builds, see resource_is_pcicfg_ioport()).
    r.push_back(io_port(kConfigPortsFirst, 8));
    for (auto& w : io_windows()) r.push_back(std::move(w));
    r.push_back(dword_memory(static_cast<uint32_t>(L::kPciMmio32Start),
                             static_cast<uint32_t>(L::kPciMmio32Start + L::kPciMmio32Size - 1),
                             Caching::kNonCacheable, true));
    return resource_template(r);
}

// _PRT (ACPI 6.5 §6.2.13): one entry per (slot, pin).  Address 0xSSSSFFFF
// names device SSSS, any function; Source 0 means SourceIndex is a GSI.
Bytes pci_routing_table() {
    std::vector<Bytes> entries;
    for (uint32_t slot = 0; slot < 32; ++slot)
        for (uint32_t pin = 0; pin < 4; ++pin)
            entries.push_back(package({integer((slot << 16) | 0xffff), integer(pin), zero(),
                                       integer(L::pci_intx_gsi(slot, pin))}));
    return package(entries);
}

Bytes pci0() {
    return device("PCI0", {
        name("_HID", eisa_id("PNP0A08")),  // PCI Express root bridge
        name("_CID", eisa_id("PNP0A03")),  // ... compatible with a PCI bridge
        name("_SEG", zero()),
        name("_UID", zero()),
        name("_BBN", zero()),
        name("_CRS", pci0_resources()),
        name("_PRT", pci_routing_table()),
    });
}

Bytes com1() {
    return device("COM1", {
        name("_HID", eisa_id("PNP0501")),  // 16550A-compatible UART
        name("_UID", one()),
        name("_CRS", resource_template({io_port(L::kCom1Base, 8), irq_no_flags(L::kCom1Irq)})),
    });
}

// Motherboard resources.  Linux uses the MCFG's ECAM window only if it is
// reserved here or in e820 (pci_mmcfg_check_reserved()); reserving the ACPI
// ports keeps anything else from claiming them.
Bytes motherboard() {
    return device("MBRD", {
        name("_HID", eisa_id("PNP0C02")),
        name("_UID", zero()),
        name("_CRS", resource_template({
                         memory32_fixed(static_cast<uint32_t>(L::kEcamStart),
                                        static_cast<uint32_t>(L::kEcamSize), true),
                         io_port(L::kAcpiSleepControl, 3),
                     })),
    });
}

// pvpanic (QEMU docs/specs/pvpanic.rst): Linux's pvpanic-mmio driver binds
// "QEMU0001" and accepts an I/O resource; on a panic it writes PANICKED to
// the port, which is how tapvm tells a crash from a reboot.
Bytes pvpanic() {
    return device("PEVT", {
        name("_HID", string("QEMU0001")),
        name("_UID", zero()),
        name("_CRS", resource_template({io_port(L::kPvpanicPort, 1)})),
    });
}

// \_S5_: Package {SLP_TYPa, SLP_TYPb, reserved, reserved} (§7.4.2).  A
// hardware-reduced OS writes only SLP_TYPa, to SLEEP_CONTROL_REG.
Bytes soft_off_state() {
    return name("\\_S5", package({integer(L::kAcpiS5SleepType), zero(), zero(), zero()}));
}

}  // namespace

Bytes build_dsdt_aml() {
    return terms({
        scope("\\_SB", {pci0(), com1(), motherboard(), pvpanic()}),
        soft_off_state(),
    });
}

Bytes build_dsdt() {
    Bytes t = start_table("DSDT", kDsdtRevision);
    append(t, build_dsdt_aml());
    finish_table(t);
    return t;
}

}  // namespace tapvm::acpi
