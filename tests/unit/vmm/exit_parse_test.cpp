// parse_exit over hand-filled kvm_run areas: every exit kind tapvm handles,
// and the checks that keep a bad offset or size from becoming a bad span.
#include <gtest/gtest.h>
#include "vmm/uapi/kvm.h"

#include <cstring>
#include <vector>

#include "vmm/kvm/exit.h"

namespace tapvm::kvm {
namespace {

// A kvm_run area as KVM maps it: struct kvm_run, then the PIO data page.
class RunArea {
public:
    static constexpr size_t kSize = 3 * 4096;
    RunArea() : words_(kSize / 8) {}
    kvm_run& run() { return *reinterpret_cast<kvm_run*>(words_.data()); }
    std::span<uint8_t> area() { return {reinterpret_cast<uint8_t*>(words_.data()), kSize}; }
    uint8_t* at(size_t offset) { return area().data() + offset; }

private:
    std::vector<uint64_t> words_;  // 8-aligned like the mmap
};

TEST(ExitParse, PortOutCarriesPortSizeAndDataFromDataOffset) {
    RunArea a;
    a.run().exit_reason = KVM_EXIT_IO;
    a.run().io = {KVM_EXIT_IO_OUT, 2, 0x3f8, 1, 4096};
    a.at(4096)[0] = 0x34;
    a.at(4096)[1] = 0x12;

    auto exit = parse_exit(a.area());
    auto* io = std::get_if<IoExit>(&exit);
    ASSERT_NE(io, nullptr) << describe(exit);
    EXPECT_EQ(io->port, 0x3f8);
    EXPECT_EQ(io->size, 2);
    EXPECT_EQ(io->direction, IoDirection::Out);
    EXPECT_EQ(io->count, 1u);
    ASSERT_EQ(io->data.size(), 2u);
    EXPECT_EQ(io->data.data(), a.at(4096)) << "the span must alias the kvm_run area";
    EXPECT_EQ(io->data[0], 0x34);
    EXPECT_EQ(io->data[1], 0x12);
}

TEST(ExitParse, RepInsCoversCountElements) {
    RunArea a;
    a.run().exit_reason = KVM_EXIT_IO;
    a.run().io = {KVM_EXIT_IO_IN, 4, 0x1f0, 16, 4096};
    auto exit = parse_exit(a.area());
    auto* io = std::get_if<IoExit>(&exit);
    ASSERT_NE(io, nullptr) << describe(exit);
    EXPECT_EQ(io->direction, IoDirection::In);
    EXPECT_EQ(io->data.size(), 64u);
}

TEST(ExitParse, PortDataOutsideTheAreaIsRefused) {
    RunArea a;
    a.run().exit_reason = KVM_EXIT_IO;
    a.run().io = {KVM_EXIT_IO_IN, 4, 0x1f0, 2, RunArea::kSize - 4};  // 8 bytes, 4 fit
    EXPECT_TRUE(std::holds_alternative<UnknownExit>(parse_exit(a.area())));

    a.run().io = {KVM_EXIT_IO_IN, 1, 0x1f0, 1, ~uint64_t{0}};  // offset + size wraps
    EXPECT_TRUE(std::holds_alternative<UnknownExit>(parse_exit(a.area())));

    a.run().io = {KVM_EXIT_IO_IN, 4, 0x1f0, 0xffffffff, 4096};  // huge rep count
    EXPECT_TRUE(std::holds_alternative<UnknownExit>(parse_exit(a.area())));
}

TEST(ExitParse, PortAccessSizeMustBe124AndCountNonZero) {
    RunArea a;
    a.run().exit_reason = KVM_EXIT_IO;
    a.run().io = {KVM_EXIT_IO_OUT, 3, 0x80, 1, 4096};
    EXPECT_TRUE(std::holds_alternative<UnknownExit>(parse_exit(a.area())));
    a.run().io = {KVM_EXIT_IO_OUT, 1, 0x80, 0, 4096};
    EXPECT_TRUE(std::holds_alternative<UnknownExit>(parse_exit(a.area())));
}

TEST(ExitParse, MmioWriteAndRead) {
    RunArea a;
    a.run().exit_reason = KVM_EXIT_MMIO;
    a.run().mmio.phys_addr = 0xfe000010;
    a.run().mmio.len = 4;
    a.run().mmio.is_write = 1;
    std::memcpy(a.run().mmio.data, "\x78\x56\x34\x12", 4);

    auto exit = parse_exit(a.area());
    auto* mmio = std::get_if<MmioExit>(&exit);
    ASSERT_NE(mmio, nullptr) << describe(exit);
    EXPECT_EQ(mmio->address, 0xfe000010u);
    EXPECT_TRUE(mmio->is_write);
    ASSERT_EQ(mmio->data.size(), 4u);
    EXPECT_EQ(mmio->data.data(), a.run().mmio.data);
    EXPECT_EQ(mmio->data[3], 0x12);

    a.run().mmio.is_write = 0;
    a.run().mmio.len = 8;
    exit = parse_exit(a.area());
    ASSERT_TRUE(std::holds_alternative<MmioExit>(exit));
    EXPECT_FALSE(std::get<MmioExit>(exit).is_write);
    EXPECT_EQ(std::get<MmioExit>(exit).data.size(), 8u);
}

TEST(ExitParse, MmioLengthBeyondTheDataArrayIsRefused) {
    RunArea a;
    a.run().exit_reason = KVM_EXIT_MMIO;
    a.run().mmio.len = 9;
    EXPECT_TRUE(std::holds_alternative<UnknownExit>(parse_exit(a.area())));
    a.run().mmio.len = 0;
    EXPECT_TRUE(std::holds_alternative<UnknownExit>(parse_exit(a.area())));
}

TEST(ExitParse, LifecycleExits) {
    RunArea a;
    a.run().exit_reason = KVM_EXIT_HLT;
    EXPECT_TRUE(std::holds_alternative<HltExit>(parse_exit(a.area())));
    a.run().exit_reason = KVM_EXIT_SHUTDOWN;
    EXPECT_TRUE(std::holds_alternative<ShutdownExit>(parse_exit(a.area())));
    a.run().exit_reason = KVM_EXIT_INTR;
    EXPECT_TRUE(std::holds_alternative<InterruptedExit>(parse_exit(a.area())));
}

TEST(ExitParse, SystemEventTypes) {
    RunArea a;
    a.run().exit_reason = KVM_EXIT_SYSTEM_EVENT;
    const std::pair<uint32_t, SystemEventType> cases[] = {
        {KVM_SYSTEM_EVENT_SHUTDOWN, SystemEventType::Shutdown},
        {KVM_SYSTEM_EVENT_RESET, SystemEventType::Reset},
        {KVM_SYSTEM_EVENT_CRASH, SystemEventType::Crash},
        {KVM_SYSTEM_EVENT_WAKEUP, SystemEventType::Other},
        {77, SystemEventType::Other},
    };
    for (auto [raw, type] : cases) {
        a.run().system_event.type = raw;
        auto exit = parse_exit(a.area());
        auto* e = std::get_if<SystemEventExit>(&exit);
        ASSERT_NE(e, nullptr);
        EXPECT_EQ(e->type, type) << raw;
        EXPECT_EQ(e->raw_type, raw);
    }
}

TEST(ExitParse, InternalErrorKeepsOnlyNdataWords) {
    RunArea a;
    a.run().exit_reason = KVM_EXIT_INTERNAL_ERROR;
    a.run().internal.suberror = KVM_INTERNAL_ERROR_DELIVERY_EV;
    a.run().internal.ndata = 2;
    a.run().internal.data[0] = 0x80000b0e;
    a.run().internal.data[1] = 0x31;
    a.run().internal.data[2] = 0xdead;  // beyond ndata

    auto exit = parse_exit(a.area());
    auto* e = std::get_if<InternalErrorExit>(&exit);
    ASSERT_NE(e, nullptr);
    EXPECT_EQ(e->suberror, uint32_t{KVM_INTERNAL_ERROR_DELIVERY_EV});
    EXPECT_FALSE(e->is_emulation_failure());
    EXPECT_EQ(e->data, (std::vector<uint64_t>{0x80000b0e, 0x31}));
    EXPECT_TRUE(e->instruction_bytes.empty());
}

TEST(ExitParse, InternalErrorNdataIsClampedToTheArray) {
    RunArea a;
    a.run().exit_reason = KVM_EXIT_INTERNAL_ERROR;
    a.run().internal.suberror = KVM_INTERNAL_ERROR_SIMUL_EX;
    a.run().internal.ndata = 1000;
    auto exit = parse_exit(a.area());
    ASSERT_TRUE(std::holds_alternative<InternalErrorExit>(exit));
    EXPECT_EQ(std::get<InternalErrorExit>(exit).data.size(), 16u);
}

TEST(ExitParse, EmulationFailureInstructionBytesWhenFlagged) {
    RunArea a;
    a.run().exit_reason = KVM_EXIT_INTERNAL_ERROR;
    auto& ef = a.run().emulation_failure;
    ef.suberror = KVM_INTERNAL_ERROR_EMULATION;
    ef.ndata = 3;
    ef.flags = KVM_INTERNAL_ERROR_EMULATION_FLAG_INSTRUCTION_BYTES;
    ef.insn_size = 3;
    ef.insn_bytes[0] = 0x0f;
    ef.insn_bytes[1] = 0x01;
    ef.insn_bytes[2] = 0xca;

    auto exit = parse_exit(a.area());
    auto* e = std::get_if<InternalErrorExit>(&exit);
    ASSERT_NE(e, nullptr);
    EXPECT_TRUE(e->is_emulation_failure());
    EXPECT_EQ(e->instruction_bytes, (std::vector<uint8_t>{0x0f, 0x01, 0xca}));

    ef.flags = 0;  // bytes not reported: ignore whatever is there
    exit = parse_exit(a.area());
    EXPECT_TRUE(std::get<InternalErrorExit>(exit).instruction_bytes.empty());

    ef.flags = KVM_INTERNAL_ERROR_EMULATION_FLAG_INSTRUCTION_BYTES;
    ef.insn_size = 200;  // clamped to the 15-byte array
    exit = parse_exit(a.area());
    EXPECT_EQ(std::get<InternalErrorExit>(exit).instruction_bytes.size(), 15u);
}

TEST(ExitParse, FailEntryAndUnknownReasons) {
    RunArea a;
    a.run().exit_reason = KVM_EXIT_FAIL_ENTRY;
    a.run().fail_entry.hardware_entry_failure_reason = 0x80000021;
    a.run().fail_entry.cpu = 3;
    auto exit = parse_exit(a.area());
    auto* f = std::get_if<FailEntryExit>(&exit);
    ASSERT_NE(f, nullptr);
    EXPECT_EQ(f->hardware_reason, 0x80000021u);
    EXPECT_EQ(f->cpu, 3u);

    a.run().exit_reason = KVM_EXIT_IRQ_WINDOW_OPEN;
    exit = parse_exit(a.area());
    ASSERT_TRUE(std::holds_alternative<UnknownExit>(exit));
    EXPECT_EQ(std::get<UnknownExit>(exit).reason, uint32_t{KVM_EXIT_IRQ_WINDOW_OPEN});
}

TEST(ExitParse, AreaSmallerThanKvmRunIsRefused) {
    RunArea a;
    a.run().exit_reason = KVM_EXIT_HLT;
    EXPECT_TRUE(std::holds_alternative<UnknownExit>(parse_exit(a.area().first(sizeof(kvm_run) - 1))));
}

}  // namespace
}  // namespace tapvm::kvm
