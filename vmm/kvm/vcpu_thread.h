// One thread per vCPU running KVM_RUN in a loop, and an orderly stop.
//
// Stopping: the stop request is a shared flag; each vCPU's
// kvm_run.immediate_exit is set and its thread is sent the kick signal
// (SIGRTMIN + kVcpuKickSignalOffset, an empty handler installed WITHOUT
// SA_RESTART), so a vCPU inside KVM_RUN returns EINTR and one about to
// enter returns at once (api.rst, KVM_CAP_IMMEDIATE_EXIT).  Every thread
// then sees the flag and ends.
//
// The first terminal event (power off, reboot, crash, fatal error — from a
// vCPU's exit or from stop()) wins: it is kept, and reported once through
// the callback; later ones are dropped.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

#include "vmm/guest_memory.h"
#include "vmm/kvm/exit_action.h"
#include "vmm/kvm/exit_dispatch.h"

namespace tapvm::kvm {

class KvmVcpu;

inline constexpr int kVcpuKickSignalOffset = 0;
// SIGRTMIN + kVcpuKickSignalOffset (SIGRTMIN is only known at run time).
int vcpu_kick_signal();
// Installs the kick signal's empty handler (once per process, idempotent).
void install_vcpu_kick_handler();

// A vCPU as its thread sees it (KvmVcpuRunner below; tests use fakes).
class VcpuRunner {
public:
    virtual ~VcpuRunner() = default;
    // Enters the guest once and handles the exit.  Continue when KVM_RUN was
    // interrupted.  Throws Error when KVM fails.
    virtual ExitAction run_once() = 0;
    // Makes a run_once() in progress or about to start return promptly.
    // Called from other threads.
    virtual void request_immediate_exit() = 0;
    // One line describing where the vCPU is (registers, run state), for a
    // state report.  Called on the vCPU's own thread, between runs.
    virtual std::string state_line() { return "no state available"; }
};

// KVM_RUN, then: emulation failures to emulation_fixup.h, everything else
// to dispatch_exit().  A crash or fatal action gets the vCPU and its RIP
// appended.  Buses and memory are shared by all vCPUs and must outlive it.
class KvmVcpuRunner : public VcpuRunner {
public:
    KvmVcpuRunner(KvmVcpu& vcpu, Buses& buses, const GuestMemory& memory)
        : vcpu_(vcpu), buses_(buses), memory_(memory) {}
    ExitAction run_once() override;
    void request_immediate_exit() override;
    // RIP, RSP, RFLAGS, CPL, CR0/CR3/CR4, EFER and the MP state.
    std::string state_line() override;

private:
    ExitAction handle_exit();
    ExitAction with_location(ExitAction action) const;

    KvmVcpu& vcpu_;
    Buses& buses_;
    const GuestMemory& memory_;
};

struct TerminalEvent {
    ExitAction action;
    std::optional<uint32_t> vcpu;  // which vCPU's exit; nullopt for stop()
};

class VcpuThreads {
public:
    // Called once, on the thread that produced the first terminal event (a
    // vCPU thread, or the caller of stop()).  It may call stop(); it must
    // not call join() or destroy this object.
    using OnTerminal = std::function<void(const TerminalEvent&)>;

    // runners[i] runs on thread i and is reported as vCPU i.  The runners
    // must outlive this object.
    VcpuThreads(std::vector<VcpuRunner*> runners, OnTerminal on_terminal);
    // Stops and joins the threads without reporting anything.
    ~VcpuThreads();
    VcpuThreads(const VcpuThreads&) = delete;
    VcpuThreads& operator=(const VcpuThreads&) = delete;

    void start();
    // Ends the machine for `reason` unless a terminal event came first.
    // stop(Continue{}) only stops the threads: nothing is recorded or
    // reported (the machine is being torn down for its own reasons).
    // Safe from any thread, including a vCPU thread (a device's power-off
    // register) and the callback.
    void stop(ExitAction reason);
    // Waits for every thread to end (after a terminal event or stop()).
    void join();
    // Asks every vCPU thread to log its state_line() once, at its next
    // return from the guest (the kick signal makes that prompt, also for a
    // halted vCPU).  The guest is not stopped.  Safe from any thread.
    void request_state_report();

    std::optional<TerminalEvent> terminal_event() const;

private:
    void thread_main(uint32_t index);
    void finish(TerminalEvent event);
    void kick_all();
    // Sends the kick signal to every thread; threads_mutex_ held.
    void signal_threads();

    std::vector<VcpuRunner*> runners_;
    OnTerminal on_terminal_;
    std::unique_ptr<std::atomic<bool>[]> report_requested_;  // one per runner
    std::atomic<bool> stop_requested_{false};

    // Guards threads_ against a kick racing start() or join(): a thread
    // that has been joined must never be signalled.
    std::mutex threads_mutex_;
    std::vector<std::thread> threads_;
    bool joined_ = false;

    std::mutex done_mutex_;
    std::condition_variable done_cv_;
    size_t running_ = 0;

    mutable std::mutex terminal_mutex_;
    std::optional<TerminalEvent> terminal_;
};

}  // namespace tapvm::kvm
