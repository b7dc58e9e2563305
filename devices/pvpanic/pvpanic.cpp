#include "devices/pvpanic/pvpanic.h"

#include <algorithm>

namespace tapvm {

void PvPanic::read(uint64_t offset, std::span<uint8_t> data) {
    std::fill(data.begin(), data.end(), 0);
    // Only the first byte is the register; it advertises the bits we handle.
    if (offset == 0 && !data.empty()) data[0] = kPanicked | kCrashLoaded;
}

void PvPanic::write(uint64_t offset, std::span<const uint8_t> data) {
    if (offset != 0 || data.empty()) return;
    // Bits the device does not recognise are ignored (pvpanic.rst).
    uint8_t events = data[0] & (kPanicked | kCrashLoaded);
    if (events && on_event_) on_event_(events);
}

}  // namespace tapvm
