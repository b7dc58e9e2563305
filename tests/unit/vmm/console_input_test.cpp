// The console input thread, fed through pipes (and a pty for the default
// options): forwarding, escapes, back-pressure without spinning, end of
// input, prompt stop.
#include "vmm/console/console_input.h"

#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <string>
#include <thread>

#include "vmm/unique_fd.h"

namespace tapvm::console {
namespace {

using namespace std::chrono_literals;

struct Pipe {
    UniqueFd read;
    UniqueFd write;
};

Pipe make_pipe() {
    int fds[2];
    EXPECT_EQ(::pipe2(fds, O_CLOEXEC), 0);
    return {UniqueFd(fds[0]), UniqueFd(fds[1])};
}

void put(const Pipe& p, const std::string& s) {
    ASSERT_EQ(::write(p.write.get(), s.data(), s.size()), static_cast<ssize_t>(s.size()));
}

// A stand-in for the UART: takes at most `room` bytes until given more.
class FakeSink {
public:
    size_t take(std::span<const uint8_t> bytes) {
        std::lock_guard lock(mutex_);
        ++calls_;
        size_t n = std::min(room_, bytes.size());
        received_.append(bytes.begin(), bytes.begin() + n);
        room_ -= n;
        changed_.notify_all();
        return n;
    }
    void set_room(size_t room) {
        std::lock_guard lock(mutex_);
        room_ = room;
    }
    // Waits until `text` has arrived (or a second passes).
    bool wait_for(const std::string& text) {
        std::unique_lock lock(mutex_);
        return changed_.wait_for(lock, 2s, [&] { return received_ == text; });
    }
    std::string received() {
        std::lock_guard lock(mutex_);
        return received_;
    }
    int calls() {
        std::lock_guard lock(mutex_);
        return calls_;
    }

private:
    std::mutex mutex_;
    std::condition_variable changed_;
    size_t room_ = SIZE_MAX;
    std::string received_;
    int calls_ = 0;
};

bool eventually(const std::function<bool()>& condition) {
    auto deadline = std::chrono::steady_clock::now() + 2s;
    while (std::chrono::steady_clock::now() < deadline) {
        if (condition()) return true;
        std::this_thread::sleep_for(1ms);
    }
    return condition();
}

ConsoleInput::Options with_escapes(int help_fd = STDERR_FILENO) {
    ConsoleInput::Options options;
    options.escapes = true;
    options.help_fd = help_fd;
    return options;
}

TEST(ConsoleInputTest, PipeInputIsForwardedVerbatim) {
    Pipe in = make_pipe();
    FakeSink sink;
    int quits = 0;
    ConsoleInput input(in.read.get(), [&](auto b) { return sink.take(b); }, [&] { ++quits; },
                       ConsoleInput::default_options(in.read.get()));
    put(in, "echo hi\n\x01x\x01\x01");
    EXPECT_TRUE(sink.wait_for("echo hi\n\x01x\x01\x01")) << "not a terminal: no escapes";
    EXPECT_EQ(quits, 0);
}

TEST(ConsoleInputTest, EndOfInputEndsTheThreadButDoesNotQuit) {
    Pipe in = make_pipe();
    FakeSink sink;
    int quits = 0;
    ConsoleInput input(in.read.get(), [&](auto b) { return sink.take(b); }, [&] { ++quits; },
                       ConsoleInput::Options{});
    put(in, "last words");
    in.write.reset();  // EOF
    EXPECT_TRUE(sink.wait_for("last words"));
    EXPECT_TRUE(eventually([&] { return input.finished(); }));
    EXPECT_EQ(quits, 0) << "the guest keeps running";
}

TEST(ConsoleInputTest, DevNullIsJustEndOfInput) {
    UniqueFd null(::open("/dev/null", O_RDONLY | O_CLOEXEC));
    ASSERT_TRUE(null);
    FakeSink sink;
    ConsoleInput input(null.get(), [&](auto b) { return sink.take(b); }, nullptr,
                       ConsoleInput::default_options(null.get()));
    EXPECT_TRUE(eventually([&] { return input.finished(); }));
    EXPECT_TRUE(sink.received().empty());
}

TEST(ConsoleInputTest, QuitEscapeCallsOnQuitAndStopsReading) {
    Pipe in = make_pipe();
    FakeSink sink;
    std::atomic<int> quits{0};
    ConsoleInput input(in.read.get(), [&](auto b) { return sink.take(b); }, [&] { ++quits; },
                       with_escapes());
    put(in, "abc\x01x" "after");
    EXPECT_TRUE(eventually([&] { return quits.load() == 1; }));
    EXPECT_TRUE(eventually([&] { return input.finished(); }));
    put(in, "more");
    std::this_thread::sleep_for(20ms);
    EXPECT_EQ(sink.received().find("after"), std::string::npos);
    EXPECT_EQ(sink.received().find("more"), std::string::npos);
    EXPECT_EQ(quits.load(), 1);
}

TEST(ConsoleInputTest, EscapedEscapeAndHelp) {
    Pipe in = make_pipe();
    Pipe help = make_pipe();
    FakeSink sink;
    ConsoleInput input(in.read.get(), [&](auto b) { return sink.take(b); }, nullptr,
                       with_escapes(help.write.get()));
    put(in, "a\x01\x01" "b\x01h");
    EXPECT_TRUE(sink.wait_for("a\x01" "b"));
    ASSERT_TRUE(eventually([&] {
        struct pollfd p {help.read.get(), POLLIN, 0};
        return ::poll(&p, 1, 0) == 1;
    }));
    char text[512] = {};
    ssize_t n = ::read(help.read.get(), text, sizeof text - 1);
    ASSERT_GT(n, 0);
    EXPECT_NE(std::string(text).find("Ctrl-A x"), std::string::npos);
}

TEST(ConsoleInputTest, FullSinkIsRetriedWhenSpaceIsAnnouncedNotBySpinning) {
    Pipe in = make_pipe();
    FakeSink sink;
    sink.set_room(3);
    ConsoleInput input(in.read.get(), [&](auto b) { return sink.take(b); }, nullptr, ConsoleInput::Options{});
    put(in, "0123456789");
    EXPECT_TRUE(sink.wait_for("012"));
    std::this_thread::sleep_for(50ms);
    // One call took three bytes, one more was refused; then it waits.
    EXPECT_LE(sink.calls(), 3) << "the thread must not poll the sink in a loop";
    EXPECT_EQ(sink.received(), "012");

    sink.set_room(4);
    input.notify_space_available();
    EXPECT_TRUE(sink.wait_for("0123456"));
    sink.set_room(100);
    input.notify_space_available();
    EXPECT_TRUE(sink.wait_for("0123456789"));
    put(in, "ab");
    EXPECT_TRUE(sink.wait_for("0123456789ab")) << "reading resumes once everything went";
}

TEST(ConsoleInputTest, FullSinkWithoutAnnouncementIsRetriedSlowly) {
    Pipe in = make_pipe();
    FakeSink sink;
    sink.set_room(0);
    ConsoleInput input(in.read.get(), [&](auto b) { return sink.take(b); }, nullptr, ConsoleInput::Options{});
    put(in, "xyz");
    ASSERT_TRUE(eventually([&] { return sink.calls() >= 1; }));
    sink.set_room(10);  // no notify: the safety-net timeout picks it up
    EXPECT_TRUE(sink.wait_for("xyz"));
}

TEST(ConsoleInputTest, StopIsPromptWhileWaitingForInput) {
    Pipe in = make_pipe();
    FakeSink sink;
    ConsoleInput input(in.read.get(), [&](auto b) { return sink.take(b); }, nullptr, ConsoleInput::Options{});
    std::this_thread::sleep_for(10ms);
    auto start = std::chrono::steady_clock::now();
    input.stop();
    EXPECT_LT(std::chrono::steady_clock::now() - start, 500ms);
    input.stop();  // idempotent
}

TEST(ConsoleInputTest, StopIsPromptWhileWaitingForSpace) {
    Pipe in = make_pipe();
    FakeSink sink;
    sink.set_room(0);
    ConsoleInput input(in.read.get(), [&](auto b) { return sink.take(b); }, nullptr, ConsoleInput::Options{});
    put(in, "stuck");
    ASSERT_TRUE(eventually([&] { return sink.calls() >= 1; }));
    auto start = std::chrono::steady_clock::now();
    input.stop();
    EXPECT_LT(std::chrono::steady_clock::now() - start, 150ms);
}

TEST(ConsoleInputTest, DefaultOptionsTurnEscapesOnForATerminalOnly) {
    UniqueFd master(::posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC));
    ASSERT_TRUE(master);
    ASSERT_EQ(::grantpt(master.get()), 0);
    ASSERT_EQ(::unlockpt(master.get()), 0);
    UniqueFd slave(::open(::ptsname(master.get()), O_RDWR | O_NOCTTY | O_CLOEXEC));
    ASSERT_TRUE(slave);
    EXPECT_TRUE(ConsoleInput::default_options(slave.get()).escapes);
    Pipe p = make_pipe();
    EXPECT_FALSE(ConsoleInput::default_options(p.read.get()).escapes);
}

TEST(ConsoleInputTest, SinkExceptionEndsOnlyTheConsoleThread) {
    Pipe in = make_pipe();
    ConsoleInput input(
        in.read.get(), [](std::span<const uint8_t>) -> size_t { throw std::runtime_error("sink broke"); }, nullptr,
        ConsoleInput::Options{});
    put(in, "x");
    EXPECT_TRUE(eventually([&] { return input.finished(); }));
}

}  // namespace
}  // namespace tapvm::console
