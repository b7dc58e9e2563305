// Real guests on real KVM: tiny 64-bit programs that write to a port, touch
// MMIO, execute int3 (delivered through an IDT) and fwait, and notify an
// ioeventfd — run through the same set-up, exit dispatch, emulation fix-ups
// and vCPU threads tapvm uses.  On hardware KVM int3 and fwait run natively;
// on the nested PVM KVM they arrive as emulation failures and exercise
// emulation_fixup.  Skipped (loudly) where /dev/kvm does not exist.
#include <gtest/gtest.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <chrono>
#include <condition_variable>
#include <cstring>
#include <mutex>
#include <string>
#include <vector>

#include "vmm/event_fd.h"
#include "vmm/kvm/exit_dispatch.h"
#include "vmm/kvm/kvm_ioevents.h"
#include "vmm/kvm/kvm_irq.h"
#include "vmm/kvm/kvm_kind.h"
#include "vmm/kvm/kvm_system.h"
#include "vmm/kvm/kvm_vm.h"
#include "vmm/kvm/vcpu_setup.h"
#include "vmm/kvm/vcpu_thread.h"
#include "vmm/layout.h"

namespace tapvm::kvm {
namespace {

using namespace std::chrono_literals;
using Code = std::vector<uint8_t>;

// Guest-physical map of the test guest (2 MiB of RAM at 0).
constexpr uint64_t kRamSize = 2 << 20;
constexpr uint64_t kGdt = 0x1000;
constexpr uint64_t kIdt = 0x2000;
constexpr uint64_t kPml4 = 0x3000;
constexpr uint64_t kPdpt = 0x4000;
constexpr uint64_t kPdLow = 0x5000;   // maps [0, 2 MiB)
constexpr uint64_t kPdMmio = 0x6000;  // maps [3 GiB, 4 GiB) for the MMIO test
constexpr uint64_t kStackTop = 0x8000;
constexpr uint64_t kCode = 0x10000;
constexpr uint64_t kBreakpointHandler = 0x11000;

constexpr uint16_t kSerialPort = 0x3f8;
constexpr uint16_t kDonePort = 0xf4;
constexpr uint16_t kDoorbellPort = 0xf0;
constexpr uint64_t kMmioDevice = 0xd0000000;

// Records the bytes written to it (a serial port's data register).
class Recorder : public BusDevice {
public:
    void read(uint64_t, std::span<uint8_t> data) override { std::fill(data.begin(), data.end(), 0); }
    void write(uint64_t, std::span<const uint8_t> data) override {
        std::lock_guard g(mutex);
        text.append(data.begin(), data.end());
    }
    std::string get() {
        std::lock_guard g(mutex);
        return text;
    }
    std::mutex mutex;
    std::string text;
};

// The guest's "I am done" port: powers the machine off.
class DoneDevice : public BusDevice {
public:
    VcpuThreads* threads = nullptr;
    void read(uint64_t, std::span<uint8_t> data) override { std::fill(data.begin(), data.end(), 0); }
    void write(uint64_t, std::span<const uint8_t>) override { threads->stop(GuestPowerOff{}); }
};

// An MMIO register that reads 0x5a and records writes.
class MmioRegister : public BusDevice {
public:
    void read(uint64_t, std::span<uint8_t> data) override { std::fill(data.begin(), data.end(), 0x5a); }
    void write(uint64_t offset, std::span<const uint8_t> data) override {
        std::lock_guard g(mutex);
        last_offset = offset;
        last_value = 0;
        std::memcpy(&last_value, data.data(), std::min(data.size(), sizeof last_value));
    }
    std::mutex mutex;
    uint64_t last_offset = ~0ull;
    uint64_t last_value = 0;
};

boot::SegmentState segment(uint16_t selector, uint8_t type, bool code64) {
    boot::SegmentState s;
    s.limit = 0xffffffff;
    s.selector = selector;
    s.type = type;
    s.present = 1;
    s.s = 1;
    s.g = 1;
    s.l = code64;
    s.db = !code64;
    return s;
}

class KvmSmoke : public ::testing::Test {
protected:
    void SetUp() override {
        if (::access("/dev/kvm", F_OK) != 0)
            GTEST_SKIP() << "/dev/kvm is missing: this machine cannot run guests, so the KVM smoke tests "
                            "(real guests through KvmVm/KvmVcpu/VcpuThreads) did NOT run";
        system_ = std::make_unique<KvmSystem>();
        memory_ = std::make_unique<GuestMemory>(std::vector<GuestRange>{{0, kRamSize}});
        vm_ = std::make_unique<KvmVm>(*system_);
        vm_->map_memory(*memory_);
        write_tables();
        pio_.insert(kSerialPort, 1, serial_);
        pio_.insert(kDonePort, 1, done_);
        mmio_.insert(kMmioDevice, 0x1000, mmio_register_);
    }

    void write_tables() {
        const uint64_t gdt[] = {0, 0x00af9b000000ffff, 0x00cf93000000ffff};  // null, code64 0x08, data 0x10
        ASSERT_TRUE(memory_->write(kGdt, std::span(reinterpret_cast<const uint8_t*>(gdt), sizeof gdt)));
        ASSERT_TRUE(memory_->write_obj<uint64_t>(kPml4, kPdpt | 3));
        ASSERT_TRUE(memory_->write_obj<uint64_t>(kPdpt, kPdLow | 3));
        ASSERT_TRUE(memory_->write_obj<uint64_t>(kPdpt + 3 * 8, kPdMmio | 3));
        ASSERT_TRUE(memory_->write_obj<uint64_t>(kPdLow, 0 | 0x83));  // 2 MiB page, present, writable
        ASSERT_TRUE(memory_->write_obj<uint64_t>(kPdMmio + ((kMmioDevice - 0xc0000000) >> 21) * 8, kMmioDevice | 0x83));
        // IDT vector 3: a present 64-bit interrupt gate, DPL 0, to the handler.
        uint64_t lo = (kBreakpointHandler & 0xffff) | (uint64_t{0x08} << 16) | (uint64_t{0x8e00} << 32) |
                      (((kBreakpointHandler >> 16) & 0xffff) << 48);
        ASSERT_TRUE(memory_->write_obj<uint64_t>(kIdt + 3 * 16, lo));
        ASSERT_TRUE(memory_->write_obj<uint64_t>(kIdt + 3 * 16 + 8, kBreakpointHandler >> 32));
    }

    boot::LongModeEntryState entry_state() const {
        boot::LongModeEntryState s;
        s.cr0 = 0x80000033;  // PG NE ET MP PE
        s.cr3 = kPml4;
        s.cr4 = 0x620;  // OSXMMEXCPT OSFXSR PAE
        s.efer = 0x500;  // LMA LME
        s.cs = segment(0x08, 0xb, true);
        s.ds = s.es = s.fs = s.gs = s.ss = segment(0x10, 0x3, false);
        s.tr = segment(0, 0xb, false);  // a busy 64-bit TSS: VMX requires a usable TR
        s.tr.s = 0;
        s.tr.g = 0;
        s.tr.limit = 0x67;
        s.ldt.unusable = 1;
        s.gdt = {kGdt, 3 * 8 - 1};
        s.idt = {kIdt, 256 * 16 - 1};
        s.rip = kCode;
        s.rsp = kStackTop;
        s.rflags = 0x2;
        return s;
    }

    // Loads `code` (and the #BP handler), runs one vCPU until the guest
    // writes the done port, and returns how the machine ended.
    TerminalEvent run(const Code& code, const Code& handler = {}) {
        EXPECT_TRUE(memory_->write(kCode, code));
        if (!handler.empty()) EXPECT_TRUE(memory_->write(kBreakpointHandler, handler));
        auto vcpu = vm_->create_vcpu(0);
        CpuidOptions options{.tsc_deadline = system_->check_extension(KVM_CAP_TSC_DEADLINE_TIMER) > 0};
        configure_vcpu(*vcpu, system_->supported_cpuid(), {0, 1}, options);
        enter_long_mode(*vcpu, entry_state());

        Buses buses(pio_, mmio_);
        KvmVcpuRunner runner(*vcpu, buses, *memory_);
        std::mutex m;
        std::condition_variable cv;
        bool ended = false;
        VcpuThreads threads({&runner}, [&](const TerminalEvent&) {
            std::lock_guard g(m);
            ended = true;
            cv.notify_all();
        });
        done_->threads = &threads;
        threads.start();
        {
            std::unique_lock g(m);
            // PVM emulates CPL-0 code at ~1M instructions/s: seconds are plenty.
            if (!cv.wait_for(g, 60s, [&] { return ended; }))
                threads.stop(Fatal{"the guest did not reach the done port within 60 s"});
        }
        threads.join();
        done_->threads = nullptr;
        return *threads.terminal_event();
    }

    std::unique_ptr<KvmSystem> system_;
    std::unique_ptr<GuestMemory> memory_;
    std::unique_ptr<KvmVm> vm_;
    Bus pio_{"pio"};
    Bus mmio_{"mmio"};
    std::shared_ptr<Recorder> serial_ = std::make_shared<Recorder>();
    std::shared_ptr<DoneDevice> done_ = std::make_shared<DoneDevice>();
    std::shared_ptr<MmioRegister> mmio_register_ = std::make_shared<MmioRegister>();
};

const Code kMovDxSerial = {0x66, 0xba, 0xf8, 0x03};  // mov dx, 0x3f8
Code mov_al(char c) { return {0xb0, static_cast<uint8_t>(c)}; }
const Code kOutDxAl = {0xee};
const Code kOutDone = {0xe6, kDonePort};  // out 0xf4, al
const Code kHlt = {0xf4};

Code concat(std::initializer_list<Code> parts) {
    Code all;
    for (const auto& p : parts) all.insert(all.end(), p.begin(), p.end());
    return all;
}

TEST_F(KvmSmoke, ReportsWhichKvmThisIs) {
    auto decision = classify_kvm(probe_kvm_report(system_->supported_cpuid()));
    spdlog::info("KVM kind: {} ({})", to_string(decision.kind), decision.reason);
    EXPECT_FALSE(decision.reason.empty());
}

TEST_F(KvmSmoke, GuestWritesASerialByte) {
    auto end = run(concat({kMovDxSerial, mov_al('A'), kOutDxAl, kOutDone, kHlt}));
    EXPECT_EQ(end.action, ExitAction{GuestPowerOff{}}) << describe(end.action);
    EXPECT_EQ(serial_->get(), "A");
}

TEST_F(KvmSmoke, Int3IsDeliveredThroughTheIdtAndFwaitCompletes) {
    Code main = concat({{0xcc},  // int3
                        kMovDxSerial, mov_al('C'), kOutDxAl,
                        {0x9b},  // fwait
                        mov_al('D'), kOutDxAl, kOutDone, kHlt});
    Code handler = concat({kMovDxSerial, mov_al('B'), kOutDxAl, {0x48, 0xcf}});  // iretq
    auto end = run(main, handler);
    EXPECT_EQ(end.action, ExitAction{GuestPowerOff{}}) << describe(end.action);
    EXPECT_EQ(serial_->get(), "BCD") << "the #BP handler runs once, then execution resumes after int3";
}

TEST_F(KvmSmoke, MmioWriteAndReadReachTheDevice) {
    Code code = concat({{0xb8, 0x10, 0x00, 0x00, 0xd0},              // mov eax, 0xd0000010
                        {0xc7, 0x00, 0x78, 0x56, 0x34, 0x12},        // mov dword [rax], 0x12345678
                        {0x8b, 0x18},                                // mov ebx, [rax]
                        kMovDxSerial, {0x88, 0xd8}, kOutDxAl,        // mov al, bl; out dx, al
                        kOutDone, kHlt});
    auto end = run(code);
    EXPECT_EQ(end.action, ExitAction{GuestPowerOff{}}) << describe(end.action);
    std::lock_guard g(mmio_register_->mutex);
    EXPECT_EQ(mmio_register_->last_offset, 0x10u);
    EXPECT_EQ(mmio_register_->last_value, 0x12345678u);
    EXPECT_EQ(serial_->get(), "Z");
}

TEST_F(KvmSmoke, IoeventfdWriteSkipsTheBus) {
    EventFd doorbell;
    auto doorbell_bus = std::make_shared<Recorder>();
    pio_.insert(kDoorbellPort, 1, doorbell_bus);
    KvmIoEventRegistry registry(*vm_, vm_->check_extension(KVM_CAP_IOEVENTFD_ANY_LENGTH) > 0);
    IoEventSpec spec{AddressSpace::Pio, kDoorbellPort, 1, std::nullopt, doorbell.fd()};
    registry.add(spec);

    auto end = run(concat({mov_al('q'), {0xe6, kDoorbellPort}, {0xe6, kDoorbellPort}, kOutDone, kHlt}));
    EXPECT_EQ(end.action, ExitAction{GuestPowerOff{}}) << describe(end.action);
    EXPECT_EQ(doorbell.consume(), 2u);
    EXPECT_EQ(doorbell_bus->get(), "") << "KVM consumed the writes; no exit reached the bus";
    registry.remove(spec);
}

TEST_F(KvmSmoke, KvmAcceptsTheRoutingTableIrqfdsAndLines) {
    GsiRouter router(*vm_, system_->max_gsis());
    auto line = router.irq_line(layout::kCom1Irq);
    line->pulse();
    auto vector = router.allocate();
    vector->set_message({0xfee00000, 0x41});
    vector->trigger();
    EXPECT_EQ(router.table().size(), default_irqchip_routes().size() + 1);
    vector.reset();
    EXPECT_EQ(router.table().size(), default_irqchip_routes().size());
}

}  // namespace
}  // namespace tapvm::kvm
