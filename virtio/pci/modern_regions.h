// The small register blocks of the modern BAR (virtio 1.2 §4.1.4.4-§4.1.4.6):
// notify doorbells, ISR status and the device-specific configuration.  Each
// is a thin decoder in front of the TransportCore; the common configuration
// has its own file (common_config.h).
#pragma once

#include <cstdint>
#include <memory>
#include <span>

#include "virtio/pci/register_file.h"
#include "vmm/bus.h"

namespace tapvm::virtio {

class TransportCore;

// Queue q's doorbell sits at q * multiplier (queue_notify_off = q).  A write
// of any width there kicks q; reads return zero.
class NotifyRegion : public BusDevice {
public:
    NotifyRegion(std::weak_ptr<TransportCore> core, uint32_t multiplier)
        : core_(std::move(core)), multiplier_(multiplier) {}
    void read(uint64_t offset, std::span<uint8_t> data) override;
    void write(uint64_t offset, std::span<const uint8_t> data) override;

private:
    std::weak_ptr<TransportCore> core_;
    uint32_t multiplier_;
    OddAccessLog odd_{"notify"};
};

// One byte, read-to-clear (§4.1.4.5).  Writes are ignored.
class IsrRegion : public BusDevice {
public:
    explicit IsrRegion(std::weak_ptr<TransportCore> core) : core_(std::move(core)) {}
    void read(uint64_t offset, std::span<uint8_t> data) override;
    void write(uint64_t, std::span<const uint8_t>) override {}

private:
    std::weak_ptr<TransportCore> core_;
};

// Forwards to VirtioDevice::read_config / write_config.
class DeviceConfigRegion : public BusDevice {
public:
    explicit DeviceConfigRegion(std::weak_ptr<TransportCore> core) : core_(std::move(core)) {}
    void read(uint64_t offset, std::span<uint8_t> data) override;
    void write(uint64_t offset, std::span<const uint8_t> data) override;

private:
    std::weak_ptr<TransportCore> core_;
};

}  // namespace tapvm::virtio
