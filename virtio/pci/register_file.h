// Table-driven decoding of a block of fixed-width device registers: one row
// per register {offset, width, read-only?, name, field}, so the layout of a
// register block is data that can be read against the spec line by line.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <span>

#include <spdlog/spdlog.h>

namespace tapvm::virtio {

template <class Field>
struct Register {
    uint16_t offset;
    uint8_t width;  // bytes: 1, 2 or 4
    bool read_only;
    const char* name;
    Field field;
};

// The register at exactly `offset` with exactly `width`, or null: a driver
// that reads half a register or straddles two gets nothing (virtio 1.2
// §4.1.3.1: fields are accessed with their natural width).
template <class Field>
const Register<Field>* find_register(std::span<const Register<Field>> table, uint64_t offset, size_t width) {
    auto it = std::find_if(table.begin(), table.end(),
                           [&](const Register<Field>& r) { return r.offset == offset && r.width == width; });
    return it == table.end() ? nullptr : &*it;
}

inline uint64_t load_le(std::span<const uint8_t> bytes) {
    uint64_t value = 0;
    for (size_t i = 0; i < bytes.size() && i < 8; ++i) value |= uint64_t{bytes[i]} << (8 * i);
    return value;
}

inline void store_le(std::span<uint8_t> bytes, uint64_t value) {
    for (size_t i = 0; i < bytes.size(); ++i) bytes[i] = i < 8 ? static_cast<uint8_t>(value >> (8 * i)) : 0;
}

// Logs the first odd access to a register block and stays quiet afterwards:
// a guest must not be able to flood the log.
class OddAccessLog {
public:
    explicit OddAccessLog(const char* block) : block_(block) {}
    void note(const char* what, uint64_t offset, size_t width) {
        if (logged_.exchange(true, std::memory_order_relaxed)) return;
        spdlog::warn("virtio-pci {}: {} at offset {:#x} width {} ignored (further ones not logged)", block_,
                     what, offset, width);
    }

private:
    const char* block_;
    std::atomic<bool> logged_{false};
};

}  // namespace tapvm::virtio
