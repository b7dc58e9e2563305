// A vCPU exit, parsed out of the shared kvm_run area into a plain value.
//
// Parsing is separate from handling so that tests (and the dispatcher in
// exit_dispatch.h) work on values instead of a kernel structure.  The data
// spans of Io and Mmio exits point INTO the kvm_run area: a handler fills them
// for reads (IN, MMIO read) and KVM completes the instruction from them on
// the next KVM_RUN (api.rst, KVM_EXIT_IO / KVM_EXIT_MMIO).
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <variant>
#include <vector>

namespace tapvm::kvm {

enum class IoDirection { In, Out };

// Port I/O; count > 1 for `rep ins/outs`, data holds size * count bytes.
struct IoExit {
    uint16_t port = 0;
    uint8_t size = 0;  // 1, 2 or 4
    IoDirection direction = IoDirection::In;
    uint32_t count = 0;
    std::span<uint8_t> data;
};

struct MmioExit {
    uint64_t address = 0;
    uint32_t length = 0;  // 1..8
    bool is_write = false;
    std::span<uint8_t> data;  // length bytes
};

// Only without an in-kernel LAPIC; tapvm always has one.
struct HltExit {};

// Triple fault: the guest hit an exception while delivering a double fault.
struct ShutdownExit {};

enum class SystemEventType { Shutdown, Reset, Crash, Other };
struct SystemEventExit {
    SystemEventType type = SystemEventType::Other;
    uint32_t raw_type = 0;  // KVM_SYSTEM_EVENT_*
};

struct InternalErrorExit {
    uint32_t suberror = 0;  // KVM_INTERNAL_ERROR_*
    std::vector<uint64_t> data;
    // Instruction bytes KVM's emulator fetched, when it reported them
    // (KVM_INTERNAL_ERROR_EMULATION_FLAG_INSTRUCTION_BYTES); often empty.
    std::vector<uint8_t> instruction_bytes;
    bool is_emulation_failure() const;
};

struct FailEntryExit {
    uint64_t hardware_reason = 0;
    uint32_t cpu = 0;
};

// KVM_RUN stopped for a signal or immediate_exit (KVM_EXIT_INTR).
struct InterruptedExit {};

// An exit reason tapvm did not ask for, or a malformed one.
struct UnknownExit {
    uint32_t reason = 0;
    std::string detail;
};

using VcpuExit = std::variant<IoExit, MmioExit, HltExit, ShutdownExit, SystemEventExit,
                              InternalErrorExit, FailEntryExit, InterruptedExit, UnknownExit>;

// Parses the kvm_run area of one vCPU: all of its KVM_GET_VCPU_MMAP_SIZE
// bytes, since PIO data lives past struct kvm_run.  Offsets and sizes that
// KVM reports are checked against the area; a bad one yields UnknownExit.
// The area must be 8-byte aligned (an mmap always is).
VcpuExit parse_exit(std::span<uint8_t> run_area);

// One line for logs and error messages.
std::string describe(const VcpuExit& exit);

}  // namespace tapvm::kvm
