#include "virtio/pci/legacy_config.h"

#include <algorithm>

#include "virtio/pci/transport_core.h"
#include "virtio/pci/virtio_pci_regs.h"

namespace tapvm::virtio {

namespace {

using F = LegacyField;
namespace r = pci_regs;

// virtio 1.2 §4.1.4.8, "the virtio common configuration structure looks as
// follows" when used through the legacy interface.
constexpr Register<LegacyField> kRegisters[] = {
    {r::kLegacyHostFeatures, 4, true, "host_features", F::kHostFeatures},
    {r::kLegacyGuestFeatures, 4, false, "guest_features", F::kGuestFeatures},
    {r::kLegacyQueuePfn, 4, false, "queue_pfn", F::kQueuePfn},
    {r::kLegacyQueueNum, 2, true, "queue_num", F::kQueueNum},
    {r::kLegacyQueueSelect, 2, false, "queue_select", F::kQueueSelect},
    {r::kLegacyQueueNotify, 2, false, "queue_notify", F::kQueueNotify},
    {r::kLegacyStatus, 1, false, "status", F::kStatus},
    {r::kLegacyIsr, 1, true, "isr", F::kIsr},
    // Only while MSI-X is enabled:
    {r::kLegacyConfigVector, 2, false, "config_msix_vector", F::kConfigVector},
    {r::kLegacyQueueVector, 2, false, "queue_msix_vector", F::kQueueVector},
};

}  // namespace

std::span<const Register<LegacyField>> legacy_registers() { return kRegisters; }

const Register<LegacyField>* LegacyConfigRegion::find(uint64_t offset, size_t width, uint64_t header) const {
    if (offset >= header) return nullptr;
    return find_register(legacy_registers(), offset, width);
}

void LegacyConfigRegion::read(uint64_t offset, std::span<uint8_t> data) {
    std::fill(data.begin(), data.end(), 0);
    auto core = core_.lock();
    if (!core) return;
    const uint64_t header = core->legacy_header_size();
    if (offset >= header) {
        // Device config: any width is fine for the legacy interface (§4.1.4.8).
        core->read_device_config(offset - header, data);
        return;
    }
    if (const auto* reg = find(offset, data.size(), header))
        store_le(data, core->read_legacy(reg->field));
    else
        odd_.note("unknown register read", offset, data.size());
}

void LegacyConfigRegion::write(uint64_t offset, std::span<const uint8_t> data) {
    auto core = core_.lock();
    if (!core) return;
    const uint64_t header = core->legacy_header_size();
    if (offset >= header) {
        core->write_device_config(offset - header, data);
        return;
    }
    const auto* reg = find(offset, data.size(), header);
    if (!reg || reg->read_only) {
        odd_.note(reg ? "write to a read-only register" : "unknown register write", offset, data.size());
        return;
    }
    core->write_legacy(reg->field, static_cast<uint32_t>(load_le(data)));
}

}  // namespace tapvm::virtio
