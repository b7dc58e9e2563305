#include "devices/pci/msix.h"

#include <algorithm>
#include <cstring>

#include <spdlog/spdlog.h>

#include "devices/pci/pci_regs.h"
#include "vmm/error.h"

namespace tapvm::pci {

namespace {

// The table and the PBA as BusDevices; each keeps the table alive while a
// Bus (or an access in flight on another vCPU) still holds it.
class TableRegion : public BusDevice {
public:
    explicit TableRegion(std::shared_ptr<MsixTable> table) : table_(std::move(table)) {}
    void read(uint64_t offset, std::span<uint8_t> data) override { table_->read_table(offset, data); }
    void write(uint64_t offset, std::span<const uint8_t> data) override {
        table_->write_table(offset, data);
    }

private:
    std::shared_ptr<MsixTable> table_;
};

class PbaRegion : public BusDevice {
public:
    explicit PbaRegion(std::shared_ptr<MsixTable> table) : table_(std::move(table)) {}
    void read(uint64_t offset, std::span<uint8_t> data) override { table_->read_pba(offset, data); }
    void write(uint64_t offset, std::span<const uint8_t> data) override {
        table_->write_pba(offset, data);
    }

private:
    std::shared_ptr<MsixTable> table_;
};

// PCI 3.0 §6.8.2: only aligned DWORD and aligned QWORD accesses are defined.
bool valid_access(uint64_t offset, size_t width, uint64_t limit) {
    if (width != 4 && width != 8) return false;
    if (offset % width != 0) return false;
    return offset < limit && width <= limit - offset;
}

uint32_t load_le32(const uint8_t* p) {
    return uint32_t(p[0]) | uint32_t(p[1]) << 8 | uint32_t(p[2]) << 16 | uint32_t(p[3]) << 24;
}

void store_le32(uint8_t* p, uint32_t v) {
    for (int i = 0; i < 4; ++i) p[i] = uint8_t(v >> (8 * i));
}

}  // namespace

std::shared_ptr<MsixTable> MsixTable::create(unsigned num_vectors, MsiAllocator& allocator) {
    if (num_vectors == 0 || num_vectors > kMsixMaxVectors)
        throw Error("MSI-X: table size " + std::to_string(num_vectors) + " is not in 1..2048");
    std::shared_ptr<MsixTable> table(new MsixTable());
    table->entries_.resize(num_vectors);
    for (Entry& e : table->entries_) e.vector = allocator.allocate();
    return table;
}

uint64_t MsixTable::table_bytes() const { return entries_.size() * kMsixEntrySize; }

uint64_t MsixTable::pba_bytes() const { return (entries_.size() + 63) / 64 * 8; }

std::shared_ptr<BusDevice> MsixTable::table_region() {
    return std::make_shared<TableRegion>(shared_from_this());
}

std::shared_ptr<BusDevice> MsixTable::pba_region() {
    return std::make_shared<PbaRegion>(shared_from_this());
}

void MsixTable::set_control(bool enabled, bool function_masked) {
    std::lock_guard lock(mutex_);
    enabled_ = enabled;
    function_masked_ = function_masked;
    // §6.8.2 (Pending Bits): unmasking (here: enabling, or clearing Function
    // Mask) sends the messages whose pending bits are set.
    deliver_unmasked_pending();
}

void MsixTable::notify(unsigned vector) {
    std::lock_guard lock(mutex_);
    if (vector >= entries_.size()) return;
    Entry& entry = entries_[vector];
    if (entry_masked(entry)) {
        entry.pending = true;  // §6.8.2: a masked vector's event is held in the PBA
        return;
    }
    deliver(entry);
}

bool MsixTable::enabled() const {
    std::lock_guard lock(mutex_);
    return enabled_;
}

bool MsixTable::function_masked() const {
    std::lock_guard lock(mutex_);
    return function_masked_;
}

bool MsixTable::vector_masked(unsigned vector) const {
    std::lock_guard lock(mutex_);
    return vector < entries_.size() && (entries_[vector].vector_control & kMsixEntryMasked);
}

bool MsixTable::pending(unsigned vector) const {
    std::lock_guard lock(mutex_);
    return vector < entries_.size() && entries_[vector].pending;
}

MsiMessage MsixTable::message(unsigned vector) const {
    std::lock_guard lock(mutex_);
    if (vector >= entries_.size()) return {};
    const Entry& e = entries_[vector];
    return MsiMessage{uint64_t(e.address_high) << 32 | e.address_low, e.data};
}

// --- Delivery (mutex_ held) ---------------------------------------------------

bool MsixTable::entry_masked(const Entry& entry) const {
    // Disabled MSI-X counts as masked, as in QEMU: events stay pending and are
    // delivered once the driver enables MSI-X.
    return !enabled_ || function_masked_ || (entry.vector_control & kMsixEntryMasked);
}

void MsixTable::program(Entry& entry) {
    entry.vector->set_message(MsiMessage{uint64_t(entry.address_high) << 32 | entry.address_low,
                                         entry.data});
    entry.message_dirty = false;
}

void MsixTable::deliver(Entry& entry) {
    if (entry.message_dirty) program(entry);  // never fire a stale route
    entry.pending = false;
    entry.vector->trigger();
}

void MsixTable::deliver_unmasked_pending() {
    for (Entry& entry : entries_)
        if (entry.pending && !entry_masked(entry)) deliver(entry);
}

// --- Guest accesses -------------------------------------------------------------

void MsixTable::log_bad_access(const char* what, uint64_t offset, size_t width) {
    if (!bad_access_logged_.exchange(true))
        spdlog::warn("MSI-X: ignoring guest {} at offset {:#x} width {} (logged once)", what, offset,
                     width);
}

uint32_t MsixTable::table_dword(uint64_t offset) const {
    const Entry& e = entries_[offset / kMsixEntrySize];
    switch (offset % kMsixEntrySize) {
        case kMsixEntryAddressLow: return e.address_low;
        case kMsixEntryAddressHigh: return e.address_high;
        case kMsixEntryData: return e.data;
        default: return e.vector_control;
    }
}

void MsixTable::set_table_dword(uint64_t offset, uint32_t value) {
    Entry& e = entries_[offset / kMsixEntrySize];
    switch (offset % kMsixEntrySize) {
        case kMsixEntryAddressLow:
            // §6.8.2 (Message Address): bits 1:0 are zero for DWORD
            // alignment; hard-wire them.
            e.address_low = value & ~0x3u;
            break;
        case kMsixEntryAddressHigh: e.address_high = value; break;
        case kMsixEntryData: e.data = value; break;
        default: {
            // §6.8.2 (Vector Control): only the Mask bit is defined; the
            // reserved bits read as zero.
            bool was_masked = e.vector_control & kMsixEntryMasked;
            e.vector_control = value & kMsixEntryMasked;
            bool now_masked = e.vector_control & kMsixEntryMasked;
            if (was_masked && !now_masked) {
                if (e.message_dirty) program(e);
                if (e.pending && !entry_masked(e)) deliver(e);
            }
            return;
        }
    }
    e.message_dirty = true;
    // Drivers normally rewrite a masked entry and unmask it afterwards; an
    // entry rewritten while unmasked must take effect now.
    if (!(e.vector_control & kMsixEntryMasked)) program(e);
}

void MsixTable::read_table(uint64_t offset, std::span<uint8_t> data) {
    std::fill(data.begin(), data.end(), 0);
    if (!valid_access(offset, data.size(), table_bytes())) {
        log_bad_access("table read", offset, data.size());
        return;
    }
    std::lock_guard lock(mutex_);
    for (size_t i = 0; i < data.size(); i += 4) store_le32(&data[i], table_dword(offset + i));
}

void MsixTable::write_table(uint64_t offset, std::span<const uint8_t> data) {
    if (!valid_access(offset, data.size(), table_bytes())) {
        log_bad_access("table write", offset, data.size());
        return;
    }
    std::lock_guard lock(mutex_);
    // A QWORD write stores its low DWORD first, so that writing
    // {data, vector control} programs the message before unmasking it.
    for (size_t i = 0; i < data.size(); i += 4) set_table_dword(offset + i, load_le32(&data[i]));
}

uint32_t MsixTable::pba_dword(uint64_t offset) const {
    uint32_t bits = 0;
    uint64_t first = offset * 8;  // vector number of bit 0
    for (unsigned b = 0; b < 32 && first + b < entries_.size(); ++b)
        if (entries_[first + b].pending) bits |= 1u << b;
    return bits;
}

void MsixTable::read_pba(uint64_t offset, std::span<uint8_t> data) {
    std::fill(data.begin(), data.end(), 0);
    if (!valid_access(offset, data.size(), pba_bytes())) {
        log_bad_access("PBA read", offset, data.size());
        return;
    }
    std::lock_guard lock(mutex_);
    for (size_t i = 0; i < data.size(); i += 4) store_le32(&data[i], pba_dword(offset + i));
}

void MsixTable::write_pba(uint64_t offset, std::span<const uint8_t> data) {
    // §6.8.2 (Pending Bits): software is not to write the PBA and the result
    // is undefined; the bits are device state, so writes are dropped.
    (void)offset;
    (void)data;
}

}  // namespace tapvm::pci
