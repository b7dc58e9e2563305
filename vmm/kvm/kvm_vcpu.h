// One KVM vCPU: its fd, the shared kvm_run area (mapped once, unmapped by
// RAII), KVM_RUN, and typed accessors for the register state tapvm sets.
#pragma once

#include "vmm/uapi/kvm.h"

#include <cstdint>
#include <optional>
#include <span>
#include <vector>

#include "vmm/kvm/exit.h"
#include "vmm/unique_fd.h"

namespace tapvm::kvm {

// A shared mapping of a vCPU's kvm_run area.
class KvmRunMapping {
public:
    KvmRunMapping(int vcpu_fd, size_t size);  // throws Error
    ~KvmRunMapping();
    KvmRunMapping(const KvmRunMapping&) = delete;
    KvmRunMapping& operator=(const KvmRunMapping&) = delete;

    kvm_run& run() const { return *static_cast<kvm_run*>(base_); }
    std::span<uint8_t> area() const { return {static_cast<uint8_t*>(base_), size_}; }

private:
    void* base_ = nullptr;
    size_t size_ = 0;
};

class KvmVcpu {
public:
    // Created by KvmVm::create_vcpu().
    KvmVcpu(UniqueFd fd, uint32_t id, size_t mmap_size);

    uint32_t id() const { return id_; }
    int fd() const { return fd_.get(); }

    enum class RunResult { Exited, Interrupted };
    // One KVM_RUN.  Interrupted when a signal or immediate_exit stopped it
    // (EINTR) or KVM asked to be called again (EAGAIN); throws Error for any
    // other failure.  After Exited, exit() describes why.
    RunResult run();
    VcpuExit exit() const { return parse_exit(run_.area()); }

    // kvm_run.immediate_exit: KVM_RUN returns EINTR at once while set
    // (api.rst §5, KVM_CAP_IMMEDIATE_EXIT).  Safe from any thread.
    void set_immediate_exit(bool on);

    kvm_regs regs() const;
    void set_regs(const kvm_regs& regs);
    kvm_sregs sregs() const;
    void set_sregs(const kvm_sregs& sregs);
    kvm_fpu fpu() const;
    void set_fpu(const kvm_fpu& fpu);
    kvm_lapic_state lapic() const;
    void set_lapic(const kvm_lapic_state& lapic);
    kvm_vcpu_events events() const;
    void set_events(const kvm_vcpu_events& events);
    kvm_mp_state mp_state() const;
    void set_cpuid(std::span<const kvm_cpuid_entry2> entries);

    // KVM_SET_MSRS stops at the first MSR it refuses; returns how many it
    // set (a prefix of `entries`).
    size_t set_msrs(std::span<const kvm_msr_entry> entries);
    // Values of the given MSRs, or nullopt for one KVM does not know.
    std::vector<std::optional<uint64_t>> msrs(std::span<const uint32_t> indices) const;

    // KVM_TRANSLATE: the guest-physical address of a linear address under
    // the vCPU's current paging, or nullopt when it is not mapped.
    std::optional<uint64_t> translate(uint64_t linear) const;

private:
    UniqueFd fd_;
    uint32_t id_;
    KvmRunMapping run_;
};

}  // namespace tapvm::kvm
