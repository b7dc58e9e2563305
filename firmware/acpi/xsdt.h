// Extended System Description Table, ACPI 6.5 §5.2.8: the 64-bit list of
// every table except the DSDT and FACS (those hang off the FADT).
#pragma once

#include <cstdint>
#include <vector>

#include "firmware/acpi/bytes.h"

namespace tapvm::acpi {

inline constexpr size_t kXsdtEntriesOffset = 36;

Bytes build_xsdt(const std::vector<uint64_t>& table_addresses);

}  // namespace tapvm::acpi
