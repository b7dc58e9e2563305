// IoEventRegistry on KVM_IOEVENTFD: a guest write to a registered port or
// MMIO address signals an eventfd inside KVM, with no exit to tapvm.
#pragma once

#include "vmm/uapi/kvm.h"

#include <vector>

#include "vmm/io_event.h"

namespace tapvm::kvm {

// What the registry needs from a VM (KvmVm implements it).  Throws Error.
class IoEventControl {
public:
    virtual ~IoEventControl() = default;
    // KVM_IOEVENTFD; KVM_IOEVENTFD_FLAG_DEASSIGN in flags removes.
    virtual void set_ioeventfd(const kvm_ioeventfd& request) = 0;
};

// The KVM registrations for one spec.  Usually one; an "any width" MMIO
// spec (length 0) without KVM_CAP_IOEVENTFD_ANY_LENGTH becomes two, for
// 2- and 4-byte writes: the widths of a virtio-pci notification (virtio 1.2
// §4.1.4.4: a 16-bit queue index, or 32 bits with VIRTIO_F_NOTIFICATION_DATA).
// Throws UsageError for a spec KVM would refuse (width not 0/1/2/4/8, PIO
// with width 0 or above port 0xffff, datamatch without a width or wider
// than it, a range that wraps, no eventfd).
std::vector<kvm_ioeventfd> kvm_ioeventfds_for(const IoEventSpec& spec, bool any_length_supported);

class KvmIoEventRegistry : public IoEventRegistry {
public:
    // any_length_supported: KVM_CHECK_EXTENSION(KVM_CAP_IOEVENTFD_ANY_LENGTH).
    KvmIoEventRegistry(IoEventControl& vm, bool any_length_supported)
        : vm_(vm), any_length_supported_(any_length_supported) {}

    // All of a spec's registrations are added, or none (rolled back).
    void add(const IoEventSpec& spec) override;
    // Removes every registration of the spec; throws Error if KVM had none.
    void remove(const IoEventSpec& spec) override;

private:
    IoEventControl& vm_;
    bool any_length_supported_;
};

}  // namespace tapvm::kvm
