// What a vCPU thread does after an exit: keep running, or stop the machine
// for one of a few reasons.  The first non-Continue action of any vCPU ends
// the machine (see vcpu_thread.h).
#pragma once

#include <string>
#include <variant>

namespace tapvm::kvm {

struct Continue {
    bool operator==(const Continue&) const = default;
};
// The guest asked to be switched off (ACPI S5, KVM_SYSTEM_EVENT_SHUTDOWN).
struct GuestPowerOff {
    bool operator==(const GuestPowerOff&) const = default;
};
// The guest asked to be reset (ACPI reset register, keyboard controller).
struct GuestReboot {
    bool operator==(const GuestReboot&) const = default;
};
// The guest stopped itself abnormally (triple fault, panic notifier).
struct GuestCrash {
    std::string reason;
    bool operator==(const GuestCrash&) const = default;
};
// tapvm cannot go on (a KVM failure, an exit it cannot complete).
struct Fatal {
    std::string message;
    bool operator==(const Fatal&) const = default;
};

using ExitAction = std::variant<Continue, GuestPowerOff, GuestReboot, GuestCrash, Fatal>;

inline bool is_continue(const ExitAction& a) { return std::holds_alternative<Continue>(a); }

// "power off", "reboot", "guest crash: <reason>", "fatal: <message>", "continue".
std::string describe(const ExitAction& a);

}  // namespace tapvm::kvm
