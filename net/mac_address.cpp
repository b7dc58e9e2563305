#include "net/mac_address.h"

#include <cstdio>

namespace tapvm::net {

namespace {

std::optional<uint8_t> hex_digit(char c) {
    if (c >= '0' && c <= '9') return static_cast<uint8_t>(c - '0');
    if (c >= 'a' && c <= 'f') return static_cast<uint8_t>(c - 'a' + 10);
    if (c >= 'A' && c <= 'F') return static_cast<uint8_t>(c - 'A' + 10);
    return std::nullopt;
}

}  // namespace

std::optional<MacAddress> MacAddress::parse(std::string_view text) {
    // Six two-digit groups separated by ':' -> 17 characters.
    if (text.size() != 17) return std::nullopt;
    MacAddress mac;
    for (size_t i = 0; i < 6; ++i) {
        size_t at = i * 3;
        if (i > 0 && text[at - 1] != ':') return std::nullopt;
        auto hi = hex_digit(text[at]);
        auto lo = hex_digit(text[at + 1]);
        if (!hi || !lo) return std::nullopt;
        mac.bytes[i] = static_cast<uint8_t>(*hi << 4 | *lo);
    }
    return mac;
}

std::string MacAddress::to_string() const {
    char text[18];
    std::snprintf(text, sizeof text, "%02x:%02x:%02x:%02x:%02x:%02x", bytes[0], bytes[1], bytes[2],
                  bytes[3], bytes[4], bytes[5]);
    return text;
}

MacAddress derived_mac(std::string_view seed) {
    uint32_t hash = 2166136261u;  // FNV-1a, 32 bit
    for (char c : seed) {
        hash ^= static_cast<uint8_t>(c);
        hash *= 16777619u;
    }
    return MacAddress{{0x02, 0x74, 0x61, static_cast<uint8_t>(hash >> 16),
                       static_cast<uint8_t>(hash >> 8), static_cast<uint8_t>(hash)}};
}

}  // namespace tapvm::net
