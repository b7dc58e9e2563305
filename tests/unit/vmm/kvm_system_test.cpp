// KvmSystem's checks that run without /dev/kvm: the error messages users
// see and the capability policy.  Opening a real /dev/kvm is covered by
// kvm_smoke_test.
#include <gtest/gtest.h>
#include "vmm/uapi/kvm.h"

#include <cerrno>
#include <set>

#include "vmm/error.h"
#include "vmm/kvm/kvm_system.h"

namespace tapvm::kvm {
namespace {

TEST(KvmSystem, MissingDeviceNamesTheCauseAndTheRemedy) {
    try {
        KvmSystem kvm("/nonexistent/kvm");
        FAIL() << "opening a missing device must throw";
    } catch (const Error& e) {
        std::string msg = e.what();
        EXPECT_NE(msg.find("/nonexistent/kvm: No such file or directory"), std::string::npos) << msg;
        EXPECT_NE(msg.find("is KVM enabled?"), std::string::npos) << msg;
    }
}

TEST(KvmSystem, OpenErrorsExplainTheUsualCauses) {
    EXPECT_NE(describe_open_error("/dev/kvm", EACCES).find("group"), std::string::npos);
    EXPECT_NE(describe_open_error("/dev/kvm", ENXIO).find("virtualization"), std::string::npos);
    EXPECT_EQ(describe_open_error("/dev/kvm", EIO), "/dev/kvm: Input/output error");
}

TEST(KvmSystem, NotAKvmDeviceIsRefused) {
    // /dev/null opens but answers no KVM ioctl: the API version check fails.
    EXPECT_THROW(KvmSystem("/dev/null"), Error);
}

TEST(KvmCapabilities, AllPresentMeansNoneMissing) {
    EXPECT_TRUE(missing_capabilities([](int) { return 1; }).empty());
}

TEST(KvmCapabilities, EachMissingOneIsNamed) {
    auto missing = missing_capabilities([](int cap) { return cap == KVM_CAP_IRQFD || cap == KVM_CAP_PIT2 ? 0 : 1; });
    EXPECT_EQ(std::set<std::string_view>(missing.begin(), missing.end()),
              (std::set<std::string_view>{"KVM_CAP_IRQFD", "KVM_CAP_PIT2"}));
}

TEST(KvmCapabilities, TheRequiredSetCoversWhatTapvmUses) {
    std::set<int> caps;
    for (const auto& c : required_capabilities()) caps.insert(c.cap);
    for (int cap : {KVM_CAP_IRQCHIP, KVM_CAP_IRQFD, KVM_CAP_IOEVENTFD, KVM_CAP_IRQ_ROUTING, KVM_CAP_USER_MEMORY,
                    KVM_CAP_SET_TSS_ADDR, KVM_CAP_PIT2, KVM_CAP_IMMEDIATE_EXIT, KVM_CAP_VCPU_EVENTS})
        EXPECT_TRUE(caps.count(cap)) << "capability " << cap;
}

}  // namespace
}  // namespace tapvm::kvm
