#include "net/virtio_net_device.h"

#include <spdlog/spdlog.h>

#include <cstring>
#include <nlohmann/json.hpp>

#include "net/ctrl_queue.h"
#include "net/net_features.h"
#include "net/net_io_thread.h"
#include "net/rx_path.h"
#include "net/tx_path.h"
#include "vmm/error.h"
#include "vmm/log_limiter.h"

namespace tapvm::net {

// Everything that exists between DRIVER_OK and reset: the three queue
// handlers and the thread that drives them.  It also carries out the ctrl
// queue's commands, on the I/O thread.
class VirtioNetDevice::DataPath final : public CtrlActions {
public:
    DataPath(VirtioNetDevice& device, const virtio::ActivationContext& context, uint64_t features)
        : device_(device) {
        const size_t header_len = vnet_header_size(features);
        Tap& tap = *device.tap_;
        virtio::VirtioInterrupt& interrupt = *context.interrupt;
        FrameObserver* capture = device.capture_.get();
        NetIoThread::Wiring wiring;
        wiring.tap = &tap;
        wiring.on_broken = [&device] { device.raise_needs_reset(); };

        if (auto* queue = queue_at(context, kRxQueue)) {
            RxPath::Config config{.header_len = header_len,
                                  .mergeable = has(features, kFMrgRxbuf),
                                  .tap_has_header = tap.has_vnet_hdr(),
                                  .guest_csum = has(features, kFGuestCsum),
                                  .queue_index = kRxQueue};
            rx_ = std::make_unique<RxPath>(*queue, tap, interrupt, config, device.stats_.rx, capture);
            wiring.rx = rx_.get();
            wiring.rx_kick_fd = context.notify_eventfds[kRxQueue];
        }
        if (auto* queue = queue_at(context, kTxQueue)) {
            TxPath::Config config{.header_len = header_len,
                                  .tap_has_header = tap.has_vnet_hdr(),
                                  .queue_index = kTxQueue,
                                  .features = features};
            tx_ = std::make_unique<TxPath>(*queue, tap, interrupt, config, device.stats_.tx, capture);
            wiring.tx = tx_.get();
            wiring.tx_kick_fd = context.notify_eventfds[kTxQueue];
        }
        if (auto* queue = queue_at(context, kCtrlQueue); queue && has(features, kFCtrlVq)) {
            ctrl_ = std::make_unique<CtrlQueue>(*queue, interrupt, kCtrlQueue, features, *this,
                                                device.stats_.ctrl);
            wiring.ctrl = ctrl_.get();
            wiring.ctrl_kick_fd = context.notify_eventfds[kCtrlQueue];
        }
        thread_ = std::make_unique<NetIoThread>(wiring, device.stats_);
        thread_->start();
    }

    // The thread goes first: after this nothing touches guest memory.
    ~DataPath() override { thread_->stop(); }

private:
    static virtio::SplitQueue* queue_at(const virtio::ActivationContext& context, uint16_t index) {
        return index < context.queues.size() ? context.queues[index] : nullptr;
    }

    void set_mac(const MacAddress& mac) override {
        device_.config_.set_mac(mac);
        log_limited(device_.guest_log_, spdlog::level::info, "virtio-net ({}): guest set MAC {}", device_.tap_->name(),
                    mac.to_string());
    }

    bool set_guest_offloads(uint64_t offloads) override {
        Tap& tap = *device_.tap_;
        if (tap.has_vnet_hdr()) {
            if (int err = tap.set_offload(tun_offload_flags(offloads))) {
                log_limited(device_.guest_log_, spdlog::level::warn, "virtio-net ({}): TUNSETOFFLOAD {:#x}: {}",
                            tap.name(), tun_offload_flags(offloads), std::strerror(err));
                return false;
            }
        } else if (offloads != 0) {
            return false;  // never offered; the subset check makes this unreachable
        }
        if (rx_) rx_->set_guest_csum(has(offloads, kFGuestCsum));
        return true;
    }

    VirtioNetDevice& device_;
    std::unique_ptr<RxPath> rx_;
    std::unique_ptr<TxPath> tx_;
    std::unique_ptr<CtrlQueue> ctrl_;
    std::unique_ptr<NetIoThread> thread_;  // last: destroyed (stopped) first
};

VirtioNetDevice::VirtioNetDevice(const NetOptions& options, std::unique_ptr<Tap> tap,
                                 std::unique_ptr<FrameObserver> capture)
    : tap_(std::move(tap)),
      capture_(std::move(capture)),
      config_(effective_mac(options, tap_->name()), options.mtu),
      legacy_(options.legacy),
      queue_size_(options.queue_size) {
    offered_ = compute_offer(options);
    spdlog::info("virtio-net ({}): mac {}, vnet header {}, offloads {}, features {:#x}", tap_->name(),
                 config_.mac().to_string(), tap_->has_vnet_hdr() ? "on" : "off",
                 (offered_ & kHostOffloadFeatures) ? "on" : "off", offered_);
}

VirtioNetDevice::~VirtioNetDevice() { reset(); }

uint64_t VirtioNetDevice::compute_offer(const NetOptions& options) const {
    uint64_t features = options.features & kSwitchableFeatures;
    features |= bit(virtio::kFVersion1) | bit(kFMac) | bit(kFStatus);
    if (options.legacy) features |= bit(kFAnyLayout);
    if (options.mtu) features |= bit(kFMtu);
    if (has(features, kFCtrlVq)) features |= bit(kFCtrlRx) | bit(kFCtrlMacAddr) | bit(kFCtrlGuestOffloads);

    // What the tap can carry.  Both directions of an offload ride on the
    // same header, so one probe answers for HOST_* and GUEST_* alike.
    const unsigned tun = tap_->has_vnet_hdr() ? tap_->supported_offloads() : 0;
    if (!(tun & kTunFCsum)) features &= ~kVnetHdrFeatures;
    if (!(tun & kTunFTso4)) features &= ~(bit(kFHostTso4) | bit(kFGuestTso4));
    if (!(tun & kTunFTso6)) features &= ~(bit(kFHostTso6) | bit(kFGuestTso6));
    if (!(tun & kTunFTsoEcn)) features &= ~(bit(kFHostEcn) | bit(kFGuestEcn));
    if (!(tun & kTunFUfo)) features &= ~(bit(kFHostUfo) | bit(kFGuestUfo));
    // Nothing to switch at run time without receive offloads.
    if (!(features & kGuestOffloadFeatures)) features &= ~bit(kFCtrlGuestOffloads);
    return drop_unsatisfied(features);
}

uint16_t VirtioNetDevice::num_queues() const { return has(offered_, kFCtrlVq) ? 3 : 2; }

void VirtioNetDevice::read_config(uint64_t offset, std::span<uint8_t> data) { config_.read(offset, data); }

void VirtioNetDevice::write_config(uint64_t offset, std::span<const uint8_t> data) {
    if (!config_.write(offset, data))
        spdlog::debug("virtio-net: ignored config write at {:#x} ({} bytes)", offset, data.size());
}

bool VirtioNetDevice::accept_features(uint64_t features) {
    std::lock_guard lock(mutex_);
    return accept_locked(features);
}

bool VirtioNetDevice::accept_locked(uint64_t features) {
    if (data_path_) {
        log_limited(guest_log_, spdlog::level::warn, "virtio-net ({}): feature change while running refused",
                    tap_->name());
        return false;
    }
    if (features & ~offered_) {
        log_limited(guest_log_, spdlog::level::warn, "virtio-net ({}): driver accepted features never offered: {:#x}",
                    tap_->name(), features & ~offered_);
        return false;
    }
    // §6.1: a device without the legacy interface requires VERSION_1.
    if (!legacy_ && !has(features, virtio::kFVersion1)) {
        log_limited(guest_log_, spdlog::level::warn, "virtio-net ({}): driver without VERSION_1 refused (legacy=off)",
                    tap_->name());
        return false;
    }
    if (auto violation = dependency_violation(features)) {
        log_limited(guest_log_, spdlog::level::warn, "virtio-net ({}): feature set refused: {} (virtio 1.2 §5.1.3.1)",
                    tap_->name(), *violation);
        return false;
    }
    if (!configure_tap(features)) return false;
    negotiated_ = features;
    accepted_ = true;
    // §5.1.4.2 legacy: without CTRL_MAC_ADDR a legacy driver sets the MAC
    // by writing the config space.
    config_.set_mac_writable(!has(features, virtio::kFVersion1) && !has(features, kFCtrlMacAddr));
    return true;
}

// The header size and the receive offloads the tap must use from now on.
bool VirtioNetDevice::configure_tap(uint64_t features) {
    if (!tap_->has_vnet_hdr()) return true;  // the data path adds/strips the header
    const int header_len = static_cast<int>(vnet_header_size(features));
    if (int err = tap_->set_vnet_hdr_size(header_len)) {
        log_limited(guest_log_, spdlog::level::err, "virtio-net ({}): TUNSETVNETHDRSZ {}: {}", tap_->name(), header_len,
                    std::strerror(err));
        return false;
    }
    const unsigned offloads = tun_offload_flags(features);
    if (int err = tap_->set_offload(offloads)) {
        log_limited(guest_log_, spdlog::level::err, "virtio-net ({}): TUNSETOFFLOAD {:#x}: {}", tap_->name(), offloads,
                    std::strerror(err));
        return false;
    }
    return true;
}

void VirtioNetDevice::activate(const virtio::ActivationContext& context) {
    if (!context.memory || !context.interrupt || context.notify_eventfds.size() < context.queues.size())
        throw Error("virtio-net: activation context without memory, interrupt or notify eventfds");
    {
        std::lock_guard lock(mutex_);
        if (data_path_) {
            log_limited(guest_log_, spdlog::level::warn, "virtio-net ({}): activated twice without a reset",
                        tap_->name());
            return;
        }
        // A legacy driver has no FEATURES_OK step: its features arrive here.
        if ((accepted_ && context.features == negotiated_) || accept_locked(context.features)) {
            data_path_ = std::make_unique<DataPath>(*this, context, negotiated_);
            return;
        }
    }
    log_limited(guest_log_, spdlog::level::err, "virtio-net ({}): cannot run with features {:#x}", tap_->name(),
                context.features);
    raise_needs_reset();
}

void VirtioNetDevice::reset() {
    std::unique_ptr<DataPath> stopping;
    {
        std::lock_guard lock(mutex_);
        stopping = std::move(data_path_);
        negotiated_ = 0;
        accepted_ = false;
    }
    stopping.reset();  // joins the I/O thread
    if (tap_->has_vnet_hdr()) {
        if (int err = tap_->set_offload(0))
            log_limited(guest_log_, spdlog::level::warn, "virtio-net ({}): TUNSETOFFLOAD 0 on reset: {}", tap_->name(),
                        std::strerror(err));
    }
    config_.reset();
}

uint64_t VirtioNetDevice::negotiated_features() const {
    std::lock_guard lock(mutex_);
    return negotiated_;
}

bool VirtioNetDevice::active() const {
    std::lock_guard lock(mutex_);
    return data_path_ != nullptr;
}

void VirtioNetDevice::raise_needs_reset() {
    if (on_needs_reset) on_needs_reset();
}

nlohmann::json VirtioNetDevice::stats_json() const {
    nlohmann::json json = to_json(stats_);
    json["interface"] = tap_->name();
    json["mac"] = config_.mac().to_string();
    return json;
}

}  // namespace tapvm::net
