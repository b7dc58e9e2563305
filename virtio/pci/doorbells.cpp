#include "virtio/pci/doorbells.h"

#include <spdlog/spdlog.h>

#include "vmm/error.h"

namespace tapvm::virtio {

Doorbells::Doorbells(IoEventRegistry& registry, uint16_t num_queues) : registry_(registry) {
    events_.reserve(num_queues);
    for (uint16_t i = 0; i < num_queues; ++i) events_.emplace_back();
}

Doorbells::~Doorbells() {
    std::lock_guard lock(mutex_);
    replace(modern_, {});
    replace(legacy_, {});
}

void Doorbells::ring(uint16_t queue) const {
    if (queue < events_.size()) events_[queue].signal();
}

std::vector<int> Doorbells::fds() const {
    std::vector<int> fds;
    for (const auto& e : events_) fds.push_back(e.fd());
    return fds;
}

void Doorbells::drain() const {
    for (const auto& e : events_) e.consume();
}

void Doorbells::modern_bar_moved(std::optional<uint64_t> base, uint64_t notify_offset, uint32_t multiplier) {
    std::vector<IoEventSpec> wanted;
    if (base) {
        for (size_t q = 0; q < events_.size(); ++q) {
            // §4.1.4.4: cap.offset + queue_notify_off * notify_off_multiplier,
            // with queue_notify_off = q.  Any width: the data is the queue
            // index (no VIRTIO_F_NOTIFICATION_DATA), which the address says.
            wanted.push_back(IoEventSpec{AddressSpace::Mmio, *base + notify_offset + q * multiplier, 0,
                                         std::nullopt, events_[q].fd()});
        }
    }
    std::lock_guard lock(mutex_);
    replace(modern_, std::move(wanted));
}

void Doorbells::legacy_bar_moved(std::optional<uint64_t> base, uint16_t notify_register) {
    std::vector<IoEventSpec> wanted;
    if (base) {
        // §4.1.4.8: one 16-bit QUEUE_NOTIFY port for all queues; the value
        // written is the queue index.
        for (size_t q = 0; q < events_.size(); ++q)
            wanted.push_back(IoEventSpec{AddressSpace::Pio, *base + notify_register, 2, uint64_t{q},
                                         events_[q].fd()});
    }
    std::lock_guard lock(mutex_);
    replace(legacy_, std::move(wanted));
}

void Doorbells::replace(std::vector<IoEventSpec>& current, std::vector<IoEventSpec> wanted) {
    for (const auto& spec : current) {
        try {
            registry_.remove(spec);
        } catch (const Error& e) {
            spdlog::warn("virtio-pci: removing ioeventfd at {:#x}: {}", spec.address, e.what());
        }
    }
    current.clear();
    for (const auto& spec : wanted) {
        try {
            registry_.add(spec);
            current.push_back(spec);
        } catch (const Error& e) {
            spdlog::warn("virtio-pci: ioeventfd at {:#x} not registered ({}); kicks will exit to tapvm",
                         spec.address, e.what());
        }
    }
}

}  // namespace tapvm::virtio
