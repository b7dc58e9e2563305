// The ACPI tables of a tapvm machine, laid out in guest memory.
//
// build_tables() is pure: it returns every table with the guest-physical
// address it will live at, so tests can inspect the bytes.  write_tables()
// copies them into guest memory and returns the RSDP address, for
// boot_params.acpi_rsdp_addr.
//
// Layout inside [layout::kAcpiStart, layout::kAcpiEnd), every table 16-byte
// aligned:  RSDP | DSDT | FADT | MADT | MCFG | XSDT
// The RSDP comes first, on a 16-byte boundary in 0xE0000-0xFFFFF, where the
// legacy RSDP scan also finds it.
#pragma once

#include <cstdint>
#include <string_view>
#include <vector>

#include "firmware/acpi/bytes.h"
#include "vmm/guest_memory.h"
#include "vmm/layout.h"

namespace tapvm::acpi {

struct AcpiConfig {
    unsigned num_cpus = 1;       // 1..kMaxCpus (madt.h)
    bool i8042_present = true;   // see FadtConfig::i8042_present
};

struct PlacedTable {
    std::string_view signature;  // "RSD PTR " for the RSDP, else the 4-byte signature
    Gpa address = 0;
    Bytes bytes;
};

struct AcpiTables {
    Gpa rsdp_address = 0;
    std::vector<PlacedTable> tables;  // in address order

    // The table with this signature, or nullptr.
    const PlacedTable* find(std::string_view signature) const;
};

// Throws UsageError for an impossible config (vCPU count), Error if the
// tables do not fit in [start, end).
AcpiTables build_tables(const AcpiConfig& config, Gpa start = layout::kAcpiStart, Gpa end = layout::kAcpiEnd);

// Copies every table into guest memory; throws Error if any lies outside RAM.
void write_tables(const GuestMemory& memory, const AcpiTables& tables);

// build_tables() + write_tables(); returns the RSDP's guest-physical address.
Gpa write_tables(const GuestMemory& memory, const AcpiConfig& config);

}  // namespace tapvm::acpi
