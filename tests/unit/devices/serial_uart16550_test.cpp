// The 16550A as Linux's 8250 driver sees it: the probes of autoconfig() and
// serial8250_do_startup(), and the interrupt-mode data paths.
#include "devices/serial/uart16550.h"

#include <gtest/gtest.h>

#include <atomic>
#include <string>
#include <thread>
#include <vector>

#include "devices/serial/uart_registers.h"
#include "support/fake_irq.h"

namespace tapvm {
namespace {

using namespace uart;
using testing::FakeIrqLine;

std::vector<uint8_t> bytes(const std::string& s) { return {s.begin(), s.end()}; }

class UartTest : public ::testing::Test {
protected:
    explicit UartTest(Uart16550::FlushPolicy policy = Uart16550::FlushPolicy::kEveryAccess)
        : uart_(&irq_, [this](std::span<const uint8_t> b) { sink_calls_++; output_.append(b.begin(), b.end()); },
                policy) {}

    void out(uint8_t reg, uint8_t value) { uart_.write(reg, std::span<const uint8_t>(&value, 1)); }
    uint8_t in(uint8_t reg) {
        uint8_t value = 0;
        uart_.read(reg, std::span<uint8_t>(&value, 1));
        return value;
    }
    size_t input(const std::string& s) {
        auto b = bytes(s);
        return uart_.enqueue_input(b);
    }
    // What Linux's serial8250_do_startup() leaves: 8N1, OUT2 (IRQ gate) on.
    void start_like_linux() {
        out(kLcr, 0x03);
        out(kMcr, kMcrOut2 | kMcrDtr | kMcrRts);
    }

    FakeIrqLine irq_;
    std::string output_;
    int sink_calls_ = 0;
    Uart16550 uart_;
};

// --- autoconfig() probes ------------------------------------------------------

TEST_F(UartTest, IerExistenceTestSeesOnlyTheFourInterruptBits) {
    // autoconfig(): IER=0 must read 0, IER=0x0F must read 0x0F.
    out(kIer, 0x00);
    EXPECT_EQ(in(kIer) & 0x0f, 0x00);
    out(kIer, 0x0f);
    EXPECT_EQ(in(kIer) & 0x0f, 0x0f);
    // The XScale UUE test (IER bit 6) and other upper bits must not stick.
    out(kIer, 0xff);
    EXPECT_EQ(in(kIer), 0x0f);
}

TEST_F(UartTest, LoopbackProbeMirrorsMcrOutputsIntoMsr) {
    // autoconfig(): MCR = LOOP | OUT2 | RTS must read back MSR & 0xF0 == 0x90
    // (DCD from OUT2, CTS from RTS).
    out(kMcr, kMcrLoop | 0x0a);
    EXPECT_EQ(in(kMsr) & 0xf0, 0x90);
    out(kMcr, kMcrLoop | kMcrDtr | kMcrOut1);
    EXPECT_EQ(in(kMsr) & 0xf0, kMsrDsr | kMsrRi);
    out(kMcr, 0);
    // Outside loopback the host holds DCD, DSR and CTS on.
    EXPECT_EQ(in(kMsr) & 0xf0, kMsrDcd | kMsrDsr | kMsrCts);
}

TEST_F(UartTest, FifoProbeIdentifiesA16550A) {
    // autoconfig(): LCR=0xBF, "EFR"=0 (really FCR on a 16550A), LCR=0,
    // FCR=ENABLE, then IIR bits 7:6 == 3 means 16550A.
    out(kLcr, 0xbf);
    out(kFcr, 0x00);
    out(kLcr, 0x00);
    out(kFcr, kFcrEnable);
    EXPECT_EQ(in(kIir) >> 6, 3);
    // Disabling the FIFOs drops those bits again (a 16450 would show 0).
    out(kFcr, 0x00);
    EXPECT_EQ(in(kIir) >> 6, 0);
}

TEST_F(UartTest, VariantProbesDoNotMistakeItForSomethingElse) {
    // autoconfig_16550a() with LCR=0x80: reading "EFR" (IIR) must not be 0,
    // or the port would be taken for an ST16C650V1.
    out(kFcr, kFcrEnable);
    out(kLcr, 0x80);
    EXPECT_NE(in(kIir), 0);
    // TI16750 test: FCR bit 5 (64-byte FIFO) must not show in IIR bit 5.
    out(kLcr, 0x00);
    out(kFcr, kFcrEnable | 0x20);
    EXPECT_EQ(in(kIir) & 0x20, 0);
    // NSC SuperIO test reads "EXCR1" (IIR) with LCR=0xE0: bit 4 must not
    // follow MCR.LOOP.
    out(kLcr, 0xe0);
    uint8_t before = in(kIir);
    out(kLcr, 0x00);
    out(kMcr, kMcrLoop);
    out(kLcr, 0xe0);
    EXPECT_EQ((in(kIir) ^ before) & kMcrLoop, 0);
}

TEST_F(UartTest, ScratchRegisterHoldsWhatWasWritten) {
    for (uint8_t v : {0x00, 0x55, 0xaa, 0xff}) {
        out(kScr, v);
        EXPECT_EQ(in(kScr), v);
    }
}

TEST_F(UartTest, DlabSwitchesOffsetsZeroAndOneToTheDivisorLatch) {
    out(kIer, kIerRdi);
    out(kLcr, kLcrDlab | 0x03);
    out(kDll, 0x01);
    out(kDlm, 0x02);
    EXPECT_EQ(in(kDll), 0x01);
    EXPECT_EQ(in(kDlm), 0x02);
    EXPECT_TRUE(output_.empty()) << "a divisor write must not transmit";
    out(kLcr, 0x03);
    EXPECT_EQ(in(kIer), kIerRdi) << "IER kept its value under the latch";
    out(kThr, 'x');
    EXPECT_EQ(output_, "x");
    // The divisor survives.
    out(kLcr, kLcrDlab);
    EXPECT_EQ(in(kDll), 0x01);
    EXPECT_EQ(in(kDlm), 0x02);
}

TEST_F(UartTest, WideAccessIsSplitIntoConsecutiveRegisters) {
    out(kLcr, kLcrDlab);
    const uint8_t divisor[2] = {0x34, 0x12};
    uart_.write(kDll, divisor);
    uint8_t back[2] = {};
    uart_.read(kDll, back);
    EXPECT_EQ(back[0], 0x34);
    EXPECT_EQ(back[1], 0x12);
}

// --- THRE interrupt -------------------------------------------------------------

TEST_F(UartTest, IdleLineStatusShowsTransmitterEmpty) {
    EXPECT_EQ(in(kLsr), kLsrThre | kLsrTemt);
    EXPECT_EQ(in(kIir), kIirNoInt);
}

TEST_F(UartTest, EnablingThriRaisesThreAndReadingIirClearsIt) {
    start_like_linux();
    EXPECT_FALSE(irq_.level());
    out(kIer, kIerThri);
    EXPECT_TRUE(irq_.level());
    EXPECT_EQ(in(kIir) & 0x0f, kIirThri);
    // The IIR read was the acknowledgement.
    EXPECT_FALSE(irq_.level());
    EXPECT_EQ(in(kIir) & 0x0f, kIirNoInt);
}

TEST_F(UartTest, PassesLinuxThreRetriggerTest) {
    // serial8250_do_startup(): UART_BUG_THRE is set when the first IIR shows
    // an interrupt and the second (after IER 0 -> THRI again) does not.
    start_like_linux();
    out(kIer, kIerThri);
    uint8_t iir1 = in(kIir);
    out(kIer, 0);
    out(kIer, kIerThri);
    uint8_t iir2 = in(kIir);
    out(kIer, 0);
    EXPECT_FALSE(iir1 & kIirNoInt);
    EXPECT_FALSE(iir2 & kIirNoInt) << "THRE must be re-raised by re-enabling THRI";
}

TEST_F(UartTest, PassesLinuxTxEnableTest) {
    // serial8250_do_startup(): UART_BUG_TXEN is set if LSR shows TEMT but IIR
    // shows no interrupt right after enabling THRI.
    start_like_linux();
    out(kIer, kIerThri);
    uint8_t lsr = in(kLsr);
    uint8_t iir = in(kIir);
    out(kIer, 0);
    EXPECT_TRUE(lsr & kLsrTemt);
    EXPECT_FALSE(iir & kIirNoInt);
}

TEST_F(UartTest, WritingThrTransmitsAndReraisesThre) {
    start_like_linux();
    out(kIer, kIerThri);
    in(kIir);  // acknowledge
    ASSERT_FALSE(irq_.level());
    out(kThr, 'h');
    EXPECT_EQ(output_, "h");
    EXPECT_TRUE(irq_.level()) << "THR is empty again at once";
    EXPECT_EQ(in(kIir) & 0x0f, kIirThri);
    EXPECT_EQ(in(kLsr) & (kLsrThre | kLsrTemt), kLsrThre | kLsrTemt);
}

TEST_F(UartTest, DisablingThriForgetsAPendingThre) {
    start_like_linux();
    out(kIer, kIerThri);
    out(kIer, 0);
    EXPECT_FALSE(irq_.level());
    out(kIer, kIerRdi);  // THRI stays off: nothing pending
    EXPECT_EQ(in(kIir) & 0x0f, kIirNoInt);
}

TEST_F(UartTest, InterruptDrivenTransmitLikeTheLinuxHandler) {
    // start_tx sets THRI; each interrupt: read IIR, read LSR, write up to 16
    // bytes; when the buffer is empty, stop_tx clears THRI; the handler loops
    // until IIR says nothing is pending.
    start_like_linux();
    const std::string message = "Linux version 6.1 (tapvm) #1 SMP PREEMPT_DYNAMIC\r\n";
    size_t sent = 0;
    out(kIer, kIerThri);
    int interrupts = 0;
    while (irq_.level() && interrupts < 100) {
        ++interrupts;
        for (;;) {
            uint8_t iir = in(kIir);
            if (iir & kIirNoInt) break;
            uint8_t lsr = in(kLsr);
            if ((lsr & kLsrThre) && (in(kIer) & kIerThri)) {
                for (int n = 0; n < 16 && sent < message.size(); ++n) out(kThr, message[sent++]);
                if (sent == message.size()) out(kIer, in(kIer) & ~kIerThri);
            }
        }
    }
    EXPECT_EQ(output_, message);
    EXPECT_FALSE(irq_.level());
    EXPECT_EQ(in(kIir) & 0x0f, kIirNoInt);
}

TEST_F(UartTest, ThrWriteWhileThreIsPendingCausesNoExtraEdge) {
    start_like_linux();
    out(kIer, kIerThri);
    int edges = irq_.rising_edges();
    out(kThr, 'a');
    out(kThr, 'b');
    EXPECT_EQ(irq_.rising_edges(), edges) << "the line never dropped";
    EXPECT_EQ(output_, "ab");
}

// --- Receive --------------------------------------------------------------------

TEST_F(UartTest, InputRaisesDataAvailableUntilDrained) {
    start_like_linux();
    out(kIer, kIerRdi);
    EXPECT_FALSE(irq_.level());
    EXPECT_EQ(input("ok"), 1u) << "FIFOs off: a one-byte holding register";
    EXPECT_TRUE(irq_.level());
    EXPECT_EQ(in(kIir), kIirRdi);
    EXPECT_TRUE(in(kLsr) & kLsrDr);
    EXPECT_EQ(in(kRbr), 'o');
    EXPECT_FALSE(irq_.level());
    EXPECT_FALSE(in(kLsr) & kLsrDr);
    EXPECT_EQ(in(kIir), kIirNoInt);
}

TEST_F(UartTest, FifoBelowTriggerReportsCharacterTimeout) {
    start_like_linux();
    out(kFcr, kFcrEnable | 0xc0);  // trigger level 14
    out(kIer, kIerRdi);
    ASSERT_EQ(input("abc"), 3u);
    EXPECT_EQ(in(kIir), kIirFifoEnabled | kIirTimeout);
    ASSERT_EQ(input("defghijklmn"), 11u);  // 14 now
    EXPECT_EQ(in(kIir), kIirFifoEnabled | kIirRdi);
    std::string got;
    while (in(kLsr) & kLsrDr) got.push_back(static_cast<char>(in(kRbr)));
    EXPECT_EQ(got, "abcdefghijklmn");
    EXPECT_FALSE(irq_.level());
}

TEST_F(UartTest, DataAvailableNeedsItsEnableBit) {
    start_like_linux();
    ASSERT_EQ(input("z"), 1u);
    EXPECT_FALSE(irq_.level());
    EXPECT_EQ(in(kIir), kIirNoInt);
    out(kIer, kIerRdi);  // e.g. Linux unthrottling the port
    EXPECT_TRUE(irq_.level());
}

TEST_F(UartTest, FullFifoPushesBackAndAnnouncesSpace) {
    int notified = 0;
    uart_.set_input_space_callback([&] { ++notified; });
    out(kFcr, kFcrEnable);
    std::string twenty(20, 'q');
    EXPECT_EQ(input(twenty), Uart16550::kFifoSize);
    EXPECT_EQ(input("r"), 0u);
    EXPECT_EQ(notified, 0);
    in(kRbr);
    EXPECT_EQ(notified, 1) << "one byte of room appeared";
    in(kRbr);
    EXPECT_EQ(notified, 1) << "announced once per shortage";
    EXPECT_EQ(input("rst"), 2u);
}

TEST_F(UartTest, ClearingTheReceiveFifoDropsDataAndAnnouncesSpace) {
    int notified = 0;
    uart_.set_input_space_callback([&] { ++notified; });
    start_like_linux();
    out(kFcr, kFcrEnable);
    out(kIer, kIerRdi);
    ASSERT_EQ(input(std::string(17, 'x')), 16u);
    out(kFcr, kFcrEnable | kFcrClearRcvr);
    EXPECT_FALSE(in(kLsr) & kLsrDr);
    EXPECT_FALSE(irq_.level());
    EXPECT_EQ(notified, 1);
}

// --- Interrupt line gating and priorities -----------------------------------------

TEST_F(UartTest, Out2GatesTheInterruptLine) {
    out(kIer, kIerThri);  // THRE pending...
    EXPECT_FALSE(irq_.level()) << "...but OUT2 is clear: the PC's IRQ buffer is off";
    out(kMcr, kMcrOut2);
    EXPECT_TRUE(irq_.level());
    out(kMcr, 0);
    EXPECT_FALSE(irq_.level());
    EXPECT_EQ(in(kIir) & 0x0f, kIirThri) << "gating hides the line, not the condition";
}

TEST_F(UartTest, LoopbackForcesTheInterruptLineOff) {
    start_like_linux();
    out(kIer, kIerThri);
    ASSERT_TRUE(irq_.level());
    out(kMcr, kMcrOut2 | kMcrLoop);
    EXPECT_FALSE(irq_.level());
    EXPECT_EQ(in(kIir) & 0x0f, kIirThri) << "the UART itself still sees it";
}

TEST_F(UartTest, InterruptsAreIdentifiedInPriorityOrder) {
    start_like_linux();
    out(kFcr, kFcrEnable);
    // Line status: overrun in loopback with a full FIFO.
    out(kMcr, kMcrOut2 | kMcrLoop);
    for (int i = 0; i < 17; ++i) out(kThr, static_cast<uint8_t>('A' + i));
    in(kMsr);  // clear change bits from entering loopback
    out(kMcr, kMcrOut2 | kMcrLoop | kMcrDtr);  // DSR changes: modem status pending
    out(kIer, kIerRdi | kIerThri | kIerRlsi | kIerMsi);

    EXPECT_EQ(in(kIir) & 0x0f, kIirRlsi);
    EXPECT_EQ(in(kLsr) & kLsrOe, kLsrOe);  // reading LSR clears it
    EXPECT_EQ(in(kLsr) & kLsrOe, 0);
    EXPECT_EQ(in(kIir) & 0x0f, kIirRdi);
    for (int i = 0; i < 16; ++i) EXPECT_EQ(in(kRbr), 'A' + i);  // the 17th was lost
    EXPECT_EQ(in(kIir) & 0x0f, kIirThri);  // this read acknowledges THRE
    EXPECT_EQ(in(kIir) & 0x0f, kIirMsi);
    EXPECT_EQ(in(kMsr) & kMsrDdsr, kMsrDdsr);
    EXPECT_EQ(in(kIir) & 0x0f, kIirNoInt);
}

// --- Loopback data path --------------------------------------------------------------

TEST_F(UartTest, LoopbackReturnsTransmittedBytesAndKeepsThemFromTheHost) {
    int notified = 0;
    uart_.set_input_space_callback([&] { ++notified; });
    out(kFcr, kFcrEnable);
    out(kMcr, kMcrLoop);
    out(kThr, 0x5a);
    EXPECT_TRUE(output_.empty());
    EXPECT_TRUE(in(kLsr) & kLsrDr);
    EXPECT_EQ(in(kRbr), 0x5a);
    EXPECT_EQ(input("host"), 0u) << "the receiver is disconnected from the line";
    out(kMcr, 0);
    EXPECT_EQ(notified, 1) << "leaving loopback reconnects the receiver";
    EXPECT_EQ(input("host"), 4u);
}

TEST_F(UartTest, LoopbackModemLinesProduceChangeBits) {
    out(kMcr, kMcrLoop);  // all modem inputs go off: DCD, DSR, CTS change
    EXPECT_EQ(in(kMsr), kMsrDdcd | kMsrDdsr | kMsrDcts);
    EXPECT_EQ(in(kMsr), 0) << "change bits clear on read";
    out(kMcr, kMcrLoop | kMcrOut1);  // RI on
    EXPECT_EQ(in(kMsr), kMsrRi) << "only RI's trailing edge counts";
    out(kMcr, kMcrLoop);
    EXPECT_EQ(in(kMsr), kMsrTeri);
}

// --- Output batching ---------------------------------------------------------------------

TEST_F(UartTest, EveryAccessPolicyHandsEachWriteToTheSink) {
    out(kThr, 'a');
    out(kThr, 'b');
    EXPECT_EQ(output_, "ab");
    EXPECT_EQ(sink_calls_, 2);
    out(kScr, 1);
    EXPECT_EQ(sink_calls_, 2) << "no empty writes";
}

class UartCallerFlushTest : public UartTest {
protected:
    UartCallerFlushTest() : UartTest(Uart16550::FlushPolicy::kCaller) {}
};

TEST_F(UartCallerFlushTest, OutputWaitsForFlush) {
    for (char c : std::string("batch")) out(kThr, c);
    EXPECT_TRUE(output_.empty());
    uart_.flush_output();
    EXPECT_EQ(output_, "batch");
    EXPECT_EQ(sink_calls_, 1);
    uart_.flush_output();
    EXPECT_EQ(sink_calls_, 1);
}

TEST_F(UartCallerFlushTest, OutputIsFlushedWhenTooMuchPilesUp) {
    for (size_t i = 0; i < Uart16550::kMaxPendingOutput; ++i) out(kThr, 'z');
    EXPECT_EQ(output_.size(), Uart16550::kMaxPendingOutput);
}

// --- Threads ---------------------------------------------------------------------------------

TEST_F(UartTest, ConsoleThreadAndVcpuThreadLoseNothing) {
    // A console thread pushes input with back-pressure while a "vCPU" drains
    // it; every byte must arrive, once, in order.
    start_like_linux();
    out(kFcr, kFcrEnable);
    out(kIer, kIerRdi);
    std::string message;
    for (int i = 0; i < 5000; ++i) message.push_back(static_cast<char>('a' + i % 26));
    std::atomic<bool> space{false};
    uart_.set_input_space_callback([&] { space = true; });

    std::thread console([&] {
        size_t pos = 0;
        while (pos < message.size()) {
            auto chunk = bytes(message.substr(pos, 64));
            space = false;
            size_t n = uart_.enqueue_input(chunk);
            pos += n;
            if (n < chunk.size())
                while (!space) std::this_thread::yield();
        }
    });
    std::string received;
    while (received.size() < message.size()) {
        if (in(kLsr) & kLsrDr) received.push_back(static_cast<char>(in(kRbr)));
        else std::this_thread::yield();
    }
    console.join();
    EXPECT_EQ(received, message);
}

}  // namespace
}  // namespace tapvm
