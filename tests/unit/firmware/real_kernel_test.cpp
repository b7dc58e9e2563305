// The boot path against real kernels: header, payload, ELF, zero page.
//
// Kernels are found, in this order, in
//   $TAPVM_TEST_KERNELS                       (colon-separated paths), else
//   ${TAPVM_CACHE:-$HOME/.cache/tapvm}/guest-*/{stock-vmlinuz,lean-bzImage}
// and the tests skip loudly when there are none.
#include <glob.h>

#include <gtest/gtest.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

#include "firmware/bzimage.h"
#include "firmware/cpu_setup.h"
#include "firmware/e820.h"
#include "firmware/elf_loader.h"
#include "firmware/kernel_decompressor.h"
#include "firmware/kernel_loader.h"
#include "firmware/zero_page.h"
#include "vmm/layout.h"

namespace tapvm::boot {
namespace {

// Copies a (possibly packed, misaligned) field so gtest can bind a reference to it.
template <class T>
T val(T value) {
    return value;
}

constexpr uint64_t MiB = 1ull << 20;
constexpr uint64_t kGuestRam = 256 * MiB;

std::vector<std::string> split(const std::string& s, char sep) {
    std::vector<std::string> out;
    std::stringstream in(s);
    for (std::string item; std::getline(in, item, sep);)
        if (!item.empty()) out.push_back(item);
    return out;
}

std::string cache_dir() {
    if (const char* c = std::getenv("TAPVM_CACHE"); c && *c) return c;
    const char* home = std::getenv("HOME");
    return std::string(home ? home : "") + "/.cache/tapvm";
}

std::vector<std::string> glob_paths(const std::string& pattern) {
    std::vector<std::string> out;
    glob_t g{};
    if (::glob(pattern.c_str(), 0, nullptr, &g) == 0)
        for (size_t i = 0; i < g.gl_pathc; ++i) out.emplace_back(g.gl_pathv[i]);
    ::globfree(&g);
    return out;
}

std::string where_we_looked() {
    return "$TAPVM_TEST_KERNELS (unset or empty), " + cache_dir() + "/guest-*/stock-vmlinuz and " + cache_dir() +
           "/guest-*/lean-bzImage";
}

std::vector<std::string> find_kernels() {
    if (const char* env = std::getenv("TAPVM_TEST_KERNELS"); env && *env) return split(env, ':');
    std::vector<std::string> found;
    for (const char* name : {"stock-vmlinuz", "lean-bzImage"})
        for (auto& p : glob_paths(cache_dir() + "/guest-*/" + name)) found.push_back(p);
    return found;
}

std::vector<uint8_t> read_file(const std::string& path) {
    std::ifstream f(path, std::ios::binary | std::ios::ate);
    std::vector<uint8_t> bytes(f ? static_cast<size_t>(f.tellg()) : 0);
    f.seekg(0);
    f.read(reinterpret_cast<char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
    if (!f) bytes.clear();
    return bytes;
}

double ms_since(std::chrono::steady_clock::time_point t) {
    return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t).count();
}

class RealKernels : public ::testing::Test {
protected:
    void SetUp() override {
        paths_ = find_kernels();
        if (paths_.empty())
            GTEST_SKIP() << "\n*** NO REAL KERNEL FOUND: the real-kernel boot-path tests did not run. ***\n"
                         << "Looked in " << where_we_looked() << ".\n"
                         << "Build the guest kernels, or point TAPVM_TEST_KERNELS at a bzImage "
                            "(e.g. Debian's /boot/vmlinuz-*-cloud-amd64).";
    }
    std::vector<std::string> paths_;
};

TEST_F(RealKernels, HeaderParses) {
    for (const auto& path : paths_) {
        SCOPED_TRACE(path);
        auto image = read_file(path);
        ASSERT_FALSE(image.empty()) << "cannot read " << path;
        if (has_elf_magic(image)) continue;  // an ELF vmlinux has no setup header
        BzImage bz = parse_bzimage(image);
        EXPECT_GE(bz.version, kMinBootProtocol);
        EXPECT_TRUE(bz.has_64bit_entry());
        EXPECT_GT(bz.payload.size(), 0u);
        EXPECT_GE(bz.init_size(), bz.protected_mode.size());
        std::cout << path << ": boot protocol " << (bz.version >> 8) << "." << (bz.version & 0xff)
                  << ", payload " << to_string(identify_payload(bz.payload)) << " " << bz.payload.size()
                  << " bytes, pref_address 0x" << std::hex << bz.preferred_load_address() << ", init_size 0x"
                  << bz.init_size() << ", kernel_alignment 0x" << bz.header.kernel_alignment << ", xloadflags 0x"
                  << bz.header.xloadflags << std::dec << "\n";
    }
}

TEST_F(RealKernels, DecompressAndLoadIntoA256MiBGuest) {
    for (const auto& path : paths_) {
        SCOPED_TRACE(path);
        auto image = read_file(path);
        MemoryMap map = build_memory_map(kGuestRam);
        GuestMemory memory(map.ram);

        auto start = std::chrono::steady_clock::now();
        LoadedKernel kernel = load_kernel(memory, image);
        double total_ms = ms_since(start);

        if (has_bzimage_magic(image) && can_decompress(identify_payload(parse_bzimage(image).payload))) {
            EXPECT_EQ(kernel.path, KernelBootPath::kDecompressedBzImage);
        }
        EXPECT_TRUE(memory.contains(kernel.entry, 1)) << "entry 0x" << std::hex << kernel.entry;
        EXPECT_GE(kernel.entry, kernel.load_address);
        EXPECT_LT(kernel.entry, kernel.end);
        EXPECT_LE(kernel.end, kGuestRam);
        std::cout << path << ": " << to_string(kernel.path) << " (" << to_string(kernel.payload_format)
                  << "), entry 0x" << std::hex << kernel.entry << ", kernel [0x" << kernel.load_address << ", 0x"
                  << kernel.end << ")" << std::dec << ", decompress+load " << total_ms << " ms\n";
        RecordProperty("decompress_and_load_ms", std::to_string(static_cast<int>(total_ms)));

        // The rest of the boot data must fit around it, and the entry point
        // must be reachable through the boot page tables.
        std::vector<uint8_t> initrd(8 * MiB, 0x42);
        auto data = write_boot_data(memory, kernel, map, "console=ttyS0", initrd, 0);
        ASSERT_TRUE(data.initrd.has_value());
        EXPECT_GE(data.initrd->address, kernel.end);
        LongModeEntryState st = setup_long_mode(memory, kernel.entry);
        EXPECT_EQ(st.rip, kernel.entry);
        EXPECT_LT(kernel.end, kIdentityMappedBytes);
    }
}

TEST_F(RealKernels, PlainBzImagePathAlsoLoads) {
    for (const auto& path : paths_) {
        SCOPED_TRACE(path);
        auto image = read_file(path);
        if (!has_bzimage_magic(image)) continue;
        GuestMemory memory(build_memory_map(kGuestRam).ram);
        LoadedKernel kernel = load_kernel(memory, image, {.decompress_bzimage = false});
        BzImage bz = parse_bzimage(image);
        EXPECT_EQ(kernel.path, KernelBootPath::kBzImage64);
        EXPECT_EQ(kernel.entry, kernel.load_address + kEntry64Offset);
        EXPECT_EQ(kernel.load_address % val(bz.header.kernel_alignment), 0u);
        EXPECT_GE(kernel.end, kernel.load_address + bz.init_size());
        std::vector<uint8_t> first(64);
        ASSERT_TRUE(memory.read(kernel.load_address, first));
        EXPECT_TRUE(std::equal(first.begin(), first.end(), bz.protected_mode.begin()));
    }
}

}  // namespace
}  // namespace tapvm::boot
