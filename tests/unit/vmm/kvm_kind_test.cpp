// KVM kind detection as a pure function over reports, including the values
// PLATFORM.md measured on the PVM machines.
#include <gtest/gtest.h>

#include <cpuid.h>
#include <stdlib.h>

#include <algorithm>
#include <filesystem>
#include <vector>

#include "vmm/kvm/kvm_kind.h"

namespace tapvm::kvm {
namespace {

constexpr uint32_t kPvmSupportedEcx = 0x81202000;  // PLATFORM.md: KVM_GET_SUPPORTED_CPUID leaf 1
constexpr uint32_t kPvmHostEcx = 0xf7f81203;       // PLATFORM.md: the CPU's own leaf 1

TEST(KvmKind, PvmModuleAloneMeansPvm) {
    KvmReport r;
    r.pvm_module = true;
    EXPECT_EQ(classify_kvm(r).kind, KvmKind::Pvm);
}

TEST(KvmKind, HardwareModuleAloneMeansHardware) {
    KvmReport intel;
    intel.intel_module = true;
    EXPECT_EQ(classify_kvm(intel).kind, KvmKind::Hardware);
    KvmReport amd;
    amd.amd_module = true;
    EXPECT_EQ(classify_kvm(amd).kind, KvmKind::Hardware);
    // Even with a narrow supported table (an old KVM), the module decides.
    amd.supported_leaf1_ecx = kPvmSupportedEcx;
    amd.host_leaf1_ecx = kPvmHostEcx;
    EXPECT_EQ(classify_kvm(amd).kind, KvmKind::Hardware);
}

TEST(KvmKind, WithoutModuleInfoTheMeasuredPvmCpuidMeansPvm) {
    KvmReport r;
    r.supported_leaf1_ecx = kPvmSupportedEcx;
    r.host_leaf1_ecx = kPvmHostEcx;
    auto d = classify_kvm(r);
    EXPECT_EQ(d.kind, KvmKind::Pvm);
    EXPECT_NE(d.reason.find("0x81202000"), std::string::npos) << d.reason;
}

TEST(KvmKind, BothModulesFallBackToCpuid) {
    KvmReport r;
    r.pvm_module = r.intel_module = true;
    r.supported_leaf1_ecx = kPvmHostEcx;  // KVM offers what the CPU has
    r.host_leaf1_ecx = kPvmHostEcx;
    EXPECT_EQ(classify_kvm(r).kind, KvmKind::Hardware);
    r.supported_leaf1_ecx = kPvmSupportedEcx;
    EXPECT_EQ(classify_kvm(r).kind, KvmKind::Pvm);
}

TEST(KvmKind, ACpuWithoutTheFeaturesIsNotEvidence) {
    KvmReport r;  // an old CPU: no XSAVE, no POPCNT, and KVM offers neither
    r.supported_leaf1_ecx = 0x00000001;
    r.host_leaf1_ecx = 0x00000001;
    EXPECT_EQ(classify_kvm(r).kind, KvmKind::Hardware);
}

TEST(KvmKind, NoEvidenceAtAllMeansHardware) { EXPECT_EQ(classify_kvm(KvmReport{}).kind, KvmKind::Hardware); }

TEST(ProbeKvmReport, ReadsModulesAndSupportedLeaf1) {
    char dir[] = "/tmp/kvm_kind_test.XXXXXX";
    ASSERT_NE(::mkdtemp(dir), nullptr);
    std::string modules = dir;
    std::filesystem::create_directory(modules + "/kvm_pvm");
    std::filesystem::create_directory(modules + "/kvm");

    kvm_cpuid_entry2 leaf0{}, leaf1{};
    leaf1.function = 1;
    leaf1.ecx = kPvmSupportedEcx;
    std::vector<kvm_cpuid_entry2> supported{leaf0, leaf1};
    auto r = probe_kvm_report(supported, modules);
    std::filesystem::remove_all(modules);

    EXPECT_TRUE(r.pvm_module);
    EXPECT_FALSE(r.intel_module);
    EXPECT_FALSE(r.amd_module);
    ASSERT_TRUE(r.supported_leaf1_ecx);
    EXPECT_EQ(*r.supported_leaf1_ecx, kPvmSupportedEcx);
    unsigned eax, ebx, ecx, edx;
    ASSERT_TRUE(__get_cpuid(1, &eax, &ebx, &ecx, &edx));
    EXPECT_EQ(r.host_leaf1_ecx, std::optional<uint32_t>(ecx));
    EXPECT_EQ(classify_kvm(r).kind, KvmKind::Pvm);
}

TEST(GuestKernelParams, NoneOnHardware) { EXPECT_TRUE(guest_kernel_params(KvmKind::Hardware).empty()); }

TEST(GuestKernelParams, PvmGetsThePlatformSet) {
    auto p = guest_kernel_params(KvmKind::Pvm);
    for (const char* want :
         {"noxsave", "clearcpuid=cx16,smap,popcnt,ssse3", "mitigations=off", "nosoftlockup", "cryptomgr.notests"})
        EXPECT_NE(std::find(p.begin(), p.end(), want), p.end()) << want;
    EXPECT_EQ(p.size(), 5u);
}

}  // namespace
}  // namespace tapvm::kvm
