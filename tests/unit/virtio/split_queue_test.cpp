// SplitQueue driven by a driver-side FakeDriverQueue over real guest memory.
#include "virtio/chain_walker.h"
#include "virtio/split_queue.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <numeric>
#include <thread>

#include "support/testkit.h"
#include "virtio/features.h"

namespace tapvm::virtio {
namespace {

using testing::FakeDriverQueue;
using testing::RawDescriptor;
using testing::UsedEntry;
using testing::kDescIndirect;
using testing::kDescNext;
using testing::kDescWrite;

constexpr uint64_t kRamSize = 16 << 20;
constexpr uint64_t kIndirect = bit(kFRingIndirectDesc);
constexpr uint64_t kEventIdx = bit(kFRingEventIdx);

class SplitQueueTest : public ::testing::Test {
protected:
    void start(uint16_t size = 8, uint64_t features = kIndirect) {
        driver_ = std::make_unique<FakeDriverQueue>(memory_, FakeDriverQueue::Options{.size = size});
        std::string why;
        queue_ = SplitQueue::create(memory_, driver_->config(), features, why);
        ASSERT_TRUE(queue_) << why;
    }
    // Pops, expecting a per-chain error that came back to the driver empty.
    void expect_dropped(uint16_t head, ChainError error) {
        const PopResult result = queue_->pop(chain_);
        EXPECT_EQ(result.status, PopStatus::kError);
        EXPECT_EQ(result.error, error) << to_string(result.error);
        EXPECT_FALSE(chain_.pending());
        EXPECT_FALSE(queue_->broken());
        EXPECT_EQ(queue_->stats().errors[static_cast<size_t>(error)], 1u);
        queue_->publish();
        EXPECT_EQ(driver_->next_used(), (UsedEntry{head, 0}));
        // The queue keeps working afterwards.
        const Gpa buf = driver_->alloc(64);
        const uint16_t good = driver_->chain().writable(buf, 64).offer();
        ASSERT_EQ(queue_->pop(chain_).status, PopStatus::kChain);
        EXPECT_EQ(chain_.head(), good);
        queue_->complete(chain_, 64);
    }
    // Pops, expecting a ring error: nothing reaches the used ring and the
    // queue stays broken.
    void expect_broken(ChainError error) {
        const PopResult result = queue_->pop(chain_);
        EXPECT_EQ(result.status, PopStatus::kError);
        EXPECT_EQ(result.error, error) << to_string(result.error);
        EXPECT_TRUE(queue_->broken());
        queue_->publish();
        EXPECT_EQ(driver_->used_idx(), 0);
        EXPECT_FALSE(queue_->has_available());
        EXPECT_EQ(queue_->pop(chain_).status, PopStatus::kError);
        EXPECT_EQ(queue_->stats().errors[static_cast<size_t>(error)], 1u);
    }
    // One descriptor-table entry, written raw.
    void put(uint16_t index, Gpa addr, uint32_t len, uint16_t flags = 0, uint16_t next = 0) {
        driver_->write_descriptor(index, RawDescriptor{addr, len, flags, next});
    }
    // Offers and pops/completes `count` single-buffer chains.
    void cycle(uint32_t count) {
        const Gpa buf = driver_->alloc(16);
        for (uint32_t i = 0; i < count; ++i) {
            driver_->chain().writable(buf, 16).offer();
            ASSERT_EQ(queue_->pop(chain_).status, PopStatus::kChain);
            queue_->complete(chain_, 1);
            queue_->publish();
            driver_->drain_used();
        }
    }

    GuestMemory memory_{{{0, kRamSize}}};
    std::unique_ptr<FakeDriverQueue> driver_;
    std::unique_ptr<SplitQueue> queue_;
    DescriptorChain chain_;
};

// --- valid chains --------------------------------------------------------

TEST_F(SplitQueueTest, EmptyQueuePopsNothing) {
    start();
    EXPECT_FALSE(queue_->has_available());
    EXPECT_EQ(queue_->pop(chain_).status, PopStatus::kEmpty);
}

// A queue that takes over a ring another device instance left (vhost-user
// SET_VRING_BASE) pops from the given avail entry and fills the used ring
// from used.idx as it stands in memory, not from 0.
TEST_F(SplitQueueTest, ResumeAtContinuesBothRingsWhereTheyStand) {
    start(8);
    // An earlier instance consumed and completed three chains.
    for (int i = 0; i < 3; ++i) {
        driver_->chain().writable(driver_->alloc(16), 16).offer();
        ASSERT_EQ(queue_->pop(chain_).status, PopStatus::kChain);
        queue_->complete(chain_, 0);
    }
    queue_->publish();
    EXPECT_EQ(driver_->drain_used().size(), 3u);

    std::string why;
    auto resumed = SplitQueue::create(memory_, driver_->config(), kIndirect, why);
    ASSERT_TRUE(resumed) << why;
    resumed->resume_at(queue_->next_avail_index());
    EXPECT_EQ(resumed->next_avail_index(), 3);
    const uint16_t head = driver_->chain().writable(driver_->alloc(16), 16).offer();
    ASSERT_EQ(resumed->pop(chain_).status, PopStatus::kChain);
    EXPECT_EQ(chain_.head(), head);
    resumed->complete(chain_, 7);
    resumed->publish();
    EXPECT_EQ(driver_->used_idx(), 4);  // one more than the three before
    EXPECT_EQ(driver_->next_used(), (UsedEntry{head, 7}));
}

TEST_F(SplitQueueTest, SplitsReadableAndWritableSegmentsWithHostViews) {
    start();
    const Gpa in1 = driver_->alloc(10), in2 = driver_->alloc(20), out1 = driver_->alloc(30),
              out2 = driver_->alloc(40);
    std::vector<uint8_t> payload(10);
    std::iota(payload.begin(), payload.end(), 1);
    driver_->write_bytes(in1, payload);
    const uint16_t head =
        driver_->chain().readable(in1, 10).readable(in2, 20).writable(out1, 30).writable(out2, 40).offer();

    ASSERT_TRUE(queue_->has_available());
    ASSERT_EQ(queue_->pop(chain_).status, PopStatus::kChain);
    EXPECT_TRUE(chain_.pending());
    EXPECT_EQ(chain_.head(), head);
    ASSERT_EQ(chain_.readable().size(), 2u);
    ASSERT_EQ(chain_.writable().size(), 2u);
    EXPECT_EQ(chain_.readable_bytes(), 30u);
    EXPECT_EQ(chain_.writable_bytes(), 70u);
    EXPECT_EQ(chain_.readable()[0].gpa, in1);
    EXPECT_EQ(chain_.readable()[1].gpa, in2);
    EXPECT_EQ(chain_.writable()[0].gpa, out1);
    EXPECT_EQ(chain_.writable()[1].host.size(), 40u);
    EXPECT_FALSE(chain_.readable()[0].device_writable);
    EXPECT_TRUE(chain_.writable()[0].device_writable);
    // The host views are the guest's buffers, both ways.
    EXPECT_TRUE(std::equal(payload.begin(), payload.end(), chain_.readable()[0].host.begin()));
    chain_.writable()[1].host[3] = 0xab;
    EXPECT_EQ(driver_->read_bytes(out2 + 3, 1)[0], 0xab);

    queue_->complete(chain_, 70);
    EXPECT_FALSE(chain_.pending());
    EXPECT_EQ(driver_->used_idx(), 0) << "completion is invisible before publish()";
    queue_->publish();
    EXPECT_EQ(driver_->drain_used(), (std::vector<UsedEntry>{{head, 70}}));
    EXPECT_EQ(queue_->stats().chains_popped, 1u);
    EXPECT_EQ(queue_->stats().chains_completed, 1u);
}

TEST_F(SplitQueueTest, CompletionNeverClaimsMoreThanTheWritableBytes) {
    start();
    const Gpa buf = driver_->alloc(64);
    const uint16_t head = driver_->chain().readable(buf, 8).writable(buf + 16, 32).offer();
    ASSERT_EQ(queue_->pop(chain_).status, PopStatus::kChain);
    queue_->complete(chain_, 1000);
    queue_->publish();
    EXPECT_EQ(driver_->next_used(), (UsedEntry{head, 32}));
}

TEST_F(SplitQueueTest, ZeroLengthDescriptorsAreSkipped) {
    start();
    const Gpa buf = driver_->alloc(64);
    // A zero-length descriptor's address is never looked at, even past RAM.
    driver_->chain().readable(buf, 0).readable(buf, 8).writable(kRamSize + 4096, 0).writable(buf + 16, 4).offer();
    ASSERT_EQ(queue_->pop(chain_).status, PopStatus::kChain);
    EXPECT_EQ(chain_.readable().size(), 1u);
    EXPECT_EQ(chain_.writable().size(), 1u);
    EXPECT_EQ(chain_.readable_bytes() + chain_.writable_bytes(), 12u);
}

TEST_F(SplitQueueTest, ChainAsLongAsTheQueueIsAccepted) {
    start(8);
    const Gpa buf = driver_->alloc(64);
    auto builder = driver_->chain();
    for (int i = 0; i < 8; ++i) builder.writable(buf, 8);
    builder.offer();
    ASSERT_EQ(queue_->pop(chain_).status, PopStatus::kChain);
    EXPECT_EQ(chain_.writable().size(), 8u);
    EXPECT_EQ(chain_.writable_bytes(), 64u);
}

TEST_F(SplitQueueTest, SegmentStorageIsReusedAcrossPops) {
    start(8);
    const Gpa buf = driver_->alloc(64);
    driver_->chain().readable(buf, 8).writable(buf, 8).offer();
    ASSERT_EQ(queue_->pop(chain_).status, PopStatus::kChain);
    const auto* storage = chain_.readable().data();
    queue_->complete(chain_, 0);
    for (int i = 0; i < 20; ++i) {
        driver_->chain().readable(buf, 8).writable(buf, 8).writable(buf, 8).offer();
        ASSERT_EQ(queue_->pop(chain_).status, PopStatus::kChain);
        EXPECT_EQ(chain_.readable().data(), storage);
        queue_->complete(chain_, 0);
    }
}

// --- indirect chains -------------------------------------------------------

TEST_F(SplitQueueTest, IndirectChainIsWalked) {
    start(8, kIndirect);
    const Gpa a = driver_->alloc(100), b = driver_->alloc(200);
    auto builder = driver_->chain().readable(a, 100).writable(b, 200).indirect();
    const uint16_t head = builder.offer();
    ASSERT_EQ(queue_->pop(chain_).status, PopStatus::kChain);
    EXPECT_EQ(chain_.head(), head);
    ASSERT_EQ(chain_.readable().size(), 1u);
    ASSERT_EQ(chain_.writable().size(), 1u);
    EXPECT_EQ(chain_.readable()[0].gpa, a);
    EXPECT_EQ(chain_.writable()[0].gpa, b);
    queue_->complete(chain_, 200);
    queue_->publish();
    EXPECT_EQ(driver_->next_used(), (UsedEntry{head, 200}));
}

TEST_F(SplitQueueTest, DirectDescriptorsMayPrecedeOneIndirectTable) {
    // virtio 1.2 §2.7.5.3.2: "zero or more normal chained descriptors
    // followed by a single descriptor with VIRTQ_DESC_F_INDIRECT", whose
    // own WRITE flag is ignored.
    start(8, kIndirect);
    const Gpa hdr = driver_->alloc(12), data = driver_->alloc(100), table = driver_->alloc(32);
    driver_->write_table(table, std::vector<RawDescriptor>{{data, 50, kDescWrite | kDescNext, 1},
                                                           {data + 50, 50, kDescWrite, 0}});
    put(3, hdr, 12, kDescNext, 5);
    put(5, table, 32, kDescIndirect | kDescWrite);
    driver_->offer(3);
    ASSERT_EQ(queue_->pop(chain_).status, PopStatus::kChain);
    EXPECT_EQ(chain_.readable_bytes(), 12u);
    EXPECT_EQ(chain_.writable_bytes(), 100u);
    EXPECT_EQ(chain_.writable().size(), 2u);
}

TEST_F(SplitQueueTest, IndirectTableMayBeLongerThanTheQueue) {
    // Linux sizes an indirect table by its scatter list, not by the queue.
    start(2, kIndirect);
    const Gpa buf = driver_->alloc(4096);
    auto builder = driver_->chain();
    for (int i = 0; i < 19; ++i) builder.writable(buf + 64 * i, 64);
    builder.indirect().offer();
    ASSERT_EQ(queue_->pop(chain_).status, PopStatus::kChain);
    EXPECT_EQ(chain_.writable().size(), 19u);
    EXPECT_EQ(chain_.writable_bytes(), 19u * 64);
}

// A chain object that once held a huge chain does not keep that storage:
// tiny chains alternating with 8192-entry indirect tables cost one huge
// walk at a time, not a pinned megabyte per slot.
TEST_F(SplitQueueTest, AHugeChainsStorageIsNotKeptByTheNextPop) {
    start(8, kIndirect);
    const Gpa buf = driver_->alloc(4096);
    for (int round = 0; round < 3; ++round) {
        auto builder = driver_->chain();
        for (int i = 0; i < 8192; ++i) builder.writable(buf + (i % 64) * 64, 64);
        builder.indirect().offer();
        ASSERT_EQ(queue_->pop(chain_).status, PopStatus::kChain);
        EXPECT_EQ(chain_.writable().size(), 8192u);
        queue_->complete(chain_, 0);
        driver_->chain().writable(buf, 64).offer();
        ASSERT_EQ(queue_->pop(chain_).status, PopStatus::kChain);
        EXPECT_LE(chain_.retained_bytes(), ChainWalker::kKeptSegments * sizeof(ChainSegment)) << "round " << round;
        queue_->complete(chain_, 64);
        queue_->publish();
        driver_->drain_used();
    }
}

// --- per-chain errors: completed with length 0 ---------------------------

TEST_F(SplitQueueTest, NextOutOfRangeIsDropped) {
    start(8);
    const Gpa buf = driver_->alloc(16);
    put(2, buf, 16, kDescNext, 8);
    driver_->offer(2);
    expect_dropped(2, ChainError::kNextOutOfRange);
}

TEST_F(SplitQueueTest, NextOutOfRangeInsideIndirectTableIsDropped) {
    // `next` inside a table indexes that table: 5 is valid for the queue
    // (size 8) but not for a 2-entry table.
    start(8, kIndirect);
    const Gpa buf = driver_->alloc(16), table = driver_->alloc(32);
    driver_->write_table(table, std::vector<RawDescriptor>{{buf, 16, kDescNext, 5}, {buf, 16, 0, 0}});
    put(0, table, 32, kDescIndirect);
    driver_->offer(0);
    expect_dropped(0, ChainError::kNextOutOfRange);
}

TEST_F(SplitQueueTest, LoopIsDroppedAsChainTooLong) {
    start(8);
    const Gpa buf = driver_->alloc(16);
    put(4, buf, 16, kDescNext, 5);
    put(5, buf, 16, kDescNext, 4);
    driver_->offer(4);
    expect_dropped(4, ChainError::kChainTooLong);
}

TEST_F(SplitQueueTest, SelfLoopIsDroppedAsChainTooLong) {
    start(1);
    const Gpa buf = driver_->alloc(16);
    put(0, buf, 16, kDescNext, 0);
    driver_->offer(0);
    const PopResult result = queue_->pop(chain_);
    EXPECT_EQ(result.error, ChainError::kChainTooLong);
    queue_->publish();
    EXPECT_EQ(driver_->next_used(), (UsedEntry{0, 0}));
}

TEST_F(SplitQueueTest, LoopInsideIndirectTableIsDropped) {
    start(8, kIndirect);
    const Gpa buf = driver_->alloc(16), table = driver_->alloc(48);
    driver_->write_table(table, std::vector<RawDescriptor>{
                                    {buf, 16, kDescNext, 1}, {buf, 16, kDescNext, 2}, {buf, 16, kDescNext, 0}});
    put(1, table, 48, kDescIndirect);
    driver_->offer(1);
    expect_dropped(1, ChainError::kChainTooLong);
}

TEST_F(SplitQueueTest, NestedIndirectIsDropped) {
    start(8, kIndirect);
    const Gpa buf = driver_->alloc(16), inner = driver_->alloc(16), outer = driver_->alloc(32);
    driver_->write_table(inner, std::vector<RawDescriptor>{{buf, 16, 0, 0}});
    driver_->write_table(outer, std::vector<RawDescriptor>{{buf, 16, kDescNext, 1}, {inner, 16, kDescIndirect, 0}});
    put(0, outer, 32, kDescIndirect);
    driver_->offer(0);
    expect_dropped(0, ChainError::kNestedIndirect);
}

TEST_F(SplitQueueTest, IndirectWithNextIsDropped) {
    start(8, kIndirect);
    const Gpa buf = driver_->alloc(16), table = driver_->alloc(16);
    driver_->write_table(table, std::vector<RawDescriptor>{{buf, 16, 0, 0}});
    put(0, table, 16, kDescIndirect | kDescNext, 1);
    put(1, buf, 16);
    driver_->offer(0);
    expect_dropped(0, ChainError::kIndirectWithNext);
}

TEST_F(SplitQueueTest, IndirectWithoutTheFeatureIsDropped) {
    start(8, 0);
    const Gpa buf = driver_->alloc(16);
    const uint16_t head = driver_->chain().readable(buf, 16).indirect().offer();
    expect_dropped(head, ChainError::kIndirectNotNegotiated);
}

class IndirectLengthTest : public SplitQueueTest, public ::testing::WithParamInterface<uint32_t> {};

TEST_P(IndirectLengthTest, BadIndirectTableLengthIsDropped) {
    start(8, kIndirect);
    const Gpa table = driver_->alloc(64);
    put(6, table, GetParam(), kDescIndirect);
    driver_->offer(6);
    expect_dropped(6, ChainError::kIndirectBadLength);
}

INSTANTIATE_TEST_SUITE_P(Lengths, IndirectLengthTest,
                         ::testing::Values(0u, 8u, 24u, 17u,
                                           16u * (32768 + 1)));  // above the largest queue

TEST_F(SplitQueueTest, IndirectTableOutsideRamIsDropped) {
    start(8, kIndirect);
    put(0, kRamSize - 16, 32, kDescIndirect);  // straddles the end of RAM
    driver_->offer(0);
    expect_dropped(0, ChainError::kBufferOutOfRange);
}

class BufferRangeTest : public SplitQueueTest, public ::testing::WithParamInterface<std::pair<uint64_t, uint32_t>> {};

TEST_P(BufferRangeTest, BufferOutsideRamIsDropped) {
    start(8);
    put(3, GetParam().first, GetParam().second, kDescWrite);
    driver_->offer(3);
    expect_dropped(3, ChainError::kBufferOutOfRange);
}

INSTANTIATE_TEST_SUITE_P(Ranges, BufferRangeTest,
                         ::testing::Values(std::pair<uint64_t, uint32_t>{kRamSize, 1},            // just past RAM
                                           std::pair<uint64_t, uint32_t>{kRamSize - 8, 16},       // straddles the end
                                           std::pair<uint64_t, uint32_t>{~uint64_t{0} - 7, 16},   // wraps 2^64
                                           std::pair<uint64_t, uint32_t>{0xc0000000, 4096}));     // PCI hole

TEST_F(SplitQueueTest, ChainLongerThan4GiBIsDropped) {
    // 257 descriptors of 16 MiB (all of RAM) add up to just over 2^32 bytes.
    start(512);
    for (uint16_t i = 0; i < 257; ++i) put(i, 0, static_cast<uint32_t>(kRamSize), kDescWrite | (i < 256 ? kDescNext : 0), i + 1);
    driver_->offer(0);
    const PopResult result = queue_->pop(chain_);
    EXPECT_EQ(result.error, ChainError::kLengthOverflow);
    queue_->publish();
    EXPECT_EQ(driver_->next_used(), (UsedEntry{0, 0}));
}

TEST_F(SplitQueueTest, ChainOfExactly4GiBMinusOneIsAccepted) {
    start(512);
    // 255 * 16 MiB + (16 MiB - 1) = 2^32 - 1.
    for (uint16_t i = 0; i < 256; ++i) {
        const uint32_t len = i < 255 ? static_cast<uint32_t>(kRamSize) : static_cast<uint32_t>(kRamSize - 1);
        put(i, 0, len, kDescWrite | (i < 255 ? kDescNext : 0), i + 1);
    }
    driver_->offer(0);
    ASSERT_EQ(queue_->pop(chain_).status, PopStatus::kChain);
    EXPECT_EQ(chain_.writable_bytes(), 0xffffffffu);
}

TEST_F(SplitQueueTest, ReadableAfterWritableIsDropped) {
    start(8);
    const Gpa buf = driver_->alloc(64);
    const uint16_t head = driver_->chain().writable(buf, 16).readable(buf + 16, 16).offer();
    expect_dropped(head, ChainError::kReadableAfterWritable);
}

TEST_F(SplitQueueTest, ChainWithoutBytesIsDropped) {
    start(8);
    const Gpa buf = driver_->alloc(16);
    const uint16_t head = driver_->chain().readable(buf, 0).writable(buf, 0).offer();
    expect_dropped(head, ChainError::kZeroLengthChain);
}

TEST_F(SplitQueueTest, DescriptorRewrittenAfterPopDoesNotChangeTheChain) {
    start(8);
    const Gpa buf = driver_->alloc(64);
    const uint16_t head = driver_->chain().writable(buf, 64).offer();
    ASSERT_EQ(queue_->pop(chain_).status, PopStatus::kChain);
    put(head, kRamSize - 1, 0xffffffff, kDescWrite);  // a hostile rewrite
    EXPECT_EQ(chain_.writable()[0].gpa, buf);
    EXPECT_EQ(chain_.writable()[0].host.size(), 64u);
}

// --- ring errors: the queue is broken -------------------------------------

TEST_F(SplitQueueTest, HeadOutOfRangeBreaksTheQueue) {
    start(8);
    driver_->offer(8);
    expect_broken(ChainError::kHeadOutOfRange);
}

TEST_F(SplitQueueTest, AvailIndexJumpBreaksTheQueue) {
    start(8);
    driver_->set_avail_idx(9);
    expect_broken(ChainError::kAvailIndexJump);
}

TEST_F(SplitQueueTest, AvailIndexGoingBackwardsBreaksTheQueue) {
    start(8);
    cycle(3);
    driver_->set_avail_idx(2);  // "unexposing" buffers (§2.7.6.1): a huge forward jump mod 2^16
    const PopResult result = queue_->pop(chain_);
    EXPECT_EQ(result.error, ChainError::kAvailIndexJump);
    EXPECT_TRUE(queue_->broken());
}

TEST_F(SplitQueueTest, FullQueueIsNotAJump) {
    start(8);
    const Gpa buf = driver_->alloc(16);
    for (int i = 0; i < 8; ++i) driver_->chain().writable(buf, 16).offer();
    for (int i = 0; i < 8; ++i) {
        DescriptorChain chain;
        ASSERT_EQ(queue_->pop(chain).status, PopStatus::kChain) << i;
        queue_->complete(chain, 0);
    }
    EXPECT_EQ(queue_->pop(chain_).status, PopStatus::kEmpty);
}

TEST_F(SplitQueueTest, DuplicateHeadInFlightBreaksTheQueue) {
    start(8);
    const Gpa buf = driver_->alloc(16);
    const uint16_t head = driver_->chain().writable(buf, 16).offer();
    driver_->offer(head);
    ASSERT_EQ(queue_->pop(chain_).status, PopStatus::kChain);
    DescriptorChain second;
    const PopResult result = queue_->pop(second);
    EXPECT_EQ(result.error, ChainError::kDuplicateHead);
    EXPECT_TRUE(queue_->broken());
    EXPECT_FALSE(second.pending());
}

TEST_F(SplitQueueTest, SameHeadAgainAfterCompletionIsFine) {
    start(8);
    const Gpa buf = driver_->alloc(16);
    const uint16_t head = driver_->chain().writable(buf, 16).offer();
    ASSERT_EQ(queue_->pop(chain_).status, PopStatus::kChain);
    queue_->complete(chain_, 0);
    driver_->offer(head);
    ASSERT_EQ(queue_->pop(chain_).status, PopStatus::kChain);
    EXPECT_EQ(chain_.head(), head);
}

// --- unpop -----------------------------------------------------------------

TEST_F(SplitQueueTest, UnpopGivesTheChainBack) {
    start(8);
    const Gpa buf = driver_->alloc(64);
    const uint16_t first = driver_->chain().writable(buf, 16).offer();
    const uint16_t second = driver_->chain().writable(buf + 16, 32).offer();
    ASSERT_EQ(queue_->pop(chain_).status, PopStatus::kChain);
    queue_->unpop(chain_);
    EXPECT_FALSE(chain_.pending());
    ASSERT_EQ(queue_->pop(chain_).status, PopStatus::kChain);
    EXPECT_EQ(chain_.head(), first);
    EXPECT_EQ(chain_.writable_bytes(), 16u);
    queue_->complete(chain_, 0);
    ASSERT_EQ(queue_->pop(chain_).status, PopStatus::kChain);
    EXPECT_EQ(chain_.head(), second);
    EXPECT_EQ(queue_->stats().chains_popped, 2u);
}

TEST_F(SplitQueueTest, UnpopOfACompletedChainIsRefused) {
    start(8);
    const Gpa buf = driver_->alloc(16);
    driver_->chain().writable(buf, 16).offer();
    ASSERT_EQ(queue_->pop(chain_).status, PopStatus::kChain);
    queue_->complete(chain_, 0);
    EXPECT_THROW(queue_->unpop(chain_), std::logic_error);
}

// --- notification suppression ----------------------------------------------

TEST_F(SplitQueueTest, NoInterruptFlagSuppressesSignals) {
    start(8, 0);
    cycle(1);
    EXPECT_TRUE(queue_->should_signal());
    EXPECT_FALSE(queue_->should_signal()) << "nothing new since the last signal";

    driver_->set_avail_flags(testing::kAvailNoInterrupt);
    cycle(1);
    EXPECT_FALSE(queue_->should_signal());
    EXPECT_EQ(queue_->stats().interrupts_suppressed, 1u);

    driver_->set_avail_flags(0);
    cycle(1);
    EXPECT_TRUE(queue_->should_signal());
}

TEST_F(SplitQueueTest, NoNotifyFlagFollowsDisableAndEnable) {
    start(8, 0);
    EXPECT_EQ(driver_->used_flags(), 0);
    queue_->disable_notifications();
    EXPECT_EQ(driver_->used_flags(), testing::kUsedNoNotify);
    EXPECT_FALSE(queue_->enable_notifications());
    EXPECT_EQ(driver_->used_flags(), 0);

    queue_->disable_notifications();
    const Gpa buf = driver_->alloc(16);
    driver_->chain().writable(buf, 16).offer();
    EXPECT_TRUE(queue_->enable_notifications()) << "buffers that arrived while disabled must be reported";
}

TEST_F(SplitQueueTest, EventIdxIgnoresTheNoInterruptFlag) {
    start(8, kEventIdx);
    driver_->set_avail_flags(testing::kAvailNoInterrupt);
    driver_->set_used_event(0);
    cycle(1);
    EXPECT_TRUE(queue_->should_signal());
}

TEST_F(SplitQueueTest, EventIdxSignalsWhenUsedEventIsPublished) {
    start(8, kEventIdx);
    driver_->set_used_event(3);  // "interrupt me once entry 3 is used"
    cycle(3);                   // entries 0..2
    EXPECT_FALSE(queue_->should_signal());
    cycle(1);                   // entry 3
    EXPECT_TRUE(queue_->should_signal());
    cycle(1);
    EXPECT_FALSE(queue_->should_signal()) << "used_event is behind now";
    EXPECT_EQ(queue_->stats().interrupts_suppressed, 2u);
}

TEST_F(SplitQueueTest, EventIdxSignalsWhenUsedEventIsInsideABatch) {
    start(8, kEventIdx);
    driver_->set_used_event(1);
    const Gpa buf = driver_->alloc(16);
    for (int i = 0; i < 4; ++i) driver_->chain().writable(buf, 16).offer();
    for (int i = 0; i < 4; ++i) {
        ASSERT_EQ(queue_->pop(chain_).status, PopStatus::kChain);
        queue_->complete(chain_, 0);
    }
    queue_->publish();
    EXPECT_TRUE(queue_->should_signal());
}

TEST_F(SplitQueueTest, EventIdxHandlesIndexWrapAround) {
    start(8, kEventIdx);
    driver_->set_used_event(0xffff);  // stay quiet while we approach the wrap
    cycle(65533);
    queue_->should_signal();
    driver_->set_used_event(1);  // entry 1 after the wrap: used.idx 65535 -> 0 -> 1 -> 2
    cycle(2);                    // entries 65533, 65534
    EXPECT_FALSE(queue_->should_signal());
    cycle(2);                    // entries 65535, 0
    EXPECT_FALSE(queue_->should_signal());
    cycle(1);                    // entry 1
    EXPECT_TRUE(queue_->should_signal());
    EXPECT_EQ(driver_->used_idx(), 2);
}

TEST_F(SplitQueueTest, EventIdxPublishesAvailEventWhileEnabled) {
    start(8, kEventIdx);
    cycle(3);
    EXPECT_EQ(driver_->avail_event(), 3) << "kick me for the next entry";
    queue_->disable_notifications();
    EXPECT_EQ(driver_->used_flags(), 0) << "§2.7.10: flags stay 0 with EVENT_IDX";
    cycle(2);
    EXPECT_EQ(driver_->avail_event(), 3) << "avail_event frozen while disabled";
    EXPECT_FALSE(queue_->enable_notifications());
    EXPECT_EQ(driver_->avail_event(), 5);
}

TEST_F(SplitQueueTest, EventIdxEnableReportsBuffersThatRacedIn) {
    start(8, kEventIdx);
    queue_->disable_notifications();
    const Gpa buf = driver_->alloc(16);
    driver_->chain().writable(buf, 16).offer();
    EXPECT_TRUE(queue_->enable_notifications());
    EXPECT_EQ(driver_->avail_event(), 0);
}

// --- index wrap-around and extreme sizes ------------------------------------

TEST_F(SplitQueueTest, SixteenBitIndicesWrap) {
    start(4);
    const Gpa buf = driver_->alloc(16);
    for (uint32_t i = 0; i < 70000; ++i) {
        const uint16_t head = driver_->chain().writable(buf, 16).offer();
        ASSERT_EQ(queue_->pop(chain_).status, PopStatus::kChain) << i;
        ASSERT_EQ(chain_.head(), head);
        queue_->complete(chain_, i % 17);
        queue_->publish();
        ASSERT_EQ(driver_->next_used(), (UsedEntry{head, i % 17})) << i;
    }
    EXPECT_EQ(driver_->used_idx(), 70000 % 65536);
    EXPECT_EQ(queue_->stats().chains_completed, 70000u);
}

TEST_F(SplitQueueTest, QueueOfSizeOne) {
    start(1);
    const Gpa buf = driver_->alloc(16);
    for (int i = 0; i < 5; ++i) {
        driver_->chain().writable(buf, 16).offer();
        ASSERT_EQ(queue_->pop(chain_).status, PopStatus::kChain);
        EXPECT_EQ(chain_.head(), 0);
        queue_->complete(chain_, 16);
        queue_->publish();
        EXPECT_EQ(driver_->next_used(), (UsedEntry{0, 16}));
    }
    driver_->set_avail_idx(driver_->avail_idx() + 2);
    EXPECT_EQ(queue_->pop(chain_).error, ChainError::kAvailIndexJump);
}

TEST_F(SplitQueueTest, QueueOfMaximumSize) {
    start(SplitQueue::kMaxSize);
    const Gpa buf = driver_->alloc(16);
    for (uint32_t i = 0; i < SplitQueue::kMaxSize; ++i) driver_->chain().writable(buf, 16).offer();
    std::vector<DescriptorChain> chains(SplitQueue::kMaxSize);
    for (auto& chain : chains) ASSERT_EQ(queue_->pop(chain).status, PopStatus::kChain);
    EXPECT_EQ(queue_->pop(chain_).status, PopStatus::kEmpty);
    for (auto& chain : chains) queue_->complete(chain, 1);
    queue_->publish();
    EXPECT_EQ(driver_->drain_used().size(), SplitQueue::kMaxSize);
    EXPECT_EQ(driver_->used_idx(), 32768);
}

// --- two threads, as in a running VM ---------------------------------------------

TEST_F(SplitQueueTest, DriverAndDeviceOnTwoThreadsLoseNothing) {
    // The device thread drains, publishes and re-arms kicks the way a device
    // loop does; the driver keeps up to `size` chains in flight and checks
    // that every one comes back once, in order, with the data the device
    // wrote into it (which the release store of used.idx must publish).
    start(16, kEventIdx);
    constexpr uint32_t kChains = 3000;
    std::atomic<bool> stop{false};
    std::thread device([&] {
        DescriptorChain chain;
        uint32_t sequence = 0;
        while (!stop.load()) {
            queue_->disable_notifications();
            while (queue_->pop(chain).status == PopStatus::kChain) {
                std::memcpy(chain.writable()[0].host.data(), &sequence, sizeof sequence);
                ++sequence;
                queue_->complete(chain, sizeof sequence);
            }
            queue_->publish();
            (void)queue_->should_signal();
            if (!queue_->enable_notifications()) std::this_thread::yield();
        }
    });
    struct JoinOnExit {
        std::atomic<bool>& stop;
        std::thread& thread;
        ~JoinOnExit() {
            stop = true;
            thread.join();
        }
    } join_on_exit{stop, device};

    const Gpa buffers = driver_->alloc(16 * 16);
    uint32_t offered = 0, received = 0;
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    while (received < kChains && !HasFailure()) {
        ASSERT_TRUE(std::chrono::steady_clock::now() < deadline) << "device stopped answering";
        while (offered < kChains && offered - received < 16) {
            const uint16_t slot = offered % 16;  // FakeDriverQueue hands out descriptors round-robin
            driver_->chain().writable(buffers + 16 * slot, 4).offer();
            ++offered;
        }
        if (driver_->used_idx() == static_cast<uint16_t>(received)) std::this_thread::yield();
        while (auto used = driver_->next_used()) {
            EXPECT_EQ(used->id, received % 16);
            EXPECT_EQ(used->len, 4u);
            uint32_t data = 0;
            const auto bytes = driver_->read_bytes(buffers + 16 * used->id, 4);
            std::memcpy(&data, bytes.data(), 4);
            EXPECT_EQ(data, received);
            ++received;
        }
    }
    EXPECT_EQ(received, kChains);
    EXPECT_FALSE(queue_->broken());
}

// --- ring placement (create) -------------------------------------------------

struct PlacementCase {
    const char* name;
    QueueConfig config;
};

class PlacementTest : public ::testing::TestWithParam<PlacementCase> {};

TEST_P(PlacementTest, IsRefusedWithAReason) {
    // Two RAM regions with a hole between them: [0, 1 MiB) and [2 MiB, 3 MiB).
    GuestMemory memory({{0, 1 << 20}, {2 << 20, 1 << 20}});
    std::string why;
    EXPECT_EQ(SplitQueue::create(memory, GetParam().config, 0, why), nullptr);
    EXPECT_FALSE(why.empty());
}

constexpr uint64_t kMiB = 1 << 20;
INSTANTIATE_TEST_SUITE_P(
    Cases, PlacementTest,
    ::testing::Values(PlacementCase{"size0", {0, 0x1000, 0x2000, 0x3000}},
                      PlacementCase{"size3", {3, 0x1000, 0x2000, 0x3000}},
                      PlacementCase{"size65535", {65535, 0x1000, 0x2000, 0x3000}},
                      PlacementCase{"desc_misaligned", {8, 0x1008, 0x2000, 0x3000}},
                      PlacementCase{"avail_misaligned", {8, 0x1000, 0x2001, 0x3000}},
                      PlacementCase{"used_misaligned", {8, 0x1000, 0x2000, 0x3002}},
                      PlacementCase{"desc_outside_ram", {8, 4 * kMiB, 0x2000, 0x3000}},
                      PlacementCase{"desc_in_hole", {8, kMiB + 0x1000, 0x2000, 0x3000}},
                      // 8 * 16 = 128 bytes of table from 128 bytes below the end: fits...
                      // ...but 256 entries do not.
                      PlacementCase{"desc_straddles_ram_end", {256, kMiB - 128, 0x2000, 0x3000}},
                      PlacementCase{"avail_straddles_hole", {8, 0x1000, kMiB - 16, 0x3000}},
                      // The used ring fits without avail_event but not with it.
                      PlacementCase{"used_event_trailer_outside", {8, 0x1000, 0x2000, 3 * kMiB - 68}},
                      PlacementCase{"used_wraps", {8, 0x1000, 0x2000, ~uint64_t{0} - 3}}),
    [](const auto& info) { return std::string(info.param.name); });

TEST(SplitQueuePlacement, RingsFlushAgainstTheEndOfRamAreAccepted) {
    GuestMemory memory({{0, kMiB}});
    std::string why;
    // used ring of size 8 is 6 + 64 = 70 bytes; 72 keeps it 4-aligned.
    auto queue = SplitQueue::create(memory, {8, kMiB - 4096, kMiB - 1024, kMiB - 72}, 0, why);
    EXPECT_TRUE(queue) << why;
    EXPECT_EQ(queue->size(), 8);
}

}  // namespace
}  // namespace tapvm::virtio
