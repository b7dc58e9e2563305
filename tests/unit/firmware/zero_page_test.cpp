#include "firmware/zero_page.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>

#include "vmm/error.h"
#include "vmm/layout.h"

namespace tapvm::boot {
namespace {

// Copies a (possibly packed, misaligned) field so gtest can bind a reference to it.
template <class T>
T val(T value) {
    return value;
}

using ::testing::HasSubstr;
using Bytes = std::vector<uint8_t>;

constexpr uint64_t MiB = 1ull << 20;
constexpr uint64_t GiB = 1ull << 30;

LoadedKernel kernel_ending_at(Gpa end) {
    LoadedKernel k;
    k.path = KernelBootPath::kElf;
    k.entry = 0x1000000;
    k.load_address = 0x1000000;
    k.end = end;
    k.header = make_elf_setup_header();
    return k;
}

std::string placement_error(const MemoryMap& map, const LoadedKernel& kernel, uint64_t size) {
    try {
        place_initrd(map, kernel, size);
    } catch (const UsageError& e) {
        return e.what();
    }
    return "";
}

// --- Initrd placement -------------------------------------------------------------

TEST(InitrdPlacement, GoesToTheTopOfLowRamPageAligned) {
    MemoryMap map = build_memory_map(256 * MiB);
    InitrdPlacement p = place_initrd(map, kernel_ending_at(0x2000000), 10 * MiB + 123);
    EXPECT_EQ(p.size, 10 * MiB + 123);
    EXPECT_EQ(p.address % 4096, 0u);
    EXPECT_LE(p.address + p.size, 256 * MiB);
    EXPECT_GT(p.address + p.size, 256 * MiB - 4096);  // as high as alignment allows
}

TEST(InitrdPlacement, StaysBelowInitrdAddrMax) {
    MemoryMap map = build_memory_map(256 * MiB);
    LoadedKernel k = kernel_ending_at(0x2000000);
    k.header.initrd_addr_max = 0x7ffffff;  // 128 MiB - 1
    InitrdPlacement p = place_initrd(map, k, 1 * MiB);
    EXPECT_EQ(p.address, 127 * MiB);
    EXPECT_LE(p.address + p.size - 1, val(k.header.initrd_addr_max));
}

TEST(InitrdPlacement, ZeroInitrdAddrMaxMeansTheOldDefault) {
    MemoryMap map = build_memory_map(2 * GiB);
    LoadedKernel k = kernel_ending_at(0x2000000);
    k.header.initrd_addr_max = 0;
    InitrdPlacement p = place_initrd(map, k, 1 * MiB);
    EXPECT_EQ(p.address + p.size, 0x38000000u);
}

TEST(InitrdPlacement, StaysBelowThePciHoleEvenWhenTheKernelAllowsMore) {
    MemoryMap map = build_memory_map(8 * GiB);
    LoadedKernel k = kernel_ending_at(0x2000000);
    k.header.initrd_addr_max = 0xffffffff;
    k.header.xloadflags |= kXlfCanBeLoadedAbove4G;
    InitrdPlacement p = place_initrd(map, k, 64 * MiB);
    EXPECT_LE(p.address + p.size, layout::kPciHoleStart);
    EXPECT_EQ(p.address, layout::kPciHoleStart - 64 * MiB);
}

TEST(InitrdPlacement, MayEndExactlyWhereTheKernelEndsAbove) {
    MemoryMap map = build_memory_map(64 * MiB);
    // Room for exactly 32 MiB between kernel end and top of RAM.
    EXPECT_EQ(place_initrd(map, kernel_ending_at(32 * MiB), 32 * MiB).address, 32 * MiB);
}

TEST(InitrdPlacement, DoesNotOverlapTheKernel) {
    MemoryMap map = build_memory_map(64 * MiB);
    // Kernel ends mid-page: the initrd must start on the next page.
    LoadedKernel k = kernel_ending_at(32 * MiB + 1);
    std::string error = placement_error(map, k, 32 * MiB);
    EXPECT_THAT(error, HasSubstr("initramfs of 32.0 MiB does not fit in guest RAM below 0x4000000"));
    EXPECT_EQ(place_initrd(map, k, 32 * MiB - 4096).address, 32 * MiB + 4096);
}

TEST(InitrdPlacement, TooLargeForRamIsAnError) {
    MemoryMap map = build_memory_map(64 * MiB);
    EXPECT_THAT(placement_error(map, kernel_ending_at(0x2000000), 100 * MiB), HasSubstr("does not fit"));
    EXPECT_THAT(placement_error(map, kernel_ending_at(0x2000000), ~0ull), HasSubstr("does not fit"));
}

TEST(InitrdPlacement, RespectsInitSizeOfTheBzImagePath) {
    MemoryMap map = build_memory_map(64 * MiB);
    LoadedKernel k = kernel_ending_at(0);
    k.path = KernelBootPath::kBzImage64;
    k.load_address = 16 * MiB;
    k.end = 16 * MiB + 0x3378000;  // Debian's init_size: ~51 MiB
    EXPECT_THAT(placement_error(map, k, 4 * MiB), HasSubstr("does not fit"));
}

// --- The page itself ----------------------------------------------------------------

TEST(ZeroPage, FillsLoaderFieldsOverTheKernelHeader) {
    MemoryMap map = build_memory_map(256 * MiB);
    ZeroPageInputs in;
    in.header = make_elf_setup_header();
    in.header.vid_mode = 0x1234;
    in.header.type_of_loader = 0x42;
    in.header.setup_data = 0xdead;
    in.header.cmdline_size = 999;
    in.e820 = map.e820;
    in.initrd = InitrdPlacement{0x5000000, 0x123456};
    in.acpi_rsdp_addr = 0xe0000;

    BootParams bp = make_zero_page(in);
    EXPECT_EQ(val(bp.hdr.type_of_loader), 0xff);
    EXPECT_EQ(val(bp.hdr.vid_mode), 0xffff);
    EXPECT_EQ(val(bp.hdr.setup_data), 0u);
    EXPECT_EQ(val(bp.hdr.cmdline_size), 999u);           // the kernel's field is kept
    EXPECT_EQ(val(bp.hdr.header), kHdrSMagic);
    EXPECT_EQ(val(bp.hdr.cmd_line_ptr), layout::kCmdlineAddr);
    EXPECT_EQ(val(bp.ext_cmd_line_ptr), 0u);
    EXPECT_EQ(val(bp.hdr.ramdisk_image), 0x5000000u);
    EXPECT_EQ(val(bp.hdr.ramdisk_size), 0x123456u);
    EXPECT_EQ(val(bp.ext_ramdisk_image), 0u);
    EXPECT_EQ(val(bp.ext_ramdisk_size), 0u);
    EXPECT_EQ(val(bp.acpi_rsdp_addr), 0xe0000u);
    EXPECT_EQ(val(bp.sentinel), 0);
    ASSERT_EQ(val(bp.e820_entries), map.e820.size());
    for (size_t i = 0; i < map.e820.size(); ++i) {
        EXPECT_EQ(val(bp.e820_table[i].addr), map.e820[i].addr);
        EXPECT_EQ(val(bp.e820_table[i].size), map.e820[i].size);
        EXPECT_EQ(val(bp.e820_table[i].type), static_cast<uint32_t>(map.e820[i].type));
    }
}

TEST(ZeroPage, InitrdAbove4GiBUsesTheExtFields) {
    ZeroPageInputs in;
    in.header = make_elf_setup_header();
    in.initrd = InitrdPlacement{0x1'2345'6000, 0x2'0000'0010};
    BootParams bp = make_zero_page(in);
    EXPECT_EQ(val(bp.hdr.ramdisk_image), 0x23456000u);
    EXPECT_EQ(val(bp.ext_ramdisk_image), 1u);
    EXPECT_EQ(val(bp.hdr.ramdisk_size), 0x10u);
    EXPECT_EQ(val(bp.ext_ramdisk_size), 2u);
}

TEST(ZeroPage, NoInitrdClearsTheRamdiskFields) {
    ZeroPageInputs in;
    in.header = make_elf_setup_header();
    in.header.ramdisk_image = 0x1000;
    in.header.ramdisk_size = 0x1000;
    BootParams bp = make_zero_page(in);
    EXPECT_EQ(val(bp.hdr.ramdisk_image), 0u);
    EXPECT_EQ(val(bp.hdr.ramdisk_size), 0u);
}

TEST(ZeroPage, TooManyE820EntriesIsAnError) {
    ZeroPageInputs in;
    in.e820.resize(kMaxZeroPageE820Entries + 1);
    EXPECT_THROW(make_zero_page(in), UsageError);
    in.e820.resize(kMaxZeroPageE820Entries);
    EXPECT_EQ(make_zero_page(in).e820_entries, kMaxZeroPageE820Entries);
}

// --- Writing it all into guest memory ---------------------------------------------

class BootDataWrite : public ::testing::Test {
protected:
    MemoryMap map_ = build_memory_map(128 * MiB);
    GuestMemory memory_{map_.ram};
    LoadedKernel kernel_ = kernel_ending_at(0x1800000);

    std::string guest_string(Gpa gpa) {
        std::string s;
        for (char c; memory_.read(gpa + s.size(), {reinterpret_cast<uint8_t*>(&c), 1}) && c;) s += c;
        return s;
    }
    std::string write_error(std::string_view cmdline, const Bytes& initrd = {}) {
        try {
            write_boot_data(memory_, kernel_, map_, cmdline, initrd, 0);
        } catch (const UsageError& e) {
            return e.what();
        }
        return "";
    }
};

TEST_F(BootDataWrite, WritesCommandLineInitrdAndZeroPage) {
    Bytes initrd(3 * MiB + 17, 0x5a);
    auto data = write_boot_data(memory_, kernel_, map_, "console=ttyS0 root=/dev/vda", initrd, 0xe0000);

    EXPECT_EQ(guest_string(layout::kCmdlineAddr), "console=ttyS0 root=/dev/vda");
    ASSERT_TRUE(data.initrd.has_value());
    Bytes in_guest(initrd.size());
    ASSERT_TRUE(memory_.read(data.initrd->address, in_guest));
    EXPECT_EQ(in_guest, initrd);

    auto page = memory_.read_obj<BootParams>(layout::kZeroPageAddr);
    ASSERT_TRUE(page.has_value());
    EXPECT_EQ(val(page->hdr.cmd_line_ptr), layout::kCmdlineAddr);
    EXPECT_EQ(val(page->hdr.ramdisk_image), data.initrd->address);
    EXPECT_EQ(val(page->hdr.ramdisk_size), initrd.size());
    EXPECT_EQ(val(page->acpi_rsdp_addr), 0xe0000u);
    EXPECT_EQ(val(page->e820_entries), map_.e820.size());
    EXPECT_EQ(val(page->hdr.type_of_loader), 0xff);
}

TEST_F(BootDataWrite, NoInitrd) {
    auto data = write_boot_data(memory_, kernel_, map_, "quiet", {}, 0);
    EXPECT_FALSE(data.initrd.has_value());
    EXPECT_EQ(val(memory_.read_obj<BootParams>(layout::kZeroPageAddr)->hdr.ramdisk_size), 0u);
}

TEST_F(BootDataWrite, CommandLineAtTheKernelsLimitFitsAndOneMoreDoesNot) {
    kernel_.header.cmdline_size = 100;
    EXPECT_EQ(write_error(std::string(100, 'a')), "");
    EXPECT_EQ(guest_string(layout::kCmdlineAddr).size(), 100u);
    EXPECT_THAT(write_error(std::string(101, 'a')), HasSubstr("101 bytes; this kernel accepts at most 100"));
}

TEST_F(BootDataWrite, CommandLineIsCappedByTapvmsBuffer) {
    kernel_.header.cmdline_size = 0xffffffff;
    EXPECT_EQ(max_cmdline_length(kernel_.header), layout::kCmdlineMax - 1);
    EXPECT_NE(write_error(std::string(layout::kCmdlineMax, 'a')), "");
}

TEST_F(BootDataWrite, OldKernelsWithoutCmdlineSizeGet255) {
    kernel_.header.cmdline_size = 0;
    EXPECT_EQ(max_cmdline_length(kernel_.header), 255u);
}

TEST_F(BootDataWrite, CommandLineWithNulIsAnError) {
    EXPECT_THAT(write_error(std::string("a\0b", 3)), HasSubstr("NUL"));
}

TEST_F(BootDataWrite, InitrdThatDoesNotFitIsAnError) {
    Bytes initrd(120 * MiB, 1);
    EXPECT_THAT(write_error("x", initrd), HasSubstr("initramfs of 120.0 MiB does not fit"));
}

}  // namespace
}  // namespace tapvm::boot
