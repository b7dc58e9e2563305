#include "vmm/machine/cli.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>

#include "vmm/error.h"

namespace tapvm {
namespace {

class CliTest : public ::testing::Test {
protected:
    void SetUp() override {
        kernel_ = ::testing::TempDir() + "/cli_test_kernel";
        std::ofstream(kernel_) << "not really a kernel";
    }
    void TearDown() override { std::remove(kernel_.c_str()); }

    MachineConfig parse(std::vector<std::string> extra) {
        std::vector<std::string> args{"--kernel", kernel_};
        args.insert(args.end(), extra.begin(), extra.end());
        auto result = parse_command_line(args);
        return std::get<MachineConfig>(result);
    }
    std::string error_of(std::vector<std::string> args) {
        try {
            parse_command_line(args);
        } catch (const UsageError& e) {
            return e.what();
        }
        return "";
    }
    std::string kernel_;
};

TEST_F(CliTest, ParsesTheIssueExample) {
    auto c = parse({"--initramfs", kernel_, "--cmdline", "console=ttyS0 quiet", "--cpus", "2",
                    "--memory", "1G"});
    EXPECT_EQ(c.cpus, 2u);
    EXPECT_EQ(c.memory_bytes, 1ull << 30);
    EXPECT_EQ(c.cmdline, "console=ttyS0 quiet");
    ASSERT_TRUE(c.initramfs_path);
    EXPECT_EQ(c.quirks, PlatformQuirks::kAuto);
    EXPECT_EQ(c.on_reboot, RebootAction::kExit);
}

TEST_F(CliTest, RepeatedNetOptionsAreKeptInOrder) {
    auto c = parse({"--net", "tap=a", "--net", "fd=3,mrg_rxbuf=off"});
    ASSERT_EQ(c.net_specs.size(), 2u);
    EXPECT_EQ(c.net_specs[0], "tap=a");
    EXPECT_EQ(c.net_specs[1], "fd=3,mrg_rxbuf=off");
}

TEST_F(CliTest, MemorySizes) {
    EXPECT_EQ(parse_memory_size("512M"), 512ull << 20);
    EXPECT_EQ(parse_memory_size("512"), 512ull << 20);
    EXPECT_EQ(parse_memory_size("8G"), 8ull << 30);
    EXPECT_EQ(parse_memory_size("6g"), 6ull << 30);
    EXPECT_EQ(parse_memory_size("4GiB"), 4ull << 30);
    EXPECT_EQ(parse_memory_size("1T"), 1ull << 40);
    EXPECT_EQ(parse_memory_size("262144K"), 256ull << 20);
    for (const char* bad : {"", "G", "0", "-1", "12Q", "32M", "1025K", "2T", "99999999999999999999",
                            "1.5G", "18446744073709551615G"}) {
        EXPECT_THROW(parse_memory_size(bad), UsageError) << bad;
    }
}

TEST_F(CliTest, EveryErrorIsOneLineNamingTheProblem) {
    struct Case {
        std::vector<std::string> args;
        std::string mentions;
    };
    std::vector<Case> cases = {
        {{}, "--kernel"},
        {{"--kernel", "/nonexistent/vmlinuz"}, "/nonexistent/vmlinuz"},
        {{"--kernel", kernel_, "--initramfs", "/nonexistent/initrd"}, "/nonexistent/initrd"},
        {{"--kernel", kernel_, "--cpus", "0"}, "--cpus"},
        {{"--kernel", kernel_, "--cpus", "65"}, "--cpus"},
        {{"--kernel", kernel_, "--cpus", "two"}, "cpus"},
        {{"--kernel", kernel_, "--memory", "lots"}, "--memory"},
        {{"--kernel", kernel_, "--bogus"}, "--bogus"},
        {{"--kernel", kernel_, "--platform-quirks", "maybe"}, "maybe"},
        {{"--kernel", kernel_, "--log-level", "loud"}, "loud"},
    };
    for (const auto& c : cases) {
        std::string err = error_of(c.args);
        EXPECT_NE(err, "") << "accepted: " << ::testing::PrintToString(c.args);
        EXPECT_NE(err.find(c.mentions), std::string::npos) << err;
        EXPECT_EQ(err.find('\n'), std::string::npos) << err;
    }
}

TEST_F(CliTest, HelpDocumentsEveryOption) {
    auto info = std::get<CliInfo>(parse_command_line({"--help"}));
    for (const char* opt : {"--kernel", "--initramfs", "--cmdline", "--cpus", "--memory", "--net",
                            "--platform-quirks", "--on-reboot", "--log-level", "--version",
                            "--no-console-escape"}) {
        EXPECT_NE(info.text.find(opt), std::string::npos) << opt;
    }
    auto version = std::get<CliInfo>(parse_command_line({"--version"}));
    EXPECT_EQ(version.text.rfind("tapvm ", 0), 0u);
}

}  // namespace
}  // namespace tapvm
