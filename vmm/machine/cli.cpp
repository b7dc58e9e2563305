#include "vmm/machine/cli.h"

#include <CLI/CLI.hpp>
#include <cctype>
#include <charconv>
#include <fstream>

#include "vmm/error.h"
#include "vmm/machine/version.h"

namespace tapvm {

uint64_t parse_memory_size(const std::string& text) {
    const std::string what = "--memory '" + text + "'";
    uint64_t value = 0;
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (ec != std::errc() || end == text.data())
        throw UsageError(what + ": expected a size such as 512M or 4G");
    std::string unit(end, text.data() + text.size());
    for (auto& c : unit) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    if (unit.size() == 2 && unit[1] == 'B') unit.pop_back();   // "GB" == "G"
    if (unit.size() == 3 && unit.substr(1) == "IB") unit.resize(1);  // "GiB"
    unsigned shift = 0;
    if (unit.empty() || unit == "M") shift = 20;
    else if (unit == "K") shift = 10;
    else if (unit == "G") shift = 30;
    else if (unit == "T") shift = 40;
    else throw UsageError(what + ": unknown unit '" + std::string(end) + "' (use K, M, G or T)");
    if (value > (kMaxMemory >> shift)) throw UsageError(what + ": more than the 1T tapvm supports");
    uint64_t bytes = value << shift;
    if (bytes < kMinMemory) throw UsageError(what + ": a guest needs at least 64M");
    if (bytes % (1ull << 20)) throw UsageError(what + ": must be a whole number of MiB");
    return bytes;
}

namespace {

void require_readable(const std::string& option, const std::string& path) {
    std::ifstream f(path, std::ios::binary);
    if (!f) throw UsageError(option + " '" + path + "': cannot be read");
}

}  // namespace

std::variant<MachineConfig, CliInfo> parse_command_line(const std::vector<std::string>& args) {
    MachineConfig config;
    CLI::App app{"tapvm: a small KVM virtual machine monitor with a fast virtio-net card", "tapvm"};
    app.set_version_flag("--version", std::string("tapvm ") + version());
    app.get_formatter()->column_width(34);

    std::string memory = "512M";
    std::string quirks = "auto";
    std::string on_reboot = "exit";
    std::string initramfs;
    app.add_option("--kernel", config.kernel_path,
                   "Guest kernel: a bzImage (its payload is decompressed by tapvm) or an ELF vmlinux")
        ->required();
    app.add_option("--initramfs,--initrd", initramfs, "Initial ramdisk (cpio; gzip/xz/zstd compressed or not)");
    app.add_option("--cmdline,--append", config.cmdline, "Guest kernel command line")
        ->default_str(config.cmdline);
    app.add_option("--cpus,--smp", config.cpus, "Number of vCPUs (1-64)")->default_str("1");
    app.add_option("--memory,-m", memory, "Guest RAM, e.g. 512M, 4G (binary units; 64M-1T)")
        ->default_str(memory);
    app.add_option("--net", config.net_specs,
                   "A virtio-net card: tap=NAME|fd=N[,mac=..,mrg_rxbuf=on|off,csum=..,gso=..,"
                   "vnet_hdr=on|off|auto,mtu=N,queue_size=N,...] (repeatable; see README)")
        ->take_all();
    app.add_option("--platform-quirks", quirks,
                   "auto: on a nested PVM KVM append the guest kernel parameters it needs "
                   "(noxsave clearcpuid=... mitigations=off); on: always; off: never")
        ->check(CLI::IsMember({"auto", "on", "off"}))
        ->default_str("auto");
    app.add_option("--on-reboot", on_reboot, "What a guest reboot does: exit (status 0) or restart")
        ->check(CLI::IsMember({"exit", "restart"}))
        ->default_str("exit");
    app.add_option("--log-level", config.log_level, "trace, debug, info, warn, error, critical or off")
        ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error", "critical", "off"}))
        ->default_str("info");
    app.add_flag("!--no-console-escape", config.console_escape,
                 "Do not interpret Ctrl-A sequences on a terminal (Ctrl-A x quits, Ctrl-A h helps)");
    app.footer(
        "Exit status: 0 when the guest powers off or reboots; 1 on a guest crash (panic "
        "reported through pvpanic, triple fault) or a VMM failure; 2 on a usage error.");

    std::vector<std::string> reversed(args.rbegin(), args.rend());
    try {
        app.parse(reversed);
    } catch (const CLI::CallForHelp&) {
        return CliInfo{app.help()};
    } catch (const CLI::CallForVersion& v) {
        return CliInfo{std::string("tapvm ") + version() + "\n"};
    } catch (const CLI::ParseError& e) {
        std::string msg = e.what();
        throw UsageError(msg.empty() ? "invalid command line" : msg);
    }

    if (config.cpus < 1 || config.cpus > kMaxCpus)
        throw UsageError("--cpus " + std::to_string(config.cpus) + ": must be between 1 and " +
                         std::to_string(kMaxCpus));
    config.memory_bytes = parse_memory_size(memory);
    config.quirks = quirks == "on" ? PlatformQuirks::kOn
                    : quirks == "off" ? PlatformQuirks::kOff
                                      : PlatformQuirks::kAuto;
    config.on_reboot = on_reboot == "restart" ? RebootAction::kRestart : RebootAction::kExit;
    require_readable("--kernel", config.kernel_path);
    if (!initramfs.empty()) {
        require_readable("--initramfs", initramfs);
        config.initramfs_path = initramfs;
    }
    return config;
}

}  // namespace tapvm
