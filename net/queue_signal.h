// The end of every batch on every queue: make the completions visible, then
// interrupt the driver only if it asked to be told (EVENT_IDX used_event or
// the NO_INTERRUPT flag; virtio 1.2 §2.7.7.2).
#pragma once

#include <cstdint>

#include "net/net_stats.h"
#include "virtio/split_queue.h"
#include "virtio/virtio_device.h"

namespace tapvm::net {

inline void publish_and_signal(virtio::SplitQueue& queue, virtio::VirtioInterrupt& interrupt,
                               uint16_t queue_index, Counter& interrupts) {
    queue.publish();
    if (queue.should_signal()) {
        interrupt.signal_queue(queue_index);
        interrupts.add();
    }
}

}  // namespace tapvm::net
