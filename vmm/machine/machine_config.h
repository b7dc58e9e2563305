// Everything the user asked for, parsed and validated: the input of machine
// assembly.  Produced by the command line (cli.h); nothing here touches KVM.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace tapvm {

enum class PlatformQuirks { kAuto, kOn, kOff };
enum class RebootAction { kExit, kRestart };

struct MachineConfig {
    std::string kernel_path;
    std::optional<std::string> initramfs_path;
    std::string cmdline = "console=ttyS0";
    unsigned cpus = 1;
    uint64_t memory_bytes = 512ull << 20;
    std::vector<std::string> net_specs;       // raw --net values, parsed by net/
    PlatformQuirks quirks = PlatformQuirks::kAuto;
    RebootAction on_reboot = RebootAction::kExit;
    std::string log_level = "info";
    bool console_escape = true;               // Ctrl-A x when stdin is a TTY
    // Set by run_machine for a machine started again after a guest reboot:
    // what the first machine began (a pcap capture) is continued, not redone.
    bool restarted = false;
};

}  // namespace tapvm
