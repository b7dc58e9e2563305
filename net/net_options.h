// The `--net` option: which tap to use and how the virtio-net device looks
// to the guest.
//
//   --net tap=NAME|fd=N[,mac=52:54:00:12:34:56][,vnet_hdr=on|off|auto]
//         [,mrg_rxbuf=on|off][,csum=..][,guest_csum=..][,host_tso4=..]
//         [,host_tso6=..][,host_ecn=..][,host_ufo=..][,guest_tso4=..]
//         [,guest_tso6=..][,guest_ecn=..][,guest_ufo=..][,gso=on|off]
//         [,event_idx=..][,indirect_desc=..][,ctrl_vq=..][,legacy=on|off]
//         [,mtu=68..65535][,queue_size=64..32768][,pcap=PATH]
//
// Every on|off switch defaults to on.  gso= sets all eight tso/ecn/ufo
// switches at once; an explicit per-bit switch wins over it, whatever the
// order.  Switches left at their default are dropped silently when a
// dependency is off (csum=off also turns the default host_tso4 off); a
// switch set explicitly to on whose dependency is off is an error.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "net/mac_address.h"
#include "net/net_features.h"
#include "net/tap.h"

namespace tapvm::net {

inline constexpr uint16_t kDefaultQueueSize = 256;
inline constexpr uint16_t kMinQueueSize = 64;
inline constexpr uint32_t kMaxQueueSize = 32768;  // split ring maximum (virtio 1.2 §2.7)
inline constexpr uint32_t kMinMtu = 68;           // RFC 791 minimum, also Linux's
inline constexpr uint32_t kMaxMtu = 65535;

struct NetOptions {
    std::string tap_name;          // tap=NAME: open (or create) this tap
    std::optional<int> tap_fd;     // fd=N: an already open tap fd, handed over
    std::optional<MacAddress> mac; // unset: derived_mac(interface name)
    VnetHdrMode vnet_hdr = VnetHdrMode::kAuto;
    uint64_t features = kSwitchableFeatures;  // the switches that are on
    bool legacy = true;            // offer the transitional (legacy) I/O BAR
    std::optional<uint16_t> mtu;   // set: offer VIRTIO_NET_F_MTU
    uint16_t queue_size = kDefaultQueueSize;
    std::string pcap_path;         // empty: no capture
    bool pcap_append = false;      // not an option: set for a machine restarted after a reboot

    bool feature_enabled(unsigned n) const { return has(features, n); }
};

// Parses the value of one `--net`.  Throws UsageError with a one-line
// message ("--net: unknown key 'foo'") on anything it cannot accept.
NetOptions parse_net_options(std::string_view text);

// The MAC address the device will use: the configured one, or one derived
// from the interface name.
MacAddress effective_mac(const NetOptions& options, std::string_view interface_name);

}  // namespace tapvm::net
