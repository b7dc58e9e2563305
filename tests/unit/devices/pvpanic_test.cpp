#include "devices/pvpanic/pvpanic.h"

#include <gtest/gtest.h>

#include <vector>

namespace tapvm {
namespace {

TEST(PvPanic, AdvertisesPanickedAndCrashLoaded) {
    PvPanic dev([](uint8_t) {});
    uint8_t value = 0;
    dev.read(0, std::span(&value, 1));
    EXPECT_EQ(value, PvPanic::kPanicked | PvPanic::kCrashLoaded);
}

TEST(PvPanic, ReportsOnlyRecognisedBits) {
    std::vector<uint8_t> events;
    PvPanic dev([&](uint8_t e) { events.push_back(e); });
    uint8_t v = 0xfd;  // unknown bits plus PANICKED
    dev.write(0, std::span<const uint8_t>(&v, 1));
    v = 0x04;  // "shutdown" bit: not handled by tapvm, ignored
    dev.write(0, std::span<const uint8_t>(&v, 1));
    v = 0x01;
    dev.write(1, std::span<const uint8_t>(&v, 1));  // outside the register
    ASSERT_EQ(events.size(), 1u);
    EXPECT_EQ(events[0], PvPanic::kPanicked);
}

}  // namespace
}  // namespace tapvm
