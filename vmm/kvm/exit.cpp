#include "vmm/kvm/exit.h"

#include "vmm/uapi/kvm.h"
#include <spdlog/fmt/fmt.h>

#include <algorithm>

#include "vmm/kvm/overloaded.h"

namespace tapvm::kvm {

namespace {

// KVM writes PIO data at data_offset inside the mapping; size and count come
// from the instruction.  Check the whole range against the area before any
// span is made (the kernel is trusted, but a wrong offset must not become a
// wild pointer in a device).
VcpuExit parse_io(const kvm_run& run, std::span<uint8_t> area) {
    const auto& io = run.io;
    if (io.size != 1 && io.size != 2 && io.size != 4)
        return UnknownExit{KVM_EXIT_IO, fmt::format("port I/O of size {}", io.size)};
    if (io.count == 0) return UnknownExit{KVM_EXIT_IO, "port I/O with count 0"};
    uint64_t bytes = uint64_t{io.size} * io.count;  // cannot overflow: 4 * 2^32
    if (io.data_offset > area.size() || bytes > area.size() - io.data_offset)
        return UnknownExit{KVM_EXIT_IO, fmt::format("port I/O data [{:#x}, +{:#x}) outside the {:#x}-byte kvm_run area",
                                                    io.data_offset, bytes, area.size())};
    return IoExit{io.port, io.size, io.direction == KVM_EXIT_IO_OUT ? IoDirection::Out : IoDirection::In,
                  io.count, area.subspan(io.data_offset, bytes)};
}

VcpuExit parse_mmio(kvm_run& run) {
    auto& mmio = run.mmio;
    if (mmio.len == 0 || mmio.len > sizeof mmio.data)
        return UnknownExit{KVM_EXIT_MMIO, fmt::format("MMIO access of length {}", mmio.len)};
    return MmioExit{mmio.phys_addr, mmio.len, mmio.is_write != 0, std::span<uint8_t>(mmio.data, mmio.len)};
}

VcpuExit parse_system_event(const kvm_run& run) {
    SystemEventExit e{SystemEventType::Other, run.system_event.type};
    switch (run.system_event.type) {
        case KVM_SYSTEM_EVENT_SHUTDOWN: e.type = SystemEventType::Shutdown; break;
        case KVM_SYSTEM_EVENT_RESET: e.type = SystemEventType::Reset; break;
        case KVM_SYSTEM_EVENT_CRASH: e.type = SystemEventType::Crash; break;
        default: break;
    }
    return e;
}

VcpuExit parse_internal_error(const kvm_run& run) {
    const auto& internal = run.internal;
    InternalErrorExit e;
    e.suberror = internal.suberror;
    uint32_t n = std::min<uint32_t>(internal.ndata, std::size(internal.data));
    e.data.assign(internal.data, internal.data + n);
    // The emulation-failure overlay is ABI (kvm.h): flags (data[0]) then
    // insn_size and up to 15 bytes (data[1..2]), valid only when the flag
    // says so and ndata covers them.
    const auto& ef = run.emulation_failure;
    if (internal.suberror == KVM_INTERNAL_ERROR_EMULATION && n >= 3 &&
        (ef.flags & KVM_INTERNAL_ERROR_EMULATION_FLAG_INSTRUCTION_BYTES)) {
        uint8_t size = std::min<uint8_t>(ef.insn_size, sizeof ef.insn_bytes);
        e.instruction_bytes.assign(ef.insn_bytes, ef.insn_bytes + size);
    }
    return e;
}

std::string hex_words(const std::vector<uint64_t>& words) {
    std::string s;
    for (auto w : words) s += fmt::format("{}{:#x}", s.empty() ? "" : " ", w);
    return s;
}

}  // namespace

bool InternalErrorExit::is_emulation_failure() const { return suberror == KVM_INTERNAL_ERROR_EMULATION; }

VcpuExit parse_exit(std::span<uint8_t> area) {
    if (area.size() < sizeof(kvm_run))
        return UnknownExit{0, fmt::format("kvm_run area of {} bytes is too small", area.size())};
    auto& run = *reinterpret_cast<kvm_run*>(area.data());
    switch (run.exit_reason) {
        case KVM_EXIT_IO: return parse_io(run, area);
        case KVM_EXIT_MMIO: return parse_mmio(run);
        case KVM_EXIT_HLT: return HltExit{};
        case KVM_EXIT_SHUTDOWN: return ShutdownExit{};
        case KVM_EXIT_SYSTEM_EVENT: return parse_system_event(run);
        case KVM_EXIT_INTERNAL_ERROR: return parse_internal_error(run);
        case KVM_EXIT_FAIL_ENTRY:
            return FailEntryExit{run.fail_entry.hardware_entry_failure_reason, run.fail_entry.cpu};
        case KVM_EXIT_INTR: return InterruptedExit{};
        case KVM_EXIT_UNKNOWN:
            return UnknownExit{KVM_EXIT_UNKNOWN,
                               fmt::format("hardware exit reason {:#x}", run.hw.hardware_exit_reason)};
        default: return UnknownExit{run.exit_reason, "exit reason tapvm does not handle"};
    }
}

std::string describe(const VcpuExit& exit) {
    return std::visit(
        Overloaded{
            [](const IoExit& e) {
                return fmt::format("port I/O {} port {:#x} size {} count {}",
                                   e.direction == IoDirection::Out ? "out" : "in", e.port, e.size, e.count);
            },
            [](const MmioExit& e) {
                return fmt::format("MMIO {} {:#x} length {}", e.is_write ? "write" : "read", e.address,
                                   e.length);
            },
            [](const HltExit&) -> std::string { return "hlt"; },
            [](const ShutdownExit&) -> std::string { return "shutdown (triple fault)"; },
            [](const SystemEventExit& e) { return fmt::format("system event {}", e.raw_type); },
            [](const InternalErrorExit& e) {
                return fmt::format("internal error, suberror {}{}{}", e.suberror,
                                   e.data.empty() ? "" : ", data ", hex_words(e.data));
            },
            [](const FailEntryExit& e) {
                return fmt::format("entry failure, hardware reason {:#x} on host cpu {}", e.hardware_reason,
                                   e.cpu);
            },
            [](const InterruptedExit&) -> std::string { return "interrupted"; },
            [](const UnknownExit& e) { return fmt::format("exit reason {}: {}", e.reason, e.detail); },
        },
        exit);
}

}  // namespace tapvm::kvm
