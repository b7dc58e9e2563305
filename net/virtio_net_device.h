// The virtio-net device (virtio 1.2 §5.1) on a tap: device type 1, queues
// rx0 (0), tx0 (1) and — with ctrl_vq=on — ctrl (2).
//
// What it offers depends on the options and on the tap: without a usable
// vnet header (or offloads the tap refused) none of CSUM, GUEST_CSUM, the
// TSO/ECN/UFO bits or CTRL_GUEST_OFFLOADS are offered, and the data path
// supplies / strips the header itself.  Always offered: VERSION_1, MAC,
// STATUS; per options: RING_EVENT_IDX, RING_INDIRECT_DESC, MRG_RXBUF, MTU,
// CTRL_VQ with CTRL_RX, CTRL_MAC_ADDR (and ANY_LAYOUT for legacy drivers).
//
// accept_features() enforces §5.1.3.1's dependencies, then sets the tap's
// header size (12 bytes with VERSION_1 or MRG_RXBUF, else 10) and its
// offloads from the GUEST_* bits.  activate() starts the I/O thread;
// reset() stops it, turns the tap's offloads off and forgets the queues.
//
// A broken virtqueue (SplitQueue::broken()) cannot be fixed by the device:
// it calls `on_needs_reset`, which the transport sets so that it can raise
// DEVICE_NEEDS_RESET and a config interrupt.  It runs on the I/O thread and
// must not call reset() itself (reset() joins that thread).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <nlohmann/json_fwd.hpp>

#include "net/frame_observer.h"
#include "net/net_config_space.h"
#include "net/net_options.h"
#include "net/net_stats.h"
#include "net/tap.h"
#include "virtio/virtio_device.h"
#include "vmm/log_limiter.h"

namespace tapvm::net {

class VirtioNetDevice final : public virtio::VirtioDevice {
public:
    static constexpr uint32_t kDeviceType = 1;  // virtio 1.2 §5: network card
    static constexpr uint16_t kRxQueue = 0;
    static constexpr uint16_t kTxQueue = 1;
    static constexpr uint16_t kCtrlQueue = 2;

    // `capture`, when given, sees every frame (pcap=PATH).
    VirtioNetDevice(const NetOptions& options, std::unique_ptr<Tap> tap,
                    std::unique_ptr<FrameObserver> capture = nullptr);
    ~VirtioNetDevice() override;

    // --- VirtioDevice -------------------------------------------------------
    uint32_t device_type() const override { return kDeviceType; }
    uint64_t offered_features() const override { return offered_; }
    uint16_t num_queues() const override;
    uint16_t max_queue_size() const override { return queue_size_; }
    void read_config(uint64_t offset, std::span<uint8_t> data) override;
    void write_config(uint64_t offset, std::span<const uint8_t> data) override;
    bool accept_features(uint64_t features) override;
    void activate(const virtio::ActivationContext& context) override;
    void reset() override;

    // --- for the transport and the machine -------------------------------------
    // Set before activation; see the note at the top.
    std::function<void()> on_needs_reset;
    // Whether the user allows the transitional (legacy) I/O BAR.
    bool offers_legacy_interface() const { return legacy_; }
    MacAddress mac() const { return config_.mac(); }
    const Tap& tap() const { return *tap_; }
    uint64_t negotiated_features() const;
    bool active() const;

    // Counters (any thread) and their JSON form.
    const NetStats& stats() const { return stats_; }
    nlohmann::json stats_json() const;

private:
    mutable LogLimiter guest_log_;  // lines the guest can trigger (vmm/log_limiter.h)
    class DataPath;

    uint64_t compute_offer(const NetOptions& options) const;
    bool accept_locked(uint64_t features);  // mutex_ held
    bool configure_tap(uint64_t features);
    void raise_needs_reset();

    std::unique_ptr<Tap> tap_;
    std::unique_ptr<FrameObserver> capture_;
    NetConfigSpace config_;
    const bool legacy_;
    const uint16_t queue_size_;
    uint64_t offered_ = 0;

    mutable std::mutex mutex_;  // the transport's thread(s) vs. stats readers
    uint64_t negotiated_ = 0;
    bool accepted_ = false;
    std::unique_ptr<DataPath> data_path_;

    NetStats stats_;
};

}  // namespace tapvm::net
