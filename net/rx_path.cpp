#include "net/rx_path.h"

#include <spdlog/spdlog.h>

#include <cerrno>
#include <cstring>
#include <utility>

#include "net/queue_signal.h"
#include "net/virtio_net_hdr.h"

namespace tapvm::net {

namespace {

// Big enough that no frame a tap can produce overflows chain + tail, so the
// read length is always the frame's true length.
constexpr size_t kSpareTailLen = kMaxPacketLen;

}  // namespace

RxPath::RxPath(virtio::SplitQueue& queue, Tap& tap, virtio::VirtioInterrupt& interrupt,
               const Config& config, RxStats& stats, FrameObserver* observer)
    : queue_(queue),
      tap_(tap),
      interrupt_(interrupt),
      config_(config),
      stats_(stats),
      observer_(observer),
      ring_(queue.size()),
      spare_tail_(new uint8_t[kSpareTailLen]) {}

RxPath::Result RxPath::process() {
    Result result = Result::kMore;
    unsigned frames = 0;
    // While we hold buffers or are busy, kicks only cost the guest exits.
    queue_.disable_notifications();
    for (;;) {
        // Frames delivered and bad chains returned share one budget, so a
        // driver that keeps posting unusable buffers cannot hold this thread
        // (and a reset waiting to join it) for more than a pass.
        if (frames >= config_.budget) {
            result = Result::kMore;
            break;
        }
        const Refill refilled = refill(frames);
        if (refilled == Refill::kBroken) {
            result = Result::kBroken;
            break;
        }
        if (refilled == Refill::kBudgetUsed) {
            result = Result::kMore;
            break;
        }
        if (spilled_len_) {
            // A frame waits, partly in the spare tail, for more buffers.
            if (held_bytes_ >= spilled_len_) {
                finish_spilled();
                ++frames;
                continue;
            }
            if (!driver_may_post_more()) {
                stats_.dropped_oversize.add();  // it can never fit: the buffers stay for the next
                spilled_len_ = 0;
                continue;
            }
        } else if (held_ > 0) {
            Read read = receive_one();
            if (read == Read::kTapEmpty) {
                result = Result::kTapEmpty;
                break;
            }
            if (read == Read::kTapFailed) {
                result = Result::kTapFailed;
                break;
            }
            if (read != Read::kSpilled) ++frames;
            continue;
        }
        {
            // Out of buffers: ask the driver to kick when it posts more —
            // unless it just did, between our last pop and the re-arm.
            if (queue_.enable_notifications()) {
                queue_.disable_notifications();
                continue;
            }
            stats_.out_of_buffers.add();
            result = Result::kNoBuffers;
            break;
        }
    }
    publish_and_signal(queue_, interrupt_, config_.queue_index, stats_.interrupts);
    return result;
}

bool RxPath::wants_more_buffers() const {
    if (held_ == ring_.size()) return false;
    return config_.mergeable ? held_bytes_ < kMaxPacketLen : held_ == 0;
}

// §5.1.6.3.1: receive buffers are device-writable and (with MRG_RXBUF, and
// in practice always) at least as large as the header.
bool RxPath::usable(const virtio::DescriptorChain& chain) const {
    return chain.readable().empty() && chain.writable_bytes() >= config_.header_len &&
           iovecs_needed(chain.writable()) + 1 <= kMaxIovecs;
}

RxPath::Refill RxPath::refill(unsigned& work) {
    while (wants_more_buffers()) {
        if (work >= config_.budget) return Refill::kBudgetUsed;
        virtio::DescriptorChain& slot = held(held_);
        virtio::PopResult popped = queue_.pop(slot);
        if (popped.status == virtio::PopStatus::kEmpty) break;
        if (popped.status == virtio::PopStatus::kError) {
            if (queue_.broken()) return Refill::kBroken;
            ++work;
            continue;  // already returned with length 0 and counted by the queue
        }
        if (!usable(slot)) {
            stats_.dropped_bad_chain.add();
            queue_.complete(slot, 0);
            ++work;
            continue;
        }
        held_bytes_ += slot.writable_bytes();
        ++held_;
    }
    return Refill::kOk;
}

// Fills iov_ with the held buffers one frame may use (all of them with
// MRG_RXBUF, up to kMaxPacketLen; the first one otherwise), then the spare
// tail.  Returns the guest buffer bytes covered, header included.
size_t RxPath::build_iovec() {
    iov_.clear();
    const size_t skip = config_.tap_has_header ? 0 : config_.header_len;
    const size_t candidates = config_.mergeable ? held_ : 1;
    size_t capacity = 0;
    for (size_t i = 0; i < candidates && capacity < kMaxPacketLen; ++i) {
        const virtio::DescriptorChain& chain = held(i);
        const size_t cut = i == 0 ? skip : 0;
        if (iovecs_needed(chain.writable(), cut) + 1 > iov_.room()) break;  // keep one for the tail
        iov_.append(chain.writable(), cut);
        capacity += chain.writable_bytes();
    }
    iov_.append(std::span(spare_tail_.get(), kSpareTailLen));
    return capacity;
}

RxPath::Read RxPath::receive_one() {
    const size_t capacity = build_iovec();
    const ssize_t n = tap_.readv(iov_.view());
    if (n == -EAGAIN || n == -EWOULDBLOCK) return Read::kTapEmpty;
    if (n <= 0) {
        int err = n == 0 ? 0 : static_cast<int>(-n);
        stats_.dropped_tap_error.add();
        if (err != last_logged_errno_) {  // once per kind of failure in a row: it is retried
            last_logged_errno_ = err;
            spdlog::error("virtio-net rx ({}): readv: {}; trying again after a pause", tap_.name(),
                          err ? std::strerror(err) : "end of file");
        }
        return Read::kTapFailed;
    }
    const size_t read = static_cast<size_t>(n);
    last_logged_errno_ = -1;  // reads work (again): the next failure is news
    if (config_.tap_has_header && read < config_.header_len) {
        stats_.dropped_tap_error.add();  // a tap always sends a whole header
        return Read::kDropped;
    }
    const size_t packet_len = config_.tap_has_header ? read : read + config_.header_len;
    if (packet_len > capacity) {
        // The frame ran into the spare tail.  With MRG_RXBUF the driver may
        // still post the buffers it needs: keep it until then.
        if (config_.mergeable && driver_may_post_more()) {
            spilled_len_ = packet_len;
            spilled_capacity_ = capacity;
            return Read::kSpilled;
        }
        // The guest's buffers are too small for it.  Drop it and keep the
        // buffers for the next frame.
        stats_.dropped_oversize.add();
        return Read::kDropped;
    }
    deliver(packet_len);
    return Read::kDelivered;
}

// Linux's virtio_net keeps up to min(64, ring size) / 2 completed buffers to
// itself until more packets arrive (virtnet_receive refills only beyond
// that).  Once we hold the rest of the ring, waiting for more could wait
// forever.
bool RxPath::driver_may_post_more() const {
    const size_t size = ring_.size();
    return held_ < size - std::min<size_t>(64, size) / 2;
}

// The rare path, the only copy on RX: the tail of a frame that outgrew the
// buffers held when it was read moves into the buffers posted since.
void RxPath::finish_spilled() {
    const size_t packet_len = std::exchange(spilled_len_, 0);
    size_t at = 0;  // packet offset where buffer i starts
    for (size_t i = 0; i < held_ && at < packet_len; ++i) {
        const virtio::DescriptorChain& chain = held(i);
        const size_t room = chain.writable_bytes();
        if (at + room > spilled_capacity_) {
            const size_t from = std::max(at, spilled_capacity_);  // first byte not yet in guest memory
            const size_t len = std::min(at + room, packet_len) - from;
            write_to_chain(chain, from - at,
                           std::span(spare_tail_.get() + (from - spilled_capacity_), len));
        }
        at += room;
    }
    stats_.spilled.add();
    deliver(packet_len);
}

// Splits `packet_len` bytes (header included) over the held buffers in
// order and completes the ones it used.
void RxPath::deliver(size_t packet_len) {
    size_t buffers = 0;
    for (size_t left = packet_len; left > 0; ++buffers)
        left -= std::min<uint64_t>(left, held(buffers).writable_bytes());

    fix_header(held(0), static_cast<uint16_t>(buffers));
    if (observer_) {
        observer_->on_frame(FrameDirection::kHostToGuest, iov_.view(),
                            config_.tap_has_header ? config_.header_len : 0,
                            packet_len - config_.header_len);
    }

    size_t left = packet_len;
    for (size_t i = 0; i < buffers; ++i) {
        virtio::DescriptorChain& chain = held(i);
        const uint64_t room = chain.writable_bytes();
        const size_t len = std::min<uint64_t>(left, room);
        left -= len;
        held_bytes_ -= room;
        queue_.complete(chain, static_cast<uint32_t>(len));
    }
    head_ = (head_ + buffers) % ring_.size();
    held_ -= buffers;

    stats_.packets.add();
    stats_.bytes.add(packet_len - config_.header_len);
    stats_.buffers_used.add(buffers);
}

// The header in the first buffer, as the driver must see it.  num_buffers
// is little-endian (§5.1.6.4: VERSION_1 fields are le16) and present in the
// 12-byte header, where it is 1 without MRG_RXBUF (§5.1.6.4.2).
void RxPath::fix_header(const virtio::DescriptorChain& first, uint16_t num_buffers) {
    const uint8_t num_buffers_le[2] = {static_cast<uint8_t>(num_buffers),
                                       static_cast<uint8_t>(num_buffers >> 8)};
    const bool has_num_buffers = config_.header_len >= kHdrNumBuffersOffset + 2;
    if (!config_.tap_has_header) {
        // A plain frame: no checksum or GSO work pending, so an all-zero
        // header is the truth.
        uint8_t header[kMaxVnetHeaderSize] = {};
        if (has_num_buffers) std::memcpy(header + kHdrNumBuffersOffset, num_buffers_le, 2);
        write_to_chain(first, 0, std::span(header, config_.header_len));
        return;
    }
    // The tap wrote the first ten bytes and skipped num_buffers.
    if (has_num_buffers) write_to_chain(first, kHdrNumBuffersOffset, num_buffers_le);
    if (!config_.guest_csum) {
        // §5.1.6.4.1: without GUEST_CSUM the device MUST set flags to zero
        // (the tap may still say DATA_VALID).
        const uint8_t zero = 0;
        write_to_chain(first, kHdrFlagsOffset, std::span(&zero, 1));
    }
}

}  // namespace tapvm::net
