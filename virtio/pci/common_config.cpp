#include "virtio/pci/common_config.h"

#include <algorithm>

#include "virtio/pci/transport_core.h"
#include "virtio/pci/virtio_pci_regs.h"

namespace tapvm::virtio {

namespace {

using F = CommonField;
namespace r = pci_regs;

// virtio 1.2 §4.1.4.3, struct virtio_pci_common_cfg.  queue_notify_data and
// queue_reset exist only with features tapvm does not offer
// (NOTIF_CONFIG_DATA, RING_RESET), so they read as zero like any hole.
constexpr Register<CommonField> kRegisters[] = {
    {r::kDeviceFeatureSelect, 4, false, "device_feature_select", F::kDeviceFeatureSelect},
    {r::kDeviceFeature, 4, true, "device_feature", F::kDeviceFeature},
    {r::kDriverFeatureSelect, 4, false, "driver_feature_select", F::kDriverFeatureSelect},
    {r::kDriverFeature, 4, false, "driver_feature", F::kDriverFeature},
    {r::kConfigMsixVector, 2, false, "config_msix_vector", F::kConfigMsixVector},
    {r::kNumQueues, 2, true, "num_queues", F::kNumQueues},
    {r::kDeviceStatus, 1, false, "device_status", F::kDeviceStatus},
    {r::kConfigGeneration, 1, true, "config_generation", F::kConfigGeneration},
    {r::kQueueSelect, 2, false, "queue_select", F::kQueueSelect},
    {r::kQueueSize, 2, false, "queue_size", F::kQueueSize},
    {r::kQueueMsixVector, 2, false, "queue_msix_vector", F::kQueueMsixVector},
    {r::kQueueEnable, 2, false, "queue_enable", F::kQueueEnable},
    {r::kQueueNotifyOff, 2, true, "queue_notify_off", F::kQueueNotifyOff},
    {r::kQueueDescLo, 4, false, "queue_desc_lo", F::kQueueDescLo},
    {r::kQueueDescHi, 4, false, "queue_desc_hi", F::kQueueDescHi},
    {r::kQueueDriverLo, 4, false, "queue_driver_lo", F::kQueueDriverLo},
    {r::kQueueDriverHi, 4, false, "queue_driver_hi", F::kQueueDriverHi},
    {r::kQueueDeviceLo, 4, false, "queue_device_lo", F::kQueueDeviceLo},
    {r::kQueueDeviceHi, 4, false, "queue_device_hi", F::kQueueDeviceHi},
};

// A 64-bit access covers a lo/hi pair when both halves are 4-byte registers.
bool is_split_access(uint64_t offset, size_t width) {
    if (width != 8) return false;
    const auto table = common_config_registers();
    return find_register(table, offset, 4) && find_register(table, offset + 4, 4);
}

}  // namespace

std::span<const Register<CommonField>> common_config_registers() { return kRegisters; }

bool CommonConfigRegion::read_register(uint64_t offset, std::span<uint8_t> data, TransportCore& core) {
    const auto* reg = find_register(common_config_registers(), offset, data.size());
    if (!reg) return false;
    store_le(data, core.read_common(reg->field));
    return true;
}

bool CommonConfigRegion::write_register(uint64_t offset, std::span<const uint8_t> data, TransportCore& core) {
    const auto* reg = find_register(common_config_registers(), offset, data.size());
    if (!reg) return false;
    if (reg->read_only) {
        read_only_.note(reg->name, offset, data.size());  // §4.1.4.3.2: driver MUST NOT write
        return true;
    }
    core.write_common(reg->field, static_cast<uint32_t>(load_le(data)));
    return true;
}

void CommonConfigRegion::read(uint64_t offset, std::span<uint8_t> data) {
    std::fill(data.begin(), data.end(), 0);
    auto core = core_.lock();
    if (!core) return;
    if (is_split_access(offset, data.size())) {
        read_register(offset, data.first(4), *core);
        read_register(offset + 4, data.subspan(4), *core);
        return;
    }
    if (!read_register(offset, data, *core)) odd_.note("unknown register read", offset, data.size());
}

void CommonConfigRegion::write(uint64_t offset, std::span<const uint8_t> data) {
    auto core = core_.lock();
    if (!core) return;
    if (is_split_access(offset, data.size())) {
        write_register(offset, data.first(4), *core);
        write_register(offset + 4, data.subspan(4), *core);
        return;
    }
    if (!write_register(offset, data, *core)) odd_.note("unknown register write", offset, data.size());
}

}  // namespace tapvm::virtio
