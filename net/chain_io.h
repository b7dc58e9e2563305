// Turning validated descriptor chains into iovecs for one readv/writev, and
// small writes into a chain's device-writable bytes (the virtio-net header
// fix-ups).  The iovec storage is allocated once; nothing here allocates on
// the data path.
#pragma once

#include <sys/uio.h>

#include <algorithm>
#include <climits>
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "virtio/descriptor_chain.h"

namespace tapvm::net {

// One readv/writev takes at most IOV_MAX (1024) segments.
inline constexpr size_t kMaxIovecs = IOV_MAX;

class IovecList {
public:
    explicit IovecList(size_t capacity = kMaxIovecs) : iov_(capacity) {}

    void clear() {
        count_ = 0;
        bytes_ = 0;
    }
    size_t size() const { return count_; }
    size_t room() const { return iov_.size() - count_; }
    size_t bytes() const { return bytes_; }
    std::span<const iovec> view() const { return std::span(iov_).first(count_); }

    // Appends one buffer; false (and nothing appended) when full.
    bool append(std::span<uint8_t> buffer) {
        if (buffer.empty()) return true;
        if (count_ == iov_.size()) return false;
        iov_[count_++] = iovec{buffer.data(), buffer.size()};
        bytes_ += buffer.size();
        return true;
    }

    // Appends the segments, leaving out their first `skip` bytes.  False
    // (the list then holds a partial chain; the caller clears it) when they
    // do not fit.
    bool append(std::span<const virtio::ChainSegment> segments, size_t skip = 0) {
        for (const auto& segment : segments) {
            std::span<uint8_t> bytes = segment.host;
            size_t cut = std::min(skip, bytes.size());
            skip -= cut;
            if (!append(bytes.subspan(cut))) return false;
        }
        return true;
    }

private:
    std::vector<iovec> iov_;
    size_t count_ = 0;
    size_t bytes_ = 0;
};

// Number of iovecs the segments need after leaving out `skip` bytes.
inline size_t iovecs_needed(std::span<const virtio::ChainSegment> segments, size_t skip = 0) {
    size_t needed = 0;
    for (const auto& segment : segments) {
        size_t cut = std::min(skip, segment.host.size());
        skip -= cut;
        if (segment.host.size() > cut) ++needed;
    }
    return needed;
}

// Copies `bytes` into the chain's device-writable space at `offset`, across
// segment boundaries.  False when the chain is too short (nothing sensible
// is written then; callers check the size first).
inline bool write_to_chain(const virtio::DescriptorChain& chain, size_t offset,
                           std::span<const uint8_t> bytes) {
    if (offset + bytes.size() > chain.writable_bytes()) return false;
    for (const auto& segment : chain.writable()) {
        if (bytes.empty()) break;
        if (offset >= segment.host.size()) {
            offset -= segment.host.size();
            continue;
        }
        size_t n = std::min(bytes.size(), segment.host.size() - offset);
        std::copy_n(bytes.data(), n, segment.host.data() + offset);
        bytes = bytes.subspan(n);
        offset = 0;
    }
    return true;
}

}  // namespace tapvm::net
