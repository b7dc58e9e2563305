// The header in front of every frame on the virtio-net queues (virtio 1.2
// §5.1.6), and — with IFF_VNET_HDR — on the tap as well.  All fields are
// little-endian (VERSION_1; legacy drivers use guest-native order, which is
// little-endian on x86).
#pragma once

#include <cstddef>
#include <cstdint>

namespace tapvm::net {

struct VirtioNetHdr {
    uint8_t flags;
    uint8_t gso_type;
    uint16_t hdr_len;
    uint16_t gso_size;
    uint16_t csum_start;
    uint16_t csum_offset;
    uint16_t num_buffers;  // only with VERSION_1 or MRG_RXBUF (§5.1.6.4)
};
static_assert(sizeof(VirtioNetHdr) == 12);

inline constexpr size_t kHdrFlagsOffset = offsetof(VirtioNetHdr, flags);
inline constexpr size_t kHdrGsoTypeOffset = offsetof(VirtioNetHdr, gso_type);
inline constexpr size_t kHdrNumBuffersOffset = offsetof(VirtioNetHdr, num_buffers);
inline constexpr size_t kMaxVnetHeaderSize = sizeof(VirtioNetHdr);
// struct virtio_net_hdr without num_buffers: the tap's default header size.
inline constexpr size_t kLegacyVnetHeaderSize = 10;

// flags
inline constexpr uint8_t kHdrFNeedsCsum = 1;
inline constexpr uint8_t kHdrFDataValid = 2;
// gso_type
inline constexpr uint8_t kGsoNone = 0;
inline constexpr uint8_t kGsoTcpv4 = 1;
inline constexpr uint8_t kGsoUdp = 3;
inline constexpr uint8_t kGsoTcpv6 = 4;
inline constexpr uint8_t kGsoEcn = 0x80;

// Frame sizes.  A tap hands over at most a 64 KiB GSO super-frame plus its
// Ethernet header and one VLAN tag; the guest must be able to hold that plus
// the virtio-net header.
inline constexpr size_t kEthHeaderLen = 14;
inline constexpr size_t kMaxFrameLen = 65536 + kEthHeaderLen + 4;
inline constexpr size_t kMaxPacketLen = kMaxFrameLen + kMaxVnetHeaderSize;

}  // namespace tapvm::net
