// MSI-X through a PciFunction on a bus, driven as a guest driver drives it:
// the capability in config space, the table and PBA through MMIO.
#include <gtest/gtest.h>

#include <array>
#include <atomic>
#include <memory>
#include <thread>

#include "devices/pci/msix.h"
#include "devices/pci/pci_function.h"
#include "support/fake_irq.h"
#include "vmm/bus.h"
#include "vmm/error.h"

namespace tapvm::pci {
namespace {

using tapvm::testing::FakeMsiAllocator;
using tapvm::testing::FakeMsiVector;

constexpr uint64_t kBarBase = 0xc0000000;
constexpr uint64_t kTableOffset = 0x2000;
constexpr uint64_t kPbaOffset = 0x3000;
constexpr unsigned kVectors = 3;

class MsixTest : public ::testing::Test {
protected:
    void SetUp() override {
        PciIdentity id;
        id.vendor_id = 0x1af4;
        id.device_id = 0x1041;
        fn = std::make_unique<PciFunction>(id);
        fn->add_bar(4, BarKind::Mmio64, 0x4000);
        table = &fn->add_msix(kVectors, 4, kTableOffset, 4, kPbaOffset, allocator);
        fn->set_bar_address(4, kBarBase);
        fn->attach({&mmio, nullptr});
        config_write16(kCommand, kCommandMemorySpace);
        cap = find_msix_capability();
    }

    uint8_t find_msix_capability() {
        for (uint8_t p = config_read8(kCapabilitiesPointer); p != 0; p = config_read8(p + 1))
            if (config_read8(p) == kCapIdMsix) return p;
        return 0;
    }

    uint8_t config_read8(uint16_t off) {
        std::array<uint8_t, 1> b{};
        fn->read_config(off, b);
        return b[0];
    }
    uint32_t config_read32(uint16_t off) {
        std::array<uint8_t, 4> b{};
        fn->read_config(off, b);
        return uint32_t(b[0]) | uint32_t(b[1]) << 8 | uint32_t(b[2]) << 16 | uint32_t(b[3]) << 24;
    }
    uint16_t control() { return static_cast<uint16_t>(config_read32(cap) >> 16); }
    void config_write16(uint16_t off, uint16_t v) {
        const std::array<uint8_t, 2> b{uint8_t(v), uint8_t(v >> 8)};
        fn->write_config(off, b);
    }
    void set_control(uint16_t v) { config_write16(cap + kMsixMessageControl, v); }

    uint32_t mmio_read32(uint64_t addr) {
        std::array<uint8_t, 4> b{};
        EXPECT_TRUE(mmio.read(addr, b));
        return uint32_t(b[0]) | uint32_t(b[1]) << 8 | uint32_t(b[2]) << 16 | uint32_t(b[3]) << 24;
    }
    void mmio_write32(uint64_t addr, uint32_t v) {
        const std::array<uint8_t, 4> b{uint8_t(v), uint8_t(v >> 8), uint8_t(v >> 16), uint8_t(v >> 24)};
        EXPECT_TRUE(mmio.write(addr, b));
    }
    uint64_t entry(unsigned v, uint64_t field) {
        return kBarBase + kTableOffset + v * kMsixEntrySize + field;
    }
    uint32_t pba() { return mmio_read32(kBarBase + kPbaOffset); }
    // What a Linux driver does: program the entry while masked.
    void program_entry(unsigned v, uint64_t address, uint32_t data) {
        mmio_write32(entry(v, kMsixEntryAddressLow), static_cast<uint32_t>(address));
        mmio_write32(entry(v, kMsixEntryAddressHigh), static_cast<uint32_t>(address >> 32));
        mmio_write32(entry(v, kMsixEntryData), data);
    }
    void unmask(unsigned v) { mmio_write32(entry(v, kMsixEntryVectorControl), 0); }
    void mask(unsigned v) { mmio_write32(entry(v, kMsixEntryVectorControl), kMsixEntryMasked); }
    FakeMsiVector& vec(unsigned v) { return *allocator.vectors.at(v); }

    Bus mmio{"mmio"};
    FakeMsiAllocator allocator;
    std::unique_ptr<PciFunction> fn;
    MsixTable* table = nullptr;
    uint8_t cap = 0;
};

TEST_F(MsixTest, CapabilityDescribesTableAndPba) {
    ASSERT_NE(cap, 0) << "MSI-X capability not in the list";
    EXPECT_EQ(control() & kMsixControlTableSizeMask, kVectors - 1);
    EXPECT_EQ(config_read32(cap + kMsixTableOffsetBir), kTableOffset | 4);
    EXPECT_EQ(config_read32(cap + kMsixPbaOffsetBir), kPbaOffset | 4);
    EXPECT_EQ(allocator.vectors.size(), kVectors) << "one MsiVector per entry";
    for (unsigned v = 0; v < kVectors; ++v)
        EXPECT_EQ(mmio_read32(entry(v, kMsixEntryVectorControl)), kMsixEntryMasked)
            << "entries start masked";
}

TEST_F(MsixTest, OnlyEnableAndFunctionMaskAreWritable) {
    set_control(0xffff);
    EXPECT_EQ(control(), kMsixControlEnable | kMsixControlFunctionMask | (kVectors - 1));
    EXPECT_TRUE(table->enabled());
    EXPECT_TRUE(table->function_masked());
    const std::array<uint8_t, 4> ones{0xff, 0xff, 0xff, 0xff};
    fn->write_config(cap + kMsixTableOffsetBir, ones);
    EXPECT_EQ(config_read32(cap + kMsixTableOffsetBir), kTableOffset | 4);
    set_control(0);
    EXPECT_FALSE(table->enabled());
    EXPECT_FALSE(table->function_masked());
}

TEST_F(MsixTest, TableEntriesReadBackWhatWasWritten) {
    program_entry(1, 0x00000001fee01000ull, 0x4041);
    EXPECT_EQ(mmio_read32(entry(1, kMsixEntryAddressLow)), 0xfee01000u);
    EXPECT_EQ(mmio_read32(entry(1, kMsixEntryAddressHigh)), 0x1u);
    EXPECT_EQ(mmio_read32(entry(1, kMsixEntryData)), 0x4041u);
    EXPECT_EQ(table->message(1), (MsiMessage{0x1fee01000ull, 0x4041}));
    EXPECT_EQ(table->message(0), MsiMessage{}) << "other entries untouched";
    // Vector Control keeps only the mask bit; address bits 1:0 read as zero.
    mmio_write32(entry(1, kMsixEntryVectorControl), 0xfffffffe);
    EXPECT_EQ(mmio_read32(entry(1, kMsixEntryVectorControl)), 0u);
    mmio_write32(entry(1, kMsixEntryAddressLow), 0xfee00003);
    EXPECT_EQ(mmio_read32(entry(1, kMsixEntryAddressLow)), 0xfee00000u);
}

TEST_F(MsixTest, QwordAccessesReachTwoFields) {
    const std::array<uint8_t, 8> q{0x00, 0x20, 0xe0, 0xfe, 0x00, 0x00, 0x00, 0x00};
    EXPECT_TRUE(mmio.write(entry(2, kMsixEntryAddressLow), q));
    const std::array<uint8_t, 8> dq{0x33, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00};  // data, unmask
    EXPECT_TRUE(mmio.write(entry(2, kMsixEntryData), dq));
    EXPECT_EQ(table->message(2), (MsiMessage{0xfee02000, 0x33}));
    EXPECT_FALSE(table->vector_masked(2));
    std::array<uint8_t, 8> r{};
    EXPECT_TRUE(mmio.read(entry(2, kMsixEntryAddressLow), r));
    EXPECT_EQ(r, q);
}

TEST_F(MsixTest, UnmaskedVectorTriggersWithTheProgrammedMessage) {
    set_control(kMsixControlEnable);
    program_entry(0, 0xfee00000, 0x21);
    unmask(0);
    table->notify(0);
    EXPECT_EQ(vec(0).triggers, 1);
    EXPECT_EQ(vec(0).message, (MsiMessage{0xfee00000, 0x21}));
    EXPECT_EQ(pba(), 0u);
    EXPECT_EQ(vec(1).triggers, 0);
}

TEST_F(MsixTest, MaskedVectorIsPendingUntilUnmasked) {
    set_control(kMsixControlEnable);
    program_entry(1, 0xfee00000, 0x22);
    table->notify(1);
    table->notify(1);
    EXPECT_EQ(vec(1).triggers, 0);
    EXPECT_TRUE(table->pending(1));
    EXPECT_EQ(pba(), 0b010u);

    unmask(1);
    EXPECT_EQ(vec(1).triggers, 1) << "one delivery for the pending bit";
    EXPECT_EQ(vec(1).message, (MsiMessage{0xfee00000, 0x22})) << "programmed before delivery";
    EXPECT_EQ(pba(), 0u);
    EXPECT_FALSE(table->pending(1));

    mask(1);
    unmask(1);
    EXPECT_EQ(vec(1).triggers, 1) << "nothing pending: unmask delivers nothing";
}

TEST_F(MsixTest, FunctionMaskHoldsEveryVector) {
    set_control(kMsixControlEnable | kMsixControlFunctionMask);
    program_entry(0, 0xfee00000, 0x30);
    program_entry(2, 0xfee00000, 0x32);
    unmask(0);
    unmask(2);
    table->notify(0);
    table->notify(2);
    EXPECT_EQ(vec(0).triggers + vec(2).triggers, 0);
    EXPECT_EQ(pba(), 0b101u);
    EXPECT_FALSE(table->vector_masked(0)) << "function mask leaves entry masks alone";

    set_control(kMsixControlEnable);
    EXPECT_EQ(vec(0).triggers, 1);
    EXPECT_EQ(vec(2).triggers, 1);
    EXPECT_EQ(pba(), 0u);
}

TEST_F(MsixTest, EventsWhileDisabledWaitForEnable) {
    program_entry(0, 0xfee00000, 0x40);
    unmask(0);
    table->notify(0);
    EXPECT_EQ(vec(0).triggers, 0);
    EXPECT_TRUE(table->pending(0));
    set_control(kMsixControlEnable);
    EXPECT_EQ(vec(0).triggers, 1);
    EXPECT_FALSE(table->pending(0));
}

TEST_F(MsixTest, RewritingAnUnmaskedEntryReprogramsTheVector) {
    set_control(kMsixControlEnable);
    program_entry(0, 0xfee00000, 0x50);
    unmask(0);
    EXPECT_EQ(vec(0).message.data, 0x50u);
    mmio_write32(entry(0, kMsixEntryData), 0x51);
    EXPECT_EQ(vec(0).message.data, 0x51u);
    table->notify(0);
    EXPECT_EQ(vec(0).triggers, 1);
}

TEST_F(MsixTest, MaskedWritesAreDeferredUntilUnmask) {
    program_entry(0, 0xfee00000, 0x60);
    EXPECT_EQ(vec(0).updates, 0) << "no route update per field while masked";
    unmask(0);
    EXPECT_EQ(vec(0).updates, 1);
    EXPECT_EQ(vec(0).message, (MsiMessage{0xfee00000, 0x60}));
}

TEST_F(MsixTest, OutOfRangeVectorsAreIgnored) {
    set_control(kMsixControlEnable);
    table->notify(kVectors);
    table->notify(0xffff);  // virtio's NO_VECTOR
    for (unsigned v = 0; v < kVectors; ++v) {
        EXPECT_EQ(vec(v).triggers, 0);
        EXPECT_FALSE(table->pending(v));
    }
}

TEST_F(MsixTest, OddAccessesAreIgnoredAndReadZero) {
    program_entry(0, 0xfee00000, 0x70);
    const std::array<uint8_t, 2> word{0xff, 0xff};
    const std::array<uint8_t, 1> byte{0xff};
    const std::array<uint8_t, 4> dword{0xff, 0xff, 0xff, 0xff};
    EXPECT_TRUE(mmio.write(entry(0, kMsixEntryData), word));          // wrong width
    EXPECT_TRUE(mmio.write(entry(0, kMsixEntryData + 1), byte));      // wrong width
    EXPECT_TRUE(mmio.write(entry(0, kMsixEntryData + 2), dword));     // unaligned
    EXPECT_TRUE(mmio.write(entry(0, kMsixEntryVectorControl) + 0, word));
    const std::array<uint8_t, 8> qword{};
    EXPECT_TRUE(mmio.write(entry(0, kMsixEntryAddressHigh), qword));  // misaligned qword
    EXPECT_EQ(table->message(0), (MsiMessage{0xfee00000, 0x70}));
    EXPECT_TRUE(table->vector_masked(0));

    std::array<uint8_t, 2> r2{0xaa, 0xaa};
    EXPECT_TRUE(mmio.read(entry(0, kMsixEntryData), r2));
    EXPECT_EQ(r2, (std::array<uint8_t, 2>{0, 0}));
    std::array<uint8_t, 4> r4{0xaa, 0xaa, 0xaa, 0xaa};
    EXPECT_TRUE(mmio.read(entry(0, kMsixEntryData + 1), r4));
    EXPECT_EQ(r4, (std::array<uint8_t, 4>{0, 0, 0, 0}));

    // Past the end of the table (directly: the BAR dispatcher would not route it).
    table->write_table(kVectors * kMsixEntrySize, dword);
    table->read_table(kVectors * kMsixEntrySize, r4);
    EXPECT_EQ(r4, (std::array<uint8_t, 4>{0, 0, 0, 0}));
    table->read_table(UINT64_MAX - 3, r4);
    EXPECT_EQ(r4, (std::array<uint8_t, 4>{0, 0, 0, 0}));
}

TEST_F(MsixTest, PbaIsReadOnly) {
    set_control(kMsixControlEnable);
    table->notify(2);
    mmio_write32(kBarBase + kPbaOffset, 0);
    EXPECT_EQ(pba(), 0b100u);
    mmio_write32(kBarBase + kPbaOffset, 0xffffffff);
    EXPECT_EQ(pba(), 0b100u);
}

// A device thread notifying while a vCPU masks and unmasks: whatever the
// interleaving, an event is either delivered or still pending, never lost.
TEST_F(MsixTest, ConcurrentNotifyAndMaskingLosesNothing) {
    set_control(kMsixControlEnable);
    program_entry(0, 0xfee00000, 0x80);
    std::atomic<bool> stop{false};
    std::atomic<int> notified{0};
    std::thread device([&] {
        while (!stop.load()) {
            table->notify(0);
            notified.fetch_add(1);
        }
    });
    for (int i = 0; i < 2000; ++i) {
        mask(0);
        unmask(0);
    }
    // On a loaded machine the device thread may not have run yet: make sure
    // it raised at least one event while the vCPU side was toggling.
    while (notified.load() == 0) std::this_thread::yield();
    mask(0);
    stop.store(true);
    device.join();
    int delivered_before_unmask = vec(0).triggers;
    bool pending = table->pending(0);
    unmask(0);
    EXPECT_LE(vec(0).triggers, notified.load());
    EXPECT_GE(vec(0).triggers, 1);
    // The last notify was either delivered already or is delivered now.
    EXPECT_EQ(vec(0).triggers, delivered_before_unmask + (pending ? 1 : 0));
    EXPECT_FALSE(table->pending(0));
    EXPECT_EQ(vec(0).message, (MsiMessage{0xfee00000, 0x80}));
}

TEST(MsixTableTest, SizeLimitsAndLargePba) {
    FakeMsiAllocator allocator;
    EXPECT_THROW(MsixTable::create(0, allocator), Error);
    EXPECT_THROW(MsixTable::create(2049, allocator), Error);
    auto table = MsixTable::create(70, allocator);
    EXPECT_EQ(table->table_bytes(), 70u * 16);
    EXPECT_EQ(table->pba_bytes(), 16u);
    table->notify(40);
    table->notify(66);
    std::array<uint8_t, 8> q{};
    table->read_pba(0, q);
    EXPECT_EQ(q, (std::array<uint8_t, 8>{0, 0, 0, 0, 0, 0x01, 0, 0}));  // bit 40: byte 5
    table->read_pba(8, q);
    EXPECT_EQ(q, (std::array<uint8_t, 8>{0x04, 0, 0, 0, 0, 0, 0, 0}));  // bit 66 - 64
}

TEST(MsixTableTest, AddMsixValidatesPlacement) {
    FakeMsiAllocator allocator;
    PciFunction fn(PciIdentity{});
    fn.add_bar(0, BarKind::Mmio32, 0x1000);
    fn.add_bar(1, BarKind::Io, 0x100);
    EXPECT_THROW(fn.add_msix(4, 1, 0, 0, 0x800, allocator), Error) << "I/O BAR";
    EXPECT_THROW(fn.add_msix(4, 0, 4, 0, 0x800, allocator), Error) << "unaligned table";
    EXPECT_THROW(fn.add_msix(4, 2, 0, 0, 0x800, allocator), Error) << "no such BAR";
    EXPECT_THROW(fn.add_msix(512, 0, 0, 0, 0x800, allocator), Error) << "table too big for BAR";
    fn.add_msix(4, 0, 0, 0, 0x800, allocator);
    EXPECT_THROW(fn.add_msix(4, 0, 0x400, 0, 0x900, allocator), Error) << "twice";
}

}  // namespace
}  // namespace tapvm::pci
