// RxPath on a driver-side fake queue in real guest memory, with a
// socketpair standing in for the tap so that every byte can be checked.
// Runs with MRG_RXBUF on and off, and with the tap carrying a vnet header or
// not (vnet_hdr=off: the device writes the header itself).
#include "net/rx_path.h"

#include <gtest/gtest.h>

#include <map>
#include <random>

#include "net/virtio_net_hdr.h"
#include "virtio/features.h"
#include "net_test_support.h"

namespace tapvm::net {
namespace {

using testing::Bytes;
using testing::concat;
using testing::le16_at;
using testing::pattern;
using tapvm::testing::UsedEntry;

struct RxMode {
    bool mergeable;
    bool tap_header;
};

std::string mode_name(const ::testing::TestParamInfo<RxMode>& info) {
    return std::string(info.param.mergeable ? "Mergeable" : "SingleChain") +
           (info.param.tap_header ? "TapHeader" : "NoTapHeader");
}

constexpr size_t kHeader = 12;
constexpr uint32_t kPage = 4096;

// A buffer the driver posted: its head and its descriptors' memory.
struct Posted {
    uint16_t head;
    std::vector<std::pair<Gpa, uint32_t>> parts;
};

class RxPathTest : public ::testing::TestWithParam<RxMode> {
protected:
    void SetUp() override { make(virtio::bit(virtio::kFVersion1)); }

    void make(uint64_t features, size_t header_len = kHeader, unsigned budget = 64) {
        rx_.reset();
        guest_ = std::make_unique<testing::GuestQueue>(memory_, features, 256, 0x10000, 0x100000, 24 << 20);
        tap_ = std::make_unique<testing::SocketpairTap>(GetParam().tap_header);
        header_len_ = header_len;
        RxPath::Config config{.header_len = header_len,
                              .mergeable = GetParam().mergeable,
                              .tap_has_header = GetParam().tap_header,
                              .guest_csum = true,
                              .queue_index = 0,
                              .budget = budget};
        stats_ = std::make_unique<RxStats>();
        rx_ = std::make_unique<RxPath>(*guest_->queue, *tap_, irq_, config, *stats_);
    }

    tapvm::testing::FakeDriverQueue& driver() { return guest_->driver; }

    // Posts a buffer made of descriptors of the given sizes, filled with 0xee.
    Posted post(std::initializer_list<uint32_t> sizes) {
        auto builder = driver().chain();
        Posted posted{};
        for (uint32_t size : sizes) {
            Gpa gpa = driver().alloc(size);
            driver().write_bytes(gpa, Bytes(size, 0xee));
            builder.writable(gpa, size);
            posted.parts.emplace_back(gpa, size);
        }
        posted.head = builder.offer();
        posted_[posted.head] = posted;
        return posted;
    }
    // Linux's mergeable buffers: one page each.
    void post_pages(int count) {
        for (int i = 0; i < count; ++i) post({kPage});
    }
    // Linux's "big packets" chain: the header, then MAX_SKB_FRAGS pages.
    void post_big() { post({static_cast<uint32_t>(header_len_), kPage, kPage, kPage, kPage, kPage, kPage, kPage,
                            kPage, kPage, kPage, kPage, kPage, kPage, kPage, kPage, kPage, kPage}); }
    // Linux's small buffers: header + 1514-byte frame.
    void post_small() { post({static_cast<uint32_t>(header_len_ + 1514)}); }
    // What fits the mode: pages when mergeable, one big chain otherwise.
    void post_for_mode(int pages) {
        if (GetParam().mergeable) {
            post_pages(pages);
        } else {
            post_big();
            post_big();
        }
    }

    // The header a tap would put in front (num_buffers is never written by
    // the tap: garbage there must be overwritten by the device).
    Bytes tap_header(uint8_t flags = 0, uint8_t gso_type = kGsoNone, uint16_t gso_size = 0) {
        Bytes h = {flags, gso_type, 54, 0, static_cast<uint8_t>(gso_size), static_cast<uint8_t>(gso_size >> 8),
                   34, 0, 16, 0, 0xab, 0xcd};
        h.resize(header_len_);
        return h;
    }
    // Injects `frame` as the host would: with the tap header when the tap has one.
    void inject(const Bytes& frame, const Bytes& header) {
        tap_->inject(GetParam().tap_header ? concat(header, frame) : frame);
    }
    void inject(const Bytes& frame) { inject(frame, tap_header()); }

    // The header the guest must find: the tap's first ten bytes (or zeros)
    // and num_buffers, little-endian.
    Bytes expected_header(const Bytes& tap_hdr, uint16_t num_buffers) {
        Bytes h = GetParam().tap_header ? tap_hdr : Bytes(header_len_, 0);
        if (header_len_ == 12) {
            h[10] = static_cast<uint8_t>(num_buffers);
            h[11] = static_cast<uint8_t>(num_buffers >> 8);
        }
        return h;
    }

    // The bytes of a used buffer, `len` of them, across its descriptors.
    Bytes contents(const UsedEntry& used) {
        Bytes out;
        uint32_t left = used.len;
        for (auto [gpa, size] : posted_.at(static_cast<uint16_t>(used.id)).parts) {
            uint32_t n = std::min(left, size);
            if (n == 0) break;
            Bytes part = driver().read_bytes(gpa, n);
            out.insert(out.end(), part.begin(), part.end());
            left -= n;
        }
        return out;
    }
    // Concatenation of the used buffers of one frame.
    Bytes gathered(const std::vector<UsedEntry>& used) {
        Bytes out;
        for (const auto& u : used) out = concat(out, contents(u));
        return out;
    }

    GuestMemory memory_{{{0, 32 << 20}}};
    std::unique_ptr<testing::GuestQueue> guest_;
    std::unique_ptr<testing::SocketpairTap> tap_;
    testing::RecordingInterrupt irq_;
    std::unique_ptr<RxStats> stats_;
    std::unique_ptr<RxPath> rx_;
    std::map<uint16_t, Posted> posted_;
    size_t header_len_ = kHeader;
};

// --- every mode ----------------------------------------------------------------

class RxPathAnyMode : public RxPathTest {};

TEST_P(RxPathAnyMode, SmallFrameLandsInOneBufferWithItsHeader) {
    if (GetParam().mergeable) {
        post_pages(4);
    } else {
        post_small();
        post_small();  // a spare: with none left RX reports kNoBuffers
    }
    Bytes frame = pattern(100, 3);
    Bytes header = tap_header(kHdrFNeedsCsum);
    inject(frame, header);

    EXPECT_EQ(rx_->process(), RxPath::Result::kTapEmpty);
    auto used = driver().drain_used();
    ASSERT_EQ(used.size(), 1u);
    EXPECT_EQ(used[0].len, kHeader + 100);
    EXPECT_EQ(contents(used[0]), concat(expected_header(header, 1), frame));
    EXPECT_EQ(stats_->packets.get(), 1u);
    EXPECT_EQ(stats_->bytes.get(), 100u);
    EXPECT_EQ(stats_->buffers_used.get(), 1u);
    EXPECT_EQ(irq_.count(0), 1);
    EXPECT_EQ(stats_->interrupts.get(), 1u);
}

TEST_P(RxPathAnyMode, ManyFramesOneInterrupt) {
    for (int i = 0; i < 8; ++i) {
        if (GetParam().mergeable) post_pages(1);
        else post_small();
    }
    for (int i = 0; i < 5; ++i) inject(pattern(60 + i, static_cast<uint8_t>(i)));
    EXPECT_EQ(rx_->process(), RxPath::Result::kTapEmpty);
    auto used = driver().drain_used();
    ASSERT_EQ(used.size(), 5u);
    for (int i = 0; i < 5; ++i) {
        EXPECT_EQ(used[i].len, kHeader + 60 + i);
        Bytes got = contents(used[i]);
        EXPECT_EQ(Bytes(got.begin() + kHeader, got.end()), pattern(60 + i, static_cast<uint8_t>(i)));
    }
    EXPECT_EQ(irq_.count(0), 1);  // one batch, one interrupt
}

TEST_P(RxPathAnyMode, NoBuffersStopsUntilTheDriverPostsSome) {
    inject(pattern(80, 9));
    EXPECT_EQ(rx_->process(), RxPath::Result::kNoBuffers);
    EXPECT_EQ(stats_->out_of_buffers.get(), 1u);
    EXPECT_EQ(driver().used_flags(), 0);  // kicks re-enabled: we wait for one
    EXPECT_EQ(driver().used_idx(), 0);
    EXPECT_EQ(irq_.count(0), 0);
    EXPECT_EQ(stats_->packets.get(), 0u);  // the frame stays in the tap

    post_for_mode(2);  // the driver posts buffers (and would kick)
    EXPECT_EQ(rx_->process(), RxPath::Result::kTapEmpty);
    auto used = driver().drain_used();
    ASSERT_EQ(used.size(), 1u);
    Bytes got = contents(used[0]);
    EXPECT_EQ(Bytes(got.begin() + kHeader, got.end()), pattern(80, 9));
    // Holding buffers, polling the tap: kicks are suppressed again.
    EXPECT_EQ(driver().used_flags(), tapvm::testing::kUsedNoNotify);
}

TEST_P(RxPathAnyMode, BadChainsAreReturnedEmptyAndCounted) {
    // A receive buffer the device may not write, and one too small for the header.
    Gpa readable = driver().alloc(kPage);
    uint16_t bad1 = driver().chain().readable(readable, kPage).offer();
    Gpa tiny = driver().alloc(8);
    uint16_t bad2 = driver().chain().writable(tiny, 8).offer();
    post_for_mode(2);
    inject(pattern(70, 1));
    EXPECT_EQ(rx_->process(), RxPath::Result::kTapEmpty);
    auto used = driver().drain_used();
    ASSERT_EQ(used.size(), 3u);
    EXPECT_EQ(used[0], (UsedEntry{bad1, 0}));
    EXPECT_EQ(used[1], (UsedEntry{bad2, 0}));
    EXPECT_EQ(used[2].len, kHeader + 70);
    EXPECT_EQ(stats_->dropped_bad_chain.get(), 2u);
}

TEST_P(RxPathAnyMode, BudgetYieldsAndTheRestFollows) {
    make(virtio::bit(virtio::kFVersion1), kHeader, /*budget=*/4);
    for (int i = 0; i < 8; ++i) {
        if (GetParam().mergeable) post_pages(1);
        else post_small();
    }
    for (int i = 0; i < 6; ++i) inject(pattern(64, static_cast<uint8_t>(i)));
    EXPECT_EQ(rx_->process(), RxPath::Result::kMore);
    EXPECT_EQ(driver().drain_used().size(), 4u);
    EXPECT_EQ(rx_->process(), RxPath::Result::kTapEmpty);
    EXPECT_EQ(driver().drain_used().size(), 2u);
    EXPECT_EQ(irq_.count(0), 2);
}

// Unusable buffers share the frames' budget: a driver posting nothing but
// bad chains gets them back a budget at a time, each pass ending kMore.
TEST_P(RxPathAnyMode, BadChainsCountAgainstTheBudget) {
    make(virtio::bit(virtio::kFVersion1), kHeader, /*budget=*/4);
    Gpa readable = driver().alloc(kPage);
    for (int i = 0; i < 10; ++i) driver().chain().readable(readable, kPage).offer();
    inject(pattern(70, 1));
    EXPECT_EQ(rx_->process(), RxPath::Result::kMore);
    EXPECT_EQ(driver().drain_used().size(), 4u);
    EXPECT_EQ(rx_->process(), RxPath::Result::kMore);
    EXPECT_EQ(driver().drain_used().size(), 4u);
    rx_->process();
    EXPECT_EQ(driver().drain_used().size(), 2u);
    EXPECT_EQ(stats_->dropped_bad_chain.get(), 10u);
}

TEST_P(RxPathAnyMode, GuestCsumOffClearsTheHeaderFlags) {
    post_for_mode(2);
    post_for_mode(2);
    Bytes header = tap_header(kHdrFDataValid);
    inject(pattern(60, 1), header);
    EXPECT_EQ(rx_->process(), RxPath::Result::kTapEmpty);
    rx_->set_guest_csum(false);
    inject(pattern(60, 2), header);
    EXPECT_EQ(rx_->process(), RxPath::Result::kTapEmpty);
    auto used = driver().drain_used();
    ASSERT_EQ(used.size(), 2u);
    // With GUEST_CSUM the tap's DATA_VALID passes; without it flags are 0
    // (virtio 1.2 §5.1.6.4.1).  Without a tap header they are 0 anyway.
    EXPECT_EQ(contents(used[0])[0], GetParam().tap_header ? kHdrFDataValid : 0);
    EXPECT_EQ(contents(used[1])[0], 0);
}

TEST_P(RxPathAnyMode, EventIdxSuppressesInterruptsUntilUsedEventIsCrossed) {
    make(virtio::bit(virtio::kFVersion1) | virtio::bit(virtio::kFRingEventIdx));
    for (int i = 0; i < 8; ++i) {
        if (GetParam().mergeable) post_pages(1);
        else post_small();
    }
    driver().set_used_event(0);  // "interrupt me after the first one"
    inject(pattern(60, 0));
    rx_->process();
    EXPECT_EQ(irq_.count(0), 1);

    driver().set_used_event(5);  // "not before used entry 5"
    for (int i = 0; i < 3; ++i) inject(pattern(60, 1));
    rx_->process();              // used.idx 1 -> 4: entry 5 not reached
    EXPECT_EQ(driver().used_idx(), 4);
    EXPECT_EQ(irq_.count(0), 1);
    for (int i = 0; i < 3; ++i) inject(pattern(60, 2));
    rx_->process();              // 4 -> 7 crosses 5
    EXPECT_EQ(driver().used_idx(), 7);
    EXPECT_EQ(irq_.count(0), 2);
    EXPECT_EQ(stats_->interrupts.get(), 2u);
}

TEST_P(RxPathAnyMode, TapErrorEndsThePassAndIsCounted) {
    post_for_mode(2);
    tap_->fail_reads_with = EBADFD;
    EXPECT_EQ(rx_->process(), RxPath::Result::kTapFailed);
    EXPECT_EQ(stats_->dropped_tap_error.get(), 1u);
    EXPECT_EQ(driver().used_idx(), 0);
}

INSTANTIATE_TEST_SUITE_P(Modes, RxPathAnyMode,
                         ::testing::Values(RxMode{true, true}, RxMode{true, false}, RxMode{false, true},
                                           RxMode{false, false}),
                         mode_name);

// --- MRG_RXBUF --------------------------------------------------------------------

class RxPathMergeable : public RxPathTest {};

// One frame over n page buffers: num_buffers = n, every buffer but the last
// full, the bytes in order (virtio 1.2 §5.1.6.4).
void check_spread(const std::vector<UsedEntry>& used, size_t packet_len, size_t buffers) {
    ASSERT_EQ(used.size(), buffers);
    size_t left = packet_len;
    for (size_t i = 0; i < buffers; ++i) {
        EXPECT_EQ(used[i].len, std::min<size_t>(left, kPage)) << "buffer " << i;
        left -= used[i].len;
    }
}

TEST_P(RxPathMergeable, NumBuffersForOneTwoAndSeventeenPages) {
    post_pages(40);
    struct Case {
        size_t frame_len;
        uint16_t buffers;
        uint8_t gso_type;
    };
    // 1: fits a page; 2: just over; 17: a 64 KiB TCPv4 GSO frame (65548
    // bytes with the header = 16 full pages + 12 bytes).
    const Case cases[] = {{1000, 1, kGsoNone}, {kPage - kHeader + 1, 2, kGsoNone}, {65536, 17, kGsoTcpv4}};
    for (const Case& c : cases) {
        Bytes frame = pattern(c.frame_len, static_cast<uint8_t>(c.buffers));
        Bytes header = tap_header(kHdrFNeedsCsum, c.gso_type, c.gso_type ? 1448 : 0);
        inject(frame, header);
        EXPECT_EQ(rx_->process(), RxPath::Result::kTapEmpty);
        auto used = driver().drain_used();
        check_spread(used, kHeader + c.frame_len, c.buffers);
        Bytes got = gathered(used);
        EXPECT_EQ(le16_at(got, kHdrNumBuffersOffset), c.buffers);
        EXPECT_EQ(got, concat(expected_header(header, c.buffers), frame)) << c.buffers << " buffers";
    }
    EXPECT_EQ(stats_->packets.get(), 3u);
    EXPECT_EQ(stats_->buffers_used.get(), 20u);
}

TEST_P(RxPathMergeable, HeldBuffersCarryOverToTheNextFrame) {
    post_pages(20);
    inject(pattern(100, 1));
    EXPECT_EQ(rx_->process(), RxPath::Result::kTapEmpty);
    // It pops enough for the largest frame (17 pages hold kMaxPacketLen),
    // used one, kept the rest and topped up again before finding the tap empty.
    EXPECT_EQ(rx_->held_buffers(), 17u);
    inject(pattern(100, 2));
    EXPECT_EQ(rx_->process(), RxPath::Result::kTapEmpty);
    auto used = driver().drain_used();
    ASSERT_EQ(used.size(), 2u);
    EXPECT_NE(used[0].id, used[1].id);
    EXPECT_EQ(rx_->held_buffers(), 17u);  // refilled from the ring
}

TEST_P(RxPathMergeable, HeaderSplitAcrossDescriptorsGetsNumBuffers) {
    // Buffers whose first descriptor is shorter than the header.
    post({4, 2000});
    post({4, 2000});
    Bytes frame = pattern(3000, 5);
    Bytes header = tap_header();
    inject(frame, header);
    // Every buffer is used: RX stops and waits for the driver.
    EXPECT_EQ(rx_->process(), RxPath::Result::kNoBuffers);
    auto used = driver().drain_used();
    ASSERT_EQ(used.size(), 2u);
    EXPECT_EQ(used[0].len, 2004u);
    EXPECT_EQ(gathered(used), concat(expected_header(header, 2), frame));
}

TEST_P(RxPathMergeable, FrameLargerThanTheHeldBuffersWaitsForMoreAndArrivesWhole) {
    post_pages(2);
    Bytes big = pattern(10000, 1);
    Bytes header = tap_header();
    inject(big, header);
    inject(pattern(100, 2));
    // Two pages cannot hold 10000 bytes; the driver may still post more.
    EXPECT_EQ(rx_->process(), RxPath::Result::kNoBuffers);
    EXPECT_TRUE(driver().drain_used().empty());
    EXPECT_EQ(stats_->dropped_oversize.get(), 0u);

    post_pages(2);
    EXPECT_EQ(rx_->process(), RxPath::Result::kNoBuffers);  // the small frame took the last page
    auto used = driver().drain_used();
    ASSERT_EQ(used.size(), 4u);
    const std::vector<UsedEntry> first(used.begin(), used.begin() + 3);
    EXPECT_EQ(gathered(first), concat(expected_header(header, 3), big));
    Bytes small = contents(used[3]);
    EXPECT_EQ(Bytes(small.begin() + kHeader, small.end()), pattern(100, 2));
    EXPECT_EQ(stats_->spilled.get(), 1u);
    EXPECT_EQ(stats_->packets.get(), 2u);
}

// The spilled part may need several of the buffers posted later.
TEST_P(RxPathMergeable, SpilledFrameFillsSeveralLaterBuffers) {
    post_pages(2);
    Bytes big = pattern(14000, 3);
    Bytes header = tap_header();
    inject(big, header);
    EXPECT_EQ(rx_->process(), RxPath::Result::kNoBuffers);
    post_pages(2);
    EXPECT_EQ(rx_->process(), RxPath::Result::kNoBuffers);
    auto used = driver().drain_used();
    ASSERT_EQ(used.size(), 4u);
    EXPECT_EQ(gathered(used), concat(expected_header(header, 4), big));
    EXPECT_EQ(stats_->spilled.get(), 1u);
}

TEST_P(RxPathMergeable, FrameThatCanNeverFitIsDroppedAndTheBuffersKept) {
    // 224 buffers of 64 bytes: the ring's 256 less the 32 Linux may keep to
    // itself, so the driver cannot be expected to post more.
    for (int i = 0; i < 224; ++i) post({64});
    inject(pattern(20000, 1));
    inject(pattern(40, 2));
    EXPECT_EQ(rx_->process(), RxPath::Result::kTapEmpty);
    EXPECT_EQ(stats_->dropped_oversize.get(), 1u);
    auto used = driver().drain_used();
    ASSERT_EQ(used.size(), 1u);  // the small frame, in the first buffer
    Bytes got = contents(used[0]);
    EXPECT_EQ(Bytes(got.begin() + kHeader, got.end()), pattern(40, 2));
}

// Random buffer layouts (1-3 descriptors, 12..5000 bytes each) and random
// frame sizes: every frame arrives intact over as many buffers as it needs.
TEST_P(RxPathMergeable, RandomBuffersAndFramesArriveIntact) {
    std::mt19937 random(GetParam().tap_header ? 1 : 2);
    auto random_size = [&] { return static_cast<uint32_t>(kHeader + random() % 4989); };
    for (int round = 0; round < 30; ++round) {
        // At most 80 chains (240 descriptors) outstanding: the fake driver
        // hands out descriptor indices round-robin over the 256 of the queue.
        while (static_cast<uint16_t>(driver().avail_idx() - driver().used_idx()) < 80) {
            switch (random() % 3) {
                case 0: post({random_size()}); break;
                case 1: post({random_size(), random_size()}); break;
                default: post({4, random_size(), random_size()}); break;
            }
        }
        size_t frame_len = 14 + random() % (round % 5 == 0 ? 65536 - 14 : 3000);
        Bytes frame = pattern(frame_len, static_cast<uint8_t>(round));
        Bytes header = tap_header();
        inject(frame, header);
        ASSERT_EQ(rx_->process(), RxPath::Result::kTapEmpty);
        auto used = driver().drain_used();
        ASSERT_FALSE(used.empty());
        EXPECT_EQ(gathered(used), concat(expected_header(header, static_cast<uint16_t>(used.size())), frame))
            << "round " << round << ", " << frame_len << " bytes";
    }
    EXPECT_EQ(stats_->packets.get(), 30u);
    EXPECT_EQ(stats_->dropped_oversize.get(), 0u);
}

INSTANTIATE_TEST_SUITE_P(Modes, RxPathMergeable,
                         ::testing::Values(RxMode{true, true}, RxMode{true, false}), mode_name);

// --- one chain per frame (no MRG_RXBUF) -------------------------------------------

class RxPathSingleChain : public RxPathTest {};

TEST_P(RxPathSingleChain, BigBufferHoldsA64KiBGsoFrame) {
    post_big();
    Bytes frame = pattern(65536, 7);
    Bytes header = tap_header(kHdrFNeedsCsum, kGsoTcpv4, 1448);
    inject(frame, header);
    // Every buffer is used: RX stops and waits for the driver.
    EXPECT_EQ(rx_->process(), RxPath::Result::kNoBuffers);
    auto used = driver().drain_used();
    ASSERT_EQ(used.size(), 1u);
    EXPECT_EQ(used[0].len, kHeader + 65536);
    Bytes got = contents(used[0]);
    EXPECT_EQ(le16_at(got, kHdrNumBuffersOffset), 1);  // §5.1.6.4.2: 1 without MRG_RXBUF
    EXPECT_EQ(got, concat(expected_header(header, 1), frame));
}

TEST_P(RxPathSingleChain, OversizedFrameIsDroppedAndTheBufferReused) {
    Posted small = post({static_cast<uint32_t>(kHeader + 1514)});
    inject(pattern(2000, 1));
    inject(pattern(1514, 2));
    // Every buffer is used: RX stops and waits for the driver.
    EXPECT_EQ(rx_->process(), RxPath::Result::kNoBuffers);
    EXPECT_EQ(stats_->dropped_oversize.get(), 1u);
    auto used = driver().drain_used();
    ASSERT_EQ(used.size(), 1u);
    EXPECT_EQ(used[0].id, small.head);
    EXPECT_EQ(used[0].len, kHeader + 1514);  // exactly full still fits
    Bytes got = contents(used[0]);
    EXPECT_EQ(Bytes(got.begin() + kHeader, got.end()), pattern(1514, 2));
}

TEST_P(RxPathSingleChain, LegacyTenByteHeaderHasNoNumBuffers) {
    make(0, /*header_len=*/10);  // legacy driver without MRG_RXBUF
    Posted buffer = post({1600});
    Bytes frame = pattern(200, 4);
    Bytes header = tap_header(kHdrFNeedsCsum);
    inject(frame, header);
    // Every buffer is used: RX stops and waits for the driver.
    EXPECT_EQ(rx_->process(), RxPath::Result::kNoBuffers);
    auto used = driver().drain_used();
    ASSERT_EQ(used.size(), 1u);
    EXPECT_EQ(used[0].len, 10u + 200);
    EXPECT_EQ(contents(used[0]), concat(expected_header(header, 1), frame));
    // Nothing written past the frame.
    EXPECT_EQ(driver().read_bytes(buffer.parts[0].first + 210, 4), Bytes(4, 0xee));
}

INSTANTIATE_TEST_SUITE_P(Modes, RxPathSingleChain,
                         ::testing::Values(RxMode{false, true}, RxMode{false, false}), mode_name);

}  // namespace
}  // namespace tapvm::net
