// Bus: ordered, non-overlapping ranges; devices see offsets; accesses that
// are not entirely inside one range are unclaimed.
#include <gtest/gtest.h>

#include <atomic>
#include <memory>
#include <thread>
#include <vector>

#include "vmm/bus.h"
#include "vmm/error.h"

namespace tapvm {
namespace {

class OffsetDevice : public BusDevice {
public:
    explicit OffsetDevice(uint8_t tag = 0) : tag_(tag) {}
    void read(uint64_t offset, std::span<uint8_t> data) override {
        last_read_offset = offset;
        for (size_t i = 0; i < data.size(); ++i) data[i] = static_cast<uint8_t>(tag_ + offset + i);
    }
    void write(uint64_t offset, std::span<const uint8_t> data) override {
        last_write_offset = offset;
        last_write.assign(data.begin(), data.end());
    }
    uint64_t last_read_offset = ~0ull;
    uint64_t last_write_offset = ~0ull;
    std::vector<uint8_t> last_write;

private:
    uint8_t tag_;
};

TEST(Bus, DeviceSeesOffsetsFromItsBase) {
    Bus bus("mmio");
    auto dev = std::make_shared<OffsetDevice>();
    bus.insert(0xd0000000, 0x1000, dev);
    std::array<uint8_t, 4> data{9, 8, 7, 6};
    EXPECT_TRUE(bus.write(0xd0000ffc, data));
    EXPECT_EQ(dev->last_write_offset, 0xffcu);
    EXPECT_EQ(dev->last_write, (std::vector<uint8_t>{9, 8, 7, 6}));
    std::array<uint8_t, 2> r{};
    EXPECT_TRUE(bus.read(0xd0000010, r));
    EXPECT_EQ(dev->last_read_offset, 0x10u);
    EXPECT_EQ(r[0], 0x10);
    EXPECT_EQ(r[1], 0x11);
}

TEST(Bus, AdjacentRangesAreFineAndEachGetsItsOwnAccesses) {
    Bus bus("pio");
    auto a = std::make_shared<OffsetDevice>(0x00);
    auto b = std::make_shared<OffsetDevice>(0x80);
    bus.insert(0x3f8, 8, a);
    bus.insert(0x400, 8, b);
    std::array<uint8_t, 1> r{};
    EXPECT_TRUE(bus.read(0x3ff, r));
    EXPECT_EQ(r[0], 7);
    EXPECT_TRUE(bus.read(0x400, r));
    EXPECT_EQ(r[0], 0x80);
}

TEST(Bus, OverlapsAreRefusedOnEverySide) {
    Bus bus("mmio");
    auto dev = std::make_shared<OffsetDevice>();
    bus.insert(0x1000, 0x1000, dev);
    EXPECT_THROW(bus.insert(0x1000, 0x1000, dev), Error);  // same
    EXPECT_THROW(bus.insert(0x0800, 0x1000, dev), Error);  // overlaps the start
    EXPECT_THROW(bus.insert(0x1fff, 0x10, dev), Error);    // overlaps the end
    EXPECT_THROW(bus.insert(0x1100, 0x10, dev), Error);    // inside
    EXPECT_THROW(bus.insert(0x0000, 0x10000, dev), Error); // around
    EXPECT_NO_THROW(bus.insert(0x0800, 0x800, dev));       // ends exactly at the start
    EXPECT_NO_THROW(bus.insert(0x2000, 0x10, dev));        // starts exactly at the end
}

TEST(Bus, EmptyWrappingOrNullRangesAreRefused) {
    Bus bus("mmio");
    auto dev = std::make_shared<OffsetDevice>();
    EXPECT_THROW(bus.insert(0x1000, 0, dev), Error);
    EXPECT_THROW(bus.insert(~0ull - 0xf, 0x100, dev), Error);
    EXPECT_THROW(bus.insert(0x1000, 0x10, nullptr), Error);
}

TEST(Bus, AccessesNotEntirelyInsideOneRangeAreUnclaimed) {
    Bus bus("mmio");
    auto a = std::make_shared<OffsetDevice>();
    auto b = std::make_shared<OffsetDevice>();
    bus.insert(0x1000, 0x10, a);
    bus.insert(0x1010, 0x10, b);
    std::array<uint8_t, 4> data{};
    EXPECT_FALSE(bus.read(0x100e, data)) << "straddles two devices";
    EXPECT_FALSE(bus.read(0x101e, data)) << "runs past the end";
    EXPECT_FALSE(bus.read(0x0ffe, data)) << "starts before the first range";
    EXPECT_FALSE(bus.write(0x2000, data)) << "no device at all";
    EXPECT_EQ(a->last_read_offset, ~0ull);
    EXPECT_EQ(b->last_read_offset, ~0ull);
}

TEST(Bus, AccessesNearTheTopOfTheAddressSpaceDoNotWrap) {
    Bus bus("mmio");
    auto dev = std::make_shared<OffsetDevice>();
    bus.insert(0xfffffffffffff000, 0xff0, dev);
    std::array<uint8_t, 8> data{};
    EXPECT_TRUE(bus.read(0xffffffffffffffe8, data)) << "the last 8 bytes of the device";
    EXPECT_FALSE(bus.read(0xffffffffffffffec, data)) << "past the device's end";
    EXPECT_FALSE(bus.read(0xfffffffffffffffc, data)) << "addr + len wraps past 2^64";
}

TEST(Bus, RemoveTakesOnlyTheRangeStartingAtBase) {
    Bus bus("pio");
    auto dev = std::make_shared<OffsetDevice>();
    bus.insert(0x60, 1, dev);
    bus.insert(0x64, 1, dev);
    EXPECT_FALSE(bus.remove(0x61));
    EXPECT_TRUE(bus.remove(0x60));
    EXPECT_FALSE(bus.remove(0x60));
    std::array<uint8_t, 1> data{};
    EXPECT_FALSE(bus.read(0x60, data));
    EXPECT_TRUE(bus.read(0x64, data));
    EXPECT_NO_THROW(bus.insert(0x60, 4, dev)) << "the freed range can be reused";
}

TEST(Bus, DeviceStaysAliveWhileAnAccessIsInFlight) {
    Bus bus("mmio");
    auto dev = std::make_shared<OffsetDevice>();
    std::weak_ptr<OffsetDevice> weak = dev;
    bus.insert(0x1000, 0x10, std::move(dev));
    bus.remove(0x1000);
    EXPECT_TRUE(weak.expired()) << "the bus held the only reference";
}

TEST(Bus, ConcurrentAccessesAndReconfiguration) {
    Bus bus("mmio");
    auto fixed = std::make_shared<OffsetDevice>(0x40);
    bus.insert(0x0, 0x100, fixed);
    std::atomic<bool> stop{false};
    std::atomic<int> wrong{0};
    std::vector<std::thread> readers;
    for (int t = 0; t < 4; ++t)
        readers.emplace_back([&] {
            std::array<uint8_t, 1> data{};
            while (!stop) {
                if (!bus.read(0x20, data) || data[0] != 0x60) ++wrong;
                std::array<uint8_t, 1> moving{};
                bus.read(0x1000, moving);  // may or may not be there
            }
        });
    auto moving = std::make_shared<OffsetDevice>();
    for (int i = 0; i < 2000; ++i) {
        bus.insert(0x1000, 0x10, moving);
        bus.remove(0x1000);
    }
    stop = true;
    for (auto& r : readers) r.join();
    EXPECT_EQ(wrong.load(), 0);
}

}  // namespace
}  // namespace tapvm
