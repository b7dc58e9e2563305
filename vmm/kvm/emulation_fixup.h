// Completing instructions KVM's emulator gives up on.
//
// On the nested pagetable-based KVM (PLATFORM.md) guest kernel code is
// emulated, and the emulator fails on some instructions with
// KVM_EXIT_INTERNAL_ERROR / KVM_INTERNAL_ERROR_EMULATION.  Two of them are
// simple enough to finish from userspace, and Linux cannot boot without
// them: `int3` (RIP past it, then #BP injected), `fwait` (a no-op unless
// an x87 exception is pending), and `ldmxcsr`/`stmxcsr` m32 (the kernel's
// kernel_fpu_begin() loads MXCSR from the stack; the operand's address is
// decoded here and the value moved through KVM_GET_FPU/KVM_SET_FPU).  Every other one stops the guest with its
// bytes, RIP and CPL and, when it is a known culprit, the kernel parameter
// that keeps the guest away from it.
//
// The decision is one table-driven pure function, decide_fixup(bytes,
// context); complete_emulation_failure() is the thin part that reads the
// vCPU, fetches the bytes through KVM_TRANSLATE and applies the decision.
// On hardware KVM none of these exits happen; the code stays correct there.
#pragma once

#include "vmm/uapi/kvm.h"

#include <array>
#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <variant>
#include <vector>

#include "vmm/guest_memory.h"
#include "vmm/kvm/exit.h"
#include "vmm/kvm/exit_action.h"

namespace tapvm::kvm {

class KvmVcpu;

inline constexpr size_t kMaxInstructionLength = 15;  // SDM vol. 2A §2.3.11

// Move RIP past the instruction: it has been completed.
struct AdvanceRip {
    uint8_t length = 0;
    bool operator==(const AdvanceRip&) const = default;
};
// Inject a hardware exception.  `advance` > 0 for a trap (RIP moves past the
// instruction first: #BP), 0 for a fault (RIP stays on it: #NM, #MF).
struct InjectException {
    uint8_t vector = 0;
    uint8_t advance = 0;
    bool operator==(const InjectException&) const = default;
};
// tapvm cannot complete it.
struct StopGuest {
    std::string message;
    bool operator==(const StopGuest&) const = default;
};
// LDMXCSR / STMXCSR m32: move MXCSR from / to the 4 bytes at `linear`, then
// RIP += length.  A load with reserved bits set raises #GP(0) instead.
struct MxcsrAccess {
    bool load = true;
    uint64_t linear = 0;
    uint8_t length = 0;
    bool operator==(const MxcsrAccess&) const = default;
};
using FixupAction = std::variant<AdvanceRip, InjectException, StopGuest, MxcsrAccess>;

inline constexpr uint8_t kVectorNm = 7;   // device not available
inline constexpr uint8_t kVectorBp = 3;   // breakpoint
inline constexpr uint8_t kVectorMf = 16;  // x87 floating-point error
inline constexpr uint8_t kVectorGp = 13;  // general protection (error code 0 here)
inline constexpr uint8_t kVectorUd = 6;   // invalid opcode

// What the decision needs besides the bytes.
struct FixupContext {
    uint64_t rip = 0;
    int cpl = 0;
    bool code64 = true;       // 64-bit code: 0x40-0x4f are REX prefixes
    uint64_t cr0 = 0;         // MP, TS, NE decide what fwait does
    uint16_t fpu_status = 0;  // FSW; ES (bit 7) = an unmasked x87 exception is pending
    uint64_t cr4 = 0;         // OSFXSR decides whether LDMXCSR/STMXCSR exist
    // For memory operands (64-bit code): RAX..R15 in encoding order, and the
    // FS/GS bases a segment-override prefix selects.
    std::array<uint64_t, 16> gpr{};
    uint64_t fs_base = 0, gs_base = 0;
};

// A ModRM memory operand in 64-bit code: its linear address and how many
// bytes ModRM, SIB and displacement took.
struct MemoryOperand {
    uint64_t linear = 0;
    uint8_t length = 0;
};
// `modrm` starts at the ModRM byte; `rex`, `address32` (a 0x67 prefix) and
// `segment` (0x64 FS, 0x65 GS, else 0) come from the prefixes;
// `bytes_before_modrm` (prefixes and opcode) places a RIP-relative operand,
// which counts from the end of the instruction (these have no immediate).
// nullopt when the bytes end early or ModRM names a register.
std::optional<MemoryOperand> decode_memory_operand(std::span<const uint8_t> modrm, uint8_t rex, bool address32,
                                                   uint8_t segment, size_t bytes_before_modrm,
                                                   const FixupContext& context);

// The decision.  `bytes` start at RIP (up to 15; fewer when the next page
// did not translate); an empty span stops the guest.
FixupAction decide_fixup(std::span<const uint8_t> bytes, const FixupContext& context);

// --- The vCPU side, split into testable pieces ------------------------------

// 64-bit code: EFER.LMA and CS.L.
bool is_code64(const kvm_sregs& sregs);
// CPL: 0 in real mode, 3 in virtual-8086 mode, else SS.DPL (what KVM itself
// reports; CS.RPL differs from CPL in conforming code segments).
int current_privilege_level(const kvm_sregs& sregs, uint64_t rflags);
// The linear address of RIP: CS.base + RIP, except in 64-bit code where CS
// has no base; truncated to 32 bits outside it.
uint64_t instruction_linear_address(const kvm_sregs& sregs, uint64_t rip);
FixupContext fixup_context(const kvm_regs& regs, const kvm_sregs& sregs, const kvm_fpu& fpu);

// Guest-physical address of a linear address (KVM_TRANSLATE), or nullopt.
using TranslateFn = std::function<std::optional<uint64_t>(uint64_t linear)>;
// Up to 15 bytes at `linear`, translating each page separately (an
// instruction may cross into a page mapped elsewhere or not at all).
std::vector<uint8_t> fetch_instruction_bytes(uint64_t linear, const TranslateFn& translate,
                                             const GuestMemory& memory);

// RIP += length, wrapped to the code size (IP/EIP outside 64-bit code);
// RFLAGS.RF cleared, as on completion of any instruction.
void advance_rip(kvm_regs& regs, const kvm_sregs& sregs, uint8_t length);
// Marks `vector` injected in `events` (#GP with error code 0, others with
// none); an error message if an exception is already on its way (tapvm
// would turn it into a double fault the guest never raised).
std::optional<std::string> inject_exception(kvm_vcpu_events& events, uint8_t vector);

// MXCSR bits that LDMXCSR may set (SDM vol. 1 §10.2.3: the rest raise #GP).
inline constexpr uint32_t kMxcsrWritable = 0xffff;

// Up to `out.size()` bytes at a linear address, page by page; false when a
// page does not translate to guest RAM.
bool read_linear(uint64_t linear, std::span<uint8_t> out, const TranslateFn& translate, const GuestMemory& memory);
bool write_linear(uint64_t linear, std::span<const uint8_t> in, const TranslateFn& translate,
                  const GuestMemory& memory);

// Handles an emulation-failure exit of `vcpu`: Continue once completed,
// Fatal (the message above) otherwise.  Throws Error for KVM failures.
ExitAction complete_emulation_failure(KvmVcpu& vcpu, const InternalErrorExit& exit, const GuestMemory& memory);

}  // namespace tapvm::kvm
