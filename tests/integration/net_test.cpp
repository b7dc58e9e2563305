// The virtio-net card end to end: a real guest (its own virtio_net driver)
// behind a real tap in a network namespace the test owns, with iperf3 and
// netperf moving real TCP traffic both ways.  Each variant is one boot; the
// guest runner (scripts/guest/init, tapvm.run=selftest,net-check) reports
// every check as a TAPVM-RESULT line.
#include <gtest/gtest.h>

#include <thread>

#include "net_peer.h"

namespace tapvm::it {
namespace {

struct Variant {
    std::string name;
    std::string net_options;      // appended to tap=tap0
    std::string guest_params;     // extra kernel parameters
    bool expect_tso = true;       // guest's ethtool -k shows TSO on
    std::string roles = "selftest,net-check";
    unsigned mtu = 0;
};

std::ostream& operator<<(std::ostream& os, const Variant& v) { return os << v.name; }

class NetVariant : public ::testing::TestWithParam<Variant> {
protected:
    void SetUp() override {
        TAPVM_REQUIRE_KVM();
        TAPVM_REQUIRE_TUN();
        std::string why;
        auto found = find_guest_image(why);
        ASSERT_TRUE(found) << why;
        image = *found;
    }
    GuestRun boot(const HostPeer& peer, const Variant& v, std::function<void(const std::string&)> on_line = {}) {
        std::string net = "tap=tap0" + (v.net_options.empty() ? "" : "," + v.net_options);
        std::string params = "tapvm.run=" + v.roles +
                             " tapvm.expect_nic=1 tapvm.ip=10.0.2.15/24 tapvm.peer=10.0.2.1 tapvm.secs=5 " +
                             v.guest_params;
        RunOptions opt;
        opt.args = {"--kernel", image.lean_kernel, "--initramfs", image.lean_initramfs, "--cpus", "2",
                    "--memory", "1G", "--net", net, "--cmdline", test_cmdline(params)};
        opt.netns = peer.netns().name();
        opt.on_line = std::move(on_line);
        return run_tapvm(opt);
    }
    GuestImage image;
};

TEST_P(NetVariant, TcpBothWays) {
    const Variant& v = GetParam();
    HostPeer peer(v.name, v.mtu);
    auto run = boot(peer, v);
    report(run, "net variant " + v.name);
    EXPECT_EQ(run.exit_status, 0) << run.errors;
    expect_tcp_both_ways(run, v.name, v.expect_tso, v.mtu);
    for (const char* check : {"nic", "virtio-net-driver", "offloads"})
        EXPECT_TRUE(run.results.count(check)) << "missing guest check " << check;
}

INSTANTIATE_TEST_SUITE_P(
    Variants, NetVariant,
    ::testing::Values(Variant{"default", "", ""},
                      Variant{"mrgrxbuf_off", "mrg_rxbuf=off", ""},
                      Variant{"offloads_off", "csum=off,guest_csum=off,gso=off", "", false},
                      Variant{"vnethdr_off", "vnet_hdr=off", "", false},
                      Variant{"legacy", "", "virtio_pci.force_legacy=1"},
                      Variant{"queue1024", "queue_size=1024", ""},
                      Variant{"mtu9000", "mtu=9000", "", true, "selftest,net-check", 9000}),
    [](const auto& info) { return info.param.name; });

class NetResilience : public NetVariant {};

// The guest reloads virtio_net while traffic runs; traffic still flows after.
TEST_F(NetResilience, DriverReloadUnderTraffic) {
    Variant v{"reload", "", "tapvm.reloads=3", true, "net-reload,net-check"};
    HostPeer peer(v.name, 0);
    auto run = boot(peer, v);
    report(run, "driver reload under traffic");
    EXPECT_EQ(run.exit_status, 0) << run.errors;
    ASSERT_TRUE(run.results.count("net-reload"));
    for (const auto& [name, r] : run.results) EXPECT_TRUE(r.pass) << name << ":" << r.details;
}

// The tap goes down and up under traffic, then disappears: packets are lost,
// tapvm is not, and the guest still powers off cleanly.
TEST_F(NetResilience, TapDownUpAndDeleted) {
    Variant v{"tapflap", "", "tapvm.secs=8", true, "net-check"};
    HostPeer peer(v.name, 0);
    TapFlapper flapper(peer);
    auto run = boot(peer, v, [&](const std::string& line) { flapper.on_line(line); });
    report(run, "tap down/up/deleted");
    EXPECT_EQ(run.exit_status, 0) << "tapvm did not survive the tap going away: " << run.errors;
    EXPECT_TRUE(run.has_mark("done"));
    EXPECT_TRUE(run.results.count("ping") && run.results.at("ping").pass);
}

}  // namespace
}  // namespace tapvm::it
