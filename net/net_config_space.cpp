#include "net/net_config_space.h"

#include <algorithm>
#include <cstring>

namespace tapvm::net {

namespace {

void put_le16(uint8_t* at, uint16_t value) {
    at[0] = static_cast<uint8_t>(value);
    at[1] = static_cast<uint8_t>(value >> 8);
}

}  // namespace

NetConfigSpace::NetConfigSpace(MacAddress mac, std::optional<uint16_t> mtu) : initial_mac_(mac) {
    fields_.mac = mac;
    fields_.mtu = mtu.value_or(0);
}

void NetConfigSpace::encode(Fields fields, uint8_t (&bytes)[kSize]) const {
    std::memcpy(bytes + kMacOffset, fields.mac.bytes.data(), 6);
    put_le16(bytes + kStatusOffset, fields.status);
    put_le16(bytes + kMaxQueuePairsOffset, 1);
    put_le16(bytes + kMtuOffset, fields.mtu);
}

void NetConfigSpace::read(uint64_t offset, std::span<uint8_t> out) const {
    std::fill(out.begin(), out.end(), 0);
    uint8_t bytes[kSize];
    {
        std::lock_guard lock(mutex_);
        encode(fields_, bytes);
    }
    if (offset >= kSize) return;
    size_t n = std::min<uint64_t>(out.size(), kSize - offset);
    std::memcpy(out.data(), bytes + offset, n);
}

bool NetConfigSpace::write(uint64_t offset, std::span<const uint8_t> in) {
    std::lock_guard lock(mutex_);
    if (!mac_writable_ || offset >= kMacOffset + 6 || in.size() > kMacOffset + 6 - offset) return false;
    // Legacy Linux writes the MAC one byte at a time (virtnet_set_mac_address).
    std::memcpy(fields_.mac.bytes.data() + offset, in.data(), in.size());
    return true;
}

MacAddress NetConfigSpace::mac() const {
    std::lock_guard lock(mutex_);
    return fields_.mac;
}

void NetConfigSpace::set_mac(const MacAddress& mac) {
    std::lock_guard lock(mutex_);
    fields_.mac = mac;
}

void NetConfigSpace::set_link_up(bool up) {
    std::lock_guard lock(mutex_);
    fields_.status = up ? kNetStatusLinkUp : 0;
}

void NetConfigSpace::set_mac_writable(bool writable) {
    std::lock_guard lock(mutex_);
    mac_writable_ = writable;
}

void NetConfigSpace::reset() {
    std::lock_guard lock(mutex_);
    fields_.mac = initial_mac_;
    fields_.status = kNetStatusLinkUp;
    mac_writable_ = false;
}

}  // namespace tapvm::net
