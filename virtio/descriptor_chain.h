// A descriptor chain popped from a split virtqueue, already walked and
// validated: every segment lies inside guest RAM and its host view is ready
// for readv/writev.  Device-readable segments come first, then the
// device-writable ones (virtio 1.2 §2.7.4.2).
//
// A chain is something the device must finish: SplitQueue::complete() hands
// it back to the driver exactly once.  DescriptorChain objects are reused
// (their segment storage keeps its capacity), so popping allocates nothing in
// steady state.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "vmm/guest_memory.h"

namespace tapvm::virtio {

struct ChainSegment {
    Gpa gpa = 0;
    std::span<uint8_t> host;  // validated view of [gpa, gpa + len)
    bool device_writable = false;
};

class DescriptorChain {
public:
    DescriptorChain() = default;
    DescriptorChain(const DescriptorChain&) = delete;
    DescriptorChain& operator=(const DescriptorChain&) = delete;
    DescriptorChain(DescriptorChain&&) noexcept = default;
    DescriptorChain& operator=(DescriptorChain&&) noexcept = default;

    // True between a successful pop and complete().
    bool pending() const { return pending_; }
    uint16_t head() const { return head_; }

    std::span<const ChainSegment> readable() const {
        return std::span(segments_).first(readable_count_);
    }
    std::span<const ChainSegment> writable() const {
        return std::span(segments_).subspan(readable_count_);
    }
    uint64_t readable_bytes() const { return readable_bytes_; }
    uint64_t writable_bytes() const { return writable_bytes_; }
    // Heap bytes this object holds for segments (kept across pops).
    size_t retained_bytes() const { return segments_.capacity() * sizeof(ChainSegment); }

private:
    friend class SplitQueue;
    friend class ChainWalker;
    void clear() {
        segments_.clear();
        readable_count_ = 0;
        readable_bytes_ = writable_bytes_ = 0;
        pending_ = false;
    }

    std::vector<ChainSegment> segments_;
    size_t readable_count_ = 0;
    uint64_t readable_bytes_ = 0;
    uint64_t writable_bytes_ = 0;
    uint16_t head_ = 0;
    bool pending_ = false;
};

}  // namespace tapvm::virtio
