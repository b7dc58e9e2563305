// A large, private, zero-filled host buffer for a decompressed kernel.
//
// An anonymous mapping advised to use transparent huge pages: on a nested
// (PVM) host every 4 KiB first-touch fault is an expensive trip through the
// outer hypervisor; writing 54 MiB costs ~0.7 s in 4 KiB pages and ~15-60 ms
// in 2 MiB pages (measured).  A std::vector would pay the former.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

namespace tapvm::boot {

class HugePageBuffer {
public:
    // Throws Error if the mapping fails.  size 0 is allowed (no mapping).
    explicit HugePageBuffer(size_t size);
    ~HugePageBuffer();
    HugePageBuffer(HugePageBuffer&& other) noexcept;
    HugePageBuffer& operator=(HugePageBuffer&& other) noexcept;
    HugePageBuffer(const HugePageBuffer&) = delete;
    HugePageBuffer& operator=(const HugePageBuffer&) = delete;

    std::span<uint8_t> bytes() { return {data_, size_}; }
    std::span<const uint8_t> bytes() const { return {data_, size_}; }
    size_t size() const { return size_; }

private:
    void release();
    uint8_t* data_ = nullptr;
    size_t size_ = 0;
};

}  // namespace tapvm::boot
