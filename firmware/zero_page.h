// The zero page (struct boot_params) and what it points at: the kernel
// command line and the initrd (Documentation/arch/x86/boot.rst,
// zero-page.rst).
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string_view>
#include <vector>

#include "firmware/boot_params.h"
#include "firmware/e820.h"
#include "firmware/kernel_loader.h"
#include "vmm/guest_memory.h"

namespace tapvm::boot {

struct InitrdPlacement {
    Gpa address = 0;
    uint64_t size = 0;
};

// Where the initrd goes: as high as possible (boot.rst recommends the top of
// memory, away from the kernel's in-place decompression) but below
// min(initrd_addr_max + 1, end of RAM below the PCI hole), 4 KiB-aligned, and
// above everything the kernel needs (kernel.end).  tapvm keeps it below
// 4 GiB even for kernels with XLF_CAN_BE_LOADED_ABOVE_4G: low RAM is where
// every kernel can reach it.  Throws UsageError("initramfs of N MiB does not
// fit in guest RAM below X ...") when there is no room.
InitrdPlacement place_initrd(const MemoryMap& map, const LoadedKernel& kernel, uint64_t initrd_size);

struct ZeroPageInputs {
    SetupHeader header{};                  // the kernel's (LoadedKernel::header)
    std::vector<E820Range> e820;           // at most 128 entries
    std::optional<InitrdPlacement> initrd;
    Gpa acpi_rsdp_addr = 0;                // 0: the kernel scans for the RSDP itself
};

// The longest command line the kernel accepts (hdr.cmdline_size, which
// excludes the terminating NUL) that also fits tapvm's buffer.
uint32_t max_cmdline_length(const SetupHeader& header);

// Builds the page in host memory: every field not listed here is zero
// (which also keeps boot_params.sentinel 0, so the kernel trusts it).
// Throws UsageError if the e820 table has more than 128 entries.
BootParams make_zero_page(const ZeroPageInputs& inputs);

struct BootData {
    std::optional<InitrdPlacement> initrd;
    BootParams zero_page{};
};

// Writes the command line at layout::kCmdlineAddr, the initrd (if not empty)
// where place_initrd() puts it, and the zero page at layout::kZeroPageAddr.
// Throws UsageError when the command line is too long for the kernel or
// contains a NUL byte, or the initrd does not fit.
BootData write_boot_data(const GuestMemory& memory, const LoadedKernel& kernel, const MemoryMap& map,
                         std::string_view cmdline, std::span<const uint8_t> initrd, Gpa acpi_rsdp_addr);

}  // namespace tapvm::boot
