#include "firmware/acpi/aml_resources.h"

#include <string>

#include "firmware/acpi/aml.h"
#include "vmm/error.h"

namespace tapvm::acpi::aml {

namespace {

// Large resource item names (§6.4.3): the first byte is 0x80 | name, then a
// 16-bit length of the data that follows the 3-byte header.
constexpr uint8_t kLargeMemory32Fixed = 0x86;
constexpr uint8_t kLargeDWordAddress = 0x87;
constexpr uint8_t kLargeWordAddress = 0x88;
constexpr uint8_t kLargeExtendedInterrupt = 0x89;
constexpr uint8_t kLargeQWordAddress = 0x8a;
// Small items (§6.4.2): bits 6:3 the name, bits 2:0 the data length.
constexpr uint8_t kSmallIrqNoFlags = (0x04 << 3) | 2;  // 0x22
constexpr uint8_t kSmallIo = (0x08 << 3) | 7;          // 0x47
constexpr uint8_t kSmallEndTag = (0x0f << 3) | 1;      // 0x79

// Address space Resource Type (§6.4.3.5.1 Table 6.48).
constexpr uint8_t kTypeMemory = 0;
constexpr uint8_t kTypeIo = 1;
constexpr uint8_t kTypeBusNumber = 2;
// General flags: bit 0 ResourceProducer (0), bit 1 PosDecode (0),
// bit 2 _MIF (min fixed), bit 3 _MAF (max fixed).
constexpr uint8_t kProducerMinMaxFixed = 0x0c;
// I/O type-specific flags: _RNG = 3, EntireRange (ISA and non-ISA ports).
constexpr uint8_t kIoEntireRange = 0x03;

uint8_t memory_flags(Caching caching, bool writable) {
    // bit 0 _RW, bits 2:1 _MEM, bits 4:3 _MTP = AddressRangeMemory (0).
    return static_cast<uint8_t>((writable ? 1 : 0) | (static_cast<uint8_t>(caching) << 1));
}

void check_range(uint64_t min, uint64_t max, const char* what) {
    if (min > max) throw Error(std::string("aml: ") + what + " window has min > max");
}

// One address space descriptor with fields of `width` bytes (2, 4 or 8):
// granularity, min, max, translation offset, length.
Bytes address_space(uint8_t item, size_t width, uint8_t type, uint8_t type_flags, uint64_t min, uint64_t max) {
    Bytes out{item};
    put_u16(out, static_cast<uint16_t>(3 + 5 * width));  // bytes after the length field
    put_u8(out, type);
    put_u8(out, kProducerMinMaxFixed);
    put_u8(out, type_flags);
    put_le(out, 0, width);    // _GRA: 0, the window is fixed
    put_le(out, min, width);  // _MIN
    put_le(out, max, width);  // _MAX
    put_le(out, 0, width);    // _TRA: no translation
    put_le(out, max - min + 1, width);  // _LEN
    return out;
}

}  // namespace

Bytes word_bus_number(uint16_t min, uint16_t max) {
    check_range(min, max, "bus number");
    return address_space(kLargeWordAddress, 2, kTypeBusNumber, 0, min, max);
}

Bytes word_io(uint16_t min, uint16_t max) {
    check_range(min, max, "I/O");
    return address_space(kLargeWordAddress, 2, kTypeIo, kIoEntireRange, min, max);
}

Bytes dword_io(uint32_t min, uint32_t max) {
    check_range(min, max, "I/O");
    return address_space(kLargeDWordAddress, 4, kTypeIo, kIoEntireRange, min, max);
}

Bytes dword_memory(uint32_t min, uint32_t max, Caching caching, bool writable) {
    check_range(min, max, "memory");
    return address_space(kLargeDWordAddress, 4, kTypeMemory, memory_flags(caching, writable), min, max);
}

Bytes qword_memory(uint64_t min, uint64_t max, Caching caching, bool writable) {
    check_range(min, max, "memory");
    // The length max - min + 1 must itself fit in 64 bits.
    if (min == 0 && max == UINT64_MAX) throw Error("aml: a QWord window cannot span all 2^64 bytes");
    return address_space(kLargeQWordAddress, 8, kTypeMemory, memory_flags(caching, writable), min, max);
}

Bytes memory32_fixed(uint32_t base, uint32_t length, bool writable) {
    if (length == 0 || base + uint64_t{length} - 1 > UINT32_MAX)
        throw Error("aml: Memory32Fixed range is empty or crosses 4 GiB");
    Bytes out{kLargeMemory32Fixed};
    put_u16(out, 9);
    put_u8(out, writable ? 1 : 0);
    put_u32(out, base);
    put_u32(out, length);
    return out;
}

Bytes io(uint16_t min, uint16_t max, uint8_t alignment, uint8_t length) {
    check_range(min, max, "IO descriptor");
    Bytes out{kSmallIo};
    put_u8(out, 1);  // _DEC: decodes all 16 address bits
    put_u16(out, min);
    put_u16(out, max);
    put_u8(out, alignment);
    put_u8(out, length);
    return out;
}

Bytes io_port(uint16_t base, uint8_t length) { return io(base, base, 1, length); }

Bytes irq_no_flags(uint8_t irq) {
    if (irq > 15) throw Error("aml: IRQNoFlags takes an ISA IRQ 0-15");
    Bytes out{kSmallIrqNoFlags};
    put_u16(out, static_cast<uint16_t>(1u << irq));
    return out;
}

Bytes extended_interrupt(const ExtendedInterrupt& irq) {
    if (irq.gsis.empty() || irq.gsis.size() > 255)
        throw Error("aml: an Interrupt descriptor lists 1-255 interrupts");
    Bytes out{kLargeExtendedInterrupt};
    put_u16(out, static_cast<uint16_t>(2 + 4 * irq.gsis.size()));
    // bit 0 ResourceConsumer, bit 1 edge (1) / level (0), bit 2 active low,
    // bit 3 shared.
    put_u8(out, static_cast<uint8_t>(0x01 | (irq.edge_triggered ? 0x02 : 0) | (irq.active_low ? 0x04 : 0) |
                                     (irq.shared ? 0x08 : 0)));
    put_u8(out, static_cast<uint8_t>(irq.gsis.size()));
    for (uint32_t gsi : irq.gsis) put_u32(out, gsi);
    return out;
}

Bytes resource_template(const std::vector<Bytes>& descriptors) {
    Bytes data = terms(descriptors);
    data.push_back(kSmallEndTag);
    data.push_back(checksum_for(data));  // §6.4.2.9: the template sums to zero
    return buffer(data);
}

}  // namespace tapvm::acpi::aml
