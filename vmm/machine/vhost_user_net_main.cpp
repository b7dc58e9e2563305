// tapvm-vhost-user-net: tapvm's virtio-net device and tap backend served to
// another VMM over vhost-user.  The frontend (QEMU, Cloud Hypervisor, ...)
// runs the guest and the virtio-pci transport; this process runs the
// device's data path: the same SplitQueue, RxPath/TxPath and TapDevice that
// tapvm itself uses, on rings in the memory the frontend shares.
//
//   tapvm-vhost-user-net --socket /run/vnet0.sock --net tap=tap0[,mrg_rxbuf=off,...]
//   qemu-system-x86_64 ... -object memory-backend-memfd,id=mem,size=1G,share=on
//       -machine memory-backend=mem -chardev socket,id=vu,path=/run/vnet0.sock
//       -netdev vhost-user,id=n0,chardev=vu -device virtio-net-pci,netdev=n0
//
// The control queue stays with the frontend (vhost-user never forwards it),
// so ctrl_vq and its features are not offered here.  legacy=off refuses
// drivers without VERSION_1, as it does in tapvm.
//
// SIGUSR1 logs the device's counters (JSON) without stopping anything.
//
// Exit status: 0 after SIGINT/SIGTERM (or, with --once, after the frontend
// left); 1 on a failure; 2 on a usage error (one line on stderr).
#include <sys/resource.h>
#include <sys/signalfd.h>

#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>
#include <atomic>
#include <csignal>
#include <thread>
#include <cstdio>
#include <iostream>

#include "net/net_features.h"
#include "net/net_options.h"
#include "net/virtio_net_factory.h"
#include "virtio/vhost_user/vhost_user_backend.h"
#include "virtio/vhost_user/vhost_user_server.h"
#include "vmm/error.h"
#include "vmm/machine/version.h"

namespace {

struct Config {
    std::string socket_path;
    std::string net_spec;
    std::string log_level = "info";
    bool once = false;
};

// Parses argv; nullopt after --help/--version (already printed).
std::optional<Config> parse(int argc, char** argv) {
    Config config;
    CLI::App app{"tapvm-vhost-user-net: tapvm's virtio-net device on a tap, served over vhost-user",
                 "tapvm-vhost-user-net"};
    app.set_version_flag("--version", std::string("tapvm-vhost-user-net ") + tapvm::version());
    app.add_option("--socket", config.socket_path, "Unix socket to listen on for the vhost-user frontend")
        ->required();
    app.add_option("--net", config.net_spec,
                   "The tap and device switches, as tapvm's --net: tap=NAME|fd=N[,mrg_rxbuf=on|off,"
                   "csum=..,gso=..,vnet_hdr=..,queue_size=N,...]")
        ->required();
    app.add_flag("--once", config.once, "Exit when the first frontend disconnects");
    app.add_option("--log-level", config.log_level, "trace, debug, info, warn, error, critical or off")
        ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error", "critical", "off"}))
        ->default_str("info");
    try {
        app.parse(argc, argv);
    } catch (const CLI::CallForHelp&) {
        std::cout << app.help();
        return std::nullopt;
    } catch (const CLI::CallForVersion&) {
        std::cout << "tapvm-vhost-user-net " << tapvm::version() << "\n";
        return std::nullopt;
    } catch (const CLI::ParseError& e) {
        throw tapvm::UsageError(e.what());
    }
    return config;
}

// SIGINT/SIGTERM/SIGHUP as a readable fd; blocked first, so every thread
// started later (the device's I/O thread) inherits the mask.
tapvm::UniqueFd stop_signals() {
    sigset_t set;
    sigemptyset(&set);
    for (int sig : {SIGINT, SIGTERM, SIGHUP, SIGUSR1}) sigaddset(&set, sig);
    if (pthread_sigmask(SIG_BLOCK, &set, nullptr) != 0) tapvm::throw_errno("sigprocmask");
    sigdelset(&set, SIGUSR1);  // that one is the counter reporter's
    tapvm::UniqueFd fd(::signalfd(-1, &set, SFD_CLOEXEC));
    if (!fd) tapvm::throw_errno("signalfd");
    return fd;
}

// Logs the counters on each SIGUSR1 until destroyed.
class CounterReporter {
public:
    explicit CounterReporter(const tapvm::net::VirtioNetDevice& device)
        : thread_([this, &device] {
              sigset_t set;
              sigemptyset(&set);
              sigaddset(&set, SIGUSR1);
              for (;;) {
                  int sig = 0;
                  if (sigwait(&set, &sig) != 0 || done_) return;
                  spdlog::info("counters: {}", device.stats_json().dump());
              }
          }) {}
    ~CounterReporter() {
        done_ = true;
        pthread_kill(thread_.native_handle(), SIGUSR1);
        thread_.join();
    }

private:
    std::atomic<bool> done_{false};
    std::thread thread_;
};

}  // namespace

int main(int argc, char** argv) {
    std::signal(SIGPIPE, SIG_IGN);
    std::optional<Config> config;
    tapvm::net::NetOptions options;
    try {
        config = parse(argc, argv);
        if (!config) return 0;
        options = tapvm::net::parse_net_options(config->net_spec);
    } catch (const tapvm::UsageError& e) {
        std::fprintf(stderr, "tapvm-vhost-user-net: %s\n", e.what());
        return 2;
    }
    auto sink = std::make_shared<spdlog::sinks::stderr_color_sink_mt>();
    sink->set_pattern("tapvm-vhost-user-net: %^%l%$: %v");
    spdlog::set_default_logger(std::make_shared<spdlog::logger>("tapvm", sink));
    spdlog::set_level(spdlog::level::from_str(config->log_level));

    // The frontend keeps the control queue.  (legacy= still decides whether
    // a driver without VERSION_1 is served: the frontend's transitional
    // device lets one through.)
    options.features &= ~(tapvm::net::bit(tapvm::net::kFCtrlVq) | tapvm::net::kCtrlVqFeatures);
    try {
        auto stop = stop_signals();
        auto device = tapvm::net::create_virtio_net(options);
        tapvm::virtio::vhost_user::VhostUserBackend backend(*device);
        device->on_needs_reset = [&backend] { backend.report_ring_error(); };
        CounterReporter reporter(*device);
        tapvm::virtio::vhost_user::VhostUserServer server(config->socket_path);
        spdlog::info("listening on {} for a vhost-user frontend (tap {})", server.path(), device->tap().name());
        server.serve(backend, stop.get(), config->once);
        spdlog::info("counters: {}", device->stats_json().dump());
        rusage usage{};
        ::getrusage(RUSAGE_SELF, &usage);  // every thread, the data path's included
        spdlog::info("cpu: {:.2f} s user, {:.2f} s system",
                     usage.ru_utime.tv_sec + usage.ru_utime.tv_usec / 1e6,
                     usage.ru_stime.tv_sec + usage.ru_stime.tv_usec / 1e6);
        return 0;
    } catch (const tapvm::UsageError& e) {
        std::fprintf(stderr, "tapvm-vhost-user-net: %s\n", e.what());
        return 2;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "tapvm-vhost-user-net: %s\n", e.what());
        return 1;
    }
}
