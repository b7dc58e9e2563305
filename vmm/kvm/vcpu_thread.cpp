#include "vmm/kvm/vcpu_thread.h"

#include <pthread.h>
#include <signal.h>
#include <spdlog/spdlog.h>

#include <cstring>

#include "vmm/error.h"
#include "vmm/kvm/emulation_fixup.h"
#include "vmm/kvm/kvm_vcpu.h"

namespace tapvm::kvm {

int vcpu_kick_signal() { return SIGRTMIN + kVcpuKickSignalOffset; }

namespace {
const char* describe_mp_state(uint32_t state) {
    switch (state) {
        case KVM_MP_STATE_RUNNABLE: return "runnable";
        case KVM_MP_STATE_UNINITIALIZED: return "waiting for INIT";
        case KVM_MP_STATE_INIT_RECEIVED: return "waiting for SIPI";
        case KVM_MP_STATE_HALTED: return "halted";
        case KVM_MP_STATE_SIPI_RECEIVED: return "SIPI received";
        default: return "in another MP state";
    }
}

// The handler only has to exist: its delivery is what makes KVM_RUN return.
void on_kick(int) {}
}  // namespace

void install_vcpu_kick_handler() {
    static std::once_flag once;
    std::call_once(once, [] {
        struct sigaction action{};
        action.sa_handler = on_kick;
        sigemptyset(&action.sa_mask);
        action.sa_flags = 0;  // no SA_RESTART: the interrupted ioctl must fail with EINTR
        if (::sigaction(vcpu_kick_signal(), &action, nullptr) != 0) throw_errno("sigaction (vCPU kick signal)");
    });
}

// --- KvmVcpuRunner ------------------------------------------------------------

ExitAction KvmVcpuRunner::run_once() {
    if (vcpu_.run() == KvmVcpu::RunResult::Interrupted) return Continue{};
    auto action = handle_exit();
    return is_continue(action) ? action : with_location(std::move(action));
}

ExitAction KvmVcpuRunner::handle_exit() {
    auto exit = vcpu_.exit();
    if (auto* internal = std::get_if<InternalErrorExit>(&exit); internal && internal->is_emulation_failure())
        return complete_emulation_failure(vcpu_, *internal, memory_);
    return dispatch_exit(exit, buses_);
}

void KvmVcpuRunner::request_immediate_exit() { vcpu_.set_immediate_exit(true); }

std::string KvmVcpuRunner::state_line() {
    try {
        const auto r = vcpu_.regs();
        const auto s = vcpu_.sregs();
        const auto mp = vcpu_.mp_state();
        // CPL is CS.DPL in long and protected mode (SDM vol. 3, 5.5).
        return fmt::format("RIP {:#x} RSP {:#x} RFLAGS {:#x} CPL {} CR0 {:#x} CR3 {:#x} CR4 {:#x} EFER {:#x} {}",
                           r.rip, r.rsp, r.rflags, s.cs.dpl, s.cr0, s.cr3, s.cr4, s.efer,
                           describe_mp_state(mp.mp_state));
    } catch (const Error& e) {
        return std::string("state unavailable: ") + e.what();
    }
}

ExitAction KvmVcpuRunner::with_location(ExitAction action) const {
    std::string where;
    try {
        where = fmt::format(" (vCPU {}, RIP {:#x})", vcpu_.id(), vcpu_.regs().rip);
    } catch (const Error&) {
        where = fmt::format(" (vCPU {})", vcpu_.id());
    }
    if (auto* crash = std::get_if<GuestCrash>(&action)) crash->reason += where;
    if (auto* fatal = std::get_if<Fatal>(&action)) fatal->message += where;
    return action;
}

// --- VcpuThreads --------------------------------------------------------------

VcpuThreads::VcpuThreads(std::vector<VcpuRunner*> runners, OnTerminal on_terminal)
    : runners_(std::move(runners)),
      on_terminal_(std::move(on_terminal)),
      report_requested_(std::make_unique<std::atomic<bool>[]>(runners_.size())) {}

VcpuThreads::~VcpuThreads() {
    stop_requested_.store(true);
    kick_all();
    join();
}

void VcpuThreads::start() {
    install_vcpu_kick_handler();
    std::lock_guard lock(threads_mutex_);
    if (!threads_.empty() || joined_) throw Error("vCPU threads already started");
    {
        std::lock_guard done(done_mutex_);
        running_ = runners_.size();
    }
    for (uint32_t i = 0; i < runners_.size(); ++i) {
        try {
            threads_.emplace_back([this, i] { thread_main(i); });
        } catch (const std::system_error& e) {
            // The threads already running are stopped by the caller's
            // unwinding (the destructor); those never created never run.
            stop_requested_.store(true);
            {
                std::lock_guard done(done_mutex_);
                running_ -= runners_.size() - i;
            }
            done_cv_.notify_all();
            throw Error(std::string("creating vCPU thread: ") + e.what());
        }
    }
}

void VcpuThreads::thread_main(uint32_t index) {
    // The creating thread may block signals (e.g. for a signalfd); the kick
    // must reach this one.
    sigset_t kick;
    sigemptyset(&kick);
    sigaddset(&kick, vcpu_kick_signal());
    pthread_sigmask(SIG_UNBLOCK, &kick, nullptr);

    auto& runner = *runners_[index];
    while (!stop_requested_.load()) {
        ExitAction action;
        try {
            action = runner.run_once();
        } catch (const std::exception& e) {
            action = Fatal{fmt::format("vCPU {}: {}", index, e.what())};
        }
        if (!is_continue(action)) {
            finish({std::move(action), index});
            break;
        }
        // A plain load on every exit; the read-modify-write only when asked.
        if (report_requested_[index].load(std::memory_order_relaxed) && report_requested_[index].exchange(false))
            spdlog::info("vCPU {}: {}", index, runner.state_line());
    }
    {
        std::lock_guard done(done_mutex_);
        --running_;
    }
    done_cv_.notify_all();
}

void VcpuThreads::stop(ExitAction reason) { finish({std::move(reason), std::nullopt}); }

void VcpuThreads::finish(TerminalEvent event) {
    bool first = false;
    {
        std::lock_guard lock(terminal_mutex_);
        if (!terminal_ && !is_continue(event.action)) {
            terminal_ = event;
            first = true;
        }
    }
    stop_requested_.store(true);
    kick_all();
    if (!first) {
        if (!is_continue(event.action))
            spdlog::debug("ignoring {} after the machine already ended", describe(event.action));
        return;
    }
    if (on_terminal_) on_terminal_(event);
}

void VcpuThreads::request_state_report() {
    std::lock_guard lock(threads_mutex_);
    if (joined_) return;
    for (size_t i = 0; i < runners_.size(); ++i) report_requested_[i].store(true);
    signal_threads();  // no immediate_exit: the vCPU must go on running after it reported
}

void VcpuThreads::signal_threads() {
    for (auto& t : threads_) {
        // Still valid when the thread has ended: it is not joined yet.
        int err = pthread_kill(t.native_handle(), vcpu_kick_signal());
        if (err != 0 && err != ESRCH) spdlog::warn("kicking a vCPU thread: {}", std::strerror(err));
    }
}

void VcpuThreads::kick_all() {
    std::lock_guard lock(threads_mutex_);
    if (joined_) return;
    // immediate_exit first: a thread between its stop check and KVM_RUN
    // misses the signal but not the flag.
    for (auto* runner : runners_) runner->request_immediate_exit();
    signal_threads();
}

void VcpuThreads::join() {
    {
        std::unique_lock done(done_mutex_);
        done_cv_.wait(done, [this] { return running_ == 0; });
    }
    std::lock_guard lock(threads_mutex_);
    if (joined_) return;
    for (auto& t : threads_)
        if (t.joinable()) t.join();
    joined_ = true;
}

std::optional<TerminalEvent> VcpuThreads::terminal_event() const {
    std::lock_guard lock(terminal_mutex_);
    return terminal_;
}

}  // namespace tapvm::kvm
