// Walks one descriptor chain of a split virtqueue (virtio 1.2 §2.7.5) and
// turns it into validated host segments.
//
// Everything the walker reads is guest-controlled and may change under it,
// so each 16-byte descriptor is copied out of guest memory first and only
// the copy is checked and used.  The walk is bounded: at most `queue size`
// descriptors in the descriptor table and at most `entries` in an indirect
// table, so a loop ends as kChainTooLong instead of spinning.
#pragma once

#include <cstdint>
#include <optional>
#include <span>

#include "virtio/chain_error.h"
#include "virtio/descriptor_chain.h"
#include "vmm/guest_memory.h"

namespace tapvm::virtio {

// struct virtq_desc, virtio 1.2 §2.7.5 (little-endian, like the x86 host).
struct Descriptor {
    uint64_t addr = 0;
    uint32_t len = 0;
    uint16_t flags = 0;
    uint16_t next = 0;
};
static_assert(sizeof(Descriptor) == 16);

inline constexpr uint16_t kDescFNext = 1;
inline constexpr uint16_t kDescFWrite = 2;
inline constexpr uint16_t kDescFIndirect = 4;

class ChainWalker {
public:
    // Largest indirect table accepted, in descriptors.  The spec asks drivers
    // not to build chains longer than the queue (§2.7.5.3.1), but Linux
    // builds indirect tables of up to `total_sg` entries even when that
    // exceeds a small queue, so the cap is the largest legal queue size.
    static constexpr uint32_t kMaxIndirectEntries = 32768;
    // Segment storage reserved in a DescriptorChain on its first pop.
    static constexpr size_t kReservedSegments = 64;
    // Storage a DescriptorChain may keep between pops.  A longer chain (up to
    // 32768 segments through an indirect table, legal but useless to a NIC)
    // is walked into storage that is released at the chain object's next
    // walk, so no slot stays pinned at its longest chain's size.
    static constexpr size_t kKeptSegments = 1024;

    // `table` is the validated host view of the descriptor table
    // (16 * queue_size bytes); it must outlive the walker.
    ChainWalker(const GuestMemory& memory, std::span<const uint8_t> table, uint16_t queue_size,
                bool indirect_negotiated);

    // Fills `chain` (cleared first, storage reused) with the chain starting
    // at `head` (< queue size, checked by the caller).  Returns the first
    // problem found, or nullopt for a valid chain.  On error the chain holds
    // whatever was collected so far and must still be completed.
    std::optional<ChainError> walk(uint16_t head, DescriptorChain& chain) const;

private:
    // A descriptor table being walked: the main one or an indirect one.
    struct Table {
        std::span<const uint8_t> bytes;
        uint32_t entries = 0;
        bool indirect = false;
    };

    static Descriptor read_descriptor(const Table& table, uint32_t index);
    std::optional<ChainError> enter_indirect(const Descriptor& desc, Table& table) const;
    std::optional<ChainError> add_segment(const Descriptor& desc, DescriptorChain& chain) const;

    const GuestMemory& memory_;
    std::span<const uint8_t> table_;
    uint16_t queue_size_;
    bool indirect_negotiated_;
};

}  // namespace tapvm::virtio
