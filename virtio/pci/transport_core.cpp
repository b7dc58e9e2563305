#include "virtio/pci/transport_core.h"

#include <spdlog/fmt/fmt.h>
#include <spdlog/spdlog.h>

#include <bit>
#include <exception>

#include "devices/pci/pci_function.h"
#include "virtio/features.h"
#include "virtio/pci/virtio_pci_regs.h"
#include "vmm/log_limiter.h"

namespace tapvm::virtio {

namespace r = pci_regs;

TransportCore::TransportCore(std::shared_ptr<VirtioDevice> device, const GuestMemory& memory,
                             std::shared_ptr<pci::PciFunction> function, IoEventRegistry& registry)
    : device_(std::move(device)),
      memory_(memory),
      function_(std::move(function)),
      offered_(device_->offered_features()),
      num_queues_(device_->num_queues()),
      max_queue_size_(device_->max_queue_size()),
      interrupt_(*function_, num_queues_),
      doorbells_(registry, num_queues_),
      queues_(num_queues_, QueueRegs{max_queue_size_}) {}

TransportCore::~TransportCore() {
    std::lock_guard lock(mutex_);
    if (active_) device_->reset();
}

uint8_t TransportCore::status() const {
    std::lock_guard lock(mutex_);
    return visible_status();
}

uint8_t TransportCore::visible_status() const {
    return status_ | (needs_reset_.load() ? kStatusDeviceNeedsReset : 0);
}

void TransportCore::device_needs_reset(const char* why) {
    if (needs_reset_.exchange(true)) return;  // the driver has been told already
    log_limited(guest_log_, spdlog::level::warn, "virtio-pci: {}; setting DEVICE_NEEDS_RESET", why);
    interrupt_.signal_config();
}

bool TransportCore::active() const {
    std::lock_guard lock(mutex_);
    return active_;
}

// --- Modern common configuration ------------------------------------------------

uint32_t TransportCore::read_common(CommonField field) {
    std::lock_guard lock(mutex_);
    const QueueRegs* queue = selected_queue();
    switch (field) {
        case CommonField::kDeviceFeatureSelect: return device_feature_select_;
        // §4.1.4.3.1: bits select*32 .. select*32+31; zero beyond bit 63.
        case CommonField::kDeviceFeature:
            return device_feature_select_ < 2 ? static_cast<uint32_t>(offered_ >> (32 * device_feature_select_)) : 0;
        case CommonField::kDriverFeatureSelect: return driver_feature_select_;
        case CommonField::kDriverFeature:
            return driver_feature_select_ < 2 ? static_cast<uint32_t>(driver_features_ >> (32 * driver_feature_select_))
                                              : 0;
        case CommonField::kConfigMsixVector: return interrupt_.config_vector();
        case CommonField::kNumQueues: return num_queues_;
        case CommonField::kDeviceStatus: return visible_status();
        case CommonField::kConfigGeneration: return interrupt_.config_generation();
        case CommonField::kQueueSelect: return queue_select_;
        // §4.1.4.3.1: queue_size 0 says "this queue does not exist".
        case CommonField::kQueueSize: return queue ? queue->size : 0;
        case CommonField::kQueueMsixVector: return interrupt_.queue_vector(queue_select_);
        case CommonField::kQueueEnable: return queue && queue->enabled;
        case CommonField::kQueueNotifyOff: return queue ? queue_select_ : 0;  // doorbell q at q * multiplier
        case CommonField::kQueueDescLo: return queue ? static_cast<uint32_t>(queue->desc) : 0;
        case CommonField::kQueueDescHi: return queue ? static_cast<uint32_t>(queue->desc >> 32) : 0;
        case CommonField::kQueueDriverLo: return queue ? static_cast<uint32_t>(queue->driver) : 0;
        case CommonField::kQueueDriverHi: return queue ? static_cast<uint32_t>(queue->driver >> 32) : 0;
        case CommonField::kQueueDeviceLo: return queue ? static_cast<uint32_t>(queue->device) : 0;
        case CommonField::kQueueDeviceHi: return queue ? static_cast<uint32_t>(queue->device >> 32) : 0;
    }
    return 0;
}

void TransportCore::write_common(CommonField field, uint32_t value) {
    std::lock_guard lock(mutex_);
    switch (field) {
        case CommonField::kDeviceFeatureSelect: device_feature_select_ = value; return;
        case CommonField::kDriverFeatureSelect: driver_feature_select_ = value; return;
        case CommonField::kDriverFeature: write_driver_feature(value); return;
        case CommonField::kConfigMsixVector: interrupt_.set_config_vector(static_cast<uint16_t>(value)); return;
        case CommonField::kDeviceStatus: set_status(static_cast<uint8_t>(value), Interface::kModern); return;
        case CommonField::kQueueSelect: queue_select_ = static_cast<uint16_t>(value); return;
        default: break;
    }
    // The rest configure the selected queue.
    QueueRegs* queue = selected_queue();
    if (!queue || !queue_writable("queue register")) return;
    switch (field) {
        case CommonField::kQueueSize: write_queue_size(static_cast<uint16_t>(value)); return;
        case CommonField::kQueueMsixVector:
            interrupt_.set_queue_vector(queue_select_, static_cast<uint16_t>(value));
            return;
        case CommonField::kQueueEnable:
            // §4.1.4.3.2: "The driver MUST NOT write a 0 to queue_enable."
            if (value == 1) queue->enabled = true;
            return;
        case CommonField::kQueueDescLo: set_half(queue->desc, false, value); return;
        case CommonField::kQueueDescHi: set_half(queue->desc, true, value); return;
        case CommonField::kQueueDriverLo: set_half(queue->driver, false, value); return;
        case CommonField::kQueueDriverHi: set_half(queue->driver, true, value); return;
        case CommonField::kQueueDeviceLo: set_half(queue->device, false, value); return;
        case CommonField::kQueueDeviceHi: set_half(queue->device, true, value); return;
        default: return;  // read-only fields never get here (see the table)
    }
}

void TransportCore::write_driver_feature(uint32_t value) {
    // §3.1.1: features are fixed once FEATURES_OK is set.
    if (status_ & kStatusFeaturesOk) {
        if (!std::exchange(late_write_logged_, true))
            log_limited(guest_log_, spdlog::level::warn,
                        "virtio-pci: driver_feature written after FEATURES_OK; ignored");
        return;
    }
    if (driver_feature_select_ >= 2) {
        // Bits above 63: nothing is ever offered there.
        if (value != 0 && !std::exchange(unoffered_logged_, true))
            log_limited(guest_log_, spdlog::level::warn,
                        "virtio-pci: driver accepted feature bits above 63 ({:#x} in word {}); ignored", value,
                        driver_feature_select_);
        return;
    }
    const unsigned shift = 32 * driver_feature_select_;
    driver_features_ = (driver_features_ & ~(uint64_t{0xffffffff} << shift)) | (uint64_t{value} << shift);
}

void TransportCore::write_queue_size(uint16_t size) {
    // §4.1.4.3.2: a power of two; the driver may only shrink the queue.
    if (size == 0 || size > max_queue_size_ || !std::has_single_bit(size)) {
        log_limited(guest_log_, spdlog::level::warn,
                    "virtio-pci: queue {} size {} refused (power of two up to {} expected)", queue_select_, size,
                    max_queue_size_);
        return;
    }
    queues_[queue_select_].size = size;
}

void TransportCore::set_half(Gpa& address, bool high, uint32_t value) {
    address = high ? (address & 0xffffffffull) | (uint64_t{value} << 32)
                   : (address & ~0xffffffffull) | value;
}

TransportCore::QueueRegs* TransportCore::selected_queue() {
    return queue_select_ < queues_.size() ? &queues_[queue_select_] : nullptr;
}

bool TransportCore::queue_writable(const char* what) {
    // The rings were validated and handed to the device at DRIVER_OK; moving
    // them under a running data path is not allowed (§4.1.4.3.2).
    if (!(status_ & kStatusDriverOk)) return true;
    if (!std::exchange(late_write_logged_, true))
        log_limited(guest_log_, spdlog::level::warn, "virtio-pci: {} of queue {} written after DRIVER_OK; ignored",
                    what, queue_select_);
    return false;
}

// --- Legacy interface ---------------------------------------------------------------

uint64_t TransportCore::legacy_header_size() const {
    return interrupt_.msix_enabled() ? r::kLegacyConfigMsix : r::kLegacyConfigNoMsix;
}

uint32_t TransportCore::read_legacy(LegacyField field) {
    if (field == LegacyField::kIsr) return read_isr();
    std::lock_guard lock(mutex_);
    const QueueRegs* queue = selected_queue();
    switch (field) {
        // §4.1.4.8: only feature bits 0..31 exist for a legacy driver.
        case LegacyField::kHostFeatures: return static_cast<uint32_t>(offered_);
        case LegacyField::kGuestFeatures: return static_cast<uint32_t>(driver_features_);
        case LegacyField::kQueuePfn:
            return queue && queue->enabled ? static_cast<uint32_t>(queue->desc >> r::kLegacyPfnShift) : 0;
        // No size negotiation in the legacy interface: always the maximum.
        case LegacyField::kQueueNum: return queue ? max_queue_size_ : 0;
        case LegacyField::kQueueSelect: return queue_select_;
        case LegacyField::kQueueNotify: return 0;
        case LegacyField::kStatus: return visible_status();
        case LegacyField::kConfigVector: return interrupt_.config_vector();
        case LegacyField::kQueueVector: return interrupt_.queue_vector(queue_select_);
        case LegacyField::kIsr: break;
    }
    return 0;
}

void TransportCore::write_legacy(LegacyField field, uint32_t value) {
    if (field == LegacyField::kQueueNotify) {
        notify(static_cast<uint16_t>(value));  // the value is the queue index
        return;
    }
    std::lock_guard lock(mutex_);
    switch (field) {
        case LegacyField::kGuestFeatures:
            if (status_ & kStatusDriverOk) return;
            // §4.1.4.8: bits 32..63 count as not acknowledged.
            driver_features_ = value;
            return;
        case LegacyField::kQueuePfn:
            if (selected_queue() && queue_writable("queue PFN")) write_queue_pfn(value);
            return;
        case LegacyField::kQueueSelect: queue_select_ = static_cast<uint16_t>(value); return;
        case LegacyField::kStatus: set_status(static_cast<uint8_t>(value), Interface::kLegacy); return;
        case LegacyField::kConfigVector: interrupt_.set_config_vector(static_cast<uint16_t>(value)); return;
        case LegacyField::kQueueVector:
            if (selected_queue() && queue_writable("queue vector"))
                interrupt_.set_queue_vector(queue_select_, static_cast<uint16_t>(value));
            return;
        default: return;  // read-only
    }
}

void TransportCore::write_queue_pfn(uint32_t pfn) {
    QueueRegs& queue = queues_[queue_select_];
    if (pfn == 0) {  // Linux's legacy driver writes 0 to tear a queue down
        queue = QueueRegs{max_queue_size_};
        return;
    }
    // §2.7.2 legacy layout, Queue Align 4096: descriptors at the page, the
    // avail ring right after them, the used ring on the next 4096 boundary
    // after avail (including used_event).
    const uint64_t size = max_queue_size_;
    queue.size = max_queue_size_;
    queue.desc = uint64_t{pfn} << r::kLegacyPfnShift;
    queue.driver = queue.desc + 16 * size;
    const uint64_t avail_end = queue.driver + 6 + 2 * size;
    queue.device = (avail_end + r::kLegacyVringAlign - 1) & ~(r::kLegacyVringAlign - 1);
    queue.enabled = true;
}

// --- Device configuration ---------------------------------------------------------------

void TransportCore::read_device_config(uint64_t offset, std::span<uint8_t> data) {
    device_->read_config(offset, data);
}

void TransportCore::write_device_config(uint64_t offset, std::span<const uint8_t> data) {
    device_->write_config(offset, data);
}

// --- Status state machine -------------------------------------------------------------------

void TransportCore::set_status(uint8_t value, Interface interface) {
    // §4.1.4.3.1: writing 0 resets the device.
    if (value == 0) {
        reset();
        return;
    }
    const uint8_t old = status_;
    // DEVICE_NEEDS_RESET is the device's to set (§2.1.2); drivers write back
    // what they read plus one bit (Linux's virtio_add_status), so ignore it.
    uint8_t next = static_cast<uint8_t>(value & ~kStatusDeviceNeedsReset);
    // §2.1.1: the driver MUST NOT clear a status bit; only a reset does.
    if (old & ~next) {
        log_limited(guest_log_, spdlog::level::warn,
                    "virtio-pci: driver cleared status bits {:#x} without a reset; kept", old & ~next);
        next |= old;
    }
    if ((next & kStatusFeaturesOk) && !(old & kStatusFeaturesOk) && !negotiate(interface))
        next &= ~kStatusFeaturesOk;  // §3.1.1: the driver reads it back to learn of the refusal
    if ((next & kStatusFailed) && !(old & kStatusFailed))
        log_limited(guest_log_, spdlog::level::warn, "virtio-pci: the driver gave up on the device (status FAILED)");
    status_ = next;
    if ((next & kStatusDriverOk) && !(old & kStatusDriverOk)) activate(interface);
}

bool TransportCore::negotiate(Interface interface) {
    uint64_t wanted = driver_features_;
    if (interface == Interface::kLegacy) wanted &= 0xffffffff;
    // §2.2.1: the driver MUST NOT accept a feature the device did not offer.
    if (wanted & ~offered_) {
        if (!std::exchange(unoffered_logged_, true))
            log_limited(guest_log_, spdlog::level::warn,
                        "virtio-pci: driver accepted features {:#x} that were never offered; ignored",
                        wanted & ~offered_);
        wanted &= offered_;
    }
    // §6.1: a driver of the modern interface MUST accept VERSION_1.
    if (interface == Interface::kModern && !has(wanted, kFVersion1)) {
        log_limited(guest_log_, spdlog::level::warn,
                    "virtio-pci: FEATURES_OK without VERSION_1 on the modern interface; refused");
        return false;
    }
    if (!device_->accept_features(wanted)) {
        log_limited(guest_log_, spdlog::level::warn, "virtio-pci: the device refused features {:#x}", wanted);
        return false;
    }
    negotiated_ = wanted;
    features_accepted_ = true;
    return true;
}

void TransportCore::activate(Interface interface) {
    // Legacy drivers never set FEATURES_OK (it did not exist); their
    // features count from DRIVER_OK.  A modern driver must have set it.
    if (!features_accepted_) {
        if (interface == Interface::kModern) return fail("DRIVER_OK without FEATURES_OK");
        if (!negotiate(interface)) return fail("legacy driver's features refused");
    }
    std::vector<SplitQueue*> queues(num_queues_, nullptr);
    for (uint16_t q = 0; q < num_queues_; ++q) {
        const QueueRegs& regs = queues_[q];
        if (!regs.enabled) continue;
        std::string why;
        auto ring = SplitQueue::create(memory_, {regs.size, regs.desc, regs.driver, regs.device}, negotiated_, why);
        if (!ring) {
            rings_.clear();
            return fail(fmt::format("queue {}: {}", q, why));
        }
        queues[q] = ring.get();
        rings_.push_back(std::move(ring));
    }
    ActivationContext context{&memory_, negotiated_, std::move(queues), doorbells_.fds(), &interrupt_};
    try {
        device_->activate(context);
    } catch (const std::exception& e) {
        device_->reset();
        rings_.clear();
        return fail(fmt::format("device activation failed: {}", e.what()));
    }
    active_ = true;
}

void TransportCore::fail(const std::string& why) {
    // §2.1.2: DEVICE_NEEDS_RESET plus a configuration change notification
    // is how a device tells the driver it cannot go on.
    device_needs_reset(why.c_str());
}

void TransportCore::reset() {
    // §2.4: stop the data path first (the device returns only when no thread
    // touches guest memory any more), then forget everything the driver set.
    device_->reset();
    rings_.clear();
    active_ = false;
    status_ = 0;
    needs_reset_ = false;  // the device thread is gone: nobody sets it again
    device_feature_select_ = driver_feature_select_ = 0;
    driver_features_ = negotiated_ = 0;
    features_accepted_ = false;
    queue_select_ = 0;
    queues_.assign(num_queues_, QueueRegs{max_queue_size_});
    interrupt_.reset();
    doorbells_.drain();
}

}  // namespace tapvm::virtio
