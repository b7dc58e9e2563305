// Everything a driver can get wrong in a split virtqueue.  These are values,
// not exceptions: the device counts them, logs each kind once, and either
// drops the chain (returned with used length 0) or — for errors that make
// the ring itself untrustworthy — sets DEVICE_NEEDS_RESET.
#pragma once

#include <cstdint>

namespace tapvm::virtio {

enum class ChainError : uint8_t {
    // Per-chain errors: the chain is returned to the driver with length 0.
    kNextOutOfRange,       // a `next` index >= queue size (§2.7.5.3.1 loop-free, in range)
    kChainTooLong,         // more descriptors than the queue size: a loop
    kNestedIndirect,       // indirect descriptor inside an indirect table (§2.7.5.3.1)
    kIndirectWithNext,     // INDIRECT and NEXT both set (§2.7.5.3.1)
    kIndirectBadLength,    // table length 0 or not a multiple of 16
    kIndirectNotNegotiated,
    kBufferOutOfRange,     // buffer (or indirect table) not entirely in guest RAM
    kLengthOverflow,       // total chain length above 4 GiB - 1
    kReadableAfterWritable,// device-readable after device-writable (§2.7.4.2)
    kZeroLengthChain,      // no bytes at all
    // Ring errors: the ring can no longer be trusted -> DEVICE_NEEDS_RESET.
    kHeadOutOfRange,       // avail ring entry >= queue size
    kAvailIndexJump,       // avail.idx moved by more than the queue size
    kDuplicateHead,        // a head that is already in flight
    kCount
};

inline constexpr bool is_ring_error(ChainError e) {
    return e == ChainError::kHeadOutOfRange || e == ChainError::kAvailIndexJump ||
           e == ChainError::kDuplicateHead;
}

const char* to_string(ChainError error);

}  // namespace tapvm::virtio
