// VirtioNetDevice as the transport sees it: the offer, feature acceptance,
// the config space, activation with its I/O thread, reset — and frames
// crossing end to end, over a socketpair and over a real tap.
#include "net/virtio_net_device.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <linux/ethtool.h>
#include <linux/if_packet.h>
#include <linux/sockios.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <sys/ioctl.h>

#include <nlohmann/json.hpp>

#include "net/ctrl_queue.h"
#include "net/net_features.h"
#include "net/tap_device.h"
#include "net/virtio_net_hdr.h"
#include "net_test_support.h"
#include "virtio/features.h"
#include "vmm/event_fd.h"

namespace tapvm::net {
namespace {

using testing::Bytes;
using testing::concat;
using testing::eventually;
using testing::pattern;
using testing::SocketpairTap;
using tapvm::testing::UsedEntry;

constexpr uint64_t kV1 = bit(virtio::kFVersion1);

std::unique_ptr<VirtioNetDevice> make_device(const std::string& options, std::unique_ptr<Tap> tap) {
    return std::make_unique<VirtioNetDevice>(parse_net_options(options), std::move(tap));
}

// --- the offer -------------------------------------------------------------------

TEST(VirtioNetOffer, DefaultsOnAVnetHeaderTap) {
    auto device = make_device("tap=t", std::make_unique<SocketpairTap>(true));
    EXPECT_EQ(device->device_type(), 1u);
    EXPECT_EQ(device->num_queues(), 3);
    EXPECT_EQ(device->max_queue_size(), 256);
    const uint64_t expected = kV1 | bit(virtio::kFRingEventIdx) | bit(virtio::kFRingIndirectDesc) | bit(kFMac) |
                              bit(kFStatus) | bit(kFMrgRxbuf) | bit(kFCtrlVq) | bit(kFCtrlRx) | bit(kFCtrlMacAddr) |
                              bit(kFCtrlGuestOffloads) | bit(kFAnyLayout) | kGuestOffloadFeatures |
                              kHostOffloadFeatures;
    EXPECT_EQ(device->offered_features(), expected);
    EXPECT_TRUE(device->offers_legacy_interface());
}

TEST(VirtioNetOffer, NoVnetHeaderMeansNoOffloads) {
    auto device = make_device("tap=t", std::make_unique<SocketpairTap>(false));
    const uint64_t offer = device->offered_features();
    EXPECT_EQ(offer & kVnetHdrFeatures, 0u);
    EXPECT_TRUE(has(offer, kFMrgRxbuf));
    EXPECT_TRUE(has(offer, kFCtrlVq));
    EXPECT_EQ(dependency_violation(offer), std::nullopt);
}

TEST(VirtioNetOffer, FollowsWhatTheTapAccepted) {
    auto device = make_device("tap=t", std::make_unique<SocketpairTap>(true, kTunFCsum | kTunFTso4));
    const uint64_t offer = device->offered_features();
    EXPECT_TRUE(has(offer, kFGuestTso4));
    EXPECT_TRUE(has(offer, kFHostTso4));
    for (unsigned b : {kFGuestTso6, kFHostTso6, kFGuestEcn, kFHostEcn, kFGuestUfo, kFHostUfo})
        EXPECT_FALSE(has(offer, b)) << feature_name(b);
    EXPECT_EQ(dependency_violation(offer), std::nullopt);
}

TEST(VirtioNetOffer, OptionsShapeTheOffer) {
    auto no_ctrl = make_device("tap=t,ctrl_vq=off,mrg_rxbuf=off,event_idx=off,indirect_desc=off,legacy=off",
                               std::make_unique<SocketpairTap>(true));
    EXPECT_EQ(no_ctrl->num_queues(), 2);
    const uint64_t offer = no_ctrl->offered_features();
    EXPECT_EQ(offer & (kCtrlVqFeatures | bit(kFCtrlVq)), 0u);
    for (unsigned b : {kFMrgRxbuf, virtio::kFRingEventIdx, virtio::kFRingIndirectDesc, kFAnyLayout, kFMtu})
        EXPECT_FALSE(has(offer, b)) << feature_name(b);
    EXPECT_FALSE(no_ctrl->offers_legacy_interface());

    auto mtu = make_device("tap=t,mtu=9000,queue_size=1024,gso=off", std::make_unique<SocketpairTap>(true));
    EXPECT_TRUE(has(mtu->offered_features(), kFMtu));
    EXPECT_EQ(mtu->offered_features() & kGsoFeatures, 0u);
    EXPECT_TRUE(has(mtu->offered_features(), kFGuestCsum));
    EXPECT_EQ(mtu->max_queue_size(), 1024);
    uint8_t mtu_bytes[2];
    mtu->read_config(NetConfigSpace::kMtuOffset, mtu_bytes);
    EXPECT_EQ(mtu_bytes[0] | mtu_bytes[1] << 8, 9000);
}

TEST(VirtioNetOffer, ConfigSpaceCarriesTheMac) {
    auto configured = make_device("tap=t,mac=52:54:00:12:34:56", std::make_unique<SocketpairTap>(true));
    uint8_t bytes[8];
    configured->read_config(0, bytes);
    EXPECT_EQ(Bytes(bytes, bytes + 8), (Bytes{0x52, 0x54, 0x00, 0x12, 0x34, 0x56, 1, 0}));
    // Without mac=, derived from the interface name.
    auto derived = make_device("tap=t", std::make_unique<SocketpairTap>(true));
    EXPECT_EQ(derived->mac(), derived_mac("fake0"));
}

// --- feature acceptance ----------------------------------------------------------------

TEST(VirtioNetFeatures, RefusesWhatTheSpecForbids) {
    auto tap = std::make_unique<SocketpairTap>(true);
    SocketpairTap* fake = tap.get();
    auto device = make_device("tap=t", std::move(tap));
    EXPECT_FALSE(device->accept_features(kV1 | bit(kFGuestTso4)));                    // needs GUEST_CSUM
    EXPECT_FALSE(device->accept_features(kV1 | bit(kFCsum) | bit(kFHostEcn)));        // needs a HOST_TSO
    EXPECT_FALSE(device->accept_features(kV1 | bit(kFCtrlRx)));                       // needs CTRL_VQ
    EXPECT_FALSE(device->accept_features(kV1 | bit(kFMq)));                           // never offered
    EXPECT_TRUE(fake->header_sizes().empty());  // nothing touched the tap
    EXPECT_TRUE(fake->offloads().empty());
    EXPECT_EQ(device->negotiated_features(), 0u);

    auto modern_only = make_device("tap=t,legacy=off", std::make_unique<SocketpairTap>(true));
    EXPECT_FALSE(modern_only->accept_features(bit(kFMrgRxbuf)));  // §6.1: VERSION_1 required
    EXPECT_TRUE(modern_only->accept_features(kV1 | bit(kFMrgRxbuf)));
}

TEST(VirtioNetFeatures, AcceptanceConfiguresTheTap) {
    struct Case {
        uint64_t features;
        int header;
        unsigned offloads;
    };
    const Case cases[] = {
        {kV1 | bit(kFGuestCsum) | bit(kFGuestTso4) | bit(kFCsum) | bit(kFHostTso6), 12, kTunFCsum | kTunFTso4},
        {kV1 | bit(kFMrgRxbuf) | kGuestOffloadFeatures, 12,
         kTunFCsum | kTunFTso4 | kTunFTso6 | kTunFTsoEcn | kTunFUfo},
        {kV1, 12, 0},
        {0, 10, 0},                            // legacy, no MRG_RXBUF: struct virtio_net_hdr
        {bit(kFMrgRxbuf) | bit(kFGuestCsum), 12, kTunFCsum},  // legacy with num_buffers
    };
    for (const Case& c : cases) {
        auto tap = std::make_unique<SocketpairTap>(true);
        SocketpairTap* fake = tap.get();
        auto device = make_device("tap=t", std::move(tap));
        ASSERT_TRUE(device->accept_features(c.features)) << std::hex << c.features;
        EXPECT_EQ(fake->header_sizes(), (std::vector<int>{c.header})) << std::hex << c.features;
        EXPECT_EQ(fake->offloads(), (std::vector<unsigned>{c.offloads})) << std::hex << c.features;
        EXPECT_EQ(device->negotiated_features(), c.features);
    }
}

TEST(VirtioNetFeatures, TapRefusingOffloadsRefusesTheFeatures) {
    auto tap = std::make_unique<SocketpairTap>(true);
    tap->refuse_offloads = true;
    auto device = make_device("tap=t", std::move(tap));
    EXPECT_FALSE(device->accept_features(kV1 | bit(kFGuestCsum)));
}

TEST(VirtioNetFeatures, WithoutVnetHeaderTheTapIsLeftAlone) {
    auto tap = std::make_unique<SocketpairTap>(false);
    SocketpairTap* fake = tap.get();
    auto device = make_device("tap=t", std::move(tap));
    EXPECT_TRUE(device->accept_features(kV1 | bit(kFMrgRxbuf)));
    EXPECT_TRUE(fake->header_sizes().empty());
    EXPECT_TRUE(fake->offloads().empty());
}

TEST(VirtioNetFeatures, LegacyDriverMayWriteTheMacAndResetRestoresIt) {
    auto tap = std::make_unique<SocketpairTap>(true);
    SocketpairTap* fake = tap.get();
    auto device = make_device("tap=t,mac=52:54:00:00:00:01", std::move(tap));
    const uint8_t byte = 0x77;
    device->write_config(5, std::span(&byte, 1));  // before negotiation: ignored
    EXPECT_EQ(device->mac().bytes[5], 0x01);
    ASSERT_TRUE(device->accept_features(bit(kFMrgRxbuf) | bit(kFGuestCsum)));  // legacy, no CTRL_MAC_ADDR
    device->write_config(5, std::span(&byte, 1));
    EXPECT_EQ(device->mac().bytes[5], 0x77);
    device->reset();
    EXPECT_EQ(device->mac().bytes[5], 0x01);
    EXPECT_EQ(fake->offloads().back(), 0u);  // reset turns the tap's offloads off
    EXPECT_EQ(device->negotiated_features(), 0u);

    ASSERT_TRUE(device->accept_features(kV1));  // modern: config is read-only
    device->write_config(5, std::span(&byte, 1));
    EXPECT_EQ(device->mac().bytes[5], 0x01);
}

// --- running: the I/O thread over a socketpair -----------------------------------------

// A transport's worth of queues on guest memory, with kick eventfds.
class RunningDevice : public ::testing::Test {
protected:
    static constexpr uint16_t kQueueSize = 256;

    void start(const std::string& options, uint64_t features, bool vnet_hdr = true, int sndbuf = 1 << 20) {
        auto tap = std::make_unique<SocketpairTap>(vnet_hdr, 0x1f, sndbuf);
        tap_ = tap.get();
        device_ = make_device(options, std::move(tap));
        device_->on_needs_reset = [this] { ++needs_reset_; };
        features_ = features;
        ASSERT_TRUE(device_->accept_features(features));
        const Gpa rings[] = {0x10000, 0x40000, 0x70000};
        const Gpa data[] = {0x1000000, 0x1800000, 0x2000000};
        for (int q = 0; q < device_->num_queues(); ++q) {
            queues_.push_back(
                std::make_unique<testing::GuestQueue>(memory_, features, kQueueSize, rings[q], data[q], 8 << 20));
            kicks_.push_back(std::make_unique<EventFd>());
        }
        activate();
    }

    void activate() {
        virtio::ActivationContext context;
        context.memory = &memory_;
        context.features = features_;
        context.interrupt = interrupt_;
        for (size_t q = 0; q < queues_.size(); ++q) {
            context.queues.push_back(queues_[q]->queue.get());
            context.notify_eventfds.push_back(kicks_[q]->fd());
        }
        device_->activate(context);
    }

    tapvm::testing::FakeDriverQueue& driver(uint16_t q) { return queues_[q]->driver; }
    void kick(uint16_t q) { kicks_[q]->signal(); }

    Gpa put(uint16_t q, const Bytes& bytes) {
        Gpa gpa = driver(q).alloc(bytes.size());
        driver(q).write_bytes(gpa, bytes);
        return gpa;
    }
    uint16_t send_frame(const Bytes& frame) {
        Bytes header(12, 0);
        uint16_t head = driver(1).chain().readable(put(1, header), 12).readable(put(1, frame), uint32_t(frame.size())).offer();
        kick(1);
        return head;
    }
    std::vector<Gpa> post_rx_pages(int count) {
        std::vector<Gpa> pages;
        for (int i = 0; i < count; ++i) {
            Gpa gpa = driver(0).alloc(4096);
            driver(0).chain().writable(gpa, 4096).offer();
            pages.push_back(gpa);
        }
        return pages;
    }
    // Waits for the next used entry of queue q.
    std::optional<UsedEntry> wait_used(uint16_t q) {
        std::optional<UsedEntry> entry;
        eventually([&] { return (entry = driver(q).next_used()).has_value(); });
        return entry;
    }

    GuestMemory memory_{{{0, 48 << 20}}};
    testing::RecordingInterrupt irq_;
    virtio::VirtioInterrupt* interrupt_ = &irq_;  // what the device signals
    SocketpairTap* tap_ = nullptr;
    std::unique_ptr<VirtioNetDevice> device_;
    std::vector<std::unique_ptr<testing::GuestQueue>> queues_;
    std::vector<std::unique_ptr<EventFd>> kicks_;
    uint64_t features_ = 0;
    std::atomic<int> needs_reset_{0};
};

constexpr uint64_t kRunFeatures = kV1 | bit(kFMrgRxbuf) | bit(kFCtrlVq) | bit(kFCtrlRx) | bit(kFCtrlMacAddr) |
                                  bit(kFCsum) | bit(kFGuestCsum) | bit(virtio::kFRingEventIdx);

TEST_F(RunningDevice, FramesCrossBothWaysWithoutAnyVcpuThread) {
    start("tap=t", kRunFeatures);
    EXPECT_TRUE(device_->active());

    // Guest -> host.
    Bytes out = pattern(90, 1);
    uint16_t head = send_frame(out);
    auto wire = tap_->wait_take();
    ASSERT_TRUE(wire.has_value());
    EXPECT_EQ(*wire, concat(Bytes(12, 0), out));
    auto used = wait_used(1);
    ASSERT_TRUE(used.has_value());
    EXPECT_EQ(*used, (UsedEntry{head, 0}));
    EXPECT_TRUE(eventually([&] { return irq_.count(1) == 1; }));

    // Host -> guest.
    std::vector<Gpa> pages = post_rx_pages(32);
    kick(0);
    Bytes in = pattern(200, 2);
    tap_->inject(concat(Bytes{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff}, in));
    auto rx_used = wait_used(0);
    ASSERT_TRUE(rx_used.has_value());
    EXPECT_EQ(rx_used->len, 212u);
    Bytes got = driver(0).read_bytes(pages[rx_used->id], 212);
    EXPECT_EQ(got, concat(Bytes{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0}, in));
    EXPECT_TRUE(eventually([&] { return irq_.count(0) >= 1; }));

    EXPECT_TRUE(eventually([&] { return device_->stats().rx.packets.get() == 1; }));
    nlohmann::json json = device_->stats_json();
    EXPECT_EQ(json["tx"]["packets"], 1);
    EXPECT_EQ(json["tx"]["bytes"], 90);
    EXPECT_EQ(json["rx"]["bytes"], 200);
    EXPECT_EQ(json["interface"], "fake0");
}

// A driver that answers each TX interrupt at once with a new frame and a
// kick.  The interrupt comes from inside the device's TX pass, after its
// last look at the ring, so each new frame is found only through its kick,
// which lands while the I/O thread is still handling the previous one.  With
// EVENT_IDX a lost kick would never be repeated.
TEST_F(RunningDevice, KicksThatArriveWhileAKickIsHandledAreNotLost) {
    struct EagerDriver : virtio::VirtioInterrupt {
        std::function<void()> on_tx;
        void signal_queue(uint16_t queue) override {
            if (queue == 1) on_tx();
        }
        void signal_config() override {}
    } eager;
    std::atomic<int> frames_left{20};
    eager.on_tx = [&] {
        // As Linux does: take note of the used ring, ask for the next
        // interrupt (EVENT_IDX used_event), queue the next frame and kick.
        driver(1).set_used_event(driver(1).used_idx());
        if (frames_left.fetch_sub(1) > 0) send_frame(pattern(60, 7));
    };
    interrupt_ = &eager;
    start("tap=t", kRunFeatures);
    send_frame(pattern(60, 7));
    for (int i = 0; i < 21; ++i) ASSERT_TRUE(tap_->wait_take().has_value()) << "frame " << i << " never left";
    EXPECT_TRUE(eventually([&] { return device_->stats().tx.packets.get() == 21; }));
}

TEST_F(RunningDevice, CtrlQueueSetsTheMacLive) {
    start("tap=t", kRunFeatures);
    Bytes command{kCtrlMac, kCtrlMacAddrSet, 0x02, 0x11, 0x22, 0x33, 0x44, 0x55};
    Gpa ack = driver(2).alloc(1);
    uint16_t head = driver(2).chain().readable(put(2, command), 8).writable(ack, 1).offer();
    kick(2);
    auto used = wait_used(2);
    ASSERT_TRUE(used.has_value());
    EXPECT_EQ(*used, (UsedEntry{head, 1}));
    EXPECT_EQ(driver(2).read_bytes(ack, 1)[0], kCtrlAckOk);
    uint8_t mac[6];
    device_->read_config(0, mac);
    EXPECT_EQ(Bytes(mac, mac + 6), (Bytes{0x02, 0x11, 0x22, 0x33, 0x44, 0x55}));
    EXPECT_TRUE(eventually([&] { return irq_.count(2) == 1; }));
}

TEST_F(RunningDevice, RxWaitsForAKickWhenTheGuestHasNoBuffers) {
    start("tap=t", kRunFeatures);
    tap_->inject(concat(Bytes(12, 0), pattern(60, 3)));
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    EXPECT_EQ(driver(0).used_idx(), 0);
    EXPECT_GE(device_->stats().rx.out_of_buffers.get(), 1u);

    post_rx_pages(20);
    kick(0);
    auto used = wait_used(0);
    ASSERT_TRUE(used.has_value());
    EXPECT_EQ(used->len, 72u);
    EXPECT_GE(device_->stats().rx.kicks.get(), 1u);
}

// A tap that fails reads (EIO, not EAGAIN) costs frames while it fails, not
// the queue: RX tries again on its own, and once the tap works the waiting
// frame arrives with no kick and no reset.
TEST_F(RunningDevice, RxRecoversFromTapReadErrorsWithoutAReset) {
    start("tap=t", kRunFeatures);
    std::vector<Gpa> pages = post_rx_pages(8);
    kick(0);
    tap_->fail_reads_with = EIO;
    Bytes in = pattern(100, 4);
    tap_->inject(concat(Bytes(12, 0), in));
    EXPECT_TRUE(eventually([&] { return device_->stats().rx.dropped_tap_error.get() >= 3; }))
        << "RX gave up after " << device_->stats().rx.dropped_tap_error.get() << " failed reads";
    EXPECT_EQ(driver(0).used_idx(), 0);

    tap_->fail_reads_with = 0;
    auto used = wait_used(0);
    ASSERT_TRUE(used.has_value()) << "RX never read the tap again";
    EXPECT_EQ(used->len, 112u);
    EXPECT_EQ(driver(0).read_bytes(pages[used->id] + 12, 100), in);
    EXPECT_EQ(device_->stats().needs_reset.get(), 0u);
}

TEST_F(RunningDevice, FullTapHoldsFramesUntilItDrainsAndLosesNone) {
    // The host does not read for a while: the device end's small send
    // buffer fills up and writes fail with EAGAIN.
    start("tap=t", kRunFeatures, true, /*sndbuf=*/4096);
    constexpr int kFrames = 60;
    for (int i = 0; i < kFrames; ++i) send_frame(pattern(100, static_cast<uint8_t>(i)));
    ASSERT_TRUE(eventually([&] { return device_->stats().tx.tap_full.get() >= 1; }));
    EXPECT_LT(driver(1).used_idx(), kFrames);
    // It waits for POLLOUT instead of retrying: no more attempts meanwhile.
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    EXPECT_EQ(device_->stats().tx.tap_full.get(), 1u);

    for (int i = 0; i < kFrames; ++i) {
        auto frame = tap_->wait_take();
        ASSERT_TRUE(frame.has_value()) << "frame " << i;
        EXPECT_EQ(*frame, concat(Bytes(12, 0), pattern(100, static_cast<uint8_t>(i)))) << "frame " << i;
    }
    EXPECT_TRUE(eventually([&] { return driver(1).used_idx() == kFrames; }));
    EXPECT_EQ(device_->stats().tx.packets.get(), unsigned{kFrames});
    EXPECT_EQ(device_->stats().tx.dropped_tap_error.get() + device_->stats().tx.dropped_no_buffers.get(), 0u);
}

TEST_F(RunningDevice, BrokenRingAsksTheTransportForAReset) {
    start("tap=t", kRunFeatures);
    driver(1).set_avail_idx(1000);  // more than the queue size ahead: garbage
    kick(1);
    EXPECT_TRUE(eventually([&] { return needs_reset_.load() == 1; }));
    EXPECT_EQ(device_->stats().needs_reset.get(), 1u);
    device_->reset();
    EXPECT_FALSE(device_->active());
}

TEST_F(RunningDevice, ResetStopsTheDataPathAndCanBeActivatedAgain) {
    start("tap=t", kRunFeatures);
    device_->reset();
    EXPECT_FALSE(device_->active());
    EXPECT_EQ(tap_->offloads().back(), 0u);
    // Nothing runs any more: a kick goes unanswered.
    send_frame(pattern(60, 1));
    std::this_thread::sleep_for(std::chrono::milliseconds(30));
    EXPECT_FALSE(tap_->take().has_value());

    // A new driver negotiates again (fresh rings, as after a real reset).
    queues_.clear();
    kicks_.clear();
    ASSERT_TRUE(device_->accept_features(kRunFeatures));
    const Gpa rings[] = {0x10000, 0x40000, 0x70000};
    const Gpa data[] = {0x1000000, 0x1800000, 0x2000000};
    for (int q = 0; q < 3; ++q) {
        queues_.push_back(std::make_unique<testing::GuestQueue>(memory_, kRunFeatures, kQueueSize, rings[q], data[q], 8 << 20));
        kicks_.push_back(std::make_unique<EventFd>());
    }
    activate();
    send_frame(pattern(60, 2));
    auto wire = tap_->wait_take();
    ASSERT_TRUE(wire.has_value());
    EXPECT_EQ(*wire, concat(Bytes(12, 0), pattern(60, 2)));
}

TEST_F(RunningDevice, NoVnetHeaderTapGetsPlainFrames) {
    start("tap=t", kV1 | bit(kFMrgRxbuf), /*vnet_hdr=*/false);
    Bytes out = pattern(64, 5);
    send_frame(out);
    auto wire = tap_->wait_take();
    ASSERT_TRUE(wire.has_value());
    EXPECT_EQ(*wire, out);  // header stripped

    std::vector<Gpa> pages = post_rx_pages(20);
    kick(0);
    Bytes in = pattern(64, 6);
    tap_->inject(in);
    auto used = wait_used(0);
    ASSERT_TRUE(used.has_value());
    EXPECT_EQ(driver(0).read_bytes(pages[used->id], 76), concat(Bytes{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0}, in));
}

// --- a real tap, inside a private network namespace --------------------------------------

#define IN_FRESH_NETNS(...)                                                          \
    do {                                                                             \
        std::string why;                                                             \
        if (!testing::run_in_fresh_netns([&] { __VA_ARGS__; }, why)) GTEST_SKIP() << why; \
    } while (0)

void bring_up(const char* name) {
    // No IPv6 autoconfiguration chatter on the test interface.
    if (FILE* f = std::fopen((std::string("/proc/sys/net/ipv6/conf/") + name + "/disable_ipv6").c_str(), "w")) {
        std::fputs("1", f);
        std::fclose(f);
    }
    UniqueFd sock(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
    ifreq ifr{};
    std::snprintf(ifr.ifr_name, IFNAMSIZ, "%s", name);
    ifr.ifr_flags = IFF_UP;
    ASSERT_EQ(::ioctl(sock.get(), SIOCSIFFLAGS, &ifr), 0);
}

int tso_enabled(const char* name) {
    UniqueFd sock(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
    struct ethtool_value value{.cmd = ETHTOOL_GTSO, .data = 0};
    ifreq ifr{};
    std::snprintf(ifr.ifr_name, IFNAMSIZ, "%s", name);
    ifr.ifr_data = reinterpret_cast<char*>(&value);
    return ::ioctl(sock.get(), SIOCETHTOOL, &ifr) == 0 ? static_cast<int>(value.data) : -1;
}

constexpr uint16_t kTestEthertype = 0x88b5;  // IEEE 802 local experimental

Bytes test_frame(uint8_t seed, size_t len = 100) {
    Bytes frame = pattern(len, seed);
    std::fill_n(frame.begin(), 6, 0xff);                            // broadcast
    const uint8_t src[6] = {0x02, 0x00, 0x00, 0x00, 0x00, seed};
    std::copy_n(src, 6, frame.begin() + 6);
    frame[12] = kTestEthertype >> 8;
    frame[13] = kTestEthertype & 0xff;
    return frame;
}

TEST_F(RunningDevice, RealTapEndToEnd) {
    IN_FRESH_NETNS({
        auto tap = TapDevice::open("vnet0", VnetHdrMode::kAuto);
        ASSERT_TRUE(tap->has_vnet_hdr());
        device_ = make_device("tap=vnet0", std::move(tap));
        const uint64_t features = kV1 | bit(kFMrgRxbuf) | bit(kFCsum) | bit(kFGuestCsum) | bit(kFGuestTso4) |
                                  bit(kFGuestTso6) | bit(kFHostTso4);
        features_ = features;
        ASSERT_TRUE(device_->accept_features(features));
        EXPECT_EQ(tso_enabled("vnet0"), 1);  // GUEST_TSO4 -> TUNSETOFFLOAD -> netdev TSO
        queues_.push_back(std::make_unique<testing::GuestQueue>(memory_, features, kQueueSize, 0x10000, 0x1000000, 8 << 20));
        queues_.push_back(std::make_unique<testing::GuestQueue>(memory_, features, kQueueSize, 0x40000, 0x1800000, 8 << 20));
        kicks_.push_back(std::make_unique<EventFd>());
        kicks_.push_back(std::make_unique<EventFd>());
        bring_up("vnet0");

        UniqueFd packets(::socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, htons(ETH_P_ALL)));
        ASSERT_TRUE(packets);
        sockaddr_ll where{};
        where.sll_family = AF_PACKET;
        where.sll_protocol = htons(ETH_P_ALL);
        where.sll_ifindex = static_cast<int>(::if_nametoindex("vnet0"));
        ASSERT_EQ(::bind(packets.get(), reinterpret_cast<sockaddr*>(&where), sizeof where), 0);

        std::vector<Gpa> pages = post_rx_pages(32);
        activate();

        // Host -> guest: a frame sent on the tap lands in a guest buffer.
        Bytes in = test_frame(1);
        ASSERT_EQ(::sendto(packets.get(), in.data(), in.size(), 0, reinterpret_cast<sockaddr*>(&where), sizeof where),
                  static_cast<ssize_t>(in.size()));
        auto used = wait_used(0);
        ASSERT_TRUE(used.has_value());
        ASSERT_EQ(used->len, 12 + in.size());
        Bytes got = driver(0).read_bytes(pages[used->id], used->len);
        EXPECT_EQ(testing::le16_at(got, kHdrNumBuffersOffset), 1);
        EXPECT_EQ(Bytes(got.begin() + 12, got.end()), in);

        // Guest -> host: a frame from the TX queue arrives on the tap.
        Bytes out = test_frame(2);
        send_frame(out);
        Bytes seen;
        ASSERT_TRUE(eventually([&] {
            uint8_t buffer[2048];
            sockaddr_ll from{};
            socklen_t from_len = sizeof from;
            ssize_t n = ::recvfrom(packets.get(), buffer, sizeof buffer, MSG_DONTWAIT,
                                   reinterpret_cast<sockaddr*>(&from), &from_len);
            if (n <= 0 || from.sll_pkttype == PACKET_OUTGOING) return false;
            Bytes frame(buffer, buffer + n);
            if (testing::le16_at(frame, 12) != ((kTestEthertype & 0xff) << 8 | kTestEthertype >> 8)) return false;
            seen = frame;
            return true;
        }));
        EXPECT_EQ(seen, out);
        EXPECT_TRUE(eventually([&] { return device_->stats().tx.packets.get() == 1; }));

        device_->reset();
        EXPECT_EQ(tso_enabled("vnet0"), 0);  // reset leaves the tap without offloads
        device_.reset();
    });
}

}  // namespace
}  // namespace tapvm::net
