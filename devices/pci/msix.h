// MSI-X (PCI Local Bus Specification 3.0 §6.8.2): a table of message entries
// and a Pending Bit Array, both living in memory BARs, plus the Enable and
// Function Mask bits of the capability's Message Control register.
//
// PciFunction::add_msix() creates the table, places table_region() and
// pba_region() in the BARs and wires Message Control writes to
// set_control().  Devices (the virtio-pci transport) only call notify().
//
// Delivery rules (§6.8.2, Vector Control and Pending Bits):
//   - notify(v) triggers v's MsiVector when MSI-X is enabled and neither the
//     function nor entry v is masked; otherwise it sets v's pending bit.
//   - Clearing a mask (entry Vector Control, Function Mask) or setting Enable
//     delivers each pending, now unmasked vector once and clears its bit.
//   - The guest's address/data reach MsiVector::set_message() when written
//     to an unmasked entry, or when the entry is unmasked after a change
//     (drivers write address and data while the entry is masked), and always
//     before that vector triggers.
//
// Guest accesses: the table accepts aligned 4-byte and aligned 8-byte
// accesses, the only ones §6.8.2 lets software make; the PBA is read-only.  Anything else reads as
// zero and is ignored on write, logged once per table.
//
// Threads: notify() is called from device threads, table accesses from vCPU
// threads; one mutex orders them, so an unmask never loses a pending bit.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <span>
#include <vector>

#include "vmm/bus.h"
#include "vmm/irq.h"

namespace tapvm::pci {

class MsixTable : public std::enable_shared_from_this<MsixTable> {
public:
    // Allocates one MsiVector per entry from `allocator` (which throws Error
    // when routing is exhausted).  1 <= num_vectors <= 2048, else Error.
    // Every entry starts masked, as after reset (§6.8.2, Vector Control).
    static std::shared_ptr<MsixTable> create(unsigned num_vectors, MsiAllocator& allocator);

    unsigned num_vectors() const { return static_cast<unsigned>(entries_.size()); }
    uint64_t table_bytes() const;  // 16 * N
    uint64_t pba_bytes() const;    // 8 * ceil(N / 64)

    // BusDevices for the table and the PBA, to be placed in BARs.  They keep
    // the table alive.
    std::shared_ptr<BusDevice> table_region();
    std::shared_ptr<BusDevice> pba_region();

    // Message Control's Enable and Function Mask bits (from the capability).
    void set_control(bool enabled, bool function_masked);

    // The device wants to interrupt on `vector`.  Out-of-range vectors
    // (including virtio's NO_VECTOR 0xffff) are ignored.
    void notify(unsigned vector);

    bool enabled() const;
    bool function_masked() const;
    bool vector_masked(unsigned vector) const;  // entry's own mask bit
    bool pending(unsigned vector) const;
    MsiMessage message(unsigned vector) const;  // as the guest wrote it

    // Guest accesses, offsets relative to the table / the PBA.
    void read_table(uint64_t offset, std::span<uint8_t> data);
    void write_table(uint64_t offset, std::span<const uint8_t> data);
    void read_pba(uint64_t offset, std::span<uint8_t> data);
    void write_pba(uint64_t offset, std::span<const uint8_t> data);

private:
    struct Entry {
        uint32_t address_low = 0;
        uint32_t address_high = 0;
        uint32_t data = 0;
        uint32_t vector_control = 1;  // masked after reset
        bool pending = false;
        bool message_dirty = true;    // guest values not yet handed to `vector`
        std::unique_ptr<MsiVector> vector;
    };

    MsixTable() = default;
    // Helpers expect mutex_ held.
    bool entry_masked(const Entry& entry) const;
    void program(Entry& entry);
    void deliver(Entry& entry);
    void deliver_unmasked_pending();
    uint32_t table_dword(uint64_t offset) const;
    void set_table_dword(uint64_t offset, uint32_t value);
    uint32_t pba_dword(uint64_t offset) const;
    void log_bad_access(const char* what, uint64_t offset, size_t width);

    mutable std::mutex mutex_;
    std::vector<Entry> entries_;
    bool enabled_ = false;
    bool function_masked_ = false;
    std::atomic<bool> bad_access_logged_{false};
};

}  // namespace tapvm::pci
