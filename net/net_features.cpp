#include "net/net_features.h"

#include <bit>

namespace tapvm::net {

std::string feature_name(unsigned n) {
    switch (n) {
        case kFCsum: return "CSUM";
        case kFGuestCsum: return "GUEST_CSUM";
        case kFCtrlGuestOffloads: return "CTRL_GUEST_OFFLOADS";
        case kFMtu: return "MTU";
        case kFMac: return "MAC";
        case kFGuestTso4: return "GUEST_TSO4";
        case kFGuestTso6: return "GUEST_TSO6";
        case kFGuestEcn: return "GUEST_ECN";
        case kFGuestUfo: return "GUEST_UFO";
        case kFHostTso4: return "HOST_TSO4";
        case kFHostTso6: return "HOST_TSO6";
        case kFHostEcn: return "HOST_ECN";
        case kFHostUfo: return "HOST_UFO";
        case kFMrgRxbuf: return "MRG_RXBUF";
        case kFStatus: return "STATUS";
        case kFCtrlVq: return "CTRL_VQ";
        case kFCtrlRx: return "CTRL_RX";
        case kFCtrlVlan: return "CTRL_VLAN";
        case kFCtrlRxExtra: return "CTRL_RX_EXTRA";
        case kFGuestAnnounce: return "GUEST_ANNOUNCE";
        case kFMq: return "MQ";
        case kFCtrlMacAddr: return "CTRL_MAC_ADDR";
        case kFAnyLayout: return "ANY_LAYOUT";
        case virtio::kFRingIndirectDesc: return "RING_INDIRECT_DESC";
        case virtio::kFRingEventIdx: return "RING_EVENT_IDX";
        case virtio::kFVersion1: return "VERSION_1";
        case virtio::kFAccessPlatform: return "ACCESS_PLATFORM";
        case virtio::kFRingPacked: return "RING_PACKED";
        default: return "bit " + std::to_string(n);
    }
}

namespace {

std::string describe_any_of(uint64_t mask) {
    std::string text;
    while (mask) {
        unsigned n = static_cast<unsigned>(std::countr_zero(mask));
        mask &= mask - 1;
        if (!text.empty()) text += " or ";
        text += feature_name(n);
    }
    return text;
}

}  // namespace

std::optional<std::string> dependency_violation(uint64_t features) {
    for (const auto& dep : kFeatureDependencies) {
        if (has(features, dep.feature) && !(features & dep.requires_any))
            return feature_name(dep.feature) + " requires " + describe_any_of(dep.requires_any);
    }
    return std::nullopt;
}

uint64_t drop_unsatisfied(uint64_t features) {
    // Each pass can only remove bits, so this ends after at most one pass
    // per dependency level (ECN -> TSO -> CSUM is the deepest chain).
    for (;;) {
        uint64_t kept = features;
        for (const auto& dep : kFeatureDependencies) {
            if (has(kept, dep.feature) && !(kept & dep.requires_any)) kept &= ~bit(dep.feature);
        }
        if (kept == features) return kept;
        features = kept;
    }
}

}  // namespace tapvm::net
