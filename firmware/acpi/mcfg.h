// PCI Express memory-mapped configuration space table (MCFG), PCI Firmware
// Specification 3.3 §4.1.2: where the ECAM window of each segment lives.
#pragma once

#include "firmware/acpi/bytes.h"

namespace tapvm::acpi {

inline constexpr size_t kMcfgAllocationsOffset = 44;  // after 8 reserved bytes
inline constexpr size_t kMcfgAllocationSize = 16;

// One allocation: layout::kEcamStart, segment 0, buses 0..kPciBusCount-1.
Bytes build_mcfg();

}  // namespace tapvm::acpi
