// libFuzzer target for the device side of a split virtqueue.
//
// Input layout:
//   byte 0        queue size exponent (size = 1 << (b % 5): 1..16)
//   byte 1        features: bit 0 INDIRECT_DESC, bit 1 EVENT_IDX
//   byte 2        how many completions to publish at once (1..4)
//   rest          copied verbatim to guest RAM from gpa 0: descriptor
//                 table at 0, avail ring at 0x100, used ring at 0x200,
//                 anything else (buffers, indirect tables) after that.
// Guest RAM is one 64 KiB region, so most addresses in random descriptors
// fall outside it and exercise the range checks; small ones land inside.
//
// The loop pops and completes until the queue is empty or broken; a hostile
// ring must never crash, hang (the walk is bounded) or make SplitQueue touch
// memory outside the guest's RAM (ASan watches).
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>

#include <spdlog/spdlog.h>

#include "virtio/features.h"
#include "virtio/split_queue.h"
#include "vmm/guest_memory.h"

using namespace tapvm;
using namespace tapvm::virtio;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    static const bool quiet = (spdlog::set_level(spdlog::level::off), true);
    (void)quiet;
    if (size < 3) return 0;
    const uint16_t queue_size = uint16_t{1} << (data[0] % 5);
    uint64_t features = 0;
    if (data[1] & 1) features |= bit(kFRingIndirectDesc);
    if (data[1] & 2) features |= bit(kFRingEventIdx);
    const unsigned batch = 1 + data[2] % 4;
    data += 3;
    size -= 3;

    static GuestMemory memory({{0, 0x10000}});
    auto ram = memory.slice(0, 0x10000).value();
    std::memset(ram.data(), 0, ram.size());
    std::memcpy(ram.data(), data, std::min(size, ram.size()));

    std::string why;
    auto queue = SplitQueue::create(memory, {queue_size, 0x0, 0x100, 0x200}, features, why);
    if (!queue) __builtin_trap();  // the placement above is always valid

    DescriptorChain chain;
    unsigned pending = 0;
    // At most 2^16 + a few pops: each consumes an avail entry, and the
    // index check stops the queue before it can go round twice.
    for (int guard = 0; guard < 70000; ++guard) {
        const PopResult result = queue->pop(chain);
        if (result.status == PopStatus::kEmpty || queue->broken()) break;
        if (result.status == PopStatus::kChain) {
            // Give it back and take it again before writing anything: nothing
            // changed in between, so the same chain must come back.
            if (guard % 7 == 3) {
                const uint16_t head = chain.head();
                queue->unpop(chain);
                if (queue->pop(chain).status != PopStatus::kChain || chain.head() != head) __builtin_trap();
            }
            // Touch the edges of every buffer the device may touch.
            for (const auto& seg : chain.readable()) {
                volatile uint8_t sink = seg.host.front() ^ seg.host.back();
                (void)sink;
            }
            for (const auto& seg : chain.writable()) seg.host.front() = seg.host.back() = 0x5a;
            queue->complete(chain, static_cast<uint32_t>(chain.writable_bytes()));
        }
        if (++pending == batch) {
            queue->publish();
            (void)queue->should_signal();
            pending = 0;
        }
        if (guard % 5 == 0) queue->disable_notifications();
        if (guard % 5 == 2) (void)queue->enable_notifications();
    }
    queue->publish();
    (void)queue->should_signal();
    return 0;
}
