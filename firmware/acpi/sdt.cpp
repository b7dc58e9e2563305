#include "firmware/acpi/sdt.h"

#include <limits>

#include "vmm/error.h"

namespace tapvm::acpi {

Bytes start_table(std::string_view signature, uint8_t revision) {
    if (signature.size() != 4) throw Error("acpi: table signature must be 4 characters");
    Bytes t;
    t.reserve(kSdtHeaderSize);
    put_chars(t, signature, 4);
    put_u32(t, 0);  // Length, set by finish_table()
    put_u8(t, revision);
    put_u8(t, 0);  // Checksum, set by finish_table()
    put_chars(t, kOemId, 6);
    put_chars(t, kOemTableId, 8);
    put_u32(t, kOemRevision);
    put_chars(t, kCreatorId, 4);
    put_u32(t, kCreatorRevision);
    return t;
}

void finish_table(Bytes& table) {
    if (table.size() < kSdtHeaderSize || table.size() > std::numeric_limits<uint32_t>::max())
        throw Error("acpi: table of " + std::to_string(table.size()) + " bytes has no valid length");
    patch_le(table, kSdtLengthOffset, table.size(), 4);
    table[kSdtChecksumOffset] = 0;
    table[kSdtChecksumOffset] = checksum_for(table);
}

void put_gas(Bytes& out, const GenericAddress& gas) {
    put_u8(out, static_cast<uint8_t>(gas.space));
    put_u8(out, gas.bit_width);
    put_u8(out, gas.bit_offset);
    put_u8(out, static_cast<uint8_t>(gas.access_size));
    put_u64(out, gas.address);
}

}  // namespace tapvm::acpi
