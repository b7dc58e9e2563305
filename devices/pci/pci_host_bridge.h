// PCI bus 0 of a tapvm machine: a host bridge function at slot 0 and up to 31
// device functions (function 0 of slots 1..31; no multifunction devices),
// reachable through configuration mechanism #1 (ports 0xcf8-0xcff) and ECAM.
//
// add_device() is what firmware would do at boot: it picks the next free slot,
// sets Interrupt Line from layout::pci_intx_gsi() (the same function the
// DSDT's _PRT uses), connects the INTx line, assigns BAR addresses from the
// machine's windows (layout::kPciMmio32Start.., layout::kPciIoStart..), and
// attaches the function to the buses.  Linux keeps BARs assigned this way
// when they lie inside the host bridge windows it learns from ACPI _CRS.
//
//   pci::PciHostBridge bridge({.mmio = &mmio_bus, .pio = &pio_bus},
//                             [&](uint32_t gsi) { return irqchip.line(gsi); });
//   pio_bus.insert(layout::kPciConfigAddress, pci::PciConfigPorts::kSize,
//                  bridge.config_ports());
//   mmio_bus.insert(layout::kEcamStart, layout::kEcamSize, bridge.ecam());
//   unsigned slot = bridge.add_device(virtio_net_function);
//
// Non-existent functions read as all-ones (the guest's scan moves on) and
// ignore writes.
//
// Lifetime: the bridge owns the functions added to it (with whoever else
// holds them); the buses must outlive every function, because a function
// removes its BARs from them when it is destroyed.  config_ports() and ecam()
// do not keep the bridge alive: after it is gone they read as all-ones.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>

#include "devices/pci/bar_allocator.h"
#include "devices/pci/pci_config_access.h"
#include "devices/pci/pci_function.h"
#include "vmm/irq.h"

namespace tapvm::pci {

inline constexpr unsigned kSlotsPerBus = 32;
inline constexpr unsigned kHostBridgeSlot = 0;
// The host bridge's identity: Intel's 0x0d57 as used by Firecracker and
// Cloud Hypervisor for the same purpose; class "host bridge" (06/00).
inline constexpr uint16_t kHostBridgeVendorId = 0x8086;
inline constexpr uint16_t kHostBridgeDeviceId = 0x0d57;

// Returns the interrupt line wired to a GSI (the IOAPIC pin); the line must
// outlive the bridge's functions.
using IntxLineProvider = std::function<IrqLine*(uint32_t gsi)>;

class PciHostBridge {
public:
    explicit PciHostBridge(PciBuses buses, IntxLineProvider intx_lines = {});

    // Puts `function` at the next free slot and returns the slot.  Throws
    // Error when the bus is full or a BAR does not fit its window.
    unsigned add_device(std::shared_ptr<PciFunction> function);

    // The function at bus/slot/function, or null.
    PciFunction* function(unsigned bus, unsigned slot, unsigned fn) const;

    // A configuration access as a guest makes it (mechanism #1 or ECAM).
    // `reg` + data.size() <= 4096.  Absent functions read all-ones.
    void read_config(unsigned bus, unsigned slot, unsigned fn, uint16_t reg,
                     std::span<uint8_t> data) const;
    void write_config(unsigned bus, unsigned slot, unsigned fn, uint16_t reg,
                      std::span<const uint8_t> data) const;

    // Bus devices for the machine to insert (see the example above).
    std::shared_ptr<PciConfigPorts> config_ports() const { return config_ports_; }
    std::shared_ptr<PciEcam> ecam() const { return ecam_; }

private:
    // The slot table.  The bridge owns it (and so its functions); the access
    // devices only hold weak references, so tearing down in any order works.
    class Slots : public PciConfigTarget {
    public:
        void read_config(unsigned bus, unsigned slot, unsigned fn, uint16_t reg,
                         std::span<uint8_t> data) const override;
        void write_config(unsigned bus, unsigned slot, unsigned fn, uint16_t reg,
                          std::span<const uint8_t> data) const override;
        PciFunction* find(unsigned bus, unsigned slot, unsigned fn) const;
        // Filled during assembly only, read by vCPUs afterwards.
        std::array<std::shared_ptr<PciFunction>, kSlotsPerBus> functions;
    };

    void assign_bars(PciFunction& function);

    PciBuses buses_;
    IntxLineProvider intx_lines_;
    std::shared_ptr<Slots> slots_;
    unsigned next_slot_ = kHostBridgeSlot + 1;
    BarAllocator mmio32_;
    BarAllocator io_;
    std::shared_ptr<PciConfigPorts> config_ports_;
    std::shared_ptr<PciEcam> ecam_;
};

}  // namespace tapvm::pci
