// Device side of a split virtqueue: see split_queue.h.
//
// Ring layout (virtio 1.2 §2.7, little-endian):
//   descriptor table  16 * size                       align 16
//   avail ring        flags, idx, ring[size], used_event    align 2
//   used ring         flags, idx, {id,len}[size], avail_event  align 4
//
// Memory ordering, in one place.  The driver runs on another CPU and
// follows §2.7.13: it writes descriptors and the avail entry, then (write
// barrier) avail.idx.  We mirror it:
//   * avail.idx is loaded with acquire, so every ring entry and descriptor
//     read after it sees at least what the driver wrote before bumping idx;
//   * used.idx is stored with release, so the used elements and all data
//     the device wrote into guest buffers are visible before the driver can
//     see the new index (§2.7.8.2: "set len prior to updating idx");
//   * a full fence separates "publish used.idx" from "read used_event /
//     avail.flags", and "write avail_event / clear NO_NOTIFY" from "re-read
//     avail.idx".  Both are store-then-load handshakes with the driver, which
//     does the mirror image (store, full barrier, load); only a full fence
//     guarantees that at least one side sees the other's store, so no
//     interrupt and no kick can be lost.
// Other shared 16-bit fields are accessed through relaxed atomic_refs: they
// need no ordering of their own, only freedom from tearing.
#include "virtio/split_queue.h"

#include <spdlog/fmt/fmt.h>
#include <spdlog/spdlog.h>

#include <atomic>
#include <bit>
#include <cstring>
#include <stdexcept>

#include "virtio/chain_walker.h"
#include "virtio/features.h"

namespace tapvm::virtio {

namespace {

inline constexpr uint16_t kAvailFNoInterrupt = 1;  // §2.7.6
inline constexpr uint16_t kUsedFNoNotify = 1;      // §2.7.8

struct UsedElement {
    uint32_t id;
    uint32_t len;
};
static_assert(sizeof(UsedElement) == 8);

uint64_t desc_table_bytes(uint16_t size) { return 16ull * size; }
uint64_t avail_ring_bytes(uint16_t size) { return 6 + 2ull * size; }  // with used_event
uint64_t used_ring_bytes(uint16_t size) { return 6 + 8ull * size; }   // with avail_event

// The 16-bit ring fields shared with the driver.  The pointers were checked
// to be 2-byte aligned host addresses inside guest RAM by create().
uint16_t load_relaxed(uint16_t* field) { return std::atomic_ref(*field).load(std::memory_order_relaxed); }
void store_relaxed(uint16_t* field, uint16_t value) {
    std::atomic_ref(*field).store(value, std::memory_order_relaxed);
}

// Linux include/uapi/linux/virtio_ring.h: does an event index inside
// [old, new_idx) ask for a notification?  All arithmetic wraps at 2^16.
bool vring_need_event(uint16_t event_idx, uint16_t new_idx, uint16_t old) {
    return static_cast<uint16_t>(new_idx - event_idx - 1) < static_cast<uint16_t>(new_idx - old);
}

}  // namespace

struct SplitQueue::Impl {
    Impl(const GuestMemory& memory, uint16_t size, std::span<const uint8_t> table, bool indirect)
        : size(size), walker(memory, table, size, indirect), in_flight((size + 63) / 64, 0) {}

    // Ring fields (host views validated by create()).
    uint16_t size;
    uint16_t* avail_flags = nullptr;
    uint16_t* avail_idx = nullptr;
    uint16_t* avail_ring = nullptr;
    uint16_t* used_event = nullptr;
    uint16_t* used_flags = nullptr;
    uint16_t* used_idx = nullptr;
    UsedElement* used_ring = nullptr;
    uint16_t* avail_event = nullptr;

    ChainWalker walker;
    bool event_idx = false;

    uint16_t next_avail = 0;      // next avail ring entry to pop
    uint16_t next_used = 0;       // next used ring entry to fill (unpublished)
    uint16_t published_used = 0;  // used.idx as the driver can see it
    uint16_t signalled_used = 0;  // used.idx when should_signal() last ran
    bool notifications_enabled = true;

    // The chain popped last, while unpop() may still give it back.
    bool can_unpop = false;
    uint16_t last_popped_head = 0;

    std::vector<uint64_t> in_flight;  // bit per descriptor head
    bool broken = false;
    ChainError ring_error = ChainError::kCount;
    uint32_t logged_errors = 0;  // bit per ChainError kind already logged
    QueueStats stats;

    bool is_in_flight(uint16_t head) const { return in_flight[head / 64] >> (head % 64) & 1; }
    void set_in_flight(uint16_t head, bool on) {
        const uint64_t mask = uint64_t{1} << (head % 64);
        in_flight[head / 64] = on ? in_flight[head / 64] | mask : in_flight[head / 64] & ~mask;
    }

    uint16_t load_avail_idx() const {
        // Acquire: pairs with the driver's write barrier before avail.idx
        // (§2.7.13), so ring entries and descriptors read after this see
        // what the driver published.
        return std::atomic_ref(*avail_idx).load(std::memory_order_acquire);
    }

    void record(ChainError error) {
        ++stats.errors[static_cast<size_t>(error)];
        const uint32_t bit = 1u << static_cast<unsigned>(error);
        if (logged_errors & bit) return;  // the guest must not flood the log
        logged_errors |= bit;
        spdlog::warn("virtqueue (size {}): {}{}", size, to_string(error),
                     is_ring_error(error) ? "; queue is broken until reset" : "; chain dropped");
    }

    void fail_ring(ChainError error) {
        record(error);
        broken = true;
        ring_error = error;
    }

    void update_avail_event() {
        // §2.7.10: "kick me when you publish entry next_avail".
        if (event_idx && notifications_enabled) store_relaxed(avail_event, next_avail);
    }
};

SplitQueue::SplitQueue() = default;
SplitQueue::~SplitQueue() = default;

std::unique_ptr<SplitQueue> SplitQueue::create(const GuestMemory& memory, const QueueConfig& config,
                                               uint64_t features, std::string& why) {
    const uint16_t size = config.size;
    // virtio 1.2 §2.7: queue size is a power of 2, at most 32768.
    if (size == 0 || size > kMaxSize || !std::has_single_bit(size)) {
        why = "queue size " + std::to_string(size) + " is not a power of two in [1, 32768]";
        return nullptr;
    }
    // virtio 1.2 §2.7, table "Virtqueue Part / Alignment / Size".
    struct Part {
        const char* name;
        Gpa gpa;
        uint64_t align;
        uint64_t bytes;
    };
    const Part parts[] = {{"descriptor table", config.desc, 16, desc_table_bytes(size)},
                          {"available ring", config.avail, 2, avail_ring_bytes(size)},
                          {"used ring", config.used, 4, used_ring_bytes(size)}};
    std::span<uint8_t> views[3];
    for (size_t i = 0; i < 3; ++i) {
        const Part& part = parts[i];
        if (part.gpa % part.align != 0) {
            why = fmt::format("{} at {:#x} is not {}-byte aligned", part.name, part.gpa, part.align);
            return nullptr;
        }
        auto view = memory.slice(part.gpa, part.bytes);
        if (!view) {
            why = fmt::format("{} [{:#x}, +{:#x}) is not inside guest RAM", part.name, part.gpa, part.bytes);
            return nullptr;
        }
        views[i] = *view;
    }

    std::unique_ptr<SplitQueue> queue(new SplitQueue());
    auto impl = std::make_unique<Impl>(memory, size, views[0], has(features, kFRingIndirectDesc));
    // The guest-physical alignment carries over to the host pointers: RAM
    // regions are page-aligned on both sides.
    auto u16_at = [](std::span<uint8_t> view, size_t offset) {
        return reinterpret_cast<uint16_t*>(view.data() + offset);
    };
    impl->avail_flags = u16_at(views[1], 0);
    impl->avail_idx = u16_at(views[1], 2);
    impl->avail_ring = u16_at(views[1], 4);
    impl->used_event = u16_at(views[1], 4 + 2 * size_t{size});
    impl->used_flags = u16_at(views[2], 0);
    impl->used_idx = u16_at(views[2], 2);
    impl->used_ring = reinterpret_cast<UsedElement*>(views[2].data() + 4);
    impl->avail_event = u16_at(views[2], 4 + 8 * size_t{size});
    impl->event_idx = has(features, kFRingEventIdx);
    queue->impl_ = std::move(impl);
    return queue;
}

uint16_t SplitQueue::size() const { return impl_->size; }
uint16_t SplitQueue::next_avail_index() const { return impl_->next_avail; }

void SplitQueue::resume_at(uint16_t next_avail) {
    Impl& q = *impl_;
    if (q.stats.chains_popped != 0) throw std::logic_error("SplitQueue::resume_at after a pop");
    q.next_avail = next_avail;
    const uint16_t used = std::atomic_ref(*q.used_idx).load(std::memory_order_acquire);
    q.next_used = q.published_used = q.signalled_used = used;
    q.update_avail_event();
}
bool SplitQueue::broken() const { return impl_->broken; }
const QueueStats& SplitQueue::stats() const { return impl_->stats; }

PopResult SplitQueue::pop(DescriptorChain& chain) {
    Impl& q = *impl_;
    if (chain.pending()) throw std::logic_error("SplitQueue::pop into a chain that was not completed");
    if (q.broken) return {PopStatus::kError, q.ring_error};

    const uint16_t avail_idx = q.load_avail_idx();  // guest-controlled
    const uint16_t waiting = static_cast<uint16_t>(avail_idx - q.next_avail);
    if (waiting == 0) return {PopStatus::kEmpty};
    // §2.7.6: the driver can never have more than `size` entries outstanding;
    // a bigger jump means the index (or the ring) is garbage.
    if (waiting > q.size) {
        q.fail_ring(ChainError::kAvailIndexJump);
        return {PopStatus::kError, ChainError::kAvailIndexJump};
    }

    const uint16_t head = load_relaxed(&q.avail_ring[q.next_avail & (q.size - 1)]);  // guest-controlled
    if (head >= q.size) {
        q.fail_ring(ChainError::kHeadOutOfRange);
        return {PopStatus::kError, ChainError::kHeadOutOfRange};
    }
    if (q.is_in_flight(head)) {
        q.fail_ring(ChainError::kDuplicateHead);
        return {PopStatus::kError, ChainError::kDuplicateHead};
    }

    ++q.next_avail;
    q.update_avail_event();
    const auto error = q.walker.walk(head, chain);
    q.set_in_flight(head, true);
    chain.head_ = head;
    chain.pending_ = true;
    ++q.stats.chains_popped;

    if (error) {
        // A bad chain is still the driver's buffer: hand it back empty
        // (Firecracker / Cloud Hypervisor do the same) so it is not leaked.
        q.record(*error);
        complete(chain, 0);
        return {PopStatus::kError, *error};
    }
    q.can_unpop = true;
    q.last_popped_head = head;
    return {PopStatus::kChain};
}

void SplitQueue::unpop(DescriptorChain& chain) {
    Impl& q = *impl_;
    if (!chain.pending() || !q.can_unpop || chain.head() != q.last_popped_head)
        throw std::logic_error("SplitQueue::unpop of a chain that is not the last one popped");
    q.can_unpop = false;
    q.set_in_flight(chain.head(), false);
    --q.next_avail;
    --q.stats.chains_popped;
    chain.clear();
}

void SplitQueue::complete(DescriptorChain& chain, uint32_t written) {
    Impl& q = *impl_;
    if (!chain.pending()) throw std::logic_error("SplitQueue::complete of a chain that is not pending");
    // The driver trusts `len` (§2.7.8): never claim more than the chain holds.
    const uint64_t len = std::min<uint64_t>(written, chain.writable_bytes());
    UsedElement& slot = q.used_ring[q.next_used & (q.size - 1)];
    std::atomic_ref(slot.id).store(chain.head(), std::memory_order_relaxed);
    std::atomic_ref(slot.len).store(static_cast<uint32_t>(len), std::memory_order_relaxed);
    ++q.next_used;
    q.set_in_flight(chain.head(), false);
    q.can_unpop = false;
    ++q.stats.chains_completed;
    chain.clear();
}

void SplitQueue::publish() {
    Impl& q = *impl_;
    if (q.next_used == q.published_used) return;
    // Release: the used elements above and the data written into the
    // buffers become visible no later than the index that announces them.
    std::atomic_ref(*q.used_idx).store(q.next_used, std::memory_order_release);
    q.published_used = q.next_used;
}

bool SplitQueue::should_signal() {
    Impl& q = *impl_;
    const uint16_t old_idx = q.signalled_used;
    const uint16_t new_idx = q.published_used;
    if (old_idx == new_idx) return false;  // nothing new since the last decision
    // Each call closes the window [old, new), as vhost does: entries the
    // driver declined to be told about stay declined.  This is safe because
    // the driver re-checks used.idx after moving used_event (§2.7.7).
    q.signalled_used = new_idx;

    // Full fence: our used.idx store must be globally visible before we read
    // the driver's suppression fields; the driver does store(used_event),
    // full barrier, load(used.idx).  See the ordering note at the top.
    std::atomic_thread_fence(std::memory_order_seq_cst);
    bool wanted;
    if (q.event_idx) {
        // §2.7.7.2: signal iff used_event lies in the window just published.
        wanted = vring_need_event(load_relaxed(q.used_event), new_idx, old_idx);
    } else {
        // §2.7.7.2: flags == 1 means "no interrupt, please".
        wanted = !(load_relaxed(q.avail_flags) & kAvailFNoInterrupt);
    }
    if (!wanted) ++q.stats.interrupts_suppressed;
    return wanted;
}

void SplitQueue::disable_notifications() {
    Impl& q = *impl_;
    q.notifications_enabled = false;
    // §2.7.10.2: with EVENT_IDX the device leaves flags at 0 and simply stops
    // advancing avail_event, so the driver's index soon runs past it.
    if (!q.event_idx) store_relaxed(q.used_flags, kUsedFNoNotify);
}

bool SplitQueue::enable_notifications() {
    Impl& q = *impl_;
    q.notifications_enabled = true;
    if (q.event_idx)
        q.update_avail_event();
    else
        store_relaxed(q.used_flags, 0);
    // Full fence: the driver may have added buffers after we last looked and
    // before it could see the re-armed flag / avail_event.  It does
    // store(avail.idx), full barrier, load(flags or avail_event); we do the
    // mirror image, so at least one of us notices.
    std::atomic_thread_fence(std::memory_order_seq_cst);
    return has_available();
}

bool SplitQueue::has_available() const {
    const Impl& q = *impl_;
    if (q.broken) return false;
    return q.load_avail_idx() != q.next_avail;
}

}  // namespace tapvm::virtio
