// A PCI Base Address Register's kind and the BusDevice that stands for the
// whole BAR on a Bus, routing each access to the region inside the BAR that
// covers it.  A BAR holding several register blocks (virtio's common, ISR,
// notify and device config; an MSI-X table and PBA) therefore moves as one
// Bus range when the guest relocates it, and every block keeps seeing offsets
// relative to itself.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "vmm/bus.h"

namespace tapvm::pci {

enum class BarKind {
    Io,      // port I/O space (PCI 3.0 §6.2.5.1, bit 0 = 1)
    Mmio32,  // memory, anywhere in the 32-bit space
    Mmio64,  // memory, anywhere in the 64-bit space; takes two BAR slots
};

const char* to_string(BarKind kind);

class BarDispatcher : public BusDevice {
public:
    BarDispatcher(std::string name, uint64_t size) : name_(std::move(name)), size_(size) {}

    // Assembly only.  Throws Error if the region is empty, does not fit the
    // BAR, or overlaps another region.
    void add_region(uint64_t offset, uint64_t size, std::shared_ptr<BusDevice> handler);

    // An access covered by no single region reads as zero and is dropped on
    // write: the guest may poke holes in a BAR, it must not crash tapvm.
    void read(uint64_t offset, std::span<uint8_t> data) override;
    void write(uint64_t offset, std::span<const uint8_t> data) override;

    uint64_t size() const { return size_; }

private:
    struct Region {
        uint64_t offset;
        uint64_t size;
        std::shared_ptr<BusDevice> handler;
    };
    const Region* find(uint64_t offset, uint64_t len) const;

    std::string name_;
    uint64_t size_;
    std::vector<Region> regions_;  // sorted by offset; fixed once the guest runs
};

}  // namespace tapvm::pci
