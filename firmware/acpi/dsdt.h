// Differentiated System Description Table (DSDT), ACPI 6.5 §5.2.11.1: the
// AML namespace of a tapvm machine.
//
//   \_SB.PCI0   PCI Express root bridge (PNP0A08, compatible PNP0A03):
//               bus, I/O and 32-bit MMIO windows in _CRS, and a _PRT that
//               routes INTA-INTD of every slot to layout::pci_intx_gsi()
//   \_SB.COM1   16550 UART (PNP0501) at layout::kCom1Base, IRQ kCom1Irq
//   \_SB.MBRD   motherboard resources (PNP0C02): the ECAM window, so Linux
//               accepts the MCFG, and the sleep/reset ports
//   \_S5_       soft-off: SLP_TYP = layout::kAcpiS5SleepType
#pragma once

#include "firmware/acpi/bytes.h"

namespace tapvm::acpi {

inline constexpr uint8_t kDsdtRevision = 2;  // 64-bit AML integers

// The AML of the namespace above, without the table header.
Bytes build_dsdt_aml();
// The whole table.
Bytes build_dsdt();

}  // namespace tapvm::acpi
