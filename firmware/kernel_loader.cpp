#include "firmware/kernel_loader.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <optional>
#include <utility>
#include <vector>

#include "firmware/bzimage.h"
#include "firmware/elf_loader.h"
#include "vmm/error.h"
#include "vmm/layout.h"

namespace tapvm::boot {

namespace {

// What the kernel's own header says for these fields on x86-64
// (arch/x86/boot/header.S): cmdline_size = COMMAND_LINE_SIZE - 1 with
// COMMAND_LINE_SIZE 2048, and initrd_addr_max 0x7fffffff.
constexpr uint32_t kElfCmdlineSize = 2048 - 1;
constexpr uint32_t kElfInitrdAddrMax = 0x7fffffff;
// The boot protocol whose zero-page fields tapvm fills in (ext_* pointers
// 2.12, setup_data 2.09, acpi_rsdp_addr 2.14/2.15).  The kernel needs a
// non-zero version (x86_64_start_reservations() tests it to see whether
// boot_params was copied) and >= 2.09 to follow setup_data.
constexpr uint16_t kElfBootProtocol = 0x020f;

double milliseconds_since(std::chrono::steady_clock::time_point start) {
    return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
}

LoadedKernel load_elf_kernel(const GuestMemory& memory, std::span<const uint8_t> elf, KernelBootPath path,
                             const SetupHeader& header) {
    ElfImage image = load_elf(memory, elf);
    LoadedKernel kernel;
    kernel.path = path;
    kernel.entry = image.entry;
    kernel.load_address = image.lowest;
    kernel.end = image.end;
    kernel.header = header;
    return kernel;
}

// alignment is a power of two; nullopt if rounding up would wrap.
std::optional<uint64_t> align_up(uint64_t value, uint64_t alignment) {
    if (value > UINT64_MAX - (alignment - 1)) return std::nullopt;
    return (value + alignment - 1) & ~(alignment - 1);
}

// Where the protected-mode kernel goes on path (c).  boot.rst: a relocatable
// kernel may go at any multiple of kernel_alignment (pref_address is where
// it would rather be); a non-relocatable one only at pref_address.  Try the
// preferred place, then the lowest allowed one, so a small guest still boots.
// Never below 1 MiB, where the zero page, page tables and ACPI tables live.
std::optional<Gpa> choose_load_address(const GuestMemory& memory, const BzImage& bz, uint64_t needed) {
    std::vector<std::optional<Gpa>> candidates;
    uint64_t alignment = bz.header.kernel_alignment;
    bool can_align = bz.relocatable() && alignment != 0 && (alignment & (alignment - 1)) == 0;
    if (can_align) {
        candidates.push_back(align_up(bz.preferred_load_address(), alignment));
        candidates.push_back(align_up(kDefaultKernelLoadAddress, alignment));
    } else {
        candidates.push_back(bz.preferred_load_address());
    }
    for (std::optional<Gpa> address : candidates)
        if (address && *address >= layout::kHighMemStart && memory.contains(*address, needed)) return address;
    return std::nullopt;
}

LoadedKernel load_bzimage64(const GuestMemory& memory, const BzImage& bz, PayloadFormat format) {
    if (!bz.has_64bit_entry())
        throw UsageError(fmt::format(
            "this bzImage has no 64-bit entry point (boot protocol {:#06x}, XLF_KERNEL_64 clear) and tapvm "
            "cannot decompress its {} payload",
            bz.version, to_string(format)));
    uint64_t needed = std::max<uint64_t>(bz.protected_mode.size(), bz.init_size());
    std::optional<Gpa> address = choose_load_address(memory, bz, needed);
    if (!address)
        throw UsageError(fmt::format("the kernel needs {} MiB of guest RAM from {:#x} (init_size), which this "
                                     "guest does not have above 1 MiB",
                                     (needed + (1 << 20) - 1) >> 20, bz.preferred_load_address()));
    memory.write(*address, bz.protected_mode);  // inside RAM: checked above

    LoadedKernel kernel;
    kernel.path = KernelBootPath::kBzImage64;
    kernel.payload_format = format;
    kernel.entry = *address + kEntry64Offset;
    kernel.load_address = *address;
    kernel.end = *address + needed;
    kernel.init_size = bz.init_size();
    kernel.header = bz.header;
    return kernel;
}

// Path (b): decompress the payload here and enter the vmlinux ELF directly.
LoadedKernel load_decompressed_bzimage(const GuestMemory& memory, const BzImage& bz, PayloadFormat format) {
    auto start = std::chrono::steady_clock::now();
    HugePageBuffer vmlinux = std::move(*decompress_kernel_payload(bz.payload));
    double decompress_ms = milliseconds_since(start);
    if (!has_elf_magic(vmlinux.bytes()))
        throw UsageError(fmt::format("the bzImage's {} payload does not decompress to an ELF vmlinux",
                                     to_string(format)));
    start = std::chrono::steady_clock::now();
    LoadedKernel kernel =
        load_elf_kernel(memory, vmlinux.bytes(), KernelBootPath::kDecompressedBzImage, bz.header);
    spdlog::info("kernel: {} payload {:.1f} MiB -> vmlinux {:.1f} MiB in {:.0f} ms, loaded in {:.0f} ms, "
                 "entry {:#x}",
                 to_string(format), bz.payload.size() / 1048576.0, vmlinux.size() / 1048576.0, decompress_ms,
                 milliseconds_since(start), kernel.entry);
    kernel.payload_format = format;
    kernel.init_size = bz.init_size();
    return kernel;
}

LoadedKernel load_bzimage(const GuestMemory& memory, std::span<const uint8_t> image,
                          const KernelLoadOptions& options) {
    BzImage bz = parse_bzimage(image);
    PayloadFormat format = identify_payload(bz.payload);
    if (options.decompress_bzimage && can_decompress(format)) return load_decompressed_bzimage(memory, bz, format);
    if (options.decompress_bzimage)
        spdlog::info("kernel payload is {}, which tapvm does not decompress: the kernel will decompress itself",
                     to_string(format));
    return load_bzimage64(memory, bz, format);
}

}  // namespace

const char* to_string(KernelBootPath path) {
    switch (path) {
    case KernelBootPath::kElf: return "ELF vmlinux";
    case KernelBootPath::kDecompressedBzImage: return "bzImage decompressed by tapvm, ELF entry";
    case KernelBootPath::kBzImage64: return "bzImage 64-bit boot protocol";
    }
    return "?";
}

SetupHeader make_elf_setup_header() {
    SetupHeader header{};
    header.boot_flag = kBootFlagMagic;
    header.header = kHdrSMagic;
    header.version = kElfBootProtocol;
    header.type_of_loader = kLoaderTypeUndefined;
    header.loadflags = kLoadedHigh;  // the kernel sits above 1 MiB
    header.xloadflags = kXlfKernel64;
    header.cmdline_size = kElfCmdlineSize;
    header.initrd_addr_max = kElfInitrdAddrMax;
    header.vid_mode = kVidModeNormal;
    return header;
}

LoadedKernel load_kernel(const GuestMemory& memory, std::span<const uint8_t> image_bytes,
                         const KernelLoadOptions& options) {
    if (has_elf_magic(image_bytes))
        return load_elf_kernel(memory, image_bytes, KernelBootPath::kElf, make_elf_setup_header());
    if (has_bzimage_magic(image_bytes)) return load_bzimage(memory, image_bytes, options);
    throw UsageError("kernel image is neither an ELF vmlinux nor a bzImage (no ELF magic, no HdrS at 0x202)");
}

}  // namespace tapvm::boot
