// Shared helpers for the net unit tests: a socketpair-backed Tap with exact
// byte control, a recording VirtioInterrupt, a guest with one driver-side
// queue, and a way to run code inside a fresh network namespace.
#pragma once

#include <gtest/gtest.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "net/tap.h"
#include "support/testkit.h"
#include "virtio/split_queue.h"
#include "virtio/virtio_device.h"
#include "vmm/guest_memory.h"
#include "vmm/unique_fd.h"

namespace tapvm::net::testing {

using Bytes = std::vector<uint8_t>;

// A Tap over a SOCK_SEQPACKET socketpair: the device reads and writes one
// end, the test plays the host's network stack on the other.  Message
// boundaries are kept, like a tap's frames.
class SocketpairTap : public Tap {
public:
    // `device_sndbuf` bounds what the device end can have in flight: small
    // values make writes fail with EAGAIN like a tap with a full queue.
    explicit SocketpairTap(bool vnet_hdr = true, unsigned offloads = 0x1f, int device_sndbuf = 1 << 20)
        : vnet_hdr_(vnet_hdr) {
        int fds[2];
        if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, fds) != 0)
            throw std::runtime_error("socketpair failed");
        device_end_.reset(fds[0]);
        host_end_.reset(fds[1]);
        int big = 1 << 20;
        for (int fd : fds) {
            ::setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &big, sizeof big);
            ::setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &big, sizeof big);
        }
        ::setsockopt(fds[0], SOL_SOCKET, SO_SNDBUF, &device_sndbuf, sizeof device_sndbuf);
        offloads_ = vnet_hdr ? offloads : 0;
    }

    int fd() const override { return device_end_.get(); }
    const std::string& name() const override { return name_; }
    bool has_vnet_hdr() const override { return vnet_hdr_; }
    unsigned supported_offloads() const override { return offloads_; }

    ssize_t readv(std::span<const iovec> iov) override {
        if (fail_reads_with) return -fail_reads_with;
        ssize_t n = ::readv(device_end_.get(), iov.data(), static_cast<int>(iov.size()));
        return n < 0 ? -errno : n;
    }
    ssize_t writev(std::span<const iovec> iov) override {
        ++write_calls;
        if (fail_writes_with) return -fail_writes_with;
        last_write_iovecs = iov.size();
        ssize_t n = ::writev(device_end_.get(), iov.data(), static_cast<int>(iov.size()));
        return n < 0 ? -errno : n;
    }
    int set_vnet_hdr_size(int bytes) override {
        std::lock_guard g(mutex_);
        vnet_hdr_sizes.push_back(bytes);
        return 0;
    }
    int set_offload(unsigned flags) override {
        std::lock_guard g(mutex_);
        if (refuse_offloads) return EINVAL;
        offload_calls.push_back(flags);
        return 0;
    }

    // --- the host side ----------------------------------------------------
    void inject(const Bytes& frame) {
        ssize_t n = ::send(host_end_.get(), frame.data(), frame.size(), 0);
        if (n != static_cast<ssize_t>(frame.size())) throw std::runtime_error("inject failed");
    }
    // The next frame the device wrote, if any (non-blocking).
    std::optional<Bytes> take() {
        Bytes buffer(200000);
        ssize_t n = ::recv(host_end_.get(), buffer.data(), buffer.size(), MSG_DONTWAIT);
        if (n < 0) return std::nullopt;
        buffer.resize(static_cast<size_t>(n));
        return buffer;
    }
    // Waits up to `timeout` for a frame.
    std::optional<Bytes> wait_take(std::chrono::milliseconds timeout = std::chrono::seconds(5)) {
        auto deadline = std::chrono::steady_clock::now() + timeout;
        while (std::chrono::steady_clock::now() < deadline) {
            if (auto frame = take()) return frame;
            std::this_thread::sleep_for(std::chrono::milliseconds(1));
        }
        return std::nullopt;
    }
    std::vector<unsigned> offloads() const {
        std::lock_guard g(mutex_);
        return offload_calls;
    }
    std::vector<int> header_sizes() const {
        std::lock_guard g(mutex_);
        return vnet_hdr_sizes;
    }

    std::atomic<int> fail_writes_with{0};
    std::atomic<int> fail_reads_with{0};
    std::atomic<bool> refuse_offloads{false};
    std::atomic<int> write_calls{0};
    size_t last_write_iovecs = 0;

private:
    UniqueFd device_end_, host_end_;
    std::string name_ = "fake0";
    bool vnet_hdr_;
    unsigned offloads_;
    mutable std::mutex mutex_;
    std::vector<unsigned> offload_calls;
    std::vector<int> vnet_hdr_sizes;
};

// Records signal_queue() / signal_config() calls.
class RecordingInterrupt : public virtio::VirtioInterrupt {
public:
    void signal_queue(uint16_t queue) override {
        std::lock_guard g(mutex_);
        if (queue >= counts_.size()) counts_.resize(queue + 1);
        ++counts_[queue];
    }
    void signal_config() override { ++config_signals; }
    int count(uint16_t queue) const {
        std::lock_guard g(mutex_);
        return queue < counts_.size() ? counts_[queue] : 0;
    }
    std::atomic<int> config_signals{0};

private:
    mutable std::mutex mutex_;
    std::vector<int> counts_;
};

// Guest RAM plus one driver-side queue and the device-side SplitQueue on it.
struct GuestQueue {
    GuestQueue(const GuestMemory& memory, uint64_t features, uint16_t size, Gpa rings, Gpa data,
               uint64_t data_size)
        : driver(memory, {.size = size, .rings = rings, .data = data, .data_size = data_size}) {
        std::string why;
        queue = virtio::SplitQueue::create(memory, driver.config(), features, why);
        if (!queue) throw std::runtime_error("SplitQueue::create: " + why);
    }
    tapvm::testing::FakeDriverQueue driver;
    std::unique_ptr<virtio::SplitQueue> queue;
};

inline Bytes pattern(size_t len, uint8_t seed) {
    Bytes bytes(len);
    for (size_t i = 0; i < len; ++i) bytes[i] = static_cast<uint8_t>(seed + i * 7 + (i >> 8));
    return bytes;
}

inline Bytes concat(Bytes a, const Bytes& b) {
    a.insert(a.end(), b.begin(), b.end());
    return a;
}

inline uint16_t le16_at(const Bytes& bytes, size_t offset) {
    return static_cast<uint16_t>(bytes[offset] | bytes[offset + 1] << 8);
}

// Polls `done` every millisecond for up to `timeout`.
inline bool eventually(const std::function<bool()>& done,
                       std::chrono::milliseconds timeout = std::chrono::seconds(5)) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
        if (done()) return true;
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    return done();
}

// Runs `body` on a thread that first moves into a fresh network namespace
// (unshare(CLONE_NEWNET) affects only the calling thread), so taps created
// there never appear on the host and vanish with the namespace.  The thread
// also gets a private mount namespace with its own sysfs on /sys, so that
// /sys/class/net shows the new namespace's interfaces.  Returns false (with
// the reason in `why`) when namespaces are not available.
inline bool run_in_fresh_netns(const std::function<void()>& body, std::string& why) {
    bool entered = false;
    std::thread worker([&] {
        if (::unshare(CLONE_NEWNET | CLONE_NEWNS) != 0) {
            why = std::string("unshare(CLONE_NEWNET | CLONE_NEWNS): ") + std::strerror(errno);
            return;
        }
        if (::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0 ||
            ::mount("sysfs", "/sys", "sysfs", 0, nullptr) != 0) {
            why = std::string("mounting a private sysfs: ") + std::strerror(errno);
            return;
        }
        entered = true;
        body();
    });
    worker.join();
    return entered;
}

}  // namespace tapvm::net::testing
