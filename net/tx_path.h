// Guest -> tap (virtio 1.2 §5.1.6.2).  Each chain on the transmit queue is
// one virtio-net header plus one frame, in device-readable buffers.  They go
// to the tap in ONE writev straight from guest memory: no copy, no parsing.
// When the tap has no vnet header (vnet_hdr=off) the guest's header is left
// out of the iovec instead; tapvm then offered no offloads, so the header
// carries nothing the host would need.
//
// Bad chains are dropped, counted, and returned with used length 0 (which is
// what every TX completion carries: the device writes nothing).  Only a full
// tap (EAGAIN) keeps a chain: it is given back to the queue and the caller
// waits for the tap to become writable, without spinning.
#pragma once

#include <cstdint>

#include "net/chain_io.h"
#include "net/frame_observer.h"
#include "net/net_stats.h"
#include "net/tap.h"
#include "virtio/split_queue.h"
#include "virtio/virtio_device.h"
#include "vmm/log_limiter.h"

namespace tapvm::net {

class TxPath {
public:
    struct Config {
        size_t header_len = 12;      // negotiated virtio-net header size
        bool tap_has_header = true;  // the tap takes the header (IFF_VNET_HDR)
        uint16_t queue_index = 1;    // for signal_queue()
        unsigned budget = 256;       // chains per process() call, sent or dropped
        // The negotiated features: which header flags and GSO types the
        // driver may use (§5.1.6.2.1); others are dropped, not passed on.
        uint64_t features = 0;
    };

    enum class Result {
        kIdle,     // queue empty, notifications re-enabled
        kMore,     // budget used up; call again soon (notifications stay off)
        kTapFull,  // wait until the tap is writable, then call again
        kBroken,   // the ring is unusable: the device needs a reset
    };

    TxPath(virtio::SplitQueue& queue, Tap& tap, virtio::VirtioInterrupt& interrupt,
           const Config& config, TxStats& stats, FrameObserver* observer = nullptr);

    // Sends what the driver has made available, up to the budget; publishes
    // the completions and signals the driver at most once.
    Result process();

private:
    mutable LogLimiter guest_log_;  // lines the guest can trigger (vmm/log_limiter.h)
    enum class Sent { kDone, kTapFull };
    Sent send(virtio::DescriptorChain& chain);
    bool drop_if_malformed(virtio::DescriptorChain& chain);
    bool header_allowed(const virtio::DescriptorChain& chain) const;
    void count_write_error(int err);

    virtio::SplitQueue& queue_;
    Tap& tap_;
    virtio::VirtioInterrupt& interrupt_;
    const Config config_;
    TxStats& stats_;
    FrameObserver* observer_;
    virtio::DescriptorChain chain_;
    IovecList iov_;
    int last_logged_errno_ = 0;
};

}  // namespace tapvm::net
