// The real binary's contract for bad input: one line on stderr naming the
// problem, exit status 2, and no guest started.  Needs no KVM.
#include <gtest/gtest.h>

#include <fstream>
#include <optional>
#include <utility>

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

// --- tapvm-vhost-user-net ------------------------------------------------------

GuestRun run_backend(const std::vector<std::string>& args, std::optional<std::string> netns = std::nullopt) {
    RunOptions opt;
    opt.program = TAPVM_VHOST_USER_BINARY;
    opt.args = args;
    opt.netns = std::move(netns);
    return run_tapvm(opt);
}

TEST(VhostUserNetBinary, UsageErrorsAreOneLineAndStatusTwo) {
    for (auto [args, mentions] : std::vector<std::pair<std::vector<std::string>, std::string>>{
             {{"--net", "tap=t"}, "--socket"},
             {{"--socket", "/tmp/x.sock"}, "--net"},
             {{"--socket", "/tmp/x.sock", "--net", "tap=t,foo=1"}, "unknown key 'foo'"},
             {{"--socket", "/tmp/x.sock", "--net", "tap=t", "--log-level", "loud"}, "--log-level"}}) {
        auto run = run_backend(args);
        EXPECT_EQ(run.exit_status, 2) << run.errors;
        EXPECT_EQ(std::count(run.errors.begin(), run.errors.end(), '\n'), 1) << run.errors;
        EXPECT_NE(run.errors.find(mentions), std::string::npos) << run.errors;
    }
    auto help = run_backend({"--help"});
    EXPECT_EQ(help.exit_status, 0);
    EXPECT_NE(help.console.find("--socket"), std::string::npos);
}

// SIGUSR1 reports the counters and keeps serving; SIGTERM ends it cleanly,
// with the counters and its CPU time, and removes the socket.
TEST(VhostUserNetBinary, SignalsReportAndStop) {
    TAPVM_REQUIRE_TUN();
    TestNetns ns("vubin");
    const std::string sock = "/tmp/" + ns.name() + ".sock";
    const std::string script = std::string(TAPVM_VHOST_USER_BINARY) + " --socket " + sock +
                               " --net tap=tap0 & p=$!; "
                               "for i in $(seq 100); do [ -S " + sock + " ] && break; sleep 0.05; done; "
                               "kill -USR1 $p; sleep 0.5; kill -0 $p || exit 9; kill -TERM $p; wait $p";
    RunOptions opt;
    opt.program = "sh";
    opt.args = {"-c", script};
    opt.netns = ns.name();
    auto run = run_tapvm(opt);
    EXPECT_EQ(run.exit_status, 0) << run.errors;
    size_t reports = 0;
    for (size_t at = 0; (at = run.errors.find("counters: {", at)) != std::string::npos; ++at) ++reports;
    EXPECT_EQ(reports, 2u) << run.errors;  // one for SIGUSR1, one at exit
    EXPECT_NE(run.errors.find(" s user, "), std::string::npos) << run.errors;
    EXPECT_NE(::access(sock.c_str(), F_OK), 0) << "socket file left behind";
}

}  // namespace
}  // namespace tapvm::it
