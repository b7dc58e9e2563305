#include "virtio/pci/pci_cfg_window.h"

#include <algorithm>

#include "devices/pci/pci_function.h"
#include "virtio/pci/virtio_pci_regs.h"

namespace tapvm::virtio {

namespace r = pci_regs;

PciCfgWindow::PciCfgWindow(pci::PciFunction& function, std::array<std::shared_ptr<BusDevice>, 6> bar_handlers,
                           std::array<uint64_t, 6> bar_sizes)
    : function_(function), bars_(std::move(bar_handlers)), sizes_(bar_sizes) {}

std::optional<PciCfgWindow::Access> PciCfgWindow::current_access() {
    // All three fields are guest-written; check them as one snapshot.
    uint8_t cap[r::kPciCfgCapSize];
    function_.peek_config(cap_offset_, cap);
    const uint8_t bar = cap[r::kCapBar];
    const auto offset = static_cast<uint32_t>(load_le(std::span(cap + r::kCapOffset, 4)));
    const auto length = static_cast<uint32_t>(load_le(std::span(cap + r::kCapLength, 4)));
    // §4.1.4.9: length 1, 2 or 4, offset a multiple of length, inside a BAR
    // of this function.
    const bool valid = bar < bars_.size() && bars_[bar] && (length == 1 || length == 2 || length == 4) &&
                       offset % length == 0 && offset < sizes_[bar] && length <= sizes_[bar] - offset;
    if (!valid) {
        odd_.note("access through an invalid bar/offset/length", offset, length);
        return std::nullopt;
    }
    return Access{bars_[bar].get(), offset, length};
}

void PciCfgWindow::on_read(uint16_t offset, std::span<uint8_t> data) {
    // Only bytes of pci_cfg_data trigger a BAR access.
    const size_t lo = std::max<size_t>(offset, r::kPciCfgCapData);
    const size_t hi = std::min<size_t>(offset + data.size(), r::kPciCfgCapData + 4);
    if (lo >= hi) return;
    std::array<uint8_t, 4> window{};
    if (auto access = current_access()) access->bar->read(access->offset, std::span(window).first(access->length));
    std::copy(window.begin() + (lo - r::kPciCfgCapData), window.begin() + (hi - r::kPciCfgCapData),
              data.begin() + (lo - offset));
}

void PciCfgWindow::on_write(uint16_t offset, std::span<const uint8_t> data) {
    const size_t lo = std::max<size_t>(offset, r::kPciCfgCapData);
    const size_t hi = std::min<size_t>(offset + data.size(), r::kPciCfgCapData + 4);
    if (lo >= hi) return;
    auto access = current_access();
    if (!access) return;
    // §4.1.4.9.1: "using the first cap.length bytes from pci_cfg_data", as
    // now stored in the capability.
    std::array<uint8_t, 4> window{};
    function_.peek_config(static_cast<uint16_t>(cap_offset_ + r::kPciCfgCapData), window);
    access->bar->write(access->offset, std::span(window).first(access->length));
}

}  // namespace tapvm::virtio
