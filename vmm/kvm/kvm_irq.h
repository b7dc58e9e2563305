// Interrupts with the in-kernel irqchip (KVM_CREATE_IRQCHIP: PIC, IOAPIC and
// a local APIC per vCPU).
//
// * IrqLine (legacy devices, PCI INTx): KVM_IRQ_LINE on a GSI < 24.  The
//   default routes send GSI n to IOAPIC pin n and, for n < 16, to PIC pin n
//   (ISA IRQ 0 excepted, see default_irqchip_routes()).
// * MsiVector (virtio-pci MSI-X): a GsiRouter owns the whole routing table,
//   allocates GSIs from 24 upward, one MSI route each, and binds an irqfd to
//   every vector so trigger() is one eventfd write that never involves a
//   vCPU thread.
//
// The KVM calls go through IrqChipControl (KvmVm implements it) so the
// routing logic is tested with a recording fake.
#pragma once

#include "vmm/uapi/kvm.h"

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <vector>

#include "vmm/irq.h"

namespace tapvm::kvm {

// What the interrupt code needs from a VM.  Implementations throw Error.
class IrqChipControl {
public:
    virtual ~IrqChipControl() = default;
    virtual void set_irq_line(uint32_t gsi, bool level) = 0;                         // KVM_IRQ_LINE
    virtual void set_gsi_routing(std::span<const kvm_irq_routing_entry> routes) = 0;  // KVM_SET_GSI_ROUTING
    virtual void set_irqfd(int eventfd, uint32_t gsi, bool assign) = 0;              // KVM_IRQFD
};

// The first GSI past the IOAPIC's pins; MSI routes start here.
inline constexpr uint32_t kFirstMsiGsi = 24;

// The GSI 0-23 routes: KVM's own default table (irq_comm.c default_routing:
// GSI n -> IOAPIC pin n, and -> PIC master/slave pin n % 8 for n < 16)
// except for ISA IRQ 0.  KVM's PIT raises GSI 0 (i8254.c pit_do_work), and
// on a PC the timer reaches the IOAPIC on pin 2 — the MADT says so with an
// interrupt source override (firmware/acpi/madt.cpp) — so GSI 0 goes to
// IOAPIC pin 2 and PIC pin 0, and GSI 2 (the PIC cascade) has no route, as
// QEMU sets it up (hw/i386/kvm/ioapic.c kvm_pc_setup_irq_routing).
std::vector<kvm_irq_routing_entry> default_irqchip_routes();

// ISA IRQ 0, the PIT's GSI, arrives at this IOAPIC pin (the MADT override).
inline constexpr uint32_t kPitGsi = 0;
inline constexpr uint32_t kPitIoapicPin = 2;
// The PIC cascade: routed nowhere.
inline constexpr uint32_t kCascadeGsi = 2;

// An MSI message is deliverable only if it targets the local APIC window
// 0xFEEx_xxxx (Intel SDM vol. 3 §11.11.1).  The address and data are
// guest-controlled (MSI-X table entries).
bool is_msi_address(uint64_t address);

// The route for `gsi` delivering `message`, or nullopt when the message is
// not a valid MSI (such a vector stays unrouted: KVM drops its triggers).
std::optional<kvm_irq_routing_entry> msi_route(uint32_t gsi, const MsiMessage& message);

// An IrqLine that drives one GSI with KVM_IRQ_LINE.
class KvmIrqLine : public IrqLine {
public:
    KvmIrqLine(IrqChipControl& chip, uint32_t gsi) : chip_(chip), gsi_(gsi) {}
    void set_level(bool asserted) override;
    uint32_t gsi() const { return gsi_; }

private:
    IrqChipControl& chip_;
    uint32_t gsi_;
    bool reported_failure_ = false;
};

// Owns the GSI routing table.  Thread-safe.  Must outlive every vector and
// line it hands out; the VM (IrqChipControl) must outlive the router.
class GsiRouter : public MsiAllocator {
public:
    // gsi_count: KVM_CAP_IRQ_ROUTING (routes, and GSIs, are < this).
    // Installs the default routes.
    GsiRouter(IrqChipControl& chip, uint32_t gsi_count);
    ~GsiRouter() override;

    // A line driving `gsi` (< 24; GSI 2, the cascade, has no route, so its
    // line does nothing).  Throws UsageError for any other GSI.
    std::unique_ptr<IrqLine> irq_line(uint32_t gsi);

    // A vector with its own GSI and irqfd; no route until set_message()
    // gives it a valid MSI message.  Throws Error when the table is full.
    std::unique_ptr<MsiVector> allocate() override;

    // The table as last pushed to KVM.
    std::vector<kvm_irq_routing_entry> table() const;
    size_t vector_count() const;

private:
    friend class KvmMsiVector;
    void set_route(uint32_t gsi, const MsiMessage& message);
    void release(uint32_t gsi, int eventfd);
    std::vector<kvm_irq_routing_entry> build_table_locked() const;
    void push_locked();
    uint32_t free_gsi_locked() const;

    IrqChipControl& chip_;
    const uint32_t gsi_count_;
    mutable std::mutex mutex_;
    // Every allocated MSI GSI; nullopt while its message is not a valid MSI.
    std::map<uint32_t, std::optional<MsiMessage>> msi_;
};

}  // namespace tapvm::kvm
