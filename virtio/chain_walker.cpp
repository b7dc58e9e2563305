#include "virtio/chain_walker.h"

#include <algorithm>
#include <bit>
#include <cstring>
#include <limits>

namespace tapvm::virtio {

static_assert(std::endian::native == std::endian::little,
              "virtio 1.x rings are little-endian; tapvm reads them natively");

ChainWalker::ChainWalker(const GuestMemory& memory, std::span<const uint8_t> table,
                         uint16_t queue_size, bool indirect_negotiated)
    : memory_(memory), table_(table), queue_size_(queue_size), indirect_negotiated_(indirect_negotiated) {}

Descriptor ChainWalker::read_descriptor(const Table& table, uint32_t index) {
    // Copy first, check later: the guest may rewrite the descriptor while we
    // look at it, and every decision must be made on one consistent value.
    Descriptor desc;
    std::memcpy(&desc, table.bytes.data() + size_t{index} * sizeof(Descriptor), sizeof desc);
    return desc;
}

std::optional<ChainError> ChainWalker::walk(uint16_t head, DescriptorChain& chain) const {
    chain.clear();
    // One reservation up front for typical chains (a network packet has at
    // most ~20 buffers).  A longer chain grows the storage once and the
    // DescriptorChain keeps that capacity, so steady-state pops allocate
    // nothing.  Not reserving the queue size: 32768 segments are 1 MiB per
    // chain object, which is also why storage beyond kKeptSegments from an
    // earlier, longer chain is given back first.
    const size_t typical = std::min<size_t>(queue_size_, kReservedSegments);
    if (chain.segments_.capacity() > kKeptSegments) std::vector<ChainSegment>().swap(chain.segments_);
    if (chain.segments_.capacity() < typical) chain.segments_.reserve(typical);

    Table table{table_, queue_size_, false};
    uint32_t index = head;
    // Loop bound (virtio 1.2 §2.7.5.3.1: no chain is longer than the queue
    // size).  Entering an indirect table restarts it at the table's length.
    uint32_t budget = table.entries;
    for (;;) {
        if (budget == 0) return ChainError::kChainTooLong;
        --budget;
        const Descriptor desc = read_descriptor(table, index);

        if (desc.flags & kDescFIndirect) {
            if (auto error = enter_indirect(desc, table)) return error;
            index = 0;  // the table's first descriptor starts the rest of the chain
            budget = table.entries;
            continue;
        }
        if (auto error = add_segment(desc, chain)) return error;
        if (!(desc.flags & kDescFNext)) break;
        // virtio 1.2 §2.7.5: `next` indexes the table being walked.
        if (desc.next >= table.entries) return ChainError::kNextOutOfRange;
        index = desc.next;
    }
    if (chain.readable_bytes_ + chain.writable_bytes_ == 0) return ChainError::kZeroLengthChain;
    return std::nullopt;
}

std::optional<ChainError> ChainWalker::enter_indirect(const Descriptor& desc, Table& table) const {
    // virtio 1.2 §2.7.5.3.1: only with VIRTIO_F_INDIRECT_DESC, one table per
    // chain (no indirect inside indirect), and never together with NEXT.
    // The WRITE flag of this descriptor is ignored (§2.7.5.3.2).
    if (!indirect_negotiated_) return ChainError::kIndirectNotNegotiated;
    if (table.indirect) return ChainError::kNestedIndirect;
    if (desc.flags & kDescFNext) return ChainError::kIndirectWithNext;
    if (desc.len == 0 || desc.len % sizeof(Descriptor) != 0 ||
        desc.len / sizeof(Descriptor) > kMaxIndirectEntries)
        return ChainError::kIndirectBadLength;
    auto bytes = memory_.slice(desc.addr, desc.len);
    if (!bytes) return ChainError::kBufferOutOfRange;
    table = Table{*bytes, static_cast<uint32_t>(desc.len / sizeof(Descriptor)), true};
    return std::nullopt;
}

std::optional<ChainError> ChainWalker::add_segment(const Descriptor& desc, DescriptorChain& chain) const {
    // Zero-length buffers carry nothing; they are legal but get no segment
    // (and their address is never looked at).
    if (desc.len == 0) return std::nullopt;

    const bool writable = desc.flags & kDescFWrite;
    // virtio 1.2 §2.7.4.2: device-readable buffers precede device-writable ones.
    if (!writable && chain.writable_bytes_ > 0) return ChainError::kReadableAfterWritable;

    auto host = memory_.slice(desc.addr, desc.len);
    if (!host) return ChainError::kBufferOutOfRange;

    // virtio 1.2 §2.7.5.2: a chain is at most 2^32 - 1 bytes.  Each len is
    // 32-bit and there are at most 2 * 32768 segments, so the 64-bit sum
    // cannot overflow before this check trips.
    const uint64_t total = chain.readable_bytes_ + chain.writable_bytes_ + desc.len;
    if (total > std::numeric_limits<uint32_t>::max()) return ChainError::kLengthOverflow;

    chain.segments_.push_back(ChainSegment{desc.addr, *host, writable});
    if (writable) {
        chain.writable_bytes_ += desc.len;
    } else {
        chain.readable_bytes_ += desc.len;
        ++chain.readable_count_;
    }
    return std::nullopt;
}

}  // namespace tapvm::virtio
