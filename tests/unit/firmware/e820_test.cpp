#include "firmware/e820.h"

#include <gtest/gtest.h>

#include "vmm/error.h"
#include "vmm/layout.h"

namespace tapvm::boot {
namespace {

constexpr uint64_t MiB = 1ull << 20;
constexpr uint64_t GiB = 1ull << 30;

uint64_t e820_total(const MemoryMap& map, E820Type type) {
    uint64_t total = 0;
    for (const auto& e : map.e820)
        if (e.type == type) total += e.size;
    return total;
}

// Every e820 RAM byte must be backed by a GuestMemory region: otherwise the
// kernel would use memory that does not exist.
void expect_ram_backed(const MemoryMap& map) {
    for (const auto& e : map.e820) {
        if (e.type != E820Type::kRam) continue;
        bool backed = false;
        for (const auto& r : map.ram) backed |= e.addr >= r.start && e.addr + e.size <= r.start + r.size;
        EXPECT_TRUE(backed) << std::hex << "e820 RAM at 0x" << e.addr << " has no guest memory";
    }
}

void expect_sorted_disjoint(const MemoryMap& map) {
    for (size_t i = 1; i < map.e820.size(); ++i)
        EXPECT_LE(map.e820[i - 1].addr + map.e820[i - 1].size, map.e820[i].addr) << "entry " << i;
}

bool overlaps_hole(uint64_t start, uint64_t size) {
    return start < layout::kPciHoleEnd && start + size > layout::kPciHoleStart;
}

class E820Sizes : public ::testing::TestWithParam<uint64_t> {};

TEST_P(E820Sizes, RamInMapEqualsRamSizeMinusLowHoles) {
    const uint64_t ram = GetParam();
    MemoryMap map = build_memory_map(ram);
    expect_sorted_disjoint(map);
    expect_ram_backed(map);

    // GuestMemory gets exactly ram bytes, none in the PCI hole.
    uint64_t backed = 0;
    for (const auto& r : map.ram) {
        backed += r.size;
        EXPECT_FALSE(overlaps_hole(r.start, r.size));
    }
    EXPECT_EQ(backed, ram);
    // e820 RAM: all of it except the EBDA and BIOS area below 1 MiB.
    EXPECT_EQ(e820_total(map, E820Type::kRam), ram - (layout::kHighMemStart - layout::kEbdaStart));
    for (const auto& e : map.e820) {
        if (e.type != E820Type::kRam) continue;
        EXPECT_FALSE(overlaps_hole(e.addr, e.size)) << std::hex << e.addr;
    }
}

INSTANTIATE_TEST_SUITE_P(Sizes, E820Sizes, ::testing::Values(256 * MiB, 3 * GiB, 4 * GiB, 8 * GiB));

TEST(E820, SmallGuestHasNoHighRegion) {
    MemoryMap map = build_memory_map(256 * MiB);
    EXPECT_EQ(map.low_ram_end, 256 * MiB);
    ASSERT_EQ(map.ram.size(), 1u);
    EXPECT_EQ(map.ram[0].start, 0u);
    EXPECT_EQ(map.ram[0].size, 256 * MiB);
    for (const auto& e : map.e820) EXPECT_LT(e.addr, 4 * GiB);
}

TEST(E820, LowMemoryEntriesMatchThePcLayout) {
    MemoryMap map = build_memory_map(256 * MiB);
    ASSERT_GE(map.e820.size(), 4u);
    EXPECT_EQ(map.e820[0].addr, 0u);
    EXPECT_EQ(map.e820[0].size, layout::kEbdaStart);
    EXPECT_EQ(map.e820[0].type, E820Type::kRam);
    EXPECT_EQ(map.e820[1].addr, layout::kEbdaStart);
    EXPECT_EQ(map.e820[1].addr + map.e820[1].size, layout::kBiosAreaStart);
    EXPECT_EQ(map.e820[1].type, E820Type::kReserved);
    EXPECT_EQ(map.e820[2].addr, layout::kAcpiStart);
    EXPECT_EQ(map.e820[2].addr + map.e820[2].size, layout::kAcpiEnd);
    EXPECT_EQ(map.e820[2].type, E820Type::kReserved);
    EXPECT_EQ(map.e820[3].addr, layout::kHighMemStart);
    EXPECT_EQ(map.e820[3].addr + map.e820[3].size, 256 * MiB);
    EXPECT_EQ(map.e820[3].type, E820Type::kRam);
}

TEST(E820, ExactlyThreeGiBFillsUpToTheHole) {
    MemoryMap map = build_memory_map(3 * GiB);
    EXPECT_EQ(map.low_ram_end, layout::kPciHoleStart);
    EXPECT_EQ(map.ram.size(), 1u);
}

TEST(E820, RamAboveThreeGiBMovesAboveFourGiB) {
    MemoryMap map = build_memory_map(8 * GiB);
    EXPECT_EQ(map.low_ram_end, layout::kPciHoleStart);
    ASSERT_EQ(map.ram.size(), 2u);
    EXPECT_EQ(map.ram[1].start, layout::kPciHoleEnd);
    EXPECT_EQ(map.ram[1].size, 8 * GiB - layout::kPciHoleStart);
    const auto& last = map.e820.back();
    EXPECT_EQ(last.addr, layout::kPciHoleEnd);
    EXPECT_EQ(last.size, 5 * GiB);
    EXPECT_EQ(last.type, E820Type::kRam);
}

TEST(E820, FourGiBPutsOneGiBAboveTheHole) {
    MemoryMap map = build_memory_map(4 * GiB);
    ASSERT_EQ(map.ram.size(), 2u);
    EXPECT_EQ(map.ram[1].start, 4 * GiB);
    EXPECT_EQ(map.ram[1].size, 1 * GiB);
}

TEST(E820, EcamWindowIsReserved) {
    MemoryMap map = build_memory_map(256 * MiB);
    bool found = false;
    for (const auto& e : map.e820)
        found |= e.addr == layout::kEcamStart && e.size == layout::kEcamSize &&
                 e.type == E820Type::kReserved;
    EXPECT_TRUE(found);
}

TEST(E820, RejectsTinyOrUnalignedSizes) {
    EXPECT_THROW(build_memory_map(1 * MiB), UsageError);
    EXPECT_THROW(build_memory_map(0), UsageError);
    EXPECT_THROW(build_memory_map(256 * MiB + 100), UsageError);
    EXPECT_NO_THROW(build_memory_map(kMinRamSize));
}

TEST(E820, RegionsAreAcceptedByGuestMemory) {
    // The map is what GuestMemory is built from; it must accept it as is.
    MemoryMap map = build_memory_map(64 * MiB);
    GuestMemory memory(map.ram);
    EXPECT_EQ(memory.total_size(), 64 * MiB);
    EXPECT_TRUE(memory.contains(layout::kAcpiStart, layout::kAcpiEnd - layout::kAcpiStart));
}

}  // namespace
}  // namespace tapvm::boot
