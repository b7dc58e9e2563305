// Available-buffer notifications ("kicks", virtio 1.2 §4.1.5.2): one eventfd
// per queue, which the device's I/O thread waits on.
//
// Two paths lead to the same eventfd:
//   * ioeventfd: KVM signals it directly when the guest writes the queue's
//     doorbell, without an exit to the vCPU thread.  Registered for the
//     modern notify address (MMIO, any width) and for the legacy
//     QUEUE_NOTIFY port (PIO, 16-bit, data = queue index), and moved
//     whenever the guest relocates the BAR;
//   * the BAR region handler: when no ioeventfd matched (not registered,
//     registration failed, or a unit test without KVM), the write reaches
//     tapvm and ring() signals the eventfd itself.
#pragma once

#include <cstdint>
#include <mutex>
#include <optional>
#include <vector>

#include "vmm/event_fd.h"
#include "vmm/io_event.h"

namespace tapvm::virtio {

class Doorbells {
public:
    Doorbells(IoEventRegistry& registry, uint16_t num_queues);
    ~Doorbells();  // unregisters every ioeventfd
    Doorbells(const Doorbells&) = delete;
    Doorbells& operator=(const Doorbells&) = delete;

    // The driver kicked `queue` (guest-controlled; out of range is ignored).
    void ring(uint16_t queue) const;
    std::vector<int> fds() const;
    // Forgets kicks nobody consumed (device reset).
    void drain() const;

    // The modern BAR (notify structure at `notify_offset`) or the legacy I/O
    // BAR now lives at `base` (nullopt: unmapped).
    void modern_bar_moved(std::optional<uint64_t> base, uint64_t notify_offset, uint32_t multiplier);
    void legacy_bar_moved(std::optional<uint64_t> base, uint16_t notify_register);

private:
    // Replaces the registrations in `current` with `wanted`.  A failed add
    // is logged and skipped: the BAR handler path still delivers the kick.
    void replace(std::vector<IoEventSpec>& current, std::vector<IoEventSpec> wanted);

    IoEventRegistry& registry_;
    std::vector<EventFd> events_;
    std::mutex mutex_;  // BAR moves come from whichever vCPU wrote the BAR
    std::vector<IoEventSpec> modern_;
    std::vector<IoEventSpec> legacy_;
};

}  // namespace tapvm::virtio
