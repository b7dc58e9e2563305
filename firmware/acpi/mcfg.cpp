#include "firmware/acpi/mcfg.h"

#include "firmware/acpi/sdt.h"
#include "vmm/layout.h"

namespace tapvm::acpi {

// ECAM gives every bus 1 MiB (32 devices x 8 functions x 4 KiB).
static_assert(layout::kPciBusCount >= 1 && layout::kEcamSize == uint64_t{layout::kPciBusCount} << 20,
              "the ECAM window must cover exactly the buses the MCFG declares");

Bytes build_mcfg() {
    Bytes t = start_table("MCFG", 1);
    put_u64(t, 0);  // Reserved
    // Configuration space base address allocation structure (Table 4-3).
    put_u64(t, layout::kEcamStart);  // base address of bus 0's ECAM
    put_u16(t, 0);                   // PCI segment group
    put_u8(t, 0);                    // start bus
    put_u8(t, layout::kPciBusCount - 1);  // end bus
    put_u32(t, 0);                   // Reserved
    finish_table(t);
    return t;
}

}  // namespace tapvm::acpi
