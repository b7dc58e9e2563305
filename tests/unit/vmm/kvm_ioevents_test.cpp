// KVM_IOEVENTFD requests built from IoEventSpecs, and the registry's
// all-or-nothing add and complete remove, against a recording VM.
#include <gtest/gtest.h>
#include "vmm/uapi/kvm.h"

#include <vector>

#include "vmm/error.h"
#include "vmm/kvm/kvm_ioevents.h"

namespace tapvm::kvm {
namespace {

class FakeVm : public IoEventControl {
public:
    void set_ioeventfd(const kvm_ioeventfd& r) override {
        calls.push_back(r);
        if (fail_on_call == static_cast<int>(calls.size())) throw Error("KVM_IOEVENTFD: fake failure");
    }
    std::vector<kvm_ioeventfd> calls;
    int fail_on_call = 0;  // 1-based; 0 = never
};

IoEventSpec mmio_spec(uint64_t addr, uint32_t len) { return {AddressSpace::Mmio, addr, len, std::nullopt, 7}; }

TEST(IoEventRequests, MmioAnyWidthIsLengthZeroWhenKvmSupportsIt) {
    auto r = kvm_ioeventfds_for(mmio_spec(0xd0003000, 0), true);
    ASSERT_EQ(r.size(), 1u);
    EXPECT_EQ(r[0].addr, 0xd0003000u);
    EXPECT_EQ(r[0].len, 0u);
    EXPECT_EQ(r[0].fd, 7);
    EXPECT_EQ(r[0].flags, 0u);
}

TEST(IoEventRequests, MmioAnyWidthFallsBackToTwoAndFourBytes) {
    auto r = kvm_ioeventfds_for(mmio_spec(0xd0003000, 0), false);
    ASSERT_EQ(r.size(), 2u);
    EXPECT_EQ(r[0].len, 2u);
    EXPECT_EQ(r[1].len, 4u);
    EXPECT_EQ(r[0].addr, r[1].addr);
}

TEST(IoEventRequests, PioWithDatamatch) {
    IoEventSpec spec{AddressSpace::Pio, 0x1010, 2, uint64_t{3}, 9};
    auto r = kvm_ioeventfds_for(spec, true);
    ASSERT_EQ(r.size(), 1u);
    EXPECT_EQ(r[0].flags, uint32_t{KVM_IOEVENTFD_FLAG_PIO | KVM_IOEVENTFD_FLAG_DATAMATCH});
    EXPECT_EQ(r[0].datamatch, 3u);
    EXPECT_EQ(r[0].len, 2u);
}

TEST(IoEventRequests, SpecsKvmWouldRefuseAreRefusedWithAReason) {
    const IoEventSpec bad[] = {
        {AddressSpace::Mmio, 0x1000, 3, std::nullopt, 7},                 // width 3
        {AddressSpace::Mmio, 0x1000, 16, std::nullopt, 7},                // width 16
        {AddressSpace::Pio, 0x1000, 0, std::nullopt, 7},                  // PIO any width
        {AddressSpace::Pio, 0xffff, 2, std::nullopt, 7},                  // past port 0xffff
        {AddressSpace::Pio, 0x10000, 1, std::nullopt, 7},                 // not a port
        {AddressSpace::Mmio, 0x1000, 0, uint64_t{1}, 7},                  // datamatch without width
        {AddressSpace::Mmio, 0x1000, 2, uint64_t{0x10000}, 7},            // datamatch wider than 2 bytes
        {AddressSpace::Mmio, ~uint64_t{0} - 1, 4, std::nullopt, 7},       // wraps
        {AddressSpace::Mmio, 0x1000, 4, std::nullopt, -1},                // no eventfd
    };
    for (const auto& spec : bad) EXPECT_THROW(kvm_ioeventfds_for(spec, true), UsageError) << spec.address;
}

TEST(IoEventRequests, EightByteDatamatchUsesAllBits) {
    IoEventSpec spec{AddressSpace::Mmio, 0x1000, 8, ~uint64_t{0}, 7};
    EXPECT_EQ(kvm_ioeventfds_for(spec, true)[0].datamatch, ~uint64_t{0});
}

TEST(KvmIoEventRegistry, AddThenRemoveDeassignsTheSameRequests) {
    FakeVm vm;
    KvmIoEventRegistry registry(vm, false);
    auto spec = mmio_spec(0xd0003000, 0);
    registry.add(spec);
    registry.remove(spec);
    ASSERT_EQ(vm.calls.size(), 4u);
    for (int i = 0; i < 2; ++i) {
        EXPECT_FALSE(vm.calls[i].flags & KVM_IOEVENTFD_FLAG_DEASSIGN);
        EXPECT_TRUE(vm.calls[i + 2].flags & KVM_IOEVENTFD_FLAG_DEASSIGN);
        EXPECT_EQ(vm.calls[i].len, vm.calls[i + 2].len);
        EXPECT_EQ(vm.calls[i].addr, vm.calls[i + 2].addr);
    }
}

TEST(KvmIoEventRegistry, FailedAddRollsBackWhatWasAssigned) {
    FakeVm vm;
    vm.fail_on_call = 2;  // the 4-byte registration fails
    KvmIoEventRegistry registry(vm, false);
    EXPECT_THROW(registry.add(mmio_spec(0xd0003000, 0)), Error);
    ASSERT_EQ(vm.calls.size(), 3u);
    EXPECT_EQ(vm.calls[2].len, 2u);
    EXPECT_TRUE(vm.calls[2].flags & KVM_IOEVENTFD_FLAG_DEASSIGN) << "the 2-byte registration is undone";
}

TEST(KvmIoEventRegistry, RemoveTriesEveryRequestAndReportsAFailure) {
    FakeVm vm;
    KvmIoEventRegistry registry(vm, false);
    vm.fail_on_call = 1;
    EXPECT_THROW(registry.remove(mmio_spec(0xd0003000, 0)), Error);
    EXPECT_EQ(vm.calls.size(), 2u) << "the second deassign is still attempted";
}

TEST(KvmIoEventRegistry, InvalidSpecNeverReachesKvm) {
    FakeVm vm;
    KvmIoEventRegistry registry(vm, true);
    EXPECT_THROW(registry.add({AddressSpace::Pio, 0x1000, 0, std::nullopt, 7}), UsageError);
    EXPECT_TRUE(vm.calls.empty());
}

}  // namespace
}  // namespace tapvm::kvm
