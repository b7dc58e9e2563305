// The legacy virtio-pci interface (virtio 1.2 §4.1.4.8): the I/O BAR0 that
// pre-1.0 drivers use, as a register table plus the region decoding it.
//
// Layout: a 20-byte header, two MSI-X vector registers that exist only while
// MSI-X is enabled, then the device-specific configuration, which therefore
// starts at 24 with MSI-X enabled and at 20 without ("once you enable MSI-X
// on the device, the other fields move").
#pragma once

#include <cstdint>
#include <memory>
#include <span>

#include "virtio/pci/register_file.h"
#include "vmm/bus.h"

namespace tapvm::virtio {

class TransportCore;

enum class LegacyField {
    kHostFeatures,
    kGuestFeatures,
    kQueuePfn,
    kQueueNum,
    kQueueSelect,
    kQueueNotify,
    kStatus,
    kIsr,
    kConfigVector,
    kQueueVector,
};

std::span<const Register<LegacyField>> legacy_registers();

class LegacyConfigRegion : public BusDevice {
public:
    explicit LegacyConfigRegion(std::weak_ptr<TransportCore> core) : core_(std::move(core)) {}
    void read(uint64_t offset, std::span<uint8_t> data) override;
    void write(uint64_t offset, std::span<const uint8_t> data) override;

private:
    // The register for this access, honouring the MSI-X-dependent layout.
    const Register<LegacyField>* find(uint64_t offset, size_t width, uint64_t header) const;

    std::weak_ptr<TransportCore> core_;
    OddAccessLog odd_{"legacy header"};
};

}  // namespace tapvm::virtio
