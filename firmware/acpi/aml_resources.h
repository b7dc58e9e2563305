// Resource descriptors for ResourceTemplate() buffers (ACPI 6.5 §6.4):
// what a _CRS returns.  Only what tapvm's DSDT needs; each function returns
// one complete descriptor, and resource_template() wraps a list of them in
// a Buffer with the End Tag.
//
// The address-space descriptors describe bridge windows: ResourceProducer,
// MinFixed, MaxFixed, PosDecode, granularity 0, no translation, and a
// length of max - min + 1 (§6.4.3.5, Table 6.44: fixed min and max require
// exactly that length).
#pragma once

#include <cstdint>
#include <vector>

#include "firmware/acpi/bytes.h"

namespace tapvm::acpi::aml {

// Memory attribute of a window (_MEM, §6.4.3.5.1 Table 6.50 bits 2:1).
enum class Caching : uint8_t { kNonCacheable = 0, kCacheable = 1, kWriteCombining = 2, kPrefetchable = 3 };

// WordBusNumber(ResourceProducer, MinFixed, MaxFixed, PosDecode, 0, min, max, 0, len)
Bytes word_bus_number(uint16_t min, uint16_t max);
// WordIO(ResourceProducer, MinFixed, MaxFixed, PosDecode, EntireRange, ...)
Bytes word_io(uint16_t min, uint16_t max);
// DWordIO(ResourceProducer, MinFixed, MaxFixed, PosDecode, EntireRange, ...)
Bytes dword_io(uint32_t min, uint32_t max);
// DWordMemory(ResourceProducer, PosDecode, MinFixed, MaxFixed, caching, ReadWrite/ReadOnly, ...)
Bytes dword_memory(uint32_t min, uint32_t max, Caching caching, bool writable);
// QWordMemory(ResourceProducer, PosDecode, MinFixed, MaxFixed, caching, ReadWrite/ReadOnly, ...)
Bytes qword_memory(uint64_t min, uint64_t max, Caching caching, bool writable);
// Memory32Fixed(ReadWrite/ReadOnly, base, length)
Bytes memory32_fixed(uint32_t base, uint32_t length, bool writable);
// IO(Decode16, min, max, alignment, length): I/O ports a device decodes.
Bytes io(uint16_t min, uint16_t max, uint8_t alignment, uint8_t length);
// A fixed port range: IO(Decode16, base, base, 1, length).
Bytes io_port(uint16_t base, uint8_t length);
// IRQNoFlags(){irq}: one ISA IRQ 0-15, edge-triggered, active high.
Bytes irq_no_flags(uint8_t irq);

// Interrupt(ResourceConsumer, Edge/Level, ActiveHigh/ActiveLow, Exclusive/Shared){gsis}
struct ExtendedInterrupt {
    bool edge_triggered = false;
    bool active_low = false;
    bool shared = false;
    std::vector<uint32_t> gsis;  // 1-255 interrupt numbers
};
Bytes extended_interrupt(const ExtendedInterrupt& irq);

// ResourceTemplate(){descriptors}: a Buffer of the descriptors followed by
// the End Tag, whose checksum byte makes the whole template sum to zero.
Bytes resource_template(const std::vector<Bytes>& descriptors);

}  // namespace tapvm::acpi::aml
