#include "net/ctrl_queue.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstring>
#include <optional>

#include "net/chain_io.h"
#include "net/net_features.h"
#include "net/queue_signal.h"

namespace tapvm::net {

// Reads the chain's device-readable bytes as one stream, across descriptor
// boundaries.  Every length it sees is guest-controlled.
class CtrlQueue::Reader {
public:
    explicit Reader(const virtio::DescriptorChain& chain)
        : segments_(chain.readable()), remaining_(chain.readable_bytes()) {
        advance(0);  // step over leading zero-length descriptors
    }

    uint64_t remaining() const { return remaining_; }

    bool read(void* out, size_t n) {
        if (n > remaining_) return false;
        auto* dst = static_cast<uint8_t*>(out);
        while (n > 0) {
            std::span<const uint8_t> segment = segments_.front().host;
            size_t take = std::min(n, segment.size() - offset_);
            std::memcpy(dst, segment.data() + offset_, take);
            advance(take);
            dst += take;
            n -= take;
        }
        return true;
    }

    bool skip(uint64_t n) {
        if (n > remaining_) return false;
        while (n > 0) {
            size_t take = static_cast<size_t>(std::min<uint64_t>(n, segments_.front().host.size() - offset_));
            advance(take);
            n -= take;
        }
        return true;
    }

    std::optional<uint8_t> u8() {
        uint8_t v;
        return read(&v, 1) ? std::optional(v) : std::nullopt;
    }
    std::optional<uint32_t> le32() {
        uint8_t b[4];
        if (!read(b, 4)) return std::nullopt;
        return uint32_t{b[0]} | uint32_t{b[1]} << 8 | uint32_t{b[2]} << 16 | uint32_t{b[3]} << 24;
    }
    std::optional<uint64_t> le64() {
        uint8_t b[8];
        if (!read(b, 8)) return std::nullopt;
        uint64_t v = 0;
        for (int i = 7; i >= 0; --i) v = v << 8 | b[i];
        return v;
    }
    std::optional<MacAddress> mac() {
        MacAddress m;
        return read(m.bytes.data(), 6) ? std::optional(m) : std::nullopt;
    }

private:
    void advance(size_t n) {
        offset_ += n;
        remaining_ -= n;
        // Step over finished (and zero-length) segments.
        while (!segments_.empty() && offset_ == segments_.front().host.size()) {
            segments_ = segments_.subspan(1);
            offset_ = 0;
        }
    }

    std::span<const virtio::ChainSegment> segments_;
    size_t offset_ = 0;
    uint64_t remaining_;
};

CtrlQueue::CtrlQueue(virtio::SplitQueue& queue, virtio::VirtioInterrupt& interrupt, uint16_t queue_index,
                     uint64_t features, CtrlActions& actions, CtrlStats& stats)
    : queue_(queue),
      interrupt_(interrupt),
      queue_index_(queue_index),
      features_(features),
      actions_(actions),
      stats_(stats) {}

CtrlQueue::Result CtrlQueue::process() {
    Result result = Result::kIdle;
    for (unsigned work = 0;; ++work) {
        if (work == kBudget) {
            result = Result::kMore;
            break;
        }
        virtio::PopResult popped = queue_.pop(chain_);
        if (popped.status == virtio::PopStatus::kEmpty) break;
        if (popped.status == virtio::PopStatus::kError) {
            if (queue_.broken()) {
                result = Result::kBroken;
                break;
            }
            continue;
        }
        answer(chain_);
    }
    publish_and_signal(queue_, interrupt_, queue_index_, stats_.interrupts);
    return result;
}

void CtrlQueue::answer(virtio::DescriptorChain& chain) {
    if (chain.writable_bytes() == 0) {
        // Nowhere to put the ack: the driver would wait forever for an
        // answer we cannot give.  Return the chain; count it.
        stats_.malformed.add();
        queue_.complete(chain, 0);
        return;
    }
    Reader in(chain);
    uint8_t ack = execute(in);
    (ack == kCtrlAckOk ? stats_.commands : stats_.errors).add();
    // The ack is the one device-writable byte (§5.1.6.5).
    write_to_chain(chain, 0, std::span(&ack, 1));
    queue_.complete(chain, 1);
}

uint8_t CtrlQueue::execute(Reader& in) {
    auto cls = in.u8();
    auto command = in.u8();
    if (!cls || !command) return kCtrlAckErr;
    switch (*cls) {
        case kCtrlRx: return rx_command(*command, in);
        case kCtrlMac: return mac_command(*command, in);
        case kCtrlGuestOffloads: return offloads_command(*command, in);
        default: return kCtrlAckErr;  // VLAN, ANNOUNCE, MQ, ...: not offered
    }
}

// §5.1.6.5.1: one byte, zero or non-zero.
uint8_t CtrlQueue::rx_command(uint8_t command, Reader& in) {
    if (!has(features_, kFCtrlRx)) return kCtrlAckErr;
    if (command != kCtrlRxPromisc && command != kCtrlRxAllmulti) return kCtrlAckErr;  // no RX_EXTRA
    auto on = in.u8();
    if (!on || in.remaining() != 0) return kCtrlAckErr;
    (command == kCtrlRxPromisc ? filter_.promisc : filter_.allmulti) = *on != 0;
    return kCtrlAckOk;
}

uint8_t CtrlQueue::mac_command(uint8_t command, Reader& in) {
    if (command == kCtrlMacTableSet) {
        // §5.1.6.5.2: two virtio_net_ctrl_mac tables, unicast then multicast.
        if (!has(features_, kFCtrlRx)) return kCtrlAckErr;
        RxFilter next = filter_;
        if (!read_mac_table(in, next.unicast, next.unicast_overflow) ||
            !read_mac_table(in, next.multicast, next.multicast_overflow) || in.remaining() != 0)
            return kCtrlAckErr;
        filter_ = std::move(next);
        return kCtrlAckOk;
    }
    if (command == kCtrlMacAddrSet) {
        if (!has(features_, kFCtrlMacAddr)) return kCtrlAckErr;
        auto mac = in.mac();
        if (!mac || in.remaining() != 0 || mac->is_multicast()) return kCtrlAckErr;
        actions_.set_mac(*mac);
        return kCtrlAckOk;
    }
    return kCtrlAckErr;
}

// le32 entries, then entries * 6 bytes.  Keeps at most kMacTableMax.
bool CtrlQueue::read_mac_table(Reader& in, std::vector<MacAddress>& table, bool& overflow) {
    auto entries = in.le32();  // guest-controlled
    if (!entries || uint64_t{*entries} * 6 > in.remaining()) return false;
    table.clear();
    overflow = *entries > kMacTableMax;
    const uint32_t kept = std::min<uint32_t>(*entries, kMacTableMax);
    for (uint32_t i = 0; i < kept; ++i) table.push_back(*in.mac());
    return in.skip(uint64_t{*entries - kept} * 6);
}

// §5.1.6.5.6.1: le64 offloads, each bit a GUEST_* feature bit.
uint8_t CtrlQueue::offloads_command(uint8_t command, Reader& in) {
    if (!has(features_, kFCtrlGuestOffloads) || command != kCtrlGuestOffloadsSet) return kCtrlAckErr;
    auto offloads = in.le64();
    if (!offloads || in.remaining() != 0) return kCtrlAckErr;
    // Only offloads the driver negotiated may be switched on again.
    const uint64_t allowed = features_ & kGuestOffloadFeatures;
    if (*offloads & ~allowed) return kCtrlAckErr;
    return actions_.set_guest_offloads(*offloads) ? kCtrlAckOk : kCtrlAckErr;
}

}  // namespace tapvm::net
