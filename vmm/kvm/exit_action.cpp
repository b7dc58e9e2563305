#include "vmm/kvm/exit_action.h"

#include "vmm/kvm/overloaded.h"

namespace tapvm::kvm {

std::string describe(const ExitAction& a) {
    return std::visit(Overloaded{
                          [](const Continue&) -> std::string { return "continue"; },
                          [](const GuestPowerOff&) -> std::string { return "power off"; },
                          [](const GuestReboot&) -> std::string { return "reboot"; },
                          [](const GuestCrash& c) { return "guest crash: " + c.reason; },
                          [](const Fatal& f) { return "fatal: " + f.message; },
                      },
                      a);
}

}  // namespace tapvm::kvm
