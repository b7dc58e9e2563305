// The real binary's contract for bad input: one line on stderr naming the
// problem, exit status 2, and no guest started.  Needs no KVM.
#include <gtest/gtest.h>

#include <fstream>

#include "guest_harness.h"

namespace tapvm::it {
namespace {

std::string temp_file(const std::string& name, const std::string& content) {
    std::string path = ::testing::TempDir() + "/" + name;
    std::ofstream(path, std::ios::binary) << content;
    return path;
}

void expect_usage_error(const std::vector<std::string>& args, const std::string& mentions) {
    auto run = run_tapvm({args});
    EXPECT_EQ(run.exit_status, 2) << run.errors;
    // Exactly one line, naming the problem.
    ASSERT_FALSE(run.errors.empty());
    EXPECT_EQ(std::count(run.errors.begin(), run.errors.end(), '\n'), 1) << run.errors;
    EXPECT_NE(run.errors.find(mentions), std::string::npos) << run.errors;
    EXPECT_TRUE(run.console.empty()) << run.console;
}

TEST(CliBinary, HelpAndVersionExitZero) {
    auto help = run_tapvm({{"--help"}});
    EXPECT_EQ(help.exit_status, 0);
    EXPECT_NE(help.console.find("--kernel"), std::string::npos);
    auto version = run_tapvm({{"--version"}});
    EXPECT_EQ(version.exit_status, 0);
    EXPECT_EQ(version.console.rfind("tapvm ", 0), 0u);
}

TEST(CliBinary, UsageErrors) {
    expect_usage_error({}, "--kernel");
    expect_usage_error({"--kernel", "/nonexistent/bzImage"}, "/nonexistent/bzImage");
    expect_usage_error({"--kernel", "/etc/hostname", "--cpus", "0"}, "--cpus");
    expect_usage_error({"--kernel", "/etc/hostname", "--memory", "huge"}, "--memory");
    expect_usage_error({"--kernel", "/etc/hostname", "--frobnicate"}, "--frobnicate");
}

TEST(CliBinary, KernelThatIsNotAKernel) {
    auto junk = temp_file("not-a-kernel", std::string(8192, 'x'));
    expect_usage_error({"--kernel", junk}, "kernel");
}

TEST(CliBinary, BadNetOptions) {
    std::string why;
    auto image = find_guest_image(why);
    ASSERT_TRUE(image) << why;
    expect_usage_error({"--kernel", image->lean_kernel, "--net", "tap=x,colour=blue"}, "colour");
    expect_usage_error({"--kernel", image->lean_kernel, "--net", "tap=x,mrg_rxbuf=perhaps"}, "mrg_rxbuf");
    expect_usage_error({"--kernel", image->lean_kernel, "--net", "tap=x,queue_size=100"}, "queue_size");
}

TEST(CliBinary, InitramfsThatDoesNotFit) {
    std::string why;
    auto image = find_guest_image(why);
    ASSERT_TRUE(image) << why;
    // 200 MiB of initramfs cannot fit in a 64 MiB guest.
    std::string big = ::testing::TempDir() + "/huge-initramfs";
    ASSERT_EQ(::truncate(big.c_str(), 0) == 0 || true, true);
    { std::ofstream(big, std::ios::binary).seekp((200 << 20) - 1) << '\0'; }
    expect_usage_error({"--kernel", image->lean_kernel, "--initramfs", big, "--memory", "64M"},
                       "initramfs");
    std::remove(big.c_str());
}

}  // namespace
}  // namespace tapvm::it
