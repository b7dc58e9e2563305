#include "support/fake_driver_queue.h"

#include <atomic>
#include <stdexcept>
#include <string>

#include "support/descriptor_chain_builder.h"

namespace tapvm::testing {

namespace {
uint64_t align_up(uint64_t value, uint64_t align) { return (value + align - 1) / align * align; }
}  // namespace

FakeDriverQueue::FakeDriverQueue(const GuestMemory& memory, const Options& options)
    : memory_(memory), size_(options.size), desc_(options.rings) {
    avail_ = desc_ + 16ull * size_;
    const uint64_t avail_end = avail_ + 6 + 2ull * size_;  // flags, idx, ring, used_event
    used_ = align_up(avail_end, options.layout == Layout::kLegacy ? 4096 : 4);
    data_next_ = options.data;
    data_end_ = options.data + options.data_size;
    const std::vector<uint8_t> zeros(footprint(), 0);
    if (!memory_.write(desc_, zeros)) throw std::out_of_range("FakeDriverQueue: rings outside guest RAM");
}

virtio::QueueConfig FakeDriverQueue::config() const { return {size_, desc_, avail_, used_}; }

uint64_t FakeDriverQueue::footprint() const { return used_ + 6 + 8ull * size_ - desc_; }

Gpa FakeDriverQueue::alloc(uint64_t len) {
    const Gpa gpa = data_next_;
    const Gpa end = align_up(gpa + len, 16);
    if (end > data_end_ || end < gpa) throw std::out_of_range("FakeDriverQueue: data area full");
    data_next_ = end;
    return gpa;
}

void FakeDriverQueue::write_bytes(Gpa gpa, std::span<const uint8_t> bytes) const {
    if (!memory_.write(gpa, bytes)) throw std::out_of_range("FakeDriverQueue: write outside RAM");
}

std::vector<uint8_t> FakeDriverQueue::read_bytes(Gpa gpa, uint64_t len) const {
    std::vector<uint8_t> bytes(len);
    if (!memory_.read(gpa, bytes)) throw std::out_of_range("FakeDriverQueue: read outside RAM");
    return bytes;
}

DescriptorChainBuilder FakeDriverQueue::chain() { return DescriptorChainBuilder(*this); }

uint16_t FakeDriverQueue::take_descriptors(uint16_t count) {
    const uint16_t first = next_desc_;
    next_desc_ = static_cast<uint16_t>((next_desc_ + count) % size_);
    return first;
}

void FakeDriverQueue::write_descriptor(uint16_t index, const RawDescriptor& desc) const {
    if (!memory_.write_obj(desc_ + 16ull * index, desc))
        throw std::out_of_range("FakeDriverQueue: descriptor " + std::to_string(index) + " outside RAM");
}

RawDescriptor FakeDriverQueue::read_descriptor(uint16_t index) const {
    return memory_.read_obj<RawDescriptor>(desc_ + 16ull * index).value();
}

void FakeDriverQueue::write_table(Gpa table, std::span<const RawDescriptor> descs) const {
    for (size_t i = 0; i < descs.size(); ++i)
        if (!memory_.write_obj(table + 16 * i, descs[i]))
            throw std::out_of_range("FakeDriverQueue: indirect table outside RAM");
}

void FakeDriverQueue::offer(uint16_t head) {
    push_avail(head);
    publish_avail();
}

void FakeDriverQueue::push_avail(uint16_t head) {
    set_avail_entry(avail_idx_, head);
    ++avail_idx_;
}

void FakeDriverQueue::publish_avail() {
    // The driver's write barrier (Linux virtio_wmb) before avail.idx: a
    // device on another thread must see the ring entries first.
    std::atomic_thread_fence(std::memory_order_release);
    write_u16(avail_ + 2, avail_idx_);
}

void FakeDriverQueue::set_avail_idx(uint16_t idx) {
    avail_idx_ = idx;
    publish_avail();
}

void FakeDriverQueue::set_avail_entry(uint16_t slot, uint16_t head) const {
    write_u16(avail_ + 4 + 2ull * (slot % size_), head);
}

void FakeDriverQueue::set_avail_flags(uint16_t flags) const { write_u16(avail_, flags); }
void FakeDriverQueue::set_used_event(uint16_t event) const { write_u16(avail_ + 4 + 2ull * size_, event); }

uint16_t FakeDriverQueue::used_idx() const { return read_u16(used_ + 2); }
uint16_t FakeDriverQueue::used_flags() const { return read_u16(used_); }
uint16_t FakeDriverQueue::avail_event() const { return read_u16(used_ + 4 + 8ull * size_); }

UsedEntry FakeDriverQueue::used_entry(uint16_t slot) const {
    return memory_.read_obj<UsedEntry>(used_ + 4 + 8ull * (slot % size_)).value();
}

std::optional<UsedEntry> FakeDriverQueue::next_used() {
    if (last_used_seen_ == used_idx()) return std::nullopt;
    // The driver's read barrier (virtio_rmb) between used.idx and the entry.
    std::atomic_thread_fence(std::memory_order_acquire);
    return used_entry(last_used_seen_++);
}

std::vector<UsedEntry> FakeDriverQueue::drain_used() {
    std::vector<UsedEntry> entries;
    while (auto entry = next_used()) entries.push_back(*entry);
    return entries;
}

uint16_t FakeDriverQueue::read_u16(Gpa gpa) const { return memory_.read_obj<uint16_t>(gpa).value(); }

void FakeDriverQueue::write_u16(Gpa gpa, uint16_t value) const {
    if (!memory_.write_obj(gpa, value)) throw std::out_of_range("FakeDriverQueue: ring outside RAM");
}

}  // namespace tapvm::testing
