// The driver side of a split virtqueue, for tests: it lays out the rings in
// a real GuestMemory exactly as a guest driver would (virtio 1.2 §2.7) and
// lets a test play the driver — and a misbehaving one on purpose.
//
// Typical use (memory: e.g. GuestMemory({{0, 16 << 20}})):
//
//   FakeDriverQueue driver(memory, {.size = 256, .rings = 0x10000, .data = 0x100000});
//   auto q = SplitQueue::create(memory, driver.config(), features, why);
//   Gpa buf = driver.alloc(1500);
//   uint16_t head = driver.chain().readable(hdr, 12).writable(buf, 1500).offer();
//   ... q->pop(chain); q->complete(chain, n); q->publish();
//   auto used = driver.next_used();   // {id = head, len = n}
//
// Descriptor indices are handed out round-robin from 0 (wrapping at the
// queue size), so a test that keeps at most `size` descriptors outstanding
// never collides.  Buffers and indirect tables come from a bump allocator
// over the data area.  Nothing here validates: corrupting the queue is the
// point of several tests.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <vector>

#include "virtio/split_queue.h"
#include "vmm/guest_memory.h"

namespace tapvm::testing {

class DescriptorChainBuilder;

// struct virtq_desc as the driver writes it (virtio 1.2 §2.7.5).
struct RawDescriptor {
    uint64_t addr = 0;
    uint32_t len = 0;
    uint16_t flags = 0;
    uint16_t next = 0;
};

inline constexpr uint16_t kDescNext = 1;      // VIRTQ_DESC_F_NEXT
inline constexpr uint16_t kDescWrite = 2;     // VIRTQ_DESC_F_WRITE
inline constexpr uint16_t kDescIndirect = 4;  // VIRTQ_DESC_F_INDIRECT
inline constexpr uint16_t kAvailNoInterrupt = 1;  // VIRTQ_AVAIL_F_NO_INTERRUPT
inline constexpr uint16_t kUsedNoNotify = 1;      // VIRTQ_USED_F_NO_NOTIFY

struct UsedEntry {
    uint32_t id = 0;
    uint32_t len = 0;
    bool operator==(const UsedEntry&) const = default;
};

class FakeDriverQueue {
public:
    enum class Layout {
        kModern,  // desc, avail, used packed back to back (used 4-aligned)
        kLegacy,  // §2.7.2 legacy: used ring starts on the next 4096 boundary
    };
    struct Options {
        uint16_t size = 256;
        Gpa rings = 0x10000;     // descriptor table address (16-aligned; 4096 for legacy)
        Gpa data = 0x100000;     // start of the buffer area for alloc()
        uint64_t data_size = 0x100000;
        Layout layout = Layout::kModern;
    };

    // Zeroes the rings (as a driver does before handing them over).
    FakeDriverQueue(const GuestMemory& memory, const Options& options);

    // What the driver writes into the transport's queue registers.
    virtio::QueueConfig config() const;
    uint16_t size() const { return size_; }
    Gpa desc_addr() const { return desc_; }
    Gpa avail_addr() const { return avail_; }
    Gpa used_addr() const { return used_; }
    // Bytes from desc_addr() to the end of the used ring (EVENT_IDX included).
    uint64_t footprint() const;
    const GuestMemory& memory() const { return memory_; }

    // --- buffers -----------------------------------------------------------
    // Reserves `len` bytes (16-aligned) in the data area; throws when full.
    Gpa alloc(uint64_t len);
    void write_bytes(Gpa gpa, std::span<const uint8_t> bytes) const;
    std::vector<uint8_t> read_bytes(Gpa gpa, uint64_t len) const;

    // --- building chains ---------------------------------------------------
    // A fluent builder that takes its descriptors from this queue.
    DescriptorChainBuilder chain();
    // The next `count` descriptor indices (round-robin).
    uint16_t take_descriptors(uint16_t count);
    // Writes a descriptor of the main table (index is NOT checked: a test may
    // aim past the table on purpose as long as it stays in RAM).
    void write_descriptor(uint16_t index, const RawDescriptor& desc) const;
    RawDescriptor read_descriptor(uint16_t index) const;
    // Writes `descs` as an indirect table at `table`.
    void write_table(Gpa table, std::span<const RawDescriptor> descs) const;

    // --- available ring ----------------------------------------------------
    // Puts `head` in the next avail slot and publishes it (bumps avail.idx).
    void offer(uint16_t head);
    // Puts `head` in the next avail slot without publishing.
    void push_avail(uint16_t head);
    // Makes everything pushed so far visible (writes avail.idx).
    void publish_avail();
    // Raw control for corruption tests.
    void set_avail_idx(uint16_t idx);
    void set_avail_entry(uint16_t slot, uint16_t head) const;  // slot taken modulo size
    uint16_t avail_idx() const { return avail_idx_; }
    void set_avail_flags(uint16_t flags) const;
    void set_used_event(uint16_t event) const;

    // --- used ring ---------------------------------------------------------
    uint16_t used_idx() const;
    uint16_t used_flags() const;
    uint16_t avail_event() const;
    UsedEntry used_entry(uint16_t slot) const;  // slot taken modulo size
    // The next used entry the driver has not consumed yet, if any.
    std::optional<UsedEntry> next_used();
    // Consumes all new used entries.
    std::vector<UsedEntry> drain_used();

private:
    uint16_t read_u16(Gpa gpa) const;
    void write_u16(Gpa gpa, uint16_t value) const;

    const GuestMemory& memory_;
    uint16_t size_;
    Gpa desc_, avail_, used_;
    Gpa data_next_, data_end_;
    uint16_t next_desc_ = 0;
    uint16_t avail_idx_ = 0;      // driver's shadow of avail.idx (incl. unpublished)
    uint16_t last_used_seen_ = 0;
};

}  // namespace tapvm::testing
