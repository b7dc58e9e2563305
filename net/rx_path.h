// Tap -> guest (virtio 1.2 §5.1.6.3, §5.1.6.4).  One readv per frame,
// straight into the guest's receive buffers.
//
// Mergeable buffers (MRG_RXBUF): Linux posts single-descriptor buffers of
// about a page.  RxPath pops as many as it takes to hold the largest frame a
// tap can produce (kMaxPacketLen, a 64 KiB GSO frame plus headers), gathers
// them into one iovec, reads once, then splits the length over the buffers,
// writes num_buffers into the first one's header and completes the buffers
// the frame used.  The rest stay popped, held in order for the next frame,
// so a small frame costs one pop rather than forty pops and unpops.
//
// Without MRG_RXBUF every frame must fit one chain: Linux posts ~64 KiB
// "big" chains when it negotiated guest GSO or a large MTU, and 1.5 KiB
// "small" ones otherwise.
//
// Oversized frames: a tap read cannot say "truncated" (no MSG_TRUNC on a
// character device), so the iovec ends with a spare tail buffer owned by
// RxPath.  A frame that spills into it is larger than the buffers held when
// it was read.  With MRG_RXBUF the driver may yet post more: the frame waits
// in the tail (counted as spilled) and moves into the new buffers once they
// cover it — the one copy on RX, and only when the driver runs short.  When
// the driver cannot post more (driver_may_post_more()), or without
// MRG_RXBUF, the frame is dropped and counted, the buffers kept for the next
// frame.  The common path never touches the tail.
//
// Without a vnet header on the tap (vnet_hdr=off) RxPath writes a zeroed
// header into the guest buffer itself and reads the frame in after it.
//
// No buffers: RxPath re-enables RX notifications and reports kNoBuffers;
// the caller stops polling the tap until the driver kicks (no busy wait).
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "net/chain_io.h"
#include "net/frame_observer.h"
#include "net/net_stats.h"
#include "net/tap.h"
#include "virtio/split_queue.h"
#include "virtio/virtio_device.h"

namespace tapvm::net {

class RxPath {
public:
    struct Config {
        size_t header_len = 12;      // negotiated virtio-net header size
        bool mergeable = true;       // MRG_RXBUF negotiated
        bool tap_has_header = true;  // frames arrive with a vnet header (IFF_VNET_HDR)
        bool guest_csum = true;      // GUEST_CSUM in force: tap's header flags may pass
        uint16_t queue_index = 0;    // for signal_queue()
        unsigned budget = 64;        // frames per process() call
    };

    enum class Result {
        kTapEmpty,   // the tap has nothing more: wait for it to be readable
        kMore,       // budget used up; call again soon
        kNoBuffers,  // the guest has no buffer: wait for an RX kick
        kTapFailed,  // the tap returned an error (or end of file): stop reading it
        kBroken,     // the ring is unusable: the device needs a reset
    };

    RxPath(virtio::SplitQueue& queue, Tap& tap, virtio::VirtioInterrupt& interrupt,
           const Config& config, RxStats& stats, FrameObserver* observer = nullptr);

    // Moves frames from the tap to the guest, up to the budget; publishes the
    // completions and signals the driver at most once.
    Result process();

    // CTRL_GUEST_OFFLOADS changed GUEST_CSUM (§5.1.6.4.1: without it the
    // header flags must be zero).
    void set_guest_csum(bool on) { config_.guest_csum = on; }

    // Buffers popped and held for the next frames (for tests).
    size_t held_buffers() const { return held_; }

private:
    enum class Refill { kOk, kBroken, kBudgetUsed };
    enum class Read { kDelivered, kSpilled, kDropped, kTapEmpty, kTapFailed };

    // Pops buffers until enough are held; every chain that had to be
    // returned unused (a bad one) takes one unit of this pass's budget.
    Refill refill(unsigned& work);
    bool wants_more_buffers() const;
    bool usable(const virtio::DescriptorChain& chain) const;
    Read receive_one();
    size_t build_iovec();
    void deliver(size_t packet_len);
    bool driver_may_post_more() const;
    void finish_spilled();
    void fix_header(const virtio::DescriptorChain& first, uint16_t num_buffers);
    virtio::DescriptorChain& held(size_t i) { return ring_[(head_ + i) % ring_.size()]; }

    virtio::SplitQueue& queue_;
    Tap& tap_;
    virtio::VirtioInterrupt& interrupt_;
    Config config_;
    RxStats& stats_;
    FrameObserver* observer_;

    // Popped, not yet completed buffers, in pop order (a ring as big as the
    // queue: there can never be more in flight).
    std::vector<virtio::DescriptorChain> ring_;
    size_t head_ = 0;
    size_t held_ = 0;
    uint64_t held_bytes_ = 0;

    // A frame read while the held buffers were too small for it: its first
    // spilled_capacity_ bytes are in the held buffers, the rest in the tail.
    size_t spilled_len_ = 0;  // 0: none
    size_t spilled_capacity_ = 0;

    IovecList iov_;
    std::unique_ptr<uint8_t[]> spare_tail_;  // detects frames larger than the buffers
    int last_logged_errno_ = -1;  // the errno (0: end of file) last logged; -1: none since a good read
};

}  // namespace tapvm::net
