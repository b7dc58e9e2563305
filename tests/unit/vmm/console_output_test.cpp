// ConsoleOutput: complete, ordered writes; waiting on a full non-blocking
// descriptor; a vanished reader stops output without stopping the caller.
#include "vmm/console/console_output.h"

#include <fcntl.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <csignal>
#include <string>
#include <thread>

#include "vmm/unique_fd.h"

namespace tapvm::console {
namespace {

struct Pipe {
    UniqueFd read;
    UniqueFd write;
};

Pipe make_pipe(int flags = 0) {
    int fds[2];
    EXPECT_EQ(::pipe2(fds, O_CLOEXEC | flags), 0);
    return {UniqueFd(fds[0]), UniqueFd(fds[1])};
}

std::span<const uint8_t> span_of(const std::string& s) {
    return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}

std::string read_exactly(int fd, size_t size) {
    std::string got;
    char buf[4096];
    while (got.size() < size) {
        ssize_t n = ::read(fd, buf, sizeof buf);
        if (n <= 0) break;
        got.append(buf, static_cast<size_t>(n));
    }
    return got;
}

TEST(ConsoleOutputTest, WritesEverythingInOrder) {
    Pipe p = make_pipe();
    ConsoleOutput out(p.write.get());
    out.write(span_of("hello, "));
    out.write(span_of("guest\r\n"));
    EXPECT_EQ(read_exactly(p.read.get(), 14), "hello, guest\r\n");
    EXPECT_EQ(out.dropped(), 0u);
}

TEST(ConsoleOutputTest, WaitsForAFullNonBlockingDescriptorInsteadOfDropping) {
    Pipe p = make_pipe(O_NONBLOCK);
    ConsoleOutput out(p.write.get());
    // Far more than a pipe holds (64 KiB): the writer must wait for the reader.
    std::string big(512 * 1024, '\0');
    for (size_t i = 0; i < big.size(); ++i) big[i] = static_cast<char>('a' + i % 26);
    std::string got;
    std::thread reader([&] {
        ::fcntl(p.read.get(), F_SETFL, 0);  // the reader blocks normally
        got = read_exactly(p.read.get(), big.size());
    });
    out.write(span_of(big));
    reader.join();
    EXPECT_EQ(got, big);
    EXPECT_EQ(out.dropped(), 0u);
}

TEST(ConsoleOutputTest, VanishedReaderStopsOutputButNotTheCaller) {
    struct sigaction ignore {};
    ignore.sa_handler = SIG_IGN;
    struct sigaction previous {};
    ASSERT_EQ(::sigaction(SIGPIPE, &ignore, &previous), 0);  // as the machine must
    Pipe p = make_pipe();
    ConsoleOutput out(p.write.get());
    p.read.reset();
    out.write(span_of("nobody"));
    out.write(span_of("listens"));
    EXPECT_EQ(out.dropped(), 13u);
    ::sigaction(SIGPIPE, &previous, nullptr);
}

}  // namespace
}  // namespace tapvm::console
