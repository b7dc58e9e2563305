// The modern common configuration structure (virtio 1.2 §4.1.4.3) as a
// register table, and the BAR region that decodes guest accesses with it.
#pragma once

#include <cstdint>
#include <memory>
#include <span>

#include "virtio/pci/register_file.h"
#include "vmm/bus.h"

namespace tapvm::virtio {

class TransportCore;

enum class CommonField {
    kDeviceFeatureSelect,
    kDeviceFeature,
    kDriverFeatureSelect,
    kDriverFeature,
    kConfigMsixVector,
    kNumQueues,
    kDeviceStatus,
    kConfigGeneration,
    kQueueSelect,
    kQueueSize,
    kQueueMsixVector,
    kQueueEnable,
    kQueueNotifyOff,
    kQueueDescLo,
    kQueueDescHi,
    kQueueDriverLo,
    kQueueDriverHi,
    kQueueDeviceLo,
    kQueueDeviceHi,
};

// struct virtio_pci_common_cfg, one row per field.
std::span<const Register<CommonField>> common_config_registers();

class CommonConfigRegion : public BusDevice {
public:
    explicit CommonConfigRegion(std::weak_ptr<TransportCore> core) : core_(std::move(core)) {}
    // Accesses of a register's own width reach the transport; an 8-byte
    // access to a 64-bit address pair is split into its two halves
    // (§4.1.3.1 lets drivers use two 32-bit accesses; some use one 64-bit).
    // Anything else reads as zero and is logged once.
    void read(uint64_t offset, std::span<uint8_t> data) override;
    void write(uint64_t offset, std::span<const uint8_t> data) override;

private:
    bool read_register(uint64_t offset, std::span<uint8_t> data, TransportCore& core);
    bool write_register(uint64_t offset, std::span<const uint8_t> data, TransportCore& core);

    std::weak_ptr<TransportCore> core_;
    OddAccessLog odd_{"common config"};
    OddAccessLog read_only_{"common config (read-only field)"};
};

}  // namespace tapvm::virtio
