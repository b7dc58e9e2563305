// The virtio-pci transport driven the way a guest driver drives it: through
// PCI configuration space and the BARs mapped on real Buses, with a tiny
// fake VirtioDevice behind it.
#include "virtio/pci/virtio_pci_transport.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <map>
#include <thread>

#include "devices/pci/msix.h"
#include "devices/pci/pci_function.h"
#include "devices/pci/pci_regs.h"
#include "support/testkit.h"
#include "virtio/features.h"
#include "virtio/pci/virtio_pci_regs.h"
#include "vmm/error.h"

namespace tapvm::virtio {
namespace {

namespace r = pci_regs;
using testing::FakeDriverQueue;

constexpr uint64_t kModernBarAddr = 0xc0000000;
constexpr uint64_t kLegacyBarAddr = 0x1000;
constexpr uint16_t kMaxQueue = 256;
constexpr uint64_t kDeviceFeatureBit = 5;  // some device-specific feature

// Two queues, a few bytes of config, and a record of what the transport did.
class FakeDevice : public VirtioDevice {
public:
    uint32_t device_type() const override { return type; }
    uint64_t offered_features() const override { return offered; }
    uint16_t num_queues() const override { return 2; }
    uint16_t max_queue_size() const override { return kMaxQueue; }
    void read_config(uint64_t offset, std::span<uint8_t> data) override {
        for (size_t i = 0; i < data.size(); ++i)
            data[i] = offset + i < config.size() ? config[offset + i] : 0;
    }
    void write_config(uint64_t offset, std::span<const uint8_t> data) override {
        for (size_t i = 0; i < data.size(); ++i)
            if (offset + i < config.size()) config[offset + i] = data[i];
    }
    bool accept_features(uint64_t features) override {
        accepted.push_back(features);
        return accept;
    }
    void activate(const ActivationContext& context) override {
        ++activations;
        last = context;
    }
    void reset() override { ++resets; }

    uint32_t type = 1;
    uint64_t offered = bit(kFVersion1) | bit(kFRingEventIdx) | bit(kFRingIndirectDesc) | bit(kDeviceFeatureBit);
    std::vector<uint8_t> config = {0x52, 0x54, 0x00, 0x12, 0x34, 0x56, 0x01, 0x00};
    bool accept = true;
    std::vector<uint64_t> accepted;
    int activations = 0;
    int resets = 0;
    ActivationContext last;
};

// Where a virtio structure lives, as its capability says.
struct VirtioCap {
    uint8_t cap_offset;  // in config space
    uint8_t bar;
    uint32_t offset;
    uint32_t length;
};

uint64_t consume(int fd) {
    uint64_t value = 0;
    return ::read(fd, &value, sizeof value) == sizeof value ? value : 0;
}

class TransportTest : public ::testing::Test {
protected:
    void build(VirtioPciOptions options = {}) {
        transport_ = std::make_unique<VirtioPciTransport>(device_, memory_, msi_, io_events_, options);
        fn_ = transport_->function();
        fn_->connect_intx(&line_);
        fn_->attach({&mmio_, &pio_});
        fn_->set_bar_address(r::kModernBar, kModernBarAddr);
        if (options.legacy) fn_->set_bar_address(r::kLegacyBar, kLegacyBarAddr);
        fn_->set_command(pci::kCommandIoSpace | pci::kCommandMemorySpace | pci::kCommandBusMaster);
        find_capabilities();
    }

    // --- PCI configuration space, as the guest's PCI core reads it ----------
    uint32_t cfg_read(uint16_t offset, size_t width) {
        uint8_t bytes[4] = {};
        fn_->read_config(offset, std::span(bytes, width));
        return bytes[0] | bytes[1] << 8 | bytes[2] << 16 | uint32_t(bytes[3]) << 24;
    }
    void cfg_write(uint16_t offset, size_t width, uint32_t value) {
        uint8_t bytes[4] = {uint8_t(value), uint8_t(value >> 8), uint8_t(value >> 16), uint8_t(value >> 24)};
        fn_->write_config(offset, std::span(bytes, width));
    }
    void find_capabilities() {
        caps_.clear();
        msix_cap_ = 0;
        for (uint8_t at = cfg_read(pci::kCapabilitiesPointer, 1); at != 0; at = cfg_read(at + 1, 1)) {
            const uint8_t id = cfg_read(at, 1);
            if (id == pci::kCapIdMsix) msix_cap_ = at;
            if (id != pci::kCapIdVendorSpecific) continue;
            caps_[cfg_read(at + r::kCapCfgType, 1)] =
                VirtioCap{at, uint8_t(cfg_read(at + r::kCapBar, 1)), cfg_read(at + r::kCapOffset, 4),
                          cfg_read(at + r::kCapLength, 4)};
        }
    }

    // --- BAR accesses ----------------------------------------------------------
    uint64_t mmio_read(uint64_t addr, size_t width) {
        uint8_t bytes[8] = {};
        EXPECT_TRUE(mmio_.read(addr, std::span(bytes, width))) << std::hex << addr;
        uint64_t v = 0;
        for (size_t i = 0; i < width; ++i) v |= uint64_t(bytes[i]) << (8 * i);
        return v;
    }
    void mmio_write(uint64_t addr, size_t width, uint64_t value) {
        uint8_t bytes[8];
        for (size_t i = 0; i < 8; ++i) bytes[i] = uint8_t(value >> (8 * i));
        EXPECT_TRUE(mmio_.write(addr, std::span(bytes, width))) << std::hex << addr;
    }
    uint64_t structure(uint8_t type) {
        EXPECT_TRUE(caps_.count(type)) << "no capability of type " << int(type);
        return kModernBarAddr + caps_[type].offset;
    }
    uint64_t common(uint16_t reg) { return structure(r::kCapCommonCfg) + reg; }
    uint32_t read_common(uint16_t reg, size_t width) { return uint32_t(mmio_read(common(reg), width)); }
    void write_common(uint16_t reg, size_t width, uint64_t value) { mmio_write(common(reg), width, value); }
    uint8_t status() { return uint8_t(read_common(r::kDeviceStatus, 1)); }
    void add_status(uint8_t bits) { write_common(r::kDeviceStatus, 1, status() | bits); }

    uint32_t pio_read(uint16_t reg, size_t width) {
        uint8_t bytes[4] = {};
        EXPECT_TRUE(pio_.read(kLegacyBarAddr + reg, std::span(bytes, width)));
        return bytes[0] | bytes[1] << 8 | bytes[2] << 16 | uint32_t(bytes[3]) << 24;
    }
    void pio_write(uint16_t reg, size_t width, uint32_t value) {
        uint8_t bytes[4] = {uint8_t(value), uint8_t(value >> 8), uint8_t(value >> 16), uint8_t(value >> 24)};
        EXPECT_TRUE(pio_.write(kLegacyBarAddr + reg, std::span(bytes, width)));
    }

    // --- Driver steps ------------------------------------------------------------
    void negotiate(uint64_t features) {
        write_common(r::kDeviceStatus, 1, 0);
        add_status(kStatusAcknowledge);
        add_status(kStatusDriver);
        write_common(r::kDriverFeatureSelect, 4, 0);
        write_common(r::kDriverFeature, 4, uint32_t(features));
        write_common(r::kDriverFeatureSelect, 4, 1);
        write_common(r::kDriverFeature, 4, uint32_t(features >> 32));
        add_status(kStatusFeaturesOk);
    }
    void setup_queue(uint16_t index, const FakeDriverQueue& queue, uint16_t vector = r::kNoVector) {
        write_common(r::kQueueSelect, 2, index);
        write_common(r::kQueueSize, 2, queue.size());
        write_common(r::kQueueMsixVector, 2, vector);
        write_common(r::kQueueDescLo, 4, uint32_t(queue.desc_addr()));
        write_common(r::kQueueDescHi, 4, queue.desc_addr() >> 32);
        write_common(r::kQueueDriverLo, 4, uint32_t(queue.avail_addr()));
        write_common(r::kQueueDriverHi, 4, queue.avail_addr() >> 32);
        write_common(r::kQueueDeviceLo, 4, uint32_t(queue.used_addr()));
        write_common(r::kQueueDeviceHi, 4, queue.used_addr() >> 32);
        write_common(r::kQueueEnable, 2, 1);
    }
    // The whole modern sequence (virtio 1.2 §3.1.1).
    void bring_up(uint16_t vector0 = r::kNoVector, uint16_t vector1 = r::kNoVector) {
        negotiate(kFeatures);
        ASSERT_TRUE(status() & kStatusFeaturesOk);
        setup_queue(0, rx_, vector0);
        setup_queue(1, tx_, vector1);
        add_status(kStatusDriverOk);
    }
    void enable_msix() {
        cfg_write(msix_cap_ + pci::kMsixMessageControl, 2, pci::kMsixControlEnable);
        for (unsigned v = 0; v < 3; ++v)  // unmask every entry
            mmio_write(kModernBarAddr + r::kMsixTableOffset + v * pci::kMsixEntrySize +
                           pci::kMsixEntryVectorControl, 4, 0);
    }

    const uint64_t kFeatures = bit(kFVersion1) | bit(kFRingEventIdx) | bit(kDeviceFeatureBit);

    GuestMemory memory_{{{0, 16 << 20}}};
    std::shared_ptr<FakeDevice> device_ = std::make_shared<FakeDevice>();
    testing::FakeMsiAllocator msi_;
    testing::FakeIoEventRegistry io_events_;
    testing::FakeIrqLine line_;
    Bus mmio_{"mmio"};
    Bus pio_{"pio"};
    std::unique_ptr<VirtioPciTransport> transport_;
    std::shared_ptr<pci::PciFunction> fn_;
    std::map<uint8_t, VirtioCap> caps_;
    uint8_t msix_cap_ = 0;
    FakeDriverQueue rx_{memory_, {.size = 128, .rings = 0x10000, .data = 0x100000}};
    FakeDriverQueue tx_{memory_, {.size = 256, .rings = 0x20000, .data = 0x200000}};
};

// --- Identity and layout -------------------------------------------------------

TEST_F(TransportTest, TransitionalIdentityMatchesLegacyDrivers) {
    build();
    EXPECT_EQ(cfg_read(pci::kVendorId, 2), 0x1af4u);
    EXPECT_EQ(cfg_read(pci::kDeviceId, 2), 0x1000u);
    EXPECT_EQ(cfg_read(pci::kRevisionId, 1), 0u);
    EXPECT_EQ(cfg_read(pci::kSubsystemVendorId, 2), 0x1af4u);
    EXPECT_EQ(cfg_read(pci::kSubsystemId, 2), 1u);
    EXPECT_EQ(cfg_read(pci::kClassCode, 1), pci::kClassNetwork);
    EXPECT_EQ(cfg_read(pci::kInterruptPin, 1), 1u);
    EXPECT_EQ(fn_->bar_kind(r::kLegacyBar), pci::BarKind::Io);
    EXPECT_EQ(fn_->bar_kind(r::kModernBar), pci::BarKind::Mmio32);
}

TEST_F(TransportTest, ModernOnlyIdentityHasNoIoBar) {
    build({.legacy = false});
    EXPECT_EQ(cfg_read(pci::kDeviceId, 2), 0x1041u);
    EXPECT_EQ(cfg_read(pci::kRevisionId, 1), 1u);
    EXPECT_GE(cfg_read(pci::kSubsystemId, 2), 0x40u);
    EXPECT_FALSE(fn_->bar_kind(0).has_value());
    EXPECT_EQ(caps_.size(), 5u);
}

TEST_F(TransportTest, DeviceTypeWithoutTransitionalIdNeedsModernOnly) {
    device_->type = 16;  // GPU: no legacy interface ever existed
    EXPECT_THROW(build(), Error);
    build({.legacy = false});
    EXPECT_EQ(cfg_read(pci::kDeviceId, 2), 0x1040u + 16);
}

TEST_F(TransportTest, CapabilitiesDescribeEveryStructure) {
    build();
    for (uint8_t type : {r::kCapCommonCfg, r::kCapNotifyCfg, r::kCapIsrCfg, r::kCapDeviceCfg, r::kCapPciCfg})
        ASSERT_TRUE(caps_.count(type)) << int(type);
    EXPECT_EQ(caps_[r::kCapCommonCfg].bar, r::kModernBar);
    EXPECT_GE(caps_[r::kCapCommonCfg].length, 0x38u);
    EXPECT_EQ(caps_[r::kCapCommonCfg].offset % 4, 0u);
    EXPECT_EQ(caps_[r::kCapIsrCfg].length, 1u);
    EXPECT_EQ(caps_[r::kCapDeviceCfg].offset % 4, 0u);
    EXPECT_EQ(cfg_read(caps_[r::kCapNotifyCfg].cap_offset + r::kNotifyCapMultiplier, 4), 4u);
    EXPECT_GE(caps_[r::kCapNotifyCfg].length, 2u * 4);  // §4.1.4.4.1: room for every queue
    EXPECT_EQ(cfg_read(caps_[r::kCapPciCfg].cap_offset + r::kCapLen, 1), r::kPciCfgCapSize);
    ASSERT_NE(msix_cap_, 0);
    EXPECT_EQ((cfg_read(msix_cap_ + pci::kMsixMessageControl, 2) & pci::kMsixControlTableSizeMask) + 1, 3u);
    // The device configuration is the device's.
    EXPECT_EQ(mmio_read(structure(r::kCapDeviceCfg), 4), 0x12005452u);
    EXPECT_EQ(mmio_read(structure(r::kCapDeviceCfg) + 6, 1), 1u);
    EXPECT_EQ(read_common(r::kNumQueues, 2), 2u);
}

// --- The modern initialization sequence ---------------------------------------------

TEST_F(TransportTest, ModernInitActivatesTheDeviceWithValidatedQueues) {
    build();
    write_common(r::kDeviceFeatureSelect, 4, 0);
    EXPECT_EQ(read_common(r::kDeviceFeature, 4), uint32_t(device_->offered));
    write_common(r::kDeviceFeatureSelect, 4, 1);
    EXPECT_EQ(read_common(r::kDeviceFeature, 4), uint32_t(device_->offered >> 32));
    write_common(r::kDeviceFeatureSelect, 4, 2);
    EXPECT_EQ(read_common(r::kDeviceFeature, 4), 0u);

    write_common(r::kQueueSelect, 2, 0);
    EXPECT_EQ(read_common(r::kQueueSize, 2), kMaxQueue);
    EXPECT_EQ(read_common(r::kQueueEnable, 2), 0u);
    EXPECT_EQ(read_common(r::kQueueNotifyOff, 2), 0u);
    write_common(r::kQueueSelect, 2, 1);
    EXPECT_EQ(read_common(r::kQueueNotifyOff, 2), 1u);

    bring_up();
    EXPECT_EQ(status(), kStatusAcknowledge | kStatusDriver | kStatusFeaturesOk | kStatusDriverOk);
    ASSERT_EQ(device_->accepted, std::vector<uint64_t>{kFeatures});
    ASSERT_EQ(device_->activations, 1);
    EXPECT_TRUE(transport_->active());
    const ActivationContext& ctx = device_->last;
    EXPECT_EQ(ctx.features, kFeatures);
    EXPECT_EQ(ctx.memory, &memory_);
    ASSERT_EQ(ctx.queues.size(), 2u);
    ASSERT_NE(ctx.queues[0], nullptr);
    ASSERT_NE(ctx.queues[1], nullptr);
    EXPECT_EQ(ctx.queues[0]->size(), 128);  // the driver shrank it
    EXPECT_EQ(ctx.queues[1]->size(), 256);
    EXPECT_EQ(ctx.notify_eventfds.size(), 2u);
    EXPECT_EQ(ctx.interrupt, &transport_->interrupt());

    // The queues really are the driver's rings.
    const Gpa buf = tx_.alloc(64);
    const uint16_t head = tx_.chain().readable(buf, 64).offer();
    DescriptorChain chain;
    ASSERT_EQ(ctx.queues[1]->pop(chain).status, PopStatus::kChain);
    EXPECT_EQ(chain.head(), head);
}

TEST_F(TransportTest, DisabledQueueIsHandedOverAsNull) {
    build();
    negotiate(kFeatures);
    setup_queue(1, tx_);
    add_status(kStatusDriverOk);
    ASSERT_EQ(device_->activations, 1);
    EXPECT_EQ(device_->last.queues[0], nullptr);
    EXPECT_NE(device_->last.queues[1], nullptr);
}

TEST_F(TransportTest, FeaturesWithoutVersion1AreRefusedOnTheModernInterface) {
    build();
    negotiate(bit(kFRingEventIdx));
    EXPECT_FALSE(status() & kStatusFeaturesOk);
    EXPECT_TRUE(device_->accepted.empty()) << "the device is not even asked";
}

TEST_F(TransportTest, FeaturesRefusedByTheDeviceLeaveFeaturesOkClear) {
    build();
    device_->accept = false;
    negotiate(kFeatures);
    EXPECT_FALSE(status() & kStatusFeaturesOk);
    EXPECT_EQ(device_->accepted.size(), 1u);
    add_status(kStatusDriverOk);
    EXPECT_EQ(device_->activations, 0);
    EXPECT_TRUE(status() & kStatusDeviceNeedsReset);
}

TEST_F(TransportTest, UnofferedFeatureBitsAreMasked) {
    build();
    negotiate(kFeatures | bit(7) | bit(40));
    EXPECT_TRUE(status() & kStatusFeaturesOk);
    ASSERT_EQ(device_->accepted.size(), 1u);
    EXPECT_EQ(device_->accepted[0], kFeatures);
}

TEST_F(TransportTest, DriverFeaturesAreFrozenAtFeaturesOk) {
    build();
    negotiate(kFeatures);
    write_common(r::kDriverFeatureSelect, 4, 0);
    write_common(r::kDriverFeature, 4, 0);
    EXPECT_EQ(read_common(r::kDriverFeature, 4), uint32_t(kFeatures));
}

TEST_F(TransportTest, DriverOkWithoutFeaturesOkNeedsReset) {
    build();
    write_common(r::kDeviceStatus, 1, kStatusAcknowledge | kStatusDriver);
    setup_queue(0, rx_);
    add_status(kStatusDriverOk);
    EXPECT_EQ(device_->activations, 0);
    EXPECT_TRUE(status() & kStatusDeviceNeedsReset);
}

TEST_F(TransportTest, QueueSizeMustBeAPowerOfTwoNoLargerThanTheMaximum) {
    build();
    write_common(r::kQueueSelect, 2, 0);
    write_common(r::kQueueSize, 2, 64);
    EXPECT_EQ(read_common(r::kQueueSize, 2), 64u);
    write_common(r::kQueueSize, 2, 100);
    EXPECT_EQ(read_common(r::kQueueSize, 2), 64u);
    write_common(r::kQueueSize, 2, 512);
    EXPECT_EQ(read_common(r::kQueueSize, 2), 64u);
    write_common(r::kQueueSize, 2, 0);
    EXPECT_EQ(read_common(r::kQueueSize, 2), 64u);
}

TEST_F(TransportTest, QueueThatDoesNotExistReadsAsSizeZero) {
    build();
    write_common(r::kQueueSelect, 2, 2);
    EXPECT_EQ(read_common(r::kQueueSize, 2), 0u);
    write_common(r::kQueueDescLo, 4, 0x1234);  // ignored, no crash
    EXPECT_EQ(read_common(r::kQueueDescLo, 4), 0u);
    write_common(r::kQueueSelect, 2, 0xffff);
    EXPECT_EQ(read_common(r::kQueueEnable, 2), 0u);
}

TEST_F(TransportTest, QueueRegistersAreFrozenAfterDriverOk) {
    build();
    bring_up();
    write_common(r::kQueueSelect, 2, 1);
    write_common(r::kQueueDescLo, 4, 0x5000);
    write_common(r::kQueueSize, 2, 16);
    write_common(r::kQueueMsixVector, 2, 0);
    EXPECT_EQ(read_common(r::kQueueDescLo, 4), uint32_t(tx_.desc_addr()));
    EXPECT_EQ(read_common(r::kQueueSize, 2), 256u);
    EXPECT_EQ(read_common(r::kQueueMsixVector, 2), r::kNoVector);
    EXPECT_EQ(device_->last.queues[1]->size(), 256);
}

TEST_F(TransportTest, SixtyFourBitAccessesReachBothHalves) {
    build();
    write_common(r::kQueueSelect, 2, 1);
    write_common(r::kQueueDescLo, 8, 0x0000000123456000ull);
    EXPECT_EQ(read_common(r::kQueueDescLo, 4), 0x23456000u);
    EXPECT_EQ(read_common(r::kQueueDescHi, 4), 0x1u);
    EXPECT_EQ(mmio_read(common(r::kQueueDescLo), 8), 0x0000000123456000ull);
}

TEST_F(TransportTest, OddAccessesReadZeroAndChangeNothing) {
    build();
    EXPECT_EQ(read_common(0x38, 2), 0u);    // queue_notify_data: not offered
    EXPECT_EQ(read_common(0x100, 4), 0u);   // past the structure
    EXPECT_EQ(read_common(r::kNumQueues, 4), 0u);  // wrong width
    write_common(r::kNumQueues, 2, 7);      // read-only
    EXPECT_EQ(read_common(r::kNumQueues, 2), 2u);
    write_common(r::kDeviceStatus, 2, kStatusAcknowledge);  // wrong width
    EXPECT_EQ(status(), 0);
}

TEST_F(TransportTest, RingOutsideRamSetsDeviceNeedsResetAndSignalsConfig) {
    build();
    negotiate(kFeatures);
    setup_queue(0, rx_);
    write_common(r::kQueueSelect, 2, 1);
    write_common(r::kQueueDeviceLo, 4, 0xfffff000);  // used ring in the PCI hole
    write_common(r::kQueueEnable, 2, 1);
    add_status(kStatusDriverOk);
    EXPECT_EQ(device_->activations, 0);
    EXPECT_FALSE(transport_->active());
    EXPECT_TRUE(status() & kStatusDeviceNeedsReset);
    // No MSI-X: the config change arrives as INTx with ISR bit 1.
    EXPECT_TRUE(line_.level());
    EXPECT_EQ(mmio_read(structure(r::kCapIsrCfg), 1), r::kIsrConfig);
    EXPECT_FALSE(line_.level());
}

TEST_F(TransportTest, MisalignedRingSetsDeviceNeedsReset) {
    build();
    negotiate(kFeatures);
    setup_queue(0, rx_);
    write_common(r::kQueueDescLo, 4, uint32_t(rx_.desc_addr() + 8));
    add_status(kStatusDriverOk);
    EXPECT_EQ(device_->activations, 0);
    EXPECT_TRUE(status() & kStatusDeviceNeedsReset);
}

TEST_F(TransportTest, DeviceReportedBreakageSetsNeedsResetOnce) {
    build();
    enable_msix();
    bring_up(0, 1);
    write_common(r::kConfigMsixVector, 2, 2);
    // As the device's I/O thread does when a queue is broken().
    std::thread io([&] { transport_->device_needs_reset(); });
    io.join();
    EXPECT_TRUE(status() & kStatusDeviceNeedsReset);
    EXPECT_EQ(msi_.vectors[2]->triggers, 1) << "config change interrupt";
    transport_->device_needs_reset();
    EXPECT_EQ(msi_.vectors[2]->triggers, 1) << "told once";
    // A driver that writes back what it read does not clear it, nor set it.
    add_status(kStatusFailed);
    EXPECT_TRUE(status() & kStatusDeviceNeedsReset);
    write_common(r::kDeviceStatus, 1, 0);
    EXPECT_EQ(status(), 0);
    write_common(r::kDeviceStatus, 1, kStatusAcknowledge | kStatusDeviceNeedsReset);
    EXPECT_EQ(status(), kStatusAcknowledge);
}

TEST_F(TransportTest, ResetForgetsEverythingAndResetsTheDevice) {
    build();
    enable_msix();
    bring_up(0, 1);
    write_common(r::kConfigMsixVector, 2, 2);
    ASSERT_EQ(read_common(r::kConfigMsixVector, 2), 2u);
    ASSERT_TRUE(transport_->active());
    const int resets_before = device_->resets;

    write_common(r::kDeviceStatus, 1, 0);
    EXPECT_EQ(device_->resets, resets_before + 1);
    EXPECT_FALSE(transport_->active());
    EXPECT_EQ(status(), 0);
    EXPECT_EQ(read_common(r::kConfigMsixVector, 2), r::kNoVector);
    write_common(r::kDriverFeatureSelect, 4, 0);
    EXPECT_EQ(read_common(r::kDriverFeature, 4), 0u);
    for (uint16_t q = 0; q < 2; ++q) {
        write_common(r::kQueueSelect, 2, q);
        EXPECT_EQ(read_common(r::kQueueSize, 2), kMaxQueue);
        EXPECT_EQ(read_common(r::kQueueEnable, 2), 0u);
        EXPECT_EQ(read_common(r::kQueueMsixVector, 2), r::kNoVector);
        EXPECT_EQ(read_common(r::kQueueDescLo, 4), 0u);
        EXPECT_EQ(read_common(r::kQueueDriverLo, 4), 0u);
        EXPECT_EQ(read_common(r::kQueueDeviceLo, 4), 0u);
    }
    // And it can be brought up again.
    bring_up();
    EXPECT_EQ(device_->activations, 2);
}

TEST_F(TransportTest, ClearingStatusBitsWithoutResetIsIgnored) {
    build();
    bring_up();
    const int resets = device_->resets;
    write_common(r::kDeviceStatus, 1, kStatusAcknowledge);
    EXPECT_EQ(status(), kStatusAcknowledge | kStatusDriver | kStatusFeaturesOk | kStatusDriverOk);
    EXPECT_EQ(device_->resets, resets);
    EXPECT_TRUE(transport_->active());
}

// --- Notifications -------------------------------------------------------------------------

TEST_F(TransportTest, NotifyWriteMakesTheQueueEventfdReadable) {
    build();
    bring_up();
    const auto& fds = device_->last.notify_eventfds;
    const uint64_t notify = structure(r::kCapNotifyCfg);
    write_common(r::kQueueSelect, 2, 1);
    const uint32_t off = read_common(r::kQueueNotifyOff, 2);
    mmio_write(notify + off * 4, 2, 1);  // Linux: iowrite16(queue index)
    EXPECT_EQ(consume(fds[1]), 1u);
    EXPECT_EQ(consume(fds[0]), 0u);
    mmio_write(notify + 0, 2, 0);
    EXPECT_EQ(consume(fds[0]), 1u);
    mmio_write(notify + 2 * 4, 2, 2);  // no queue 2: ignored
    mmio_write(notify + 2, 2, 0);      // between doorbells: ignored
    EXPECT_EQ(consume(fds[0]) + consume(fds[1]), 0u);
}

TEST_F(TransportTest, IoeventfdsAreRegisteredAndFollowTheBar) {
    build();
    auto spec_at = [&](AddressSpace space, uint64_t addr, std::optional<uint64_t> match) {
        return std::count_if(io_events_.active.begin(), io_events_.active.end(), [&](const IoEventSpec& s) {
            return s.space == space && s.address == addr && s.datamatch == match;
        });
    };
    ASSERT_EQ(io_events_.active.size(), 4u);  // 2 MMIO doorbells + 2 legacy datamatches
    const uint64_t notify = kModernBarAddr + caps_[r::kCapNotifyCfg].offset;
    EXPECT_EQ(spec_at(AddressSpace::Mmio, notify, std::nullopt), 1);
    EXPECT_EQ(spec_at(AddressSpace::Mmio, notify + 4, std::nullopt), 1);
    EXPECT_EQ(spec_at(AddressSpace::Pio, kLegacyBarAddr + r::kLegacyQueueNotify, 0), 1);
    EXPECT_EQ(spec_at(AddressSpace::Pio, kLegacyBarAddr + r::kLegacyQueueNotify, 1), 1);

    // The guest moves BAR1: the doorbells move with it.
    const uint64_t moved = kModernBarAddr + 0x100000;
    cfg_write(pci::kBar0 + 4 * r::kModernBar, 4, uint32_t(moved));
    ASSERT_EQ(fn_->bar_address(r::kModernBar), moved);
    EXPECT_EQ(spec_at(AddressSpace::Mmio, notify, std::nullopt), 0);
    EXPECT_EQ(spec_at(AddressSpace::Mmio, moved + caps_[r::kCapNotifyCfg].offset + 4, std::nullopt), 1);
    EXPECT_EQ(io_events_.active.size(), 4u);

    // The legacy I/O BAR too.
    const uint64_t io_moved = kLegacyBarAddr + 0x100;
    cfg_write(pci::kBar0 + 4 * r::kLegacyBar, 4, uint32_t(io_moved));
    ASSERT_EQ(fn_->bar_address(r::kLegacyBar), io_moved);
    EXPECT_EQ(spec_at(AddressSpace::Pio, kLegacyBarAddr + r::kLegacyQueueNotify, 0), 0);
    EXPECT_EQ(spec_at(AddressSpace::Pio, io_moved + r::kLegacyQueueNotify, 0), 1);
    EXPECT_EQ(spec_at(AddressSpace::Pio, io_moved + r::kLegacyQueueNotify, 1), 1);
    EXPECT_EQ(io_events_.active.size(), 4u);

    // Decoding off: nothing left registered.
    fn_->set_command(0);
    EXPECT_TRUE(io_events_.active.empty());
}

TEST_F(TransportTest, DestroyingTheTransportUnregistersIoeventfds) {
    build();
    EXPECT_FALSE(io_events_.active.empty());
    transport_.reset();
    EXPECT_TRUE(io_events_.active.empty());
    // The function may outlive it on the bus; its registers are then inert.
    EXPECT_EQ(mmio_read(common(r::kNumQueues), 2), 0u);
    mmio_write(common(r::kDeviceStatus), 1, 1);
}

// --- Interrupts ---------------------------------------------------------------------------------

TEST_F(TransportTest, QueueSignalTriggersTheMappedMsixVector) {
    build();
    enable_msix();
    bring_up(0, 1);
    write_common(r::kConfigMsixVector, 2, 2);
    EXPECT_EQ(read_common(r::kConfigMsixVector, 2), 2u);
    write_common(r::kQueueSelect, 2, 1);
    EXPECT_EQ(read_common(r::kQueueMsixVector, 2), 1u);
    ASSERT_EQ(msi_.vectors.size(), 3u);

    VirtioInterrupt& irq = *device_->last.interrupt;
    irq.signal_queue(1);
    EXPECT_EQ(msi_.vectors[1]->triggers, 1);
    EXPECT_EQ(msi_.vectors[0]->triggers, 0);
    irq.signal_queue(0);
    EXPECT_EQ(msi_.vectors[0]->triggers, 1);
    irq.signal_config();
    EXPECT_EQ(msi_.vectors[2]->triggers, 1);
    EXPECT_FALSE(line_.level()) << "no INTx while MSI-X is enabled";
}

TEST_F(TransportTest, NoVectorMeansNoInterrupt) {
    build();
    enable_msix();
    bring_up(r::kNoVector, 1);
    device_->last.interrupt->signal_queue(0);
    device_->last.interrupt->signal_config();
    for (auto* v : msi_.vectors) EXPECT_EQ(v->triggers, 0);
    EXPECT_FALSE(line_.level());
}

TEST_F(TransportTest, VectorOutsideTheTableReadsBackAsNoVector) {
    build();
    write_common(r::kConfigMsixVector, 2, 3);  // table has vectors 0..2
    EXPECT_EQ(read_common(r::kConfigMsixVector, 2), r::kNoVector);
    write_common(r::kQueueSelect, 2, 0);
    write_common(r::kQueueMsixVector, 2, 0x7ff);
    EXPECT_EQ(read_common(r::kQueueMsixVector, 2), r::kNoVector);
    write_common(r::kQueueMsixVector, 2, 2);
    EXPECT_EQ(read_common(r::kQueueMsixVector, 2), 2u);
}

TEST_F(TransportTest, IntxWithIsrReadToClear) {
    build();
    bring_up();
    VirtioInterrupt& irq = *device_->last.interrupt;
    const uint64_t isr = structure(r::kCapIsrCfg);
    EXPECT_FALSE(line_.level());
    irq.signal_queue(0);
    EXPECT_TRUE(line_.level());
    EXPECT_TRUE(cfg_read(pci::kStatus, 2) & pci::kStatusInterrupt);
    irq.signal_config();
    EXPECT_EQ(mmio_read(isr, 1), uint64_t(r::kIsrQueue | r::kIsrConfig));
    EXPECT_FALSE(line_.level());
    EXPECT_FALSE(cfg_read(pci::kStatus, 2) & pci::kStatusInterrupt);
    EXPECT_EQ(mmio_read(isr, 1), 0u);
    EXPECT_EQ(line_.rising_edges(), 1);
}

TEST_F(TransportTest, ConfigSignalChangesConfigGeneration) {
    build();
    const uint32_t before = read_common(r::kConfigGeneration, 1);
    transport_->interrupt().signal_config();
    EXPECT_NE(read_common(r::kConfigGeneration, 1), before);
}

// --- The PCI configuration access capability ------------------------------------------------------

TEST_F(TransportTest, PciCfgWindowReachesTheBarRegisters) {
    build();
    const uint8_t cap = caps_[r::kCapPciCfg].cap_offset;
    auto point = [&](uint8_t bar, uint32_t offset, uint32_t length) {
        cfg_write(cap + r::kCapBar, 1, bar);
        cfg_write(cap + r::kCapOffset, 4, offset);
        cfg_write(cap + r::kCapLength, 4, length);
    };
    const uint32_t common_off = caps_[r::kCapCommonCfg].offset;
    point(r::kModernBar, common_off + r::kNumQueues, 2);
    EXPECT_EQ(cfg_read(cap + r::kPciCfgCapData, 4) & 0xffff, 2u);

    // Writes go through too: the status register, one byte.
    point(r::kModernBar, common_off + r::kDeviceStatus, 1);
    cfg_write(cap + r::kPciCfgCapData, 4, kStatusAcknowledge);
    EXPECT_EQ(status(), kStatusAcknowledge);

    // With their side effects: reading the ISR through the window clears it.
    transport_->interrupt().signal_config();
    point(r::kModernBar, caps_[r::kCapIsrCfg].offset, 1);
    EXPECT_EQ(cfg_read(cap + r::kPciCfgCapData, 1), r::kIsrConfig);
    EXPECT_EQ(mmio_read(structure(r::kCapIsrCfg), 1), 0u);

    // Invalid windows do nothing.
    point(r::kModernBar, common_off + r::kNumQueues, 3);
    EXPECT_EQ(cfg_read(cap + r::kPciCfgCapData, 4), 0u);
    point(5, 0, 4);
    EXPECT_EQ(cfg_read(cap + r::kPciCfgCapData, 4), 0u);
    point(r::kModernBar, 0xffffffff, 1);
    EXPECT_EQ(cfg_read(cap + r::kPciCfgCapData, 4), 0u);

    // The rest of the capability is read-only.
    cfg_write(cap + r::kCapCfgType, 1, 1);
    EXPECT_EQ(cfg_read(cap + r::kCapCfgType, 1), r::kCapPciCfg);
}

TEST_F(TransportTest, PciCfgWindowReachesTheLegacyBar) {
    build();
    const uint8_t cap = caps_[r::kCapPciCfg].cap_offset;
    cfg_write(cap + r::kCapBar, 1, r::kLegacyBar);
    cfg_write(cap + r::kCapOffset, 4, r::kLegacyHostFeatures);
    cfg_write(cap + r::kCapLength, 4, 4);
    EXPECT_EQ(cfg_read(cap + r::kPciCfgCapData, 4), uint32_t(device_->offered));
}

// --- The legacy interface ---------------------------------------------------------------------------

TEST_F(TransportTest, LegacyInitThroughTheIoBar) {
    build();
    FakeDriverQueue rx(memory_, {.size = kMaxQueue, .rings = 0x40000, .data = 0x400000,
                                 .layout = FakeDriverQueue::Layout::kLegacy});
    FakeDriverQueue tx(memory_, {.size = kMaxQueue, .rings = 0x50000, .data = 0x500000,
                                 .layout = FakeDriverQueue::Layout::kLegacy});
    pio_write(r::kLegacyStatus, 1, 0);
    pio_write(r::kLegacyStatus, 1, kStatusAcknowledge);
    pio_write(r::kLegacyStatus, 1, kStatusAcknowledge | kStatusDriver);
    const uint32_t host = pio_read(r::kLegacyHostFeatures, 4);
    EXPECT_EQ(host, uint32_t(device_->offered));
    const uint32_t guest = host & uint32_t(bit(kFRingEventIdx) | bit(kDeviceFeatureBit));
    pio_write(r::kLegacyGuestFeatures, 4, guest);
    EXPECT_EQ(pio_read(r::kLegacyGuestFeatures, 4), guest);

    for (uint16_t q = 0; q < 2; ++q) {
        const FakeDriverQueue& ring = q == 0 ? rx : tx;
        pio_write(r::kLegacyQueueSelect, 2, q);
        EXPECT_EQ(pio_read(r::kLegacyQueueNum, 2), kMaxQueue);
        EXPECT_EQ(pio_read(r::kLegacyQueuePfn, 4), 0u) << "Linux refuses a queue whose PFN is already set";
        pio_write(r::kLegacyQueuePfn, 4, uint32_t(ring.desc_addr() >> 12));
        EXPECT_EQ(pio_read(r::kLegacyQueuePfn, 4), ring.desc_addr() >> 12);
    }
    pio_write(r::kLegacyStatus, 1, kStatusAcknowledge | kStatusDriver | kStatusDriverOk);

    ASSERT_EQ(device_->activations, 1);
    EXPECT_EQ(device_->last.features, guest) << "legacy: no VERSION_1";
    ASSERT_NE(device_->last.queues[1], nullptr);
    // The device's view of the rings matches the legacy layout the driver used.
    const Gpa buf = tx.alloc(32);
    const uint16_t head = tx.chain().readable(buf, 32).offer();
    DescriptorChain chain;
    ASSERT_EQ(device_->last.queues[1]->pop(chain).status, PopStatus::kChain);
    EXPECT_EQ(chain.head(), head);
    device_->last.queues[1]->complete(chain, 0);
    device_->last.queues[1]->publish();
    EXPECT_EQ(tx.next_used(), (testing::UsedEntry{head, 0}));

    // Kick queue 1 through QUEUE_NOTIFY.
    pio_write(r::kLegacyQueueNotify, 2, 1);
    EXPECT_EQ(consume(device_->last.notify_eventfds[1]), 1u);

    // INTx + ISR through the legacy header.
    device_->last.interrupt->signal_queue(1);
    EXPECT_TRUE(line_.level());
    EXPECT_EQ(pio_read(r::kLegacyIsr, 1), r::kIsrQueue);
    EXPECT_FALSE(line_.level());

    // Reset through the legacy status register.
    const int resets = device_->resets;
    pio_write(r::kLegacyStatus, 1, 0);
    EXPECT_EQ(device_->resets, resets + 1);
    EXPECT_EQ(pio_read(r::kLegacyStatus, 1), 0u);
    EXPECT_EQ(pio_read(r::kLegacyQueuePfn, 4), 0u);
}

TEST_F(TransportTest, LegacyDeviceConfigMovesWithMsix) {
    build();
    EXPECT_EQ(pio_read(r::kLegacyConfigNoMsix, 4), 0x12005452u);
    EXPECT_EQ(pio_read(r::kLegacyConfigNoMsix + 6, 1), 1u);
    enable_msix();
    EXPECT_EQ(pio_read(r::kLegacyConfigMsix, 4), 0x12005452u);
    // ...and the vector registers appear where the config was.
    pio_write(r::kLegacyConfigVector, 2, 2);
    EXPECT_EQ(pio_read(r::kLegacyConfigVector, 2), 2u);
    pio_write(r::kLegacyQueueSelect, 2, 1);
    pio_write(r::kLegacyQueueVector, 2, 1);
    EXPECT_EQ(pio_read(r::kLegacyQueueVector, 2), 1u);
    // Config writes land in the device.
    pio_write(r::kLegacyConfigMsix, 1, 0xaa);
    EXPECT_EQ(device_->config[0], 0xaa);
}

TEST_F(TransportTest, LegacyDriverOkWithFeaturesTheDeviceRefusesNeedsReset) {
    build();
    device_->accept = false;
    pio_write(r::kLegacyGuestFeatures, 4, 0);
    pio_write(r::kLegacyStatus, 1, kStatusAcknowledge | kStatusDriver | kStatusDriverOk);
    EXPECT_EQ(device_->activations, 0);
    EXPECT_TRUE(pio_read(r::kLegacyStatus, 1) & kStatusDeviceNeedsReset);
}

}  // namespace
}  // namespace tapvm::virtio
