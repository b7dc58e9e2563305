// The i8042 as Linux's drivers/input/serio/i8042.c and atkbd.c probe it, and
// the reset paths of arch/x86/kernel/reboot.c.
#include "devices/i8042/i8042.h"

#include <gtest/gtest.h>

#include <optional>
#include <vector>

#include "support/fake_irq.h"
#include "vmm/bus.h"
#include "vmm/layout.h"

namespace tapvm {
namespace {

using testing::FakeIrqLine;

class I8042Test : public ::testing::Test {
protected:
    I8042Test() : kbc_(std::make_shared<I8042>(&kbd_irq_, &aux_irq_, [this] { ++resets_; })) {}

    // Linux's __i8042_command(): command, parameters, then `replies` bytes,
    // each only once OBF is set (a missing byte would be a timeout there).
    std::optional<std::vector<uint8_t>> command(uint8_t cmd, std::vector<uint8_t> params = {},
                                                int replies = 0, bool expect_aux = false) {
        EXPECT_EQ(kbc_->read_status() & I8042::kStrIbf, 0);
        kbc_->write_command(cmd);
        for (uint8_t p : params) kbc_->write_data(p);
        std::vector<uint8_t> out;
        for (int i = 0; i < replies; ++i) {
            uint8_t status = kbc_->read_status();
            if (!(status & I8042::kStrObf)) return std::nullopt;  // Linux: timeout
            if (expect_aux && !(status & I8042::kStrAuxData)) return std::nullopt;  // "auxerr"
            out.push_back(kbc_->read_data());
        }
        return out;
    }
    std::optional<uint8_t> command1(uint8_t cmd, std::vector<uint8_t> params = {}, bool aux = false) {
        auto r = command(cmd, std::move(params), 1, aux);
        if (!r) return std::nullopt;
        return r->at(0);
    }
    // Everything the keyboard (or controller) has queued.
    std::vector<uint8_t> drain() {
        std::vector<uint8_t> out;
        for (int i = 0; i < 64 && (kbc_->read_status() & I8042::kStrObf); ++i) out.push_back(kbc_->read_data());
        return out;
    }

    FakeIrqLine kbd_irq_;
    FakeIrqLine aux_irq_;
    int resets_ = 0;
    std::shared_ptr<I8042> kbc_;
};

TEST_F(I8042Test, PowerOnStatusLooksLikeAControllerAfterPost) {
    uint8_t status = kbc_->read_status();
    EXPECT_EQ(status & I8042::kStrObf, 0) << "i8042_flush() must find nothing";
    EXPECT_EQ(status & I8042::kStrIbf, 0);
    EXPECT_NE(status & I8042::kStrKeylock, 0) << "keylock inactive";
    EXPECT_NE(status & I8042::kStrSysFlag, 0);
    EXPECT_NE(status, 0xff) << "0xff reads as 'no controller'";
}

TEST_F(I8042Test, SelfTestAndInterfaceTestsPass) {
    EXPECT_EQ(command1(0xaa), 0x55);
    EXPECT_EQ(command1(0xab), 0x00);
    EXPECT_EQ(command1(0xa9), 0x00);
    EXPECT_NE(kbc_->read_status() & I8042::kStrCmdDat, 0) << "last write went to 0x64";
}

TEST_F(I8042Test, CommandByteReadsBackWhatWasWritten) {
    // i8042_controller_init(): read CTR until two reads agree, disable the
    // keyboard port and its interrupt, write it back.
    auto ctr1 = command1(0x20);
    auto ctr2 = command1(0x20);
    ASSERT_TRUE(ctr1 && ctr2);
    EXPECT_EQ(*ctr1, *ctr2);
    EXPECT_EQ(*ctr1, I8042::kInitialCtr);
    EXPECT_EQ(*ctr1 & I8042::kCtrXlate, 0) << "untranslated: Linux drives set 2 directly";
    uint8_t ctr = (*ctr1 | I8042::kCtrKbdDis) & ~I8042::kCtrKbdInt;
    ASSERT_TRUE(command(0x60, {ctr}));
    EXPECT_EQ(kbc_->read_status() & I8042::kStrCmdDat, 0) << "last write went to 0x60";
    EXPECT_EQ(command1(0x20), ctr);
}

TEST_F(I8042Test, AuxLoopEchoesAsAuxData) {
    // i8042_check_aux(): AUX_LOOP 0x5a must come back with AUXDATA set.
    EXPECT_EQ(command1(0xd3, {0x5a}, /*aux=*/true), 0x5a);
}

TEST_F(I8042Test, AuxPortToggleShowsInTheCommandByte) {
    // i8042_toggle_aux() polls CTR.AUXDIS after 0xA7/0xA8.
    ASSERT_TRUE(command(0xa7));
    EXPECT_NE(*command1(0x20) & I8042::kCtrAuxDis, 0);
    ASSERT_TRUE(command(0xa8));
    EXPECT_EQ(*command1(0x20) & I8042::kCtrAuxDis, 0);
    ASSERT_TRUE(command(0xad));
    EXPECT_NE(*command1(0x20) & I8042::kCtrKbdDis, 0);
    ASSERT_TRUE(command(0xae));
    EXPECT_EQ(*command1(0x20) & I8042::kCtrKbdDis, 0);
}

TEST_F(I8042Test, IsNotAnActiveMultiplexingController) {
    // i8042_set_mux_mode(): loops f0, 56, a4; a MUX controller changes the
    // last byte into its version, a plain one echoes it.
    EXPECT_EQ(command1(0xd3, {0xf0}, true), 0xf0);
    EXPECT_EQ(command1(0xd3, {0x56}, true), 0x56);
    EXPECT_EQ(command1(0xd3, {0xa4}, true), 0xa4);
}

TEST_F(I8042Test, WritingToTheAbsentAuxDeviceTimesOutAtOnce) {
    // psmouse probing through 0xD4 gets a timeout-flagged byte, not silence.
    kbc_->write_command(0xd4);
    kbc_->write_data(0xf2);  // PSMOUSE_CMD_GETID
    uint8_t status = kbc_->read_status();
    EXPECT_NE(status & I8042::kStrObf, 0);
    EXPECT_NE(status & I8042::kStrAuxData, 0);
    EXPECT_NE(status & I8042::kStrTimeout, 0);
    EXPECT_EQ(kbc_->read_data(), 0xfe);
    EXPECT_EQ(kbc_->read_status() & (I8042::kStrObf | I8042::kStrTimeout), 0);
}

TEST_F(I8042Test, OutputPortReadsBackWithoutReset) {
    ASSERT_TRUE(command(0xd1, {0xdf}));  // A20 on, reset line high: no reset
    EXPECT_EQ(command1(0xd0), 0xdf);
    EXPECT_EQ(resets_, 0);
}

// --- Keyboard protocol through port 0x60 ---------------------------------------------

TEST_F(I8042Test, KeyboardAnswersAtkbdProbe) {
    // atkbd_probe(): GETID -> ACK, 0xAB, 0x83.
    kbc_->write_data(0xf2);
    EXPECT_EQ(drain(), (std::vector<uint8_t>{0xfa, 0xab, 0x83}));
    // SETLEDS with its argument: two ACKs.
    kbc_->write_data(0xed);
    kbc_->write_data(0x00);
    EXPECT_EQ(drain(), (std::vector<uint8_t>{0xfa, 0xfa}));
    // atkbd_activate(): typematic rate, then enable.
    kbc_->write_data(0xf3);
    kbc_->write_data(0x20);
    kbc_->write_data(0xf4);
    EXPECT_EQ(drain(), (std::vector<uint8_t>{0xfa, 0xfa, 0xfa}));
}

TEST_F(I8042Test, KeyboardResetReportsSelfTestPassed) {
    kbc_->write_data(0xff);
    EXPECT_EQ(drain(), (std::vector<uint8_t>{0xfa, 0xaa}));
}

TEST_F(I8042Test, KeyboardRejectsNonCommands) {
    kbc_->write_data(0x42);
    EXPECT_EQ(drain(), (std::vector<uint8_t>{0xfe}));
    kbc_->write_data(0xee);  // echo
    EXPECT_EQ(drain(), (std::vector<uint8_t>{0xee}));
}

TEST_F(I8042Test, KeyboardScanCodeSetCanBeQueriedAndChanged) {
    kbc_->write_data(0xf0);
    kbc_->write_data(0x00);
    EXPECT_EQ(drain(), (std::vector<uint8_t>{0xfa, 0xfa, 0x02}));
    kbc_->write_data(0xf0);
    kbc_->write_data(0x03);
    kbc_->write_data(0xf0);
    kbc_->write_data(0x00);
    EXPECT_EQ(drain(), (std::vector<uint8_t>{0xfa, 0xfa, 0xfa, 0xfa, 0x03}));
}

TEST_F(I8042Test, ControllerCommandArgumentIsNotSentToTheKeyboard) {
    ASSERT_TRUE(command(0x60, {0xf2}));  // 0xF2 is GETID for the keyboard
    EXPECT_TRUE(drain().empty());
    EXPECT_EQ(command1(0x20), 0xf2);
}

// --- Interrupts ------------------------------------------------------------------------

TEST_F(I8042Test, KeyboardIrqFollowsTheOutputBuffer) {
    kbc_->write_data(0xf2);  // three bytes queued, KBDINT set at power-on
    EXPECT_TRUE(kbd_irq_.level());
    EXPECT_EQ(kbd_irq_.rising_edges(), 1);
    kbc_->read_data();
    kbc_->read_data();
    EXPECT_EQ(kbd_irq_.rising_edges(), 3) << "each newly exposed byte is a new edge";
    kbc_->read_data();
    EXPECT_FALSE(kbd_irq_.level());
    EXPECT_FALSE(aux_irq_.level());
}

TEST_F(I8042Test, InterruptEnablesInTheCommandByteGateTheLines) {
    ASSERT_TRUE(command(0x60, {I8042::kCtrSysFlag}));  // no KBDINT, no AUXINT
    kbc_->write_data(0xf4);
    EXPECT_FALSE(kbd_irq_.level());
    ASSERT_TRUE(command(0x60, {I8042::kCtrSysFlag | I8042::kCtrKbdInt}));
    // 0x60 has no reply, so the keyboard's ACK is still at the head of the
    // queue, and enabling KBDINT raises the line for it.
    EXPECT_TRUE(kbd_irq_.level());
    drain();
    ASSERT_TRUE(command(0x60, {I8042::kCtrSysFlag | I8042::kCtrAuxInt}));
    kbc_->write_command(0xd3);
    kbc_->write_data(0xa5);  // Linux's AUX IRQ delivery test
    EXPECT_TRUE(aux_irq_.level());
    EXPECT_FALSE(kbd_irq_.level());
    EXPECT_EQ(kbc_->read_data(), 0xa5);
    EXPECT_FALSE(aux_irq_.level());
}

// --- Robustness ------------------------------------------------------------------------

TEST_F(I8042Test, OutputQueueIsBoundedSoFlushTerminates) {
    for (int i = 0; i < 40; ++i) kbc_->write_data(0xee);
    EXPECT_EQ(drain().size(), I8042::kOutputQueueSize);
    EXPECT_EQ(kbc_->read_status() & I8042::kStrObf, 0);
    EXPECT_EQ(kbc_->read_data(), 0xee) << "an empty buffer repeats its last byte";
}

TEST_F(I8042Test, UnknownCommandsAreIgnored) {
    kbc_->write_command(0xc9);
    kbc_->write_command(0x35);
    EXPECT_TRUE(drain().empty());
    EXPECT_EQ(resets_, 0);
}

// --- Reset -------------------------------------------------------------------------------

TEST_F(I8042Test, RebootKPulsesTheResetLine) {
    // arch/x86/kernel/reboot.c, BOOT_KBD: wait for IBF clear, write 0xFE to 0x64.
    ASSERT_EQ(kbc_->read_status() & I8042::kStrIbf, 0);
    kbc_->write_command(0xfe);
    EXPECT_EQ(resets_, 1);
}

TEST_F(I8042Test, OnlyPulsesOfBitZeroReset) {
    kbc_->write_command(0xff);  // pulses nothing
    kbc_->write_command(0xfd);  // pulses bit 1 (A20)
    EXPECT_EQ(resets_, 0);
    kbc_->write_command(0xf0);  // pulses bits 0-3
    EXPECT_EQ(resets_, 1);
}

TEST_F(I8042Test, WritingTheOutputPortWithResetLowResets) {
    ASSERT_TRUE(command(0xd1, {0xde}));
    EXPECT_EQ(resets_, 1);
}

// --- Bus wiring ----------------------------------------------------------------------------

TEST_F(I8042Test, TwoOnePortBusRangesReachTheSameController) {
    Bus pio("pio");
    pio.insert(layout::kI8042Data, 1, kbc_->data_port());
    pio.insert(layout::kI8042Command, 1, kbc_->command_port());
    uint8_t cmd = 0xaa;
    ASSERT_TRUE(pio.write(layout::kI8042Command, std::span<const uint8_t>(&cmd, 1)));
    uint8_t status = 0;
    ASSERT_TRUE(pio.read(layout::kI8042Command, std::span<uint8_t>(&status, 1)));
    EXPECT_NE(status & I8042::kStrObf, 0);
    uint8_t data = 0;
    ASSERT_TRUE(pio.read(layout::kI8042Data, std::span<uint8_t>(&data, 1)));
    EXPECT_EQ(data, 0x55);
    uint8_t wide[2] = {};
    EXPECT_FALSE(pio.read(layout::kI8042Data, wide)) << "0x61 belongs to someone else";
}

}  // namespace
}  // namespace tapvm
