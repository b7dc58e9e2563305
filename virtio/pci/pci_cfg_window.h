// VIRTIO_PCI_CAP_PCI_CFG (virtio 1.2 §4.1.4.9): a window in configuration
// space through which a driver (typically firmware that cannot map BARs yet)
// reaches the BAR registers.  The driver writes cap.bar, cap.offset and
// cap.length (1, 2 or 4) into the capability; a write to pci_cfg_data then
// performs that write in the BAR, and a read of pci_cfg_data performs the
// read — with all its side effects (an ISR read clears the ISR).
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>

#include "virtio/pci/register_file.h"
#include "vmm/bus.h"

namespace tapvm::pci {
class PciFunction;
}

namespace tapvm::virtio {

class PciCfgWindow {
public:
    // `function` owns this window (through its capability hooks), so it
    // outlives it.  bar_handlers[i] routes accesses to BAR i (null: none).
    PciCfgWindow(pci::PciFunction& function, std::array<std::shared_ptr<BusDevice>, 6> bar_handlers,
                 std::array<uint64_t, 6> bar_sizes);

    // Where add_capability() put the capability.
    void set_capability_offset(uint8_t offset) { cap_offset_ = offset; }

    // PciFunction capability hooks; offsets relative to the capability.
    void on_read(uint16_t offset, std::span<uint8_t> data);
    void on_write(uint16_t offset, std::span<const uint8_t> data);

private:
    struct Access {
        BusDevice* bar;
        uint32_t offset;
        uint32_t length;
    };
    // The access the capability describes now, if it is a valid one.
    std::optional<Access> current_access();

    pci::PciFunction& function_;
    std::array<std::shared_ptr<BusDevice>, 6> bars_;
    std::array<uint64_t, 6> sizes_;
    uint8_t cap_offset_ = 0;
    OddAccessLog odd_{"pci_cfg window"};
};

}  // namespace tapvm::virtio
