// TxPath on a driver-side fake queue, with a socketpair tap: what reaches
// the host must be byte-exact, bad chains must be dropped and counted, and a
// full tap must keep the frame.  Runs with and without a tap vnet header.
#include "net/tx_path.h"

#include <gtest/gtest.h>

#include "net/net_features.h"
#include "net/virtio_net_hdr.h"
#include "net_test_support.h"
#include "virtio/features.h"

namespace tapvm::net {
namespace {

using testing::Bytes;
using testing::concat;
using testing::pattern;
using tapvm::testing::UsedEntry;

constexpr size_t kHeader = 12;

class TxPathTest : public ::testing::TestWithParam<bool /*tap_header*/> {
protected:
    void SetUp() override { make(virtio::bit(virtio::kFVersion1)); }

    // The header offloads a driver negotiates with a tap that takes them all.
    static constexpr uint64_t kHostOffloads =
        bit(kFCsum) | bit(kFHostTso4) | bit(kFHostTso6) | bit(kFHostEcn) | bit(kFHostUfo);

    void make(uint64_t features, unsigned budget = 256, uint16_t size = 256, uint64_t net_features = kHostOffloads) {
        tx_.reset();
        guest_ = std::make_unique<testing::GuestQueue>(memory_, features, size, 0x10000, 0x200000, 16 << 20);
        tap_ = std::make_unique<testing::SocketpairTap>(GetParam());
        TxPath::Config config{.header_len = kHeader,
                              .tap_has_header = GetParam(),
                              .queue_index = 1,
                              .budget = budget,
                              .features = features | net_features};
        stats_ = std::make_unique<TxStats>();
        tx_ = std::make_unique<TxPath>(*guest_->queue, *tap_, irq_, config, *stats_);
    }

    tapvm::testing::FakeDriverQueue& driver() { return guest_->driver; }

    Gpa put(const Bytes& bytes) {
        Gpa gpa = driver().alloc(bytes.size());
        driver().write_bytes(gpa, bytes);
        return gpa;
    }

    // A chain of device-readable parts, offered.
    uint16_t offer(std::initializer_list<Bytes> parts) {
        auto builder = driver().chain();
        for (const Bytes& part : parts) builder.readable(put(part), static_cast<uint32_t>(part.size()));
        return builder.offer();
    }

    Bytes header() { return Bytes{kHdrFNeedsCsum, kGsoTcpv4, 54, 0, 0xa8, 0x05, 34, 0, 16, 0, 0, 0}; }
    // What the host must receive for header + frame.
    Bytes on_the_wire(const Bytes& hdr, const Bytes& frame) { return GetParam() ? concat(hdr, frame) : frame; }

    GuestMemory memory_{{{0, 32 << 20}}};
    std::unique_ptr<testing::GuestQueue> guest_;
    std::unique_ptr<testing::SocketpairTap> tap_;
    testing::RecordingInterrupt irq_;
    std::unique_ptr<TxStats> stats_;
    std::unique_ptr<TxPath> tx_;
};

TEST_P(TxPathTest, HeaderAndFramePassThroughByteExactInOneWritev) {
    Bytes frame_a = pattern(40, 1), frame_b = pattern(60, 2);
    uint16_t head = offer({header(), frame_a, frame_b});
    EXPECT_EQ(tx_->process(), TxPath::Result::kIdle);

    auto wire = tap_->take();
    ASSERT_TRUE(wire.has_value());
    EXPECT_EQ(*wire, on_the_wire(header(), concat(frame_a, frame_b)));
    EXPECT_FALSE(tap_->take().has_value());  // exactly one frame
    // One writev straight from the guest's buffers: one iovec per descriptor.
    EXPECT_EQ(tap_->write_calls.load(), 1);
    EXPECT_EQ(tap_->last_write_iovecs, GetParam() ? 3u : 2u);

    EXPECT_EQ(driver().drain_used(), (std::vector<UsedEntry>{{head, 0}}));  // TX: nothing written
    EXPECT_EQ(stats_->packets.get(), 1u);
    EXPECT_EQ(stats_->bytes.get(), 100u);
    EXPECT_EQ(irq_.count(1), 1);
    EXPECT_EQ(driver().used_flags(), 0);  // idle: kicks welcome again
}

TEST_P(TxPathTest, HeaderSplitAcrossDescriptors) {
    // Header in two pieces, the second sharing its descriptor with the frame.
    Bytes hdr = header();
    Bytes frame = pattern(80, 3);
    Bytes first(hdr.begin(), hdr.begin() + 5);
    Bytes second = concat(Bytes(hdr.begin() + 5, hdr.end()), Bytes(frame.begin(), frame.begin() + 3));
    Bytes rest(frame.begin() + 3, frame.end());
    offer({first, second, rest});
    EXPECT_EQ(tx_->process(), TxPath::Result::kIdle);
    auto wire = tap_->take();
    ASSERT_TRUE(wire.has_value());
    EXPECT_EQ(*wire, on_the_wire(hdr, frame));
}

TEST_P(TxPathTest, MalformedChainsAreDroppedCountedAndReturned) {
    // A device-writable part in a TX chain.
    Gpa out = put(concat(header(), pattern(60, 1)));
    Gpa in = driver().alloc(64);
    uint16_t writable = driver().chain().readable(out, 72).writable(in, 64).offer();
    // Shorter than a header plus an Ethernet header.
    uint16_t short_one = offer({header(), pattern(13, 2)});
    uint16_t no_frame = offer({Bytes(8, 0)});
    // And a good one after them.
    uint16_t good = offer({header(), pattern(60, 3)});

    EXPECT_EQ(tx_->process(), TxPath::Result::kIdle);
    EXPECT_EQ(driver().drain_used(),
              (std::vector<UsedEntry>{{writable, 0}, {short_one, 0}, {no_frame, 0}, {good, 0}}));
    EXPECT_EQ(stats_->dropped_writable.get(), 1u);
    EXPECT_EQ(stats_->dropped_short.get(), 2u);
    EXPECT_EQ(stats_->packets.get(), 1u);
    EXPECT_EQ(tap_->write_calls.load(), 1);  // only the good one reached the tap
    EXPECT_EQ(*tap_->take(), on_the_wire(header(), pattern(60, 3)));
}

TEST_P(TxPathTest, MoreSegmentsThanOneWritevTakesIsDropped) {
    make(virtio::bit(virtio::kFVersion1), 256, /*size=*/2048);
    auto builder = driver().chain();
    builder.readable(put(header()), kHeader);
    Gpa bytes = put(pattern(1100, 1));
    for (uint32_t i = 0; i < 1100; ++i) builder.readable(bytes + i, 1);  // 1101 descriptors
    uint16_t head = builder.offer();
    EXPECT_EQ(tx_->process(), TxPath::Result::kIdle);
    EXPECT_EQ(driver().drain_used(), (std::vector<UsedEntry>{{head, 0}}));
    EXPECT_EQ(stats_->dropped_fragmented.get(), 1u);
    EXPECT_EQ(tap_->write_calls.load(), 0);
}

TEST_P(TxPathTest, FullTapKeepsTheFrameUntilWritable) {
    uint16_t first = offer({header(), pattern(60, 1)});
    uint16_t second = offer({header(), pattern(60, 2)});
    tap_->fail_writes_with = EAGAIN;
    EXPECT_EQ(tx_->process(), TxPath::Result::kTapFull);
    EXPECT_EQ(driver().used_idx(), 0);  // nothing dropped, nothing completed
    EXPECT_EQ(stats_->tap_full.get(), 1u);
    EXPECT_EQ(driver().used_flags(), tapvm::testing::kUsedNoNotify);  // no kicks while we wait
    EXPECT_EQ(irq_.count(1), 0);

    tap_->fail_writes_with = 0;  // the tap drained
    EXPECT_EQ(tx_->process(), TxPath::Result::kIdle);
    EXPECT_EQ(driver().drain_used(), (std::vector<UsedEntry>{{first, 0}, {second, 0}}));
    EXPECT_EQ(*tap_->take(), on_the_wire(header(), pattern(60, 1)));  // in order, none lost
    EXPECT_EQ(*tap_->take(), on_the_wire(header(), pattern(60, 2)));
    EXPECT_EQ(stats_->packets.get(), 2u);
}

TEST_P(TxPathTest, TapErrorsDropTheFrameAndCarryOn) {
    offer({header(), pattern(60, 1)});
    tap_->fail_writes_with = EIO;  // tap link down
    EXPECT_EQ(tx_->process(), TxPath::Result::kIdle);
    offer({header(), pattern(60, 2)});
    tap_->fail_writes_with = ENOBUFS;
    EXPECT_EQ(tx_->process(), TxPath::Result::kIdle);
    offer({header(), pattern(60, 3)});
    tap_->fail_writes_with = 0;
    EXPECT_EQ(tx_->process(), TxPath::Result::kIdle);

    EXPECT_EQ(driver().drain_used().size(), 3u);
    EXPECT_EQ(stats_->dropped_tap_error.get(), 1u);
    EXPECT_EQ(stats_->dropped_no_buffers.get(), 1u);
    EXPECT_EQ(stats_->packets.get(), 1u);
    EXPECT_EQ(*tap_->take(), on_the_wire(header(), pattern(60, 3)));
}

TEST_P(TxPathTest, ABatchIsPublishedAndSignalledOnce) {
    for (int i = 0; i < 10; ++i) offer({header(), pattern(60, static_cast<uint8_t>(i))});
    EXPECT_EQ(tx_->process(), TxPath::Result::kIdle);
    EXPECT_EQ(driver().drain_used().size(), 10u);
    EXPECT_EQ(irq_.count(1), 1);
    for (int i = 0; i < 10; ++i) EXPECT_EQ(*tap_->take(), on_the_wire(header(), pattern(60, static_cast<uint8_t>(i))));
}

TEST_P(TxPathTest, BudgetYieldsWithKicksStillOff) {
    make(virtio::bit(virtio::kFVersion1), /*budget=*/4);
    for (int i = 0; i < 10; ++i) offer({header(), pattern(60, static_cast<uint8_t>(i))});
    EXPECT_EQ(tx_->process(), TxPath::Result::kMore);
    EXPECT_EQ(driver().used_idx(), 4);
    EXPECT_EQ(driver().used_flags(), tapvm::testing::kUsedNoNotify);
    EXPECT_EQ(tx_->process(), TxPath::Result::kMore);
    EXPECT_EQ(tx_->process(), TxPath::Result::kIdle);
    EXPECT_EQ(driver().used_idx(), 10);
    EXPECT_EQ(irq_.count(1), 3);
}

// Bad chains are work too: a ring of nothing but malformed chains yields
// after the budget, like good ones, instead of holding the I/O thread.
TEST_P(TxPathTest, BadChainsCountAgainstTheBudget) {
    make(virtio::bit(virtio::kFVersion1), /*budget=*/4);
    for (int i = 0; i < 10; ++i) offer({Bytes(8, 0)});  // shorter than the header: dropped
    EXPECT_EQ(tx_->process(), TxPath::Result::kMore);
    EXPECT_EQ(driver().used_idx(), 4);
    EXPECT_EQ(tx_->process(), TxPath::Result::kMore);
    EXPECT_EQ(tx_->process(), TxPath::Result::kIdle);
    EXPECT_EQ(driver().used_idx(), 10);
    EXPECT_EQ(tap_->take(), std::nullopt);
}

// A header may only ask for what was negotiated (§5.1.6.2.1): otherwise the
// tap would segment or trust checksums for a guest that never agreed to it.
TEST_P(TxPathTest, HeadersAskingForUnnegotiatedOffloadsAreDropped) {
    struct Case {
        const char* what;
        uint64_t negotiated;
        uint8_t flags, gso_type;
        bool sent;
    };
    const uint64_t v1 = virtio::bit(virtio::kFVersion1);
    const Case cases[] = {
        {"plain frame, nothing negotiated", 0, 0, kGsoNone, true},
        {"NEEDS_CSUM without CSUM", 0, kHdrFNeedsCsum, kGsoNone, false},
        {"NEEDS_CSUM with CSUM", bit(kFCsum), kHdrFNeedsCsum, kGsoNone, true},
        {"DATA_VALID on transmit", kHostOffloads, kHdrFDataValid, kGsoNone, false},
        {"TCPv4 GSO without HOST_TSO4", bit(kFCsum) | bit(kFHostTso6), kHdrFNeedsCsum, kGsoTcpv4, false},
        {"TCPv4 GSO with HOST_TSO4", bit(kFCsum) | bit(kFHostTso4), kHdrFNeedsCsum, kGsoTcpv4, true},
        {"TCPv6 GSO without HOST_TSO6", bit(kFCsum) | bit(kFHostTso4), kHdrFNeedsCsum, kGsoTcpv6, false},
        {"UDP GSO without HOST_UFO", bit(kFCsum) | bit(kFHostTso4), kHdrFNeedsCsum, kGsoUdp, false},
        {"ECN without HOST_ECN", bit(kFCsum) | bit(kFHostTso4), kHdrFNeedsCsum, kGsoTcpv4 | kGsoEcn, false},
        {"ECN with HOST_ECN", bit(kFCsum) | bit(kFHostTso4) | bit(kFHostEcn), kHdrFNeedsCsum,
         kGsoTcpv4 | kGsoEcn, true},
        {"an unknown GSO type", kHostOffloads, kHdrFNeedsCsum, 2, false},
    };
    for (const Case& c : cases) {
        make(v1, 256, 256, c.negotiated);
        Bytes hdr = header();
        hdr[kHdrFlagsOffset] = c.flags;
        hdr[kHdrGsoTypeOffset] = c.gso_type;
        // Split the header over two descriptors: it is read across them.
        offer({Bytes(hdr.begin(), hdr.begin() + 1), Bytes(hdr.begin() + 1, hdr.end()), pattern(60, 7)});
        tx_->process();
        EXPECT_EQ(driver().used_idx(), 1) << c.what;
        EXPECT_EQ(tap_->take().has_value(), c.sent) << c.what;
        EXPECT_EQ(stats_->dropped_bad_header.get(), c.sent ? 0u : 1u) << c.what;
    }
}

TEST_P(TxPathTest, EventIdxSuppressesInterruptsAndKicks) {
    make(virtio::bit(virtio::kFVersion1) | virtio::bit(virtio::kFRingEventIdx));
    driver().set_used_event(100);  // Linux: "don't interrupt me for a while"
    for (int i = 0; i < 5; ++i) offer({header(), pattern(60, 1)});
    tx_->process();
    EXPECT_EQ(driver().used_idx(), 5);
    EXPECT_EQ(irq_.count(1), 0);
    // Re-enabled kicks ask for one at the next avail entry (§2.7.10).
    EXPECT_EQ(driver().avail_event(), 5);

    driver().set_used_event(5);  // now it wants one once entry 5 is used
    offer({header(), pattern(60, 2)});
    tx_->process();
    EXPECT_EQ(irq_.count(1), 1);
    EXPECT_EQ(stats_->interrupts.get(), 1u);
}

TEST_P(TxPathTest, NoInterruptFlagIsHonoured) {
    driver().set_avail_flags(tapvm::testing::kAvailNoInterrupt);
    offer({header(), pattern(60, 1)});
    tx_->process();
    EXPECT_EQ(driver().used_idx(), 1);
    EXPECT_EQ(irq_.count(1), 0);
}

TEST_P(TxPathTest, IndirectChainsWork) {
    make(virtio::bit(virtio::kFVersion1) | virtio::bit(virtio::kFRingIndirectDesc));
    Bytes frame = pattern(300, 9);
    uint16_t head = driver()
                        .chain()
                        .readable(put(header()), kHeader)
                        .readable(put(frame), static_cast<uint32_t>(frame.size()))
                        .indirect()
                        .offer();
    EXPECT_EQ(tx_->process(), TxPath::Result::kIdle);
    EXPECT_EQ(driver().drain_used(), (std::vector<UsedEntry>{{head, 0}}));
    EXPECT_EQ(*tap_->take(), on_the_wire(header(), frame));
}

INSTANTIATE_TEST_SUITE_P(TapHeader, TxPathTest, ::testing::Values(true, false),
                         [](const auto& info) { return info.param ? "WithVnetHeader" : "WithoutVnetHeader"; });

}  // namespace
}  // namespace tapvm::net
