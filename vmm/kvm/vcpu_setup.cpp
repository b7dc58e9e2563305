#include "vmm/kvm/vcpu_setup.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <bit>
#include <cstring>

#include "vmm/error.h"
#include "vmm/kvm/kvm_vcpu.h"

namespace tapvm::kvm {

namespace {

// CPUID bits (Intel SDM vol. 2A, CPUID).
constexpr uint32_t kLeaf1EcxTscDeadline = 1u << 24;
constexpr uint32_t kLeaf1EcxHypervisor = 1u << 31;
constexpr uint32_t kLeaf1EdxHtt = 1u << 28;
constexpr uint32_t kLeaf4CacheTypeMask = 0x1f;  // 0: no more caches
constexpr uint32_t kLeaf4SharingShift = 14;     // EAX[25:14]: logical processors sharing - 1
constexpr uint32_t kLeaf4SharingMask = 0xfffu << kLeaf4SharingShift;
constexpr uint32_t kLeaf4CoresShift = 26;       // EAX[31:26]: cores per package - 1
constexpr uint32_t kLeaf4CoresMask = 0x3fu << kLeaf4CoresShift;
constexpr uint32_t kTopologyLevelSmt = 1;       // leaf 0xB/0x1F ECX[15:8]
constexpr uint32_t kTopologyLevelCore = 2;

// "KVMKVMKVM\0\0\0" in EBX, ECX, EDX (Documentation/virt/kvm/x86/cpuid.rst).
constexpr uint32_t kKvmSignatureEbx = 0x4b4d564b;  // "KVMK"
constexpr uint32_t kKvmSignatureEcx = 0x564b4d56;  // "VMKV"
constexpr uint32_t kKvmSignatureEdx = 0x0000004d;  // "M\0\0\0"

constexpr uint32_t kAmdVendorEbx = 0x68747541;    // "Auth"enticAMD
constexpr uint32_t kHygonVendorEbx = 0x6f677948;  // "Hygo"nGenuine

uint32_t bits_for(uint32_t count) { return count <= 1 ? 0 : std::bit_width(count - 1); }

bool is_amd_like(std::span<const kvm_cpuid_entry2> supported) {
    for (const auto& e : supported)
        if (e.function == 0) return e.ebx == kAmdVendorEbx || e.ebx == kHygonVendorEbx;
    return false;
}

const kvm_cpuid_entry2* find_leaf(std::span<const kvm_cpuid_entry2> entries, uint32_t function) {
    for (const auto& e : entries)
        if (e.function == function) return &e;
    return nullptr;
}

kvm_cpuid_entry2 leaf(uint32_t function, uint32_t index, uint32_t flags) {
    kvm_cpuid_entry2 e{};
    e.function = function;
    e.index = index;
    e.flags = flags;
    return e;
}

void adjust_leaf1(kvm_cpuid_entry2& e, const CpuTopology& t, const CpuidOptions& o) {
    uint32_t logical = std::min<uint32_t>(t.vcpu_count, 0xff);
    e.ebx = (e.ebx & 0x0000ffff) | (logical << 16) | ((t.apic_id & 0xff) << 24);
    e.ecx |= kLeaf1EcxHypervisor;
    if (o.tsc_deadline) e.ecx |= kLeaf1EcxTscDeadline;
    if (t.vcpu_count > 1)
        e.edx |= kLeaf1EdxHtt;
    else
        e.edx &= ~kLeaf1EdxHtt;
}

void adjust_leaf4(kvm_cpuid_entry2& e, const CpuTopology& t) {
    if ((e.eax & kLeaf4CacheTypeMask) == 0) return;  // terminating subleaf
    uint32_t level = (e.eax >> 5) & 7;
    uint32_t cores = std::min<uint32_t>(t.vcpu_count, 64);
    uint32_t sharing = level >= 3 ? std::min<uint32_t>(t.vcpu_count, 0x1000) : 1;
    e.eax &= ~(kLeaf4CoresMask | kLeaf4SharingMask);
    e.eax |= ((cores - 1) << kLeaf4CoresShift) | ((sharing - 1) << kLeaf4SharingShift);
}

// Leaf 0xB / 0x1F (SDM vol. 2A): subleaf 0 the SMT level (one thread per
// core: shift 0), subleaf 1 the core level, subleaf 2 the invalid
// terminator.  EDX is the x2APIC ID in every subleaf.
std::vector<kvm_cpuid_entry2> topology_leaves(uint32_t function, const CpuTopology& t) {
    const uint32_t flags = KVM_CPUID_FLAG_SIGNIFCANT_INDEX;
    auto smt = leaf(function, 0, flags);
    smt.eax = 0;
    smt.ebx = 1;
    smt.ecx = (kTopologyLevelSmt << 8) | 0;
    auto core = leaf(function, 1, flags);
    core.eax = bits_for(t.vcpu_count);
    core.ebx = t.vcpu_count;
    core.ecx = (kTopologyLevelCore << 8) | 1;
    auto end = leaf(function, 2, flags);
    end.ecx = 2;
    for (auto* e : {&smt, &core, &end}) e->edx = t.apic_id;
    return {smt, core, end};
}

std::vector<kvm_cpuid_entry2> kvm_leaves(std::span<const kvm_cpuid_entry2> supported) {
    auto signature = leaf(kCpuidKvmSignature, 0, 0);
    signature.eax = kCpuidKvmFeatures;  // the highest hypervisor leaf
    signature.ebx = kKvmSignatureEbx;
    signature.ecx = kKvmSignatureEcx;
    signature.edx = kKvmSignatureEdx;
    auto features = leaf(kCpuidKvmFeatures, 0, 0);
    // EAX: the paravirtual features this KVM implements.  EDX bit 0
    // (KVM_HINTS_REALTIME) promises dedicated host CPUs: never set.
    if (const auto* kvm = find_leaf(supported, kCpuidKvmFeatures)) features.eax = kvm->eax;
    return {signature, features};
}

void adjust_amd_core_count(kvm_cpuid_entry2& e, const CpuTopology& t) {
    // AMD APM vol. 3, CPUID Fn8000_0008 ECX: NC[7:0] = cores - 1,
    // ApicIdCoreIdSize[15:12].
    e.ecx &= ~0xf0ffu;
    e.ecx |= (bits_for(t.vcpu_count) << 12) | ((std::min<uint32_t>(t.vcpu_count, 256) - 1) & 0xff);
}

}  // namespace

std::vector<kvm_cpuid_entry2> build_vcpu_cpuid(std::span<const kvm_cpuid_entry2> supported,
                                               const CpuTopology& topology, const CpuidOptions& options) {
    if (topology.vcpu_count == 0 || topology.apic_id >= topology.vcpu_count)
        throw Error("CPU topology: APIC ID " + std::to_string(topology.apic_id) + " of " +
                    std::to_string(topology.vcpu_count) + " vCPUs");
    const bool amd = is_amd_like(supported);
    std::vector<kvm_cpuid_entry2> table;
    bool has_0b = false, has_1f = false;
    for (auto e : supported) {
        switch (e.function) {
            case 0x1: adjust_leaf1(e, topology, options); break;
            case 0x4: adjust_leaf4(e, topology); break;
            case 0xb: has_0b = true; continue;   // regenerated below
            case 0x1f: has_1f = true; continue;  // regenerated below
            case kCpuidKvmSignature:
            case kCpuidKvmFeatures: continue;    // regenerated below
            case 0x80000008:
                if (amd) adjust_amd_core_count(e, topology);
                break;
            default: break;
        }
        table.push_back(e);
    }
    if (has_0b) std::ranges::copy(topology_leaves(0xb, topology), std::back_inserter(table));
    if (has_1f) std::ranges::copy(topology_leaves(0x1f, topology), std::back_inserter(table));
    std::ranges::copy(kvm_leaves(supported), std::back_inserter(table));
    return table;
}

std::vector<kvm_msr_entry> boot_msrs() {
    auto msr = [](uint32_t index, uint64_t value) {
        kvm_msr_entry e{};
        e.index = index;
        e.data = value;
        return e;
    };
    return {
        msr(kMsrIa32SysenterCs, 0), msr(kMsrIa32SysenterEsp, 0), msr(kMsrIa32SysenterEip, 0),
        msr(kMsrStar, 0),           msr(kMsrLstar, 0),           msr(kMsrCstar, 0),
        msr(kMsrSyscallMask, 0),    msr(kMsrKernelGsBase, 0),    msr(kMsrIa32Tsc, 0),
        // Fast-string operations: Linux warns when firmware left them off.
        msr(kMsrIa32MiscEnable, kMiscEnableFastString),
        msr(kMsrMtrrDefType, kMtrrDefTypeEnabledWriteBack),
    };
}

kvm_fpu boot_fpu() {
    kvm_fpu fpu{};
    fpu.fcw = 0x37f;
    fpu.mxcsr = 0x1f80;
    return fpu;
}

uint32_t lapic_register(const kvm_lapic_state& lapic, size_t offset) {
    uint32_t value = 0;
    std::memcpy(&value, lapic.regs + offset, sizeof value);  // little-endian, as the APIC page
    return value;
}

void set_lapic_lint_modes(kvm_lapic_state& lapic) {
    auto set_mode = [&](size_t offset, uint32_t mode) {
        uint32_t lvt = lapic_register(lapic, offset);
        lvt = (lvt & ~0x700u) | (mode << 8);  // delivery mode, bits 10:8
        std::memcpy(lapic.regs + offset, &lvt, sizeof lvt);
    };
    set_mode(kApicLvtLint0, kApicDeliveryModeExtInt);
    set_mode(kApicLvtLint1, kApicDeliveryModeNmi);
}

std::optional<std::string> long_mode_state_problem(const boot::LongModeEntryState& s) {
    if (!(s.efer & boot::kEferLme) || !(s.efer & boot::kEferLma)) return "EFER.LME and EFER.LMA must be set";
    if (!(s.cr0 & boot::kCr0Pe) || !(s.cr0 & boot::kCr0Pg)) return "CR0.PE and CR0.PG must be set";
    if (!(s.cr4 & boot::kCr4Pae)) return "CR4.PAE must be set";
    if (!s.cs.present || !s.cs.s || !(s.cs.type & 0x8)) return "CS must be a present code segment";
    if (!s.cs.l || s.cs.db) return "CS must be a 64-bit code segment (L=1, D=0)";
    if (!s.ss.present && !s.ss.unusable) return "SS must be present or marked unusable";
    return std::nullopt;
}

namespace {
kvm_segment to_kvm(const boot::SegmentState& s) {
    kvm_segment k{};
    k.base = s.base;
    k.limit = s.limit;
    k.selector = s.selector;
    k.type = s.type;
    k.present = s.present;
    k.dpl = s.dpl;
    k.db = s.db;
    k.s = s.s;
    k.l = s.l;
    k.g = s.g;
    k.avl = s.avl;
    k.unusable = s.unusable;
    return k;
}
kvm_dtable to_kvm(const boot::DescriptorTableState& t) {
    kvm_dtable k{};
    k.base = t.base;
    k.limit = t.limit;
    return k;
}
}  // namespace

kvm_sregs long_mode_sregs(const boot::LongModeEntryState& state, const kvm_sregs& current) {
    kvm_sregs s = current;
    s.cs = to_kvm(state.cs);
    s.ds = to_kvm(state.ds);
    s.es = to_kvm(state.es);
    s.fs = to_kvm(state.fs);
    s.gs = to_kvm(state.gs);
    s.ss = to_kvm(state.ss);
    s.tr = to_kvm(state.tr);
    s.ldt = to_kvm(state.ldt);
    s.gdt = to_kvm(state.gdt);
    s.idt = to_kvm(state.idt);
    s.cr0 = state.cr0;
    s.cr3 = state.cr3;
    s.cr4 = state.cr4;
    s.efer = state.efer;
    return s;
}

kvm_regs long_mode_regs(const boot::LongModeEntryState& state) {
    kvm_regs r{};
    r.rip = state.rip;
    r.rsi = state.rsi;
    r.rsp = state.rsp;
    r.rflags = state.rflags | boot::kRflagsReserved1;
    return r;
}

void configure_vcpu(KvmVcpu& vcpu, std::span<const kvm_cpuid_entry2> supported, const CpuTopology& topology,
                    const CpuidOptions& options) {
    vcpu.set_cpuid(build_vcpu_cpuid(supported, topology, options));

    // KVM_SET_MSRS stops at the first MSR it refuses: name it, skip it, and
    // set the rest (a KVM without, say, MTRR emulation can still boot Linux).
    auto msrs = boot_msrs();
    std::span<const kvm_msr_entry> rest(msrs);
    while (!rest.empty()) {
        size_t done = vcpu.set_msrs(rest);
        if (done >= rest.size()) break;
        spdlog::warn("vCPU {}: KVM refused MSR {:#x} = {:#x}; continuing without it", vcpu.id(),
                     rest[done].index, rest[done].data);
        rest = rest.subspan(done + 1);
    }

    auto lapic = vcpu.lapic();
    set_lapic_lint_modes(lapic);
    vcpu.set_lapic(lapic);
}

void enter_long_mode(KvmVcpu& vcpu, const boot::LongModeEntryState& state) {
    if (auto problem = long_mode_state_problem(state))
        throw Error("vCPU " + std::to_string(vcpu.id()) + " entry state: " + *problem);
    vcpu.set_fpu(boot_fpu());
    vcpu.set_sregs(long_mode_sregs(state, vcpu.sregs()));
    vcpu.set_regs(long_mode_regs(state));
}

}  // namespace tapvm::kvm
