// The virtio-net event loop: one thread running a Boost.Asio io_context that
// waits on the queues' notify eventfds (ioeventfd: the guest's kicks never
// touch a vCPU thread) and on the tap fd, and drives RxPath, TxPath and
// CtrlQueue from those events.
//
//   RX  tap readable -> RxPath::process().  Out of guest buffers: stop
//       polling the tap until the driver kicks RX.
//   TX  TX kick -> TxPath::process().  Tap full: stop until the tap is
//       writable (POLLOUT), ignoring kicks meanwhile.
//   Both: budget used up -> post() the rest behind other pending events, so
//       one direction cannot starve the other.
//   ctrl kick -> CtrlQueue::process().
//
// All state below is touched only by the I/O thread.  A queue that turns out
// broken stops all processing and calls `on_broken` once (on the I/O
// thread).  stop() (and the destructor) return only after the thread has
// exited, i.e. when nothing touches guest memory on the device's behalf.
#pragma once

#include <functional>
#include <chrono>
#include <memory>
#include <thread>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/steady_timer.hpp>

#include "net/ctrl_queue.h"
#include "net/net_stats.h"
#include "net/rx_path.h"
#include "net/tap.h"
#include "net/tx_path.h"

namespace tapvm::net {

class NetIoThread {
public:
    struct Wiring {
        Tap* tap = nullptr;
        RxPath* rx = nullptr;  // null: the driver left the queue disabled
        int rx_kick_fd = -1;
        TxPath* tx = nullptr;
        int tx_kick_fd = -1;
        CtrlQueue* ctrl = nullptr;
        int ctrl_kick_fd = -1;
        std::function<void()> on_broken;
    };

    // Duplicates the fds (the originals stay with their owners).  Throws
    // Error when one cannot be watched.
    NetIoThread(const Wiring& wiring, NetStats& stats);
    ~NetIoThread();
    NetIoThread(const NetIoThread&) = delete;
    NetIoThread& operator=(const NetIoThread&) = delete;

    void start();
    // Idempotent; returns once the thread has exited.
    void stop();

private:
    using Descriptor = boost::asio::posix::stream_descriptor;
    // kTapBackoff: the tap failed a read (not EAGAIN); RX tries again after
    // a delay that doubles with each failure in a row, up to kMaxRxBackoff.
    enum class RxState { kRunning, kWaitingForTap, kWaitingForBuffers, kTapBackoff };
    enum class TxState { kIdle, kRunning, kWaitingForTap };
    static constexpr std::chrono::milliseconds kMaxRxBackoff{1000};

    void run();
    void wait_kick(Descriptor& kick, void (NetIoThread::*on_kick)(uint64_t));
    void on_rx_kick(uint64_t kicks);
    void on_tx_kick(uint64_t kicks);
    void on_ctrl_kick(uint64_t kicks);
    void run_rx();
    void run_tx();
    void run_ctrl();
    void wait_tap_readable();
    void wait_tap_writable();
    void retry_rx_later();
    void mark_broken();

    Wiring wiring_;
    NetStats& stats_;

    // Declared before the descriptors: they must be destroyed first.
    boost::asio::io_context io_;
    boost::asio::executor_work_guard<boost::asio::io_context::executor_type> work_;
    std::unique_ptr<Descriptor> tap_;
    std::unique_ptr<Descriptor> rx_kick_;
    std::unique_ptr<Descriptor> tx_kick_;
    std::unique_ptr<Descriptor> ctrl_kick_;
    boost::asio::steady_timer rx_retry_{io_};
    std::thread thread_;

    RxState rx_state_ = RxState::kRunning;
    TxState tx_state_ = TxState::kRunning;
    std::chrono::milliseconds rx_backoff_{0};  // 0: the last read did not fail
    bool tap_read_armed_ = false;
    bool tap_write_armed_ = false;
    bool broken_ = false;
};

}  // namespace tapvm::net
