#include "net/net_io_thread.h"

#include <fcntl.h>
#include <pthread.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <boost/asio/post.hpp>

#include "vmm/error.h"

namespace tapvm::net {

namespace {

namespace asio = boost::asio;

std::unique_ptr<asio::posix::stream_descriptor> watch(asio::io_context& io, int fd, const char* what) {
    if (fd < 0) return nullptr;
    // A duplicate: stream_descriptor closes what it holds.
    int copy = ::fcntl(fd, F_DUPFD_CLOEXEC, 0);
    if (copy < 0) throw_errno(std::string("virtio-net: duplicating the ") + what + " fd");
    return std::make_unique<asio::posix::stream_descriptor>(io, copy);
}

// Reads and clears an eventfd; 0 when it was not signalled after all.
uint64_t drain_eventfd(int fd) {
    uint64_t count = 0;
    if (::read(fd, &count, sizeof count) != sizeof count) return 0;
    return count;
}

}  // namespace

NetIoThread::NetIoThread(const Wiring& wiring, NetStats& stats)
    : wiring_(wiring), stats_(stats), work_(asio::make_work_guard(io_)) {
    tap_ = watch(io_, wiring_.tap->fd(), "tap");
    if (wiring_.rx) rx_kick_ = watch(io_, wiring_.rx_kick_fd, "rx notify");
    if (wiring_.tx) tx_kick_ = watch(io_, wiring_.tx_kick_fd, "tx notify");
    if (wiring_.ctrl) ctrl_kick_ = watch(io_, wiring_.ctrl_kick_fd, "ctrl notify");
}

NetIoThread::~NetIoThread() { stop(); }

void NetIoThread::start() {
    // First passes: the driver may have posted buffers and kicked before
    // DRIVER_OK reached us.
    if (wiring_.rx) {
        wait_kick(*rx_kick_, &NetIoThread::on_rx_kick);
        asio::post(io_, [this] { run_rx(); });
    }
    if (wiring_.tx) {
        wait_kick(*tx_kick_, &NetIoThread::on_tx_kick);
        asio::post(io_, [this] { run_tx(); });
    }
    if (wiring_.ctrl) {
        wait_kick(*ctrl_kick_, &NetIoThread::on_ctrl_kick);
        asio::post(io_, [this] { run_ctrl(); });
    }
    thread_ = std::thread([this] { run(); });
}

void NetIoThread::stop() {
    if (!thread_.joinable()) return;
    io_.stop();
    thread_.join();
}

void NetIoThread::run() {
    pthread_setname_np(pthread_self(), "tapvm-net");
    for (;;) {
        try {
            io_.run();
            return;  // stopped
        } catch (const std::exception& e) {
            // Only a bug gets here; the guest's mistakes are values.
            spdlog::error("virtio-net I/O thread: {}", e.what());
            mark_broken();
        }
    }
}

void NetIoThread::wait_kick(Descriptor& kick, void (NetIoThread::*on_kick)(uint64_t)) {
    kick.async_wait(Descriptor::wait_read, [this, &kick, on_kick](const boost::system::error_code& ec) {
        if (ec) return;  // cancelled: stopping
        uint64_t kicks = drain_eventfd(kick.native_handle());
        if (!broken_ && kicks) (this->*on_kick)(kicks);
        wait_kick(kick, on_kick);
    });
}

void NetIoThread::on_rx_kick(uint64_t kicks) {
    stats_.rx.kicks.add(kicks);
    // Kicks only matter when we stopped for lack of buffers; otherwise the
    // tap's readiness drives RX.
    if (rx_state_ == RxState::kWaitingForBuffers) run_rx();
}

void NetIoThread::on_tx_kick(uint64_t kicks) {
    stats_.tx.kicks.add(kicks);
    if (tx_state_ == TxState::kIdle) run_tx();
}

void NetIoThread::on_ctrl_kick(uint64_t) { run_ctrl(); }

void NetIoThread::run_rx() {
    if (broken_) return;
    rx_state_ = RxState::kRunning;
    const RxPath::Result result = wiring_.rx->process();
    if (result != RxPath::Result::kTapFailed && rx_backoff_.count()) {
        rx_backoff_ = std::chrono::milliseconds(0);
        spdlog::info("virtio-net rx ({}): the tap reads again", wiring_.tap->name());
    }
    switch (result) {
        case RxPath::Result::kTapEmpty:
            rx_state_ = RxState::kWaitingForTap;
            wait_tap_readable();
            break;
        case RxPath::Result::kMore:
            asio::post(io_, [this] { run_rx(); });
            break;
        case RxPath::Result::kNoBuffers:
            rx_state_ = RxState::kWaitingForBuffers;
            break;
        case RxPath::Result::kTapFailed:
            retry_rx_later();  // logged by RxPath; TX may still work
            break;
        case RxPath::Result::kBroken:
            mark_broken();
            break;
    }
}

void NetIoThread::run_tx() {
    if (broken_) return;
    tx_state_ = TxState::kRunning;
    switch (wiring_.tx->process()) {
        case TxPath::Result::kIdle:
            tx_state_ = TxState::kIdle;
            break;
        case TxPath::Result::kMore:
            asio::post(io_, [this] { run_tx(); });
            break;
        case TxPath::Result::kTapFull:
            tx_state_ = TxState::kWaitingForTap;
            wait_tap_writable();
            break;
        case TxPath::Result::kBroken:
            mark_broken();
            break;
    }
}

void NetIoThread::run_ctrl() {
    if (broken_) return;
    switch (wiring_.ctrl->process()) {
        case CtrlQueue::Result::kIdle: break;
        case CtrlQueue::Result::kMore: asio::post(io_, [this] { run_ctrl(); }); break;
        case CtrlQueue::Result::kBroken: mark_broken(); break;
    }
}

void NetIoThread::wait_tap_readable() {
    if (tap_read_armed_) return;
    tap_read_armed_ = true;
    tap_->async_wait(Descriptor::wait_read, [this](const boost::system::error_code& ec) {
        tap_read_armed_ = false;
        if (ec) return;
        if (rx_state_ == RxState::kWaitingForTap) run_rx();
    });
}

void NetIoThread::wait_tap_writable() {
    if (tap_write_armed_) return;
    tap_write_armed_ = true;
    tap_->async_wait(Descriptor::wait_write, [this](const boost::system::error_code& ec) {
        tap_write_armed_ = false;
        if (ec) return;
        if (tx_state_ == TxState::kWaitingForTap) run_tx();
    });
}

// A tap read that failed with something other than EAGAIN (EIO while the
// link is being reconfigured, EBADFD on a detached queue, ...) is not
// final: the tap may well work again, and the guest should not need a
// reset to get its traffic back.  Retrying at once could spin; waiting for
// readiness could wait forever (a failing fd may poll readable, or never),
// so the retry is on a timer: 10 ms, doubling up to kMaxRxBackoff.
void NetIoThread::retry_rx_later() {
    rx_state_ = RxState::kTapBackoff;
    rx_backoff_ = rx_backoff_.count() ? std::min(rx_backoff_ * 2, kMaxRxBackoff) : std::chrono::milliseconds(10);
    rx_retry_.expires_after(rx_backoff_);
    rx_retry_.async_wait([this](const boost::system::error_code& ec) {
        if (ec) return;  // cancelled: stopping
        if (rx_state_ == RxState::kTapBackoff) run_rx();
    });
}

void NetIoThread::mark_broken() {
    if (broken_) return;
    broken_ = true;
    stats_.needs_reset.add();
    spdlog::error("virtio-net: a virtqueue is broken; the device needs a reset");
    if (wiring_.on_broken) wiring_.on_broken();
}

}  // namespace tapvm::net
