// Hands out BAR addresses from one window of the machine's address map, each
// aligned to its size as PCI requires (PCI 3.0 §6.2.5.1: a BAR decodes a
// naturally aligned power-of-two range).  A bump allocator: devices are only
// added while the machine is assembled, never removed.
#pragma once

#include <cstdint>
#include <string>

namespace tapvm::pci {

class BarAllocator {
public:
    BarAllocator(std::string name, uint64_t start, uint64_t size);

    // The lowest free size-aligned address; throws Error when the window
    // cannot hold `size` more bytes.  `size` must be a power of two.
    uint64_t allocate(uint64_t size);

    uint64_t start() const { return start_; }
    uint64_t end() const { return end_; }

private:
    std::string name_;
    uint64_t start_;
    uint64_t end_;   // exclusive
    uint64_t next_;  // first free byte
};

}  // namespace tapvm::pci
