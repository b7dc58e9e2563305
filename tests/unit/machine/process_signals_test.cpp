// SIGINT/SIGTERM/SIGHUP become an orderly stop request, delivered once, also
// when the signal came before anyone was there to stop; SIGUSR1 a report.
#include <gtest/gtest.h>

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <thread>

#include "vmm/machine/process_signals.h"

namespace tapvm {
namespace {

bool eventually(const std::function<bool()>& condition) {
    for (int i = 0; i < 500; ++i) {
        if (condition()) return true;
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return condition();
}

// One ProcessSignals per process (it owns the signal mask), so one test does it all.
TEST(ProcessSignals, SignalsBecomeOneStopRequest) {
    ProcessSignals signals;
    std::atomic<int> calls{0}, last{0};
    signals.on_stop([&](int sig) {
        ++calls;
        last = sig;
    });
    EXPECT_EQ(signals.received(), 0);

    // SIGUSR1 asks for a report, every time, and is no stop.
    std::atomic<int> reports{0};
    signals.on_report([&] { ++reports; });
    ASSERT_EQ(::kill(::getpid(), SIGUSR1), 0);
    ASSERT_TRUE(eventually([&] { return reports.load() == 1; }));
    ASSERT_EQ(::kill(::getpid(), SIGUSR1), 0);
    ASSERT_TRUE(eventually([&] { return reports.load() == 2; }));
    EXPECT_EQ(calls.load(), 0);
    EXPECT_EQ(signals.received(), 0);
    signals.on_report({});
    ASSERT_EQ(::kill(::getpid(), SIGUSR1), 0);  // nobody to report: dropped, the process lives
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    EXPECT_EQ(reports.load(), 2);

    // kill() to the process: any thread may take it, and only the
    // ProcessSignals thread does, since every other one blocks it.
    ASSERT_EQ(::kill(::getpid(), SIGTERM), 0);
    ASSERT_TRUE(eventually([&] { return calls.load() == 1; }));
    EXPECT_EQ(last.load(), SIGTERM);
    EXPECT_EQ(signals.received(), SIGTERM);

    // A second signal does not stop twice (the process is still alive to see it).
    ASSERT_EQ(::kill(::getpid(), SIGINT), 0);
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    EXPECT_EQ(calls.load(), 1);
    EXPECT_EQ(signals.received(), SIGTERM) << "the first signal is the reason";

    // A machine that starts after the signal hears of it at once: a
    // restarting machine must not run on after SIGTERM.
    std::atomic<int> late{0};
    signals.on_stop([&](int sig) { late = sig; });
    EXPECT_EQ(late.load(), 0) << "already delivered to the first handler";
    signals.on_stop({});
}

TEST(ProcessSignals, ASignalBeforeAnyHandlerIsDeliveredLater) {
    // A fresh process: its own mask and its own ProcessSignals.
    pid_t pid = ::fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
        ProcessSignals signals;
        ::kill(::getpid(), SIGHUP);
        if (!eventually([&] { return signals.received() == SIGHUP; })) ::_exit(10);
        std::atomic<int> got{0};
        signals.on_stop([&](int sig) { got = sig; });
        ::_exit(got.load() == SIGHUP ? 0 : 11);
    }
    int status = 0;
    ASSERT_EQ(::waitpid(pid, &status, 0), pid);
    ASSERT_TRUE(WIFEXITED(status)) << "killed by signal " << WTERMSIG(status) << ": the signal was not blocked";
    EXPECT_EQ(WEXITSTATUS(status), 0);
}

}  // namespace
}  // namespace tapvm
