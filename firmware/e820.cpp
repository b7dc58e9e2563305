#include "firmware/e820.h"

#include <fmt/format.h>

#include <algorithm>

#include "vmm/error.h"
#include "vmm/layout.h"

namespace tapvm::boot {

namespace {

constexpr uint64_t kPageSize = 4096;

void add(MemoryMap& map, uint64_t start, uint64_t end, E820Type type) {
    if (end > start) map.e820.push_back({start, end - start, type});
}

}  // namespace

MemoryMap build_memory_map(uint64_t ram_size) {
    if (ram_size < kMinRamSize || ram_size % kPageSize)
        throw UsageError(fmt::format("guest RAM of {} bytes: need a multiple of 4 KiB and at least {} MiB",
                                     ram_size, kMinRamSize >> 20));
    static_assert(layout::kPciHoleEnd > layout::kPciHoleStart);
    static_assert(layout::kEbdaStart < layout::kBiosAreaStart && layout::kAcpiEnd == layout::kHighMemStart);

    MemoryMap map;
    map.ram_size = ram_size;
    map.low_ram_end = std::min(ram_size, layout::kPciHoleStart);
    uint64_t high_ram = ram_size - map.low_ram_end;

    map.ram.push_back({0, map.low_ram_end});
    if (high_ram) map.ram.push_back({layout::kPciHoleEnd, high_ram});

    add(map, 0, layout::kEbdaStart, E820Type::kRam);
    add(map, layout::kEbdaStart, layout::kBiosAreaStart, E820Type::kReserved);
    add(map, layout::kAcpiStart, layout::kAcpiEnd, E820Type::kReserved);
    add(map, layout::kHighMemStart, map.low_ram_end, E820Type::kRam);
    // Linux uses the MCFG (ECAM) window only if firmware reserves it, in e820
    // or in ACPI motherboard resources (arch/x86/pci/mmconfig-shared.c).
    add(map, layout::kEcamStart, layout::kEcamStart + layout::kEcamSize, E820Type::kReserved);
    if (high_ram) add(map, layout::kPciHoleEnd, layout::kPciHoleEnd + high_ram, E820Type::kRam);
    return map;
}

}  // namespace tapvm::boot
