// Boots the real guest under real KVM.  Boots are slow on the nested KVM
// these tests run on (guest kernel code is emulated), so each boot runs a
// whole list of guest-side checks (tapvm.run=selftest) and every check is
// reported as one TAPVM-RESULT line.
#include <gtest/gtest.h>

#include <chrono>

#include "guest_harness.h"

namespace tapvm::it {
namespace {

class Boot : public ::testing::Test {
protected:
    void SetUp() override {
        TAPVM_REQUIRE_KVM();
        std::string why;
        auto found = find_guest_image(why);
        ASSERT_TRUE(found) << why;
        image = *found;
    }
    GuestRun boot_selftest(unsigned cpus, const std::string& memory, unsigned mem_mib) {
        return run_tapvm({{"--kernel", image.lean_kernel, "--initramfs", image.lean_initramfs,
                           "--cpus", std::to_string(cpus), "--memory", memory, "--cmdline",
                           test_cmdline("tapvm.run=selftest tapvm.expect_cpus=" + std::to_string(cpus) +
                                        " tapvm.expect_mem_mib=" + std::to_string(mem_mib))}});
    }
    void expect_all_pass(const GuestRun& run) {
        EXPECT_TRUE(run.has_mark("init-start")) << "guest never reached /init";
        EXPECT_TRUE(run.has_mark("done")) << "guest runner did not finish";
        ASSERT_FALSE(run.results.empty()) << "guest reported no checks";
        for (const auto& [name, r] : run.results) EXPECT_TRUE(r.pass) << name << ":" << r.details;
        ASSERT_TRUE(run.results.count("cpus")) << "no cpu count check";
        ASSERT_TRUE(run.results.count("memory")) << "no memory check";
    }
    GuestImage image;
};

TEST_F(Boot, OneCpuPowersOffCleanly) {
    auto run = boot_selftest(1, "512M", 512);
    report(run, "lean kernel, 1 vCPU, 512M");
    EXPECT_EQ(run.exit_status, 0) << run.errors;
    expect_all_pass(run);
}

TEST_F(Boot, TwoCpusAndMemoryAbove4G) {
    auto run = boot_selftest(2, "5G", 5120);
    report(run, "lean kernel, 2 vCPUs, 5G");
    EXPECT_EQ(run.exit_status, 0) << run.errors;
    expect_all_pass(run);
}

TEST_F(Boot, FourCpus) {
    auto run = boot_selftest(4, "1G", 1024);
    report(run, "lean kernel, 4 vCPUs, 1G");
    EXPECT_EQ(run.exit_status, 0) << run.errors;
    expect_all_pass(run);
}

TEST_F(Boot, GuestPanicIsANonZeroExit) {
    auto run = run_tapvm({{"--kernel", image.lean_kernel, "--initramfs", image.lean_initramfs,
                           "--cmdline", test_cmdline("tapvm.run=panic")}});
    report(run, "lean kernel, panic");
    EXPECT_EQ(run.exit_status, 1) << "a guest crash is exit status 1";
    EXPECT_TRUE(run.has_mark("init-start"));
    // One error line names the reason (pvpanic).
    EXPECT_EQ(occurrences(run.errors, "tapvm: error:"), 1) << run.errors;
    EXPECT_NE(run.errors.find("panic"), std::string::npos) << run.errors;
}

TEST_F(Boot, RebootWithOnRebootExitIsAZeroExit) {
    auto run = run_tapvm({{"--kernel", image.lean_kernel, "--initramfs", image.lean_initramfs, "--on-reboot",
                           "exit", "--cmdline", test_cmdline("tapvm.run=none tapvm.halt=reboot")}});
    report(run, "lean kernel, reboot, --on-reboot exit");
    EXPECT_EQ(run.exit_status, 0) << run.errors;
    EXPECT_EQ(occurrences(run.console, "TAPVM-MARK init-start"), 1);
    EXPECT_NE(run.errors.find("guest reset the machine"), std::string::npos) << run.errors;
}

// The guest reboots each time it comes up: tapvm starts it again, and a
// SIGTERM during the third boot stops it in order (status 0).
TEST_F(Boot, RebootWithOnRebootRestartBootsAgainUntilStopped) {
    RunOptions opt;
    opt.args = {"--kernel", image.lean_kernel, "--initramfs", image.lean_initramfs, "--on-reboot", "restart",
                "--cmdline", test_cmdline("tapvm.run=none tapvm.halt=reboot")};
    opt.stop_at = "TAPVM-MARK init-start";
    opt.stop_at_count = 3;
    auto run = run_tapvm(opt);
    report(run, "lean kernel, reboot, --on-reboot restart");
    EXPECT_TRUE(run.stopped_at_marker) << "the guest did not come up three times";
    EXPECT_GE(occurrences(run.errors, "starting it again (--on-reboot restart)"), 2) << run.errors;
    EXPECT_EQ(run.exit_status, 0) << "SIGTERM is an orderly stop: " << run.errors;
    EXPECT_NE(run.errors.find("stopped by"), std::string::npos) << run.errors;
}

TEST_F(Boot, StockDebianKernelReachesInit) {
    // No unmodified kernel can run user programs on the nested KVM (its
    // syscall instruction is broken there), so the stock kernel is followed up
    // to the start of /init.
    const auto start = std::chrono::steady_clock::now();
    double to_init = -1;
    RunOptions opt{{"--kernel", image.stock_kernel, "--initramfs", image.stock_initramfs, "--cpus", "2", "--memory",
                    "1G", "--cmdline", test_cmdline("tapvm.run=selftest nosoftlockup")},
                   std::nullopt,
                   std::string("Run /init as init process")};
    opt.on_line = [&](const std::string& line) {
        if (to_init < 0 && line.find("Run /init as init process") != std::string::npos)
            to_init = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    };
    auto run = run_tapvm(opt);
    report(run, "stock Debian kernel to /init");
    std::cout << "[tapvm-it] stock Debian kernel: process start to `Run /init` " << to_init << " s\n";
    EXPECT_TRUE(run.stopped_at_marker || run.has_mark("init-start")) << "stock kernel never reached /init";
}

}  // namespace
}  // namespace tapvm::it
