// Root System Description Pointer, ACPI 6.5 §5.2.5.3: the structure the OS
// finds first (through boot_params.acpi_rsdp_addr, or by scanning
// 0xE0000-0xFFFFF on 16-byte boundaries), pointing at the XSDT.
#pragma once

#include <cstdint>

#include "firmware/acpi/bytes.h"

namespace tapvm::acpi {

inline constexpr size_t kRsdpSize = 36;     // revision 2 (ACPI 2.0+) form
inline constexpr size_t kRsdpV1Size = 20;   // the part the first checksum covers
inline constexpr uint64_t kRsdpAlignment = 16;

// Revision 2, no RSDT (its 32-bit address is 0: every OS that reads
// revision 2 uses the XSDT), both checksums set.
Bytes build_rsdp(uint64_t xsdt_address);

}  // namespace tapvm::acpi
