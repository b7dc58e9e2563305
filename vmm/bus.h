// An address bus (port I/O or MMIO): an ordered map of non-overlapping
// ranges.  A device sees offsets from the start of its own range, never
// absolute addresses, so a PCI BAR can move without the device noticing.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <shared_mutex>
#include <span>
#include <string>

namespace tapvm {

class BusDevice {
public:
    virtual ~BusDevice() = default;
    // data.size() is the access width (1, 2, 4 or 8 for CPU accesses).
    // A device fills every byte of a read; unknown registers read as zero or
    // all-ones as the hardware it models would.
    virtual void read(uint64_t offset, std::span<uint8_t> data) = 0;
    virtual void write(uint64_t offset, std::span<const uint8_t> data) = 0;
};

class Bus {
public:
    explicit Bus(std::string name) : name_(std::move(name)) {}

    // Throws Error if the range is empty, wraps, or overlaps another.
    void insert(uint64_t base, uint64_t size, std::shared_ptr<BusDevice> device);
    // Removes the range that starts exactly at base; false if none.
    bool remove(uint64_t base);

    // Dispatch an access that lies entirely inside one device's range.
    // Returns false when no device claims it: the caller decides (reads of
    // unclaimed addresses return all-ones, writes are dropped).  The device is
    // called without the bus lock held, so a device may itself change the
    // bus (a PCI BAR being moved from a config write).
    bool read(uint64_t addr, std::span<uint8_t> data) const;
    bool write(uint64_t addr, std::span<const uint8_t> data) const;

    const std::string& name() const { return name_; }

private:
    struct Range {
        uint64_t size;
        std::shared_ptr<BusDevice> device;
    };
    // Device and offset for [addr, addr+len), or null.
    std::shared_ptr<BusDevice> find(uint64_t addr, uint64_t len, uint64_t& offset) const;

    std::string name_;
    mutable std::shared_mutex mutex_;
    std::map<uint64_t, Range> ranges_;  // keyed by base
};

}  // namespace tapvm
