// virtio-net feature bits (virtio 1.2 §5.1.3), the dependencies between them
// (§5.1.3.1), the `--net` option key of each switchable bit, and the mapping
// from negotiated GUEST_* offloads to the tap's TUNSETOFFLOAD flags.
//
// Everything here is a pure function of feature words, so the rules can be
// tested without a tap or a queue.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "virtio/features.h"

namespace tapvm::net {

using virtio::bit;
using virtio::has;

// --- Device feature bits (virtio 1.2 §5.1.3) ---------------------------------
inline constexpr unsigned kFCsum = 0;               // device handles partial csum (guest -> host)
inline constexpr unsigned kFGuestCsum = 1;          // driver handles partial csum (host -> guest)
inline constexpr unsigned kFCtrlGuestOffloads = 2;  // offloads reconfigurable over the ctrl vq
inline constexpr unsigned kFMtu = 3;                // config.mtu is valid
inline constexpr unsigned kFMac = 5;                // config.mac is valid
inline constexpr unsigned kFGuestTso4 = 7;
inline constexpr unsigned kFGuestTso6 = 8;
inline constexpr unsigned kFGuestEcn = 9;
inline constexpr unsigned kFGuestUfo = 10;
inline constexpr unsigned kFHostTso4 = 11;
inline constexpr unsigned kFHostTso6 = 12;
inline constexpr unsigned kFHostEcn = 13;
inline constexpr unsigned kFHostUfo = 14;
inline constexpr unsigned kFMrgRxbuf = 15;
inline constexpr unsigned kFStatus = 16;
inline constexpr unsigned kFCtrlVq = 17;
inline constexpr unsigned kFCtrlRx = 18;
inline constexpr unsigned kFCtrlVlan = 19;
inline constexpr unsigned kFCtrlRxExtra = 20;
inline constexpr unsigned kFGuestAnnounce = 21;
inline constexpr unsigned kFMq = 22;
inline constexpr unsigned kFCtrlMacAddr = 23;
// Legacy-only transport bit (virtio 1.2 §6.3): "the device accepts any
// descriptor layout".  Implied by VERSION_1; tapvm never assumes framing, so
// a transitional device may offer it to legacy drivers.
inline constexpr unsigned kFAnyLayout = 27;

// The receive offloads the driver accepts: what the tap may hand us.
inline constexpr uint64_t kGuestOffloadFeatures =
    bit(kFGuestCsum) | bit(kFGuestTso4) | bit(kFGuestTso6) | bit(kFGuestEcn) | bit(kFGuestUfo);
// The transmit offloads the device accepts: what the guest may hand the tap.
inline constexpr uint64_t kHostOffloadFeatures =
    bit(kFCsum) | bit(kFHostTso4) | bit(kFHostTso6) | bit(kFHostEcn) | bit(kFHostUfo);
// Every bit that needs the tap's virtio-net header (IFF_VNET_HDR).
inline constexpr uint64_t kVnetHdrFeatures =
    kGuestOffloadFeatures | kHostOffloadFeatures | bit(kFCtrlGuestOffloads);
// Bits that only make sense with a control virtqueue (§5.1.3.1).
inline constexpr uint64_t kCtrlVqFeatures = bit(kFCtrlRx) | bit(kFCtrlVlan) | bit(kFCtrlRxExtra) |
                                            bit(kFGuestAnnounce) | bit(kFMq) | bit(kFCtrlMacAddr) |
                                            bit(kFCtrlGuestOffloads);

// --- The `--net` switches ----------------------------------------------------
struct FeatureSwitch {
    std::string_view key;  // `--net` key, value on|off
    unsigned bit;
};

// One `--net` key per switchable bit.  The defaults are all "on"; what is
// finally offered also depends on the tap (see offerable_features()).
inline constexpr std::array kFeatureSwitches = {
    FeatureSwitch{"csum", kFCsum},
    FeatureSwitch{"guest_csum", kFGuestCsum},
    FeatureSwitch{"host_tso4", kFHostTso4},
    FeatureSwitch{"host_tso6", kFHostTso6},
    FeatureSwitch{"host_ecn", kFHostEcn},
    FeatureSwitch{"host_ufo", kFHostUfo},
    FeatureSwitch{"guest_tso4", kFGuestTso4},
    FeatureSwitch{"guest_tso6", kFGuestTso6},
    FeatureSwitch{"guest_ecn", kFGuestEcn},
    FeatureSwitch{"guest_ufo", kFGuestUfo},
    FeatureSwitch{"mrg_rxbuf", kFMrgRxbuf},
    FeatureSwitch{"ctrl_vq", kFCtrlVq},
    FeatureSwitch{"event_idx", virtio::kFRingEventIdx},
    FeatureSwitch{"indirect_desc", virtio::kFRingIndirectDesc},
};

// `gso=on|off` toggles every segmentation bit in both directions.
inline constexpr uint64_t kGsoFeatures = bit(kFHostTso4) | bit(kFHostTso6) | bit(kFHostEcn) |
                                         bit(kFHostUfo) | bit(kFGuestTso4) | bit(kFGuestTso6) |
                                         bit(kFGuestEcn) | bit(kFGuestUfo);

inline constexpr uint64_t switch_mask() {
    uint64_t mask = 0;
    for (const auto& s : kFeatureSwitches) mask |= bit(s.bit);
    return mask;
}
inline constexpr uint64_t kSwitchableFeatures = switch_mask();

// --- Dependencies (virtio 1.2 §5.1.3.1) --------------------------------------
struct FeatureDependency {
    unsigned feature;
    uint64_t requires_any;  // at least one of these must be present too
};

inline constexpr std::array kFeatureDependencies = {
    FeatureDependency{kFGuestTso4, bit(kFGuestCsum)},
    FeatureDependency{kFGuestTso6, bit(kFGuestCsum)},
    FeatureDependency{kFGuestEcn, bit(kFGuestTso4) | bit(kFGuestTso6)},
    FeatureDependency{kFGuestUfo, bit(kFGuestCsum)},
    FeatureDependency{kFHostTso4, bit(kFCsum)},
    FeatureDependency{kFHostTso6, bit(kFCsum)},
    FeatureDependency{kFHostEcn, bit(kFHostTso4) | bit(kFHostTso6)},
    FeatureDependency{kFHostUfo, bit(kFCsum)},
    FeatureDependency{kFCtrlRx, bit(kFCtrlVq)},
    FeatureDependency{kFCtrlVlan, bit(kFCtrlVq)},
    FeatureDependency{kFCtrlRxExtra, bit(kFCtrlRx)},
    FeatureDependency{kFGuestAnnounce, bit(kFCtrlVq)},
    FeatureDependency{kFMq, bit(kFCtrlVq)},
    FeatureDependency{kFCtrlMacAddr, bit(kFCtrlVq)},
    // Not in §5.1.3.1's list, but the command travels on the ctrl vq.
    FeatureDependency{kFCtrlGuestOffloads, bit(kFCtrlVq)},
};

// Name of a feature bit ("GUEST_TSO4", "VERSION_1", ...) or "bit N".
std::string feature_name(unsigned bit);

// The first dependency `features` violates, as "GUEST_ECN requires GUEST_TSO4
// or GUEST_TSO6"; nullopt when the combination is valid.
std::optional<std::string> dependency_violation(uint64_t features);

// Removes every bit whose dependencies are missing, repeatedly, until the
// set is consistent.  Used to build a valid offer from user switches.
uint64_t drop_unsatisfied(uint64_t features);

// --- TUNSETOFFLOAD (include/uapi/linux/if_tun.h) ------------------------------
inline constexpr unsigned kTunFCsum = 0x01;
inline constexpr unsigned kTunFTso4 = 0x02;
inline constexpr unsigned kTunFTso6 = 0x04;
inline constexpr unsigned kTunFTsoEcn = 0x08;
inline constexpr unsigned kTunFUfo = 0x10;

// Which offloads the tap may use on frames it hands us, from the GUEST_*
// bits the driver accepted (QEMU's virtio-net does the same).  The tap
// refuses TSO/ECN/UFO without TUN_F_CSUM, and ECN without a TSO flag
// (drivers/net/tun.c set_offload), so those are dropped rather than sent.
constexpr unsigned tun_offload_flags(uint64_t guest_features) {
    if (!has(guest_features, kFGuestCsum)) return 0;
    unsigned flags = kTunFCsum;
    if (has(guest_features, kFGuestTso4)) flags |= kTunFTso4;
    if (has(guest_features, kFGuestTso6)) flags |= kTunFTso6;
    if (has(guest_features, kFGuestEcn) && (flags & (kTunFTso4 | kTunFTso6))) flags |= kTunFTsoEcn;
    if (has(guest_features, kFGuestUfo)) flags |= kTunFUfo;
    return flags;
}

// --- Header size (virtio 1.2 §5.1.6) ------------------------------------------
// struct virtio_net_hdr_v1 is 12 bytes with VERSION_1.  Legacy drivers use
// the 10-byte struct virtio_net_hdr, plus num_buffers (12) with MRG_RXBUF.
constexpr size_t vnet_header_size(uint64_t features) {
    return has(features, virtio::kFVersion1) || has(features, kFMrgRxbuf) ? 12 : 10;
}

}  // namespace tapvm::net
