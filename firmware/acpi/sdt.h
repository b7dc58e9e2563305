// The parts every ACPI System Description Table shares: the 36-byte header
// (ACPI 6.5 §5.2.6), its checksum, and the Generic Address Structure
// (§5.2.3.2) that FADT registers are described with.
#pragma once

#include <cstdint>
#include <string_view>

#include "firmware/acpi/bytes.h"

namespace tapvm::acpi {

// Identity written into every table header (and the RSDP).
inline constexpr std::string_view kOemId = "TAPVM ";        // 6 bytes
inline constexpr std::string_view kOemTableId = "TAPVMACP";  // 8 bytes
inline constexpr uint32_t kOemRevision = 1;
inline constexpr std::string_view kCreatorId = "TAPV";  // 4 bytes
inline constexpr uint32_t kCreatorRevision = 1;

inline constexpr size_t kSdtHeaderSize = 36;
inline constexpr size_t kSdtLengthOffset = 4;
inline constexpr size_t kSdtChecksumOffset = 9;

// A header with length and checksum left zero; finish_table() fills them
// once the body has been appended.  `signature` must be 4 characters.
Bytes start_table(std::string_view signature, uint8_t revision);

// Writes the final length and the checksum (so the whole table sums to 0).
// Throws Error if the table is shorter than a header or longer than 4 GiB.
void finish_table(Bytes& table);

// Generic Address Structure, ACPI 6.5 §5.2.3.2 (Table 5.1).
enum class AddressSpace : uint8_t { kSystemMemory = 0, kSystemIo = 1 };
enum class AccessSize : uint8_t { kUndefined = 0, kByte = 1, kWord = 2, kDword = 3, kQword = 4 };

struct GenericAddress {
    AddressSpace space = AddressSpace::kSystemMemory;
    uint8_t bit_width = 0;
    uint8_t bit_offset = 0;
    AccessSize access_size = AccessSize::kUndefined;
    uint64_t address = 0;
};
inline constexpr size_t kGenericAddressSize = 12;

// An 8-bit register at an I/O port, accessed as a byte.
constexpr GenericAddress io_byte_register(uint16_t port) {
    return {AddressSpace::kSystemIo, 8, 0, AccessSize::kByte, port};
}

void put_gas(Bytes& out, const GenericAddress& gas);

}  // namespace tapvm::acpi
