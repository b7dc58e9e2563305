// vCPU threads with fake runners that block the way KVM_RUN does: the kick
// signal interrupts them, immediate_exit keeps them from blocking again,
// and the first terminal event wins.
#include <gtest/gtest.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <future>
#include <latch>
#include <memory>

#include "vmm/error.h"
#include "vmm/kvm/vcpu_thread.h"

namespace tapvm::kvm {
namespace {

using namespace std::chrono_literals;

// A pipe nobody writes to: something to block on.
struct Pipe {
    Pipe() { EXPECT_EQ(::pipe(fds), 0); }
    ~Pipe() {
        ::close(fds[0]);
        ::close(fds[1]);
    }
    int fds[2];
};

// Models KVM_RUN: returns at once while immediate_exit is set, otherwise
// blocks until a signal arrives.  The kick signal is blocked while checking
// the flag and unblocked atomically by ppoll, exactly as a signal pending at
// KVM_RUN entry makes KVM return EINTR.
class BlockingRunner : public VcpuRunner {
public:
    ExitAction run_once() override {
        sigset_t kick, old;
        sigemptyset(&kick);
        sigaddset(&kick, vcpu_kick_signal());
        pthread_sigmask(SIG_BLOCK, &kick, &old);
        if (immediate_exit.load()) {
            pthread_sigmask(SIG_SETMASK, &old, nullptr);
            return Continue{};
        }
        if (!entered.exchange(true)) entered_latch.count_down();
        pollfd pfd{pipe.fds[0], POLLIN, 0};
        sigset_t wait_mask = old;
        sigdelset(&wait_mask, vcpu_kick_signal());
        int r = ::ppoll(&pfd, 1, nullptr, &wait_mask);
        if (r < 0 && errno == EINTR) ++interruptions;
        pthread_sigmask(SIG_SETMASK, &old, nullptr);
        return Continue{};
    }
    void request_immediate_exit() override { immediate_exit = true; }

    Pipe pipe;
    std::atomic<bool> immediate_exit{false};
    std::atomic<bool> entered{false};
    std::latch entered_latch{1};
    std::atomic<int> interruptions{0};
};

// Returns a scripted action after `continues` Continues.
class ScriptedRunner : public VcpuRunner {
public:
    ScriptedRunner(int continues, ExitAction action) : continues_(continues), action_(std::move(action)) {}
    ExitAction run_once() override {
        if (continues_-- > 0) return Continue{};
        return action_;
    }
    void request_immediate_exit() override {}

private:
    int continues_;
    ExitAction action_;
};

class ThrowingRunner : public VcpuRunner {
public:
    ExitAction run_once() override { throw Error("KVM_RUN on vCPU 1: Bad address"); }
    void request_immediate_exit() override {}
};

struct Reports {
    std::mutex mutex;
    std::vector<TerminalEvent> events;
    VcpuThreads::OnTerminal callback() {
        return [this](const TerminalEvent& e) {
            std::lock_guard g(mutex);
            events.push_back(e);
        };
    }
    size_t count() {
        std::lock_guard g(mutex);
        return events.size();
    }
};

// Waits for `f` with a deadline.  A stop that does not work leaves threads
// that can never be joined (or destroyed), so a timeout aborts the test
// binary loudly instead of hanging it.
template <class F>
bool finishes_within(F&& f, std::chrono::seconds limit, const char* what) {
    auto done = std::async(std::launch::async, std::forward<F>(f));
    if (done.wait_for(limit) == std::future_status::ready) return true;
    std::fprintf(stderr, "FATAL: %s did not finish within %llds\n", what, static_cast<long long>(limit.count()));
    std::abort();
}

bool joins_within(VcpuThreads& threads, std::chrono::seconds limit) {
    return finishes_within([&] { threads.join(); }, limit, "VcpuThreads::join");
}

TEST(KickSignal, HandlerIsInstalledWithoutSaRestart) {
    install_vcpu_kick_handler();
    struct sigaction current{};
    ASSERT_EQ(::sigaction(vcpu_kick_signal(), nullptr, &current), 0);
    EXPECT_NE(current.sa_handler, SIG_DFL);
    EXPECT_NE(current.sa_handler, SIG_IGN);
    EXPECT_FALSE(current.sa_flags & SA_RESTART);
    EXPECT_GE(vcpu_kick_signal(), SIGRTMIN);
    EXPECT_LE(vcpu_kick_signal(), SIGRTMAX);
}

TEST(KickSignal, InterruptsABlockingSystemCall) {
    install_vcpu_kick_handler();
    Pipe pipe;
    std::promise<int> result;
    std::atomic<bool> started{false};
    std::thread reader([&] {
        started = true;
        char c;
        ssize_t r = ::read(pipe.fds[0], &c, 1);  // restarted forever under SA_RESTART
        result.set_value(r < 0 ? errno : 0);
    });
    while (!started) std::this_thread::yield();
    auto future = result.get_future();
    for (int i = 0; i < 200 && future.wait_for(10ms) != std::future_status::ready; ++i)
        pthread_kill(reader.native_handle(), vcpu_kick_signal());
    bool interrupted = future.wait_for(1s) == std::future_status::ready;
    if (!interrupted) ASSERT_EQ(::write(pipe.fds[1], "x", 1), 1);  // unblock it to end the test
    reader.join();
    ASSERT_TRUE(interrupted);
    EXPECT_EQ(future.get(), EINTR);
}

TEST(VcpuThreads, StopInterruptsBlockedVcpusAndReportsOnce) {
    BlockingRunner a, b, c;
    Reports reports;
    VcpuThreads threads({&a, &b, &c}, reports.callback());
    threads.start();
    for (auto* r : {&a, &b, &c}) r->entered_latch.wait();

    threads.stop(GuestPowerOff{});
    ASSERT_TRUE(joins_within(threads, 10s)) << "a vCPU thread did not stop";
    EXPECT_EQ(reports.count(), 1u);
    ASSERT_TRUE(threads.terminal_event());
    EXPECT_EQ(threads.terminal_event()->action, ExitAction{GuestPowerOff{}});
    EXPECT_FALSE(threads.terminal_event()->vcpu);
    for (auto* r : {&a, &b, &c}) EXPECT_TRUE(r->immediate_exit.load());
}

TEST(VcpuThreads, AVcpusTerminalExitStopsTheOthers) {
    BlockingRunner blocked;
    ScriptedRunner crashing(5, GuestCrash{"triple fault"});
    Reports reports;
    VcpuThreads threads({&blocked, &crashing}, reports.callback());
    threads.start();
    ASSERT_TRUE(joins_within(threads, 10s));
    ASSERT_EQ(reports.count(), 1u);
    EXPECT_EQ(reports.events[0].action, ExitAction{GuestCrash{"triple fault"}});
    EXPECT_EQ(reports.events[0].vcpu, std::optional<uint32_t>(1));
}

TEST(VcpuThreads, OnlyTheFirstOfSimultaneousTerminalEventsIsReported) {
    for (int round = 0; round < 20; ++round) {
        ScriptedRunner r0(0, GuestPowerOff{}), r1(0, GuestReboot{}), r2(0, Fatal{"x"}), r3(0, GuestCrash{"y"});
        Reports reports;
        VcpuThreads threads({&r0, &r1, &r2, &r3}, reports.callback());
        threads.start();
        ASSERT_TRUE(joins_within(threads, 10s));
        ASSERT_EQ(reports.count(), 1u) << "round " << round;
        EXPECT_EQ(threads.terminal_event()->action, reports.events[0].action);
        threads.stop(GuestPowerOff{});
        EXPECT_EQ(reports.count(), 1u) << "a later stop() is not reported";
    }
}

TEST(VcpuThreads, ARunnerFailureIsFatalAndNamesTheVcpu) {
    BlockingRunner ok;
    ThrowingRunner broken;
    Reports reports;
    VcpuThreads threads({&ok, &broken}, reports.callback());
    threads.start();
    ASSERT_TRUE(joins_within(threads, 10s));
    ASSERT_EQ(reports.count(), 1u);
    auto* fatal = std::get_if<Fatal>(&reports.events[0].action);
    ASSERT_NE(fatal, nullptr);
    EXPECT_NE(fatal->message.find("vCPU 1"), std::string::npos) << fatal->message;
    EXPECT_NE(fatal->message.find("Bad address"), std::string::npos) << fatal->message;
}

TEST(VcpuThreads, TheCallbackMayCallStop) {
    ScriptedRunner r(0, GuestReboot{});
    VcpuThreads* self = nullptr;
    int calls = 0;
    VcpuThreads threads({&r}, [&](const TerminalEvent&) {
        ++calls;
        self->stop(GuestPowerOff{});  // e.g. the machine tearing down on reboot
    });
    self = &threads;
    threads.start();
    ASSERT_TRUE(joins_within(threads, 10s));
    EXPECT_EQ(calls, 1);
    EXPECT_EQ(threads.terminal_event()->action, ExitAction{GuestReboot{}});
}

TEST(VcpuThreads, StopFromAVcpuThreadItself) {
    // A device on a vCPU thread (ACPI power-off register) calls stop().
    class PowerButton : public VcpuRunner {
    public:
        VcpuThreads* threads = nullptr;
        ExitAction run_once() override {
            threads->stop(GuestPowerOff{});
            return Continue{};
        }
        void request_immediate_exit() override {}
    } button;
    BlockingRunner other;
    Reports reports;
    VcpuThreads threads({&button, &other}, reports.callback());
    button.threads = &threads;
    threads.start();
    ASSERT_TRUE(joins_within(threads, 10s));
    ASSERT_EQ(reports.count(), 1u);
    EXPECT_EQ(reports.events[0].action, ExitAction{GuestPowerOff{}});
    EXPECT_FALSE(reports.events[0].vcpu);
}

TEST(VcpuThreads, DestructorStopsRunningThreadsWithoutReporting) {
    BlockingRunner a, b;
    Reports reports;
    finishes_within(
        [&] {
            VcpuThreads threads({&a, &b}, reports.callback());
            threads.start();
            a.entered_latch.wait();
            b.entered_latch.wait();
        },
        10s, "~VcpuThreads");
    EXPECT_EQ(reports.count(), 0u);
    EXPECT_GE(a.interruptions.load() + b.interruptions.load(), 1);
}

TEST(VcpuThreads, StopWithContinueStopsWithoutReporting) {
    BlockingRunner a;
    Reports reports;
    VcpuThreads threads({&a}, reports.callback());
    threads.start();
    a.entered_latch.wait();
    threads.stop(Continue{});
    ASSERT_TRUE(joins_within(threads, 10s));
    EXPECT_EQ(reports.count(), 0u);
    EXPECT_FALSE(threads.terminal_event());
    threads.stop(GuestPowerOff{});  // a real reason afterwards is still the first one
    EXPECT_EQ(reports.count(), 1u);
}

TEST(VcpuThreads, StartTwiceIsRefused) {
    ScriptedRunner r(0, GuestPowerOff{});
    VcpuThreads threads({&r}, nullptr);
    threads.start();
    EXPECT_THROW(threads.start(), Error);
    threads.join();
}

TEST(VcpuThreads, KickReachesThreadsStartedWithTheSignalBlocked) {
    sigset_t kick, old;
    sigemptyset(&kick);
    sigaddset(&kick, vcpu_kick_signal());
    pthread_sigmask(SIG_BLOCK, &kick, &old);  // inherited by the vCPU threads
    BlockingRunner r;
    Reports reports;
    VcpuThreads threads({&r}, reports.callback());
    threads.start();
    pthread_sigmask(SIG_SETMASK, &old, nullptr);
    r.entered_latch.wait();
    threads.stop(GuestPowerOff{});
    EXPECT_TRUE(joins_within(threads, 10s));
    EXPECT_EQ(r.interruptions.load(), 1);
}

// A blocked (halted) vCPU answers a state report at once and goes on
// running: the report neither stops the machine nor sets immediate_exit.
TEST(VcpuThreads, AStateReportReachesEveryVcpuAndStopsNothing) {
    class ReportingRunner : public BlockingRunner {
    public:
        std::string state_line() override {
            ++reports;
            return "RIP 0x1234";
        }
        std::atomic<int> reports{0};
    } a, b;
    Reports terminal;
    VcpuThreads threads({&a, &b}, terminal.callback());
    threads.start();
    a.entered_latch.wait();
    b.entered_latch.wait();

    threads.request_state_report();
    auto both_reported = [&] { return a.reports.load() == 1 && b.reports.load() == 1; };
    for (int i = 0; i < 500 && !both_reported(); ++i) std::this_thread::sleep_for(10ms);
    EXPECT_TRUE(both_reported()) << "a: " << a.reports.load() << ", b: " << b.reports.load();
    EXPECT_FALSE(a.immediate_exit.load()) << "a report must not make the vCPU spin";
    EXPECT_FALSE(b.immediate_exit.load());
    EXPECT_EQ(terminal.count(), 0u);
    EXPECT_FALSE(threads.terminal_event());

    // Once per request: later returns from the guest report nothing.
    for (int i = 0; i < 5; ++i) pthread_kill(pthread_self(), vcpu_kick_signal());
    std::this_thread::sleep_for(50ms);
    EXPECT_EQ(a.reports.load(), 1);

    threads.stop(GuestPowerOff{});
    ASSERT_TRUE(joins_within(threads, 10s));
    threads.request_state_report();  // after join: dropped, not a signal to a dead thread
}

}  // namespace
}  // namespace tapvm::kvm
