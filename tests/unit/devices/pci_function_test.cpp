// PciFunction probed the way a guest kernel probes it: dword config reads and
// writes, BAR sizing with all-ones, relocation, decode bits, the capability
// list, INTx.
#include <gtest/gtest.h>

#include <array>
#include <memory>
#include <optional>
#include <tuple>
#include <vector>

#include "devices/pci/msix.h"
#include "devices/pci/pci_function.h"
#include "support/fake_irq.h"
#include "vmm/bus.h"
#include "vmm/error.h"

namespace tapvm::pci {
namespace {

using tapvm::testing::FakeIrqLine;
using tapvm::testing::FakeMsiAllocator;

// A register block that answers reads with its own offsets (byte i of a read
// at offset o is (o + i) ^ 0x5a) and records writes.
class RecordingRegion : public BusDevice {
public:
    void read(uint64_t offset, std::span<uint8_t> data) override {
        reads.push_back(offset);
        for (size_t i = 0; i < data.size(); ++i) data[i] = static_cast<uint8_t>((offset + i) ^ 0x5a);
    }
    void write(uint64_t offset, std::span<const uint8_t> data) override {
        writes.emplace_back(offset, std::vector<uint8_t>(data.begin(), data.end()));
    }
    std::vector<uint64_t> reads;
    std::vector<std::pair<uint64_t, std::vector<uint8_t>>> writes;
};

uint32_t read32(PciFunction& fn, uint16_t offset) {
    std::array<uint8_t, 4> b{};
    fn.read_config(offset, b);
    return uint32_t(b[0]) | uint32_t(b[1]) << 8 | uint32_t(b[2]) << 16 | uint32_t(b[3]) << 24;
}

uint16_t read16(PciFunction& fn, uint16_t offset) {
    std::array<uint8_t, 2> b{};
    fn.read_config(offset, b);
    return static_cast<uint16_t>(b[0] | b[1] << 8);
}

uint8_t read8(PciFunction& fn, uint16_t offset) {
    std::array<uint8_t, 1> b{};
    fn.read_config(offset, b);
    return b[0];
}

void write32(PciFunction& fn, uint16_t offset, uint32_t v) {
    const std::array<uint8_t, 4> b{uint8_t(v), uint8_t(v >> 8), uint8_t(v >> 16), uint8_t(v >> 24)};
    fn.write_config(offset, b);
}

void write16(PciFunction& fn, uint16_t offset, uint16_t v) {
    const std::array<uint8_t, 2> b{uint8_t(v), uint8_t(v >> 8)};
    fn.write_config(offset, b);
}

uint32_t bus_read32(const Bus& bus, uint64_t addr, bool* claimed = nullptr) {
    std::array<uint8_t, 4> b{};
    bool ok = bus.read(addr, b);
    if (claimed) *claimed = ok;
    return uint32_t(b[0]) | uint32_t(b[1]) << 8 | uint32_t(b[2]) << 16 | uint32_t(b[3]) << 24;
}

PciIdentity test_identity() {
    PciIdentity id;
    id.vendor_id = 0x1af4;
    id.device_id = 0x1041;
    id.class_code = 0x02;
    id.subclass = 0x00;
    id.prog_if = 0x01;
    id.revision = 0x07;
    id.subsystem_vendor_id = 0x1af4;
    id.subsystem_id = 0x0011;
    return id;
}

TEST(PciFunctionTest, IdentityReadsAtHeaderOffsets) {
    PciFunction fn(test_identity());
    EXPECT_EQ(read32(fn, kVendorId), 0x10411af4u);
    EXPECT_EQ(read32(fn, kRevisionId), 0x02000107u);  // class 02, subclass 00, prog-if 01, rev 07
    EXPECT_EQ(read32(fn, kSubsystemVendorId), 0x00111af4u);
    EXPECT_EQ(read8(fn, kHeaderType), kHeaderTypeNormal);
    EXPECT_EQ(read16(fn, kCommand), 0);
    EXPECT_EQ(read16(fn, kStatus), 0) << "no capabilities, no interrupt";
}

TEST(PciFunctionTest, ReadOnlyFieldsIgnoreWrites) {
    PciFunction fn(test_identity());
    fn.set_intx(1, nullptr);
    std::array<uint32_t, 64> before{};
    for (uint16_t off = 0; off < 256; off += 4) before[off / 4] = read32(fn, off);

    for (uint16_t off : {kVendorId, kRevisionId, kCardbusCis, kSubsystemVendorId, kExpansionRom,
                         kCapabilitiesPointer, uint16_t(0x38), uint16_t(0x40), uint16_t(0xfc)})
        write32(fn, off, 0xffffffff);
    write16(fn, kStatus, 0x06ff);  // non-error status bits: read-only
    write16(fn, kInterruptPin, 0xffff);  // pin (0x3d) and Min_Gnt (0x3e) are read-only

    for (uint16_t off = 0; off < 256; off += 4) {
        if (off == kCommand || off == kCacheLineSize || off == kInterruptLine) continue;
        EXPECT_EQ(read32(fn, off), before[off / 4]) << "offset " << off;
    }
    EXPECT_EQ(read8(fn, kInterruptPin), 1);
}

TEST(PciFunctionTest, CommandKeepsOnlyImplementedBits) {
    PciFunction fn(test_identity());
    write16(fn, kCommand, 0xffff);
    EXPECT_EQ(read16(fn, kCommand),
              kCommandIoSpace | kCommandMemorySpace | kCommandBusMaster | kCommandIntxDisable);
    write16(fn, kCommand, kCommandBusMaster);
    EXPECT_EQ(fn.command(), kCommandBusMaster);
}

TEST(PciFunctionTest, StatusErrorBitsAreWriteOneToClear) {
    PciFunction fn(test_identity());
    const std::array<uint8_t, 2> errors{0x00, 0x81};  // bits 15 and 8
    fn.poke_config(kStatus, errors);
    write16(fn, kStatus, 0x0000);
    EXPECT_EQ(read16(fn, kStatus), 0x8100) << "writing zero clears nothing";
    write16(fn, kStatus, 0x8000);
    EXPECT_EQ(read16(fn, kStatus), 0x0100) << "writing one clears only that bit";
}

TEST(PciFunctionTest, CacheLineSizeAndInterruptLineAreWritable) {
    PciFunction fn(test_identity());
    write32(fn, kCacheLineSize, 0xffffff10);
    EXPECT_EQ(read32(fn, kCacheLineSize), 0x00000010u) << "latency, header type, BIST read-only";
    fn.set_interrupt_line(17);
    EXPECT_EQ(read8(fn, kInterruptLine), 17);
    write16(fn, kInterruptLine, 0x0b);
    EXPECT_EQ(fn.interrupt_line(), 0x0b);
}

TEST(PciFunctionTest, ExtendedSpaceReadsZeroAndOutOfRangeReadsOnes) {
    PciFunction fn(test_identity());
    EXPECT_EQ(read32(fn, 0x100), 0u);
    EXPECT_EQ(read32(fn, 0xffc), 0u);
    write32(fn, 0x100, 0x12345678);
    EXPECT_EQ(read32(fn, 0x100), 0u);
    std::array<uint8_t, 4> past{};
    fn.read_config(0xffe, past);  // runs past 4 KiB
    EXPECT_EQ(past, (std::array<uint8_t, 4>{0xff, 0xff, 0xff, 0xff}));
    EXPECT_EQ(read32(fn, kVendorId), 0x10411af4u);
}

// --- BAR sizing ----------------------------------------------------------------

struct SizingCase {
    BarKind kind;
    uint64_t size;
    bool prefetchable;
    uint32_t low_mask;                 // what reads back after all-ones
    std::optional<uint32_t> high_mask; // second slot of a 64-bit BAR
};

class BarSizingTest : public ::testing::TestWithParam<SizingCase> {};

TEST_P(BarSizingTest, AllOnesReadsBackSizeMaskAndTypeBits) {
    const SizingCase& c = GetParam();
    PciFunction fn(test_identity());
    fn.add_bar(2, c.kind, c.size, c.prefetchable);
    const uint16_t low = kBar0 + 8, high = kBar0 + 12;
    uint32_t type_bits = read32(fn, low);  // address 0: only the type bits

    write32(fn, low, 0xffffffff);
    if (c.high_mask) write32(fn, high, 0xffffffff);
    EXPECT_EQ(read32(fn, low), c.low_mask);
    if (c.high_mask) {
        EXPECT_EQ(read32(fn, high), *c.high_mask);
    }
    EXPECT_EQ(read32(fn, low) & (c.kind == BarKind::Io ? 0x3u : 0xfu), type_bits);

    // Decode the size from the mask as Linux's pci_size() does.
    uint64_t mask = read32(fn, low) & (c.kind == BarKind::Io ? ~0x3u : ~0xfu);
    if (c.high_mask) mask |= uint64_t(read32(fn, high)) << 32;
    EXPECT_EQ(mask & ~(mask - 1), c.size);  // lowest writable address bit

    // Writing an address back restores it.
    write32(fn, low, 0);
    if (c.high_mask) write32(fn, high, 0);
    EXPECT_EQ(read32(fn, low), type_bits);
}

INSTANTIATE_TEST_SUITE_P(
    Kinds, BarSizingTest,
    ::testing::Values(SizingCase{BarKind::Io, 0x20, false, 0xffffffe1, std::nullopt},
                      SizingCase{BarKind::Io, 0x100, false, 0xffffff01, std::nullopt},
                      SizingCase{BarKind::Mmio32, 0x1000, false, 0xfffff000, std::nullopt},
                      SizingCase{BarKind::Mmio32, 0x100000, true, 0xfff00008, std::nullopt},
                      SizingCase{BarKind::Mmio64, 0x4000, false, 0xffffc004, 0xffffffff},
                      SizingCase{BarKind::Mmio64, 0x4000, true, 0xffffc00c, 0xffffffff},
                      SizingCase{BarKind::Mmio64, 0x200000000ull, true, 0x0000000c, 0xfffffffe}));

TEST(PciFunctionTest, UnimplementedBarsReadZeroAfterAllOnes) {
    PciFunction fn(test_identity());
    fn.add_bar(0, BarKind::Mmio64, 0x1000);
    for (unsigned slot = 2; slot < kNumBars; ++slot) {
        write32(fn, kBar0 + 4 * slot, 0xffffffff);
        EXPECT_EQ(read32(fn, kBar0 + 4 * slot), 0u) << "slot " << slot;
    }
}

TEST(PciFunctionTest, BarDeclarationMistakesThrow) {
    PciFunction fn(test_identity());
    EXPECT_THROW(fn.add_bar(0, BarKind::Mmio32, 0x1800), Error) << "not a power of two";
    EXPECT_THROW(fn.add_bar(0, BarKind::Mmio32, 8), Error) << "below 16 bytes";
    EXPECT_THROW(fn.add_bar(5, BarKind::Mmio64, 0x1000), Error) << "needs slots 5 and 6";
    EXPECT_THROW(fn.add_bar(6, BarKind::Io, 0x10), Error);
    EXPECT_THROW(fn.add_bar(0, BarKind::Io, 0x10, true), Error) << "prefetchable I/O";
    fn.add_bar(0, BarKind::Mmio64, 0x1000);
    EXPECT_THROW(fn.add_bar(1, BarKind::Mmio32, 0x1000), Error) << "high half of BAR 0";
    EXPECT_THROW(fn.add_bar(0, BarKind::Mmio32, 0x1000), Error);
    EXPECT_THROW(fn.add_bar_region(2, 0, 0x10, std::make_shared<RecordingRegion>()), Error);
    EXPECT_THROW(fn.add_bar_region(0, 0xff0, 0x20, std::make_shared<RecordingRegion>()), Error);
    fn.add_bar_region(0, 0x100, 0x100, std::make_shared<RecordingRegion>());
    EXPECT_THROW(fn.add_bar_region(0, 0x1f0, 0x20, std::make_shared<RecordingRegion>()), Error);
}

// --- BAR mapping ----------------------------------------------------------------

struct BarChangeRecord {
    unsigned bar;
    std::optional<uint64_t> old_base;
    std::optional<uint64_t> new_base;
    bool operator==(const BarChangeRecord&) const = default;
};

class PciBarMappingTest : public ::testing::Test {
protected:
    void SetUp() override {
        fn = std::make_unique<PciFunction>(test_identity());
        fn->add_bar(0, BarKind::Mmio32, 0x2000);
        fn->add_bar(1, BarKind::Io, 0x40);
        fn->add_bar(2, BarKind::Mmio64, 0x4000, true);
        fn->add_bar_region(0, 0x1000, 0x100, region0);
        fn->add_bar_region(1, 0x10, 0x10, region1);
        fn->add_bar_region(2, 0x0, 0x4000, region2);
        fn->on_bar_change([this](unsigned bar, auto old_base, auto new_base) {
            changes.push_back({bar, old_base, new_base});
        });
        fn->set_bar_address(0, 0xc0002000);
        fn->set_bar_address(1, 0x1040);
        fn->set_bar_address(2, 0xc0010000);
        fn->attach({&mmio, &pio});
    }

    Bus mmio{"mmio"};
    Bus pio{"pio"};
    std::shared_ptr<RecordingRegion> region0 = std::make_shared<RecordingRegion>();
    std::shared_ptr<RecordingRegion> region1 = std::make_shared<RecordingRegion>();
    std::shared_ptr<RecordingRegion> region2 = std::make_shared<RecordingRegion>();
    std::unique_ptr<PciFunction> fn;
    std::vector<BarChangeRecord> changes;
};

TEST_F(PciBarMappingTest, AssignedAddressesShowInRegistersButDecodeIsOff) {
    EXPECT_EQ(read32(*fn, kBar0), 0xc0002000u);
    EXPECT_EQ(read32(*fn, kBar0 + 4), 0x1041u);
    EXPECT_EQ(read32(*fn, kBar0 + 8), 0xc001000cu);
    EXPECT_EQ(read32(*fn, kBar0 + 12), 0u);
    EXPECT_EQ(fn->bar_address(0), std::nullopt);
    EXPECT_TRUE(changes.empty());
    bool claimed = true;
    bus_read32(mmio, 0xc0003000, &claimed);
    EXPECT_FALSE(claimed);
}

TEST_F(PciBarMappingTest, MemoryDecodeMapsMemoryBarsOnly) {
    write16(*fn, kCommand, kCommandMemorySpace);
    EXPECT_EQ(fn->bar_address(0), 0xc0002000u);
    EXPECT_EQ(fn->bar_address(2), 0xc0010000u);
    EXPECT_EQ(fn->bar_address(1), std::nullopt) << "I/O BAR needs I/O decode";
    EXPECT_EQ(changes, (std::vector<BarChangeRecord>{{0, std::nullopt, 0xc0002000},
                                                     {2, std::nullopt, 0xc0010000}}));

    // An access in the region reaches it with region-relative offsets.
    bool claimed = false;
    uint32_t v = bus_read32(mmio, 0xc0002000 + 0x1000 + 0x8, &claimed);
    EXPECT_TRUE(claimed);
    EXPECT_EQ(region0->reads, std::vector<uint64_t>{0x8});
    EXPECT_EQ(v & 0xff, 0x08u ^ 0x5a);

    write16(*fn, kCommand, kCommandIoSpace | kCommandMemorySpace);
    EXPECT_EQ(fn->bar_address(1), 0x1040u);
    const std::array<uint8_t, 2> w{0xaa, 0xbb};
    EXPECT_TRUE(pio.write(0x1040 + 0x12, w));
    ASSERT_EQ(region1->writes.size(), 1u);
    EXPECT_EQ(region1->writes[0].first, 2u);
    EXPECT_EQ(region1->writes[0].second, (std::vector<uint8_t>{0xaa, 0xbb}));
}

TEST_F(PciBarMappingTest, HolesInABarReadZeroAndDropWrites) {
    write16(*fn, kCommand, kCommandMemorySpace);
    bool claimed = false;
    EXPECT_EQ(bus_read32(mmio, 0xc0002000 + 0x10, &claimed), 0u);
    EXPECT_TRUE(claimed) << "the BAR claims its whole range";
    // Straddling the end of a region is not the region's access either.
    EXPECT_EQ(bus_read32(mmio, 0xc0002000 + 0x10fe), 0u);
    const std::array<uint8_t, 4> w{1, 2, 3, 4};
    mmio.write(0xc0002000 + 0x10fe, w);
    EXPECT_TRUE(region0->reads.empty());
    EXPECT_TRUE(region0->writes.empty());
}

TEST_F(PciBarMappingTest, GuestRelocationMovesTheBar) {
    write16(*fn, kCommand, kCommandMemorySpace);
    changes.clear();
    write32(*fn, kBar0, 0xd0004000);
    EXPECT_EQ(read32(*fn, kBar0), 0xd0004000u);
    EXPECT_EQ(fn->bar_address(0), 0xd0004000u);
    EXPECT_EQ(changes, (std::vector<BarChangeRecord>{{0, 0xc0002000, 0xd0004000}}));

    bool claimed = true;
    bus_read32(mmio, 0xc0002000 + 0x1000, &claimed);
    EXPECT_FALSE(claimed) << "old address must be gone";
    bus_read32(mmio, 0xd0004000 + 0x1004, &claimed);
    EXPECT_TRUE(claimed);
    EXPECT_EQ(region0->reads, std::vector<uint64_t>{0x4});
}

TEST_F(PciBarMappingTest, SixtyFourBitBarMovesAbove4GiB) {
    write16(*fn, kCommand, kCommandMemorySpace);
    changes.clear();
    write32(*fn, kBar0 + 12, 0x2);  // high half first: 0x2_c0010000
    EXPECT_EQ(fn->bar_address(2), 0x2c0010000u);
    write32(*fn, kBar0 + 8, 0x80000000);
    EXPECT_EQ(fn->bar_address(2), 0x280000000u);
    EXPECT_EQ(changes, (std::vector<BarChangeRecord>{{2, 0xc0010000, 0x2c0010000},
                                                     {2, 0x2c0010000, 0x280000000}}));
    bool claimed = false;
    bus_read32(mmio, 0x280000000 + 0x3ffc, &claimed);
    EXPECT_TRUE(claimed);
    EXPECT_EQ(region2->reads, std::vector<uint64_t>{0x3ffc});
}

TEST_F(PciBarMappingTest, ClearingDecodeUnmapsAndSettingItRemaps) {
    write16(*fn, kCommand, kCommandMemorySpace | kCommandIoSpace);
    changes.clear();
    write16(*fn, kCommand, kCommandIoSpace);
    EXPECT_EQ(fn->bar_address(0), std::nullopt);
    EXPECT_EQ(fn->bar_address(2), std::nullopt);
    EXPECT_EQ(fn->bar_address(1), 0x1040u);
    bool claimed = true;
    bus_read32(mmio, 0xc0003000, &claimed);
    EXPECT_FALSE(claimed);
    EXPECT_EQ(changes, (std::vector<BarChangeRecord>{{0, 0xc0002000, std::nullopt},
                                                     {2, 0xc0010000, std::nullopt}}));
    write16(*fn, kCommand, kCommandIoSpace | kCommandMemorySpace);
    EXPECT_EQ(fn->bar_address(0), 0xc0002000u);
    bus_read32(mmio, 0xc0003000, &claimed);
    EXPECT_TRUE(claimed);
}

TEST_F(PciBarMappingTest, SizingWithDecodeOnNeverMapsAtTheTop) {
    write16(*fn, kCommand, kCommandMemorySpace | kCommandIoSpace);
    write32(*fn, kBar0, 0xffffffff);
    EXPECT_EQ(fn->bar_address(0), std::nullopt);
    write32(*fn, kBar0 + 4, 0xffffffff);
    EXPECT_EQ(fn->bar_address(1), std::nullopt) << "I/O BAR beyond 64 KiB";
    write32(*fn, kBar0 + 8, 0xffffffff);  // low half of the 64-bit BAR
    EXPECT_EQ(fn->bar_address(2), std::nullopt);
    write32(*fn, kBar0 + 12, 0xffffffff);
    EXPECT_EQ(fn->bar_address(2), std::nullopt) << "beyond MAXPHYADDR";
    // Restore: the guest writes the old addresses back.
    write32(*fn, kBar0, 0xc0002000);
    write32(*fn, kBar0 + 8, 0xc0010000);
    write32(*fn, kBar0 + 12, 0);
    EXPECT_EQ(fn->bar_address(0), 0xc0002000u);
    EXPECT_EQ(fn->bar_address(2), 0xc0010000u);
}

TEST_F(PciBarMappingTest, ZeroAddressIsNotMapped) {
    write16(*fn, kCommand, kCommandMemorySpace);
    write32(*fn, kBar0, 0);
    EXPECT_EQ(fn->bar_address(0), std::nullopt);
}

TEST_F(PciBarMappingTest, OverlapLeavesTheBarUnmappedWithoutThrowing) {
    auto squatter = std::make_shared<RecordingRegion>();
    mmio.insert(0xd0000000, 0x1000, squatter);
    write16(*fn, kCommand, kCommandMemorySpace);
    changes.clear();
    EXPECT_NO_THROW(write32(*fn, kBar0, 0xd0000000));
    EXPECT_EQ(fn->bar_address(0), std::nullopt);
    EXPECT_EQ(changes, (std::vector<BarChangeRecord>{{0, 0xc0002000, std::nullopt}}));
    // The squatter still owns its range.
    bus_read32(mmio, 0xd0000000);
    EXPECT_EQ(squatter->reads.size(), 1u);
    // Moving somewhere free maps it again.
    write32(*fn, kBar0, 0xd0002000);
    EXPECT_EQ(fn->bar_address(0), 0xd0002000u);
}

TEST_F(PciBarMappingTest, ByteWritesToABarAreMaskedToo) {
    write16(*fn, kCommand, kCommandMemorySpace);
    const std::array<uint8_t, 1> b{0xff};
    fn->write_config(kBar0 + 1, b);  // bits 15:8; 12:8 lie below the 8 KiB size
    EXPECT_EQ(read32(*fn, kBar0), 0xc000e000u);
    EXPECT_EQ(fn->bar_address(0), 0xc000e000u);
    const std::array<uint8_t, 1> top{0xd0};
    fn->write_config(kBar0 + 3, top);
    EXPECT_EQ(read32(*fn, kBar0), 0xd000e000u);
    EXPECT_EQ(fn->bar_address(0), 0xd000e000u);
}

TEST_F(PciBarMappingTest, DestructionRemovesTheBarsFromTheBus) {
    write16(*fn, kCommand, kCommandMemorySpace);
    fn.reset();
    bool claimed = true;
    bus_read32(mmio, 0xc0003000, &claimed);
    EXPECT_FALSE(claimed);
}

TEST_F(PciBarMappingTest, BarDeviceReachesRegionsWhileUnmapped) {
    auto bar0 = fn->bar_device(0);
    ASSERT_NE(bar0, nullptr);
    EXPECT_EQ(bar0->size(), 0x2000u);
    std::array<uint8_t, 2> b{};
    bar0->read(0x1010, b);
    EXPECT_EQ(region0->reads, std::vector<uint64_t>{0x10});
    EXPECT_EQ(fn->bar_device(3), nullptr) << "high half of a 64-bit BAR";
    EXPECT_EQ(fn->bar_device(5), nullptr);
}

TEST_F(PciBarMappingTest, SetBarAddressRejectsMisalignedOrOutOfRange) {
    EXPECT_THROW(fn->set_bar_address(0, 0xc0001000), Error);
    EXPECT_THROW(fn->set_bar_address(1, 0x10000), Error);
    EXPECT_THROW(fn->set_bar_address(3, 0xc0000000), Error) << "high half is not a BAR";
    EXPECT_THROW(fn->set_bar_address(4, 0xc0000000), Error);
}

// --- Capabilities ------------------------------------------------------------

TEST(PciCapabilityTest, ListIsWalkableFromTheCapabilitiesPointer) {
    PciFunction fn(test_identity());
    const std::vector<std::vector<uint8_t>> bodies = {
        {0x10, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13},  // vendor cap, cap_len 16
        {0xaa},                                              // 3 bytes: pads to 4
        {0x14, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}};
    const uint8_t ids[] = {kCapIdVendorSpecific, 0x01, kCapIdVendorSpecific};
    std::vector<uint8_t> offsets;
    for (size_t i = 0; i < bodies.size(); ++i) offsets.push_back(fn.add_capability(ids[i], bodies[i]));

    EXPECT_TRUE(read16(fn, kStatus) & kStatusCapabilityList);
    uint8_t ptr = read8(fn, kCapabilitiesPointer);
    std::vector<uint8_t> walked;
    for (int guard = 0; ptr != 0 && guard < 48; ++guard) {
        EXPECT_GE(ptr, kCapabilityStart);
        EXPECT_EQ(ptr % 4, 0) << "dword aligned";
        walked.push_back(ptr);
        ptr = read8(fn, ptr + 1);
    }
    EXPECT_EQ(walked, offsets);
    for (size_t i = 0; i < walked.size(); ++i) {
        EXPECT_EQ(read8(fn, walked[i]), ids[i]);
        for (size_t j = 0; j < bodies[i].size(); ++j)
            EXPECT_EQ(read8(fn, walked[i] + 2 + j), bodies[i][j]);
        if (i > 0) {
            EXPECT_GE(walked[i], walked[i - 1] + 2 + bodies[i - 1].size()) << "no overlap";
        }
    }
}

TEST(PciCapabilityTest, NoCapabilitiesMeansNoListBit) {
    PciFunction fn(test_identity());
    EXPECT_FALSE(read16(fn, kStatus) & kStatusCapabilityList);
    EXPECT_EQ(read8(fn, kCapabilitiesPointer), 0);
}

TEST(PciCapabilityTest, OnlyMaskedBodyBytesAreWritable) {
    PciFunction fn(test_identity());
    const uint8_t body[] = {0x0c, 0x11, 0x22, 0x33, 0x44, 0x55};
    const uint8_t mask[] = {0x00, 0x00, 0xff, 0x0f};
    uint8_t cap = fn.add_capability(kCapIdVendorSpecific, body, mask);
    write32(fn, cap, 0xffffffff);      // ID, next, body[0..1]: read-only
    write32(fn, cap + 4, 0xffffffff);  // body[2] all, body[3] low nibble, body[4..5] read-only
    EXPECT_EQ(read32(fn, cap), 0x110c0000u | kCapIdVendorSpecific);
    EXPECT_EQ(read32(fn, cap + 4), 0x55443fffu);
}

TEST(PciCapabilityTest, CapabilitiesThatDoNotFitThrow) {
    PciFunction fn(test_identity());
    std::vector<uint8_t> big(190);  // 0x40 + 192 = 256: fits exactly
    fn.add_capability(kCapIdVendorSpecific, big);
    const uint8_t one[] = {0};
    EXPECT_THROW(fn.add_capability(kCapIdVendorSpecific, one), Error);
    PciFunction other(test_identity());
    const uint8_t body[] = {1, 2};
    const uint8_t long_mask[] = {1, 2, 3};
    EXPECT_THROW(other.add_capability(kCapIdVendorSpecific, body, long_mask), Error);
}

TEST(PciCapabilityTest, HooksSeeCapabilityRelativeOffsetsClippedToTheCapability) {
    PciFunction fn(test_identity());
    const uint8_t first[] = {0x06, 0, 0, 0};  // 6 bytes: 0x40..0x45
    fn.add_capability(kCapIdVendorSpecific, first);
    std::vector<std::pair<uint16_t, std::vector<uint8_t>>> hook_writes;
    std::vector<std::pair<uint16_t, size_t>> hook_reads;
    CapabilityHooks hooks;
    hooks.on_write = [&](uint16_t off, std::span<const uint8_t> d) {
        hook_writes.emplace_back(off, std::vector<uint8_t>(d.begin(), d.end()));
    };
    hooks.on_read = [&](uint16_t off, std::span<uint8_t> d) {
        hook_reads.emplace_back(off, d.size());
        for (auto& b : d) b = 0xee;  // live contents
    };
    const uint8_t body[] = {0x08, 0, 0, 0, 0, 0};  // 8 bytes at 0x48
    uint8_t cap = fn.add_capability(kCapIdVendorSpecific, body, {}, std::move(hooks));
    ASSERT_EQ(cap, 0x48);

    write32(fn, 0x4c, 0x04030201);
    ASSERT_EQ(hook_writes.size(), 1u);
    EXPECT_EQ(hook_writes[0].first, 4);
    EXPECT_EQ(hook_writes[0].second, (std::vector<uint8_t>{1, 2, 3, 4}));

    EXPECT_EQ(read32(fn, 0x4c), 0xeeeeeeeeu);
    // A read of the other capability does not call the hook.
    EXPECT_EQ(read8(fn, 0x40), kCapIdVendorSpecific);
    EXPECT_EQ(hook_reads, (std::vector<std::pair<uint16_t, size_t>>{{4, 4}}));
    // An (ECAM-style) access starting before the capability is clipped.
    std::array<uint8_t, 8> wide{};
    fn.read_config(0x44, wide);
    EXPECT_EQ(hook_reads.back(), (std::pair<uint16_t, size_t>{0, 4}));
    EXPECT_EQ(wide[0], 0x00) << "bytes outside the capability come from storage";
    EXPECT_EQ(wide[4], 0xee);
}

TEST(PciCapabilityTest, ConfigWriteObserverSeesEveryGuestWrite) {
    PciFunction fn(test_identity());
    std::vector<std::pair<uint16_t, size_t>> seen;
    fn.on_config_write([&](uint16_t off, std::span<const uint8_t> d) { seen.emplace_back(off, d.size()); });
    write16(fn, kCommand, 0x2);
    write32(fn, 0x80, 0);
    EXPECT_EQ(seen, (std::vector<std::pair<uint16_t, size_t>>{{kCommand, 2}, {0x80, 4}}));
}

// --- INTx -----------------------------------------------------------------

TEST(PciIntxTest, StatusAndLineFollowTheLevelUnlessDisabled) {
    PciFunction fn(test_identity());
    FakeIrqLine line;
    fn.set_intx(1, &line);
    EXPECT_EQ(read8(fn, kInterruptPin), 1);

    fn.set_intx_level(true);
    EXPECT_TRUE(line.level());
    EXPECT_TRUE(read16(fn, kStatus) & kStatusInterrupt);

    write16(fn, kCommand, kCommandIntxDisable);
    EXPECT_FALSE(line.level()) << "Interrupt Disable deasserts the pin";
    EXPECT_TRUE(read16(fn, kStatus) & kStatusInterrupt) << "status still shows the condition";

    fn.set_intx_level(false);
    fn.set_intx_level(true);
    EXPECT_FALSE(line.level());
    EXPECT_EQ(line.rising_edges(), 1);

    write16(fn, kCommand, 0);
    EXPECT_TRUE(line.level()) << "re-driven when Disable is cleared";
    EXPECT_EQ(line.rising_edges(), 2);

    fn.set_intx_level(false);
    EXPECT_FALSE(line.level());
    EXPECT_FALSE(read16(fn, kStatus) & kStatusInterrupt);
}

TEST(PciIntxTest, InterruptStatusIsReadOnly) {
    PciFunction fn(test_identity());
    write16(fn, kStatus, kStatusInterrupt);
    EXPECT_FALSE(read16(fn, kStatus) & kStatusInterrupt);
    fn.set_intx_level(true);
    write16(fn, kStatus, 0xffff);
    EXPECT_TRUE(read16(fn, kStatus) & kStatusInterrupt);
}

TEST(PciIntxTest, LineConnectedLaterPicksUpTheLevel) {
    PciFunction fn(test_identity());
    fn.set_intx(2, nullptr);
    fn.set_intx_level(true);
    FakeIrqLine line;
    fn.connect_intx(&line);
    EXPECT_TRUE(line.level());
    EXPECT_EQ(fn.interrupt_pin(), 2);
    EXPECT_THROW(fn.set_intx(5, &line), Error);
    EXPECT_THROW(fn.set_intx(0, &line), Error);
}

TEST(PciIntxTest, MsixEnableSilencesIntx) {
    PciFunction fn(test_identity());
    FakeMsiAllocator msi;
    fn.add_bar(0, BarKind::Mmio32, 0x1000);
    fn.add_msix(2, 0, 0x0, 0, 0x800, msi);
    FakeIrqLine line;
    fn.set_intx(1, &line);
    fn.set_intx_level(true);
    ASSERT_TRUE(line.level());

    uint8_t cap = read8(fn, kCapabilitiesPointer);
    write16(fn, cap + kMsixMessageControl, kMsixControlEnable);
    EXPECT_FALSE(line.level());
    write16(fn, cap + kMsixMessageControl, 0);
    EXPECT_TRUE(line.level());
}

}  // namespace
}  // namespace tapvm::pci
