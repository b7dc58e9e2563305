// Little-endian byte assembly for ACPI tables and AML.  ACPI stores every
// multi-byte field little-endian (ACPI 6.5 §5.2 "all numeric values ... are
// little-endian"); these helpers write them that way whatever the host is.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

namespace tapvm::acpi {

using Bytes = std::vector<uint8_t>;

// Appends the low `width` bytes of `value`, least significant first.
inline void put_le(Bytes& out, uint64_t value, size_t width) {
    for (size_t i = 0; i < width; ++i) out.push_back(static_cast<uint8_t>(value >> (8 * i)));
}
inline void put_u8(Bytes& out, uint8_t v) { out.push_back(v); }
inline void put_u16(Bytes& out, uint16_t v) { put_le(out, v, 2); }
inline void put_u32(Bytes& out, uint32_t v) { put_le(out, v, 4); }
inline void put_u64(Bytes& out, uint64_t v) { put_le(out, v, 8); }

inline void append(Bytes& out, std::span<const uint8_t> more) {
    out.insert(out.end(), more.begin(), more.end());
}

// Appends exactly `width` characters of `text`, padded with `pad`.  The
// caller guarantees text.size() <= width (fixed-size ID fields).
inline void put_chars(Bytes& out, std::string_view text, size_t width, char pad = ' ') {
    for (size_t i = 0; i < width; ++i) out.push_back(static_cast<uint8_t>(i < text.size() ? text[i] : pad));
}

// Overwrites `width` bytes at `offset` (which must already exist).
inline void patch_le(Bytes& out, size_t offset, uint64_t value, size_t width) {
    for (size_t i = 0; i < width; ++i) out.at(offset + i) = static_cast<uint8_t>(value >> (8 * i));
}

// The value that makes the byte sum of `data` plus itself zero (mod 256):
// the checksum rule of every ACPI table, the RSDP and the AML end tag.
inline uint8_t checksum_for(std::span<const uint8_t> data) {
    uint8_t sum = 0;
    for (uint8_t b : data) sum = static_cast<uint8_t>(sum + b);
    return static_cast<uint8_t>(0x100 - sum);
}

}  // namespace tapvm::acpi
