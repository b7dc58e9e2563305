// TerminalMode on a pseudo-terminal: raw mode is set, and the original
// settings come back on every exit path — destructor, exit(), uncaught
// exception, fatal signal.  The abnormal paths run in a forked child; the
// parent then inspects the pty, whose settings outlive the child.
#include "vmm/console/terminal_mode.h"

#include <fcntl.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <csignal>
#include <cstdlib>
#include <functional>
#include <stdexcept>
#include <thread>

#include "vmm/error.h"
#include "vmm/unique_fd.h"

namespace tapvm::console {
namespace {

// A pty pair opened without any extra library (posix_openpt & co).
struct Pty {
    UniqueFd master;
    UniqueFd slave;
};

Pty open_pty() {
    Pty pty;
    pty.master.reset(::posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC));
    if (!pty.master) throw_errno("posix_openpt");
    if (::grantpt(pty.master.get()) != 0 || ::unlockpt(pty.master.get()) != 0) throw_errno("grantpt/unlockpt");
    const char* name = ::ptsname(pty.master.get());
    if (!name) throw_errno("ptsname");
    pty.slave.reset(::open(name, O_RDWR | O_NOCTTY | O_CLOEXEC));
    if (!pty.slave) throw_errno("open pty slave");
    return pty;
}

struct termios attrs(int fd) {
    struct termios t {};
    EXPECT_EQ(::tcgetattr(fd, &t), 0);
    return t;
}

bool same_settings(const struct termios& a, const struct termios& b) {
    return a.c_iflag == b.c_iflag && a.c_oflag == b.c_oflag && a.c_cflag == b.c_cflag &&
           a.c_lflag == b.c_lflag && a.c_cc[VMIN] == b.c_cc[VMIN] && a.c_cc[VTIME] == b.c_cc[VTIME] &&
           a.c_cc[VINTR] == b.c_cc[VINTR];
}

// Runs body in a child process and returns its wait status.
int in_child(const std::function<void()>& body) {
    pid_t pid = ::fork();
    if (pid == 0) {
        body();
        ::_exit(0);
    }
    int status = 0;
    EXPECT_EQ(::waitpid(pid, &status, 0), pid);
    return status;
}

class TerminalModeTest : public ::testing::Test {
protected:
    void SetUp() override {
        pty_ = open_pty();
        original_ = attrs(pty_.slave.get());
        // A fresh pty is in cooked mode; the tests rely on that.
        ASSERT_TRUE(original_.c_lflag & ICANON);
        ASSERT_TRUE(original_.c_lflag & ECHO);
    }
    int slave() const { return pty_.slave.get(); }
    void expect_restored() {
        EXPECT_TRUE(same_settings(attrs(slave()), original_)) << "settings not restored";
    }

    Pty pty_;
    struct termios original_ {};
};

TEST_F(TerminalModeTest, RawWhileActiveAndRestoredAfter) {
    {
        TerminalMode mode(slave());
        ASSERT_TRUE(mode.active());
        struct termios raw = attrs(slave());
        EXPECT_FALSE(raw.c_lflag & (ICANON | ECHO | ISIG | IEXTEN)) << "no line editing, echo or signals";
        EXPECT_FALSE(raw.c_iflag & (ICRNL | IXON | ISTRIP | BRKINT)) << "input untouched";
        EXPECT_EQ(raw.c_cflag & CSIZE, static_cast<tcflag_t>(CS8));
        EXPECT_EQ(raw.c_cc[VMIN], 1);
        EXPECT_EQ(raw.c_cc[VTIME], 0);
        // Output processing kept as it was (see terminal_mode.h).
        EXPECT_EQ(raw.c_oflag, original_.c_oflag);
    }
    expect_restored();
}

TEST_F(TerminalModeTest, RawModeReallyPassesControlCharactersThrough) {
    TerminalMode mode(slave());
    // Ctrl-C and a CR typed on the "keyboard" (master) arrive as bytes.
    const char typed[] = {0x03, '\r', 0x1a};
    ASSERT_EQ(::write(pty_.master.get(), typed, sizeof typed), static_cast<ssize_t>(sizeof typed));
    char got[8] = {};
    ssize_t n = ::read(slave(), got, sizeof got);
    ASSERT_EQ(n, 3);
    EXPECT_EQ(got[0], 0x03);
    EXPECT_EQ(got[1], '\r') << "no ICRNL";
    EXPECT_EQ(got[2], 0x1a);
}

TEST_F(TerminalModeTest, EarlyRestoreIsIdempotent) {
    TerminalMode mode(slave());
    mode.restore();
    EXPECT_FALSE(mode.active());
    expect_restored();
    mode.restore();
    expect_restored();
}

TEST_F(TerminalModeTest, NotATerminalIsLeftAlone) {
    int fds[2];
    ASSERT_EQ(::pipe(fds), 0);
    UniqueFd r(fds[0]), w(fds[1]);
    TerminalMode mode(r.get());
    EXPECT_FALSE(mode.active());
}

TEST_F(TerminalModeTest, OnlyOneAtATime) {
    TerminalMode first(slave());
    EXPECT_THROW(TerminalMode second(slave()), Error);
    EXPECT_TRUE(first.active());
}

TEST_F(TerminalModeTest, CanBeEnteredAgainAfterRestore) {
    { TerminalMode first(slave()); }
    TerminalMode second(slave());
    EXPECT_TRUE(second.active());
    EXPECT_FALSE(attrs(slave()).c_lflag & ICANON);
}

TEST_F(TerminalModeTest, SignalHandlersAreRemovedWhenDone) {
    struct sigaction before {};
    ASSERT_EQ(::sigaction(SIGTERM, nullptr, &before), 0);
    ASSERT_EQ(before.sa_handler, SIG_DFL);
    {
        TerminalMode mode(slave());
        struct sigaction during {};
        ::sigaction(SIGTERM, nullptr, &during);
        EXPECT_NE(during.sa_handler, SIG_DFL);
    }
    struct sigaction after {};
    ::sigaction(SIGTERM, nullptr, &after);
    EXPECT_EQ(after.sa_handler, SIG_DFL);
}

// --- Abnormal exits, in a child ------------------------------------------------------

TEST_F(TerminalModeTest, RestoredWhenKilledBySigterm) {
    int status = in_child([&] {
        TerminalMode mode(slave());
        ::kill(::getpid(), SIGTERM);
        ::_exit(42);  // not reached: SIGTERM's default action ends the process
    });
    ASSERT_TRUE(WIFSIGNALED(status)) << "the signal still kills";
    EXPECT_EQ(WTERMSIG(status), SIGTERM);
    expect_restored();
}

TEST_F(TerminalModeTest, RestoredWhenCrashing) {
    struct sigaction segv {};
    ASSERT_EQ(::sigaction(SIGSEGV, nullptr, &segv), 0);
    if ((segv.sa_flags & SA_SIGINFO) || segv.sa_handler != SIG_DFL)
        GTEST_SKIP() << "SIGSEGV already has a handler (AddressSanitizer's?); TerminalMode leaves "
                        "such signals to their owner by design";
    int status = in_child([&] {
        // No core file from this deliberate crash.
        struct rlimit none {0, 0};
        ::setrlimit(RLIMIT_CORE, &none);
        TerminalMode mode(slave());
        ::raise(SIGSEGV);
        ::_exit(42);
    });
    ASSERT_TRUE(WIFSIGNALED(status));
    EXPECT_EQ(WTERMSIG(status), SIGSEGV);
    expect_restored();
}

TEST_F(TerminalModeTest, RestoredOnExitFromAnywhere) {
    int status = in_child([&] {
        auto* mode = new TerminalMode(slave());  // never destroyed
        (void)mode;
        std::exit(3);
    });
    ASSERT_TRUE(WIFEXITED(status));
    EXPECT_EQ(WEXITSTATUS(status), 3);
    expect_restored();
}

TEST_F(TerminalModeTest, RestoredOnUncaughtException) {
    int status = in_child([&] {
        struct rlimit none {0, 0};
        ::setrlimit(RLIMIT_CORE, &none);
        auto* mode = new TerminalMode(slave());
        (void)mode;
        int null = ::open("/dev/null", O_WRONLY);  // keep the expected "terminate called" quiet
        ::dup2(null, STDERR_FILENO);
        std::thread([] { throw std::runtime_error("nobody catches this"); }).join();
        ::_exit(42);
    });
    ASSERT_TRUE(WIFSIGNALED(status));
    EXPECT_EQ(WTERMSIG(status), SIGABRT);
    expect_restored();
}

TEST_F(TerminalModeTest, IgnoredSignalsStayIgnored) {
    int status = in_child([&] {
        ::signal(SIGHUP, SIG_IGN);  // as under nohup
        {
            TerminalMode mode(slave());
            ::raise(SIGHUP);
            if (attrs(slave()).c_lflag & ICANON) ::_exit(10);  // must still be raw
        }
        ::_exit(0);
    });
    ASSERT_TRUE(WIFEXITED(status));
    EXPECT_EQ(WEXITSTATUS(status), 0);
    expect_restored();
}

}  // namespace
}  // namespace tapvm::console
