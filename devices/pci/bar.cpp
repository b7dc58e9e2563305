#include "devices/pci/bar.h"

#include <algorithm>

#include "vmm/error.h"

namespace tapvm::pci {

const char* to_string(BarKind kind) {
    switch (kind) {
        case BarKind::Io: return "io";
        case BarKind::Mmio32: return "mmio32";
        case BarKind::Mmio64: return "mmio64";
    }
    return "?";
}

void BarDispatcher::add_region(uint64_t offset, uint64_t size, std::shared_ptr<BusDevice> handler) {
    if (!handler) throw Error(name_ + ": BAR region without a handler");
    if (size == 0 || offset >= size_ || size > size_ - offset)
        throw Error(name_ + ": BAR region [" + std::to_string(offset) + ", +" + std::to_string(size) +
                    ") does not fit a BAR of " + std::to_string(size_) + " bytes");
    auto next = std::find_if(regions_.begin(), regions_.end(),
                             [&](const Region& r) { return r.offset >= offset; });
    bool overlaps_next = next != regions_.end() && next->offset < offset + size;
    bool overlaps_prev = next != regions_.begin() && std::prev(next)->offset + std::prev(next)->size > offset;
    if (overlaps_next || overlaps_prev)
        throw Error(name_ + ": BAR region at offset " + std::to_string(offset) + " overlaps another");
    regions_.insert(next, Region{offset, size, std::move(handler)});
}

const BarDispatcher::Region* BarDispatcher::find(uint64_t offset, uint64_t len) const {
    for (const Region& r : regions_) {
        if (offset >= r.offset && offset - r.offset < r.size && len <= r.size - (offset - r.offset))
            return &r;
    }
    return nullptr;
}

void BarDispatcher::read(uint64_t offset, std::span<uint8_t> data) {
    if (const Region* r = find(offset, data.size())) {
        r->handler->read(offset - r->offset, data);
        return;
    }
    std::fill(data.begin(), data.end(), 0);  // a hole in the BAR
}

void BarDispatcher::write(uint64_t offset, std::span<const uint8_t> data) {
    if (const Region* r = find(offset, data.size())) r->handler->write(offset - r->offset, data);
}

}  // namespace tapvm::pci
