// The virtio-net device configuration space (virtio 1.2 §5.1.4):
//
//   offset 0   u8    mac[6]               valid with VIRTIO_NET_F_MAC
//   offset 6   le16  status               valid with VIRTIO_NET_F_STATUS
//   offset 8   le16  max_virtqueue_pairs  (MQ/RSS only; tapvm has one pair)
//   offset 10  le16  mtu                  valid with VIRTIO_NET_F_MTU
//
// The layout is fixed whatever the features, so tapvm always exposes these
// twelve bytes; reads beyond them return zeros.  Reads come from vCPU
// threads while the ctrl vq (on the I/O thread) may change the MAC, hence
// the lock.
#pragma once

#include <cstdint>
#include <mutex>
#include <optional>
#include <span>

#include "net/mac_address.h"

namespace tapvm::net {

inline constexpr uint16_t kNetStatusLinkUp = 1;    // VIRTIO_NET_S_LINK_UP
inline constexpr uint16_t kNetStatusAnnounce = 2;  // VIRTIO_NET_S_ANNOUNCE

class NetConfigSpace {
public:
    static constexpr uint64_t kMacOffset = 0;
    static constexpr uint64_t kStatusOffset = 6;
    static constexpr uint64_t kMaxQueuePairsOffset = 8;
    static constexpr uint64_t kMtuOffset = 10;
    static constexpr uint64_t kSize = 12;

    NetConfigSpace(MacAddress mac, std::optional<uint16_t> mtu);

    void read(uint64_t offset, std::span<uint8_t> out) const;
    // Only the MAC is ever writable, and only by a legacy driver without
    // CTRL_MAC_ADDR (virtio 1.2 §5.1.4.2: the driver MUST NOT write any
    // field otherwise).  Returns false when the write was ignored.
    bool write(uint64_t offset, std::span<const uint8_t> in);

    MacAddress mac() const;
    void set_mac(const MacAddress& mac);
    void set_link_up(bool up);
    void set_mac_writable(bool writable);
    // Device reset: the MAC the device was created with, link up.
    void reset();

private:
    struct Fields {
        MacAddress mac;
        uint16_t status = kNetStatusLinkUp;
        uint16_t mtu = 0;
    };
    // The twelve bytes as the driver sees them (little-endian fields).
    void encode(Fields fields, uint8_t (&bytes)[kSize]) const;

    mutable std::mutex mutex_;
    const MacAddress initial_mac_;
    Fields fields_;
    bool mac_writable_ = false;
};

}  // namespace tapvm::net
