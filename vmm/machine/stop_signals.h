// SIGINT, SIGTERM and SIGHUP as an orderly stop of the running machine.
//
// Killed by a signal's default action, tapvm would leave a persistent tap
// with the guest's offloads and vnet header size set, and a terminal in raw
// mode.  Instead these signals are blocked in every thread (construct this
// in main before any other thread exists: threads inherit the mask) and one
// thread takes them from a signalfd and asks the current machine to stop,
// so teardown (device reset, tap restored, terminal restored) runs as on a
// guest power-off.
#pragma once

#include <functional>
#include <mutex>
#include <thread>

#include "vmm/unique_fd.h"

namespace tapvm {

class StopSignals {
public:
    StopSignals();
    ~StopSignals();
    StopSignals(const StopSignals&) = delete;
    StopSignals& operator=(const StopSignals&) = delete;

    // Whom to tell (the machine being run; empty between machines).  A signal
    // that came while there was nobody is delivered as soon as there is.
    void on_stop(std::function<void(int signal)> handler);
    // The first stop signal received, or 0.
    int received() const;

private:
    void wait_loop();

    UniqueFd signal_fd_;
    UniqueFd quit_fd_;  // eventfd: the destructor ends the thread
    mutable std::mutex mutex_;
    std::function<void(int)> handler_;
    int received_ = 0;
    bool delivered_ = false;
    std::thread thread_;
};

}  // namespace tapvm
