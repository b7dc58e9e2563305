#include "net/tx_path.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "net/net_features.h"
#include "net/queue_signal.h"
#include "net/virtio_net_hdr.h"
#include "vmm/log_limiter.h"

namespace tapvm::net {

TxPath::TxPath(virtio::SplitQueue& queue, Tap& tap, virtio::VirtioInterrupt& interrupt,
               const Config& config, TxStats& stats, FrameObserver* observer)
    : queue_(queue), tap_(tap), interrupt_(interrupt), config_(config), stats_(stats), observer_(observer) {}

TxPath::Result TxPath::process() {
    Result result = Result::kIdle;
    unsigned sent = 0;
    // No kicks while we drain: the driver would only interrupt us (each
    // kick is a VM exit) for work we are about to find anyway.
    queue_.disable_notifications();
    for (bool draining = true; draining;) {
        while (sent < config_.budget) {
            virtio::PopResult popped = queue_.pop(chain_);
            if (popped.status == virtio::PopStatus::kEmpty) break;
            ++sent;  // bad chains are work too: they count against the budget
            if (popped.status == virtio::PopStatus::kError) {
                // A bad chain was already returned (length 0) and counted by
                // the queue; a ring error leaves it broken.
                if (queue_.broken()) {
                    result = Result::kBroken;
                    draining = false;
                    break;
                }
                continue;
            }
            if (send(chain_) == Sent::kTapFull) {
                result = Result::kTapFull;
                draining = false;
                break;
            }
        }
        if (!draining) break;
        if (sent >= config_.budget) {
            result = Result::kMore;
            break;
        }
        // Re-arm kicks; if the driver added chains meanwhile, keep going
        // (closes the race between our last pop and the re-arm).
        if (!queue_.enable_notifications()) break;
        queue_.disable_notifications();
    }
    publish_and_signal(queue_, interrupt_, config_.queue_index, stats_.interrupts);
    return result;
}

TxPath::Sent TxPath::send(virtio::DescriptorChain& chain) {
    if (drop_if_malformed(chain)) return Sent::kDone;

    const size_t skip = config_.tap_has_header ? 0 : config_.header_len;
    iov_.clear();
    iov_.append(chain.readable(), skip);  // fits: checked by drop_if_malformed
    ssize_t n = tap_.writev(iov_.view());
    if (n == -EAGAIN || n == -EWOULDBLOCK) {
        // The tap's socket send buffer is full (only with TUNSETSNDBUF; the
        // default is unlimited).  Keep the frame: the caller waits for
        // POLLOUT and we send it again.
        queue_.unpop(chain);
        stats_.tap_full.add();
        return Sent::kTapFull;
    }
    const size_t frame_len = chain.readable_bytes() - config_.header_len;
    if (n < 0) {
        count_write_error(static_cast<int>(-n));
    } else {
        stats_.packets.add();
        stats_.bytes.add(frame_len);
        if (observer_) {
            observer_->on_frame(FrameDirection::kGuestToHost, iov_.view(),
                                config_.tap_has_header ? config_.header_len : 0, frame_len);
        }
    }
    queue_.complete(chain, 0);  // §5.1.6.2.2: TX buffers are only read
    return Sent::kDone;
}

// virtio 1.2 §5.1.6.2.1: without VIRTIO_NET_F_CSUM the driver MUST set
// flags to zero; it MUST NOT set DATA_VALID (or RSC_INFO) on transmit; a GSO
// type needs its HOST_* feature, and the ECN bit HOST_ECN.  The tap would
// act on such a header (segment, trust a checksum) for a guest that never
// agreed to it, so the frame is dropped and counted instead.
bool TxPath::header_allowed(const virtio::DescriptorChain& chain) const {
    uint8_t hdr[kHdrGsoTypeOffset + 1] = {};
    size_t got = 0;
    for (const auto& segment : chain.readable()) {
        const size_t n = std::min(segment.host.size(), sizeof hdr - got);
        std::memcpy(hdr + got, segment.host.data(), n);
        got += n;
        if (got == sizeof hdr) break;
    }
    const uint8_t flags = hdr[kHdrFlagsOffset];
    const uint8_t gso = hdr[kHdrGsoTypeOffset];
    const uint64_t f = config_.features;
    if (flags & ~kHdrFNeedsCsum) return false;  // DATA_VALID, RSC_INFO, unknown bits
    if ((flags & kHdrFNeedsCsum) && !has(f, kFCsum)) return false;
    if ((gso & kGsoEcn) && !has(f, kFHostEcn)) return false;
    switch (gso & ~kGsoEcn) {
        case kGsoNone: return !(gso & kGsoEcn);
        case kGsoTcpv4: return has(f, kFHostTso4);
        case kGsoTcpv6: return has(f, kFHostTso6);
        case kGsoUdp: return has(f, kFHostUfo);
        default: return false;  // a type this device never offers
    }
}

// Returns true (and completes the chain) when it cannot be sent.
bool TxPath::drop_if_malformed(virtio::DescriptorChain& chain) {
    Counter* reason = nullptr;
    if (!chain.writable().empty()) {
        reason = &stats_.dropped_writable;  // §5.1.6.2: TX buffers are device-readable
    } else if (chain.readable_bytes() < config_.header_len + kEthHeaderLen) {
        reason = &stats_.dropped_short;     // no room for a header and an Ethernet frame
    } else if (iovecs_needed(chain.readable(), config_.tap_has_header ? 0 : config_.header_len) >
               kMaxIovecs) {
        reason = &stats_.dropped_fragmented;  // more than one writev can take
    } else if (!header_allowed(chain)) {
        reason = &stats_.dropped_bad_header;  // asks for an offload that was not negotiated
    }
    if (!reason) return false;
    reason->add();
    queue_.complete(chain, 0);
    return true;
}

void TxPath::count_write_error(int err) {
    // ENOBUFS/ENOMEM: the host stack had no memory for the frame, like a
    // full NIC queue on real hardware — drop, as a NIC would.  Anything else
    // (EIO: tap link down, EINVAL: the kernel rejected the header or size,
    // EBADFD: the interface is gone) is also a drop: never the VMM's end.
    if (err == ENOBUFS || err == ENOMEM) {
        stats_.dropped_no_buffers.add();
    } else {
        stats_.dropped_tap_error.add();
    }
    if (err != last_logged_errno_) {
        last_logged_errno_ = err;
        log_limited(guest_log_, spdlog::level::warn, "virtio-net tx ({}): writev: {}; frame dropped", tap_.name(),
                    std::strerror(err));
    }
}

}  // namespace tapvm::net
