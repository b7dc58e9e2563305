// One KVM virtual machine: the VM fd with its in-kernel irqchip and PIT,
// guest RAM registered as memory slots, and the factory for its vCPUs.
#pragma once

#include "vmm/uapi/kvm.h"

#include <cstdint>
#include <memory>
#include <span>

#include "vmm/guest_memory.h"
#include "vmm/kvm/kvm_ioevents.h"
#include "vmm/kvm/kvm_irq.h"
#include "vmm/kvm/kvm_system.h"
#include "vmm/kvm/kvm_vcpu.h"
#include "vmm/unique_fd.h"

namespace tapvm::kvm {

// Intel VMX needs three pages for a real-mode TSS and one for an identity
// page table (api.rst KVM_SET_TSS_ADDR / KVM_SET_IDENTITY_MAP_ADDR), in guest
// physical space that is neither RAM nor a device.  The top of the 32-bit
// PCI hole, above the LAPIC and below the 4 GiB boundary, is unused in
// layout.h; the addresses are the ones Firecracker and crosvm use.
inline constexpr uint64_t kIdentityMapAddr = 0xfffbc000;
inline constexpr uint64_t kTssAddr = 0xfffbd000;  // 3 pages: 0xfffbd000-0xfffbffff

class KvmVm : public IrqChipControl, public IoEventControl {
public:
    // KVM_CREATE_VM, then — in the order KVM requires, before any vCPU —
    // the TSS and identity-map addresses, the irqchip (PIC + IOAPIC, local
    // APICs come with each vCPU) and the PIT (port 0x61 speaker dummy
    // included).  Throws Error.
    explicit KvmVm(const KvmSystem& system);

    int fd() const { return fd_.get(); }
    // KVM_CHECK_EXTENSION on the VM (some answers are per-VM).
    int check_extension(int cap) const;

    // One memory slot per RAM region.  The memory must outlive the VM.
    void map_memory(const GuestMemory& memory);

    // KVM_CREATE_VCPU with `id` as its APIC ID.  Throws Error.
    std::unique_ptr<KvmVcpu> create_vcpu(uint32_t id);

    // IrqChipControl
    void set_irq_line(uint32_t gsi, bool level) override;
    void set_gsi_routing(std::span<const kvm_irq_routing_entry> routes) override;
    void set_irqfd(int eventfd, uint32_t gsi, bool assign) override;
    // IoEventControl
    void set_ioeventfd(const kvm_ioeventfd& request) override;

private:
    void create_irqchip_and_pit();

    UniqueFd fd_;
    size_t vcpu_mmap_size_;
    uint32_t max_vcpus_;
    uint32_t next_slot_ = 0;
    uint32_t max_slots_ = 0;
};

}  // namespace tapvm::kvm
