#include "virtio/vhost_user/vhost_user_backend.h"

#include <spdlog/spdlog.h>
#include <sys/eventfd.h>

#include <bit>

#include "virtio/features.h"
#include "vmm/error.h"
#include "vmm/event_fd.h"
#include "vmm/log_limiter.h"

namespace tapvm::virtio::vhost_user {

namespace {

constexpr uint64_t kProtocolFeaturesOffered = uint64_t{1} << kProtocolFReplyAck;

bool expects_payload_reply(uint32_t request) {
    switch (static_cast<Request>(request)) {
        case Request::kGetFeatures:
        case Request::kGetProtocolFeatures:
        case Request::kGetQueueNum:
        case Request::kGetVringBase: return true;
        default: return false;
    }
}

template <class T>
std::vector<uint8_t> bytes_of(const T& value) {
    const auto* p = reinterpret_cast<const uint8_t*>(&value);
    return {p, p + sizeof(T)};
}

void signal_eventfd(const UniqueFd& fd) {
    // A counter already at its maximum is signalled anyway: EAGAIN is fine.
    if (fd) (void)::eventfd_write(fd.get(), 1);
}

}  // namespace

// --- Signals ------------------------------------------------------------------

void VhostUserBackend::Signals::signal_queue(uint16_t queue_index) {
    std::lock_guard lock(mutex_);
    if (queue_index < call_.size()) signal_eventfd(call_[queue_index]);
}

void VhostUserBackend::Signals::set_call(size_t ring, UniqueFd fd) {
    std::lock_guard lock(mutex_);
    call_.at(ring) = std::move(fd);
}

void VhostUserBackend::Signals::set_error(size_t ring, UniqueFd fd) {
    std::lock_guard lock(mutex_);
    error_.at(ring) = std::move(fd);
}

void VhostUserBackend::Signals::signal_errors() {
    std::lock_guard lock(mutex_);
    for (const auto& fd : error_) signal_eventfd(fd);
}

void VhostUserBackend::Signals::clear() {
    std::lock_guard lock(mutex_);
    for (auto& fd : call_) fd.reset();
    for (auto& fd : error_) fd.reset();
}

// --- VhostUserBackend ---------------------------------------------------------

VhostUserBackend::VhostUserBackend(VirtioDevice& device)
    : device_(device), rings_(device.num_queues()), signals_(device.num_queues()) {}

VhostUserBackend::~VhostUserBackend() { disconnect(); }

bool VhostUserBackend::handle(Message& message, Channel& channel) {
    const uint32_t request = message.header.request;
    Outcome outcome;
    try {
        outcome = dispatch(message);
    } catch (const Error& e) {
        outcome = {false, e.what(), std::nullopt};
    }
    if (!outcome.ok) {
        log_limited(peer_log_, spdlog::level::warn, "vhost-user: {} refused: {}", request_name(request), outcome.why);
        // The frontend waits for an answer this backend has no value for.
        if (expects_payload_reply(request) || outcome.why.starts_with("unknown request")) return false;
    }
    if (outcome.reply) {
        channel.reply(request, *outcome.reply);
    } else if ((protocol_features_ >> kProtocolFReplyAck & 1) && (message.header.flags & kFlagNeedReply)) {
        channel.reply_u64(request, outcome.ok ? 0 : 1);
    }
    return true;
}

VhostUserBackend::Outcome VhostUserBackend::dispatch(Message& message) {
    // The request's fixed-size payload, or an Error when too little came.
    auto payload = [&message]<class T>(T value) {
        if (!message.read(value)) throw Error(fmt::format("payload of {} bytes is too short", message.header.size));
        return value;
    };
    switch (static_cast<Request>(message.header.request)) {
        case Request::kGetFeatures:
            return {true, {}, bytes_of(device_.offered_features() | uint64_t{1} << kFProtocolFeatures)};
        case Request::kSetFeatures: return set_features(payload(uint64_t{}));
        case Request::kGetProtocolFeatures: return {true, {}, bytes_of(kProtocolFeaturesOffered)};
        case Request::kSetProtocolFeatures: return set_protocol_features(payload(uint64_t{}));
        case Request::kSetOwner: return {};
        case Request::kResetOwner:
            disconnect();  // the deprecated "reset the device" of old frontends
            return {};
        case Request::kGetQueueNum: return {true, {}, bytes_of(uint64_t{device_.num_queues()})};
        case Request::kSetMemTable: return set_mem_table(message);
        case Request::kSetVringNum: return set_vring_num(payload(VringState{}));
        case Request::kSetVringAddr: return set_vring_addr(payload(VringAddress{}));
        case Request::kSetVringBase: return set_vring_base(payload(VringState{}));
        case Request::kGetVringBase: return get_vring_base(payload(VringState{}));
        case Request::kSetVringKick:
        case Request::kSetVringCall:
        case Request::kSetVringErr: return set_vring_fd(static_cast<Request>(message.header.request), message);
        case Request::kSetVringEnable: return set_vring_enable(payload(VringState{}));
        case Request::kSetLogBase:
        case Request::kSetLogFd:
        case Request::kSendRarp:
        case Request::kNetSetMtu: return {false, "needs a feature this backend did not offer", {}};
    }
    return {false, fmt::format("unknown request {}", message.header.request), {}};
}

VhostUserBackend::Outcome VhostUserBackend::set_protocol_features(uint64_t features) {
    if (features & ~kProtocolFeaturesOffered)
        return {false, fmt::format("protocol features {:#x} were not offered", features), {}};
    protocol_features_ = features;
    return {};
}

VhostUserBackend::Outcome VhostUserBackend::set_features(uint64_t features) {
    const uint64_t offered = device_.offered_features() | uint64_t{1} << kFProtocolFeatures;
    if (features & ~offered)
        return {false, fmt::format("features {:#x} were not offered", features & ~offered), {}};
    const bool was_running = running_;
    stop();
    features_ = features;
    features_set_ = device_.accept_features(features & ~(uint64_t{1} << kFProtocolFeatures));
    if (!features_set_) {
        // Without REPLY_ACK the frontend would never learn; its error
        // eventfds at least make it say "vring error".
        signals_.signal_errors();
        return {false, fmt::format("the device refuses features {:#x}", features), {}};
    }
    if (was_running) try_start();
    return {};
}

VhostUserBackend::Outcome VhostUserBackend::set_mem_table(Message& message) {
    MemoryTable table;
    if (!message.read(table, offsetof(MemoryTable, regions)))
        return {false, "payload too short", {}};
    const uint32_t n = table.nregions;
    if (n == 0 || n > kMaxMemoryRegions)
        return {false, fmt::format("{} memory regions (1 to {} are possible)", n, kMaxMemoryRegions), {}};
    if (message.header.size < offsetof(MemoryTable, regions) + n * sizeof(MemoryRegion))
        return {false, fmt::format("payload of {} bytes for {} regions", message.header.size, n), {}};
    if (message.fds.size() != n)
        return {false, fmt::format("{} regions came with {} fds", n, message.fds.size()), {}};

    std::vector<SharedRegion> shared;
    std::vector<MemoryRegion> regions(table.regions, table.regions + n);
    for (uint32_t i = 0; i < n; ++i) {
        const MemoryRegion& r = regions[i];
        if (r.userspace_addr + r.memory_size < r.userspace_addr)
            return {false, fmt::format("region {} wraps around the frontend's address space", i), {}};
        shared.push_back({r.guest_phys_addr, r.memory_size, message.fds[i].get(), r.mmap_offset});
    }
    // Maps (and checks) the new table before the device lets go of the old.
    auto memory = std::make_unique<GuestMemory>(GuestMemory::map_shared(shared));
    stop();
    memory_ = std::move(memory);
    regions_ = std::move(regions);
    spdlog::info("vhost-user: {} MiB of guest memory in {} region(s)", memory_->total_size() >> 20, n);
    if (memory_->unsealed_regions())
        spdlog::warn("vhost-user: {} of {} memory region(s) cannot be sealed against shrinking (not a sealable "
                     "memfd): the frontend must not truncate them while this backend runs",
                     memory_->unsealed_regions(), n);
    try_start();
    return {};
}

VhostUserBackend::Ring* VhostUserBackend::ring(uint32_t index) {
    return index < rings_.size() ? &rings_[index] : nullptr;
}

VhostUserBackend::Outcome VhostUserBackend::set_vring_num(const VringState& state) {
    Ring* r = ring(state.index);
    if (!r) return {false, fmt::format("ring {} does not exist", state.index), {}};
    if (r->queue) return {false, fmt::format("ring {} is running", state.index), {}};
    if (state.num == 0 || state.num > device_.max_queue_size() || !std::has_single_bit(state.num))
        return {false, fmt::format("ring size {} is not a power of two in [1, {}]", state.num,
                                   device_.max_queue_size()), {}};
    r->num = static_cast<uint16_t>(state.num);
    return {};
}

VhostUserBackend::Outcome VhostUserBackend::set_vring_addr(const VringAddress& address) {
    Ring* r = ring(address.index);
    if (!r) return {false, fmt::format("ring {} does not exist", address.index), {}};
    if (address.flags & 1) return {false, "used-ring logging was not offered", {}};
    r->address = address;
    // A running ring moves only across a stop; otherwise the new place is
    // used when the device next starts.
    if (r->queue) {
        stop();
        try_start();
    }
    return {};
}

VhostUserBackend::Outcome VhostUserBackend::set_vring_base(const VringState& state) {
    Ring* r = ring(state.index);
    if (!r) return {false, fmt::format("ring {} does not exist", state.index), {}};
    if (r->queue) return {false, fmt::format("ring {} is running", state.index), {}};
    if (state.num > 0xffff) return {false, fmt::format("ring base {} is not a 16-bit index", state.num), {}};
    r->base = static_cast<uint16_t>(state.num);
    return {};
}

VhostUserBackend::Outcome VhostUserBackend::get_vring_base(const VringState& state) {
    Ring* r = ring(state.index);
    if (!r) return {false, fmt::format("ring {} does not exist", state.index), {}};
    stop();  // the whole device: its rings run together
    r->started = false;
    r->kick.reset();
    signals_.set_call(state.index, UniqueFd());
    return {true, {}, bytes_of(VringState{state.index, r->base})};
}

VhostUserBackend::Outcome VhostUserBackend::set_vring_fd(Request request, Message& message) {
    uint64_t value;
    if (!message.read(value)) return {false, "payload too short", {}};
    const uint32_t index = static_cast<uint32_t>(value & kVringIndexMask);
    Ring* r = ring(index);
    if (!r) return {false, fmt::format("ring {} does not exist", index), {}};
    const bool no_fd = value & kVringNoFd;
    if (message.fds.size() != (no_fd ? 0u : 1u))
        return {false, fmt::format("{} fds came (expected {})", message.fds.size(), no_fd ? 0 : 1), {}};
    UniqueFd fd = no_fd ? UniqueFd() : std::move(message.fds[0]);
    // vhost-user.rst: kick, call and err are eventfds.  Anything else (a
    // pipe, a socket, a file) could block the I/O thread that signals or
    // drains it, or make it act on something that is not a notification.
    if (fd && !adopt_foreign_eventfd(fd.get()))
        return {false, fmt::format("ring {}: the fd is not an eventfd", index), {}};
    switch (request) {
        case Request::kSetVringKick:
            if (no_fd) return {false, "polling a ring without a kick eventfd is not supported", {}};
            stop();
            r->kick = std::move(fd);
            r->started = true;
            try_start();
            return {};
        case Request::kSetVringCall: signals_.set_call(index, std::move(fd)); return {};
        default: signals_.set_error(index, std::move(fd)); return {};
    }
}

VhostUserBackend::Outcome VhostUserBackend::set_vring_enable(const VringState& state) {
    Ring* r = ring(state.index);
    if (!r) return {false, fmt::format("ring {} does not exist", state.index), {}};
    if (state.num > 1) return {false, fmt::format("enable value {}", state.num), {}};
    r->enabled = state.num == 1;
    if (r->enabled) {
        try_start();
    } else {
        stop();
    }
    return {};
}

std::optional<Gpa> VhostUserBackend::to_guest(uint64_t user_addr, uint64_t len) const {
    for (const auto& r : regions_) {
        if (user_addr < r.userspace_addr) continue;
        const uint64_t off = user_addr - r.userspace_addr;
        if (off < r.memory_size && len <= r.memory_size - off) return r.guest_phys_addr + off;
    }
    return std::nullopt;
}

void VhostUserBackend::try_start() {
    if (running_ || !memory_ || !features_set_) return;
    const bool enable_needed = features_ >> kFProtocolFeatures & 1;
    for (const Ring& r : rings_)
        if (!r.num || !r.address || !r.started || (enable_needed && !r.enabled)) return;

    const uint64_t features = features_ & ~(uint64_t{1} << kFProtocolFeatures);
    ActivationContext context{memory_.get(), features, {}, {}, &signals_};
    for (size_t i = 0; i < rings_.size(); ++i) {
        Ring& r = rings_[i];
        const VringAddress& a = *r.address;
        // Lengths here only locate the rings; SplitQueue::create checks each
        // ring wholly against guest memory.
        const auto desc = to_guest(a.desc_user_addr, 1);
        const auto avail = to_guest(a.avail_user_addr, 1);
        const auto used = to_guest(a.used_user_addr, 1);
        std::string why = "a ring address is outside the shared memory";
        if (desc && avail && used)
            r.queue = SplitQueue::create(*memory_, QueueConfig{r.num, *desc, *avail, *used}, features, why);
        if (!r.queue) {
            spdlog::error("vhost-user: ring {} cannot run: {}", i, why);
            for (Ring& other : rings_) other.queue.reset();
            signals_.signal_errors();
            return;
        }
        r.queue->resume_at(r.base);
        spdlog::debug("vhost-user: ring {}: {} entries, desc {:#x} avail {:#x} used {:#x}, from entry {}", i,
                      r.num, *desc, *avail, *used, r.base);
        context.queues.push_back(r.queue.get());
        context.notify_eventfds.push_back(r.kick.get());
    }
    device_.activate(context);
    running_ = true;
    spdlog::info("vhost-user: device running ({} rings, features {:#x})", rings_.size(), features);
}

void VhostUserBackend::stop() {
    if (!running_) return;
    device_.reset();  // returns when the data path no longer touches the rings
    for (Ring& r : rings_) {
        if (!r.queue) continue;
        r.base = r.queue->next_avail_index();
        r.queue.reset();
    }
    running_ = false;
    // The device forgot the features; activate() negotiates them again.
    spdlog::info("vhost-user: device stopped");
}

void VhostUserBackend::disconnect() {
    stop();
    // Even a device that never ran may have configured its backend (a tap's
    // offloads) when it accepted features: leave it clean for the next user.
    device_.reset();
    for (Ring& r : rings_) r = Ring{};
    signals_.clear();
    memory_.reset();
    regions_.clear();
    features_ = 0;
    features_set_ = false;
    protocol_features_ = 0;
}

void VhostUserBackend::report_ring_error() { signals_.signal_errors(); }

}  // namespace tapvm::virtio::vhost_user
