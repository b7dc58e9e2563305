#include "vmm/kvm/kvm_vm.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <memory>

#include "vmm/error.h"
#include "vmm/kvm/kvm_ioctl.h"

namespace tapvm::kvm {

KvmVm::KvmVm(const KvmSystem& system)
    : vcpu_mmap_size_(system.vcpu_mmap_size()), max_vcpus_(system.max_vcpus()) {
    fd_.reset(checked_ioctl(system.fd(), KVM_CREATE_VM, 0, "KVM_CREATE_VM"));
    int slots = check_extension(KVM_CAP_NR_MEMSLOTS);
    max_slots_ = slots > 0 ? static_cast<uint32_t>(slots) : 32;  // api.rst: 32 before the cap existed

    // Both addresses must be set before the first vCPU is created.  The
    // identity map is only needed (and only offered) on Intel VMX.
    if (check_extension(KVM_CAP_SET_IDENTITY_MAP_ADDR) > 0) {
        uint64_t identity_map = kIdentityMapAddr;
        checked_ioctl(fd(), KVM_SET_IDENTITY_MAP_ADDR, &identity_map, "KVM_SET_IDENTITY_MAP_ADDR");
    }
    checked_ioctl(fd(), KVM_SET_TSS_ADDR, static_cast<unsigned long>(kTssAddr), "KVM_SET_TSS_ADDR");
    create_irqchip_and_pit();
}

void KvmVm::create_irqchip_and_pit() {
    // The irqchip also installs KVM's default GSI routes; GsiRouter replaces
    // them with the machine's (the PIT on IOAPIC pin 2, kvm_irq.h).
    checked_ioctl(fd(), KVM_CREATE_IRQCHIP, 0, "KVM_CREATE_IRQCHIP");
    // The i8254 interrupts through GSI 0; with the dummy speaker KVM also
    // answers port 0x61, which Linux reads to calibrate against the PIT.
    kvm_pit_config pit{};
    pit.flags = KVM_PIT_SPEAKER_DUMMY;
    checked_ioctl(fd(), KVM_CREATE_PIT2, &pit, "KVM_CREATE_PIT2");
}

int KvmVm::check_extension(int cap) const {
    int r = ::ioctl(fd(), KVM_CHECK_EXTENSION, cap);
    return r < 0 ? 0 : r;
}

void KvmVm::map_memory(const GuestMemory& memory) {
    for (const auto& region : memory.regions()) {
        if (next_slot_ >= max_slots_)
            throw Error("KVM offers only " + std::to_string(max_slots_) + " memory slots");
        kvm_userspace_memory_region slot{};
        slot.slot = next_slot_;
        slot.guest_phys_addr = region.start;
        slot.memory_size = region.size;
        slot.userspace_addr = reinterpret_cast<uint64_t>(region.host);
        checked_ioctl(fd(), KVM_SET_USER_MEMORY_REGION, &slot,
                      "KVM_SET_USER_MEMORY_REGION (slot " + std::to_string(next_slot_) + ")");
        spdlog::debug("memory slot {}: guest {:#x}-{:#x}", next_slot_, region.start, region.start + region.size - 1);
        ++next_slot_;
    }
}

std::unique_ptr<KvmVcpu> KvmVm::create_vcpu(uint32_t id) {
    if (id >= max_vcpus_)
        throw Error("vCPU " + std::to_string(id) + ": this KVM allows at most " + std::to_string(max_vcpus_));
    UniqueFd vcpu_fd(checked_ioctl(fd(), KVM_CREATE_VCPU, static_cast<unsigned long>(id),
                                   "KVM_CREATE_VCPU " + std::to_string(id)));
    return std::make_unique<KvmVcpu>(std::move(vcpu_fd), id, vcpu_mmap_size_);
}

void KvmVm::set_irq_line(uint32_t gsi, bool level) {
    kvm_irq_level irq{};
    irq.irq = gsi;
    irq.level = level ? 1 : 0;
    checked_ioctl(fd(), KVM_IRQ_LINE, &irq, "KVM_IRQ_LINE");
}

void KvmVm::set_gsi_routing(std::span<const kvm_irq_routing_entry> routes) {
    size_t bytes = sizeof(kvm_irq_routing) + routes.size() * sizeof(kvm_irq_routing_entry);
    auto storage = std::make_unique<uint64_t[]>((bytes + 7) / 8);
    auto* table = reinterpret_cast<kvm_irq_routing*>(storage.get());
    table->nr = static_cast<uint32_t>(routes.size());
    std::copy(routes.begin(), routes.end(), table->entries);
    checked_ioctl(fd(), KVM_SET_GSI_ROUTING, table, "KVM_SET_GSI_ROUTING");
}

void KvmVm::set_irqfd(int eventfd, uint32_t gsi, bool assign) {
    kvm_irqfd irqfd{};
    irqfd.fd = static_cast<uint32_t>(eventfd);
    irqfd.gsi = gsi;
    irqfd.flags = assign ? 0 : KVM_IRQFD_FLAG_DEASSIGN;
    checked_ioctl(fd(), KVM_IRQFD, &irqfd, assign ? "KVM_IRQFD" : "KVM_IRQFD (deassign)");
}

void KvmVm::set_ioeventfd(const kvm_ioeventfd& request) {
    auto r = request;
    bool deassign = r.flags & KVM_IOEVENTFD_FLAG_DEASSIGN;
    checked_ioctl(fd(), KVM_IOEVENTFD, &r, deassign ? "KVM_IOEVENTFD (deassign)" : "KVM_IOEVENTFD");
}

}  // namespace tapvm::kvm
