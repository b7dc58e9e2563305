#include "firmware/acpi/xsdt.h"

#include "firmware/acpi/sdt.h"

namespace tapvm::acpi {

Bytes build_xsdt(const std::vector<uint64_t>& table_addresses) {
    Bytes t = start_table("XSDT", 1);
    for (uint64_t a : table_addresses) put_u64(t, a);
    finish_table(t);
    return t;
}

}  // namespace tapvm::acpi
