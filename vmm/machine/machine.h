// A tapvm machine, assembled explicitly and top-down in machine.cpp: guest
// RAM and images first (so every usage error comes before any KVM state
// exists), then the VM, the platform devices, PCI and its cards, the vCPUs
// and the console.
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "vmm/machine/machine_config.h"
#include "vmm/machine/process_signals.h"

namespace tapvm {

// Why a machine stopped.
struct MachineExit {
    enum class Kind { kPowerOff, kReboot, kCrash, kFailure, kQuit };
    Kind kind = Kind::kPowerOff;
    std::string reason;
};

class Machine {
public:
    // Assembles everything; throws UsageError (exit 2) or Error (exit 1).
    explicit Machine(const MachineConfig& config);
    ~Machine();
    Machine(const Machine&) = delete;
    Machine& operator=(const Machine&) = delete;

    // Runs the guest until it powers off, reboots, crashes, or the user quits.
    MachineExit run();
    // From any thread: stop as if the user quit (run() returns kQuit).
    void request_stop(std::string reason);
    // From any thread: log each vCPU's registers and each NIC's counters
    // (SIGUSR1); the guest runs on.
    void request_state_report();

private:
    struct Parts;
    std::unique_ptr<Parts> parts_;
};

// Builds and runs machines (again after a reboot with --on-reboot restart);
// returns the process exit status.  `on_assembled` runs once the first
// machine is fully assembled, i.e. once no usage error can happen any more.
// With `signals`, SIGINT/SIGTERM/SIGHUP stop the running machine in order
// (exit status 0, no restart) and SIGUSR1 logs a state report.
int run_machine(const MachineConfig& config, const std::function<void()>& on_assembled = {},
                ProcessSignals* signals = nullptr);

// Exit status for a stop: 0 for power-off, reboot and user quit, 1 otherwise.
int exit_status(const MachineExit& exit);

}  // namespace tapvm
