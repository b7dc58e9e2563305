// The CPU state tapvm gives each vCPU before it first runs: a CPUID table
// describing the machine's topology and KVM's paravirtual features, the
// MSRs a Linux boot expects, the FPU's reset state, local APIC LINT pins,
// and — for the boot vCPU only — the 64-bit entry state the boot code chose.
//
// Each piece is a pure function over plain values (tested without
// /dev/kvm); the configure/enter functions at the bottom only apply them.
// Secondary vCPUs get CPUID, MSRs and LAPIC only: the in-kernel LAPIC keeps
// them waiting for INIT/SIPI (their mp_state stays KVM's default), and the
// guest's SIPI gives them their first registers.
#pragma once

#include "vmm/uapi/kvm.h"

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "firmware/cpu_setup.h"  // boot::LongModeEntryState: a plain struct, no code used

namespace tapvm::kvm {

class KvmVcpu;

// One socket, `vcpu_count` cores, one thread per core; APIC IDs 0..n-1 (the
// MADT the firmware writes must agree).
struct CpuTopology {
    uint32_t apic_id = 0;
    uint32_t vcpu_count = 1;
};

struct CpuidOptions {
    // KVM_CAP_TSC_DEADLINE_TIMER: the in-kernel LAPIC emulates the TSC
    // deadline timer, but KVM_GET_SUPPORTED_CPUID does not report it.
    bool tsc_deadline = false;
};

// CPUID leaves tapvm writes itself.
inline constexpr uint32_t kCpuidKvmSignature = 0x40000000;
inline constexpr uint32_t kCpuidKvmFeatures = 0x40000001;

// The table for one vCPU from KVM_GET_SUPPORTED_CPUID:
// * leaf 1: EBX[31:24] initial APIC ID, EBX[23:16] logical processors per
//   package, EDX.HTT when more than one, ECX.hypervisor, ECX.TSC-deadline
//   when offered;
// * leaf 4: cores per package EAX[31:26], and L3 shared by all cores
//   (L1/L2 per core) in EAX[25:14];
// * leaves 0xB and 0x1F (when KVM reports them): SMT and core levels with
//   the x2APIC ID in EDX;
// * 0x40000000 "KVMKVMKVM\0\0\0" and 0x40000001 with KVM's own feature
//   bits (kvmclock, async PF, PV EOI...) from the supported table;
// * AMD leaf 0x80000008 ECX: core count and APIC-ID core bits.
// Everything else is KVM's.
std::vector<kvm_cpuid_entry2> build_vcpu_cpuid(std::span<const kvm_cpuid_entry2> supported,
                                               const CpuTopology& topology, const CpuidOptions& options = {});

// MSR numbers (Intel SDM vol. 4, AMD APM vol. 2).
inline constexpr uint32_t kMsrIa32Tsc = 0x10;
inline constexpr uint32_t kMsrIa32SysenterCs = 0x174;
inline constexpr uint32_t kMsrIa32SysenterEsp = 0x175;
inline constexpr uint32_t kMsrIa32SysenterEip = 0x176;
inline constexpr uint32_t kMsrIa32MiscEnable = 0x1a0;
inline constexpr uint32_t kMsrMtrrDefType = 0x2ff;
inline constexpr uint32_t kMsrStar = 0xc0000081;
inline constexpr uint32_t kMsrLstar = 0xc0000082;
inline constexpr uint32_t kMsrCstar = 0xc0000083;
inline constexpr uint32_t kMsrSyscallMask = 0xc0000084;  // FMASK
inline constexpr uint32_t kMsrKernelGsBase = 0xc0000102;

inline constexpr uint64_t kMiscEnableFastString = 1u << 0;
// MTRRdefType: MTRRs enabled (bit 11), default type write-back (6): all
// RAM cacheable without variable MTRRs.
inline constexpr uint64_t kMtrrDefTypeEnabledWriteBack = (1u << 11) | 6;

// The MSR values every vCPU starts with: system-call MSRs zeroed (the
// kernel programs them), TSC 0, fast strings on, MTRR default write-back.
std::vector<kvm_msr_entry> boot_msrs();

// x87/SSE reset state: FCW 0x37f (all exceptions masked, 64-bit precision),
// MXCSR 0x1f80 (all SSE exceptions masked).
kvm_fpu boot_fpu();

// LAPIC register offsets and the delivery modes of LVT LINT0/LINT1.
inline constexpr size_t kApicLvtLint0 = 0x350;
inline constexpr size_t kApicLvtLint1 = 0x360;
inline constexpr uint32_t kApicDeliveryModeNmi = 0x4;
inline constexpr uint32_t kApicDeliveryModeExtInt = 0x7;

// LINT0 delivers ExtINT (the PIC's output, virtual-wire mode) and LINT1
// delivers NMI, as the MP specification's virtual-wire setup and every
// other VMM do; other LVT bits are kept.
void set_lapic_lint_modes(kvm_lapic_state& lapic);
uint32_t lapic_register(const kvm_lapic_state& lapic, size_t offset);

// Why `state` is not a valid 64-bit entry state (EFER.LME/LMA, CR0.PE/PG,
// CR4.PAE, a present 64-bit code segment), or nullopt when it is.
std::optional<std::string> long_mode_state_problem(const boot::LongModeEntryState& state);

// kvm_sregs for the entry state; fields the state does not describe (CR2,
// CR8, APIC base, pending interrupts) are kept from `current`.
kvm_sregs long_mode_sregs(const boot::LongModeEntryState& state, const kvm_sregs& current);
// kvm_regs for the entry state: RIP, RSI, RSP, RFLAGS (bit 1 forced), others 0.
kvm_regs long_mode_regs(const boot::LongModeEntryState& state);

// Every vCPU, before it first runs: CPUID, MSRs, LAPIC LINT pins.  An MSR
// KVM refuses is logged and skipped.  Throws Error for KVM failures.
void configure_vcpu(KvmVcpu& vcpu, std::span<const kvm_cpuid_entry2> supported, const CpuTopology& topology,
                    const CpuidOptions& options = {});

// The boot vCPU only: FPU, special and general registers from `state`.
// Throws Error if the state is not a valid 64-bit entry state.
void enter_long_mode(KvmVcpu& vcpu, const boot::LongModeEntryState& state);

}  // namespace tapvm::kvm
