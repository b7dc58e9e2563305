// Which KVM tapvm runs on: hardware virtualization (VMX/SVM), or the
// pagetable-based KVM for nested use (kvm_pvm) described in
// /work/shared/PLATFORM.md, which cannot emulate some instructions a Linux
// guest kernel uses and needs kernel parameters to steer around them.
//
// The decision is made from what the host kernel reports — loaded KVM
// modules and the CPUID features KVM offers compared with the CPU's own —
// never from a host name, and it is a pure function over a KvmReport.
#pragma once

#include "vmm/uapi/kvm.h"

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

namespace tapvm::kvm {

enum class KvmKind { Hardware, Pvm };

struct KvmReport {
    bool pvm_module = false;    // /sys/module/kvm_pvm
    bool intel_module = false;  // /sys/module/kvm_intel
    bool amd_module = false;    // /sys/module/kvm_amd
    // CPUID leaf 1 ECX as KVM_GET_SUPPORTED_CPUID offers it, and as the
    // host CPU reports it to tapvm itself; nullopt when unknown.
    std::optional<uint32_t> supported_leaf1_ecx;
    std::optional<uint32_t> host_leaf1_ecx;
};

struct KvmKindDecision {
    KvmKind kind = KvmKind::Hardware;
    std::string reason;  // for the log: which evidence decided
};

KvmKindDecision classify_kvm(const KvmReport& report);

// Gathers the report: module presence under `sysfs_modules`, leaf 1 from
// KVM's supported CPUID table (KvmSystem::supported_cpuid()) and from the
// `cpuid` instruction.
KvmReport probe_kvm_report(std::span<const kvm_cpuid_entry2> supported_cpuid,
                           const std::string& sysfs_modules = "/sys/module");

// Kernel command-line parameters to append for a guest on this KVM: none
// on hardware, the PLATFORM.md set on PVM.
std::vector<std::string> guest_kernel_params(KvmKind kind);

const char* to_string(KvmKind kind);

}  // namespace tapvm::kvm
