// Hardware-reduced ACPI sleep and reset registers, driven the way ACPICA's
// acpi_hw_extended_sleep() (hwesleep.c) and acpi_reset() drive them.
#include "devices/acpi_pm/acpi_sleep.h"

#include <gtest/gtest.h>

#include "vmm/bus.h"
#include "vmm/layout.h"

namespace tapvm {
namespace {

constexpr uint64_t kControl = 0;
constexpr uint64_t kStatus = layout::kAcpiSleepStatus - layout::kAcpiSleepControl;
constexpr uint64_t kReset = layout::kAcpiResetReg - layout::kAcpiSleepControl;

class AcpiSleepTest : public ::testing::Test {
protected:
    AcpiSleepTest() : dev_([this] { ++poweroffs_; }, [this] { ++resets_; }) {}

    void out(uint64_t reg, uint8_t value) { dev_.write(reg, std::span<const uint8_t>(&value, 1)); }
    uint8_t in(uint64_t reg) {
        uint8_t value = 0;
        dev_.read(reg, std::span<uint8_t>(&value, 1));
        return value;
    }
    // ACPICA: sleep_control = ((sleep_type_a << ACPI_X_SLEEP_TYPE_POSITION) &
    // ACPI_X_SLEEP_TYPE_MASK) | ACPI_X_SLEEP_ENABLE, after clearing WAK_STS.
    void enter_sleep_state(uint8_t sleep_type_a) {
        out(kStatus, 0x80);
        out(kControl, static_cast<uint8_t>(((sleep_type_a << 2) & 0x1c) | 0x20));
    }

    int poweroffs_ = 0;
    int resets_ = 0;
    AcpiSleep dev_;
};

TEST_F(AcpiSleepTest, S5SleepTypeWithSleepEnablePowersOff) {
    enter_sleep_state(layout::kAcpiS5SleepType);
    EXPECT_EQ(poweroffs_, 1);
    EXPECT_EQ(resets_, 0);
    EXPECT_EQ(in(kStatus) & 0x80, 0) << "powering off, not waking";
}

TEST_F(AcpiSleepTest, S5SleepTypeWithoutSleepEnableDoesNothing) {
    // SLP_TYPx may be written first and SLP_EN later; only SLP_EN acts.
    out(kControl, static_cast<uint8_t>(layout::kAcpiS5SleepType << 2));
    EXPECT_EQ(poweroffs_, 0);
    out(kControl, static_cast<uint8_t>((layout::kAcpiS5SleepType << 2) | 0x20));
    EXPECT_EQ(poweroffs_, 1);
}

TEST_F(AcpiSleepTest, OtherSleepTypesDoNotPowerOffButWakeAtOnce) {
    for (uint8_t type = 0; type < 8; ++type) {
        if (type == layout::kAcpiS5SleepType) continue;
        enter_sleep_state(type);
        EXPECT_EQ(poweroffs_, 0) << "type " << int(type);
        // ACPICA polls WAK_STS until set; it must not spin forever.
        EXPECT_EQ(in(kStatus), 0x80) << "type " << int(type);
    }
}

TEST_F(AcpiSleepTest, WakeStatusIsWriteOneToClear) {
    enter_sleep_state(1);
    ASSERT_EQ(in(kStatus), 0x80);
    out(kStatus, 0x7f);  // other bits: no effect
    EXPECT_EQ(in(kStatus), 0x80);
    out(kStatus, 0x80);
    EXPECT_EQ(in(kStatus), 0x00);
}

TEST_F(AcpiSleepTest, ReservedControlBitsDoNotChangeTheDecodedType) {
    // Bits 0-1 and 6-7 are reserved; S5 with them set is still S5.
    out(kControl, static_cast<uint8_t>(0xc3 | (layout::kAcpiS5SleepType << 2) | 0x20));
    EXPECT_EQ(poweroffs_, 1);
    // Type bits that differ by one position (a shift mistake) are not S5.
    out(kControl, static_cast<uint8_t>(((layout::kAcpiS5SleepType << 3) & 0x1c) | 0x20));
    EXPECT_EQ(poweroffs_, 1);
}

TEST_F(AcpiSleepTest, ControlReadsBackTypeButNotSleepEnable) {
    out(kControl, static_cast<uint8_t>((3 << 2)));
    EXPECT_EQ(in(kControl), 3 << 2);
}

TEST_F(AcpiSleepTest, ResetValueResets) {
    out(kReset, layout::kAcpiResetValue);
    EXPECT_EQ(resets_, 1);
    EXPECT_EQ(poweroffs_, 0);
}

TEST_F(AcpiSleepTest, OtherResetRegisterValuesAreIgnored) {
    for (int v = 0; v < 256; ++v)
        if (v != layout::kAcpiResetValue) out(kReset, static_cast<uint8_t>(v));
    EXPECT_EQ(resets_, 0);
}

TEST_F(AcpiSleepTest, SitsOnThePortBusAsOneThreePortRange) {
    auto dev = std::make_shared<AcpiSleep>([this] { ++poweroffs_; }, [this] { ++resets_; });
    Bus pio("pio");
    pio.insert(layout::kAcpiSleepControl, AcpiSleep::kPortCount, dev);
    uint8_t reset = layout::kAcpiResetValue;
    ASSERT_TRUE(pio.write(layout::kAcpiResetReg, std::span<const uint8_t>(&reset, 1)));
    EXPECT_EQ(resets_, 1);
    uint8_t s5 = static_cast<uint8_t>((layout::kAcpiS5SleepType << 2) | 0x20);
    ASSERT_TRUE(pio.write(layout::kAcpiSleepControl, std::span<const uint8_t>(&s5, 1)));
    EXPECT_EQ(poweroffs_, 1);
}

}  // namespace
}  // namespace tapvm
