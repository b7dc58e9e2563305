// TapDevice against the real Linux tun driver, inside a network namespace
// that each test creates for itself (nothing appears on the host).
//
// The tap's offloads are observed from the other side, as the kernel sees
// them: the netdev features read with SIOCETHTOOL (ETHTOOL_GTXCSUM /
// ETHTOOL_GTSO), which tun derives from TUNSETOFFLOAD (tun_net_fix_features).
#include "net/tap_device.h"

#include <fcntl.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <linux/ethtool.h>
#include <linux/if_tun.h>
#include <linux/sockios.h>
#include <net/if.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

#include "net/net_features.h"
#include "net_test_support.h"
#include "vmm/error.h"

namespace tapvm::net {
namespace {

using ::testing::HasSubstr;
using testing::run_in_fresh_netns;

// Runs `body` in a fresh network namespace, or skips the test loudly.
#define IN_FRESH_NETNS(...)                                                          \
    do {                                                                             \
        std::string why;                                                             \
        if (!run_in_fresh_netns([&] { __VA_ARGS__; }, why)) GTEST_SKIP() << why;     \
    } while (0)

// One ethtool "get value" command on interface `name` (this thread's netns).
int ethtool_get(const std::string& name, uint32_t command) {
    UniqueFd sock(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
    struct ethtool_value value{.cmd = command, .data = 0};
    ifreq ifr{};
    std::snprintf(ifr.ifr_name, IFNAMSIZ, "%s", name.c_str());
    ifr.ifr_data = reinterpret_cast<char*>(&value);
    if (::ioctl(sock.get(), SIOCETHTOOL, &ifr) != 0) return -errno;
    return static_cast<int>(value.data);
}
int tx_checksum_offload(const std::string& name) { return ethtool_get(name, ETHTOOL_GTXCSUM); }
int tso_offload(const std::string& name) { return ethtool_get(name, ETHTOOL_GTSO); }

// A raw tun fd set up the way a manager (libvirt, a CNI plugin) would.
UniqueFd raw_tun_fd(const char* name, short flags) {
    UniqueFd fd(::open("/dev/net/tun", O_RDWR | O_CLOEXEC));
    if (!fd) return fd;
    ifreq ifr{};
    std::snprintf(ifr.ifr_name, IFNAMSIZ, "%s", name);
    ifr.ifr_flags = flags;
    if (::ioctl(fd.get(), TUNSETIFF, &ifr) != 0) return UniqueFd();
    return fd;
}

std::string usage_error(const std::function<void()>& f) {
    try {
        f();
    } catch (const UsageError& e) {
        return e.what();
    }
    return "(no error)";
}

TEST(TapDevice, OpenCreatesANonBlockingCloseOnExecTapWithVnetHeader) {
    IN_FRESH_NETNS({
        auto tap = TapDevice::open("tapvm%d", VnetHdrMode::kAuto);
        EXPECT_EQ(tap->name(), "tapvm0");  // the kernel filled in the number
        EXPECT_TRUE(tap->kernel_features() & IFF_VNET_HDR);
        EXPECT_TRUE(tap->has_vnet_hdr());
        EXPECT_EQ(tap->tap_flags() & (IFF_TAP | IFF_NO_PI | IFF_VNET_HDR), unsigned{IFF_TAP | IFF_NO_PI | IFF_VNET_HDR});
        EXPECT_TRUE(::fcntl(tap->fd(), F_GETFL) & O_NONBLOCK);
        EXPECT_TRUE(::fcntl(tap->fd(), F_GETFD) & FD_CLOEXEC);
        EXPECT_EQ(static_cast<unsigned>(tap->ifindex()), ::if_nametoindex("tapvm0"));
        EXPECT_GT(tap->ifindex(), 0);
        // The probe found the TCP offloads (and left them off).
        EXPECT_EQ(tap->supported_offloads() & (kTunFCsum | kTunFTso4 | kTunFTso6 | kTunFTsoEcn),
                  kTunFCsum | kTunFTso4 | kTunFTso6 | kTunFTsoEcn);
        EXPECT_EQ(tx_checksum_offload("tapvm0"), 0);
        EXPECT_EQ(tso_offload("tapvm0"), 0);
        // Nothing queued: a read says EAGAIN instead of blocking.
        uint8_t buffer[64];
        iovec iov{buffer, sizeof buffer};
        EXPECT_EQ(tap->readv(std::span(&iov, 1)), -EAGAIN);
    });
}

TEST(TapDevice, VnetHdrOffOpensAPlainTap) {
    IN_FRESH_NETNS({
        auto tap = TapDevice::open("plain0", VnetHdrMode::kOff);
        EXPECT_FALSE(tap->has_vnet_hdr());
        EXPECT_EQ(tap->supported_offloads(), 0u);
        EXPECT_FALSE(tap->tap_flags() & IFF_VNET_HDR);
    });
}

TEST(TapDevice, OffloadsAreVisibleOnTheNetdevAndClearedByResetAndClose) {
    IN_FRESH_NETNS({
        auto tap = TapDevice::open("offl0", VnetHdrMode::kOn);
        ASSERT_EQ(tap->set_offload(kTunFCsum | kTunFTso4), 0);
        EXPECT_EQ(tx_checksum_offload("offl0"), 1);
        EXPECT_EQ(tso_offload("offl0"), 1);
        ASSERT_EQ(tap->reset_offloads(), 0);
        EXPECT_EQ(tx_checksum_offload("offl0"), 0);
        EXPECT_EQ(tso_offload("offl0"), 0);

        // A persistent tap outlives the fd: closing must leave it clean.
        ASSERT_EQ(::ioctl(tap->fd(), TUNSETPERSIST, 1), 0);
        ASSERT_EQ(tap->set_offload(kTunFCsum | kTunFTso4 | kTunFTso6), 0);
        EXPECT_EQ(tso_offload("offl0"), 1);
        tap.reset();
        ASSERT_GT(::if_nametoindex("offl0"), 0u);  // still there
        EXPECT_EQ(tx_checksum_offload("offl0"), 0);
        EXPECT_EQ(tso_offload("offl0"), 0);

        // Re-attaching to the persistent tap works, and so does cleanup.
        auto again = TapDevice::open("offl0", VnetHdrMode::kOn);
        EXPECT_EQ(again->name(), "offl0");
        EXPECT_EQ(::ioctl(again->fd(), TUNSETPERSIST, 0), 0);
    });
}

TEST(TapDevice, TheTapRefusesInvalidOffloadCombinations) {
    IN_FRESH_NETNS({
        auto tap = TapDevice::open("inv0", VnetHdrMode::kOn);
        // Why tun_offload_flags() never asks for these: the kernel says EINVAL.
        EXPECT_EQ(tap->set_offload(kTunFTso4), EINVAL);
        EXPECT_EQ(tap->set_offload(kTunFCsum | kTunFTsoEcn), EINVAL);
        EXPECT_EQ(tap->set_vnet_hdr_size(12), 0);
        EXPECT_EQ(tap->set_vnet_hdr_size(4), EINVAL);  // smaller than struct virtio_net_hdr
    });
}

TEST(TapDevice, OpenErrorsAreOneClearLine) {
    IN_FRESH_NETNS({
        auto first = TapDevice::open("busy0", VnetHdrMode::kAuto);
        EXPECT_EQ(usage_error([] { TapDevice::open("busy0", VnetHdrMode::kAuto); }),
                  "tap busy0: TUNSETIFF: Device or resource busy (the tap is already attached to another process)");
        // An existing interface that is not a tap.
        UniqueFd tun = raw_tun_fd("tun0", IFF_TUN | IFF_NO_PI);
        ASSERT_TRUE(tun);
        ASSERT_EQ(::ioctl(tun.get(), TUNSETPERSIST, 1), 0);
        tun.reset();
        EXPECT_EQ(usage_error([] { TapDevice::open("tun0", VnetHdrMode::kAuto); }),
                  "tap tun0: TUNSETIFF: Invalid argument (an interface of that name exists but is not a single-queue tap)");
        EXPECT_THAT(usage_error([] { TapDevice::open("", VnetHdrMode::kAuto); }), HasSubstr("invalid interface name"));
    });
}

TEST(TapDevice, AdoptAnAttachedTapFd) {
    IN_FRESH_NETNS({
        UniqueFd fd = raw_tun_fd("given0", IFF_TAP | IFF_NO_PI | IFF_VNET_HDR);
        ASSERT_TRUE(fd);
        ASSERT_FALSE(::fcntl(fd.get(), F_GETFL) & O_NONBLOCK);
        int raw = fd.release();
        ::fcntl(raw, F_SETFD, 0);  // a manager hands it over without CLOEXEC
        auto tap = TapDevice::adopt(raw, VnetHdrMode::kAuto);
        EXPECT_NE(tap->fd(), raw) << "works on a duplicate";
        EXPECT_EQ(tap->name(), "given0");
        EXPECT_TRUE(tap->has_vnet_hdr());
        EXPECT_TRUE(tap->supported_offloads() & kTunFTso4);
        EXPECT_TRUE(::fcntl(raw, F_GETFL) & O_NONBLOCK);
        EXPECT_TRUE(::fcntl(raw, F_GETFD) & FD_CLOEXEC);
        EXPECT_TRUE(::fcntl(tap->fd(), F_GETFD) & FD_CLOEXEC);
        EXPECT_GT(tap->ifindex(), 0);
        // A guest reboot with --on-reboot restart builds a new machine that
        // adopts the same fd again: it must still be open and usable.
        tap.reset();
        ASSERT_GE(::fcntl(raw, F_GETFD), 0) << "the handed-over fd was closed with the first machine";
        auto again = TapDevice::adopt(raw, VnetHdrMode::kAuto);
        EXPECT_EQ(again->name(), "given0");
        again.reset();
        ::close(raw);
    });
}

TEST(TapDevice, AdoptWithVnetHdrOffKeepsTheHeaderButNoOffloads) {
    IN_FRESH_NETNS({
        UniqueFd fd = raw_tun_fd("given1", IFF_TAP | IFF_NO_PI | IFF_VNET_HDR);
        ASSERT_TRUE(fd);
        auto tap = TapDevice::adopt(fd.release(), VnetHdrMode::kOff);
        EXPECT_TRUE(tap->has_vnet_hdr());  // fixed by whoever opened it
        EXPECT_EQ(tap->supported_offloads(), 0u);
    });
}

TEST(TapDevice, AdoptRefusesWhatTapvmCannotUse) {
    IN_FRESH_NETNS({
        UniqueFd tun = raw_tun_fd("l3tun", IFF_TUN | IFF_NO_PI);
        ASSERT_TRUE(tun);
        int tun_fd = tun.release();
        EXPECT_EQ(usage_error([&] { TapDevice::adopt(tun_fd, VnetHdrMode::kAuto); }),
                  "tap fd " + std::to_string(tun_fd) +
                      " (l3tun): is a tun (layer 3) device; tapvm needs a tap (IFF_TAP)");

        UniqueFd pi = raw_tun_fd("pi0", IFF_TAP);
        ASSERT_TRUE(pi);
        int pi_fd = pi.release();
        EXPECT_EQ(usage_error([&] { TapDevice::adopt(pi_fd, VnetHdrMode::kAuto); }),
                  "tap fd " + std::to_string(pi_fd) +
                      " (pi0): the tap adds packet information; it must be opened with IFF_NO_PI");

        UniqueFd plain = raw_tun_fd("nohdr0", IFF_TAP | IFF_NO_PI);
        ASSERT_TRUE(plain);
        int plain_fd = plain.release();
        EXPECT_EQ(usage_error([&] { TapDevice::adopt(plain_fd, VnetHdrMode::kOn); }),
                  "tap fd " + std::to_string(plain_fd) + " (nohdr0): vnet_hdr=on but the tap has no IFF_VNET_HDR");

        int unattached = ::open("/dev/net/tun", O_RDWR | O_CLOEXEC);
        ASSERT_GE(unattached, 0);
        EXPECT_THAT(usage_error([&] { TapDevice::adopt(unattached, VnetHdrMode::kAuto); }),
                    HasSubstr("not a tap attached to an interface: TUNGETIFF"));

        int null_fd = ::open("/dev/null", O_RDWR | O_CLOEXEC);
        ASSERT_GE(null_fd, 0);
        EXPECT_THAT(usage_error([&] { TapDevice::adopt(null_fd, VnetHdrMode::kAuto); }),
                    HasSubstr("not a tap attached to an interface"));

        EXPECT_EQ(usage_error([] { TapDevice::adopt(-1, VnetHdrMode::kAuto); }), "tap fd -1: Bad file descriptor");
        EXPECT_EQ(usage_error([] { TapDevice::adopt(987654, VnetHdrMode::kAuto); }),
                  "tap fd 987654: Bad file descriptor");
    });
}

// Frames cross a real tap with the header the tap was told to use.
TEST(TapDevice, FramesCrossWithTheVnetHeader) {
    IN_FRESH_NETNS({
        auto tap = TapDevice::open("frames0", VnetHdrMode::kOn);
        ASSERT_EQ(tap->set_vnet_hdr_size(12), 0);
        // Bring it up so that written frames enter the stack.
        UniqueFd sock(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
        ifreq ifr{};
        std::snprintf(ifr.ifr_name, IFNAMSIZ, "frames0");
        ifr.ifr_flags = IFF_UP;
        ASSERT_EQ(::ioctl(sock.get(), SIOCSIFFLAGS, &ifr), 0);

        // Guest -> host: a zero header (no offloads) and a broadcast frame.
        testing::Bytes frame = testing::pattern(60, 1);
        std::fill_n(frame.begin(), 6, 0xff);
        frame[12] = 0x88;
        frame[13] = 0xb5;  // IEEE local experimental ethertype
        testing::Bytes header(12, 0);
        iovec out[2] = {{header.data(), header.size()}, {frame.data(), frame.size()}};
        EXPECT_EQ(tap->writev(out), 72);
        // A frame shorter than an Ethernet header is refused by the kernel.
        iovec runt[2] = {{header.data(), header.size()}, {frame.data(), 10}};
        EXPECT_EQ(tap->writev(runt), -EINVAL);
    });
}

}  // namespace
}  // namespace tapvm::net
