// An Ethernet MAC address: parsing, printing, and the deterministic default
// that tapvm gives a NIC when the user names none.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace tapvm::net {

struct MacAddress {
    std::array<uint8_t, 6> bytes{};

    bool operator==(const MacAddress&) const = default;
    bool is_multicast() const { return bytes[0] & 0x01; }
    bool is_locally_administered() const { return bytes[0] & 0x02; }
    bool is_zero() const { return bytes == std::array<uint8_t, 6>{}; }

    // "52:54:00:12:34:56" (hex digits in either case, exactly six pairs).
    static std::optional<MacAddress> parse(std::string_view text);
    std::string to_string() const;
};

// A locally administered unicast address (02:74:61:xx:xx:xx, "ta" for tapvm)
// whose low 24 bits hash `seed` (FNV-1a): the same tap name gives the same
// MAC on every run, so guests keep their DHCP leases.
MacAddress derived_mac(std::string_view seed);

}  // namespace tapvm::net
