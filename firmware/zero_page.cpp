#include "firmware/zero_page.h"

#include <fmt/format.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "vmm/error.h"
#include "vmm/layout.h"

namespace tapvm::boot {

namespace {

constexpr uint64_t kPageSize = 4096;
// boot.rst: before protocol 2.03 initrd_addr_max is not in the header and
// "the highest address is 0x37FFFFFF"; before 2.06 the command line may be
// at most 255 characters.
constexpr uint64_t kLegacyInitrdAddrMax = 0x37ffffff;
constexpr uint32_t kLegacyCmdlineSize = 255;

std::string mib(uint64_t bytes) { return fmt::format("{:.1f} MiB", bytes / 1048576.0); }

uint32_t low32(uint64_t value) { return static_cast<uint32_t>(value); }
uint32_t high32(uint64_t value) { return static_cast<uint32_t>(value >> 32); }

// The first address above the highest byte the kernel lets the initrd touch.
uint64_t initrd_limit(const MemoryMap& map, const SetupHeader& header) {
    uint64_t addr_max = header.initrd_addr_max ? header.initrd_addr_max : kLegacyInitrdAddrMax;
    return std::min(addr_max + 1, map.low_ram_end);
}

void write_cmdline(const GuestMemory& memory, const SetupHeader& header, std::string_view cmdline) {
    if (cmdline.find('\0') != std::string_view::npos)
        throw UsageError("kernel command line contains a NUL byte");
    uint32_t max = max_cmdline_length(header);
    if (cmdline.size() > max)
        throw UsageError(fmt::format("kernel command line is {} bytes; this kernel accepts at most {}",
                                     cmdline.size(), max));
    std::vector<uint8_t> bytes(cmdline.begin(), cmdline.end());
    bytes.push_back(0);
    if (!memory.write(layout::kCmdlineAddr, bytes))
        throw Error(fmt::format("command line buffer at {:#x} is not guest RAM", layout::kCmdlineAddr));
}

}  // namespace

InitrdPlacement place_initrd(const MemoryMap& map, const LoadedKernel& kernel, uint64_t initrd_size) {
    uint64_t limit = initrd_limit(map, kernel.header);
    uint64_t floor = std::max<uint64_t>(layout::kHighMemStart, (kernel.end + kPageSize - 1) / kPageSize * kPageSize);
    if (initrd_size > limit || (limit - initrd_size) / kPageSize * kPageSize < floor)
        throw UsageError(fmt::format(
            "initramfs of {} does not fit in guest RAM below {:#x} (the kernel needs memory up to {:#x}, "
            "leaving {}); give the guest more memory",
            mib(initrd_size), limit, floor, mib(limit > floor ? limit - floor : 0)));
    return {(limit - initrd_size) / kPageSize * kPageSize, initrd_size};
}

uint32_t max_cmdline_length(const SetupHeader& header) {
    uint32_t kernel_max = header.cmdline_size ? header.cmdline_size : kLegacyCmdlineSize;
    return std::min<uint32_t>(kernel_max, layout::kCmdlineMax - 1);
}

BootParams make_zero_page(const ZeroPageInputs& inputs) {
    if (inputs.e820.size() > kMaxZeroPageE820Entries)
        throw UsageError(fmt::format("{} e820 entries; the zero page holds at most {}", inputs.e820.size(),
                                     kMaxZeroPageE820Entries));
    BootParams params;
    std::memset(&params, 0, sizeof(params));
    params.hdr = inputs.header;
    // boot.rst "Details of header fields": fields marked "write" are the loader's.
    params.hdr.type_of_loader = kLoaderTypeUndefined;
    params.hdr.vid_mode = kVidModeNormal;
    params.hdr.setup_data = 0;  // no setup_data list
    params.hdr.cmd_line_ptr = low32(layout::kCmdlineAddr);
    params.ext_cmd_line_ptr = high32(layout::kCmdlineAddr);
    if (inputs.initrd) {
        params.hdr.ramdisk_image = low32(inputs.initrd->address);
        params.ext_ramdisk_image = high32(inputs.initrd->address);
        params.hdr.ramdisk_size = low32(inputs.initrd->size);
        params.ext_ramdisk_size = high32(inputs.initrd->size);
    } else {
        params.hdr.ramdisk_image = params.hdr.ramdisk_size = 0;
    }
    params.acpi_rsdp_addr = inputs.acpi_rsdp_addr;
    params.e820_entries = static_cast<uint8_t>(inputs.e820.size());
    for (size_t i = 0; i < inputs.e820.size(); ++i) {
        const E820Range& range = inputs.e820[i];
        params.e820_table[i] = {range.addr, range.size, static_cast<uint32_t>(range.type)};
    }
    return params;
}

BootData write_boot_data(const GuestMemory& memory, const LoadedKernel& kernel, const MemoryMap& map,
                         std::string_view cmdline, std::span<const uint8_t> initrd, Gpa acpi_rsdp_addr) {
    write_cmdline(memory, kernel.header, cmdline);

    BootData data;
    if (!initrd.empty()) {
        data.initrd = place_initrd(map, kernel, initrd.size());
        if (!memory.write(data.initrd->address, initrd))
            throw UsageError(fmt::format("initramfs at {:#x} (+{}) is not inside guest RAM",
                                         data.initrd->address, mib(initrd.size())));
    }
    data.zero_page = make_zero_page({kernel.header, map.e820, data.initrd, acpi_rsdp_addr});
    if (!memory.write_obj(layout::kZeroPageAddr, data.zero_page))
        throw Error(fmt::format("zero page at {:#x} is not guest RAM", layout::kZeroPageAddr));
    return data;
}

}  // namespace tapvm::boot
