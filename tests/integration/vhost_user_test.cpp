// tapvm's virtio-net device driven by a real guest driver without /dev/kvm:
// QEMU, in software emulation (TCG), runs the guest and the virtio-pci
// transport, and hands the rings to tapvm-vhost-user-net over vhost-user.
// So the guest's own Linux virtio_net driver negotiates features with
// tapvm's VirtioNetDevice and moves real TCP traffic through its SplitQueue,
// RX/TX paths and TapDevice, into a tap in a namespace the test owns.
//
// What this covers that the KVM tests also cover: feature negotiation, both
// data paths with and without MRG_RXBUF and offloads, the vnet header
// straight through, driver reloads (device resets), queue sizes, MTU.  What
// it does not: tapvm's own virtio-pci transport, MSI-X and KVM plumbing
// (QEMU's are used), so it does not replace net_test.
//
// Needs qemu-system-x86_64 (scripts/setup.sh installs it) and /dev/net/tun;
// not /dev/kvm.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>

#include <fstream>
#include <optional>
#include <sstream>
#include <thread>

#include <nlohmann/json.hpp>

#include "net_peer.h"

namespace tapvm::it {
namespace {

constexpr const char* kQemu = "qemu-system-x86_64";

bool have_qemu() { return TestNetns::sh(std::string("command -v ") + kQemu + " >/dev/null") == 0; }

// tapvm-vhost-user-net running inside the peer's namespace, serving one
// frontend (--once); its stderr goes to a file the test reads afterwards.
class Backend {
public:
    Backend(const TestNetns& ns, const std::string& net_options)
        : socket_("/tmp/" + ns.name() + ".vhost-user.sock"), log_("/tmp/" + ns.name() + ".backend.log") {
        pid_ = ::fork();
        if (pid_ == 0) {
            int fd = ::open(log_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
            ::dup2(fd, 2);
            std::string net = "tap=tap0" + (net_options.empty() ? "" : "," + net_options);
            ::execlp("ip", "ip", "netns", "exec", ns.name().c_str(), TAPVM_VHOST_USER_BINARY, "--socket",
                     socket_.c_str(), "--net", net.c_str(), "--once", static_cast<char*>(nullptr));
            _exit(127);
        }
        // Listening once the socket exists (or the backend has died trying).
        for (int i = 0; i < 500 && ::access(socket_.c_str(), F_OK) != 0 && alive(); ++i)
            std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    ~Backend() {
        if (pid_ > 0 && !exited_) {
            ::kill(pid_, SIGTERM);
            wait();
        }
        ::unlink(log_.c_str());
    }
    bool alive() { return !exited_ && ::waitpid(pid_, &status_, WNOHANG) == 0; }
    // Exit status after the frontend left (--once) or SIGTERM.
    int wait() {
        if (!exited_) {
            if (alive()) ::waitpid(pid_, &status_, 0);
            exited_ = true;
        }
        return WIFEXITED(status_) ? WEXITSTATUS(status_) : 128 + WTERMSIG(status_);
    }
    std::string log() const {
        std::ifstream in(log_);
        std::stringstream s;
        s << in.rdbuf();
        return s.str();
    }
    // The counters it logs when it stops ("counters: {...}").
    nlohmann::json counters() const {
        const std::string text = log();
        const auto at = text.rfind("counters: ");
        if (at == std::string::npos) return {};
        const auto end = text.find('\n', at);
        return nlohmann::json::parse(text.substr(at + 10, end - at - 10), nullptr, false);
    }
    const std::string& socket() const { return socket_; }

private:
    std::string socket_, log_;
    pid_t pid_ = -1;
    int status_ = 0;
    bool exited_ = false;
};

struct Variant {
    std::string name;
    std::string backend_options;    // tapvm-vhost-user-net --net, after tap=tap0
    std::string device_properties;  // QEMU virtio-net-pci properties
    std::string guest_params;
    bool expect_tso = true;
    std::string roles = "selftest,net-check";
    unsigned mtu = 0;
    uint64_t features_on = 0;   // must be negotiated
    uint64_t features_off = 0;  // must not be
};

// virtio-net feature bits (virtio 1.2 §5.1.3) the variants look for.
constexpr uint64_t kCsum = 1ull << 0, kGuestCsum = 1ull << 1, kGuestTso4 = 1ull << 7, kGuestTso6 = 1ull << 8,
                   kHostTso4 = 1ull << 11, kHostTso6 = 1ull << 12, kMrgRxbuf = 1ull << 15,
                   kEventIdx = 1ull << 29, kVersion1 = 1ull << 32;
constexpr uint64_t kOffloads = kCsum | kGuestCsum | kGuestTso4 | kGuestTso6 | kHostTso4 | kHostTso6;

// The features the device ran with, from its "device running (..., features
// 0x...)" log line; nullopt if it never ran.
std::optional<uint64_t> negotiated_features(const std::string& log) {
    const auto at = log.rfind("device running");
    if (at == std::string::npos) return std::nullopt;
    const auto f = log.find("features 0x", at);
    if (f == std::string::npos) return std::nullopt;
    return std::stoull(log.substr(f + 11), nullptr, 16);
}

std::ostream& operator<<(std::ostream& os, const Variant& v) { return os << v.name; }

class VhostUserNet : public ::testing::TestWithParam<Variant> {
protected:
    void SetUp() override {
        TAPVM_REQUIRE_TUN();
        // Not a skip: setup.sh installs QEMU, so its absence is a broken set-up.
        ASSERT_TRUE(have_qemu()) << kQemu << " is missing: run scripts/setup.sh";
        std::string why;
        auto found = find_guest_image(why);
        ASSERT_TRUE(found) << why;
        image = *found;
    }

    GuestRun boot(const HostPeer& peer, const Backend& backend, const Variant& v,
                  std::function<void(const std::string&)> on_line = {}) {
        const std::string params = "tapvm.run=" + v.roles +
                                   " tapvm.expect_nic=1 tapvm.expect_cpus=2 tapvm.ip=10.0.2.15/24"
                                   " tapvm.peer=10.0.2.1 tapvm.secs=3 " + v.guest_params;
        RunOptions opt;
        opt.program = kQemu;
        opt.netns = peer.netns().name();
        // Two quirks of Debian's QEMU 7.2 under TCG, both QEMU's:
        // - -smp 2: with one vCPU, TCG 7.2 drops the guest's memory barriers
        //   (tcg_gen_mb emits nothing without CF_PARALLEL; later QEMU emits
        //   them always).  The virtio ring protocol needs them against a
        //   device in another process: without, a kick or interrupt decision
        //   can read a stale index and both queues stall (seen in about a
        //   third of the 1-vCPU runs).
        // - vectors=0: QEMU crashes in msix_set_vector_notifiers when it
        //   starts a vhost-user device under TCG with MSI-X; interrupts then
        //   go over INTx and QEMU's ISR.
        opt.args = {"-machine", "pc,accel=tcg,memory-backend=mem", "-cpu", "max", "-m", "1G", "-smp", "2",
                    "-nodefaults", "-no-user-config", "-nographic", "-no-reboot", "-serial", "stdio",
                    "-object", "memory-backend-memfd,id=mem,size=1G,share=on",
                    "-chardev", "socket,id=vu,path=" + backend.socket(),
                    "-netdev", "vhost-user,id=n0,chardev=vu",
                    "-device", "virtio-net-pci,netdev=n0,mac=52:54:00:12:34:56,vectors=0" + v.device_properties,
                    "-kernel", image.lean_kernel, "-initrd", image.lean_initramfs,
                    "-append", test_cmdline(params)};
        opt.silence_limit_seconds = 120;
        opt.on_line = std::move(on_line);
        return run_tapvm(opt);
    }

    GuestImage image;
};

TEST_P(VhostUserNet, GuestDriverMovesTcpBothWaysThroughTheDevice) {
    const Variant& v = GetParam();
    HostPeer peer("vu-" + v.name, v.mtu);
    Backend backend(peer.netns(), v.backend_options);
    ASSERT_TRUE(backend.alive()) << backend.log();
    auto run = boot(peer, backend, v);
    report(run, "vhost-user variant " + v.name);
    EXPECT_FALSE(run.watchdog_fired) << "the guest got stuck; backend log:\n" << backend.log();
    EXPECT_EQ(run.exit_status, 0) << run.errors;
    EXPECT_TRUE(run.has_mark("done"));
    const GuestTraffic traffic = expect_tcp_both_ways(run, v.name, v.expect_tso, v.mtu);
    if (v.roles.find("selftest") != std::string::npos)
        for (const char* check : {"nic", "virtio-net-driver", "offloads"})
            EXPECT_TRUE(run.results.count(check)) << "missing guest check " << check;

    // The frontend left: the backend ends by itself, cleanly.
    EXPECT_EQ(backend.wait(), 0) << backend.log();
    const nlohmann::json counters = backend.counters();
    ASSERT_TRUE(counters.is_object()) << backend.log();
    std::cout << "[tapvm-it] " << v.name << " device counters: " << counters.dump() << "\n";
    // Every payload byte the guest's TCP streams moved went through the
    // device (its counters also hold headers, pings and control traffic).
    EXPECT_GE(counters["tx"]["bytes"].get<double>(), traffic.sent);
    EXPECT_GE(counters["rx"]["bytes"].get<double>(), traffic.received);
    EXPECT_EQ(counters["needs_reset"].get<int>(), 0);
    const auto features = negotiated_features(backend.log());
    ASSERT_TRUE(features.has_value()) << backend.log();
    EXPECT_EQ(*features & v.features_on, v.features_on) << std::hex << *features;
    EXPECT_EQ(*features & v.features_off, 0u) << std::hex << *features;
    EXPECT_EQ(counters["rx"]["dropped"]["bad_chain"].get<int>(), 0);
    EXPECT_EQ(counters["tx"]["dropped"]["tap_error"].get<int>(), 0);
    if (v.roles.find("net-reload") != std::string::npos) {
        ASSERT_TRUE(run.results.count("net-reload"));
        // Each reload is a device reset and a fresh start over vhost-user.
        const std::string log = backend.log();
        size_t starts = 0;
        for (size_t at = 0; (at = log.find("device running", at)) != std::string::npos; ++at) ++starts;
        EXPECT_GE(starts, 4u) << log;
    }
}

INSTANTIATE_TEST_SUITE_P(
    Variants, VhostUserNet,
    ::testing::Values(
        Variant{"default", "", "", "", true, "selftest,net-check", 0, kVersion1 | kEventIdx | kMrgRxbuf | kOffloads},
        Variant{"mrgrxbuf_off", "mrg_rxbuf=off", "", "", true, "selftest,net-check", 0, kOffloads, kMrgRxbuf},
        Variant{"offloads_off", "csum=off,guest_csum=off,gso=off", "", "", false, "selftest,net-check", 0,
                kMrgRxbuf, kOffloads},
        Variant{"vnethdr_off", "vnet_hdr=off", "", "", false, "selftest,net-check", 0, kMrgRxbuf, kOffloads},
        // The legacy driver negotiates no VERSION_1: the device's 10/12-byte
        // legacy header rules apply.
        Variant{"legacy", "", "", "virtio_pci.force_legacy=1", true, "selftest,net-check", 0, kMrgRxbuf,
                kVersion1},
        Variant{"queue1024", "queue_size=1024", ",rx_queue_size=1024,tx_queue_size=1024", "", true,
                "selftest,net-check", 0, kMrgRxbuf},
        Variant{"mtu9000", "mtu=9000", ",host_mtu=9000", "", true, "selftest,net-check", 9000, kMrgRxbuf},
        Variant{"reload", "", "", "tapvm.reloads=3", true, "net-reload,net-check", 0, kMrgRxbuf}),
    [](const auto& info) { return info.param.name; });

// The tap goes down and up under traffic, then disappears: packets are
// lost, the device process is not; the guest still finishes and powers off,
// and the backend ends cleanly when the frontend leaves.
class VhostUserResilience : public VhostUserNet {};

TEST_F(VhostUserResilience, TapDownUpAndDeletedCostPacketsNotTheDevice) {
    Variant v{"tapflap", "", "", "tapvm.secs=8", true, "net-check"};
    HostPeer peer("vu-" + v.name, 0);
    Backend backend(peer.netns(), v.backend_options);
    ASSERT_TRUE(backend.alive()) << backend.log();
    TapFlapper flapper(peer);
    auto run = boot(peer, backend, v, [&](const std::string& line) { flapper.on_line(line); });
    report(run, "vhost-user tap down/up/deleted");
    EXPECT_FALSE(run.watchdog_fired) << backend.log();
    EXPECT_EQ(run.exit_status, 0) << run.errors;
    EXPECT_TRUE(run.has_mark("done"));
    EXPECT_TRUE(run.results.count("ping") && run.results.at("ping").pass);
    EXPECT_EQ(backend.wait(), 0) << "the device process did not survive the tap going away:\n" << backend.log();
}

}  // namespace
}  // namespace tapvm::it
