#include "virtio/pci/modern_regions.h"

#include <algorithm>

#include "virtio/pci/transport_core.h"

namespace tapvm::virtio {

void NotifyRegion::read(uint64_t, std::span<uint8_t> data) { std::fill(data.begin(), data.end(), 0); }

void NotifyRegion::write(uint64_t offset, std::span<const uint8_t> data) {
    auto core = core_.lock();
    if (!core) return;
    // Without VIRTIO_F_NOTIFICATION_DATA the value written is the queue
    // index (§4.1.5.2), which the address already tells us.
    const uint64_t queue = offset / multiplier_;
    if (offset % multiplier_ != 0 || queue >= core->num_queues()) {
        odd_.note("doorbell write outside any queue's slot", offset, data.size());
        return;
    }
    core->notify(static_cast<uint16_t>(queue));
}

void IsrRegion::read(uint64_t offset, std::span<uint8_t> data) {
    std::fill(data.begin(), data.end(), 0);
    auto core = core_.lock();
    if (!core || offset != 0 || data.empty()) return;
    data[0] = core->read_isr();
}

void DeviceConfigRegion::read(uint64_t offset, std::span<uint8_t> data) {
    std::fill(data.begin(), data.end(), 0);
    if (auto core = core_.lock()) core->read_device_config(offset, data);
}

void DeviceConfigRegion::write(uint64_t offset, std::span<const uint8_t> data) {
    if (auto core = core_.lock()) core->write_device_config(offset, data);
}

}  // namespace tapvm::virtio
