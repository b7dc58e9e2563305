// The seam between a virtio device (net/) and its transport (virtio/pci/).
// The transport owns the registers, the status state machine and the queue
// configuration; the device owns features, config space and the data path.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "vmm/guest_memory.h"

namespace tapvm::virtio {

class SplitQueue;

// How a device tells the driver "look at your used ring" or "config changed".
// The transport maps this onto MSI-X vectors (or INTx + ISR).  Safe to call
// from the device's I/O thread.
class VirtioInterrupt {
public:
    virtual ~VirtioInterrupt() = default;
    virtual void signal_queue(uint16_t queue_index) = 0;
    virtual void signal_config() = 0;
};

// What the transport hands a device at DRIVER_OK.
struct ActivationContext {
    const GuestMemory* memory = nullptr;
    uint64_t features = 0;                  // negotiated (FEATURES_OK accepted)
    std::vector<SplitQueue*> queues;        // one per device queue; null if the
                                            // driver left that queue disabled
    std::vector<int> notify_eventfds;       // one per queue: readable when kicked
    VirtioInterrupt* interrupt = nullptr;
};

class VirtioDevice {
public:
    virtual ~VirtioDevice() = default;

    virtual uint32_t device_type() const = 0;       // virtio 1.2 §5: 1 = network
    // Every feature bit the device offers, transport bits included
    // (VERSION_1, RING_EVENT_IDX, RING_INDIRECT_DESC, ...).
    virtual uint64_t offered_features() const = 0;
    virtual uint16_t num_queues() const = 0;
    virtual uint16_t max_queue_size() const = 0;

    // Device-specific configuration space (virtio 1.2 §4.1.4.6).  Reads past
    // the end return zeros; writes to read-only fields are ignored.
    virtual void read_config(uint64_t offset, std::span<uint8_t> data) = 0;
    virtual void write_config(uint64_t offset, std::span<const uint8_t> data) = 0;

    // The driver set FEATURES_OK with `features` (already a subset of the
    // offer).  Return false to refuse the combination (virtio 1.2 §3.1.1:
    // the device then leaves FEATURES_OK clear).
    virtual bool accept_features(uint64_t features) = 0;

    // DRIVER_OK: rings are validated and the data path may start.
    virtual void activate(const ActivationContext& context) = 0;

    // Device reset: stop the data path and forget the rings.  Returns only
    // when no thread touches guest memory on the device's behalf any more.
    virtual void reset() = 0;
};

}  // namespace tapvm::virtio
