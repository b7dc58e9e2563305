#include "vmm/kvm/kvm_kind.h"

#include <cpuid.h>
#include <unistd.h>

#include <spdlog/fmt/fmt.h>

namespace tapvm::kvm {

namespace {

// CPUID.1:ECX features a hardware KVM always passes through when the CPU
// has them, and which PVM's supported table drops (PLATFORM.md measured
// supported 0x81202000 against the CPU's 0xf7f81203).
constexpr uint32_t kEcxPopcnt = 1u << 23;
constexpr uint32_t kEcxXsave = 1u << 26;
constexpr uint32_t kTellingFeatures = kEcxPopcnt | kEcxXsave;

// True when the CPU has a telling feature that KVM does not offer.
std::optional<bool> features_withheld(const KvmReport& r) {
    if (!r.supported_leaf1_ecx || !r.host_leaf1_ecx) return std::nullopt;
    uint32_t host = *r.host_leaf1_ecx & kTellingFeatures;
    return (host & ~*r.supported_leaf1_ecx) != 0;
}

}  // namespace

KvmKindDecision classify_kvm(const KvmReport& r) {
    bool hardware_module = r.intel_module || r.amd_module;
    if (r.pvm_module && !hardware_module)
        return {KvmKind::Pvm, "kvm_pvm is loaded and neither kvm_intel nor kvm_amd"};
    if (hardware_module && !r.pvm_module)
        return {KvmKind::Hardware, r.intel_module ? "kvm_intel is loaded" : "kvm_amd is loaded"};

    // Both or neither module visible (sysfs hidden in a container, or a
    // host with both loaded): the CPUID comparison decides.
    auto withheld = features_withheld(r);
    if (withheld && *withheld)
        return {KvmKind::Pvm, fmt::format("KVM withholds XSAVE/POPCNT that the CPU has (supported CPUID.1:ECX "
                                          "{:#010x}, CPU {:#010x})",
                                          *r.supported_leaf1_ecx, *r.host_leaf1_ecx)};
    if (withheld) return {KvmKind::Hardware, "KVM offers the CPU's XSAVE/POPCNT"};
    return {KvmKind::Hardware, "no evidence of a nested pagetable-based KVM"};
}

KvmReport probe_kvm_report(std::span<const kvm_cpuid_entry2> supported_cpuid, const std::string& sysfs_modules) {
    auto present = [&](const char* module) { return ::access((sysfs_modules + "/" + module).c_str(), F_OK) == 0; };
    KvmReport r;
    r.pvm_module = present("kvm_pvm");
    r.intel_module = present("kvm_intel");
    r.amd_module = present("kvm_amd");
    for (const auto& e : supported_cpuid)
        if (e.function == 1 && e.index == 0) r.supported_leaf1_ecx = e.ecx;
    unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
    if (__get_cpuid(1, &eax, &ebx, &ecx, &edx)) r.host_leaf1_ecx = ecx;
    return r;
}

std::vector<std::string> guest_kernel_params(KvmKind kind) {
    if (kind == KvmKind::Hardware) return {};
    // Each steers the guest kernel away from something PVM's instruction
    // emulator cannot do at CPL 0, or from work that is prohibitively slow
    // when kernel code is emulated (PLATFORM.md).  PVM ignores the CPUID
    // table tapvm sets and shows the guest the host's, so these must be
    // kernel parameters, not CPUID masks.
    return {
        // xsave/xrstor fail to emulate; the kernel falls back to fxsave.
        "noxsave",
        // cx16: SLUB's `lock cmpxchg16b`; smap: clac/stac once patched in;
        // popcnt: `popcnt` in bitmap code; ssse3: the stock kernel's RNG
        // mixes with blake2s_compress_ssse3, whose `movd %ecx,%xmm15`
        // (66 44 0f 6e f9) fails to emulate (seen after ldmxcsr was
        // completed).  All fail to emulate.
        "clearcpuid=cx16,smap,popcnt,ssse3",
        // Most boot-time self-patching (alternatives, retpolines, return
        // thunks: ~190 s emulated) and the per-entry mitigation cost.
        "mitigations=off",
        // Kernel code runs ~1000x slower, so the soft-lockup watchdog fires
        // on harmless long loops and floods the console.
        "nosoftlockup",
        // The crypto manager's self-tests are pure CPU work in the guest
        // kernel.  On the stock kernel the RSA ones outlast the 60 s an
        // algorithm's first user waits (seen: "Problem loading in-kernel
        // X.509 certificate (-110)"), then run on in the background for
        // more than ten minutes (sampled RIPs in mpihelp_submul_1 and
        // mul_n_basecase) while boot stalls after evm.
        "cryptomgr.notests",
    };
}

const char* to_string(KvmKind kind) { return kind == KvmKind::Pvm ? "PVM (nested, pagetable-based)" : "hardware"; }

}  // namespace tapvm::kvm
