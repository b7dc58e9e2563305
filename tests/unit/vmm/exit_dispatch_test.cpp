// dispatch_exit over fake exits and recording bus devices.
#include <gtest/gtest.h>
#include "vmm/uapi/kvm.h"

#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/spdlog.h>

#include <array>
#include <memory>
#include <sstream>
#include <vector>

#include "vmm/kvm/exit_dispatch.h"

namespace tapvm::kvm {
namespace {

struct Access {
    uint64_t offset;
    std::vector<uint8_t> data;
    bool operator==(const Access&) const = default;
};

// Records writes; reads return offset-derived bytes so a test can tell
// which element read what.
class RecordingDevice : public BusDevice {
public:
    void read(uint64_t offset, std::span<uint8_t> data) override {
        reads.push_back({offset, {}});
        for (size_t i = 0; i < data.size(); ++i) data[i] = static_cast<uint8_t>(0x10 * reads.size() + i);
    }
    void write(uint64_t offset, std::span<const uint8_t> data) override {
        writes.push_back({offset, {data.begin(), data.end()}});
    }
    std::vector<Access> reads;
    std::vector<Access> writes;
};

class ExitDispatch : public ::testing::Test {
protected:
    ExitDispatch() {
        pio.insert(0x3f8, 8, serial);
        mmio.insert(0xd0000000, 0x1000, bar);
    }
    Bus pio{"pio"};
    Bus mmio{"mmio"};
    std::shared_ptr<RecordingDevice> serial = std::make_shared<RecordingDevice>();
    std::shared_ptr<RecordingDevice> bar = std::make_shared<RecordingDevice>();
    Buses buses{pio, mmio};
};

TEST_F(ExitDispatch, PortOutReachesTheDeviceAtItsOffset) {
    std::array<uint8_t, 1> data{'A'};
    auto action = dispatch_exit(IoExit{0x3f8 + 5, 1, IoDirection::Out, 1, data}, buses);
    EXPECT_TRUE(is_continue(action));
    ASSERT_EQ(serial->writes.size(), 1u);
    EXPECT_EQ(serial->writes[0], (Access{5, {'A'}}));
}

TEST_F(ExitDispatch, RepOutsIsSplitIntoElements) {
    std::array<uint8_t, 6> data{1, 2, 3, 4, 5, 6};
    dispatch_exit(IoExit{0x3f8, 2, IoDirection::Out, 3, data}, buses);
    ASSERT_EQ(serial->writes.size(), 3u);
    EXPECT_EQ(serial->writes[0], (Access{0, {1, 2}}));
    EXPECT_EQ(serial->writes[1], (Access{0, {3, 4}}));
    EXPECT_EQ(serial->writes[2], (Access{0, {5, 6}}));
}

TEST_F(ExitDispatch, RepInsFillsEveryElementFromTheDevice) {
    std::array<uint8_t, 4> data{};
    dispatch_exit(IoExit{0x3f9, 2, IoDirection::In, 2, data}, buses);
    ASSERT_EQ(serial->reads.size(), 2u);
    EXPECT_EQ(serial->reads[1].offset, 1u);
    EXPECT_EQ(data, (std::array<uint8_t, 4>{0x10, 0x11, 0x20, 0x21}));
}

TEST_F(ExitDispatch, UnclaimedPortReadIsAllOnesAndCounted) {
    std::array<uint8_t, 4> data{};
    auto action = dispatch_exit(IoExit{0x70, 4, IoDirection::In, 1, data}, buses);
    EXPECT_TRUE(is_continue(action));
    EXPECT_EQ(data, (std::array<uint8_t, 4>{0xff, 0xff, 0xff, 0xff}));
    EXPECT_EQ(buses.unclaimed.reads(), 1u);
    EXPECT_EQ(buses.unclaimed.writes(), 0u);
}

TEST_F(ExitDispatch, UnclaimedPortWriteIsDroppedAndCounted) {
    std::array<uint8_t, 1> data{0x55};
    for (int i = 0; i < 3; ++i) dispatch_exit(IoExit{0x80, 1, IoDirection::Out, 1, data}, buses);
    EXPECT_EQ(buses.unclaimed.writes(), 3u);
    EXPECT_TRUE(serial->writes.empty());
}

TEST_F(ExitDispatch, AccessStraddlingTheEndOfARangeIsUnclaimed) {
    std::array<uint8_t, 4> data{};
    dispatch_exit(IoExit{0x3fe, 4, IoDirection::In, 1, data}, buses);  // 0x3fe..0x401, device ends at 0x3ff
    EXPECT_TRUE(serial->reads.empty());
    EXPECT_EQ(data[0], 0xff);
}

TEST_F(ExitDispatch, MmioWriteAndReadUseOffsets) {
    std::array<uint8_t, 4> w{1, 2, 3, 4};
    EXPECT_TRUE(is_continue(dispatch_exit(MmioExit{0xd0000010, 4, true, w}, buses)));
    ASSERT_EQ(bar->writes.size(), 1u);
    EXPECT_EQ(bar->writes[0], (Access{0x10, {1, 2, 3, 4}}));

    std::array<uint8_t, 8> r{};
    dispatch_exit(MmioExit{0xd0000ff8, 8, false, r}, buses);
    ASSERT_EQ(bar->reads.size(), 1u);
    EXPECT_EQ(bar->reads[0].offset, 0xff8u);
    EXPECT_EQ(r[0], 0x10);
}

TEST_F(ExitDispatch, UnclaimedMmioReadIsAllOnes) {
    std::array<uint8_t, 2> r{};
    dispatch_exit(MmioExit{0xfed00000, 2, false, r}, buses);
    EXPECT_EQ(r, (std::array<uint8_t, 2>{0xff, 0xff}));
    EXPECT_EQ(buses.unclaimed.reads(), 1u);
}

// Captures what tapvm logs while it exists.
class LogCapture {
public:
    LogCapture() : previous_(spdlog::default_logger()) {
        auto sink = std::make_shared<spdlog::sinks::ostream_sink_mt>(out_);
        spdlog::set_default_logger(std::make_shared<spdlog::logger>("capture", sink));
    }
    ~LogCapture() { spdlog::set_default_logger(previous_); }
    size_t lines_containing(const std::string& needle) const {
        std::istringstream in(out_.str());
        size_t n = 0;
        for (std::string line; std::getline(in, line);) n += line.find(needle) != std::string::npos;
        return n;
    }

private:
    std::shared_ptr<spdlog::logger> previous_;
    std::ostringstream out_;
};

TEST_F(ExitDispatch, EachUnclaimedAddressIsLoggedOnce) {
    LogCapture log;
    std::array<uint8_t, 1> data{};
    for (int i = 0; i < 5; ++i) dispatch_exit(IoExit{0x80, 1, IoDirection::Out, 1, data}, buses);
    dispatch_exit(IoExit{0x61, 1, IoDirection::In, 1, data}, buses);
    EXPECT_EQ(log.lines_containing("unclaimed"), 2u);
    EXPECT_EQ(log.lines_containing("0x80"), 1u);
    EXPECT_EQ(buses.unclaimed.writes(), 5u);
}

TEST_F(ExitDispatch, LoggedAddressesAreBoundedButAllAreCounted) {
    LogCapture log;
    std::array<uint8_t, 1> data{};
    const uint64_t n = UnclaimedAccessLog::kMaxLoggedAddresses * 4;
    for (uint64_t i = 0; i < n; ++i) dispatch_exit(MmioExit{0x100000000 + i * 8, 1, true, data}, buses);
    EXPECT_EQ(buses.unclaimed.writes(), n);
    EXPECT_EQ(log.lines_containing("unclaimed"), UnclaimedAccessLog::kMaxLoggedAddresses);
}

TEST_F(ExitDispatch, LifecycleExitsBecomeMachineActions) {
    EXPECT_EQ(dispatch_exit(SystemEventExit{SystemEventType::Shutdown, KVM_SYSTEM_EVENT_SHUTDOWN}, buses),
              ExitAction{GuestPowerOff{}});
    EXPECT_EQ(dispatch_exit(SystemEventExit{SystemEventType::Reset, KVM_SYSTEM_EVENT_RESET}, buses),
              ExitAction{GuestReboot{}});
    EXPECT_TRUE(std::holds_alternative<GuestCrash>(
        dispatch_exit(SystemEventExit{SystemEventType::Crash, KVM_SYSTEM_EVENT_CRASH}, buses)));
    EXPECT_TRUE(std::holds_alternative<Fatal>(
        dispatch_exit(SystemEventExit{SystemEventType::Other, KVM_SYSTEM_EVENT_WAKEUP}, buses)));
    EXPECT_EQ(dispatch_exit(HltExit{}, buses), ExitAction{GuestPowerOff{}});
    EXPECT_TRUE(is_continue(dispatch_exit(InterruptedExit{}, buses)));
}

TEST_F(ExitDispatch, TripleFaultIsACrashNamingItsCause) {
    auto action = dispatch_exit(ShutdownExit{}, buses);
    ASSERT_TRUE(std::holds_alternative<GuestCrash>(action));
    EXPECT_NE(std::get<GuestCrash>(action).reason.find("triple fault"), std::string::npos);
}

TEST_F(ExitDispatch, KvmFailuresAreFatalWithDetails) {
    auto internal = dispatch_exit(InternalErrorExit{KVM_INTERNAL_ERROR_DELIVERY_EV, {0x80000b0e}, {}}, buses);
    ASSERT_TRUE(std::holds_alternative<Fatal>(internal));
    EXPECT_NE(std::get<Fatal>(internal).message.find("delivering"), std::string::npos);
    EXPECT_NE(std::get<Fatal>(internal).message.find("0x80000b0e"), std::string::npos);

    auto entry = dispatch_exit(FailEntryExit{0x21, 1}, buses);
    ASSERT_TRUE(std::holds_alternative<Fatal>(entry));
    EXPECT_NE(std::get<Fatal>(entry).message.find("0x21"), std::string::npos);

    auto unknown = dispatch_exit(UnknownExit{KVM_EXIT_DEBUG, "x"}, buses);
    ASSERT_TRUE(std::holds_alternative<Fatal>(unknown));
}

// A device that moves itself on the bus during its own write (a PCI BAR
// being reprogrammed through a config write) must not deadlock dispatch.
class SelfMovingDevice : public BusDevice {
public:
    explicit SelfMovingDevice(Bus& bus) : bus_(bus) {}
    void read(uint64_t, std::span<uint8_t> data) override { std::fill(data.begin(), data.end(), 0); }
    void write(uint64_t, std::span<const uint8_t>) override {
        auto self = std::shared_ptr<BusDevice>(this, [](BusDevice*) {});
        bus_.remove(0x500);
        bus_.insert(0x600, 4, self);
    }

private:
    Bus& bus_;
};

TEST(ExitDispatchBusChanges, DeviceMayChangeTheBusFromItsWrite) {
    Bus pio("pio"), mmio("mmio");
    SelfMovingDevice device(pio);
    pio.insert(0x500, 4, std::shared_ptr<BusDevice>(&device, [](BusDevice*) {}));
    Buses buses(pio, mmio);
    std::array<uint8_t, 1> data{1};
    EXPECT_TRUE(is_continue(dispatch_exit(IoExit{0x500, 1, IoDirection::Out, 1, data}, buses)));
    std::array<uint8_t, 1> r{0xaa};
    dispatch_exit(IoExit{0x600, 1, IoDirection::In, 1, r}, buses);
    EXPECT_EQ(r[0], 0) << "the device answers at its new address";
}

}  // namespace
}  // namespace tapvm::kvm
