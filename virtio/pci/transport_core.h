// The state behind the virtio-pci registers: feature negotiation, the
// device status state machine (virtio 1.2 §2.1, §3.1), the per-queue
// configuration, activation at DRIVER_OK and device reset.  Both the modern
// common configuration (common_config.h) and the legacy header
// (legacy_config.h) are decoders in front of this one state, so the two
// interfaces cannot drift apart.
//
// Threads: register accesses come from any vCPU thread and are serialized
// by one mutex; VirtioDevice::activate()/reset() run under it too (a vCPU
// writing a register meanwhile waits).  The interrupt and the doorbells,
// which the device's I/O thread uses, never take this mutex.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <vector>

#include "virtio/pci/common_config.h"
#include "virtio/pci/doorbells.h"
#include "virtio/pci/legacy_config.h"
#include "virtio/pci/virtio_pci_interrupt.h"
#include "virtio/split_queue.h"
#include "virtio/virtio_device.h"
#include "vmm/guest_memory.h"
#include "vmm/log_limiter.h"

namespace tapvm::pci {
class PciFunction;
}

namespace tapvm::virtio {

class TransportCore {
public:
    // `function` must have its MSI-X table already; `memory` and `registry`
    // must outlive the core.
    TransportCore(std::shared_ptr<VirtioDevice> device, const GuestMemory& memory,
                  std::shared_ptr<pci::PciFunction> function, IoEventRegistry& registry);
    // Stops the device's data path before the rings go away.
    ~TransportCore();
    TransportCore(const TransportCore&) = delete;
    TransportCore& operator=(const TransportCore&) = delete;

    // --- Modern interface (§4.1.4.3) ----------------------------------------
    uint32_t read_common(CommonField field);
    void write_common(CommonField field, uint32_t value);

    // --- Legacy interface (§4.1.4.8) ----------------------------------------
    uint32_t read_legacy(LegacyField field);
    void write_legacy(LegacyField field, uint32_t value);
    // 24 with MSI-X enabled, 20 without.
    uint64_t legacy_header_size() const;

    // --- Shared by both -------------------------------------------------------
    void read_device_config(uint64_t offset, std::span<uint8_t> data);
    void write_device_config(uint64_t offset, std::span<const uint8_t> data);
    uint8_t read_isr() { return interrupt_.read_isr(); }
    void notify(uint16_t queue) { doorbells_.ring(queue); }

    VirtioPciInterrupt& interrupt() { return interrupt_; }
    Doorbells& doorbells() { return doorbells_; }
    uint8_t status() const;
    bool active() const;
    // The device cannot go on (e.g. a ring error): DEVICE_NEEDS_RESET plus a
    // configuration change interrupt, once until the next reset.  Safe from
    // the device's I/O thread: it never takes mutex_ (reset() holds mutex_
    // while it waits for that thread to stop).
    void device_needs_reset(const char* why);
    uint16_t num_queues() const { return num_queues_; }

private:
    mutable LogLimiter guest_log_;  // lines the guest can trigger (vmm/log_limiter.h)
    enum class Interface { kModern, kLegacy };

    // What the driver wrote into one queue's registers.
    struct QueueRegs {
        uint16_t size = 0;
        bool enabled = false;
        Gpa desc = 0;
        Gpa driver = 0;
        Gpa device = 0;
    };

    // All expect mutex_ held.
    uint8_t visible_status() const;
    void set_status(uint8_t value, Interface interface);
    bool negotiate(Interface interface);
    void activate(Interface interface);
    void fail(const std::string& why);
    void reset();
    QueueRegs* selected_queue();
    bool queue_writable(const char* what);
    void write_queue_size(uint16_t size);
    void write_queue_pfn(uint32_t pfn);
    void write_driver_feature(uint32_t value);
    static void set_half(Gpa& address, bool high, uint32_t value);

    const std::shared_ptr<VirtioDevice> device_;
    const GuestMemory& memory_;
    const std::shared_ptr<pci::PciFunction> function_;
    const uint64_t offered_;
    const uint16_t num_queues_;
    const uint16_t max_queue_size_;
    VirtioPciInterrupt interrupt_;
    Doorbells doorbells_;

    mutable std::mutex mutex_;
    uint8_t status_ = 0;  // the driver's bits; DEVICE_NEEDS_RESET lives in needs_reset_
    std::atomic<bool> needs_reset_{false};
    uint32_t device_feature_select_ = 0;
    uint32_t driver_feature_select_ = 0;
    uint64_t driver_features_ = 0;  // as written by the driver
    bool features_accepted_ = false;
    uint64_t negotiated_ = 0;       // valid once features_accepted_
    uint16_t queue_select_ = 0;
    std::vector<QueueRegs> queues_;
    std::vector<std::unique_ptr<SplitQueue>> rings_;  // while active
    bool active_ = false;
    bool unoffered_logged_ = false;
    bool late_write_logged_ = false;
};

}  // namespace tapvm::virtio
