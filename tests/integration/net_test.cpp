// The virtio-net card end to end: a real guest (its own virtio_net driver)
// behind a real tap in a network namespace the test owns, with iperf3 and
// netperf moving real TCP traffic both ways.  Each variant is one boot; the
// guest runner (scripts/guest/init, tapvm.run=selftest,net-check) reports
// every check as a TAPVM-RESULT line.
#include <gtest/gtest.h>

#include <pty.h>
#include <termios.h>

#include <cstring>
#include <sstream>
#include <map>
#include <regex>
#include <thread>

#include <nlohmann/json.hpp>

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
    bool stock_kernel = false;    // Debian's cloud kernel instead of the lean one
};

std::ostream& operator<<(std::ostream& os, const Variant& v) { return os << v.name; }

class NetVariant : public ::testing::TestWithParam<Variant> {
public:  // stops_cleanly_on() builds on these too
    void SetUp() override {
        TAPVM_REQUIRE_KVM();
        TAPVM_REQUIRE_TUN();
        std::string why;
        auto found = find_guest_image(why);
        ASSERT_TRUE(found) << why;
        image = *found;
    }
    RunOptions options(const HostPeer& peer, const Variant& v, std::function<void(const std::string&)> on_line = {}) {
        std::string net = "tap=tap0" + (v.net_options.empty() ? "" : "," + v.net_options);
        std::string params = "tapvm.run=" + v.roles +
                             " tapvm.expect_nic=1 tapvm.ip=10.0.2.15/24 tapvm.peer=10.0.2.1 tapvm.secs=5 " +
                             v.guest_params;
        RunOptions opt;
        opt.args = {"--kernel", v.stock_kernel ? image.stock_kernel : image.lean_kernel,
                    "--initramfs", v.stock_kernel ? image.stock_initramfs : image.lean_initramfs,
                    "--cpus", "2", "--memory", "1G", "--net", net, "--cmdline", test_cmdline(params)};
        opt.netns = peer.netns().name();
        opt.on_line = std::move(on_line);
        return opt;
    }
    GuestRun boot(const HostPeer& peer, const Variant& v, std::function<void(const std::string&)> on_line = {}) {
        return run_tapvm(options(peer, v, std::move(on_line)));
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
                      Variant{"mtu9000", "mtu=9000", "", true, "selftest,net-check", 9000},
                      // Debian's stock kernel all the way to its user space
                      // (on hardware KVM `syscall` works; no guest patch needed).
                      Variant{"stock_kernel", "", "", true, "selftest,net-check", 0, true}),
    [](const auto& info) { return info.param.name; });

class NetResilience : public NetVariant {};

// A pseudo-terminal for tapvm's stdin: tapvm puts a terminal in raw mode and
// must give it back as it found it.
class Pty {
public:
    Pty() {
        if (::openpty(&master_, &slave_, nullptr, nullptr, nullptr) != 0) throw std::runtime_error("openpty");
    }
    ~Pty() {
        ::close(master_);
        ::close(slave_);
    }
    int slave() const { return slave_; }
    termios attributes() const {
        termios t{};
        ::tcgetattr(slave_, &t);
        return t;
    }

private:
    int master_ = -1, slave_ = -1;
};

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

// The counters of every state report tapvm logged (SIGUSR1), in order:
// "virtio-net MAC stats: {...}" lines on its standard error.
std::vector<nlohmann::json> state_report_stats(const std::string& log) {
    std::vector<nlohmann::json> reports;
    std::istringstream in(log);
    for (std::string line; std::getline(in, line);) {
        auto at = line.find(" stats: {");
        if (line.find("virtio-net ") == std::string::npos || at == std::string::npos) continue;
        reports.push_back(nlohmann::json::parse(line.substr(at + 8), nullptr, false));
    }
    return reports;
}

// The guest resets the device (unbinds its driver) while the host floods the
// tap with small frames.  From then on the device may write nothing into
// guest memory: the guest fills the memory the RX buffers were in with a
// file of zeros and finds it intact (role reset-flood), and tapvm's own
// counters, taken twice while the reset device sits under the flood,
// deliver nothing.  Bound again, the driver finds a working device.
TEST_F(NetResilience, ResetUnderASmallFrameFloodWritesNothingMore) {
    Variant v{"resetflood", "", "", true, "reset-flood"};
    HostPeer peer(v.name, 0);
    SmallFrameFlood flood(peer);
    bool flooding_at_check = false;
    std::string dropped_at_unbound, dropped_at_checked;
    const std::string tap_dropped = "cat /sys/class/net/tap0/statistics/tx_dropped";
    auto opt = options(peer, v, [&](const std::string& line) {
        if (line.rfind("TAPVM-MARK reset-flood-ready", 0) == 0) flood.start();
        if (line.rfind("TAPVM-MARK reset-flood-unbound", 0) == 0) dropped_at_unbound = peer.netns().output(tap_dropped);
        if (line.rfind("TAPVM-MARK reset-flood-checked", 0) == 0) {
            flooding_at_check = flood.running();
            dropped_at_checked = peer.netns().output(tap_dropped);
        }
        if (line.rfind("TAPVM-MARK reset-flood-rebound", 0) == 0) flood.stop();
    });
    for (auto& a : opt.args)
        if (a == "1G") a = "512M";  // less to fill and read back
    opt.signals_at = {{"TAPVM-MARK reset-flood-unbound", SIGUSR1}, {"TAPVM-MARK reset-flood-checked", SIGUSR1}};
    auto run = run_tapvm(opt);
    flood.stop();
    report(run, "reset under a small-frame flood");
    std::cout << "[tapvm-it] tap0 tx_dropped at reset " << dropped_at_unbound << ", after the check "
              << dropped_at_checked << "\n";
    EXPECT_EQ(run.exit_status, 0) << run.errors;
    for (const auto& [name, r] : run.results) EXPECT_TRUE(r.pass) << name << ":" << r.details;
    ASSERT_TRUE(run.results.count("reset-flood")) << "the guest never finished the check";
    EXPECT_TRUE(run.results.count("reset-flood-ping-after")) << "the driver did not come back";
    EXPECT_TRUE(flooding_at_check) << "the flood had stopped before the check: it tested nothing";
    EXPECT_GT(number(run.results.at("reset-flood"), "fill_mb"), 100) << "too little memory was checked";

    auto reports = state_report_stats(run.errors);
    ASSERT_GE(reports.size(), 2u) << "tapvm logged no state reports: " << run.errors;
    const auto& at_reset = reports[0];
    const auto& later = reports[1];
    ASSERT_TRUE(at_reset.is_object() && later.is_object()) << run.errors;
    EXPECT_GT(at_reset["rx"]["packets"].get<uint64_t>(), 500u) << "the flood never reached the guest";
    EXPECT_EQ(later["rx"]["packets"], at_reset["rx"]["packets"]) << "frames delivered after the reset";
    EXPECT_EQ(later["rx"]["buffers_used"], at_reset["rx"]["buffers_used"]) << "RX buffers used after the reset";
    EXPECT_EQ(later["rx"]["interrupts"], at_reset["rx"]["interrupts"]) << "RX interrupts after the reset";
}

// "tcp-segmentation-offload: on" from the host's view of the tap: what
// TUNSETOFFLOAD last set (the tap accepts TSO frames for the guest).
bool tap_tso_on(const HostPeer& peer, const std::string& tap = "tap0") {
    return peer.netns().exec("timeout 60 sh -c 'ethtool -k " + tap + " | grep -q \"^tcp-segmentation-offload: on\"'") == 0;
}

// The guest drives the control queue; each step shows outside the guest.
TEST_F(NetResilience, ControlQueueReachesTheTapAndTheDevice) {
    Variant v{"ctrl", "", "tapvm.new_mac=02:00:00:00:00:42", true, "ctrl-check"};
    HostPeer peer(v.name, 0);
    std::map<std::string, bool> tso_at;
    auto opt = options(peer, v, [&](const std::string& line) {
        for (const char* mark : {"ctrl-ready", "ctrl-offloads-off", "ctrl-offloads-on"})
            if (line.rfind(std::string("TAPVM-MARK ") + mark + " ", 0) == 0) tso_at[mark] = tap_tso_on(peer);
    });
    opt.args.insert(opt.args.begin(), {"--log-level", "debug"});
    auto run = run_tapvm(opt);
    report(run, "control queue");
    EXPECT_EQ(run.exit_status, 0) << run.errors;
    for (const auto& [name, r] : run.results) EXPECT_TRUE(r.pass) << name << ":" << r.details;
    for (const char* check : {"ctrl-offloads-off", "ctrl-offloads-on", "ctrl-mac-set", "ctrl-ping-new-mac",
                              "ctrl-promisc-on", "ctrl-promisc-off"})
        EXPECT_TRUE(run.results.count(check)) << "missing guest check " << check;
    // VIRTIO_NET_CTRL_GUEST_OFFLOADS_SET -> TUNSETOFFLOAD, seen on the tap.
    ASSERT_EQ(tso_at.size(), 3u) << "the guest did not reach every step";
    EXPECT_TRUE(tso_at["ctrl-ready"]) << "the driver's offloads were not on the tap";
    EXPECT_FALSE(tso_at["ctrl-offloads-off"]) << "rx-gro-hw off did not take TSO off the tap";
    EXPECT_TRUE(tso_at["ctrl-offloads-on"]) << "rx-gro-hw on did not put TSO back on the tap";
    // VIRTIO_NET_CTRL_MAC_ADDR_SET reached the device.
    EXPECT_NE(run.errors.find("guest set MAC 02:00:00:00:00:42"), std::string::npos) << run.errors;
    // Every command (these five, and the driver's own RX mode and MAC table
    // updates) was answered OK: the device's counters at exit (debug log).
    std::smatch m;
    ASSERT_TRUE(std::regex_search(run.errors, m, std::regex(R"re("ctrl":\{"commands":(\d+),"errors":(\d+))re")))
        << "no device counters at exit: " << run.errors;
    EXPECT_GE(std::stoi(m[1]), 5) << m[0];
    EXPECT_EQ(std::stoi(m[2]), 0) << m[0];
}

// Two cards on two taps: both bound to virtio_net, distinct MACs, traffic
// through each.
TEST_F(NetResilience, TwoNicsAtOnce) {
    Variant v{"twonics", "", "tapvm.ip2=10.0.3.15/24 tapvm.peer2=10.0.3.1", true, "selftest,second-nic,net-check"};
    HostPeer peer(v.name, 0);
    peer.netns().exec("ip tuntap add dev tap1 mode tap vnet_hdr");
    peer.netns().exec("ip addr add 10.0.3.1/24 dev tap1");
    peer.netns().exec("ip link set tap1 up");
    auto opt = options(peer, v);
    opt.args.insert(opt.args.end(), {"--net", "tap=tap1"});
    auto run = run_tapvm(opt);
    report(run, "two NICs");
    EXPECT_EQ(run.exit_status, 0) << run.errors;
    expect_tcp_both_ways(run, v.name, true);
    ASSERT_TRUE(run.results.count("virtio-net-driver"));
    EXPECT_EQ(field(run.results.at("virtio-net-driver"), "pci_functions"), "2");
    EXPECT_EQ(field(run.results.at("virtio-net-driver"), "bound"), "2");
    ASSERT_TRUE(run.results.count("second-nic"));
    const auto& second = run.results.at("second-nic");
    EXPECT_TRUE(second.pass) << second.details;
    EXPECT_NE(field(second, "mac"), field(second, "eth0_mac")) << second.details;
}

// A manager opens the tap and hands tapvm the fd (--net fd=3), as libvirt
// does; tapvm learns the tap with TUNGETIFF and traffic flows.
TEST_F(NetResilience, TapFdHandedOverByTheParent) {
    Variant v{"tapfd", "", "", true, "selftest,net-check"};
    HostPeer peer(v.name, 0);
    auto opt = options(peer, v);
    for (auto& a : opt.args)
        if (a == "tap=tap0") a = "fd=3";
    // The parent: opens /dev/net/tun, attaches to tap0 with IFF_VNET_HDR, puts
    // the fd at 3 and becomes tapvm.
    std::vector<std::string> args = {
        "-c",
        "import fcntl, os, struct, sys\n"
        "fd = os.open('/dev/net/tun', os.O_RDWR)\n"
        "fcntl.ioctl(fd, 0x400454ca, struct.pack('16sH', b'tap0', 0x0002 | 0x1000 | 0x4000))\n"
        "os.dup2(fd, 3)\n"
        "os.set_inheritable(3, True)\n"
        "os.execv(sys.argv[1], sys.argv[1:])\n",
        tapvm_binary()};
    args.insert(args.end(), opt.args.begin(), opt.args.end());
    opt.program = "/usr/bin/python3";
    opt.args = args;
    auto run = run_tapvm(opt);
    report(run, "tap fd handed over");
    EXPECT_EQ(run.exit_status, 0) << run.errors;
    expect_tcp_both_ways(run, v.name, true);
    EXPECT_NE(run.errors.find("tap0"), std::string::npos) << "TUNGETIFF did not name the tap: " << run.errors;
}

// SIGTERM or SIGINT while the guest runs: tapvm stops in order, the
// persistent tap loses the guest's offloads, and the terminal tapvm put in
// raw mode is as it was.
class NetSignals : public NetVariant {};

void stops_cleanly_on(NetSignals& test, int sig) {
    Variant v{sig == SIGTERM ? "sigterm" : "sigint", "", "tapvm.serve_secs=0", true, "selftest,net-server"};
    HostPeer peer(v.name, 0);
    Pty pty;
    termios before = pty.attributes();
    bool tso_while_running = false, raw_while_running = false;
    auto opt = test.options(peer, v, [&](const std::string& line) {
        if (line.rfind("TAPVM-MARK net-server-ready", 0) == 0) {
            tso_while_running = tap_tso_on(peer);
            raw_while_running = !(pty.attributes().c_lflag & ICANON);
            std::cout << "\n[tapvm-it] guest up: tap TSO " << (tso_while_running ? "on" : "off") << ", terminal "
                      << (raw_while_running ? "raw" : "cooked") << "\n";
        }
    });
    opt.stop_at = "TAPVM-MARK net-server-ready";
    opt.stop_signal = sig;
    opt.stdin_fd = pty.slave();
    auto run = run_tapvm(opt);
    report(run, std::string("stopped by ") + ::strsignal(sig));
    EXPECT_TRUE(run.stopped_at_marker) << "the guest never got its NIC up";
    EXPECT_EQ(run.exit_status, 0) << "not an orderly stop: " << run.errors;
    EXPECT_NE(run.errors.find("stopping the guest"), std::string::npos) << run.errors;
    EXPECT_TRUE(tso_while_running) << "the guest's offloads were never on the tap";
    EXPECT_TRUE(raw_while_running) << "tapvm did not put the terminal in raw mode";
    EXPECT_FALSE(tap_tso_on(peer)) << "tapvm left the guest's offloads on the persistent tap";
    EXPECT_EQ(peer.netns().exec("ip link show tap0 >/dev/null"), 0) << "the persistent tap is gone";
    termios after = pty.attributes();
    EXPECT_EQ(after.c_lflag, before.c_lflag) << "terminal not restored";
    EXPECT_EQ(after.c_iflag, before.c_iflag) << "terminal not restored";
    EXPECT_EQ(after.c_oflag, before.c_oflag) << "terminal not restored";
}

TEST_F(NetSignals, SigtermLeavesTheTapAndTerminalClean) { stops_cleanly_on(*this, SIGTERM); }
TEST_F(NetSignals, SigintLeavesTheTapAndTerminalClean) { stops_cleanly_on(*this, SIGINT); }

}  // namespace
}  // namespace tapvm::it
