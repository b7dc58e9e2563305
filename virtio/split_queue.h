// Device side of a split virtqueue (virtio 1.2 §2.7).  Owns all ring access:
// memory ordering (acquire on avail.idx, release on used.idx), avail-index
// sanity, in-flight tracking and EVENT_IDX / flag-based suppression in both
// directions.  Devices never touch ring memory themselves.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "virtio/chain_error.h"
#include "virtio/descriptor_chain.h"
#include "vmm/guest_memory.h"

namespace tapvm::virtio {

// What the driver wrote into the transport's queue registers.
struct QueueConfig {
    uint16_t size = 0;
    Gpa desc = 0;
    Gpa avail = 0;
    Gpa used = 0;
};

enum class PopStatus {
    kChain,  // `chain` holds a validated chain; the device must complete() it
    kEmpty,  // nothing available
    kError,  // see PopResult::error.  A per-chain error has already been
             // completed with length 0; a ring error leaves the queue broken()
};

struct PopResult {
    PopStatus status = PopStatus::kEmpty;
    ChainError error = ChainError::kCount;
};

struct QueueStats {
    uint64_t chains_popped = 0;
    uint64_t chains_completed = 0;
    uint64_t interrupts_suppressed = 0;
    std::array<uint64_t, static_cast<size_t>(ChainError::kCount)> errors{};
};

class SplitQueue {
public:
    static constexpr uint16_t kMaxSize = 32768;

    // Validates the driver's ring placement before anything is touched:
    // size a power of two in [1, 32768], desc 16-byte, avail 2-byte and used
    // 4-byte aligned, and each ring (including the EVENT_IDX trailer) wholly
    // inside guest RAM.  On failure returns null and says why in `why`.
    static std::unique_ptr<SplitQueue> create(const GuestMemory& memory, const QueueConfig& config,
                                              uint64_t features, std::string& why);

    uint16_t size() const;

    // Pops the next available chain into `chain` (whose storage is reused).
    PopResult pop(DescriptorChain& chain);
    // Gives back the most recently popped, not yet completed chain: the next
    // pop() returns it again (RX found no packet after all).
    void unpop(DescriptorChain& chain);
    // Returns a chain to the driver with `written` bytes written by the
    // device.  Visible to the driver only after publish().
    void complete(DescriptorChain& chain, uint32_t written);
    // Makes all completions visible (release-store of used.idx).
    void publish();
    // After publish(): does the driver want an interrupt for what was
    // published since the last signal?  (EVENT_IDX used_event, or the
    // NO_INTERRUPT flag.)  Each call closes the window, whatever it
    // returns (as vhost does; the driver re-checks used.idx itself).
    bool should_signal();

    // Kick suppression while the device is busy draining the queue.
    void disable_notifications();
    // Re-arms kicks; returns true when buffers arrived meanwhile, so the
    // caller must keep going (closes the race with the driver).
    bool enable_notifications();
    bool has_available() const;

    // The next avail ring entry the device will pop (vhost-user
    // GET_VRING_BASE reports it when a ring stops).
    uint16_t next_avail_index() const;
    // Continue a ring that another device instance left off (vhost-user
    // SET_VRING_BASE): pop from avail entry `next_avail`; the used side
    // carries on from used.idx as it stands in guest memory.  Only before the
    // first pop.
    void resume_at(uint16_t next_avail);

    // A ring error happened: the device should set DEVICE_NEEDS_RESET.
    bool broken() const;
    const QueueStats& stats() const;

    ~SplitQueue();

private:
    SplitQueue();
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

}  // namespace tapvm::virtio
