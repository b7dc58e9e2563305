// The virtio-net card as the machine assembles it: VirtioNetDevice behind
// VirtioPciTransport on the PCI host bridge, driven by a fake guest driver
// through configuration space and the BAR exactly as Linux's virtio_pci +
// virtio_net would (modern interface, INTx + ISR), with a socketpair standing
// in for the tap.  Each layer has its own unit tests; this one checks that
// the seams between them hold: features reach the tap, doorbells reach the
// device's I/O thread, used buffers raise the guest's interrupt, reset
// clears the tap's offloads.
#include <gtest/gtest.h>

#include "devices/pci/pci_host_bridge.h"
#include "devices/pci/pci_regs.h"
#include "net/net_features.h"
#include "net/net_options.h"
#include "net/virtio_net_device.h"
#include "support/testkit.h"
#include "unit/net/net_test_support.h"
#include "virtio/features.h"
#include "virtio/pci/virtio_pci_regs.h"
#include "virtio/pci/virtio_pci_transport.h"
#include "vmm/layout.h"

namespace tapvm {
namespace {

namespace vr = virtio::pci_regs;
using net::testing::Bytes;
using net::testing::SocketpairTap;
using tapvm::testing::FakeDriverQueue;

class VirtioNetPci : public ::testing::Test {
protected:
    void SetUp() override {
        auto tap = std::make_unique<SocketpairTap>(true);
        tap_ = tap.get();
        device_ = std::make_shared<net::VirtioNetDevice>(net::parse_net_options("tap=t,ctrl_vq=off"), std::move(tap));
        transport_ = std::make_unique<virtio::VirtioPciTransport>(device_, memory_, msi_, ioevents_);
        device_->on_needs_reset = [this] { transport_->device_needs_reset(); };
        bridge_.emplace(pci::PciBuses{&mmio_, &pio_}, [this](uint32_t) { return &intx_; });
        slot_ = bridge_->add_device(transport_->function());
        // What the guest's PCI core does: turn on decoding and bus mastering.
        cfg_write(pci::kCommand, 2, pci::kCommandMemorySpace | pci::kCommandIoSpace | pci::kCommandBusMaster);
        find_regions();
    }

    uint32_t cfg_read(uint16_t reg, size_t width) {
        uint8_t b[4] = {};
        bridge_->read_config(0, slot_, 0, reg, std::span(b, width));
        return b[0] | b[1] << 8 | b[2] << 16 | uint32_t(b[3]) << 24;
    }
    void cfg_write(uint16_t reg, size_t width, uint32_t v) {
        uint8_t b[4] = {uint8_t(v), uint8_t(v >> 8), uint8_t(v >> 16), uint8_t(v >> 24)};
        bridge_->write_config(0, slot_, 0, reg, std::span<const uint8_t>(b, width));
    }
    // Walks the capability list for the virtio structures, as virtio_pci_modern does.
    void find_regions() {
        for (uint8_t at = cfg_read(pci::kCapabilitiesPointer, 1); at; at = cfg_read(at + 1, 1)) {
            if (cfg_read(at, 1) != pci::kCapIdVendorSpecific) continue;
            uint8_t type = cfg_read(at + vr::kCapCfgType, 1);
            uint8_t bar = cfg_read(at + vr::kCapBar, 1);
            auto base = transport_->function()->bar_address(bar);
            ASSERT_TRUE(base.has_value()) << "BAR " << int(bar) << " not mapped";
            uint64_t addr = *base + cfg_read(at + vr::kCapOffset, 4);
            if (type == vr::kCapCommonCfg) common_ = addr;
            if (type == vr::kCapNotifyCfg) {
                notify_ = addr;
                notify_mult_ = cfg_read(at + vr::kNotifyCapMultiplier, 4);
            }
            if (type == vr::kCapIsrCfg) isr_ = addr;
        }
        ASSERT_NE(common_, 0u);
        ASSERT_NE(notify_, 0u);
        ASSERT_NE(isr_, 0u);
    }
    uint64_t rd(uint64_t addr, size_t width) {
        uint8_t b[8] = {};
        EXPECT_TRUE(mmio_.read(addr, std::span(b, width)));
        uint64_t v = 0;
        for (size_t i = 0; i < width; ++i) v |= uint64_t(b[i]) << (8 * i);
        return v;
    }
    void wr(uint64_t addr, size_t width, uint64_t v) {
        uint8_t b[8];
        for (size_t i = 0; i < width; ++i) b[i] = uint8_t(v >> (8 * i));
        EXPECT_TRUE(mmio_.write(addr, std::span<const uint8_t>(b, width)));
    }

    // virtio 1.2 §3.1.1 driver initialisation, for rx0 and tx0.
    void bring_up(uint64_t wanted) {
        wr(common_ + vr::kDeviceStatus, 1, 0);
        wr(common_ + vr::kDeviceStatus, 1, virtio::kStatusAcknowledge);
        wr(common_ + vr::kDeviceStatus, 1, virtio::kStatusAcknowledge | virtio::kStatusDriver);
        uint64_t offered = 0;
        for (uint32_t sel = 0; sel < 2; ++sel) {
            wr(common_ + vr::kDeviceFeatureSelect, 4, sel);
            offered |= rd(common_ + vr::kDeviceFeature, 4) << (32 * sel);
        }
        negotiated_ = offered & wanted;
        for (uint32_t sel = 0; sel < 2; ++sel) {
            wr(common_ + vr::kDriverFeatureSelect, 4, sel);
            wr(common_ + vr::kDriverFeature, 4, uint32_t(negotiated_ >> (32 * sel)));
        }
        uint8_t s = virtio::kStatusAcknowledge | virtio::kStatusDriver | virtio::kStatusFeaturesOk;
        wr(common_ + vr::kDeviceStatus, 1, s);
        ASSERT_TRUE(rd(common_ + vr::kDeviceStatus, 1) & virtio::kStatusFeaturesOk);
        for (uint16_t q = 0; q < 2; ++q) {
            queues_.push_back(std::make_unique<FakeDriverQueue>(
                memory_, FakeDriverQueue::Options{.size = 256, .rings = 0x100000 + q * 0x10000u,
                                                  .data = 0x400000 + q * 0x400000u, .data_size = 0x400000}));
            auto c = queues_.back()->config();
            wr(common_ + vr::kQueueSelect, 2, q);
            EXPECT_GE(rd(common_ + vr::kQueueSize, 2), 256u);
            wr(common_ + vr::kQueueSize, 2, 256);
            wr(common_ + vr::kQueueDescLo, 4, c.desc);
            wr(common_ + vr::kQueueDescHi, 4, c.desc >> 32);
            wr(common_ + vr::kQueueDriverLo, 4, c.avail);
            wr(common_ + vr::kQueueDriverHi, 4, c.avail >> 32);
            wr(common_ + vr::kQueueDeviceLo, 4, c.used);
            wr(common_ + vr::kQueueDeviceHi, 4, c.used >> 32);
            notify_off_.push_back(rd(common_ + vr::kQueueNotifyOff, 2));
            wr(common_ + vr::kQueueEnable, 2, 1);
        }
        wr(common_ + vr::kDeviceStatus, 1, s | virtio::kStatusDriverOk);
        ASSERT_TRUE(transport_->active());
    }
    void kick(uint16_t q) { wr(notify_ + notify_off_[q] * notify_mult_, 2, q); }

    GuestMemory memory_{{{0, 16 << 20}}};
    Bus mmio_{"mmio"}, pio_{"pio"};
    tapvm::testing::FakeIrqLine intx_;
    tapvm::testing::FakeMsiAllocator msi_;
    tapvm::testing::FakeIoEventRegistry ioevents_;
    SocketpairTap* tap_ = nullptr;
    std::shared_ptr<net::VirtioNetDevice> device_;
    std::unique_ptr<virtio::VirtioPciTransport> transport_;
    std::optional<pci::PciHostBridge> bridge_;
    unsigned slot_ = 0;
    uint64_t common_ = 0, notify_ = 0, isr_ = 0;
    uint32_t notify_mult_ = 0;
    uint64_t negotiated_ = 0;
    std::vector<uint64_t> notify_off_;
    std::vector<std::unique_ptr<FakeDriverQueue>> queues_;
};

constexpr uint64_t kWanted = virtio::bit(virtio::kFVersion1) | virtio::bit(net::kFMrgRxbuf) |
                             virtio::bit(net::kFCsum) | virtio::bit(net::kFGuestCsum) |
                             virtio::bit(net::kFGuestTso4) | virtio::bit(net::kFHostTso4) | virtio::bit(net::kFMac);

TEST_F(VirtioNetPci, IdentifiesAsATransitionalNetworkCard) {
    EXPECT_EQ(cfg_read(0, 2), vr::kVendorId);
    EXPECT_EQ(cfg_read(2, 2), vr::kTransitionalDeviceIdBase);  // 0x1000: net
    EXPECT_EQ(cfg_read(0x0b, 1), 0x02u);                          // class: network
    EXPECT_EQ(cfg_read(0x3c, 1), layout::pci_intx_gsi(slot_, 0));
}

TEST_F(VirtioNetPci, FramesFlowBothWaysThroughTheBarAndRaiseIntx) {
    bring_up(kWanted);
    // The accepted GUEST_* bits reached the tap, with the 12-byte header.
    ASSERT_FALSE(tap_->offloads().empty());
    EXPECT_NE(tap_->offloads().back(), 0u);
    ASSERT_FALSE(tap_->header_sizes().empty());
    EXPECT_EQ(tap_->header_sizes().back(), 12);

    // TX: a chain on queue 1, a doorbell write to the notify region.
    auto& tx = *queues_[1];
    Bytes frame = net::testing::pattern(1400, 3);
    Bytes wire = net::testing::concat(Bytes(12, 0), frame);
    Gpa buf = tx.alloc(wire.size());
    tx.write_bytes(buf, wire);
    uint16_t head = tx.chain().readable(buf, uint32_t(wire.size())).offer();
    kick(1);
    auto out = tap_->wait_take();
    ASSERT_TRUE(out.has_value());
    EXPECT_EQ(*out, wire);  // header and frame passed straight through
    std::optional<tapvm::testing::UsedEntry> used;
    ASSERT_TRUE(net::testing::eventually([&] { return (used = tx.next_used()).has_value(); }));
    EXPECT_EQ(used->id, head);
    ASSERT_TRUE(net::testing::eventually([&] { return intx_.level(); }));
    EXPECT_EQ(rd(isr_, 1) & vr::kIsrQueue, vr::kIsrQueue);  // read clears and lowers the line
    EXPECT_FALSE(intx_.level());

    // RX: page-sized buffers, a frame from the host side.
    auto& rx = *queues_[0];
    std::vector<Gpa> pages;
    for (int i = 0; i < 8; ++i) {
        pages.push_back(rx.alloc(4096));
        rx.chain().writable(pages.back(), 4096).offer();
    }
    kick(0);
    Bytes in = net::testing::pattern(6000, 9);  // spans two pages: num_buffers = 2
    tap_->inject(net::testing::concat(Bytes(12, 0), in));
    std::optional<tapvm::testing::UsedEntry> first, second;
    ASSERT_TRUE(net::testing::eventually([&] { return (first = rx.next_used()).has_value(); }));
    ASSERT_TRUE(net::testing::eventually([&] { return (second = rx.next_used()).has_value(); }));
    EXPECT_EQ(first->len + second->len, 12u + in.size());
    Bytes hdr = rx.read_bytes(pages[first->id], 12);
    EXPECT_EQ(net::testing::le16_at(hdr, 10), 2);  // num_buffers
    Bytes got = net::testing::concat(rx.read_bytes(pages[first->id] + 12, first->len - 12),
                                     rx.read_bytes(pages[second->id], second->len));
    EXPECT_EQ(got, in);
    ASSERT_TRUE(net::testing::eventually([&] { return intx_.level(); }));
}

TEST_F(VirtioNetPci, ResetThroughTheStatusRegisterLeavesTheTapClean) {
    bring_up(kWanted);
    ASSERT_NE(tap_->offloads().back(), 0u);
    wr(common_ + vr::kDeviceStatus, 1, 0);
    EXPECT_EQ(rd(common_ + vr::kDeviceStatus, 1), 0u);
    EXPECT_FALSE(transport_->active());
    EXPECT_EQ(tap_->offloads().back(), 0u);  // TUNSETOFFLOAD 0 for the next user
}

TEST_F(VirtioNetPci, BrokenAvailIndexSetsNeedsReset) {
    bring_up(kWanted);
    queues_[1]->set_avail_idx(1000);  // jumps by more than the queue size
    kick(1);
    ASSERT_TRUE(net::testing::eventually(
        [&] { return rd(common_ + vr::kDeviceStatus, 1) & virtio::kStatusDeviceNeedsReset; }));
}

}  // namespace
}  // namespace tapvm
