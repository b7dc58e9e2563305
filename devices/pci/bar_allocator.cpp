#include "devices/pci/bar_allocator.h"

#include <bit>

#include "vmm/error.h"

namespace tapvm::pci {

BarAllocator::BarAllocator(std::string name, uint64_t start, uint64_t size)
    : name_(std::move(name)), start_(start), end_(start + size), next_(start) {
    if (size == 0 || end_ < start_) throw Error(name_ + ": invalid BAR window");
}

uint64_t BarAllocator::allocate(uint64_t size) {
    if (!std::has_single_bit(size)) throw Error(name_ + ": BAR size is not a power of two");
    uint64_t base = (next_ + size - 1) & ~(size - 1);
    if (base < next_ || base >= end_ || size > end_ - base)
        throw Error(name_ + ": window exhausted, cannot place a BAR of " + std::to_string(size) +
                    " bytes");
    next_ = base + size;
    return base;
}

}  // namespace tapvm::pci
