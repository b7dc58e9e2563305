#include "firmware/huge_page_buffer.h"

#include <sys/mman.h>

#include <utility>

#include "vmm/error.h"

namespace tapvm::boot {

HugePageBuffer::HugePageBuffer(size_t size) : size_(size) {
    if (size == 0) return;
    void* p = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) throw_errno("mmap kernel buffer (" + std::to_string(size >> 20) + " MiB)");
    ::madvise(p, size, MADV_HUGEPAGE);  // a hint: without THP it is just slower
    data_ = static_cast<uint8_t*>(p);
}

HugePageBuffer::~HugePageBuffer() { release(); }

HugePageBuffer::HugePageBuffer(HugePageBuffer&& other) noexcept
    : data_(std::exchange(other.data_, nullptr)), size_(std::exchange(other.size_, 0)) {}

HugePageBuffer& HugePageBuffer::operator=(HugePageBuffer&& other) noexcept {
    if (this != &other) {
        release();
        data_ = std::exchange(other.data_, nullptr);
        size_ = std::exchange(other.size_, 0);
    }
    return *this;
}

void HugePageBuffer::release() {
    if (data_) ::munmap(data_, size_);
    data_ = nullptr;
    size_ = 0;
}

}  // namespace tapvm::boot
