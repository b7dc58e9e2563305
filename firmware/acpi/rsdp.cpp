#include "firmware/acpi/rsdp.h"

#include "firmware/acpi/sdt.h"

namespace tapvm::acpi {

Bytes build_rsdp(uint64_t xsdt_address) {
    Bytes r;
    put_chars(r, "RSD PTR ", 8);
    put_u8(r, 0);  // Checksum of the first 20 bytes, set below
    put_chars(r, kOemId, 6);
    put_u8(r, 2);  // Revision: ACPI 2.0+ structure with the XSDT address
    put_u32(r, 0);  // RsdtAddress: no RSDT
    put_u32(r, kRsdpSize);
    put_u64(r, xsdt_address);
    put_u8(r, 0);  // Extended Checksum over all 36 bytes, set below
    put_chars(r, "", 3, '\0');  // Reserved
    r[8] = checksum_for(std::span(r).first(kRsdpV1Size));
    r[32] = checksum_for(r);
    return r;
}

}  // namespace tapvm::acpi
