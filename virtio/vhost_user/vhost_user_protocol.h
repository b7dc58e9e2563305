// The vhost-user wire format (QEMU docs/interop/vhost-user.rst): a 12-byte
// header {request, flags, size} and up to `size` bytes of payload, fds in
// SCM_RIGHTS ancillary data.  Only what a net backend needs is named here.
// All fields are little-endian on the wire; tapvm runs on x86-64 only.
#pragma once

#include <cstddef>
#include <cstdint>

namespace tapvm::virtio::vhost_user {

enum class Request : uint32_t {
    kGetFeatures = 1,
    kSetFeatures = 2,
    kSetOwner = 3,
    kResetOwner = 4,
    kSetMemTable = 5,
    kSetLogBase = 6,
    kSetLogFd = 7,
    kSetVringNum = 8,
    kSetVringAddr = 9,
    kSetVringBase = 10,
    kGetVringBase = 11,
    kSetVringKick = 12,
    kSetVringCall = 13,
    kSetVringErr = 14,
    kGetProtocolFeatures = 15,
    kSetProtocolFeatures = 16,
    kGetQueueNum = 17,
    kSetVringEnable = 18,
    kSendRarp = 19,
    kNetSetMtu = 20,
};

const char* request_name(uint32_t request);

// Header flags.
inline constexpr uint32_t kVersion = 1;          // bits 0-1
inline constexpr uint32_t kVersionMask = 0x3;
inline constexpr uint32_t kFlagReply = 1u << 2;  // a backend's answer
inline constexpr uint32_t kFlagNeedReply = 1u << 3;

// GET_FEATURES bit 30: the backend speaks the protocol-feature extension.
inline constexpr unsigned kFProtocolFeatures = 30;
// Protocol features tapvm implements.
inline constexpr unsigned kProtocolFReplyAck = 3;

// SET_VRING_KICK/CALL/ERR payload: the queue index, and a flag that says no
// fd came with the message (kick: poll the ring; call/err: none).
inline constexpr uint64_t kVringIndexMask = 0xff;
inline constexpr uint64_t kVringNoFd = 1u << 8;

inline constexpr size_t kMaxMemoryRegions = 8;  // VHOST_MEMORY_BASELINE_NREGIONS
inline constexpr size_t kMaxFds = kMaxMemoryRegions;

struct Header {
    uint32_t request;
    uint32_t flags;
    uint32_t size;  // payload bytes that follow
};
static_assert(sizeof(Header) == 12);

struct VringState {  // SET_VRING_NUM/BASE/ENABLE, GET_VRING_BASE
    uint32_t index;
    uint32_t num;
};

struct VringAddress {  // SET_VRING_ADDR: addresses in the frontend's own address space
    uint32_t index;
    uint32_t flags;  // bit 0: log used-ring writes (not offered)
    uint64_t desc_user_addr;
    uint64_t used_user_addr;
    uint64_t avail_user_addr;
    uint64_t log_guest_addr;
};
static_assert(sizeof(VringAddress) == 40);

struct MemoryRegion {
    uint64_t guest_phys_addr;
    uint64_t memory_size;
    uint64_t userspace_addr;
    uint64_t mmap_offset;
};

struct MemoryTable {  // SET_MEM_TABLE; one fd per region
    uint32_t nregions;
    uint32_t padding;
    MemoryRegion regions[kMaxMemoryRegions];
};
static_assert(sizeof(MemoryTable) == 8 + 32 * kMaxMemoryRegions);

// The largest payload a well-formed message can carry.
inline constexpr size_t kMaxPayload = sizeof(MemoryTable);

}  // namespace tapvm::virtio::vhost_user
