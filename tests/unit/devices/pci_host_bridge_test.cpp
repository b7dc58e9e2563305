// The host bridge seen through port I/O 0xcf8-0xcff and the ECAM window, as a
// guest kernel's PCI scan sees it.
#include <gtest/gtest.h>

#include <array>
#include <map>
#include <memory>

#include "devices/pci/pci_host_bridge.h"
#include "support/fake_irq.h"
#include "vmm/bus.h"
#include "vmm/error.h"
#include "vmm/layout.h"

namespace tapvm::pci {
namespace {

using tapvm::testing::FakeIrqLine;

constexpr uint64_t kCf8 = layout::kPciConfigAddress;
constexpr uint64_t kCfc = layout::kPciConfigAddress + 4;

class RecordingRegionForBridge : public BusDevice {
public:
    void read(uint64_t offset, std::span<uint8_t> data) override {
        last_read = offset;
        std::fill(data.begin(), data.end(), 0);
    }
    void write(uint64_t, std::span<const uint8_t>) override {}
    uint64_t last_read = UINT64_MAX;
};

uint32_t config_address(unsigned bus, unsigned dev, unsigned fn, unsigned reg) {
    return PciConfigPorts::kEnable | bus << 16 | dev << 11 | fn << 8 | (reg & 0xfc);
}

class PciHostBridgeTest : public ::testing::Test {
protected:
    void SetUp() override {
        bridge = std::make_unique<PciHostBridge>(
            PciBuses{&mmio, &pio}, [this](uint32_t gsi) -> IrqLine* {
                requested_gsis.push_back(gsi);
                return &lines[gsi];
            });
        pio.insert(layout::kPciConfigAddress, PciConfigPorts::kSize, bridge->config_ports());
        mmio.insert(layout::kEcamStart, layout::kEcamSize, bridge->ecam());
    }

    // A device with an I/O BAR, a 32-bit and a 64-bit memory BAR, INTA#.
    std::shared_ptr<PciFunction> make_device(uint16_t device_id) {
        PciIdentity id;
        id.vendor_id = 0x1af4;
        id.device_id = device_id;
        id.class_code = kClassNetwork;
        auto fn = std::make_shared<PciFunction>(id, "dev" + std::to_string(device_id));
        fn->add_bar(0, BarKind::Io, 0x20);
        fn->add_bar(1, BarKind::Mmio32, 0x1000);
        fn->add_bar(2, BarKind::Mmio64, 0x4000, true);
        fn->set_intx(1, nullptr);
        return fn;
    }

    uint32_t port_read(uint64_t port, size_t width) {
        std::array<uint8_t, 4> b{};
        EXPECT_TRUE(pio.read(port, std::span(b).first(width)));
        return uint32_t(b[0]) | uint32_t(b[1]) << 8 | uint32_t(b[2]) << 16 | uint32_t(b[3]) << 24;
    }
    void port_write(uint64_t port, size_t width, uint32_t v) {
        const std::array<uint8_t, 4> b{uint8_t(v), uint8_t(v >> 8), uint8_t(v >> 16), uint8_t(v >> 24)};
        EXPECT_TRUE(pio.write(port, std::span(b).first(width)));
    }
    uint32_t cf8_read(unsigned dev, unsigned reg, size_t width = 4, unsigned bus = 0, unsigned fn = 0) {
        port_write(kCf8, 4, config_address(bus, dev, fn, reg));
        return port_read(kCfc + (reg & 3), width);
    }
    void cf8_write(unsigned dev, unsigned reg, size_t width, uint32_t v) {
        port_write(kCf8, 4, config_address(0, dev, 0, reg));
        port_write(kCfc + (reg & 3), width, v);
    }
    uint32_t ecam_read(unsigned dev, unsigned reg, size_t width = 4, unsigned fn = 0) {
        std::array<uint8_t, 4> b{};
        EXPECT_TRUE(mmio.read(layout::kEcamStart + (dev << 15 | fn << 12 | reg), std::span(b).first(width)));
        return uint32_t(b[0]) | uint32_t(b[1]) << 8 | uint32_t(b[2]) << 16 | uint32_t(b[3]) << 24;
    }

    Bus mmio{"mmio"};
    Bus pio{"pio"};
    std::map<uint32_t, FakeIrqLine> lines;
    std::vector<uint32_t> requested_gsis;
    std::unique_ptr<PciHostBridge> bridge;
};

TEST_F(PciHostBridgeTest, ConfigAddressKeepsOnlyDefinedBits) {
    port_write(kCf8, 4, 0x80000000);
    EXPECT_EQ(port_read(kCf8, 4), 0x80000000u);  // Linux's pci_check_type1() probe
    port_write(kCf8, 4, 0xffffffff);
    EXPECT_EQ(port_read(kCf8, 4), 0x80fffffcu) << "reserved bits 30:24 and 1:0 read zero";
    port_write(kCf8, 4, 0);
    EXPECT_EQ(port_read(kCf8, 4), 0u);
    // Narrow accesses to 0xcf8-0xcfb are not CONFIG_ADDRESS.
    port_write(kCf8 + 3, 1, 0x80);
    EXPECT_EQ(port_read(kCf8, 4), 0u);
    EXPECT_EQ(port_read(kCf8, 2), 0xffffu);
}

TEST_F(PciHostBridgeTest, HostBridgeAtSlotZero) {
    EXPECT_EQ(cf8_read(0, kVendorId), uint32_t(kHostBridgeDeviceId) << 16 | kHostBridgeVendorId);
    EXPECT_EQ(cf8_read(0, kRevisionId) >> 16, 0x0600u) << "class: host bridge";
    EXPECT_EQ(cf8_read(0, kHeaderType, 1), kHeaderTypeNormal);
}

TEST_F(PciHostBridgeTest, ByteAndWordAccessesUseTheDataPortLanes) {
    bridge->add_device(make_device(0x1041));
    EXPECT_EQ(cf8_read(1, kDeviceId, 2), 0x1041u) << "word at 0xcfe";
    EXPECT_EQ(cf8_read(1, kVendorId + 1, 1), 0x1au) << "byte at 0xcfd";
    EXPECT_EQ(cf8_read(1, kClassCode, 1), kClassNetwork) << "byte at 0xcff";
    EXPECT_EQ(cf8_read(1, kVendorId + 1, 2), 0x411au) << "word at 0xcfd spans lanes 1-2";

    cf8_write(1, kCommand, 1, kCommandMemorySpace);
    EXPECT_EQ(bridge->function(0, 1, 0)->command(), kCommandMemorySpace);
    cf8_write(1, kInterruptLine, 1, 0x0a);
    EXPECT_EQ(cf8_read(1, kInterruptLine, 1), 0x0au);
    cf8_write(1, kCommand + 1, 1, kCommandIntxDisable >> 8);  // byte at 0xcfd
    EXPECT_EQ(bridge->function(0, 1, 0)->command(), kCommandMemorySpace | kCommandIntxDisable);
}

TEST_F(PciHostBridgeTest, DataAccessBeyondTheDataPortReadsOnes) {
    port_write(kCf8, 4, config_address(0, 0, 0, 0));
    EXPECT_EQ(port_read(kCf8 + 2, 4), 0xffffffffu) << "dword at 0xcfa straddles both registers";
    // The Bus never hands out an access past its 8 ports; the device copes anyway.
    std::array<uint8_t, 4> b{};
    bridge->config_ports()->read(6, b);
    EXPECT_EQ(b, (std::array<uint8_t, 4>{0xff, 0xff, 0xff, 0xff})) << "dword at 0xcfe";
    EXPECT_EQ(port_read(kCfc, 2), kHostBridgeVendorId) << "the address register is intact";
}

TEST_F(PciHostBridgeTest, EnableBitClearReadsOnesAndDropsWrites) {
    bridge->add_device(make_device(0x1041));
    port_write(kCf8, 4, config_address(0, 1, 0, kCommand) & ~PciConfigPorts::kEnable);
    EXPECT_EQ(port_read(kCfc, 4), 0xffffffffu);
    port_write(kCfc, 2, kCommandMemorySpace);
    EXPECT_EQ(bridge->function(0, 1, 0)->command(), 0);
}

TEST_F(PciHostBridgeTest, AbsentFunctionsReadAllOnes) {
    bridge->add_device(make_device(0x1041));
    EXPECT_EQ(cf8_read(2, kVendorId), 0xffffffffu) << "empty slot";
    EXPECT_EQ(cf8_read(31, kVendorId), 0xffffffffu);
    EXPECT_EQ(cf8_read(1, kVendorId, 4, 0, 1), 0xffffffffu) << "function 1";
    EXPECT_EQ(cf8_read(1, kVendorId, 4, 1, 0), 0xffffffffu) << "bus 1";
    EXPECT_EQ(cf8_read(2, kVendorId, 1), 0xffu);
    cf8_write(2, kCommand, 2, 0xffff);  // dropped, must not crash
    EXPECT_EQ(ecam_read(2, kVendorId), 0xffffffffu);
    EXPECT_EQ(ecam_read(1, kVendorId, 4, 3), 0xffffffffu);
}

TEST_F(PciHostBridgeTest, EcamMatchesMechanismOne) {
    bridge->add_device(make_device(0x1041));
    bridge->add_device(make_device(0x1042));
    for (unsigned dev = 0; dev < 4; ++dev)
        for (unsigned reg = 0; reg < kConfigSpaceSize; reg += 4)
            ASSERT_EQ(ecam_read(dev, reg), cf8_read(dev, reg)) << "dev " << dev << " reg " << reg;
    EXPECT_EQ(ecam_read(1, kDeviceId, 2), 0x1041u);
    EXPECT_EQ(ecam_read(2, kDeviceId, 2), 0x1042u);
    EXPECT_EQ(ecam_read(1, 0x100), 0u) << "extended space of a present function";
    EXPECT_EQ(ecam_read(1, 0xffc), 0u);
}

TEST_F(PciHostBridgeTest, EcamWritesReachTheFunction) {
    bridge->add_device(make_device(0x1041));
    const std::array<uint8_t, 2> cmd{kCommandMemorySpace, 0};
    EXPECT_TRUE(mmio.write(layout::kEcamStart + (1 << 15) + kCommand, cmd));
    EXPECT_EQ(cf8_read(1, kCommand, 2), kCommandMemorySpace);
    // An access crossing into the next function's 4 KiB is refused.
    std::array<uint8_t, 4> r{};
    EXPECT_TRUE(mmio.read(layout::kEcamStart + (1 << 15) + 0xffe, r));
    EXPECT_EQ(r, (std::array<uint8_t, 4>{0xff, 0xff, 0xff, 0xff}));
}

TEST_F(PciHostBridgeTest, AddDeviceAssignsSlotsInterruptsAndBars) {
    auto a = make_device(0x1041);
    auto b = make_device(0x1042);
    EXPECT_EQ(bridge->add_device(a), 1u);
    EXPECT_EQ(bridge->add_device(b), 2u);
    EXPECT_EQ(bridge->function(0, 1, 0), a.get());
    EXPECT_EQ(bridge->function(0, 2, 0), b.get());

    EXPECT_EQ(a->interrupt_line(), layout::pci_intx_gsi(1, 0));
    EXPECT_EQ(b->interrupt_line(), layout::pci_intx_gsi(2, 0));
    EXPECT_EQ(cf8_read(1, kInterruptPin, 1), 1u);
    EXPECT_EQ(requested_gsis, (std::vector<uint32_t>{layout::pci_intx_gsi(1, 0),
                                                     layout::pci_intx_gsi(2, 0)}));
    a->set_intx_level(true);
    EXPECT_TRUE(lines[layout::pci_intx_gsi(1, 0)].level()) << "INTx wired to the slot's GSI";
    EXPECT_FALSE(lines[layout::pci_intx_gsi(2, 0)].level());

    // Every BAR is size-aligned, inside its window, and no two overlap.
    std::vector<std::pair<uint64_t, uint64_t>> mem, io;
    for (auto* fn : {a.get(), b.get()}) {
        for (unsigned bar : {0u, 1u, 2u}) {
            auto addr = fn->bar_register_address(bar);
            ASSERT_TRUE(addr);
            uint64_t size = fn->bar_size(bar);
            EXPECT_EQ(*addr % size, 0u);
            if (*fn->bar_kind(bar) == BarKind::Io) {
                EXPECT_GE(*addr, layout::kPciIoStart);
                EXPECT_LE(*addr + size, uint64_t(layout::kPciIoStart) + layout::kPciIoSize);
                io.emplace_back(*addr, size);
            } else {
                EXPECT_GE(*addr, layout::kPciMmio32Start);
                EXPECT_LE(*addr + size, layout::kPciMmio32Start + layout::kPciMmio32Size);
                mem.emplace_back(*addr, size);
            }
        }
    }
    for (auto* list : {&mem, &io})
        for (size_t i = 0; i < list->size(); ++i)
            for (size_t j = i + 1; j < list->size(); ++j) {
                auto [a0, s0] = (*list)[i];
                auto [a1, s1] = (*list)[j];
                EXPECT_TRUE(a0 + s0 <= a1 || a1 + s1 <= a0) << "BARs overlap";
            }

    // The guest reads the assigned address through CF8/CFC.
    EXPECT_EQ(cf8_read(1, kBar0 + 4), *a->bar_register_address(1));
}

TEST_F(PciHostBridgeTest, GuestEnablingDecodeMapsTheAssignedBars) {
    auto fn = make_device(0x1041);
    auto region = std::make_shared<RecordingRegionForBridge>();
    fn->add_bar_region(1, 0x100, 0x10, region);
    bridge->add_device(fn);
    uint64_t base = *fn->bar_register_address(1);
    std::array<uint8_t, 4> b{};
    EXPECT_FALSE(mmio.read(base + 0x100, b)) << "decode off after assignment";
    cf8_write(1, kCommand, 2, kCommandMemorySpace | kCommandIoSpace);
    EXPECT_TRUE(mmio.read(base + 0x104, b));
    EXPECT_EQ(region->last_read, 4u);
    EXPECT_TRUE(pio.read(*fn->bar_register_address(0), b)) << "I/O BAR on the port bus";
}

TEST_F(PciHostBridgeTest, DestroyingTheBridgeUnmapsItsDevicesAndSilencesConfigAccess) {
    bridge->add_device(make_device(0x1041));
    cf8_write(1, kCommand, 2, kCommandMemorySpace);
    uint64_t base = *bridge->function(0, 1, 0)->bar_address(1);
    std::array<uint8_t, 4> b{};
    ASSERT_TRUE(mmio.read(base, b));
    bridge.reset();  // the buses still hold the config devices
    EXPECT_FALSE(mmio.read(base, b)) << "BAR left the bus with its function";
    EXPECT_EQ(cf8_read(0, kVendorId), 0xffffffffu);
    EXPECT_EQ(ecam_read(0, kVendorId), 0xffffffffu);
}

TEST_F(PciHostBridgeTest, AddingTheSameFunctionTwiceThrows) {
    auto fn = make_device(0x1041);
    bridge->add_device(fn);
    uint64_t bar1 = *fn->bar_register_address(1);
    EXPECT_THROW(bridge->add_device(fn), Error);
    EXPECT_EQ(*fn->bar_register_address(1), bar1) << "BARs untouched";
    EXPECT_EQ(bridge->add_device(make_device(0x1042)), 2u) << "slot 2 still next";
}

TEST_F(PciHostBridgeTest, BusFullAndWindowExhaustionThrow) {
    for (unsigned slot = 1; slot < kSlotsPerBus; ++slot) {
        PciIdentity id;
        id.vendor_id = 0x1af4;
        bridge->add_device(std::make_shared<PciFunction>(id));
    }
    EXPECT_THROW(bridge->add_device(make_device(1)), Error);
    EXPECT_THROW(bridge->add_device(nullptr), Error);

    PciHostBridge other({&mmio, &pio});
    PciIdentity id;
    auto huge = std::make_shared<PciFunction>(id);
    huge->add_bar(0, BarKind::Mmio32, 1ull << 30);  // 1 GiB > 512 MiB window
    EXPECT_THROW(other.add_device(huge), Error);
}

}  // namespace
}  // namespace tapvm::pci
