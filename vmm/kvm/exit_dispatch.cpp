#include "vmm/kvm/exit_dispatch.h"

#include "vmm/uapi/kvm.h"
#include <spdlog/spdlog.h>

#include <algorithm>

#include "vmm/kvm/overloaded.h"

namespace tapvm::kvm {

void UnclaimedAccessLog::record(AddressSpace space, uint64_t address, size_t size, bool is_write) {
    (is_write ? writes_ : reads_).fetch_add(1, std::memory_order_relaxed);
    std::lock_guard lock(mutex_);
    if (logged_.size() >= kMaxLoggedAddresses || !logged_.emplace(space, address).second) return;
    spdlog::info("unclaimed {} {} of {} byte(s) at {:#x}: {}{}", space == AddressSpace::Pio ? "port I/O" : "MMIO",
                 is_write ? "write" : "read", size, address,
                 is_write ? "dropped" : "reads as all-ones",
                 logged_.size() == kMaxLoggedAddresses ? " (further unclaimed addresses are counted, not logged)"
                                                       : "");
}

namespace {

ExitAction dispatch_io(const IoExit& io, Buses& buses) {
    // `rep ins/outs` reaches us as count elements of `size` bytes, all for
    // the same port (api.rst, KVM_EXIT_IO); a device sees them one by one,
    // exactly as if the guest had executed count single instructions.
    for (uint32_t i = 0; i < io.count; ++i) {
        auto element = io.data.subspan(size_t{i} * io.size, io.size);
        if (io.direction == IoDirection::Out) {
            if (!buses.pio.write(io.port, element))
                buses.unclaimed.record(AddressSpace::Pio, io.port, io.size, true);
        } else if (!buses.pio.read(io.port, element)) {
            std::fill(element.begin(), element.end(), 0xff);
            buses.unclaimed.record(AddressSpace::Pio, io.port, io.size, false);
        }
    }
    return Continue{};
}

ExitAction dispatch_mmio(const MmioExit& mmio, Buses& buses) {
    if (mmio.is_write) {
        if (!buses.mmio.write(mmio.address, mmio.data))
            buses.unclaimed.record(AddressSpace::Mmio, mmio.address, mmio.length, true);
    } else if (!buses.mmio.read(mmio.address, mmio.data)) {
        std::fill(mmio.data.begin(), mmio.data.end(), 0xff);
        buses.unclaimed.record(AddressSpace::Mmio, mmio.address, mmio.length, false);
    }
    return Continue{};
}

ExitAction dispatch_system_event(const SystemEventExit& e) {
    switch (e.type) {
        case SystemEventType::Shutdown: return GuestPowerOff{};
        case SystemEventType::Reset: return GuestReboot{};
        case SystemEventType::Crash: return GuestCrash{"the guest reported a crash (KVM_SYSTEM_EVENT_CRASH)"};
        case SystemEventType::Other: break;
    }
    if (e.raw_type == KVM_SYSTEM_EVENT_SEV_TERM)
        return GuestCrash{"the guest asked to be terminated (KVM_SYSTEM_EVENT_SEV_TERM)"};
    // WAKEUP and SUSPEND only arrive after capabilities tapvm never enables.
    return Fatal{"unexpected KVM system event " + std::to_string(e.raw_type)};
}

std::string_view internal_error_name(uint32_t suberror) {
    switch (suberror) {
        case KVM_INTERNAL_ERROR_EMULATION: return "instruction emulation failed";
        case KVM_INTERNAL_ERROR_SIMUL_EX: return "simultaneous exceptions";
        case KVM_INTERNAL_ERROR_DELIVERY_EV: return "exit while delivering an event";
        case KVM_INTERNAL_ERROR_UNEXPECTED_EXIT_REASON: return "unexpected hardware exit reason";
        default: return "unknown suberror";
    }
}

}  // namespace

ExitAction dispatch_exit(const VcpuExit& exit, Buses& buses) {
    return std::visit(
        Overloaded{
            [&](const IoExit& io) { return dispatch_io(io, buses); },
            [&](const MmioExit& mmio) { return dispatch_mmio(mmio, buses); },
            // Only reaches userspace without an in-kernel LAPIC (tapvm always
            // creates one), where nothing could ever wake the vCPU again: the
            // guest has stopped, as Firecracker also treats it.
            [](const HltExit&) -> ExitAction { return GuestPowerOff{}; },
            // Hardware resets on a triple fault.  A Linux guest reaches one only
            // after the ACPI reset register and the keyboard controller (both
            // offered by tapvm) failed to reset it, or by crashing while handling
            // an exception, so it is reported as a crash with its cause.
            [](const ShutdownExit&) -> ExitAction {
                return GuestCrash{"triple fault (KVM_EXIT_SHUTDOWN): the guest faulted while handling a fault"};
            },
            [](const SystemEventExit& e) { return dispatch_system_event(e); },
            [&](const InternalErrorExit& e) -> ExitAction {
                return Fatal{fmt::format("KVM internal error: {} — {}", internal_error_name(e.suberror),
                                         describe(exit))};
            },
            [&](const FailEntryExit&) -> ExitAction {
                return Fatal{"KVM could not enter the guest: " + describe(exit)};
            },
            [](const InterruptedExit&) -> ExitAction { return Continue{}; },
            [&](const UnknownExit&) -> ExitAction { return Fatal{"unexpected vCPU exit: " + describe(exit)}; },
        },
        exit);
}

}  // namespace tapvm::kvm
