#include "devices/pci/pci_host_bridge.h"

#include <algorithm>
#include <vector>

#include <spdlog/spdlog.h>

#include "vmm/error.h"
#include "vmm/layout.h"

namespace tapvm::pci {

PciHostBridge::PciHostBridge(PciBuses buses, IntxLineProvider intx_lines)
    : buses_(buses),
      intx_lines_(std::move(intx_lines)),
      slots_(std::make_shared<Slots>()),
      mmio32_("PCI MMIO32 window", layout::kPciMmio32Start, layout::kPciMmio32Size),
      io_("PCI I/O window", layout::kPciIoStart, layout::kPciIoSize),
      config_ports_(std::make_shared<PciConfigPorts>(slots_)),
      ecam_(std::make_shared<PciEcam>(slots_)) {
    PciIdentity identity;
    identity.vendor_id = kHostBridgeVendorId;
    identity.device_id = kHostBridgeDeviceId;
    identity.class_code = kClassBridge;
    identity.subclass = kSubclassHostBridge;
    slots_->functions[kHostBridgeSlot] = std::make_shared<PciFunction>(identity, "pci-host-bridge");
}

unsigned PciHostBridge::add_device(std::shared_ptr<PciFunction> function) {
    if (!function) throw Error("PCI: add_device without a function");
    if (std::find(slots_->functions.begin(), slots_->functions.end(), function) !=
        slots_->functions.end())
        throw Error("PCI: " + function->name() + " is already on the bus");
    if (next_slot_ >= kSlotsPerBus)
        throw Error("PCI: bus 0 is full, cannot add " + function->name());
    unsigned slot = next_slot_;

    assign_bars(*function);
    if (uint8_t pin = function->interrupt_pin()) {
        uint32_t gsi = layout::pci_intx_gsi(slot, pin - 1u);
        function->set_interrupt_line(static_cast<uint8_t>(gsi));
        if (intx_lines_) function->connect_intx(intx_lines_(gsi));
    }
    function->attach(buses_);

    spdlog::debug("PCI: {} at 00:{:02x}.0", function->name(), slot);
    slots_->functions[slot] = std::move(function);
    ++next_slot_;
    return slot;
}

void PciHostBridge::assign_bars(PciFunction& function) {
    // Largest first: with size-aligned placement that leaves no gaps.
    std::vector<unsigned> bars;
    for (unsigned i = 0; i < kNumBars; ++i)
        if (function.bar_size(i)) bars.push_back(i);
    std::stable_sort(bars.begin(), bars.end(), [&](unsigned a, unsigned b) {
        return function.bar_size(a) > function.bar_size(b);
    });
    for (unsigned bar : bars) {
        uint64_t size = function.bar_size(bar);
        // 64-bit BARs come from the 32-bit window too: the guest then needs
        // no 64-bit window in its _CRS, and there is room enough for now.
        BarAllocator& window = *function.bar_kind(bar) == BarKind::Io ? io_ : mmio32_;
        function.set_bar_address(bar, window.allocate(size));
    }
}

PciFunction* PciHostBridge::function(unsigned bus, unsigned slot, unsigned fn) const {
    return slots_->find(bus, slot, fn);
}

void PciHostBridge::read_config(unsigned bus, unsigned slot, unsigned fn, uint16_t reg,
                                std::span<uint8_t> data) const {
    slots_->read_config(bus, slot, fn, reg, data);
}

void PciHostBridge::write_config(unsigned bus, unsigned slot, unsigned fn, uint16_t reg,
                                 std::span<const uint8_t> data) const {
    slots_->write_config(bus, slot, fn, reg, data);
}

PciFunction* PciHostBridge::Slots::find(unsigned bus, unsigned slot, unsigned fn) const {
    // One bus, function 0 only (no multifunction devices).
    if (bus != 0 || slot >= kSlotsPerBus || fn != 0) return nullptr;
    return functions[slot].get();
}

void PciHostBridge::Slots::read_config(unsigned bus, unsigned slot, unsigned fn, uint16_t reg,
                                       std::span<uint8_t> data) const {
    if (PciFunction* f = find(bus, slot, fn)) return f->read_config(reg, data);
    // Absent function: the host bridge terminates the transaction with
    // all-ones, which guests read as "vendor 0xffff: nothing here".
    std::fill(data.begin(), data.end(), 0xff);
}

void PciHostBridge::Slots::write_config(unsigned bus, unsigned slot, unsigned fn, uint16_t reg,
                                        std::span<const uint8_t> data) const {
    if (PciFunction* f = find(bus, slot, fn)) f->write_config(reg, data);
}

}  // namespace tapvm::pci
