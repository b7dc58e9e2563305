#include "vmm/machine/process_signals.h"

#include <poll.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <spdlog/spdlog.h>

#include <cstring>

#include "vmm/error.h"

namespace tapvm {

namespace {
sigset_t handled_set() {
    sigset_t set;
    sigemptyset(&set);
    for (int sig : {SIGINT, SIGTERM, SIGHUP, SIGUSR1}) sigaddset(&set, sig);
    return set;
}
}  // namespace

ProcessSignals::ProcessSignals() {
    sigset_t set = handled_set();
    if (int err = ::pthread_sigmask(SIG_BLOCK, &set, nullptr)) throw_errno("pthread_sigmask", err);
    signal_fd_ = UniqueFd(::signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK));
    if (!signal_fd_) throw_errno("signalfd");
    quit_fd_ = UniqueFd(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
    if (!quit_fd_) throw_errno("eventfd");
    thread_ = std::thread([this] { wait_loop(); });
}

ProcessSignals::~ProcessSignals() {
    uint64_t one = 1;
    if (::write(quit_fd_.get(), &one, sizeof one) < 0) {
        // An eventfd write only fails on overflow, which one write cannot cause.
    }
    if (thread_.joinable()) thread_.join();
}

void ProcessSignals::on_stop(std::function<void(int)> handler) {
    std::lock_guard lock(mutex_);
    handler_ = std::move(handler);
    if (handler_ && received_ && !delivered_) {
        delivered_ = true;
        handler_(received_);
    }
}

void ProcessSignals::on_report(std::function<void()> handler) {
    std::lock_guard lock(mutex_);
    report_handler_ = std::move(handler);
}

int ProcessSignals::received() const {
    std::lock_guard lock(mutex_);
    return received_;
}

void ProcessSignals::wait_loop() {
    for (;;) {
        pollfd fds[2] = {{signal_fd_.get(), POLLIN, 0}, {quit_fd_.get(), POLLIN, 0}};
        if (::poll(fds, 2, -1) < 0) {
            if (errno == EINTR) continue;
            spdlog::error("stop signals: poll: {}", std::strerror(errno));
            return;
        }
        if (fds[1].revents) return;
        signalfd_siginfo info{};
        if (::read(signal_fd_.get(), &info, sizeof info) != static_cast<ssize_t>(sizeof info)) continue;
        const int sig = static_cast<int>(info.ssi_signo);
        std::lock_guard lock(mutex_);
        if (sig == SIGUSR1) {
            if (report_handler_) report_handler_();
            else spdlog::info("SIGUSR1: no machine running to report on");
            continue;
        }
        if (received_) {
            spdlog::info("{} again: already stopping", ::strsignal(sig));
            continue;
        }
        received_ = sig;
        spdlog::info("{} (signal {}) from pid {}: stopping the guest", ::strsignal(sig), sig, info.ssi_pid);
        if (handler_) {
            delivered_ = true;
            handler_(sig);
        }
    }
}

}  // namespace tapvm
