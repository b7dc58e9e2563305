// How devices interrupt the guest, without knowing about KVM.
//
// Devices are handed these interfaces at assembly time; the KVM
// implementations (vmm/kvm/kvm_irq.h) use the in-kernel irqchip, GSI routing and
// irqfd, and unit tests use recording fakes (tests/support/).
#pragma once

#include <cstdint>
#include <memory>

namespace tapvm {

// A wire into the IOAPIC (or PIC).  Level-triggered devices (PCI INTx, the
// 16550) assert and deassert it; edge devices pulse it.
class IrqLine {
public:
    virtual ~IrqLine() = default;
    virtual void set_level(bool asserted) = 0;
    void pulse() {
        set_level(true);
        set_level(false);
    }
};

// An MSI message as the guest programs it into an MSI-X table entry.
struct MsiMessage {
    uint64_t address = 0;
    uint32_t data = 0;
    bool operator==(const MsiMessage&) const = default;
};

// One MSI delivery channel (with KVM: a GSI route plus an irqfd).  trigger()
// is safe from any thread and, with KVM, never exits to the vCPU thread.
class MsiVector {
public:
    virtual ~MsiVector() = default;
    // Reprogram where the interrupt goes (the guest rewrote the table entry).
    virtual void set_message(const MsiMessage& message) = 0;
    virtual void trigger() = 0;
};

class MsiAllocator {
public:
    virtual ~MsiAllocator() = default;
    // Throws Error when the routing table is full.
    virtual std::unique_ptr<MsiVector> allocate() = 0;
};

}  // namespace tapvm
