// Feature rules as pure functions: §5.1.3.1 dependencies, the TUNSETOFFLOAD
// mapping, the header size, and the config space layout.
#include "net/net_features.h"

#include <gtest/gtest.h>

#include "net/net_config_space.h"

namespace tapvm::net {
namespace {

constexpr uint64_t kAllOffloads = kGuestOffloadFeatures | kHostOffloadFeatures;

TEST(NetFeatures, ValidCombinationsPass) {
    EXPECT_EQ(dependency_violation(0), std::nullopt);
    EXPECT_EQ(dependency_violation(kAllOffloads | bit(kFCtrlVq) | bit(kFCtrlRx) | bit(kFCtrlMacAddr) |
                                   bit(kFCtrlGuestOffloads) | bit(kFMrgRxbuf) | bit(virtio::kFVersion1)),
              std::nullopt);
    // ECN is happy with either TSO.
    EXPECT_EQ(dependency_violation(bit(kFGuestCsum) | bit(kFGuestTso6) | bit(kFGuestEcn)), std::nullopt);
    EXPECT_EQ(dependency_violation(bit(kFCsum) | bit(kFHostTso4) | bit(kFHostEcn)), std::nullopt);
}

struct Refusal {
    uint64_t features;
    const char* message;
};

TEST(NetFeatures, EachDependencyIsRefusedWithItsReason) {
    const Refusal refusals[] = {
        {bit(kFGuestTso4), "GUEST_TSO4 requires GUEST_CSUM"},
        {bit(kFGuestTso6), "GUEST_TSO6 requires GUEST_CSUM"},
        {bit(kFGuestCsum) | bit(kFGuestEcn), "GUEST_ECN requires GUEST_TSO4 or GUEST_TSO6"},
        {bit(kFGuestUfo), "GUEST_UFO requires GUEST_CSUM"},
        {bit(kFHostTso4), "HOST_TSO4 requires CSUM"},
        {bit(kFHostTso6), "HOST_TSO6 requires CSUM"},
        {bit(kFCsum) | bit(kFHostEcn), "HOST_ECN requires HOST_TSO4 or HOST_TSO6"},
        {bit(kFHostUfo), "HOST_UFO requires CSUM"},
        {bit(kFCtrlRx), "CTRL_RX requires CTRL_VQ"},
        {bit(kFCtrlVlan), "CTRL_VLAN requires CTRL_VQ"},
        {bit(kFCtrlVq) | bit(kFCtrlRxExtra), "CTRL_RX_EXTRA requires CTRL_RX"},
        {bit(kFGuestAnnounce), "GUEST_ANNOUNCE requires CTRL_VQ"},
        {bit(kFMq), "MQ requires CTRL_VQ"},
        {bit(kFCtrlMacAddr), "CTRL_MAC_ADDR requires CTRL_VQ"},
        {bit(kFCtrlGuestOffloads), "CTRL_GUEST_OFFLOADS requires CTRL_VQ"},
        // The guest direction does not satisfy the host direction.
        {bit(kFGuestCsum) | bit(kFHostTso4), "HOST_TSO4 requires CSUM"},
    };
    for (const auto& r : refusals) {
        auto violation = dependency_violation(r.features);
        ASSERT_TRUE(violation.has_value()) << r.message;
        EXPECT_EQ(*violation, r.message);
    }
}

TEST(NetFeatures, DropUnsatisfiedReachesAValidSet) {
    // Removing CSUM must cascade HOST_TSO4 -> HOST_ECN.
    uint64_t pruned = drop_unsatisfied(bit(kFHostTso4) | bit(kFHostEcn) | bit(kFGuestCsum) | bit(kFGuestTso4));
    EXPECT_EQ(pruned, bit(kFGuestCsum) | bit(kFGuestTso4));
    EXPECT_EQ(dependency_violation(pruned), std::nullopt);
    // Every subset of the switches becomes valid.
    for (uint64_t mask = 0; mask < (1u << 10); ++mask) {
        uint64_t features = 0;
        for (unsigned i = 0; i < 10; ++i)
            if (mask & (1u << i)) features |= bit(kFeatureSwitches[i].bit);
        uint64_t kept = drop_unsatisfied(features);
        EXPECT_EQ(dependency_violation(kept), std::nullopt) << std::hex << features;
        EXPECT_EQ(kept & ~features, 0u);  // never adds
    }
}

TEST(NetFeatures, OffloadMappingFollowsGuestBits) {
    EXPECT_EQ(tun_offload_flags(0), 0u);
    EXPECT_EQ(tun_offload_flags(bit(kFGuestCsum)), kTunFCsum);
    EXPECT_EQ(tun_offload_flags(kGuestOffloadFeatures),
              kTunFCsum | kTunFTso4 | kTunFTso6 | kTunFTsoEcn | kTunFUfo);
    EXPECT_EQ(tun_offload_flags(bit(kFGuestCsum) | bit(kFGuestTso6)), kTunFCsum | kTunFTso6);
    EXPECT_EQ(tun_offload_flags(bit(kFGuestCsum) | bit(kFGuestUfo)), kTunFCsum | kTunFUfo);
}

TEST(NetFeatures, OffloadMappingIgnoresHostBitsAndInvalidCombinations) {
    // HOST_* bits concern the other direction: the tap's offloads are about
    // what it may hand *us*.
    EXPECT_EQ(tun_offload_flags(kHostOffloadFeatures), 0u);
    // The tap rejects TSO without CSUM and ECN without TSO: never ask.
    EXPECT_EQ(tun_offload_flags(bit(kFGuestTso4) | bit(kFGuestEcn)), 0u);
    EXPECT_EQ(tun_offload_flags(bit(kFGuestCsum) | bit(kFGuestEcn)), kTunFCsum);
}

TEST(NetFeatures, TunFlagValuesMatchTheKernelHeader) {
    // include/uapi/linux/if_tun.h
    EXPECT_EQ(kTunFCsum, 0x01u);
    EXPECT_EQ(kTunFTso4, 0x02u);
    EXPECT_EQ(kTunFTso6, 0x04u);
    EXPECT_EQ(kTunFTsoEcn, 0x08u);
    EXPECT_EQ(kTunFUfo, 0x10u);
}

TEST(NetFeatures, HeaderSize) {
    EXPECT_EQ(vnet_header_size(bit(virtio::kFVersion1)), 12u);
    EXPECT_EQ(vnet_header_size(bit(virtio::kFVersion1) | bit(kFMrgRxbuf)), 12u);
    EXPECT_EQ(vnet_header_size(0), 10u);                 // legacy
    EXPECT_EQ(vnet_header_size(bit(kFMrgRxbuf)), 12u);   // legacy + num_buffers
}

TEST(NetFeatures, Names) {
    EXPECT_EQ(feature_name(kFGuestTso4), "GUEST_TSO4");
    EXPECT_EQ(feature_name(virtio::kFVersion1), "VERSION_1");
    EXPECT_EQ(feature_name(45), "bit 45");
}

// --- config space (virtio 1.2 §5.1.4) ---------------------------------------

std::vector<uint8_t> read_all(const NetConfigSpace& config, uint64_t offset, size_t len) {
    std::vector<uint8_t> out(len, 0xee);
    config.read(offset, out);
    return out;
}

TEST(NetConfigSpace, LayoutMacStatusPairsMtu) {
    MacAddress mac{{0x52, 0x54, 0x00, 0x12, 0x34, 0x56}};
    NetConfigSpace config(mac, 9000);
    EXPECT_EQ(read_all(config, 0, 12),
              (std::vector<uint8_t>{0x52, 0x54, 0x00, 0x12, 0x34, 0x56,  // mac
                                    0x01, 0x00,                          // status: LINK_UP
                                    0x01, 0x00,                          // max_virtqueue_pairs
                                    0x28, 0x23}));                       // mtu 9000 (le16)
}

TEST(NetConfigSpace, PartialAndOutOfRangeReads) {
    NetConfigSpace config(MacAddress{{2, 3, 4, 5, 6, 7}}, std::nullopt);
    EXPECT_EQ(read_all(config, 4, 4), (std::vector<uint8_t>{6, 7, 1, 0}));
    EXPECT_EQ(read_all(config, 10, 4), (std::vector<uint8_t>{0, 0, 0, 0}));  // no mtu; past the end
    EXPECT_EQ(read_all(config, 12, 2), (std::vector<uint8_t>{0, 0}));
    EXPECT_EQ(read_all(config, ~uint64_t{0}, 1), (std::vector<uint8_t>{0}));
}

TEST(NetConfigSpace, MacWritableOnlyWhenAllowed) {
    NetConfigSpace config(MacAddress{{2, 0, 0, 0, 0, 1}}, std::nullopt);
    const uint8_t byte = 0x99;
    EXPECT_FALSE(config.write(5, std::span(&byte, 1)));
    EXPECT_EQ(config.mac().bytes[5], 1);

    config.set_mac_writable(true);  // legacy driver without CTRL_MAC_ADDR
    EXPECT_TRUE(config.write(5, std::span(&byte, 1)));
    EXPECT_EQ(config.mac().bytes[5], 0x99);
    const uint8_t two[2] = {1, 2};
    EXPECT_FALSE(config.write(5, two));                // would spill into status
    EXPECT_FALSE(config.write(6, std::span(&byte, 1))); // status is read-only
    EXPECT_EQ(read_all(config, 6, 2), (std::vector<uint8_t>{1, 0}));

    config.reset();  // back to the MAC the device was created with
    EXPECT_EQ(config.mac().bytes[5], 1);
    EXPECT_FALSE(config.write(5, std::span(&byte, 1)));
}

TEST(NetConfigSpace, LinkStatus) {
    NetConfigSpace config(MacAddress{{2, 0, 0, 0, 0, 1}}, std::nullopt);
    config.set_link_up(false);
    EXPECT_EQ(read_all(config, 6, 2), (std::vector<uint8_t>{0, 0}));
    config.set_link_up(true);
    EXPECT_EQ(read_all(config, 6, 2), (std::vector<uint8_t>{1, 0}));
}

}  // namespace
}  // namespace tapvm::net
