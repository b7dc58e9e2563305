// The host side of a guest's network link and the checks on what the guest
// runner reports about it: shared by the tapvm (net_test) and the vhost-user
// (vhost_user_test) integration tests.
#pragma once

#include <gtest/gtest.h>

#include <cstdlib>
#include <regex>
#include <string>
#include <thread>

#include "guest_harness.h"

namespace tapvm::it {

// "key=value" out of a result's details; empty if absent.
inline std::string field(const GuestResult& r, const std::string& key) {
    std::smatch m;
    std::regex re("(^|\\s)" + key + "=(\\S+)");
    return std::regex_search(r.details, m, re) ? m[2].str() : "";
}

inline double number(const GuestResult& r, const std::string& key) {
    std::string v = field(r, key);
    return v.empty() ? -1 : std::atof(v.c_str());
}

// tap0 (10.0.2.1/24) inside a private namespace, with iperf3 and netserver
// listening there.  Everything is torn down on destruction, whatever the
// test did.
class HostPeer {
public:
    explicit HostPeer(const std::string& tag, unsigned mtu) : ns_(tag) {
        ns_.exec("ip tuntap add dev tap0 mode tap vnet_hdr");
        ns_.exec("ip addr add 10.0.2.1/24 dev tap0");
        if (mtu) ns_.exec("ip link set tap0 mtu " + std::to_string(mtu));
        ns_.exec("ip link set tap0 up");
        ns_.exec("iperf3 -s -D --pidfile /tmp/" + ns_.name() + ".iperf3.pid");
        ns_.exec("netserver -p 12865 >/dev/null 2>&1");
    }
    ~HostPeer() {
        // Deleting a namespace does not end the processes in it.
        TestNetns::sh("ip netns pids " + ns_.name() + " | xargs -r kill 2>/dev/null");
        TestNetns::sh("rm -f /tmp/" + ns_.name() + ".iperf3.pid");
    }
    const TestNetns& netns() const { return ns_; }

private:
    TestNetns ns_;
};

// Floods the peer's tap with minimum-size broadcast frames (60 bytes, a
// local experimental EtherType the guest's stack counts and drops), as
// fast as one process can send them, until stopped or destroyed.
class SmallFrameFlood {
public:
    explicit SmallFrameFlood(const HostPeer& peer, std::string tap = "tap0") : peer_(peer), tap_(std::move(tap)) {}
    ~SmallFrameFlood() { stop(); }
    SmallFrameFlood(const SmallFrameFlood&) = delete;
    SmallFrameFlood& operator=(const SmallFrameFlood&) = delete;

    void start() {
        if (pid_ > 0) return;
        const std::string script =
            "import socket\n"
            "s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)\n"
            "s.bind(('" + tap_ + "', 0))\n"
            "frame = b'\\xff' * 6 + bytes.fromhex('020000000001') + b'\\x88\\xb5' + bytes(46)\n"
            "while True:\n"
            "    try:\n"
            "        s.send(frame)\n"
            "    except OSError:\n"
            "        pass\n";
        pid_ = ::fork();
        if (pid_ == 0) {
            ::execlp("ip", "ip", "netns", "exec", peer_.netns().name().c_str(), "python3", "-c", script.c_str(),
                     static_cast<char*>(nullptr));
            ::_exit(127);
        }
    }
    // True while the flooding process runs.
    bool running() {
        if (pid_ > 0 && ::waitpid(pid_, nullptr, WNOHANG) == pid_) pid_ = -1;  // it ended (and is reaped)
        return pid_ > 0;
    }
    void stop() {
        if (pid_ <= 0) return;
        ::kill(pid_, SIGKILL);
        ::waitpid(pid_, nullptr, 0);
        pid_ = -1;
    }

private:
    const HostPeer& peer_;
    std::string tap_;
    pid_t pid_ = -1;
};

// Follows the guest console and takes the peer's tap away under the guest:
// down and up while iperf3 sends (3 s after the ping check), deleted once
// the last traffic check is done (a TCP connect to a vanished peer would
// take minutes to give up, which says nothing about the device).
class TapFlapper {
public:
    explicit TapFlapper(const HostPeer& peer) : peer_(peer) {}
    ~TapFlapper() {
        if (thread_.joinable()) thread_.join();
    }
    void on_line(const std::string& line) {
        if (line.find("TAPVM-RESULT ping") == 0 && !thread_.joinable()) {
            thread_ = std::thread([this] {
                std::this_thread::sleep_for(std::chrono::seconds(3));
                peer_.netns().exec("ip link set tap0 down");
                std::this_thread::sleep_for(std::chrono::seconds(2));
                peer_.netns().exec("ip link set tap0 up");
            });
        }
        if (line.find("TAPVM-RESULT netperf-maerts") == 0) peer_.netns().exec("ip link del tap0");
    }

private:
    const HostPeer& peer_;
    std::thread thread_;
};

// Every check the guest ran passed, net-check's are all there (the MTU
// the driver took from the device's config, when given); TCP moved both ways
// and what one end sent, the other received.  Returns the payload bytes the guest sent and
// received (iperf3 + netperf), for cross-checks against device counters.
struct GuestTraffic {
    double sent = 0, received = 0;
};

inline GuestTraffic expect_tcp_both_ways(const GuestRun& run, const std::string& variant, bool expect_tso,
                                         unsigned mtu = 0) {
    GuestTraffic traffic;
    for (const auto& [name, r] : run.results) EXPECT_TRUE(r.pass) << name << ":" << r.details;
    for (const char* check : {"net-config", "ping", "iperf3-tx", "iperf3-rx", "netperf-stream", "netperf-maerts",
                              "net-counters"}) {
        EXPECT_TRUE(run.results.count(check)) << "missing guest check " << check;
    }
    if (mtu && run.results.count("net-config"))
        EXPECT_EQ(field(run.results.at("net-config"), "mtu"), std::to_string(mtu))
            << run.results.at("net-config").details;
    // The tools count each end at its own moment: what was in flight when
    // the timer ended shows on one side only (iperf3's receiver counts less,
    // netperf's receiver sometimes a few KB more than its sender reports).
    // So the two ends must agree to within 10%, not to the byte.
    auto expect_delivered = [&](const std::string& what, double sent, double received) {
        EXPECT_GT(received, 0) << what;
        EXPECT_GE(received, 0.9 * sent) << what << ": far more sent than received";
        EXPECT_LE(received, 1.1 * sent) << what << ": far more received than sent";
    };
    for (const char* dir : {"iperf3-tx", "iperf3-rx"}) {
        if (!run.results.count(dir)) continue;
        const auto& r = run.results.at(dir);
        expect_delivered(std::string(dir) + r.details, number(r, "sent_bytes"), number(r, "received_bytes"));
        (std::string(dir) == "iperf3-tx" ? traffic.sent : traffic.received) += number(r, "received_bytes");
        std::cout << "[tapvm-it] " << variant << " " << dir << " " << field(r, "sent_mbps") << " Mbit/s\n";
    }
    for (const char* test : {"netperf-stream", "netperf-maerts"}) {
        if (!run.results.count(test)) continue;
        const auto& r = run.results.at(test);
        const bool tx = std::string(test) == "netperf-stream";
        // stream: local sent, remote received; maerts: remote sent, local received.
        const double sent = number(r, tx ? "local_bytes" : "remote_bytes");
        const double received = number(r, tx ? "remote_bytes" : "local_bytes");
        expect_delivered(std::string(test) + r.details, sent, received);
        (tx ? traffic.sent : traffic.received) += received;
        std::cout << "[tapvm-it] " << variant << " " << test << " " << field(r, "mbps") << " Mbit/s\n";
    }
    if (run.results.count("offloads")) {
        std::string tso = field(run.results.at("offloads"), "tcp-segmentation-offload");
        EXPECT_EQ(tso, expect_tso ? "on" : "off") << run.results.at("offloads").details;
    }
    return traffic;
}

}  // namespace tapvm::it
