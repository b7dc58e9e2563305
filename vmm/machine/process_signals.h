// The signals tapvm acts on: SIGINT, SIGTERM and SIGHUP as an orderly stop
// of the running machine; SIGUSR1 as a request for a state report (each
// vCPU's registers, each NIC's counters), which changes nothing.
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

class ProcessSignals {
public:
    ProcessSignals();
    ~ProcessSignals();
    ProcessSignals(const ProcessSignals&) = delete;
    ProcessSignals& operator=(const ProcessSignals&) = delete;

    // Whom to tell (the machine being run; empty between machines).  A signal
    // that came while there was nobody is delivered as soon as there is.
    void on_stop(std::function<void(int signal)> handler);
    // The first stop signal received, or 0.
    int received() const;
    // Whom to tell on SIGUSR1 (empty: the request is dropped, with a line).
    void on_report(std::function<void()> handler);

private:
    void wait_loop();

    UniqueFd signal_fd_;
    UniqueFd quit_fd_;  // eventfd: the destructor ends the thread
    mutable std::mutex mutex_;
    std::function<void(int)> handler_;
    std::function<void()> report_handler_;
    int received_ = 0;
    bool delivered_ = false;
    std::thread thread_;
};

}  // namespace tapvm
