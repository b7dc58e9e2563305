// `--net` parsing: every key, every default, and the one-line errors.
#include "net/net_options.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "vmm/error.h"

namespace tapvm::net {
namespace {

using ::testing::HasSubstr;

std::string error_of(std::string_view text) {
    try {
        parse_net_options(text);
    } catch (const UsageError& e) {
        return e.what();
    }
    return "(no error)";
}

TEST(NetOptions, TapNameWithAllDefaults) {
    NetOptions o = parse_net_options("tap=tap0");
    EXPECT_EQ(o.tap_name, "tap0");
    EXPECT_FALSE(o.tap_fd.has_value());
    EXPECT_FALSE(o.mac.has_value());
    EXPECT_EQ(o.vnet_hdr, VnetHdrMode::kAuto);
    EXPECT_EQ(o.features, kSwitchableFeatures);  // every switch on
    EXPECT_TRUE(o.legacy);
    EXPECT_FALSE(o.mtu.has_value());
    EXPECT_EQ(o.queue_size, 256);
    EXPECT_TRUE(o.pcap_path.empty());
}

TEST(NetOptions, FdInsteadOfTap) {
    NetOptions o = parse_net_options("fd=7");
    EXPECT_TRUE(o.tap_name.empty());
    ASSERT_TRUE(o.tap_fd.has_value());
    EXPECT_EQ(*o.tap_fd, 7);
}

TEST(NetOptions, NeedsExactlyOneOfTapAndFd) {
    EXPECT_EQ(error_of("mac=52:54:00:12:34:56"), "--net: needs tap=NAME or fd=N");
    EXPECT_EQ(error_of("tap=tap0,fd=3"), "--net: tap= and fd= are mutually exclusive");
    EXPECT_EQ(error_of(""), "--net: empty value; needs tap=NAME or fd=N");
}

TEST(NetOptions, EveryValueKey) {
    NetOptions o = parse_net_options(
        "tap=vm1,mac=52:54:00:AB:cd:0f,vnet_hdr=off,legacy=off,mtu=9000,queue_size=1024,pcap=/tmp/x.pcap");
    ASSERT_TRUE(o.mac.has_value());
    EXPECT_EQ(o.mac->to_string(), "52:54:00:ab:cd:0f");
    EXPECT_EQ(o.vnet_hdr, VnetHdrMode::kOff);
    EXPECT_FALSE(o.legacy);
    EXPECT_EQ(o.mtu, 9000);
    EXPECT_EQ(o.queue_size, 1024);
    EXPECT_EQ(o.pcap_path, "/tmp/x.pcap");
    EXPECT_EQ(parse_net_options("tap=a,vnet_hdr=on").vnet_hdr, VnetHdrMode::kOn);
    EXPECT_EQ(parse_net_options("tap=a,vnet_hdr=auto").vnet_hdr, VnetHdrMode::kAuto);
}

// Each switch turns its own bit off, and only csum/guest_csum take other
// bits with them (the offloads that need them, virtio 1.2 §5.1.3.1).
TEST(NetOptions, EachFeatureSwitchTurnsItsBitOff) {
    const uint64_t host_gso = bit(kFHostTso4) | bit(kFHostTso6) | bit(kFHostEcn) | bit(kFHostUfo);
    const uint64_t guest_gso = bit(kFGuestTso4) | bit(kFGuestTso6) | bit(kFGuestEcn) | bit(kFGuestUfo);
    for (const auto& s : kFeatureSwitches) {
        NetOptions o = parse_net_options("tap=t," + std::string(s.key) + "=off");
        uint64_t expected_gone = bit(s.bit);
        if (s.bit == kFCsum) expected_gone |= host_gso;
        if (s.bit == kFGuestCsum) expected_gone |= guest_gso;
        EXPECT_EQ(kSwitchableFeatures & ~o.features, expected_gone) << s.key;
        EXPECT_TRUE(parse_net_options("tap=t," + std::string(s.key) + "=on").feature_enabled(s.bit)) << s.key;
    }
}

TEST(NetOptions, DefaultedDependentsFollowTheirDependency) {
    NetOptions o = parse_net_options("tap=t,csum=off");
    EXPECT_FALSE(o.feature_enabled(kFCsum));
    EXPECT_FALSE(o.feature_enabled(kFHostTso4));
    EXPECT_FALSE(o.feature_enabled(kFHostTso6));
    EXPECT_FALSE(o.feature_enabled(kFHostEcn));
    EXPECT_FALSE(o.feature_enabled(kFHostUfo));
    EXPECT_TRUE(o.feature_enabled(kFGuestTso4));  // the other direction is untouched

    NetOptions g = parse_net_options("tap=t,guest_tso4=off,guest_tso6=off");
    EXPECT_FALSE(g.feature_enabled(kFGuestEcn));  // ECN needs a TSO
    EXPECT_TRUE(g.feature_enabled(kFGuestCsum));
}

TEST(NetOptions, ExplicitOnWithItsDependencyOffIsAnError) {
    EXPECT_EQ(error_of("tap=t,csum=off,host_tso4=on"), "--net: host_tso4=on requires csum=on");
    EXPECT_EQ(error_of("tap=t,guest_tso4=off,guest_tso6=off,guest_ecn=on"),
              "--net: guest_ecn=on requires guest_tso4 or guest_tso6=on");
    EXPECT_EQ(error_of("tap=t,gso=off,host_ecn=on"), "--net: host_ecn=on requires host_tso4 or host_tso6=on");
}

TEST(NetOptions, GsoShorthandAndExplicitOverride) {
    NetOptions off = parse_net_options("tap=t,gso=off");
    EXPECT_EQ(off.features & kGsoFeatures, 0u);
    EXPECT_TRUE(off.feature_enabled(kFCsum));
    EXPECT_TRUE(off.feature_enabled(kFGuestCsum));

    // An explicit switch wins over gso=, in either order.
    NetOptions a = parse_net_options("tap=t,gso=off,guest_tso4=on");
    NetOptions b = parse_net_options("tap=t,guest_tso4=on,gso=off");
    for (const NetOptions& o : {a, b}) {
        EXPECT_TRUE(o.feature_enabled(kFGuestTso4));
        EXPECT_FALSE(o.feature_enabled(kFGuestTso6));
        EXPECT_FALSE(o.feature_enabled(kFHostTso4));
    }
    NetOptions on = parse_net_options("tap=t,gso=on,host_ufo=off");
    EXPECT_EQ(on.features & kGsoFeatures, kGsoFeatures & ~bit(kFHostUfo));
}

TEST(NetOptions, UnknownDuplicateAndMalformedItems) {
    EXPECT_EQ(error_of("tap=t,foo=1"), "--net: unknown key 'foo'");
    EXPECT_EQ(error_of("tap=t,tap=u"), "--net: duplicate key 'tap'");
    EXPECT_EQ(error_of("tap=t,csum=on,csum=off"), "--net: duplicate key 'csum'");
    EXPECT_EQ(error_of("tap=t,,csum=on"), "--net: empty option (stray ',')");
    EXPECT_EQ(error_of("tap=t,"), "--net: empty option (stray ',')");
    EXPECT_EQ(error_of("tap=t,mrg_rxbuf"), "--net: 'mrg_rxbuf' is not key=value");
}

TEST(NetOptions, BadSwitchValues) {
    EXPECT_EQ(error_of("tap=t,mrg_rxbuf=maybe"), "--net: mrg_rxbuf must be on or off, not 'maybe'");
    EXPECT_EQ(error_of("tap=t,legacy=1"), "--net: legacy must be on or off, not '1'");
    EXPECT_EQ(error_of("tap=t,gso=ON"), "--net: gso must be on or off, not 'ON'");
    EXPECT_EQ(error_of("tap=t,vnet_hdr=yes"), "--net: vnet_hdr must be on, off or auto, not 'yes'");
}

TEST(NetOptions, TapNames) {
    EXPECT_EQ(parse_net_options("tap=tap%d").tap_name, "tap%d");
    EXPECT_EQ(parse_net_options("tap=123456789012345").tap_name, "123456789012345");  // 15 = IFNAMSIZ-1
    EXPECT_THAT(error_of("tap=1234567890123456"), HasSubstr("tap name must be 1..15 characters"));
    EXPECT_THAT(error_of("tap="), HasSubstr("tap name must be 1..15 characters"));
    EXPECT_EQ(error_of("tap=a/b"), "--net: 'a/b' is not a valid interface name");
    EXPECT_EQ(error_of("tap=.."), "--net: '..' is not a valid interface name");
    EXPECT_EQ(error_of("tap=a b"), "--net: 'a b' is not a valid interface name");
    EXPECT_EQ(error_of("tap=a:1"), "--net: 'a:1' is not a valid interface name");
}

TEST(NetOptions, FdValues) {
    EXPECT_EQ(parse_net_options("fd=0").tap_fd, 0);
    EXPECT_EQ(parse_net_options("fd=2147483647").tap_fd, 2147483647);
    EXPECT_EQ(error_of("fd=-1"), "--net: fd must be a number in 0..2147483647, not '-1'");
    EXPECT_EQ(error_of("fd=2147483648"), "--net: fd must be a number in 0..2147483647, not '2147483648'");
    EXPECT_EQ(error_of("fd=3x"), "--net: fd must be a number in 0..2147483647, not '3x'");
    EXPECT_EQ(error_of("fd= 3"), "--net: fd must be a number in 0..2147483647, not ' 3'");
    EXPECT_EQ(error_of("fd="), "--net: fd must be a number in 0..2147483647, not ''");
}

TEST(NetOptions, MacValues) {
    EXPECT_EQ(error_of("tap=t,mac=52:54:00:12:34"), "--net: mac must look like 52:54:00:12:34:56, not '52:54:00:12:34'");
    EXPECT_EQ(error_of("tap=t,mac=52-54-00-12-34-56"),
              "--net: mac must look like 52:54:00:12:34:56, not '52-54-00-12-34-56'");
    EXPECT_EQ(error_of("tap=t,mac=52:54:00:12:34:5g"),
              "--net: mac must look like 52:54:00:12:34:56, not '52:54:00:12:34:5g'");
    EXPECT_EQ(error_of("tap=t,mac=01:00:5e:00:00:01"), "--net: mac 01:00:5e:00:00:01 is a multicast address");
    EXPECT_EQ(error_of("tap=t,mac=00:00:00:00:00:00"), "--net: mac 00:00:00:00:00:00 is not a valid address");
}

TEST(NetOptions, MtuRange) {
    EXPECT_EQ(parse_net_options("tap=t,mtu=68").mtu, 68);
    EXPECT_EQ(parse_net_options("tap=t,mtu=65535").mtu, 65535);
    EXPECT_EQ(error_of("tap=t,mtu=67"), "--net: mtu must be a number in 68..65535, not '67'");
    EXPECT_EQ(error_of("tap=t,mtu=65536"), "--net: mtu must be a number in 68..65535, not '65536'");
}

TEST(NetOptions, QueueSizeRangeAndPowerOfTwo) {
    EXPECT_EQ(parse_net_options("tap=t,queue_size=64").queue_size, 64);
    EXPECT_EQ(parse_net_options("tap=t,queue_size=32768").queue_size, 32768);
    EXPECT_EQ(error_of("tap=t,queue_size=32"), "--net: queue_size must be a number in 64..32768, not '32'");
    EXPECT_EQ(error_of("tap=t,queue_size=65536"),
              "--net: queue_size must be a number in 64..32768, not '65536'");
    EXPECT_EQ(error_of("tap=t,queue_size=300"), "--net: queue_size must be a power of two, not 300");
}

TEST(NetOptions, PcapNeedsAPath) { EXPECT_EQ(error_of("tap=t,pcap="), "--net: pcap needs a file name"); }

TEST(NetOptions, EffectiveMacIsConfiguredOrDerivedFromTheName) {
    NetOptions configured = parse_net_options("tap=t,mac=52:54:00:12:34:56");
    EXPECT_EQ(effective_mac(configured, "t").to_string(), "52:54:00:12:34:56");

    NetOptions derived = parse_net_options("tap=t");
    MacAddress a = effective_mac(derived, "tap0");
    EXPECT_EQ(a, effective_mac(derived, "tap0"));   // deterministic
    EXPECT_NE(a, effective_mac(derived, "tap1"));   // depends on the name
    EXPECT_TRUE(a.is_locally_administered());
    EXPECT_FALSE(a.is_multicast());
}

TEST(MacAddress, ParsePrintRoundTrip) {
    auto mac = MacAddress::parse("02:AB:cd:00:ff:10");
    ASSERT_TRUE(mac.has_value());
    EXPECT_EQ(mac->bytes, (std::array<uint8_t, 6>{0x02, 0xab, 0xcd, 0x00, 0xff, 0x10}));
    EXPECT_EQ(mac->to_string(), "02:ab:cd:00:ff:10");
    EXPECT_FALSE(MacAddress::parse("02:ab:cd:00:ff:10:").has_value());
    EXPECT_FALSE(MacAddress::parse("02:ab:cd:00:ff1:0").has_value());
}

}  // namespace
}  // namespace tapvm::net
