#include "net/net_options.h"

#include <net/if.h>

#include <algorithm>
#include <charconv>
#include <climits>
#include <set>
#include <vector>

#include "vmm/error.h"

namespace tapvm::net {

namespace {

[[noreturn]] void fail(const std::string& message) { throw UsageError("--net: " + message); }

std::vector<std::string_view> split(std::string_view text, char separator) {
    std::vector<std::string_view> parts;
    for (;;) {
        size_t at = text.find(separator);
        parts.push_back(text.substr(0, at));
        if (at == std::string_view::npos) return parts;
        text.remove_prefix(at + 1);
    }
}

bool parse_switch(std::string_view key, std::string_view value) {
    if (value == "on") return true;
    if (value == "off") return false;
    fail(std::string(key) + " must be on or off, not '" + std::string(value) + "'");
}

// Decimal digits only (no sign, no spaces), within [min, max].
uint64_t parse_number(std::string_view key, std::string_view value, uint64_t min, uint64_t max) {
    uint64_t number = 0;
    auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), number);
    bool digits_only = !value.empty() && std::all_of(value.begin(), value.end(),
                                                     [](char c) { return c >= '0' && c <= '9'; });
    if (!digits_only || ec != std::errc() || end != value.data() + value.size() || number < min ||
        number > max) {
        fail(std::string(key) + " must be a number in " + std::to_string(min) + ".." +
             std::to_string(max) + ", not '" + std::string(value) + "'");
    }
    return number;
}

// The kernel's rules for interface names (net/core/dev.c dev_valid_name);
// '%' is allowed so that "tap%d" lets the kernel pick a free number.
void check_interface_name(std::string_view name) {
    if (name.empty() || name.size() >= IFNAMSIZ)
        fail("tap name must be 1.." + std::to_string(IFNAMSIZ - 1) + " characters, not '" +
             std::string(name) + "'");
    if (name == "." || name == ".." ||
        name.find_first_of("/: \t\n\r\v\f") != std::string_view::npos)
        fail("'" + std::string(name) + "' is not a valid interface name");
}

const FeatureSwitch* find_switch(std::string_view key) {
    for (const auto& s : kFeatureSwitches)
        if (s.key == key) return &s;
    return nullptr;
}

std::string_view switch_key(unsigned n) {
    for (const auto& s : kFeatureSwitches)
        if (s.bit == n) return s.key;
    return {};
}

// "host_tso4 or host_tso6"
std::string describe_switches(uint64_t mask) {
    std::string text;
    for (const auto& s : kFeatureSwitches) {
        if (!has(mask, s.bit)) continue;
        if (!text.empty()) text += " or ";
        text += s.key;
    }
    return text;
}

class Parser {
public:
    NetOptions parse(std::string_view text) {
        if (text.empty()) fail("empty value; needs tap=NAME or fd=N");
        for (std::string_view item : split(text, ',')) parse_item(item);
        finish();
        return options_;
    }

private:
    void parse_item(std::string_view item) {
        if (item.empty()) fail("empty option (stray ',')");
        size_t eq = item.find('=');
        if (eq == std::string_view::npos) fail("'" + std::string(item) + "' is not key=value");
        std::string_view key = item.substr(0, eq);
        std::string_view value = item.substr(eq + 1);
        if (!seen_.insert(std::string(key)).second) fail("duplicate key '" + std::string(key) + "'");
        apply(key, value);
    }

    void apply(std::string_view key, std::string_view value) {
        if (const FeatureSwitch* s = find_switch(key)) {
            set_bit(explicit_on_, s->bit, parse_switch(key, value));
            set_bit(explicit_off_, s->bit, !has(explicit_on_, s->bit));
        } else if (key == "gso") {
            gso_ = parse_switch(key, value);
        } else if (key == "tap") {
            check_interface_name(value);
            options_.tap_name = value;
        } else if (key == "fd") {
            options_.tap_fd = static_cast<int>(parse_number(key, value, 0, INT_MAX));
        } else if (key == "mac") {
            options_.mac = parse_mac(value);
        } else if (key == "vnet_hdr") {
            options_.vnet_hdr = parse_vnet_hdr(value);
        } else if (key == "legacy") {
            options_.legacy = parse_switch(key, value);
        } else if (key == "mtu") {
            options_.mtu = static_cast<uint16_t>(parse_number(key, value, kMinMtu, kMaxMtu));
        } else if (key == "queue_size") {
            options_.queue_size = parse_queue_size(value);
        } else if (key == "pcap") {
            if (value.empty()) fail("pcap needs a file name");
            options_.pcap_path = value;
        } else {
            fail("unknown key '" + std::string(key) + "'");
        }
    }

    static void set_bit(uint64_t& mask, unsigned n, bool on) {
        if (on) mask |= bit(n);
        else mask &= ~bit(n);
    }

    static MacAddress parse_mac(std::string_view value) {
        auto mac = MacAddress::parse(value);
        if (!mac) fail("mac must look like 52:54:00:12:34:56, not '" + std::string(value) + "'");
        if (mac->is_multicast()) fail("mac " + mac->to_string() + " is a multicast address");
        if (mac->is_zero()) fail("mac 00:00:00:00:00:00 is not a valid address");
        return *mac;
    }

    static VnetHdrMode parse_vnet_hdr(std::string_view value) {
        if (value == "on") return VnetHdrMode::kOn;
        if (value == "off") return VnetHdrMode::kOff;
        if (value == "auto") return VnetHdrMode::kAuto;
        fail("vnet_hdr must be on, off or auto, not '" + std::string(value) + "'");
    }

    static uint16_t parse_queue_size(std::string_view value) {
        uint64_t size = parse_number("queue_size", value, kMinQueueSize, kMaxQueueSize);
        if (size & (size - 1)) fail("queue_size must be a power of two, not " + std::to_string(size));
        return static_cast<uint16_t>(size);
    }

    void finish() {
        if (options_.tap_name.empty() == !options_.tap_fd.has_value())
            fail(options_.tap_fd ? "tap= and fd= are mutually exclusive" : "needs tap=NAME or fd=N");

        uint64_t features = kSwitchableFeatures;
        if (gso_ && !*gso_) features &= ~kGsoFeatures;
        features = (features | explicit_on_) & ~explicit_off_;
        check_explicit_dependencies(features);
        options_.features = drop_unsatisfied(features);
    }

    // A switch the user turned on explicitly must not be silently dropped.
    void check_explicit_dependencies(uint64_t features) const {
        for (const auto& dep : kFeatureDependencies) {
            if (has(explicit_on_, dep.feature) && !(features & dep.requires_any)) {
                fail(std::string(switch_key(dep.feature)) + "=on requires " +
                     describe_switches(dep.requires_any) + "=on");
            }
        }
    }

    NetOptions options_;
    std::set<std::string> seen_;
    uint64_t explicit_on_ = 0;
    uint64_t explicit_off_ = 0;
    std::optional<bool> gso_;
};

}  // namespace

NetOptions parse_net_options(std::string_view text) { return Parser().parse(text); }

MacAddress effective_mac(const NetOptions& options, std::string_view interface_name) {
    return options.mac ? *options.mac : derived_mac(interface_name);
}

}  // namespace tapvm::net
