// vCPU set-up as pure functions: the CPUID table built from a supported
// table, boot MSRs and FPU, LAPIC LINT modes, and the long-mode entry state
// converted into kvm_sregs/kvm_regs.
#include <gtest/gtest.h>
#include "vmm/uapi/kvm.h"

#include <cstring>
#include <map>

#include "vmm/error.h"
#include "vmm/kvm/vcpu_setup.h"

namespace tapvm::kvm {
namespace {

kvm_cpuid_entry2 entry(uint32_t fn, uint32_t index, uint32_t eax, uint32_t ebx, uint32_t ecx, uint32_t edx,
                       uint32_t flags = 0) {
    kvm_cpuid_entry2 e{};
    e.function = fn;
    e.index = index;
    e.flags = flags;
    e.eax = eax;
    e.ebx = ebx;
    e.ecx = ecx;
    e.edx = edx;
    return e;
}

// A trimmed Intel-like supported table (values shaped like a real one).
std::vector<kvm_cpuid_entry2> intel_supported() {
    const uint32_t sig = KVM_CPUID_FLAG_SIGNIFCANT_INDEX;
    return {
        entry(0x0, 0, 0x1f, 0x756e6547, 0x6c65746e, 0x49656e69),  // GenuineIntel
        entry(0x1, 0, 0x000806f8, 0x00010800, 0x80202001, 0x078bfbff),
        entry(0x4, 0, 0x1c004121, 0x02c0003f, 0x3f, 0, sig),  // L1d
        entry(0x4, 1, 0x1c004122, 0x01c0003f, 0x3f, 0, sig),  // L1i
        entry(0x4, 2, 0x1c004143, 0x03c0003f, 0x7ff, 0, sig),  // L2
        entry(0x4, 3, 0x1c03c163, 0x0380003f, 0xfff, 0, sig),  // L3
        entry(0x4, 4, 0, 0, 0, 0, sig),                        // end
        entry(0xb, 0, 1, 2, 0x100, 5, sig),
        entry(0xb, 1, 7, 96, 0x201, 5, sig),
        entry(0x1f, 0, 1, 2, 0x100, 5, sig),
        entry(0x40000000, 0, 0x40000001, 0x4b4d564b, 0x564b4d56, 0x4d),
        entry(0x40000001, 0, 0x01007afb, 0, 0, 0),
        entry(0x80000008, 0, 0x3030, 0, 0x1234, 0),
    };
}

using Key = std::pair<uint32_t, uint32_t>;
std::map<Key, kvm_cpuid_entry2> by_leaf(const std::vector<kvm_cpuid_entry2>& table) {
    std::map<Key, kvm_cpuid_entry2> m;
    for (const auto& e : table) EXPECT_TRUE(m.emplace(Key{e.function, e.index}, e).second) << "duplicate leaf";
    return m;
}

TEST(VcpuCpuid, Leaf1CarriesApicIdCountHypervisorAndHtt) {
    auto t = by_leaf(build_vcpu_cpuid(intel_supported(), {3, 4}));
    const auto& l1 = t.at({1, 0});
    EXPECT_EQ(l1.ebx >> 24, 3u) << "initial APIC ID";
    EXPECT_EQ((l1.ebx >> 16) & 0xff, 4u) << "logical processors per package";
    EXPECT_EQ(l1.ebx & 0xffff, 0x0800u) << "CLFLUSH size and brand index are KVM's";
    EXPECT_TRUE(l1.ecx & (1u << 31)) << "hypervisor bit";
    EXPECT_TRUE(l1.edx & (1u << 28)) << "HTT with 4 logical processors";
    EXPECT_FALSE(l1.ecx & (1u << 24)) << "TSC deadline only when offered";
    EXPECT_EQ(l1.eax, 0x000806f8u);
}

TEST(VcpuCpuid, SingleVcpuClearsHttAndTscDeadlineWhenOffered) {
    auto t = by_leaf(build_vcpu_cpuid(intel_supported(), {0, 1}, {.tsc_deadline = true}));
    const auto& l1 = t.at({1, 0});
    EXPECT_FALSE(l1.edx & (1u << 28));
    EXPECT_TRUE(l1.ecx & (1u << 24));
    EXPECT_EQ(l1.ebx >> 24, 0u);
}

TEST(VcpuCpuid, Leaf4DescribesCoresAndCacheSharing) {
    auto t = by_leaf(build_vcpu_cpuid(intel_supported(), {1, 6}));
    for (uint32_t i = 0; i < 4; ++i) {
        uint32_t eax = t.at({4, i}).eax;
        EXPECT_EQ(eax >> 26, 5u) << "cores per package - 1, subleaf " << i;
        uint32_t level = (eax >> 5) & 7;
        EXPECT_EQ((eax >> 14) & 0xfff, level == 3 ? 5u : 0u) << "sharing, subleaf " << i;
        EXPECT_EQ(eax & 0x3fff, intel_supported()[2 + i].eax & 0x3fff) << "type/level bits kept";
    }
    EXPECT_EQ(t.at({4, 4}).eax, 0u) << "terminator untouched";
}

TEST(VcpuCpuid, TopologyLeavesAreRegenerated) {
    auto t = by_leaf(build_vcpu_cpuid(intel_supported(), {5, 6}));
    for (uint32_t fn : {0xbu, 0x1fu}) {
        const auto& smt = t.at({fn, 0});
        const auto& core = t.at({fn, 1});
        const auto& end = t.at({fn, 2});
        EXPECT_EQ(smt.eax, 0u);
        EXPECT_EQ(smt.ebx, 1u);
        EXPECT_EQ(smt.ecx, 0x100u);
        EXPECT_EQ(core.eax, 3u) << "6 cores need 3 APIC ID bits";
        EXPECT_EQ(core.ebx, 6u);
        EXPECT_EQ(core.ecx, 0x201u);
        EXPECT_EQ(end.ecx & 0xff00, 0u) << "invalid level type terminates";
        for (const auto* e : {&smt, &core, &end}) {
            EXPECT_EQ(e->edx, 5u) << "x2APIC ID";
            EXPECT_TRUE(e->flags & KVM_CPUID_FLAG_SIGNIFCANT_INDEX);
        }
    }
}

TEST(VcpuCpuid, TopologyLeavesAreNotInventedWhenKvmHasNone) {
    auto supported = intel_supported();
    std::erase_if(supported, [](const auto& e) { return e.function == 0xb || e.function == 0x1f; });
    auto t = by_leaf(build_vcpu_cpuid(supported, {0, 2}));
    EXPECT_FALSE(t.count({0xb, 0}));
    EXPECT_FALSE(t.count({0x1f, 0}));
}

TEST(VcpuCpuid, KvmSignatureAndFeatures) {
    auto supported = intel_supported();
    auto t = by_leaf(build_vcpu_cpuid(supported, {0, 1}));
    const auto& sig = t.at({0x40000000, 0});
    char name[13] = {};
    std::memcpy(name, &sig.ebx, 4);
    std::memcpy(name + 4, &sig.ecx, 4);
    std::memcpy(name + 8, &sig.edx, 4);
    EXPECT_EQ(std::string(name, 12), std::string("KVMKVMKVM\0\0\0", 12));
    EXPECT_EQ(sig.eax, 0x40000001u);
    const auto& features = t.at({0x40000001, 0});
    EXPECT_EQ(features.eax, 0x01007afbu) << "KVM's own paravirtual features";
    EXPECT_EQ(features.edx, 0u) << "no realtime hint";
}

TEST(VcpuCpuid, KvmLeavesAreAddedWhenTheSupportedTableLacksThem) {
    auto supported = intel_supported();
    std::erase_if(supported, [](const auto& e) { return e.function >= 0x40000000 && e.function < 0x40000100; });
    auto t = by_leaf(build_vcpu_cpuid(supported, {0, 1}));
    EXPECT_EQ(t.at({0x40000000, 0}).ebx, 0x4b4d564bu);
    EXPECT_EQ(t.at({0x40000001, 0}).eax, 0u);
}

TEST(VcpuCpuid, AmdCoreCountOnlyOnAmd) {
    auto intel = by_leaf(build_vcpu_cpuid(intel_supported(), {0, 4}));
    EXPECT_EQ(intel.at({0x80000008, 0}).ecx, 0x1234u);

    auto amd_supported = intel_supported();
    amd_supported[0] = entry(0, 0, 0x10, 0x68747541, 0x444d4163, 0x69746e65);  // AuthenticAMD
    auto amd = by_leaf(build_vcpu_cpuid(amd_supported, {0, 4}));
    EXPECT_EQ(amd.at({0x80000008, 0}).ecx & 0xff, 3u);
    EXPECT_EQ((amd.at({0x80000008, 0}).ecx >> 12) & 0xf, 2u);
}

TEST(VcpuCpuid, OtherLeavesAreKvms) {
    auto t = by_leaf(build_vcpu_cpuid(intel_supported(), {0, 2}));
    EXPECT_EQ(t.at({0, 0}).ebx, 0x756e6547u);
    EXPECT_EQ(t.at({0x80000008, 0}).eax, 0x3030u);
}

TEST(VcpuCpuid, ImpossibleTopologyIsRefused) {
    EXPECT_THROW(build_vcpu_cpuid(intel_supported(), {2, 2}), Error);
    EXPECT_THROW(build_vcpu_cpuid(intel_supported(), {0, 0}), Error);
}

TEST(BootMsrs, TheValuesALinuxBootExpects) {
    std::map<uint32_t, uint64_t> msrs;
    for (const auto& e : boot_msrs()) EXPECT_TRUE(msrs.emplace(e.index, e.data).second);
    EXPECT_EQ(msrs.at(0x2ff), 0x806u) << "MTRRs on, default write-back";
    EXPECT_EQ(msrs.at(0x1a0) & 1, 1u) << "fast strings";
    for (uint32_t zero : {0x10u, 0x174u, 0x175u, 0x176u, 0xc0000081u, 0xc0000082u, 0xc0000083u, 0xc0000084u,
                          0xc0000102u})
        EXPECT_EQ(msrs.at(zero), 0u) << std::hex << zero;
}

TEST(BootFpu, ResetControlWords) {
    auto fpu = boot_fpu();
    EXPECT_EQ(fpu.fcw, 0x37f);
    EXPECT_EQ(fpu.mxcsr, 0x1f80u);
    EXPECT_EQ(fpu.fsw, 0);
}

TEST(LapicLint, ExtIntOnLint0NmiOnLint1OtherBitsKept) {
    kvm_lapic_state lapic{};
    uint32_t lint0 = 0x00010700;  // masked, some old mode
    uint32_t lint1 = 0x00008000;  // level-triggered bit
    std::memcpy(lapic.regs + 0x350, &lint0, 4);
    std::memcpy(lapic.regs + 0x360, &lint1, 4);
    set_lapic_lint_modes(lapic);
    EXPECT_EQ(lapic_register(lapic, 0x350), 0x00010700u) << "ExtINT is 0b111 in bits 10:8";
    EXPECT_EQ(lapic_register(lapic, 0x360), 0x00008400u);

    kvm_lapic_state fresh{};
    set_lapic_lint_modes(fresh);
    EXPECT_EQ((lapic_register(fresh, 0x350) >> 8) & 7, 7u);
    EXPECT_EQ((lapic_register(fresh, 0x360) >> 8) & 7, 4u);
    EXPECT_EQ(lapic_register(fresh, 0x340), 0u) << "neighbouring registers untouched";
}

boot::SegmentState flat(uint16_t selector, uint8_t type, bool code) {
    boot::SegmentState s;
    s.base = 0;
    s.limit = 0xffffffff;
    s.selector = selector;
    s.type = type;
    s.present = 1;
    s.s = 1;
    s.g = 1;
    s.l = code ? 1 : 0;
    s.db = code ? 0 : 1;
    return s;
}

boot::LongModeEntryState entry_state() {
    boot::LongModeEntryState s;
    s.cr0 = boot::kCr0Pe | boot::kCr0Et | boot::kCr0Pg;
    s.cr3 = 0x9000;
    s.cr4 = boot::kCr4Pae;
    s.efer = boot::kEferLme | boot::kEferLma;
    s.cs = flat(0x10, 0xb, true);
    s.ds = s.es = s.fs = s.gs = s.ss = flat(0x18, 0x3, false);
    s.tr = flat(0x20, 0xb, false);
    s.tr.s = 0;
    s.ldt.unusable = 1;
    s.gdt = {0x500, 6 * 8 - 1};
    s.idt = {0, 0};
    s.rip = 0x1000000;
    s.rsi = 0x7000;
    s.rsp = 0x6ff0;
    s.rflags = 0;
    return s;
}

TEST(LongModeEntry, SregsMirrorTheStateAndKeepTheRest) {
    auto state = entry_state();
    kvm_sregs current{};
    current.apic_base = 0xfee00900;
    current.cr8 = 3;
    current.interrupt_bitmap[1] = 0x10;
    auto s = long_mode_sregs(state, current);
    EXPECT_EQ(s.cr0, state.cr0);
    EXPECT_EQ(s.cr3, 0x9000u);
    EXPECT_EQ(s.cr4, state.cr4);
    EXPECT_EQ(s.efer, state.efer);
    EXPECT_EQ(s.cs.selector, 0x10);
    EXPECT_EQ(s.cs.l, 1);
    EXPECT_EQ(s.cs.db, 0);
    EXPECT_EQ(s.cs.limit, 0xffffffffu);
    EXPECT_EQ(s.cs.type, 0xb);
    EXPECT_EQ(s.ss.selector, 0x18);
    EXPECT_EQ(s.ss.db, 1);
    EXPECT_EQ(s.tr.s, 0);
    EXPECT_EQ(s.ldt.unusable, 1);
    EXPECT_EQ(s.gdt.base, 0x500u);
    EXPECT_EQ(s.gdt.limit, 47);
    EXPECT_EQ(s.apic_base, 0xfee00900u);
    EXPECT_EQ(s.cr8, 3u);
    EXPECT_EQ(s.interrupt_bitmap[1], 0x10u);
}

TEST(LongModeEntry, RegsCarryEntryZeroPageStackAndReservedFlag) {
    auto r = long_mode_regs(entry_state());
    EXPECT_EQ(r.rip, 0x1000000u);
    EXPECT_EQ(r.rsi, 0x7000u);
    EXPECT_EQ(r.rsp, 0x6ff0u);
    EXPECT_EQ(r.rflags, 2u) << "bit 1 set, IF clear";
    EXPECT_EQ(r.rax, 0u);
    EXPECT_EQ(r.rdi, 0u);
}

TEST(LongModeEntry, ValidStateHasNoProblem) { EXPECT_EQ(long_mode_state_problem(entry_state()), std::nullopt); }

TEST(LongModeEntry, InconsistentStatesAreNamed) {
    auto no_lma = entry_state();
    no_lma.efer = boot::kEferLme;
    EXPECT_NE(long_mode_state_problem(no_lma).value_or("").find("EFER"), std::string::npos);
    auto no_pg = entry_state();
    no_pg.cr0 = boot::kCr0Pe;
    EXPECT_NE(long_mode_state_problem(no_pg).value_or("").find("CR0"), std::string::npos);
    auto no_pae = entry_state();
    no_pae.cr4 = 0;
    EXPECT_NE(long_mode_state_problem(no_pae).value_or("").find("PAE"), std::string::npos);
    auto compat_cs = entry_state();
    compat_cs.cs.l = 0;
    compat_cs.cs.db = 1;
    EXPECT_NE(long_mode_state_problem(compat_cs).value_or("").find("64-bit"), std::string::npos);
    auto data_cs = entry_state();
    data_cs.cs.type = 0x3;
    EXPECT_TRUE(long_mode_state_problem(data_cs));
}

}  // namespace
}  // namespace tapvm::kvm
