#include "vmm/guest_memory.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>

#include <algorithm>
#include <utility>

#include "vmm/error.h"

namespace tapvm {

namespace {
constexpr uint64_t kPage = 4096;
}

namespace {

// Page-aligned, non-empty, no wrap-around, disjoint; returns them sorted.
template <class Range>
std::vector<Range> checked_layout(std::vector<Range> ranges) {
    std::sort(ranges.begin(), ranges.end(), [](auto& a, auto& b) { return a.start < b.start; });
    for (size_t i = 0; i < ranges.size(); ++i) {
        const auto& r = ranges[i];
        if (r.size == 0 || r.start % kPage || r.size % kPage || r.start + r.size < r.start)
            throw Error("guest memory: bad region at " + std::to_string(r.start));
        if (i > 0 && ranges[i - 1].start + ranges[i - 1].size > r.start)
            throw Error("guest memory: overlapping regions");
    }
    return ranges;
}

}  // namespace

GuestMemory::GuestMemory(const std::vector<GuestRange>& ranges) {
    try {
        for (const auto& r : checked_layout(ranges)) {
            void* p = ::mmap(nullptr, r.size, PROT_READ | PROT_WRITE,
                             MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
            if (p == MAP_FAILED) throw_errno("mmap guest RAM (" + std::to_string(r.size >> 20) + " MiB)");
            // Transparent huge pages cut KVM's page-table work; a hint only.
            ::madvise(p, r.size, MADV_HUGEPAGE);
            regions_.push_back({r.start, r.size, static_cast<uint8_t*>(p)});
        }
    } catch (...) {
        unmap_all();
        throw;
    }
}

namespace {

// The part of `r`'s file the mapping covers must exist: touching a mapped
// page past the end of a file raises SIGBUS (mmap(2)), so a frontend that
// announces a 4 KiB memfd as 1 GiB would otherwise crash this process at
// the device's first access.  Only regular files (memfd, tmpfs, hugetlbfs)
// qualify: a device or a socket is not guest memory.
void check_backing_file(const SharedRegion& r) {
    struct stat st{};
    if (::fstat(r.fd, &st) != 0) throw_errno("guest memory: fstat of a shared region's fd");
    const std::string where = "guest memory: shared region at " + std::to_string(r.start);
    if (!S_ISREG(st.st_mode)) throw Error(where + ": its fd is not a regular file (memfd, tmpfs, hugetlbfs)");
    const uint64_t file_size = static_cast<uint64_t>(st.st_size);
    if (r.fd_offset > file_size || r.size > file_size - r.fd_offset)
        throw Error(where + ": " + std::to_string(r.size) + " bytes at file offset " + std::to_string(r.fd_offset) +
                    " run past the end of its " + std::to_string(file_size) + "-byte file");
}

// The file must also stay that long.  A memfd that allows sealing is sealed
// against shrinking here (the frontend never needs to shrink guest RAM;
// QEMU's memory-backend-memfd seals it itself by default).  Whether the
// region ended up protected is returned; a file that cannot be sealed
// (hugetlbfs, a plain tmpfs file, a memfd sealed without F_SEAL_SHRINK)
// stays the frontend's to truncate, and the caller is told.
bool seal_against_shrinking(int fd) {
    int seals = ::fcntl(fd, F_GET_SEALS);
    if (seals < 0) return false;  // EINVAL: this file has no seals
    if (seals & F_SEAL_SHRINK) return true;
    if (::fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK) == 0) return true;
    return false;  // EPERM: F_SEAL_SEAL is set
}

}  // namespace

GuestMemory GuestMemory::map_shared(const std::vector<SharedRegion>& regions) {
    GuestMemory memory;
    for (const auto& r : checked_layout(regions)) {
        if (r.fd_offset % kPage || r.fd_offset + r.size < r.fd_offset)
            throw Error("guest memory: shared region at " + std::to_string(r.start) +
                        " has an unaligned file offset");
        check_backing_file(r);
        if (!seal_against_shrinking(r.fd)) ++memory.unsealed_regions_;
        void* p = ::mmap(nullptr, r.size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_NORESERVE, r.fd,
                         static_cast<off_t>(r.fd_offset));
        if (p == MAP_FAILED) throw_errno("mmap shared guest RAM (" + std::to_string(r.size >> 20) + " MiB)");
        memory.regions_.push_back({r.start, r.size, static_cast<uint8_t*>(p)});
    }
    return memory;  // on a throw above, ~GuestMemory unmaps what was mapped
}

GuestMemory::~GuestMemory() { unmap_all(); }

GuestMemory::GuestMemory(GuestMemory&& o) noexcept
    : regions_(std::exchange(o.regions_, {})), unsealed_regions_(std::exchange(o.unsealed_regions_, 0)) {}

GuestMemory& GuestMemory::operator=(GuestMemory&& o) noexcept {
    if (this != &o) {
        unmap_all();
        regions_ = std::exchange(o.regions_, {});
        unsealed_regions_ = std::exchange(o.unsealed_regions_, 0);
    }
    return *this;
}

void GuestMemory::unmap_all() {
    for (auto& r : regions_) ::munmap(r.host, r.size);
    regions_.clear();
}

std::optional<std::span<uint8_t>> GuestMemory::slice(Gpa gpa, uint64_t len) const {
    for (const auto& r : regions_) {
        if (gpa < r.start) break;  // sorted: no later region can hold it
        uint64_t off = gpa - r.start;
        // Written so that no sum can overflow: off < size, len <= size - off.
        if (off < r.size && len <= r.size - off) return std::span<uint8_t>(r.host + off, len);
    }
    return std::nullopt;
}

bool GuestMemory::read(Gpa gpa, std::span<uint8_t> out) const {
    auto s = slice(gpa, out.size());
    if (!s) return false;
    if (!out.empty()) std::memcpy(out.data(), s->data(), out.size());
    return true;
}

bool GuestMemory::write(Gpa gpa, std::span<const uint8_t> in) const {
    auto s = slice(gpa, in.size());
    if (!s) return false;
    if (!in.empty()) std::memcpy(s->data(), in.data(), in.size());  // memcpy(null, ..., 0) is UB
    return true;
}

uint64_t GuestMemory::total_size() const {
    uint64_t total = 0;
    for (const auto& r : regions_) total += r.size;
    return total;
}

}  // namespace tapvm
