// Guest physical memory: the one narrow door through which devices touch the
// guest.  Every access names a guest-physical range and is checked as a whole
// (including gpa + len overflow) against the RAM regions; nothing outside
// guest RAM — device BARs, the PCI hole, host memory — is ever reachable.
// Devices never learn the host mapping's base address.
#pragma once

#include <cstdint>
#include <cstring>
#include <optional>
#include <span>
#include <type_traits>
#include <vector>

namespace tapvm {

using Gpa = uint64_t;  // guest-physical address

struct GuestRange {
    Gpa start = 0;
    uint64_t size = 0;
};

// Memory that another process shares through an fd (a vhost-user frontend's
// SET_MEM_TABLE): `size` bytes at `fd_offset` in `fd` are guest-physical
// [start, start + size).
struct SharedRegion {
    Gpa start = 0;
    uint64_t size = 0;
    int fd = -1;
    uint64_t fd_offset = 0;
};

struct GuestRegion {
    Gpa start = 0;
    uint64_t size = 0;
    uint8_t* host = nullptr;  // only for KVM slot registration (vmm/)
};

class GuestMemory {
public:
    // Maps anonymous, zeroed memory for every range.  Ranges must be
    // page-aligned, non-empty and disjoint; throws Error otherwise.
    explicit GuestMemory(const std::vector<GuestRange>& ranges);
    // Maps every region MAP_SHARED from its fd (the fds stay with the
    // caller).  The same rules as above, plus a page-aligned fd_offset, so
    // that guest-physical alignment carries over to the host view, and a
    // backing file that is regular and long enough for the region; throws
    // Error otherwise or when a mapping fails.  Files that allow it are
    // sealed against shrinking (F_SEAL_SHRINK); see unsealed_regions().
    static GuestMemory map_shared(const std::vector<SharedRegion>& regions);
    // Shared regions whose file could not be sealed against shrinking: the
    // other process could still truncate them.
    size_t unsealed_regions() const { return unsealed_regions_; }
    ~GuestMemory();
    GuestMemory(const GuestMemory&) = delete;
    GuestMemory& operator=(const GuestMemory&) = delete;
    GuestMemory(GuestMemory&&) noexcept;
    GuestMemory& operator=(GuestMemory&&) noexcept;

    // Host view of [gpa, gpa + len) when the whole range lies inside one RAM
    // region; nullopt otherwise (outside RAM, straddling a hole, overflow).
    // len == 0 yields an empty span for any gpa inside RAM.
    std::optional<std::span<uint8_t>> slice(Gpa gpa, uint64_t len) const;

    // Copies between guest memory and a host buffer; false (nothing copied)
    // if the range is not entirely RAM.
    bool read(Gpa gpa, std::span<uint8_t> out) const;
    bool write(Gpa gpa, std::span<const uint8_t> in) const;

    template <class T>
    std::optional<T> read_obj(Gpa gpa) const {
        static_assert(std::is_trivially_copyable_v<T>);
        T value;
        if (!read(gpa, std::span(reinterpret_cast<uint8_t*>(&value), sizeof(T)))) return std::nullopt;
        return value;
    }
    template <class T>
    bool write_obj(Gpa gpa, const T& value) const {
        static_assert(std::is_trivially_copyable_v<T>);
        return write(gpa, std::span(reinterpret_cast<const uint8_t*>(&value), sizeof(T)));
    }

    bool contains(Gpa gpa, uint64_t len) const { return slice(gpa, len).has_value(); }
    const std::vector<GuestRegion>& regions() const { return regions_; }
    uint64_t total_size() const;

private:
    GuestMemory() = default;
    void unmap_all();
    std::vector<GuestRegion> regions_;  // sorted by start
    size_t unsealed_regions_ = 0;
};

}  // namespace tapvm
