#include "vmm/bus.h"

#include <mutex>

#include "vmm/error.h"

namespace tapvm {

void Bus::insert(uint64_t base, uint64_t size, std::shared_ptr<BusDevice> device) {
    if (size == 0 || base + size < base || !device)
        throw Error(name_ + " bus: invalid range at " + std::to_string(base));
    std::unique_lock lock(mutex_);
    auto next = ranges_.lower_bound(base);
    if (next != ranges_.end() && next->first < base + size)
        throw Error(name_ + " bus: range at " + std::to_string(base) + " overlaps one at " +
                    std::to_string(next->first));
    if (next != ranges_.begin()) {
        auto prev = std::prev(next);
        if (prev->first + prev->second.size > base)
            throw Error(name_ + " bus: range at " + std::to_string(base) + " overlaps one at " +
                        std::to_string(prev->first));
    }
    ranges_.emplace(base, Range{size, std::move(device)});
}

bool Bus::remove(uint64_t base) {
    std::unique_lock lock(mutex_);
    return ranges_.erase(base) > 0;
}

std::shared_ptr<BusDevice> Bus::find(uint64_t addr, uint64_t len, uint64_t& offset) const {
    std::shared_lock lock(mutex_);
    auto it = ranges_.upper_bound(addr);
    if (it == ranges_.begin()) return nullptr;
    --it;
    uint64_t off = addr - it->first;
    if (off >= it->second.size || len > it->second.size - off) return nullptr;
    offset = off;
    return it->second.device;  // copied: keeps the device alive after unlock
}

bool Bus::read(uint64_t addr, std::span<uint8_t> data) const {
    uint64_t offset = 0;
    auto dev = find(addr, data.size(), offset);
    if (!dev) return false;
    dev->read(offset, data);
    return true;
}

bool Bus::write(uint64_t addr, std::span<const uint8_t> data) const {
    uint64_t offset = 0;
    auto dev = find(addr, data.size(), offset);
    if (!dev) return false;
    dev->write(offset, data);
    return true;
}

}  // namespace tapvm
