#include "virtio/chain_error.h"

namespace tapvm::virtio {

const char* to_string(ChainError error) {
    switch (error) {
        case ChainError::kNextOutOfRange: return "descriptor next index out of range";
        case ChainError::kChainTooLong: return "descriptor chain longer than the queue (loop)";
        case ChainError::kNestedIndirect: return "indirect descriptor inside an indirect table";
        case ChainError::kIndirectWithNext: return "descriptor has both INDIRECT and NEXT";
        case ChainError::kIndirectBadLength: return "indirect table length is 0, not a multiple of 16, or above 32768 entries";
        case ChainError::kIndirectNotNegotiated: return "indirect descriptor without VIRTIO_F_INDIRECT_DESC";
        case ChainError::kBufferOutOfRange: return "buffer outside guest RAM";
        case ChainError::kLengthOverflow: return "chain length above 4 GiB";
        case ChainError::kReadableAfterWritable: return "device-readable descriptor after a device-writable one";
        case ChainError::kZeroLengthChain: return "chain with no bytes";
        case ChainError::kHeadOutOfRange: return "avail ring head index out of range";
        case ChainError::kAvailIndexJump: return "avail index moved by more than the queue size";
        case ChainError::kDuplicateHead: return "head already in flight";
        case ChainError::kCount: break;
    }
    return "unknown chain error";
}

}  // namespace tapvm::virtio
