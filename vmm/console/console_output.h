// Where the guest console's output goes on the host: a file descriptor
// (normally stdout) written completely, in order.
//
// Writes block: output is never dropped because the reader is slow (a
// terminal paused with flow control, a pipe into `less`); the vCPU that
// wrote THR waits, as a real UART would hold its FIFO.  A descriptor someone
// set non-blocking is waited for with poll().  Only when the descriptor is
// gone for good (EPIPE, EIO, EBADF...) does output stop: logged once, then
// counted and discarded, and the guest runs on.
//
// Writing to a pipe whose reader has exited raises SIGPIPE, which kills the
// process unless the machine ignores SIGPIPE (it should, for its sockets and
// tap devices too); with SIGPIPE ignored, this sees EPIPE and stops output.
#pragma once

#include <cstdint>
#include <mutex>
#include <span>

namespace tapvm::console {

class ConsoleOutput {
public:
    // fd is not owned.
    explicit ConsoleOutput(int fd);

    // Thread-safe; one call's bytes are never interleaved with another's.
    void write(std::span<const uint8_t> bytes);

    // Bytes discarded since the descriptor failed.
    uint64_t dropped() const;

private:
    bool write_all(std::span<const uint8_t> bytes);
    bool wait_writable();

    const int fd_;
    mutable std::mutex mutex_;
    bool broken_ = false;
    uint64_t dropped_ = 0;
};

}  // namespace tapvm::console
