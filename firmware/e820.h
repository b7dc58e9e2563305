// The guest's physical memory map, made once from the RAM size and
// vmm/layout.h: the RAM regions GuestMemory maps and the e820 table the
// kernel is told about come from the same function, so they cannot disagree.
//
//   [0, 0x9fc00)            RAM (conventional memory: zero page, GDT, page tables, cmdline)
//   [0x9fc00, 0xa0000)      reserved (where a PC's EBDA would be)
//   [0xa0000, 0xe0000)      not listed: VGA window and option ROMs on a PC
//   [0xe0000, 0x100000)     reserved: BIOS area, where the ACPI tables live
//   [1 MiB, low_end)        RAM, low_end = min(ram_size, 3 GiB)
//   [3 GiB, 4 GiB)          PCI hole, never RAM; the ECAM window in it is listed reserved
//   [4 GiB, 4 GiB + rest)   RAM above the hole, when ram_size > 3 GiB
//
// GuestMemory backs [0, low_end) as one region, the BIOS area included
// (tapvm writes the ACPI tables there), and [4 GiB, ...) as a second.
#pragma once

#include <cstdint>
#include <vector>

#include "firmware/boot_params.h"
#include "vmm/guest_memory.h"

namespace tapvm::boot {

// e820 entry types (ACPI 6.5 §15, "Address Range Types").
enum class E820Type : uint32_t {
    kRam = 1,
    kReserved = 2,
    kAcpi = 3,       // ACPI reclaimable
    kNvs = 4,
    kUnusable = 5,
};

// One e820 range.  Not the packed 20-byte zero-page entry (boot_params.h):
// naturally aligned, so it can be used like any value.
struct E820Range {
    uint64_t addr = 0;
    uint64_t size = 0;
    E820Type type = E820Type::kRam;
    bool operator==(const E820Range&) const = default;
};

struct MemoryMap {
    uint64_t ram_size = 0;
    Gpa low_ram_end = 0;              // end of RAM below the PCI hole
    std::vector<GuestRange> ram;      // for GuestMemory, sorted
    std::vector<E820Range> e820;      // for the zero page, sorted, disjoint
};

// Smallest guest tapvm builds a map for: RAM must reach past 1 MiB.
inline constexpr uint64_t kMinRamSize = 2ull << 20;

// Throws UsageError when ram_size is below kMinRamSize or not a multiple of
// 4 KiB.
MemoryMap build_memory_map(uint64_t ram_size);

}  // namespace tapvm::boot
