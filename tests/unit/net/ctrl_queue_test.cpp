// The control virtqueue (virtio 1.2 §5.1.6.5): each command's OK and ERR
// answers, framing independence, and chains that cannot be answered.
#include "net/ctrl_queue.h"

#include <gtest/gtest.h>

#include <random>

#include "net/net_features.h"
#include "net_test_support.h"
#include "virtio/features.h"

namespace tapvm::net {
namespace {

using testing::Bytes;
using testing::concat;
using tapvm::testing::UsedEntry;

class RecordingActions : public CtrlActions {
public:
    void set_mac(const MacAddress& mac) override { macs.push_back(mac); }
    bool set_guest_offloads(uint64_t offloads) override {
        offload_calls.push_back(offloads);
        return accept_offloads;
    }
    std::vector<MacAddress> macs;
    std::vector<uint64_t> offload_calls;
    bool accept_offloads = true;
};

constexpr uint64_t kCtrlFeatures = bit(virtio::kFVersion1) | bit(kFCtrlVq) | bit(kFCtrlRx) | bit(kFCtrlMacAddr) |
                                   bit(kFCtrlGuestOffloads) | bit(kFGuestCsum) | bit(kFGuestTso4) | bit(kFGuestTso6);

Bytes le32(uint32_t v) { return {uint8_t(v), uint8_t(v >> 8), uint8_t(v >> 16), uint8_t(v >> 24)}; }
Bytes le64(uint64_t v) {
    Bytes b;
    for (int i = 0; i < 8; ++i) b.push_back(uint8_t(v >> (8 * i)));
    return b;
}
Bytes mac_table(std::initializer_list<MacAddress> macs, uint32_t claimed) {
    Bytes b = le32(claimed);
    for (const auto& m : macs) b.insert(b.end(), m.bytes.begin(), m.bytes.end());
    return b;
}
Bytes mac_table(std::initializer_list<MacAddress> macs) { return mac_table(macs, static_cast<uint32_t>(macs.size())); }

const MacAddress kMacA{{0x02, 0, 0, 0, 0, 0xa}};
const MacAddress kMacB{{0x02, 0, 0, 0, 0, 0xb}};
const MacAddress kMcast{{0x01, 0x00, 0x5e, 0, 0, 1}};

class CtrlQueueTest : public ::testing::Test {
protected:
    void make(uint64_t features) {
        guest_ = std::make_unique<testing::GuestQueue>(memory_, features, 64, 0x10000, 0x100000, 1 << 20);
        ctrl_ = std::make_unique<CtrlQueue>(*guest_->queue, irq_, 2, features, actions_, stats_);
    }
    void SetUp() override { make(kCtrlFeatures); }

    tapvm::testing::FakeDriverQueue& driver() { return guest_->driver; }

    // Sends one command, split into the given device-readable parts, with a
    // 1-byte ack buffer prefilled with 0xee; returns the ack (or -1 when the
    // command was not answered).
    int send(std::initializer_list<Bytes> parts, uint32_t ack_len = 1) {
        auto builder = driver().chain();
        for (const Bytes& part : parts) {
            Gpa gpa = driver().alloc(std::max<size_t>(part.size(), 1));
            if (!part.empty()) driver().write_bytes(gpa, part);
            builder.readable(gpa, static_cast<uint32_t>(part.size()));
        }
        Gpa ack = 0;
        if (ack_len) {
            ack = driver().alloc(ack_len);
            driver().write_bytes(ack, Bytes(ack_len, 0xee));
            builder.writable(ack, ack_len);
        }
        uint16_t head = builder.offer();
        EXPECT_EQ(ctrl_->process(), CtrlQueue::Result::kIdle);
        auto used = driver().drain_used();
        EXPECT_EQ(used.size(), 1u);
        if (used.empty()) return -2;
        EXPECT_EQ(used[0].id, head);
        if (used[0].len == 0) return -1;
        EXPECT_EQ(used[0].len, 1u);
        return driver().read_bytes(ack, 1)[0];
    }
    int send(const Bytes& whole) { return send({whole}); }

    GuestMemory memory_{{{0, 4 << 20}}};
    std::unique_ptr<testing::GuestQueue> guest_;
    testing::RecordingInterrupt irq_;
    RecordingActions actions_;
    CtrlStats stats_;
    std::unique_ptr<CtrlQueue> ctrl_;
};

TEST_F(CtrlQueueTest, RxModeCommandsAreRecorded) {
    EXPECT_TRUE(ctrl_->rx_filter().promisc);  // the default until told otherwise
    EXPECT_EQ(send(Bytes{kCtrlRx, kCtrlRxPromisc, 0}), kCtrlAckOk);
    EXPECT_FALSE(ctrl_->rx_filter().promisc);
    EXPECT_EQ(send(Bytes{kCtrlRx, kCtrlRxAllmulti, 1}), kCtrlAckOk);
    EXPECT_TRUE(ctrl_->rx_filter().allmulti);
    EXPECT_EQ(send(Bytes{kCtrlRx, kCtrlRxPromisc, 7}), kCtrlAckOk);  // any non-zero is on
    EXPECT_TRUE(ctrl_->rx_filter().promisc);
    EXPECT_EQ(stats_.commands.get(), 3u);
    EXPECT_EQ(irq_.count(2), 3);
}

// A ring full of commands is answered a budget at a time.
TEST_F(CtrlQueueTest, CommandsAreAnsweredABudgetAtATime) {
    const unsigned n = CtrlQueue::kBudget + 6;  // more than the fixture's 64-entry ring: a 128 one
    guest_ = std::make_unique<testing::GuestQueue>(memory_, kCtrlFeatures, 128, 0x10000, 0x100000, 1 << 20);
    ctrl_ = std::make_unique<CtrlQueue>(*guest_->queue, irq_, 2, kCtrlFeatures, actions_, stats_);
    for (unsigned i = 0; i < n; ++i) {
        Gpa cmd = driver().alloc(3);
        driver().write_bytes(cmd, Bytes{kCtrlRx, kCtrlRxPromisc, 1});
        Gpa ack = driver().alloc(1);
        driver().chain().readable(cmd, 3).writable(ack, 1).offer();
    }
    EXPECT_EQ(ctrl_->process(), CtrlQueue::Result::kMore);
    EXPECT_EQ(driver().used_idx(), CtrlQueue::kBudget);
    EXPECT_EQ(ctrl_->process(), CtrlQueue::Result::kIdle);
    EXPECT_EQ(driver().used_idx(), n);
    EXPECT_EQ(stats_.commands.get(), n);
}

TEST_F(CtrlQueueTest, RxModeErrors) {
    EXPECT_EQ(send(Bytes{kCtrlRx, kCtrlRxPromisc}), kCtrlAckErr);        // no data
    EXPECT_EQ(send(Bytes{kCtrlRx, kCtrlRxPromisc, 0, 0}), kCtrlAckErr);  // too much
    EXPECT_EQ(send(Bytes{kCtrlRx, 2, 1}), kCtrlAckErr);                  // ALLUNI needs RX_EXTRA
    EXPECT_EQ(send(Bytes{kCtrlRx, 9, 1}), kCtrlAckErr);
    EXPECT_TRUE(ctrl_->rx_filter().promisc);  // untouched
    EXPECT_EQ(stats_.errors.get(), 4u);
}

TEST_F(CtrlQueueTest, FramingDoesNotMatter) {
    // Class, command and data each in their own descriptor (and an empty one).
    EXPECT_EQ(send({Bytes{kCtrlRx}, Bytes{}, Bytes{kCtrlRxAllmulti}, Bytes{1}}), kCtrlAckOk);
    EXPECT_TRUE(ctrl_->rx_filter().allmulti);
    // A MAC table split mid-address.
    Bytes table = concat(mac_table({kMacA, kMacB}), mac_table({kMcast}));
    Bytes command = concat(Bytes{kCtrlMac, kCtrlMacTableSet}, table);
    EXPECT_EQ(send({Bytes(command.begin(), command.begin() + 9), Bytes(command.begin() + 9, command.end())}),
              kCtrlAckOk);
    EXPECT_EQ(ctrl_->rx_filter().unicast, (std::vector<MacAddress>{kMacA, kMacB}));
}

TEST_F(CtrlQueueTest, MacTableSet) {
    Bytes command = concat(concat(Bytes{kCtrlMac, kCtrlMacTableSet}, mac_table({kMacA})), mac_table({kMcast, kMcast}));
    EXPECT_EQ(send(command), kCtrlAckOk);
    EXPECT_EQ(ctrl_->rx_filter().unicast, (std::vector<MacAddress>{kMacA}));
    EXPECT_EQ(ctrl_->rx_filter().multicast.size(), 2u);
    EXPECT_FALSE(ctrl_->rx_filter().unicast_overflow);

    // Empty tables are fine too.
    EXPECT_EQ(send(concat(concat(Bytes{kCtrlMac, kCtrlMacTableSet}, mac_table({})), mac_table({}))), kCtrlAckOk);
    EXPECT_TRUE(ctrl_->rx_filter().unicast.empty());
}

TEST_F(CtrlQueueTest, MacTableSetLengthsAreValidated) {
    Bytes prefix{kCtrlMac, kCtrlMacTableSet};
    // Claims 3 entries but carries 1.
    EXPECT_EQ(send(concat(prefix, mac_table({kMacA}, 3))), kCtrlAckErr);
    // Multicast table missing altogether.
    EXPECT_EQ(send(concat(prefix, mac_table({kMacA}))), kCtrlAckErr);
    // Trailing garbage.
    EXPECT_EQ(send(concat(concat(concat(prefix, mac_table({kMacA})), mac_table({})), Bytes{0})), kCtrlAckErr);
    // A huge claimed count must not be trusted (no 24 GiB allocation).
    EXPECT_EQ(send(concat(prefix, mac_table({}, 0xffffffff))), kCtrlAckErr);
    EXPECT_TRUE(ctrl_->rx_filter().unicast.empty());  // nothing half-applied
}

TEST_F(CtrlQueueTest, OverlongMacTableIsAcceptedButFlagged) {
    Bytes table = le32(100);
    for (int i = 0; i < 100; ++i) table.insert(table.end(), kMacB.bytes.begin(), kMacB.bytes.end());
    EXPECT_EQ(send(concat(concat(Bytes{kCtrlMac, kCtrlMacTableSet}, table), mac_table({}))), kCtrlAckOk);
    EXPECT_EQ(ctrl_->rx_filter().unicast.size(), kMacTableMax);
    EXPECT_TRUE(ctrl_->rx_filter().unicast_overflow);
}

TEST_F(CtrlQueueTest, MacAddrSet) {
    Bytes command{kCtrlMac, kCtrlMacAddrSet};
    EXPECT_EQ(send(concat(command, Bytes(kMacB.bytes.begin(), kMacB.bytes.end()))), kCtrlAckOk);
    ASSERT_EQ(actions_.macs.size(), 1u);
    EXPECT_EQ(actions_.macs[0], kMacB);
    EXPECT_EQ(send(concat(command, Bytes(kMcast.bytes.begin(), kMcast.bytes.end()))), kCtrlAckErr);  // multicast
    EXPECT_EQ(send(concat(command, Bytes{2, 0, 0, 0, 0})), kCtrlAckErr);                              // 5 bytes
    EXPECT_EQ(send(concat(command, Bytes{2, 0, 0, 0, 0, 1, 0})), kCtrlAckErr);                        // 7 bytes
    EXPECT_EQ(actions_.macs.size(), 1u);
}

TEST_F(CtrlQueueTest, CommandsNeedTheirFeature) {
    make(bit(virtio::kFVersion1) | bit(kFCtrlVq));  // no CTRL_RX, CTRL_MAC_ADDR, CTRL_GUEST_OFFLOADS
    EXPECT_EQ(send(Bytes{kCtrlRx, kCtrlRxPromisc, 0}), kCtrlAckErr);
    EXPECT_EQ(send(concat(Bytes{kCtrlMac, kCtrlMacAddrSet}, Bytes(kMacB.bytes.begin(), kMacB.bytes.end()))),
              kCtrlAckErr);
    EXPECT_EQ(send(concat(Bytes{kCtrlGuestOffloads, kCtrlGuestOffloadsSet}, le64(0))), kCtrlAckErr);
    EXPECT_TRUE(actions_.macs.empty());
    EXPECT_TRUE(actions_.offload_calls.empty());
}

TEST_F(CtrlQueueTest, GuestOffloadsSet) {
    Bytes command{kCtrlGuestOffloads, kCtrlGuestOffloadsSet};
    // A subset of what was negotiated (LRO off: checksum only).
    EXPECT_EQ(send(concat(command, le64(bit(kFGuestCsum)))), kCtrlAckOk);
    EXPECT_EQ(send(concat(command, le64(0))), kCtrlAckOk);
    EXPECT_EQ(actions_.offload_calls, (std::vector<uint64_t>{bit(kFGuestCsum), 0}));
    // Not negotiated (ECN, UFO) or not an offload bit at all.
    EXPECT_EQ(send(concat(command, le64(bit(kFGuestCsum) | bit(kFGuestEcn)))), kCtrlAckErr);
    EXPECT_EQ(send(concat(command, le64(bit(kFCtrlVq)))), kCtrlAckErr);
    // Wrong length, unknown command.
    EXPECT_EQ(send(concat(command, Bytes{1, 0, 0, 0})), kCtrlAckErr);
    EXPECT_EQ(send(concat(Bytes{kCtrlGuestOffloads, 1}, le64(0))), kCtrlAckErr);
    EXPECT_EQ(actions_.offload_calls.size(), 2u);
    // The tap refusing makes it an error too.
    actions_.accept_offloads = false;
    EXPECT_EQ(send(concat(command, le64(bit(kFGuestCsum)))), kCtrlAckErr);
}

TEST_F(CtrlQueueTest, UnknownAndUnofferedClasses) {
    EXPECT_EQ(send(Bytes{kCtrlVlan, 0, 1, 0}), kCtrlAckErr);
    EXPECT_EQ(send(Bytes{kCtrlAnnounce, 0}), kCtrlAckErr);
    EXPECT_EQ(send(Bytes{kCtrlMq, 0, 1, 0}), kCtrlAckErr);
    EXPECT_EQ(send(Bytes{200, 0}), kCtrlAckErr);
    EXPECT_EQ(send(Bytes{kCtrlRx}), kCtrlAckErr);  // header cut short
    EXPECT_EQ(send({}), kCtrlAckErr);              // no readable bytes at all
}

TEST_F(CtrlQueueTest, ChainWithoutRoomForTheAckIsReturnedUnanswered) {
    EXPECT_EQ(send({Bytes{kCtrlRx, kCtrlRxPromisc, 0}}, /*ack_len=*/0), -1);
    EXPECT_EQ(stats_.malformed.get(), 1u);
    EXPECT_TRUE(ctrl_->rx_filter().promisc);  // not executed
}

TEST_F(CtrlQueueTest, AckGoesToTheFirstWritableByte) {
    EXPECT_EQ(send({Bytes{kCtrlRx, kCtrlRxPromisc, 0}}, /*ack_len=*/4), kCtrlAckOk);
}

// Guest garbage: random classes, commands and lengths, split at random.
// Every command gets OK or ERR; nothing crashes (run under ASan/UBSan).
TEST_F(CtrlQueueTest, RandomCommandsAreAlwaysAnswered) {
    std::mt19937 random(12345);
    for (int i = 0; i < 500; ++i) {
        Bytes command(random() % 40);
        for (auto& b : command) b = static_cast<uint8_t>(random() % 8 == 0 ? random() : random() % 6);
        size_t cut = command.empty() ? 0 : random() % command.size();
        int ack = send({Bytes(command.begin(), command.begin() + cut), Bytes(command.begin() + cut, command.end())});
        ASSERT_TRUE(ack == kCtrlAckOk || ack == kCtrlAckErr) << "command " << i;
    }
    EXPECT_EQ(stats_.commands.get() + stats_.errors.get(), 500u);
}

}  // namespace
}  // namespace tapvm::net
