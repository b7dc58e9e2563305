// Counters of the virtio-net device, per queue: what went through, what was
// dropped and why, how often each side woke the other.  Only the I/O thread
// writes them; any thread may take a snapshot (relaxed atomics: each counter
// is exact, a snapshot is not a consistent cut across counters).
#pragma once

#include <atomic>
#include <cstdint>

#include <nlohmann/json_fwd.hpp>

namespace tapvm::net {

class Counter {
public:
    Counter() = default;
    Counter(const Counter& other) : value_(other.get()) {}
    Counter& operator=(const Counter& other) {
        value_.store(other.get(), std::memory_order_relaxed);
        return *this;
    }
    // Single writer: a plain load + store, no locked read-modify-write.
    void add(uint64_t n = 1) {
        value_.store(value_.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
    }
    uint64_t get() const { return value_.load(std::memory_order_relaxed); }
    operator uint64_t() const { return get(); }

private:
    std::atomic<uint64_t> value_{0};
};

struct TxStats {
    Counter packets;             // frames written to the tap
    Counter bytes;               // frame bytes written (virtio-net header excluded)
    Counter kicks;               // guest notifications handled
    Counter interrupts;          // used-ring interrupts sent
    Counter tap_full;            // EAGAIN: waited for the tap to drain
    Counter dropped_writable;    // chain had device-writable descriptors
    Counter dropped_short;       // chain shorter than the header + an Ethernet header
    Counter dropped_fragmented;  // more segments than one writev takes
    Counter dropped_tap_error;   // the tap refused the frame (EIO: link down, EINVAL, ...)
    Counter dropped_no_buffers;  // ENOBUFS/ENOMEM from the host stack
    Counter dropped_bad_header;  // header flags or GSO type that were not negotiated
};

struct RxStats {
    Counter packets;             // frames delivered to the guest
    Counter bytes;               // frame bytes delivered (virtio-net header excluded)
    Counter buffers_used;        // chains completed (> packets with MRG_RXBUF)
    Counter kicks;               // guest notifications handled
    Counter interrupts;          // used-ring interrupts sent
    Counter out_of_buffers;      // times RX ran out of guest buffers and stopped polling the tap
    Counter dropped_oversize;    // frame larger than the buffers could hold
    Counter spilled;             // frames that waited for more buffers (and were copied once)
    Counter dropped_bad_chain;   // chain with device-readable parts, or smaller than the header
    Counter dropped_tap_error;   // readv failed with something other than EAGAIN
};

struct CtrlStats {
    Counter commands;            // commands answered OK
    Counter errors;              // commands answered VIRTIO_NET_ERR
    Counter malformed;           // chains with no room for the ack (returned unanswered)
    Counter interrupts;          // used-ring interrupts sent
};

struct NetStats {
    RxStats rx;
    TxStats tx;
    CtrlStats ctrl;
    Counter needs_reset;         // queue errors that made the device ask for a reset
};

nlohmann::json to_json(const NetStats& stats);

}  // namespace tapvm::net
